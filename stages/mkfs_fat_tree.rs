//! `org.osbuild-rs.mkfs.fat.tree` (an osbuild-rs extension; upstream has no such stage): make
//! a FAT file system on the device `device` with upstream's `org.osbuild.mkfs.fat` options and
//! fill it with the input tree `tree` (or its directory `path`), in place of upstream's
//! `org.osbuild.mkfs.fat` followed by `org.osbuild.copy` into an `org.osbuild.fat` mount.
//!
//! The files are written in user space by mtools (`mcopy`), so no kernel FAT driver is needed:
//! some hosts (this project's CI among them) cannot mount vfat, and an ISO's `efiboot.img` or
//! a disk's ESP is then still buildable. It is also reproducible: entries are copied in name
//! order, each keeps its modification time (the engine clamps those to the `source-epoch`),
//! and with a `source-epoch` mtools takes it (`SOURCE_DATE_EPOCH`) as its clock. The label is
//! written by `mlabel` for that reason: mkfs.fat stamps the label's directory entry with the
//! time of day whatever the environment says.
//!
//! FAT holds directories and regular files only: a symlink, device, socket or FIFO in the
//! input is an error naming it (mcopy would follow a symlink wherever it points).

use super::disk_util::Mkfs;
use super::mkfs_ext4_tree::input_directory;
use super::mkfs_fat::{self, MkfsFat};
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub volid: String,
    pub label: Option<String>,
    #[serde(rename = "fat-size")]
    pub fat_size: Option<u8>,
    pub geometry: Option<mkfs_fat::Geometry>,
    /// The directory of the input tree that becomes the file system's root.
    #[serde(default = "root")]
    pub path: String,
}

fn root() -> String {
    "/".into()
}

/// Set (or clear) the tools' clock from the source epoch.
fn epoch_env(cmd: &mut Command, epoch: Option<i64>) {
    match epoch {
        Some(e) => cmd.env("SOURCE_DATE_EPOCH", e.to_string()),
        None => cmd.env_remove("SOURCE_DATE_EPOCH"),
    };
}

/// An mtools command on the FAT image (a file or a block device) `image`.
fn mtools(tool: &str, image: &Path, epoch: Option<i64>) -> Command {
    let mut c = Command::new(tool);
    // mtools refuses an image whose size is no whole number of its idea of "tracks"
    c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(image);
    epoch_env(&mut c, epoch);
    c
}

/// Make directory `dir` (`::/EFI`) in the FAT file system on `image`.
pub fn fat_mkdir(image: &Path, dir: &str, epoch: Option<i64>, stage: &'static str) -> Result<(), StageError> {
    mtools("mmd", image, epoch).arg(dir).run(stage)
}

/// Copy `sources` (files or whole directories, which must hold only directories and regular
/// files) into directory `dest` (`::/`, `::/EFI/`) of the FAT file system on `image`, keeping
/// their modification times.
pub fn fat_copy(
    image: &Path,
    sources: &[PathBuf],
    dest: &str,
    epoch: Option<i64>,
    stage: &'static str,
) -> Result<(), StageError> {
    for s in sources {
        only_files_and_dirs(s)?;
    }
    mcopy(image, sources, dest, epoch, stage)
}

/// [`fat_copy`] of sources already checked by [`only_files_and_dirs`].
fn mcopy(
    image: &Path,
    sources: &[PathBuf],
    dest: &str,
    epoch: Option<i64>,
    stage: &'static str,
) -> Result<(), StageError> {
    if sources.is_empty() {
        return Ok(());
    }
    mtools("mcopy", image, epoch).args(["-s", "-m", "-Q"]).args(sources).arg(dest).run(stage)
}

fn only_files_and_dirs(top: &Path) -> Result<(), StageError> {
    for e in walkdir::WalkDir::new(top) {
        let e = e.map_err(|e| super::util::walk_error(top, e))?;
        let t = e.file_type();
        if !(t.is_dir() || t.is_file()) {
            let what = if t.is_symlink() { "a symlink" } else { "a special file" };
            return Err(StageError::Invalid(format!(
                "{} is {what}: a FAT file system holds only directories and regular files",
                e.path().display()
            )));
        }
    }
    Ok(())
}

/// The entries of directory `dir`, in name order.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, StageError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(StageError::io("cannot read", dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(StageError::io("cannot read", dir))?;
    v.sort();
    Ok(v)
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct MkfsFatTree;

impl Stage for MkfsFatTree {
    const NAME: &'static str = "org.osbuild-rs.mkfs.fat.tree";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let device = args.device_path("device")?;
        let source = input_directory(args, &options.path)?;
        let entries = sorted_entries(&source)?;
        // checked before formatting: a refused input leaves the device untouched
        for e in &entries {
            only_files_and_dirs(e)?;
        }
        let epoch = args.source_epoch();
        let fat = mkfs_fat::Options {
            volid: options.volid,
            label: None,
            fat_size: options.fat_size,
            geometry: options.geometry,
        };
        let mut mkfs = MkfsFat::command(&fat, &device);
        epoch_env(&mut mkfs, epoch);
        mkfs.run(Self::NAME)?;
        if let Some(label) = options.label.as_deref().filter(|l| !l.is_empty()) {
            mtools("mlabel", &device, epoch).arg(format!("::{label}")).run(Self::NAME)?;
        }
        mcopy(&device, &entries, "::/", epoch, Self::NAME)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{blkid, device_args, image, need, output};
    use serde_json::json;

