//! `org.osbuild.systemd.unit.create`: write a unit file (`.service`, `.mount`, `.socket` or
//! `.swap`) into `/usr/lib/systemd/{system,user}` or `/etc/systemd/{system,user}`.
//!
//! As upstream: the unit type's own section must be present; the directory must exist (it is
//! not created); the file is (re)written with mode 0644 in `configparser`'s format, list
//! values as one `key=value` line per item, `Environment` items as `Environment="KEY=VALUE"`,
//! booleans as `True`/`False`.

use super::configparser::{file_in_existing_dir, unit_from_config};
use super::util::{write_file, InOrder};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub config: InOrder<Config>,
    #[serde(rename = "unit-type", default)]
    pub unit_type: super::systemd_unit::UnitType,
    #[serde(rename = "unit-path", default)]
    pub unit_path: UnitPath,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum UnitPath {
    #[default]
    Usr,
    Etc,
}

/// Only validated here (and for which sections exist); the file is written from the options
/// in document order.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "Unit")]
    pub unit: Option<UnitSection>,
    #[serde(rename = "Service")]
    pub service: Option<ServiceSection>,
    #[serde(rename = "Mount")]
    pub mount: Option<MountSection>,
    #[serde(rename = "Socket")]
    pub socket: Option<SocketSection>,
    #[serde(rename = "Swap")]
    pub swap: Option<SwapSection>,
    #[serde(rename = "Install")]
    pub install: Option<InstallSection>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct UnitSection {
    pub description: Option<String>,
    pub wants: Option<Vec<String>>,
    pub after: Option<Vec<String>>,
    pub before: Option<Vec<String>>,
    pub requires: Option<Vec<String>>,
    pub condition_path_exists: Option<Vec<String>>,
    pub condition_path_is_directory: Option<Vec<String>>,
    pub default_dependencies: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ServiceSection {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub remain_after_exit: Option<bool>,
    pub exec_start_pre: Option<Vec<String>>,
    pub exec_stop_post: Option<Vec<String>>,
    pub exec_start: Option<Vec<String>>,
    pub environment: Option<Vec<super::systemd_unit::EnvVar>>,
    pub environment_file: Option<Vec<String>>,
    pub standard_output: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct MountSection {
    pub what: String,
    pub r#where: String,
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub options: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct SocketSection {
    pub service: Option<String>,
    pub listen_stream: Option<String>,
    pub listen_datagram: Option<String>,
    pub listen_sequential_packet: Option<String>,
    pub listen_fifo: Option<String>,
    pub socket_user: Option<String>,
    pub socket_group: Option<String>,
    pub socket_mode: Option<String>,
    pub directory_mode: Option<String>,
    pub accept: Option<bool>,
    pub runtime_directory: Option<String>,
    pub remove_on_stop: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct SwapSection {
    pub what: String,
    pub priority: Option<i64>,
    pub options: Option<String>,
    pub timeout_sec: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct InstallSection {
    pub wanted_by: Option<Vec<String>>,
    pub required_by: Option<Vec<String>>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct SystemdUnitCreate;

impl Stage for SystemdUnitCreate {
    const NAME: &'static str = "org.osbuild.systemd.unit.create";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let name = &options.filename;
        if name.len() > 255 {
            return Err(StageError::Invalid(format!("the {name} service exceeds the maximum filename length")));
        }
        let c = options.config.get();
        for (suffix, section, present) in [
            (".service", "Service", c.service.is_some()),
            (".mount", "Mount", c.mount.is_some()),
            (".socket", "Socket", c.socket.is_some()),
            (".swap", "Swap", c.swap.is_some()),
        ] {
            if name.ends_with(suffix) && !present {
                return Err(StageError::Invalid(format!("{name} unit requires {section} section")));
            }
        }
        let ini = unit_from_config(&options.config.value())?;
        let dir = match (options.unit_path, options.unit_type) {
            (UnitPath::Usr, super::systemd_unit::UnitType::System) => "/usr/lib/systemd/system",
            (UnitPath::Usr, super::systemd_unit::UnitType::Global) => "/usr/lib/systemd/user",
            (UnitPath::Etc, super::systemd_unit::UnitType::System) => "/etc/systemd/system",
            (UnitPath::Etc, super::systemd_unit::UnitType::Global) => "/etc/systemd/user",
        };
        let path = file_in_existing_dir(args, dir, name)?;
        write_file(&path, ini.render().as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_mount_unit() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib/systemd/system")).unwrap();
        let opts = json!({"filename": "data.mount", "config": {
            "Unit": {"DefaultDependencies": true}, "Mount": {"What": "/dev/sdb1", "Where": "/data"}}});
        SystemdUnitCreate::execute(&args(t.path(), opts)).unwrap();
        let text = std::fs::read_to_string(t.path().join("usr/lib/systemd/system/data.mount")).unwrap();
        assert_eq!(text, "[Unit]\nDefaultDependencies=True\n\n[Mount]\nWhat=/dev/sdb1\nWhere=/data\n\n");
    }

    #[test]
    fn type_section_and_directory_are_required() {
        let t = tempfile::tempdir().unwrap();
        let e = SystemdUnitCreate::execute(&args(t.path(), json!({"filename": "a.service", "config": {"Unit": {}}})))
            .unwrap_err();
        assert_eq!(e.to_string(), "a.service unit requires Service section");
        let opts = json!({"filename": "a.swap", "unit-path": "etc", "config": {"Swap": {"What": "/swap"}}});
        let e = SystemdUnitCreate::execute(&args(t.path(), opts)).unwrap_err();
        assert_eq!(e.to_string(), "directory /etc/systemd/system does not exist in the tree");
    }
}
