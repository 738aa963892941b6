//! The object store: committed pipeline trees by id, fetched sources, and private work directories.
//!
//! Layout below the store root (compare upstream's `osbuild/objectstore.py`, which keeps the same
//! idea in an `FsCache`):
//!
//! ```text
//! lock                      shared flock held by every process that has the store open
//! evict.lock                exclusive flock held while evicting
//! objects/<id>/             a committed object, immutable (except the mtime of last-used)
//!     tree/                 the file system tree
//!     meta.json             metadata: stage id -> JSON written by that stage
//!     last-used             its mtime is the last use, for LRU eviction
//! sources/<type>/<checksum> fetched sources, stored once, shared by all objects
//! sources/<type>/.tmp-<unique>/  a live or stale download staging directory (see [`StagingDir`])
//! tmp/work-<unique>/        a live or stale work directory (see [`WorkDir`])
//!     lock                  exclusive flock held by the owning WorkDir
//!     tree/
//! ```
//!
//! Objects appear atomically: the work directory is renamed to `objects/<id>` (`RENAME_NOREPLACE`),
//! so an object that exists is complete, and, in a durable store ([`ObjectStore::set_durable`]), its
//! data is on disk first (`syncfs`, which reports earlier write-back errors too), and two processes racing to commit the same id both succeed
//! with one object. Objects disappear atomically too: eviction first renames them into `tmp/`, and
//! so does an export that takes an object this process made out of the store ([`ObjectStore::take_tree`]).
//!
//! Every process that uses an object (`get`, `clone_into`, `commit`) holds a shared flock on the
//! object's directory until its [`ObjectStore`] is dropped; eviction only removes objects it can lock
//! exclusively, so a process never has an object evicted under it by another process (upstream's
//! read locks on cache entries serve the same purpose). Taking an object out follows the same rule.

mod error;
mod fsutil;
mod workdir;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

pub use error::StoreError;
pub use workdir::{StagingDir, WorkDir, STAGING_PREFIX};

type Meta = serde_json::Map<String, serde_json::Value>;

/// How old an entry of `tmp/` without a lock file must be before it counts as stale. Such entries
/// exist only for microseconds while a work directory is being created or committed (and then they
/// are also protected by a lock on the directory itself), or when a process died at that moment.
const STALE_GRACE: Duration = Duration::from_secs(300);

/// Name of the file whose mtime records an object's last use.
const LAST_USED: &str = "last-used";
/// Name of the metadata file of an object.
const META_JSON: &str = "meta.json";

/// Whether `id` is a valid object id: 64 lowercase hex characters (a sha256 digest).
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Check that `id` is a valid object id (see [`is_valid_id`]).
pub fn validate_id(id: &str) -> Result<(), StoreError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(StoreError::InvalidId { id: id.to_string() })
    }
}

/// The default store directory: `$OSBUILD_RS_STORE` if set; for root `/var/cache/osbuild-rs`;
/// otherwise `$XDG_CACHE_HOME/osbuild-rs` or `$HOME/.cache/osbuild-rs` (or `.osbuild-rs` in the
/// current directory if neither is set).
pub fn default_store_dir() -> PathBuf {
    let is_root = rustix::process::geteuid().is_root();
    store_dir_from(|name| std::env::var_os(name), is_root)
}

