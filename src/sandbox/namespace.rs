//! The private mount namespace the whole build runs in, and the few mount calls the engine needs.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::SandboxError;

/// Call once at the start of a build, in the main osbuild-rs process, before any other thread is
/// started: `unshare(CLONE_NEWNS)` and make `/` recursively private, so every mount we make (binds,
/// loop mounts) lives in a namespace the kernel tears down when the process dies, even on SIGKILL,
/// and none of them shows up on the host.
///
/// The new namespace belongs to the calling thread; threads and processes it starts afterwards
/// inherit it, threads that already exist stay outside. Needs `CAP_SYS_ADMIN`.
pub fn enter_private_mount_namespace() -> Result<(), SandboxError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|source| SandboxError::Unshare { source })?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|source| SandboxError::MakePrivate { source })
}

/// Bind `src` onto `dest` (both must exist; `dest` of the same kind), read-only if `!writable`.
pub fn bind_mount(src: &Path, dest: &Path, writable: bool) -> Result<(), SandboxError> {
    let err = |source| SandboxError::Mount { src: src.to_owned(), dest: dest.to_owned(), source };
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
pub fn unmount(path: &Path, lazy: bool) -> Result<(), SandboxError> {
    let flags = if lazy { MntFlags::MNT_DETACH } else { MntFlags::empty() };
    umount2(path, flags).map_err(|source| SandboxError::Unmount { path: path.to_owned(), source })
}

/// Mount the file system on `source` (a block device) at `target`. `data` is the file system's
/// option string (e.g. `norecovery`), empty for none.
pub fn mount_fs(source: &Path, target: &Path, fstype: &str, read_only: bool, data: &str) -> Result<(), SandboxError> {
    let mut flags = MsFlags::empty();
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let data = (!data.is_empty()).then_some(data);
    mount(Some(source), target, Some(fstype), flags, data).map_err(|source_err| SandboxError::MountFs {
        source_desc: source.display().to_string(),
        fstype: fstype.to_owned(),
        target: target.to_owned(),
        source: source_err,
    })
}

/// Recursively bind `src` onto `dest`, writable (upstream's `mount --rbind`).
pub fn rbind_mount(src: &Path, dest: &Path) -> Result<(), SandboxError> {
    mount(Some(src), dest, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|source| SandboxError::Mount { src: src.to_owned(), dest: dest.to_owned(), source })
}

/// Mount a fresh tmpfs (device nodes allowed, unlike bubblewrap's `/dev`) at `target`, so a
/// stage can create the nodes of loop devices it attaches itself.
pub fn mount_dev_tmpfs(target: &Path) -> Result<(), SandboxError> {
    mount(Some("tmpfs"), target, Some("tmpfs"), MsFlags::MS_NOSUID, Some("mode=0700")).map_err(|source| {
        SandboxError::MountFs { source_desc: "tmpfs".into(), fstype: "tmpfs".into(), target: target.to_owned(), source }
    })
}

/// Move the mount at `src` to `dest` (`mount --move`).
pub fn move_mount(src: &Path, dest: &Path) -> Result<(), SandboxError> {
    mount(Some(src), dest, None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(|source| SandboxError::Mount {
        src: src.to_owned(),
        dest: dest.to_owned(),
        source,
    })
}

/// Bind `src` onto `dest`, only that mount, not those below it (`mount --bind`).
pub fn bind_mount_flat(src: &Path, dest: &Path) -> Result<(), SandboxError> {
    mount(Some(src), dest, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|source| SandboxError::Mount {
        src: src.to_owned(),
        dest: dest.to_owned(),
        source,
    })
}
