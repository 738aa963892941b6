//! The disk stages run as the engine runs them (an arguments document, `run_stage_from_file`)
//! with the options of upstream's test manifests from the compat corpus, on image files and
//! on real loop devices, checked against what upstream's tests expect of the images.
//!
//! Needs root (loop devices, mounting btrfs) and the tools: fdisk, gdisk, parted,
//! dosfstools, e2fsprogs, btrfs-progs, qemu-utils.

#[path = "common/compat.rs"]
mod compat;

use osbuild_rs::stages::run_stage_from_file;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tool(name: &str, args: &[&str], package: &str) -> String {
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name} ({e}): install the Debian package {package}"));
    assert!(out.status.success(), "{name} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Run `stage` with an arguments document in `dir`; panics with the stage's exit code.
fn run_stage(dir: &Path, stage: &str, options: &Value, extra: Value) {
    let tree = dir.join("tree");
    fs::create_dir_all(&tree).unwrap();
    let mut args = json!({"tree": tree, "options": options, "meta": {"id": "0".repeat(64)}});
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    let path = dir.join("arguments.json");
    fs::write(&path, serde_json::to_vec(&args).unwrap()).unwrap();
    let code = run_stage_from_file(stage, &path, &dir.join("meta.json"));
    assert_eq!(code, 0, "{stage} failed with {options}");
}

/// `sfdisk --json` of the image `name` in `dir` (run there, so nodes are `name<N>`).
fn table(dir: &Path, name: &str) -> Value {
    let out = Command::new("sfdisk").arg("--json").arg(name).current_dir(dir).output().expect("sfdisk (fdisk)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["partitiontable"].clone()
}

/// (start, size, type, name, attrs) of each partition.
fn parts(table: &Value) -> Vec<(u64, u64, String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    table["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap(), s(&p["type"]), s(&p["name"]), s(&p["attrs"]))
        })
        .collect()
}

fn sparse(dir: &Path, name: &str, size: u64) {
    fs::File::create(dir.join(name)).unwrap().set_len(size).unwrap();
}

fn t(start: u64, size: u64, ty: &str, name: &str, attrs: &str) -> (u64, u64, String, String, String) {
    (start, size, ty.into(), name.into(), attrs.into())
}

/// The partition table the first `stage` of the compat manifest `file` writes on a new
/// sparse 10 GiB image.
fn compat_table(file: &str, stage: &str) -> Value {
    let doc = compat::manifest(file);
    let st = compat::stages_of(&doc, stage)[0];
    let d = tempfile::tempdir().unwrap();
    sparse(d.path(), "disk.img", 10 << 30);
    let devices = json!({"devices": {"device": {"path": "disk.img"}}, "paths": {"devices": d.path()}});
    run_stage(d.path(), stage, &st["options"], devices);
    table(d.path(), "disk.img")
}

#[test]
fn sgdisk_compat_layout_matches_upstream() {
    let pt = compat_table("test__data__stages__sgdisk__sgdisk.json", "org.osbuild.sgdisk");
    assert_eq!(pt["id"], "68AD7ADE-3FA7-4844-8B2F-1C4CD30BEF70");
    assert_eq!((pt["firstlba"].as_u64(), pt["lastlba"].as_u64()), (Some(34), Some(20971486)));
    assert_eq!(
        parts(&pt),
        [
            t(2048, 1024000, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System Partition", "LegacyBIOSBootable"),
            t(1026048, 1024000, "BC13C2FF-59E6-4262-A352-B275FD6F7172", "boot", "LegacyBIOSBootable"),
            t(2050048, 4096, "FAC7F1FB-3E8D-4137-A512-961DE09A5549", "BIOS boot", ""),
            t(2054144, 18917343, "E6D6D379-F507-44C2-A23C-238F2A3DF928", "LVM", ""),
        ]
    );
    assert_eq!(pt["partitions"][3]["uuid"], "646E1B09-9358-4A9C-B630-E3C0C296F7C6");
    assert_eq!(pt["partitions"][0]["node"], "disk.img1");
}

#[test]
fn parted_compat_layout_matches_upstream() {
    let pt = compat_table("test__data__stages__parted__parted.json", "org.osbuild.parted");
    assert_eq!((pt["label"].as_str(), pt["lastlba"].as_u64()), (Some("gpt"), Some(20971486)));
    assert_eq!(
        parts(&pt),
        [
            // parted's `boot` flag on GPT makes the ESP; `bios_grub` the BIOS boot type
            t(2048, 1024000, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System Partition", ""),
            t(1026048, 1024000, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "boot", ""),
            t(2050048, 4096, "21686148-6449-6E6F-744E-656564454649", "BIOS boot", ""),
            t(2054144, 18917343, "E6D6D379-F507-44C2-A23C-238F2A3DF928", "LVM", ""),
        ]
    );
}

/// A loop device over part of an image, detached on drop.
struct Loop(String);

impl Loop {
    fn attach(image: &Path, start: u64, size: u64) -> Loop {
        let out = Command::new("losetup")
            .args([
                "--find",
                "--show",
                "--offset",
                &(start * 512).to_string(),
                "--sizelimit",
                &(size * 512).to_string(),
            ])
            .arg(image)
            .output()
            .expect("losetup (mount)");
        assert!(
            out.status.success(),
            "this test needs root and loop devices: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_owned())
    }

    /// Its name below /dev, as the engine hands it to a stage.
    fn name(&self) -> &str {
        self.0.strip_prefix("/dev/").unwrap()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn blkid(dev: &str) -> Value {
    let text = tool("blkid", &["-p", "-o", "export", dev], "util-linux");
    let map: serde_json::Map<String, Value> =
        text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), json!(v))).collect();
    Value::Object(map)
}

/// Upstream's fedora-boot-btrfs image pipeline, disk part: partition, make the file systems on
/// loop devices over the partitions, create the btrfs subvolumes, then convert to qcow2.
#[test]
fn fedora_boot_btrfs_disk_on_loop_devices() {
    let doc = compat::manifest("test__data__manifests__fedora-boot-btrfs.json");
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("disk.img");
    let size: u64 = compat::stages_of(&doc, "org.osbuild.truncate")
        .iter()
        .find(|s| s["options"]["filename"] == "disk.img")
        .map(|s| s["options"]["size"].as_str().unwrap().parse().unwrap())
        .unwrap();
    sparse(d.path(), "disk.img", size);

    let st = compat::stages_of(&doc, "org.osbuild.sfdisk")[0];
    let whole = Loop::attach(&img, 0, size / 512);
    run_stage(
        d.path(),
        "org.osbuild.sfdisk",
        &st["options"],
        json!({"devices": {"device": {"path": whole.name()}}, "paths": {"devices": "/dev"}}),
    );
    drop(whole);
    let pt = table(d.path(), "disk.img");
    assert_eq!(pt["id"], "D209C89E-EA5E-4FBD-B161-B461CCE297E0");
    let got: Vec<(u64, u64)> = parts(&pt).iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(got, [(2048, 2048), (4096, 409600), (413696, 1024000), (1437696, 9048031)]);
    assert_eq!(pt["partitions"][3]["uuid"], "6264D520-3FB9-423F-8AB8-7A0A8E3D3562");

    let mut root_loop = None;
    for ty in ["org.osbuild.mkfs.fat", "org.osbuild.mkfs.ext4", "org.osbuild.mkfs.btrfs"] {
        let st = compat::stages_of(&doc, ty)[0];
        let o = &st["devices"]["device"]["options"];
        let dev = Loop::attach(&img, o["start"].as_u64().unwrap(), o["size"].as_u64().unwrap());
        run_stage(
            d.path(),
            ty,
            &st["options"],
            json!({"devices": {"device": {"path": dev.name()}}, "paths": {"devices": "/dev"}}),
        );
        let id = blkid(&dev.0);
        match ty {
            "org.osbuild.mkfs.fat" => {
                assert_eq!((id["TYPE"].as_str(), id["UUID"].as_str()), (Some("vfat"), Some("7B77-95E7")))
            }
            "org.osbuild.mkfs.ext4" => {
                assert_eq!(id["TYPE"], "ext4");
                assert_eq!(id["UUID"], "0194fdc2-fa2f-4cc0-81d3-ff12045b73c8");
                assert_eq!(id["LABEL"], "boot");
            }
            _ => {
                assert_eq!(id["TYPE"], "btrfs");
                assert_eq!(id["UUID"], "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75");
                assert_eq!(id["LABEL"], "root");
                root_loop = Some(dev);
            }
        }
    }

    let root = root_loop.unwrap();
    let mnt = d.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount").args(["-t", "btrfs", &root.0]).arg(&mnt).status().unwrap().success();
    assert!(ok, "mounting the btrfs loop device failed (needs root)");
    let mounted = Mount(mnt.clone());
    let st = compat::stages_of(&doc, "org.osbuild.btrfs.subvol")[0];
    run_stage(
        d.path(),
        "org.osbuild.btrfs.subvol",
        &st["options"],
        json!({"mounts": {"volume": {"path": mnt}}, "paths": {"mounts": mnt}}),
    );
    let list = tool("btrfs", &["subvolume", "list", mnt.to_str().unwrap()], "btrfs-progs");
    let names: Vec<&str> = list.lines().filter_map(|l| l.split(" path ").nth(1)).collect();
    assert_eq!(names, ["root", "home"], "{list}");
    let chunks = tool("btrfs", &["inspect-internal", "dump-tree", "-t", "chunk", &root.0], "btrfs-progs");
    assert!(chunks.contains("METADATA|DUP"), "metadata dup: {chunks}");
    drop(mounted);
    drop(root);

    // the whole disk, as qcow2 (compressed by default)
    let input = json!({"image": {"path": d.path(), "data": {"files": {"disk.img": {}}}}});
    run_stage(
        d.path(),
        "org.osbuild.qemu",
        &json!({"filename": "disk.qcow2", "format": {"type": "qcow2", "compat": "1.1"}}),
        json!({"inputs": input}),
    );
    let q = d.path().join("tree/disk.qcow2");
    let info: Value =
        serde_json::from_str(&tool("qemu-img", &["info", "--output=json", q.to_str().unwrap()], "qemu-utils")).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"].as_u64(), Some(size));
    tool(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "qcow2", img.to_str().unwrap(), q.to_str().unwrap()],
        "qemu-utils",
    );
}

/// The conversions of upstream's qemu stage test on a 100 MiB raw image, with the results
/// its checks expect (a fixed VHD probes as raw: data plus a 512-byte footer; without
/// `force_size` the size is rounded up to whole CHS geometry).
#[test]
fn qemu_formats_as_upstream_checks() {
    let d = tempfile::tempdir().unwrap();
    sparse(d.path(), "image.raw", 104857600);
    let input = json!({"inputs": {"image": {"path": d.path(), "data": {"files": {"image.raw": {}}}}}});
    let cases = [
        (json!({"type": "qcow2"}), "qcow2", None, None),
        (json!({"type": "qcow2", "compat": "1.1"}), "qcow2", None, Some(("compat", "1.1"))),
        (json!({"type": "vdi"}), "vdi", None, None),
        (json!({"type": "vmdk"}), "vmdk", None, None),
        (
            json!({"type": "vmdk", "subformat": "streamOptimized"}),
            "vmdk",
            None,
            Some(("create-type", "streamOptimized")),
        ),
        (json!({"type": "vmdk", "compat6": true, "adapter_type": "lsilogic"}), "vmdk", None, None),
        (json!({"type": "vpc"}), "raw", Some(104858112), None),
        (json!({"type": "vpc", "force_size": false}), "raw", Some(104866304), None),
        (json!({"type": "vhdx"}), "vhdx", None, None),
    ];
    for (i, (format, probed, vsize, specific)) in cases.into_iter().enumerate() {
        let name = format!("image-{i}");
        run_stage(d.path(), "org.osbuild.qemu", &json!({"filename": name, "format": format}), input.clone());
        let out = d.path().join("tree").join(&name);
        let info: Value =
            serde_json::from_str(&tool("qemu-img", &["info", "--output=json", out.to_str().unwrap()], "qemu-utils"))
                .unwrap();
        assert_eq!(info["format"], probed, "{format}: {info}");
        assert_eq!(info["virtual-size"].as_u64(), Some(vsize.unwrap_or(104857600)), "{format}: {info}");
        if let Some((k, v)) = specific {
            assert_eq!(info["format-specific"]["data"][k], v, "{format}: {info}");
        }
    }
}
