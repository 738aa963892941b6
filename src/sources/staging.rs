//! Temp files in a fetch's staging directory (see `store::StagingDir`): written, verified,
//! fsync'ed, then renamed to their checksum in the destination directory beside it; removed on
//! every other path.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::checksum::{self, Checksum};
use super::SourceError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unlikely to be taken: pid, time and a process-wide counter.
fn temp_name() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("part-{}-{:x}-{n}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// A temp file in `dir`, removed when dropped unless it was committed.
pub struct TempFile {
    path: PathBuf,
    committed: AtomicBool,
}

impl TempFile {
    /// Creates a new empty temp file in `dir` (exclusively).
    pub fn create(dir: &Path) -> Result<(TempFile, File), SourceError> {
        loop {
            let path = dir.join(temp_name());
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((TempFile { path, committed: AtomicBool::new(false) }, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(SourceError::io("create temp file", &path, e)),
            }
        }
    }

    /// Reserves a fresh temp name in `dir` without creating it (for a tool that writes it).
    pub fn reserve(dir: &Path) -> TempFile {
        loop {
            let path = dir.join(temp_name());
            if fs::symlink_metadata(&path).is_err() {
                return TempFile { path, committed: AtomicBool::new(false) };
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// Hashes the file as written, fsyncs it and renames it to `dir/<expected>` when the digest
    /// matches. A mismatch is returned as `ChecksumMismatch` naming `origin`.
    /// A missing file counts as empty: curl may not create its output for an empty body.
    pub fn verify_and_commit(&self, dir: &Path, expected: &Checksum, origin: &str) -> Result<(), SourceError> {
        if fs::symlink_metadata(&self.path).is_err() {
            File::create(&self.path).map_err(|e| SourceError::io("create", &self.path, e))?;
        }
        let file = File::open(&self.path).map_err(|e| SourceError::io("open downloaded file", &self.path, e))?;
        let actual = checksum::hash_reader(&file, expected.algorithm)
            .map_err(|e| SourceError::io("read downloaded file", &self.path, e))?;
        if actual != *expected {
            return Err(SourceError::ChecksumMismatch { origin: origin.to_string(), expected: expected.to_string() });
        }
        // fsync through a writable handle: some filesystems want one.
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| SourceError::io("open downloaded file", &self.path, e))?;
        file.sync_all().map_err(|e| SourceError::io("fsync", &self.path, e))?;
        self.commit(dir, expected)
    }

    /// For data hashed while it was written through `file`: compares `actual` with `expected`,
    /// fsyncs and renames into place.
    pub fn check_and_commit(
        self,
        file: File,
        actual: &Checksum,
        dir: &Path,
        expected: &Checksum,
        origin: &str,
    ) -> Result<(), SourceError> {
        if actual != expected {
            return Err(SourceError::ChecksumMismatch { origin: origin.to_string(), expected: expected.to_string() });
        }
        file.sync_all().map_err(|e| SourceError::io("fsync", &self.path, e))?;
        drop(file);
        self.commit(dir, expected)
    }

    /// Renames an already verified and fsync'ed file to `dir/<checksum>`. A racing writer of the
    /// same checksum stored the same content, so an existing target is fine.
    pub fn commit(&self, dir: &Path, checksum: &Checksum) -> Result<(), SourceError> {
        let target = dir.join(checksum.to_string());
        fs::rename(&self.path, &target).map_err(|e| SourceError::io("rename into place", &target, e))?;
        self.committed.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed.load(Ordering::SeqCst) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Whether `dir/<checksum>` is already stored (a regular file, as upstream checks).
pub fn is_stored(dir: &Path, checksum: &str) -> bool {
    dir.join(checksum).is_file()
}

/// Makes renames into `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), SourceError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| SourceError::io("fsync directory", dir, e))
}
