//! `org.osbuild.qemu`: convert the single file of the `image` input into a virtual machine
//! image `filename` in the tree with `qemu-img convert -O <type> <extra> <source> <target>`,
//! where the extra arguments are upstream's: qcow2 `-c` (unless `compression` is false) and
//! `-o compat=…`; vmdk `-c` (same) and `-o adapter_type=…,compat6,subformat=…`; vpc
//! `-o subformat=<fixed|dynamic>[,force_size]` (fixed and force_size by default); none for
//! vdi and vhdx. `OSBUILD_QEMU_IMG_COROUTINES`, when set, adds `-m <n>` as upstream does.

use super::disk_util::create_output;
use super::util::tree_path;
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Output file in the tree.
    pub filename: String,
    pub format: Format,
}

/// The output format and its settings, told apart by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Format {
    Qcow2 { compression: Option<bool>, compat: Option<String> },
    Vdi {},
    Vmdk { adapter_type: Option<String>, compat6: Option<bool>, compression: Option<bool>, subformat: Option<String> },
    Vpc { force_size: Option<bool>, subformat: Option<String> },
    Vhdx {},
}

impl Format {
    fn name(&self) -> &'static str {
        match self {
            Format::Qcow2 { .. } => "qcow2",
            Format::Vdi {} => "vdi",
            Format::Vmdk { .. } => "vmdk",
            Format::Vpc { .. } => "vpc",
            Format::Vhdx {} => "vhdx",
        }
    }

    /// The format-specific arguments between `-O <type>` and the file names.
    pub fn extra_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        match self {
            Format::Qcow2 { compression, compat } => {
                if compression.unwrap_or(true) {
                    v.push("-c".into());
                }
                if let Some(c) = compat.as_ref().filter(|c| !c.is_empty()) {
                    v.extend(["-o".into(), format!("compat={c}")]);
                }
            }
            Format::Vmdk { adapter_type, compat6, compression, subformat } => {
                if compression.unwrap_or(true) {
                    v.push("-c".into());
                }
                let mut opts = Vec::new();
                if let Some(a) = adapter_type.as_ref().filter(|a| !a.is_empty()) {
                    opts.push(format!("adapter_type={a}"));
                }
                if compat6.unwrap_or(false) {
                    opts.push("compat6".into());
                }
                if let Some(s) = subformat.as_ref().filter(|s| !s.is_empty()) {
                    opts.push(format!("subformat={s}"));
                }
                if !opts.is_empty() {
                    v.extend(["-o".into(), opts.join(",")]);
                }
            }
            Format::Vpc { force_size, subformat } => {
                let mut opts = vec![format!("subformat={}", subformat.as_deref().unwrap_or("fixed"))];
                if force_size.unwrap_or(true) {
                    opts.push("force_size".into());
                }
                v.extend(["-o".into(), opts.join(",")]);
            }
            Format::Vdi {} | Format::Vhdx {} => {}
        }
        v
    }
}

/// The arguments after `qemu-img` but the file names; `coroutines` from the environment.
pub fn argv(format: &Format, coroutines: Option<&str>) -> Vec<String> {
    let mut v = vec!["convert".to_owned(), "-O".into(), format.name().into()];
    v.extend(format.extra_args());
    if let Some(n) = coroutines.filter(|n| !n.is_empty()) {
        println!("qemu-img coroutines: {n}");
        v.extend(["-m".into(), n.into()]);
    }
    v
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Qemu;

impl Stage for Qemu {
    const NAME: &'static str = "org.osbuild.qemu";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let source = args.single_input_file("image")?;
        let target = tree_path(args, &options.filename, false)?;
        // a regular file (not a symlink someone left there) for qemu-img to overwrite
        drop(create_output(&target)?);
        convert(Qemu::NAME, &options.format, &source, &target)?;
        Ok(None)
    }
}

