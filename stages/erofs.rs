//! `org.osbuild.erofs`: pack the `tree` input (or a `source` mount or input) into an EROFS
//! image file in this pipeline's tree with the build root's `mkfs.erofs`.
//!
//! Beyond upstream: reproducible with a `source-epoch`. `mkfs.erofs` takes
//! `SOURCE_DATE_EPOCH` (which the engine sets) as the build time and clamps newer file times
//! to it, but draws a random file system UUID; with an epoch we pass `-U` a UUID derived
//! from the stage's id and the file name, so two builds of one manifest give the same bytes
//! while two images of one build still get different UUIDs. Without an epoch the UUID stays
//! random, as upstream's.

use super::fs_image::{output_file, source_dir, source_epoch_from_env};
use super::pyfmt::py_number;
use super::{StageArgs, StageResult};
use crate::canonical_json::IdHasher;
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The image file, in the tree.
    pub filename: String,
    /// `mount://NAME/...` or `input://NAME/...` to pack instead of the `tree` input.
    pub source: Option<String>,
    /// Regular expressions (`--exclude-regex`) of paths to leave out.
    pub exclude_paths: Option<Vec<String>>,
    pub compression: Option<Compression>,
    /// `-C`: the largest physical cluster, in bytes.
    #[serde(rename = "cluster-size")]
    pub cluster_size: Option<serde_json::Number>,
    /// `-E`: extended options (`dedupe`, `ztailpacking`, ...), joined with commas.
    pub options: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    pub method: Method,
    /// Left out when zero, as upstream does.
    pub level: Option<serde_json::Number>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Lz4,
    Lz4hc,
    Lzma,
    Zstd,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Lz4 => "lz4",
            Method::Lz4hc => "lz4hc",
            Method::Lzma => "lzma",
            Method::Zstd => "zstd",
        }
    }
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Erofs;

impl Stage for Erofs {
    const NAME: &'static str = "org.osbuild.erofs";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.options.as_ref().is_some_and(Vec::is_empty) {
            return Err(crate::StageError::Invalid("option options must list at least one option".into()));
        }
        let source = source_dir(args, options.source.as_deref())?;
        let target = output_file(args, &options.filename)?;
        let stage_id = args.meta.get("id").and_then(|v| v.as_str()).unwrap_or_default();
        let uuid = source_epoch_from_env()?.map(|epoch| image_uuid(stage_id, &options.filename, epoch));
        mkfs_erofs(&source, &target, &options, uuid.as_deref()).run(Erofs::NAME)?;
        Ok(None)
    }
}

