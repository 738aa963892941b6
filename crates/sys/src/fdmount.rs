//! Mounts made, synced and undone through file descriptors, with the kernel's mount API
//! (`open_tree`, `fsopen`/`fsmount`, `move_mount`; Linux 5.2).
//!
//! Why descriptors: the engine decides where a mount goes by resolving a path from a manifest
//! inside a [`crate::Root`]; if mount(2) then looked the path up again, a symlink swapped in
//! between (or one the old-style lookup follows on the host) could put the mount anywhere.
//! Here the target is the very directory that was resolved, the source the very directory or
//! device that was opened, and the result is a descriptor of the new mount's root, which is
//! what later syncs and unmounts use.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use rustix::fs::OFlags;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};

use crate::confine::{fd_path, proc_fd, reopen, PathError, Root};
use crate::SysError;

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// A mount this process attached, held by a descriptor of its root.
#[derive(Debug)]
pub struct FdMount {
    root: OwnedFd,
    /// Where it was attached, for messages only (never looked up again).
    path: PathBuf,
}

impl FdMount {
    /// The root directory of the mount (an `O_PATH` descriptor).
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Where the mount was attached when it was made.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mount's root directory as a [`Root`], to resolve paths inside the mounted tree.
    pub fn as_root(&self) -> Result<Root, SysError> {
        let fd = self.root.try_clone().map_err(|source| PathError {
            op: "duplicate the descriptor of",
            root: self.path.clone(),
            path: ".".into(),
            source,
        })?;
        Ok(Root::from_fd(fd, self.path.clone()))
    }

    /// `syncfs(2)` on the mounted file system: lost writes (a full or failing disk below a loop
    /// device) show up here as an error, which must fail the build.
    pub fn sync(&self) -> Result<(), SysError> {
        sync_fd(self.root.as_fd(), &self.path)
    }

    /// Detach the mount, with every mount below it, by descriptor. Always lazy: the
    /// descriptor we hold keeps the mount busy, so the kernel finishes the unmount when it is
    /// closed, which this does on return (sync first: that is where lost writes show).
    pub fn unmount(self) -> Result<(), SysError> {
        let target = proc_fd(self.root.as_fd());
        rustix::mount::unmount(&target, UnmountFlags::DETACH)
            .map_err(|e| SysError::Unmount { path: self.path.clone(), source: errno(e) })
    }
}

/// `syncfs(2)` on the file system holding the (possibly `O_PATH`) descriptor `fd`.
pub fn sync_fd(fd: BorrowedFd<'_>, path: &Path) -> Result<(), SysError> {
    let err = |source: std::io::Error| SysError::Sync { path: path.to_owned(), source };
    match rustix::fs::syncfs(fd) {
        // syncfs refuses O_PATH descriptors: open the same file for real through it.
        Err(rustix::io::Errno::BADF) => {
            let real =
                reopen(fd, OFlags::RDONLY | OFlags::DIRECTORY).or_else(|_| reopen(fd, OFlags::RDONLY)).map_err(err)?;
            rustix::fs::syncfs(&real).map_err(|e| err(e.into()))
        }
        other => other.map_err(|e| err(e.into())),
    }
}

fn name_of(fd: BorrowedFd<'_>) -> PathBuf {
    fd_path(fd).unwrap_or_else(|_| proc_fd(fd))
}

/// Attach the detached mount `tree` (from `open_tree`/`fsmount`) on the directory `dest`.
fn attach(tree: &OwnedFd, dest: BorrowedFd<'_>) -> Result<(), rustix::io::Errno> {
    rustix::mount::move_mount(
        tree,
        "",
        dest,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// Bind the directory `src` onto the directory `dest` (`mount --bind`, or `--rbind` when
/// `recursive`), both given as descriptors.
pub fn bind_fd(src: BorrowedFd<'_>, dest: BorrowedFd<'_>, recursive: bool) -> Result<FdMount, SysError> {
    let (src_name, dest_name) = (name_of(src), name_of(dest));
    let err = |e| SysError::Mount { src: src_name.clone(), dest: dest_name.clone(), source: errno(e) };
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = rustix::mount::open_tree(src, "", flags).map_err(err)?;
    attach(&tree, dest).map_err(err)?;
    Ok(FdMount { root: tree, path: dest_name })
}

/// Move the attached mount `m` onto the directory `dest` (`mount --move`); the mounts below
/// it move along.
pub fn move_fd(m: &mut FdMount, dest: BorrowedFd<'_>) -> Result<(), SysError> {
    let dest_name = name_of(dest);
    let err = |e| SysError::Mount { src: m.path.clone(), dest: dest_name.clone(), source: errno(e) };
    attach(&m.root, dest).map_err(err)?;
    m.path = dest_name;
    Ok(())
}

/// How [`mount_fs_fd`] configures a file system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsOptions {
    pub read_only: bool,
    /// Options without a value, e.g. `norecovery`.
    pub flags: Vec<String>,
    /// `key=value` options, e.g. `subvol=/root`.
    pub values: Vec<(String, String)>,
}

/// Mount the `fstype` file system on the block device `device` at the directory `dest`.
pub fn mount_fs_fd(device: &Path, dest: BorrowedFd<'_>, fstype: &str, opts: &FsOptions) -> Result<FdMount, SysError> {
    let target = name_of(dest);
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| SysError::MountFs {
        source_desc: device.display().to_string(),
        fstype: fstype.to_owned(),
        target: target.clone(),
        source: errno(e),
    })?;
    let fail = |step: &'static str, e: rustix::io::Errno| SysError::FsMount {
        device: device.to_owned(),
        fstype: fstype.to_owned(),
        target: target.clone(),
        step,
        kernel_log: kernel_log(&fs),
        source: errno(e),
    };
    rustix::mount::fsconfig_set_string(&fs, "source", device).map_err(|e| fail("set the source", e))?;
    if opts.read_only {
        rustix::mount::fsconfig_set_flag(&fs, "ro").map_err(|e| fail("set option ro", e))?;
    }
    for flag in &opts.flags {
        rustix::mount::fsconfig_set_flag(&fs, flag.as_str()).map_err(|e| fail("set an option", e))?;
    }
    for (key, value) in &opts.values {
        rustix::mount::fsconfig_set_string(&fs, key.as_str(), value.as_str()).map_err(|e| fail("set an option", e))?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(|e| fail("create the file system", e))?;
    let attrs = if opts.read_only { MountAttrFlags::MOUNT_ATTR_RDONLY } else { MountAttrFlags::empty() };
    let tree = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(|e| fail("mount", e))?;
    attach(&tree, dest).map_err(|e| fail("attach", e))?;
    Ok(FdMount { root: tree, path: target })
}

