//! `org.osbuild.ostree.preptree`: reshape a package tree into the layout an OSTree commit
//! wants, natively (upstream runs `rpm-ostree compose postprocess`, which Debian lacks):
//!
//! - `/etc` becomes `/usr/etc`; the top level is rebuilt with `/dev /proc /run /sys /sysroot
//!   /var` (0755), the links `home -> var/home`, `media -> run/media`, `mnt -> var/mnt`,
//!   `opt -> var/opt`, `ostree -> sysroot/ostree`, `root -> var/roothome`,
//!   `srv -> var/srv`, and `/tmp` (a 1777 directory, or with `tmp-is-dir: false` a link to
//!   `sysroot/tmp`). `usr`, `boot`, `var` and the (usr-merge) `bin lib lib32 lib64 sbin`
//!   entries are kept; a non-empty `/home` moves to `/var/home`; anything else at the top level
//!   is dropped, as upstream does.
//! - The rpm database moves out of `/var`: a database in `/var/lib/rpm` goes to
//!   `/usr/share/rpm` (with an rpm macro pointing there); one in `/usr/lib/sysimage/rpm`
//!   stays and gets the `/usr/share/rpm` compatibility link. Lock and environment files are
//!   removed. `/var/lib/rpm` is recreated at boot as a link by tmpfiles.d.
//! - `/usr/local` becomes a link to `../var/usrlocal`.
//! - Everything in `/var` becomes `/usr/lib/tmpfiles.d/rpm-ostree-1-autovar.conf` entries
//!   (directories with mode and owner names from the tree's passwd/group, symlinks);
//!   regular files in `/var` are dropped with a note, as rpm-ostree does. `/var` is left empty.
//!   A fixed `rpm-ostree-0-integration.conf` creates the standard `/var` directories.
//! - `/usr/etc/machine-id`: emptied when the tree had one (machine-id compat), else removed.
//! - Kernel and initramfs ("boot-location: new"): a kernel in `/boot/vmlinuz-<kver>` moves to
//!   `/usr/lib/modules/<kver>/vmlinuz` (with `/boot/initramfs-<kver>.img` as
//!   `initramfs.img`); when the tree has dracut, it (re)builds the initramfs in a chroot
//!   (generic, with the `ostree` module and `initramfs-args`) as rpm-ostree does; without
//!   dracut an initramfs from the packages is kept (or a note says there is none). `/boot` is
//!   emptied.
//!
//! Deviations: users and groups stay in `/usr/etc/passwd` and `/usr/etc/group` (rpm-ostree's
//! move of non-root entries to `/usr/lib/{passwd,group}` for nss-altfiles is not done), so
//! `etc_group_members` has nothing to keep and is only accepted; empty `/usr/lib/passwd` and
//! `/usr/lib/group` are created when missing, so readers of a commit that expect them (e.g.
//! `org.osbuild.ostree.passwd`) find them. Upstream's Python creates
//! the `tmp-is-dir: false` link the wrong way round (`sysroot/tmp -> tmp`); we write
//! `tmp -> sysroot/tmp`, which is what rpm-ostree means.

use super::ostree_util::{TOPLEVEL_DIRS, TOPLEVEL_LINKS};
use super::util::{walk_error, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::chroot::{ApiFs, Chroot};
use crate::tool::CommandRunExt;
use crate::util::yes;
use crate::Stage;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub etc_group_members: Vec<String>,
    #[serde(default, rename = "initramfs-args")]
    pub initramfs_args: Vec<String>,
    #[serde(default = "yes", rename = "tmp-is-dir")]
    pub tmp_is_dir: bool,
}

/// Lay out the top level of an OSTree root in the empty directory `tree`: the API file system
/// mount points, `/sysroot`, `/var`, the links into them, and `/tmp` (or its link).
pub(crate) fn init_root(tree: &Path, tmp_is_dir: bool) -> Result<(), StageError> {
    fs::set_permissions(tree, fs::Permissions::from_mode(0o755)).map_err(io("cannot set mode of", tree))?;
    for d in TOPLEVEL_DIRS {
        mkdir_mode(&tree.join(d), 0o755)?;
    }
    for (link, target) in TOPLEVEL_LINKS {
        symlink(target, tree.join(link)).map_err(io("cannot create link", &tree.join(link)))?;
    }
    if tmp_is_dir {
        mkdir_mode(&tree.join("tmp"), 0o1777)?;
    } else {
        symlink("sysroot/tmp", tree.join("tmp")).map_err(io("cannot create link", &tree.join("tmp")))?;
    }
    Ok(())
}

