//! Devices and mounts: real loop devices, real file systems, real GRUB and qemu-img.
//! Images are inspected with sfdisk, blkid, debugfs and qemu-img; this machine's kernel cannot
//! mount vfat, which the fat test states rather than skips.

mod common;

use common::disk::*;
use common::*;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn manifest_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test-manifests").join(name)
}

#[test]
fn v1_qemu_assembler_builds_a_gpt_disk_with_grub_and_the_tree() {
    let env = Env::new();
    let out = env.run(&manifest_path("disk-v1.json"), &["--export", "assembler"]);
    ok(&out);
    let qcow = env.out().join("assembler/disk.qcow2");
    let info = qemu_img_info(&qcow);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 536870912);
    assert_eq!(info["format-specific"]["data"]["compat"], "1.1");

    let raw = to_raw(&qcow);
    let t = sfdisk_json(&raw);
    let pt = &t["partitiontable"];
    assert_eq!(pt["label"], "gpt");
    assert_eq!(pt["id"], "D209C89E-EA5E-4FBD-B161-B461CCE297E0");
    let parts = pt["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["type"], "21686148-6449-6E6F-744E-656564454649");
    assert_eq!((parts[1]["start"].as_u64(), parts[1]["size"].as_u64()), (Some(4096), Some(131072)));
    assert_eq!(parts[2]["uuid"], "6264D520-3FB9-423F-8AB8-7A0A8E3D3562");
    // The last partition takes the rest of the disk (up to the backup GPT, 1 MiB aligned).
    let end = parts[2]["start"].as_u64().unwrap() + parts[2]["size"].as_u64().unwrap();
    let last = pt["lastlba"].as_u64().unwrap();
    assert!(end <= last + 1 && end + 2048 > last, "end {end}, last lba {last}");

    let (boot_off, _) = part_range(&t, 2);
    let boot = blkid_at(&raw, boot_off);
    assert_eq!(boot["TYPE"], "ext4");
    assert_eq!(boot["UUID"], "0194fdc2-fa2f-4cc0-81d3-ff12045b73c8");
    assert_eq!(boot["LABEL"], "boot");
    let (root_off, root_size) = part_range(&t, 3);
    let root = blkid_at(&raw, root_off);
    assert_eq!(root["TYPE"], "xfs");
    assert_eq!(root["UUID"], "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75");
    assert_eq!(root["LABEL"], "root");

    // The tree is on the disk, split at /boot.
    assert_eq!(loop_cat(&raw, root_off, root_size, "/etc/hostname"), "osbuild-rs-v1\n");
    let fstab = loop_cat(&raw, root_off, root_size, "/etc/fstab");
    assert!(fstab.contains("UUID=0194fdc2-fa2f-4cc0-81d3-ff12045b73c8\t/boot\text4\tdefaults"), "{fstab}");
    let listing =
        run(Command::new("debugfs").arg("-R").arg("ls -p /").arg(format!("{}?offset={boot_off}", raw.display())));
    assert!(listing.contains("/grub2/"), "boot partition holds the tree's /boot: {listing}");

    // GRUB: boot.img in the MBR points at the core in the BIOS boot partition (sector 2048),
    // and the core's first sector points at its second one.
    let disk = read_at(&raw, 0, 512);
    let core = read_at(&raw, 2048 * 512, 512);
    assert_eq!(u64::from_le_bytes(disk[0x5c..0x64].try_into().unwrap()), 2048);
    assert_eq!(u64::from_le_bytes(core[500..508].try_into().unwrap()), 2049);
    let boot_img = std::fs::read(grub_dir().join("boot.img")).unwrap();
    assert_eq!(&disk[..0x5c], &boot_img[..0x5c], "MBR boot code is GRUB's boot.img");
    assert_eq!(&disk[0x1fe..0x200], &[0x55, 0xaa], "protective MBR signature kept");
    assert!(core[..16].iter().any(|b| *b != 0), "core image written");

    assert!(loops_backed_under(&env.store()).is_empty());
}

fn grub_dir() -> PathBuf {
    let d = PathBuf::from("/usr/lib/grub/i386-pc");
    assert!(d.join("boot.img").is_file(), "GRUB's i386-pc modules are missing: run `make deps` (grub-pc-bin)");
    d
}

