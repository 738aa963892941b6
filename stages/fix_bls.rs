//! `org.osbuild.fix-bls`: fix the paths in `/boot/loader/entries/*.conf`.
//!
//! grub2-mkrelpath and kernel-install's loader-entry plugin can prefix the kernel paths of a
//! boot loader entry with the directory the tree was built in. Upstream replaces, on every
//! line, the regular expression `(/.*)+/boot` (or `(/.*)*/boot` without
//! `require_boot_prefix`) with `prefix`. That expression, greedy and leftmost, matches from
//! the line's first `/` to the end of its last `/boot` (which must start after that first
//! `/` when a prefix is required); we do that substitution directly. Files are read the way
//! Python's text mode reads them (`\r\n` and `\r` become `\n`), split into lines at Python's
//! line boundaries, and rewritten in place, keeping their mode. Hidden files are skipped, as
//! by upstream's glob. A `prefix` with a backslash (a template escape for upstream's `re.sub`)
//! is refused rather than interpreted.

use super::util::{tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::util::yes;
use crate::Stage;
use serde::Deserialize;

fn default_prefix() -> String {
    "/boot".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "yes")]
    pub require_boot_prefix: bool,
}

/// Python's `str.splitlines` boundaries (after newline translation, so no `\r`).
fn is_line_boundary(c: char) -> bool {
    matches!(c, '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn fix_line(line: &str, prefix: &str, require: bool) -> String {
    let (Some(first), Some(last)) = (line.find('/'), line.rfind("/boot")) else {
        return line.to_owned();
    };
    if last < first || (require && last == first) {
        return line.to_owned();
    }
    format!("{}{prefix}{}", &line[..first], &line[last + "/boot".len()..])
}

fn fix_text(text: &str, prefix: &str, require: bool) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive(is_line_boundary) {
        out.push_str(&fix_line(line, prefix, require));
    }
    out
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct FixBls;

impl Stage for FixBls {
    const NAME: &'static str = "org.osbuild.fix-bls";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.prefix.contains('\\') {
            // upstream hands the prefix to re.sub as a template, where backslashes are escapes
            return Err(StageError::Invalid(format!(
                "prefix {} has a backslash, which is not supported",
                options.prefix
            )));
        }
        let dir = tree_path(args, "/boot/loader/entries", true)?;
        let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(None) };
        let mut names: Vec<String> = rd
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".conf") && !n.starts_with('.'))
            .collect();
        names.sort();
        for name in names {
            let path = tree_path(args, format!("/boot/loader/entries/{name}"), true)?;
            if !path.exists() {
                continue; // a dangling link: upstream's glob skips it
            }
            let text = std::fs::read(&path).map_err(StageError::io("cannot read", &path))?;
            let text = String::from_utf8(text)
                .map_err(|_| StageError::Invalid(format!("/boot/loader/entries/{name} is not valid UTF-8")))?;
            write_file(&path, fix_text(&text, &options.prefix, options.require_boot_prefix).as_bytes(), 0o644)?;
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
    fn lines() {
        let p = "/boot";
        assert_eq!(fix_line("linux /run/osbuild/tree/boot/vmlinuz-6\n", p, true), "linux /boot/vmlinuz-6\n");
        assert_eq!(fix_line("linux /boot/vmlinuz\n", p, true), "linux /boot/vmlinuz\n");
        assert_eq!(fix_line("linux /boot/vmlinuz\n", "", false), "linux /vmlinuz\n");
        assert_eq!(fix_line("linux /vmlinuz\n", "", true), "linux /vmlinuz\n");
        assert_eq!(fix_line("a /x/boot/y /z/boot/k\n", p, true), "a /boot/k\n");
        assert_eq!(fix_line("title x\n", p, true), "title x\n");
        assert_eq!(fix_text("a /t/boot/v\r\nb /t/boot/i\x0bc /boot\n", "", true), "a /v\nb /i\x0bc /boot\n");
    }

    #[test]
    fn rewrites_entries() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("boot/loader/entries");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.conf"), "linux /tmp/tree/boot/vmlinuz\ninitrd /tmp/tree/boot/initrd\n").unwrap();
        std::fs::write(d.join(".h.conf"), "linux /tmp/tree/boot/vmlinuz\n").unwrap();
        FixBls::execute(&args(t.path(), json!({}))).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("a.conf")).unwrap(), "linux /boot/vmlinuz\ninitrd /boot/initrd\n");
        assert_eq!(std::fs::read_to_string(d.join(".h.conf")).unwrap(), "linux /tmp/tree/boot/vmlinuz\n");
        FixBls::execute(&args(t.path(), json!({"prefix": ""}))).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("a.conf")).unwrap(), "linux /boot/vmlinuz\ninitrd /boot/initrd\n");
        FixBls::execute(&args(t.path(), json!({"prefix": "", "require_boot_prefix": false}))).unwrap();
        let e = FixBls::execute(&args(t.path(), json!({"prefix": "\\1"}))).unwrap_err();
        assert_eq!(e.to_string(), "prefix \\1 has a backslash, which is not supported");
        assert_eq!(std::fs::read_to_string(d.join("a.conf")).unwrap(), "linux /vmlinuz\ninitrd /initrd\n");
    }
}
