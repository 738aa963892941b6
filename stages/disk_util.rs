//! Helpers shared by the disk stages (partitioning, file systems, image conversion and
//! compression): the single file of a `file`/`image` input and creating an output file in the
//! tree.

use super::{Stage, StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use serde::Deserialize;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;

/// One partition of `org.osbuild.sfdisk` and `org.osbuild.sgdisk`; sizes and offsets are in
/// 512-byte sectors. The schemas leave the object open, so unknown keys are ignored as
/// upstream does.
#[derive(Debug, Default, Deserialize)]
pub struct Partition {
    pub bootable: Option<bool>,
    pub name: Option<String>,
    pub partnum: Option<u64>,
    pub size: Option<u64>,
    pub start: Option<u64>,
    #[serde(rename = "type")]
    pub ptype: Option<String>,
    pub uuid: Option<String>,
    pub attrs: Option<Vec<u64>>,
}

/// A stage that makes a file system (or swap area) on its `device`. Its command line is
/// written once, here, and serves the v1 assemblers too.
pub trait Mkfs: Stage {
    /// The command that makes the file system `options` describe on `device`.
    fn command(options: &Self::Options, device: &Path) -> Command;
}

/// The whole of an [`Mkfs`] stage: run its command on the device `device`.
pub fn mkfs_stage<S: Mkfs>(args: &StageArgs, options: &S::Options) -> StageResult {
    let device = args.device_path("device")?;
    S::command(options, &device).run(S::NAME)?;
    Ok(None)
}

/// `flag <label>` when the label is set and not empty, else nothing.
pub fn label_args<'a>(flag: &'a str, label: &'a Option<String>) -> impl Iterator<Item = &'a str> {
    label.as_deref().filter(|l| !l.is_empty()).into_iter().flat_map(move |l| [flag, l])
}

/// Create (or truncate) the already-resolved output file `path`, refusing a symlink as its
/// final component.
pub fn create_output(path: &Path) -> Result<File, StageError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(StageError::io("cannot create", path))
}

/// The options of the compression stages whose only option is the output file (`xz`, `zstd`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressOptions {
    /// Output file in the tree.
    pub filename: String,
}

/// The whole of a compression stage that takes [`CompressOptions`]: parse them, then
/// [`compress_input`] with `cmd`.
pub fn compress_stage(
    stage: &'static str,
    args: &StageArgs,
    options: &CompressOptions,
    cmd: &mut Command,
) -> StageResult {
    compress_input(stage, args, &options.filename, cmd)?;
    Ok(None)
}

