//! `org.osbuild.tar`: archive the `tree` input into a file in this pipeline's tree with the
//! build root's `tar` (compression chosen by the file name unless given).
//!
//! Beyond upstream: with a `source-epoch` (SOURCE_DATE_EPOCH) entries are sorted by name and
//! extended headers carry no access/change times or PID, so two builds give the same bytes.

use super::util::tree_path;
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::util::yes;
use crate::Stage;
use serde::Deserialize;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Archive name, in the tree.
    pub filename: String,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default = "yes")]
    pub acls: bool,
    #[serde(default = "yes")]
    pub selinux: bool,
    #[serde(default = "yes")]
    pub xattrs: bool,
    #[serde(rename = "root-node")]
    pub root_node: Option<RootNode>,
    pub paths: Option<Vec<String>>,
    #[serde(default)]
    pub sparse: bool,
    pub transform: Option<String>,
    #[serde(rename = "numeric-owner", default)]
    pub numeric_owner: bool,
}

/// tar's flags to keep ACLs, SELinux labels and (all) extended attributes.
pub(crate) fn metadata_flags(cmd: &mut Command, acls: bool, selinux: bool, xattrs: bool) {
    if acls {
        cmd.arg("--acls");
    }
    if selinux {
        cmd.arg("--selinux");
    }
    if xattrs {
        cmd.args(["--xattrs", "--xattrs-include", "*"]);
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Gnu,
    Oldgnu,
    Posix,
    Ustar,
    V7,
}

/// `auto` picks by file name suffix (`tar --auto-compress`); the others are tar's own flags.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Auto,
    Xz,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootNode {
    Include,
    Omit,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Tar;

impl Stage for Tar {
    const NAME: &'static str = "org.osbuild.tar";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.root_node.is_some() && options.paths.is_some() {
            return Err(StageError::Invalid("options root-node and paths are mutually exclusive".into()));
        }
        let source = args.input_path("tree")?;
        let output = tree_path(args, options.filename.trim_start_matches('/'), true)?;

        let format = match options.format {
            Format::Gnu => "gnu",
            Format::Oldgnu => "oldgnu",
            Format::Posix => "posix",
            Format::Ustar => "ustar",
            Format::V7 => "v7",
        };
        // the members to archive, after the options
        let members: Vec<OsString> = match options.paths.as_deref() {
            Some(paths) if !paths.is_empty() => paths.iter().map(OsString::from).collect(),
            _ if options.root_node == Some(RootNode::Omit) => {
                // `file` instead of `./file`; sorted, so the archive does not depend on readdir order
                let mut names = Vec::new();
                for entry in std::fs::read_dir(&source).map_err(StageError::io("cannot read directory", &source))? {
                    names.push(entry.map_err(StageError::io("cannot read directory", &source))?.file_name());
                }
                names.sort();
                std::iter::once(OsString::from("--")).chain(names).collect()
            }
            _ => vec![OsString::from(".")],
        };
        let command = |blocking: Option<&str>| {
            let mut cmd = Command::new("tar");
            cmd.arg(format!("--format={format}"));
            metadata_flags(&mut cmd, options.acls, options.selinux, options.xattrs);
            if options.sparse {
                cmd.arg("--sparse");
            }
            if let Some(t) = &options.transform {
                cmd.args(["--transform", t]);
            }
            if options.numeric_owner {
                cmd.arg("--numeric-owner");
            }
            if std::env::var_os("SOURCE_DATE_EPOCH").is_some() {
                // With a source epoch (mtimes are clamped by the engine) the archive must not depend on
                // readdir order, access/change times or tar's PID in extended header names either.
                cmd.arg("--sort=name").arg("--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime");
            }
            cmd.arg(match options.compression {
                Compression::Auto => "--auto-compress",
                Compression::Xz => "--xz",
                Compression::Gzip => "--gzip",
                Compression::Zstd => "--zstd",
            });
            if let Some(b) = blocking {
                cmd.args(["-b", b]);
            }
            cmd.arg("-cf").arg(&output).arg("-C").arg(&source).args(&members);
            // let xz use every core, as upstream does
            cmd.env("XZ_OPT", "--threads 0").stdout(std::process::Stdio::null());
            cmd
        };
        if big_records_apply(&options, &output) {
            // tar's default 10 KiB records cost a read() and a write() each: 0.45 s for 300 MiB
            // here, where 120 KiB records take about 0.2 s. Only the zero padding after the
            // end-of-archive marker depends on the record size, so cutting that padding back to what
            // default records give yields the very bytes plain tar writes.
            command(Some(BIG_BLOCKING)).run(Tar::NAME)?;
            match trim_to_default_records(&output) {
                Ok(()) => return Ok(None),
                Err(why) => eprintln!("{}: {why}; archiving again with tar's default records", Tar::NAME),
            }
        }
        command(None).run(Tar::NAME)?;
        Ok(None)
    }
}

