//! Confinement: the one way osbuild-rs reaches a path that a manifest or a tree names.
//!
//! A [`Root`] is a directory file descriptor. Paths below it are resolved by the kernel with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: absolute symlinks start again at the root,
//! `..` never climbs above it, and `/proc/self/fd` tricks are refused. Every operation works on
//! the file descriptors this yields, so nothing can be swapped between a check and its use.
//! Kernels without `openat2` (before 5.6) get the same rule from a component-by-component walk
//! with `O_NOFOLLOW`, reading each symlink and resolving it inside the root by hand.
//!
//! Where a tool or mount(2) needs a path, [`Root::fd_path`] gives the kernel's name of an fd we
//! already opened (`/proc/self/fd/N`), which refers to exactly that file.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow (the kernel's own limit).
const MAX_SYMLINKS: usize = 40;

/// A failed operation on a path inside a [`Root`]; the message names both.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} '{path}' in {}", root.display())]
pub struct PathError {
    pub op: &'static str,
    pub root: PathBuf,
    pub path: String,
    #[source]
    pub source: io::Error,
}

impl PathError {
    /// The errno of the failure, if it came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

/// A directory that paths are resolved in and never leave.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// How the caller named the directory; only for messages and for tools that need a path.
    path: PathBuf,
}

impl Root {
    /// Open the directory at `path` (a trusted host path: symlinks in it are followed).
    pub fn open(path: impl AsRef<Path>) -> Result<Root, PathError> {
        let path = path.as_ref();
        let fd =
            rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
                PathError { op: "open directory", root: path.to_owned(), path: ".".into(), source: e.into() }
            })?;
        Ok(Root { fd, path: path.to_owned() })
    }

    /// A root over a directory that is already open (an `O_PATH` descriptor is enough);
    /// `path` names it in messages and for tools.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> Root {
        Root { fd, path }
    }

    /// Another handle on the same directory.
    pub fn try_clone(&self) -> Result<Root, PathError> {
        let fd = self.fd.try_clone().map_err(self.err("duplicate", Path::new(".")))?;
        Ok(Root { fd, path: self.path.clone() })
    }

    /// The path this root was opened as.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn err(&self, op: &'static str, rel: &Path) -> impl FnOnce(io::Error) -> PathError + '_ {
        let path = rel.display().to_string();
        move |source| PathError { op, root: self.path.clone(), path, source }
    }

    /// Open `rel` with `flags` (plus `O_CLOEXEC`, and `O_NOFOLLOW` unless `follow_final`).
    pub fn open_at(&self, rel: &Path, flags: OFlags, mode: u32, follow_final: bool) -> Result<OwnedFd, PathError> {
        resolve_open(self.fd.as_fd(), rel, flags, Mode::from_raw_mode(mode), follow_final, Strategy::Kernel)
            .map_err(self.err("open", rel))
    }

    /// An `O_PATH` descriptor of `rel`: the thing itself when `follow_final` is false.
    pub fn open_path(&self, rel: impl AsRef<Path>, follow_final: bool) -> Result<OwnedFd, PathError> {
        self.open_at(rel.as_ref(), OFlags::PATH, 0, follow_final)
    }

    /// The directory `rel` (symlinks followed inside this root) as a root of its own.
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<Root, PathError> {
        let rel = rel.as_ref();
        let fd = self.open_at(rel, OFlags::PATH | OFlags::DIRECTORY, 0, true)?;
        let path = fd_path(fd.as_fd()).unwrap_or_else(|_| self.path.join(lexical(rel)));
        Ok(Root { fd, path })
    }

    /// Open `rel` for reading, refusing anything but a regular file. The file is first opened
    /// with `O_PATH` and checked, then reopened through its descriptor, so a FIFO or a device
    /// node is never opened for real (no blocking open, no side effect of a driver).
    pub fn open_read(&self, rel: impl AsRef<Path>) -> Result<File, PathError> {
        let rel = rel.as_ref();
        let fd = self.open_path(rel, true)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("inspect", rel)(e.into()))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(self.err("read", rel)(io::Error::other("not a regular file")));
        }
        reopen(fd.as_fd(), OFlags::RDONLY | OFlags::NOCTTY).map(File::from).map_err(self.err("open", rel))
    }

    /// The whole content of the regular file `rel`, refused if larger than `max` bytes.
    pub fn read_bounded(&self, rel: impl AsRef<Path>, max: u64) -> Result<Vec<u8>, PathError> {
        let rel = rel.as_ref();
        let f = self.open_read(rel)?;
        let mut out = Vec::new();
        f.take(max + 1).read_to_end(&mut out).map_err(self.err("read", rel))?;
        if out.len() as u64 > max {
            return Err(self.err("read", rel)(io::Error::other(format!("larger than the limit of {max} bytes"))));
        }
        Ok(out)
    }

    /// What `rel` is (symlinks followed inside the root when `follow_final`), without opening it
    /// for real; `None` when it does not exist.
    pub fn stat(&self, rel: impl AsRef<Path>, follow_final: bool) -> Result<Option<rustix::fs::Stat>, PathError> {
        let rel = rel.as_ref();
        match self.open_path(rel, follow_final) {
            Ok(fd) => rustix::fs::fstat(&fd).map(Some).map_err(|e| self.err("inspect", rel)(e.into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create the directory `rel` and its missing parents (each with `mode`, before umask),
    /// every component resolved inside the root, and return it as a root.
    pub fn create_dir_all(&self, rel: impl AsRef<Path>, mode: u32) -> Result<Root, PathError> {
        // Resolve first (a dangling link names where the directory must go), then make each
        // missing component in its parent, which is itself opened inside the root.
        let real = self.resolve(rel.as_ref(), true)?;
        let inside = real.strip_prefix(&self.path).map(Path::to_owned).unwrap_or_default();
        let mut done = PathBuf::new();
        for c in inside.components() {
            let Component::Normal(name) = c else { continue };
            let parent = self.open_at(&done, OFlags::PATH | OFlags::DIRECTORY, 0, true)?;
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(mode)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(self.err("create directory", &done.join(name))(e.into())),
            }
            done.push(name);
        }
        self.open_dir(&done)
    }

    /// Create the directory `name` (one plain name) right in this root, or open the directory
    /// that is already there. Whatever else is in its place, a symlink above all, is refused
    /// and never followed.
    pub fn create_dir(&self, name: &str, mode: u32) -> Result<Root, PathError> {
        let rel = Path::new(name);
        if !is_plain_name(name) {
            return Err(self.err("create directory", rel)(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(self.err("create directory", rel)(e.into())),
        }
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            let e: io::Error = match e {
                // O_NOFOLLOW|O_PATH|O_DIRECTORY on a symlink: "not a directory".
                rustix::io::Errno::NOTDIR => io::Error::other("it exists and is not a directory (a symlink?)"),
                e => e.into(),
            };
            self.err("create directory", rel)(e)
        })?;
        Ok(Root { fd, path: self.path.join(name) })
    }

    /// Move the directory `from` (a host path the caller trusts) to `name` (one plain name)
    /// right in this root, with one rename(2) relative to the root's descriptor: nothing is
    /// copied, the directory keeps its inode, owner, mode and times. `name` may be missing or
    /// an empty directory, which is replaced. Anything else fails and leaves both places as
    /// they were: a directory with entries (`ENOTEMPTY`/`EEXIST`), a symlink or a file
    /// (`ENOTDIR`: rename(2) replaces the link itself, it never follows it), another file
    /// system (`EXDEV`), a mount point (`EBUSY`).
    pub fn move_dir_in(&self, from: &Path, name: &str) -> Result<(), PathError> {
        let rel = Path::new(name);
        if !is_plain_name(name) {
            return Err(self.err("move a directory to", rel)(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        rustix::fs::renameat(rustix::fs::CWD, from, &self.fd, name)
            .map_err(|e| self.err("move a directory to", rel)(e.into()))
    }

    /// The entries of the directory `rel` (symlinks followed inside the root), in the order
    /// the kernel lists them, without `.` and `..`.
    pub fn read_dir(&self, rel: impl AsRef<Path>) -> Result<Vec<DirEntry>, PathError> {
        let rel = rel.as_ref();
        let fd = self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY, 0, true)?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(|e| self.err("list", rel)(e.into()))?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| self.err("list", rel)(e.into()))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_owned();
            if name == "." || name == ".." {
                continue;
            }
            let mut kind = EntryKind::from(entry.file_type());
            if kind == EntryKind::Unknown {
                let st = rustix::fs::statat(&fd, name.as_os_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.err("inspect", &rel.join(&name))(e.into()))?;
                kind = EntryKind::from(rustix::fs::FileType::from_raw_mode(st.st_mode));
            }
            out.push(DirEntry { name, kind });
        }
        Ok(out)
    }

    /// The real path of `rel` below the root, every symlink resolved inside the root, for tools
    /// that take a path. Components that do not exist are appended as spelled (after resolving
    /// `..` among them). `follow_final` as for [`Root::open_path`].
    pub fn resolve(&self, rel: impl AsRef<Path>, follow_final: bool) -> Result<PathBuf, PathError> {
        self.resolve_depth(rel.as_ref(), follow_final, 0)
    }

    fn resolve_depth(&self, rel: &Path, follow_final: bool, depth: usize) -> Result<PathBuf, PathError> {
        // Raw components: `..` after a symlink applies to the link's target, as in the kernel.
        let comps: Vec<OsString> = raw_components(rel).collect();
        // The longest prefix that exists, opened inside the root.
        let mut n = comps.len();
        let fd = loop {
            let prefix: PathBuf = comps[..n].iter().collect();
            let follow = follow_final || n < comps.len();
            match self.open_path(&prefix, follow) {
                Ok(fd) => break fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && n > 0 => {
                    // A dangling symlink here? Then it is the last thing that exists.
                    if follow {
                        if let Ok(fd) = self.open_path(&prefix, false) {
                            break fd;
                        }
                    }
                    n -= 1
                }
                Err(e) => return Err(e),
            }
        };
        // A dangling symlink as the last existing component: resolve its target by hand.
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("inspect", rel)(e.into()))?;
        let is_link = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink;
        if is_link && n > 0 && (follow_final || n < comps.len()) {
            if depth >= MAX_SYMLINKS {
                return Err(self.err("resolve", rel)(io::Error::from_raw_os_error(libc::ELOOP)));
            }
            let target =
                rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|e| self.err("read link", rel)(e.into()))?;
            let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
            let mut next: PathBuf = if target.is_absolute() { PathBuf::new() } else { comps[..n - 1].iter().collect() };
            next.push(target.strip_prefix("/").unwrap_or(&target));
            next.extend(&comps[n..]);
            return self.resolve_depth(&next, follow_final, depth + 1);
        }
        // Where the prefix is, relative to the root, then the missing rest (its `..` lexical).
        let real_root = fd_path(self.fd.as_fd()).map_err(self.err("resolve", Path::new(".")))?;
        let real = fd_path(fd.as_fd()).map_err(self.err("resolve", rel))?;
        let mut inside: Vec<OsString> = match real.strip_prefix(&real_root) {
            Ok(r) => r.components().map(|c| c.as_os_str().to_owned()).collect(),
            Err(_) => return Err(self.err("resolve", rel)(io::Error::other("resolved outside the root"))),
        };
        for c in &comps[n..] {
            if c == ".." {
                inside.pop();
            } else {
                inside.push(c.clone());
            }
        }
        let mut out = self.path.clone();
        out.extend(inside);
        Ok(out)
    }
}

