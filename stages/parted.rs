//! `org.osbuild.parted`: write a partition table to the device `device` with one
//! `parted -a none -s <device> -- unit s mklabel <label> mkpart "<name>" <start> <end> …`
//! call, setting `boot` for bootable partitions and the flag named by `type`, then print the
//! table with `parted … print`, as upstream does. A partition without a name gets the name
//! `None`, as upstream's formatting gives it.

use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The table type (`gpt`).
    pub label: String,
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

/// One partition, in 512-byte sectors; `type` names a parted flag (e.g. `bios_grub`).
#[derive(Debug, Default, Deserialize)]
pub struct Partition {
    pub bootable: Option<bool>,
    pub name: Option<String>,
    pub size: Option<u64>,
    pub start: Option<u64>,
    #[serde(rename = "type")]
    pub ptype: Option<String>,
}

/// The parted commands after `--`.
pub fn commands(options: &Options) -> Result<Vec<String>, StageError> {
    let mut c: Vec<String> = vec!["unit".into(), "s".into(), "mklabel".into(), options.label.clone()];
    for (i, p) in options.partitions.iter().enumerate() {
        let n = i + 1;
        let (Some(start), Some(size)) = (p.start, p.size.filter(|&s| s > 0)) else {
            return Err(StageError::Invalid(format!("partition {n} needs a start and a non-zero size")));
        };
        c.extend([
            "mkpart".into(),
            format!("\"{}\"", p.name.as_deref().unwrap_or("None")),
            start.to_string(),
            (start + size - 1).to_string(),
        ]);
        if p.bootable == Some(true) {
            c.extend(["set".into(), n.to_string(), "boot".into(), "on".into()]);
        }
        if let Some(t) = p.ptype.as_ref().filter(|t| !t.is_empty()) {
            c.extend(["set".into(), n.to_string(), t.clone(), "on".into()]);
        }
    }
    Ok(c)
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Parted;

impl Stage for Parted {
    const NAME: &'static str = "org.osbuild.parted";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let device = args.device_path("device")?;
        let cmds = commands(&options)?;
        Command::new("parted").args(["-a", "none", "-s"]).arg(&device).arg("--").args(&cmds).run(Parted::NAME)?;
        Command::new("parted").args(["-a", "none", "-s"]).arg(&device).args(["--", "print"]).run(Parted::NAME)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{device_args, image, need, output};
    use serde_json::{json, Value};

    #[test]
    fn commands_are_upstreams() {
        let o: Options = serde_json::from_value(json!({"label": "gpt", "partitions": [
            {"start": 2048, "size": 2048, "type": "bios_grub", "name": "BIOS"},
            {"start": 4096, "size": 100, "bootable": true},
        ]}))
        .unwrap();
        assert_eq!(
            commands(&o).unwrap().join(" "),
            "unit s mklabel gpt mkpart \"BIOS\" 2048 4095 set 1 bios_grub on mkpart \"None\" 4096 4195 set 2 boot on"
        );
        let o: Options = serde_json::from_value(json!({"label": "gpt", "partitions": [{"start": 1}]})).unwrap();
        assert_eq!(commands(&o).unwrap_err().to_string(), "partition 1 needs a start and a non-zero size");
    }

    #[test]
    fn writes_gpt_with_flags() {
        need("parted", "parted");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "disk.img", 64 << 20);
        let o = json!({"label": "gpt", "partitions": [
            {"start": 2048, "size": 2048, "type": "bios_grub", "name": "BIOS-BOOT"},
            {"start": 4096, "size": 40960, "bootable": true, "name": "EFI-SYSTEM"},
            {"start": 45056, "size": 40960, "name": "root"},
        ]});
        Parted::execute(&device_args(t.path(), &[("device", "disk.img")], o)).unwrap();
        let pt: Value = serde_json::from_str::<Value>(&output("sfdisk", &["--json", img.to_str().unwrap()], "fdisk"))
            .unwrap()["partitiontable"]
            .clone();
        assert_eq!(pt["label"], "gpt");
        let parts = pt["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!((parts[0]["start"].as_u64(), parts[0]["size"].as_u64()), (Some(2048), Some(2048)));
        assert_eq!(parts[0]["type"], "21686148-6449-6E6F-744E-656564454649"); // bios_grub
        assert_eq!(parts[0]["name"], "BIOS-BOOT");
        assert_eq!((parts[1]["start"].as_u64(), parts[1]["size"].as_u64()), (Some(4096), Some(40960)));
        assert_eq!(parts[1]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"); // boot on GPT = ESP
        assert_eq!(parts[1]["name"], "EFI-SYSTEM");
        assert_eq!((parts[2]["start"].as_u64(), parts[2]["size"].as_u64()), (Some(45056), Some(40960)));
        assert_eq!(parts[2]["name"], "root");
    }

    #[test]
    fn bad_flag_fails_naming_parted() {
        need("parted", "parted");
        let t = tempfile::tempdir().unwrap();
        image(t.path(), "disk.img", 8 << 20);
        let o = json!({"label": "gpt", "partitions": [{"start": 2048, "size": 2048, "type": "no_such_flag"}]});
        let e = Parted::execute(&device_args(t.path(), &[("device", "disk.img")], o)).unwrap_err().to_string();
        assert!(e.starts_with("`parted -a none -s "), "{e}");
    }
}
