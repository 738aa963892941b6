//! The ISO stages run by the engine in its sandbox, as a boot ISO is made: a root file
//! system packed with `org.osbuild.squashfs` and `org.osbuild.erofs` (and into an initrd by
//! `org.osbuild.cpio.out`), an ISO tree with a real ISOLINUX boot image and the installer's
//! files (`kickstart`, `discinfo`, `buildstamp`, `treeinfo`, `anaconda`), the hybrid ISO made
//! by `org.osbuild.xorrisofs` and its checksum implanted by `org.osbuild.implantisomd5`. Every pipeline has a `source-epoch`: two builds
//! in two stores must give the same bytes.
//!
//! The kernel here cannot mount iso9660: the ISO is read with `xorriso` (`-report_*`,
//! `-osirrox` to extract a file), the squashfs with `unsquashfs`, the EROFS image with
//! `fsck.erofs --extract`, the checksum with `checkisomd5`.
//!
//! Needs root, bubblewrap and the Debian packages squashfs-tools, erofs-utils, xorriso,
//! isomd5sum and isolinux.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::process::Command;

const EPOCH: u64 = 1_700_000_000;
const ISOLINUX_BIN: &str = "/usr/lib/ISOLINUX/isolinux.bin";

fn tool(argv: &[&str], package: &str) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): install the Debian package {package}", argv[0]));
    assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Varied bytes (isomd5sum's fragment sums misjudge tiny images).
fn noise(n: usize) -> Vec<u8> {
    let mut x = 7u32;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

fn manifest() -> Value {
    let isolinux = fs::read(ISOLINUX_BIN).unwrap_or_else(|e| panic!("{ISOLINUX_BIN}: {e}: install isolinux"));
    let mut items = serde_json::Map::new();
    let mut file = |data: &[u8]| {
        let (sum, item) = inline_item(data);
        items.insert(sum.clone(), item);
        sum
    };
    let (os_release, isolinux_sum, payload) = (file(b"ID=osbuild-rs\n"), file(&isolinux), file(&noise(4 << 20)));
    let files = |sums: &[&String]| {
        json!({"type": "org.osbuild.files", "origin": "org.osbuild.source",
               "references": sums.iter().map(|s| (s.to_string(), json!({}))).collect::<serde_json::Map<_, _>>()})
    };
    let copy = |sum: &str, to: &str| json!({"from": format!("input://f/{sum}"), "to": format!("tree://{to}")});
    json!({
        "version": "2",
        "sources": {"org.osbuild.inline": {"items": items}},
        "pipelines": [
            {"name": "rootfs", "source-epoch": EPOCH, "stages": [
                mkdir("/usr/lib"),
                mkdir("/var/skip"),
                {"type": "org.osbuild.copy", "inputs": {"f": files(&[&os_release])},
                 "options": {"paths": [copy(&os_release, "/usr/lib/os-release")]}},
            ]},
            {"name": "iso-tree", "source-epoch": EPOCH, "stages": [
                mkdir("/images"),
                mkdir("/isolinux"),
                {"type": "org.osbuild.squashfs", "inputs": {"tree": tree_input("rootfs")},
                 "options": {"filename": "images/install.img", "compression": {"method": "xz"},
                             "exclude_paths": ["var/skip"]}},
                {"type": "org.osbuild.erofs", "inputs": {"tree": tree_input("rootfs")},
                 "options": {"filename": "images/rootfs.erofs", "compression": {"method": "lz4hc", "level": 9}}},
                {"type": "org.osbuild.copy", "inputs": {"f": files(&[&isolinux_sum, &payload])},
                 "options": {"paths": [copy(&isolinux_sum, "/isolinux/isolinux.bin"), copy(&payload, "/payload")]}},
                {"type": "org.osbuild.truncate", "options": {"filename": "/images/efiboot.img", "size": "2MiB"}},
                // the installer's files: a kickstart installing from an OSTree repository on the ISO
                {"type": "org.osbuild.kickstart", "options": {"path": "/install.ks",
                    "ostree": {"osname": "debian", "url": "file:///run/install/repo/ostree", "ref": "debian/x86_64/iot",
                               "gpg": false},
                    "users": {"core": {"password": "$6$x", "groups": ["sudo"]}}, "zerombr": true,
                    "clearpart": {"all": true, "initlabel": true}, "autopart": {"type": "plain"}, "reboot": true}},
                {"type": "org.osbuild.discinfo", "options": {"basearch": "x86_64", "release": "12"}},
                {"type": "org.osbuild.buildstamp", "options": {"arch": "x86_64", "product": "Debian", "version": "12",
                    "final": true}},
                {"type": "org.osbuild.treeinfo", "options": {"path": "/.treeinfo", "treeinfo": {
                    "checksums": ["images/install.img"], "stage2": {"mainimage": "images/install.img"}}}},
                {"type": "org.osbuild.anaconda", "options": {"kickstart-modules": ["org.fedoraproject.Anaconda.Modules.Users"]}},
            ]},
            {"name": "initrd", "source-epoch": EPOCH, "stages": [
                {"type": "org.osbuild.cpio.out", "inputs": {"tree": tree_input("rootfs")},
                 "options": {"filename": "initrd.cpio"}},
            ]},
            {"name": "iso", "source-epoch": EPOCH, "stages": [
                {"type": "org.osbuild.xorrisofs", "inputs": {"tree": tree_input("iso-tree")},
                 "options": {"filename": "boot.iso", "volid": "OSBUILD-RS-TEST",
                             "boot": {"image": "isolinux/isolinux.bin", "catalog": "isolinux/boot.cat"},
                             "efi": "images/efiboot.img",
                             // upstream's manifests name Fedora's path; Debian's is used here
                             "isohybridmbr": "/usr/share/syslinux/isohdpfx.bin"}},
                {"type": "org.osbuild.implantisomd5", "options": {"filename": "boot.iso"}},
            ]},
        ]
    })
}

fn build(env: &Env, name: &str) -> std::path::PathBuf {
    let m = env.write_manifest("manifest.json", &manifest());
    let out = env.path(name);
    let o = Command::new(bin())
        .arg("--store")
        .arg(env.path(&format!("{name}-store")))
        .arg("--output-directory")
        .arg(&out)
        .args(["--export", "iso", "--export", "iso-tree", "--export", "initrd"])
        .arg(&m)
        .output()
        .unwrap();
    ok(&o);
    out
}

#[test]
fn boot_iso_of_packed_root_file_systems_is_reproducible_and_verifiable() {
    let env = Env::new();
    let (a, b) = (build(&env, "a"), build(&env, "b"));
    let iso = a.join("iso/boot.iso");
    for f in [
        "iso/boot.iso",
        "iso-tree/images/install.img",
        "iso-tree/images/rootfs.erofs",
        "iso-tree/.discinfo",
        "iso-tree/.buildstamp",
        "initrd/initrd.cpio",
    ] {
        assert!(fs::read(a.join(f)).unwrap() == fs::read(b.join(f)).unwrap(), "{f} differs between two builds");
    }

    // the root file systems hold the tree, without what was excluded, with the epoch as time
    let list = tool(&["unsquashfs", "-lls", a.join("iso-tree/images/install.img").to_str().unwrap()], "squashfs-tools");
    assert!(list.contains("squashfs-root/usr/lib/os-release"), "{list}");
    assert!(!list.contains("var/skip"), "{list}");
    assert!(tool(&["unsquashfs", "-s", a.join("iso-tree/images/install.img").to_str().unwrap()], "squashfs-tools")
        .contains("Compression xz"));
    let erofs_out = env.path("erofs");
    tool(
        &[
            "fsck.erofs",
            &format!("--extract={}", erofs_out.display()),
            a.join("iso-tree/images/rootfs.erofs").to_str().unwrap(),
        ],
        "erofs-utils",
    );
    assert_eq!(fs::read_to_string(erofs_out.join("usr/lib/os-release")).unwrap(), "ID=osbuild-rs\n");

    // the ISO: volume id, BIOS and UEFI El Torito entries, isohybrid MBR with a GPT
    let iso_s = iso.to_str().unwrap();
    let report = tool(
        &["xorriso", "-indev", iso_s, "-pvd_info", "-report_el_torito", "plain", "-report_system_area", "plain"],
        "xorriso",
    );
    for want in [
        "Volume Id    : OSBUILD-RS-TEST",
        "Creation Time: 2023111422132000",
        "El Torito boot img :   1  BIOS  y   none",
        "El Torito boot img :   2  UEFI  y   none",
        "El Torito img path :   1  /isolinux/isolinux.bin",
        "El Torito img path :   2  /images/efiboot.img",
        "El Torito img opts :   1  boot-info-table",
        "System area summary: MBR isohybrid cyl-align-on GPT",
        "GPT partition path :   2  /images/efiboot.img",
    ] {
        assert!(report.contains(want), "no {want:?} in\n{report}");
    }
    // the MBR is ISOLINUX's (isohdpfx.bin's first 432 bytes) and the boot signature is there
    let head = &fs::read(&iso).unwrap()[..512];
    let mbr = fs::read("/usr/lib/ISOLINUX/isohdpfx.bin").unwrap();
    assert_eq!(&head[..432], &mbr[..432]);
    assert_eq!(&head[510..], &[0x55, 0xaa]);

    // a file read back from the ISO equals the one packed
    let extracted = env.path("install.img");
    tool(
        &["xorriso", "-osirrox", "on", "-indev", iso_s, "-extract", "/images/install.img", extracted.to_str().unwrap()],
        "xorriso",
    );
    assert!(fs::read(&extracted).unwrap() == fs::read(a.join("iso-tree/images/install.img")).unwrap());

    // the installer's files on the ISO; with a source epoch their times are the epoch's
    let read_from_iso = |path: &str| {
        let to = env.path(&format!("from-iso{}", path.replace('/', "_")));
        tool(&["xorriso", "-osirrox", "on", "-indev", iso_s, "-extract", path, to.to_str().unwrap()], "xorriso");
        fs::read_to_string(to).unwrap()
    };
    assert_eq!(
        read_from_iso("/install.ks"),
        "ostreesetup --osname=debian --url=file:///run/install/repo/ostree --ref=debian/x86_64/iot --nogpg\n\
         user --name core --password $6$x --iscrypted --groups sudo\nzerombr\nclearpart --all --initlabel\n\
         autopart --type=plain\nreboot\n"
    );
    assert_eq!(read_from_iso("/.discinfo"), "1700000000.0\n12\nx86_64\n");
    assert!(read_from_iso("/.buildstamp").contains("\nuuid = 202311142213.x86_64\n"));
    let sum = sha256(&fs::read(a.join("iso-tree/images/install.img")).unwrap());
    assert!(read_from_iso("/.treeinfo").contains(&format!("[checksums]\nimages/install.img={sum}\n")));
    assert!(read_from_iso("/etc/anaconda/conf.d/90-osbuild.conf")
        .ends_with("kickstart_modules=\n    org.fedoraproject.Anaconda.Modules.Users\n"));
    let cpio = Command::new("cpio").args(["-it", "--quiet", "-F"]).arg(a.join("initrd/initrd.cpio")).output().unwrap();
    let listed = String::from_utf8_lossy(&cpio.stdout);
    assert!(listed.lines().any(|l| l == "usr/lib/os-release") && listed.lines().any(|l| l == "."), "{listed}");

    // the implanted checksum verifies, and fails once a byte of the image changes
    let check = |p: &Path| Command::new("checkisomd5").arg(p).output().expect("checkisomd5 (isomd5sum)").status.code();
    assert_eq!(check(&iso), Some(0));
    let broken = env.path("broken.iso");
    let mut data = fs::read(&iso).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    fs::write(&broken, data).unwrap();
    assert_eq!(check(&broken), Some(1));
}

#[test]
fn a_missing_grub_mbr_fails_the_build_naming_it() {
    let env = Env::new();
    let m = env.write_manifest(
        "m.json",
        &json!({"version": "2", "pipelines": [
            {"name": "t", "stages": [mkdir("/x")]},
            {"name": "iso", "stages": [{"type": "org.osbuild.xorrisofs", "inputs": {"tree": tree_input("t")},
             "options": {"filename": "x.iso", "volid": "X", "grub2mbr": "/usr/lib/grub/none/boot_hybrid.img"}}]}]}),
    );
    let o = env.run(&m, &["--export", "iso"]);
    assert!(!o.status.success());
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(text.contains("/usr/lib/grub/none/boot_hybrid.img is missing from the build root"), "{text}");
}
