//! The boot-ISO stages run by the engine in its sandbox: `org.osbuild.grub2.iso` in a build
//! root made by a pipeline (holding the EFI binaries a shim/GRUB package would), the
//! `org.osbuild.grub2.iso.legacy` tree turned into a GRUB-booted hybrid ISO with
//! `org.osbuild.grub2.inst` (a real `grub-mkimage` El Torito core) and `org.osbuild.xorrisofs`,
//! and `org.osbuild.bootiso.mono` making `install.img` from a root file system pipeline, twice
//! with one source epoch. Upstream's Python stages (`OSBUILD_UPSTREAM`, else
//! ../shared/upstream/osbuild) run on the same options and the trees are compared byte for byte.
//!
//! The kernel here cannot mount iso9660 or vfat: the ISO is read with `xorriso`, the squashfs
//! with `unsquashfs`, the ext4 image with `debugfs`.
//!
//! Needs root, bubblewrap and the Debian packages grub-pc-bin, grub-common, xorriso,
//! squashfs-tools, e2fsprogs and dosfstools/mtools (for the unit tests of bootiso.mono).

mod common;

use common::*;
use osbuild_rs::stages::{error_chain, find, StageArgs};
use serde_json::{json, Map, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const EPOCH: u64 = 1_700_000_000;

fn tool(argv: &[&str], package: &str) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): install the Debian package {package}", argv[0]));
    assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file below `root` (relative path, content, mode), directories with a trailing `/`.
fn files(root: &Path) -> Vec<(String, Vec<u8>, u32)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let (p, m) = (e.path(), e.metadata().unwrap());
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        if m.is_dir() {
            out.push((rel + "/", Vec::new(), m.permissions().mode() & 0o7777));
        } else {
            out.push((rel, fs::read(p).unwrap(), m.permissions().mode() & 0o7777));
        }
    }
    out
}

fn assert_same_files(ours: &Path, theirs: &Path, what: &str) {
    let (a, b) = (files(ours), files(theirs));
    let names = |v: &[(String, Vec<u8>, u32)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "{what}");
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{what}: {} differs\nours:     {:?} {:o}\nupstream: {:?} {:o}",
            x.0,
            String::from_utf8_lossy(&x.1),
            x.2,
            String::from_utf8_lossy(&y.1),
            y.2
        );
    }
}

/// Run upstream's Python stage `name` on `tree`, its reads of the build root's
/// `/boot/efi` and `/usr/share/grub` sent to `fake_root` instead.
fn upstream_stage(name: &str, tree: &Path, options: &Value, fake_root: &Path) {
    let script = r#"
import importlib.machinery, importlib.util, json, shutil, sys
sys.path.insert(0, sys.argv[1])
fake, copy2 = sys.argv[5], shutil.copy2
def redirected(src, dst, **kw):
    if src.startswith(("/boot/efi/", "/usr/share/grub/")):
        src = fake + src
    return copy2(src, dst, **kw)
shutil.copy2 = redirected
loader = importlib.machinery.SourceFileLoader("stage", sys.argv[1] + "/stages/" + sys.argv[2])
module = importlib.util.module_from_spec(importlib.util.spec_from_loader("stage", loader))
loader.exec_module(module)
sys.exit(module.main(sys.argv[3], json.loads(sys.argv[4])))
"#;
    let out = Command::new("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-c", script])
        .arg(upstream_dir())
        .arg(name)
        .arg(tree)
        .arg(options.to_string())
        .arg(fake_root)
        .output()
        .unwrap();
    assert!(out.status.success(), "upstream {name}: {}", String::from_utf8_lossy(&out.stderr));
}

fn upstream_dir() -> PathBuf {
    common::upstream::dir()
}

/// Run our stage `name` in this process on `tree` (its build root is the host's).
fn run_stage(name: &str, tree: &Path, options: &Value) -> Result<(), String> {
    let info = find(name).unwrap();
    info.check_options(options).map_err(|e| error_chain(&e))?;
    let args: StageArgs = serde_json::from_value(json!({"tree": tree, "options": options})).unwrap();
    (info.run)(&args).map(drop).map_err(|e| error_chain(&e))
}

/// What the shim, MokManager and GRUB CD packages install for `vendor`, and GRUB's font: path
/// in the build root and content.
fn efi_files(vendor: &str) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for arch in ["x64", "ia32"] {
        for f in ["shim", "mm", "gcd"] {
            v.push((format!("/boot/efi/EFI/{vendor}/{f}{arch}.efi"), format!("MZ {f} {arch}").into_bytes()));
        }
    }
    v.push(("/usr/share/grub/unicode.pf2".into(), fs::read("/usr/share/grub/unicode.pf2").unwrap_or(b"PFF2".to_vec())));
    v
}

