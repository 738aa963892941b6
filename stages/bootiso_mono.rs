//! `org.osbuild.bootiso.mono` (deprecated upstream in favour of the smaller ISO stages): the
//! tree of a Lorax-style installer ISO, from the `rootfs` input (and the `kernel` input, else
//! `rootfs`, for the kernel):
//!
//! - `/images/pxeboot/vmlinuz` and `initrd.img`: `/boot/vmlinuz-<kernel>` and
//!   `/boot/initramfs-<kernel>.img` of the kernel input;
//! - with `isolinux.enabled`: `/isolinux/` with ISOLINUX and its menu modules from the build
//!   root's syslinux (`isolinux-debug.bin` as `isolinux.bin` with `isolinux.debug`), Lorax's
//!   `isolinux.cfg`, `boot.msg` and `grub.conf` of the `templates` set, the input's Anaconda
//!   splash and hard links to the kernel and initrd;
//! - with `efi`: `/EFI/BOOT/` as `org.osbuild.grub2.iso` fills it, but with Lorax's
//!   `grub2-efi.cfg` as `grub.cfg`, and `/images/efiboot.img`, a FAT image (label `ANACONDA`)
//!   holding that `/EFI/BOOT`, sized as upstream sizes it;
//! - `/images/install.img`: a squashfs (with `rootfs.compression`) holding `LiveOS/rootfs.img`,
//!   an ext4 file system (label `Anaconda`, 4 KiB blocks, no reserved blocks) of
//!   `rootfs.size` MiB (3072 by default) holding the `rootfs` input.
//!
//! The Lorax templates come from the build root's `/usr/share/lorax/templates.d/<templates>/
//! config_files/<arch>/` (`aarch64` when `efi` lists `AA64`, else `x86`), with `@VERSION@`,
//! `@PRODUCT@`, `@ISOLABEL@`, `@KERNELNAME@`, `@KERNELPATH@`, `@INITRDPATH@` and `@ROOT@`
//! (`inst.stage2=hd:LABEL=<isolabel>` and `kernel_opts`) filled in. Debian packages no Lorax:
//! in a Debian build root `isolinux` and `efi` fail with an error naming the `templates`
//! option, unless the templates were put there; the rest of the stage runs anywhere.
//!
//! Upstream writes both images through kernel mounts of loop devices. This host's kernel
//! cannot mount FAT, and a stage needs no loop device otherwise, so the images are written
//! in user space: the FAT image by `mkfs.fat` on the file and mtools (`mmd`, `mcopy`), the
//! ext4 image by `mkfs.ext4 -d` (which copies owners, modes, xattrs and hard links as upstream's
//! `cp -a` does). With a `source-epoch` both are reproducible: the FAT volume id is the
//! epoch and the copied files carry it as their time; the ext4 image gets a UUID and hash seed
//! derived from the epoch, libext2fs the epoch as its clock, and every inode's times settled
//! to its modification time (see `org.osbuild-rs.mkfs.ext4.tree`). Without one the ids are
//! random, as upstream's.
//!
//! Other deviations from upstream:
//! - a build root without Fedora's `/usr/share/syslinux/` files may have Debian's
//!   (`/usr/lib/ISOLINUX/`, `/usr/lib/ISOLINUX/extra/`, `/usr/lib/syslinux/modules/bios/`);
//! - a kernel input without `initramfs-<kernel>.img` but with Debian's `initrd.img-<kernel>`
//!   gives that one;
//! - `templates` absent is `99-generic` (the schema's default; upstream fails);
//! - a missing template, syslinux file, EFI binary or splash is a typed error naming it.

