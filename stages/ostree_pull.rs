//! `org.osbuild.ostree.pull`: copy the commits of the `commits` input (an
//! `org.osbuild.ostree` input) into the repository `repo` of the tree with
//! `ostree pull-local`, under `remote` when given, as upstream.

use super::ostree_deploy::pull_input;
use super::ostree_util::repo_in_tree;
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub repo: String,
    pub remote: Option<String>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreePull;

impl Stage for OstreePull {
    const NAME: &'static str = "org.osbuild.ostree.pull";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let repo = repo_in_tree(args, &options.repo)?;
        pull_input(OstreePull::NAME, args, &repo, options.remote.as_deref())?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ostree_util::repo_arg;
    use crate::testutil::args;
    use serde_json::json;
    use std::process::Command;

    #[test]
    fn pulls_input_commits_under_a_remote() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let content = t.path().join("content");
        std::fs::create_dir_all(content.join("usr")).unwrap();
        std::fs::write(content.join("usr/f"), "x").unwrap();
        let ok = |c: &mut Command| assert!(c.status().unwrap().success());
        ok(Command::new("ostree").args(["init", "--mode=archive"]).arg(repo_arg(&src)));
        let out = Command::new("ostree")
            .args(["commit", "-b", "os/ref"])
            .arg(repo_arg(&src))
            .arg(format!("--tree=dir={}", content.display()))
            .output()
            .unwrap();
        let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let tree = t.path().join("tree");
        std::fs::create_dir_all(tree.join("ostree/repo")).unwrap();
        ok(Command::new("ostree").args(["init", "--mode=bare"]).arg(repo_arg(&tree.join("ostree/repo"))));
        let mut a = args(&tree, json!({"repo": "/ostree/repo", "remote": "origin"}));
        a.inputs.insert("commits".into(), json!({"path": src, "data": {"refs": {&commit: {"ref": "os/ref"}}}}));
        OstreePull::execute(&a).unwrap();
        let rev = Command::new("ostree")
            .arg(repo_arg(&tree.join("ostree/repo")))
            .args(["rev-parse", "origin:os/ref"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&rev.stdout).trim(), commit);
    }
}
