//! `org.osbuild.squashfs`: pack the `tree` input (or a `source` mount or input) into a
//! squashfs image file in this pipeline's tree with the build root's `mksquashfs`.
//!
//! Reproducible with a `source-epoch`: the engine puts `SOURCE_DATE_EPOCH` in the stage's
//! environment and `mksquashfs` (4.5 and later) takes it as the creation time and clamps every
//! newer file time to it; its output does not depend on the number of threads or on readdir
//! order (`-reproducible` is its default). Two builds of one tree then give the same bytes.

use super::fs_image::{output_file, source_dir, source_epoch_from_env};
use super::{StageArgs, StageResult};
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
    /// Regular expressions (`mksquashfs -regex -e`) of paths to leave out.
    pub exclude_paths: Option<Vec<String>>,
    pub compression: Option<Compression>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    pub method: Method,
    #[serde(default)]
    pub options: CompressorOptions,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Gzip,
    Lz4,
    Xz,
    Zstd,
}

impl Method {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Method::Gzip => "gzip",
            Method::Lz4 => "lz4",
            Method::Xz => "xz",
            Method::Zstd => "zstd",
        }
    }
}

/// Compressor options, passed as `-X<name> <value>` (only xz's branch/call/jump filter).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressorOptions {
    pub bcj: Option<Bcj>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bcj {
    X86,
    Arm,
    Armthumb,
    Powerpc,
    Sparc,
    Ia64,
}

impl Bcj {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Bcj::X86 => "x86",
            Bcj::Arm => "arm",
            Bcj::Armthumb => "armthumb",
            Bcj::Powerpc => "powerpc",
            Bcj::Sparc => "sparc",
            Bcj::Ia64 => "ia64",
        }
    }
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Squashfs;

impl Stage for Squashfs {
    const NAME: &'static str = "org.osbuild.squashfs";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let source = source_dir(args, options.source.as_deref())?;
        let target = output_file(args, &options.filename)?;
        mksquashfs(&source, &target, &options, source_epoch_from_env()?).run(Squashfs::NAME)?;
        Ok(None)
    }
}

/// The `mksquashfs` command line (upstream's, plus `-no-progress` to keep the log short) with
/// the source epoch, if any, set in its environment and otherwise removed from it.
fn mksquashfs(source: &Path, target: &Path, options: &Options, epoch: Option<u64>) -> Command {
    let mut cmd = Command::new("mksquashfs");
    cmd.arg(source).arg(target).arg("-no-progress");
    if let Some(c) = &options.compression {
        cmd.args(["-comp", c.method.name()]);
        if let Some(bcj) = c.options.bcj {
            cmd.args(["-Xbcj", bcj.name()]);
        }
    }
    // `-e` takes every argument after it: it comes last
    if let Some(excludes) = options.exclude_paths.as_deref().filter(|e| !e.is_empty()) {
        cmd.args(["-regex", "-e"]).args(excludes);
    }
    match epoch {
        Some(e) => cmd.env("SOURCE_DATE_EPOCH", e.to_string()),
        None => cmd.env_remove("SOURCE_DATE_EPOCH"),
    };
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
        fs::write(input.join("usr/bin/tool"), vec![7u8; 100_000]).unwrap();
        std::os::unix::fs::symlink("../usr/bin/tool", input.join("etc/link")).unwrap();
        let tree = t.path().join("tree");
        fs::create_dir_all(tree.join("images")).unwrap();
        let mut a = args(&tree, json!({}));
        a.inputs.insert("tree".into(), json!({"path": input}));
        (t, a)
    }

    fn build(a: &StageArgs, options: serde_json::Value, epoch: Option<u64>) -> std::path::PathBuf {
        let options: Options = serde_json::from_value(options).unwrap();
        let source = source_dir(a, options.source.as_deref()).unwrap();
        let target = output_file(a, &options.filename).unwrap();
        mksquashfs(&source, &target, &options, epoch).run(Squashfs::NAME).unwrap();
        target
    }

    /// `unsquashfs` of the image: (`-s` superblock report, `-lls` listing).
    fn inspect(image: &Path) -> (String, String) {
        let run = |flag: &str| {
            let out = Command::new("unsquashfs")
                .env("TZ", "UTC")
                .args([flag])
                .arg(image)
                .output()
                .expect("unsquashfs (squashfs-tools)");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        (run("-s"), run("-lls"))
    }

    #[test]
    fn packs_the_tree_with_compression_and_excludes() {
        let (_t, a) = setup();
        let image = build(
            &a,
            json!({"filename": "/images/install.img", "compression": {"method": "xz", "options": {"bcj": "x86"}},
                   "exclude_paths": ["etc/skip\\.d.*"]}),
            None,
        );
        let (sb, list) = inspect(&image);
        assert!(sb.contains("Compression xz") && sb.contains("x86"), "{sb}");
        assert!(list.contains("squashfs-root/etc/os-release"), "{list}");
        assert!(list.contains("squashfs-root/etc/link -> ../usr/bin/tool"), "{list}");
        assert!(list.contains("squashfs-root/usr/bin/tool"), "{list}");
        assert!(!list.contains("skip.d"), "{list}");

        let image = build(&a, json!({"filename": "plain.img", "source": "input://tree/etc"}), None);
        let (sb, list) = inspect(&image);
        assert!(sb.contains("Compression gzip"), "{sb}");
        assert!(list.contains("squashfs-root/os-release") && !list.contains("squashfs-root/usr"), "{list}");
    }

    #[test]
    fn source_epoch_makes_images_reproducible() {
        let (t, a) = setup();
        let input = t.path().join("input");
        let epoch = 1_700_000_000;
        let first =
            fs::read(build(&a, json!({"filename": "a.img", "compression": {"method": "lz4"}}), Some(epoch))).unwrap();
        // new file times (all after the epoch) must not show in the image
        fs::write(input.join("etc/os-release"), "ID=test\n").unwrap();
        filetime_now(&input.join("usr/bin"));
        let second =
            fs::read(build(&a, json!({"filename": "b.img", "compression": {"method": "lz4"}}), Some(epoch))).unwrap();
        assert!(first == second, "two builds with one source epoch differ");
        let (sb, list) = inspect(&a.tree.join("a.img"));
        assert!(sb.contains("Tue Nov 14 22:13:20 2023"), "creation time is not the epoch: {sb}");
        assert!(list.contains("2023-11-14 22:13 squashfs-root/etc/os-release"), "{list}");

        // without an epoch the image records the build's time
        let third = fs::read(build(&a, json!({"filename": "c.img", "compression": {"method": "lz4"}}), None)).unwrap();
        assert!(third != first);
    }

    fn filetime_now(p: &Path) {
        let f = fs::File::open(p).unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
    }

    #[test]
    fn options_are_checked() {
        let (_t, mut a) = setup();
        a.options = json!({"filename": "x.img", "compression": {"method": "bzip2"}});
        assert!(Squashfs::execute(&a).is_err());
        a.options = json!({"filename": "x.img", "source": "input://nope/"});
        assert_eq!(Squashfs::execute(&a).unwrap_err().to_string(), "unknown input 'nope'");
        a.options = json!({"filename": "missing-dir/x.img"});
        let e = crate::error_chain(&Squashfs::execute(&a).unwrap_err());
        assert!(e.starts_with("`mksquashfs "), "{e}");
    }
}
