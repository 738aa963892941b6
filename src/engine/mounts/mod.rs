//! Mounts: file systems and binds made on the host for one stage (upstream's mount services),
//! under the stage's mounts directory (`/run/osbuild/mounts` in the sandbox) or, for
//! `org.osbuild.ostree.deployment`, over the tree. One type per upstream mount module
//! implements [`MountService`] with typed options; [`REGISTRY`] lists them.
//!
//! Every target and bind source is resolved inside its root ([`Root`], `RESOLVE_IN_ROOT`) and
//! mounted by descriptor ([`osbuild_sys::bind_fd`], [`osbuild_sys::mount_fs_fd`]): whatever
//! symlinks the tree holds, nothing is mounted on, or bound from, the host.

mod bind;
mod fs;
mod ostree_deployment;

use crate::engine::devices::{DeviceError, OpenDevice};
use crate::manifest::Mount;
use crate::registry::{Entry, Registry};
use osbuild_stage_api::ostree_ref::RefError;
use osbuild_sys::{FdMount, PathError, Root, SysError};
use serde::de::DeserializeOwned;
use serde_json::{Number, Value};
use std::path::{Path, PathBuf};

/// What mounting sees: where the tree and the mounts directory are, and the stage's devices.
pub struct Context<'a> {
    /// The tree being built (a trusted host path: the store's work directory).
    pub tree: &'a Path,
    /// The stage's mounts directory (trusted: the stage's scratch directory).
    pub mounts_root: &'a Path,
    pub devices: &'a mut [(String, Box<dyn OpenDevice>)],
}

impl Context<'_> {
    /// The tree as a root, opened now: earlier mounts over it (a deployment) are seen.
    fn tree_root(&self) -> Result<Root, MountError> {
        Root::open(self.tree).map_err(|source| MountError::Path { what: "the tree", field: &[], source })
    }

    /// The mounts directory as a root, opened now, so the mounts made before are crossed.
    fn mounts(&self) -> Result<Root, MountError> {
        Root::open(self.mounts_root).map_err(|source| MountError::Path {
            what: "the mounts directory",
            field: &[],
            source,
        })
    }

    fn device(&mut self, name: &str) -> Result<&mut dyn OpenDevice, MountError> {
        match self.devices.iter_mut().find(|(n, _)| n == name) {
            Some((_, d)) => Ok(d.as_mut()),
            None => Err(MountError::UnknownDevice { name: name.to_owned() }),
        }
    }
}

/// What one mount made: its mounts in the order they were made (undone in reverse), whether
/// their file system must be synced before they go, and upstream's reply for the stage.
pub struct Mounted {
    pub mounts: Vec<FdMount>,
    pub sync: bool,
    pub args: Value,
}

/// One upstream mount module.
pub trait MountService {
    const NAME: &'static str;
    type Options: DeserializeOwned;
    fn mount(cx: &mut Context<'_>, mount: &Mount, options: Self::Options) -> Result<Mounted, MountError>;
}

type MountFn = fn(&mut Context<'_>, &Mount) -> Result<Mounted, MountError>;

const fn entry<M: MountService>() -> Entry<MountFn> {
    Entry { name: M::NAME, run: mount_typed::<M> }
}

fn mount_typed<M: MountService>(cx: &mut Context<'_>, mount: &Mount) -> Result<Mounted, MountError> {
    let options = serde_json::from_value(mount.options.clone()).map_err(MountError::Options)?;
    M::mount(cx, mount, options)
}

/// Every mount module the engine can mount.
pub static REGISTRY: Registry<MountFn> = Registry(&[
    entry::<fs::Ext4>(),
    entry::<fs::Xfs>(),
    entry::<fs::Btrfs>(),
    entry::<fs::Fat>(),
    entry::<fs::Squashfs>(),
    entry::<fs::Erofs>(),
    entry::<bind::Bind>(),
    entry::<ostree_deployment::OstreeDeployment>(),
]);

pub fn is_supported(kind: &str) -> bool {
    REGISTRY.is_supported(kind)
}

pub fn mount(cx: &mut Context<'_>, mount: &Mount) -> Result<Mounted, MountError> {
    let mount_fn = REGISTRY.find(&mount.kind).ok_or_else(|| MountError::Unsupported { kind: mount.kind.clone() })?;
    mount_fn(cx, mount)
}

/// A mount's `target` as a string.
fn target(mount: &Mount) -> Result<&str, MountError> {
    mount
        .target
        .as_ref()
        .and_then(Value::as_str)
        .ok_or(MountError::Invalid { field: &["target"], message: "a target path is required".into() })
}

/// A positive whole number from the manifest (`partition`, ...), or an error naming `field`.
fn positive(v: &Value, field: &'static [&'static str]) -> Result<u64, MountError> {
    v.as_number()
        .and_then(crate::engine::number::whole)
        .filter(|n| *n > 0)
        .ok_or_else(|| MountError::Invalid { field, message: format!("{v} is not a positive whole number") })
}

/// Why a mount could not be made; the engine adds where in the manifest it is.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount type '{kind}' is not implemented")]
    Unsupported { kind: String },
    #[error("invalid options")]
    Options(#[source] serde_json::Error),
    /// A value the manifest gives that cannot be used; `field` is its path below the mount.
    #[error("{message}")]
    Invalid { field: &'static [&'static str], message: String },
    #[error("the stage has no device '{name}'")]
    UnknownDevice { name: String },
    #[error("device '{name}'")]
    Device {
        name: String,
        #[source]
        source: Box<DeviceError>,
    },
    #[error(
        "the kernel of this machine cannot mount {fstype} file systems (no {fstype} in /proc/filesystems); \
         {kind} needs a kernel that can"
    )]
    KernelCannot {
        fstype: &'static str,
        kind: &'static str,
        #[source]
        source: Box<SysError>,
    },
    #[error("{what}")]
    Path {
        what: &'static str,
        field: &'static [&'static str],
        #[source]
        source: PathError,
    },
    #[error("no deployment found in {}", root.display())]
    NoDeployment { root: PathBuf },
    #[error("more than one deployment found: {found:?}")]
    ManyDeployments { found: Vec<String> },
    /// `deployment` is `<osname>/deploy/<commit>.<serial>`.
    #[error("deployment {deployment} does not exist")]
    MissingDeployment {
        deployment: String,
        #[source]
        source: PathError,
    },
    #[error(transparent)]
    Ref(#[from] RefError),
    #[error(transparent)]
    Sys(Box<SysError>),
}

impl From<SysError> for MountError {
    fn from(e: SysError) -> MountError {
        MountError::Sys(Box::new(e))
    }
}

impl MountError {
    /// Where below the mount's manifest entry the problem is, when it is one value.
    pub fn field(&self) -> &'static [&'static str] {
        match self {
            MountError::Invalid { field, .. } | MountError::Path { field, .. } => field,
            MountError::Options(_) => &["options"],
            MountError::UnknownDevice { .. } => &["source"],
            MountError::Ref(_) => &["options", "deployment", "ref"],
            _ => &[],
        }
    }
}

/// `serial`-like counts in mount options.
fn count(n: &Option<Number>, field: &'static [&'static str]) -> Result<Option<u64>, MountError> {
    match n {
        None => Ok(None),
        Some(n) => crate::engine::number::whole(n)
            .map(Some)
            .ok_or_else(|| MountError::Invalid { field, message: format!("{n} is not a whole number") }),
    }
}
