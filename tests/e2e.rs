//! End to end (issue 7): a Debian 12 qcow2 that boots, and how reproducible it is.
//!
//! `test-manifests/debian-qcow2.json` is filled at test time by `osbuild-depsolve-apt`
//! (PACKAGES below plus the Essential/required base) and by this test (the kernel version,
//! read from the resolved `linux-image-<version>` package, for the GRUB menu entry). It builds
//! the tree with `org.osbuild.dpkg` and the configuration stages, a 2 GiB GPT disk (BIOS boot
//! partition + one ext4 root), GRUB's core image, and a qcow2. The image is booted in
//! `qemu-system-x86_64` (tests/common/qemu.rs: KVM, else TCG), the test logs in on the serial
//! console as `test`/`password`, runs `fish -c 'echo fish-ok'`, checks `hostname`, and powers
//! the guest off with the ACPI power button (systemd-logind, hence `dbus` in PACKAGES; the
//! user `test` has no right to run `poweroff` itself).
//!
//! Reproducibility: the same manifest (with `source-epoch`) is built a second time into a fresh
//! store, while the first image boots, and the two qcow2 files must have the same sha256. What
//! makes that possible (measured 2026-11-26, before: 146,000 to 158,000 of ~185,000 4-KiB
//! blocks of the root file system differed from build to build):
//! - the tree: `org.osbuild.dpkg` removes logs, caches and random seeds, and the engine clamps
//!   every mtime of a `source-epoch` pipeline to the epoch;
//! - the root file system is written by `org.osbuild-rs.mkfs.ext4.tree` (`mkfs.ext4 -d` in user
//!   space, name order, a fixed hash seed, the epoch as the file system's time, inode times
//!   settled to each file's mtime) instead of `org.osbuild.mkfs.ext4` + `org.osbuild.copy` into a
//!   kernel mount, whose block allocation, inode change times and generation numbers depend on
//!   timing;
//! - GRUB's core image, the GPT and qemu-img's qcow2 layout were already deterministic.
//!
//! When the sums differ the test says where before failing: every byte outside the root
//! partition, then per path of the root file system (type, mode, owner, content, link target,
//! mtime) and the number of differing blocks.
//!
//! Downloads are cached between runs as in tests/debian.rs: each store's
//! `sources/org.osbuild.files` is a symlink to /var/cache/osbuild-rs-tests/debs and apt's
//! lists live in /var/cache/osbuild-rs-tests/apt-state. Needs root, bwrap, apt, dpkg, the GRUB,
//! disk and qemu tools (`make deps`), and network access to the machine's Debian archive on a
//! cold cache. Run alone: `cargo test --test e2e -- --test-threads=1 --nocapture` prints the
//! timings.

mod common;

use common::disk::{part_range, run, sfdisk_json, to_raw};
use common::qemu::{cached_store, depsolve, finish_build, kernel_version, spawn_build, Vm};
use common::{sha256, Env};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const EPOCH: i64 = 1_700_000_000;
/// Files allowed to differ in content from build to build (random content made by a package's
/// maintainer script). Empty: dbus' random id, the last one, is now a link to /etc/machine-id
/// made by `org.osbuild.dpkg`.
const RANDOM_FILES: &[&str] = &[];
/// The image's packages besides the minbase set (Essential + priority required).
const PACKAGES: &[&str] = &[
    "systemd-sysv",
    "fish",
    "linux-image-amd64",
    "initramfs-tools",
    "grub-pc-bin",
    "passwd",
    "login",
    "apt",
    "udev",
    "dbus",
];

fn require_tools() {
    common::qemu::require_tools(&[
        ("apt-get", "apt"),
        ("dpkg-deb", "dpkg"),
        ("grub-mkimage", "grub-common grub-pc-bin"),
        ("sfdisk", "fdisk"),
        ("mkfs.ext4", "e2fsprogs"),
        ("debugfs", "e2fsprogs"),
        ("qemu-img", "qemu-utils"),
    ]);
}

/// The manifest from the template, depsolved, with the kernel version filled in.
fn manifest() -> (Value, String) {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-manifests/debian-qcow2.json");
    let m = depsolve(&template, PACKAGES, None);
    let kernel = kernel_version(&m);
    let text = serde_json::to_string(&m).unwrap();
    assert!(text.contains("@KERNEL_VERSION@"), "the template lost its kernel placeholder");
    (serde_json::from_str(&text.replace("@KERNEL_VERSION@", &kernel)).unwrap(), kernel)
}

/// Wait for a build of the qcow2 export; returns the image.
fn finish_qcow2_build(child: Child, out: &Path) -> PathBuf {
    let tail = finish_build(child, out);
    let qcow = out.join("qcow2/disk.qcow2");
    assert!(qcow.is_file(), "no {}:\n{tail}", qcow.display());
    qcow
}

/// What a boot showed.
struct BootReport {
    accel: common::qemu::Accel,
    kvm_failure: Option<String>,
    login: Duration,
    poweroff: Duration,
}

