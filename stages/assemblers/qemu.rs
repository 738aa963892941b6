//! `org.osbuild.qemu` (assembler): a partitioned disk image holding the input tree, with the
//! BIOS GRUB core image installed, converted to the requested VM image format.
//!
//! Order as upstream: write the partition table (sfdisk), install GRUB's boot and core images
//! (`bootloader.type` grub2, the default for `dos` tables), make and mount every file system
//! (shortest mount point first), copy the tree, then convert. The raw image is built beside the
//! output (not in memory) and removed afterwards. `zipl` (s390x) is not supported.
//!
//! Each step is the v2 stage's own code: the table is `org.osbuild.sfdisk`'s, the GRUB core is
//! made and placed by `org.osbuild.grub2.inst`, the file systems are made with the command
//! lines of `org.osbuild.mkfs.*`, and the conversion is `org.osbuild.qemu`'s.

use super::disk::{copy_tree, mkfs, LoopDir, Mounted};
use crate::disk_util;
use crate::grub2_inst::{self, Core, CoreFs, CoreKind, PartLabel, Prefix, PrefixKind, PrefixPartition};
use crate::tool::CommandRunExt;
use crate::util::tree_path;
use crate::{qemu, sfdisk, Stage};
use crate::{StageArgs, StageError, StageResult};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

