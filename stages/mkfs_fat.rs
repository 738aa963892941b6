//! `org.osbuild.mkfs.fat`: create a FAT file system on the device `device` with
//! `mkfs.fat -I -i <volid> [-n <label>] [-F <fat-size>] [-g <heads>/<sectors-per-track>]
//! <device>`, as upstream does.

use super::disk_util::{label_args, mkfs_stage, Mkfs};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Volume id, 8 hex digits (shows as `XXXX-XXXX` UUID).
    pub volid: String,
    pub label: Option<String>,
    /// 12, 16 or 32 (0 or absent: mkfs.fat decides).
    #[serde(rename = "fat-size")]
    pub fat_size: Option<u8>,
    pub geometry: Option<Geometry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geometry {
    pub heads: u64,
    #[serde(rename = "sectors-per-track")]
    pub sectors_per_track: u64,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct MkfsFat;

impl Stage for MkfsFat {
    const NAME: &'static str = "org.osbuild.mkfs.fat";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        mkfs_stage::<Self>(args, &options)
    }
}

impl Mkfs for MkfsFat {
    fn command(o: &Options, device: &Path) -> Command {
        let mut cmd = Command::new("mkfs.fat");
        cmd.args(["-I", "-i", &o.volid]).args(label_args("-n", &o.label));
        if let Some(size) = o.fat_size.filter(|&s| s != 0) {
            cmd.arg("-F").arg(size.to_string());
        }
        if let Some(g) = &o.geometry {
            cmd.arg("-g").arg(format!("{}/{}", g.heads, g.sectors_per_track));
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

    #[test]
    fn creates_fat_with_volid_label_size_and_geometry() {
        need("mkfs.fat", "dosfstools");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "fs.img", 64 << 20);
        let a = device_args(
            t.path(),
            &[("device", "fs.img")],
            json!({"volid": "7b7795e7", "label": "EFI-SYSTEM", "fat-size": 16,
                   "geometry": {"heads": 64, "sectors-per-track": 32}}),
        );
        MkfsFat::execute(&a).unwrap();
        let id = blkid(&img);
        assert_eq!(id["TYPE"], "vfat");
        assert_eq!(id["VERSION"], "FAT16");
        assert_eq!(id["UUID"], "7B77-95E7");
        assert_eq!(id["LABEL"], "EFI-SYSTEM");
        let info = output("fsck.fat", &["-n", "-v", img.to_str().unwrap()], "dosfstools");
        assert!(info.contains("2 FATs, 16 bit entries"), "{info}");
        assert!(info.contains("32 sectors/track, 64 heads"), "{info}");
        // heads and sectors per track sit at offsets 26 and 24 of the boot sector
        let boot = std::fs::read(&img).unwrap();
        assert_eq!(u16::from_le_bytes([boot[24], boot[25]]), 32);
        assert_eq!(u16::from_le_bytes([boot[26], boot[27]]), 64);
    }

    #[test]
    fn fat32_without_label() {
        need("mkfs.fat", "dosfstools");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "fs.img", 64 << 20);
        MkfsFat::execute(&device_args(t.path(), &[("device", "fs.img")], json!({"volid": "00c0ffee", "fat-size": 32})))
            .unwrap();
        let id = blkid(&img);
        assert_eq!(id["UUID"], "00C0-FFEE");
        assert_eq!(id["VERSION"], "FAT32");
        assert!(!id.contains_key("LABEL"), "{id:?}");
    }

    #[test]
    fn bad_volid_fails_naming_mkfs() {
        need("mkfs.fat", "dosfstools");
        let t = tempfile::tempdir().unwrap();
        image(t.path(), "fs.img", 8 << 20);
        let e = MkfsFat::execute(&device_args(t.path(), &[("device", "fs.img")], json!({"volid": "xyz"}))).unwrap_err();
        assert!(e.to_string().starts_with("`mkfs.fat -I -i xyz "), "{e}");
    }
}
