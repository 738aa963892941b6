//! The legacy (manifest v1) assemblers: the last step of a v1 pipeline, turning the finished
//! tree (input `tree`) into an artefact in the output directory (`args.tree`). They share
//! upstream's names with some v2 stages (`org.osbuild.qemu`, `org.osbuild.tar`) but take other
//! options, so they live in their own registry.
//!
//! Unlike stages, an assembler attaches loop devices itself (partitions are only known once it
//! has written the table); see [`disk`].

use super::{parse_as, StageInfo};

mod disk;
mod noop;
mod ostree_commit;
mod qemu;
mod rawfs;
mod tar;

static ASSEMBLERS: &[StageInfo] = &[
    StageInfo { name: "org.osbuild.noop", capabilities: &[], run: noop::run, parse: parse_as::<noop::Options> },
    StageInfo {
        name: "org.osbuild.ostree.commit",
        capabilities: &[],
        run: ostree_commit::run,
        parse: parse_as::<ostree_commit::Options>,
    },
    StageInfo { name: "org.osbuild.qemu", capabilities: &[], run: qemu::run, parse: parse_as::<qemu::Options> },
    StageInfo { name: "org.osbuild.rawfs", capabilities: &[], run: rawfs::run, parse: parse_as::<rawfs::Options> },
    StageInfo { name: "org.osbuild.tar", capabilities: &[], run: tar::run, parse: parse_as::<tar::Options> },
];

/// All built-in assemblers, sorted by name.
pub fn registry() -> &'static [StageInfo] {
    ASSEMBLERS
}

/// The built-in assembler called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static StageInfo> {
    ASSEMBLERS.iter().find(|s| s.name == name)
}
