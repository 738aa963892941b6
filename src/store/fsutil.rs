//! File-system helpers of the store: unique directories, lock files, tree copies, disk usage,
//! and a removal that refuses to descend into mounts.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use super::StoreError;

/// Create a new directory `dir/<prefix><unique>` that no other process or thread can also get.
pub(crate) fn create_unique_dir(dir: &Path, prefix: &str) -> io::Result<PathBuf> {
    // kept: the store removes it itself (never through a mount), or its next open does
    Ok(tempfile::Builder::new().prefix(prefix).tempdir_in(dir)?.keep())
}

/// Open `path` (creating it if needed) for use as a lock file.
pub(crate) fn open_lock_file(path: &Path) -> io::Result<File> {
    File::options().read(true).write(true).create(true).truncate(false).open(path)
}

/// Try to take an exclusive flock without waiting; `Ok(false)` if someone else holds a lock.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Try to take a shared flock without waiting; `Ok(false)` if someone holds an exclusive lock.
pub(crate) fn try_lock_shared(file: &File) -> io::Result<bool> {
    match file.try_lock_shared() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Whether the open file `file` is still the directory entry at `path` (not renamed or replaced).
pub(crate) fn is_same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Set the modification time of `path` to now, creating it as an empty file if missing.
pub(crate) fn touch(path: &Path) -> io::Result<()> {
    let file = File::options().write(true).create(true).truncate(false).open(path)?;
    file.set_modified(SystemTime::now())
}

/// Copy the content of directory `from` into directory `to` with `cp -a --reflink=auto`, which keeps
/// owners, modes, timestamps, xattrs, ACLs, hardlinks, symlinks and special files.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), StoreError> {
    let mut cmd = Command::new("cp");
    cmd.arg("-a").arg("--reflink=auto").arg(from.join(".")).arg(to);
    let output = crate::sandbox::run_helper(&mut cmd, None, None).map_err(|source| StoreError::CopySpawn {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    })?;
    if output.success() {
        return Ok(());
    }
    Err(StoreError::Copy {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        outcome: output.describe(),
        stderr: osbuild_stage_api::tool::stderr_detail(&output.stderr),
    })
}

/// Apparent size of all regular files below `path` (not following symlinks), counting a file with
/// several hardlinks once per `seen` set. Entries that vanish while walking are skipped; a missing
/// `path` counts as 0.
pub(crate) fn disk_usage(path: &Path, seen: &mut HashSet<(u64, u64)>) -> io::Result<u64> {
    let mut total = 0u64;
    for entry in walkdir::WalkDir::new(path) {
        let meta = match entry.and_then(|e| e.metadata()) {
            Ok(meta) => meta,
            Err(e) if e.io_error().is_some_and(|e| e.kind() == io::ErrorKind::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        if meta.is_file() && (meta.nlink() <= 1 || seen.insert((meta.dev(), meta.ino()))) {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Mount points at or below `path` in this process's mount namespace.
pub(crate) fn mounts_below(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut text = String::new();
    match File::open("/proc/self/mountinfo") {
        Ok(mut f) => f.read_to_string(&mut text)?,
        // Without /proc we cannot tell; assume there are no mounts.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(parse_mountinfo(&text).into_iter().filter(|m| m.starts_with(path)).collect())
}

/// The mount points (field 5) of `/proc/self/mountinfo` text, with octal escapes decoded.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| {
            let bytes = field.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'\\'
                    && i + 3 < bytes.len()
                    && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
                {
                    let v = bytes[i + 1..i + 4].iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                    out.push(v as u8);
                    i += 4;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            PathBuf::from(std::ffi::OsString::from_vec(out))
        })
        .collect()
}

/// Remove the directory `path` and everything below it. Refuses (with an error) if anything is
/// mounted at or below `path`, so a leftover bind mount can never lead the removal onto the host.
/// Directories without write permission (possible in trees for non-root users) are made writable,
/// and the immutable attribute that `ostree admin deploy` puts on deployments is cleared.
/// A missing `path` is not an error.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let mounts = mounts_below(path)?;
    if let Some(m) = mounts.first() {
        return Err(io::Error::other(format!("refusing to remove {}: {} is mounted", path.display(), m.display())));
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_dirs_writable(path);
            clear_immutable(path);
            match fs::remove_dir_all(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        }
        Err(e) => Err(e),
    }
}

/// Best effort: clear the immutable (and append-only) attribute below `path`. chattr does not
/// follow symlinks when recursing.
fn clear_immutable(path: &Path) {
    let _ = crate::sandbox::run_cleanup_helper(Command::new("chattr").args(["-R", "-f", "-i", "-a"]).arg(path));
}

/// Best effort: give the owner rwx on every directory below `path` (not following symlinks).
fn make_dirs_writable(path: &Path) {
    // walkdir opens a directory before it yields it, so one it could not open is made
    // writable from its error and the walk runs again, until a walk changes nothing.
    let writable = |dir: &Path| -> bool {
        let Ok(meta) = fs::symlink_metadata(dir) else { return false };
        let mode = meta.permissions().mode();
        meta.is_dir()
            && mode & 0o700 != 0o700
            && fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700)).is_ok()
    };
    loop {
        let mut changed = writable(path);
        for entry in walkdir::WalkDir::new(path).min_depth(1) {
            match entry {
                Ok(e) => changed |= e.file_type().is_dir() && writable(e.path()),
                Err(e) => changed |= e.path().is_some_and(writable),
            }
        }
        if !changed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_directories_are_removed() {
        // Needs root (chattr +i) and a file system with attributes under /var/tmp, as CI has.
        let t = tempfile::Builder::new().tempdir_in("/var/tmp").unwrap();
        let dep = t.path().join("tree/ostree/deploy/os/deploy/abc.0");
        fs::create_dir_all(dep.join("usr")).unwrap();
        let st = std::process::Command::new("chattr").arg("+i").arg(&dep).status().unwrap();
        assert!(st.success());
        assert!(fs::remove_dir_all(t.path().join("tree")).is_err(), "immutable: plain removal fails");
        remove_tree(&t.path().join("tree")).unwrap();
        assert!(!t.path().join("tree").exists());
    }

    #[test]
    fn mountinfo_mount_points_are_unescaped() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    40 22 8:1 /x /var/cache/my\\040store/tmp/a rw - ext4 /dev/sda1 rw\n";
        assert_eq!(parse_mountinfo(text), vec![PathBuf::from("/"), PathBuf::from("/var/cache/my store/tmp/a")]);
    }

    #[test]
    fn unique_dirs_differ() {
        let tmp = tempfile::tempdir().unwrap();
        let a = create_unique_dir(tmp.path(), "w-").unwrap();
        let b = create_unique_dir(tmp.path(), "w-").unwrap();
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
    }
}
