//! `org.osbuild.groups`: add groups to the tree with the build root's
//! `groupadd --root <tree>`.

use super::util::Ordered;
use super::{StageArgs, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use serde_json::Number;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Group name -> settings, added in document order.
    #[serde(default)]
    pub groups: Ordered<Group>,
    /// Succeed if a group exists already (and ignore a taken gid), `groupadd --force`.
    #[serde(default)]
    pub force: bool,
}

/// Upstream allows further keys here, so unknown keys are ignored.
#[derive(Debug, Deserialize)]
pub struct Group {
    pub gid: Option<Number>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Groups;

impl Stage for Groups {
    const NAME: &'static str = "org.osbuild.groups";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        for (name, group) in &options.groups.0 {
            let mut cmd = Command::new("groupadd");
            cmd.arg("--root").arg(&args.tree);
            // as upstream: a gid of 0 counts as "not given"
            if let Some(gid) = group.gid.as_ref().filter(|g| g.as_f64() != Some(0.0)) {
                cmd.args(["--gid", &gid.to_string()]);
            }
            if options.force {
                cmd.arg("--force");
            }
            cmd.arg(name);
            cmd.run(Groups::NAME)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use crate::users::tests::etc_tree;
    use serde_json::json;

    #[test]
    fn adds_groups() {
        let t = etc_tree();
        let tree = t.path();
        Groups::execute(&args(tree, json!({"groups": {"testgroup": {"gid": 42042}}}))).unwrap();
        let group = std::fs::read_to_string(tree.join("etc/group")).unwrap();
        assert!(group.contains("testgroup:x:42042:"), "{group}");
        assert!(std::fs::read_to_string(tree.join("etc/gshadow")).unwrap().contains("testgroup:"));
        // again without force: groupadd refuses
        let e = Groups::execute(&args(tree, json!({"groups": {"testgroup": {"gid": 42042}}}))).unwrap_err().to_string();
        assert!(e.contains("groupadd --root") && e.contains("testgroup"), "{e}");
        // with force: an existing group is fine, a taken gid is ignored
        Groups::execute(&args(
            tree,
            json!({"force": true, "groups": {"testgroup": {"gid": 1010}, "newgroup": {"gid": 42042}}}),
        ))
        .unwrap();
        let group = std::fs::read_to_string(tree.join("etc/group")).unwrap();
        assert!(group.lines().any(|l| l.starts_with("newgroup:x:") && !l.contains(":42042:")), "{group}");
    }
}
