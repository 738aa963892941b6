//! `org.osbuild.qemu` (assembler): a partitioned disk image holding the input tree, with the
//! BIOS GRUB core image installed, converted to the requested VM image format.
//!
//! Order as upstream: write the partition table (sfdisk), install GRUB's boot and core images
//! (`bootloader.type` grub2, the default for `dos` tables), make and mount every file system
//! (shortest mount point first), copy the tree, then convert. The raw image is built beside the
//! output (not in memory) and removed afterwards. `zipl` (s390x) is not supported.

use super::disk::{copy_tree, mkfs, LoopDir, Mounted};
use crate::util::{run_tool, spawn_error, tree_path};
use crate::Stage;
use crate::{StageArgs, StageError, StageResult};
use serde::Deserialize;
use serde_json::Value;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const SECTOR: u64 = 512;
const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";

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
        let image = args.tree.join(".osbuild-qemu-image.raw");
        let result =
            assemble(&o, label, &mut parts, &input, &image, &args.tree).and_then(|()| convert(&o, &image, &out));
        let _ = std::fs::remove_file(&image);
        result.map(|()| None)
    }
}

fn assemble(
    o: &Options,
    label: &str,
    parts: &mut [Partition],
    tree: &Path,
    image: &Path,
    outdir: &Path,
) -> Result<(), StageError> {
    run_tool(Qemu::NAME, Command::new("truncate").arg("--size").arg(o.size.to_string()).arg(image))?;
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

    let root = outdir.join(".osbuild-qemu-mnt");
    let loops = LoopDir::new(Qemu::NAME)?;
    let mut with_fs: Vec<&Partition> = parts.iter().filter(|p| p.filesystem.is_some()).collect();
    with_fs.sort_by_key(|p| p.filesystem.as_ref().map(|f| f.mountpoint.len()));
    // Declared after `loops` so mounts drop (unmount) before the loop devices detach.
    let mut attached = Vec::new();
    let mut mounted = Vec::new();
    for p in with_fs {
        let fs = p.filesystem.as_ref().expect("filtered");
        let lo = loops.attach(Qemu::NAME, image, p.start.unwrap_or(0) * SECTOR, p.size.unwrap_or(0) * SECTOR)?;
        mkfs(Qemu::NAME, &fs.kind, lo.node(), &fs.uuid, fs.label.as_deref())?;
        let target = root.join(fs.mountpoint.trim_start_matches('/'));
        mounted.push(Mounted::new(Qemu::NAME, lo.node(), &target, &fs.kind)?);
        attached.push(lo);
    }
    copy_tree(Qemu::NAME, tree, &root)?;
    while let Some(m) = mounted.pop() {
        drop(m);
    }
    drop(attached);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// Write the table with sfdisk, then read back where each partition ended up.
fn write_table(label: &str, ptuuid: &str, parts: &mut [Partition], image: &Path) -> Result<(), StageError> {
    let mut script = format!("label: {label}\nlabel-id: {ptuuid}");
    for p in parts.iter() {
        let mut fields = Vec::new();
        let start = p.start.map(|v| v.to_string());
        let size = p.size.map(|v| v.to_string());
        for (key, value) in
            [("start", &start), ("size", &size), ("type", &p.kind), ("name", &p.name), ("uuid", &p.uuid)]
        {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty() && v.as_str() != "0") {
                fields.push(format!("{key}=\"{v}\""));
            }
        }
        if p.bootable {
            fields.push("bootable".into());
        }
        script.push('\n');
        script.push_str(&fields.join(", "));
    }
    sfdisk_write(image, &script)?;
    let out =
        Command::new("sfdisk").arg("--json").arg(image).output().map_err(|e| spawn_error(Qemu::NAME, "sfdisk", e))?;
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| StageError::Invalid(format!("cannot read back the partition table: {e}")))?;
    let disk = v["partitiontable"]["partitions"].as_array().cloned().unwrap_or_default();
    if disk.len() != parts.len() {
        return Err(StageError::Invalid(format!("sfdisk made {} partitions, {} asked for", disk.len(), parts.len())));
    }
    for (p, d) in parts.iter_mut().zip(disk) {
        p.start = d["start"].as_u64();
        p.size = d["size"].as_u64();
        p.kind = d["type"].as_str().map(str::to_owned);
    }
    Ok(())
}

fn sfdisk_write(image: &Path, script: &str) -> Result<(), StageError> {
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .arg(image)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(Qemu::NAME, "sfdisk", e))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| spawn_error(Qemu::NAME, "sfdisk", e))?;
    let status = child.wait().map_err(|e| spawn_error(Qemu::NAME, "sfdisk", e))?;
    if !status.success() {
        return Err(StageError::Invalid(format!("sfdisk failed ({status}) on the script:\n{script}")));
    }
    Ok(())
}

