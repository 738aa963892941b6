//! `org.osbuild.implantisomd5`: implant an MD5 checksum of an ISO image of the tree into its
//! primary volume descriptor with the build root's `implantisomd5` (isomd5sum), for the
//! installer's media check (`checkisomd5`).

use super::util::tree_path;
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The ISO image, in the tree.
    pub filename: String,
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Implantisomd5;

impl Stage for Implantisomd5 {
    const NAME: &'static str = "org.osbuild.implantisomd5";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let name = options.filename.trim_start_matches('/');
        let iso = tree_path(args, name, true)?;
        if name.is_empty() || !iso.is_file() {
            return Err(StageError::Invalid(format!("{} is not a file in the tree", options.filename)));
        }
        Command::new("implantisomd5").arg(&iso).current_dir(&args.tree).run(Implantisomd5::NAME)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;
    use std::os::unix::fs::FileExt;

    fn checkisomd5(iso: &std::path::Path) -> Option<i32> {
        Command::new("checkisomd5").arg(iso).output().expect("checkisomd5 (isomd5sum)").status.code()
    }

    #[test]
    fn implants_a_checksum_that_checkisomd5_verifies() {
        let t = tempfile::tempdir().unwrap();
        let (input, tree) = (t.path().join("input"), t.path().join("tree"));
        fs::create_dir_all(&input).unwrap();
        fs::create_dir_all(tree.join("images")).unwrap();
        // isomd5sum's fragment sums misjudge tiny images: give it a few MB of varied bytes
        let mut x = 1u32;
        let data: Vec<u8> = (0..5_000_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        fs::write(input.join("data"), data).unwrap();
        let iso = tree.join("images/x.iso");
        let st = Command::new("xorrisofs").args(["-quiet", "-V", "T", "-o"]).arg(&iso).arg(&input).status().unwrap();
        assert!(st.success());
        // no checksum yet: checkisomd5 fails
        assert_ne!(checkisomd5(&iso), Some(0));

        Implantisomd5::execute(&args(&tree, json!({"filename": "/images/x.iso"}))).unwrap();
        assert_eq!(checkisomd5(&iso), Some(0), "the implanted checksum does not verify");

        // one byte changed in the data: the check fails
        let f = fs::OpenOptions::new().write(true).open(&iso).unwrap();
        f.write_at(&[0], fs::metadata(&iso).unwrap().len() / 2).unwrap();
        assert_eq!(checkisomd5(&iso), Some(1));
    }

    #[test]
    fn the_image_must_be_in_the_tree() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("escape.iso")).unwrap();
        let e = Implantisomd5::execute(&args(t.path(), json!({"filename": "escape.iso"}))).unwrap_err();
        assert_eq!(e.to_string(), "escape.iso is not a file in the tree");
        let e = Implantisomd5::execute(&args(t.path(), json!({"filename": "none.iso"}))).unwrap_err();
        assert_eq!(e.to_string(), "none.iso is not a file in the tree");
    }
}
