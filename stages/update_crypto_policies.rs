//! `org.osbuild.update-crypto-policies`: switch the tree's system-wide crypto policy.
//!
//! As upstream: the tree's own `/usr/bin/update-crypto-policies --set <policy>` is run
//! chrooted into the tree with `/proc` (proc), `/dev` (devtmpfs, or a bind mount of the
//! build root's `/dev` if that is refused) and `/sys` (sysfs) mounted, since the tool reads
//! `/proc/self/mountinfo` (e.g. for FIPS); missing mount points are created first and the
//! mounts are lazily unmounted afterwards. Needs `chroot` and `mount`/`umount` in the build
//! root. Unlike upstream, a tree without the tool fails up front with a clear message
//! instead of chroot's "No such file or directory".

use super::util::{run_tool, tree_path};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

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
        let chroot = Chroot::enter(&args.tree)?;
        let result = run_tool(
            UpdateCryptoPolicies::NAME,
            Command::new("chroot").arg(&args.tree).args([TOOL, "--set", &options.policy]),
        );
        chroot.leave()?;
        result?;
        Ok(None)
    }
}

/// `/proc`, `/dev` and `/sys` mounted in a tree, as upstream's `osbuild.util.chroot.Chroot`.
struct Chroot {
    mounted: Vec<PathBuf>,
}

impl Chroot {
    fn enter(tree: &Path) -> Result<Chroot, StageError> {
        let mut points = Vec::new();
        for d in ["/proc", "/dev", "/sys"] {
            // confined: a symlinked /proc in the tree must not lead outside it
            let p = super::util::resolve_in_root(tree, d, true)?;
            if std::fs::symlink_metadata(&p).is_err() {
                println!("Making missing chroot directory: {d}");
                std::fs::create_dir_all(&p).map_err(StageError::io("cannot create directory", &p))?;
            }
            points.push(p);
        }
        let mut chroot = Chroot { mounted: Vec::new() };
        let mounts: [(&[&str], Option<&[&str]>); 3] = [
            (&["-t", "proc", "-o", "nosuid,noexec,nodev", "proc"], None),
            (&["-t", "devtmpfs", "-o", "mode=0755,noexec,nosuid,strictatime", "devtmpfs"], Some(&["--bind", "/dev"])),
            (&["-t", "sysfs", "-o", "nosuid,noexec,nodev", "sysfs"], None),
        ];
        for (point, (how, fallback)) in points.into_iter().zip(mounts) {
            let mut done = run_tool(UpdateCryptoPolicies::NAME, Command::new("mount").args(how).arg(&point));
            if let (Err(StageError::ToolFailed { .. }), Some(fallback)) = (&done, fallback) {
                done = run_tool(UpdateCryptoPolicies::NAME, Command::new("mount").args(fallback).arg(&point));
            }
            if let Err(e) = done {
                let _ = chroot.leave();
                return Err(e);
            }
            chroot.mounted.push(point);
        }
        Ok(chroot)
    }

    fn leave(self) -> Result<(), StageError> {
        let mut failed = Vec::new();
        for p in &self.mounted {
            if run_tool(UpdateCryptoPolicies::NAME, Command::new("umount").arg("--lazy").arg(p)).is_err() {
                failed.push(p.display().to_string());
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(StageError::Invalid(format!("cannot unmount {}", failed.join(", "))))
        }
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
