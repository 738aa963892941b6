//! `org.osbuild.rpm.macros`: write an RPM macros file (e.g. `/etc/rpm/macros.image-language-conf`).
//!
//! As upstream: one `%<name> <value>\n` line per macro in the order the manifest gives them,
//! `_install_langs` joined with `:`; parent directories are created (0755), the file is
//! (re)written with mode 0644.

use super::util::{create_parents, tree_path, typed_in_order, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub macros: Macros,
}

/// The macros in manifest order; only the ones upstream's schema knows.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Macros(Vec<(String, String)>);

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Known {
    #[serde(rename = "_install_langs")]
    install_langs: Option<Vec<String>>,
    #[serde(rename = "_dbpath")]
    dbpath: Option<String>,
}

impl TryFrom<Map<String, Value>> for Macros {
    type Error = String;
    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let (_, map) = typed_in_order::<Known>(Value::Object(map)).map_err(|e| e.to_string())?;
        if map.is_empty() {
            return Err("macros must name at least one macro".into());
        }
        let mut out = Vec::new();
        for (k, v) in map {
            let value = match (k.as_str(), v) {
                ("_install_langs", Value::Array(langs)) => {
                    if langs.is_empty() {
                        return Err("_install_langs must name at least one language".into());
                    }
                    langs.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(":")
                }
                (_, Value::String(s)) => s,
                (_, other) => other.to_string(),
            };
            out.push((k, value));
        }
        Ok(Macros(out))
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct RpmMacros;

impl Stage for RpmMacros {
    const NAME: &'static str = "org.osbuild.rpm.macros";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let path = tree_path(args, options.filename.trim_start_matches('/'), true)?;
        if options.filename.trim_start_matches('/').is_empty() {
            return Err(StageError::Invalid("filename must name a file".into()));
        }
        create_parents(&path)?;
        let text: String = options.macros.0.iter().map(|(k, v)| format!("%{k} {v}\n")).collect();
        write_file(&path, text.as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_macros_in_order() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"filename": "/etc/rpm/macros.x", "macros": {"_install_langs": ["en_US", "de_DE"], "_dbpath": "/usr/lib/sysimage/rpm"}});
        RpmMacros::execute(&args(t.path(), opts)).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/rpm/macros.x")).unwrap(),
            "%_install_langs en_US:de_DE\n%_dbpath /usr/lib/sysimage/rpm\n"
        );
    }

    #[test]
    fn unknown_macro_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let e = RpmMacros::execute(&args(t.path(), json!({"filename": "/x", "macros": {"_foo": "1"}}))).unwrap_err();
        assert!(crate::error_chain(&e).contains("unknown field `_foo`"), "{e:?}");
        let e = RpmMacros::execute(&args(t.path(), json!({"filename": "/x", "macros": {}}))).unwrap_err();
        assert!(crate::error_chain(&e).contains("at least one"), "{e:?}");
    }
}
