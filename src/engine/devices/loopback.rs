//! `org.osbuild.loopback`: a loop device over an image file of the tree, or a byte range of it
//! (`start`/`size` in sectors of `sector-size` bytes).
//!
//! The image is opened inside the tree (`RESOLVE_IN_ROOT`), must be a regular file (never a
//! device node the tree made, nor anything on the host), and the loop device is attached to
//! that open file. Offsets are computed with checked arithmetic: a range the kernel cannot
//! express (beyond 2^63 bytes) or that starts past the end of the image is an error, never a
//! wrap-around to some other place in the image.

use super::{Context, DeviceError, DeviceService, OpenDevice};
use crate::engine::host_tool;
use crate::engine::number::whole;
use crate::manifest::Device;
use osbuild_sys::{fd_path, reopen, LoopDevice, LoopOptions, PathError};
use rustix::fs::OFlags;
use serde::Deserialize;
use serde_json::{json, Number, Value};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Loopback;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopbackOptions {
    filename: String,
    start: Option<Number>,
    size: Option<Number>,
    #[serde(rename = "sector-size")]
    sector_size: Option<Number>,
    #[serde(default)]
    lock: bool,
    #[serde(default, rename = "read-only")]
    read_only: bool,
    #[serde(default)]
    partscan: bool,
}

/// The largest offset or end the kernel's `loff_t` can hold.
const MAX_BYTES: u64 = i64::MAX as u64;
const DEFAULT_SECTOR: u64 = 512;

/// The part of the image a device covers, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    /// 0: up to the end of the image.
    pub sizelimit: u64,
    pub block_size: u32,
}

/// `start`, `size` (sectors) and `sector-size` (bytes) of an image of `len` bytes, as bytes.
pub fn byte_range(
    start: Option<u64>,
    size: Option<u64>,
    sector: Option<u64>,
    len: u64,
) -> Result<ByteRange, DeviceError> {
    let invalid = |field: &'static [&'static str], message: String| DeviceError::Invalid { field, message };
    let sector = sector.unwrap_or(DEFAULT_SECTOR);
    if !sector.is_power_of_two() || !(512..=65536).contains(&sector) {
        return Err(invalid(
            &["options", "sector-size"],
            format!("{sector} is not a sector size (a power of two from 512 to 65536)"),
        ));
    }
    let start = start.unwrap_or(0);
    let offset = start.checked_mul(sector).filter(|o| *o <= MAX_BYTES).ok_or_else(|| {
        invalid(
            &["options", "start"],
            format!("sector {start} of {sector} bytes is beyond the largest offset (2^63 bytes)"),
        )
    })?;
    if offset > len {
        return Err(invalid(
            &["options", "start"],
            format!("sector {start} (byte {offset}) is past the end of the image ({len} bytes)"),
        ));
    }
    let sizelimit = match size {
        None => len - offset,
        Some(size) => size
            .checked_mul(sector)
            .filter(|s| offset.checked_add(*s).is_some_and(|end| end <= MAX_BYTES))
            .ok_or_else(|| {
            invalid(
                &["options", "size"],
                format!("{size} sectors of {sector} bytes from byte {offset} end beyond 2^63 bytes"),
            )
        })?,
    };
    Ok(ByteRange { offset, sizelimit, block_size: sector as u32 })
}

/// A count from the manifest (see [`whole`]), or an error naming the option.
fn count(n: &Option<Number>, field: &'static [&'static str]) -> Result<Option<u64>, DeviceError> {
    let Some(n) = n else { return Ok(None) };
    whole(n)
        .map(Some)
        .ok_or_else(|| DeviceError::Invalid { field, message: format!("{n} is not a whole number from 0 to 2^64-1") })
}

impl DeviceService for Loopback {
    const NAME: &'static str = "org.osbuild.loopback";
    type Options = LoopbackOptions;