fn boot_and_check(image: &Path) -> Result<BootReport, String> {
    let mut vm = Vm::boot(image)?;
    vm.login("test", "password", Duration::from_secs(600))?;
    let login = vm.elapsed();
    let fish = vm.run("fish -c 'echo fish-ok'", Duration::from_secs(120))?;
    if fish.trim() != "fish-ok" {
        return Err(format!("fish printed {fish:?}\n{}", vm.tail()));
    }
    let host = vm.run("hostname", Duration::from_secs(60))?;
    if host.trim() != "osbuild-rs" {
        return Err(format!("hostname printed {host:?}\n{}", vm.tail()));
    }
    let shell = vm.run("echo $SHELL; findmnt -n -o FSTYPE /", Duration::from_secs(60))?;
    if shell.lines().map(str::trim).collect::<Vec<_>>() != ["/usr/bin/fish", "ext4"] {
        return Err(format!("login shell and root file system: {shell:?}\n{}", vm.tail()));
    }
    let poweroff = vm.poweroff(Duration::from_secs(300))?;
    Ok(BootReport { accel: vm.accel(), kvm_failure: vm.kvm_failure.clone(), login, poweroff })
}

fn sha256_file(p: &Path) -> String {
    sha256(&std::fs::read(p).unwrap())
}

/// Read `len` bytes at `offset` of `f`.
fn read_at(f: &Path, offset: u64, len: u64) -> Vec<u8> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(f).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buf).unwrap();
    buf
}

/// 4-KiB blocks that differ between `a` and `b` in [start, end).
fn differing_blocks(a: &Path, b: &Path, start: u64, end: u64) -> u64 {
    use std::io::{Seek, SeekFrom};
    let (mut fa, mut fb) = (std::fs::File::open(a).unwrap(), std::fs::File::open(b).unwrap());
    fa.seek(SeekFrom::Start(start)).unwrap();
    fb.seek(SeekFrom::Start(start)).unwrap();
    let mut n = 0;
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut pos = start;
    while pos < end {
        let len = ((end - pos) as usize).min(ba.len());
        fa.read_exact(&mut ba[..len]).unwrap();
        fb.read_exact(&mut bb[..len]).unwrap();
        n += ba[..len].chunks(4096).zip(bb[..len].chunks(4096)).filter(|(x, y)| x != y).count() as u64;
        pos += len as u64;
    }
    n
}

/// `dumpe2fs -h` fields of the file system at `offset` that differ between the two images.
fn superblock_differences(a: &Path, b: &Path, offset: u64) -> Vec<String> {
    let fields = |img: &Path| -> BTreeMap<String, String> {
        let out =
            Command::new("dumpe2fs").arg("-h").arg(format!("{}?offset={offset}", img.display())).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    };
    let (fa, fb) = (fields(a), fields(b));
    assert!(fa.len() > 20, "dumpe2fs could not read the root file system of {}", a.display());
    fa.iter().filter(|(k, v)| fb.get(*k) != Some(*v)).map(|(k, v)| format!("{k}: {v} / {:?}", fb.get(k))).collect()
}

/// One path of a file system dump: everything but the mtime, and the mtime.
type Meta = (String, i64);

/// Every path below `root`: type, mode, owner, content digest or link target; mtime apart
/// (None for symlinks, whose times `debugfs rdump` cannot set).
fn snapshot(root: &Path) -> BTreeMap<String, Meta> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let (p, md) = (e.path(), e.metadata().unwrap());
        let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
        let ft = md.file_type();
        let what = if ft.is_symlink() {
            format!("link -> {}", std::fs::read_link(p).unwrap().display())
        } else if ft.is_file() {
            format!("file {}", sha256_file(p))
        } else if ft.is_dir() {
            "dir".to_owned()
        } else {
            "special".to_owned()
        };
        let mtime = if ft.is_symlink() { 0 } else { md.mtime() };
        out.insert(rel, (format!("{what} {:o} {}:{}", md.mode() & 0o7777, md.uid(), md.gid()), mtime));
    }
    out
}

/// `debugfs rdump` of the ext4 file system at `offset` of `image` into `dest`.
fn rdump(image: &Path, offset: u64, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / {}", dest.display()))
        .arg(format!("{}?offset={offset}", image.display())));
}

