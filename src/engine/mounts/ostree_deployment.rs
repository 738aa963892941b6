//! `org.osbuild.ostree.deployment`: make the tree (or the disk mounted at the mounts
//! directory's `/`) look like the booted deployment, as ostree does at boot: the deployment's
//! root over the target, with the physical root at `/sysroot`, the stateroot's `var` at
//! `/var` and `/boot` bound in.
//!
//! The ref is resolved as libostree does ([`ostree_ref`]), so `ref` may name a ref that
//! `ostree.deploy` pulled under a remote without naming the remote, `remote:ref`, or a commit.
//!
//! Confinement: the stateroot, the deployment, its `var` and `/boot` are opened inside the
//! target, and the mount points `sysroot`, `var`, `boot` inside the deployment (its own
//! symlinks mean what they mean there); every bind is made between those descriptors. A tree
//! whose `/boot` or stateroot `var` is a symlink to a host directory binds the tree's own
//! directory of that name, or fails; never the host's.

use super::{count, Context, MountError, MountService, Mounted};
use crate::manifest::Mount;
use osbuild_stage_api::ostree_ref::{self, Lookup};
use osbuild_sys::{bind_fd, is_plain_name, move_fd, EntryKind, FdMount, Root};
use serde::Deserialize;
use serde_json::{json, Number};
use std::os::fd::AsFd;

pub struct OstreeDeployment;

#[derive(Debug, Deserialize)]
pub struct DeploymentOptions {
    /// `tree` (the default) or `mount`.
    source: Option<String>,
    deployment: Deployment,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    osname: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    serial: Option<Number>,
    #[serde(default)]
    default: bool,
}

impl MountService for OstreeDeployment {
    const NAME: &'static str = "org.osbuild.ostree.deployment";
    type Options = DeploymentOptions;

    fn mount(cx: &mut Context<'_>, _m: &Mount, o: DeploymentOptions) -> Result<Mounted, MountError> {
        let target = match o.source.as_deref().unwrap_or("tree") {
            "tree" => cx.tree_root()?,
            "mount" => cx.mounts()?,
            other => {
                return Err(MountError::Invalid {
                    field: &["options", "source"],
                    message: format!("must be 'tree' or 'mount', not '{other}'"),
                })
            }
        };
        // The target bound onto itself first (a private mount of its own), so the deployment
        // can be moved over it and both come off again in reverse order.
        let physical = bind_fd(target.fd(), target.fd(), false)?;
        let mut made = vec![physical];
        match deploy(&made[0], &o.deployment) {
            Ok(deployment) => {
                made.push(deployment);
                Ok(Mounted { mounts: made, sync: false, args: json!({}) })
            }
            Err(e) => {
                for m in made.into_iter().rev() {
                    let _ = m.unmount();
                }
                Err(e)
            }
        }
    }
}

/// Mount the deployment `spec` names over `physical` (the target's own mount): its root
/// bound onto itself with `sysroot`, `var` and `boot` bound in, then moved over `physical`.
fn deploy(physical: &FdMount, spec: &Deployment) -> Result<FdMount, MountError> {
    let root = physical.as_root()?;
    let (osname, commit, serial) = which(&root, spec)?;
    let stateroot = format!("ostree/deploy/{osname}");
    let dir = root.open_path(format!("{stateroot}/deploy/{commit}.{serial}"), true).map_err(|source| {
        MountError::MissingDeployment { deployment: format!("{osname}/deploy/{commit}.{serial}"), source }
    })?;
    let var = root.open_path(format!("{stateroot}/var"), true).map_err(|source| MountError::Path {
        what: "the stateroot's var",
        field: &[],
        source,
    })?;
    let boot = root.open_path("boot", true).map_err(|source| MountError::Path {
        what: "the physical root's boot",
        field: &[],
        source,
    })?;

    let mut deployment = bind_fd(dir.as_fd(), dir.as_fd(), false)?;
    let result = (|| -> Result<(), MountError> {
        // Mount points inside the deployment, resolved in it: it is `/` for the stage.
        let inside = deployment.as_root()?;
        let point = |name: &'static str| {
            inside.open_path(name, true).map_err(|source| MountError::Path {
                what: "a deployment mount point",
                field: &[],
                source,
            })
        };
        bind_fd(physical.root(), point("sysroot")?.as_fd(), false)?;
        bind_fd(var.as_fd(), point("var")?.as_fd(), false)?;
        bind_fd(boot.as_fd(), point("boot")?.as_fd(), false)?;
        move_fd(&mut deployment, physical.root())?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(deployment),
        Err(e) => {
            // The binds made below it go with it.
            let _ = deployment.unmount();
            Err(e)
        }
    }
}

/// Stateroot, commit and serial of the deployment: the only one with serial 0 (`default`),
/// or `osname`'s deployment of the commit `ref` resolves to in the target's repository.
fn which(root: &Root, spec: &Deployment) -> Result<(String, String, u64), MountError> {
    if spec.default {
        return default_deployment(root);
    }
    let osname = spec.osname.clone().ok_or(MountError::Invalid {
        field: &["options", "deployment", "osname"],
        message: "osname is required (or default: true)".into(),
    })?;
    if !is_plain_name(&osname) {
        return Err(MountError::Invalid {
            field: &["options", "deployment", "osname"],
            message: format!("'{osname}' is not a stateroot name"),
        });
    }
    let reference = spec.reference.as_deref().ok_or(MountError::Invalid {
        field: &["options", "deployment", "ref"],
        message: "ref is required (or default: true)".into(),
    })?;
    let serial = count(&spec.serial, &["options", "deployment", "serial"])?.unwrap_or(0);
    let repo = root.open_dir("ostree/repo").map_err(|source| MountError::Path {
        what: "the ostree repository",
        field: &[],
        source,
    })?;
    let commit = ostree_ref::resolve_rev(&repo, reference, Lookup::WithRemotes)?;
    Ok((osname, commit, serial))
}

/// Upstream's `default: true`: the only `ostree/deploy/*/deploy/*.0`.
fn default_deployment(root: &Root) -> Result<(String, String, u64), MountError> {
    let list = |rel: &str| match root.read_dir(rel) {
        Ok(entries) => Ok(entries),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(source) => Err(MountError::Path { what: "the deployments", field: &[], source }),
    };
    let mut found = vec![];
    for os in list("ostree/deploy")?.into_iter().filter(|e| e.kind == EntryKind::Dir) {
        let os = os.name.to_string_lossy().into_owned();
        for d in list(&format!("ostree/deploy/{os}/deploy"))?.into_iter().filter(|e| e.kind == EntryKind::Dir) {
            if let Some(commit) = d.name.to_string_lossy().strip_suffix(".0") {
                found.push((os.clone(), commit.to_owned(), 0));
            }
        }
    }
    match found.len() {
        0 => Err(MountError::NoDeployment { root: root.path().to_owned() }),
        1 => Ok(found.remove(0)),
        _ => Err(MountError::ManyDeployments {
            found: found.into_iter().map(|(os, c, _)| format!("{os}/{c}.0")).collect(),
        }),
    }
}