/// What the kernel logged about a failing `fsconfig` (e.g. "Can't find ext4 filesystem"),
/// one message per read, until there is none.
fn kernel_log(fs: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..8 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => {
                let line = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
                // "e ext4: message": severity letter, then the message.
                out.push(line.get(2..).unwrap_or(&line).to_owned());
            }
            _ => break,
        }
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{enter_private_mount_namespace, LoopDevice, LoopOptions};
    use std::process::Command;

    /// Each test thread gets a mount namespace of its own (the namespace is per thread), so
    /// nothing it mounts is seen by the host or by other tests.
    fn private() {
        enter_private_mount_namespace().expect("root is needed for the mount tests");
    }

    #[test]
    fn bind_move_sync_and_unmount_by_descriptor() {
        private();
        let t = tempfile::tempdir().unwrap();
        for d in ["a", "b", "c"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        std::fs::write(t.path().join("a/file"), "a").unwrap();
        let root = Root::open(t.path()).unwrap();
        let a = root.open_path("a", false).unwrap();
        let b = root.open_path("b", false).unwrap();
        let mut m = bind_fd(a.as_fd(), b.as_fd(), false).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("b/file")).unwrap(), "a");
        assert_eq!(m.path(), t.path().canonicalize().unwrap().join("b"));
        // Writes through the mount's own root land in a.
        m.as_root().unwrap().create_dir_all("new", 0o755).unwrap();
        assert!(t.path().join("a/new").is_dir());
        m.sync().unwrap();
        let c = root.open_path("c", false).unwrap();
        move_fd(&mut m, c.as_fd()).unwrap();
        assert!(!t.path().join("b/file").exists() && t.path().join("c/file").exists());
        m.unmount().unwrap();
        assert!(!t.path().join("c/file").exists(), "unmounted");
    }

    #[test]
    fn file_systems_mount_on_descriptors_and_failures_keep_the_kernel_log_and_errno() {
        private();
        let t = tempfile::tempdir().unwrap();
        let img = t.path().join("fs.img");
        std::fs::write(&img, vec![0u8; 8 << 20]).unwrap();
        std::fs::create_dir(t.path().join("mnt")).unwrap();
        let root = Root::open(t.path()).unwrap();
        let mnt = root.open_path("mnt", false).unwrap();
        let lo = LoopDevice::attach(&img, &LoopOptions::default(), Path::new("/dev"), false).unwrap();

        // No file system on it yet: the kernel says so, the errno is kept.
        let e = mount_fs_fd(&lo.host_path(), mnt.as_fd(), "ext4", &FsOptions::default()).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EINVAL), "{e:?}");
        let text = crate::error_chain(&e);
        assert!(text.contains("(ext4)") && text.ends_with("EINVAL: Invalid argument"), "{text}");

        let ok = Command::new("mkfs.ext4").arg("-q").arg(lo.host_path()).status().unwrap();
        assert!(ok.success(), "mkfs.ext4 is needed");
        let opts = FsOptions { flags: vec!["norecovery".into()], read_only: true, ..FsOptions::default() };
        let m = mount_fs_fd(&lo.host_path(), mnt.as_fd(), "ext4", &opts).unwrap();
        assert!(t.path().join("mnt/lost+found").is_dir());
        let e = std::fs::create_dir(t.path().join("mnt/x")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "read-only");
        m.sync().unwrap();
        m.unmount().unwrap();
        assert!(!t.path().join("mnt/lost+found").exists());
        lo.close().unwrap();

        let e = mount_fs_fd(Path::new("/dev/null"), mnt.as_fd(), "no-such-fs", &FsOptions::default()).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV), "{e:?}");
    }
}
