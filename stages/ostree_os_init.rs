//! `org.osbuild.ostree.os-init`: create the stateroot `osname` in the sysroot that is the
//! tree (`ostree admin os-init`), as upstream.

use super::ostree_util::{ostree, sysroot_arg};
use super::{StageArgs, StageResult};
use serde::Deserialize;

const STAGE: &str = "org.osbuild.ostree.os-init";

#[derive(Debug, Deserialize)]
pub struct Options {
    pub osname: String,
}

pub fn run(args: &StageArgs) -> StageResult {
    let options: Options = args.parse_options(STAGE)?;
    ostree(
        STAGE,
        &["admin".as_ref(), "os-init".as_ref(), options.osname.as_ref(), sysroot_arg(&args.tree).as_os_str()],
    )?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testutil::args;
    use serde_json::json;

    #[test]
    fn creates_the_stateroot() {
        let t = tempfile::tempdir().unwrap();
        super::super::ostree_init_fs::run(&args(t.path(), json!({}))).unwrap();
        run(&args(t.path(), json!({"osname": "fedora-iot"}))).unwrap();
        assert!(t.path().join("ostree/deploy/fedora-iot/var").is_dir());
        assert!(t.path().join("ostree/repo/config").is_file());
    }
}
