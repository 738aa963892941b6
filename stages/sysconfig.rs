//! `org.osbuild.sysconfig`: write `/etc/sysconfig/{kernel,network,livesys,desktop}` and
//! `/etc/sysconfig/network-scripts/ifcfg-<name>`, as upstream does: `KEY=value` lines in the
//! manifest's order, booleans as `yes`/`no` (quoted in ifcfg files), `/etc/sysconfig`
//! created if missing.
//!
//! Upstream's `livesys` and `desktop` writers are missing Python's f-string prefix, so they
//! write the placeholder text itself (`livesys_session="{livesys_options['session']}"`,
//! `PREFERRED={desktop_options['preferred']}`, …) instead of the values. We write the same
//! bytes, so trees stay identical to upstream's; both files are chowned to root and 0644.

use super::util::{create_parents, tree_path, write_file, Ordered};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub kernel: Option<Kernel>,
    #[serde(default)]
    pub network: Option<Network>,
    #[serde(default, rename = "network-scripts")]
    pub network_scripts: Option<NetworkScripts>,
    #[serde(default)]
    pub livesys: Option<Livesys>,
    #[serde(default)]
    pub desktop: Option<Desktop>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    QuotedBool,
    Str,
    Quoted,
}

/// Render an ordered object whose keys must be among `spec` (key, kind, variable name).
fn render(o: &Ordered<Value>, spec: &[(&str, Kind, &str)], what: &str) -> Result<String, String> {
    let mut out = String::new();
    for (key, value) in &o.0 {
        let Some((_, kind, var)) = spec.iter().find(|(k, _, _)| k == key) else {
            return Err(format!("unknown property {key} specified for sysconfig {what} config"));
        };
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let line = match (kind, value) {
            (Kind::Bool, Value::Bool(b)) => format!("{var}={}\n", yes_no(*b)),
            (Kind::QuotedBool, Value::Bool(b)) => format!("{var}=\"{}\"\n", yes_no(*b)),
            (Kind::Str, Value::String(s)) => format!("{var}={s}\n"),
            (Kind::Quoted, Value::String(s)) => format!("{var}=\"{s}\"\n"),
            (Kind::Bool | Kind::QuotedBool, _) => return Err(format!("sysconfig {what} {key} must be a boolean")),
            (Kind::Str | Kind::Quoted, _) => return Err(format!("sysconfig {what} {key} must be a string")),
        };
        out.push_str(&line);
    }
    Ok(out)
}

const KERNEL: &[(&str, Kind, &str)] =
    &[("update_default", Kind::Bool, "UPDATEDEFAULT"), ("default_kernel", Kind::Str, "DEFAULTKERNEL")];
const NETWORK: &[(&str, Kind, &str)] =
    &[("networking", Kind::Bool, "NETWORKING"), ("no_zero_conf", Kind::Bool, "NOZEROCONF")];
const BOOTPROTO: &[&str] = &["none", "bootp", "dhcp", "static", "ibft", "autoip", "shared"];
const TYPES: &[&str] = &["Ethernet", "Wireless", "InfiniBand", "Bridge", "Bond", "Vlan"];
const IFCFG: &[(&str, Kind, &str)] = &[
    ("device", Kind::Quoted, "DEVICE"),
    ("bootproto", Kind::Quoted, "BOOTPROTO"),
    ("onboot", Kind::QuotedBool, "ONBOOT"),
    ("type", Kind::Quoted, "TYPE"),
    ("userctl", Kind::QuotedBool, "USERCTL"),
    ("peerdns", Kind::QuotedBool, "PEERDNS"),
    ("ipv6init", Kind::QuotedBool, "IPV6INIT"),
];

/// `kernel` options, rendered in document order.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Ordered<Value>")]
pub struct Kernel(String);

impl TryFrom<Ordered<Value>> for Kernel {
    type Error = String;
    fn try_from(o: Ordered<Value>) -> Result<Self, String> {
        render(&o, KERNEL, "kernel").map(Kernel)
    }
}

/// `network` options, rendered in document order.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Ordered<Value>")]
pub struct Network(String);

