//! `org.osbuild.ignition`: mark the image for Ignition's first boot.
//!
//! As upstream: writes `ignition.firstboot` into the target directory (a location URL,
//! default `tree:///boot`, which must exist), either empty or with
//! `set ignition_network_kcmdline='<network args joined by spaces>'` (no trailing newline),
//! which GRUB sources on first boot. New files get mode 0644.

use super::util::{location_parts, resolve_in_root, write_file};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default = "default_target")]
    pub target: String,
    #[serde(default)]
    pub network: Vec<String>,
}

fn default_target() -> String {
    "tree:///boot".into()
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Ignition;

impl Stage for Ignition {
    const NAME: &'static str = "org.osbuild.ignition";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let (root, dir) = location_parts(&options.target, args)?;
        let path = resolve_in_root(&root, format!("{dir}/ignition.firstboot"), true)?;
        let text = if options.network.is_empty() {
            String::new()
        } else {
            format!("set ignition_network_kcmdline='{}'", options.network.join(" "))
        };
        write_file(&path, text.as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_firstboot_file() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("boot")).unwrap();
        Ignition::execute(&args(t.path(), json!({}))).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("boot/ignition.firstboot")).unwrap(), "");
        std::fs::create_dir(t.path().join("efi")).unwrap();
        Ignition::execute(&args(t.path(), json!({"target": "tree:///efi/", "network": ["ip=dhcp", "rd.neednet=1"]})))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("efi/ignition.firstboot")).unwrap(),
            "set ignition_network_kcmdline='ip=dhcp rd.neednet=1'"
        );
    }

    #[test]
    fn target_root_and_bad_targets() {
        let t = tempfile::tempdir().unwrap();
        Ignition::execute(&args(t.path(), json!({"target": "tree:///"}))).unwrap();
        assert!(t.path().join("ignition.firstboot").is_file());
        let e = Ignition::execute(&args(t.path(), json!({"target": "tree://"}))).unwrap_err();
        assert!(e.to_string().contains("must start with '/'"), "{e}");
    }

    #[test]
    fn missing_target_directory_fails() {
        let t = tempfile::tempdir().unwrap();
        let e = Ignition::execute(&args(t.path(), json!({}))).unwrap_err();
        assert!(e.to_string().starts_with("cannot write"), "{e}");
    }
}