/// The blocking factor (512-byte blocks per record) of the fast path: 120 KiB records, 12 default
/// ones, so the archive is never shorter than with default records and is only ever cut. Not
/// more: tar copies every record through its buffer, and with 1 MiB records (more than the CPU's
/// L2 cache) tar was slower here than with default ones.
const BIG_BLOCKING: &str = "240";
/// GNU tar's default record: 20 blocks.
const DEFAULT_RECORD: u64 = 20 * BLOCK;
const BLOCK: u64 = 512;
/// How much of the archive one read brings in while walking its headers: several small members
/// per read, and little copied in vain when members are large.
const WINDOW: usize = 64 * 1024;
/// A longer extended (pax) header is not walked over: the archive is written again instead.
const MAX_PAX: u64 = 1 << 20;

/// Whether the archive can be written with big records and cut back: an uncompressed, non-sparse
/// GNU archive into a regular file (or a new one), and no `TAR_OPTIONS` that could change the
/// records or the format behind our back.
fn big_records_apply(options: &Options, output: &Path) -> bool {
    // --auto-compress compresses only for a compressor's suffix, and `.tar` is none
    matches!(options.format, Format::Gnu | Format::Oldgnu)
        && !options.sparse
        && matches!(options.compression, Compression::Auto)
        && options.filename.ends_with(".tar")
        && std::env::var_os("TAR_OPTIONS").is_none()
        && std::fs::metadata(output).map_or(true, |m| m.is_file())
}

/// Cut the zero padding of an archive tar wrote with big records back to default records.
fn trim_to_default_records(output: &Path) -> Result<(), String> {
    let file = File::options().read(true).write(true).open(output).map_err(|e| format!("cannot open archive: {e}"))?;
    let length = default_record_length(&file)?;
    file.set_len(length).map_err(|e| format!("cannot truncate archive: {e}"))
}

/// The length tar with default records would have given the archive in `file`: its
/// end-of-archive marker (two zero blocks) padded with zeros to a whole record. An error when the
/// archive is not one this walk understands in every detail, or anything but zeros follows the
/// marker.
fn default_record_length(file: &File) -> Result<u64, String> {
    let mut reader = Reader { file, len: 0, start: 0, buf: Vec::new() };
    reader.len = file.metadata().map_err(|e| format!("cannot stat archive: {e}"))?.len();
    let end = end_of_archive(&mut reader)?;
    // everything after the marker is padding
    let mut at = end;
    while at < reader.len {
        let n = (reader.len - at).min(WINDOW as u64) as usize;
        if reader.get(at, n)?.iter().any(|&b| b != 0) {
            return Err(format!("data after the end of the archive at {end}"));
        }
        at += n as u64;
    }
    let length = (end + 2 * BLOCK).div_ceil(DEFAULT_RECORD) * DEFAULT_RECORD;
    if length > reader.len {
        return Err(format!("archive of {} bytes shorter than its default records ({length})", reader.len));
    }
    Ok(length)
}

