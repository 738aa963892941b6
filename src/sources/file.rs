//! `file://` items of `org.osbuild.curl`: copied natively from the host, under one rule.
//!
//! What a manifest may read this way (see the README's threat model):
//! - only regular files, never FIFOs, devices or sockets (opened `O_PATH` and checked first, so a
//!   FIFO is never opened for real), and nothing on kernel file systems (`/proc`, `/sys`,
//!   debugfs, ...), whose files can block, never end or change with every read;
//! - with `OSBUILD_RS_FILE_URL_DIRS` set (a `:`-separated list of absolute directories), only
//!   files below those directories, resolved with `openat2(RESOLVE_IN_ROOT)` so neither `..` nor a
//!   symlink leads out of them; set but empty, no `file://` item at all;
//! - in every case a file's content is imported only when it matches the item's checksum, and a
//!   mismatch never reports the content's hash: a manifest learns nothing about a file it could
//!   not already name by its hash.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use osbuild_sys::Root;

use super::checksum::{self, Checksum};
use super::curl::split_scheme;
use super::staging::TempFile;
use super::{FetchOptions, SourceError};

/// The environment variable naming the directories `file://` items may read.
pub const ENV_FILE_URL_DIRS: &str = "OSBUILD_RS_FILE_URL_DIRS";

/// Kernel file systems whose files a `file://` item may not read (`statfs.f_type`): proc,
/// sysfs, debugfs, tracefs, securityfs, configfs, cgroup, cgroup2, bpf, pstore, efivarfs.
const PSEUDO_FS: &[u32] = &[
    0x0000_9fa0,
    0x6265_6572,
    0x6462_6720,
    0x7472_6163,
    0x7363_6673,
    0x6265_6570,
    0x0027_e0eb,
    0x6367_7270,
    0xcafe_4a11,
    0x6165_676c,
    0xde5e_81e4,
];

/// The local path of a `file:` URL, or `None` for other schemes. Upstream quotes the path and
/// curl decodes it again, so the path is taken literally (no percent-decoding); the host must be
/// empty or `localhost`, as curl requires.
pub fn file_path(url: &str) -> Option<Result<PathBuf, SourceError>> {
    let (scheme, rest) = split_scheme(url)?;
    if !scheme.eq_ignore_ascii_case("file") {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let path = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find('/').unwrap_or(r.len());
            let host = &r[..end];
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return Some(Err(SourceError::RemoteFileUrl { url: url.to_string() }));
            }
            &r[end..]
        }
        None => rest,
    };
    if !path.starts_with('/') {
        return Some(Err(SourceError::InvalidUrl { url: url.to_string(), reason: "no absolute path".into() }));
    }
    Some(Ok(PathBuf::from(path)))
}

/// Parses `OSBUILD_RS_FILE_URL_DIRS`: unset means no restriction (`None`), set means only below
/// these directories (none when empty).
pub fn parse_dirs(value: Option<OsString>) -> Result<Option<Vec<PathBuf>>, SourceError> {
    let Some(value) = value else { return Ok(None) };
    let mut dirs = Vec::new();
    for dir in std::env::split_paths(&value).filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_absolute() {
            return Err(SourceError::Setting {
                name: ENV_FILE_URL_DIRS,
                value: value.to_string_lossy().into_owned(),
                reason: format!("{} is not an absolute directory", dir.display()),
            });
        }
        dirs.push(dir);
    }
    Ok(Some(dirs))
}

/// Opens the file `path` names for reading under the `file://` rule above.
fn open_source(url: &str, path: &Path, dirs: Option<&[PathBuf]>) -> Result<File, SourceError> {
    let read_error = |error: io::Error| SourceError::File { url: url.to_string(), path: path.to_path_buf(), error };
    let (root, rel) = match dirs {
        None => (Path::new("/"), path),
        Some(dirs) => {
            let found = dirs.iter().find_map(|d| path.strip_prefix(d).ok().map(|rel| (d.as_path(), rel)));
            found.ok_or_else(|| SourceError::OutsideFileDirs {
                url: url.to_string(),
                dirs: std::env::join_paths(dirs).map(|d| d.to_string_lossy().into_owned()).unwrap_or_default(),
            })?
        }
    };
    let root = Root::open(root).map_err(|e| read_error(e.source))?;
    let file = root.open_read(rel).map_err(|e| read_error(e.source))?;
    let fs = rustix::fs::fstatfs(file.as_fd()).map_err(|e| read_error(e.into()))?;
    // The magic numbers are 32 bits wide; f_type is a signed machine word.
    if PSEUDO_FS.contains(&(fs.f_type as u64 as u32)) {
        return Err(read_error(io::Error::other("files of kernel file systems (/proc, /sys, ...) are not sources")));
    }
    Ok(file)
}

