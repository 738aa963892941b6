//! `org.osbuild.rhsm.facts`: write custom subscription-manager facts to
//! `/etc/rhsm/facts/osbuild.facts`.
//!
//! As upstream: the directories are created (0755), the file must not exist yet (mode 0644),
//! and it holds the facts as Python's `json.dump` writes them: one line, `", "` and `": "`
//! separators, non-ASCII escaped, keys in manifest order, numbers as Python prints them, no
//! trailing newline (the project's one Python-JSON writer, `canonical_json`, unsorted).

use super::util::{create_parents, tree_path, write_new_file};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Upstream's schema allows other (ignored) keys, so unknown fields are accepted here too.
#[derive(Debug, Deserialize)]
pub struct Options {
    /// Required by upstream's code (its schema forgets to say so).
    pub facts: Map<String, Value>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct RhsmFacts;

impl Stage for RhsmFacts {
    const NAME: &'static str = "org.osbuild.rhsm.facts";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let path = tree_path(args, "/etc/rhsm/facts/osbuild.facts", false)?;
        create_parents(&path)?;
        write_new_file(
            &path,
            crate::canonical_json::to_string_unsorted(&Value::Object(options.facts)).as_bytes(),
            0o644,
        )?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_facts_like_python() {
        let t = tempfile::tempdir().unwrap();
        RhsmFacts::execute(&args(
            t.path(),
            json!({"facts": {"foo": "bar", "a": [1, true, null], "ü": "\"\n\u{1F600}"}}),
        ))
        .unwrap();
        let text = std::fs::read_to_string(t.path().join("etc/rhsm/facts/osbuild.facts")).unwrap();
        assert_eq!(text, r#"{"foo": "bar", "a": [1, true, null], "\u00fc": "\"\n\ud83d\ude00"}"#);
    }

    #[test]
    fn refuses_to_overwrite_and_needs_facts() {
        let t = tempfile::tempdir().unwrap();
        RhsmFacts::execute(&args(t.path(), json!({"facts": {}}))).unwrap();
        let e = RhsmFacts::execute(&args(t.path(), json!({"facts": {}}))).unwrap_err();
        assert!(e.to_string().starts_with("cannot create"), "{e}");
        let e = RhsmFacts::execute(&args(t.path(), json!({}))).unwrap_err();
        assert!(crate::error_chain(&e).contains("missing field `facts`"), "{e:?}");
    }
}
