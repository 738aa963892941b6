//! `org.osbuild.xz`: compress the single file of the `file` input into `filename` in the
//! tree with `xz --keep --stdout -0` and `XZ_OPT=--threads 0`, as upstream does. Upstream
//! runs xz with only that variable set; here the environment is kept but `XZ_DEFAULTS` is
//! dropped, so no setting from outside changes the output either.

use super::disk_util::compress_stage;
pub use super::disk_util::CompressOptions as Options;
use super::{StageArgs, StageResult};
use crate::Stage;
use std::process::Command;

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Xz;

impl Stage for Xz {
    const NAME: &'static str = "org.osbuild.xz";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let mut cmd = Command::new("xz");
        cmd.env_remove("XZ_DEFAULTS").env("XZ_OPT", "--threads 0").args(["--keep", "--stdout", "-0"]);
        compress_stage(Self::NAME, args, &options, &mut cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{compress_args, decompress, need, output};
    use serde_json::json;

    #[test]
    fn compresses_input_into_tree_at_preset_0() {
        need("xz", "xz-utils");
        let t = tempfile::tempdir().unwrap();
        let (a, data) = compress_args(t.path(), json!({"filename": "/images/disk.raw.xz"}));
        Xz::execute(&a).unwrap();
        let out = a.tree.join("images/disk.raw.xz");
        assert!(Command::new("xz").arg("-t").arg(&out).status().unwrap().success());
        assert_eq!(decompress("xz", &out), data);
        // preset 0 means a 256 KiB dictionary; threaded mode (XZ_OPT) cuts the input into
        // blocks of 3 dictionaries, so 1.2 MB make 2 blocks
        let info = output("xz", &["-l", "-vv", out.to_str().unwrap()], "xz-utils");
        assert_eq!(info.matches("--lzma2=dict=256KiB").count(), 2, "{info}");
        assert!(t.path().join("input/sha256:abcd").exists());
    }
}
