//! `org.osbuild.ext4`, `.xfs`, `.btrfs`, `.fat`, `.squashfs`, `.erofs`: a file system on one of
//! the stage's devices (or one partition of it), mounted at `target` below the mounts directory.

use super::{positive, target, Context, MountError, MountService, Mounted};
use crate::manifest::Mount;
use osbuild_sys::{fd_path, mount_fs_fd, FsOptions};
use serde::Deserialize;
use serde_json::{json, Value};

/// Options every file system takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    #[serde(default)]
    readonly: bool,
    #[serde(default)]
    norecovery: bool,
}

impl Common {
    fn fs_options(&self) -> FsOptions {
        let mut o = FsOptions { read_only: self.readonly, ..FsOptions::default() };
        if self.norecovery {
            o.flags.push("norecovery".into());
        }
        o
    }
}

pub struct Ext4;

impl MountService for Ext4 {
    const NAME: &'static str = "org.osbuild.ext4";
    type Options = Common;

    fn mount(cx: &mut Context<'_>, m: &Mount, o: Common) -> Result<Mounted, MountError> {
        mount_filesystem(cx, m, Self::NAME, "ext4", o.fs_options())
    }
}

pub struct Xfs;

impl MountService for Xfs {
    const NAME: &'static str = "org.osbuild.xfs";
    type Options = Common;

    fn mount(cx: &mut Context<'_>, m: &Mount, o: Common) -> Result<Mounted, MountError> {
        let mut fs = o.fs_options();
        // XFS refuses a second mounted file system with the same UUID, kernel-wide: two
        // builds of one manifest (same UUIDs) at the same time must both work.
        fs.flags.push("nouuid".into());
        mount_filesystem(cx, m, Self::NAME, "xfs", fs)
    }
}

pub struct Btrfs;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BtrfsOptions {
    #[serde(default)]
    readonly: bool,
    #[serde(default)]
    norecovery: bool,
    subvol: Option<String>,
    compress: Option<String>,
}

impl MountService for Btrfs {
    const NAME: &'static str = "org.osbuild.btrfs";
    type Options = BtrfsOptions;

    fn mount(cx: &mut Context<'_>, m: &Mount, o: BtrfsOptions) -> Result<Mounted, MountError> {
        let mut fs = Common { readonly: o.readonly, norecovery: o.norecovery }.fs_options();
        fs.values.extend(o.subvol.map(|v| ("subvol".to_owned(), v)));
        fs.values.extend(o.compress.map(|v| ("compress".to_owned(), v)));
        mount_filesystem(cx, m, Self::NAME, "btrfs", fs)
    }
}

pub struct Fat;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FatOptions {
    #[serde(default)]
    readonly: bool,
    uid: Option<u32>,
    gid: Option<u32>,
    umask: Option<String>,
    shortname: Option<String>,
}

impl MountService for Fat {
    const NAME: &'static str = "org.osbuild.fat";
    type Options = FatOptions;

    fn mount(cx: &mut Context<'_>, m: &Mount, o: FatOptions) -> Result<Mounted, MountError> {
        let mut fs = FsOptions { read_only: o.readonly, ..FsOptions::default() };
        fs.values.extend(o.uid.map(|v| ("uid".to_owned(), v.to_string())));
        fs.values.extend(o.gid.map(|v| ("gid".to_owned(), v.to_string())));
        fs.values.extend(o.umask.map(|v| ("umask".to_owned(), v)));
        fs.values.extend(o.shortname.map(|v| ("shortname".to_owned(), v)));
        mount_filesystem(cx, m, Self::NAME, "vfat", fs)
    }
}

/// The read-only image file systems (`org.osbuild.squashfs`, `org.osbuild.erofs`) take no
/// options and are always mounted read-only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

pub struct Squashfs;

impl MountService for Squashfs {
    const NAME: &'static str = "org.osbuild.squashfs";
    type Options = NoOptions;

    fn mount(cx: &mut Context<'_>, m: &Mount, _: NoOptions) -> Result<Mounted, MountError> {
        mount_filesystem(cx, m, Self::NAME, "squashfs", FsOptions { read_only: true, ..FsOptions::default() })
    }
}

pub struct Erofs;

impl MountService for Erofs {
    const NAME: &'static str = "org.osbuild.erofs";
    type Options = NoOptions;

    fn mount(cx: &mut Context<'_>, m: &Mount, _: NoOptions) -> Result<Mounted, MountError> {
        mount_filesystem(cx, m, Self::NAME, "erofs", FsOptions { read_only: true, ..FsOptions::default() })
    }
}

/// Mount `fstype` from the mount's device (or partition) at its target below the mounts
/// directory, the target resolved inside that directory.
fn mount_filesystem(
    cx: &mut Context<'_>,
    m: &Mount,
    kind: &'static str,
    fstype: &'static str,
    options: FsOptions,
) -> Result<Mounted, MountError> {
    let target = target(m)?;
    let name = m
        .source
        .as_deref()
        .ok_or(MountError::Invalid { field: &["source"], message: "a source device is required".into() })?;
    let partition = match &m.partition {
        None | Some(Value::Null) => None,
        Some(p) => Some(positive(p, &["partition"])?),
    };
    let device = cx.device(name)?;
    let node = match partition {
        None => device.node(),
        Some(n) => device
            .partition(n)
            .map_err(|source| MountError::Device { name: name.to_owned(), source: Box::new(source) })?,
    };
    let mounts = cx.mounts()?;
    let dir = mounts.create_dir_all(target, 0o755).map_err(|source| MountError::Path {
        what: "the mount point",
        field: &["target"],
        source,
    })?;
    let mounted = match mount_fs_fd(&node, dir.fd(), fstype, &options) {
        Ok(m) => m,
        Err(source) if source.errno() == Some(libc::ENODEV) => {
            return Err(MountError::KernelCannot { fstype, kind, source: Box::new(source) });
        }
        Err(e) => return Err(e.into()),
    };
    // Where the stage sees it: the resolved mount point below the mounts directory.
    let base = fd_path(mounts.fd()).unwrap_or_else(|_| mounts.path().to_owned());
    let rel = match mounted.path().strip_prefix(&base) {
        Ok(r) => r.to_string_lossy().into_owned(),
        Err(_) => target.trim_start_matches('/').to_owned(),
    };
    let rel = if rel.is_empty() { ".".to_owned() } else { rel };
    let args = json!({ "path": format!("{}/{rel}", crate::engine::attach::MOUNTS_MAPPED) });
    Ok(Mounted { mounts: vec![mounted], sync: true, args })
}
