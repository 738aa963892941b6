//! `org.osbuild.anaconda`: write `/etc/anaconda/conf.d/90-osbuild.conf`, the installer's
//! `[Anaconda]` section listing which of its modules to enable (`kickstart-modules`,
//! `activatable-modules`, `forbidden-modules`, `optional-modules`; the key with `_` for `-`),
//! one indented module a line, in the manifest's order: the same text as upstream writes.

use super::configparser::py_str;
use super::util::{create_parents, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde_json::{Map, Value};

/// Upstream's schema allows any key: each is written as a grouping of modules.
pub type Options = Map<String, Value>;

/// The stage itself: its name and options, as the registry lists it.
pub struct Anaconda;

impl Stage for Anaconda {
    const NAME: &'static str = "org.osbuild.anaconda";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let text = render(&options)?;
        let path = tree_path(args, "etc/anaconda/conf.d/90-osbuild.conf", true)?;
        create_parents(&path)?;
        write_file(&path, text.as_bytes(), 0o644)?;
        Ok(None)
    }
}

fn render(options: &Options) -> Result<String, StageError> {
    let mut out = String::from("\n# osbuild customizations\n\n[Anaconda]\n");
    for (grouping, modules) in options {
        out.push_str(&format!("{}=\n", grouping.replace('-', "_")));
        // what Python iterates: a list's items, a string's characters, an object's keys
        let items: Vec<String> = match modules {
            Value::Array(items) => items.iter().map(py_str).collect(),
            Value::String(s) => s.chars().map(String::from).collect(),
            Value::Object(m) => m.keys().cloned().collect(),
            other => return Err(StageError::Invalid(format!("{grouping} must list modules, not {other}"))),
        };
        for m in items {
            out.push_str(&format!("    {m}\n"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn upstream_bootiso_modules() {
        let t = tempfile::tempdir().unwrap();
        let a = args(
            t.path(),
            json!({"kickstart-modules": ["org.fedoraproject.Anaconda.Modules.Network",
                "org.fedoraproject.Anaconda.Modules.Storage"], "forbidden-modules": ["org.fedoraproject.Anaconda.Modules.Subscription"]}),
        );
        Anaconda::execute(&a).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/anaconda/conf.d/90-osbuild.conf")).unwrap(),
            "\n# osbuild customizations\n\n[Anaconda]\nkickstart_modules=\n    org.fedoraproject.Anaconda.Modules.Network\n    \
             org.fedoraproject.Anaconda.Modules.Storage\nforbidden_modules=\n    org.fedoraproject.Anaconda.Modules.Subscription\n"
        );
    }

    #[test]
    fn python_iteration_of_other_values() {
        let o: Options = serde_json::from_value(json!({"x-y": "ab", "z": {"k": 1}, "n": [1, true]})).unwrap();
        assert_eq!(
            render(&o).unwrap(),
            "\n# osbuild customizations\n\n[Anaconda]\nx_y=\n    a\n    b\nz=\n    k\nn=\n    1\n    True\n"
        );
        let o: Options = serde_json::from_value(json!({"x": 1})).unwrap();
        assert!(render(&o).is_err());
        assert_eq!(render(&Options::new()).unwrap(), "\n# osbuild customizations\n\n[Anaconda]\n");
    }
}
