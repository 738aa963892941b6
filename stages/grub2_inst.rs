//! `org.osbuild.grub2.inst`: build a GRUB 2 core image with `grub2-mkimage` and write it into
//! a disk image file of the tree, for BIOS boot (and Open Firmware's PReP partition).
//!
//! As upstream: the core holds the modules needed to reach the prefix — `biosdisk` on
//! `i386-pc`, the partition map (`part_gpt` / `part_msdos`) and the file system (`ext2` for
//! ext4, `xfs`, `btrfs`, `iso9660`, the latter in the `i386-pc-eltorito` format) — taken
//! from the build root's `/usr/lib/grub/<platform>`, with the prefix `(,gpt3)/boot/grub2`
//! (a partition `number` counted from 0 plus a `path`) or a bare `path`, `--compression auto`.
//! With a `location` (in sectors of `sector-size`, default 512) the core is written there
//! into `filename`; on `i386-pc` the first 440 bytes of `boot.img` then go to the MBR (the
//! partition table stays as it is), with the core's sector patched in at offset 0x5c, and a
//! core placed beyond the first sector (a BIOS boot partition) gets the sector of its own
//! second half patched into its first block list (offset 500). Without a location (or 0)
//! `filename` becomes a copy of the core image (El Torito / PReP use).
//!
//! Deviations from upstream:
//! - without `core.binary`, the build root's `grub2-mkimage` is used and, if there is none,
//!   Debian's `grub-mkimage` (upstream only tries `grub2-mkimage`);
//! - before writing, the image's partition table (MBR and, behind a protective MBR, GPT) is
//!   read and the stage refuses a core that would overwrite the GPT header or entries, reach
//!   into a partition it does not start in, spill out of the partition it starts in, or end
//!   beyond the end of the image (upstream would silently corrupt the disk).

use super::grub_util::{check_platform, MODULES_DIR};
use super::util::{scratch_dir, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

/// Where boot.img keeps the sector of the core image (`GRUB_BOOT_MACHINE_KERNEL_SECTOR`).
pub const KERNEL_SECTOR_OFFSET: u64 = 0x5c;
/// How much of boot.img goes into the MBR: the code, not the disk signature and partitions.
pub const BOOT_CODE_SIZE: usize = 440;
/// Where the core's first block list starts in its first sector (0x200 - 12).
pub const BLOCKLIST_OFFSET: u64 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The disk image file in the tree.
    pub filename: String,
    /// GRUB platform, e.g. `i386-pc`.
    pub platform: String,
    /// Sector of the core image; absent or 0: `filename` becomes the core image itself.
    #[serde(default)]
    pub location: Option<u64>,
    pub core: Core,
    pub prefix: Prefix,
    #[serde(rename = "sector-size", default = "default_sector_size")]
    pub sector_size: u64,
}

