//! `org.osbuild.tuned`: set the active TuneD profile(s), as `tuned-adm profile` would.
//!
//! As upstream: every profile must exist — a directory holding `tuned.conf` in
//! `/usr/lib/tuned` or `/etc/tuned` (or their `profiles/` subdirectory, which TuneD ≥ 2.23
//! uses when present); then `/etc/tuned/active_profile` gets the profiles joined by spaces
//! and `/etc/tuned/profile_mode` gets `manual`, each with a newline. `/etc/tuned` must exist.

use super::util::{tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub profiles: Vec<String>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Tuned;

impl Stage for Tuned {
    const NAME: &'static str = "org.osbuild.tuned";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.profiles.is_empty() || options.profiles.iter().any(String::is_empty) {
            return Err(StageError::Invalid("profiles must name at least one non-empty profile".into()));
        }
        let available = available_profiles(args)?;
        for p in &options.profiles {
            if !available.contains(p) {
                return Err(StageError::Invalid(format!("TuneD profile '{p}' does not exist")));
            }
        }
        let active = tree_path(args, "/etc/tuned/active_profile", true)?;
        write_file(&active, format!("{}\n", options.profiles.join(" ")).as_bytes(), 0o644)?;
        let mode = tree_path(args, "/etc/tuned/profile_mode", true)?;
        write_file(&mode, b"manual\n", 0o644)?;
        Ok(None)
    }
}

fn available_profiles(args: &StageArgs) -> Result<BTreeSet<String>, StageError> {
    let mut out = BTreeSet::new();
    for dir in ["/usr/lib/tuned", "/etc/tuned"] {
        // like Python's isdir / DirEntry.is_dir, symlinks are followed (within the tree)
        if !tree_path(args, dir, true)?.is_dir() {
            continue;
        }
        let mut dir = dir.to_owned();
        if tree_path(args, format!("{dir}/profiles"), true)?.is_dir() {
            dir.push_str("/profiles");
        }
        let host = tree_path(args, &dir, true)?;
        for entry in std::fs::read_dir(&host).map_err(StageError::io("cannot read directory", &host))? {
            let entry = entry.map_err(StageError::io("cannot read directory", &host))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let is_profile = tree_path(args, format!("{dir}/{name}"), true)?.is_dir()
                && tree_path(args, format!("{dir}/{name}/tuned.conf"), true)?.is_file();
            if is_profile {
                out.insert(name);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    fn profile(root: &std::path::Path, dir: &str) {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::write(root.join(dir).join("tuned.conf"), "[main]\n").unwrap();
    }

    #[test]
    fn sets_active_profiles() {
        let t = tempfile::tempdir().unwrap();
        profile(t.path(), "usr/lib/tuned/profiles/sap-hana");
        profile(t.path(), "usr/lib/tuned/old-style"); // ignored: profiles/ exists
        profile(t.path(), "etc/tuned/real");
        std::os::unix::fs::symlink("real", t.path().join("etc/tuned/custom")).unwrap();
        Tuned::execute(&args(t.path(), json!({"profiles": ["sap-hana", "custom"]}))).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("etc/tuned/active_profile")).unwrap(), "sap-hana custom\n");
        assert_eq!(std::fs::read_to_string(t.path().join("etc/tuned/profile_mode")).unwrap(), "manual\n");
        let e = Tuned::execute(&args(t.path(), json!({"profiles": ["old-style"]}))).unwrap_err();
        assert_eq!(e.to_string(), "TuneD profile 'old-style' does not exist");
    }
}
