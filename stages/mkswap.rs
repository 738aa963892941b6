//! `org.osbuild.mkswap`: set up a swap area on the device `device` with
//! `mkswap --uuid <uuid> [--label <label>] <device>`, as upstream does.

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
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Mkswap;

impl Stage for Mkswap {
    const NAME: &'static str = "org.osbuild.mkswap";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        mkfs_stage::<Self>(args, &options)
    }
}

impl Mkfs for Mkswap {
    fn command(o: &Options, device: &Path) -> Command {
        let mut cmd = Command::new("mkswap");
        cmd.arg("--uuid").arg(&o.uuid).args(label_args("--label", &o.label));
        cmd.arg(device);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{blkid, device_args, image, need};
    use serde_json::json;

    const UUID: &str = "3c1f2a8e-5d4b-4f7a-9e6c-8b2d0a1f4e37";

    #[test]
    fn creates_swap_with_uuid_and_label() {
        need("mkswap", "util-linux");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "swap.img", 32 << 20);
        Mkswap::execute(&device_args(t.path(), &[("device", "swap.img")], json!({"uuid": UUID, "label": "swap"})))
            .unwrap();
        let id = blkid(&img);
        assert_eq!(id["TYPE"], "swap");
        assert_eq!(id["UUID"], UUID);
        assert_eq!(id["LABEL"], "swap");
        assert_eq!(id["VERSION"], "1");
    }

    #[test]
    fn bad_uuid_fails_naming_mkswap() {
        need("mkswap", "util-linux");
        let t = tempfile::tempdir().unwrap();
        image(t.path(), "swap.img", 1 << 20);
        let e =
            Mkswap::execute(&device_args(t.path(), &[("device", "swap.img")], json!({"uuid": "nope"}))).unwrap_err();
        assert!(e.to_string().starts_with("`mkswap --uuid nope "), "{e}");
    }
}