const SECTOR: u64 = 512;
const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
/// The PReP boot partition of Open Firmware, as an MBR type and as a GPT type.
const PREP: [&str; 2] = ["41", "9E1A2D38-C612-4316-AA26-8B49521E5A8B"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub format: String,
    pub filename: String,
    pub size: u64,
    pub ptuuid: String,
    pub pttype: Option<String>,
    pub root_fs_uuid: Option<String>,
    pub root_fs_type: Option<String>,
    pub partitions: Option<Vec<Partition>>,
    pub bootloader: Option<Bootloader>,
    pub qcow2_compat: Option<String>,
    pub vmdk_subformat: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Partition {
    pub start: Option<u64>,
    pub size: Option<u64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub bootable: bool,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub filesystem: Option<Filesystem>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Filesystem {
    #[serde(rename = "type")]
    pub kind: String,
    pub uuid: String,
    pub label: Option<String>,
    pub mountpoint: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Bootloader {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub platform: Option<String>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Qemu;

impl Stage for Qemu {
    const NAME: &'static str = "org.osbuild.qemu";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        let input = args.input_path("tree")?;
        if !o.size.is_multiple_of(SECTOR) {
            return Err(StageError::Invalid("`size` must be a multiple of the sector size (512)".into()));
        }
        let format = output_format(&o)?;
        let label = match o.pttype.as_deref() {
            None | Some("dos") | Some("mbr") => "dos",
            Some(other) => other,
        };
        let mut parts = match &o.partitions {
            Some(p) => p.clone(),
            None => vec![Partition {
                start: None,
                size: None,
                kind: Some("83".into()),
                bootable: true,
                name: None,
                uuid: None,
                filesystem: Some(Filesystem {
                    kind: o.root_fs_type.clone().unwrap_or_else(|| "ext4".into()),
                    uuid: o
                        .root_fs_uuid
                        .clone()
                        .ok_or_else(|| StageError::Invalid("root_fs_uuid is required".into()))?,
                    label: None,
                    mountpoint: "/".into(),
                }),
            }],
        };

        let out = tree_path(args, &o.filename, false)?;
        // the raw image beside the output, removed however the assembler ends (unless it is
        // the output itself)
        let image = tempfile::Builder::new()
            .prefix(".osbuild-qemu-image.")
            .suffix(".raw")
            // the raw output is this file renamed: 0644, as upstream's
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(&args.tree)
            .map_err(StageError::io("cannot create a scratch file in", &args.tree))?
            .into_temp_path();
        assemble(&o, label, &mut parts, &input, &image, &args.tree)?;
        convert(&format, &image, &out)?;
        Ok(None)
    }
}

/// What the image becomes: raw, xz-compressed raw, or a `qemu-img` format with upstream's v1
/// settings expressed as the v2 stage's options.
enum Output {
    Raw,
    RawXz,
    Image(qemu::Format),
}

fn output_format(o: &Options) -> Result<Output, StageError> {
    Ok(match o.format.as_str() {
        "raw" => Output::Raw,
        "raw.xz" => Output::RawXz,
        "qcow2" => Output::Image(qemu::Format::Qcow2 { compression: None, compat: o.qcow2_compat.clone() }),
        "vdi" => Output::Image(qemu::Format::Vdi {}),
        "vmdk" => Output::Image(qemu::Format::Vmdk {
            adapter_type: None,
            compat6: None,
            compression: None,
            subformat: o.vmdk_subformat.clone(),
        }),
        "vpc" => Output::Image(qemu::Format::Vpc { force_size: None, subformat: None }),
        "vhdx" => Output::Image(qemu::Format::Vhdx {}),
        other => return Err(StageError::Invalid(format!("unknown format '{other}'"))),
    })
}

fn assemble(
    o: &Options,
    label: &str,
    parts: &mut [Partition],
    tree: &Path,
    image: &Path,
    outdir: &Path,
) -> Result<(), StageError> {
    Command::new("truncate").arg("--size").arg(o.size.to_string()).arg(image).run(Qemu::NAME)?;
    write_table(label, &o.ptuuid, parts, image)?;

    let mut bootloader = o.bootloader.as_ref().and_then(|b| b.kind.clone()).unwrap_or_else(|| "none".into());
    if bootloader == "none" && label == "dos" {
        bootloader = "grub2".into();
    }
    match bootloader.as_str() {
        "grub2" => {
            let platform = o.bootloader.as_ref().and_then(|b| b.platform.clone()).unwrap_or_else(|| "i386-pc".into());
            install_grub2(image, label, parts, &platform)?;
        }
        "none" => {}
        other => return Err(StageError::Invalid(format!("bootloader type '{other}' is not supported by osbuild-rs"))),
    }

    // Declared first, so it is removed after everything mounted in it is unmounted.
    let root_dir = tempfile::Builder::new()
        .prefix(".osbuild-qemu-mnt.")
        .tempdir_in(outdir)
        .map_err(StageError::io("cannot create a scratch directory in", outdir))?;
    let root = root_dir.path();
    let loops = LoopDir::new()?;
    let mut with_fs: Vec<&Partition> = parts.iter().filter(|p| p.filesystem.is_some()).collect();
    with_fs.sort_by_key(|p| p.filesystem.as_ref().map(|f| f.mountpoint.len()));
    // Declared after `loops` so mounts drop (unmount) before the loop devices detach.
    let mut attached = Vec::new();
    let mut mounted = Vec::new();
    for p in with_fs {
        let fs = p.filesystem.as_ref().expect("filtered");
        let lo = loops.attach(image, p.start.unwrap_or(0) * SECTOR, p.size.unwrap_or(0) * SECTOR)?;
        mkfs(Qemu::NAME, &fs.kind, lo.node(), &fs.uuid, fs.label.as_deref())?;
        let target = root.join(fs.mountpoint.trim_start_matches('/'));
        mounted.push(Mounted::new(lo.node(), &target, &fs.kind)?);
        attached.push(lo);
    }
    copy_tree(Qemu::NAME, tree, root)?;
    while let Some(m) = mounted.pop() {
        drop(m);
    }
    drop(attached);
    drop(loops);
    root_dir.close().map_err(StageError::io("cannot remove", outdir))
}

/// Write the table with the `org.osbuild.sfdisk` stage's code, then take over where each
/// partition ended up.
fn write_table(label: &str, ptuuid: &str, parts: &mut [Partition], image: &Path) -> Result<(), StageError> {
    let table = sfdisk::Options {
        label: label.to_owned(),
        uuid: ptuuid.to_owned(),
        partitions: parts
            .iter()
            .map(|p| disk_util::Partition {
                bootable: Some(p.bootable),
                name: p.name.clone(),
                size: p.size,
                start: p.start,
                ptype: p.kind.clone(),
                uuid: p.uuid.clone(),
                ..disk_util::Partition::default()
            })
            .collect(),
    };
    let laid_out = sfdisk::write_table(Qemu::NAME, image, &table)?;
    for (p, d) in parts.iter_mut().zip(laid_out) {
        p.start = d["start"].as_u64();
        p.size = d["size"].as_u64();
        p.kind = d["type"].as_str().map(str::to_owned);
    }
    Ok(())
}

/// The GRUB core image made and placed by `org.osbuild.grub2.inst`'s code: into the MBR gap
/// (dos), the BIOS boot partition (gpt) or the PReP partition (Open Firmware), boot.img into
/// the MBR on i386-pc. The core's prefix is `/boot/grub2` on the partition holding /boot.
fn install_grub2(image: &Path, label: &str, parts: &[Partition], platform: &str) -> Result<(), StageError> {
    let mountpoint = |p: &Partition| p.filesystem.as_ref().map(|f| f.mountpoint.clone());
    let (index, boot) = parts
        .iter()
        .enumerate()
        .find(|(_, p)| mountpoint(p).as_deref() == Some("/boot"))
        .or_else(|| parts.iter().enumerate().find(|(_, p)| mountpoint(p).as_deref() == Some("/")))
        .ok_or_else(|| StageError::Invalid("grub2: no partition holds /boot or /".into()))?;
    let fs = boot.filesystem.as_ref().expect("has a mount point");
    let partlabel = if label == "gpt" { PartLabel::Gpt } else { PartLabel::Dos };
    let filesystem = match fs.kind.as_str() {
        "ext4" => CoreFs::Ext4,
        "xfs" => CoreFs::Xfs,
        "btrfs" => CoreFs::Btrfs,
        other => return Err(StageError::Invalid(format!("grub2: unknown boot file system type '{other}'"))),
    };
    let grub_path = Path::new("/boot/grub2")
        .strip_prefix(&fs.mountpoint)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from("boot/grub2"));
    let core = Core { _kind: CoreKind::Mkimage, partlabel, filesystem, binary: None };
    let prefix = Prefix::Partition(PrefixPartition {
        _kind: PrefixKind::Partition,
        partlabel,
        number: index as u64,
        path: grub_path.display().to_string(),
    });
    let core_image = grub2_inst::make_core(Qemu::NAME, platform, &core, &prefix, None)?;
    let find = |types: &[&str], what: &str| {
        parts
            .iter()
            .find(|p| p.kind.as_deref().is_some_and(|t| types.iter().any(|k| t.eq_ignore_ascii_case(k))))
            .and_then(|p| p.start)
            .ok_or_else(|| StageError::Invalid(format!("grub2: the partition table has no {what} partition")))
    };
    let location = if platform == "powerpc-ieee1275" {
        find(&PREP, "PReP")?
    } else if label == "gpt" {
        find(&[BIOS_BOOT], "BIOS boot")?
    } else {
        1
    };
    grub2_inst::install_core(platform, SECTOR, image, &core_image, location)
}

/// The raw image as the requested format at `out`.
fn convert(format: &Output, image: &Path, out: &Path) -> Result<(), StageError> {
    match format {
        Output::Raw => std::fs::rename(image, out).map_err(StageError::io("cannot move the image to", out)),
        Output::RawXz => {
            let file = std::fs::File::create(out).map_err(StageError::io("cannot create", out))?;
            Command::new("xz")
                .args(["--keep", "--stdout", "-0"])
                .arg(image)
                .stdout(file)
                .env("XZ_OPT", "--threads 0")
                .run(Qemu::NAME)
        }
        Output::Image(f) => qemu::convert(Qemu::NAME, f, image, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Upstream's v1 `qemu-img convert` arguments (`extra_args` in its assembler), reached
    /// through the v2 stage's options.
    #[test]
    fn v1_formats_give_upstreams_qemu_img_arguments() {
        let argv = |options: serde_json::Value| -> Vec<String> {
            let o: Options = serde_json::from_value(options).unwrap();
            match output_format(&o).unwrap() {
                Output::Image(f) => qemu::argv(&f, None),
                _ => panic!("not a qemu-img format"),
            }
        };
        let base = |format: &str| json!({"format": format, "filename": "x", "size": 1024, "ptuuid": "0x1"});
        let mut qcow2 = base("qcow2");
        qcow2["qcow2_compat"] = json!("1.1");
        assert_eq!(argv(qcow2), ["convert", "-O", "qcow2", "-c", "-o", "compat=1.1"]);
        let mut vmdk = base("vmdk");
        vmdk["vmdk_subformat"] = json!("streamOptimized");
        assert_eq!(argv(vmdk), ["convert", "-O", "vmdk", "-c", "-o", "subformat=streamOptimized"]);
        assert_eq!(argv(base("vpc")), ["convert", "-O", "vpc", "-o", "subformat=fixed,force_size"]);
        assert_eq!(argv(base("vdi")), ["convert", "-O", "vdi"]);
        assert_eq!(argv(base("vhdx")), ["convert", "-O", "vhdx"]);
        let o: Options = serde_json::from_value(base("qcow3")).unwrap();
        assert_eq!(output_format(&o).err().unwrap().to_string(), "unknown format 'qcow3'");
    }
}
