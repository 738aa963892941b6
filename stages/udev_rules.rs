//! `org.osbuild.udev.rules`: write a udev rules file at `filename` (a path in the tree).
//!
//! As upstream: a comment object becomes `# <line>` lines, a rule becomes its
//! `KEY{arg}<op>"value"` items joined by `, ` on one line (`"` in values escaped as `\"`).
//! Like upstream, the file's directory must already exist.

use super::util::{tree_path, write_file};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Rule {
    Comment(Comment),
    Items(Vec<Item>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comment {
    pub comment: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub key: Key,
    pub op: String,
    pub val: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Key {
    Simple(String),
    Named(NamedKey),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedKey {
    pub name: String,
    #[serde(default)]
    pub arg: Option<String>,
}

fn render(rules: &[Rule]) -> String {
    let mut out = String::new();
    for rule in rules {
        match rule {
            Rule::Comment(c) => {
                if !c.comment.is_empty() {
                    let lines: Vec<String> = c.comment.iter().map(|l| format!("# {l}")).collect();
                    out.push_str(&lines.join("\n"));
                    out.push('\n');
                }
            }
            Rule::Items(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| {
                        let key = match &i.key {
                            Key::Simple(name) => name.clone(),
                            Key::Named(NamedKey { name, arg: Some(arg) }) => format!("{name}{{{arg}}}"),
                            Key::Named(NamedKey { name, arg: None }) => name.clone(),
                        };
                        format!("{key}{}\"{}\"", i.op, i.val.replace('"', "\\\""))
                    })
                    .collect();
                out.push_str(&parts.join(", "));
                out.push('\n');
            }
        }
    }
    out
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct UdevRules;

impl Stage for UdevRules {
    const NAME: &'static str = "org.osbuild.udev.rules";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let path = tree_path(args, &options.filename, true)?;
        write_file(&path, render(&options.rules).as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn renders_comments_and_rules() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc/udev/rules.d")).unwrap();
        let opts = json!({"filename": "/etc/udev/rules.d/x.rules", "rules": [
            {"comment": ["a", "b"]},
            {"comment": []},
            [{"key": "SUBSYSTEM", "op": "==", "val": "net"}, {"key": {"name": "ACTION"}, "op": "==", "val": "add"},
             {"key": {"name": "ENV", "arg": "X"}, "op": "=", "val": "\"q\""}]]});
        UdevRules::execute(&args(t.path(), opts)).unwrap();
        let got = std::fs::read_to_string(t.path().join("etc/udev/rules.d/x.rules")).unwrap();
        assert_eq!(got, "# a\n# b\nSUBSYSTEM==\"net\", ACTION==\"add\", ENV{X}=\"\\\"q\\\"\"\n");
    }

    #[test]
    fn rejects_unknown_rule_shape() {
        let t = tempfile::tempdir().unwrap();
        let e =
            UdevRules::execute(&args(t.path(), json!({"filename": "/x.rules", "rules": [{"nope": 1}]}))).unwrap_err();
        assert!(crate::error_chain(&e).starts_with("invalid options"), "{e}");
    }
}
