//! `org.osbuild.zstd`: compress the single file of the `file` input into `filename` in the
//! tree with `zstd --keep --stdout -T0 -1`, as upstream does.

use super::disk_util::compress_stage;
pub use super::disk_util::CompressOptions as Options;
use super::{StageArgs, StageResult};
use crate::Stage;
use std::process::Command;

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Zstd;

impl Stage for Zstd {
    const NAME: &'static str = "org.osbuild.zstd";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let mut cmd = Command::new("zstd");
        cmd.args(["--keep", "--stdout", "-T0", "-1"]);
        compress_stage(Self::NAME, args, &options, &mut cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{compress_args, decompress, need};
    use serde_json::json;

    #[test]
    fn compresses_input_into_tree() {
        need("zstd", "zstd");
        let t = tempfile::tempdir().unwrap();
        let (a, data) = compress_args(t.path(), json!({"filename": "disk.raw.zst"}));
        Zstd::execute(&a).unwrap();
        let out = a.tree.join("disk.raw.zst");
        assert_eq!(&std::fs::read(&out).unwrap()[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert!(Command::new("zstd").arg("-q").arg("-t").arg(&out).status().unwrap().success());
        assert_eq!(decompress("zstd", &out), data);
        assert!(t.path().join("input/sha256:abcd").exists());
    }

    #[test]
    fn missing_input_is_named() {
        let t = tempfile::tempdir().unwrap();
        let a = crate::testutil::args(t.path(), json!({"filename": "x.zst"}));
        assert_eq!(Zstd::execute(&a).unwrap_err().to_string(), "unknown input 'file'");
    }
}