use super::ext4_times::settle_times;
use super::grub2_iso::{check_name, install_efi_binaries, Product};
use super::grub_util::copy_file;
use super::mkfs_fat_tree::{fat_copy, fat_mkdir};
use super::squashfs::Compression;
use super::util::{clamp_mtimes, resolve_in_root, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Lorax installs its template sets in the build root.
pub const LORAX_TEMPLATES: &str = "/usr/share/lorax/templates.d";
/// What the FAT image's size is counted in, and how many of them it has on top of its files.
const EFI_BLOCK: u64 = 2048;
const EFI_OVERHEAD_BLOCKS: u64 = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub product: Product,
    /// The kernel version: `/boot/vmlinuz-<kernel>`.
    pub kernel: String,
    pub isolabel: String,
    #[serde(default)]
    pub efi: Option<Efi>,
    #[serde(default)]
    pub isolinux: Option<Isolinux>,
    #[serde(default)]
    pub kernel_opts: Option<String>,
    #[serde(default = "default_templates")]
    pub templates: String,
    #[serde(default)]
    pub rootfs: Rootfs,
}

fn default_templates() -> String {
    "99-generic".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Efi {
    pub architectures: Vec<String>,
    pub vendor: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Isolinux {
    pub enabled: bool,
    #[serde(default)]
    pub debug: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    #[serde(default)]
    pub compression: Option<Compression>,
    /// MiB.
    #[serde(default = "default_size")]
    pub size: u64,
}

impl Default for Rootfs {
    fn default() -> Self {
        Rootfs { compression: None, size: default_size() }
    }
}

fn default_size() -> u64 {
    3072
}

/// The stage itself: its name and options, as the registry lists it.
pub struct BootisoMono;

impl Stage for BootisoMono {
    const NAME: &'static str = "org.osbuild.bootiso.mono";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        run_with_build_root(args, &options, Path::new("/"))
    }
}

/// What the parts of the stage share.
struct Ctx<'a> {
    args: &'a StageArgs,
    o: &'a Options,
    /// `/` but in tests.
    build_root: &'a Path,
    /// The Lorax template directory, as a build-root path.
    configdir: String,
    cmdline: String,
    epoch: Option<i64>,
}

fn run_with_build_root(args: &StageArgs, o: &Options, build_root: &Path) -> StageResult {
    let rootfs = args.input_path("rootfs")?;
    let kernel_tree = if args.inputs.contains_key("kernel") { args.input_path("kernel")? } else { rootfs.clone() };
    check_name("templates", &o.templates)?;
    check_name("kernel", &o.kernel)?;
    let arch = match &o.efi {
        Some(e) if e.architectures.iter().any(|a| a == "AA64") => "aarch64",
        _ => "x86",
    };
    let mut cmdline = format!("inst.stage2=hd:LABEL={}", o.isolabel);
    if let Some(k) = o.kernel_opts.as_deref().filter(|k| !k.is_empty()) {
        cmdline = format!("{cmdline} {k}");
    }
    let cx = Ctx {
        args,
        o,
        build_root,
        configdir: format!("{LORAX_TEMPLATES}/{}/config_files/{arch}", o.templates),
        cmdline,
        epoch: args.source_epoch(),
    };

    let imgdir = new_dir(args, "images")?;
    let pxedir = new_dir(args, "images/pxeboot")?;
    let vmlinuz = resolve_in_root(&kernel_tree, format!("boot/vmlinuz-{}", o.kernel), true)?;
    copy_contents(&vmlinuz, &pxedir.join("vmlinuz"))?;
    copy_contents(&initrd(&kernel_tree, &o.kernel)?, &pxedir.join("initrd.img"))?;

    if let Some(isolinux) = o.isolinux.as_ref().filter(|i| i.enabled) {
        make_isolinux(&cx, isolinux, &rootfs, &pxedir)?;
    }
    if let Some(efi) = &o.efi {
        make_efi(&cx, efi, &imgdir)?;
    }
    make_install_img(&cx, &rootfs, &imgdir)?;
    Ok(None)
}

