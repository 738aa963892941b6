//! `org.osbuild.update-crypto-policies`: switch the tree's system-wide crypto policy.
//!
//! As upstream: the tree's own `/usr/bin/update-crypto-policies --set <policy>` is run
//! chrooted into the tree with `/proc` (proc), `/dev` (devtmpfs, or a bind mount of the
//! build root's `/dev` if that is refused) and `/sys` (sysfs) mounted, since the tool reads
//! `/proc/self/mountinfo` (e.g. for FIPS); missing mount points are created first and the
//! mounts are lazily unmounted afterwards (the stage API's `Chroot`). Needs `chroot` in the
//! build root. Unlike upstream, a tree without the tool fails up front with a clear message
//! instead of chroot's "No such file or directory".

use super::util::tree_path;
use super::{StageArgs, StageError, StageResult};
use crate::chroot::{ApiFs, Chroot};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;

const TOOL: &str = "/usr/bin/update-crypto-policies";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub policy: String,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct UpdateCryptoPolicies;

impl Stage for UpdateCryptoPolicies {
    const NAME: &'static str = "org.osbuild.update-crypto-policies";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.policy.is_empty() {
            return Err(StageError::Invalid("policy must not be empty".into()));
        }
        let tool = tree_path(args, TOOL, true)?;
        if !tool.is_file() {
            return Err(StageError::ToolMissing {
                tool: TOOL.into(),
                stage: UpdateCryptoPolicies::NAME,
                place: "in the tree",
            });
        }
        let chroot = Chroot::enter(&args.tree, ApiFs::Fresh)?;
        let result = chroot.command(TOOL).args(["--set", &options.policy]).run(UpdateCryptoPolicies::NAME);
        chroot.close()?;
        result?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn missing_tool_in_tree_is_named() {
        let t = tempfile::tempdir().unwrap();
        let e = UpdateCryptoPolicies::execute(&args(t.path(), json!({"policy": "FIPS"}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/usr/bin/update-crypto-policies not found in the tree, but org.osbuild.update-crypto-policies needs it"
        );
        assert!(!t.path().join("proc").exists(), "nothing mounted or created before the check");
        let e = error_chain(
            &UpdateCryptoPolicies::execute(&args(t.path(), json!({"policy": "FIPS", "x": 1}))).unwrap_err(),
        );
        assert!(e.contains("unknown field `x`"), "{e}");
    }
}
