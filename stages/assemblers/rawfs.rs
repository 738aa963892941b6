//! `org.osbuild.rawfs` (assembler): a bare file system image (ext4, xfs or btrfs) of `size`
//! bytes holding the input tree.

use super::disk::{copy_tree, mkfs, LoopDir, Mounted};
use crate::tool::CommandRunExt;
use crate::util::tree_path;
use crate::Stage;
use crate::{StageArgs, StageResult};
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub root_fs_uuid: String,
    pub size: u64,
    #[serde(default = "ext4")]
    pub fs_type: String,
}

fn ext4() -> String {
    "ext4".into()
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Rawfs;

impl Stage for Rawfs {
    const NAME: &'static str = "org.osbuild.rawfs";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        let input = args.input_path("tree")?;
        let image = tree_path(args, &o.filename, false)?;
        if !matches!(o.fs_type.as_str(), "ext4" | "xfs" | "btrfs") {
            return Err(crate::StageError::Invalid("fs_type must be ext4, xfs or btrfs".into()));
        }
        Command::new("truncate").arg("--size").arg(o.size.to_string()).arg(&image).run(Rawfs::NAME)?;
        mkfs(Rawfs::NAME, &o.fs_type, &image, &o.root_fs_uuid, None)?;
        let loops = LoopDir::new()?;
        let lo = loops.attach(&image, 0, 0)?;
        let mnt = args.tree.join(".osbuild-rawfs-mnt");
        {
            let _m = Mounted::new(lo.node(), &mnt, &o.fs_type)?;
            copy_tree(Rawfs::NAME, &input, &mnt)?;
        }
        let _ = std::fs::remove_dir(&mnt);
        Ok(None)
    }
}
