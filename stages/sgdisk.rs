//! `org.osbuild.sgdisk`: write a GPT to the device `device` with one `sgdisk` call, built as
//! upstream does: `sgdisk -Z <device> -g [-U <uuid>]`, then per partition
//! `-n N:<start>:+<size>` (or `:0` for "up to the end"), `-c N:"<name>"` (quoted unless
//! `quote_partition_name` is false), `-u N:<uuid>`, `-t N:<type>` and `-A N:set:<bit>`;
//! afterwards the table is printed with `sgdisk -p`.
//!
//! Deviations: upstream fails on `attrs` (it puts the list into a set) and passes `None` for a
//! missing `start`; here `attrs` bits are set (together with bit 2 for `bootable`) and a
//! missing start is `0`, sgdisk's "first free sector".

use super::disk_util::Partition;
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::util::yes;
use crate::Stage;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// GUID of the table.
    pub uuid: String,
    /// Only `gpt` is possible: sgdisk writes nothing else.
    pub label: Option<String>,
    #[serde(default = "yes")]
    pub quote_partition_name: bool,
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

/// The arguments after `sgdisk`.
pub fn argv(options: &Options, device: &std::path::Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["-Z".into(), device.into(), "-g".into()];
    if !options.uuid.is_empty() {
        v.extend(["-U".into(), options.uuid.clone().into()]);
    }
    for (i, p) in options.partitions.iter().enumerate() {
        let idx = p.partnum.filter(|&n| n != 0).unwrap_or(i as u64 + 1);
        let size = p.size.filter(|&s| s != 0).map_or("0".to_owned(), |s| format!("+{s}"));
        v.extend(["-n".into(), format!("{idx}:{}:{size}", p.start.unwrap_or(0)).into()]);
        if let Some(name) = p.name.as_ref().filter(|n| !n.is_empty()) {
            let name = if options.quote_partition_name { format!("\"{name}\"") } else { name.clone() };
            v.extend(["-c".into(), format!("{idx}:{name}").into()]);
        }
        if let Some(uuid) = p.uuid.as_ref().filter(|u| !u.is_empty()) {
            v.extend(["-u".into(), format!("{idx}:{uuid}").into()]);
        }
        if let Some(t) = p.ptype.as_ref().filter(|t| !t.is_empty()) {
            v.extend(["-t".into(), format!("{idx}:{t}").into()]);
        }
        let mut attrs: BTreeSet<u64> = p.attrs.iter().flatten().copied().collect();
        if p.bootable == Some(true) {
            attrs.insert(2);
        }
        for bit in attrs {
            v.extend(["-A".into(), format!("{idx}:set:{bit}").into()]);
        }
    }
    v
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Sgdisk;

impl Stage for Sgdisk {
    const NAME: &'static str = "org.osbuild.sgdisk";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if let Some(label) = options.label.as_deref().filter(|l| *l != "gpt") {
            return Err(StageError::Invalid(format!("sgdisk writes gpt tables only, not {label}")));
        }
        let device = args.device_path("device")?;
        Command::new("sgdisk").args(argv(&options, &device)).run(Sgdisk::NAME)?;
        // the table, for the log; upstream ignores its status too
        let _ = Command::new("sgdisk").arg("-p").arg(&device).run_unchecked(Sgdisk::NAME, false);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{device_args, image, need, sfdisk_table};
    use serde_json::{json, Value};

    fn layout(quote: bool) -> Value {
        json!({
            "uuid": "D209C89E-EA5E-4FBD-B161-B461CCE297E0", "label": "gpt", "quote_partition_name": quote,
            "partitions": [
                {"start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649", "bootable": true,
                 "uuid": "FAC7F1FB-3E8D-4137-A512-961DE09A5549", "name": "BIOS-BOOT"},
                {"partnum": 3, "start": 4096, "size": 204800, "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                 "uuid": "68B2905B-DF3E-4FB3-80FA-49D1E773AA33", "name": "EFI System", "attrs": [0, 60]},
                {"partnum": 2, "start": 208896, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                 "uuid": "6264D520-3FB9-423F-8AB8-7A0A8E3D3562", "name": "root"},
            ]
        })
    }

    #[test]
    fn argv_is_upstreams() {
        let o: Options = serde_json::from_value(layout(true)).unwrap();
        let v: Vec<String> = argv(&o, "/dev/loop2".as_ref()).iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            v[..13],
            [
                "-Z",
                "/dev/loop2",
                "-g",
                "-U",
                "D209C89E-EA5E-4FBD-B161-B461CCE297E0",
                "-n",
                "1:2048:+2048",
                "-c",
                "1:\"BIOS-BOOT\"",
                "-u",
                "1:FAC7F1FB-3E8D-4137-A512-961DE09A5549",
                "-t",
                "1:21686148-6449-6E6F-744E-656564454649"
            ]
        );
        assert_eq!(v[13..15], ["-A", "1:set:2"]);
        assert!(v.join(" ").contains("-n 2:208896:0 -c 2:\"root\""), "{v:?}");
        assert!(v.join(" ").contains("-A 3:set:0 -A 3:set:60"), "{v:?}");
    }

    #[test]
    fn only_gpt_labels() {
        let t = tempfile::tempdir().unwrap();
        let a = device_args(t.path(), &[("device", "none.img")], json!({"uuid": "x", "label": "dos"}));
        assert_eq!(Sgdisk::execute(&a).unwrap_err().to_string(), "sgdisk writes gpt tables only, not dos");
    }

    #[test]
    fn writes_gpt() {
        need("sgdisk", "gdisk");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "disk.img", 256 << 20);
        Sgdisk::execute(&device_args(t.path(), &[("device", "disk.img")], layout(false))).unwrap();
        let pt = sfdisk_table(&img);
        assert_eq!(pt["label"], "gpt");
        assert_eq!(pt["id"], "D209C89E-EA5E-4FBD-B161-B461CCE297E0");
        let parts = pt["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 3);
        // sfdisk lists by partition number: 1, 2 (root), 3 (EFI)
        assert_eq!(parts[0]["node"], format!("{}1", img.display()));
        assert_eq!((parts[0]["start"].as_u64(), parts[0]["size"].as_u64()), (Some(2048), Some(2048)));
        assert_eq!(parts[0]["type"], "21686148-6449-6E6F-744E-656564454649");
        assert_eq!(parts[0]["uuid"], "FAC7F1FB-3E8D-4137-A512-961DE09A5549");
        assert_eq!(parts[0]["name"], "BIOS-BOOT");
        assert_eq!(parts[0]["attrs"], "LegacyBIOSBootable");
        assert_eq!(parts[1]["node"], format!("{}2", img.display()));
        assert_eq!(parts[1]["start"].as_u64(), Some(208896));
        // up to the last usable sector (524254), before the backup GPT
        assert_eq!(parts[1]["size"].as_u64(), Some(524254 - 208896 + 1));
        assert_eq!(parts[1]["name"], "root");
        assert_eq!((parts[2]["start"].as_u64(), parts[2]["size"].as_u64()), (Some(4096), Some(204800)));
        assert_eq!(parts[2]["uuid"], "68B2905B-DF3E-4FB3-80FA-49D1E773AA33");
        assert_eq!(parts[2]["name"], "EFI System");
        assert_eq!(parts[2]["attrs"], "RequiredPartition GUID:60");
    }

    #[test]
    fn names_are_quoted_by_default() {
        need("sgdisk", "gdisk");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "disk.img", 256 << 20);
        let mut o = layout(true);
        o.as_object_mut().unwrap().remove("quote_partition_name");
        Sgdisk::execute(&device_args(t.path(), &[("device", "disk.img")], o)).unwrap();
        let pt = sfdisk_table(&img);
        assert_eq!(pt["partitions"][0]["name"], "\"BIOS-BOOT\"");
    }

    #[test]
    fn overlapping_partitions_fail_naming_sgdisk() {
        need("sgdisk", "gdisk");
        let t = tempfile::tempdir().unwrap();
        image(t.path(), "disk.img", 8 << 20);
        let o = json!({"uuid": "D209C89E-EA5E-4FBD-B161-B461CCE297E0",
                       "partitions": [{"start": 2048, "size": 4096}, {"start": 4096, "size": 4096}]});
        let e = Sgdisk::execute(&device_args(t.path(), &[("device", "disk.img")], o)).unwrap_err().to_string();
        assert!(e.starts_with("`sgdisk -Z "), "{e}");
    }
}