/// One entry of [`Root::read_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    /// What the entry itself is (a symlink is not followed).
    pub kind: EntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
    Other,
    /// Only before [`Root::read_dir`] asked the kernel.
    Unknown,
}

impl From<rustix::fs::FileType> for EntryKind {
    fn from(t: rustix::fs::FileType) -> EntryKind {
        use rustix::fs::FileType as T;
        match t {
            T::Directory => EntryKind::Dir,
            T::RegularFile => EntryKind::File,
            T::Symlink => EntryKind::Symlink,
            T::Unknown => EntryKind::Unknown,
            _ => EntryKind::Other,
        }
    }
}

/// Hard-link the regular file behind `src` (any descriptor of it, `O_PATH` included) into
/// `dir` as `name`, or copy it (content and mode) where a link is impossible, e.g. across
/// file systems. Nothing is looked up by path: the file is the one that was opened.
pub fn link_or_copy(src: BorrowedFd<'_>, dir: &Root, name: &OsStr) -> io::Result<()> {
    match rustix::fs::linkat(src, "", dir.fd(), name, rustix::fs::AtFlags::EMPTY_PATH) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::XDEV | rustix::io::Errno::PERM | rustix::io::Errno::MLINK) => {}
        Err(e) => return Err(e.into()),
    }
    let st = rustix::fs::fstat(src)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(io::Error::other("not a regular file"));
    }
    let mut from = File::from(reopen(src, OFlags::RDONLY | OFlags::NOCTTY)?);
    let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut to = File::from(rustix::fs::openat(dir.fd(), name, flags, mode)?);
    io::copy(&mut from, &mut to)?;
    rustix::fs::fchmod(&to, mode)?;
    Ok(())
}

