//! `org.osbuild.systemd-sysusers.d`: write a sysusers.d(5) file into `/usr/lib/sysusers.d`
//! (or `/etc/sysusers.d` with `path-prefix: etc`).
//!
//! As upstream: entries are checked (type (when the options are parsed), name, id format and reserved ids, and that only
//! `u` entries carry GECOS, home or shell), then written one per line as
//! `<type> <name> <id> <gecos> <home> <shell>` with `-` for what is missing and the GECOS
//! quoted; the directory must exist; the file is (re)written with mode 0644.

use super::configparser::file_in_existing_dir;
use super::util::write_file;
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub config: Config,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "path-prefix", default)]
    pub path_prefix: PathPrefix,
    pub filename: String,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum PathPrefix {
    #[default]
    Usr,
    Etc,
}

/// Upstream's schema lets entries carry further keys; they are ignored.
#[derive(Debug, Deserialize)]
pub struct Entry {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub name: String,
    #[serde(default = "dash")]
    pub id: String,
    #[serde(default = "dash")]
    pub gecos: String,
    #[serde(default = "dash")]
    pub home: String,
    #[serde(default = "dash")]
    pub shell: String,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
pub enum Kind {
    #[serde(rename = "u")]
    User,
    #[serde(rename = "u!")]
    UserLocked,
    #[serde(rename = "g")]
    Group,
    #[serde(rename = "m")]
    Member,
    #[serde(rename = "r")]
    Range,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::User => "u",
            Kind::UserLocked => "u!",
            Kind::Group => "g",
            Kind::Member => "m",
            Kind::Range => "r",
        }
    }
}

fn dash() -> String {
    "-".into()
}

/// `^([a-z]+(?:[-_][a-zA-Z0-9_-]{0,30})?|-)$`
fn name_ok(name: &str) -> bool {
    if name == "-" {
        return true;
    }
    let lower = name.bytes().take_while(u8::is_ascii_lowercase).count();
    if lower == 0 {
        return false;
    }
    let rest = &name.as_bytes()[lower..];
    match rest.split_first() {
        None => true,
        Some((sep, tail)) => {
            matches!(sep, b'-' | b'_')
                && tail.len() <= 30
                && tail.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        }
    }
}

fn invalid(field: &str, value: &str, reason: &str) -> StageError {
    StageError::Invalid(format!("sysuser entry '{field}={value}' is invalid: {reason}"))
}

impl Entry {
    fn validate(&self) -> Result<(), StageError> {
        if self.kind == Kind::Range && self.name != "-" {
            return Err(invalid("Name", &self.name, "name needs to be '-' for type 'r'"));
        }
        if !name_ok(&self.name) {
            return Err(invalid("Name", &self.name, "name needs to match ^([a-z]+(?:[-_][a-zA-Z0-9_-]{0,30})?|-)$"));
        }
        let check = |delim: char| -> Result<(), StageError> {
            let parts: Vec<&str> = self.id.split(delim).collect();
            if parts.len() > 2 {
                return Err(invalid("ID", &self.id, "invalid format"));
            }
            for part in parts {
                // Python's int(): surrounding blanks, a sign and `_` between digits are fine
                let p = part.trim();
                let digits = p.strip_prefix(['+', '-']).unwrap_or(p);
                let clean: String = digits.chars().filter(|c| *c != '_').collect();
                let well_formed = !clean.is_empty()
                    && clean.bytes().all(|b| b.is_ascii_digit())
                    && !digits.starts_with('_')
                    && !digits.ends_with('_')
                    && !digits.contains("__");
                if !well_formed {
                    return Err(invalid("ID", &self.id, "not a number"));
                }
                let negative = p.starts_with('-');
                let value: u128 = clean.parse().unwrap_or(u128::MAX);
                if !negative && (value == 65535 || value == 4294967295) {
                    return Err(invalid("ID", &self.id, "id can not be 65535 or 4294967295"));
                }
            }
            Ok(())
        };
        match self.kind.as_str() {
            "m" if !name_ok(&self.id) => return Err(invalid("ID", &self.id, "id should be group name for m entry")),
            "m" => {}
            "r" => check('-')?,
            _ if self.id == "-" => {}
            _ => check(':')?,
        }
        if self.kind != Kind::User {
            for (field, value, what) in [
                ("GECOS", &self.gecos, "gecos"),
                ("Home", &self.home, "home directory"),
                ("Shell", &self.shell, "shell"),
            ] {
                if !value.is_empty() && value != "-" {
                    return Err(invalid(field, value, &format!("{what} only used for type 'u'")));
                }
            }
        }
        Ok(())
    }

