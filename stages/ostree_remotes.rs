//! `org.osbuild.ostree.remotes`: add remotes to a repository in the tree, as upstream:
//! `ostree remote add --if-not-exists` with the branches, `contenturl`, and GPG
//! verification off unless keys are given (`gpgkeypaths` sets `gpgkeypath` and turns
//! verification on; `gpgkeys` are imported with `remote gpg-import`).

use super::ostree_util::{ostree, ostree_stdin, repo_arg, repo_in_tree};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::ffi::OsString;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub repo: String,
    #[serde(default)]
    pub remotes: Vec<Remote>,
}

#[derive(Debug, Deserialize)]
pub struct Remote {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub branches: Vec<String>,
    #[serde(default)]
    pub gpgkeys: Vec<String>,
    #[serde(default)]
    pub gpgkeypaths: Vec<String>,
    pub contenturl: Option<String>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeRemotes;

impl Stage for OstreeRemotes {
    const NAME: &'static str = "org.osbuild.ostree.remotes";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let repo = repo_in_tree(args, &options.repo)?;
        for r in &options.remotes {
            let mut argv: Vec<OsString> = vec!["remote".into(), "add".into(), "--if-not-exists".into()];
            if !r.gpgkeypaths.is_empty() {
                argv.push(format!("--set=gpgkeypath={}", r.gpgkeypaths.join(",")).into());
                argv.push("--set=gpg-verify=true".into());
            } else if r.gpgkeys.is_empty() {
                argv.push("--no-gpg-verify".into());
            }
            if let Some(c) = &r.contenturl {
                argv.push(format!("--set=contenturl={c}").into());
            }
            argv.push(r.name.clone().into());
            argv.push(r.url.clone().into());
            argv.extend(r.branches.iter().map(OsString::from));
            argv.push(repo_arg(&repo));
            ostree(OstreeRemotes::NAME, &argv.iter().map(OsString::as_os_str).collect::<Vec<_>>())?;
            for key in &r.gpgkeys {
                ostree_stdin(
                    OstreeRemotes::NAME,
                    &[
                        "remote".as_ref(),
                        "gpg-import".as_ref(),
                        "--stdin".as_ref(),
                        r.name.as_ref(),
                        repo_arg(&repo).as_os_str(),
                    ],
                    key,
                )?;
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
    use std::process::Command;

    #[test]
    fn adds_remotes_with_branches_and_keypaths() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("ostree/repo");
        std::fs::create_dir_all(&repo).unwrap();
        assert!(Command::new("ostree").args(["init", "--mode=bare"]).arg(repo_arg(&repo)).status().unwrap().success());
        let o = json!({"repo": "/ostree/repo", "remotes": [
            {"name": "iot", "url": "http://127.0.0.1/repo", "branches": ["iot/stable"], "contenturl": "http://127.0.0.1/c"},
            {"name": "signed", "url": "http://127.0.0.1/s", "gpgkeypaths": ["/etc/pki/a", "/etc/pki/b"]}]});
        OstreeRemotes::execute(&args(t.path(), o.clone())).unwrap();
        OstreeRemotes::execute(&args(t.path(), o)).unwrap(); // --if-not-exists
        let config = std::fs::read_to_string(repo.join("config")).unwrap();
        assert!(config.contains("[remote \"iot\"]\nurl=http://127.0.0.1/repo\n"), "{config}");
        assert!(config.contains("branches=iot/stable;"), "{config}");
        assert!(config.contains("gpg-verify=false") && config.contains("contenturl=http://127.0.0.1/c"), "{config}");
        assert!(config.contains("gpgkeypath=/etc/pki/a,/etc/pki/b\ngpg-verify=true"), "{config}");
    }
}
