//! `org.osbuild.timezone`: set the system time zone, the `/etc/localtime` symlink.
//!
//! Upstream removes `/etc/localtime` and runs `systemd-firstboot --timezone`, which checks
//! that the zone exists in the build root's zoneinfo and links
//! `/etc/localtime -> ../usr/share/zoneinfo/<zone>`. We do the same directly; a zone found in
//! the tree's zoneinfo is accepted too.

use super::util::{create_parents, drop_pwd_lock, remove_if_exists, tree_path};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub zone: String,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Timezone;

impl Stage for Timezone {
    const NAME: &'static str = "org.osbuild.timezone";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let zone = &options.zone;
        let name_ok = !zone.is_empty()
            && !zone.starts_with('/')
            && zone.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
            && zone.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
        let rel = format!("usr/share/zoneinfo/{zone}");
        let known = name_ok && (Path::new("/").join(&rel).is_file() || tree_path(args, &rel, true)?.is_file());
        if !known {
            return Err(StageError::Invalid(format!("timezone {zone} is not valid (no /{rel})")));
        }
        let path = tree_path(args, "/etc/localtime", false)?;
        if remove_if_exists(&path)? {
            println!("/etc/localtime already exists. Replacing.");
        }
        create_parents(&path)?;
        std::os::unix::fs::symlink(format!("../{rel}"), &path)
            .map_err(StageError::io("cannot create symlink", &path))?;
        drop_pwd_lock(args)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn links_localtime() {
        let t = tempfile::tempdir().unwrap();
        let tz = t.path().join("usr/share/zoneinfo/Europe");
        std::fs::create_dir_all(&tz).unwrap();
        std::fs::write(tz.join("Prague"), "TZif").unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/localtime"), "old").unwrap();
        Timezone::execute(&args(t.path(), json!({"zone": "Europe/Prague"}))).unwrap();
        let link = std::fs::read_link(t.path().join("etc/localtime")).unwrap();
        assert_eq!(link, Path::new("../usr/share/zoneinfo/Europe/Prague"));
    }

    #[test]
    fn unknown_zone_fails() {
        let t = tempfile::tempdir().unwrap();
        for zone in ["Nope/Zone", "../../etc/passwd", ""] {
            let e = Timezone::execute(&args(t.path(), json!({ "zone": zone }))).unwrap_err();
            assert!(e.to_string().starts_with(&format!("timezone {zone} is not valid")), "{e}");
        }
        assert!(!t.path().join("etc/localtime").exists());
    }
}
