//! `org.osbuild.chmod`: change file modes in the tree with the build root's `chmod`
//! (symbolic or octal modes, optionally recursive).

use super::util::{tree_path, Ordered};
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Absolute path in the tree -> what to do with it.
    #[serde(default)]
    pub items: Ordered<Item>,
}

/// Upstream allows further keys here, so unknown keys are ignored.
#[derive(Debug, Deserialize)]
pub struct Item {
    /// Symbolic (`a+x`) or octal (`0755`) mode, as `chmod` takes it.
    pub mode: String,
    #[serde(default)]
    pub recursive: bool,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Chmod;

impl Stage for Chmod {
    const NAME: &'static str = "org.osbuild.chmod";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        for (path, item) in &options.items.0 {
            // chmod follows a symlink named on its command line: resolve it inside the tree
            let real = tree_path(args, path, true)?;
            if std::fs::symlink_metadata(&real).is_err() {
                return Err(StageError::Invalid(format!("path {path} not in tree")));
            }
            let mut cmd = Command::new("chmod");
            cmd.arg(&item.mode);
            if item.recursive {
                cmd.arg("--recursive");
            }
            cmd.arg("--").arg(&real);
            cmd.run(Chmod::NAME)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &std::path::Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn symbolic_octal_and_recursive() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        fs::write(tree.join("testfile"), "").unwrap();
        fs::set_permissions(tree.join("testfile"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::create_dir_all(tree.join("d/e")).unwrap();
        fs::write(tree.join("d/e/f"), "").unwrap();
        let a = args(
            tree,
            json!({"items": {
                "/testfile": {"mode": "a+x"},
                "/d": {"mode": "0700", "recursive": true},
                "/d/e/f": {"mode": "600"},
            }}),
        );
        Chmod::execute(&a).unwrap();
        assert_eq!(mode(&tree.join("testfile")), 0o755);
        assert_eq!(mode(&tree.join("d/e")), 0o700);
        assert_eq!(mode(&tree.join("d/e/f")), 0o600);
    }

    #[test]
    fn missing_path_and_escaping_link() {
        let host = tempfile::tempdir().unwrap();
        let victim = host.path().join("f");
        fs::write(&victim, "").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        let e = Chmod::execute(&args(tree, json!({"items": {"/nope": {"mode": "0755"}}}))).unwrap_err();
        assert_eq!(e.to_string(), "path /nope not in tree");
        std::os::unix::fs::symlink(&victim, tree.join("link")).unwrap();
        Chmod::execute(&args(tree, json!({"items": {"/link": {"mode": "0755"}}}))).unwrap_err();
        assert_eq!(mode(&victim), 0o644);
    }
}