/// [`default_store_dir`] with the environment and the user given explicitly.
pub fn store_dir_from(env: impl Fn(&str) -> Option<OsString>, is_root: bool) -> PathBuf {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("OSBUILD_RS_STORE") {
        return PathBuf::from(dir);
    }
    if is_root {
        return PathBuf::from("/var/cache/osbuild-rs");
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(cache) = set("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return cache.join("osbuild-rs");
    }
    if let Some(home) = set("HOME") {
        return PathBuf::from(home).join(".cache").join("osbuild-rs");
    }
    PathBuf::from(".osbuild-rs")
}

/// An object store opened by this process. See the module documentation for the layout and locking.
#[derive(Debug)]
pub struct ObjectStore {
    root: PathBuf,
    max_size: Option<u64>,
    /// Shared flock on `root/lock`, held for the lifetime of the value; also the descriptor that
    /// commits sync the store's file system through.
    lock: File,
    /// Whether commits wait until the store's file system has written everything back.
    durable: bool,
    /// Shared flocks on the directories of objects this process uses, by id.
    leases: Mutex<HashMap<String, File>>,
    /// Ids of the objects this value committed itself (not those another process committed
    /// first): only these may be taken out again by [`take_tree`](Self::take_tree).
    made: Mutex<HashSet<String>>,
}

impl ObjectStore {
    /// Create or open the store at `root`: create `objects/`, `sources/` and `tmp/`, take a shared
    /// lock on `root/lock` for the lifetime of the value, and remove stale entries of `tmp/` and
    /// stale download staging directories of `sources/` that no live process holds.
    pub fn open(root: &Path) -> Result<ObjectStore, StoreError> {
        let create = |path: &Path| {
            fs::create_dir_all(path).map_err(|source| StoreError::CreateDir { path: path.to_path_buf(), source })
        };
        create(root)?;
        // Absolute and free of symlinks, so paths compare with mount points when removing trees.
        let root =
            fs::canonicalize(root).map_err(|source| StoreError::CreateDir { path: root.to_path_buf(), source })?;
        for dir in ["objects", "sources", "tmp"] {
            create(&root.join(dir))?;
        }
        let lock_path = root.join("lock");
        let lock = fsutil::open_lock_file(&lock_path)
            .and_then(|f| f.lock_shared().map(|()| f))
            .map_err(|source| StoreError::Lock { path: lock_path, source })?;
        let store = ObjectStore {
            root,
            max_size: None,
            lock,
            durable: false,
            leases: Mutex::new(HashMap::new()),
            made: Mutex::new(HashSet::new()),
        };
        store.remove_stale_tmp()?;
        store.remove_stale_staging()?;
        Ok(store)
    }

    /// The store's root directory (absolute, symlinks resolved).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Set the maximum store size in bytes that [`evict`](Self::evict) enforces; `None` = unlimited
    /// (upstream's `--cache-max-size`).
    pub fn set_max_size(&mut self, max: Option<u64>) {
        self.max_size = max;
    }

    /// The maximum store size set by [`set_max_size`](Self::set_max_size).
    /// Make commits durable: before a tree becomes an object, the store's file system is synced and
    /// any write-back error since the store was opened fails the commit. Off by default, as upstream
    /// never syncs: flushing costs the time the disk needs to write every tree (a 300 MiB build took
    /// 1.7 times as long), which a cache that is rebuilt from the manifest rarely needs.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// Whether [`set_durable`](Self::set_durable) made commits (and source fetches) durable.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    pub fn max_size(&self) -> Option<u64> {
        self.max_size
    }

    fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// `objects/<id>`; for an invalid id a path that never exists (ids never escape the store).
    fn object_dir(&self, id: &str) -> PathBuf {
        if is_valid_id(id) {
            self.objects_dir().join(id)
        } else {
            self.objects_dir().join(".invalid-id")
        }
    }

    /// Whether the committed object `id` exists. False for invalid ids.
    pub fn contains(&self, id: &str) -> bool {
        is_valid_id(id) && fs::symlink_metadata(self.object_dir(id)).is_ok_and(|m| m.is_dir())
    }

    /// The directory `objects/<id>/` of a committed object (with `tree/` and `meta.json` inside), or
    /// `None` if there is no such object (or the id is invalid). Records the use for LRU eviction and
    /// keeps other processes from evicting the object while this store is open.
    pub fn get(&self, id: &str) -> Option<PathBuf> {
        if !is_valid_id(id) {
            return None;
        }
        if !self.lease(id).unwrap_or(false) {
            return None;
        }
        let dir = self.object_dir(id);
        // Best effort: a failed touch only makes the object look older to eviction.
        let _ = fsutil::touch(&dir.join(LAST_USED));
        Some(dir)
    }

    /// `objects/<id>/tree`, whether the object exists or not. For an invalid id, a path inside the
    /// store that never exists.
    pub fn tree_path(&self, id: &str) -> PathBuf {
        self.object_dir(id).join("tree")
    }

    /// The metadata of a committed object: its `meta.json`, a map stage id -> JSON.
    pub fn read_meta(&self, id: &str) -> Result<Meta, StoreError> {
        validate_id(id)?;
        let dir = self.object_dir(id);
        let path = dir.join(META_JSON);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !dir.exists() => {
                return Err(StoreError::NotFound { id: id.to_string(), path: self.objects_dir() });
            }
            Err(source) => return Err(StoreError::ReadMeta { path, source }),
        };
        serde_json::from_slice(&text).map_err(|source| StoreError::ParseMeta { path, source })
    }

    /// A fresh private work directory under `tmp/` with an empty `tree/` (mode 0755) inside. It is
    /// removed when dropped, unless committed.
    pub fn new_workdir(&self) -> Result<WorkDir, StoreError> {
        let tmp = self.tmp_dir();
        WorkDir::create(&tmp).map_err(|source| StoreError::NewWorkDir { path: tmp, source })
    }

    /// Copy the tree of the committed object `id` into `work`'s tree with `cp -a --reflink=auto`
    /// (owners, modes, xattrs, hardlinks, symlinks and special files are kept).
    pub fn clone_into(&self, id: &str, work: &WorkDir) -> Result<(), StoreError> {
        validate_id(id)?;
        let dir = self.get(id).ok_or_else(|| StoreError::NotFound { id: id.to_string(), path: self.objects_dir() })?;
        fsutil::copy_tree(&dir.join("tree"), &work.tree())
    }

    /// Make `work` the object `id`, atomically, by renaming it (never copying); `meta` is written to
    /// `meta.json` first. If the object already exists (another process won the race), `work` is
    /// dropped and the result is `Ok`.
    pub fn commit(&self, mut work: WorkDir, id: &str, meta: &Meta) -> Result<(), StoreError> {
        validate_id(id)?;
        let tmp = self.tmp_dir();
        if work.path.parent() != Some(tmp.as_path()) {
            return Err(StoreError::ForeignWorkDir { path: work.path.clone(), store: self.root.clone() });
        }
        if self.get(id).is_some() {
            return Ok(());
        }
        let dest = self.object_dir(id);
        let commit_err = |source: io::Error| StoreError::Commit { from: work.path.clone(), to: dest.clone(), source };

        let text = serde_json::to_vec_pretty(meta).map_err(io::Error::other).map_err(commit_err)?;
        fs::write(work.path.join(META_JSON), text).map_err(commit_err)?;
        fsutil::touch(&work.path.join(LAST_USED)).map_err(commit_err)?;
        // Lease the directory before it becomes the object; the lease also keeps the stale-tmp cleanup
        // of other processes away between removing the lock file and the rename.
        let lease = File::open(&work.path).map_err(commit_err)?;
        if !fsutil::try_lock_shared(&lease).map_err(commit_err)? {
            return Err(commit_err(io::Error::new(io::ErrorKind::WouldBlock, "work directory is locked")));
        }
        fs::remove_file(work.path.join(workdir::LOCK_NAME)).map_err(commit_err)?;
        // A tree whose writes the kernel could not write back (a full or failing disk) must fail
        // the build here, not turn into a committed object with holes. syncfs(2) through a file
        // opened when the store was opened reports every write-back error since then, also
        // those of background write-back during a long stage (a fresh descriptor would miss them).
        if self.durable {
            rustix::fs::syncfs(&self.lock)
                .map_err(|e| StoreError::Sync { path: work.path.clone(), source: e.into() })?;
        }

        match rename_noreplace(&work.path, &dest) {
            Ok(()) => {
                work.committed = true;
                self.lock_leases().insert(id.to_string(), lease);
                self.made.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string());
                Ok(())
            }
            Err(e) if is_exists_error(&e) => {
                // Another process committed the same id first: theirs is as good as ours.
                drop(lease);
                drop(work);
                let _ = self.get(id);
                Ok(())
            }
            Err(e) => Err(StoreError::Commit { from: work.path.clone(), to: dest, source: e }),
        }
    }

    /// Snapshot the current content of `work` as object `id` without consuming `work`: copy its tree
    /// into a new work directory (`cp -a --reflink=auto`) and commit that.
    pub fn commit_copy(&self, work: &WorkDir, id: &str, meta: &Meta) -> Result<(), StoreError> {
        validate_id(id)?;
        if self.get(id).is_some() {
            return Ok(());
        }
        let copy = self.new_workdir()?;
        fsutil::copy_tree(&work.tree(), &copy.tree())?;
        self.commit(copy, id, meta)
    }

    /// The directory for fetched sources of type `kind` (e.g. `sources/org.osbuild.files/`), created
    /// if missing. Files in it are named by checksum (`sha256:…`).
    pub fn sources_dir(&self, kind: &str) -> Result<PathBuf, StoreError> {
        if kind.is_empty() || kind == "." || kind == ".." || kind.contains('/') || kind.contains('\0') {
            return Err(StoreError::InvalidSourceKind { kind: kind.to_string() });
        }
        let path = self.root.join("sources").join(kind);
        fs::create_dir_all(&path).map_err(|source| StoreError::SourcesDir { path: path.clone(), source })?;
        Ok(path)
    }

    /// Bytes used by objects and sources: apparent size of regular files, hardlinks counted once.
    pub fn size(&self) -> Result<u64, StoreError> {
        let mut seen = HashSet::new();
        let mut total = 0;
        for dir in [self.objects_dir(), self.root.join("sources")] {
            total += fsutil::disk_usage(&dir, &mut seen).map_err(|source| StoreError::Size { path: dir, source })?;
        }
        Ok(total)
    }

    /// Bytes used by committed objects only; this is what [`evict`](Self::evict) holds under the
    /// maximum size (as upstream, whose cache size limit covers the cache entries, not sources).
    pub fn objects_size(&self) -> Result<u64, StoreError> {
        let dir = self.objects_dir();
        fsutil::disk_usage(&dir, &mut HashSet::new()).map_err(|source| StoreError::Size { path: dir, source })
    }

    /// Enforce the maximum size: evict least-recently-used committed objects, never one listed in
    /// `keep`, until the objects fit in the maximum size (or nothing more can be evicted). Returns the
    /// bytes freed; 0 when no maximum is set.
    ///
    /// Objects that another process uses are skipped. Objects that this store got earlier are
    /// evictable unless listed in `keep`: pass every object still needed.
    pub fn evict(&self, keep: &[&str]) -> Result<u64, StoreError> {
        let Some(max) = self.max_size else { return Ok(0) };
        let lock_path = self.root.join("evict.lock");
        let _evict_lock = fsutil::open_lock_file(&lock_path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|source| StoreError::Lock { path: lock_path, source })?;

        let mut objects = self.list_objects()?;
        let mut total: u64 = objects.iter().map(|o| o.size).sum();
        if total <= max {
            return Ok(0);
        }
        objects.retain(|o| !keep.contains(&o.id.as_str()));
        objects.sort_by(|a, b| a.last_used.cmp(&b.last_used).then_with(|| a.id.cmp(&b.id)));

        let mut freed = 0;
        for object in objects {
            if total <= max {
                break;
            }
            if self.evict_object(&object.id)? {
                freed += object.size;
                total -= object.size;
            }
        }
        Ok(freed)
    }

    /// The committed objects with their size and last use.
    fn list_objects(&self) -> Result<Vec<ObjectInfo>, StoreError> {
        let objects_dir = self.objects_dir();
        let list_err = |source| StoreError::Evict { path: objects_dir.clone(), source };
        let mut objects = Vec::new();
        for entry in fs::read_dir(&objects_dir).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let Some(id) = entry.file_name().to_str().filter(|n| is_valid_id(n)).map(str::to_string) else {
                continue;
            };
            let dir = entry.path();
            let size = match fsutil::disk_usage(&dir, &mut HashSet::new()) {
                Ok(size) => size,
                Err(source) => return Err(StoreError::Size { path: dir, source }),
            };
            let last_used = fs::metadata(dir.join(LAST_USED))
                .or_else(|_| fs::metadata(&dir))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            objects.push(ObjectInfo { id, size, last_used });
        }
        Ok(objects)
    }

    /// Remove one object unless another process uses it; `Ok(true)` if it was removed.
    fn evict_object(&self, id: &str) -> Result<bool, StoreError> {
        // Our own use ends here: the caller did not list the object in `keep`.
        self.lock_leases().remove(id);
        let dir = self.object_dir(id);
        let evict_err = |source| StoreError::Evict { path: dir.clone(), source };
        let lock = match File::open(&dir) {
            Ok(lock) => lock,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(evict_err(e)),
        };
        if !fsutil::try_lock_exclusive(&lock).map_err(evict_err)? || !fsutil::is_same_file(&lock, &dir) {
            return Ok(false);
        }
        // Take it out of `objects/` atomically (renaming over an empty directory), then delete it
        // while still holding the lock, which keeps the stale-tmp cleanup of others away.
        let trash = fsutil::create_unique_dir(&self.tmp_dir(), "evict-").map_err(evict_err)?;
        fs::rename(&dir, &trash).map_err(evict_err)?;
        fsutil::remove_tree(&trash).map_err(|source| StoreError::Evict { path: trash, source })?;
        Ok(true)
    }

    /// Take the object `id` out of the store and give its tree away: `place` gets the path of the
    /// tree, by then outside `objects/`, and must move it elsewhere (rename it). `Ok(true)` when
    /// `place` succeeded: the whole object, tree and metadata, is gone from the store, and a later
    /// build makes it again.
    ///
    /// `Ok(false)`, with the object in the store as before and this process's lease on it kept,
    /// when it may not or cannot be taken without waiting: this store did not commit it itself
    /// (an object found in the store may be what an earlier run checkpointed), another process
    /// holds a lease on it, another process is evicting or taking objects, or `place` failed. An
    /// error only when the object could not be put back after `place` failed; it is then gone
    /// from the store.
    ///
    /// Locking: as eviction, the object's directory is locked exclusively, and `evict.lock` is
    /// held throughout, so that no other process evicts or takes the object while our lease is
    /// turned into the exclusive lock and, if the object stays, back.
    pub fn take_tree(&self, id: &str, place: impl FnOnce(&Path) -> io::Result<()>) -> Result<bool, StoreError> {
        if !is_valid_id(id) || !self.made.lock().unwrap_or_else(|e| e.into_inner()).contains(id) {
            return Ok(false);
        }
        // One at a time in this process: two threads' flocks on `evict.lock` would conflict.
        static TAKING: Mutex<()> = Mutex::new(());
        let _taking = TAKING.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(evict_lock) = fsutil::open_lock_file(&self.root.join("evict.lock")) else { return Ok(false) };
        if !fsutil::try_lock_exclusive(&evict_lock).unwrap_or(false) {
            return Ok(false);
        }
        let taken = self.take_locked(id, place);
        // Unlocked, not only closed: a child that another thread forks meanwhile shares the
        // descriptor (and its lock) until it execs.
        let _ = evict_lock.unlock();
        if let Ok(true) = taken {
            self.made.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        }
        taken
    }

    /// [`take_tree`](Self::take_tree) once `evict.lock` is held.
    fn take_locked(&self, id: &str, place: impl FnOnce(&Path) -> io::Result<()>) -> Result<bool, StoreError> {
        let dir = self.object_dir(id);
        // Our lease's own descriptor becomes the exclusive lock: a second descriptor of ours would
        // conflict with the lease, and closing the lease need not release it (see above).
        let Some(lease) = self.lock_leases().remove(id) else { return Ok(false) };
        // Back to a shared lock (converting it cannot block: only holders of `evict.lock` lock
        // objects exclusively).
        let keep = |lease: File| {
            if fsutil::try_lock_shared(&lease).unwrap_or(false) && fsutil::is_same_file(&lease, &dir) {
                self.lock_leases().insert(id.to_string(), lease);
            } else {
                drop(lease);
                let _ = self.lease(id);
            }
        };
        if !fsutil::is_same_file(&lease, &dir) || !fsutil::try_lock_exclusive(&lease).unwrap_or(false) {
            keep(lease);
            return Ok(false);
        }
        // The whole object leaves `objects/` first (renamed over an empty directory, as eviction
        // does): the store never holds an object without its tree, even if we die in between.
        // The lock moves with the directory and keeps the stale-tmp cleanup of others away.
        let Ok(out) = fsutil::create_unique_dir(&self.tmp_dir(), "take-") else {
            keep(lease);
            return Ok(false);
        };
        if fs::rename(&dir, &out).is_err() {
            let _ = fs::remove_dir(&out);
            keep(lease);
            return Ok(false);
        }
        if place(&out.join("tree")).is_ok() {
            // What is left is the metadata.
            let _ = fsutil::remove_tree(&out);
            return Ok(true);
        }
        match rename_noreplace(&out, &dir) {
            Ok(()) => {
                keep(lease);
                Ok(false)
            }
            Err(e) if is_exists_error(&e) => {
                // Another process committed the same id meanwhile: theirs stays, ours goes.
                let _ = fsutil::remove_tree(&out);
                keep(lease);
                Ok(false)
            }
            Err(source) => {
                let _ = fsutil::remove_tree(&out);
                Err(StoreError::Commit { from: out, to: dir, source })
            }
        }
    }

    /// Take (or keep) a shared lock on object `id`; `Ok(false)` if it does not exist or is being evicted.
    fn lease(&self, id: &str) -> io::Result<bool> {
        let mut leases = self.lock_leases();
        if leases.contains_key(id) {
            return Ok(true);
        }
        let dir = self.object_dir(id);
        let file = match File::open(&dir) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if !fsutil::try_lock_shared(&file)? || !fsutil::is_same_file(&file, &dir) {
            return Ok(false);
        }
        leases.insert(id.to_string(), file);
        Ok(true)
    }

    fn lock_leases(&self) -> MutexGuard<'_, HashMap<String, File>> {
        // A panic while holding the lock cannot leave the map inconsistent; keep going.
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remove the entries of `tmp/` that no live process holds (best effort per entry).
    fn remove_stale_tmp(&self) -> Result<(), StoreError> {
        let tmp = self.tmp_dir();
        let entries = fs::read_dir(&tmp).map_err(|source| StoreError::Cleanup { path: tmp.clone(), source })?;
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = entry.path();
            if let Some(_lock) = lock_if_stale(&dir) {
                let _ = fsutil::remove_tree(&dir);
            }
        }
        Ok(())
    }
}

