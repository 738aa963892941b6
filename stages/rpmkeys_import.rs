//! `org.osbuild.rpmkeys.import`: import public keys into the tree's RPM database.
//!
//! As upstream: for every file of the `keys` input (in the input's order),
//! `rpmkeys --verbose --root <tree> --import <file>` is run with the build root's `rpmkeys`
//! (Debian: package `rpm`). The stage has no options.

use super::util::run_tool;
use super::{StageArgs, StageError, StageResult};
use serde::Deserialize;
use serde_json::Value;
use std::process::Command;

const STAGE: &str = "org.osbuild.rpmkeys.import";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {}

pub fn run(args: &StageArgs) -> StageResult {
    let _options: Options = args.parse_options(STAGE)?;
    let base = args.input_path("keys")?;
    let files = args
        .inputs
        .get("keys")
        .and_then(|k| k.pointer("/data/files"))
        .and_then(Value::as_object)
        .ok_or_else(|| StageError::Invalid("input 'keys' lists no files".into()))?;
    for name in files.keys() {
        if name.is_empty() || name.contains('/') {
            return Err(StageError::Invalid(format!("input 'keys' has a bad file name '{name}'")));
        }
        let path = base.join(name);
        run_tool(
            STAGE,
            Command::new("rpmkeys").arg("--verbose").arg("--root").arg(&args.tree).arg("--import").arg(&path),
        )?;
        println!("imported key '{name}'");
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testutil::args;
    use serde_json::json;

    #[test]
    fn needs_the_keys_input() {
        let t = tempfile::tempdir().unwrap();
        let e = run(&args(t.path(), json!({}))).unwrap_err();
        assert_eq!(e.to_string(), "unknown input 'keys'");
        let mut a = args(t.path(), json!({}));
        a.inputs.insert("keys".into(), json!({"path": "/nonexistent", "data": {}}));
        assert_eq!(run(&a).unwrap_err().to_string(), "input 'keys' lists no files");
        let e = run(&args(t.path(), json!({"foo": 1}))).unwrap_err();
        assert!(crate::stages::error_chain(&e).contains("unknown field `foo`"), "{e:?}");
    }
}
