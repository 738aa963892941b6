//! `org.osbuild.dnf-automatic.config`: settings in `/etc/dnf/automatic.conf`.
//!
//! As upstream: merged the way Python's `iniparse` does it (see [`super::ini`]), booleans
//! written as `yes`/`no`; a missing file is created (its directory must exist), an existing
//! one keeps its mode. Without `config` nothing is touched.

use super::configparser::string_sections;
use super::ini::Ini;
use super::util::{tree_path, typed_in_order, write_file};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub config: Option<Config>,
}

/// Sections and their options in manifest order, as strings.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Config(Vec<(String, Vec<(String, String)>)>);

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ConfigCheck {
    commands: Option<CommandsCheck>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CommandsCheck {
    apply_updates: Option<bool>,
    upgrade_type: Option<UpgradeType>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum UpgradeType {
    Default,
    Security,
}

impl TryFrom<Map<String, Value>> for Config {
    type Error = String;
    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let (_, map) = typed_in_order::<ConfigCheck>(Value::Object(map)).map_err(|e| e.to_string())?;
        let value = |v: Value| match v {
            Value::Bool(b) => (if b { "yes" } else { "no" }).to_owned(),
            Value::String(s) => s,
            other => other.to_string(),
        };
        Ok(Config(string_sections(map, value)))
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct DnfAutomaticConfig;

impl Stage for DnfAutomaticConfig {
    const NAME: &'static str = "org.osbuild.dnf-automatic.config";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let Some(config) = options.config else { return Ok(None) };
        let path = tree_path(args, "/etc/dnf/automatic.conf", true)?;
        let mut ini = Ini::read(&path, "/etc/dnf/automatic.conf")?.unwrap_or_else(|| {
            println!(
                "Warning: DNF automatic configuration file '/etc/dnf/automatic.conf' does not exist, will create a new one."
            );
            Ini::default()
        });
        ini.merge(&config.0);
        write_file(&path, ini.render().as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn edits_existing_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("etc/dnf/automatic.conf");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "[commands]\n#  What kind of upgrade\nupgrade_type = default\napply_updates = no\n\n[emitters]\nemit_via = stdio\n").unwrap();
        DnfAutomaticConfig::execute(&args(
            t.path(),
            json!({"config": {"commands": {"apply_updates": true, "upgrade_type": "security"}}}),
        ))
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "[commands]\n#  What kind of upgrade\nupgrade_type = security\napply_updates = yes\n\n[emitters]\nemit_via = stdio\n"
        );
    }

    #[test]
    fn creates_file_and_refuses_bad_options() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc/dnf")).unwrap();
        DnfAutomaticConfig::execute(&args(t.path(), json!({}))).unwrap();
        assert!(!t.path().join("etc/dnf/automatic.conf").exists());
        DnfAutomaticConfig::execute(&args(t.path(), json!({"config": {"commands": {"apply_updates": false}}})))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/dnf/automatic.conf")).unwrap(),
            "[commands]\napply_updates = no"
        );
        let e = error_chain(
            &DnfAutomaticConfig::execute(&args(t.path(), json!({"config": {"commands": {"upgrade_type": "all"}}})))
                .unwrap_err(),
        );
        assert!(e.contains("unknown variant `all`"), "{e}");
    }
}
