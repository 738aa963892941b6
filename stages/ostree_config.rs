//! `org.osbuild.ostree.config`: set `sysroot.*` keys (`bootloader`, `bootprefix`,
//! `readonly`, `bls-append-except-default`) in the config of a repository in the tree with
//! `ostree config set`, as upstream (booleans as `true`/`false`; unset keys are left alone).

use super::ostree_util::{ostree, repo_arg, repo_in_tree};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub repo: String,
    #[serde(default)]
    pub config: Config,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub sysroot: Sysroot,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sysroot {
    pub bootloader: Option<String>,
    pub bootprefix: Option<bool>,
    pub readonly: Option<bool>,
    #[serde(rename = "bls-append-except-default")]
    pub bls_append_except_default: Option<String>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeConfig;

impl Stage for OstreeConfig {
    const NAME: &'static str = "org.osbuild.ostree.config";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let repo = repo_in_tree(args, &options.repo)?;
        let s = &options.config.sysroot;
        let mut set = Vec::new();
        if let Some(b) = s.bootloader.as_deref().filter(|b| !b.is_empty()) {
            set.push(("sysroot.bootloader", b.to_owned()));
        }
        if let Some(b) = s.bootprefix {
            set.push(("sysroot.bootprefix", b.to_string()));
        }
        if let Some(b) = s.readonly {
            set.push(("sysroot.readonly", b.to_string()));
        }
        if let Some(b) = s.bls_append_except_default.as_deref().filter(|b| !b.is_empty()) {
            set.push(("sysroot.bls-append-except-default", b.to_owned()));
        }
        for (key, value) in set {
            ostree(
                OstreeConfig::NAME,
                &["config".as_ref(), "set".as_ref(), key.as_ref(), value.as_ref(), repo_arg(&repo).as_os_str()],
            )?;
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
    fn sets_sysroot_keys() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("ostree/repo");
        std::fs::create_dir_all(&repo).unwrap();
        assert!(Command::new("ostree").args(["init", "--mode=bare"]).arg(repo_arg(&repo)).status().unwrap().success());
        let o = json!({"repo": "/ostree/repo", "config": {"sysroot": {"readonly": true, "bootloader": "none", "bootprefix": false}}});
        OstreeConfig::execute(&args(t.path(), o)).unwrap();
        let config = std::fs::read_to_string(repo.join("config")).unwrap();
        let section = config.split("[sysroot]").nth(1).unwrap_or_else(|| panic!("{config}"));
        for kv in ["readonly=true", "bootloader=none", "bootprefix=false"] {
            assert!(section.lines().any(|l| l == kv), "{kv} in {config}");
        }
        assert!(serde_json::from_value::<Options>(json!({"repo": "/r", "config": {"core": {}}})).is_err());
    }
}