/// Standard `/var` content every OSTree system needs, created at boot.
const INTEGRATION_TMPFILES: &str = "\
# Made by osbuild-rs (org.osbuild.ostree.preptree): the /var layout of an OSTree system.
d /var/home 0755 root root - -
d /var/roothome 0700 root root - -
d /var/opt 0755 root root - -
d /var/srv 0755 root root - -
d /var/mnt 0755 root root - -
d /var/usrlocal 0755 root root - -
d /var/usrlocal/bin 0755 root root - -
d /var/usrlocal/etc 0755 root root - -
d /var/usrlocal/games 0755 root root - -
d /var/usrlocal/include 0755 root root - -
d /var/usrlocal/lib 0755 root root - -
d /var/usrlocal/man 0755 root root - -
d /var/usrlocal/sbin 0755 root root - -
d /var/usrlocal/share 0755 root root - -
d /var/usrlocal/src 0755 root root - -
d /run/media 0755 root root - -
";

fn io(op: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> StageError + use<> {
    StageError::io(op, p.to_owned())
}

fn rename(from: &Path, to: &Path) -> Result<(), StageError> {
    fs::rename(from, to).map_err(io("cannot move", from))
}

fn mkdir_mode(p: &Path, mode: u32) -> Result<(), StageError> {
    match fs::create_dir(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => {}
        Err(e) => return Err(StageError::Io { op: "cannot create directory", path: p.to_owned(), source: e }),
    }
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(io("cannot set mode of", p))
}

fn remove_any(p: &Path) -> Result<(), StageError> {
    match fs::symlink_metadata(p) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(io("cannot remove", p)),
        Ok(_) => fs::remove_file(p).map_err(io("cannot remove", p)),
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreePreptree;

impl Stage for OstreePreptree {
    const NAME: &'static str = "org.osbuild.ostree.preptree";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let tree = args.tree.clone();
        let machineid_compat = tree.join("etc/machine-id").exists();
        println!("ostree: machineid-compat: {}", if machineid_compat { "True" } else { "False" });
        if !tree.join("etc").is_dir() {
            return Err(StageError::Invalid("the tree has no /etc to move to /usr/etc".into()));
        }
        if !tree.join("usr").is_dir() {
            return Err(StageError::Invalid("the tree has no /usr".into()));
        }
        rename(&tree.join("etc"), &tree.join("usr/etc"))?;
        relayout(&tree, options.tmp_is_dir)?;

        let passwd = names(&tree.join("usr/etc/passwd"))?;
        let group = names(&tree.join("usr/etc/group"))?;
        let mut tmpfiles = String::new();
        relocate_rpmdb(&tree, &mut tmpfiles)?;
        usrlocal(&tree)?;
        var_to_tmpfiles(&tree, &passwd, &group, &mut tmpfiles)?;
        let tmpfiles_dir = tree.join("usr/lib/tmpfiles.d");
        fs::create_dir_all(&tmpfiles_dir).map_err(io("cannot create directory", &tmpfiles_dir))?;
        write_file(&tmpfiles_dir.join("rpm-ostree-0-integration.conf"), INTEGRATION_TMPFILES.as_bytes(), 0o644)?;
        write_file(&tmpfiles_dir.join("rpm-ostree-1-autovar.conf"), tmpfiles.as_bytes(), 0o644)?;

        for f in ["passwd", "group"] {
            let p = tree.join("usr/lib").join(f);
            if fs::symlink_metadata(&p).is_err() {
                fs::create_dir_all(tree.join("usr/lib"))
                    .map_err(io("cannot create directory", &tree.join("usr/lib")))?;
                write_file(&p, b"", 0o644)?;
            }
        }
        let mid = tree.join("usr/etc/machine-id");
        if machineid_compat {
            write_file(&mid, b"", 0o444)?;
        } else {
            super::util::remove_if_exists(&mid)?;
        }
        kernel_and_initramfs(args, &tree, &options.initramfs_args)?;
        if !options.etc_group_members.is_empty() {
            println!(
                "ostree: etc_group_members {:?}: groups stay in /usr/etc/group, nothing to keep",
                options.etc_group_members
            );
        }
        Ok(None)
    }
}

/// Move everything aside, build the OSTree top level, move back what belongs there.
fn relayout(tree: &Path, tmp_is_dir: bool) -> Result<(), StageError> {
    let aside = tempfile::Builder::new()
        .prefix(".preptree-")
        .tempdir_in(tree)
        .map_err(io("cannot create a temporary directory in", tree))?;
    let aside_path = aside.path().to_owned();
    println!("Moving tree to temporary root");
    for e in fs::read_dir(tree).map_err(io("cannot read directory", tree))? {
        let e = e.map_err(io("cannot read directory", tree))?;
        if e.path() == aside_path {
            continue;
        }
        rename(&e.path(), &aside_path.join(e.file_name()))?;
    }
    println!("Initializing new root filesystem");
    init_root(tree, tmp_is_dir)?;
    println!("Moving data back from temporary root");
    let old = aside_path.as_path();
    rename(&old.join("usr"), &tree.join("usr"))?;
    for name in ["boot", "var"] {
        if fs::symlink_metadata(old.join(name)).is_ok() {
            if name == "var" {
                fs::remove_dir(tree.join("var")).map_err(io("cannot remove", &tree.join("var")))?;
            }
            rename(&old.join(name), &tree.join(name))?;
        } else if name == "boot" {
            mkdir_mode(&tree.join("boot"), 0o755)?;
        }
    }
    let home = old.join("home");
    if home.is_dir() && fs::read_dir(&home).map_err(io("cannot read directory", &home))?.next().is_some() {
        rename(&home, &tree.join("var/home"))?;
    }
    for name in ["bin", "lib", "lib32", "lib64", "sbin"] {
        if fs::symlink_metadata(old.join(name)).is_ok() {
            rename(&old.join(name), &tree.join(name))?;
        }
    }
    aside.close().map_err(io("cannot remove", &aside_path))
}

/// id -> name from a passwd/group style file (missing file: empty).
fn names(path: &Path) -> Result<BTreeMap<u32, String>, StageError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(StageError::Io { op: "cannot read", path: path.to_owned(), source: e }),
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if let (Some(name), Some(Ok(id))) = (f.first(), f.get(2).map(|s| s.parse::<u32>())) {
            out.entry(id).or_insert_with(|| name.to_string());
        }
    }
    Ok(out)
}

