//! `org.osbuild.chown`: change owner and group of paths in the tree.
//!
//! Upstream runs `chown` chrooted into the tree so names resolve against the tree's own
//! users and groups. We do the same lookup in the tree's `/etc/passwd` and `/etc/group`
//! (then in `/usr/lib/passwd` and `/usr/lib/group`, as nss-altfiles on ostree systems;
//! numeric ids pass through) and change ownership directly, which gives the same result
//! without needing `chown` inside the tree. As with `chown`, a symlink named directly is
//! followed (inside the tree), while `recursive` acts on links themselves and never
//! descends through them.

use super::util::{tree_path, walk_error, Ordered};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub items: Ordered<Item>,
}

/// Upstream allows further keys here, so unknown keys are ignored.
#[derive(Debug, Deserialize)]
pub struct Item {
    pub user: Option<Id>,
    pub group: Option<Id>,
    #[serde(default)]
    pub recursive: bool,
}

/// A name or a numeric id.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Num(u32),
    Name(String),
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Chown;

impl Stage for Chown {
    const NAME: &'static str = "org.osbuild.chown";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        for (path, item) in &options.items.0 {
            if item.user.is_none() && item.group.is_none() {
                return Err(StageError::Invalid(format!("{path}: neither user nor group given")));
            }
            let uid = item.user.as_ref().map(|u| lookup(args, "/etc/passwd", "user", u)).transpose()?;
            let gid = item.group.as_ref().map(|g| lookup(args, "/etc/group", "group", g)).transpose()?;
            if item.recursive {
                let real = tree_path(args, path, false)?;
                chown_tree(&real, uid, gid)?;
            } else {
                let real = tree_path(args, path, true)?;
                std::os::unix::fs::chown(&real, uid, gid).map_err(StageError::io("cannot change owner of", &real))?;
            }
        }
        Ok(None)
    }
}

/// Resolve `id` against the tree's `db` (`/etc/passwd` or `/etc/group`).
fn lookup(args: &StageArgs, db: &str, what: &str, id: &Id) -> Result<u32, StageError> {
    let name = match id {
        Id::Num(n) => return Ok(*n),
        Id::Name(name) => name,
    };
    // /usr/lib/{passwd,group}: where nss-altfiles keeps the system accounts of ostree trees
    let alt = db.replace("/etc/", "/usr/lib/");
    for db in [db, alt.as_str()] {
        let file = tree_path(args, db, true)?;
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for line in text.lines() {
            let mut fields = line.split(':');
            if fields.next() == Some(name.as_str()) {
                if let Some(Ok(n)) = fields.nth(1).map(str::parse) {
                    return Ok(n);
                }
            }
        }
    }
    name.parse().map_err(|_| StageError::Invalid(format!("unknown {what} '{name}' (not in the tree's {db})")))
}

/// `chown -R --no-dereference`: `path` and everything below it, links themselves.
fn chown_tree(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), StageError> {
    for entry in walkdir::WalkDir::new(path).follow_root_links(false) {
        let entry = entry.map_err(|e| walk_error(path, e))?;
        let p = entry.path();
        std::os::unix::fs::lchown(p, uid, gid).map_err(StageError::io("cannot change owner of", p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    fn owner(p: &Path) -> (u32, u32) {
        let m = fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    }

    #[test]
    fn names_resolve_in_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        fs::create_dir_all(tree.join("etc")).unwrap();
        fs::write(tree.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nalice:x:1234:1234::/home/alice:/bin/sh\n")
            .unwrap();
        fs::write(tree.join("etc/group"), "root:x:0:\n").unwrap();
        fs::create_dir_all(tree.join("usr/lib")).unwrap();
        fs::write(tree.join("usr/lib/group"), "staff:x:2345:\n").unwrap();
        fs::write(tree.join("a"), "").unwrap();
        fs::write(tree.join("b"), "").unwrap();
        fs::create_dir_all(tree.join("d/e")).unwrap();
        fs::write(tree.join("d/e/f"), "").unwrap();
        std::os::unix::fs::symlink("/a", tree.join("d/link")).unwrap();
        let a = args(
            tree,
            json!({"items": {
                "/a": {"user": "alice", "group": "staff"},
                "/b": {"group": 77},
                "/d": {"user": 4000, "recursive": true},
            }}),
        );
        Chown::execute(&a).unwrap();
        assert_eq!(owner(&tree.join("a")), (1234, 2345));
        assert_eq!(owner(&tree.join("b")), (0, 77));
        assert_eq!(owner(&tree.join("d/e/f")).0, 4000);
        assert_eq!(owner(&tree.join("d/link")).0, 4000);
        // the link's target was not touched by the recursive walk
        assert_eq!(owner(&tree.join("a")), (1234, 2345));
    }

    #[test]
    fn unknown_name_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("a"), "").unwrap();
        let e = Chown::execute(&args(t.path(), json!({"items": {"/a": {"user": "nobody-here"}}}))).unwrap_err();
        assert_eq!(e.to_string(), "unknown user 'nobody-here' (not in the tree's /etc/passwd)");
    }
}
