//! `org.osbuild.rawfs` (assembler): a bare file system image (ext4, xfs or btrfs) of `size`
//! bytes holding the input tree.

use super::disk::{copy_tree, mkfs, LoopDir, Mounted};
use crate::tool::CommandRunExt;
use crate::util::tree_path;
use crate::Stage;
use crate::{StageArgs, StageError, StageResult};
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
            return Err(StageError::Invalid("fs_type must be ext4, xfs or btrfs".into()));
        }
        Command::new("truncate").arg("--size").arg(o.size.to_string()).arg(&image).run(Rawfs::NAME)?;
        mkfs(Rawfs::NAME, &o.fs_type, &image, &o.root_fs_uuid, None)?;
        // Declared first, so it is removed after the file system mounted on it is unmounted.
        let mnt = tempfile::Builder::new()
            .prefix(".osbuild-rawfs-mnt.")
            .tempdir_in(&args.tree)
            .map_err(StageError::io("cannot create a scratch directory in", &args.tree))?;
        let loops = LoopDir::new()?;
        let lo = loops.attach(&image, 0, 0)?;
        {
            let _m = Mounted::new(lo.node(), mnt.path(), &o.fs_type)?;
            copy_tree(Rawfs::NAME, &input, mnt.path())?;
        }
        drop(lo);
        drop(loops);
        mnt.close().map_err(StageError::io("cannot remove a scratch directory in", &args.tree))?;
        Ok(None)
    }
}