/// A UUID (version 4 layout) made of the hash of the stage's id, the image's name and the
/// epoch: the same for every build of one manifest, different for two images of one build.
fn image_uuid(stage_id: &str, filename: &str, epoch: u64) -> String {
    let mut h = IdHasher::new();
    h.update_str(Erofs::NAME).update_str(stage_id).update_str(filename).update_str(&epoch.to_string());
    let hex = h.finish();
    let mut b: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digest")).collect();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Upstream's `mkfs.erofs` command line, with `-U uuid` when one is given.
fn mkfs_erofs(source: &Path, target: &Path, options: &Options, uuid: Option<&str>) -> Command {
    let mut cmd = Command::new("mkfs.erofs");
    cmd.arg(target).arg(source).arg("--quiet");
    if let Some(c) = &options.compression {
        let mut z = c.method.name().to_owned();
        if let Some(level) = c.level.as_ref().filter(|l| l.as_f64() != Some(0.0)) {
            z.push(',');
            z.push_str(&py_number(level));
        }
        cmd.args(["-z", &z]);
    }
    if let Some(ext) = options.options.as_deref().filter(|o| !o.is_empty()) {
        cmd.args(["-E", &ext.join(",")]);
    }
    if let Some(size) = options.cluster_size.as_ref().filter(|s| s.as_f64() != Some(0.0)) {
        cmd.args(["-C", &py_number(size)]);
    }
    for e in options.exclude_paths.iter().flatten() {
        cmd.args(["--exclude-regex", e]);
    }
    if let Some(uuid) = uuid {
        cmd.args(["-U", uuid]);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;

    fn setup() -> (tempfile::TempDir, StageArgs) {
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("input");
        fs::create_dir_all(input.join("etc/skip.d")).unwrap();
        fs::create_dir_all(input.join("usr/bin")).unwrap();
        fs::write(input.join("etc/os-release"), "ID=test\n").unwrap();
        fs::write(input.join("etc/skip.d/x"), "x\n").unwrap();
        fs::write(input.join("usr/bin/tool"), b"abcdefgh".repeat(20_000)).unwrap();
        std::os::unix::fs::symlink("../usr/bin/tool", input.join("etc/link")).unwrap();
        let tree = t.path().join("tree");
        fs::create_dir_all(&tree).unwrap();
        let mut a = args(&tree, json!({}));
        a.inputs.insert("tree".into(), json!({"path": input}));
        (t, a)
    }

    fn build(a: &StageArgs, options: serde_json::Value, uuid: Option<&str>) -> std::path::PathBuf {
        let options: Options = serde_json::from_value(options).unwrap();
        let source = source_dir(a, options.source.as_deref()).unwrap();
        let target = output_file(a, &options.filename).unwrap();
        mkfs_erofs(&source, &target, &options, uuid).run(Erofs::NAME).unwrap();
        target
    }

    fn dump(image: &Path, args: &[&str]) -> String {
        let out = Command::new("dump.erofs").args(args).arg(image).output().expect("dump.erofs (erofs-utils)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The image's files, extracted with `fsck.erofs --extract` (which also checks them).
    fn extract(image: &Path, to: &Path) {
        let st = Command::new("fsck.erofs").arg(format!("--extract={}", to.display())).arg(image).status().unwrap();
        assert!(st.success());
    }

    #[test]
    fn packs_the_tree_compressed_without_the_excluded_paths() {
        let (t, a) = setup();
        let image = build(
            &a,
            json!({"filename": "/disk.img", "compression": {"method": "lz4hc", "level": 12},
                   "options": ["dedupe"], "cluster-size": 65536, "exclude_paths": ["etc/skip\\.d"]}),
            None,
        );
        // compressed: much smaller than the 160 kB file it holds
        assert!(fs::metadata(&image).unwrap().len() < 40_000);
        let stats = dump(&image, &["-S"]);
        let compressed = stats.lines().find(|l| l.contains("compressed files:") && !l.contains("uncompressed"));
        assert_eq!(compressed.and_then(|l| l.split_whitespace().last()), Some("1"), "{stats}");
        let out = t.path().join("x");
        extract(&image, &out);
        assert_eq!(fs::read_to_string(out.join("etc/os-release")).unwrap(), "ID=test\n");
        assert_eq!(fs::read(out.join("usr/bin/tool")).unwrap(), b"abcdefgh".repeat(20_000));
        assert_eq!(fs::read_link(out.join("etc/link")).unwrap(), Path::new("../usr/bin/tool"));
        assert!(!out.join("etc/skip.d").exists());

        let image = build(&a, json!({"filename": "etc.img", "source": "input://tree/etc/"}), None);
        let out = t.path().join("y");
        extract(&image, &out);
        assert!(out.join("os-release").is_file() && !out.join("usr").exists());
    }

    #[test]
    fn level_and_cluster_size_as_upstream_formats_them() {
        let o: Options =
            serde_json::from_value(json!({"filename": "x", "compression": {"method": "lz4hc", "level": 0},
            "cluster-size": 4096.0, "options": ["dedupe", "ztailpacking"]}))
            .unwrap();
        let argv = crate::tool::argv_string(&mkfs_erofs(Path::new("/s"), Path::new("/t"), &o, Some("u")));
        assert_eq!(argv, "mkfs.erofs /t /s --quiet -z lz4hc -E dedupe,ztailpacking -C 4096.0 -U u");
    }

    #[test]
    fn source_epoch_and_derived_uuid_make_images_reproducible() {
        let (t, a) = setup();
        let uuid = image_uuid("stage-id", "disk.img", 1_700_000_000);
        assert_eq!(uuid, image_uuid("stage-id", "disk.img", 1_700_000_000));
        assert_ne!(uuid, image_uuid("stage-id", "other.img", 1_700_000_000));
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        // mkfs.erofs reads SOURCE_DATE_EPOCH from its environment; set it on the command only
        let build_with_epoch = |name: &str| {
            let o: Options =
                serde_json::from_value(json!({"filename": name, "compression": {"method": "lz4"}})).unwrap();
            let target = output_file(&a, name).unwrap();
            let mut cmd = mkfs_erofs(&a.input_path("tree").unwrap(), &target, &o, Some(&uuid));
            cmd.env("SOURCE_DATE_EPOCH", "1700000000").run(Erofs::NAME).unwrap();
            fs::read(target).unwrap()
        };
        let first = build_with_epoch("a.img");
        fs::File::open(t.path().join("input/usr/bin")).unwrap().set_modified(std::time::SystemTime::now()).unwrap();
        fs::write(t.path().join("input/etc/os-release"), "ID=test\n").unwrap();
        assert!(first == build_with_epoch("b.img"), "two builds with one source epoch differ");
        let sb = dump(&a.tree.join("a.img"), &["-s"]);
        assert!(sb.contains(&uuid), "{sb}");
    }
}
