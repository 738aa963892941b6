//! `org.osbuild.apt.config`: write an apt configuration snippet,
//! `/etc/apt/apt.conf.d/<filename>` (apt.conf(5)).
//!
//! osbuild-rs' own stage. `config` maps option names (`APT::Install-Recommends`) to a value
//! (string, number or boolean, written quoted: `APT::Install-Recommends "false";`) or to a list
//! of values (written as a list: `DPkg::Options { "--force-confold"; };`), in the order given.
//! Names are checked to be apt option names (letters, digits, `:`, `-`, `_`, `.`, `/`, `+`),
//! values to hold no `"` or newline, since apt.conf cannot quote them.

use super::util::{create_parents, remove_if_exists, tree_path, write_file, Ordered};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub config: Ordered<Value>,
}

fn scalar(name: &str, v: &Value) -> Result<String, StageError> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(StageError::Invalid(format!("apt option {name}: values must be strings, numbers or booleans")))
        }
    };
    if s.contains(['"', '\n', '\r']) {
        return Err(StageError::Invalid(format!("apt option {name}: value {s:?} holds a quote or a newline")));
    }
    Ok(format!("\"{s}\""))
}

/// The snippet's text.
fn render(config: &Ordered<Value>) -> Result<String, StageError> {
    let mut out = String::new();
    for (name, v) in &config.0 {
        let ok = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b":-_./+".contains(&b))
            && !name.starts_with(':')
            && !name.ends_with(':');
        if !ok {
            return Err(StageError::Invalid(format!("'{name}' is not an apt option name")));
        }
        match v {
            Value::Array(items) => {
                let items = items.iter().map(|i| scalar(name, i)).collect::<Result<Vec<_>, _>>()?;
                out.push_str(&format!("{name} {{"));
                for i in items {
                    out.push_str(&format!(" {i};"));
                }
                out.push_str(" };\n");
            }
            _ => out.push_str(&format!("{name} {};\n", scalar(name, v)?)),
        }
    }
    Ok(out)
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct AptConfig;

impl Stage for AptConfig {
    const NAME: &'static str = "org.osbuild.apt.config";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        let f = &o.filename;
        if f.is_empty()
            || f.contains('/')
            || f.starts_with('.')
            || !f.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            // apt ignores files with other characters (e.g. a dot) in apt.conf.d
            return Err(StageError::Invalid(format!(
                "apt.conf.d file name '{f}' must consist of letters, digits, '-' and '_' (apt ignores others)"
            )));
        }
        if o.config.0.is_empty() {
            return Err(StageError::Invalid("no apt options given".into()));
        }
        let text = render(&o.config)?;
        let path = tree_path(args, format!("/etc/apt/apt.conf.d/{f}"), false)?;
        create_parents(&path)?;
        remove_if_exists(&path)?;
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
    fn writes_options_in_order() {
        let t = tempfile::tempdir().unwrap();
        let o = json!({"filename": "90osbuild", "config": {
            "APT::Install-Recommends": false, "Acquire::Retries": 3,
            "DPkg::Options": ["--force-confdef", "--force-confold"], "Dir::Cache::pkgcache": ""}});
        AptConfig::execute(&args(t.path(), o)).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/apt/apt.conf.d/90osbuild")).unwrap(),
            "APT::Install-Recommends \"false\";\nAcquire::Retries \"3\";\n\
             DPkg::Options { \"--force-confdef\"; \"--force-confold\"; };\nDir::Cache::pkgcache \"\";\n"
        );
    }

    #[test]
    fn refuses_what_apt_cannot_read() {
        let t = tempfile::tempdir().unwrap();
        for (o, want) in [
            (json!({"filename": "a.conf", "config": {"A::B": "x"}}), "must consist of letters"),
            (json!({"filename": "../a", "config": {"A::B": "x"}}), "must consist of letters"),
            (json!({"filename": "a", "config": {}}), "no apt options"),
            (json!({"filename": "a", "config": {"A B": "x"}}), "not an apt option name"),
            (json!({"filename": "a", "config": {"A::B": "x\"y"}}), "holds a quote"),
            (json!({"filename": "a", "config": {"A::B": {"c": 1}}}), "must be strings"),
        ] {
            let e = AptConfig::execute(&args(t.path(), o)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
