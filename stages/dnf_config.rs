//! `org.osbuild.dnf.config`: persistent DNF variables and `/etc/dnf/dnf.conf` settings.
//!
//! As upstream: each variable is written to `/etc/dnf/vars/<name>` as `<value>\n` (the
//! directory must exist); the `config` sections are merged into `dnf.conf` the way Python's
//! `iniparse` does it (see [`super::ini`]): existing lines kept, existing options replaced in
//! place, new ones appended to their section, lists joined by `, `. A missing `dnf.conf` is
//! created (with `/etc/dnf`); the file always ends up with mode 0644. An empty `config` leaves
//! `dnf.conf` alone.

use super::configparser::string_sections;
use super::ini::{check_interpolation, Ini};
use super::util::{create_parents, tree_path, typed_in_order, write_file, write_file_chmod};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub variables: Vec<Variable>,
    pub config: Option<Config>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    pub name: String,
    pub value: String,
}

/// Sections and their options in manifest order, as strings.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Config(Vec<(String, Vec<(String, String)>)>);

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ConfigCheck {
    main: Option<MainCheck>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct MainCheck {
    ip_resolve: Option<IpResolve>,
    tsflags: Option<Vec<TsFlag>>,
}

#[derive(Deserialize, Serialize)]
enum IpResolve {
    #[serde(rename = "4")]
    Four,
    IPv4,
    #[serde(rename = "6")]
    Six,
    IPv6,
}

#[derive(Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum TsFlag {
    Noscripts,
    Test,
    Notriggers,
    Nodocs,
    Justdb,
    Nocontexts,
    Nocaps,
    Nocrypto,
}

impl TryFrom<Map<String, Value>> for Config {
    type Error = String;
    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let (check, map) = typed_in_order::<ConfigCheck>(Value::Object(map)).map_err(|e| e.to_string())?;
        if let Some(flags) = check.main.as_ref().and_then(|m| m.tsflags.as_ref()) {
            if flags.is_empty() || flags.iter().enumerate().any(|(i, f)| flags[..i].contains(f)) {
                return Err("tsflags must hold at least one flag, each once".into());
            }
        }
        let value = |v: Value| match v {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
            Value::String(s) => s,
            other => other.to_string(),
        };
        Ok(Config(string_sections(map, value)))
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct DnfConfig;

impl Stage for DnfConfig {
    const NAME: &'static str = "org.osbuild.dnf.config";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        for var in &options.variables {
            if var.name.is_empty()
                || !var.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(StageError::Invalid(format!(
                    "variable name '{}' may only hold lowercase letters, digits and _",
                    var.name
                )));
            }
            let path = tree_path(args, format!("/etc/dnf/vars/{}", var.name), true)?;
            write_file(&path, format!("{}\n", var.value).as_bytes(), 0o644)?;
        }
        let Some(config) = options.config.filter(|c| !c.0.is_empty()) else { return Ok(None) };
        let path = tree_path(args, "/etc/dnf/dnf.conf", true)?;
        let mut ini = match Ini::read(&path, "/etc/dnf/dnf.conf")? {
            Some(ini) => ini,
            None => {
                println!("Warning: DNF configuration file '/etc/dnf/dnf.conf' does not exist, will create it.");
                create_parents(&path)?;
                Ini::default()
            }
        };
        for (_, values) in &config.0 {
            for (_, value) in values {
                check_interpolation(value)?;
            }
        }
        ini.merge(&config.0);
        write_file_chmod(&path, ini.render().as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain;
    use crate::testutil::args;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn variables_and_config() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc/dnf/vars")).unwrap();
        let conf = t.path().join("etc/dnf/dnf.conf");
        std::fs::write(&conf, "[main]\ngpgcheck=1\nip_resolve=6\nskip_if_unavailable=False\n").unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let opts = json!({"variables": [{"name": "releasever", "value": "8.4"}],
                          "config": {"main": {"tsflags": ["nodocs", "justdb"], "ip_resolve": "4"}}});
        DnfConfig::execute(&args(t.path(), opts)).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("etc/dnf/vars/releasever")).unwrap(), "8.4\n");
        assert_eq!(
            std::fs::read_to_string(&conf).unwrap(),
            "[main]\ngpgcheck=1\nip_resolve=4\nskip_if_unavailable=False\ntsflags = nodocs, justdb\n"
        );
        assert_eq!(std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn creates_missing_dnf_conf() {
        let t = tempfile::tempdir().unwrap();
        DnfConfig::execute(&args(t.path(), json!({"config": {"main": {"ip_resolve": "IPv6"}}}))).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("etc/dnf/dnf.conf")).unwrap(), "[main]\nip_resolve = IPv6");
    }

    #[test]
    fn bad_options_are_refused() {
        let t = tempfile::tempdir().unwrap();
        for (opts, want) in [
            (json!({"config": {"main": {"ip_resolve": "5"}}}), "unknown variant `5`"),
            (json!({"config": {"other": {}}}), "unknown field `other`"),
            (json!({"variables": [{"name": "Bad", "value": "x"}]}), "may only hold"),
        ] {
            let e = error_chain(&DnfConfig::execute(&args(t.path(), opts)).unwrap_err());
            assert!(e.contains(want), "{e}");
        }
    }
}
