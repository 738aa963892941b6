//! Helpers shared by the disk stages (partitioning, file systems, image conversion and
//! compression): the single file of a `file`/`image` input, feeding a tool a script on stdin,
//! capturing a tool's stdout, and creating an output file in the tree.

use super::util::{argv_string, run_tool, spawn_error, stderr_tail};
use super::{StageArgs, StageError, StageResult};
use serde::Deserialize;
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// The whole of a stage that makes a file system (or swap area) on its `device`: parse the
/// options `O`, let `build` add the arguments to `tool`, then run `tool <arguments> <device>`.
pub fn mkfs_stage<O>(
    stage: &'static str,
    args: &StageArgs,
    options: &O,
    tool: &str,
    build: impl FnOnce(&O, &mut Command),
) -> StageResult {
    let device = args.device_path("device")?;
    let mut cmd = Command::new(tool);
    build(options, &mut cmd);
    run_tool(stage, cmd.arg(&device))?;
    Ok(None)
}

/// `flag <label>` when the label is set and not empty, else nothing.
pub fn label_args<'a>(flag: &'a str, label: &'a Option<String>) -> impl Iterator<Item = &'a str> {
    label.as_deref().filter(|l| !l.is_empty()).into_iter().flat_map(move |l| [flag, l])
}

/// The host path of the one file input `name` carries (upstream's stages take
/// `data.files`' only key and join it to the input's path).
pub fn single_input_file(args: &StageArgs, name: &str) -> Result<PathBuf, StageError> {
    let dir = args.input_path(name)?;
    let files = args.inputs.get(name).and_then(|i| i.pointer("/data/files")).and_then(Value::as_object);
    let file = match files {
        Some(f) if f.len() == 1 => f.keys().next().expect("one file"),
        _ => return Err(StageError::Invalid(format!("input '{name}' must hold exactly one file"))),
    };
    if file.is_empty() || file.contains('/') || file == "." || file == ".." {
        return Err(StageError::Invalid(format!("bad file name {file:?} in input '{name}'")));
    }
    Ok(dir.join(file))
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
    let source = single_input_file(args, "file")?;
    let target = super::util::tree_path(args, filename, false)?;
    let out = create_output(&target)?;
    run_tool(stage, cmd.arg(&source).stdout(out))
}

/// Run a build-root tool for `stage` with `input` on its stdin. Like [`run_tool`], stderr
/// goes to the log and its tail into the error when the tool fails.
pub fn run_tool_with_input(stage: &'static str, cmd: &mut Command, input: &[u8]) -> Result<(), StageError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let mut child =
        cmd.stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| spawn_error(stage, &tool, e))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    // a writer thread, so a tool that fills its stderr before reading stdin cannot block us
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stderr = Vec::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_end(&mut stderr);
    }
    let _ = writer.join();
    let status = child.wait().map_err(|source| StageError::ToolSpawn { tool: tool.clone(), source })?;
    let _ = std::io::stderr().write_all(&stderr);
    if status.success() {
        return Ok(());
    }
    Err(StageError::ToolFailed { argv: argv_string(cmd), status, stderr: stderr_tail(&stderr) })
}

/// Run a build-root tool for `stage` and return its stdout (stderr as in [`run_tool`]).
pub fn tool_output(stage: &'static str, cmd: &mut Command) -> Result<Vec<u8>, StageError> {
    let (mut reader, writer) =
        std::io::pipe().map_err(StageError::io("cannot create a pipe for", cmd.get_program()))?;
    let collect = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    });
    let result = run_tool(stage, cmd.stdout(writer));
    // the command keeps the pipe's write end until its stdout is replaced
    cmd.stdout(Stdio::null());
    let out = collect.join().unwrap_or_default();
    result.map(|()| out)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Test helpers: stage arguments whose devices are image files in a directory, and
    //! running the real inspection tools.
    use super::*;
    use serde_json::json;

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
        assert_eq!(single_input_file(&a, "file").unwrap(), Path::new("/in/sha256:ab"));
        a.inputs.insert("file".into(), json!({"path": "/in", "data": {"files": {"a": {}, "b": {}}}}));
        assert!(single_input_file(&a, "file").unwrap_err().to_string().contains("exactly one file"));
        a.inputs.insert("file".into(), json!({"path": "/in", "data": {"files": {"../x": {}}}}));
        assert!(single_input_file(&a, "file").unwrap_err().to_string().contains("bad file name"));
        assert!(single_input_file(&a, "image").unwrap_err().to_string().contains("unknown input 'image'"));
    }

    #[test]
    fn stdin_reaches_tool_and_failures_are_reported() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        run_tool_with_input(
            "org.osbuild.test",
            Command::new("sh").arg("-c").arg(format!("cat > {}", out.display())),
            b"hi\n",
        )
        .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"hi\n");
        let e =
            run_tool_with_input("org.osbuild.test", Command::new("sh").args(["-c", "cat >&2; exit 2"]), b"bad input")
                .unwrap_err();
        assert_eq!(e.to_string(), "`sh -c 'cat >&2; exit 2'` failed (exit status: 2): bad input");
        let e = run_tool_with_input("org.osbuild.test", &mut Command::new("osbuild-rs-no-such-tool"), b"").unwrap_err();
        assert_eq!(e.to_string(), "osbuild-rs-no-such-tool not found in the build root, but org.osbuild.test needs it");
        assert_eq!(tool_output("org.osbuild.test", Command::new("echo").arg("x")).unwrap(), b"x\n");
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
