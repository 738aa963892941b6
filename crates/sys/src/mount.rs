//! The private mount namespace the whole build runs in, and the few mount calls the engine needs.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::SysError;

/// Call once at the start of a build, in the main osbuild-rs process, before any other thread is
/// started: `unshare(CLONE_NEWNS)` and make `/` recursively private, so every mount we make (binds,
/// loop mounts) lives in a namespace the kernel tears down when the process dies, even on SIGKILL,
/// and none of them shows up on the host.
///
/// The new namespace belongs to the calling thread; threads and processes it starts afterwards
/// inherit it, threads that already exist stay outside. Needs `CAP_SYS_ADMIN`.
pub fn enter_private_mount_namespace() -> Result<(), SysError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|source| SysError::Unshare { source })?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|source| SysError::MakePrivate { source })
}

/// Bind `src` onto `dest` (both must exist; `dest` of the same kind), read-only if `!writable`.
pub fn bind_mount(src: &Path, dest: &Path, writable: bool) -> Result<(), SysError> {
    let err = |source| SysError::Mount { src: src.to_owned(), dest: dest.to_owned(), source };
    mount(Some(src), dest, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(err)?;
    if !writable {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(source) = mount(None::<&str>, dest, None::<&str>, flags, None::<&str>) {
            let _ = umount2(dest, MntFlags::MNT_DETACH);
            return Err(err(source));
        }
    }
    Ok(())
}

/// Unmount `path`; `lazy` detaches it even while busy.
pub fn unmount(path: &Path, lazy: bool) -> Result<(), SysError> {
    let flags = if lazy { MntFlags::MNT_DETACH } else { MntFlags::empty() };
    umount2(path, flags).map_err(|source| SysError::Unmount { path: path.to_owned(), source })
}

/// Mount the file system on `source` (a block device) at `target`. `data` is the file system's
/// option string (e.g. `norecovery`), empty for none.
pub fn mount_fs(source: &Path, target: &Path, fstype: &str, read_only: bool, data: &str) -> Result<(), SysError> {
    let mut flags = MsFlags::empty();
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let data = (!data.is_empty()).then_some(data);
    mount(Some(source), target, Some(fstype), flags, data).map_err(|source_err| SysError::MountFs {
        source_desc: source.display().to_string(),
        fstype: fstype.to_owned(),
        target: target.to_owned(),
        source: source_err,
    })
}

/// Mount a fresh tmpfs (device nodes allowed, unlike bubblewrap's `/dev`) at `target`, so a
/// stage can create the nodes of loop devices it attaches itself.
pub fn mount_dev_tmpfs(target: &Path) -> Result<(), SysError> {
    mount(Some("tmpfs"), target, Some("tmpfs"), MsFlags::MS_NOSUID, Some("mode=0700")).map_err(|source| {
        SysError::MountFs { source_desc: "tmpfs".into(), fstype: "tmpfs".into(), target: target.to_owned(), source }
    })
}

/// Kernel file systems a chroot needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    Proc,
    Sysfs,
    /// The kernel's device file system (mode 0755).
    Devtmpfs,
}

/// Mount a fresh `kind` at `target`, `nosuid,noexec` (and `nodev` but for devtmpfs).
pub fn mount_special(kind: Special, target: &Path) -> Result<(), SysError> {
    let safe = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let (fstype, flags, data) = match kind {
        Special::Proc => ("proc", safe | MsFlags::MS_NODEV, None),
        Special::Sysfs => ("sysfs", safe | MsFlags::MS_NODEV, None),
        Special::Devtmpfs => ("devtmpfs", safe | MsFlags::MS_STRICTATIME, Some("mode=0755")),
    };
    mount(Some(fstype), target, Some(fstype), flags, data).map_err(|source| SysError::MountFs {
        source_desc: fstype.into(),
        fstype: fstype.into(),
        target: target.to_owned(),
        source,
    })
}

/// How [`MountGuard::bind`] binds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindFlags {
    /// Take the mounts below the source along (`--rbind`).
    pub recursive: bool,
    pub readonly: bool,
    /// Make the new mount private, so mounts made below it stay there.
    pub private: bool,
}

/// Mounts made by one piece of work, undone in reverse order by [`MountGuard::close`] (which
/// reports the first failure) or, best effort, when dropped. Unmounting is lazy (`MNT_DETACH`):
/// a process that still holds a file open must not keep a mount alive in the tree.
#[derive(Debug, Default)]
pub struct MountGuard {
    mounted: Vec<std::path::PathBuf>,
}

impl MountGuard {
    pub fn new() -> MountGuard {
        MountGuard::default()
    }

    /// Bind `src` onto `target` (both must exist).
    pub fn bind(&mut self, src: &Path, target: &Path, how: BindFlags) -> Result<(), SysError> {
        let err = |source| SysError::Mount { src: src.to_owned(), dest: target.to_owned(), source };
        let mut flags = MsFlags::MS_BIND;
        if how.recursive {
            flags |= MsFlags::MS_REC;
        }
        mount(Some(src), target, None::<&str>, flags, None::<&str>).map_err(err)?;
        self.mounted.push(target.to_owned());
        if how.private {
            mount(None::<&str>, target, None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                .map_err(err)?;
        }
        if how.readonly {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(err)?;
        }
        Ok(())
    }

    /// Mount a kernel file system of `kind` at `target`.
    pub fn special(&mut self, kind: Special, target: &Path) -> Result<(), SysError> {
        mount_special(kind, target)?;
        self.mounted.push(target.to_owned());
        Ok(())
    }

    /// Unmount everything, last first; the first failure is returned after all were tried.
    pub fn close(mut self) -> Result<(), SysError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), SysError> {
        let mut first = None;
        while let Some(p) = self.mounted.pop() {
            if let Err(e) = unmount(&p, true) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!("{}", crate::error_chain(&e));
        }
    }
}

/// `syncfs(2)` on the file system holding `path`: a failure (lost writes, a full disk) must fail
/// the build rather than pass unnoticed.
pub fn sync_fs(path: &Path) -> Result<(), SysError> {
    let f = std::fs::File::open(path).map_err(|source| SysError::Sync { path: path.to_owned(), source })?;
    crate::sync_fd(std::os::fd::AsFd::as_fd(&f), path)
}
