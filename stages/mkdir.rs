//! `org.osbuild.mkdir`: create directories in the tree or in a mount.

use super::util::location;
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::os::unix::fs::DirBuilderExt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub paths: Vec<Item>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// `tree:///p`, `mount://NAME/p`, or a plain path in the tree.
    pub path: String,
    /// Numeric mode (the process umask applies, as with `mkdir(2)`); default 0o777.
    pub mode: Option<u32>,
    #[serde(default)]
    pub parents: bool,
    #[serde(default)]
    pub exist_ok: bool,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Mkdir;

impl Stage for Mkdir {
    const NAME: &'static str = "org.osbuild.mkdir";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        for item in &options.paths {
            let mut path = item.path.clone();
            if !path.contains("://") && !path.starts_with('/') {
                println!("WARNING: relative path used, this is discouraged!");
                path = format!("tree:///{path}");
            }
            let target = location(&path, args, false)?;
            let mode = item.mode.unwrap_or(0o777);
            let err = StageError::io("cannot create directory", &target);
            if item.parents {
                if let Some(parent) = target.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o777)
                        .create(parent)
                        .map_err(StageError::io("cannot create directory", parent))?;
                }
                match std::fs::DirBuilder::new().mode(mode).create(&target) {
                    Ok(()) => {}
                    // like os.makedirs: an existing directory (or link to one in the tree) is fine
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && item.exist_ok => {
                        let followed = location(&path, args, true)?;
                        if !followed.is_dir() {
                            return Err(err(e));
                        }
                    }
                    Err(e) => return Err(err(e)),
                }
            } else {
                match std::fs::DirBuilder::new().mode(mode).create(&target) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && item.exist_ok => {}
                    Err(e) => return Err(err(e)),
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_directories_with_modes() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        let a = args(
            tree,
            json!({"paths": [
                {"path": "/boot", "mode": 0o700},
                {"path": "images"},
                {"path": "tree:///usr/share/osbuild/oscap", "parents": true, "mode": 0o750},
            ]}),
        );
        Mkdir::execute(&a).unwrap();
        assert_eq!(mode(&tree.join("boot")), 0o700);
        assert!(tree.join("images").is_dir());
        assert_eq!(mode(&tree.join("usr/share/osbuild/oscap")), 0o750);
    }

    #[test]
    fn exist_ok() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        std::fs::create_dir(tree.join("d")).unwrap();
        let e = Mkdir::execute(&args(tree, json!({"paths": [{"path": "/d"}]}))).unwrap_err();
        assert!(e.to_string().starts_with("cannot create directory"), "{e}");
        Mkdir::execute(&args(tree, json!({"paths": [{"path": "/d", "exist_ok": true}]}))).unwrap();
        Mkdir::execute(&args(tree, json!({"paths": [{"path": "/d", "exist_ok": true, "parents": true}]}))).unwrap();
        std::fs::write(tree.join("f"), "").unwrap();
        Mkdir::execute(&args(tree, json!({"paths": [{"path": "/f", "exist_ok": true, "parents": true}]}))).unwrap_err();
    }

    #[test]
    fn mkdir_through_absolute_symlink_stays_in_tree() {
        let host = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        std::os::unix::fs::symlink(host.path(), tree.join("escape")).unwrap();
        Mkdir::execute(&args(tree, json!({"paths": [{"path": "/escape/new", "parents": true}]}))).unwrap();
        assert!(!host.path().join("new").exists());
        assert!(tree.join(host.path().strip_prefix("/").unwrap()).join("new").is_dir());
    }

    #[test]
    fn mount_urls() {
        let t = tempfile::tempdir().unwrap();
        let mut a = args(t.path(), json!({"paths": [{"path": "mount://root/boot", "mode": 493}]}));
        let m = tempfile::tempdir().unwrap();
        a.mounts.insert("root".into(), json!({"path": m.path()}));
        Mkdir::execute(&a).unwrap();
        assert_eq!(mode(&m.path().join("boot")), 0o755);
    }
}