impl ObjectStore {
    /// Remove the download staging directories in `sources/<type>/` that no live process holds,
    /// and temp files older than [`STALE_GRACE`] that earlier versions left there (best effort
    /// per entry).
    fn remove_stale_staging(&self) -> Result<(), StoreError> {
        let sources = self.root.join("sources");
        let cleanup_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Cleanup { path, source }
        };
        for kind in fs::read_dir(&sources).map_err(cleanup_err(&sources))?.flatten() {
            if !kind.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(entries) = fs::read_dir(kind.path()) else { continue };
            for entry in entries.flatten() {
                if !entry.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
                    continue;
                }
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => {
                        if let Some(_lock) = lock_if_stale(&path) {
                            let _ = fsutil::remove_tree(&path);
                        }
                    }
                    Ok(_) => {
                        let old = entry
                            .metadata()
                            .and_then(|m| m.modified())
                            .is_ok_and(|t| t.elapsed().unwrap_or(Duration::ZERO) > STALE_GRACE);
                        if old {
                            let _ = fs::remove_file(&path);
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }
}

/// Size and last use of a committed object.
struct ObjectInfo {
    id: String,
    size: u64,
    last_used: SystemTime,
}

/// If the `tmp/` entry `dir` is stale, return the lock that proves it (hold it while removing).
///
/// A live work directory has a `lock` file that its owner holds exclusively. An entry without one is
/// being created, committed or evicted (its directory is then locked), or left by a process that died
/// at that moment: it is stale when its directory can be locked and is older than [`STALE_GRACE`].
fn lock_if_stale(dir: &Path) -> Option<File> {
    match File::open(dir.join(workdir::LOCK_NAME)) {
        Ok(lock) => fsutil::try_lock_exclusive(&lock).ok()?.then_some(lock),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let lock = File::open(dir).ok()?;
            if !fsutil::try_lock_exclusive(&lock).ok()? {
                return None;
            }
            let age = lock.metadata().ok()?.modified().ok()?.elapsed().unwrap_or(Duration::ZERO);
            (age > STALE_GRACE).then_some(lock)
        }
        Err(_) => None,
    }
}

/// rename(2) that fails with `EEXIST` instead of replacing an existing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // File systems without RENAME_NOREPLACE: a plain rename of a directory still fails when the
        // target is a non-empty directory, which every committed object is.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => fs::rename(from, to),
        Err(e) => Err(e.into()),
    }
}

