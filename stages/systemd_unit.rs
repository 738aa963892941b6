//! `org.osbuild.systemd.unit`: write a drop-in `<unit>.d/<dropin>` for a system unit
//! (`/usr/lib/systemd/system`) or a global user unit (`/usr/lib/systemd/user`).
//!
//! As upstream: the `.d` directory is created (0755) if missing and the file (re)written with
//! mode 0644 in `configparser`'s format; list values become one `key=value` line per item
//! and `Environment` items `{key, value}` become `Environment="KEY=VALUE"`.

use super::configparser::{check_file_name, unit_from_config, write_dropin, Existing};
use super::util::InOrder;
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub unit: String,
    pub dropin: String,
    pub config: InOrder<Config>,
    #[serde(rename = "unit-type", default)]
    pub unit_type: UnitType,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum UnitType {
    #[default]
    System,
    Global,
}

/// The drop-in's sections and keys; written in the manifest's order (see [`InOrder`]).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "Unit")]
    pub unit: Option<UnitSection>,
    #[serde(rename = "Service")]
    pub service: Option<ServiceSection>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct UnitSection {
    pub condition_path_exists: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ServiceSection {
    pub environment: Option<Environment>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Environment {
    Line(String),
    List(Vec<EnvVar>),
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct SystemdUnit;

impl Stage for SystemdUnit {
    const NAME: &'static str = "org.osbuild.systemd.unit";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.unit.len() + 2 > 255 {
            return Err(StageError::Invalid(format!(
                "the {} unit drop-in directory exceeds the maximum filename length",
                options.unit
            )));
        }
        check_file_name("unit name", &options.unit)?;
        check_file_name("drop-in file name", &options.dropin)?;
        let base = match options.unit_type {
            UnitType::System => "/usr/lib/systemd/system",
            UnitType::Global => "/usr/lib/systemd/user",
        };
        let ini = unit_from_config(&options.config.value())?;
        let path = format!("{base}/{}.d/{}", options.unit, options.dropin);
        write_dropin(args, &path, &ini, Existing::Replace)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_dropin() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"unit": "a.service", "dropin": "e.conf", "unit-type": "global", "config": {
            "Service": {"Environment": [{"key": "A", "value": "1"}, {"key": "B", "value": "x y"}]},
            "Unit": {"ConditionPathExists": "/etc/x"}}});
        SystemdUnit::execute(&args(t.path(), opts)).unwrap();
        let text = std::fs::read_to_string(t.path().join("usr/lib/systemd/user/a.service.d/e.conf")).unwrap();
        assert_eq!(
            text,
            "[Service]\nEnvironment=\"A=1\"\nEnvironment=\"B=x y\"\n\n[Unit]\nConditionPathExists=/etc/x\n\n"
        );
        let opts = json!({"unit": "a.service", "dropin": "s.conf", "config": {"Service": {"Environment": "A=1"}}});
        SystemdUnit::execute(&args(t.path(), opts)).unwrap();
        let text = std::fs::read_to_string(t.path().join("usr/lib/systemd/system/a.service.d/s.conf")).unwrap();
        assert_eq!(text, "[Service]\nEnvironment=A=1\n\n");
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let long = format!("{}.service", "a".repeat(250));
        let e =
            SystemdUnit::execute(&args(t.path(), json!({"unit": long, "dropin": "a.conf", "config": {}}))).unwrap_err();
        assert!(e.to_string().contains("exceeds the maximum filename length"), "{e}");
        let e = SystemdUnit::execute(&args(
            t.path(),
            json!({"unit": "a.service", "dropin": "a.conf", "config": {"Install": {}}}),
        ));
        assert!(crate::error_chain(&e.unwrap_err()).contains("unknown field `Install`"));
    }
}