/// The offset of the first all-zero header block, after walking over every member.
fn end_of_archive(reader: &mut Reader) -> Result<u64, String> {
    let mut at = 0u64;
    // after an extended header: the size it gave the next member (whose size field is then 0)
    let mut extended: Option<Option<u64>> = None;
    loop {
        let header: [u8; BLOCK as usize] = reader.get(at, BLOCK as usize)?.try_into().expect("one block");
        if header.iter().all(|&b| b == 0) {
            return match extended {
                None => Ok(at),
                Some(_) => Err(format!("extended header without a member before {at}")),
            };
        }
        check_header(&header).map_err(|e| format!("header at {at}: {e}"))?;
        let mut size = header_size(&header).map_err(|e| format!("header at {at}: size {e}"))?;
        match header[156] {
            // the member types GNU tar writes when archiving a tree (no sparse files, volumes, ...)
            b'0' | b'\0' | b'1' | b'2' | b'3' | b'4' | b'5' | b'6' | b'7' => {
                size = extended.take().flatten().unwrap_or(size);
            }
            b'L' | b'K' if extended.is_none() => {}
            b'x' if extended.is_none() => {
                if size > MAX_PAX {
                    return Err(format!("extended header of {size} bytes at {at}"));
                }
                let data = reader.get(at + BLOCK, size as usize)?;
                extended = Some(pax_records_size(data).map_err(|e| format!("extended header at {at}: {e}"))?);
            }
            t => return Err(format!("unexpected member type {:?} at {at}", t as char)),
        }
        let next = size.div_ceil(BLOCK).checked_mul(BLOCK).and_then(|data| (at + BLOCK).checked_add(data));
        at = match next {
            Some(next) if next < reader.len => next,
            _ => return Err(format!("member at {at} of {size} bytes goes past the end of the archive")),
        };
    }
}

/// A ustar header: its magic and its checksum (the sum of its bytes with the checksum field
/// taken as spaces, as unsigned or signed bytes since old tars differed).
fn check_header(header: &[u8; BLOCK as usize]) -> Result<(), String> {
    if &header[257..262] != b"ustar" {
        return Err("no ustar magic".into());
    }
    let stored = octal(&header[148..156]).ok_or("bad checksum field")?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in header.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored) == Ok(signed) {
        Ok(())
    } else {
        Err("bad checksum".into())
    }
}

/// The size field: octal, or GNU's base-256 (big-endian after a first byte with 0x80 set).
fn header_size(header: &[u8; BLOCK as usize]) -> Result<u64, String> {
    let field = &header[124..136];
    if field[0] & 0x80 == 0 {
        return octal(field).ok_or_else(|| "not octal".into());
    }
    if field[0] & 0x40 != 0 {
        return Err("negative".into());
    }
    field[1..]
        .iter()
        .try_fold(u64::from(field[0] & 0x3f), |v, &b| v.checked_mul(256).map(|v| v | u64::from(b)))
        .ok_or_else(|| "too large".into())
}

/// An octal number field: optional leading spaces, digits, then only NULs and spaces.
fn octal(field: &[u8]) -> Option<u64> {
    let field = &field[field.iter().position(|&b| b != b' ')?..];
    let digits = field.iter().position(|b| !(b'0'..=b'7').contains(b)).unwrap_or(field.len());
    if digits == 0 || field[digits..].iter().any(|&b| b != 0 && b != b' ') {
        return None;
    }
    field[..digits].iter().try_fold(0u64, |v, &d| v.checked_mul(8)?.checked_add(u64::from(d - b'0')))
}

/// The `size` record of an extended header's data (`LEN key=value\n` records), if any; sparse
/// records are refused since they change how the member's data is laid out.
fn pax_records_size(mut data: &[u8]) -> Result<Option<u64>, String> {
    let decimal = |s: &[u8]| -> Option<u64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    let mut size = None;
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ').ok_or("record without a length")?;
        let len = decimal(&data[..space]).ok_or("bad record length")?;
        let len = usize::try_from(len).map_err(|_| "bad record length")?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("bad record".into());
        }
        let record = &data[space + 1..len - 1];
        let (key, value) = record.split_at(record.iter().position(|&b| b == b'=').ok_or("record without '='")?);
        if key == b"size" {
            size = Some(decimal(&value[1..]).ok_or("bad size record")?);
        } else if key.starts_with(b"GNU.sparse") {
            return Err("sparse member".into());
        }
        data = &data[len..];
    }
    Ok(size)
}

/// Reads of the archive through a window, so walking many small members takes few syscalls.
struct Reader<'a> {
    file: &'a File,
    len: u64,
    /// The window: `buf` holds the archive's bytes from `start`.
    start: u64,
    buf: Vec<u8>,
}