/// Whether a rename failed because the target exists.
fn is_exists_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::EXIST.raw_os_error()
        || code == rustix::io::Errno::NOTEMPTY.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_lowercase_hex() {
        assert!(is_valid_id(&"a".repeat(64)));
        assert!(is_valid_id("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
        for bad in
            ["", "..", "../x", &"a".repeat(63), &"a".repeat(65), &"A".repeat(64), &format!("{}/", "a".repeat(63))]
        {
            assert!(!is_valid_id(bad), "{bad:?}");
            assert!(matches!(validate_id(bad), Err(StoreError::InvalidId { .. })));
        }
    }

    #[test]
    fn store_and_workdir_can_be_shared_across_threads() {
        fn check<T: Send + Sync>() {}
        check::<ObjectStore>();
        check::<WorkDir>();
        check::<StoreError>();
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn default_store_dir_order() {
        let all = [("OSBUILD_RS_STORE", "/s"), ("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/u")];
        assert_eq!(store_dir_from(env(&all), false), PathBuf::from("/s"));
        assert_eq!(store_dir_from(env(&all), true), PathBuf::from("/s"));
        assert_eq!(store_dir_from(env(&all[1..]), true), PathBuf::from("/var/cache/osbuild-rs"));
        assert_eq!(store_dir_from(env(&all[1..]), false), PathBuf::from("/xdg/osbuild-rs"));
        assert_eq!(store_dir_from(env(&all[2..]), false), PathBuf::from("/home/u/.cache/osbuild-rs"));
        let relative_xdg = [("XDG_CACHE_HOME", "rel"), ("HOME", "/home/u")];
        assert_eq!(store_dir_from(env(&relative_xdg), false), PathBuf::from("/home/u/.cache/osbuild-rs"));
        let empty = [("OSBUILD_RS_STORE", ""), ("HOME", "/home/u")];
        assert_eq!(store_dir_from(env(&empty), false), PathBuf::from("/home/u/.cache/osbuild-rs"));
        assert_eq!(store_dir_from(env(&[]), false), PathBuf::from(".osbuild-rs"));
    }
}
