//! `org.osbuild.rawfs` (assembler): a bare file system image (ext4, xfs or btrfs) of `size`
//! bytes holding the input tree.

use super::disk::{copy_tree, mkfs, LoopDir, Mounted};
use crate::stages::util::{run_tool, tree_path};
use crate::stages::{StageArgs, StageResult};
use serde::Deserialize;
use std::process::Command;

const NAME: &str = "org.osbuild.rawfs";

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

pub fn run(args: &StageArgs) -> StageResult {
    let o: Options = args.parse_options(NAME)?;
    let input = args.input_path("tree")?;
    let image = tree_path(args, &o.filename, false)?;
    if !matches!(o.fs_type.as_str(), "ext4" | "xfs" | "btrfs") {
        return Err(crate::stages::StageError::Invalid("fs_type must be ext4, xfs or btrfs".into()));
    }
    run_tool(NAME, Command::new("truncate").arg("--size").arg(o.size.to_string()).arg(&image))?;
    mkfs(NAME, &o.fs_type, &image, &o.root_fs_uuid, None)?;
    let loops = LoopDir::new(NAME)?;
    let lo = loops.attach(NAME, &image, 0, 0)?;
    let mnt = args.tree.join(".osbuild-rawfs-mnt");
    {
        let _m = Mounted::new(NAME, lo.node(), &mnt, &o.fs_type)?;
        copy_tree(NAME, &input, &mnt)?;
    }
    let _ = std::fs::remove_dir(&mnt);
    Ok(None)
}
