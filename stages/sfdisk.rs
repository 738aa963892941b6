//! `org.osbuild.sfdisk`: write an MBR (`dos`/`mbr`) or GPT partition table to the device
//! `device` by feeding `sfdisk -q --no-tell-kernel` the same script upstream builds
//! (`label:` and `label-id:` headers, then one line per partition with `start`, `size`,
//! `type`, `name`, `uuid`, `attrs` and `bootable`, prefixed by `<device>p<N>:` when the
//! partition has a `partnum`). Afterwards the table is read back with `sfdisk --json`,
//! checked to hold as many partitions as requested and printed to the log.

use super::disk_util::Partition;
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Partition table type: `dos`, `mbr` or `gpt`.
    pub label: String,
    /// Identifier of the table (`label-id`): a GUID for GPT, `0x…` for MBR.
    pub uuid: String,
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

/// The attribute names sfdisk knows for the low GPT attribute bits; bits 48-63 are passed as
/// numbers and any other bit is dropped (as upstream does).
fn attrs_value(bits: &[u64]) -> String {
    bits.iter()
        .filter_map(|bit| match bit {
            0 => Some("RequiredPartition".to_owned()),
            1 => Some("NoBlockIOProtocol".to_owned()),
            2 => Some("LegacyBIOSBootable".to_owned()),
            48..=63 => Some(bit.to_string()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The sfdisk script for `options` on the device node `target`.
pub fn script(options: &Options, target: &str) -> String {
    let mut out = format!("label: {}\nlabel-id: {}", options.label, options.uuid);
    for p in &options.partitions {
        let mut fields = Vec::new();
        // a field that is absent, zero or empty is left out, as upstream does
        let mut push = |key: &str, value: Option<String>| {
            if let Some(v) = value.filter(|v| !v.is_empty() && v != "0") {
                fields.push(format!("{key}=\"{v}\""));
            }
        };
        push("start", p.start.map(|v| v.to_string()));
        push("size", p.size.map(|v| v.to_string()));
        push("type", p.ptype.clone());
        push("name", p.name.clone());
        push("uuid", p.uuid.clone());
        if let Some(bits) = p.attrs.as_ref().filter(|b| !b.is_empty()) {
            fields.push(format!("attrs=\"{}\"", attrs_value(bits)));
        }
        if p.bootable == Some(true) {
            fields.push("bootable".to_owned());
        }
        out.push('\n');
        if let Some(n) = p.partnum.filter(|&n| n != 0) {
            out.push_str(&format!("{target}p{n}: "));
        }
        out.push_str(&fields.join(", "));
    }
    out
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Sfdisk;

impl Stage for Sfdisk {
    const NAME: &'static str = "org.osbuild.sfdisk";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let device = args.device_path("device")?;
        write_table(Sfdisk::NAME, &device, &options)?;
        Ok(None)
    }
}

/// Write the table `options` describe onto `device` (a device node or an image file) and
/// read back how sfdisk laid it out: the `partitions` of `sfdisk --json`, as many as were
/// requested. For `stage`: this one and the v1 `org.osbuild.qemu` assembler.
pub fn write_table(stage: &'static str, device: &Path, options: &Options) -> Result<Vec<Value>, StageError> {
    let script = script(options, &device.to_string_lossy());
    println!("{script}");
    Command::new("sfdisk").arg("-q").arg("--no-tell-kernel").arg(device).run_with_input(stage, script.as_bytes())?;
    let table: Value = Command::new("sfdisk").arg("--json").arg(device).run_and_parse_json(stage)?;
    println!("{table:#}");
    let found = table.pointer("/partitiontable/partitions").and_then(Value::as_array).cloned().unwrap_or_default();
    if found.len() != options.partitions.len() {
        return Err(StageError::ToolUnexpected {
            tool: "sfdisk".into(),
            what: format!(
                "left {} with {} partitions, but {} were requested",
                device.display(),
                found.len(),
                options.partitions.len()
            ),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{device_args, image, need, sfdisk_table};
    use serde_json::json;

    #[test]
    fn script_matches_upstream_layout() {
        let options: Options = serde_json::from_value(json!({
            "label": "gpt", "uuid": "D209C89E-EA5E-4FBD-B161-B461CCE297E0",
            "partitions": [
                {"start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649", "bootable": true,
                 "uuid": "FAC7F1FB-3E8D-4137-A512-961DE09A5549", "attrs": [0, 2, 5, 60]},
                {"partnum": 3, "start": 0, "name": "", "size": 100},
                {"partnum": 2, "name": "root", "attrs": [5]},
            ]
        }))
        .unwrap();
        assert_eq!(
            script(&options, "/dev/loop0"),
            "label: gpt\nlabel-id: D209C89E-EA5E-4FBD-B161-B461CCE297E0\n\
             start=\"2048\", size=\"2048\", type=\"21686148-6449-6E6F-744E-656564454649\", \
             uuid=\"FAC7F1FB-3E8D-4137-A512-961DE09A5549\", attrs=\"RequiredPartition,LegacyBIOSBootable,60\", bootable\n\
             /dev/loop0p3: size=\"100\"\n\
             /dev/loop0p2: name=\"root\", attrs=\"\""
        );
    }

    #[test]
    fn writes_gpt_table() {
        need("sfdisk", "fdisk");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "disk.img", 256 << 20);
        let a = device_args(
            t.path(),
            &[("device", "disk.img")],
            json!({
                "label": "gpt", "uuid": "D209C89E-EA5E-4FBD-B161-B461CCE297E0",
                "partitions": [
                    {"start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649",
                     "uuid": "FAC7F1FB-3E8D-4137-A512-961DE09A5549", "bootable": true},
                    {"start": 4096, "size": 204800, "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                     "uuid": "68B2905B-DF3E-4FB3-80FA-49D1E773AA33", "name": "EFI System Partition",
                     "attrs": [0, 60]},
                    {"start": 208896, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                     "uuid": "6264D520-3FB9-423F-8AB8-7A0A8E3D3562", "name": "root"},
                ]
            }),
        );
        Sfdisk::execute(&a).unwrap();
        let pt = sfdisk_table(&img);
        assert_eq!(pt["label"], "gpt");
        assert_eq!(pt["id"], "D209C89E-EA5E-4FBD-B161-B461CCE297E0");
        let parts = pt["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!((parts[0]["start"].as_u64(), parts[0]["size"].as_u64()), (Some(2048), Some(2048)));
        assert_eq!(parts[0]["type"], "21686148-6449-6E6F-744E-656564454649");
        assert_eq!(parts[0]["uuid"], "FAC7F1FB-3E8D-4137-A512-961DE09A5549");
        // sfdisk ignores `bootable` on GPT (there is no such flag)
        assert!(parts[0].get("attrs").is_none(), "{}", parts[0]);
        assert_eq!((parts[1]["start"].as_u64(), parts[1]["size"].as_u64()), (Some(4096), Some(204800)));
        assert_eq!(parts[1]["name"], "EFI System Partition");
        assert_eq!(parts[1]["attrs"], "RequiredPartition GUID:60");
        assert_eq!(parts[2]["start"].as_u64(), Some(208896));
        // the last partition fills the disk up to the backup GPT, its end aligned to 1 MiB
        assert_eq!(parts[2]["size"].as_u64(), Some(255 * 2048 - 208896));
        assert_eq!(parts[2]["name"], "root");
    }

    #[test]
    fn writes_dos_table_with_partition_numbers() {
        need("sfdisk", "fdisk");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "disk.img", 32 << 20);
        let a = device_args(
            t.path(),
            &[("device", "disk.img")],
            json!({
                "label": "dos", "uuid": "0x14fc63d2",
                "partitions": [
                    {"partnum": 2, "start": 20480, "type": "83"},
                    {"partnum": 1, "start": 2048, "size": 18432, "type": "41", "bootable": true},
                ]
            }),
        );
        Sfdisk::execute(&a).unwrap();
        let pt = sfdisk_table(&img);
        assert_eq!(pt["label"], "dos");
        assert_eq!(pt["id"], "0x14fc63d2");
        let parts = pt["partitions"].as_array().unwrap();
        assert_eq!(parts[0]["node"], format!("{}1", img.display()));
        assert_eq!((parts[0]["start"].as_u64(), parts[0]["size"].as_u64()), (Some(2048), Some(18432)));
        assert_eq!(parts[0]["type"], "41");
        assert_eq!(parts[0]["bootable"], true);
        assert_eq!((parts[1]["start"].as_u64(), parts[1]["size"].as_u64()), (Some(20480), Some(65536 - 20480)));
        assert_eq!(parts[1]["type"], "83");
        assert!(parts[1].get("bootable").is_none());
    }

    #[test]
    fn bad_table_reports_sfdisk() {
        need("sfdisk", "fdisk");
        let t = tempfile::tempdir().unwrap();
        image(t.path(), "disk.img", 1 << 20);
        let a = device_args(
            t.path(),
            &[("device", "disk.img")],
            json!({"label": "gpt", "uuid": "D209C89E-EA5E-4FBD-B161-B461CCE297E0",
                   "partitions": [{"start": 2048, "size": 1000000}]}),
        );
        let e = Sfdisk::execute(&a).unwrap_err().to_string();
        assert!(e.starts_with("`sfdisk -q --no-tell-kernel "), "{e}");
        assert!(device_args(t.path(), &[], json!({"label": "gpt", "uuid": "x"})).device_path("device").is_err());
    }
}