/// The kernel's name for an open descriptor (`readlink /proc/self/fd/N`).
pub fn fd_path(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(proc_fd(fd))
}

/// `/proc/self/fd/N`: a path naming exactly the open file, for mount(2) and tools.
pub fn proc_fd(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Open the file behind an `O_PATH` descriptor for real.
pub fn reopen(fd: BorrowedFd<'_>, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(proc_fd(fd), flags | OFlags::CLOEXEC, Mode::empty())?)
}

/// Whether `name` is one plain file name: not empty, not `.`/`..`, no `/`, no NUL.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// `rel`'s normal components, `..` applied lexically (never above the start).
fn normal_components(rel: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n.to_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn lexical(rel: &Path) -> PathBuf {
    normal_components(rel).into_iter().collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// `openat2(RESOLVE_IN_ROOT)`, falling back to [`Strategy::Walk`] when the kernel lacks it.
    Kernel,
    /// The same rule, one component at a time.
    #[cfg_attr(not(test), allow(dead_code))]
    Walk,
}

fn resolve_open(
    root: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
    follow_final: bool,
    strategy: Strategy,
) -> io::Result<OwnedFd> {
    let mut flags = flags | OFlags::CLOEXEC;
    if !follow_final {
        flags |= OFlags::NOFOLLOW;
    }
    if strategy == Strategy::Kernel {
        let rel_str = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        // EAGAIN: a rename elsewhere raced with the lookup; the kernel asks us to try again.
        for _ in 0..16 {
            match rustix::fs::openat2(root, rel_str, flags, mode, resolve) {
                Err(rustix::io::Errno::AGAIN) => continue,
                Err(rustix::io::Errno::NOSYS) => return walk_open(root, rel, flags, mode, follow_final),
                other => return other.map_err(Into::into),
            }
        }
        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
    }
    walk_open(root, rel, flags, mode, follow_final)
}

/// The names and `..`s of `rel`, as the kernel walks them: no root, no `.`, `..` kept (after
/// a symlink it applies to the link's target).
fn raw_components(rel: &Path) -> impl Iterator<Item = OsString> + '_ {
    rel.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_owned()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    })
}