fn is_nonempty_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) && fs::read_dir(p).is_ok_and(|mut r| r.next().is_some())
}

fn clean_rpmdb(db: &Path) -> Result<(), StageError> {
    for e in fs::read_dir(db).map_err(io("cannot read directory", db))? {
        let e = e.map_err(io("cannot read directory", db))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == ".rpm.lock" || name == ".dbenv.lock" || name.starts_with("__db.") {
            remove_any(&e.path())?;
        }
    }
    Ok(())
}

fn relocate_rpmdb(tree: &Path, tmpfiles: &mut String) -> Result<(), StageError> {
    let var_db = tree.join("var/lib/rpm");
    let share = tree.join("usr/share/rpm");
    let sysimage = tree.join("usr/lib/sysimage/rpm");
    if is_nonempty_dir(&var_db) {
        println!("ostree: moving the rpm database from /var/lib/rpm to /usr/share/rpm");
        remove_any(&share)?;
        fs::create_dir_all(tree.join("usr/share")).map_err(io("cannot create directory", &tree.join("usr/share")))?;
        rename(&var_db, &share)?;
        clean_rpmdb(&share)?;
        let macros = tree.join("usr/lib/rpm/macros.d");
        fs::create_dir_all(&macros).map_err(io("cannot create directory", &macros))?;
        write_file(&macros.join("macros.rpm-ostree"), b"%_dbpath /usr/share/rpm\n", 0o644)?;
        tmpfiles.push_str("L /var/lib/rpm - - - - ../../usr/share/rpm\n");
    } else if sysimage.is_dir() {
        clean_rpmdb(&sysimage)?;
        if fs::symlink_metadata(&share).is_err() {
            fs::create_dir_all(tree.join("usr/share"))
                .map_err(io("cannot create directory", &tree.join("usr/share")))?;
            symlink("../lib/sysimage/rpm", &share).map_err(io("cannot create link", &share))?;
        }
        remove_any(&var_db)?;
        tmpfiles.push_str("L /var/lib/rpm - - - - ../../usr/lib/sysimage/rpm\n");
    }
    Ok(())
}

