//! `org.osbuild.locale`: set the system locale, `LANG=` in `/etc/locale.conf`.
//!
//! Upstream removes `/etc/locale.conf` and runs `systemd-firstboot --locale`, which writes
//! `LANG=<locale>\n` with mode 0644. We write the same file directly.

use super::util::{create_parents, drop_pwd_lock, remove_if_exists, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub language: String,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Locale;

impl Stage for Locale {
    const NAME: &'static str = "org.osbuild.locale";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let lang = &options.language;
        let valid =
            !lang.is_empty() && !lang.starts_with('.') && !lang.contains('/') && !lang.chars().any(char::is_control);
        if !valid {
            return Err(StageError::Invalid(format!("locale {lang:?} is not valid")));
        }
        let path = tree_path(args, "/etc/locale.conf", false)?;
        if remove_if_exists(&path)? {
            println!("/etc/locale.conf already exists. Replacing.");
        }
        create_parents(&path)?;
        write_file(&path, format!("LANG={}\n", env_value(lang)).as_bytes(), 0o644)?;
        drop_pwd_lock(args)?;
        Ok(None)
    }
}

/// Quote a value for an env-style file the way systemd does when it has to.
fn env_value(v: &str) -> String {
    if v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@-+:,".contains(&b)) {
        v.to_owned()
    } else {
        let mut out = String::from("\"");
        for c in v.chars() {
            if matches!(c, '"' | '\\' | '`' | '$') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_locale_conf() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/locale.conf"), "LANG=C.UTF-8\n").unwrap();
        Locale::execute(&args(t.path(), json!({"language": "en_US.UTF-8"}))).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("etc/locale.conf")).unwrap(), "LANG=en_US.UTF-8\n");
        Locale::execute(&args(t.path(), json!({"language": "nn_NO.utf8"}))).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("etc/locale.conf")).unwrap(), "LANG=nn_NO.utf8\n");
    }

    #[test]
    fn rejects_bad_locale() {
        let t = tempfile::tempdir().unwrap();
        let e = Locale::execute(&args(t.path(), json!({"language": "../x"}))).unwrap_err();
        assert_eq!(e.to_string(), "locale \"../x\" is not valid");
        assert_eq!(env_value("a b"), "\"a b\"");
    }
}
