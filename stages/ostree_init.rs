//! `org.osbuild.ostree.init`: create an empty OSTree repository in the tree with the build
//! root's `ostree init` (`mode` defaults to `archive`, `path` to `repo`), parents created.
//! Like upstream, an existing repository at that path is left as it is (`ostree init` is
//! idempotent).

use super::ostree_util::{ostree, repo_in_tree};
use super::util::create_parents;
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default = "default_mode")]
    pub mode: Mode,
    #[serde(default = "default_path")]
    pub path: String,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
pub enum Mode {
    #[serde(rename = "bare")]
    Bare,
    #[serde(rename = "bare-user")]
    BareUser,
    #[serde(rename = "bare-user-only")]
    BareUserOnly,
    #[serde(rename = "archive")]
    Archive,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::BareUser => "bare-user",
            Mode::BareUserOnly => "bare-user-only",
            Mode::Archive => "archive",
        }
    }
}

fn default_mode() -> Mode {
    Mode::Archive
}

fn default_path() -> String {
    "repo".into()
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeInit;

impl Stage for OstreeInit {
    const NAME: &'static str = "org.osbuild.ostree.init";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let repo = repo_in_tree(args, &options.path)?;
        create_parents(&repo.join("x"))?;
        let mode = format!("--mode={}", options.mode.as_str());
        ostree(
            OstreeInit::NAME,
            &["init".as_ref(), "-v".as_ref(), mode.as_ref(), super::ostree_util::repo_arg(&repo).as_os_str()],
        )?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn creates_archive_repo_by_default_and_bare_on_request() {
        let t = tempfile::tempdir().unwrap();
        OstreeInit::execute(&args(t.path(), json!({}))).unwrap();
        let config = std::fs::read_to_string(t.path().join("repo/config")).unwrap();
        assert!(config.contains("mode=archive"), "{config}");
        OstreeInit::execute(&args(t.path(), json!({"path": "/ostree/repo", "mode": "bare"}))).unwrap();
        let config = std::fs::read_to_string(t.path().join("ostree/repo/config")).unwrap();
        assert!(config.contains("mode=bare\n"), "{config}");
        // a second init leaves the repository usable
        OstreeInit::execute(&args(t.path(), json!({}))).unwrap();
        assert!(serde_json::from_value::<Options>(json!({"mode": "zip"})).is_err());
    }
}