fn default_sector_size() -> u64 {
    512
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Core {
    /// Only validated: `mkimage` is the one kind upstream knows.
    #[serde(rename = "type")]
    pub _kind: CoreKind,
    pub partlabel: PartLabel,
    pub filesystem: CoreFs,
    /// The mkimage program; default `grub2-mkimage`, else `grub-mkimage`.
    #[serde(default)]
    pub binary: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoreKind {
    Mkimage,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartLabel {
    Gpt,
    Dos,
}

impl PartLabel {
    /// GRUB's name of the partition map.
    fn grub_name(self) -> &'static str {
        match self {
            PartLabel::Gpt => "gpt",
            PartLabel::Dos => "msdos",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoreFs {
    Ext4,
    Xfs,
    Btrfs,
    Iso9660,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prefix {
    Partition(PrefixPartition),
    Path(PrefixPath),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixPartition {
    /// Only validated: `partition` is the one kind with these fields.
    #[serde(rename = "type")]
    pub _kind: PrefixKind,
    pub partlabel: PartLabel,
    /// Counted from 0.
    pub number: u64,
    pub path: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrefixKind {
    Partition,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixPath {
    pub path: String,
}

impl Prefix {
    /// The prefix as grub-mkimage takes it, e.g. `(,gpt3)/boot/grub2`.
    pub fn grub_string(&self) -> String {
        match self {
            Prefix::Partition(p) => {
                format!("(,{}{})/{}", p.partlabel.grub_name(), p.number + 1, p.path.trim_start_matches('/'))
            }
            Prefix::Path(p) => p.path.clone(),
        }
    }
}

/// The image format and the modules built into the core.
fn core_layout(platform: &str, core: &Core) -> (String, Vec<&'static str>) {
    let mut format = platform.to_owned();
    let mut modules = Vec::new();
    if platform == "i386-pc" {
        modules.push("biosdisk");
    }
    modules.push(match core.partlabel {
        PartLabel::Dos => "part_msdos",
        PartLabel::Gpt => "part_gpt",
    });
    modules.push(match core.filesystem {
        CoreFs::Ext4 => "ext2",
        CoreFs::Xfs => "xfs",
        CoreFs::Btrfs => "btrfs",
        CoreFs::Iso9660 => {
            format = "i386-pc-eltorito".to_owned();
            "iso9660"
        }
    });
    (format, modules)
}

/// Run grub-mkimage for `platform` and return the core image, for `stage` (this one and the
/// v1 `org.osbuild.qemu` assembler). `binary` is the mkimage program (default
/// `grub2-mkimage`, else `grub-mkimage`).
pub fn make_core(
    stage: &'static str,
    platform: &str,
    core: &Core,
    prefix: &Prefix,
    binary: Option<&str>,
) -> Result<Vec<u8>, StageError> {
    let (format, modules) = core_layout(platform, core);
    let scratch = scratch_dir("osbuild-grub2-inst")?;
    let out = scratch.path().join("grub2-core.img");
    let prefix = prefix.grub_string();
    println!("prefix: {prefix}");
    let command = |bin: &str| {
        let mut c = Command::new(bin);
        c.arg("--verbose")
            .arg("--directory")
            .arg(Path::new(MODULES_DIR).join(platform))
            .args(["--prefix", &prefix, "--format", &format, "--compression", "auto", "--output"])
            .arg(&out)
            .args(&modules);
        c
    };
    match binary {
        Some(bin) => command(bin).run(stage)?,
        None => match command("grub2-mkimage").run(stage) {
            Err(StageError::ToolMissing { .. }) => command("grub-mkimage").run(stage).map_err(|e| match e {
                StageError::ToolMissing { stage, place, .. } => {
                    StageError::ToolMissing { tool: "grub2-mkimage (or grub-mkimage)".into(), stage, place }
                }
                other => other,
            })?,
            other => other?,
        },
    }
    std::fs::read(&out).map_err(StageError::io("cannot read", &out))
}

/// A run of sectors `[start, end)` the partition table gives away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    /// "partition 2", "the GPT header and partition entries", ...
    pub what: String,
    /// Partition table data rather than a partition: no core may start in it.
    pub table: bool,
}

/// The regions of the image that the partition table uses: MBR partitions and, behind a
/// protective MBR, the GPT header, its entries and the GPT partitions. No MBR signature
/// means no partition table: nothing is reserved.
pub fn used_regions(image: &File, sector_size: u64) -> Result<Vec<Region>, StageError> {
    let mut mbr = [0u8; 512];
    if image.read_exact_at(&mut mbr, 0).is_err() || mbr[510..512] != [0x55, 0xaa] {
        return Ok(Vec::new());
    }
    let mut regions = Vec::new();
    let mut gpt = false;
    for i in 0..4 {
        let e = &mbr[446 + 16 * i..462 + 16 * i];
        let kind = e[4];
        let start = u32::from_le_bytes(e[8..12].try_into().unwrap()) as u64;
        let count = u32::from_le_bytes(e[12..16].try_into().unwrap()) as u64;
        if kind == 0xee {
            gpt = true;
        } else if kind != 0 && count > 0 {
            regions.push(Region { start, end: start + count, what: format!("partition {}", i + 1), table: false });
        }
    }
    if !gpt {
        return Ok(regions);
    }
    let mut hdr = [0u8; 92];
    let bad = || StageError::Invalid("the image has a protective MBR but no valid GPT header".into());
    image.read_exact_at(&mut hdr, sector_size).map_err(|_| bad())?;
    if &hdr[0..8] != b"EFI PART" {
        return Err(bad());
    }
    let entries_lba = u64::from_le_bytes(hdr[72..80].try_into().unwrap());
    let count = u32::from_le_bytes(hdr[80..84].try_into().unwrap()) as u64;
    let size = u32::from_le_bytes(hdr[84..88].try_into().unwrap()) as u64;
    if size < 128 || count > 4096 {
        return Err(bad());
    }
    let table_sectors = (count * size).div_ceil(sector_size);
    regions.push(Region {
        start: 1,
        end: entries_lba.max(1).saturating_add(table_sectors),
        what: "the GPT header and partition entries".into(),
        table: true,
    });
    let mut table = vec![0u8; (count * size) as usize];
    let table_at = entries_lba.checked_mul(sector_size).ok_or_else(bad)?;
    image.read_exact_at(&mut table, table_at).map_err(|_| bad())?;
    for (i, e) in table.chunks(size as usize).enumerate() {
        if e[0..16].iter().all(|b| *b == 0) {
            continue;
        }
        let first = u64::from_le_bytes(e[32..40].try_into().unwrap());
        let last = u64::from_le_bytes(e[40..48].try_into().unwrap());
        regions.push(Region {
            start: first,
            end: last.saturating_add(1),
            what: format!("partition {}", i + 1),
            table: false,
        });
    }
    Ok(regions)
}

/// Refuse a core of `sectors` sectors at `location` that would damage the partition table or
/// a partition it does not belong to.
pub fn check_placement(regions: &[Region], location: u64, sectors: u64) -> Result<(), StageError> {
    let end = location.saturating_add(sectors);
    for r in regions {
        if (r.start..r.end).contains(&location) {
            if r.table {
                return Err(StageError::Invalid(format!(
                    "the core image location, sector {location}, is inside {} (sectors {}..{})",
                    r.what, r.start, r.end
                )));
            }
            if end > r.end {
                return Err(StageError::Invalid(format!(
                    "the core image ({sectors} sectors at sector {location}) does not fit into {} (sectors {}..{})",
                    r.what, r.start, r.end
                )));
            }
        } else if location < r.end && r.start < end {
            return Err(StageError::Invalid(format!(
                "the core image ({sectors} sectors at sector {location}) would overwrite {} (sectors {}..{})",
                r.what, r.start, r.end
            )));
        }
    }
    Ok(())
}

fn write_at(f: &mut File, path: &Path, offset: u64, data: &[u8]) -> Result<(), StageError> {
    f.seek(SeekFrom::Start(offset)).map_err(StageError::io("cannot seek in", path))?;
    f.write_all(data).map_err(StageError::io("cannot write", path))
}

/// Write `core` at `location` into the image and, on i386-pc, boot.img into the MBR.
/// Refuses a core that would damage the partition table or a partition it does not start in.
pub fn install_core(
    platform: &str,
    sector_size: u64,
    image: &Path,
    core: &[u8],
    location: u64,
) -> Result<(), StageError> {
    let ss = sector_size;
    let mut f =
        std::fs::OpenOptions::new().read(true).write(true).open(image).map_err(StageError::io("cannot open", image))?;
    let len = f.metadata().map_err(StageError::io("cannot read", image))?.len();
    let sectors = (core.len() as u64).div_ceil(ss);
    if location.saturating_add(sectors).saturating_mul(ss) > len {
        return Err(StageError::Invalid(format!(
            "the core image ({sectors} sectors at sector {location}) ends beyond the end of {} ({len} bytes)",
            image.display()
        )));
    }
    check_placement(&used_regions(&f, ss)?, location, sectors)?;

    println!("grub core size is {}", core.len());
    println!("writing core to ({location}, {})", location * ss);
    write_at(&mut f, image, location * ss, core)?;

    if platform == "i386-pc" {
        let boot_path = Path::new(MODULES_DIR).join(platform).join("boot.img");
        let mut boot = Vec::new();
        File::open(&boot_path)
            .and_then(|mut b| b.read_to_end(&mut boot))
            .map_err(StageError::io("cannot read", &boot_path))?;
        if boot.len() < BOOT_CODE_SIZE {
            return Err(StageError::Invalid(format!("{} is too short for a boot image", boot_path.display())));
        }
        if location * ss > 512 {
            // beyond the MBR gap's usual place: tell the core where its second sector is
            write_at(&mut f, image, location * ss + BLOCKLIST_OFFSET, &(location + 1).to_le_bytes())?;
        }
        write_at(&mut f, image, 0, &boot[..BOOT_CODE_SIZE])?;
        write_at(&mut f, image, KERNEL_SECTOR_OFFSET, &location.to_le_bytes())?;
    }
    f.sync_all().map_err(StageError::io("cannot write", image))
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Grub2Inst;

impl Stage for Grub2Inst {
    const NAME: &'static str = "org.osbuild.grub2.inst";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        check_platform(&o.platform)?;
        if o.sector_size < 512 {
            return Err(StageError::Invalid(format!("invalid sector size {}", o.sector_size)));
        }
        let image = tree_path(args, &o.filename, true)?;
        let core = make_core(Grub2Inst::NAME, &o.platform, &o.core, &o.prefix, o.core.binary.as_deref())?;
        match o.location {
            Some(location) if location > 0 => install_core(&o.platform, o.sector_size, &image, &core, location)?,
            _ => write_file(&image, &core, 0o644)?,
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn core(v: serde_json::Value) -> Core {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn prefixes() {
        let p: Prefix = serde_json::from_value(
            json!({"type": "partition", "partlabel": "gpt", "number": 2, "path": "/boot/grub2"}),
        )
        .unwrap();
        assert_eq!(p.grub_string(), "(,gpt3)/boot/grub2");
        let p: Prefix =
            serde_json::from_value(json!({"type": "partition", "partlabel": "dos", "number": 0, "path": "//grub2"}))
                .unwrap();
        assert_eq!(p.grub_string(), "(,msdos1)/grub2");
        let p: Prefix = serde_json::from_value(json!({"path": "/boot/grub2/"})).unwrap();
        assert_eq!(p.grub_string(), "/boot/grub2/");
        assert!(serde_json::from_value::<Prefix>(json!({"path": "/x", "number": 1})).is_err());
    }

    #[test]
    fn modules_by_platform_label_and_filesystem() {
        let c = core(json!({"type": "mkimage", "partlabel": "gpt", "filesystem": "ext4"}));
        assert_eq!(core_layout("i386-pc", &c), ("i386-pc".to_owned(), vec!["biosdisk", "part_gpt", "ext2"]));
        let c = core(json!({"type": "mkimage", "partlabel": "dos", "filesystem": "xfs"}));
        assert_eq!(core_layout("powerpc-ieee1275", &c), ("powerpc-ieee1275".to_owned(), vec!["part_msdos", "xfs"]));
        let c = core(json!({"type": "mkimage", "partlabel": "gpt", "filesystem": "iso9660"}));
        assert_eq!(
            core_layout("i386-pc", &c),
            ("i386-pc-eltorito".to_owned(), vec!["biosdisk", "part_gpt", "iso9660"])
        );
        let c = core(json!({"type": "mkimage", "partlabel": "dos", "filesystem": "btrfs"}));
        assert_eq!(core_layout("i386-pc", &c).1, vec!["biosdisk", "part_msdos", "btrfs"]);
    }

    fn region(start: u64, end: u64, what: &str) -> Region {
        Region { start, end, what: what.into(), table: what.starts_with("the GPT") }
    }

    #[test]
    fn placement_rules() {
        let gpt = [region(1, 34, "the GPT header and partition entries"), region(2048, 4096, "partition 1")];
        // in the BIOS boot partition
        assert!(check_placement(&gpt, 2048, 60).is_ok());
        let e = check_placement(&gpt, 2048, 3000).unwrap_err().to_string();
        assert_eq!(
            e,
            "the core image (3000 sectors at sector 2048) does not fit into partition 1 (sectors 2048..4096)"
        );
        // the MBR gap of a GPT disk holds the partition entries
        let e = check_placement(&gpt, 1, 60).unwrap_err().to_string();
        assert!(e.starts_with("the core image location, sector 1, is inside the GPT header"), "{e}");
        // between the entries and the first partition is fine, overlapping it is not
        assert!(check_placement(&gpt, 34, 60).is_ok());
        let e = check_placement(&gpt, 2000, 60).unwrap_err().to_string();
        assert!(e.ends_with("would overwrite partition 1 (sectors 2048..4096)"), "{e}");
        let dos = [region(2048, 10000, "partition 1")];
        assert!(check_placement(&dos, 1, 2047).is_ok());
        assert!(check_placement(&dos, 1, 2048).is_err());
    }

    #[test]
    fn no_partition_table_reserves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("blank");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        assert!(used_regions(&File::open(&p).unwrap(), 512).unwrap().is_empty());
    }
}
