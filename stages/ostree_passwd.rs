//! `org.osbuild.ostree.passwd`: seed the tree's `/etc/passwd` and `/etc/group` (and
//! `/etc/subuid`, `/etc/subgid`) from a previous commit, so a new commit keeps its users' ids.
//! The `commits` input is an `org.osbuild.ostree.checkout` of exactly one commit; as upstream,
//! a name's line from `usr/etc/<file>` of the checkout wins over the one in `usr/lib/<file>`
//! (which must exist), lines keep their order (etc first, then lib), and the sub-id files come
//! from `usr/etc/sub{u,g}id` when present.
//!
//! Kept from upstream for identical output: the sub-id files are written with an empty line
//! between entries.

use super::ostree_util::input_commits;
use super::util::{tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {}

/// `name -> line` (each line with its newline), in file order; the first file's lines win.
#[derive(Default)]
struct PasswdLike(Vec<(String, String)>);

impl PasswdLike {
    fn merge(&mut self, path: &Path, allow_missing: bool) -> Result<(), StageError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if allow_missing && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StageError::Io { op: "cannot read", path: path.to_owned(), source: e }),
        };
        let mut own: Vec<(String, String)> = Vec::new();
        for line in text.split_inclusive('\n') {
            let name = line.split(':').next().unwrap_or_default().to_owned();
            match own.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = line.to_owned(), // later lines replace, as a dict does
                None => own.push((name, line.to_owned())),
            }
        }
        for (name, line) in own {
            if !self.0.iter().any(|(n, _)| *n == name) {
                self.0.push((name, line));
            }
        }
        Ok(())
    }

    fn text(&self) -> String {
        self.0.iter().map(|(_, l)| l.as_str()).collect()
    }
}

fn subids(path: &Path, db: &mut Vec<(String, String, String)>) -> Result<(), StageError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StageError::Io { op: "cannot read", path: path.to_owned(), source: e }),
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 3 {
            eprintln!("WARNING: invalid line `{line}`");
            continue;
        }
        match db.iter_mut().find(|(n, _, _)| n == f[0]) {
            Some(e) => *e = (f[0].into(), f[1].into(), f[2].into()),
            None => db.push((f[0].into(), f[1].into(), f[2].into())),
        }
    }
    Ok(())
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreePasswd;

impl Stage for OstreePasswd {
    const NAME: &'static str = "org.osbuild.ostree.passwd";
    type Options = Options;

    fn run(args: &StageArgs, _: Options) -> StageResult {
        let (root, commits) = input_commits(args, "commits")?;
        if commits.len() != 1 {
            return Err(StageError::Invalid("only one commit is supported".into()));
        }
        let etc = tree_path(args, "/etc", true)?;
        std::fs::create_dir_all(&etc).map_err(StageError::io("cannot create directory", &etc))?;
        let c = &commits[0];
        let rel = c.data.get("path").and_then(|p| p.as_str()).unwrap_or(&c.commit).trim_start_matches('/').to_owned();
        let checkout = super::util::resolve_in_root(&root, &rel, true)?;
        for file in ["passwd", "group"] {
            let mut db = PasswdLike::default();
            db.merge(&checkout.join("usr/etc").join(file), true)?;
            db.merge(&checkout.join("usr/lib").join(file), false)?;
            write_file(&tree_path(args, format!("/etc/{file}"), false)?, db.text().as_bytes(), 0o644)?;
        }
        for file in ["subuid", "subgid"] {
            let mut db = Vec::new();
            subids(&checkout.join("usr/etc").join(file), &mut db)?;
            if !db.is_empty() {
                let text = db.iter().map(|(n, u, c)| format!("{n}:{u}:{c}\n")).collect::<Vec<_>>().join("\n");
                write_file(&tree_path(args, format!("/etc/{file}"), false)?, text.as_bytes(), 0o644)?;
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

    #[test]
    fn merges_etc_over_lib() {
        let t = tempfile::tempdir().unwrap();
        let co = t.path().join("input/abc");
        std::fs::create_dir_all(co.join("usr/etc")).unwrap();
        std::fs::create_dir_all(co.join("usr/lib")).unwrap();
        std::fs::write(co.join("usr/etc/passwd"), "root:x:0:0::/root:/bin/sh\ntest:x:1000:1000::/home/test:/bin/sh\n")
            .unwrap();
        std::fs::write(co.join("usr/lib/passwd"), "root:x:0:0:lib:/root:/bin/sh\nbin:x:1:1::/:/sbin/nologin\n")
            .unwrap();
        std::fs::write(co.join("usr/lib/group"), "root:x:0:\nwheel:x:10:\n").unwrap();
        std::fs::write(co.join("usr/etc/subuid"), "test:100000:65536\n# c\nalice:200000:65536\n").unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        let mut a = args(&tree, json!({}));
        a.inputs.insert(
            "commits".into(),
            json!({"path": t.path().join("input"), "data": {"refs": {"abc": {"path": "abc"}}}}),
        );
        OstreePasswd::execute(&a).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("etc/passwd")).unwrap(),
            "root:x:0:0::/root:/bin/sh\ntest:x:1000:1000::/home/test:/bin/sh\nbin:x:1:1::/:/sbin/nologin\n"
        );
        assert_eq!(std::fs::read_to_string(tree.join("etc/group")).unwrap(), "root:x:0:\nwheel:x:10:\n");
        assert_eq!(
            std::fs::read_to_string(tree.join("etc/subuid")).unwrap(),
            "test:100000:65536\n\nalice:200000:65536\n"
        );
        assert!(!tree.join("etc/subgid").exists());
        // usr/lib/group is required
        std::fs::remove_file(co.join("usr/lib/group")).unwrap();
        assert!(OstreePasswd::execute(&a).unwrap_err().to_string().contains("usr/lib/group"));
    }
}
