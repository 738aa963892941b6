//! `org.osbuild.ostree.fillvar`: create the `/var` content a deployment's tmpfiles.d asks
//! for (`/var/lib`, `/var/log`, then `home roothome lib/rpm opt srv usrlocal mnt media spool
//! spool/mail` when missing) in the stateroot's shared `/var`, with the build root's
//! `systemd-tmpfiles --create --boot --root=<deployment> --prefix=/var/<x>`, as upstream
//! (exit code 65, "some lines ignored", counts as success).
//!
//! Upstream bind-mounts the stateroot's `var` onto the deployment's `/var` for that; we do the
//! same (and undo it on every path out).

use super::ostree_util::{find_deployment, DeploymentOption};
use super::{StageArgs, StageError, StageResult};
use crate::sys::{BindFlags, MountGuard};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub deployment: DeploymentOption,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeFillvar;

impl Stage for OstreeFillvar {
    const NAME: &'static str = "org.osbuild.ostree.fillvar";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let dep = find_deployment(&args.tree, &options.deployment)?;
        let var = dep.stateroot(&args.tree).join("var");
        let target = dep.path.join("var");
        std::fs::create_dir_all(&target).map_err(StageError::io("cannot create directory", &target))?;
        let mut mount = MountGuard::new();
        mount.bind(&var, &target, BindFlags::default())?;
        let meta = populate_var(&dep.path)?;
        mount.close()?;
        Ok(meta)
    }
}

fn populate_var(sysroot: &std::path::Path) -> StageResult {
    for d in ["lib", "log"] {
        let p = sysroot.join("var").join(d);
        std::fs::create_dir_all(&p).map_err(StageError::io("cannot create directory", &p))?;
    }
    for d in ["home", "roothome", "lib/rpm", "opt", "srv", "usrlocal", "mnt", "media", "spool", "spool/mail"] {
        if std::fs::symlink_metadata(sysroot.join("var").join(d)).is_ok() {
            continue;
        }
        let mut cmd = Command::new("systemd-tmpfiles");
        cmd.args(["--create", "--boot"])
            .arg(format!("--root={}", sysroot.display()))
            .arg(format!("--prefix=/var/{d}"))
            .stdout(std::process::Stdio::from(std::io::stderr()));
        match cmd.run(OstreeFillvar::NAME) {
            Ok(()) => {}
            // 65 (EX_DATAERR): some lines did not apply, which upstream accepts too
            Err(StageError::ToolFailed { status, .. }) if status.code() == Some(65) => {}
            Err(e) => return Err(e.context(format!("failed to provision /var/{d}"))),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn tmpfiles_of_the_deployment_fill_var() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("usr/lib/tmpfiles.d")).unwrap();
        std::fs::create_dir_all(root.join("usr/etc")).unwrap();
        std::fs::write(
            root.join("usr/lib/tmpfiles.d/x.conf"),
            "d /var/home 0755 root root - -\nd /var/roothome 0700 root root - -\nL /var/lib/rpm - - - - ../../usr/share/rpm\n",
        )
        .unwrap();
        populate_var(root).unwrap();
        assert_eq!(std::fs::metadata(root.join("var/roothome")).unwrap().mode() & 0o7777, 0o700);
        assert!(root.join("var/home").is_dir() && root.join("var/log").is_dir());
        assert_eq!(std::fs::read_link(root.join("var/lib/rpm")).unwrap(), std::path::Path::new("../../usr/share/rpm"));
    }
}
