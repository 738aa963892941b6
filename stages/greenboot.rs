//! `org.osbuild.greenboot`: configure `/etc/greenboot/greenboot.conf`, which must exist.
//!
//! As upstream: the first uncommented `GREENBOOT_MONITOR_SERVICES=...` line (a line with
//! exactly one `=`) becomes `GREENBOOT_MONITOR_SERVICES="<new services not yet listed>
//! <listed services>"`; other lines stay as they are. If no such line exists the setting is
//! appended. The file is replaced by a new one with the old file's mode (as Python's
//! `fileinput` in-place editing does).

use super::util::{remove_if_exists, tree_path, write_file_chmod};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;

const KEY: &str = "GREENBOOT_MONITOR_SERVICES";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub config: Config,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub monitor_services: Option<Vec<String>>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Greenboot;

impl Stage for Greenboot {
    const NAME: &'static str = "org.osbuild.greenboot";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let source = tree_path(args, "/etc/greenboot/greenboot.conf", true)?;
        let old = std::fs::read_to_string(&source).map_err(StageError::io("cannot read", &source))?;
        // Python reads it with universal newlines
        let old = old.replace("\r\n", "\n").replace('\r', "\n");
        let mode =
            std::fs::metadata(&source).map_err(StageError::io("cannot read", &source))?.permissions().mode() & 0o7777;
        let mut pending = options.config.monitor_services;
        let mut out = String::new();
        for line in old.split_inclusive('\n') {
            let parts: Vec<&str> = line.split('=').collect();
            if line.starts_with('#') || parts.len() != 2 || parts[0] != KEY {
                out.push_str(line);
                continue;
            }
            let Some(wanted) = pending.take() else {
                out.push_str(line);
                continue;
            };
            let current: Vec<&str> = parts[1].trim_matches(|c| c == '"' || c == '\n').split(' ').collect();
            let mut services: Vec<&str> = wanted.iter().map(String::as_str).filter(|s| !current.contains(s)).collect();
            services.extend(current);
            out.push_str(&format!("{KEY}=\"{}\"\n", services.join(" ")));
        }
        if let Some(wanted) = pending {
            out.push_str(&format!("{KEY}=\"{}\"\n", wanted.join(" ")));
        }
        let target = tree_path(args, "/etc/greenboot/greenboot.conf", false)?;
        remove_if_exists(&target)?;
        write_file_chmod(&target, out.as_bytes(), mode)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    fn conf(root: &std::path::Path, text: &str) -> std::path::PathBuf {
        let p = root.join("etc/greenboot/greenboot.conf");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    #[test]
    fn merges_into_existing_line() {
        let t = tempfile::tempdir().unwrap();
        let p = conf(t.path(), "# GREENBOOT_MONITOR_SERVICES=\"x\"\nGREENBOOT_MAX_BOOT_ATTEMPTS=3\nGREENBOOT_MONITOR_SERVICES=\"sshd a\"\nGREENBOOT_MONITOR_SERVICES=\"z\"\n");
        Greenboot::execute(&args(t.path(), json!({"config": {"monitor_services": ["a", "b", "c"]}}))).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "# GREENBOOT_MONITOR_SERVICES=\"x\"\nGREENBOOT_MAX_BOOT_ATTEMPTS=3\nGREENBOOT_MONITOR_SERVICES=\"b c sshd a\"\nGREENBOOT_MONITOR_SERVICES=\"z\"\n"
        );
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn appends_when_missing_and_needs_the_file() {
        let t = tempfile::tempdir().unwrap();
        let e = Greenboot::execute(&args(t.path(), json!({"config": {"monitor_services": ["a"]}}))).unwrap_err();
        assert!(e.to_string().starts_with("cannot read"), "{e}");
        let p = conf(t.path(), "GREENBOOT_WATCHDOG_CHECK_ENABLED=true\n");
        Greenboot::execute(&args(t.path(), json!({"config": {"monitor_services": ["a", "b"]}}))).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "GREENBOOT_WATCHDOG_CHECK_ENABLED=true\nGREENBOOT_MONITOR_SERVICES=\"a b\"\n"
        );
    }
}
