//! `org.osbuild.sshd.config`: set a few options in `/etc/ssh/sshd_config`, editing it in
//! place.
//!
//! Upstream's rules, reproduced exactly: a line with exactly two whitespace-separated words
//! whose first word is a configured keyword (compared case-insensitively; the first such
//! line per keyword only) gets its value replaced, keeping the keyword's spelling, unless
//! the value is already the same text. Every other line is kept byte for byte. Keywords not
//! found are appended as `Keyword value`, in the order PasswordAuthentication,
//! ChallengeResponseAuthentication, ClientAliveInterval, PermitRootLogin. Booleans are
//! written `yes`/`no`. The file must exist; its mode is kept. Like Python's text mode,
//! `\r\n` and `\r` line ends are read as `\n`.
//!
//! One upstream quirk is kept: a ClientAliveInterval line is always rewritten, even with the
//! same value (upstream compares the text with a number), which only matters for its
//! whitespace.

use super::pwquality_conf::universal_newlines;
use super::util::{tree_path, write_file};
use super::{StageError, StageResult};
use crate::Stage;
use crate::StageArgs;
use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub config: Config,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "PasswordAuthentication")]
    pub password_authentication: Option<bool>,
    #[serde(rename = "ChallengeResponseAuthentication")]
    pub challenge_response_authentication: Option<bool>,
    #[serde(rename = "ClientAliveInterval")]
    pub client_alive_interval: Option<i64>,
    #[serde(rename = "PermitRootLogin")]
    pub permit_root_login: Option<PermitRootLogin>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum PermitRootLogin {
    Bool(bool),
    Word(PermitWord),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermitWord {
    ProhibitPassword,
    ForcedCommandsOnly,
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

struct Change {
    key: &'static str,
    value: String,
    /// The value is a number: an existing line is always rewritten (see the module doc).
    always: bool,
}

fn changes(c: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    if let Some(b) = c.password_authentication {
        out.push(Change { key: "PasswordAuthentication", value: yes_no(b).into(), always: false });
    }
    if let Some(b) = c.challenge_response_authentication {
        out.push(Change { key: "ChallengeResponseAuthentication", value: yes_no(b).into(), always: false });
    }
    if let Some(n) = c.client_alive_interval {
        out.push(Change { key: "ClientAliveInterval", value: n.to_string(), always: true });
    }
    if let Some(p) = c.permit_root_login {
        let value = match p {
            PermitRootLogin::Bool(b) => yes_no(b),
            PermitRootLogin::Word(PermitWord::ProhibitPassword) => "prohibit-password",
            PermitRootLogin::Word(PermitWord::ForcedCommandsOnly) => "forced-commands-only",
        };
        out.push(Change { key: "PermitRootLogin", value: value.into(), always: false });
    }
    out
}

fn edit(text: &str, mut changes: Vec<Change>) -> String {
    let mut out = String::with_capacity(text.len() + 128);
    for line in text.split_inclusive('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [key, current] = words[..] {
            if let Some(i) = changes.iter().position(|c| c.key.eq_ignore_ascii_case(key)) {
                let c = changes.remove(i);
                if c.always || current != c.value {
                    out.push_str(&format!("{key} {}\n", c.value));
                    continue;
                }
            }
        }
        out.push_str(line);
    }
    for c in changes {
        out.push_str(&format!("{} {}\n", c.key, c.value));
    }
    out
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct SshdConfig;

impl Stage for SshdConfig {
    const NAME: &'static str = "org.osbuild.sshd.config";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let path = tree_path(args, "/etc/ssh/sshd_config", true)?;
        let bytes = std::fs::read(&path).map_err(StageError::io("cannot read", &path))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| StageError::Invalid("/etc/ssh/sshd_config is not valid UTF-8".into()))?;
        let mode =
            std::fs::metadata(&path).map_err(StageError::io("cannot stat", &path))?.permissions().mode() & 0o7777;
        write_file(&path, edit(&universal_newlines(&text), changes(&options.config)).as_bytes(), mode)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    fn config(v: serde_json::Value) -> Config {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn replaces_first_match_keeps_spelling_and_appends() {
        let text = "#PasswordAuthentication yes\npasswordauthentication  yes\nPasswordAuthentication yes\n\
                    PermitRootLogin no\nClientAliveInterval\t180\nMatch User x\n";
        let c = config(json!({"PasswordAuthentication": false, "PermitRootLogin": false,
                               "ClientAliveInterval": 180, "ChallengeResponseAuthentication": true}));
        assert_eq!(
            edit(text, changes(&c)),
            "#PasswordAuthentication yes\npasswordauthentication no\nPasswordAuthentication yes\n\
             PermitRootLogin no\nClientAliveInterval 180\nMatch User x\nChallengeResponseAuthentication yes\n"
        );
    }

    #[test]
    fn runs_on_the_tree_and_keeps_mode() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("etc/ssh");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("sshd_config");
        std::fs::write(&p, "PermitRootLogin yes\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        SshdConfig::execute(&args(t.path(), json!({"config": {"PermitRootLogin": "prohibit-password"}}))).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "PermitRootLogin prohibit-password\n");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn bad_options_and_missing_file() {
        let t = tempfile::tempdir().unwrap();
        let e = SshdConfig::execute(&args(t.path(), json!({"config": {"PermitRootLogin": "maybe"}}))).unwrap_err();
        assert!(crate::error_chain(&e).starts_with("invalid options: data did not match any variant"));
        let e = SshdConfig::execute(&args(t.path(), json!({"config": {"Port": 22}}))).unwrap_err();
        assert!(crate::error_chain(&e).contains("unknown field `Port`"));
        let e = SshdConfig::execute(&args(t.path(), json!({"config": {}}))).unwrap_err();
        assert!(crate::error_chain(&e).starts_with("cannot read"));
    }
}
