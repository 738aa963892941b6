//! `source-epoch`: no file of a pipeline's tree is left newer than the epoch, whichever stage
//! or tool wrote it (upstream only passes SOURCE_DATE_EPOCH on; most tools ignore it). This is
//! what makes two builds of one manifest give trees, and tarballs, that agree in every mtime.

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Timespec, Timestamps, UTIME_OMIT};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Set the mtime of every entry below `root` (and `root` itself) that is newer than `epoch`
/// to `epoch`, without following symlinks or leaving the file system of `root`. Access times
/// are left as they are, and so are immutable entries.
///
/// The walk goes from directory descriptor to directory descriptor (`O_NOFOLLOW`), and each
/// entry is inspected and changed relative to its directory, so no path is looked up twice.
pub fn clamp_mtimes(root: &Path, epoch: i64) -> std::io::Result<()> {
    let top = open_dir(rustix::fs::CWD, root)?;
    let dev = rustix::fs::fstat(&top)?.st_dev;
    let times = Timestamps {
        last_access: Timespec { tv_sec: 0, tv_nsec: UTIME_OMIT },
        last_modification: Timespec { tv_sec: epoch, tv_nsec: 0 },
    };
    if rustix::fs::fstat(&top)?.st_mtime > epoch {
        keep_immutable(rustix::fs::futimens(&top, &times))?;
    }
    clamp_below(top.as_fd(), dev, epoch, &times)
}

fn open_dir<P: rustix::path::Arg>(at: BorrowedFd<'_>, name: P) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(at, name, flags, Mode::empty())?)
}

/// Immutable entries (ostree marks deployments so) cannot be touched: leave them.
fn keep_immutable(r: rustix::io::Result<()>) -> std::io::Result<()> {
    match r {
        Ok(()) | Err(rustix::io::Errno::PERM) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn clamp_below(dir: BorrowedFd<'_>, dev: u64, epoch: i64, times: &Timestamps) -> std::io::Result<()> {
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if st.st_dev != dev {
            continue;
        }
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            clamp_below(open_dir(dir, name)?.as_fd(), dev, epoch, times)?;
        }
        if st.st_mtime > epoch {
            keep_immutable(rustix::fs::utimensat(dir, name, times, AtFlags::SYMLINK_NOFOLLOW))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

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
