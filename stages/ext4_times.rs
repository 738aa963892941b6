//! Settle the times of every inode of an ext4 file system that `mkfs.ext4 -d` just wrote, so
//! that the image depends on the tree's content and mtimes only.
//!
//! `mkfs.ext4 -d` copies a file's atime and ctime from the source tree. Those are not part of a
//! tree's content: ctime is whenever the store wrote the file (the kernel allows no other
//! value), atime whenever something last read it. This module rewrites, in place, each in-use
//! inode's access, change and creation time (and their nanosecond/epoch extensions) to its
//! modification time, and updates the inode checksum (`metadata_csum`). Nothing else changes:
//! no block is allocated or freed, no bitmap or directory is touched, so the file system stays
//! as consistent as e2fsprogs left it (the tests run `e2fsck -fn` and mount it).
//!
//! Only the layouts mke2fs makes are accepted (no `meta_bg`); anything else is refused with
//! the reason rather than guessed at.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

const SUPERBLOCK_OFFSET: u64 = 1024;
const MAGIC: u16 = 0xEF53;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const BG_INODE_UNINIT: u16 = 0x1;
/// Size of the classic inode; the fields after it exist when `i_extra_isize` covers them.
const GOOD_OLD_INODE_SIZE: usize = 128;

/// Inode field offsets (struct ext4_inode).
mod field {
    pub const MODE: usize = 0x00;
    pub const ATIME: usize = 0x08;
    pub const CTIME: usize = 0x0C;
    pub const MTIME: usize = 0x10;
    pub const LINKS: usize = 0x1A;
    pub const GENERATION: usize = 0x64;
    pub const CHECKSUM_LO: usize = 0x7C;
    pub const EXTRA_ISIZE: usize = 0x80;
    pub const CHECKSUM_HI: usize = 0x82;
    pub const CTIME_EXTRA: usize = 0x84;
    pub const MTIME_EXTRA: usize = 0x88;
    pub const ATIME_EXTRA: usize = 0x8C;
    pub const CRTIME: usize = 0x90;
    pub const CRTIME_EXTRA: usize = 0x94;
}

/// What [`settle_times`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// In-use inodes looked at.
    pub inodes: u64,
    /// Inodes whose times changed (and were written back).
    pub changed: u64,
}