/// `openat2(RESOLVE_IN_ROOT)` by hand: each directory component opened with `O_NOFOLLOW`,
/// symlinks read and their targets queued in place of the link, an absolute target starting
/// again at the root, `..` never popping the root.
fn walk_open(root: BorrowedFd<'_>, rel: &Path, flags: OFlags, mode: Mode, follow_final: bool) -> io::Result<OwnedFd> {
    use std::collections::VecDeque;
    let dup = |fd: BorrowedFd<'_>| -> io::Result<OwnedFd> {
        Ok(rustix::fs::openat(fd, ".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
    };
    let mut stack: Vec<OwnedFd> = vec![dup(root)?];
    let mut queue: VecDeque<OsString> = raw_components(rel).collect();
    let mut links = 0;
    let nofollow = flags | OFlags::NOFOLLOW;
    loop {
        let Some(c) = queue.pop_front() else {
            // Nothing (left) to look up: the directory we stand in is the answer.
            let cur = stack.last().expect("never empty");
            return Ok(rustix::fs::openat(cur, ".", flags & !OFlags::NOFOLLOW, mode)?);
        };
        if c == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let last = queue.is_empty();
        let cur = stack.last().expect("never empty");
        let probe = rustix::fs::openat(cur, &c, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty());
        let fd = match probe {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) if last && flags.contains(OFlags::CREATE) => {
                return Ok(rustix::fs::openat(cur, &c, nofollow, mode)?);
            }
            Err(e) => return Err(e.into()),
        };
        let st = rustix::fs::fstat(&fd)?;
        let is_link = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink;
        if is_link && (!last || follow_final) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
            let target = Path::new(OsStr::from_bytes(target.as_bytes()));
            if target.is_absolute() {
                stack.truncate(1);
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => queue.push_front(n.to_owned()),
                    Component::ParentDir => queue.push_front("..".into()),
                    _ => {}
                }
            }
            continue;
        }
        if last {
            if flags.contains(OFlags::PATH) && !flags.contains(OFlags::DIRECTORY) {
                return Ok(fd);
            }
            return Ok(rustix::fs::openat(cur, &c, nofollow, mode)?);
        }
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        stack.push(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn real(fd: &OwnedFd) -> PathBuf {
        fd_path(fd.as_fd()).unwrap()
    }

    /// Both strategies must give the same answers.
    fn open_both(root: &Root, rel: &str, follow: bool) -> io::Result<PathBuf> {
        let a = resolve_open(root.fd(), Path::new(rel), OFlags::PATH, Mode::empty(), follow, Strategy::Kernel);
        let b = resolve_open(root.fd(), Path::new(rel), OFlags::PATH, Mode::empty(), follow, Strategy::Walk);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(real(&a), real(&b), "{rel}");
                Ok(real(&a))
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.kind(), b.kind(), "{rel}: {a} vs {b}");
                Err(a)
            }
            (a, b) => panic!("{rel}: kernel {a:?}, walk {b:?}"),
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), "host").unwrap();
        let t = tempfile::tempdir().unwrap();
        let r = t.path().canonicalize().unwrap();
        std::fs::create_dir_all(r.join("etc/sub")).unwrap();
        std::fs::write(r.join("etc/secret"), "tree").unwrap();
        symlink(host.path().join("secret"), r.join("abs")).unwrap();
        symlink("../../../../../../../..", r.join("etc/sub/up")).unwrap();
        symlink("/etc", r.join("etclink")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        let root = Root::open(&r).unwrap();
        assert_eq!(open_both(&root, "etc/sub/up/etc/secret", true).unwrap(), r.join("etc/secret"));
        assert_eq!(open_both(&root, "/etclink/secret", true).unwrap(), r.join("etc/secret"));
        assert_eq!(open_both(&root, "../../etc", true).unwrap(), r.join("etc"));
        assert_eq!(open_both(&root, "", true).unwrap(), r);
        assert_eq!(open_both(&root, "etclink", false).unwrap(), r.join("etclink"));
        // the absolute link points at a host file: inside the root that path does not exist
        let host_rel = host.path().join("secret");
        let e = open_both(&root, "abs", true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{host_rel:?}");
        assert_eq!(open_both(&root, "loop", true).unwrap_err().raw_os_error(), Some(libc::ELOOP));
        // reading through the link sees the tree's file, never the host's
        let mut s = String::new();
        root.open_read("etclink/secret").unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "tree");
    }

    #[test]
    fn reads_refuse_fifos_and_are_bounded() {
        let t = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&t.path().join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::write(t.path().join("big"), vec![b'x'; 100]).unwrap();
        let root = Root::open(t.path()).unwrap();
        let started = std::time::Instant::now();
        let e = root.open_read("fifo").unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(e.to_string().contains("cannot read 'fifo'"), "{e}");
        assert!(crate::error_chain(&e).ends_with("not a regular file"), "{}", crate::error_chain(&e));
        assert_eq!(root.read_bounded("big", 100).unwrap().len(), 100);
        let e = root.read_bounded("big", 99).unwrap_err();
        assert!(crate::error_chain(&e).contains("larger than the limit of 99 bytes"));
        assert!(root.open_read("/dev/null").unwrap_err().kind() == io::ErrorKind::NotFound);
    }

    #[test]
    fn create_dir_all_follows_links_inside_only() {
        let host = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let r = t.path().canonicalize().unwrap();
        symlink(host.path(), r.join("boot")).unwrap();
        let root = Root::open(&r).unwrap();
        let d = root.create_dir_all("boot/x/y", 0o755).unwrap();
        assert_eq!(d.path(), r.join(host.path().strip_prefix("/").unwrap()).join("x/y"));
        assert!(!host.path().join("x").exists(), "created on the host");
    }

    #[test]
    fn resolve_gives_real_paths_inside() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().canonicalize().unwrap();
        std::fs::create_dir(r.join("etc")).unwrap();
        symlink("/etc/passwd", r.join("etc/x")).unwrap();
        symlink("/nowhere/deeper", r.join("dangling")).unwrap();
        let root = Root::open(&r).unwrap();
        assert_eq!(root.resolve("/etc/x", true).unwrap(), r.join("etc/passwd"));
        assert_eq!(root.resolve("/etc/x", false).unwrap(), r.join("etc/x"));
        assert_eq!(root.resolve("/new/a/../b", true).unwrap(), r.join("new/b"));
        assert_eq!(root.resolve("/dangling/f", true).unwrap(), r.join("nowhere/deeper/f"));
        assert_eq!(root.resolve("/", true).unwrap(), r);
    }

    #[test]
    fn create_dir_refuses_what_is_not_a_directory_and_never_follows() {
        let host = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        symlink(host.path(), t.path().join("link")).unwrap();
        std::fs::write(t.path().join("file"), "").unwrap();
        let root = Root::open(t.path()).unwrap();
        let d = root.create_dir("new", 0o755).unwrap();
        assert!(t.path().join("new").is_dir());
        assert_eq!(d.path(), t.path().join("new"));
        root.create_dir("new", 0o755).expect("an existing directory is opened");
        for bad in ["link", "file"] {
            let e = root.create_dir(bad, 0o755).unwrap_err();
            assert!(crate::error_chain(&e).contains("is not a directory"), "{bad}: {e}");
        }
        for bad in ["..", "a/b", ""] {
            assert!(root.create_dir(bad, 0o755).is_err(), "{bad}");
        }
        assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0, "nothing created through the link");
    }

    #[test]
    fn move_dir_in_renames_onto_nothing_or_an_empty_directory_only() {
        use std::os::unix::fs::MetadataExt;
        let src = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let d = src.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("f"), name).unwrap();
            d
        };
        let root = Root::open(t.path()).unwrap();

        // Missing, then an empty directory: moved, the same inode.
        let a = make("a");
        let ino = std::fs::metadata(&a).unwrap().ino();
        root.move_dir_in(&a, "new").unwrap();
        assert_eq!(std::fs::metadata(t.path().join("new")).unwrap().ino(), ino);
        assert!(!a.exists());
        std::fs::create_dir(t.path().join("empty")).unwrap();
        root.move_dir_in(&make("b"), "empty").unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("empty/f")).unwrap(), "b");

        // A directory with entries, a symlink (to an empty directory), a file: refused, both
        // places as they were.
        symlink(host.path(), t.path().join("link")).unwrap();
        std::fs::write(t.path().join("file"), "mine").unwrap();
        let c = make("c");
        let e = root.move_dir_in(&c, "new").unwrap_err();
        assert!(matches!(e.errno(), Some(libc::ENOTEMPTY | libc::EEXIST)), "{e:?}");
        assert_eq!(root.move_dir_in(&c, "link").unwrap_err().errno(), Some(libc::ENOTDIR));
        assert_eq!(root.move_dir_in(&c, "file").unwrap_err().errno(), Some(libc::ENOTDIR));
        assert_eq!(std::fs::read_to_string(c.join("f")).unwrap(), "c");
        assert_eq!(std::fs::read_to_string(t.path().join("new/f")).unwrap(), "a");
        assert!(std::fs::symlink_metadata(t.path().join("link")).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(t.path().join("file")).unwrap(), "mine");
        assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0, "moved through the link");
        for bad in ["..", "a/b", "", "."] {
            assert_eq!(root.move_dir_in(&c, bad).unwrap_err().errno(), Some(libc::EINVAL), "{bad}");
        }
        assert!(c.join("f").is_file());
    }

    #[test]
    fn read_dir_lists_entries_with_their_kind() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("d/sub")).unwrap();
        std::fs::write(t.path().join("d/f"), "").unwrap();
        symlink("/etc", t.path().join("d/l")).unwrap();
        symlink("/d", t.path().join("abs")).unwrap();
        let root = Root::open(t.path()).unwrap();
        let mut got: Vec<(String, EntryKind)> = root
            .read_dir("abs")
            .unwrap()
            .into_iter()
            .map(|e| (e.name.to_string_lossy().into_owned(), e.kind))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            [("f".into(), EntryKind::File), ("l".into(), EntryKind::Symlink), ("sub".into(), EntryKind::Dir)]
        );
        assert_eq!(root.read_dir("d/f").unwrap_err().errno(), Some(libc::ENOTDIR));
    }

    #[test]
    fn link_or_copy_takes_the_opened_file() {
        let t = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), "content").unwrap();
        let root = Root::open(t.path()).unwrap();
        let dest = Root::open(out.path()).unwrap();
        let f = root.open_path("f", true).unwrap();
        link_or_copy(f.as_fd(), &dest, OsStr::new("linked")).unwrap();
        assert_eq!(std::fs::read_to_string(out.path().join("linked")).unwrap(), "content");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(out.path().join("linked")).unwrap().ino(),
            std::fs::metadata(t.path().join("f")).unwrap().ino()
        );
        // Never over something that exists (a planted symlink above all).
        symlink(t.path().join("f"), out.path().join("planted")).unwrap();
        assert!(link_or_copy(f.as_fd(), &dest, OsStr::new("planted")).is_err());
        assert_eq!(std::fs::read_to_string(t.path().join("f")).unwrap(), "content");
    }

    #[test]
    fn plain_names() {
        for ok in ["tree", "a.b", "x-y_z"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "/abs", "a/b", "nul\0"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }
}
