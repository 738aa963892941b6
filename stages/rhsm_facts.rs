//! `org.osbuild.rhsm.facts`: write custom subscription-manager facts to
//! `/etc/rhsm/facts/osbuild.facts`.
//!
//! As upstream: the directories are created (0755), the file must not exist yet (mode 0644),
//! and it holds the facts as Python's `json.dump` writes them: one line, `", "` and `": "`
//! separators, non-ASCII escaped, keys in manifest order, no trailing newline.
//! Deviation: numbers are written as the manifest spells them (Python would normalise
//! floats such as `1e5` to `100000.0`).

use super::util::{create_parents, tree_path};
use super::{StageArgs, StageError, StageResult};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

const STAGE: &str = "org.osbuild.rhsm.facts";

/// Upstream's schema allows other (ignored) keys, so unknown fields are accepted here too.
#[derive(Debug, Deserialize)]
pub struct Options {
    /// Required by upstream's code (its schema forgets to say so).
    pub facts: Map<String, Value>,
}

pub fn run(args: &StageArgs) -> StageResult {
    let options: Options = args.parse_options(STAGE)?;
    let path = tree_path(args, "/etc/rhsm/facts/osbuild.facts", false)?;
    create_parents(&path)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .map_err(StageError::io("cannot create", &path))?;
    f.write_all(python_json(&Value::Object(options.facts)).as_bytes())
        .map_err(StageError::io("cannot write", &path))?;
    Ok(None)
}

/// `json.dumps(value)` with Python's default settings.
pub(crate) fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(v, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(k, out);
                out.push_str(": ");
                write_value(v, out);
            }
            out.push('}');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_facts_like_python() {
        let t = tempfile::tempdir().unwrap();
        run(&args(t.path(), json!({"facts": {"foo": "bar", "a": [1, true, null], "ü": "\"\n\u{1F600}"}}))).unwrap();
        let text = std::fs::read_to_string(t.path().join("etc/rhsm/facts/osbuild.facts")).unwrap();
        assert_eq!(text, r#"{"foo": "bar", "a": [1, true, null], "\u00fc": "\"\n\ud83d\ude00"}"#);
    }

    #[test]
    fn refuses_to_overwrite_and_needs_facts() {
        let t = tempfile::tempdir().unwrap();
        run(&args(t.path(), json!({"facts": {}}))).unwrap();
        let e = run(&args(t.path(), json!({"facts": {}}))).unwrap_err();
        assert!(e.to_string().starts_with("cannot create"), "{e}");
        let e = run(&args(t.path(), json!({}))).unwrap_err();
        assert!(crate::stages::error_chain(&e).contains("missing field `facts`"), "{e:?}");
    }
}
