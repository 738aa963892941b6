//! `org.osbuild.copy`: copy files and directories from inputs, mounts or the tree into the
//! tree or a mount, with `cp -a --reflink=auto` like upstream.
//!
//! Both ends are confined to their root (see `util`). When the destination is an existing
//! directory, the final destination `<dir>/<source name>` is resolved (confined) here and
//! handed to `cp -T`, so a hostile symlink at that name cannot redirect the copy either.
//!
//! A plain (not sparse) regular file onto a new or regular file is copied in process, as
//! `cp -a --reflink=auto` would: a reflink where the file system can, else `copy_file_range`;
//! then owner, xattrs, mode and atime/mtime, in cp's order (chown clears capabilities, so the
//! xattrs come after it). Starting one `cp` per file was most of the cost of manifests that copy
//! hundreds of source files (`make bench`, files300). Everything else (directories, symlinks,
//! devices, sparse files, `dir/.`) still goes to `cp`.

use super::util::{location, location_parts, resolve_in_root};
use super::StageError;
use super::{StageArgs, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub paths: Vec<Item>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// `input://NAME/p`, `mount://NAME/p` or `tree:///p`.
    pub from: String,
    /// `mount://NAME/p` or `tree:///p`.
    pub to: String,
    #[serde(default)]
    pub remove_destination: bool,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Copy;

impl Stage for Copy {
    const NAME: &'static str = "org.osbuild.copy";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        for item in &options.paths {
            // cp -a never dereferences the source itself; the destination is followed unless
            // it is going to be removed first
            let src = location(&item.from, args, false)?;
            let follow_dst = !item.remove_destination;
            let mut dst = location(&item.to, args, follow_dst)?;
            let mut no_target_dir = false;
            // `dir/.` (from a trailing `/`) copies the contents: cp handles that itself
            let contents = src.as_os_str().as_bytes().ends_with(b"/.");
            let src_name = src.file_name().map(|n| n.to_owned());
            if let Some(name) = src_name.filter(|_| dst.is_dir() && !contents) {
                let (root, path) = location_parts(&item.to, args)?;
                let joined = PathBuf::from(path).join(name);
                dst = resolve_in_root(&root, joined, follow_dst)?;
                no_target_dir = true;
            }
            println!("copying '{}' -> '{}'", src.display(), dst.display());
            if !contents && copy_file_in_process(&src, &dst, item.remove_destination)? {
                continue;
            }
            let mut cmd = Command::new("cp");
            cmd.args(["-a", "--reflink=auto"]);
            if item.remove_destination {
                cmd.arg("--remove-destination");
            }
            if no_target_dir {
                cmd.arg("-T");
            }
            cmd.arg("--").arg(&src).arg(&dst);
            cmd.run(Copy::NAME)?;
        }
        Ok(None)
    }
}

/// Copy the regular file `src` to `dst` as `cp -a --reflink=auto [--remove-destination]`
/// would; `false` (nothing done) when `cp` should do it: the source is no regular file or is
/// sparse (cp keeps the holes), or the destination exists and is no regular file.
fn copy_file_in_process(src: &Path, dst: &Path, remove_destination: bool) -> Result<bool, StageError> {
    let Ok(meta) = src.symlink_metadata() else { return Ok(false) };
    if !meta.file_type().is_file() || meta.blocks() * 512 < meta.len() {
        return Ok(false);
    }
    match dst.symlink_metadata() {
        Ok(d) if !d.file_type().is_file() => return Ok(false),
        Ok(_) if remove_destination => std::fs::remove_file(dst).map_err(StageError::io("cannot remove", dst))?,
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => return Ok(false),
    }
    let mut from = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(src)
        .map_err(StageError::io("cannot open", src))?;
    let mut to = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dst)
        .map_err(StageError::io("cannot create", dst))?;
    if rustix::fs::ioctl_ficlone(&to, &from).is_err() {
        std::io::copy(&mut from, &mut to).map_err(StageError::io("cannot copy to", dst))?;
    }
    let io = |op: &'static str| StageError::io(op, dst);
    let owner = (Some(rustix::fs::Uid::from_raw(meta.uid())), Some(rustix::fs::Gid::from_raw(meta.gid())));
    rustix::fs::fchown(&to, owner.0, owner.1).map_err(|e| io("cannot set the owner of")(e.into()))?;
    copy_xattrs(&from, &to);
    let mode = rustix::fs::Mode::from_raw_mode(meta.mode() & 0o7777);
    rustix::fs::fchmod(&to, mode).map_err(|e| io("cannot set the mode of")(e.into()))?;
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: meta.atime(), tv_nsec: meta.atime_nsec() as _ },
        last_modification: rustix::fs::Timespec { tv_sec: meta.mtime(), tv_nsec: meta.mtime_nsec() as _ },
    };
    rustix::fs::futimens(&to, &times).map_err(|e| io("cannot set the times of")(e.into()))?;
    Ok(true)
}

