//! The legacy (manifest v1) assemblers: the last step of a v1 pipeline, turning the finished
//! tree (input `tree`) into an artefact in the output directory (`args.tree`). They share
//! upstream's names with some v2 stages (`org.osbuild.qemu`, `org.osbuild.tar`) but take other
//! options, so they live in their own registry.
//!
//! Unlike stages, an assembler attaches loop devices itself (partitions are only known once it
//! has written the table); see [`disk`].

use super::{entry, StageInfo};

mod disk;
mod noop;
mod ostree_commit;
mod qemu;
mod rawfs;
mod tar;

static ASSEMBLERS: &[StageInfo] = &[
    entry::<noop::Noop>(),
    entry::<ostree_commit::OstreeCommit>(),
    entry::<qemu::Qemu>(),
    entry::<rawfs::Rawfs>(),
    entry::<tar::Tar>(),
];

/// All built-in assemblers, sorted by name.
pub fn registry() -> &'static [StageInfo] {
    ASSEMBLERS
}

/// The built-in assembler called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static StageInfo> {
    ASSEMBLERS.iter().find(|s| s.name == name)
}