fn usrlocal(tree: &Path) -> Result<(), StageError> {
    let local = tree.join("usr/local");
    if fs::symlink_metadata(&local).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(&local).map_err(io("cannot remove", &local))?;
    }
    if fs::symlink_metadata(&local).is_err() {
        symlink("../var/usrlocal", &local).map_err(io("cannot create link", &local))?;
    }
    Ok(())
}

/// Turn the content of `/var` into tmpfiles.d lines (sorted by path), then empty `/var`.
fn var_to_tmpfiles(
    tree: &Path,
    passwd: &BTreeMap<u32, String>,
    group: &BTreeMap<u32, String>,
    out: &mut String,
) -> Result<(), StageError> {
    let var = tree.join("var");
    // sorted by path: depth first, names in order
    for entry in walkdir::WalkDir::new(&var).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| walk_error(&var, e))?;
        let p = entry.path();
        let rel = p.strip_prefix(&var).expect("below /var");
        let m = fs::symlink_metadata(p).map_err(io("cannot stat", p))?;
        let path = format!("/var/{}", rel.display());
        if path == "/var/lib/rpm" || path.starts_with("/var/lib/rpm/") {
            continue;
        }
        if m.file_type().is_symlink() {
            let target = fs::read_link(p).map_err(io("cannot read link", p))?;
            let _ = writeln!(out, "L {path} - - - - {}", target.display());
        } else if m.is_dir() {
            let user = passwd.get(&m.uid()).cloned().unwrap_or_else(|| m.uid().to_string());
            let grp = group.get(&m.gid()).cloned().unwrap_or_else(|| m.gid().to_string());
            let _ = writeln!(out, "d {path} {:04o} {user} {grp} - -", m.mode() & 0o7777);
        } else {
            println!("ostree: dropping {path}: only directories and links in /var are kept (as tmpfiles.d)");
        }
    }
    for e in fs::read_dir(&var).map_err(io("cannot read directory", &var))? {
        let e = e.map_err(io("cannot read directory", &var))?;
        remove_any(&e.path())?;
    }
    Ok(())
}

fn kernel_and_initramfs(args: &StageArgs, tree: &Path, initramfs_args: &[String]) -> Result<(), StageError> {
    let boot = tree.join("boot");
    let modules = tree.join("usr/lib/modules");
    // kernels still in /boot move next to their modules
    if boot.is_dir() {
        let mut names: Vec<String> = fs::read_dir(&boot)
            .map_err(io("cannot read directory", &boot))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        for name in names {
            if let Some(kver) = name.strip_prefix("vmlinuz-") {
                if kver.contains("rescue") {
                    continue;
                }
                let dir = modules.join(kver);
                fs::create_dir_all(&dir).map_err(io("cannot create directory", &dir))?;
                rename(&boot.join(&name), &dir.join("vmlinuz"))?;
                let initrd = boot.join(format!("initramfs-{kver}.img"));
                if initrd.is_file() {
                    rename(&initrd, &dir.join("initramfs.img"))?;
                }
            }
        }
    }
    let mut kvers: Vec<String> = match fs::read_dir(&modules) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("vmlinuz").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    kvers.sort();
    match kvers.as_slice() {
        [] => println!("ostree: no kernel found in /usr/lib/modules or /boot"),
        [kver] => {
            let initrd = modules.join(kver).join("initramfs.img");
            if tree.join("usr/bin/dracut").is_file() {
                // rpm-ostree makes the initramfs itself, generic and with the ostree module
                run_dracut(args, kver, initramfs_args)?;
            } else if !initrd.exists() {
                println!("ostree: kernel {kver} has no initramfs and the tree has no dracut to make one");
            }
        }
        many => {
            return Err(StageError::Invalid(format!("more than one kernel in the tree: {}", many.join(", "))));
        }
    }
    // boot-location "new": the kernel lives in /usr/lib/modules only
    for e in fs::read_dir(&boot).map_err(io("cannot read directory", &boot))? {
        let e = e.map_err(io("cannot read directory", &boot))?;
        remove_any(&e.path())?;
    }
    Ok(())
}

