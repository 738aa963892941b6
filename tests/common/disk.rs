//! Disk image helpers for the device/mount tests: what the kernel has attached, what a disk
//! image holds (read with sfdisk, blkid, debugfs and qemu-img, never by mounting on the host).

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Loop devices whose backing file lies under `dir`.
pub fn loops_backed_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = vec![];
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
            if b.contains(&needle) {
                found.push(format!("{name}: {}", b.trim()));
            }
        }
    }
    found
}

/// Every mount in the host's mount table whose source or target mentions `needle`.
pub fn host_mounts_with(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/1/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (run `make deps`)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sfdisk_json(image: &Path) -> Value {
    serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(image))).unwrap()
}

pub fn qemu_img_info(image: &Path) -> Value {
    serde_json::from_str(&run(Command::new("qemu-img").args(["info", "--output=json"]).arg(image))).unwrap()
}

/// `blkid` probe of the file system at byte `offset` of `image`: TYPE, UUID, LABEL, ...
pub fn blkid_at(image: &Path, offset: u64) -> std::collections::BTreeMap<String, String> {
    let out = run(Command::new("blkid").args(["-p", "-o", "export", "-O", &offset.to_string()]).arg(image));
    out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// A file's content from the ext4 file system at byte `offset` of `image` (debugfs, read-only).
pub fn ext4_cat(image: &Path, offset: u64, path: &str) -> String {
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(format!("{}?offset={offset}", image.display())))
}

/// Convert any image qemu-img understands to raw, beside it.
pub fn to_raw(image: &Path) -> std::path::PathBuf {
    let raw = image.with_extension("raw");
    run(Command::new("qemu-img").args(["convert", "-O", "raw"]).arg(image).arg(&raw));
    raw
}

/// Partition `n` (1-based) of the table `t` as (start byte, size bytes).
pub fn part_range(t: &Value, n: usize) -> (u64, u64) {
    let p = &t["partitiontable"]["partitions"][n - 1];
    (p["start"].as_u64().unwrap() * 512, p["size"].as_u64().unwrap() * 512)
}

/// A file from the file system at (`offset`, `size`) of `image`, through a read-only loop mount
/// in a private mount namespace that dies with the command (for xfs, which debugfs cannot read;
/// `nouuid`, since a concurrent test may have an xfs with the same UUID mounted).
pub fn loop_cat(image: &Path, offset: u64, size: u64, path: &str) -> String {
    let script = format!(
        "d=$(mktemp -d); mount -o ro,norecovery,nouuid,loop,offset={offset},sizelimit={size} {} $d; cat $d{path} || true; umount $d; rmdir $d",
        image.display()
    );
    // mount(8) may pick (or reuse) a loop device the kernel is still releasing from the previous
    // call (autoclear is asynchronous): try again briefly.
    for _ in 0..10 {
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-ec"])
            .arg(&script)
            .output()
            .unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    run(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-ec"]).arg(&script))
}

/// `len` bytes of `path` from `offset`.
pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).unwrap();
    buf
}
