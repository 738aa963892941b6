//! Private work directories under `tmp/`, each guarded by an exclusive flock on its `lock` file.

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

/// A private directory `tmp/<unique>/` with an empty `tree/` inside, in which a pipeline is built.
///
/// While the value lives, an exclusive flock on `tmp/<unique>/lock` tells other processes opening the
/// store that it is in use. Dropping it without committing removes the directory (best effort).
#[derive(Debug)]
pub struct WorkDir {
    pub(crate) path: PathBuf,
    pub(crate) lock: Option<File>,
    pub(crate) committed: bool,
}

impl WorkDir {
    /// Create a new work directory below `tmp`.
    pub(crate) fn create(tmp: &Path) -> io::Result<WorkDir> {
        let path = fsutil::create_unique_dir(tmp, PREFIX)?;
        // From here on, dropping `work` removes the directory again.
        let mut work = WorkDir { path, lock: None, committed: false };
        let init = work.path.join(LOCK_INIT_NAME);
        let lock = File::options().read(true).write(true).create_new(true).open(&init)?;
        if !fsutil::try_lock_exclusive(&lock)? {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "a fresh lock file is locked by someone else"));
        }
        fs::rename(&init, work.path.join(LOCK_NAME))?;
        work.lock = Some(lock);
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
