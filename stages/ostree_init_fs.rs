//! `org.osbuild.ostree.init-fs`: make the tree an empty OSTree sysroot
//! (`ostree admin init-fs --modern`), as upstream.

use super::ostree_util::{ostree, sysroot_arg};
use super::{StageArgs, StageResult};
use serde::Deserialize;

const STAGE: &str = "org.osbuild.ostree.init-fs";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {}

pub fn run(args: &StageArgs) -> StageResult {
    let _: Options = args.parse_options(STAGE)?;
    ostree(
        STAGE,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testutil::args;
    use serde_json::json;

    #[test]
    fn makes_a_sysroot() {
        let t = tempfile::tempdir().unwrap();
        run(&args(t.path(), json!({}))).unwrap();
        for d in ["boot", "ostree/deploy", "ostree/repo/objects"] {
            assert!(t.path().join(d).is_dir(), "{d}");
        }
    }
}