/// Every extended attribute of `from` onto `to`. As with `cp -a`, one that cannot be copied
/// (a file system without xattrs, a name the kernel refuses) is left out silently.
fn copy_xattrs(from: &File, to: &File) {
    let mut names = vec![0u8; 4096];
    let len = loop {
        match rustix::fs::flistxattr(from, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) if names.len() < 1 << 20 => names.resize(names.len() * 4, 0),
            Err(_) => return,
        }
    };
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::ffi::CString::new(name) else { continue };
        let mut value = vec![0u8; 4096];
        let n = loop {
            match rustix::fs::fgetxattr(from, name.as_c_str(), &mut value) {
                Ok(n) => break Some(n),
                Err(rustix::io::Errno::RANGE) if value.len() < 1 << 20 => value.resize(value.len() * 4, 0),
                Err(_) => break None,
            }
        };
        if let Some(n) = n {
            let _ = rustix::fs::fsetxattr(to, name.as_c_str(), &value[..n], rustix::fs::XattrFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;

    #[test]
    fn copies_files_and_directory_contents() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        let input = t.path().join("input");
        fs::create_dir_all(tree.join("etc")).unwrap();
        fs::create_dir_all(input.join("EFI/BOOT")).unwrap();
        fs::write(input.join("EFI/BOOT/x.efi"), "efi").unwrap();
        fs::write(input.join("sha256:abc"), "content").unwrap();
        fs::write(tree.join("etc/os-release"), "old").unwrap();
        let mut a = args(
            &tree,
            json!({"paths": [
                {"from": "input://in/sha256:abc", "to": "tree:///testfile"},
                {"from": "input://in/sha256:abc", "to": "tree:///etc/os-release", "remove_destination": true},
                {"from": "input://in/EFI", "to": "tree:///"},
                {"from": "input://in/EFI/", "to": "tree:///efi-copy"},
                {"from": "input://in/EFI/", "to": "tree:///efi-copy"},
                {"from": "input://in/EFI/", "to": "tree:///"},
            ]}),
        );
        a.inputs.insert("in".into(), json!({"path": input}));
        Copy::execute(&a).unwrap();
        assert_eq!(fs::read_to_string(tree.join("testfile")).unwrap(), "content");
        assert_eq!(fs::read_to_string(tree.join("etc/os-release")).unwrap(), "content");
        assert_eq!(fs::read_to_string(tree.join("EFI/BOOT/x.efi")).unwrap(), "efi");
        assert_eq!(fs::read_to_string(tree.join("efi-copy/BOOT/x.efi")).unwrap(), "efi");
        // copying the contents again into the now existing directory merges, no nested EFI/
        assert!(!tree.join("efi-copy/EFI").exists());
        assert_eq!(fs::read_to_string(tree.join("BOOT/x.efi")).unwrap(), "efi");
    }

    type Kept = (Vec<u8>, u32, u32, u32, i64, i64, i64, Vec<(String, Vec<u8>)>);

    /// What `cp -a` keeps of a file: content, mode, owner, mtime (ns), atime (s), xattrs.
    fn kept(p: &std::path::Path) -> Kept {
        let m = p.symlink_metadata().unwrap();
        let f = File::open(p).unwrap();
        let mut names = vec![0u8; 4096];
        let n = rustix::fs::flistxattr(&f, &mut names).unwrap();
        let mut x: Vec<(String, Vec<u8>)> = names[..n]
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| {
                let c = std::ffi::CString::new(n).unwrap();
                let mut v = vec![0u8; 256];
                let l = rustix::fs::fgetxattr(&f, c.as_c_str(), &mut v).unwrap();
                (String::from_utf8_lossy(n).into_owned(), v[..l].to_vec())
            })
            .collect();
        x.sort();
        (fs::read(p).unwrap(), m.mode(), m.uid(), m.gid(), m.mtime(), m.mtime_nsec(), m.atime(), x)
    }

    #[test]
    fn in_process_copy_keeps_what_cp_a_keeps() {
        let t = tempfile::tempdir().unwrap();
        let (tree, input) = (t.path().join("tree"), t.path().join("input"));
        fs::create_dir_all(&tree).unwrap();
        fs::create_dir_all(&input).unwrap();
        let src = input.join("ping");
        fs::write(&src, "binary").unwrap();
        std::os::unix::fs::chown(&src, Some(1000), Some(5)).unwrap();
        let f = File::open(&src).unwrap();
        // cap_net_raw+ep: chown clears it, so it must be set after the owner
        let cap = [0u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        rustix::fs::fsetxattr(&f, c"security.capability", &cap, rustix::fs::XattrFlags::empty()).unwrap();
        rustix::fs::fsetxattr(&f, c"user.note", b"kept", rustix::fs::XattrFlags::empty()).unwrap();
        rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(0o4751)).unwrap();
        let ts = |s, ns| rustix::fs::Timespec { tv_sec: s, tv_nsec: ns };
        let times = rustix::fs::Timestamps {
            last_access: ts(1_600_000_000, 5),
            last_modification: ts(1_500_000_000, 123_456_789),
        };
        rustix::fs::futimens(&f, &times).unwrap();
        // a sparse file goes to cp, which keeps its holes
        let sparse = input.join("sparse.img");
        File::create(&sparse).unwrap().set_len(64 << 20).unwrap();
        fs::write(tree.join("existing"), "old content, longer than the new").unwrap();
        let mut a = args(
            &tree,
            json!({"paths": [
                {"from": "input://in/ping", "to": "tree:///ping"},
                {"from": "input://in/ping", "to": "tree:///existing"},
                {"from": "input://in/sparse.img", "to": "tree:///"},
            ]}),
        );
        a.inputs.insert("in".into(), json!({"path": input}));
        Copy::execute(&a).unwrap();
        let by_cp = t.path().join("by-cp");
        assert!(Command::new("cp")
            .args(["-a", "--reflink=auto", "--"])
            .arg(&src)
            .arg(&by_cp)
            .status()
            .unwrap()
            .success());
        // atime: what each copy saw when it read the source (the first read moved it to now)
        let no_atime = |mut k: Kept| {
            k.6 = 0;
            k
        };
        assert_eq!(kept(&tree.join("ping")).6, 1_600_000_000);
        assert_eq!(no_atime(kept(&tree.join("ping"))), no_atime(kept(&by_cp)));
        assert_eq!(no_atime(kept(&tree.join("existing"))), no_atime(kept(&by_cp)));
        let k = kept(&by_cp);
        assert_eq!((k.1 & 0o7777, k.2, k.3, k.4, k.5), (0o4751, 1000, 5, 1_500_000_000, 123_456_789));
        assert_eq!(k.7.len(), 2, "{:?}", k.7);
        let m = tree.join("sparse.img").metadata().unwrap();
        assert_eq!((m.len(), m.blocks()), (64 << 20, 0), "the sparse file stays sparse");
    }

    #[test]
    fn copy_onto_hostile_symlink_stays_in_tree() {
        let host = tempfile::tempdir().unwrap();
        let victim = host.path().join("passwd");
        fs::write(&victim, "host").unwrap();
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        fs::create_dir_all(tree.join("etc")).unwrap();
        fs::write(t.path().join("passwd"), "evil").unwrap();
        std::os::unix::fs::symlink(&victim, tree.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(host.path(), tree.join("hostdir")).unwrap();
        // the re-rooted link targets exist inside the tree
        fs::create_dir_all(tree.join(host.path().strip_prefix("/").unwrap())).unwrap();
        let mut a = args(
            &tree,
            json!({"paths": [
                {"from": "input://in/passwd", "to": "tree:///etc/passwd"},
                {"from": "input://in/passwd", "to": "tree:///hostdir"},
            ]}),
        );
        a.inputs.insert("in".into(), json!({"path": t.path()}));
        Copy::execute(&a).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "host");
        let rerooted = tree.join(victim.strip_prefix("/").unwrap());
        assert_eq!(fs::read_to_string(rerooted).unwrap(), "evil");
    }

    #[test]
    fn missing_source_fails_with_cp_message() {
        let t = tempfile::tempdir().unwrap();
        let a = args(t.path(), json!({"paths": [{"from": "tree:///nope", "to": "tree:///x"}]}));
        let e = Copy::execute(&a).unwrap_err().to_string();
        assert!(e.contains("failed") && e.contains("cp -a --reflink=auto"), "{e}");
    }
}