/// The tree's directory `rel`, created (mode 0755); it must not exist yet (upstream's
/// `os.makedirs` without `exist_ok`).
fn new_dir(args: &StageArgs, rel: &str) -> Result<PathBuf, StageError> {
    let dir = tree_path(args, rel, false)?;
    fs::DirBuilder::new().mode(0o755).create(&dir).map_err(StageError::io("cannot create directory", &dir))?;
    Ok(dir)
}

/// The initrd of `kernel` in the kernel tree: Fedora's name, or Debian's when only that exists.
fn initrd(kernel_tree: &Path, kernel: &str) -> Result<PathBuf, StageError> {
    let fedora = resolve_in_root(kernel_tree, format!("boot/initramfs-{kernel}.img"), true)?;
    let debian = resolve_in_root(kernel_tree, format!("boot/initrd.img-{kernel}"), true)?;
    Ok(if !fedora.exists() && debian.exists() { debian } else { fedora })
}

/// Python's `shutil.copyfile`: the content only, a new file getting mode 0644; streamed, for
/// kernels and initrds; never through a symlink at `dst`.
fn copy_contents(src: &Path, dst: &Path) -> Result<(), StageError> {
    let mut from = File::open(src).map_err(StageError::io("cannot read", src))?;
    let mut to = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dst)
        .map_err(StageError::io("cannot write", dst))?;
    std::io::copy(&mut from, &mut to).map_err(StageError::io("cannot write", dst))?;
    Ok(())
}

/// Each `(placeholder, value)` replaced in turn over the whole text, as upstream's line-wise
/// regular expressions do (no placeholder spans lines).
fn fill(text: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(text.to_owned(), |t, (k, v)| t.replace(k, v))
}

impl Ctx<'_> {
    /// A Lorax template of the configured set.
    fn template(&self, name: &str) -> Result<String, StageError> {
        let path = format!("{}/{name}", self.configdir);
        let p = self.build_root.join(path.trim_start_matches('/'));
        if !p.is_file() {
            return Err(StageError::ToolMissing {
                tool: format!(
                    "{path} (Lorax's boot templates, option templates '{}'; Debian packages no Lorax)",
                    self.o.templates
                ),
                stage: BootisoMono::NAME,
                place: "in the build root",
            });
        }
        fs::read_to_string(&p).map_err(StageError::io("cannot read", &p))
    }

    /// A syslinux file by its Fedora path, or where Debian keeps it.
    fn syslinux(&self, name: &str) -> Result<PathBuf, StageError> {
        let debian = match name {
            "isolinux.bin" => "/usr/lib/ISOLINUX",
            "isolinux-debug.bin" => "/usr/lib/ISOLINUX/extra",
            _ => "/usr/lib/syslinux/modules/bios",
        };
        ["/usr/share/syslinux", debian]
            .iter()
            .map(|d| self.build_root.join(d.trim_start_matches('/')).join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| StageError::ToolMissing {
                tool: format!("/usr/share/syslinux/{name} (option isolinux; Debian: isolinux, syslinux-common)"),
                stage: BootisoMono::NAME,
                place: "in the build root",
            })
    }

    fn env_epoch(&self, cmd: &mut Command) {
        match self.epoch {
            Some(e) => cmd.env("SOURCE_DATE_EPOCH", e.to_string()),
            None => cmd.env_remove("SOURCE_DATE_EPOCH"),
        };
    }
}