/// Run the compressor `cmd` (arguments but the file given) on the single file of the `file`
/// input, its stdout going to `filename` in the tree, as upstream's compression stages do.
pub fn compress_input(
    stage: &'static str,
    args: &StageArgs,
    filename: &str,
    cmd: &mut Command,
) -> Result<(), StageError> {
    let source = args.single_input_file("file")?;
    let target = super::util::tree_path(args, filename, false)?;
    let out = create_output(&target)?;
    cmd.arg(&source).stdout(out).run(stage)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Test helpers: stage arguments whose devices are image files in a directory, and
    //! running the real inspection tools.
    use super::*;
    use serde_json::{json, Value};
    use std::path::PathBuf;

    /// Arguments for a stage whose devices (name → file name in `dir`) are image files in
    /// `dir`; the tree is `dir/tree` (created).
    pub fn device_args(dir: &Path, devices: &[(&str, &str)], options: Value) -> StageArgs {
        let tree = dir.join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        let devs: serde_json::Map<String, Value> =
            devices.iter().map(|(n, f)| (n.to_string(), json!({"path": f}))).collect();
        serde_json::from_value(json!({
            "tree": tree, "options": options, "devices": devs,
            "paths": {"devices": dir}, "meta": {"id": "test"},
        }))
        .unwrap()
    }

    /// A sparse image file `name` of `size` bytes in `dir`.
    pub fn image(dir: &Path, name: &str, size: u64) -> PathBuf {
        let p = dir.join(name);
        File::create(&p).unwrap().set_len(size).unwrap();
        p
    }

    /// Run an inspection tool and return its stdout; fail naming the package if missing.
    pub fn output(tool: &str, args: &[&str], package: &str) -> String {
        let out = Command::new(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool} ({e}); install the Debian package {package}"));
        assert!(out.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The `partitiontable` object of `sfdisk --json` on an image.
    pub fn sfdisk_table(img: &Path) -> Value {
        let text = output("sfdisk", &["--json", img.to_str().unwrap()], "fdisk");
        serde_json::from_str::<Value>(&text).unwrap()["partitiontable"].clone()
    }

    /// Arguments whose `file` input is one file of known, compressible content; the tree
    /// (`dir/tree`, with an `images` directory) is the output. Returns the content too.
    pub fn compress_args(dir: &Path, options: Value) -> (StageArgs, Vec<u8>) {
        let tree = dir.join("tree");
        let input = dir.join("input");
        std::fs::create_dir_all(tree.join("images")).unwrap();
        std::fs::create_dir_all(&input).unwrap();
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        std::fs::write(input.join("sha256:abcd"), &data).unwrap();
        let mut a = crate::testutil::args(&tree, options);
        a.inputs.insert("file".into(), json!({"path": input, "data": {"files": {"sha256:abcd": {}}}}));
        (a, data)
    }

    /// `tool -d -c file`'s output.
    pub fn decompress(tool: &str, file: &Path) -> Vec<u8> {
        let out = Command::new(tool).args(["-d", "-c"]).arg(file).output().unwrap();
        assert!(out.status.success(), "{tool} -d failed: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// `blkid -p -o export` of a file, as key/value pairs.
    pub fn blkid(path: &Path) -> std::collections::BTreeMap<String, String> {
        let text = output("blkid", &["-p", "-o", "export", path.to_str().unwrap()], "util-linux");
        text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    /// Fail with an install hint when `tool` is not on PATH (the stage would report it too,
    /// but the test should say which package to install).
    pub fn need(tool: &str, package: &str) {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false)
            || ["/usr/sbin", "/sbin"].iter().any(|d| Path::new(d).join(tool).is_file());
        assert!(found, "{tool} is needed by this test: install the Debian package {package}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn label_args_only_for_a_non_empty_label() {
        let root = Some("root".to_owned());
        let v: Vec<&str> = label_args("-L", &root).collect();
        assert_eq!(v, ["-L", "root"]);
        assert_eq!(label_args("-L", &Some(String::new())).count(), 0);
        assert_eq!(label_args("-L", &None).count(), 0);
    }

    #[test]
    fn input_must_hold_one_plain_file() {
        let t = tempfile::tempdir().unwrap();
        let mut a = args(t.path(), json!({}));
        a.inputs.insert("file".into(), json!({"path": "/in", "data": {"files": {"sha256:ab": {}}}}));
        assert_eq!(a.single_input_file("file").unwrap(), Path::new("/in/sha256:ab"));
        a.inputs.insert("file".into(), json!({"path": "/in", "data": {"files": {"a": {}, "b": {}}}}));
        assert!(a.single_input_file("file").unwrap_err().to_string().contains("exactly one file"));
        a.inputs.insert("file".into(), json!({"path": "/in", "data": {"files": {"../x": {}}}}));
        assert!(a.single_input_file("file").unwrap_err().to_string().contains("bad file name"));
        assert!(a.single_input_file("image").unwrap_err().to_string().contains("unknown input 'image'"));
    }

    #[test]
    fn compressed_output_is_confined_and_input_checked() {
        let t = tempfile::tempdir().unwrap();
        let (mut a, data) = testing::compress_args(t.path(), json!({}));
        std::os::unix::fs::symlink(t.path().join("victim"), a.tree.join("images/x")).unwrap();
        let e = compress_input("org.osbuild.test", &a, "/images/x", &mut Command::new("cat")).unwrap_err();
        assert!(e.to_string().starts_with("cannot create"), "{e}");
        assert!(!t.path().join("victim").exists());
        compress_input("org.osbuild.test", &a, "../../images/y", &mut Command::new("cat")).unwrap();
        assert_eq!(std::fs::read(a.tree.join("images/y")).unwrap(), data);
        a.inputs.insert("file".into(), json!({"path": "/nonexistent", "data": {"files": {}}}));
        let e = compress_input("org.osbuild.test", &a, "z", &mut Command::new("cat")).unwrap_err();
        assert!(e.to_string().contains("exactly one file"), "{e}");
    }
}
