//! `org.osbuild.mkfs.btrfs`: create a btrfs file system on the device `device` with
//! `mkfs.btrfs -U <uuid> [-L <label>] [-m <metadata profile>] <device>`, as upstream does.

use super::disk_util::{label_args, mkfs_stage, Mkfs};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub uuid: String,
    pub label: Option<String>,
    /// Metadata profile: `single` or `dup`.
    pub metadata: Option<String>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct MkfsBtrfs;

impl Stage for MkfsBtrfs {
    const NAME: &'static str = "org.osbuild.mkfs.btrfs";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        mkfs_stage::<Self>(args, &options)
    }
}

impl Mkfs for MkfsBtrfs {
    fn command(o: &Options, device: &Path) -> Command {
        let mut cmd = Command::new("mkfs.btrfs");
        cmd.arg("-U").arg(&o.uuid).args(label_args("-L", &o.label));
        if let Some(m) = o.metadata.as_ref().filter(|m| !m.is_empty()) {
            cmd.arg("-m").arg(m);
        }
        cmd.arg(device);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{blkid, device_args, image, need, output};
    use serde_json::json;

    const UUID: &str = "0bd94bd1-6b4c-4b58-8a07-9c2d1d6f3a11";

    #[test]
    fn creates_btrfs_with_uuid_label_and_metadata_profile() {
        need("mkfs.btrfs", "btrfs-progs");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "fs.img", 256 << 20);
        MkfsBtrfs::execute(&device_args(
            t.path(),
            &[("device", "fs.img")],
            json!({"uuid": UUID, "label": "fedora", "metadata": "single"}),
        ))
        .unwrap();
        let id = blkid(&img);
        assert_eq!(id["TYPE"], "btrfs");
        assert_eq!(id["UUID"], UUID);
        assert_eq!(id["LABEL"], "fedora");
        let sb = output("btrfs", &["inspect-internal", "dump-super", img.to_str().unwrap()], "btrfs-progs");
        assert!(sb.contains(&format!("fsid\t\t\t{UUID}")), "{sb}");
        // the default on one device would be DUP metadata
        let chunks =
            output("btrfs", &["inspect-internal", "dump-tree", "-t", "chunk", img.to_str().unwrap()], "btrfs-progs");
        assert!(chunks.contains("type METADATA|single"), "{chunks}");
        assert!(!chunks.contains("DUP"), "{chunks}");
    }

    #[test]
    fn too_small_device_fails_naming_mkfs() {
        need("mkfs.btrfs", "btrfs-progs");
        let t = tempfile::tempdir().unwrap();
        image(t.path(), "fs.img", 1 << 20);
        let e = MkfsBtrfs::execute(&device_args(t.path(), &[("device", "fs.img")], json!({"uuid": UUID}))).unwrap_err();
        assert!(e.to_string().starts_with(&format!("`mkfs.btrfs -U {UUID} ")), "{e}");
    }
}