/// An ext4 image inside a tar (what a stage could get from anywhere), for tests that need a
/// file system before the mkfs stages run; returns the source item and the input.
fn ext4_image_source(env: &Env, name: &str, size_mib: u64) -> (serde_json::Map<String, Value>, Value, String) {
    let dir = env.path("img");
    std::fs::create_dir_all(&dir).unwrap();
    run(Command::new("truncate").arg("-s").arg(format!("{size_mib}M")).arg(dir.join(name)));
    run(Command::new("mkfs.ext4").args(["-q", "-L", "data"]).arg(dir.join(name)));
    let tar = env.path("img.tar");
    run(Command::new("tar").arg("--sparse").arg("-cf").arg(&tar).arg("-C").arg(&dir).arg(name));
    let sum = sha256(&std::fs::read(&tar).unwrap());
    let mut items = serde_json::Map::new();
    items.insert(sum.clone(), json!({"url": format!("file://{}", tar.display())}));
    let input = json!({"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {sum.clone(): {}}});
    (items, input, sum)
}

fn loopback(filename: &str) -> Value {
    json!({"device": {"type": "org.osbuild.loopback", "options": {"filename": filename}}})
}

#[test]
fn a_stage_failing_on_a_mounted_disk_leaves_no_mount_and_no_loop_device() {
    let env = Env::new();
    let (items, input, _) = ext4_image_source(&env, "disk.img", 32);
    let m = json!({"version": "2", "sources": {"org.osbuild.curl": {"items": items}}, "pipelines": [
    {"name": "image", "stages": [
        {"type": "org.osbuild.untar", "inputs": {"file": input}},
        {"type": "org.osbuild.copy", "devices": loopback("disk.img"),
         "mounts": [{"name": "root", "type": "org.osbuild.ext4", "source": "device", "target": "/"}],
         "options": {"paths": [{"from": "tree:///does/not/exist", "to": "mount://root/x"}]}}
    ]}]});
    let out = env.run(&env.write_manifest("m.json", &m), &["--export", "image"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("does/not/exist"), "{text}");
    assert!(loops_backed_under(&env.store()).is_empty(), "{:?}", loops_backed_under(&env.store()));
    assert!(host_mounts_with(&env.dir.path().to_string_lossy()).is_empty());
    assert!(env.tmp_entries().is_empty(), "{:?}", env.tmp_entries());
    assert_eq!(env.objects().len(), 0, "nothing of the failed pipeline committed");
}

#[test]
fn mounts_by_partition_number_and_content_lands_on_the_partition() {
    let env = Env::new();
    // A dos-labelled disk whose second partition holds an ext4 file system, made by hand.
    let dir = env.path("img");
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    run(Command::new("truncate").arg("-s").arg("40M").arg(&disk));
    let mut sf = Command::new("sfdisk");
    sf.arg("-q").arg(&disk).stdin(std::process::Stdio::piped());
    let mut child = sf.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"label: dos\nstart=2048, size=8192\nstart=10240, size=61440\n").unwrap();
    assert!(child.wait().unwrap().success());
    let part = dir.join("p2.img");
    run(Command::new("truncate").arg("-s").arg(format!("{}", 61440 * 512)).arg(&part));
    run(Command::new("mkfs.ext4").args(["-q", "-U", "11111111-2222-3333-4444-555555555555"]).arg(&part));
    run(Command::new("dd").arg(format!("if={}", part.display())).arg(format!("of={}", disk.display())).args([
        "bs=512",
        "seek=10240",
        "conv=notrunc,sparse",
        "status=none",
    ]));
    std::fs::remove_file(&part).unwrap();
    let tar = env.path("disk.tar");
    run(Command::new("tar").arg("--sparse").arg("-cf").arg(&tar).arg("-C").arg(&dir).arg("disk.img"));
    let sum = sha256(&std::fs::read(&tar).unwrap());

    let m = json!({"version": "2",
    "sources": {"org.osbuild.curl": {"items": {sum.clone(): {"url": format!("file://{}", tar.display())}}}},
    "pipelines": [
        {"name": "tree", "stages": [mkdir("/etc"), {"type": "org.osbuild.hostname", "options": {"hostname": "on-p2"}}]},
        {"name": "image", "stages": [
            {"type": "org.osbuild.untar", "inputs": {"file": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {sum.clone(): {}}}}},
            {"type": "org.osbuild.copy", "devices": loopback("disk.img"),
             "inputs": {"root-tree": tree_input("tree")},
             "mounts": [{"name": "root", "type": "org.osbuild.ext4", "source": "device", "partition": 2, "target": "/"}],
             "options": {"paths": [{"from": "input://root-tree/", "to": "mount://root/"}]}}
        ]}]});
    ok(&env.run(&env.write_manifest("m.json", &m), &["--export", "image"]));
    let img = env.out().join("image/disk.img");
    assert_eq!(ext4_cat(&img, 10240 * 512, "/etc/hostname"), "on-p2\n");
    assert_eq!(blkid_at(&img, 10240 * 512)["UUID"], "11111111-2222-3333-4444-555555555555");
    assert!(loops_backed_under(&env.store()).is_empty());

    // A partition that is not there names the mount.
    let mut bad = m.clone();
    bad["pipelines"][1]["stages"][1]["mounts"][0]["partition"] = json!(7);
    let out = env.run(&env.write_manifest("bad.json", &bad), &["--export", "image"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pipelines[1].stages[1].mounts.root") && err.contains("partition 7 does not exist"), "{err}");
}

#[test]
fn loopback_filename_may_not_leave_the_tree() {
    let env = Env::new();
    let m = json!({"version": "2", "pipelines": [{"name": "image", "stages": [
        {"type": "org.osbuild.ln", "options": {"paths": [{"target": "/etc/passwd", "link_name": "tree:///evil", "symbolic": true}]}},
        {"type": "org.osbuild.noop", "devices": loopback("evil")},
        {"type": "org.osbuild.noop", "devices": loopback("../../etc/passwd")}
    ]}]});
    let out = env.run(&env.write_manifest("m.json", &m), &["--export", "image"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The link is followed inside the tree, where there is no /etc/passwd.
    assert!(err.contains("pipelines[0].stages[1].devices.device.options.filename: cannot attach the device"), "{err}");
    assert!(err.contains("cannot open 'evil'") && err.contains("No such file or directory"), "{err}");
    assert!(loops_backed_under(Path::new("/etc")).is_empty());
}

#[test]
fn fat_mount_works_where_the_kernel_can_and_says_so_where_it_cannot() {
    let env = Env::new();
    // The ESP is made by the mkfs.fat stage on a loop device and read back with mtools (no
    // mount needed); then a stage mounts it with org.osbuild.fat.
    let esp = json!({"name": "esp", "stages": [
        {"type": "org.osbuild.truncate", "options": {"filename": "esp.img", "size": "33554432"}},
        {"type": "org.osbuild.mkfs.fat", "devices": loopback("esp.img"), "options": {"volid": "7b7795e7", "label": "ESP"}}
    ]});
    let mounted = json!({"name": "image", "stages": [
        {"type": "org.osbuild.copy", "inputs": {"esp": tree_input("esp")},
         "options": {"paths": [{"from": "input://esp/esp.img", "to": "tree:///esp.img"}]}},
        {"type": "org.osbuild.mkdir", "devices": loopback("esp.img"),
         "mounts": [{"name": "esp", "type": "org.osbuild.fat", "source": "device", "target": "/boot/efi"}],
         "options": {"paths": [{"path": "mount://esp/EFI", "parents": true}]}}
    ]});
    let m = env.write_manifest("m.json", &json!({"version": "2", "pipelines": [esp, mounted]}));
    ok(&env.run(&m, &["--export", "esp"]));
    let img = env.out().join("esp/esp.img");
    let info = run(Command::new("minfo").arg("-i").arg(&img).arg("::"));
    assert!(info.contains("serial number: 7B7795E7") && info.contains("disk label=\"ESP "), "{info}");
    run(Command::new("mmd").arg("-i").arg(&img).arg("::/EFI"));
    assert!(run(Command::new("mdir").arg("-i").arg(&img).arg("::/")).contains("EFI"));

    let out = env.run(&m, &["--export", "image"]);
    let kernel_can = std::fs::read_to_string("/proc/filesystems").unwrap().contains("vfat")
        || Command::new("modprobe").arg("vfat").status().map(|s| s.success()).unwrap_or(false);
    if kernel_can {
        ok(&out);
        let listing = run(Command::new("mdir").arg("-i").arg(env.out().join("image/esp.img")).arg("::/"));
        assert!(listing.contains("EFI"), "{listing}");
    } else {
        // This machine: no vfat in the kernel. The error says so and names the mount.
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot mount vfat file systems") && err.contains("mounts.esp"), "{err}");
    }
    assert!(loops_backed_under(&env.store()).is_empty());
}

#[test]
fn ostree_deployment_mount_makes_the_deployment_the_root() {
    let env = Env::new();
    let commit = "a".repeat(64);
    let dep = format!("/ostree/deploy/iot/deploy/{commit}.0");
    let (ref_item_sum, ref_item) = inline_item(format!("{commit}\n").as_bytes());
    let m = json!({"version": "2",
    "sources": {"org.osbuild.inline": {"items": {ref_item_sum.clone(): ref_item}}},
    "pipelines": [{"name": "image", "stages": [
        {"type": "org.osbuild.mkdir", "options": {"paths": [
            {"path": "/ostree/repo/refs/heads/osbuild-rs", "parents": true},
            {"path": format!("{dep}/sysroot"), "parents": true},
            {"path": format!("{dep}/var")}, {"path": format!("{dep}/boot")}, {"path": format!("{dep}/etc")},
            {"path": "/ostree/deploy/iot/var"}, {"path": "/boot"}]}},
        {"type": "org.osbuild.copy",
         "inputs": {"r": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {ref_item_sum.clone(): {}}}},
         "options": {"paths": [{"from": format!("input://r/{ref_item_sum}"), "to": "tree:///ostree/repo/refs/heads/osbuild-rs/iot"}]}},
        {"type": "org.osbuild.mkdir",
         "mounts": [{"name": "ostree.deployment", "type": "org.osbuild.ostree.deployment",
                     "options": {"deployment": {"osname": "iot", "ref": "osbuild-rs/iot"}}}],
         "options": {"paths": [{"path": "/etc/in-deployment"}, {"path": "/var/in-stateroot-var"},
                               {"path": "/boot/in-boot"}, {"path": "/sysroot/in-physical-root"}]}}
    ]}]});
    ok(&env.run(&env.write_manifest("m.json", &m), &["--export", "image"]));
    let root = env.out().join("image");
    assert!(root.join(dep.trim_start_matches('/')).join("etc/in-deployment").is_dir());
    assert!(root.join("ostree/deploy/iot/var/in-stateroot-var").is_dir());
    assert!(root.join("boot/in-boot").is_dir());
    assert!(root.join("in-physical-root").is_dir());
    assert!(!root.join("etc").exists(), "nothing written to the physical root's /etc");
    assert!(host_mounts_with(&env.dir.path().to_string_lossy()).is_empty());
}

/// A build that blocks inside `mkfs.ext4` (a fake one in a foreign build root sleeps) while one
/// loop device is attached for mkfs and another one is mounted; `sig` arrives then. Nothing may
/// be left: no process, no mount, no loop device over the store.
fn interrupt_during_mkfs(sig: i32) {
    let env = Env::new();
    let marker = format!("sleep {}", 2000 + (std::process::id() % 5000) * 10 + sig as u32);
    let script = format!("#!/bin/sh\necho mkfs-started\n{marker}\n");
    let (build, items) = foreign_build_root_pipeline(&env, &[("mkfs.ext4", &script)]);
    let m = env.write_manifest("m.json", &json!({"version": "2",
        "sources": {"org.osbuild.curl": {"items": items}},
        "pipelines": [
            build,
            {"name": "data", "stages": [
                {"type": "org.osbuild.truncate", "options": {"filename": "data.img", "size": "33554432"}},
                {"type": "org.osbuild.mkfs.ext4", "devices": loopback("data.img"), "options": {"uuid": "8a1b0c7e-3f2d-4e5a-9b6c-7d8e9f0a1b2c"}},
                {"type": "org.osbuild.truncate", "options": {"filename": "disk.img", "size": "67108864"}}
            ]},
            {"name": "image", "build": "name:build", "stages": [
                {"type": "org.osbuild.copy", "inputs": {"data": tree_input("data")},
                 "options": {"paths": [{"from": "input://data/", "to": "tree:///"}]}},
                {"type": "org.osbuild.mkfs.ext4", "options": {"uuid": "0194fdc2-fa2f-4cc0-81d3-ff12045b73c8"},
                 "devices": {"device": {"type": "org.osbuild.loopback", "options": {"filename": "disk.img"}},
                             "data": {"type": "org.osbuild.loopback", "options": {"filename": "data.img"}}},
                 "mounts": [{"name": "data", "type": "org.osbuild.ext4", "source": "data", "target": "/"}]}
            ]}]}));
    let mut child = env.spawn(&m, &["--export", "image"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while processes_with(&marker).is_empty() {
        assert!(Instant::now() < deadline, "mkfs never started");
        if let Some(st) = child.try_wait().unwrap() {
            let mut e = String::new();
            child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            panic!("build ended early with {st}: {e}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(loops_backed_under(&env.store()).len(), 2, "both devices attached while mkfs runs");
    Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().unwrap();
    let sent = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(sent.elapsed() < Duration::from_secs(5), "no exit within 5 s of signal {sig}");
        std::thread::sleep(Duration::from_millis(20));
    };
    if sig != 9 {
        assert_eq!(status.code(), Some(130));
    }
    // The kernel releases autoclear devices once the last user is gone; give it a moment.
    let released = Instant::now();
    while !loops_backed_under(&env.store()).is_empty() && released.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(loops_backed_under(&env.store()).is_empty(), "{:?}", loops_backed_under(&env.store()));
    assert!(processes_with(&marker).is_empty());
    assert!(host_mounts_with(&env.dir.path().to_string_lossy()).is_empty());
    assert!(env.mounts().is_empty());
}

#[test]
fn sigterm_during_mkfs_leaves_no_loop_device_mount_or_process() {
    interrupt_during_mkfs(15);
}

#[test]
fn sigkill_during_mkfs_leaves_no_loop_device_mount_or_process() {
    interrupt_during_mkfs(9);
}

#[test]
fn v2_gpt_disk_with_grub_exported_as_qcow2_vmdk_and_vhd() {
    let env = Env::new();
    let out = env.run(&manifest_path("disk.json"), &["--export", "qcow2", "--export", "vmdk", "--export", "vhd"]);
    ok(&out);
    let qcow = env.out().join("qcow2/disk.qcow2");
    let vmdk = env.out().join("vmdk/disk.vmdk");
    let vhd = env.out().join("vhd/disk.vhd");
    let info = qemu_img_info(&qcow);
    assert_eq!((info["format"].as_str(), info["virtual-size"].as_u64()), (Some("qcow2"), Some(1 << 30)));
    assert_eq!(info["format-specific"]["data"]["compat"], "1.1");
    let info = qemu_img_info(&vmdk);
    assert_eq!(info["format"], "vmdk");
    assert_eq!(info["format-specific"]["data"]["create-type"], "streamOptimized");
    // A fixed VHD is raw data plus a footer: qemu-img only reads it as vpc when told to, and
    // then must find a valid footer.
    let info: Value =
        serde_json::from_str(&run(Command::new("qemu-img").args(["info", "-f", "vpc", "--output=json"]).arg(&vhd)))
            .unwrap();
    assert_eq!(info["format"], "vpc");
    // vpc with force_size keeps the exact size (no CHS rounding).
    assert_eq!(info["virtual-size"].as_u64(), Some(1 << 30));
    // The three formats hold the same disk.
    run(Command::new("qemu-img").arg("compare").arg(&qcow).arg(&vmdk));
    run(Command::new("qemu-img").args(["compare", "-F", "vpc"]).arg(&qcow).arg(&vhd));

    let raw = to_raw(&qcow);
    let t = sfdisk_json(&raw);
    let parts = t["partitiontable"]["partitions"].as_array().unwrap().clone();
    assert_eq!(t["partitiontable"]["label"], "gpt");
    assert_eq!(
        parts.iter().map(|p| (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap())).collect::<Vec<_>>(),
        vec![(2048, 2048), (4096, 204800), (208896, 1888223)]
    );
    assert_eq!(parts[1]["name"], "boot");
    assert_eq!(parts[2]["uuid"], "6264D520-3FB9-423F-8AB8-7A0A8E3D3562");

    let (boot_off, _) = part_range(&t, 2);
    let (root_off, root_size) = part_range(&t, 3);
    let boot = blkid_at(&raw, boot_off);
    assert_eq!(
        (boot["TYPE"].as_str(), boot["UUID"].as_str(), boot["LABEL"].as_str()),
        ("ext4", "0194fdc2-fa2f-4cc0-81d3-ff12045b73c8", "boot")
    );
    let root = blkid_at(&raw, root_off);
    assert_eq!(
        (root["TYPE"].as_str(), root["UUID"].as_str(), root["LABEL"].as_str()),
        ("xfs", "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75", "root")
    );

    // Content: / on xfs, /boot on ext4 (the tree split at the mount point).
    assert_eq!(loop_cat(&raw, root_off, root_size, "/etc/hostname"), "osbuild-rs-disk\n");
    assert!(loop_cat(&raw, root_off, root_size, "/etc/fstab")
        .contains("UUID=0194fdc2-fa2f-4cc0-81d3-ff12045b73c8\t/boot\text4"));
    assert_eq!(
        loop_cat(&raw, root_off, root_size, "/boot/grub2/grub.cfg"),
        "",
        "/boot content is on the boot partition"
    );
    let cfg = ext4_cat(&raw, boot_off, "/grub2/grub.cfg");
    assert!(cfg.contains("search --no-floppy --set=root --fs-uuid 0194fdc2-fa2f-4cc0-81d3-ff12045b73c8"), "{cfg}");
    assert!(ext4_cat(&raw, boot_off, "/grub2/grubenv").starts_with("# GRUB Environment Block"));
    assert!(!ext4_cat(&raw, boot_off, "/grub2/i386-pc/normal.mod").is_empty(), "GRUB modules for BIOS");

    // GRUB itself finds its config through the core's prefix: boot.img -> core at sector 2048.
    let disk = read_at(&raw, 0, 512);
    assert_eq!(u64::from_le_bytes(disk[0x5c..0x64].try_into().unwrap()), 2048);
    let via_grub = run(Command::new("grub-fstest").arg(&raw).args(["cat", "(loop0,gpt2)/grub2/grub.cfg"]));
    assert_eq!(via_grub, cfg);
    assert!(loops_backed_under(&env.store()).is_empty());
}

/// The OSTree image flow of upstream's manifests on a real disk: a commit (made here with
/// plain `ostree commit`, served from file://) pulled by the ostree source, deployed into a tree
/// (init-fs, os-init, deploy, fstab through the deployment mount, grub2), copied onto an
/// ext4 /boot + ext4 / disk, GRUB core installed. The disk then has ostree's layout and a BLS
/// entry that points at the deployment.
#[test]
fn ostree_deployment_on_a_disk_has_the_deploy_layout_and_bls_entries() {
    let env = Env::new();
    for tool in ["ostree", "grub-mkimage"] {
        assert!(
            Command::new("sh").arg("-c").arg(format!("command -v {tool}")).status().unwrap().success(),
            "{tool} missing: run `make deps`"
        );
    }
    let (repo, commit) =
        common::ostree::bootable_commit(&env, "osbuild-rs/x86_64/iot", &[("usr/bin/fish", "#!/bin/sh\n")]);
    let kver = common::ostree::KVER;
    let deployment = json!({"osname": "iot", "ref": "osbuild-rs/x86_64/iot"});
    let dev = |start: u64, size: u64| json!({"type": "org.osbuild.loopback", "options": {"filename": "disk.img", "start": start, "size": size}});
    let (boot, root) = ((4096u64, 204800u64), (208896u64, 1888223u64));
    let m = json!({"version": "2",
    "sources": {"org.osbuild.ostree": {"items": {commit.clone(): {"remote": {"url": format!("file://{}", repo.display())}}}}},
    "pipelines": [
        {"name": "image-tree", "stages": [
            {"type": "org.osbuild.ostree.init-fs"},
            {"type": "org.osbuild.ostree.os-init", "options": {"osname": "iot"}},
            {"type": "org.osbuild.ostree.config", "options": {"repo": "/ostree/repo", "config": {"sysroot": {"readonly": true, "bootloader": "none"}}}},
            {"type": "org.osbuild.ostree.deploy",
             "inputs": {"commits": {"type": "org.osbuild.ostree", "origin": "org.osbuild.source", "references": {commit.clone(): {"ref": "osbuild-rs/x86_64/iot"}}}},
             "options": {"osname": "iot", "mounts": ["/boot"], "rootfs": {"label": "root"}, "kernel_opts": ["rw", "console=ttyS0"]}},
            {"type": "org.osbuild.ostree.fillvar", "options": {"deployment": deployment}},
            {"type": "org.osbuild.fstab",
             "mounts": [{"type": "org.osbuild.ostree.deployment", "name": "ostree.deployment", "options": {"deployment": deployment}}],
             "options": {"filesystems": [{"label": "boot", "vfs_type": "ext4", "path": "/boot", "freq": 1, "passno": 1},
                                         {"label": "root", "vfs_type": "ext4", "path": "/", "freq": 1, "passno": 1}]}},
            {"type": "org.osbuild.grub2", "options": {"rootfs": {"label": "root"}, "bootfs": {"label": "boot"}, "legacy": "i386-pc", "write_defaults": false}}
        ]},
        {"name": "image", "stages": [
            {"type": "org.osbuild.truncate", "options": {"filename": "disk.img", "size": "1073741824"}},
            {"type": "org.osbuild.sfdisk", "devices": {"device": {"type": "org.osbuild.loopback", "options": {"filename": "disk.img"}}},
             "options": {"label": "gpt", "uuid": "D209C89E-EA5E-4FBD-B161-B461CCE297E0", "partitions": [
                {"start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649"},
                {"start": boot.0, "size": boot.1, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
                {"start": root.0, "size": root.1, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}]}},
            {"type": "org.osbuild.mkfs.ext4", "devices": {"device": dev(boot.0, boot.1)}, "options": {"uuid": "156f0420-627b-4151-ae6f-fda298097515", "label": "boot"}},
            {"type": "org.osbuild.mkfs.ext4", "devices": {"device": dev(root.0, root.1)}, "options": {"uuid": "76a22bf4-f153-4541-b6c7-0332c0dfaeac", "label": "root"}},
            {"type": "org.osbuild.copy", "inputs": {"tree": tree_input("image-tree")},
             "options": {"paths": [{"from": "input://tree/", "to": "mount://root/"}]},
             "devices": {"boot": dev(boot.0, boot.1), "root": dev(root.0, root.1)},
             "mounts": [{"name": "root", "type": "org.osbuild.ext4", "source": "root", "target": "/"},
                        {"name": "boot", "type": "org.osbuild.ext4", "source": "boot", "target": "/boot"}]},
            {"type": "org.osbuild.grub2.inst", "options": {"platform": "i386-pc", "filename": "disk.img", "location": 2048,
                "core": {"type": "mkimage", "partlabel": "gpt", "filesystem": "ext4"},
                "prefix": {"type": "partition", "partlabel": "gpt", "number": 1, "path": "/grub2"}}},
            // The deployment on the disk (`source: mount`, the default one) as the stage's root.
            {"type": "org.osbuild.mkdir",
             "devices": {"boot": dev(boot.0, boot.1), "root": dev(root.0, root.1)},
             "mounts": [{"name": "root", "type": "org.osbuild.ext4", "source": "root", "target": "/"},
                        {"name": "boot", "type": "org.osbuild.ext4", "source": "boot", "target": "/boot"},
                        {"name": "ostree.deployment", "type": "org.osbuild.ostree.deployment",
                         "options": {"source": "mount", "deployment": {"default": true}}}],
             "options": {"paths": [{"path": "mount://root/etc/made-through-the-disk-mount"}]}}
        ]}]});
    ok(&env.run(&env.write_manifest("m.json", &m), &["--export", "image"]));
    let img = env.out().join("image/disk.img");
    let ls = |off: u64, path: &str| {
        run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("ls -p {path}"))
            .arg(format!("{}?offset={off}", img.display())))
    };
    let names = |listing: String| {
        listing
            .lines()
            .filter_map(|l| l.split('/').nth(5).map(str::to_owned))
            .filter(|n| !n.is_empty() && n != "." && n != "..")
            .collect::<Vec<_>>()
    };

    // Root partition: the physical root of an ostree system.
    let roff = root.0 * 512;
    let top = names(ls(roff, "/"));
    for entry in ["ostree", "boot"] {
        assert!(top.contains(&entry.to_owned()), "{entry} missing in / of the root partition: {top:?}");
    }
    let deploys = names(ls(roff, "/ostree/deploy/iot/deploy"));
    assert!(deploys.contains(&format!("{commit}.0")) && deploys.contains(&format!("{commit}.0.origin")), "{deploys:?}");
    let origin = ext4_cat(&img, roff, &format!("/ostree/deploy/iot/deploy/{commit}.0.origin"));
    assert!(origin.contains("refspec=osbuild-rs/x86_64/iot") || origin.contains(":osbuild-rs/x86_64/iot"), "{origin}");
    let dep = format!("/ostree/deploy/iot/deploy/{commit}.0");
    assert_eq!(ext4_cat(&img, roff, &format!("{dep}/etc/hostname")), "osbuild-rs-iot\n", "/etc merged from /usr/etc");
    let etc = names(ls(roff, &format!("{dep}/etc")));
    assert!(etc.contains(&"made-through-the-disk-mount".to_owned()), "{etc:?}");
    let fstab = ext4_cat(&img, roff, &format!("{dep}/etc/fstab"));
    assert!(
        fstab.contains("LABEL=root\t/\text4") && fstab.contains("LABEL=boot\t/boot\text4"),
        "fstab written into the deployment: {fstab}"
    );
    assert!(names(ls(roff, "/ostree/repo/objects")).len() > 1, "the commit's objects are in the disk's repo");

    // Boot partition: the BLS entry and the kernel it names.
    let boff = boot.0 * 512;
    let loader = names(ls(boff, "/"));
    assert!(loader.iter().any(|n| n.starts_with("loader")), "{loader:?}");
    let entries = names(ls(boff, "/loader/entries"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = ext4_cat(&img, boff, &format!("/loader/entries/{}", entries[0]));
    let get = |key: &str| {
        entry
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {entry}"))
            .to_owned()
    };
    let options = get("options");
    assert!(
        options.contains("root=LABEL=root")
            && options.contains("rw console=ttyS0")
            && options.contains("ostree=/ostree/boot."),
        "{entry}"
    );
    let linux = get("linux");
    assert!(linux.starts_with("/ostree/iot-") && linux.ends_with(&format!("/vmlinuz-{kver}")), "{entry}");
    assert_eq!(ext4_cat(&img, boff, &linux), "not really a kernel\n", "the entry's kernel is on /boot");
    assert_eq!(ext4_cat(&img, boff, &get("initrd")), "not really an initramfs\n");
    // GRUB reads the BLS entries (blscfg) from the boot partition's grub2 directory.
    let cfg = ext4_cat(&img, boff, "/grub2/grub.cfg");
    assert!(cfg.contains("blscfg") && cfg.contains("search --no-floppy --set=root --label boot"), "{cfg}");
    assert!(loops_backed_under(&env.store()).is_empty());
}

/// Mount options reach the kernel: a btrfs subvolume (made by btrfs.subvol through a mount)
/// mounted by `subvol` with `compress`, and a `readonly` mount that refuses writes.
#[test]
fn btrfs_subvol_and_readonly_mount_options() {
    let env = Env::new();
    let mnt = |opts: Value| json!([{"name": "fs", "type": "org.osbuild.btrfs", "source": "device", "target": "/", "options": opts}]);
    let base = vec![
        json!({"type": "org.osbuild.truncate", "options": {"filename": "fs.img", "size": "268435456"}}),
        json!({"type": "org.osbuild.mkfs.btrfs", "devices": loopback("fs.img"), "options": {"uuid": "4b4b3a6c-6f0e-4a59-9a1b-1e2d3c4b5a69", "label": "data"}}),
        json!({"type": "org.osbuild.btrfs.subvol", "devices": loopback("fs.img"), "mounts": mnt(json!({})), "options": {"subvolumes": [{"name": "/root"}, {"name": "/home"}]}}),
        json!({"type": "org.osbuild.mkdir", "devices": loopback("fs.img"), "mounts": mnt(json!({"subvol": "root", "compress": "zstd:1"})),
               "options": {"paths": [{"path": "mount://fs/in-root-subvol"}]}}),
    ];
    let m = json!({"version": "2", "pipelines": [{"name": "image", "stages": base.clone()}]});
    ok(&env.run(&env.write_manifest("m.json", &m), &["--export", "image"]));
    let img = env.out().join("image/fs.img");
    // Read back through a read-only loop mount of the top-level subvolume (id 5).
    let listing = run(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-ec"]).arg(format!(
        "d=$(mktemp -d); mount -o ro,loop,subvolid=5 {} $d; ls $d $d/root; btrfs subvolume list $d; umount $d; rmdir $d",
        img.display()
    )));
    assert!(listing.contains("in-root-subvol"), "{listing}");
    assert!(listing.contains("path root") && listing.contains("path home"), "{listing}");

    let mut ro = base.clone();
    ro.push(
        json!({"type": "org.osbuild.mkdir", "devices": loopback("fs.img"), "mounts": mnt(json!({"readonly": true})),
                   "options": {"paths": [{"path": "mount://fs/must-fail"}]}}),
    );
    let m = json!({"version": "2", "pipelines": [{"name": "image", "stages": ro}]});
    let out = env.run(&env.write_manifest("ro.json", &m), &["--export", "image"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(loops_backed_under(&env.store()).is_empty());
}

/// The other v1 assemblers: `tar` (compressed, with the tree's files) and `rawfs` (a bare ext4
/// image with the given UUID holding the tree), and `noop`.
#[test]
fn v1_tar_rawfs_and_noop_assemblers() {
    let env = Env::new();
    let stages = json!([{"name": "org.osbuild.mkdir", "options": {"paths": [{"path": "/etc"}]}},
                        {"name": "org.osbuild.hostname", "options": {"hostname": "v1-assembled"}}]);
    let build = |name: &str, assembler: Value| {
        let m = env
            .write_manifest(&format!("{name}.json"), &json!({"pipeline": {"stages": stages, "assembler": assembler}}));
        let out = env.path(&format!("out-{name}"));
        let o = Command::new(bin())
            .arg("--store")
            .arg(env.store())
            .arg("--output-directory")
            .arg(&out)
            .args(["--export", "assembler"])
            .arg(&m)
            .output()
            .unwrap();
        ok(&o);
        out.join("assembler")
    };
    let out =
        build("tar", json!({"name": "org.osbuild.tar", "options": {"filename": "tree.tar.xz", "compression": "xz"}}));
    let list = run(Command::new("tar").arg("-tJf").arg(out.join("tree.tar.xz")));
    assert!(list.lines().any(|l| l == "./etc/hostname"), "{list}");

    let out = build(
        "rawfs",
        json!({"name": "org.osbuild.rawfs", "options": {
        "filename": "root.ext4", "root_fs_uuid": "2fd2a7ba-8b94-4d8e-8c59-0e9cbbd0d6bd", "size": 67108864}}),
    );
    let img = out.join("root.ext4");
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 67108864);
    assert_eq!(blkid_at(&img, 0)["UUID"], "2fd2a7ba-8b94-4d8e-8c59-0e9cbbd0d6bd");
    assert_eq!(ext4_cat(&img, 0, "/etc/hostname"), "v1-assembled\n");
    assert!(!out.join(".osbuild-rawfs-mnt").exists());

    let out = build("noop", json!({"name": "org.osbuild.noop"}));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "noop assembles nothing");
    assert!(loops_backed_under(&env.store()).is_empty());
}

/// A tree with what root file systems hold: modes, owners, set-uid, a symlink, a hard link, an
/// empty directory, a fifo, a device node, xattrs (user and security.capability), a large and
/// a sparse file, names with spaces.
fn rich_tree(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("home/test/empty dir")).unwrap();
    std::fs::write(root.join("usr/bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    mode(&root.join("usr/bin/tool"), 0o4755);
    std::fs::write(root.join("home/test/secret"), "s3cret").unwrap();
    mode(&root.join("home/test/secret"), 0o600);
    mode(&root.join("home/test/empty dir"), 0o700);
    std::os::unix::fs::chown(root.join("home/test"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(root.join("home/test/secret"), Some(1000), Some(5)).unwrap();
    std::os::unix::fs::symlink("../usr/bin/tool", root.join("home/test/link to tool")).unwrap();
    std::fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-again")).unwrap();
    std::fs::write(root.join("usr/bin/large"), (0..3_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
        .unwrap();
    let sparse = std::fs::File::create(root.join("usr/bin/sparse")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    run(Command::new("mkfifo").arg(root.join("home/test/fifo")));
    run(Command::new("mknod").arg(root.join("home/test/null")).args(["c", "1", "3"]));
    xattr::set(root.join("home/test/secret"), "user.origin", b"osbuild-rs").unwrap();
    // cap_net_raw+ep, as iputils' postinst sets on ping
    let cap = [0u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    xattr::set(root.join("usr/bin/tool-again"), "security.capability", &cap).unwrap();
}

/// `org.osbuild-rs.mkfs.ext4.tree` (osbuild-rs extension): the file system it writes from a tree
/// passes `e2fsck -f` and, mounted read-only by the kernel, holds exactly the tree (paths,
/// types, modes, owners, content, link targets, xattrs, mtimes, hard links). Its root directory
/// also holds `lost+found` and carries the file system's time (the source epoch).
#[test]
fn ext4_from_a_tree_is_the_tree_for_the_kernel_and_for_fsck() {
    let env = Env::new();
    let dir = env.path("work");
    let src = dir.join("input");
    rich_tree(&src);
    std::fs::create_dir_all(dir.join("tree")).unwrap();
    run(Command::new("truncate").args(["-s", "64M"]).arg(dir.join("fs.img")));
    let args = json!({"tree": dir.join("tree"), "meta": {"id": "0".repeat(64), "source-epoch": 1_700_000_000},
        "options": {"uuid": "9a1d4e0c-5f3b-4d8e-9c61-0b7f2a6d3e15", "label": "root"},
        "devices": {"device": {"path": "fs.img"}}, "paths": {"devices": dir},
        "inputs": {"tree": {"path": src}}});
    std::fs::write(dir.join("arguments.json"), serde_json::to_vec(&args).unwrap()).unwrap();
    let code = osbuild_rs::stages::run_stage_from_file(
        "org.osbuild-rs.mkfs.ext4.tree",
        &dir.join("arguments.json"),
        &dir.join("meta.json"),
    );
    assert_eq!(code, 0);
    let fsck = Command::new("e2fsck").arg("-fn").arg(dir.join("fs.img")).output().unwrap();
    assert!(fsck.status.success(), "e2fsck -fn: {}", String::from_utf8_lossy(&fsck.stdout));

    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run(Command::new("mount").args(["-o", "loop,ro"]).arg(dir.join("fs.img")).arg(&mnt));
    let (want, got) = (treediff::snapshot(&src), treediff::snapshot(&mnt));
    let meta = |root: &Path| -> Vec<(String, i64, u64)> {
        use std::os::unix::fs::MetadataExt;
        walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap())
            // the root holds lost+found too and carries the file system's time (the epoch)
            .filter(|e| e.depth() > 0 && e.file_name() != "lost+found")
            .map(|e| {
                let m = e.path().symlink_metadata().unwrap();
                (e.path().strip_prefix(root).unwrap().display().to_string(), m.mtime(), m.nlink())
            })
            .collect()
    };
    let (want_meta, got_meta) = (meta(&src), meta(&mnt));
    let same_inode = {
        use std::os::unix::fs::MetadataExt;
        let a = mnt.join("usr/bin/tool").metadata().unwrap().ino();
        a == mnt.join("usr/bin/tool-again").metadata().unwrap().ino()
    };
    run(Command::new("umount").arg(&mnt));
    let mut got = got;
    assert!(got.remove("/lost+found").is_some(), "mkfs.ext4 makes lost+found");
    for (path, entry) in &want {
        assert_eq!(Some(entry), got.get(path), "{path}");
    }
    assert_eq!(want.len(), got.len(), "{:?}", got.keys().filter(|k| !want.contains_key(*k)).collect::<Vec<_>>());
    assert!(want["/usr/bin/tool-again"].fields.contains_key("xattrs"), "the tree has the capability");
    assert_eq!(want_meta, got_meta, "mtimes and link counts");
    assert!(same_inode, "a hard link stays one inode");
}

/// Build `manifest`'s `image` export into store `store<i>` (fresh for each `i`); returns the
/// output directory `out<i>`.
fn build_in_fresh_store(env: &Env, manifest: &Path, i: usize) -> PathBuf {
    let out = env.path(&format!("out{i}"));
    let o = Command::new(bin())
        .arg("--store")
        .arg(env.path(&format!("store{i}")))
        .arg("--output-directory")
        .arg(&out)
        .args(["--export", "image"])
        .arg(manifest)
        .output()
        .unwrap();
    ok(&o);
    out
}

/// The same manifest with a `source-epoch`, built in two fresh stores at different times, gives
/// the same disk image byte for byte when its file system comes from
/// `org.osbuild-rs.mkfs.ext4.tree` (a loop device, as the engine attaches it).
#[test]
fn ext4_from_a_tree_through_the_engine_is_reproducible() {
    let env = Env::new();
    let (sum, item) = inline_item(b"hello from the tree\n");
    let m = json!({"version": "2", "sources": {"org.osbuild.inline": {"items": {sum.clone(): item}}}, "pipelines": [
    {"name": "tree", "source-epoch": 1_700_000_000, "stages": [
        mkdir("/etc/app"),
        {"type": "org.osbuild.copy", "inputs": {"file": {"type": "org.osbuild.files", "origin": "org.osbuild.source",
            "references": {sum.clone(): {}}}},
         "options": {"paths": [{"from": format!("input://file/{sum}"), "to": "tree:///etc/app/greeting"}]}}
    ]},
    {"name": "image", "source-epoch": 1_700_000_000, "stages": [
        {"type": "org.osbuild.truncate", "options": {"filename": "disk.img", "size": "33554432"}},
        {"type": "org.osbuild-rs.mkfs.ext4.tree", "inputs": {"tree": tree_input("tree")},
         "devices": loopback("disk.img"), "options": {"uuid": "9a1d4e0c-5f3b-4d8e-9c61-0b7f2a6d3e15"}}
    ]}]});
    let manifest = env.write_manifest("m.json", &m);
    let mut sums = vec![];
    for i in 0..2 {
        let img = build_in_fresh_store(&env, &manifest, i).join("image/disk.img");
        assert_eq!(ext4_cat(&img, 0, "/etc/app/greeting"), "hello from the tree\n");
        sums.push(sha256(&std::fs::read(&img).unwrap()));
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(sums[0], sums[1], "two builds of the image differ");
    assert!(loops_backed_under(&env.store()).is_empty());
}

/// `org.osbuild-rs.mkfs.fat.tree` through the engine, as the installer ISO makes its
/// `efiboot.img`: a truncated file, a loop device, the tree written in by mtools. Read back with
/// mtools and fsck.fat (the kernel here cannot mount vfat); a rebuild in a fresh store seconds
/// later has the same bytes; a tree with a symlink fails naming it, and no loop device is left.
#[test]
fn fat_from_a_tree_through_the_engine() {
    let env = Env::new();
    let (sum, item) = inline_item(b"set timeout=5\n");
    let tree = |extra: Vec<serde_json::Value>| {
        let mut stages = vec![
            mkdir("/EFI/BOOT/fonts"),
            json!({"type": "org.osbuild.copy", "inputs": {"file": {"type": "org.osbuild.files",
                "origin": "org.osbuild.source", "references": {sum.clone(): {}}}},
             "options": {"paths": [{"from": format!("input://file/{sum}"), "to": "tree:///EFI/BOOT/grub.cfg"}]}}),
        ];
        stages.extend(extra);
        json!({"name": "efiboot-tree", "source-epoch": 1_700_000_000, "stages": stages})
    };
    let image = json!({"name": "image", "source-epoch": 1_700_000_000, "stages": [
        {"type": "org.osbuild.truncate", "options": {"filename": "efiboot.img", "size": "8M"}},
        {"type": "org.osbuild-rs.mkfs.fat.tree", "inputs": {"tree": tree_input("efiboot-tree")},
         "devices": loopback("efiboot.img"), "options": {"volid": "6f736269", "label": "EFIBOOT"}}
    ]});
    let sources = json!({"org.osbuild.inline": {"items": {sum.clone(): item}}});
    let manifest =
        env.write_manifest("m.json", &json!({"version": "2", "sources": sources, "pipelines": [tree(vec![]), image]}));
    let mut sums = vec![];
    for i in 0..2 {
        let img = build_in_fresh_store(&env, &manifest, i).join("image/efiboot.img");
        let info = run(Command::new("minfo").arg("-i").arg(&img).arg("::"));
        assert!(info.contains("serial number: 6F736269") && info.contains("disk label=\"EFIBOOT"), "{info}");
        assert_eq!(run(Command::new("mtype").arg("-i").arg(&img).arg("::/EFI/BOOT/grub.cfg")), "set timeout=5\n");
        assert!(run(Command::new("mdir").arg("-i").arg(&img).args(["-b", "::/EFI/BOOT"])).contains("fonts"));
        run(Command::new("fsck.fat").arg("-n").arg(&img));
        sums.push(sha256(&std::fs::read(&img).unwrap()));
        // FAT keeps times in 2-second steps
        std::thread::sleep(Duration::from_millis(2100));
    }
    assert_eq!(sums[0], sums[1], "two builds of the FAT image differ");

    // a symlink out of the tree: refused, naming it (mcopy would copy what it points at)
    let link = json!({"type": "org.osbuild.ln", "options": {"paths": [
        {"target": "/etc/shadow", "link_name": "tree:///EFI/BOOT/leak", "symbolic": true}]}});
    let image = json!({"name": "image", "stages": [
        {"type": "org.osbuild.truncate", "options": {"filename": "efiboot.img", "size": "8M"}},
        {"type": "org.osbuild-rs.mkfs.fat.tree", "inputs": {"tree": tree_input("efiboot-tree")},
         "devices": loopback("efiboot.img"), "options": {"volid": "6f736269"}}
    ]});
    let bad = env.write_manifest(
        "bad.json",
        &json!({"version": "2", "sources": sources, "pipelines": [tree(vec![link]), image]}),
    );
    let out = env.run(&bad, &["--export", "image"]);
    assert!(!out.status.success());
    let err = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        err.contains("EFI/BOOT/leak is a symlink: a FAT file system holds only directories and regular files"),
        "{err}"
    );
    assert!(err.contains("stage org.osbuild-rs.mkfs.fat.tree"), "{err}");
    assert!(loops_backed_under(&env.store()).is_empty());
}

/// The image file systems of issue 14 end to end: `org.osbuild.squashfs` and `org.osbuild.erofs`
/// pack a tree into image files, and the `org.osbuild.squashfs` / `org.osbuild.erofs` mounts
/// (read-only, from a loop device) give it back to a stage.
#[test]
fn squashfs_and_erofs_images_mount_read_only_with_the_tree() {
    let env = Env::new();
    let (sum, item) = inline_item(b"packed\n");
    let m = json!({"version": "2", "sources": {"org.osbuild.inline": {"items": {sum.clone(): item}}}, "pipelines": [
    {"name": "tree", "stages": [
        mkdir("/etc"),
        {"type": "org.osbuild.copy", "inputs": {"file": {"type": "org.osbuild.files", "origin": "org.osbuild.source",
            "references": {sum.clone(): {}}}},
         "options": {"paths": [{"from": format!("input://file/{sum}"), "to": "tree:///etc/packed"}]}}
    ]},
    {"name": "images", "stages": [
        {"type": "org.osbuild.squashfs", "inputs": {"tree": tree_input("tree")}, "options": {"filename": "fs.squashfs"}},
        {"type": "org.osbuild.erofs", "inputs": {"tree": tree_input("tree")}, "options": {"filename": "fs.erofs"}},
        {"type": "org.osbuild.copy",
         "devices": {"sq": {"type": "org.osbuild.loopback", "options": {"filename": "fs.squashfs"}},
                     "ero": {"type": "org.osbuild.loopback", "options": {"filename": "fs.erofs"}}},
         "mounts": [{"name": "sq", "type": "org.osbuild.squashfs", "source": "sq", "target": "/sq"},
                    {"name": "ero", "type": "org.osbuild.erofs", "source": "ero", "target": "/ero"}],
         "options": {"paths": [{"from": "mount://sq/etc/packed", "to": "tree:///from-squashfs"},
                               {"from": "mount://ero/etc/packed", "to": "tree:///from-erofs"}]}}
    ]}]});
    let out = env.run(&env.write_manifest("m.json", &m), &["--export", "images"]);
    ok(&out);
    for f in ["from-squashfs", "from-erofs"] {
        assert_eq!(std::fs::read_to_string(env.out().join("images").join(f)).unwrap(), "packed\n", "{f}");
    }
    assert!(loops_backed_under(&env.store()).is_empty());
    assert!(host_mounts_with(&env.dir.path().to_string_lossy()).is_empty());

    // read-only: a stage cannot write into the image
    let mut m = m;
    m["pipelines"][1]["stages"][2]["options"] = json!({"paths": [{"from": "tree:///fs.erofs", "to": "mount://sq/x"}]});
    let out = env.run(&env.write_manifest("m2.json", &m), &["--export", "images"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Read-only file system"), "{text}");
}
