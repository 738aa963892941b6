//! `org.osbuild.ostree.sign`: sign a commit (by ref or checksum) in a repository of the tree
//! with an ed25519 secret key file from the tree (`ostree sign --keys-file`), as upstream.
//! An `ostree` without `--keys-file` (before 2023.1, e.g. Debian 12's) gets the key read
//! from that file as its KEY-ID argument instead, which it accepts as well (the key is then
//! visible in the sandboxed process list for the time of the call).

use super::ostree_util::{ostree, repo_arg, repo_in_tree};
use super::util::tree_path;
use super::{StageArgs, StageError, StageResult};
use serde::Deserialize;

const STAGE: &str = "org.osbuild.ostree.sign";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub repo: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub key: String,
}

pub fn run(args: &StageArgs) -> StageResult {
    let options: Options = args.parse_options(STAGE)?;
    let repo = repo_in_tree(args, &options.repo)?;
    let key = tree_path(args, &options.key, true)?;
    let help = super::ostree_util::ostree_output(STAGE, &["sign".as_ref(), "--help".as_ref()])?;
    let mut keys = std::ffi::OsString::new();
    if help.contains("--keys-file") {
        keys.push("--keys-file=");
        keys.push(&key);
    } else {
        let text = std::fs::read_to_string(&key).map_err(StageError::io("cannot read", &key))?;
        keys.push(text.trim());
    }
    ostree(STAGE, &["sign".as_ref(), options.reference.as_ref(), repo_arg(&repo).as_os_str(), keys.as_os_str()])?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testutil::args;
    use serde_json::json;
    use std::process::Command;

    #[test]
    fn signs_and_verifies_with_a_generated_key() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        super::super::ostree_genkey::run(&args(root, json!({"publickey": "/k/pub", "secretkey": "/k/sec"}))).unwrap();
        std::fs::create_dir_all(root.join("repo")).unwrap();
        std::fs::create_dir_all(root.join("content/usr")).unwrap();
        let repo = repo_arg(&root.join("repo"));
        assert!(Command::new("ostree").args(["init", "--mode=archive"]).arg(&repo).status().unwrap().success());
        let c = Command::new("ostree")
            .arg(&repo)
            .args(["commit", "-b", "os/ref"])
            .arg(format!("--tree=dir={}", root.join("content").display()))
            .output()
            .unwrap();
        assert!(c.status.success());
        run(&args(root, json!({"repo": "/repo", "ref": "os/ref", "key": "/k/sec"}))).unwrap();
        let public = std::fs::read_to_string(root.join("k/pub")).unwrap();
        let v = Command::new("ostree").arg(&repo).args(["sign", "--verify", "os/ref", &public]).output().unwrap();
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
        // a different key does not verify
        super::super::ostree_genkey::run(&args(root, json!({"publickey": "/k/pub2", "secretkey": "/k/sec2"}))).unwrap();
        let other = std::fs::read_to_string(root.join("k/pub2")).unwrap();
        let v = Command::new("ostree").arg(&repo).args(["sign", "--verify", "os/ref", &other]).output().unwrap();
        assert!(!v.status.success());
    }
}