/// The compat manifest's options (upstream's fedora-ostree-bootiso test manifest), plus more
/// of the menu.
fn grub2_iso_options() -> Vec<Value> {
    vec![
        json!({"product": {"name": "Fedora-IoT", "version": "43"}, "isolabel": "Fedora-43-X86_64",
               "kernel": {"dir": "/images/pxeboot", "opts": ["inst.ks=hd:LABEL=Fedora-43-X86_64:/install.ks"]},
               "architectures": ["IA32", "X64"], "vendor": "fedora"}),
        json!({"product": {"name": "P", "version": "1"}, "isolabel": "L", "kernel": {"dir": "/k/", "opts": []},
               "architectures": ["X64"], "vendor": "fedora", "fips": true, "test": false,
               "config": {"timeout": 0, "default": 2},
               "custom": [{"name": "Own ${product}", "linux": "${kernelpath} $root $$x", "initrd": "$initrdpath"}]}),
    ]
}

#[test]
fn grub2_iso_in_a_build_root_made_by_a_pipeline_is_upstreams_tree() {
    let env = Env::new();
    let mut items = Map::new();
    let mut build_stages = vec![mkdir("/boot/efi/EFI/fedora"), mkdir("/usr/share/grub")];
    for (path, data) in efi_files("fedora") {
        let (sum, item) = inline_item(&data);
        items.insert(sum.clone(), item);
        build_stages.push(json!({"type": "org.osbuild.copy",
            "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {sum.clone(): {}}}},
            "options": {"paths": [{"from": format!("input://f/{sum}"), "to": format!("tree://{path}")}]}}));
    }
    let mut pipelines = vec![json!({"name": "build", "stages": build_stages})];
    for (n, o) in grub2_iso_options().iter().enumerate() {
        pipelines.push(json!({"name": format!("efiboot-{n}"), "build": "name:build",
                              "stages": [{"type": "org.osbuild.grub2.iso", "options": o}]}));
    }
    let m = env.write_manifest(
        "m.json",
        &json!({"version": "2", "sources": {"org.osbuild.inline": {"items": items}}, "pipelines": pipelines}),
    );
    ok(&env.run(&m, &["--export", "efiboot-0", "--export", "efiboot-1"]));

    let out = env.out().join("efiboot-0/EFI/BOOT");
    let mut names: Vec<String> =
        fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "BOOT.cfg",
            "BOOTIA32.EFI",
            "BOOTX64.EFI",
            "fonts",
            "grub.cfg",
            "grubia32.efi",
            "grubx64.efi",
            "mmia32.efi",
            "mmx64.efi"
        ]
    );
    // the build root's files, not the host's (which has no /boot/efi)
    assert_eq!(fs::read(out.join("grubx64.efi")).unwrap(), b"MZ gcd x64");
    let cfg = fs::read_to_string(out.join("grub.cfg")).unwrap();
    assert!(cfg.contains("menuentry 'Install Fedora-IoT 43' --class fedora"), "{cfg}");
    let custom = fs::read_to_string(env.out().join("efiboot-1/EFI/BOOT/grub.cfg")).unwrap();
    assert!(custom.starts_with("set default=\"2\"\n"), "{custom}");
    assert!(custom.contains(
        "menuentry 'Own P' --class fedora --class gnu-linux --class gnu --class os {\n\tlinux /k/vmlinuz  $x\n"
    ));

    // upstream, on the same options with the same build-root files, writes the same tree
    let fake = env.path("fake-root");
    for (path, data) in efi_files("fedora") {
        let p = fake.join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    for (n, o) in grub2_iso_options().iter().enumerate() {
        let theirs = env.path(&format!("upstream-{n}"));
        fs::create_dir(&theirs).unwrap();
        upstream_stage("org.osbuild.grub2.iso", &theirs, o, &fake);
        assert_same_files(&env.out().join(format!("efiboot-{n}")), &theirs, &format!("grub2.iso case {n}"));
    }
}

#[test]
fn grub2_iso_without_the_binaries_in_the_build_root_names_them() {
    let env = Env::new();
    let m = env.write_manifest(
        "m.json",
        &json!({"version": "2", "pipelines": [{"name": "t", "stages": [
            {"type": "org.osbuild.grub2.iso", "options": grub2_iso_options()[0]}]}]}),
    );
    let o = env.run(&m, &["--export", "t"]);
    assert!(!o.status.success());
    // the stage's error is in the build log
    let log = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(
        log.contains("/boot/efi/EFI/fedora/shimia32.efi (EFI binary for architecture IA32 of vendor fedora) not found in the build root"),
        "{log}"
    );
}

