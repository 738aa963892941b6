//! `org.osbuild.cloud-init`: write a cloud-init drop-in, `/etc/cloud/cloud.cfg.d/<filename>`.
//!
//! As upstream: the config is written as YAML the way PyYAML's `yaml.dump(...,
//! default_flow_style=False)` writes it (keys sorted, block style; see [`super::pyyaml`]),
//! except `datasource_list`, which cloud-init needs on one line and so is a flow list
//! (`datasource_list: [Azure]`). The file gets mode 0644; the directory must exist.

use super::pyyaml;
use super::util::NonEmptyObject as NonEmpty;
use super::util::{tree_path, typed_in_order, write_file};
use super::{StageError, StageResult};
use crate::Stage;
use crate::StageArgs;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The options, checked against upstream's interface, with the config kept as JSON.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Value")]
pub struct Options {
    pub filename: String,
    pub config: Map<String, Value>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Checked {
    filename: String,
    config: Config,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Config {
    ssh_pwauth: Option<bool>,
    system_info: Option<NonEmpty<SystemInfo>>,
    reporting: Option<NonEmpty<Reporting>>,
    datasource_list: Option<Vec<Datasource>>,
    datasource: Option<NonEmpty<Datasources>>,
    output: Option<NonEmpty<Output>>,
    network: Option<NonEmpty<Network>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SystemInfo {
    default_user: Option<NonEmpty<DefaultUser>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DefaultUser {
    name: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Reporting {
    logging: Option<Handler>,
    telemetry: Option<Handler>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Handler {
    #[serde(rename = "type")]
    kind: Option<HandlerType>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum HandlerType {
    Log,
    Print,
    Webhook,
    Hyperv,
}

#[derive(Deserialize, Serialize)]
enum Datasource {
    Azure,
    Ec2,
    Oracle,
    NoCloud,
    #[serde(rename = "WSL")]
    Wsl,
    None,
}

/// Upstream allows other datasources than Azure, with any settings.
#[derive(Deserialize, Serialize)]
struct Datasources {
    #[serde(rename = "Azure")]
    azure: Option<NonEmpty<Azure>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Deserialize, Serialize)]
struct Azure {
    apply_network_config: Option<bool>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Deserialize, Serialize)]
struct Output {
    init: Option<String>,
    config: Option<String>,
    #[serde(rename = "final")]
    final_: Option<String>,
    all: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Deserialize, Serialize)]
struct Network {
    config: Option<NetworkConfig>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum NetworkConfig {
    Disabled,
}

impl TryFrom<Value> for Options {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        let (checked, map) = typed_in_order::<Checked>(v).map_err(|e| e.to_string())?;
        let v = Value::Object(map);
        let config = v["config"].as_object().cloned().unwrap_or_default();
        if config.is_empty() {
            return Err("config must not be empty".into());
        }
        let name = &checked.filename;
        // upstream's pattern: 1 to 251 word characters, dots or dashes, then `.cfg`
        let valid = name.strip_suffix(".cfg").is_some_and(|stem| {
            (1..=251).contains(&stem.chars().count())
                && stem.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
        });
        if !valid {
            return Err(format!("invalid file name {name:?}: must be a '*.cfg' name"));
        }
        Ok(Options { filename: checked.filename, config })
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct CloudInit;

impl Stage for CloudInit {
    const NAME: &'static str = "org.osbuild.cloud-init";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let text = pyyaml::dump(&options.config, &["datasource_list"]).map_err(StageError::Invalid)?;
        let path = tree_path(args, format!("/etc/cloud/cloud.cfg.d/{}", options.filename), true)?;
        write_file(&path, text.as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_sorted_yaml() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("etc/cloud/cloud.cfg.d");
        std::fs::create_dir_all(&dir).unwrap();
        let opts = json!({"filename": "91-azure.cfg",
                          "config": {"datasource_list": ["Azure"], "datasource": {"Azure": {"apply_network_config": false}}}});
        CloudInit::execute(&args(t.path(), opts)).unwrap();
        let p = dir.join("91-azure.cfg");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "datasource:\n  Azure:\n    apply_network_config: false\ndatasource_list: [Azure]\n"
        );
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o644);
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let e = |o: Value| crate::error_chain(&CloudInit::execute(&args(t.path(), o)).unwrap_err());
        assert!(e(json!({"filename": "x.cfg", "config": {"users": []}})).contains("unknown field `users`"));
        assert!(e(json!({"filename": "x.cfg", "config": {}})).contains("config must not be empty"));
        assert!(e(json!({"filename": "x.yaml", "config": {"ssh_pwauth": true}})).contains("invalid file name"));
        assert!(
            e(json!({"filename": "x.cfg", "config": {"datasource_list": ["GCE"]}})).contains("unknown variant `GCE`")
        );
        assert!(e(json!({"filename": "x.cfg", "config": {"system_info": {}}})).contains("must not be empty"));
        assert!(e(json!({"filename": "x.cfg", "config": {"ssh_pwauth": true}})).starts_with("cannot write"));
    }
}
