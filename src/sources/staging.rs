//! Temp files in a fetch's staging directory (see `store::StagingDir`): written, verified,
//! fsync'ed (when the fetch is durable), then renamed to their checksum in the destination directory beside it; removed on
//! every other path.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::checksum::{self, Checksum};
use super::SourceError;

/// A temp file in `dir` (`tempfile`'s unique name), removed when dropped unless it was
/// committed. `&self` commits, so that parallel workers can commit the files of one batch.
pub struct TempFile {
    path: PathBuf,
    temp: Mutex<Option<tempfile::TempPath>>,
}

impl TempFile {
    /// Creates a new empty temp file in `dir` (exclusively), for us or a tool to write.
    pub fn create(dir: &Path) -> Result<(TempFile, File), SourceError> {
        // 0644 as upstream's sources leave them (tempfile's 0600 would reach the trees that
        // copy them: a root-only systemd-networkd config is one networkd cannot read)
        let (file, temp) = tempfile::Builder::new()
            .prefix("part-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(dir)
            .map_err(|e| SourceError::io("create temp file", dir, e))?
            .into_parts();
        Ok((TempFile { path: temp.to_path_buf(), temp: Mutex::new(Some(temp)) }, file))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// Hashes the file as written, fsyncs it (when `sync`) and renames it to `dir/<expected>` when
    /// the digest matches. A mismatch is returned as `ChecksumMismatch` naming `origin`.
    /// A missing file counts as empty: curl may not create its output for an empty body.
    pub fn verify_and_commit(
        &self,
        dir: &Path,
        expected: &Checksum,
        origin: &str,
        sync: bool,
    ) -> Result<(), SourceError> {
        if fs::symlink_metadata(&self.path).is_err() {
            File::create(&self.path).map_err(|e| SourceError::io("create", &self.path, e))?;
        }
        let file = File::open(&self.path).map_err(|e| SourceError::io("open downloaded file", &self.path, e))?;
        let actual = checksum::hash_reader(&file, expected.algorithm)
            .map_err(|e| SourceError::io("read downloaded file", &self.path, e))?;
        if actual != *expected {
            return Err(SourceError::ChecksumMismatch { origin: origin.to_string(), expected: expected.to_string() });
        }
        if sync {
            // fsync through a writable handle: some filesystems want one.
            let file = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(|e| SourceError::io("open downloaded file", &self.path, e))?;
            file.sync_all().map_err(|e| SourceError::io("fsync", &self.path, e))?;
        }
        self.commit(dir, expected)
    }

    /// For data hashed while it was written through `file`: compares `actual` with `expected`,
    /// fsyncs (when `sync`) and renames into place.
    pub fn check_and_commit(
        self,
        file: File,
        actual: &Checksum,
        dir: &Path,
        expected: &Checksum,
        origin: &str,
        sync: bool,
    ) -> Result<(), SourceError> {
        if actual != expected {
            return Err(SourceError::ChecksumMismatch { origin: origin.to_string(), expected: expected.to_string() });
        }
        if sync {
            file.sync_all().map_err(|e| SourceError::io("fsync", &self.path, e))?;
        }
        drop(file);
        self.commit(dir, expected)
    }

    /// Renames an already verified and fsync'ed file to `dir/<checksum>`. A racing writer of the
    /// same checksum stored the same content, so an existing target is fine.
    pub fn commit(&self, dir: &Path, checksum: &Checksum) -> Result<(), SourceError> {
        let target = dir.join(checksum.to_string());
        let mut temp = self.temp.lock().unwrap_or_else(|e| e.into_inner());
        let Some(t) = temp.take() else {
            return Err(SourceError::io("rename into place", &target, std::io::ErrorKind::NotFound.into()));
        };
        t.persist(&target).map_err(|e| {
            let source = e.error;
            // still ours: removed when this value is dropped
            *temp = Some(e.path);
            SourceError::io("rename into place", &target, source)
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn stored_files_are_world_readable_as_upstream_leaves_them() {
        let t = tempfile::tempdir().unwrap();
        let (temp, file) = TempFile::create(t.path()).unwrap();
        let sum =
            checksum::hash_reader(&std::fs::File::open(temp.path()).unwrap(), checksum::Algorithm::Sha256).unwrap();
        temp.check_and_commit(file, &sum, t.path(), &sum, "test", true).unwrap();
        let mode = std::fs::metadata(t.path().join(sum.to_string())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