fn legacy_options() -> Vec<Value> {
    vec![
        json!({"product": {"name": "Debian", "version": "12"}, "isolabel": "DEBIAN-12",
               "kernel": {"dir": "/images/pxeboot", "opts": ["inst.stage2=hd:LABEL=DEBIAN-12"]}}),
        json!({"grub2dir": "", "product": {"name": "P", "version": "1"}, "isolabel": "L",
               "kernel": {"dir": "/k", "opts": ["a"]}, "fips": true, "install": false, "troubleshooting": true,
               "config": {"timeout": 3, "default": 0},
               "custom": [{"name": "$version", "linux": "${kernelpath}", "initrd": "${initrdpath}"}]}),
        json!({"grub2dir": "isolinux/grub", "product": {"name": "P", "version": "1"}, "isolabel": "L",
               "kernel": {"dir": "/k", "opts": []}, "test": false, "troubleshooting": false}),
    ]
}

#[test]
fn grub2_iso_legacy_tree_is_upstreams() {
    assert!(Path::new("/usr/lib/grub/i386-pc/moddep.lst").exists(), "apt-get install -y grub-pc-bin");
    for (n, o) in legacy_options().iter().enumerate() {
        let d = tempfile::tempdir().unwrap();
        let (ours, theirs) = (d.path().join("ours"), d.path().join("theirs"));
        fs::create_dir(&ours).unwrap();
        fs::create_dir(&theirs).unwrap();
        run_stage("org.osbuild.grub2.iso.legacy", &ours, o).unwrap();
        upstream_stage("org.osbuild.grub2.iso.legacy", &theirs, o, d.path());
        assert_same_files(&ours, &theirs, &format!("grub2.iso.legacy case {n}"));
    }
}

#[test]
fn grub2_iso_legacy_boots_a_hybrid_iso_through_an_el_torito_core() {
    let env = Env::new();
    let m = json!({"version": "2", "pipelines": [
        {"name": "iso-tree", "source-epoch": EPOCH, "stages": [
            mkdir("/images"),
            {"type": "org.osbuild.grub2.iso.legacy", "options": legacy_options()[0]},
            {"type": "org.osbuild.grub2.inst", "options": {"filename": "images/eltorito.img", "platform": "i386-pc",
                "core": {"type": "mkimage", "partlabel": "gpt", "filesystem": "iso9660"},
                "prefix": {"path": "/boot/grub2"}}},
        ]},
        {"name": "iso", "source-epoch": EPOCH, "stages": [
            {"type": "org.osbuild.xorrisofs", "inputs": {"tree": tree_input("iso-tree")},
             "options": {"filename": "boot.iso", "volid": "DEBIAN-12", "grub2mbr": "/usr/lib/grub/i386-pc/boot_hybrid.img",
                         "boot": {"image": "images/eltorito.img", "catalog": "boot.cat"}}},
        ]},
    ]});
    let path = env.write_manifest("m.json", &m);
    ok(&env.run(&path, &["--export", "iso", "--export", "iso-tree"]));
    let tree = env.out().join("iso-tree");
    let core = fs::read(tree.join("images/eltorito.img")).unwrap();
    let cdboot = fs::read("/usr/lib/grub/i386-pc/cdboot.img").unwrap();
    assert!(core.starts_with(&cdboot), "the El Torito core starts with cdboot.img");
    assert!(tree.join("boot/grub2/i386-pc/normal.mod").is_file());
    let iso = env.out().join("iso/boot.iso");
    let report = tool(
        &[
            "xorriso",
            "-indev",
            iso.to_str().unwrap(),
            "-report_el_torito",
            "plain",
            "-report_system_area",
            "plain",
            "-find",
            "/boot/grub2",
            "-name",
            "grub.cfg",
        ],
        "xorriso",
    );
    for want in [
        "El Torito boot img :   1  BIOS  y   none",
        "El Torito img path :   1  /images/eltorito.img",
        "El Torito img opts :   1  boot-info-table grub2-boot-info",
        "'/boot/grub2/grub.cfg'",
    ] {
        assert!(report.contains(want), "no {want:?} in\n{report}");
    }
    // GRUB's hybrid MBR came first
    let mbr = fs::read("/usr/lib/grub/i386-pc/boot_hybrid.img").unwrap();
    assert_eq!(&fs::read(&iso).unwrap()[..432], &mbr[..432]);
}

