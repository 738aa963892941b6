//! `org.osbuild.ln`: create symbolic or hard links in the tree or a mount.
//!
//! The link itself is placed through the confined resolver. A symlink's target is stored
//! verbatim (it is only text). For a hard link, upstream links to `target` as a host path;
//! we take `target` inside the same root as the link instead (absolute: from the root,
//! relative: from the link's directory), so a hard link can never reach a host file.

use super::util::{location, location_parts, resolve_in_root};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub paths: Vec<Item>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub target: String,
    /// `tree:///p` or `mount://NAME/p`.
    pub link_name: String,
    #[serde(default)]
    pub symbolic: bool,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Ln;

impl Stage for Ln {
    const NAME: &'static str = "org.osbuild.ln";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        for item in &options.paths {
            let link = location(&item.link_name, args, false)?;
            println!("Linking '{}' -> '{}'", link.display(), item.target);
            if item.symbolic {
                println!("Creating symbolic link: '{}' -> '{}'", link.display(), item.target);
                std::os::unix::fs::symlink(&item.target, &link)
                    .map_err(StageError::io("cannot create symlink", &link))?;
            } else {
                let (root, path) = location_parts(&item.link_name, args)?;
                let target = if Path::new(&item.target).is_absolute() {
                    resolve_in_root(&root, &item.target, false)?
                } else {
                    let dir = Path::new(&path).parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("/"));
                    resolve_in_root(&root, dir.join(&item.target), false)?
                };
                println!("Creating hard link: '{}' -> '{}'", link.display(), target.display());
                std::fs::hard_link(&target, &link).map_err(StageError::io("cannot create hard link", &link))?;
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
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn symbolic_and_hard_links() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        fs::create_dir_all(tree.join("usr/bin")).unwrap();
        fs::write(tree.join("usr/bin/python3"), "py").unwrap();
        let a = args(
            tree,
            json!({"paths": [
                {"target": "/usr/bin/python3", "link_name": "tree:///usr/bin/python", "symbolic": true},
                {"target": "/usr/bin/python3", "link_name": "tree:///usr/bin/py-abs"},
                {"target": "python3", "link_name": "tree:///usr/bin/py-rel"},
            ]}),
        );
        Ln::execute(&a).unwrap();
        assert_eq!(fs::read_link(tree.join("usr/bin/python")).unwrap(), Path::new("/usr/bin/python3"));
        assert_eq!(fs::metadata(tree.join("usr/bin/python3")).unwrap().nlink(), 3);
        assert_eq!(fs::read_to_string(tree.join("usr/bin/py-rel")).unwrap(), "py");
    }

    #[test]
    fn hard_link_target_is_confined() {
        let t = tempfile::tempdir().unwrap();
        let a = args(t.path(), json!({"paths": [{"target": "/etc/passwd", "link_name": "tree:///pw"}]}));
        let e = Ln::execute(&a).unwrap_err().to_string();
        assert!(e.starts_with("cannot create hard link"), "{e}");
        assert!(!t.path().join("pw").exists());
    }

    #[test]
    fn existing_link_name_fails() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("x"), "").unwrap();
        let a = args(t.path(), json!({"paths": [{"target": "y", "link_name": "tree:///x", "symbolic": true}]}));
        assert!(Ln::execute(&a).unwrap_err().to_string().contains("cannot create symlink"));
    }
}
