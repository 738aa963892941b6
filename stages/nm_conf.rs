//! `org.osbuild.nm.conf`: write a NetworkManager configuration file (`NetworkManager.conf`
//! or a `conf.d` drop-in).
//!
//! As upstream: missing directories are created (0755), the file gets mode 0600 (also when
//! it existed) and is written the way Python's configparser does (see [`super::configparser`]).
//! Sections come in option order; a section given as a list (`device`,
//! `global-dns-domain`) becomes one `[<section>-<name>]` per entry, or `[<section>]` for an
//! entry without a name; entries with the same name are merged.

use super::configparser::{set_py_values, Ini};
use super::util::{create_parents, tree_path, typed_in_order, write_file_chmod, Ordered};
use super::{StageError, StageResult};
use crate::Stage;
use crate::StageArgs;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The options, checked against upstream's interface, with the settings kept in order.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Value")]
pub struct Options {
    pub path: String,
    pub settings: Ordered<Value>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Checked {
    path: String,
    settings: Settings,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    main: Option<Main>,
    device: Option<NonEmpty<Named<Device>>>,
    global_dns_domain: Option<NonEmpty<NamedRequired<Dns>>>,
    keyfile: Option<Keyfile>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Main {
    no_auto_default: Option<NonEmpty<String>>,
    plugins: Option<NonEmpty<String>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Named<T> {
    name: Option<String>,
    config: T,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NamedRequired<T> {
    name: String,
    config: T,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Device {
    managed: Option<bool>,
    #[serde(rename = "wifi.scan-rand-mac-address")]
    scan_rand_mac_address: Option<bool>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Dns {
    servers: NonEmpty<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Keyfile {
    unmanaged_devices: Option<NonEmpty<String>>,
}

/// A list with at least one item.
#[derive(Deserialize, Serialize)]
#[serde(try_from = "Vec<T>")]
struct NonEmpty<T>(Vec<T>);

impl<T> TryFrom<Vec<T>> for NonEmpty<T> {
    type Error = &'static str;
    fn try_from(v: Vec<T>) -> Result<Self, Self::Error> {
        if v.is_empty() {
            Err("the list must not be empty")
        } else {
            Ok(NonEmpty(v))
        }
    }
}

impl TryFrom<Value> for Options {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        let (checked, map) = typed_in_order::<Checked>(v).map_err(|e| e.to_string())?;
        let v = Value::Object(map);
        let settings = Ordered::deserialize(&v["settings"]).map_err(|e| e.to_string())?;
        Ok(Options { path: checked.path, settings })
    }
}

fn set_all(ini: &mut Ini, section: &str, values: &Value) -> Result<(), String> {
    let values: Ordered<Value> = Ordered::deserialize(values).map_err(|e| e.to_string())?;
    set_py_values(ini, section, values.0.iter().map(|(k, v)| (k, v)))
}

fn render(settings: &Ordered<Value>) -> Result<String, String> {
    let mut ini = Ini::default();
    for (name, items) in &settings.0 {
        match items {
            Value::Object(_) => set_all(&mut ini, name, items)?,
            Value::Array(list) => {
                for item in list {
                    let section = match item.get("name").and_then(Value::as_str) {
                        Some(suffix) if !suffix.is_empty() => format!("{name}-{suffix}"),
                        _ => name.clone(),
                    };
                    set_all(&mut ini, &section, &item["config"])?;
                }
            }
            other => return Err(format!("invalid section type for {name}: {other}")),
        }
    }
    Ok(ini.render())
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct NmConf;

impl Stage for NmConf {
    const NAME: &'static str = "org.osbuild.nm.conf";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let text = render(&options.settings).map_err(StageError::Invalid)?;
        let path = tree_path(args, &options.path, true)?;
        create_parents(&path)?;
        write_file_chmod(&path, text.as_bytes(), 0o600)?;
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
    fn writes_plain_and_named_sections() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"path": "/etc/NetworkManager/NetworkManager.conf", "settings": {
            "main": {"plugins": ["keyfile"], "no-auto-default": ["*"]},
            "global-dns-domain": [{"name": "*", "config": {"servers": ["8.8.8.8", "1.1.1.1"]}}],
            "device": [{"config": {"wifi.scan-rand-mac-address": false}}, {"name": "eth", "config": {"managed": true}}]}});
        NmConf::execute(&args(t.path(), opts)).unwrap();
        let p = t.path().join("etc/NetworkManager/NetworkManager.conf");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "[main]\nplugins=keyfile\nno-auto-default=*\n\n[global-dns-domain-*]\nservers=8.8.8.8,1.1.1.1\n\n\
             [device]\nwifi.scan-rand-mac-address=false\n\n[device-eth]\nmanaged=true\n\n"
        );
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o600);
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let e = |o: Value| crate::error_chain(&NmConf::execute(&args(t.path(), o)).unwrap_err());
        assert!(e(json!({"settings": {}})).contains("missing field `path`"));
        assert!(e(json!({"path": "/x", "settings": {"logging": {}}})).contains("unknown field `logging`"));
        assert!(e(json!({"path": "/x", "settings": {"main": {"plugins": []}}})).contains("must not be empty"));
        assert!(e(json!({"path": "/x", "settings": {"global-dns-domain": [{"config": {"servers": ["a"]}}]}}))
            .contains("missing field `name`"));
    }
}
