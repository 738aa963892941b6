//! `org.osbuild-rs.mkfs.ext4.tree` (an osbuild-rs extension; upstream has no such stage): make
//! an ext4 file system on the device `device` whose content is the input tree `tree`, written
//! by `mkfs.ext4 -d` in user space, in place of upstream's `org.osbuild.mkfs.ext4` followed by
//! `org.osbuild.copy` into a kernel mount.
//!
//! The point is a reproducible image. What the kernel's ext4 driver writes during a copy
//! depends on timing (block allocation under delayed allocation and writeback, inode change
//! times, random generation numbers). `mkfs.ext4 -d` walks the tree in name order and
//! allocates inodes and blocks in that order, so the image is a function of:
//! - the tree's content, modes, owners, xattrs and mtimes (the engine clamps mtimes to the
//!   pipeline's `source-epoch`),
//! - the options: `uuid`, `label`, the directory hash seed (`hash_seed`, by default the
//!   uuid: mke2fs would draw a random one) and the upstream `mkfs.ext4` feature switches,
//! - the time: with a `source-epoch` (`SOURCE_DATE_EPOCH` in the stage's environment) it is
//!   handed to libext2fs as `E2FSPROGS_FAKE_TIME`, which e2fsprogs 1.47.0 honours for the
//!   superblock and for the inodes mke2fs makes itself (`lost+found`, journal, ...);
//!   without one, the superblock carries the build time, as with upstream,
//! - the tree's atimes and ctimes, which `mkfs.ext4 -d` copies: those say when the store
//!   wrote or read a file, not what the tree is, so [`ext4_times`](super::ext4_times) then
//!   sets every inode's access, change and creation time to its modification time.
//!
//! `path` picks a directory of the tree as the root of the file system (e.g. `/boot` for a
//! separate boot partition); the default is the whole tree.

use super::disk_util::label_args;
use super::ext4_times::settle_times;
use super::mkfs_ext4;
use super::util::resolve_in_root;
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::ffi::OsString;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub uuid: String,
    pub label: Option<String>,
    /// Directory hash seed (a UUID); the file system's uuid when not given.
    pub hash_seed: Option<String>,
    /// The directory of the input tree that becomes the file system's root.
    #[serde(default = "root")]
    pub path: String,
    pub lazy_init: Option<bool>,
    pub verity: Option<bool>,
    pub orphan_file: Option<bool>,
    pub metadata_csum_seed: Option<bool>,
}

fn root() -> String {
    "/".into()
}

/// The arguments after `mkfs.ext4` but the source directory and the device: upstream's
/// `org.osbuild.mkfs.ext4` ones plus the fixed hash seed.
pub fn argv(o: &Options) -> Vec<OsString> {
    let upstream = mkfs_ext4::Options {
        uuid: o.uuid.clone(),
        label: None,
        lazy_init: o.lazy_init,
        verity: o.verity,
        orphan_file: o.orphan_file,
        metadata_csum_seed: o.metadata_csum_seed,
    };
    let mut v = mkfs_ext4::argv(&upstream);
    v.extend(label_args("-L", &o.label).map(OsString::from));
    v.push("-E".into());
    v.push(format!("hash_seed={}", o.hash_seed.as_deref().unwrap_or(&o.uuid)).into());
    v
}