    fn args(dir: &Path, tree: &Path, options: serde_json::Value) -> StageArgs {
        let mut a = device_args(dir, &[("device", "esp.img")], options);
        a.inputs.insert("tree".into(), json!({"path": tree}));
        a
    }

    /// An ESP-like tree: nested directories, a file of several clusters, an empty file.
    fn tree(dir: &Path) -> PathBuf {
        let t = dir.join("input");
        std::fs::create_dir_all(t.join("EFI/BOOT/fonts")).unwrap();
        std::fs::write(t.join("EFI/BOOT/BOOTX64.EFI"), vec![0x4d; 100_000]).unwrap();
        std::fs::write(t.join("EFI/BOOT/grub.cfg"), "set timeout=5\n").unwrap();
        std::fs::write(t.join("EFI/BOOT/fonts/empty.pf2"), "").unwrap();
        std::fs::write(t.join("startup.nsh"), "fs0:\\EFI\\BOOT\\BOOTX64.EFI\n").unwrap();
        t
    }

    fn mtype(img: &Path, path: &str) -> String {
        output("mtype", &["-i", img.to_str().unwrap(), path], "mtools")
    }

    #[test]
    fn makes_a_checked_fat_with_the_tree() {
        need("mkfs.fat", "dosfstools");
        need("mcopy", "mtools");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "esp.img", 16 << 20);
        let src = tree(t.path());
        MkfsFatTree::execute(&args(t.path(), &src, json!({"volid": "7b7795e7", "label": "EFIBOOT"}))).unwrap();
        let id = blkid(&img);
        assert_eq!((id["TYPE"].as_str(), id["UUID"].as_str(), id["LABEL"].as_str()), ("vfat", "7B77-95E7", "EFIBOOT"));
        assert_eq!(mtype(&img, "::/EFI/BOOT/grub.cfg"), "set timeout=5\n");
        assert_eq!(mtype(&img, "::/EFI/BOOT/BOOTX64.EFI").len(), 100_000);
        assert_eq!(mtype(&img, "::/EFI/BOOT/fonts/empty.pf2"), "");
        assert!(mtype(&img, "::/startup.nsh").starts_with("fs0:"));
        let fsck = Command::new("fsck.fat").arg("-n").arg(&img).output().unwrap();
        assert!(fsck.status.success(), "fsck.fat: {}", String::from_utf8_lossy(&fsck.stdout));
    }

    #[test]
    fn path_picks_the_root_directory() {
        need("mcopy", "mtools");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "esp.img", 8 << 20);
        let src = tree(t.path());
        MkfsFatTree::execute(&args(t.path(), &src, json!({"volid": "00c0ffee", "path": "/EFI"}))).unwrap();
        assert_eq!(mtype(&img, "::/BOOT/grub.cfg"), "set timeout=5\n");
        let root = output("mdir", &["-i", img.to_str().unwrap(), "-b", "::/"], "mtools");
        assert!(!root.contains("startup") && !root.contains("EFI"), "{root}");
    }

    #[test]
    fn same_tree_and_epoch_give_the_same_bytes() {
        need("mcopy", "mtools");
        let t = tempfile::tempdir().unwrap();
        let src = tree(t.path());
        let touched =
            Command::new("find").arg(&src).args(["-exec", "touch", "-h", "-d", "@1700000000", "{}", "+"]).status();
        assert!(touched.unwrap().success());
        let build = |name: &str| {
            let dir = t.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let img = image(&dir, "esp.img", 8 << 20);
            let mut a = args(&dir, &src, json!({"volid": "6a6b6c6d", "label": "EFIBOOT"}));
            a.meta.insert("source-epoch".into(), json!(1_700_000_000));
            MkfsFatTree::execute(&a).unwrap();
            std::fs::read(img).unwrap()
        };
        let first = build("a");
        // FAT keeps times in 2-second steps: a clock leaking in would show
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(first == build("b"), "two builds of the same tree and epoch differ");
    }

    #[test]
    fn a_symlink_is_refused_and_nothing_is_formatted() {
        need("mcopy", "mtools");
        let t = tempfile::tempdir().unwrap();
        let img = image(t.path(), "esp.img", 8 << 20);
        let src = tree(t.path());
        // the victim outside the tree is readable: mcopy would copy it if the link were followed
        let victim = t.path().join("secret");
        std::fs::write(&victim, "host secret").unwrap();
        std::os::unix::fs::symlink(&victim, src.join("EFI/BOOT/leak")).unwrap();
        let e = MkfsFatTree::execute(&args(t.path(), &src, json!({"volid": "7b7795e7"}))).unwrap_err();
        assert!(e.to_string().contains("EFI/BOOT/leak is a symlink"), "{e}");
        assert!(std::fs::read(&img).unwrap().iter().all(|b| *b == 0), "the device was written");
    }
}
