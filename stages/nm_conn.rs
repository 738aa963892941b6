//! `org.osbuild.nm.conn`: write a NetworkManager connection profile (keyfile format).
//!
//! As upstream: the file is `path` if given, else
//! `/usr/lib/NetworkManager/system-connections/<filename>`; missing directories are created
//! (0755); the file gets mode 0600 (also when it existed) and holds the sections and keys in
//! the order the options give them, written the way Python's configparser does (see
//! [`super::configparser`]).
//!
//! Deviation: a value that is a JSON object (possible only under the free-form `ethernet`
//! section) is an error here; upstream would write Python's dict repr into the file.

use super::configparser::{set_py_values, Ini};
use super::util::{create_parents, tree_path, typed_in_order, write_file_chmod, Ordered};
use super::{StageError, StageResult};
use crate::Stage;
use crate::StageArgs;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const USR_PATH: &str = "/usr/lib/NetworkManager/system-connections";

/// The options, checked against upstream's interface, with the settings kept in order.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Value")]
pub struct Options {
    pub filename: Option<String>,
    pub path: Option<String>,
    pub settings: Ordered<Ordered<Value>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Checked {
    filename: Option<String>,
    path: Option<String>,
    settings: Settings,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    connection: Connection,
    ipv4: Option<Ipv4>,
    ipv6: Option<Ipv6>,
    ethernet: Option<Ethernet>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Connection {
    uuid: String,
    id: String,
    #[serde(rename = "type")]
    kind: EthernetType,
    autoconnect: Option<bool>,
    interface_name: Option<String>,
    autoconnect_priority: Option<serde_json::Number>,
}

#[derive(Deserialize, Serialize)]
enum EthernetType {
    #[serde(rename = "802-3-ethernet")]
    Long,
    #[serde(rename = "ethernet")]
    Short,
}

#[derive(Deserialize, Serialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
enum Ipv4 {
    Ignore {},
    Auto {
        #[serde(rename = "dns-search")]
        dns_search: Option<String>,
    },
    Manual {
        address: Option<Vec<String>>,
    },
}

#[derive(Deserialize, Serialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
enum Ipv6 {
    Ignore {},
}

#[derive(Deserialize, Serialize)]
struct Ethernet {
    #[serde(rename = "mac-address")]
    mac_address: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl TryFrom<Value> for Options {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        let (checked, map) = typed_in_order::<Checked>(v).map_err(|e| e.to_string())?;
        let v = Value::Object(map);
        match (&checked.filename, &checked.path) {
            (Some(_), Some(_)) => return Err("give either `filename` or `path`, not both".into()),
            (None, None) => return Err("missing field `filename` (or `path`)".into()),
            _ => {}
        }
        let settings = Ordered::deserialize(&v["settings"]).map_err(|e| e.to_string())?;
        Ok(Options { filename: checked.filename, path: checked.path, settings })
    }
}

fn render(settings: &Ordered<Ordered<Value>>) -> Result<String, String> {
    let mut ini = Ini::default();
    for (section, values) in &settings.0 {
        set_py_values(&mut ini, section, values.0.iter().map(|(k, v)| (k, v)))?;
    }
    Ok(ini.render())
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct NmConn;

impl Stage for NmConn {
    const NAME: &'static str = "org.osbuild.nm.conn";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let file = match (&options.path, &options.filename) {
            (Some(p), _) if !p.is_empty() => p.clone(),
            (_, Some(f)) if !f.contains('/') => format!("{USR_PATH}/{f}"),
            (_, f) => return Err(StageError::Invalid(format!("invalid file name {f:?}"))),
        };
        let text = render(&options.settings).map_err(StageError::Invalid)?;
        let path = tree_path(args, &file, true)?;
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

    fn settings() -> Value {
        json!({"connection": {"type": "ethernet", "id": "static-conn", "uuid": "5fb8f75a", "interface-name": "eth0",
                              "autoconnect-priority": 0, "autoconnect": true},
               "ipv4": {"method": "manual", "address": ["10.23.0.3/24", "10.23.0.4/24"]},
               "ipv6": {"method": "ignore"}})
    }

    #[test]
    fn writes_profile_in_option_order() {
        let t = tempfile::tempdir().unwrap();
        NmConn::execute(&args(t.path(), json!({"filename": "x.nmconnection", "settings": settings()}))).unwrap();
        let p = t.path().join("usr/lib/NetworkManager/system-connections/x.nmconnection");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "[connection]\ntype=ethernet\nid=static-conn\nuuid=5fb8f75a\ninterface-name=eth0\nautoconnect-priority=0\n\
             autoconnect=true\n\n[ipv4]\nmethod=manual\naddress=10.23.0.3/24,10.23.0.4/24\n\n[ipv6]\nmethod=ignore\n\n"
        );
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o600);
        let dir = t.path().join("usr/lib/NetworkManager");
        assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777, 0o755);
    }

    #[test]
    fn path_wins_and_existing_file_gets_0600() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("etc/x.conf");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        NmConn::execute(&args(t.path(), json!({"path": "/etc/x.conf", "settings": settings()}))).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o600);
        assert!(std::fs::read_to_string(&p).unwrap().starts_with("[connection]\n"));
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let e = |o: Value| crate::error_chain(&NmConn::execute(&args(t.path(), o)).unwrap_err());
        assert!(e(json!({"settings": settings()})).contains("missing field `filename`"));
        assert!(e(json!({"path": "/a", "filename": "b", "settings": settings()})).contains("not both"));
        let mut s = settings();
        s["ipv4"] = json!({"method": "dhcp"});
        assert!(e(json!({"path": "/a", "settings": s})).contains("unknown variant `dhcp`"));
        let mut s = settings();
        s["connection"]["mtu"] = json!(1500);
        assert!(e(json!({"path": "/a", "settings": s})).contains("unknown field `mtu`"));
        let mut s = settings();
        s["wifi"] = json!({});
        assert!(e(json!({"path": "/a", "settings": s})).contains("unknown field `wifi`"));
    }
}