fn bootiso_manifest(options: Value) -> Value {
    let mut items = Map::new();
    let mut file = |data: &[u8]| {
        let (sum, item) = inline_item(data);
        items.insert(sum.clone(), item);
        sum
    };
    let (kernel, initrd, release) = (file(b"vmlinuz bytes"), file(b"initrd bytes"), file(b"ID=osbuild-rs\n"));
    let files = json!({"type": "org.osbuild.files", "origin": "org.osbuild.source",
                       "references": {kernel.clone(): {}, initrd.clone(): {}, release.clone(): {}}});
    let copy = |sum: &str, to: &str| json!({"from": format!("input://f/{sum}"), "to": format!("tree://{to}")});
    json!({"version": "2", "sources": {"org.osbuild.inline": {"items": items}}, "pipelines": [
        {"name": "rootfs", "source-epoch": EPOCH, "stages": [
            mkdir("/boot"), mkdir("/usr/lib"),
            {"type": "org.osbuild.copy", "inputs": {"f": files},
             "options": {"paths": [copy(&kernel, "/boot/vmlinuz-6.1.0-18-amd64"),
                                   copy(&initrd, "/boot/initrd.img-6.1.0-18-amd64"),
                                   copy(&release, "/usr/lib/os-release")]}},
        ]},
        {"name": "bootiso-tree", "source-epoch": EPOCH, "stages": [
            {"type": "org.osbuild.bootiso.mono", "inputs": {"rootfs": tree_input("rootfs")}, "options": options},
        ]},
    ]})
}

#[test]
fn bootiso_mono_install_img_is_reproducible_and_holds_the_root_file_system() {
    let env = Env::new();
    let options = json!({"product": {"name": "Debian", "version": "12"}, "kernel": "6.1.0-18-amd64",
                         "isolabel": "DEBIAN-12", "templates": "99-generic",
                         "rootfs": {"size": 32, "compression": {"method": "lz4"}}});
    let m = env.write_manifest("m.json", &bootiso_manifest(options));
    let build = |name: &str| {
        let out = env.path(name);
        let o = Command::new(bin())
            .arg("--store")
            .arg(env.path(&format!("{name}-store")))
            .arg("--output-directory")
            .arg(&out)
            .args(["--export", "bootiso-tree"])
            .arg(&m)
            .output()
            .unwrap();
        ok(&o);
        out.join("bootiso-tree")
    };
    let (a, b) = (build("a"), build("b"));
    for f in ["images/install.img", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img"] {
        assert!(fs::read(a.join(f)).unwrap() == fs::read(b.join(f)).unwrap(), "{f} differs between two builds");
    }
    // Debian's initrd name was taken for the initrd
    assert_eq!(fs::read(a.join("images/pxeboot/initrd.img")).unwrap(), b"initrd bytes");
    let mut top: Vec<String> =
        fs::read_dir(&a).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    top.sort();
    assert_eq!(top, ["images"], "the work directory is left in the tree");

    let img = a.join("images/install.img");
    assert!(tool(&["unsquashfs", "-s", img.to_str().unwrap()], "squashfs-tools").contains("Compression lz4"));
    let x = env.path("x");
    tool(&["unsquashfs", "-d", x.to_str().unwrap(), img.to_str().unwrap()], "squashfs-tools");
    let ext4 = x.join("LiveOS/rootfs.img");
    assert_eq!(fs::metadata(&ext4).unwrap().len(), 32 << 20);
    let e = ext4.to_str().unwrap();
    assert!(tool(&["dumpe2fs", "-h", e], "e2fsprogs").contains("Filesystem volume name:   Anaconda"));
    assert_eq!(tool(&["debugfs", "-R", "cat /usr/lib/os-release", e], "e2fsprogs"), "ID=osbuild-rs\n");
    let ls = tool(&["debugfs", "-R", "ls -l /boot", e], "e2fsprogs");
    assert!(ls.contains("vmlinuz-6.1.0-18-amd64"), "{ls}");
}

#[test]
fn bootiso_mono_names_what_a_debian_build_root_lacks() {
    let env = Env::new();
    let base = json!({"product": {"name": "Debian", "version": "12"}, "kernel": "6.1.0-18-amd64",
                      "isolabel": "DEBIAN-12", "rootfs": {"size": 8}});
    let mut isolinux = base.clone();
    isolinux["isolinux"] = json!({"enabled": true});
    let mut efi = base;
    efi["efi"] = json!({"architectures": ["X64"], "vendor": "debian"});
    for (options, want) in [
        (
            isolinux,
            "/usr/share/lorax/templates.d/99-generic/config_files/x86/isolinux.cfg (Lorax's boot templates, option \
             templates '99-generic'; Debian packages no Lorax) not found in the build root",
        ),
        (efi, "/boot/efi/EFI/debian/shimx64.efi (EFI binary for architecture X64 of vendor debian) not found"),
    ] {
        let m = env.write_manifest("m.json", &bootiso_manifest(options));
        let o = env.run(&m, &["--export", "bootiso-tree"]);
        assert!(!o.status.success());
        let log = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(log.contains(want), "{log}");
    }
}
