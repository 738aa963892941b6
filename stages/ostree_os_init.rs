//! `org.osbuild.ostree.os-init`: create the stateroot `osname` in the sysroot that is the
//! tree (`ostree admin os-init`), as upstream.

use super::ostree_util::{ostree, sysroot_arg};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Options {
    pub osname: String,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeOsInit;

impl Stage for OstreeOsInit {
    const NAME: &'static str = "org.osbuild.ostree.os-init";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        ostree(
            OstreeOsInit::NAME,
            &["admin".as_ref(), "os-init".as_ref(), options.osname.as_ref(), sysroot_arg(&args.tree).as_os_str()],
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
    fn creates_the_stateroot() {
        let t = tempfile::tempdir().unwrap();
        <super::super::ostree_init_fs::OstreeInitFs as Stage>::execute(&args(t.path(), json!({}))).unwrap();
        OstreeOsInit::execute(&args(t.path(), json!({"osname": "fedora-iot"}))).unwrap();
        assert!(t.path().join("ostree/deploy/fedora-iot/var").is_dir());
        assert!(t.path().join("ostree/repo/config").is_file());
    }
}
