//! Private directories guarded by an exclusive flock on their `lock` file: work directories
//! under `tmp/`, and the staging directories of source downloads under `sources/<type>/`.
//! Whatever a killed process leaves of either is stale (nobody holds its lock) and goes at the
//! next `ObjectStore::open`.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::fsutil;

/// Name of the lock file inside a work directory; a live owner holds an exclusive flock on it.
pub(crate) const LOCK_NAME: &str = "lock";
/// Name under which the lock file is created and locked before it is renamed to [`LOCK_NAME`], so a
/// `lock` file that can be seen is always locked already while its owner lives.
const LOCK_INIT_NAME: &str = ".lock-init";
/// Name prefix of work directories in `tmp/`.
pub(crate) const PREFIX: &str = "work-";
/// Name prefix of staging directories in `sources/<type>/` (never a checksum).
pub const STAGING_PREFIX: &str = ".tmp-";

/// Create `parent/<prefix><unique>/` holding a `lock` file that we hold exclusively. The lock is
/// taken under another name and then renamed, so a visible `lock` is always held while its owner
/// lives. On failure nothing is left.
fn create_locked_dir(parent: &Path, prefix: &str) -> io::Result<(PathBuf, File)> {
    let path = fsutil::create_unique_dir(parent, prefix)?;
    let locked = (|| {
        let init = path.join(LOCK_INIT_NAME);
        let lock = File::options().read(true).write(true).create_new(true).open(&init)?;
        if !fsutil::try_lock_exclusive(&lock)? {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "a fresh lock file is locked by someone else"));
        }
        fs::rename(&init, path.join(LOCK_NAME))?;
        Ok(lock)
    })();
    match locked {
        Ok(lock) => Ok((path, lock)),
        Err(e) => {
            let _ = fsutil::remove_tree(&path);
            Err(e)
        }
    }
}

/// A private directory `tmp/<unique>/` with an empty `tree/` inside, in which a pipeline is built.
///
/// While the value lives, an exclusive flock on `tmp/<unique>/lock` tells other processes opening the
/// store that it is in use. Dropping it without committing removes the directory (best effort).
#[derive(Debug)]
pub struct WorkDir {
    pub(crate) path: PathBuf,
    _lock: File,
    pub(crate) committed: bool,
}

impl WorkDir {
    /// Create a new work directory below `tmp`.
    pub(crate) fn create(tmp: &Path) -> io::Result<WorkDir> {
        let (path, lock) = create_locked_dir(tmp, PREFIX)?;
        // From here on, dropping `work` removes the directory again.
        let work = WorkDir { path, _lock: lock, committed: false };
        let tree = work.tree();
        fs::create_dir(&tree)?;
        fs::set_permissions(&tree, fs::Permissions::from_mode(0o755))?;
        Ok(work)
    }

    /// The work directory, `tmp/<unique>/`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tree being built, `tmp/<unique>/tree`.
    pub fn tree(&self) -> PathBuf {
        self.path.join("tree")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: whatever is left is removed as stale by the next `ObjectStore::open`,
            // because our lock is released when `self.lock` is dropped right after this.
            let _ = fsutil::remove_tree(&self.path);
        }
    }
}

/// A private staging directory for one build's downloads, `<dir>/.tmp-<unique>/`, beside the
/// files they become (so the final rename never crosses a file system). Removed when dropped;
/// if the process is killed instead, the next `ObjectStore::open` removes it.
#[derive(Debug)]
pub struct StagingDir {
    path: PathBuf,
    _lock: File,
}

impl StagingDir {
    /// Create a staging directory in `dir`.
    pub fn create(dir: &Path) -> io::Result<StagingDir> {
        let (path, lock) = create_locked_dir(dir, STAGING_PREFIX)?;
        Ok(StagingDir { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        // Best effort, as for work directories: a leftover is stale once our lock is gone.
        let _ = fsutil::remove_tree(&self.path);
    }
}