/// Copies the local file of a `file://` item into `staging`, hashing it on the way, and on a
/// match stores it as `dest_dir/<checksum>`. Bounded by the download timeout and stop signals,
/// like a transfer.
pub fn fetch_file(
    url: &str,
    path: &Path,
    checksum: &Checksum,
    staging: &Path,
    dest_dir: &Path,
    opts: &FetchOptions,
) -> Result<(), SourceError> {
    let read_error = |error| SourceError::File { url: url.to_string(), path: path.to_path_buf(), error };
    let deadline = opts.deadline();
    let src = open_source(url, path, opts.file_url_dirs.as_deref())?;
    let (temp, mut out) = TempFile::create(staging)?;
    let mut hasher = checksum.algorithm.hasher();
    let mut buf = vec![0u8; checksum::BUF_SIZE];
    let mut reader = &src;
    loop {
        if let Some(signal) = crate::sandbox::interrupted() {
            return Err(SourceError::Interrupted { url: url.to_string(), signal });
        }
        if Instant::now() >= deadline {
            return Err(SourceError::TimedOut { url: url.to_string(), secs: opts.timeout.as_secs() });
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| SourceError::io("write", temp.path(), e))?;
    }
    temp.check_and_commit(out, &hasher.finish(), dest_dir, checksum, url, opts.durable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_are_literal_local_paths() {
        assert!(file_path("https://h/x").is_none());
        assert_eq!(file_path("file:///tmp/a%20b").unwrap().unwrap(), PathBuf::from("/tmp/a%20b"));
        assert_eq!(file_path("file://localhost/tmp/x?q#f").unwrap().unwrap(), PathBuf::from("/tmp/x"));
        assert_eq!(file_path("FILE:/tmp/x").unwrap().unwrap(), PathBuf::from("/tmp/x"));
        assert!(file_path("file://server/tmp/x").unwrap().is_err());
    }

    #[test]
    fn dirs_setting() {
        assert_eq!(parse_dirs(None).unwrap(), None);
        assert_eq!(parse_dirs(Some("".into())).unwrap(), Some(vec![]));
        assert_eq!(parse_dirs(Some("/a:/b/".into())).unwrap(), Some(vec![PathBuf::from("/a"), PathBuf::from("/b/")]));
        let e = parse_dirs(Some("/a:rel".into())).unwrap_err().to_string();
        assert_eq!(e, "invalid OSBUILD_RS_FILE_URL_DIRS=/a:rel: rel is not an absolute directory");
    }

    #[test]
    fn only_regular_files_of_real_file_systems() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let started = Instant::now();
        for (path, why) in [
            (fifo.as_path(), "not a regular file"),
            (Path::new("/dev/zero"), "not a regular file"),
            (Path::new("/proc/self/status"), "kernel file systems"),
            (Path::new("/sys/kernel/mm/transparent_hugepage/enabled"), "kernel file systems"),
        ] {
            let e = open_source("file://x", path, None).unwrap_err().to_string();
            assert!(e.contains(why), "{}: {e}", path.display());
        }
        assert!(started.elapsed().as_secs() < 2, "an open blocked");
    }

    #[test]
    fn allowed_dirs_confine_dotdot_and_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let allowed = t.path().join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("ok"), "fine").unwrap();
        std::fs::write(t.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), allowed.join("abs")).unwrap();
        std::os::unix::fs::symlink("../secret", allowed.join("rel")).unwrap();
        let dirs = [allowed.clone()];
        let mut s = String::new();
        open_source("u", &allowed.join("ok"), Some(&dirs)).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "fine");
        for path in [t.path().join("secret"), allowed.join("../secret"), allowed.join("abs"), allowed.join("rel")] {
            match open_source("u", &path, Some(&dirs)) {
                Err(SourceError::OutsideFileDirs { .. }) => {}
                Err(SourceError::File { error, .. }) => assert_eq!(error.kind(), io::ErrorKind::NotFound, "{path:?}"),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        let e = open_source("file:///etc/passwd", Path::new("/etc/passwd"), Some(&[])).unwrap_err().to_string();
        assert!(e.starts_with("file url file:///etc/passwd is outside the directories"), "{e}");
    }
}
