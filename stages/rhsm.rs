//! `org.osbuild.rhsm`: configure subscription-manager and its DNF/YUM plugins.
//!
//! As upstream, files are edited the way Python's `iniparse` does it (see [`super::ini`])
//! and must already exist (they come with the packages): `/etc/dnf/plugins/<plugin>.conf`
//! and `/etc/yum/pluginconf.d/<plugin>.conf` get `enabled` (`0`/`1`) in `[main]` (added if
//! missing); `/etc/rhsm/rhsm.conf` gets the given options (booleans as `0`/`1`) in sections
//! that must exist. Empty option objects leave their file alone.

use super::configparser::string_sections;
use super::ini::Ini;
use super::util::{tree_path, typed_in_order, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(rename = "dnf-plugins", default)]
    pub dnf_plugins: Plugins,
    #[serde(rename = "yum-plugins", default)]
    pub yum_plugins: Plugins,
    #[serde(rename = "subscription-manager", default)]
    pub subscription_manager: SubscriptionManager,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugins {
    #[serde(rename = "product-id")]
    pub product_id: Option<Plugin>,
    #[serde(rename = "subscription-manager")]
    pub subscription_manager: Option<Plugin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    pub enabled: Option<bool>,
}

/// Sections and options in manifest order (only the ones upstream's schema knows).
#[derive(Debug, Default, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct SubscriptionManager(Vec<(String, Vec<(String, String)>)>);

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SmCheck {
    rhsm: Option<RhsmCheck>,
    rhsmcertd: Option<RhsmcertdCheck>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RhsmCheck {
    manage_repos: Option<bool>,
    auto_enable_yum_plugins: Option<bool>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RhsmcertdCheck {
    auto_registration: Option<bool>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for SubscriptionManager {
    type Error = String;
    fn try_from(map: serde_json::Map<String, Value>) -> Result<Self, String> {
        let (_, map) = typed_in_order::<SmCheck>(Value::Object(map)).map_err(|e| e.to_string())?;
        let value = |v: Value| if v.as_bool() == Some(true) { "1".to_owned() } else { "0".to_owned() };
        Ok(SubscriptionManager(string_sections(map, value)))
    }
}

fn read_ini(args: &StageArgs, file: &str, what: &str) -> Result<(std::path::PathBuf, Ini), StageError> {
    let path = tree_path(args, file, true)?;
    let ini = Ini::read(&path, file)?
        .ok_or_else(|| StageError::Invalid(format!("{what} configuration file '{file}' does not exist")))?;
    Ok((path, ini))
}

fn configure_plugins(args: &StageArgs, dir: &str, plugins: &Plugins) -> Result<(), StageError> {
    for (name, plugin) in [("product-id", &plugins.product_id), ("subscription-manager", &plugins.subscription_manager)]
    {
        let Some(Plugin { enabled: Some(enabled) }) = plugin else { continue };
        let (path, mut ini) = read_ini(args, &format!("/etc/{dir}/{name}.conf"), name)?;
        if !ini.has_section("main") {
            ini.add_section("main");
        }
        ini.set("main", "enabled", if *enabled { "1" } else { "0" });
        write_file(&path, ini.render().as_bytes(), 0o644)?;
    }
    Ok(())
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Rhsm;

impl Stage for Rhsm {
    const NAME: &'static str = "org.osbuild.rhsm";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        configure_plugins(args, "dnf/plugins", &options.dnf_plugins)?;
        configure_plugins(args, "yum/pluginconf.d", &options.yum_plugins)?;
        let sm = &options.subscription_manager.0;
        if !sm.is_empty() {
            let (path, mut ini) = read_ini(args, "/etc/rhsm/rhsm.conf", "RHSM")?;
            for (section, values) in sm {
                for (key, value) in values {
                    if !ini.set(section, key, value) {
                        return Err(StageError::Invalid(format!("/etc/rhsm/rhsm.conf has no section '{section}'")));
                    }
                }
            }
            write_file(&path, ini.render().as_bytes(), 0o644)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain;
    use crate::testutil::args;
    use serde_json::json;

    fn file(root: &std::path::Path, path: &str, text: &str) {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn edits_plugins_and_rhsm_conf() {
        let t = tempfile::tempdir().unwrap();
        file(t.path(), "etc/dnf/plugins/product-id.conf", "[main]\nenabled=1\n");
        file(t.path(), "etc/yum/pluginconf.d/subscription-manager.conf", "# nothing\n");
        file(
            t.path(),
            "etc/rhsm/rhsm.conf",
            "[rhsm]\n# Manage\nmanage_repos = 1\n\n[rhsmcertd]\ncertCheckInterval = 240\n",
        );
        let opts = json!({
            "dnf-plugins": {"product-id": {"enabled": false}, "subscription-manager": {}},
            "yum-plugins": {"subscription-manager": {"enabled": true}},
            "subscription-manager": {"rhsm": {"manage_repos": false}, "rhsmcertd": {"auto_registration": true}}
        });
        Rhsm::execute(&args(t.path(), opts)).unwrap();
        let read = |p: &str| std::fs::read_to_string(t.path().join(p)).unwrap();
        assert_eq!(read("etc/dnf/plugins/product-id.conf"), "[main]\nenabled=0\n");
        assert_eq!(read("etc/yum/pluginconf.d/subscription-manager.conf"), "# nothing\n\n\n[main]\nenabled = 1");
        assert_eq!(
            read("etc/rhsm/rhsm.conf"),
            "[rhsm]\n# Manage\nmanage_repos = 0\n\n[rhsmcertd]\ncertCheckInterval = 240\nauto_registration = 1\n"
        );
    }

    #[test]
    fn missing_files_and_sections_are_errors() {
        let t = tempfile::tempdir().unwrap();
        let e = error_chain(
            &Rhsm::execute(&args(t.path(), json!({"dnf-plugins": {"product-id": {"enabled": true}}}))).unwrap_err(),
        );
        assert_eq!(e, "product-id configuration file '/etc/dnf/plugins/product-id.conf' does not exist");
        file(t.path(), "etc/rhsm/rhsm.conf", "[rhsm]\n");
        let e = error_chain(
            &Rhsm::execute(&args(
                t.path(),
                json!({"subscription-manager": {"rhsmcertd": {"auto_registration": true}}}),
            ))
            .unwrap_err(),
        );
        assert_eq!(e, "/etc/rhsm/rhsm.conf has no section 'rhsmcertd'");
        let e = error_chain(
            &Rhsm::execute(&args(t.path(), json!({"subscription-manager": {"rhsm": {"foo": true}}}))).unwrap_err(),
        );
        assert!(e.contains("unknown field `foo`"), "{e}");
    }
}
