//! `org.osbuild.pwquality.conf`: set password quality rules in
//! `/etc/security/pwquality.conf`, editing the file in place.
//!
//! Upstream's rules, reproduced exactly: a line that splits into exactly two parts at
//! `" = "` is a `key = value` line; the first such line for a configured key (keys are case
//! sensitive, commented-out lines never match) is rewritten as `key = value`, later ones are
//! kept. Every other line is kept byte for byte. Keys not found are appended at the end, in
//! the order the options give them. The file must exist; its mode is kept. Like Python's
//! text mode, `\r\n` and `\r` line ends are read as `\n`.

use super::util::{tree_path, write_file, Ordered};
use super::{StageError, StageResult};
use crate::Stage;
use crate::StageArgs;
use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;

const KEYS: &[&str] = &["minlen", "dcredit", "ucredit", "lcredit", "ocredit", "minclass"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub config: Config,
}

/// The settings, in document order; only the keys upstream allows.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Ordered<i64>")]
pub struct Config(pub Vec<(String, i64)>);

impl TryFrom<Ordered<i64>> for Config {
    type Error = String;
    fn try_from(o: Ordered<i64>) -> Result<Self, String> {
        match o.0.iter().find(|(k, _)| !KEYS.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("unknown setting `{k}`, expected one of {}", KEYS.join(", "))),
            None => Ok(Config(o.0)),
        }
    }
}

/// Python's universal newlines: `\r\n` and `\r` read as `\n`.
pub(crate) fn universal_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Apply `config` to the file content `text`.
fn edit(text: &str, config: &[(String, i64)]) -> String {
    let mut changes: Vec<(&str, i64)> = config.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let parts: Vec<&str> = line.split(" = ").collect();
        if let [key, _] = parts[..] {
            if let Some(i) = changes.iter().position(|(k, _)| *k == key) {
                let (_, value) = changes.remove(i);
                out.push_str(&format!("{key} = {value}\n"));
                continue;
            }
        }
        out.push_str(line);
    }
    for (key, value) in changes {
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct PwqualityConf;

impl Stage for PwqualityConf {
    const NAME: &'static str = "org.osbuild.pwquality.conf";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let path = tree_path(args, "/etc/security/pwquality.conf", true)?;
        let bytes = std::fs::read(&path).map_err(StageError::io("cannot read", &path))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| StageError::Invalid(format!("{} is not valid UTF-8", "/etc/security/pwquality.conf")))?;
        let mode =
            std::fs::metadata(&path).map_err(StageError::io("cannot stat", &path))?.permissions().mode() & 0o7777;
        write_file(&path, edit(&universal_newlines(&text), &options.config.0).as_bytes(), mode)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn edits_first_match_keeps_comments_and_appends() {
        let text = "# minlen = 8\nminlen = 8\nminlen = 7\ndcredit=0\nfoo = a = b\n";
        let config = vec![("minlen".into(), 9), ("dcredit".into(), 1), ("minclass".into(), 0)];
        assert_eq!(
            edit(text, &config),
            "# minlen = 8\nminlen = 9\nminlen = 7\ndcredit=0\nfoo = a = b\ndcredit = 1\nminclass = 0\n"
        );
        // an unchanged value is still rewritten (upstream compares text with a number)
        assert_eq!(edit("minlen = 9", &[("minlen".into(), 9)]), "minlen = 9\n");
        // no newline at the end: upstream appends right after it
        assert_eq!(edit("# x", &[("minlen".into(), 9)]), "# xminlen = 9\n");
    }

    #[test]
    fn runs_on_the_tree_and_keeps_mode() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("etc/security");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pwquality.conf"), "# minlen = 8\r\n").unwrap();
        std::fs::set_permissions(dir.join("pwquality.conf"), std::fs::Permissions::from_mode(0o600)).unwrap();
        PwqualityConf::execute(&args(t.path(), json!({"config": {"minlen": 6, "minclass": 3}}))).unwrap();
        let p = dir.join("pwquality.conf");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "# minlen = 8\nminlen = 6\nminclass = 3\n");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn bad_options_and_missing_file() {
        let t = tempfile::tempdir().unwrap();
        let e =
            crate::error_chain(&PwqualityConf::execute(&args(t.path(), json!({"config": {"maxlen": 1}}))).unwrap_err());
        assert!(e.starts_with("invalid options: unknown setting `maxlen`"), "{e}");
        let e = crate::error_chain(
            &PwqualityConf::execute(&args(t.path(), json!({"config": {"minlen": "8"}}))).unwrap_err(),
        );
        assert!(e.starts_with("invalid options: invalid type: string"), "{e}");
        let e =
            crate::error_chain(&PwqualityConf::execute(&args(t.path(), json!({"config": {"minlen": 8}}))).unwrap_err());
        assert!(e.starts_with("cannot read"), "{e}");
    }
}
