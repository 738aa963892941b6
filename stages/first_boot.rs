//! `org.osbuild.first-boot`: a oneshot `osbuild-first-boot.service` that runs the given
//! commands once, on the first boot.
//!
//! As upstream: writes `/usr/lib/systemd/system/osbuild-first-boot.service` (0644; the first
//! command removes the flag file), links it from `default.target.wants/` with the relative
//! target `../osbuild-first-boot.service` (an existing link is an error, as `os.symlink`),
//! and creates the flag file `/etc/osbuild-first-boot` (0644, left alone if present).
//! Missing directories are created with mode 0755.

use super::util::{create_parents, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::os::unix::fs::OpenOptionsExt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub commands: Vec<String>,
    #[serde(default)]
    pub wait_for_network: bool,
}

fn service(commands: &[String], wait_for_network: bool) -> String {
    let network = if wait_for_network { "Wants=network-online.target\nAfter=network-online.target" } else { "" };
    let mut execs = String::from("\nExecStart=/usr/bin/rm /etc/osbuild-first-boot\n");
    for c in commands {
        execs.push_str(&format!("ExecStart={c}\n"));
    }
    format!(
        "[Unit]\nDescription=OSBuild First Boot Service\nConditionPathExists=/etc/osbuild-first-boot\n{network}\n\n\
         [Service]\nType=oneshot\n{execs}"
    )
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct FirstBoot;

impl Stage for FirstBoot {
    const NAME: &'static str = "org.osbuild.first-boot";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let unit = tree_path(args, "/usr/lib/systemd/system/osbuild-first-boot.service", true)?;
        let link = tree_path(args, "/usr/lib/systemd/system/default.target.wants/osbuild-first-boot.service", false)?;
        create_parents(&link)?;
        write_file(&unit, service(&options.commands, options.wait_for_network).as_bytes(), 0o644)?;
        std::os::unix::fs::symlink("../osbuild-first-boot.service", &link)
            .map_err(StageError::io("cannot create symlink", &link))?;
        let flag = tree_path(args, "/etc/osbuild-first-boot", true)?;
        create_parents(&flag)?;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&flag)
            .map_err(StageError::io("cannot create", &flag))?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn service_text() {
        assert_eq!(
            service(&["/usr/bin/true".into()], true),
            "[Unit]\nDescription=OSBuild First Boot Service\nConditionPathExists=/etc/osbuild-first-boot\n\
             Wants=network-online.target\nAfter=network-online.target\n\n[Service]\nType=oneshot\n\n\
             ExecStart=/usr/bin/rm /etc/osbuild-first-boot\nExecStart=/usr/bin/true\n"
        );
        assert!(service(&[], false).contains("first-boot\n\n\n[Service]"));
    }

    #[test]
    fn creates_unit_link_and_flag() {
        let t = tempfile::tempdir().unwrap();
        FirstBoot::execute(&args(t.path(), json!({"commands": ["/bin/echo hi"]}))).unwrap();
        let link = t.path().join("usr/lib/systemd/system/default.target.wants/osbuild-first-boot.service");
        assert_eq!(std::fs::read_link(&link).unwrap(), std::path::Path::new("../osbuild-first-boot.service"));
        assert!(t.path().join("etc/osbuild-first-boot").is_file());
        let e = FirstBoot::execute(&args(t.path(), json!({"commands": []}))).unwrap_err().to_string();
        assert!(e.starts_with("cannot create symlink"), "{e}");
    }
}
