//! `org.osbuild.mkfs.xfs`: create an XFS file system on the device `device` with
//! `mkfs.xfs -m uuid=<uuid> [-L <label>] [-d agcount=<n>] <device>`, as upstream does.

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
    /// Number of allocation groups (0 or absent: mkfs.xfs decides).
    pub agcount: Option<u64>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct MkfsXfs;

impl Stage for MkfsXfs {
    const NAME: &'static str = "org.osbuild.mkfs.xfs";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        mkfs_stage::<Self>(args, &options)
    }
}

impl Mkfs for MkfsXfs {
    fn command(o: &Options, device: &Path) -> Command {
        let mut cmd = Command::new("mkfs.xfs");
        cmd.arg("-m").arg(format!("uuid={}", o.uuid)).args(label_args("-L", &o.label));
        if let Some(n) = o.agcount.filter(|&n| n != 0) {
            cmd.arg("-d").arg(format!("agcount={n}"));
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

    const UUID: &str = "9a0e1d3c-6d2b-4a4f-8d6e-2f7a1c5b3e90";

    #[test]
    fn creates_xfs_with_uuid_label_and_agcount() {
        need("mkfs.xfs", "xfsprogs");
        let t = tempfile::tempdir().unwrap();
        // current mkfs.xfs refuses file systems below 300 MB
        let img = image(t.path(), "fs.img", 512 << 20);
        MkfsXfs::execute(&device_args(
            t.path(),
            &[("device", "fs.img")],
            json!({"uuid": UUID, "label": "root", "agcount": 3}),
        ))
        .unwrap();
        let id = blkid(&img);
        assert_eq!(id["TYPE"], "xfs");
        assert_eq!(id["UUID"], UUID);
        assert_eq!(id["LABEL"], "root");
        let info = output("xfs_db", &["-r", "-c", "sb 0", "-c", "print agcount", img.to_str().unwrap()], "xfsprogs");
        assert_eq!(info.trim(), "agcount = 3");
    }

    #[test]
    fn too_small_device_fails_naming_mkfs() {
        need("mkfs.xfs", "xfsprogs");
        let t = tempfile::tempdir().unwrap();
        image(t.path(), "fs.img", 1 << 20);
        let e = MkfsXfs::execute(&device_args(t.path(), &[("device", "fs.img")], json!({"uuid": UUID}))).unwrap_err();
        assert!(e.to_string().starts_with(&format!("`mkfs.xfs -m uuid={UUID} ")), "{e}");
    }
}