/// The parts of the superblock this module needs.
#[derive(Debug)]
struct Geometry {
    block_size: u64,
    first_data_block: u64,
    inodes_count: u64,
    inodes_per_group: u64,
    inode_size: usize,
    desc_size: u64,
    is_64bit: bool,
    /// The checksum seed when `metadata_csum` is on.
    csum_seed: Option<u32>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Geometry {
    fn read(dev: &File, base: u64) -> io::Result<Geometry> {
        let mut sb = [0u8; 1024];
        dev.read_exact_at(&mut sb, base + SUPERBLOCK_OFFSET)?;
        if le16(&sb, 0x38) != MAGIC {
            return Err(invalid("no ext2/3/4 superblock (bad magic)".into()));
        }
        let log = le32(&sb, 0x18);
        if log > 6 {
            return Err(invalid(format!("unsupported block size 1024 << {log}")));
        }
        let incompat = le32(&sb, 0x60);
        if incompat & INCOMPAT_META_BG != 0 {
            return Err(invalid("meta_bg file systems are not supported".into()));
        }
        let is_64bit = incompat & INCOMPAT_64BIT != 0;
        let rev = le32(&sb, 0x4C);
        let inode_size = if rev == 0 { GOOD_OLD_INODE_SIZE } else { usize::from(le16(&sb, 0x58)) };
        if inode_size < GOOD_OLD_INODE_SIZE || !inode_size.is_power_of_two() {
            return Err(invalid(format!("unsupported inode size {inode_size}")));
        }
        let desc_size = if is_64bit { u64::from(le16(&sb, 0xFE)) } else { 32 };
        if desc_size < 32 {
            return Err(invalid(format!("unsupported group descriptor size {desc_size}")));
        }
        let csum_seed = (le32(&sb, 0x64) & RO_COMPAT_METADATA_CSUM != 0).then(|| {
            if incompat & INCOMPAT_CSUM_SEED != 0 {
                le32(&sb, 0x270)
            } else {
                crc32c(!0, &sb[0x68..0x78])
            }
        });
        let inodes_per_group = u64::from(le32(&sb, 0x28));
        if inodes_per_group == 0 {
            return Err(invalid("zero inodes per group".into()));
        }
        Ok(Geometry {
            block_size: 1024 << log,
            first_data_block: u64::from(le32(&sb, 0x14)),
            inodes_count: u64::from(le32(&sb, 0x00)),
            inodes_per_group,
            inode_size,
            desc_size,
            is_64bit,
            csum_seed,
        })
    }

    fn groups(&self) -> u64 {
        self.inodes_count.div_ceil(self.inodes_per_group)
    }
}

/// One group descriptor's inode bitmap and table (block numbers) and flags.
struct Group {
    inode_bitmap: u64,
    inode_table: u64,
    flags: u16,
}

fn groups(dev: &File, base: u64, g: &Geometry) -> io::Result<Vec<Group>> {
    let n = g.groups();
    let mut table = vec![0u8; (n * g.desc_size) as usize];
    dev.read_exact_at(&mut table, base + (g.first_data_block + 1) * g.block_size)?;
    Ok(table
        .chunks_exact(g.desc_size as usize)
        .map(|d| {
            let hi = |at: usize| if g.is_64bit { u64::from(le32(d, at)) << 32 } else { 0 };
            Group {
                inode_bitmap: u64::from(le32(d, 0x04)) | hi(0x24),
                inode_table: u64::from(le32(d, 0x08)) | hi(0x28),
                flags: le16(d, 0x12),
            }
        })
        .collect())
}

/// Set atime, ctime and crtime of the ext4 file system at byte `base` of `dev` to each inode's
/// mtime, for every inode in use.
pub fn settle_times(dev: &File, base: u64) -> io::Result<Settled> {
    let g = Geometry::read(dev, base)?;
    let isz = g.inode_size;
    let mut done = Settled::default();
    for (index, group) in groups(dev, base, &g)?.iter().enumerate() {
        if group.flags & BG_INODE_UNINIT != 0 {
            continue;
        }
        let in_group = g.inodes_per_group.min(g.inodes_count - index as u64 * g.inodes_per_group) as usize;
        let mut bitmap = vec![0u8; in_group.div_ceil(8)];
        dev.read_exact_at(&mut bitmap, base + group.inode_bitmap * g.block_size)?;
        let Some(last) = (0..in_group).rev().find(|i| bitmap[i / 8] & (1 << (i % 8)) != 0) else { continue };
        let mut table = vec![0u8; (last + 1) * isz];
        let table_at = base + group.inode_table * g.block_size;
        dev.read_exact_at(&mut table, table_at)?;
        let mut dirty = false;
        for i in 0..=last {
            if bitmap[i / 8] & (1 << (i % 8)) == 0 {
                continue;
            }
            let inode = &mut table[i * isz..(i + 1) * isz];
            if le16(inode, field::MODE) == 0 || le16(inode, field::LINKS) == 0 {
                continue; // reserved inodes mke2fs leaves empty
            }
            done.inodes += 1;
            let number = index as u64 * g.inodes_per_group + i as u64 + 1;
            if settle_inode(inode, number as u32, g.csum_seed) {
                done.changed += 1;
                dirty = true;
            }
        }
        if dirty {
            dev.write_all_at(&table, table_at)?;
        }
    }
    Ok(done)
}

/// Whether the inode field at `at` of `size` bytes is inside this inode's extra space.
fn fits(inode: &[u8], at: usize, size: usize) -> bool {
    inode.len() > GOOD_OLD_INODE_SIZE
        && at + size <= GOOD_OLD_INODE_SIZE + usize::from(le16(inode, field::EXTRA_ISIZE))
        && at + size <= inode.len()
}

/// Rewrite one inode's times (and checksum); whether anything changed.
fn settle_inode(inode: &mut [u8], number: u32, csum_seed: Option<u32>) -> bool {
    let before = inode.to_vec();
    let mtime = le32(inode, field::MTIME);
    put32(inode, field::ATIME, mtime);
    put32(inode, field::CTIME, mtime);
    if fits(inode, field::MTIME_EXTRA, 4) {
        let extra = le32(inode, field::MTIME_EXTRA);
        for at in [field::CTIME_EXTRA, field::ATIME_EXTRA] {
            if fits(inode, at, 4) {
                put32(inode, at, extra);
            }
        }
        if fits(inode, field::CRTIME_EXTRA, 4) {
            put32(inode, field::CRTIME, mtime);
            put32(inode, field::CRTIME_EXTRA, extra);
        }
    }
    if inode == before.as_slice() {
        return false;
    }
    if let Some(seed) = csum_seed {
        let csum = inode_checksum(inode, number, seed);
        put16(inode, field::CHECKSUM_LO, csum as u16);
        if fits(inode, field::CHECKSUM_HI, 2) {
            put16(inode, field::CHECKSUM_HI, (csum >> 16) as u16);
        }
    }
    true
}

/// ext4's inode checksum: crc32c over the inode number, its generation and the whole on-disk
/// inode with the checksum fields read as zero.
fn inode_checksum(inode: &[u8], number: u32, seed: u32) -> u32 {
    let mut copy = inode.to_vec();
    put16(&mut copy, field::CHECKSUM_LO, 0);
    let hi = fits(inode, field::CHECKSUM_HI, 2);
    if hi {
        put16(&mut copy, field::CHECKSUM_HI, 0);
    }
    let mut crc = crc32c(seed, &number.to_le_bytes());
    crc = crc32c(crc, &le32(inode, field::GENERATION).to_le_bytes());
    crc = crc32c(crc, &copy);
    if hi {
        crc
    } else {
        crc & 0xFFFF
    }
}

/// CRC-32C (Castagnoli) as ext4 chains it: no inversion on entry or exit.
fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            }
            *e = c;
        }
        t
    });
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The catalogued CRC-32C of "123456789" is 0xE3069283 (with the usual inversions).
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn refuses_what_is_not_ext4() {
        let t = tempfile::tempfile().unwrap();
        t.set_len(1 << 20).unwrap();
        let e = settle_times(&t, 0).unwrap_err();
        assert!(e.to_string().contains("bad magic"), "{e}");
    }
}