impl Reader<'_> {
    /// `n` bytes at `at`, an error if the archive ends before.
    fn get(&mut self, at: u64, n: usize) -> Result<&[u8], String> {
        let end = at.checked_add(n as u64).filter(|&end| end <= self.len);
        let Some(end) = end else {
            return Err(format!("archive ends before {n} bytes at {at}"));
        };
        if at < self.start || end > self.start + self.buf.len() as u64 {
            let want = (self.len - at).min(n.max(WINDOW) as u64) as usize;
            self.buf.resize(want, 0);
            self.start = at;
            self.file.read_exact_at(&mut self.buf, at).map_err(|e| format!("cannot read archive: {e}"))?;
        }
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;
    use std::os::unix::fs::FileExt;

    fn list(archive: &std::path::Path) -> Vec<String> {
        let out = Command::new("tar").arg("-tf").arg(archive).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
    }

    fn setup() -> (tempfile::TempDir, StageArgs) {
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("input");
        fs::create_dir_all(input.join("etc")).unwrap();
        fs::write(input.join("etc/os-release"), "ID=test\n").unwrap();
        fs::write(input.join("b"), "b").unwrap();
        let out = t.path().join("tree");
        fs::create_dir(&out).unwrap();
        let mut a = args(&out, json!({}));
        a.inputs.insert("tree".into(), json!({"path": input}));
        (t, a)
    }

    #[test]
    fn root_node_include_omit_and_paths() {
        let (t, mut a) = setup();
        let out = t.path().join("tree");
        a.options = json!({"filename": "/inc.tar", "acls": false, "selinux": false, "xattrs": false});
        Tar::execute(&a).unwrap();
        assert!(list(&out.join("inc.tar")).contains(&"./etc/os-release".to_owned()));
        a.options = json!({"filename": "omit.tar", "root-node": "omit"});
        Tar::execute(&a).unwrap();
        assert_eq!(list(&out.join("omit.tar")), ["b", "etc/", "etc/os-release"]);
        a.options = json!({"filename": "paths.tar", "paths": ["etc/os-release"], "format": "posix"});
        Tar::execute(&a).unwrap();
        assert_eq!(list(&out.join("paths.tar")), ["etc/os-release"]);
    }

    #[test]
    fn compression_by_name_and_explicit() {
        let (t, mut a) = setup();
        let out = t.path().join("tree");
        a.options = json!({"filename": "x.tar.gz"});
        Tar::execute(&a).unwrap();
        assert_eq!(&fs::read(out.join("x.tar.gz")).unwrap()[..2], &[0x1f, 0x8b]);
        a.options = json!({"filename": "x.tar", "compression": "xz"});
        Tar::execute(&a).unwrap();
        assert_eq!(&fs::read(out.join("x.tar")).unwrap()[..6], b"\xfd7zXZ\0");
    }

    #[test]
    fn root_node_and_paths_conflict() {
        let (_t, mut a) = setup();
        a.options = json!({"filename": "x.tar", "paths": ["b"], "root-node": "omit"});
        assert_eq!(Tar::execute(&a).unwrap_err().to_string(), "options root-node and paths are mutually exclusive");
        a.inputs.clear();
        a.options = json!({"filename": "x.tar"});
        assert_eq!(Tar::execute(&a).unwrap_err().to_string(), "unknown input 'tree'");
    }

    /// Access times far ahead (so reading does not change them: the extended headers of the
    /// default flags record them) and fixed modification times, on everything under `root`.
    fn fix_times(root: &Path) {
        use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
        let times = Timestamps {
            last_access: Timespec { tv_sec: 4_000_000_000, tv_nsec: 0 },
            last_modification: Timespec { tv_sec: 1_600_000_000, tv_nsec: 0 },
        };
        for entry in walkdir::WalkDir::new(root) {
            utimensat(CWD, entry.unwrap().path(), &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        }
    }

    /// A tree with every kind of member GNU tar writes for a tree, and `pad` bytes in `pad`.
    fn varied_tree(root: &Path, pad: usize) {
        let d = root.join("dir/sub");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("empty"), "").unwrap();
        fs::write(root.join("record"), vec![b'r'; 10240]).unwrap();
        fs::write(root.join("pad"), vec![b'p'; pad]).unwrap();
        let big: Vec<u8> = (0..1_100_000u32).map(|i| (i % 251) as u8 + 1).collect();
        fs::write(root.join("big"), big).unwrap();
        let long = root.join("l".repeat(90)).join("m".repeat(90));
        fs::create_dir_all(&long).unwrap();
        fs::write(long.join("file-with-a-long-path"), "long").unwrap();
        std::os::unix::fs::symlink("t".repeat(150), root.join("long-link")).unwrap();
        fs::hard_link(root.join("record"), root.join("hard")).unwrap();
        fs::write(root.join("xattr"), "x").unwrap();
        rustix::fs::setxattr(root.join("xattr"), "user.test", b"value", rustix::fs::XattrFlags::empty()).unwrap();
        let mut zeros = b"data".to_vec();
        zeros.resize(4 + 1536, 0);
        fs::write(root.join("zeros"), zeros).unwrap();
        let holes = File::create(root.join("holes")).unwrap();
        holes.write_all_at(b"end", 300_000).unwrap();
        fix_times(root);
    }

    /// GNU tar itself, default records: the oracle.
    fn plain_tar(flags: &[&str], input: &Path, archive: &Path) -> Vec<u8> {
        let st = Command::new("tar").args(flags).arg("-cf").arg(archive).arg("-C").arg(input).arg(".").status();
        assert!(st.unwrap().success());
        fs::read(archive).unwrap()
    }

    fn end_of(archive: &Path) -> Result<u64, String> {
        let file = File::open(archive).unwrap();
        let len = file.metadata().unwrap().len();
        end_of_archive(&mut Reader { file: &file, len, start: 0, buf: Vec::new() })
    }

    fn stage_in(t: &Path, input: &Path, options: serde_json::Value) -> Vec<u8> {
        let out = t.join("tree");
        let name = options["filename"].as_str().unwrap().to_owned();
        let _ = fs::remove_dir_all(&out);
        fs::create_dir(&out).unwrap();
        let mut a = args(&out, options);
        a.inputs.insert("tree".into(), json!({"path": input}));
        Tar::execute(&a).unwrap();
        fs::read(out.join(name)).unwrap()
    }

    #[test]
    fn big_records_cut_back_to_plain_tars_bytes() {
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("input");
        let oracle = t.path().join("oracle.tar");
        let metadata = ["--acls", "--selinux", "--xattrs", "--xattrs-include", "*"];
        let cases = [
            // the defaults: GNU tar then writes extended headers (xattrs), not 'L'/'K' ones
            (json!({"filename": "x.tar"}), [&["--format=gnu"][..], &metadata, &["--auto-compress"]].concat()),
            (
                json!({"filename": "x.tar", "acls": false, "selinux": false, "xattrs": false}),
                vec!["--format=gnu", "--auto-compress"],
            ),
            (
                json!({"filename": "x.tar", "format": "oldgnu", "acls": false, "selinux": false, "xattrs": false}),
                vec!["--format=oldgnu", "--auto-compress"],
            ),
        ];
        // 512-byte steps through a whole record put the end of the archive at every block of it
        let pads = (0..20).map(|k| k * 512).chain([1, 10241]);
        let (mut on_boundary, mut just_over) = (false, false);
        for pad in pads {
            let _ = fs::remove_dir_all(&input);
            varied_tree(&input, pad);
            for (options, flags) in &cases {
                let expected = plain_tar(flags, &input, &oracle);
                let got = stage_in(t.path(), &input, options.clone());
                assert!(got == expected, "pad {pad}, {options}: {} bytes, plain tar {}", got.len(), expected.len());
                let end = end_of(&oracle).unwrap();
                on_boundary |= (end + 1024).is_multiple_of(10240);
                just_over |= (end + 1024) % 10240 == 512;
                // and the cut is really made (no fallback): tar with big records by hand
                let big = t.path().join("big.tar");
                plain_tar(&[&["-b", BIG_BLOCKING], &flags[..]].concat(), &input, &big);
                let big_len = fs::metadata(&big).unwrap().len();
                assert!(big_len >= expected.len() as u64, "pad {pad}, {options}: {big_len} {}", expected.len());
                assert_eq!(default_record_length(&File::open(&big).unwrap()), Ok(expected.len() as u64), "pad {pad}");
            }
        }
        assert!(on_boundary && just_over);
    }

    #[test]
    fn compressed_sparse_and_other_formats_as_plain_tar() {
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("input");
        varied_tree(&input, 700);
        let metadata = ["--acls", "--selinux", "--xattrs", "--xattrs-include", "*"];
        let no_metadata = |mut v: serde_json::Value| {
            v.as_object_mut().unwrap().extend([("acls".into(), false.into()), ("selinux".into(), false.into())]);
            v["xattrs"] = false.into();
            v
        };
        let cases = [
            (json!({"filename": "x.tar.gz"}), "x.tar.gz", "--format=gnu", "--auto-compress"),
            (json!({"filename": "x.tar", "compression": "gzip"}), "x.tar", "--format=gnu", "--gzip"),
            // without the metadata flags: with them, tar names sparse members' headers by its PID
            (no_metadata(json!({"filename": "x.tar", "sparse": true})), "x.tar", "--format=gnu", "--sparse"),
            (json!({"filename": "x.tar", "format": "posix"}), "x.tar", "--format=posix", "--auto-compress"),
            (json!({"filename": "x.img"}), "x.img", "--format=gnu", "--auto-compress"),
        ];
        for (options, name, format, flag) in cases {
            let mut flags = vec![format];
            if options["xattrs"] != false {
                flags.extend(metadata);
            }
            flags.push(flag);
            if flag == "--sparse" {
                flags.push("--auto-compress");
            }
            let expected = plain_tar(&flags, &input, &t.path().join(name));
            let got = stage_in(t.path(), &input, options.clone());
            assert!(got == expected, "{options}: {} bytes, plain tar {}", got.len(), expected.len());
        }
        let options = |v| serde_json::from_value::<Options>(v).unwrap();
        let out = t.path().join("new.tar");
        assert!(big_records_apply(&options(json!({"filename": "x.tar", "format": "oldgnu"})), &out));
        for v in [
            json!({"filename": "x.tar.gz"}),
            json!({"filename": "x.tar", "compression": "xz"}),
            json!({"filename": "x.tar", "sparse": true}),
            json!({"filename": "x.tar", "format": "posix"}),
            json!({"filename": "x"}),
        ] {
            assert!(!big_records_apply(&options(v.clone()), &out), "{v}");
        }
        // a directory (or device) where the archive goes is left to tar
        assert!(!big_records_apply(&options(json!({"filename": "x.tar"})), t.path()));
    }

    #[test]
    fn damaged_archives_are_not_cut() {
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("input");
        varied_tree(&input, 0);
        let good = plain_tar(&["-b", BIG_BLOCKING, "--format=gnu"], &input, &t.path().join("good.tar"));
        let length = |bytes: &[u8]| {
            let path = t.path().join("damaged.tar");
            fs::write(&path, bytes).unwrap();
            default_record_length(&File::open(&path).unwrap())
        };
        let end = end_of(&t.path().join("good.tar")).unwrap() as usize;
        assert_eq!(length(&good), Ok(((end + 1024) as u64).div_ceil(10240) * 10240));
        // a byte of the first header's name, mode or size; of the end marker; of the padding
        for at in [0, 100, 130, end, end + 600, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            assert!(length(&bad).is_err(), "byte {at} changed");
        }
        // a member type we do not walk over ('S', GNU sparse), with a valid checksum
        let mut bad = good.clone();
        bad[156] = b'S';
        bad[148..156].copy_from_slice(b"        ");
        let sum: u32 = bad[..512].iter().map(|&b| u32::from(b)).sum();
        bad[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(length(&bad), Err("unexpected member type 'S' at 0".into()));
        // cut short: in a member, or before the two zero blocks and their record
        assert!(length(&good[..end / 2]).is_err());
        assert!(length(&good[..end + 512]).is_err());
        assert!(length(&good[..end]).is_err());
        assert!(length(&[]).is_err());
    }

    #[test]
    fn header_fields() {
        let mut header = [0u8; 512];
        header[124..136].copy_from_slice(b"00000001750\0");
        assert_eq!(header_size(&header), Ok(1000));
        header[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1]);
        assert_eq!(header_size(&header), Ok((2 << 32) + 1));
        header[124] = 0xff;
        assert!(header_size(&header).is_err());
        header[124..136].copy_from_slice(b"0000000175x\0");
        assert!(header_size(&header).is_err());
        assert_eq!(octal(b"  1750 \0"), Some(1000));
        assert_eq!(octal(b"        "), None);
        assert_eq!(pax_records_size(b"20 size=12345678901\n30 mtime=1700000000.123456789\n"), Ok(Some(12345678901)));
        assert_eq!(pax_records_size(b"18 path=some/file\n"), Ok(None));
        assert!(pax_records_size(b"21 size=12345678901\n").is_err());
        assert!(pax_records_size(b"22 GNU.sparse.size=1\n").is_err());
    }
}
