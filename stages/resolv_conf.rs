//! `org.osbuild.resolv-conf`: write `/etc/resolv.conf`.
//!
//! As upstream: an existing file (or symlink) is removed first, `/etc` is created if missing,
//! and the new file (mode 0644) holds a comment line, an optional `search` line with all
//! domains, then one `nameserver` line per server, each line ending in a newline.

use super::util::{create_parents, remove_if_exists, tree_path, write_file};
use super::StageResult;
use crate::Stage;
use crate::StageArgs;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub nameserver: Vec<String>,
    #[serde(default)]
    pub search: Vec<String>,
}

/// The file's content for `options`.
fn render(options: &Options) -> String {
    let mut lines = vec!["# This file was created by osbuild".to_owned()];
    if !options.search.is_empty() {
        lines.push(format!("search {}", options.search.join(" ")));
    }
    lines.extend(options.nameserver.iter().map(|ns| format!("nameserver {ns}")));
    lines.join("\n") + "\n"
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct ResolvConf;

impl Stage for ResolvConf {
    const NAME: &'static str = "org.osbuild.resolv-conf";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let path = tree_path(args, "/etc/resolv.conf", false)?;
        if remove_if_exists(&path)? {
            println!("Replacing existing file: /etc/resolv.conf");
        }
        create_parents(&path)?;
        write_file(&path, render(&options).as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_search_and_nameservers() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"nameserver": ["1.2.3.4", "::1"], "search": ["a.org", "b.org"]});
        ResolvConf::execute(&args(t.path(), opts)).unwrap();
        let p = t.path().join("etc/resolv.conf");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "# This file was created by osbuild\nsearch a.org b.org\nnameserver 1.2.3.4\nnameserver ::1\n"
        );
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn empty_options_and_replacing_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/run/systemd/resolve/stub-resolv.conf", t.path().join("etc/resolv.conf")).unwrap();
        ResolvConf::execute(&args(t.path(), json!({}))).unwrap();
        let p = t.path().join("etc/resolv.conf");
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "# This file was created by osbuild\n");
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let e = ResolvConf::execute(&args(t.path(), json!({"nameservers": ["1.1.1.1"]}))).unwrap_err();
        assert!(crate::error_chain(&e).contains("unknown field `nameservers`"), "{e}");
    }
}
