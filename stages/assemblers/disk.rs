//! What the disk assemblers share: loop devices attached from inside the sandbox, file systems
//! made and mounted on them, everything released in reverse order when the guards drop (and,
//! should the sandbox be killed, by the kernel: the loop devices are autoclear and the mounts
//! live in the sandbox's own mount namespace).

use crate::disk_util::Mkfs;
use crate::sys::{self as sandbox, LoopDevice, LoopOptions};
use crate::tool::CommandRunExt;
use crate::{mkfs_btrfs, mkfs_ext4, mkfs_fat, mkfs_xfs, StageError};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A directory for loop device nodes: bubblewrap's `/dev` is `nodev`, so nodes made there
/// cannot be opened; a tmpfs of our own can hold them.
pub struct LoopDir {
    path: PathBuf,
}

impl LoopDir {
    pub fn new() -> Result<LoopDir, StageError> {
        let path = PathBuf::from("/run/osbuild-rs-loop");
        std::fs::create_dir_all(&path).map_err(StageError::io("cannot create directory", &path))?;
        sandbox::mount_dev_tmpfs(&path)?;
        Ok(LoopDir { path })
    }

    /// Attach `len` bytes of `image` from `offset` (0 = to the end).
    pub fn attach(&self, image: &Path, offset: u64, len: u64) -> Result<LoopDevice, StageError> {
        let opts = LoopOptions { offset, sizelimit: len, ..LoopOptions::default() };
        Ok(LoopDevice::attach(image, &opts, &self.path, true)?)
    }
}

impl Drop for LoopDir {
    fn drop(&mut self) {
        if let Err(e) = sandbox::unmount(&self.path, true) {
            eprintln!("{}", crate::error_chain(&e));
        }
    }
}

/// A mounted file system, unmounted (after a sync) on drop.
pub struct Mounted {
    target: PathBuf,
}

impl Mounted {
    pub fn new(dev: &Path, target: &Path, fstype: &str) -> Result<Mounted, StageError> {
        std::fs::create_dir_all(target).map_err(StageError::io("cannot create directory", target))?;
        // XFS refuses a second mounted file system with the same UUID, kernel-wide (concurrent
        // builds of one manifest).
        let data = if fstype == "xfs" { "nouuid" } else { "" };
        sandbox::mount_fs(dev, target, fstype, false, data)?;
        Ok(Mounted { target: target.to_owned() })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = sandbox::sync_fs(&self.target) {
            eprintln!("{}", crate::error_chain(&e));
        }
        if sandbox::unmount(&self.target, false).is_err() {
            let _ = sandbox::unmount(&self.target, true);
        }
    }
}

/// Make a file system of `fstype` with `uuid` (and `label`) on `dev`, with the command line of
/// the v2 `org.osbuild.mkfs.*` stage for it (upstream's v1 flags are the same).
pub fn mkfs(stage: &'static str, fstype: &str, dev: &Path, uuid: &str, label: Option<&str>) -> Result<(), StageError> {
    let label = label.map(str::to_owned);
    let uuid = uuid.to_owned();
    let mut cmd = match fstype {
        "ext4" => mkfs_ext4::MkfsExt4::command(
            &mkfs_ext4::Options {
                uuid,
                label,
                lazy_init: None,
                verity: None,
                orphan_file: None,
                metadata_csum_seed: None,
            },
            dev,
        ),
        "xfs" => mkfs_xfs::MkfsXfs::command(&mkfs_xfs::Options { uuid, label, agcount: None }, dev),
        "btrfs" => mkfs_btrfs::MkfsBtrfs::command(&mkfs_btrfs::Options { uuid, label, metadata: None }, dev),
        "vfat" => mkfs_fat::MkfsFat::command(
            &mkfs_fat::Options { volid: uuid.replace('-', ""), label, fat_size: None, geometry: None },
            dev,
        ),
        other => return Err(StageError::Invalid(format!("unknown file system type '{other}'"))),
    };
    cmd.stdout(Stdio::null()).run(stage)
}

/// Copy the whole input tree into `dest` (a mounted file system), keeping everything.
pub fn copy_tree(stage: &'static str, tree: &Path, dest: &Path) -> Result<(), StageError> {
    Command::new("cp").arg("-a").arg(format!("{}/.", tree.display())).arg(dest).run(stage)
}