impl TryFrom<Ordered<Value>> for Network {
    type Error = String;
    fn try_from(o: Ordered<Value>) -> Result<Self, String> {
        render(&o, NETWORK, "network").map(Network)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkScripts {
    #[serde(default)]
    pub ifcfg: Option<Ordered<Ifcfg>>,
}

/// One interface's ifcfg settings, rendered in document order.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Ordered<Value>")]
pub struct Ifcfg(String);

impl TryFrom<Ordered<Value>> for Ifcfg {
    type Error = String;
    fn try_from(o: Ordered<Value>) -> Result<Self, String> {
        for (key, allowed) in [("bootproto", BOOTPROTO), ("type", TYPES)] {
            if let Some((_, Value::String(v))) = o.0.iter().find(|(k, _)| k == key) {
                if !allowed.contains(&v.as_str()) {
                    return Err(format!("sysconfig network-scripts/ifcfg {key} {v} is not one of {allowed:?}"));
                }
            }
        }
        render(&o, IFCFG, "network-scripts/ifcfg").map(Ifcfg)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Livesys {
    /// Only validated: required, but upstream writes a placeholder instead of it (see the
    /// module documentation).
    #[serde(rename = "session")]
    pub _session: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Desktop {
    pub preferred: Option<String>,
    pub displaymanager: Option<String>,
}

/// Upstream's interface names: no `/`, `:` or whitespace, no leading `.`, at most 15 characters.
fn ifname_is_valid(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    let ok = |c: &char| !matches!(c, '/' | ':') && !c.is_whitespace();
    !chars.is_empty() && chars.len() <= 15 && chars.iter().all(ok) && chars[0] != '.'
}

fn write_root_0644(args: &StageArgs, rel: &str, text: &str) -> Result<(), StageError> {
    let path = tree_path(args, rel, true)?;
    write_file(&path, text.as_bytes(), 0o644)?;
    std::os::unix::fs::lchown(&path, Some(0), Some(0)).map_err(StageError::io("cannot chown", &path))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(StageError::io("cannot chmod", &path))
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Sysconfig;

impl Stage for Sysconfig {
    const NAME: &'static str = "org.osbuild.sysconfig";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let sysconfig = tree_path(args, "/etc/sysconfig/", true)?;
        create_parents(&sysconfig.join("x"))?;
        let write = |name: &str, text: &str| -> Result<(), StageError> {
            let path = tree_path(args, format!("/etc/sysconfig/{name}"), true)?;
            write_file(&path, text.as_bytes(), 0o644)
        };
        if let Some(k) = options.kernel.as_ref().filter(|k| !k.0.is_empty()) {
            write("kernel", &k.0)?;
        }
        if let Some(n) = options.network.as_ref().filter(|n| !n.0.is_empty()) {
            write("network", &n.0)?;
        }
        // as upstream, an empty `network-scripts` object does nothing, `{"ifcfg": {}}` makes the directory
        if let Some(ifcfg) = options.network_scripts.as_ref().and_then(|ns| ns.ifcfg.as_ref()) {
            let dir = tree_path(args, "/etc/sysconfig/network-scripts", true)?;
            create_parents(&dir.join("x"))?;
            for (ifname, cfg) in &ifcfg.0 {
                if !ifname_is_valid(ifname) {
                    return Err(StageError::Invalid(format!("invalid interface name {ifname}")));
                }
                if !cfg.0.is_empty() {
                    write(&format!("network-scripts/ifcfg-{ifname}"), &cfg.0)?;
                }
            }
        }
        if options.livesys.is_some() {
            write_root_0644(args, "/etc/sysconfig/livesys", "livesys_session=\"{livesys_options['session']}\"\n")?;
        }
        if let Some(d) = options.desktop.as_ref().filter(|d| d.preferred.is_some() || d.displaymanager.is_some()) {
            let mut text = String::new();
            if d.preferred.is_some() {
                text.push_str("PREFERRED={desktop_options['preferred']}\n");
            }
            if d.displaymanager.is_some() {
                text.push_str("DISPLAYMANAGER={desktop_options['displaymanager']}\n");
            }
            write_root_0644(args, "/etc/sysconfig/desktop", &text)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_files_in_document_order() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({
            "kernel": {"default_kernel": "kernel", "update_default": true},
            "network": {"networking": true, "no_zero_conf": false},
            "network-scripts": {"ifcfg": {"eth0": {"device": "eth0", "onboot": true, "type": "Ethernet"}, "eth1": {}}},
            "livesys": {"session": "gnome"},
            "desktop": {"preferred": "/usr/bin/gnome"}});
        Sysconfig::execute(&args(t.path(), opts)).unwrap();
        let read = |p: &str| std::fs::read_to_string(t.path().join("etc/sysconfig").join(p)).unwrap();
        assert_eq!(read("kernel"), "DEFAULTKERNEL=kernel\nUPDATEDEFAULT=yes\n");
        assert_eq!(read("network"), "NETWORKING=yes\nNOZEROCONF=no\n");
        assert_eq!(read("network-scripts/ifcfg-eth0"), "DEVICE=\"eth0\"\nONBOOT=\"yes\"\nTYPE=\"Ethernet\"\n");
        assert!(!t.path().join("etc/sysconfig/network-scripts/ifcfg-eth1").exists());
        assert_eq!(read("livesys"), "livesys_session=\"{livesys_options['session']}\"\n");
        assert_eq!(read("desktop"), "PREFERRED={desktop_options['preferred']}\n");
    }

    #[test]
    fn empty_options_only_create_the_directory() {
        let t = tempfile::tempdir().unwrap();
        Sysconfig::execute(&args(t.path(), json!({"kernel": {}, "network-scripts": {}, "desktop": {}}))).unwrap();
        assert_eq!(std::fs::read_dir(t.path().join("etc/sysconfig")).unwrap().count(), 0);
        Sysconfig::execute(&args(t.path(), json!({"network-scripts": {"ifcfg": {}}}))).unwrap();
        assert!(t.path().join("etc/sysconfig/network-scripts").is_dir());
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let e = Sysconfig::execute(&args(t.path(), json!({"kernel": {"nope": 1}}))).unwrap_err();
        let msg = crate::error_chain(&e);
        assert!(msg.contains("unknown property nope specified for sysconfig kernel config"), "{msg}");
        let e = Sysconfig::execute(&args(
            t.path(),
            json!({"network-scripts": {"ifcfg": {"eth0": {"bootproto": "magic"}}}}),
        ));
        assert!(crate::error_chain(&e.unwrap_err()).contains("bootproto magic"));
        assert!(!ifname_is_valid("a/b") && !ifname_is_valid("..x") && ifname_is_valid("eth0"));
    }
}
