//! `org.osbuild.dmverity`: compute the dm-verity hash tree of the device `data_device` onto
//! the device `hash_device` with `veritysetup format <data> <hash> --data-block-size <n>
//! --root-hash-file <tree>/<root_hash_file>`, then check it with `veritysetup verify`, as
//! upstream does (which calls `/usr/sbin/veritysetup`; here it is looked up on `PATH`).
//! The root hash file is always inside the tree: an absolute `root_hash_file` is taken from
//! the tree's root (upstream's path join would let it name a host path).

use super::util::tree_path;
use super::{StageArgs, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Data block size in bytes (printed as given, like upstream).
    #[serde(default = "default_blocksize")]
    pub blocksize: serde_json::Number,
    /// Where in the tree to write the root hash (hex).
    pub root_hash_file: String,
}

fn default_blocksize() -> serde_json::Number {
    512.into()
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Dmverity;

impl Stage for Dmverity {
    const NAME: &'static str = "org.osbuild.dmverity";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let data = args.device_path("data_device")?;
        let hash = args.device_path("hash_device")?;
        let root_hash = tree_path(args, &options.root_hash_file, true)?;
        let mut format = Command::new("veritysetup");
        format.arg("format").arg(&data).arg(&hash);
        format.arg("--data-block-size").arg(options.blocksize.to_string());
        format.arg("--root-hash-file").arg(&root_hash);
        format.run(Dmverity::NAME)?;
        let mut verify = Command::new("veritysetup");
        verify.arg("verify").arg(&data).arg(&hash).arg("--root-hash-file").arg(&root_hash);
        verify.run(Dmverity::NAME)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{device_args, image, need, output};
    use serde_json::json;

    fn setup(dir: &std::path::Path, options: serde_json::Value) -> StageArgs {
        let data: Vec<u8> = (0..(1u32 << 20)).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(dir.join("data.img"), data).unwrap();
        image(dir, "hash.img", 1 << 20);
        device_args(dir, &[("data_device", "data.img"), ("hash_device", "hash.img")], options)
    }

    #[test]
    fn formats_and_verifies() {
        need("veritysetup", "cryptsetup-bin");
        let t = tempfile::tempdir().unwrap();
        let a = setup(t.path(), json!({"root_hash_file": "roothash", "blocksize": 4096}));
        Dmverity::execute(&a).unwrap();
        let root = std::fs::read_to_string(a.tree.join("roothash")).unwrap();
        assert_eq!(root.len(), 64, "{root:?}");
        assert!(root.bytes().all(|b| b.is_ascii_hexdigit()), "{root:?}");
        let hash = t.path().join("hash.img");
        let dump = output("veritysetup", &["dump", hash.to_str().unwrap()], "cryptsetup-bin");
        assert!(dump.contains("Data block size: \t4096"), "{dump}");
        assert!(dump.contains("Data blocks:     \t1024"), "{dump}");
        // the hash tree really covers the data: a changed block no longer verifies
        let data = t.path().join("data.img");
        let verify = |root: &str| {
            Command::new("veritysetup")
                .args(["verify", data.to_str().unwrap(), hash.to_str().unwrap(), root])
                .status()
                .unwrap()
                .success()
        };
        assert!(verify(&root));
        let mut bytes = std::fs::read(&data).unwrap();
        bytes[5000] ^= 1;
        std::fs::write(&data, bytes).unwrap();
        assert!(!verify(&root));
    }

    #[test]
    fn default_block_size_is_512() {
        need("veritysetup", "cryptsetup-bin");
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("tree/etc")).unwrap();
        let a = setup(t.path(), json!({"root_hash_file": "/etc/verity.hash"}));
        Dmverity::execute(&a).unwrap();
        assert_eq!(std::fs::read_to_string(a.tree.join("etc/verity.hash")).unwrap().len(), 64);
        let dump = output("veritysetup", &["dump", t.path().join("hash.img").to_str().unwrap()], "cryptsetup-bin");
        assert!(dump.contains("Data block size: \t512"), "{dump}");
        assert!(dump.contains("Data blocks:     \t8192"), "{dump}");
    }

    #[test]
    fn bad_block_size_fails_naming_veritysetup() {
        need("veritysetup", "cryptsetup-bin");
        let t = tempfile::tempdir().unwrap();
        let a = setup(t.path(), json!({"root_hash_file": "h", "blocksize": 1000}));
        let e = Dmverity::execute(&a).unwrap_err().to_string();
        assert!(e.starts_with("`veritysetup format "), "{e}");
        assert!(e.contains("--data-block-size 1000 "), "{e}");
    }
}