/// The directory `path` of the `tree` input (confined to it), which becomes the root of a file
/// system made from a tree.
pub fn input_directory(args: &StageArgs, path: &str) -> Result<std::path::PathBuf, StageError> {
    let input = args.input_path("tree")?;
    let source = resolve_in_root(&input, path, true)?;
    if !source.is_dir() {
        return Err(StageError::Invalid(format!("path {path} is not a directory of the input tree")));
    }
    Ok(source)
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct MkfsExt4Tree;

impl Stage for MkfsExt4Tree {
    const NAME: &'static str = "org.osbuild-rs.mkfs.ext4.tree";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let device = args.device_path("device")?;
        let source = input_directory(args, &options.path)?;
        let mut cmd = Command::new("mkfs.ext4");
        cmd.arg("-q").args(argv(&options)).arg("-d").arg(&source).arg(&device);
        match args.source_epoch() {
            Some(epoch) => cmd.env("E2FSPROGS_FAKE_TIME", epoch.to_string()),
            None => cmd.env_remove("E2FSPROGS_FAKE_TIME"),
        };
        cmd.run(Self::NAME)?;
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&device)
            .map_err(StageError::io("cannot open", &device))?;
        settle_times(&dev, 0).map_err(StageError::io("cannot settle the inode times on", &device))?;
        dev.sync_all().map_err(StageError::io("cannot flush", &device))?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{blkid, device_args, image, need, output};
    use serde_json::json;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    const UUID: &str = "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75";

    fn args(dir: &Path, tree: &Path, options: serde_json::Value) -> StageArgs {
        let mut a = device_args(dir, &[("device", "fs.img")], options);
        a.inputs.insert("tree".into(), json!({"path": tree}));
        a
    }

    /// A small tree with the kinds of entries a root file system has.
    fn tree(dir: &Path) -> std::path::PathBuf {
        let t = dir.join("input");
        std::fs::create_dir_all(t.join("etc/sub")).unwrap();
        std::fs::write(t.join("etc/hostname"), "box\n").unwrap();
        std::fs::write(t.join("etc/sub/big"), vec![7u8; 300_000]).unwrap();
        std::os::unix::fs::symlink("hostname", t.join("etc/link")).unwrap();
        std::fs::hard_link(t.join("etc/hostname"), t.join("etc/hard")).unwrap();
        for i in 0..200 {
            std::fs::write(t.join(format!("etc/sub/f{i}")), format!("{i}")).unwrap();
        }
        t
    }

    fn stat_field(img: &Path, path: &str, field: &str) -> String {
        let out = output("debugfs", &["-R", &format!("stat {path}"), img.to_str().unwrap()], "e2fsprogs");
        let line = out.lines().find(|l| l.trim_start().starts_with(&format!("{field}:"))).unwrap_or_else(|| {
            panic!("no {field} in {out}");
        });
        line.split_whitespace().nth(1).unwrap().to_owned()
    }

    #[test]
    fn argv_defaults_the_hash_seed_to_the_uuid() {
        let o: Options = serde_json::from_value(json!({"uuid": UUID, "label": "root"})).unwrap();
        let v: Vec<String> = argv(&o).iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(v, ["-U", UUID, "-L", "root", "-E", &format!("hash_seed={UUID}")]);
        let o: Options = serde_json::from_value(json!({"uuid": UUID, "hash_seed": "x"})).unwrap();
        assert!(argv(&o).contains(&OsString::from("hash_seed=x")));
    }

    #[test]
    fn makes_a_checked_file_system_with_the_tree_and_settled_times() {
        need("mkfs.ext4", "e2fsprogs");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "fs.img", 64 << 20);
        let src = tree(t.path());
        // mtimes in the past: every inode's other times (now) must be rewritten, checksums too
        let touched =
            Command::new("find").arg(&src).args(["-exec", "touch", "-h", "-d", "@1600000000", "{}", "+"]).status();
        assert!(touched.unwrap().success());
        MkfsExt4Tree::execute(&args(t.path(), &src, json!({"uuid": UUID, "label": "root"}))).unwrap();
        let id = blkid(&img);
        assert_eq!((id["TYPE"].as_str(), id["UUID"].as_str(), id["LABEL"].as_str()), ("ext4", UUID, "root"));
        let fsck = Command::new("e2fsck").args(["-fn"]).arg(&img).output().unwrap();
        assert!(
            fsck.status.success(),
            "e2fsck: {}{}",
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        );
        let cat = output("debugfs", &["-R", "cat /etc/hostname", img.to_str().unwrap()], "e2fsprogs");
        assert_eq!(cat, "box\n");
        // the tree's files were written now, so their ctimes are now; the image says mtime
        let mtime = std::fs::metadata(src.join("etc/hostname")).unwrap().mtime();
        assert_eq!(mtime, 1_600_000_000);
        for f in ["ctime", "atime", "crtime", "mtime"] {
            let v = stat_field(&img, "/etc/hostname", f);
            assert_eq!(
                i64::from_str_radix(v.trim_start_matches("0x").split(':').next().unwrap(), 16).unwrap(),
                mtime,
                "{f}"
            );
        }
    }

    #[test]
    fn same_tree_and_epoch_give_the_same_bytes() {
        need("mkfs.ext4", "e2fsprogs");
        let t = tempfile::tempdir().unwrap();
        let src = tree(t.path());
        let build = |name: &str| {
            let dir = t.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let img = image(&dir, "fs.img", 32 << 20);
            let mut a = args(&dir, &src, json!({"uuid": UUID, "path": "/etc"}));
            a.meta.insert("source-epoch".into(), json!(1_700_000_000));
            MkfsExt4Tree::execute(&a).unwrap();
            std::fs::read(img).unwrap()
        };
        let a = build("a");
        // change every ctime and atime of the tree, not its content or mtimes
        std::thread::sleep(std::time::Duration::from_millis(1100));
        for e in walkdir::WalkDir::new(&src) {
            let e = e.unwrap();
            if !e.path_is_symlink() {
                let _ = std::fs::read(e.path());
                let mode = e.metadata().unwrap().mode();
                std::fs::set_permissions(e.path(), std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
            }
        }
        let b = build("b");
        assert!(a == b, "two builds differ in {} bytes", a.iter().zip(&b).filter(|(x, y)| x != y).count());
        let img = t.path().join("b/fs.img");
        assert_eq!(stat_field(&img, "/lost+found", "crtime"), "0x6553f100:00000000", "E2FSPROGS_FAKE_TIME");
        let ls = output("debugfs", &["-R", "ls -p /", img.to_str().unwrap()], "e2fsprogs");
        assert!(ls.contains("/hostname/") && !ls.contains("/etc/"), "path picks /etc as root: {ls}");
    }

    #[test]
    fn a_path_that_is_no_directory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        image(t.path(), "fs.img", 16 << 20);
        let src = tree(t.path());
        let e =
            MkfsExt4Tree::execute(&args(t.path(), &src, json!({"uuid": UUID, "path": "/etc/hostname"}))).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