fn make_isolinux(cx: &Ctx, o: &Isolinux, rootfs: &Path, pxedir: &Path) -> Result<(), StageError> {
    let dir = new_dir(cx.args, "isolinux")?;
    let install = |src: &Path, name: &str| -> Result<(), StageError> {
        let dst = dir.join(name);
        copy_contents(src, &dst)?;
        fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).map_err(StageError::io("cannot chmod", &dst))
    };
    for name in ["isolinux.bin", "ldlinux.c32", "libcom32.c32", "libutil.c32", "vesamenu.c32"] {
        install(&cx.syslinux(name)?, name)?;
    }
    if o.debug {
        install(&cx.syslinux("isolinux-debug.bin")?, "isolinux.bin")?;
    }
    let version = &cx.o.product.version;
    let product = &cx.o.product.name;
    for name in ["isolinux.cfg", "boot.msg", "grub.conf"] {
        let text =
            fill(&cx.template(name)?, &[("@VERSION@", version), ("@PRODUCT@", product), ("@ROOT@", &cx.cmdline)]);
        write_file(&dir.join(name), text.as_bytes(), 0o644)?;
    }
    let splash = resolve_in_root(rootfs, "usr/share/anaconda/boot/syslinux-splash.png", true)?;
    if !splash.is_file() {
        return Err(StageError::BadInput {
            name: "rootfs".into(),
            problem: "has no /usr/share/anaconda/boot/syslinux-splash.png, the splash option isolinux needs".into(),
        });
    }
    copy_contents(&splash, &dir.join("splash.png"))?;
    for name in ["vmlinuz", "initrd.img"] {
        let (from, to) = (pxedir.join(name), dir.join(name));
        fs::hard_link(&from, &to).map_err(StageError::io("cannot link", &to))?;
    }
    Ok(())
}

/// Upstream's estimate of the FAT image size for the files below `dir`: each entry's size
/// rounded up to 2 KiB (an empty one counts 2 KiB), plus 256 blocks.
fn efi_image_size(dir: &Path) -> Result<u64, StageError> {
    let mut size = EFI_BLOCK * EFI_OVERHEAD_BLOCKS;
    for e in walkdir::WalkDir::new(dir).min_depth(1) {
        let e = e.map_err(|e| super::util::walk_error(dir, e))?;
        let s = fs::metadata(e.path()).map_err(StageError::io("cannot stat", e.path()))?.len();
        size += match s % EFI_BLOCK {
            0 if s > 0 => s,
            d => s + EFI_BLOCK - d,
        };
    }
    Ok(size)
}

fn make_efi(cx: &Ctx, efi: &Efi, imgdir: &Path) -> Result<(), StageError> {
    let efidir = install_efi_binaries(cx.args, cx.build_root, &efi.architectures, &efi.vendor, BootisoMono::NAME)?;
    let kdir = "/images/pxeboot";
    let (kernelpath, initrdpath) = (format!("{kdir}/vmlinuz"), format!("{kdir}/initrd.img"));
    println!("kernel dir at {kdir}");
    let cfg = fill(
        &cx.template("grub2-efi.cfg")?,
        &[
            ("@VERSION@", &cx.o.product.version),
            ("@PRODUCT@", &cx.o.product.name),
            ("@KERNELNAME@", "vmlinuz"),
            ("@KERNELPATH@", &kernelpath),
            ("@INITRDPATH@", &initrdpath),
            ("@ISOLABEL@", &cx.o.isolabel),
            ("@ROOT@", &cx.cmdline),
        ],
    );
    write_file(&efidir.join("grub.cfg"), cfg.as_bytes(), 0o644)?;
    if efi.architectures.iter().any(|a| a == "IA32") {
        copy_file(&efidir.join("grub.cfg"), &efidir.join("BOOT.cfg"))?;
    }

    let size = efi_image_size(&efidir)?;
    println!("Estimates efiboot size to be {size}");
    let image = imgdir.join("efiboot.img");
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&image)
        .map_err(StageError::io("cannot create", &image))?;
    f.set_len(size).map_err(StageError::io("cannot size", &image))?;
    drop(f);

    let mut mkfs = Command::new("mkfs.fat");
    mkfs.args(["-n", "ANACONDA"]);
    if let Some(e) = cx.epoch {
        // the volume id is random otherwise
        mkfs.arg("-i").arg(format!("{:08x}", e as u32));
    }
    mkfs.arg(&image);
    cx.env_epoch(&mut mkfs);
    mkfs.run(BootisoMono::NAME)?;

    if let Some(e) = cx.epoch {
        // mcopy -m keeps each file's time
        clamp_mtimes(&efidir, e)?;
    }
    fat_mkdir(&image, "::/EFI", cx.epoch, BootisoMono::NAME)?;
    fat_copy(&image, &[efidir], "::/EFI/", cx.epoch, BootisoMono::NAME)?;
    Ok(())
}