/// `qemu-img convert` of the raw image `source` into `format` at `target`, for `stage` (this
/// one and the v1 `org.osbuild.qemu` assembler).
pub fn convert(stage: &'static str, format: &Format, source: &Path, target: &Path) -> Result<(), StageError> {
    let coroutines = std::env::var("OSBUILD_QEMU_IMG_COROUTINES").ok();
    Command::new("qemu-img").args(argv(format, coroutines.as_deref())).arg(source).arg(target).run(stage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{need, output};
    use crate::testutil::args;
    use serde_json::{json, Value};
    use std::path::{Path, PathBuf};

    const SIZE: u64 = 8 << 20;

    /// A raw 8 MiB image with 4 MiB of compressible, non-zero data as input `image`.
    fn setup(dir: &Path, options: Value) -> StageArgs {
        let tree = dir.join("tree");
        let input = dir.join("input");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::create_dir_all(&input).unwrap();
        let mut data: Vec<u8> = (0..(4u32 << 20) / 4).flat_map(|i| (i % 1021).to_le_bytes()).collect();
        data.resize(SIZE as usize, 0);
        std::fs::write(input.join("sha256:1234"), &data).unwrap();
        let mut a = args(&tree, options);
        a.inputs.insert("image".into(), json!({"path": input, "data": {"files": {"sha256:1234": {}}}}));
        a
    }

    /// `qemu-img info` of `p`, probing its format unless `fmt` is given.
    fn info(p: &Path, fmt: Option<&str>) -> Value {
        let mut a = vec!["info", "--output=json"];
        a.extend(fmt.map(|f| ["-f", f]).into_iter().flatten());
        a.push(p.to_str().unwrap());
        serde_json::from_str(&output("qemu-img", &a, "qemu-utils")).unwrap()
    }

    /// Convert with `format`, check the format and virtual size, and that the content
    /// converts back to the input.
    fn convert(format: Value) -> (tempfile::TempDir, PathBuf, Value) {
        need("qemu-img", "qemu-utils");
        let t = tempfile::tempdir().unwrap();
        let a = setup(t.path(), json!({"filename": "/disk.out", "format": format.clone()}));
        Qemu::execute(&a).unwrap();
        let out = a.tree.join("disk.out");
        let ty = format["type"].as_str().unwrap();
        // a fixed VHD only has a footer, which qemu-img does not probe for
        let fixed_vpc = ty == "vpc" && format.get("subformat").is_none_or(|s| s == "fixed");
        let i = info(&out, fixed_vpc.then_some("vpc"));
        assert_eq!(i["format"], ty, "{i}");
        assert_eq!(i["virtual-size"].as_u64(), Some(SIZE), "{i}");
        let back = t.path().join("back.raw");
        output(
            "qemu-img",
            &["convert", "-f", ty, "-O", "raw", out.to_str().unwrap(), back.to_str().unwrap()],
            "qemu-utils",
        );
        assert!(std::fs::read(&back).unwrap() == std::fs::read(t.path().join("input/sha256:1234")).unwrap());
        (t, out, i)
    }

    #[test]
    fn argv_is_upstreams() {
        let f = |v: Value| serde_json::from_value::<Format>(v).unwrap();
        assert_eq!(
            argv(&f(json!({"type": "qcow2", "compat": "0.10"})), None).join(" "),
            "convert -O qcow2 -c -o compat=0.10"
        );
        assert_eq!(
            argv(&f(json!({"type": "qcow2", "compression": false})), Some("4")).join(" "),
            "convert -O qcow2 -m 4"
        );
        assert_eq!(
            argv(
                &f(
                    json!({"type": "vmdk", "subformat": "streamOptimized", "adapter_type": "lsilogic", "compat6": true})
                ),
                None
            )
            .join(" "),
            "convert -O vmdk -c -o adapter_type=lsilogic,compat6,subformat=streamOptimized"
        );
        assert_eq!(argv(&f(json!({"type": "vmdk", "compression": false})), None).join(" "), "convert -O vmdk");
        assert_eq!(argv(&f(json!({"type": "vpc"})), None).join(" "), "convert -O vpc -o subformat=fixed,force_size");
        assert_eq!(
            argv(&f(json!({"type": "vpc", "subformat": "dynamic", "force_size": false})), None).join(" "),
            "convert -O vpc -o subformat=dynamic"
        );
        assert_eq!(argv(&f(json!({"type": "vhdx"})), None).join(" "), "convert -O vhdx");
        assert!(serde_json::from_value::<Format>(json!({"type": "vdi", "compression": true})).is_err());
        assert!(serde_json::from_value::<Format>(json!({"type": "raw"})).is_err());
    }

    #[test]
    fn qcow2_compat_and_compression() {
        let (_t, out, i) = convert(json!({"type": "qcow2", "compat": "0.10"}));
        assert_eq!(i["format-specific"]["data"]["compat"], "0.10", "{i}");
        let compressed = std::fs::metadata(&out).unwrap().len();
        let (_t, out, i) = convert(json!({"type": "qcow2", "compression": false}));
        assert_eq!(i["format-specific"]["data"]["compat"], "1.1", "{i}");
        let plain = std::fs::metadata(&out).unwrap().len();
        assert!(compressed * 2 < plain, "compressed {compressed} vs plain {plain}");
    }

    #[test]
    fn vmdk_stream_optimized_with_adapter() {
        let (_t, out, i) = convert(json!({"type": "vmdk", "subformat": "streamOptimized", "adapter_type": "lsilogic"}));
        assert_eq!(i["format-specific"]["data"]["create-type"], "streamOptimized", "{i}");
        assert_eq!(i["format-specific"]["data"]["extents"][0]["compressed"], true, "{i}");
        let head = std::fs::read(&out).unwrap();
        let text = String::from_utf8_lossy(&head[..4096.min(head.len())]);
        assert!(text.contains("ddb.adapterType = \"lsilogic\""), "{text}");
    }

    #[test]
    fn vmdk_monolithic_flat_without_compression() {
        let (_t, _out, i) = convert(json!({"type": "vmdk", "subformat": "monolithicFlat", "compression": false}));
        assert_eq!(i["format-specific"]["data"]["create-type"], "monolithicFlat", "{i}");
    }

    #[test]
    fn vpc_fixed_and_dynamic() {
        let (_t, out, _) = convert(json!({"type": "vpc"}));
        // fixed: the data, then a 512-byte footer
        assert_eq!(std::fs::metadata(&out).unwrap().len(), SIZE + 512);
        let footer = std::fs::read(&out).unwrap();
        assert_eq!(&footer[SIZE as usize..SIZE as usize + 8], b"conectix");
        let (_t, out, _) = convert(json!({"type": "vpc", "subformat": "dynamic"}));
        let head = std::fs::read(&out).unwrap();
        // dynamic: a footer copy at the start, then the dynamic disk header
        assert_eq!(&head[..8], b"conectix");
        assert_eq!(&head[512..520], b"cxsparse");
    }

    #[test]
    fn vdi_and_vhdx() {
        convert(json!({"type": "vdi"}));
        convert(json!({"type": "vhdx"}));
    }

    #[test]
    fn bad_input_fails_naming_qemu_img() {
        need("qemu-img", "qemu-utils");
        let t = tempfile::tempdir().unwrap();
        let mut a = setup(t.path(), json!({"filename": "x.qcow2", "format": {"type": "qcow2"}}));
        a.inputs.insert("image".into(), json!({"path": t.path().join("nope"), "data": {"files": {"f": {}}}}));
        let e = Qemu::execute(&a).unwrap_err().to_string();
        assert!(e.starts_with("`qemu-img convert -O qcow2 -c "), "{e}");
    }
}
