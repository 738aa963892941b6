//! What the disk assemblers share: loop devices attached from inside the sandbox, file systems
//! made and mounted on them, everything released in reverse order when the guards drop (and,
//! should the sandbox be killed, by the kernel: the loop devices are autoclear and the mounts
//! live in the sandbox's own mount namespace).

use crate::sys::{self as sandbox, LoopDevice, LoopOptions};
use crate::util::run_tool;
use crate::{error_chain, StageError};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory for loop device nodes: bubblewrap's `/dev` is `nodev`, so nodes made there
/// cannot be opened; a tmpfs of our own can hold them.
pub struct LoopDir {
    path: PathBuf,
}

impl LoopDir {
    pub fn new(stage: &'static str) -> Result<LoopDir, StageError> {
        let path = PathBuf::from("/run/osbuild-rs-loop");
        std::fs::create_dir_all(&path).map_err(|e| StageError::Invalid(format!("{stage}: {}: {e}", path.display())))?;
        sandbox::mount_dev_tmpfs(&path).map_err(|e| StageError::Invalid(format!("{stage}: {}", error_chain(&e))))?;
        Ok(LoopDir { path })
    }

    /// Attach `len` bytes of `image` from `offset` (0 = to the end).
    pub fn attach(&self, stage: &'static str, image: &Path, offset: u64, len: u64) -> Result<LoopDevice, StageError> {
        let opts = LoopOptions { offset, sizelimit: len, ..LoopOptions::default() };
        LoopDevice::attach(image, &opts, &self.path, true)
            .map_err(|e| StageError::Invalid(format!("{stage}: {}", error_chain(&e))))
    }
}

impl Drop for LoopDir {
    fn drop(&mut self) {
        let _ = sandbox::unmount(&self.path, true);
    }
}

/// A mounted file system, unmounted (after a sync) on drop.
pub struct Mounted {
    target: PathBuf,
}

impl Mounted {
    pub fn new(stage: &'static str, dev: &Path, target: &Path, fstype: &str) -> Result<Mounted, StageError> {
        std::fs::create_dir_all(target)
            .map_err(|e| StageError::Invalid(format!("{stage}: cannot create {}: {e}", target.display())))?;
        let kernel_type = if fstype == "vfat" { "vfat" } else { fstype };
        // XFS refuses a second mounted file system with the same UUID, kernel-wide (concurrent
        // builds of one manifest).
        let data = if fstype == "xfs" { "nouuid" } else { "" };
        sandbox::mount_fs(dev, target, kernel_type, false, data)
            .map_err(|e| StageError::Invalid(format!("{stage}: {}", error_chain(&e))))?;
        Ok(Mounted { target: target.to_owned() })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("sync").arg("-f").arg(&self.target).status();
        if sandbox::unmount(&self.target, false).is_err() {
            let _ = sandbox::unmount(&self.target, true);
        }
    }
}

/// Make a file system of `fstype` with `uuid` (and `label`) on `dev`, with upstream's flags.
pub fn mkfs(stage: &'static str, fstype: &str, dev: &Path, uuid: &str, label: Option<&str>) -> Result<(), StageError> {
    let mut cmd;
    match fstype {
        "ext4" => {
            cmd = Command::new("mkfs.ext4");
            cmd.arg("-F").arg("-U").arg(uuid);
            label.map(|l| cmd.arg("-L").arg(l));
        }
        "xfs" => {
            cmd = Command::new("mkfs.xfs");
            cmd.arg("-m").arg(format!("uuid={uuid}"));
            label.map(|l| cmd.arg("-L").arg(l));
        }
        "btrfs" => {
            cmd = Command::new("mkfs.btrfs");
            cmd.arg("-U").arg(uuid);
            label.map(|l| cmd.arg("-L").arg(l));
        }
        "vfat" => {
            cmd = Command::new("mkfs.vfat");
            cmd.arg("-i").arg(uuid.replace('-', ""));
            label.map(|l| cmd.arg("-n").arg(l));
        }
        other => return Err(StageError::Invalid(format!("unknown file system type '{other}'"))),
    }
    cmd.arg(dev).stdout(std::process::Stdio::null());
    run_tool(stage, &mut cmd)
}

/// Copy the whole input tree into `dest` (a mounted file system), keeping everything.
pub fn copy_tree(stage: &'static str, tree: &Path, dest: &Path) -> Result<(), StageError> {
    run_tool(stage, Command::new("cp").arg("-a").arg(format!("{}/.", tree.display())).arg(dest))
}
