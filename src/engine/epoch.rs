//! `source-epoch`: no file of a pipeline's tree is left newer than the epoch, whichever stage
//! or tool wrote it (upstream only passes SOURCE_DATE_EPOCH on; most tools ignore it). This is
//! what makes two builds of one manifest give trees, and tarballs, that agree in every mtime.

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Set the mtime of every entry below `root` (and `root` itself) that is newer than `epoch`
/// to `epoch`, without following symlinks or leaving the file system of `root`. Access times
/// are left as they are, and so are immutable entries.
pub fn clamp_mtimes(root: &Path, epoch: i64) -> std::io::Result<()> {
    let dev = std::fs::symlink_metadata(root)?.dev();
    let when = TimeSpec::new(epoch, 0);
    let keep = TimeSpec::UTIME_OMIT;
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let md = std::fs::symlink_metadata(&path)?;
        if md.dev() != dev {
            continue;
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&path)? {
                stack.push(e?.path());
            }
        }
        if md.mtime() > epoch {
            match utimensat(nix::fcntl::AT_FDCWD, &path, &keep, &when, UtimensatFlags::NoFollowSymlink) {
                // Immutable entries (ostree marks deployments so) cannot be touched: leave them.
                Ok(()) | Err(nix::errno::Errno::EPERM) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_entries_are_clamped_older_ones_and_link_targets_left() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/new"), "x").unwrap();
        std::fs::write(outside.path().join("target"), "y").unwrap();
        std::os::unix::fs::symlink(outside.path().join("target"), t.path().join("link")).unwrap();
        let old = std::fs::File::options().write(true).open(t.path().join("d/new")).unwrap();
        drop(old);
        let epoch = 1_700_000_000;
        clamp_mtimes(t.path(), epoch).unwrap();
        for p in ["d", "d/new", "link", ""] {
            assert_eq!(std::fs::symlink_metadata(t.path().join(p)).unwrap().mtime(), epoch, "{p}");
        }
        assert!(std::fs::metadata(outside.path().join("target")).unwrap().mtime() > epoch, "link target untouched");
        // Older than the epoch: unchanged.
        clamp_mtimes(t.path(), epoch + 10).unwrap();
        assert_eq!(std::fs::symlink_metadata(t.path().join("d/new")).unwrap().mtime(), epoch);
    }
}