    fn line(&self) -> String {
        let gecos = if self.gecos == "-" { "-".to_owned() } else { format!("\"{}\"", self.gecos) };
        let line = format!("{} {} {} {} {} {}", self.kind.as_str(), self.name, self.id, gecos, self.home, self.shell);
        format!("{}\n", line.trim_matches(|c: char| c.is_whitespace()))
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct SystemdSysusersD;

impl Stage for SystemdSysusersD {
    const NAME: &'static str = "org.osbuild.systemd-sysusers.d";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let config = &options.config;
        if config.filename.is_empty() {
            return Err(StageError::Invalid("'filename' is required".into()));
        }
        if !config.filename.ends_with(".conf") {
            return Err(StageError::Invalid(format!(
                "name of file '{}' needs to have .conf file extension",
                config.filename
            )));
        }
        if config.entries.is_empty() {
            return Err(StageError::Invalid("'entries' is required".into()));
        }
        for entry in &config.entries {
            entry.validate()?;
        }
        let dir = match config.path_prefix {
            PathPrefix::Usr => "/usr/lib/sysusers.d",
            PathPrefix::Etc => "/etc/sysusers.d",
        };
        let text: String = config.entries.iter().map(Entry::line).collect();
        let path = file_in_existing_dir(args, dir, &config.filename)?;
        write_file(&path, text.as_bytes(), 0o644)?;
        println!("Wrote file '{}/{}'", dir.trim_start_matches('/'), config.filename);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_entries() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib/sysusers.d")).unwrap();
        let opts = json!({"config": {"filename": "a.conf", "entries": [
            {"type": "u", "name": "sys-a", "id": "-"},
            {"type": "u", "name": "sys-b", "id": "200:201", "gecos": "B user", "home": "/var/b", "shell": "/bin/sh"},
            {"type": "g", "name": "grp", "id": "101"},
            {"type": "m", "name": "sys-a", "id": "grp"},
            {"type": "r", "name": "-", "id": "500-900"}]}});
        SystemdSysusersD::execute(&args(t.path(), opts)).unwrap();
        let text = std::fs::read_to_string(t.path().join("usr/lib/sysusers.d/a.conf")).unwrap();
        assert_eq!(
            text,
            "u sys-a - - - -\nu sys-b 200:201 \"B user\" /var/b /bin/sh\ng grp 101 - - -\nm sys-a grp - - -\nr - 500-900 - - -\n"
        );
    }

    #[test]
    fn validation() {
        let bad = |entry: serde_json::Value| {
            let t = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(t.path().join("usr/lib/sysusers.d")).unwrap();
            SystemdSysusersD::execute(&args(t.path(), json!({"config": {"filename": "a.conf", "entries": [entry]}})))
                .unwrap_err()
                .to_string()
        };
        assert!(bad(json!({"type": "r", "name": "x"})).contains("name needs to be '-' for type 'r'"));
        assert!(bad(json!({"type": "g", "name": "Bad"})).starts_with("sysuser entry 'Name=Bad' is invalid"));
        assert!(bad(json!({"type": "u", "name": "a", "id": "65535"})).contains("id can not be"));
        assert!(bad(json!({"type": "u", "name": "a", "id": "1:2:3"})).contains("invalid format"));
        assert!(bad(json!({"type": "g", "name": "a", "shell": "/bin/sh"})).contains("shell only used for type 'u'"));
        assert!(bad(json!({"type": "m", "name": "a", "id": "1"})).contains("id should be group name"));
        assert!(name_ok("a_B-9") && name_ok("-") && name_ok("a-") && !name_ok("9a") && !name_ok("a.b"));
    }
}