#[test]
fn e2e_debian_qcow2_boots_to_fish_and_rebuilds_bit_identical() {
    common::require_root_and_tools();
    require_tools();
    let t0 = Instant::now();
    let env = Env::new();
    let (m, kernel) = manifest();
    let refs = m["pipelines"][0]["stages"][0]["inputs"]["packages"]["references"].as_array().unwrap().len();
    assert!(refs > 100, "the closure has more than 100 packages, got {refs}");
    let manifest = env.write_manifest("debian-qcow2.json", &m);
    let t_depsolve = t0.elapsed();

    // build A
    let t = Instant::now();
    let out_a = env.path("out-a");
    let qcow_a = finish_qcow2_build(spawn_build(&manifest, &cached_store(&env, "store-a"), &out_a, "qcow2"), &out_a);
    let t_build_a = t.elapsed();
    let info = common::disk::qemu_img_info(&qcow_a);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 2_147_483_648u64);

    // build B in a fresh store while A boots
    let t = Instant::now();
    let out_b = env.path("out-b");
    let build_b = spawn_build(&manifest, &cached_store(&env, "store-b"), &out_b, "qcow2");
    let boot = boot_and_check(&qcow_a);
    let t_boot = t.elapsed();
    let qcow_b = finish_qcow2_build(build_b, &out_b);
    let t_build_b = t.elapsed();
    let boot = boot.unwrap_or_else(|e| panic!("booting the image failed: {e}"));
    eprintln!(
        "e2e: kernel {kernel}, {refs} packages; depsolve {t_depsolve:.1?}, build {t_build_a:.1?}; boot with {:?}{}: \
         login after {:.1?}, poweroff {:.1?} (whole boot check {t_boot:.1?}); second build (concurrently) {t_build_b:.1?}",
        boot.accel,
        boot.kvm_failure.map(|f| format!(" (KVM failed: {})", f.lines().next().unwrap_or(""))).unwrap_or_default(),
        boot.login,
        boot.poweroff,
    );

    // reproducibility
    let t = Instant::now();
    let (sum_a, sum_b) = (sha256_file(&qcow_a), sha256_file(&qcow_b));
    if sum_a == sum_b {
        eprintln!("e2e: the two qcow2 images are bit-identical ({sum_a}); total {:.1?}", t0.elapsed());
        return;
    }
    let (raw_a, raw_b) = (to_raw(&qcow_a), to_raw(&qcow_b));
    let table = sfdisk_json(&raw_a);
    // the same table, but for the device names sfdisk made up from the file names
    let layout = |mut t: Value| {
        let pt = t["partitiontable"].as_object_mut().unwrap();
        pt.remove("device");
        for p in pt.get_mut("partitions").and_then(Value::as_array_mut).unwrap() {
            p.as_object_mut().unwrap().remove("node");
        }
        t
    };
    assert_eq!(layout(table.clone()), layout(sfdisk_json(&raw_b)), "partition tables differ");
    let (root_start, root_size) = part_range(&table, 2);
    let root_end = root_start + root_size;
    let len = std::fs::metadata(&raw_a).unwrap().len();
    assert_eq!(len, std::fs::metadata(&raw_b).unwrap().len());
    // MBR + boot code, primary GPT, BIOS boot partition (GRUB's core), backup GPT
    assert!(read_at(&raw_a, 0, root_start) == read_at(&raw_b, 0, root_start), "bytes before the root partition differ");
    assert!(
        read_at(&raw_a, root_end, len - root_end) == read_at(&raw_b, root_end, len - root_end),
        "bytes after the root partition differ"
    );
    let blocks = differing_blocks(&raw_a, &raw_b, root_start, root_end);
    let superblock = superblock_differences(&raw_a, &raw_b, root_start);

    let (dump_a, dump_b) = (env.path("root-a"), env.path("root-b"));
    rdump(&raw_a, root_start, &dump_a);
    rdump(&raw_b, root_start, &dump_b);
    let (snap_a, snap_b) = (snapshot(&dump_a), snapshot(&dump_b));
    assert!(snap_a.len() > 10_000, "the root file system has only {} paths", snap_a.len());
    for p in ["/usr/bin/fish", "/boot/grub2/grub.cfg", "/boot/grub2/i386-pc/normal.mod", "/etc/hostname"] {
        assert!(snap_a.contains_key(p), "{p} is missing from the image");
    }
    let only_a: Vec<&String> = snap_a.keys().filter(|k| !snap_b.contains_key(*k)).collect();
    let only_b: Vec<&String> = snap_b.keys().filter(|k| !snap_a.contains_key(*k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "paths only in the first image: {only_a:?}; only in the second: {only_b:?}"
    );
    let mut meta = vec![];
    let mut late = vec![];
    let mut random = vec![];
    for (path, (what_a, mtime_a)) in &snap_a {
        let (what_b, mtime_b) = &snap_b[path];
        if what_a != what_b {
            if RANDOM_FILES.contains(&path.as_str()) {
                random.push(path.as_str());
                continue;
            }
            meta.push(format!("{path}: {what_a} / {what_b}"));
        } else if mtime_a != mtime_b {
            // only what was written after the source epoch (at build time) may differ
            if *mtime_a <= EPOCH || *mtime_b <= EPOCH {
                meta.push(format!("{path}: mtime {mtime_a} / {mtime_b}"));
            } else {
                late.push(path.as_str());
            }
        }
    }
    assert!(meta.is_empty(), "the two images' root file systems differ in {} paths:\n{}", meta.len(), meta.join("\n"));
    let total = root_size / 4096;
    panic!(
        "e2e: the qcow2 images differ ({sum_a} / {sum_b}); outside the root partition identical; root fs: {blocks} of \
         {total} 4-KiB blocks differ; superblock: {superblock:?}; {} paths identical in content and metadata, {} differ \
         only in an mtime after the source epoch: {late:?}; random content: {random:?}; comparison {:.1?}; total {:.1?}",
        snap_a.len(),
        late.len(),
        t.elapsed(),
        t0.elapsed()
    );
}
