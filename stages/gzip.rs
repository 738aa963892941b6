//! `org.osbuild.gzip`: compress the single file of the `file` input into `filename` in the
//! tree with `gzip --no-name --stdout -<level>` (level 1 unless given), as upstream does.

use super::disk_util::compress_input;
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Output file in the tree.
    pub filename: String,
    /// Compression level, 1-9.
    #[serde(default = "one")]
    pub level: u8,
}

fn one() -> u8 {
    1
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Gzip;

impl Stage for Gzip {
    const NAME: &'static str = "org.osbuild.gzip";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let mut cmd = Command::new("gzip");
        cmd.args(["--no-name", "--stdout"]).arg(format!("-{}", options.level));
        compress_input(Gzip::NAME, args, &options.filename, &mut cmd)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{compress_args, decompress, need};
    use serde_json::json;

    #[test]
    fn compresses_without_name_at_level() {
        need("gzip", "gzip");
        let t = tempfile::tempdir().unwrap();
        let (a, data) = compress_args(t.path(), json!({"filename": "disk.gz", "level": 9}));
        Gzip::execute(&a).unwrap();
        let out = std::fs::read(a.tree.join("disk.gz")).unwrap();
        // header: deflate, no flags (no file name), no mtime, XFL 2 = best compression
        assert_eq!(out[..8], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        assert_eq!(out[8], 2);
        assert_eq!(decompress("gzip", &a.tree.join("disk.gz")), data);

        let (a, _) = compress_args(t.path(), json!({"filename": "fast.gz"}));
        Gzip::execute(&a).unwrap();
        assert_eq!(std::fs::read(a.tree.join("fast.gz")).unwrap()[8], 4, "level 1 (XFL 4) by default");
    }
}
