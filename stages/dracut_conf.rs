//! `org.osbuild.dracut.conf`: write a dracut configuration file,
//! `/usr/lib/dracut/dracut.conf.d/<filename>`, in the option order of the manifest, as
//! upstream does: strings as `key="v"`, lists as `key+=" a b "`, booleans as `key="yes|no"`.

use super::util::{create_parents, tree_path, write_file, Ordered};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub config: Config,
}

/// The `config` object, in document order, each value checked against its option's kind.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Ordered<Value>")]
pub struct Config(Vec<String>);

const STRINGS: &[&str] = &["compress"];
const LISTS: &[&str] = &[
    "add_dracutmodules",
    "dracutmodules",
    "omit_dracutmodules",
    "drivers",
    "add_drivers",
    "omit_drivers",
    "force_drivers",
    "filesystems",
    "install_items",
    "remove_items",
];
const BOOLS: &[&str] = &["early_microcode", "reproducible"];

impl TryFrom<Ordered<Value>> for Config {
    type Error = String;
    fn try_from(o: Ordered<Value>) -> Result<Self, String> {
        let mut lines = Vec::new();
        for (key, value) in o.0 {
            let k = key.as_str();
            let line = match &value {
                Value::String(s) if STRINGS.contains(&k) => format!("{key}=\"{s}\"\n"),
                Value::Bool(b) if BOOLS.contains(&k) => format!("{key}=\"{}\"\n", if *b { "yes" } else { "no" }),
                Value::Array(items) if LISTS.contains(&k) => {
                    let items: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                    let items =
                        items.ok_or_else(|| format!("configuration option '{key}' must be a list of strings"))?;
                    format!("{key}+=\" {} \"\n", items.join(" "))
                }
                _ if STRINGS.contains(&k) => return Err(format!("configuration option '{key}' must be a string")),
                _ if BOOLS.contains(&k) => return Err(format!("configuration option '{key}' must be a boolean")),
                _ if LISTS.contains(&k) => {
                    return Err(format!("configuration option '{key}' must be a list of strings"))
                }
                _ => return Err(format!("unsupported configuration option '{key}'")),
            };
            lines.push(line);
        }
        Ok(Config(lines))
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct DracutConf;

impl Stage for DracutConf {
    const NAME: &'static str = "org.osbuild.dracut.conf";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.filename.contains('/') {
            return Err(StageError::Invalid(format!("invalid file name {}", options.filename)));
        }
        let path = tree_path(args, format!("/usr/lib/dracut/dracut.conf.d/{}", options.filename), true)?;
        create_parents(&path)?;
        write_file(&path, options.config.0.concat().as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_in_document_order() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"filename": "x.conf", "config": {
            "reproducible": true, "compress": "xz", "add_drivers": ["a", "b"], "early_microcode": false}});
        DracutConf::execute(&args(t.path(), opts)).unwrap();
        let got = std::fs::read_to_string(t.path().join("usr/lib/dracut/dracut.conf.d/x.conf")).unwrap();
        assert_eq!(got, "reproducible=\"yes\"\ncompress=\"xz\"\nadd_drivers+=\" a b \"\nearly_microcode=\"no\"\n");
    }

    #[test]
    fn unknown_option() {
        let t = tempfile::tempdir().unwrap();
        let e = DracutConf::execute(&args(t.path(), json!({"filename": "x.conf", "config": {"hostonly": true}})))
            .unwrap_err();
        let msg = crate::error_chain(&e);
        assert!(msg.starts_with("invalid options: unsupported configuration option 'hostonly'"), "{msg}");
    }
}
