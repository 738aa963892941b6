//! One chroot for the stages that run a tree's own programs (package managers, dracut,
//! `update-crypto-policies`, `mkhomedir_helper`): the kernel's API file systems mounted into
//! the tree, undone in reverse order. Upstream's `osbuild.util.chroot.Chroot` is the model.
//!
//! All mounts go through [`osbuild_sys::MountGuard`]; a stage never calls `mount(2)` itself.
//! Mount points are found with the tree's confinement rule, so a symlinked `/proc` in a
//! hostile tree cannot send a mount onto the build root.

use crate::util::resolve_in_root;
use crate::StageError;
use osbuild_sys::{BindFlags, MountGuard, Special};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How `/proc`, `/dev` and `/sys` get into the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFs {
    /// Fresh `proc` and `sysfs`, and a `devtmpfs` (the build root's `/dev` bound where that
    /// is refused), as upstream's `Chroot`.
    Fresh,
    /// The build root's `/dev`, `/sys` and `/proc` bound recursively (and made private), as
    /// upstream's rpm stage does it.
    Host,
    /// Nothing mounted: for a tool that needs no kernel file systems
    /// (`debconf-set-selections`).
    None,
}

/// A tree prepared for running its programs with `chroot`. [`Chroot::close`] undoes the
/// mounts and reports the first failure; dropping it undoes them too and prints failures.
#[derive(Debug)]
pub struct Chroot {
    root: PathBuf,
    mounts: MountGuard,
}

impl Chroot {
    /// Mount `/proc`, `/dev` and `/sys` into `root` as `api` says, creating missing mount
    /// points.
    pub fn enter(root: &Path, api: ApiFs) -> Result<Chroot, StageError> {
        let mut chroot = Chroot { root: root.to_owned(), mounts: MountGuard::new() };
        let rec = BindFlags { recursive: true, private: true, ..BindFlags::default() };
        let kernel_fs = [("/proc", Special::Proc), ("/dev", Special::Devtmpfs), ("/sys", Special::Sysfs)];
        let wanted = if api == ApiFs::None { &kernel_fs[..0] } else { &kernel_fs[..] };
        for &(dir, special) in wanted {
            let target = chroot.mount_point(dir, true)?;
            if api == ApiFs::Host {
                chroot.mounts.bind(Path::new(dir), &target, rec)?;
                continue;
            }
            match chroot.mounts.special(special, &target) {
                // Not every sandbox may mount a devtmpfs; the build root's /dev serves.
                Err(_) if special == Special::Devtmpfs => {
                    chroot.mounts.bind(Path::new("/dev"), &target, BindFlags::default())?
                }
                other => other?,
            }
        }
        Ok(chroot)
    }

    /// Bind `src` (outside the tree) onto `path` in the tree, which is created (as a
    /// directory, or an empty file when `src` is not one) if missing. Returns the mount
    /// point's host path.
    pub fn bind(&mut self, src: &Path, path: &str, how: BindFlags) -> Result<PathBuf, StageError> {
        let target = self.mount_point(path, src.is_dir())?;
        self.mounts.bind(src, &target, how)?;
        Ok(target)
    }

    /// `chroot <root> <program>`: the tree's `program`, run inside the tree.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("chroot");
        c.arg(&self.root).arg(program);
        c
    }

    /// Undo the mounts, last first; the first failure is returned after all were tried.
    pub fn close(self) -> Result<(), StageError> {
        self.mounts.close().map_err(StageError::from)
    }

    fn mount_point(&self, path: &str, dir: bool) -> Result<PathBuf, StageError> {
        let target = resolve_in_root(&self.root, path, true)?;
        if std::fs::symlink_metadata(&target).is_err() {
            println!("Making missing chroot directory: {path}");
            if dir {
                std::fs::create_dir_all(&target).map_err(StageError::io("cannot create directory", &target))?;
            } else {
                crate::util::create_parents(&target)?;
                crate::util::write_file(&target, b"", 0o644)?;
            }
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These run as root (CI does); the mounts live in a private mount namespace of a thread
    /// of its own, so nothing leaks onto the machine even if a test fails half-way.
    fn in_private_namespace(f: impl FnOnce() + Send + 'static) {
        let t = std::thread::spawn(move || {
            osbuild_sys::enter_private_mount_namespace().expect("unshare (the chroot tests need root)");
            f();
        });
        t.join().unwrap();
    }

    fn mounted(p: &Path) -> bool {
        let text = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        text.lines().any(|l| l.split(' ').nth(4) == Some(&*p.to_string_lossy()))
    }

    #[test]
    fn fresh_api_file_systems_come_and_go_in_reverse_order() {
        in_private_namespace(|| {
            let t = tempfile::tempdir().unwrap();
            let root = t.path();
            std::fs::create_dir(root.join("proc")).unwrap();
            let c = Chroot::enter(root, ApiFs::Fresh).unwrap();
            for d in ["proc", "dev", "sys"] {
                assert!(mounted(&root.join(d)), "{d} is mounted");
            }
            assert!(root.join("proc/self").exists(), "a proc file system");
            assert!(root.join("dev/null").exists());
            let out = c.command("/bin/true").get_args().map(|a| a.to_owned()).collect::<Vec<_>>();
            assert_eq!(out, [root.as_os_str(), "/bin/true".as_ref()]);
            c.close().unwrap();
            for d in ["proc", "dev", "sys"] {
                assert!(!mounted(&root.join(d)), "{d} is unmounted");
            }
        });
    }

    #[test]
    fn binds_and_hostile_mount_points_stay_in_the_tree() {
        in_private_namespace(|| {
            let host = tempfile::tempdir().unwrap();
            let t = tempfile::tempdir().unwrap();
            let root = t.path();
            // a tree whose /sys points at a host directory
            std::os::unix::fs::symlink(host.path(), root.join("sys")).unwrap();
            let src = tempfile::tempdir().unwrap();
            std::fs::write(src.path().join("f"), "x").unwrap();
            let mut c = Chroot::enter(root, ApiFs::Host).unwrap();
            assert!(!mounted(host.path()), "the host directory was not mounted over");
            let ro = BindFlags { readonly: true, ..BindFlags::default() };
            let p = c.bind(src.path(), "/tmp/input", ro).unwrap();
            assert_eq!(p, root.join("tmp/input"));
            assert_eq!(std::fs::read_to_string(p.join("f")).unwrap(), "x");
            assert!(std::fs::write(p.join("g"), "y").is_err(), "read-only");
            drop(c);
            assert!(!mounted(&root.join("tmp/input")) && !mounted(&root.join("proc")));
        });
    }
}