/// The GRUB core image into the MBR gap (dos) or the BIOS boot partition (gpt), boot.img into
/// the MBR pointing at it. The core's prefix is `/boot/grub2` on the partition holding /boot.
fn install_grub2(image: &Path, label: &str, parts: &[Partition], platform: &str) -> Result<(), StageError> {
    let mountpoint = |p: &Partition| p.filesystem.as_ref().map(|f| f.mountpoint.clone());
    let (index, boot) = parts
        .iter()
        .enumerate()
        .find(|(_, p)| mountpoint(p).as_deref() == Some("/boot"))
        .or_else(|| parts.iter().enumerate().find(|(_, p)| mountpoint(p).as_deref() == Some("/")))
        .ok_or_else(|| StageError::Invalid("grub2: no partition holds /boot or /".into()))?;
    let fs = boot.filesystem.as_ref().expect("has a mount point");
    let mut modules: Vec<&str> = if platform == "i386-pc" { vec!["biosdisk"] } else { vec![] };
    modules.push(if label == "gpt" { "part_gpt" } else { "part_msdos" });
    modules.push(match fs.kind.as_str() {
        "ext4" => "ext2",
        "xfs" => "xfs",
        "btrfs" => "btrfs",
        other => return Err(StageError::Invalid(format!("grub2: unknown boot file system type '{other}'"))),
    });
    let grub_label = if label == "gpt" { "gpt" } else { "msdos" };
    let grub_path = Path::new("/boot/grub2")
        .strip_prefix(&fs.mountpoint)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from("boot/grub2"));
    let prefix = format!("(,{grub_label}{})/{}", index + 1, grub_path.display());
    let dir = format!("/usr/lib/grub/{platform}");
    let core = image.with_extension("core");
    let mkimage = if which("grub2-mkimage") { "grub2-mkimage" } else { "grub-mkimage" };
    let mut cmd = Command::new(mkimage);
    cmd.args(["--directory", &dir, "--prefix", &prefix, "--format", platform, "--compression", "auto", "--output"])
        .arg(&core)
        .args(&modules);
    run_tool(Qemu::NAME, &mut cmd)?;
    let core_bytes = std::fs::read(&core).map_err(|e| io_err(&core, e));
    let _ = std::fs::remove_file(&core);
    let core_bytes = core_bytes?;

    let mut f = std::fs::OpenOptions::new().write(true).open(image).map_err(|e| io_err(image, e))?;
    let location = if label == "gpt" {
        let bb = parts
            .iter()
            .find(|p| p.kind.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(BIOS_BOOT)))
            .ok_or_else(|| StageError::Invalid("grub2: the gpt table has no BIOS boot partition".into()))?;
        let (start, size) = (bb.start.unwrap_or(0), bb.size.unwrap_or(0));
        if size * SECTOR < core_bytes.len() as u64 {
            return Err(StageError::Invalid("grub2: the BIOS boot partition is too small for the core image".into()));
        }
        write_at(&mut f, image, start * SECTOR, &core_bytes)?;
        // The core's first sector holds where the rest of it is (GRUB's diskboot blocklist).
        write_at(&mut f, image, start * SECTOR + 500, &(start + 1).to_le_bytes())?;
        start
    } else {
        let first = parts.first().and_then(|p| p.start).unwrap_or(0) * SECTOR;
        if core_bytes.len() as u64 >= first.saturating_sub(SECTOR) {
            return Err(StageError::Invalid("grub2: the core image does not fit before the first partition".into()));
        }
        write_at(&mut f, image, SECTOR, &core_bytes)?;
        1
    };
    if platform == "i386-pc" {
        let boot_img = PathBuf::from(&dir).join("boot.img");
        let boot = std::fs::read(&boot_img).map_err(|e| io_err(&boot_img, e))?;
        write_at(&mut f, image, 0, &boot[..440.min(boot.len())])?;
        write_at(&mut f, image, 0x5c, &location.to_le_bytes())?;
    }
    f.sync_all().map_err(|e| io_err(image, e))
}

fn write_at(f: &mut std::fs::File, path: &Path, offset: u64, data: &[u8]) -> Result<(), StageError> {
    f.seek(SeekFrom::Start(offset)).and_then(|_| f.write_all(data)).map_err(|e| io_err(path, e))
}

fn io_err(path: &Path, e: std::io::Error) -> StageError {
    StageError::Invalid(format!("{}: {e}", path.display()))
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// The raw image as `format` at `out`, with upstream's qemu-img flags.
fn convert(o: &Options, image: &Path, out: &Path) -> Result<(), StageError> {
    match o.format.as_str() {
        "raw" => std::fs::rename(image, out).map_err(|e| io_err(out, e)),
        "raw.xz" => {
            let file = std::fs::File::create(out).map_err(|e| io_err(out, e))?;
            run_tool(
                Qemu::NAME,
                Command::new("xz")
                    .args(["--keep", "--stdout", "-0"])
                    .arg(image)
                    .stdout(file)
                    .env("XZ_OPT", "--threads 0"),
            )
        }
        fmt => {
            let mut cmd = Command::new("qemu-img");
            cmd.args(["convert", "-O", fmt]);
            match fmt {
                "qcow2" => {
                    cmd.arg("-c");
                    if let Some(c) = &o.qcow2_compat {
                        cmd.arg("-o").arg(format!("compat={c}"));
                    }
                }
                "vmdk" => {
                    cmd.arg("-c");
                    if let Some(s) = &o.vmdk_subformat {
                        cmd.arg("-o").arg(format!("subformat={s}"));
                    }
                }
                "vpc" => {
                    cmd.args(["-o", "subformat=fixed,force_size"]);
                }
                "vdi" | "vhdx" => {}
                other => return Err(StageError::Invalid(format!("unknown format '{other}'"))),
            }
            run_tool(Qemu::NAME, cmd.arg(image).arg(out))
        }
    }
}
