//! `org.osbuild.ostree.init-fs`: make the tree an empty OSTree sysroot
//! (`ostree admin init-fs --modern`), as upstream.

use super::ostree_util::{ostree, sysroot_arg};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeInitFs;

impl Stage for OstreeInitFs {
    const NAME: &'static str = "org.osbuild.ostree.init-fs";
    type Options = Options;

    fn run(args: &StageArgs, _: Options) -> StageResult {
        ostree(
            OstreeInitFs::NAME,
            &[
                "admin".as_ref(),
                "init-fs".as_ref(),
                "--modern".as_ref(),
                args.tree.as_os_str(),
                sysroot_arg(&args.tree).as_os_str(),
            ],
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
    fn makes_a_sysroot() {
        let t = tempfile::tempdir().unwrap();
        OstreeInitFs::execute(&args(t.path(), json!({}))).unwrap();
        for d in ["boot", "ostree/deploy", "ostree/repo/objects"] {
            assert!(t.path().join(d).is_dir(), "{d}");
        }
    }
}