    fn open(cx: &Context<'_>, device: &Device, o: LoopbackOptions) -> Result<Box<dyn OpenDevice>, DeviceError> {
        if device.parent.is_some() {
            return Err(DeviceError::Invalid { field: &["parent"], message: "loopback devices take no parent".into() });
        }
        let start = count(&o.start, &["options", "start"])?;
        let size = count(&o.size, &["options", "size"])?;
        let sector = count(&o.sector_size, &["options", "sector-size"])?;

        let image = cx.tree.open_path(&o.filename, true).map_err(DeviceError::Image)?;
        let image_err = |source: std::io::Error| {
            DeviceError::Image(PathError {
                op: "use",
                root: cx.tree.path().to_owned(),
                path: o.filename.clone(),
                source,
            })
        };
        let st = rustix::fs::fstat(&image).map_err(|e| image_err(e.into()))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(image_err(std::io::Error::other("not a regular file")));
        }
        let access = if o.read_only { OFlags::RDONLY } else { OFlags::RDWR };
        let file = File::from(reopen(image.as_fd(), access).map_err(image_err)?);
        let len = file.metadata().map_err(image_err)?.len();
        let range = byte_range(start, size, sector, len)?;
        let name = fd_path(image.as_fd()).unwrap_or_else(|_| cx.tree.path().join(&o.filename));
        let options = LoopOptions {
            offset: range.offset,
            sizelimit: range.sizelimit,
            block_size: range.block_size,
            read_only: o.read_only,
            partscan: o.partscan,
            lock: o.lock,
        };
        let lo = LoopDevice::attach_file(file, &name, &options, Path::new("/dev"), false)?;
        Ok(Box::new(Attached { lo, options, partitions: Vec::new() }))
    }
}

struct Attached {
    lo: LoopDevice,
    options: LoopOptions,
    /// Loop devices made for partitions (the kernel here makes no `loopNpM` nodes).
    partitions: Vec<LoopDevice>,
}

impl OpenDevice for Attached {
    fn node(&self) -> PathBuf {
        self.lo.host_path()
    }

    fn args(&self) -> Value {
        json!({
            "path": format!("{}/{}", crate::engine::attach::DEVICES_MAPPED, self.lo.name()),
            "node": { "major": self.lo.major(), "minor": self.lo.minor() },
        })
    }

    /// Partition `n`'s own loop device over the same image and byte range (what upstream's
    /// manifests do with `start`/`size`), unless the kernel scanned this device's table for us.
    fn partition(&mut self, n: u64) -> Result<PathBuf, DeviceError> {
        let node = PathBuf::from(format!("{}p{n}", self.lo.host_path().display()));
        if self.options.partscan && kernel_partition(&node) {
            return Ok(node);
        }
        let (start, size) = partition_range(&self.lo.host_path(), n)?;
        let offset = self.options.offset.checked_add(start).filter(|o| *o <= MAX_BYTES).ok_or_else(|| {
            DeviceError::Partition { n, message: format!("starts beyond 2^63 bytes (at {start} in the device)") }
        })?;
        let options = LoopOptions { offset, sizelimit: size, partscan: false, lock: false, ..self.options.clone() };
        let backing = self.lo.backing().try_clone().map_err(|source| {
            DeviceError::Sys(osbuild_sys::SysError::Loop {
                what: "reopen the image of",
                path: self.lo.host_path(),
                source,
            })
        })?;
        let lo = LoopDevice::attach_file(backing, &node, &options, Path::new("/dev"), false)?;
        let path = lo.host_path();
        self.partitions.push(lo);
        Ok(path)
    }

