//! Errors of the object store: one variant per failing operation, each naming the path involved.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the object store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An object id that is not 64 lowercase hex characters (a sha256 digest).
    #[error("invalid object id {id:?}: expected 64 lowercase hex characters")]
    InvalidId { id: String },

    /// Creating the store's directory layout failed.
    #[error("cannot create store directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Opening or locking one of the store's lock files failed.
    #[error("cannot lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Listing the store's tmp directory for stale entries failed.
    #[error("cannot clean up stale entries in {}", path.display())]
    Cleanup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Creating a new work directory failed.
    #[error("cannot create work directory in {}", path.display())]
    NewWorkDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The requested object is not in the store.
    #[error("object {id} not found in {}", path.display())]
    NotFound { id: String, path: PathBuf },

    /// Reading an object's `meta.json` failed.
    #[error("cannot read metadata {}", path.display())]
    ReadMeta {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An object's `meta.json` is not a JSON object.
    #[error("invalid metadata in {}", path.display())]
    ParseMeta {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The `cp` process copying a tree could not be started.
    #[error("cannot run cp to copy {} to {}", from.display(), to.display())]
    CopySpawn {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },

    /// `cp -a --reflink=auto` copying a tree failed.
    #[error("copying {} to {} failed ({outcome}){stderr}", from.display(), to.display())]
    Copy { from: PathBuf, to: PathBuf, outcome: String, stderr: String },

    /// A work directory passed to `commit` does not belong to this store.
    #[error("work directory {} does not belong to the store at {}", path.display(), store.display())]
    ForeignWorkDir { path: PathBuf, store: PathBuf },

    /// Committing a work directory as an object failed (writing its metadata or renaming it).
    #[error("cannot commit {} as {}", from.display(), to.display())]
    Commit {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Syncing the store's file system before a commit failed: data of the tree was lost.
    #[error("cannot commit {}: syncing the store's file system failed, data written to it was lost", path.display())]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A source type name that cannot be used as a directory name (empty, `.`, `..`, or with `/`).
    #[error("invalid source type {kind:?}")]
    InvalidSourceKind { kind: String },

    /// Creating the directory for a source type failed.
    #[error("cannot create sources directory {}", path.display())]
    SourcesDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Measuring the disk usage of the store failed.
    #[error("cannot measure size of {}", path.display())]
    Size {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Evicting an object from the store failed.
    #[error("cannot evict {}", path.display())]
    Evict {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
