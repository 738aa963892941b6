//! `org.osbuild.hostname`: set the static hostname, `/etc/hostname`.
//!
//! Upstream removes `/etc/hostname` and runs `systemd-firstboot --hostname`; that checks
//! the name and writes `<name>\n` with mode 0644 (creating `/etc` if needed). We do the same
//! directly, so no systemd is needed in the build root.

use super::util::{create_parents, drop_pwd_lock, remove_if_exists, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub hostname: String,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Hostname;

impl Stage for Hostname {
    const NAME: &'static str = "org.osbuild.hostname";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if !hostname_is_valid(&options.hostname) {
            return Err(StageError::Invalid(format!("host name {} is not valid", options.hostname)));
        }
        let path = tree_path(args, "/etc/hostname", false)?;
        if remove_if_exists(&path)? {
            println!("/etc/hostname already exists. Replacing.");
        }
        create_parents(&path)?;
        write_file(&path, format!("{}\n", options.hostname).as_bytes(), 0o644)?;
        drop_pwd_lock(args)?;
        Ok(None)
    }
}

/// systemd's rules: dot-separated labels of ASCII letters, digits and `-`, at most 64
/// characters, an optional trailing dot.
fn hostname_is_valid(name: &str) -> bool {
    let body = name.strip_suffix('.').unwrap_or(name);
    !body.is_empty()
        && name.len() <= 64
        && body.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_and_replaces_etc_hostname() {
        let t = tempfile::tempdir().unwrap();
        Hostname::execute(&args(t.path(), json!({"hostname": "localhost.localdomain"}))).unwrap();
        Hostname::execute(&args(t.path(), json!({"hostname": "testing.hostname.local"}))).unwrap();
        let p = t.path().join("etc/hostname");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "testing.hostname.local\n");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn replaces_a_symlink_instead_of_writing_through_it() {
        let host = tempfile::tempdir().unwrap();
        let victim = host.path().join("hostname");
        std::fs::write(&victim, "host\n").unwrap();
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(&victim, t.path().join("etc/hostname")).unwrap();
        Hostname::execute(&args(t.path(), json!({"hostname": "h"}))).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host\n");
        assert_eq!(std::fs::read_to_string(t.path().join("etc/hostname")).unwrap(), "h\n");
    }

    #[test]
    fn validity() {
        for ok in ["localhost", "a-b.c", "x.y.", "h0st"] {
            assert!(hostname_is_valid(ok), "{ok}");
        }
        for bad in ["", ".", "a..b", "bad_host!", "a b", &"x".repeat(65)] {
            assert!(!hostname_is_valid(bad), "{bad}");
        }
        let t = tempfile::tempdir().unwrap();
        let e = Hostname::execute(&args(t.path(), json!({"hostname": "bad_host!"}))).unwrap_err();
        assert_eq!(e.to_string(), "host name bad_host! is not valid");
    }
}