/// The tree's dracut in a chroot (with /proc, /dev and /sys), writing
/// `/usr/lib/modules/<kver>/initramfs.img`.
fn run_dracut(args: &StageArgs, kver: &str, initramfs_args: &[String]) -> Result<(), StageError> {
    let chroot = Chroot::enter(&args.tree, ApiFs::Fresh)?;
    let mut cmd = chroot.command("/usr/bin/dracut");
    cmd.args(["-v", "--add", "ostree", "--no-hostonly", "--reproducible", "--tmpdir", "/tmp", "-f"])
        .args(initramfs_args)
        .arg(format!("/usr/lib/modules/{kver}/initramfs.img"))
        .arg(kver);
    let result = cmd.run(OstreePreptree::NAME);
    chroot.close()?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::os::unix::fs::chown;

    fn package_tree(root: &Path) {
        for d in
            ["etc", "usr/bin", "usr/local/bin", "var/lib/fish", "var/lib/rpm", "var/log", "home/test", "opt/x", "boot"]
        {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\ntest:x:1000:1000::/home/test:/usr/bin/fish\n")
            .unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\ntest:x:1000:\n").unwrap();
        fs::write(root.join("etc/machine-id"), "0123\n").unwrap();
        fs::write(root.join("usr/bin/fish"), "fish").unwrap();
        fs::write(root.join("var/lib/rpm/rpmdb.sqlite"), "db").unwrap();
        fs::write(root.join("var/lib/rpm/.rpm.lock"), "").unwrap();
        fs::write(root.join("var/log/dropped.log"), "x").unwrap();
        symlink("../run", root.join("var/run")).unwrap();
        fs::set_permissions(root.join("home/test"), fs::Permissions::from_mode(0o700)).unwrap();
        chown(root.join("home/test"), Some(1000), Some(1000)).unwrap();
        fs::write(root.join("boot/vmlinuz-6.1.0"), "kernel").unwrap();
        fs::write(root.join("boot/initramfs-6.1.0.img"), "initrd").unwrap();
        fs::write(root.join("stray"), "dropped").unwrap();
    }

    #[test]
    fn reshapes_a_package_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        package_tree(root);
        OstreePreptree::execute(&args(root, json!({"etc_group_members": ["wheel"]}))).unwrap();
        let mut top: Vec<String> =
            fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        top.sort();
        assert_eq!(
            top,
            [
                "boot", "dev", "home", "media", "mnt", "opt", "ostree", "proc", "root", "run", "srv", "sys", "sysroot",
                "tmp", "usr", "var"
            ]
        );
        assert_eq!(fs::read_link(root.join("ostree")).unwrap(), Path::new("sysroot/ostree"));
        assert_eq!(fs::read_link(root.join("home")).unwrap(), Path::new("var/home"));
        assert_eq!(fs::metadata(root.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
        assert!(root.join("usr/etc/passwd").is_file() && !root.join("etc").exists());
        assert_eq!(fs::read(root.join("usr/lib/passwd")).unwrap(), b"");
        assert_eq!(fs::read(root.join("usr/lib/group")).unwrap(), b"");
        assert_eq!(fs::read(root.join("usr/etc/machine-id")).unwrap(), b"");
        assert_eq!(fs::read_to_string(root.join("usr/share/rpm/rpmdb.sqlite")).unwrap(), "db");
        assert!(!root.join("usr/share/rpm/.rpm.lock").exists());
        assert_eq!(
            fs::read_to_string(root.join("usr/lib/rpm/macros.d/macros.rpm-ostree")).unwrap(),
            "%_dbpath /usr/share/rpm\n"
        );
        assert_eq!(fs::read_link(root.join("usr/local")).unwrap(), Path::new("../var/usrlocal"));
        assert_eq!(fs::read_dir(root.join("var")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(root.join("boot")).unwrap().count(), 0);
        assert_eq!(fs::read_to_string(root.join("usr/lib/modules/6.1.0/vmlinuz")).unwrap(), "kernel");
        assert_eq!(fs::read_to_string(root.join("usr/lib/modules/6.1.0/initramfs.img")).unwrap(), "initrd");
        let autovar = fs::read_to_string(root.join("usr/lib/tmpfiles.d/rpm-ostree-1-autovar.conf")).unwrap();
        assert!(autovar.starts_with("L /var/lib/rpm - - - - ../../usr/share/rpm\n"), "{autovar}");
        for line in [
            "d /var/home 0755 root root - -",
            "d /var/home/test 0700 test test - -",
            "d /var/lib/fish 0755 root root - -",
            "L /var/run - - - - ../run",
        ] {
            assert!(autovar.lines().any(|l| l == line), "{line} missing in\n{autovar}");
        }
        assert!(!autovar.contains("dropped.log") && !autovar.contains("/var/lib/rpm 0"), "{autovar}");
        assert!(root.join("usr/lib/tmpfiles.d/rpm-ostree-0-integration.conf").is_file());
    }

    #[test]
    fn tmp_link_and_sysimage_rpmdb_without_machine_id() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for d in ["etc", "usr/lib/sysimage/rpm", "var"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("usr/lib/sysimage/rpm/rpmdb.sqlite"), "db").unwrap();
        OstreePreptree::execute(&args(root, json!({"tmp-is-dir": false}))).unwrap();
        assert_eq!(fs::read_link(root.join("tmp")).unwrap(), Path::new("sysroot/tmp"));
        assert_eq!(fs::read_link(root.join("usr/share/rpm")).unwrap(), Path::new("../lib/sysimage/rpm"));
        assert!(!root.join("usr/etc/machine-id").exists());
        assert!(root.join("boot").is_dir());
        let autovar = fs::read_to_string(root.join("usr/lib/tmpfiles.d/rpm-ostree-1-autovar.conf")).unwrap();
        assert_eq!(autovar, "L /var/lib/rpm - - - - ../../usr/lib/sysimage/rpm\n");
    }

    #[test]
    fn the_trees_dracut_makes_the_initramfs_in_a_chroot() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for d in ["etc", "usr/bin", "usr/lib/modules/6.1.0", "boot", "var"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).is_file());
        fs::copy(busybox.expect("busybox-static is missing: run make deps"), root.join("usr/bin/busybox")).unwrap();
        // a stand-in dracut: records its arguments into the output file (the next to last one)
        fs::write(
            root.join("usr/bin/dracut"),
            "#!/usr/bin/busybox sh\nfor a; do out=$prev; prev=$a; done\necho \"$@\" > \"$out\"\n",
        )
        .unwrap();
        fs::set_permissions(root.join("usr/bin/dracut"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("usr/lib/modules/6.1.0/vmlinuz"), "kernel").unwrap();
        fs::write(root.join("usr/lib/modules/6.1.0/initramfs.img"), "hostonly one from a package").unwrap();
        OstreePreptree::execute(&args(root, json!({"initramfs-args": ["--no-hostonly", "--kver-extra"]}))).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("usr/lib/modules/6.1.0/initramfs.img")).unwrap(),
            "-v --add ostree --no-hostonly --reproducible --tmpdir /tmp -f --no-hostonly --kver-extra \
             /usr/lib/modules/6.1.0/initramfs.img 6.1.0\n"
        );
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&root.display().to_string()), "mounts left behind");
    }

    #[test]
    fn tree_without_etc_is_refused() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("usr")).unwrap();
        let e = OstreePreptree::execute(&args(t.path(), json!({}))).unwrap_err();
        assert_eq!(e.to_string(), "the tree has no /etc to move to /usr/etc");
    }
}
