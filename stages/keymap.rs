//! `org.osbuild.keymap`: set the console keymap (and font) in `/etc/vconsole.conf`, and the
//! X11 keyboard layouts in `/etc/X11/xorg.conf.d/00-keyboard.conf`.
//!
//! Upstream removes `/etc/vconsole.conf` and runs `systemd-firstboot --keymap`, which checks
//! the name and writes `KEYMAP=<keymap>\n` (quoted as systemd quotes env files when the name
//! needs it; mode 0644, `/etc` created if needed, its
//! `/etc/.pwd.lock` gone afterwards), then appends `FONT=<font>\n`. We do the same directly,
//! so no systemd is needed in the build root.

use super::util::{create_parents, drop_pwd_lock, remove_if_exists, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub keymap: String,
    #[serde(default, rename = "x11-keymap")]
    pub x11_keymap: Option<X11Keymap>,
    #[serde(default)]
    pub font: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X11Keymap {
    pub layouts: Vec<String>,
}

/// systemd's `keymap_is_valid`: a short, safe, valid file name.
fn keymap_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 128
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(|c| c.is_control() || matches!(c, '"' | '\'' | '\\'))
}

/// A value as systemd's `write_env_file` writes it: double-quoted (with `"`, `\\`, `` ` `` and
/// `$` escaped) when it has whitespace, control or shell-special characters.
fn env_value(v: &str) -> String {
    let special = |c: char| c.is_ascii_control() || " \t\n\r\"\\`$*?['()<>|&;!".contains(c);
    if !v.chars().any(special) {
        return v.to_owned();
    }
    let mut out = String::from("\"");
    for c in v.chars() {
        if "\"\\`$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Keymap;

impl Stage for Keymap {
    const NAME: &'static str = "org.osbuild.keymap";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if !keymap_is_valid(&options.keymap) {
            return Err(StageError::Invalid(format!("keymap {} is not valid", options.keymap)));
        }
        let vconsole = tree_path(args, "/etc/vconsole.conf", false)?;
        if remove_if_exists(&vconsole)? {
            println!("/etc/vconsole.conf already exists. Replacing.");
        }
        create_parents(&vconsole)?;
        let mut text = format!("KEYMAP={}\n", env_value(&options.keymap));
        if let Some(font) = options.font.filter(|f| !f.is_empty()) {
            text.push_str(&format!("FONT={font}\n"));
        }
        write_file(&vconsole, text.as_bytes(), 0o644)?;
        drop_pwd_lock(args)?;
        if let Some(x11) = options.x11_keymap {
            let conf = tree_path(args, "/etc/X11/xorg.conf.d/00-keyboard.conf", true)?;
            create_parents(&conf)?;
            let text = format!(
                "# Created by osbuild. Do not edit manually, use localectl(1).\n\
                 Section \"InputClass\"\n        Identifier \"system-keyboard\"\n        MatchIsKeyboard \"on\"\n        \
                 Option \"XkbLayout\" \"{}\"\nEndSection\n",
                x11.layouts.join(",")
            );
            write_file(&conf, text.as_bytes(), 0o644)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_vconsole_and_xorg() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/vconsole.conf"), "KEYMAP=us\nFONT=old\n").unwrap();
        let opts = json!({"keymap": "dvorak", "font": "eurlatgr", "x11-keymap": {"layouts": ["cz", "us"]}});
        Keymap::execute(&args(t.path(), opts)).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/vconsole.conf")).unwrap(),
            "KEYMAP=dvorak\nFONT=eurlatgr\n"
        );
        let x = std::fs::read_to_string(t.path().join("etc/X11/xorg.conf.d/00-keyboard.conf")).unwrap();
        assert!(x.contains("        Option \"XkbLayout\" \"cz,us\"\nEndSection\n"), "{x}");
    }

    #[test]
    fn quoting_like_systemd() {
        assert_eq!(env_value("de-latin1"), "de-latin1");
        assert_eq!(env_value("a b$"), "\"a b\\$\"");
    }

    #[test]
    fn invalid_keymap() {
        let t = tempfile::tempdir().unwrap();
        let e = Keymap::execute(&args(t.path(), json!({"keymap": "../x"}))).unwrap_err();
        assert_eq!(e.to_string(), "keymap ../x is not valid");
    }
}
