//! `org.osbuild.mkfs.ext4`: create an ext4 file system on the device `device` with
//! `mkfs.ext4 -U <uuid> [-L <label>] [-E lazy_itable_init=N -E lazy_journal_init=N]
//! [-O [^]verity] [-O [^]orphan_file] [-O [^]metadata_csum_seed] <device>`, as upstream does.

use super::disk_util::{label_args, mkfs_stage, Mkfs};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub uuid: String,
    pub label: Option<String>,
    /// Initialise inode tables and journal lazily (`Some(false)` forces eager init).
    pub lazy_init: Option<bool>,
    pub verity: Option<bool>,
    pub orphan_file: Option<bool>,
    pub metadata_csum_seed: Option<bool>,
}

/// The arguments after `mkfs.ext4`, but the device.
pub fn argv(options: &Options) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["-U".into(), options.uuid.clone().into()];
    v.extend(label_args("-L", &options.label).map(OsString::from));
    if let Some(lazy) = options.lazy_init {
        let n = u8::from(lazy);
        v.extend([
            "-E".into(),
            format!("lazy_itable_init={n}").into(),
            "-E".into(),
            format!("lazy_journal_init={n}").into(),
        ]);
    }
    for (feature, value) in [
        ("verity", options.verity),
        ("orphan_file", options.orphan_file),
        ("metadata_csum_seed", options.metadata_csum_seed),
    ] {
        match value {
            Some(true) => v.extend(["-O".into(), feature.into()]),
            Some(false) => v.extend(["-O".into(), format!("^{feature}").into()]),
            None => {}
        }
    }
    v
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct MkfsExt4;

impl Stage for MkfsExt4 {
    const NAME: &'static str = "org.osbuild.mkfs.ext4";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        mkfs_stage::<Self>(args, &options)
    }
}

impl Mkfs for MkfsExt4 {
    fn command(o: &Options, device: &Path) -> Command {
        let mut cmd = Command::new("mkfs.ext4");
        cmd.args(argv(o));
        cmd.arg(device);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{blkid, device_args, image, need, output};
    use serde_json::json;

    const UUID: &str = "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75";

    #[test]
    fn argv_is_upstreams() {
        let o: Options = serde_json::from_value(json!({
            "uuid": UUID, "label": "root", "lazy_init": false, "verity": true, "orphan_file": false
        }))
        .unwrap();
        let v: Vec<String> = argv(&o).iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            v,
            [
                "-U",
                UUID,
                "-L",
                "root",
                "-E",
                "lazy_itable_init=0",
                "-E",
                "lazy_journal_init=0",
                "-O",
                "verity",
                "-O",
                "^orphan_file"
            ]
        );
    }

    #[test]
    fn creates_ext4_with_uuid_label_and_features() {
        need("mkfs.ext4", "e2fsprogs");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "fs.img", 64 << 20);
        let a = device_args(
            t.path(),
            &[("device", "fs.img")],
            json!({"uuid": UUID, "label": "root", "lazy_init": false, "verity": true, "metadata_csum_seed": true,
                   "orphan_file": false}),
        );
        MkfsExt4::execute(&a).unwrap();
        let id = blkid(&img);
        assert_eq!(id["TYPE"], "ext4");
        assert_eq!(id["UUID"], UUID);
        assert_eq!(id["LABEL"], "root");
        let sb = output("dumpe2fs", &["-h", img.to_str().unwrap()], "e2fsprogs");
        let features = sb.lines().find(|l| l.starts_with("Filesystem features:")).unwrap();
        assert!(features.contains(" verity"), "{features}");
        assert!(features.contains(" metadata_csum_seed"), "{features}");
        assert!(!features.contains("orphan_file"), "{features}");
    }

    #[test]
    fn bad_uuid_fails_naming_mkfs() {
        need("mkfs.ext4", "e2fsprogs");
        let t = tempfile::tempdir().unwrap();
        image(t.path(), "fs.img", 16 << 20);
        let e =
            MkfsExt4::execute(&device_args(t.path(), &[("device", "fs.img")], json!({"uuid": "nope"}))).unwrap_err();
        assert!(e.to_string().starts_with("`mkfs.ext4 -U nope "), "{e}");
    }
}