/// A UUID that is a function of the source epoch.
fn epoch_uuid(epoch: i64) -> String {
    let h = hex::encode(Sha256::digest(format!("org.osbuild.bootiso.mono rootfs.img {epoch}")));
    format!("{}-{}-4{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

fn make_install_img(cx: &Ctx, rootfs: &Path, imgdir: &Path) -> Result<(), StageError> {
    // in the tree, as upstream: the file system image can be large, /tmp may be small
    let work = tempfile::Builder::new()
        .prefix("bootiso.")
        .tempdir_in(&cx.args.tree)
        .map_err(StageError::io("cannot create a work directory in", &cx.args.tree))?;
    let liveos_work = work.path().join("liveos");
    let liveos = liveos_work.join("LiveOS");
    fs::create_dir_all(&liveos).map_err(StageError::io("cannot create directory", &liveos))?;

    let image = liveos.join("rootfs.img");
    let size =
        cx.o.rootfs
            .size
            .checked_mul(1 << 20)
            .ok_or_else(|| StageError::Invalid(format!("option rootfs.size: {} MiB is too large", cx.o.rootfs.size)))?;
    let f = File::create(&image).map_err(StageError::io("cannot create", &image))?;
    f.set_len(size).map_err(StageError::io("cannot size", &image))?;
    drop(f);
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-L", "Anaconda", "-b", "4096", "-m", "0"]);
    match cx.epoch {
        Some(e) => {
            let uuid = epoch_uuid(e);
            mkfs.arg("-U").arg(&uuid).arg("-E").arg(format!("hash_seed={uuid}"));
            mkfs.env("E2FSPROGS_FAKE_TIME", e.to_string());
        }
        None => {
            mkfs.env_remove("E2FSPROGS_FAKE_TIME");
        }
    }
    mkfs.arg("-d").arg(rootfs).arg(&image);
    println!("copying tree");
    mkfs.run(BootisoMono::NAME)?;
    let dev = OpenOptions::new().read(true).write(true).open(&image).map_err(StageError::io("cannot open", &image))?;
    settle_times(&dev, 0).map_err(StageError::io("cannot settle the inode times on", &image))?;
    drop(dev);
    println!("done");

    let mut sq = Command::new("mksquashfs");
    sq.arg(&liveos_work).arg(imgdir.join("install.img")).arg("-no-progress");
    if let Some(c) = &cx.o.rootfs.compression {
        sq.args(["-comp", c.method.name()]);
        if let Some(bcj) = c.options.bcj {
            sq.args(["-Xbcj", bcj.name()]);
        }
    }
    cx.env_epoch(&mut sq);
    sq.run(BootisoMono::NAME)?;
    work.close().map_err(StageError::io("cannot remove", &cx.args.tree))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::{json, Value};
    use std::os::unix::fs::MetadataExt;

    const EPOCH: i64 = 1_700_000_000;

    fn tool(argv: &[&str], package: &str) -> String {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .unwrap_or_else(|e| panic!("{} ({e}): apt-get install -y {package}", argv[0]));
        assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A root file system input with a kernel, an initrd (Debian's name when `debian`) and
    /// Anaconda's splash.
    fn rootfs(dir: &Path, debian: bool) -> PathBuf {
        let r = dir.join("rootfs");
        fs::create_dir_all(r.join("boot")).unwrap();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::create_dir_all(r.join("usr/share/anaconda/boot")).unwrap();
        fs::write(r.join("boot/vmlinuz-6.1.0"), "kernel").unwrap();
        let initrd = if debian { "boot/initrd.img-6.1.0" } else { "boot/initramfs-6.1.0.img" };
        fs::write(r.join(initrd), "initrd").unwrap();
        fs::write(r.join("etc/os-release"), "ID=test\n").unwrap();
        fs::write(r.join("usr/share/anaconda/boot/syslinux-splash.png"), "png").unwrap();
        r
    }

    fn stage_args(dir: &Path, input: &Path, options: Value, epoch: Option<i64>) -> StageArgs {
        let tree = dir.join("tree");
        fs::create_dir_all(&tree).unwrap();
        let mut a = args(&tree, options);
        a.inputs.insert("rootfs".into(), json!({"path": input}));
        if let Some(e) = epoch {
            a.meta.insert("source-epoch".into(), json!(e));
        }
        a
    }

    fn run(a: &StageArgs, build_root: &Path) -> StageResult {
        let o: Options = serde_json::from_value(a.options.clone()).unwrap();
        run_with_build_root(a, &o, build_root)
    }

    fn base() -> Value {
        json!({"product": {"name": "Fedora", "version": "41"}, "kernel": "6.1.0", "isolabel": "F41",
               "rootfs": {"size": 16, "compression": {"method": "xz", "options": {"bcj": "x86"}}}})
    }

    #[test]
    fn kernel_and_install_img_reproducible_with_an_epoch() {
        let t = tempfile::tempdir().unwrap();
        let input = rootfs(t.path(), true);
        let build = |name: &str| {
            let a = stage_args(&t.path().join(name), &input, base(), Some(EPOCH));
            run(&a, Path::new("/")).unwrap();
            a.tree
        };
        let tree = build("a");
        // nothing but the images: the work directory is gone
        let top: Vec<_> = fs::read_dir(&tree).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(top, ["images"]);
        assert_eq!(fs::read_to_string(tree.join("images/pxeboot/vmlinuz")).unwrap(), "kernel");
        // Debian's initrd name, as there is no initramfs-6.1.0.img
        assert_eq!(fs::read_to_string(tree.join("images/pxeboot/initrd.img")).unwrap(), "initrd");
        let img = tree.join("images/install.img");
        let s = img.to_str().unwrap();
        assert!(tool(&["unsquashfs", "-s", s], "squashfs-tools").contains("Compression xz"));
        let list = tool(&["unsquashfs", "-l", s], "squashfs-tools");
        assert!(list.contains("squashfs-root/LiveOS/rootfs.img"), "{list}");
        let out = t.path().join("x");
        tool(&["unsquashfs", "-d", out.to_str().unwrap(), s], "squashfs-tools");
        let ext4 = out.join("LiveOS/rootfs.img");
        let e = ext4.to_str().unwrap();
        assert_eq!(fs::metadata(&ext4).unwrap().len(), 16 << 20);
        let sb = tool(&["dumpe2fs", "-h", e], "e2fsprogs");
        assert!(sb.contains("Filesystem volume name:   Anaconda"), "{sb}");
        assert!(sb.contains("Block size:               4096") && sb.contains("Reserved block count:     0"), "{sb}");
        assert!(sb.contains(&format!("Filesystem UUID:          {}", epoch_uuid(EPOCH))), "{sb}");
        assert_eq!(tool(&["debugfs", "-R", "cat /etc/os-release", e], "e2fsprogs"), "ID=test\n");
        let fsck = Command::new("e2fsck").arg("-fn").arg(&ext4).output().unwrap();
        assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
        // a second build, later, gives the same bytes
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let again = build("b");
        assert!(fs::read(&img).unwrap() == fs::read(again.join("images/install.img")).unwrap());
    }

    /// A build root with Lorax templates, EFI binaries, GRUB's font and Debian's syslinux
    /// files (copied from this host's isolinux and syslinux-common packages).
    fn build_root(dir: &Path) -> PathBuf {
        let r = dir.join("buildroot");
        let x86 = r.join("usr/share/lorax/templates.d/99-generic/config_files/x86");
        fs::create_dir_all(&x86).unwrap();
        fs::write(x86.join("isolinux.cfg"), "menu title @PRODUCT@ @VERSION@\nappend @ROOT@ @ROOT@\n").unwrap();
        fs::write(x86.join("boot.msg"), "@PRODUCT@\n").unwrap();
        fs::write(x86.join("grub.conf"), "title @PRODUCT@ (@VERSION@)\n").unwrap();
        fs::write(
            x86.join("grub2-efi.cfg"),
            "search -l '@ISOLABEL@'\nlinux @KERNELPATH@ @ROOT@ # @KERNELNAME@\ninitrd @INITRDPATH@\n",
        )
        .unwrap();
        let vendor = r.join("boot/efi/EFI/fedora");
        fs::create_dir_all(&vendor).unwrap();
        for a in ["x64", "ia32"] {
            for f in ["shim", "mm", "gcd"] {
                fs::write(vendor.join(format!("{f}{a}.efi")), vec![b'e'; 3000]).unwrap();
            }
        }
        fs::create_dir_all(r.join("usr/share/grub")).unwrap();
        fs::write(r.join("usr/share/grub/unicode.pf2"), "font").unwrap();
        for (dir, files) in [
            ("usr/lib/ISOLINUX", &["isolinux.bin"][..]),
            ("usr/lib/ISOLINUX/extra", &["isolinux-debug.bin"][..]),
            ("usr/lib/syslinux/modules/bios", &["ldlinux.c32", "libcom32.c32", "libutil.c32", "vesamenu.c32"][..]),
        ] {
            fs::create_dir_all(r.join(dir)).unwrap();
            for f in files {
                let host = Path::new("/").join(dir).join(f);
                fs::copy(&host, r.join(dir).join(f))
                    .unwrap_or_else(|e| panic!("{}: {e}: apt-get install -y isolinux syslinux-common", host.display()));
            }
        }
        r
    }

    fn mtools(tool_name: &str, image: &Path, rest: &[&str]) -> String {
        let mut argv = vec![tool_name, "-i", image.to_str().unwrap()];
        argv.extend_from_slice(rest);
        tool(&argv, "mtools")
    }

    #[test]
    fn isolinux_and_efi_with_lorax_templates() {
        let t = tempfile::tempdir().unwrap();
        let input = rootfs(t.path(), false);
        let root = build_root(t.path());
        let mut o = base();
        o["isolinux"] = json!({"enabled": true, "debug": true});
        o["efi"] = json!({"architectures": ["X64", "IA32"], "vendor": "fedora"});
        o["kernel_opts"] = json!("quiet");
        let a = stage_args(t.path(), &input, o, Some(EPOCH));
        run(&a, &root).unwrap();
        let tree = &a.tree;

        let iso = tree.join("isolinux");
        assert_eq!(
            fs::read(iso.join("isolinux.bin")).unwrap(),
            fs::read("/usr/lib/ISOLINUX/extra/isolinux-debug.bin").unwrap(),
            "debug: the debug build as isolinux.bin"
        );
        assert_eq!(fs::metadata(iso.join("vesamenu.c32")).unwrap().mode() & 0o777, 0o755);
        assert_eq!(
            fs::read_to_string(iso.join("isolinux.cfg")).unwrap(),
            "menu title Fedora 41\nappend inst.stage2=hd:LABEL=F41 quiet inst.stage2=hd:LABEL=F41 quiet\n"
        );
        assert_eq!(fs::read_to_string(iso.join("grub.conf")).unwrap(), "title Fedora (41)\n");
        assert_eq!(fs::read_to_string(iso.join("splash.png")).unwrap(), "png");
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&iso.join("vmlinuz")), ino(&tree.join("images/pxeboot/vmlinuz")));
        assert_eq!(ino(&iso.join("initrd.img")), ino(&tree.join("images/pxeboot/initrd.img")));

        let cfg = fs::read_to_string(tree.join("EFI/BOOT/grub.cfg")).unwrap();
        assert_eq!(
            cfg,
            "search -l 'F41'\nlinux /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=F41 quiet # vmlinuz\n\
             initrd /images/pxeboot/initrd.img\n"
        );
        assert_eq!(fs::read_to_string(tree.join("EFI/BOOT/BOOT.cfg")).unwrap(), cfg);

        // the FAT image, read back with mtools: its size is upstream's estimate
        let img = tree.join("images/efiboot.img");
        assert_eq!(fs::metadata(&img).unwrap().len(), efi_image_size(&tree.join("EFI/BOOT")).unwrap());
        let dir = mtools("mdir", &img, &["-/", "-a", "::/"]);
        assert!(dir.contains("Volume in drive : is ANACONDA"), "{dir}");
        assert!(dir.contains(&format!(
            "Volume Serial Number is {:04X}-{:04X}",
            EPOCH as u32 >> 16,
            EPOCH as u32 & 0xffff
        )));
        for name in ["BOOTX64  EFI", "BOOTIA32 EFI", "mmx64    efi", "grubia32 efi", "grub     cfg", "BOOT     cfg"] {
            assert!(dir.contains(name), "no {name} in {dir}");
        }
        assert_eq!(mtools("mtype", &img, &["::/EFI/BOOT/grub.cfg"]), cfg);
        assert_eq!(mtools("mtype", &img, &["::/EFI/BOOT/fonts/unicode.pf2"]), "font");
        assert_eq!(mtools("mtype", &img, &["::/EFI/BOOT/BOOTX64.EFI"]), "e".repeat(3000));
        // the files carry the epoch as their time
        assert!(dir.contains("2023-11-14  22:13"), "{dir}");
        let fsck = Command::new("fsck.fat").arg("-n").arg(&img).output().unwrap();
        assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    }

    #[test]
    fn missing_templates_and_existing_images_are_named() {
        let t = tempfile::tempdir().unwrap();
        let input = rootfs(t.path(), false);
        let empty = t.path().join("empty-root");
        fs::create_dir_all(&empty).unwrap();
        let mut o = base();
        o["isolinux"] = json!({"enabled": true});
        o["templates"] = json!("80-rhel");
        let a = stage_args(&t.path().join("a"), &input, o, None);
        // Debian's syslinux is there, Lorax is not
        let root = build_root(t.path());
        fs::remove_dir_all(root.join("usr/share/lorax")).unwrap();
        let e = run(&a, &root).unwrap_err().to_string();
        assert_eq!(
            e,
            "/usr/share/lorax/templates.d/80-rhel/config_files/x86/isolinux.cfg (Lorax's boot templates, option \
             templates '80-rhel'; Debian packages no Lorax) not found in the build root, but \
             org.osbuild.bootiso.mono needs it"
        );
        // a second run: /images is there already
        let e = run(&a, &empty).unwrap_err().to_string();
        assert!(e.starts_with("cannot create directory") && e.ends_with("/images"), "{e}");
        let mut o = base();
        o["efi"] = json!({"architectures": ["AA64"], "vendor": "fedora"});
        let a = stage_args(&t.path().join("b"), &input, o, None);
        let e = run(&a, &empty).unwrap_err().to_string();
        assert!(e.starts_with("/boot/efi/EFI/fedora/shimaa64.efi"), "{e}");
        let mut o = base();
        o["templates"] = json!("../x");
        let a = stage_args(&t.path().join("c"), &input, o, None);
        assert_eq!(run(&a, &empty).unwrap_err().to_string(), "option templates: '../x' is not a plain name");
    }
}