    fn close(self: Box<Self>) -> Result<(), DeviceError> {
        let mut first = None;
        for lo in self.partitions.into_iter().rev() {
            if let Err(e) = lo.close() {
                first.get_or_insert(e);
            }
        }
        if let Err(e) = self.lo.close() {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// Whether `node` (`/dev/loopNpM`) is a partition the kernel has now: a block device whose
/// numbers are those sysfs shows for it. A loop device detached while it had partitions can keep
/// them (and devtmpfs their nodes) into its next attachment, where they describe another image.
fn kernel_partition(node: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Some(name) = node.file_name().and_then(|n| n.to_str()) else { return false };
    let Ok(md) = std::fs::metadata(node) else { return false };
    let Ok(dev) = std::fs::read_to_string(format!("/sys/class/block/{name}/dev")) else { return false };
    let rdev = md.rdev();
    md.file_type().is_block_device()
        && dev.trim() == format!("{}:{}", nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev))
}

/// Byte offset and length of partition `n` (1-based) in the table on `dev`, read with sfdisk.
fn partition_range(dev: &Path, n: u64) -> Result<(u64, u64), DeviceError> {
    let part_err = |message: String| DeviceError::Partition { n, message };
    let out = host_tool::run(Command::new("sfdisk").arg("--json").arg(dev), "a mount by partition number")
        .map_err(DeviceError::PartitionTable)?;
    let v: Value = serde_json::from_slice(&out)
        .map_err(|e| part_err(format!("cannot be found: sfdisk --json gave no JSON: {e}")))?;
    let table = &v["partitiontable"];
    let sector = table["sectorsize"].as_u64().unwrap_or(DEFAULT_SECTOR);
    let parts = table["partitions"].as_array().cloned().unwrap_or_default();
    let p = parts
        .iter()
        .find(|p| {
            p["node"].as_str().is_some_and(|node| node.ends_with(&format!("p{n}")) || node.ends_with(&n.to_string()))
        })
        .or_else(|| usize::try_from(n - 1).ok().and_then(|i| parts.get(i)))
        .ok_or_else(|| part_err(format!("does not exist (the table has {})", parts.len())))?;
    let bytes = |key: &str| {
        p[key]
            .as_u64()
            .and_then(|v| v.checked_mul(sector))
            .filter(|b| *b <= MAX_BYTES)
            .ok_or_else(|| part_err(format!("has no usable {key} in sfdisk's output")))
    };
    Ok((bytes("start")?, bytes("size")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_in_bytes() {
        let r = byte_range(Some(2048), Some(4096), None, 10 << 20).unwrap();
        assert_eq!(r, ByteRange { offset: 2048 * 512, sizelimit: 4096 * 512, block_size: 512 });
        let r = byte_range(None, None, Some(4096), 1 << 20).unwrap();
        assert_eq!(r, ByteRange { offset: 0, sizelimit: 1 << 20, block_size: 4096 });
        assert_eq!(byte_range(Some(8), None, None, 4096).unwrap().sizelimit, 0, "empty at the very end");
    }

    #[test]
    fn ranges_that_would_wrap_or_leave_the_image_are_errors_naming_the_option() {
        // 2^55 sectors of 512 bytes is 2^64 bytes: it used to wrap to offset 0.
        let e = byte_range(Some(1 << 55), None, None, 1 << 30).unwrap_err();
        assert_eq!(e.field(), &["options", "start"]);
        assert!(e.to_string().contains("beyond the largest offset"), "{e}");
        let e = byte_range(Some(1 << 54), None, None, 1 << 30).unwrap_err();
        assert_eq!(e.field(), &["options", "start"], "2^63 bytes: beyond loff_t");
        let e = byte_range(Some(3), None, None, 1024).unwrap_err();
        assert!(e.to_string().contains("past the end of the image (1024 bytes)"), "{e}");
        let e = byte_range(Some(1), Some(u64::MAX / 512), None, 1 << 20).unwrap_err();
        assert_eq!(e.field(), &["options", "size"]);
        for bad in [0, 1, 513, 1 << 20, (1u64 << 32) + 512] {
            let e = byte_range(None, None, Some(bad), 1 << 20).unwrap_err();
            assert_eq!(e.field(), &["options", "sector-size"], "{bad}");
        }
    }

    #[test]
    fn counts_name_their_option() {
        let n = |s: &str| Some(serde_json::from_str::<Number>(s).unwrap());
        assert_eq!(count(&n("2048.0"), &["options", "start"]).unwrap(), Some(2048));
        let e = count(&n("-1"), &["options", "size"]).unwrap_err();
        assert_eq!(e.field(), &["options", "size"]);
        assert_eq!(count(&None, &["x"]).unwrap(), None);
    }

    proptest! {
        /// No input panics, and an accepted range is exactly what was asked for, in loff_t.
        #[test]
        fn byte_ranges_never_wrap(start in any::<Option<u64>>(), size in any::<Option<u64>>(),
                                  shift in 0u32..20, len in any::<u64>()) {
            let sector = 1u64 << shift;
            if let Ok(r) = byte_range(start, size, Some(sector), len) {
                let off = u128::from(start.unwrap_or(0)) * u128::from(sector);
                prop_assert_eq!(u128::from(r.offset), off);
                prop_assert!(r.offset <= MAX_BYTES && r.offset <= len);
                match size {
                    Some(s) => {
                        prop_assert_eq!(u128::from(r.sizelimit), u128::from(s) * u128::from(sector));
                        prop_assert!(u128::from(r.offset) + u128::from(r.sizelimit) <= u128::from(MAX_BYTES));
                    }
                    None => prop_assert_eq!(r.sizelimit, len - r.offset),
                }
                prop_assert_eq!(u64::from(r.block_size), sector);
            }
        }
    }
}
