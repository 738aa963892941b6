//! `org.osbuild.ostree.pull`: copy the commits of the `commits` input (an
//! `org.osbuild.ostree` input) into the repository `repo` of the tree with
//! `ostree pull-local`, under `remote` when given, as upstream.

use super::ostree_deploy::pull_input;
use super::ostree_util::repo_in_tree;
use super::{StageArgs, StageResult};
use serde::Deserialize;

const STAGE: &str = "org.osbuild.ostree.pull";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub repo: String,
    pub remote: Option<String>,
}

pub fn run(args: &StageArgs) -> StageResult {
    let options: Options = args.parse_options(STAGE)?;
    let repo = repo_in_tree(args, &options.repo)?;
    pull_input(STAGE, args, &repo, options.remote.as_deref())?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::ostree_util::repo_arg;
    use crate::stages::testutil::args;
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
        run(&a).unwrap();
        let rev = Command::new("ostree")
            .arg(repo_arg(&tree.join("ostree/repo")))
            .args(["rev-parse", "origin:os/ref"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&rev.stdout).trim(), commit);
    }
}
