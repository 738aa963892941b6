//! The GRUB stages with Debian's real GRUB: `org.osbuild.grub2.legacy` and `org.osbuild.grub2`
//! write configurations whose every command Debian's i386-pc modules provide (and that
//! `grub-script-check` accepts), copy those modules; `org.osbuild.grub2.inst` writes a core
//! image built by `grub-mkimage` and `boot.img` into GPT and DOS disk images made by `sfdisk`,
//! leaving the partition table alone; and `grub-fstest` (GRUB's own disk and file system
//! code) finds the configuration and modules under the prefix the core image was given.
//!
//! Needs: `apt-get install -y grub-pc-bin grub-common fdisk e2fsprogs` (grub-pc-bin only
//! ships the i386-pc files; it does not touch the host's boot loader).
//!
//! Upstream osbuild's Python stages (`OSBUILD_UPSTREAM`, else ../shared/upstream/osbuild) also
//! run on the same options, and the trees are compared byte for byte.

#[path = "common/upstream.rs"]
#[allow(dead_code)]
mod upstream;

#[path = "common/compat.rs"]
mod compat;

use osbuild_rs::schema::{module_schema, validate_against, ModuleKind};
use osbuild_rs::stages::{error_chain, find, StageArgs};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODULES: &str = "/usr/lib/grub/i386-pc";
const ROOT_UUID: &str = "76a22bf4-f153-4541-b6c7-0332c0dfaeac";
const BOOT_UUID: &str = "156f0420-627b-4151-ae6f-fda298097515";
const SERIAL: &str = "serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1";
const KERNEL: &str = "6.1.0-18-amd64";
const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
const LINUX_FS: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

fn need(tool: &str) {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap().status.success();
    assert!(found, "{tool} is missing: apt-get install -y grub-pc-bin grub-common fdisk e2fsprogs");
}

fn need_grub() {
    for t in ["grub-mkimage", "grub-script-check", "grub-fstest", "sfdisk", "mkfs.ext4"] {
        need(t);
    }
    assert!(
        Path::new(MODULES).join("boot.img").exists(),
        "{MODULES} is missing: apt-get install -y grub-pc-bin grub-common"
    );
}

/// Run `stage` on `tree` with `options` (checked against our schema first, unless `invalid`).
fn run_stage(stage: &str, tree: &Path, options: Value) -> Result<(), String> {
    let info = find(stage).unwrap();
    let errors =
        validate_against(&format!("stages/{stage}"), module_schema(ModuleKind::Stage, stage).unwrap(), &options);
    assert!(errors.is_empty(), "{stage}: schema refused {options}: {errors:?}");
    info.check_options(&options).map_err(|e| error_chain(&e))?;
    let args: StageArgs = serde_json::from_value(json!({"tree": tree, "options": options})).unwrap();
    (info.run)(&args).map(drop).map_err(|e| error_chain(&e))
}

fn tmp_tree() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    (d, tree)
}

fn read(tree: &Path, rel: &str) -> String {
    fs::read_to_string(tree.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A Debian-like /boot: kernel and Debian-named initrd.
fn debian_boot(tree: &Path) {
    fs::create_dir_all(tree.join("boot")).unwrap();
    fs::write(tree.join(format!("boot/vmlinuz-{KERNEL}")), "kernel").unwrap();
    fs::write(tree.join(format!("boot/initrd.img-{KERNEL}")), "initrd").unwrap();
}

/// `grub-script-check` accepts the file.
fn script_check(path: &Path) {
    let out = Command::new("grub-script-check").arg(path).output().unwrap();
    assert!(out.status.success(), "grub-script-check {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
}

/// The command names a grub.cfg runs (keywords, functions it defines, assignments and bare
/// variable expansions left out).
fn commands(cfg: &str) -> BTreeSet<String> {
    let keywords = ["if", "then", "else", "fi", "function", "menuentry", "{", "}"];
    let mut defined = BTreeSet::new();
    let mut out = BTreeSet::new();
    for line in cfg.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let first = line.split_whitespace().next().unwrap();
        if first == "function" {
            defined.insert(line.split_whitespace().nth(1).unwrap().to_owned());
        }
        if first == "menuentry" {
            out.insert("menuentry".to_owned());
        }
        if keywords.contains(&first) || first.starts_with('$') || first.contains('=') {
            continue;
        }
        out.insert(first.to_owned());
    }
    out.retain(|c| !defined.contains(c));
    out
}

/// Every command of `cfg` is a GRUB core command or comes from a module in `module_dir`
/// (found through that directory's command.lst), and every `insmod` names a module there.
fn assert_debian_grub_runs(cfg: &str, module_dir: &Path) {
    let lst = fs::read_to_string(module_dir.join("command.lst")).unwrap();
    let provided: Vec<(String, String)> = lst
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(c, m)| (c.trim_start_matches('*').to_owned(), m.to_owned()))
        .collect();
    let core = ["set", "unset", "insmod", "ls", "export"];
    for cmd in commands(cfg) {
        if core.contains(&cmd.as_str()) {
            continue;
        }
        let module = provided
            .iter()
            .find(|(c, _)| *c == cmd)
            .map(|(_, m)| m)
            .unwrap_or_else(|| panic!("GRUB has no command '{cmd}' in {}", module_dir.display()));
        assert!(
            module_dir.join(format!("{module}.mod")).exists(),
            "{cmd}: {module}.mod not in {}",
            module_dir.display()
        );
    }
    for line in cfg.lines().map(str::trim).filter(|l| l.starts_with("insmod ")) {
        let m = line.trim_start_matches("insmod ").trim();
        assert!(module_dir.join(format!("{m}.mod")).exists(), "insmod {m}: not in {}", module_dir.display());
    }
}

/// The modules upstream copies: `*.mod` and `*.lst` except `fdt.lst`.
fn expected_modules() -> BTreeSet<String> {
    fs::read_dir(MODULES)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| (n.ends_with(".mod") || n.ends_with(".lst")) && n != "fdt.lst")
        .collect()
}

fn assert_modules_copied(tree: &Path) {
    let dir = tree.join("boot/grub2/i386-pc");
    let got: BTreeSet<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(got, expected_modules());
    assert!(got.contains("normal.mod") && got.contains("linux16.mod") && got.contains("command.lst"));
    for name in ["normal.mod", "command.lst", "ext2.mod"] {
        let (src, dst) = (Path::new(MODULES).join(name), dir.join(name));
        assert_eq!(fs::read(&src).unwrap(), fs::read(&dst).unwrap(), "{name}");
        let (a, b) = (fs::metadata(&src).unwrap(), fs::metadata(&dst).unwrap());
        assert_eq!(a.permissions().mode() & 0o7777, b.permissions().mode() & 0o7777, "{name}");
        assert_eq!(a.modified().unwrap(), b.modified().unwrap(), "{name}");
    }
    assert_eq!(
        fs::read(tree.join("boot/grub2/fonts/unicode.pf2")).unwrap(),
        fs::read("/usr/share/grub/unicode.pf2").unwrap()
    );
}

/// A fresh tree with Debian's kernel and initrd in `/boot`; needs GRUB in the build root.
fn debian_tree() -> (tempfile::TempDir, PathBuf) {
    need_grub();
    let (d, tree) = tmp_tree();
    debian_boot(&tree);
    (d, tree)
}

/// The BIOS `grub.cfg` `cfg` of `tree` parses and Debian's GRUB runs it with the tree's modules.
fn assert_bios_config_works(tree: &Path, cfg: &str) {
    assert_debian_grub_runs(cfg, &tree.join("boot/grub2/i386-pc"));
    script_check(&tree.join("boot/grub2/grub.cfg"));
}

fn legacy_debian_options() -> Value {
    json!({
        "rootfs": {"uuid": ROOT_UUID},
        "bios": {"platform": "i386-pc"},
        "config": {"cmdline": "ro console=ttyS0", "timeout": 5, "serial": SERIAL, "distributor": "Debian",
                   "terminal_input": ["serial", "console"], "terminal_output": ["serial", "console"]},
        "entries": [{"id": ROOT_UUID, "kernel": KERNEL, "default": true,
                     "product": {"name": "Debian GNU/Linux", "version": "12", "nick": "bookworm"}}]
    })
}

#[test]
fn legacy_config_for_debian_bios() {
    let (_d, tree) = debian_tree();
    run_stage("org.osbuild.grub2.legacy", &tree, legacy_debian_options()).unwrap();
    let cfg = read(&tree, "boot/grub2/grub.cfg");
    let want = format!(
        r#"
# Created by osbuild

set timeout=5

# load the grubenv file
load_env

# selection of the next boot entry
if [ "${{next_entry}}" ] ; then
   set default="${{next_entry}}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${{saved_entry}}"
fi

if [ "${{prev_saved_entry}}" ]; then
  set saved_entry="${{prev_saved_entry}}"
  save_env saved_entry
  set prev_saved_entry=
  save_env prev_saved_entry
  set boot_once=true
fi

function savedefault {{
  if [ -z "${{boot_once}}" ]; then
    saved_entry="${{chosen}}"
    save_env saved_entry
  fi
}}

{SERIAL}
terminal_input serial console
terminal_output serial console

menuentry 'Debian GNU/Linux ({KERNEL}) 12 (bookworm)' --class red --class gnu-linux --class gnu --class os --unrestricted --id 'gnulinux-{KERNEL}-advanced-{ROOT_UUID}' {{
	insmod all_video
	set gfxpayload=keep
	search --no-floppy --set=root --fs-uuid {ROOT_UUID}
	linux16 /boot/vmlinuz-{KERNEL} root=UUID={ROOT_UUID} ro console=ttyS0
	initrd16 /boot/initrd.img-{KERNEL}
}}

"#
    );
    assert_eq!(cfg, want);
    let env = read(&tree, "boot/grub2/grubenv");
    let head = format!("# GRUB Environment Block\nsaved_entry=gnulinux-{KERNEL}-advanced-{ROOT_UUID}\n");
    assert_eq!(env, format!("{head}{}", "#".repeat(1024 - head.len())));
    assert_eq!(
        read(&tree, "etc/default/grub"),
        format!(
            "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"ro console=ttyS0\"\nGRUB_DISABLE_SUBMENU=true\n\
             GRUB_DISABLE_RECOVERY=true\nGRUB_TIMEOUT_STYLE=countdown\nGRUB_DEFAULT=saved\n\
             GRUB_DISTRIBUTOR=\"Debian\"\nGRUB_SERIAL_COMMAND=\"{SERIAL}\"\n\
             GRUB_TERMINAL_INPUT=\"serial console\"\nGRUB_TERMINAL_OUTPUT=\"serial console\"\n"
        )
    );
    assert_modules_copied(&tree);
    assert!(!tree.join("boot/efi").exists());
    // what Debian's GRUB needs to run it is in the tree, where the core's prefix points
    assert_bios_config_works(&tree, &cfg);
}

#[test]
fn legacy_config_with_unset_terminals_and_separate_boot() {
    let (_d, tree) = debian_tree();
    let opts = json!({
        "rootfs": {"label": "root"}, "bootfs": {"label": "boot"}, "bios": {"platform": "i386-pc"},
        "write_defaults": false,
        "entries": [{"id": "x", "kernel": KERNEL, "product": {"name": "Debian", "version": "12"}},
                    {"id": "x", "kernel": "6.1.0-17-amd64", "product": {"name": "Debian", "version": "12"}}]
    });
    run_stage("org.osbuild.grub2.legacy", &tree, opts).unwrap();
    let cfg = read(&tree, "boot/grub2/grub.cfg");
    // upstream keeps the placeholders of unset options; GRUB expands them to nothing
    assert!(
        cfg.contains("\n}\n${serial}${terminal_input}${terminal_output}\n\nmenuentry 'Debian (6.1.0-18-amd64) 12' ")
    );
    assert!(cfg.contains(&format!("\tsearch --no-floppy --set=root --label boot\n\tlinux16 /vmlinuz-{KERNEL} root=LABEL=root \n\tinitrd16 /initrd.img-{KERNEL}\n}}\n\nmenuentry 'Debian (6.1.0-17-amd64) 12'")));
    // no initrd of either name in the tree for that one: upstream's name
    assert!(cfg.ends_with("\tinitrd16 /initramfs-6.1.0-17-amd64.img\n}\n\n"), "{cfg}");
    assert!(!tree.join("etc").exists());
    assert_eq!(read(&tree, "boot/grub2/grubenv"), format!("# GRUB Environment Block\n{}", "#".repeat(999)));
    assert_bios_config_works(&tree, &cfg);
}

#[test]
fn bls_hybrid_config_copies_modules_and_redirects_from_the_esp() {
    need_grub();
    let (_d, tree) = tmp_tree();
    fs::create_dir_all(tree.join("boot/grub2")).unwrap();
    fs::create_dir_all(tree.join("boot/efi/EFI/debian")).unwrap();
    std::os::unix::fs::symlink("../efi/EFI/debian/grubenv", tree.join("boot/grub2/grubenv")).unwrap();
    let opts = json!({"rootfs": {"uuid": ROOT_UUID}, "bootfs": {"uuid": BOOT_UUID}, "legacy": true,
                      "uefi": {"vendor": "debian"}, "kernel_opts": "ro quiet", "compat_version": 2,
                      "saved_entry": format!("{}-{KERNEL}", "f".repeat(32)),
                      "config": {"timeout": 3, "terminal_output": ["console"]}});
    run_stage("org.osbuild.grub2", &tree, opts).unwrap();
    // hybrid: one grubenv in /boot/grub2, the link into the ESP is replaced
    let env = tree.join("boot/grub2/grubenv");
    assert!(fs::symlink_metadata(&env).unwrap().is_file());
    assert!(!tree.join("boot/efi/EFI/debian/grubenv").exists());
    let head = format!(
        "# GRUB Environment Block\nkernelopts=root=UUID={ROOT_UUID} ro quiet\nsaved_entry={}-{KERNEL}\n",
        "f".repeat(32)
    );
    assert_eq!(fs::read_to_string(&env).unwrap(), format!("{head}{}", "#".repeat(1024 - head.len())));
    assert_eq!(
        read(&tree, "boot/efi/EFI/debian/grub.cfg"),
        "\nsearch --no-floppy --set prefix --file /grub2/grub.cfg\nset prefix=($prefix)/grub2\nconfigfile $prefix/grub.cfg\n"
    );
    let cfg = read(&tree, "boot/grub2/grub.cfg");
    let want = format!(
        r#"
set timeout=3

# load the grubenv file
load_env

# selection of the next boot entry via variables 'next_entry' and
# `saved_entry` present in the 'grubenv' file. Both variables are
# set by grub tools, like grub2-reboot, grub2-set-default

if [ "${{next_entry}}" ] ; then
   set default="${{next_entry}}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${{saved_entry}}"
fi

search --no-floppy --set=root --fs-uuid {BOOT_UUID}
set boot=${{root}}
function load_video {{
  insmod all_video
}}

terminal_output console
blscfg
"#
    );
    assert_eq!(cfg, want);
    assert_eq!(
        read(&tree, "etc/default/grub"),
        "GRUB_CMDLINE_LINUX=\"ro quiet\"\nGRUB_TIMEOUT=3\nGRUB_ENABLE_BLSCFG=true\nGRUB_TERMINAL_OUTPUT=\"console\"\n"
    );
    assert_modules_copied(&tree);
    script_check(&tree.join("boot/grub2/grub.cfg"));
    script_check(&tree.join("boot/efi/EFI/debian/grub.cfg"));
}

#[test]
fn bls_legacy_platform_must_be_in_the_build_root() {
    let (_d, tree) = tmp_tree();
    let e = run_stage("org.osbuild.grub2", &tree, json!({"rootfs": {"label": "r"}, "legacy": "powerpc-ieee1275"}))
        .unwrap_err();
    assert_eq!(e, "/usr/lib/grub/powerpc-ieee1275 not found in the build root, but org.osbuild.grub2 needs it");
}

#[test]
fn bls_uefi_install_copies_the_efi_directories() {
    let (d, tree) = tmp_tree();
    let src = d.path().join("efi/EFI");
    fs::create_dir_all(src.join("BOOT")).unwrap();
    fs::create_dir_all(src.join("debian")).unwrap();
    fs::write(src.join("BOOT/BOOTX64.EFI"), "shim").unwrap();
    fs::write(src.join("debian/grubx64.efi"), "grub").unwrap();
    fs::write(src.join("debian/shimx64.efi"), "shim").unwrap();
    let opts = json!({"rootfs": {"label": "root"},
                      "uefi": {"vendor": "debian", "install": true, "efi_src_dir": src}});
    run_stage("org.osbuild.grub2", &tree, opts).unwrap();
    let efi = tree.join("boot/efi/EFI");
    assert_eq!(read(&efi, "BOOT/BOOTX64.EFI"), "shim");
    assert_eq!(read(&efi, "debian/grubx64.efi"), "grub");
    // not hybrid, not unified: the main config goes to the ESP
    assert!(read(&efi, "debian/grub.cfg").ends_with("${serial}${terminal_input}${terminal_output}\nblscfg\n"));
    assert!(!tree.join("boot/grub2/grub.cfg").exists());
    let names: BTreeSet<String> =
        fs::read_dir(efi.join("debian")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["grub.cfg", "grubx64.efi", "shimx64.efi"].map(String::from).into());
}

// ------------------------------------------------------------------ grub2.inst

/// A disk image of `mib` MiB partitioned by `sfdisk` from `script`.
fn disk(dir: &Path, mib: u64, script: &str) -> PathBuf {
    let img = dir.join("tree/disk.img");
    fs::File::create(&img).unwrap().set_len(mib << 20).unwrap();
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .arg(&img)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk {script}");
    img
}

fn sfdisk_json(img: &Path) -> Value {
    let out = Command::new("sfdisk").arg("--json").arg(img).output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What grub-mkimage makes for these arguments (the stage must write exactly this).
fn mkimage(prefix: &str, format: &str, modules: &[&str]) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("core.img");
    let ok = Command::new("grub-mkimage")
        .args(["--directory", MODULES, "--prefix", prefix, "--format", format, "--compression", "auto", "--output"])
        .arg(&out)
        .args(modules)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    fs::read(out).unwrap()
}

fn inst_options(location: Option<u64>, label: &str, number: u64) -> Value {
    let mut o = json!({
        "filename": "disk.img", "platform": "i386-pc",
        "core": {"type": "mkimage", "partlabel": label, "filesystem": "ext4"},
        "prefix": {"type": "partition", "partlabel": label, "number": number, "path": "/boot/grub2"},
    });
    if let Some(l) = location {
        o["location"] = json!(l);
    }
    o
}

fn u64_at(data: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(data[off..off + 8].try_into().unwrap())
}

/// The MBR after the stage: boot.img's code with the core's sector patched in, and the
/// disk's own bytes (disk signature, partition table, 0x55AA) from 440 on unchanged.
fn assert_mbr(after: &[u8], before: &[u8], core_sector: u64) {
    let boot = fs::read(Path::new(MODULES).join("boot.img")).unwrap();
    assert_eq!(after[..0x5c], boot[..0x5c]);
    assert_eq!(u64_at(after, 0x5c), core_sector);
    assert_eq!(after[0x64..440], boot[0x64..440]);
    assert_eq!(after[440..512], before[440..512]);
    assert_eq!(after[510..512], [0x55, 0xaa]);
}

#[test]
fn inst_gpt_bios_boot_partition() {
    need_grub();
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("tree")).unwrap();
    let script = format!("label: gpt\nstart=2048, size=2048, type={BIOS_BOOT}\nstart=4096, type={LINUX_FS}\n");
    let img = disk(d.path(), 16, &script);
    let table = sfdisk_json(&img);
    let before = fs::read(&img).unwrap();

    run_stage("org.osbuild.grub2.inst", &d.path().join("tree"), inst_options(Some(2048), "gpt", 1)).unwrap();

    let after = fs::read(&img).unwrap();
    assert_eq!(after.len(), before.len());
    assert_eq!(sfdisk_json(&img), table);
    assert_mbr(&after, &before, 2048);
    // GPT header and entries untouched
    assert_eq!(after[512..2048 * 512], before[512..2048 * 512]);
    let mut core = mkimage("(,gpt2)/boot/grub2", "i386-pc", &["biosdisk", "part_gpt", "ext2"]);
    let sectors = core.len().div_ceil(512);
    // grub-mkimage's first block list: the rest of the core follows its first sector
    assert_eq!(u64_at(&core, 500), 2);
    assert_eq!(u16::from_le_bytes(core[508..510].try_into().unwrap()) as usize, sectors - 1);
    // in the BIOS boot partition, the stage tells the core where that is
    core[500..508].copy_from_slice(&2049u64.to_le_bytes());
    let at = 2048 * 512;
    assert_eq!(after[at..at + core.len()], core[..]);
    // nothing else changed: after the core, the partitions are as they were
    assert_eq!(after[at + core.len()..], before[at + core.len()..]);
}

#[test]
fn inst_dos_mbr_gap() {
    need_grub();
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("tree")).unwrap();
    let img = disk(d.path(), 8, "label: dos\nlabel-id: 0x12345678\nstart=2048, type=83, bootable\n");
    let table = sfdisk_json(&img);
    let before = fs::read(&img).unwrap();

    run_stage("org.osbuild.grub2.inst", &d.path().join("tree"), inst_options(Some(1), "dos", 0)).unwrap();

    let after = fs::read(&img).unwrap();
    assert_eq!(sfdisk_json(&img), table);
    assert_eq!(table["partitiontable"]["id"], "0x12345678");
    assert_mbr(&after, &before, 1);
    // right behind the MBR the core needs no patching: grub-mkimage's default is sector 2
    let core = mkimage("(,msdos1)/boot/grub2", "i386-pc", &["biosdisk", "part_msdos", "ext2"]);
    assert_eq!(after[512..512 + core.len()], core[..]);
    assert_eq!(after[512 + core.len()..], before[512 + core.len()..]);
}

#[test]
fn inst_refuses_to_overwrite_partition_data() {
    need_grub();
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    // GPT: right behind the MBR are the partition entries
    let img = disk(d.path(), 8, &format!("label: gpt\nstart=2048, size=8, type={BIOS_BOOT}\nstart=4096\n"));
    let before = fs::read(&img).unwrap();
    let e = run_stage("org.osbuild.grub2.inst", &tree, inst_options(Some(1), "gpt", 1)).unwrap_err();
    assert_eq!(e, "the core image location, sector 1, is inside the GPT header and partition entries (sectors 1..34)");
    // an 8-sector BIOS boot partition is too small for the core
    let e = run_stage("org.osbuild.grub2.inst", &tree, inst_options(Some(2048), "gpt", 1)).unwrap_err();
    assert!(e.contains("does not fit into partition 1 (sectors 2048..2056)"), "{e}");
    assert_eq!(fs::read(&img).unwrap(), before);
    // a DOS disk whose first partition starts too early for the MBR gap
    let img = disk(d.path(), 8, "label: dos\nstart=34, type=83\n");
    let before = fs::read(&img).unwrap();
    let e = run_stage("org.osbuild.grub2.inst", &tree, inst_options(Some(1), "dos", 0)).unwrap_err();
    assert!(e.ends_with("would overwrite partition 1 (sectors 34..16384)"), "{e}");
    assert_eq!(fs::read(&img).unwrap(), before);
}

#[test]
fn inst_without_location_writes_the_core_as_the_file() {
    need_grub();
    let (_d, tree) = tmp_tree();
    fs::write(tree.join("disk.img"), "Just testing").unwrap();
    let mut o = inst_options(None, "gpt", 0);
    o["prefix"]["path"] = json!("/boot/");
    run_stage("org.osbuild.grub2.inst", &tree, o.clone()).unwrap();
    assert_eq!(
        fs::read(tree.join("disk.img")).unwrap(),
        mkimage("(,gpt1)/boot/", "i386-pc", &["biosdisk", "part_gpt", "ext2"])
    );
    // location 0 does the same, and `binary` names the program
    o["location"] = json!(0);
    o["core"]["binary"] = json!("grub-mkimage");
    run_stage("org.osbuild.grub2.inst", &tree, o).unwrap();
    assert_eq!(
        fs::read(tree.join("disk.img")).unwrap(),
        mkimage("(,gpt1)/boot/", "i386-pc", &["biosdisk", "part_gpt", "ext2"])
    );
    // the other file systems of the root (arch-build's core is xfs)
    for (fs_name, module) in [("xfs", "xfs"), ("btrfs", "btrfs")] {
        let mut o = inst_options(None, "dos", 1);
        o["core"]["filesystem"] = json!(fs_name);
        run_stage("org.osbuild.grub2.inst", &tree, o).unwrap();
        let want = mkimage("(,msdos2)/boot/grub2", "i386-pc", &["biosdisk", "part_msdos", module]);
        assert_eq!(fs::read(tree.join("disk.img")).unwrap(), want, "{fs_name}");
    }
    // an El Torito image for an ISO
    let o = json!({"filename": "eltorito.img", "platform": "i386-pc", "prefix": {"path": "/boot/grub2"},
                   "core": {"type": "mkimage", "partlabel": "gpt", "filesystem": "iso9660"}});
    run_stage("org.osbuild.grub2.inst", &tree, o).unwrap();
    let want = mkimage("/boot/grub2", "i386-pc-eltorito", &["biosdisk", "part_gpt", "iso9660"]);
    assert_eq!(fs::read(tree.join("eltorito.img")).unwrap(), want);
}

#[test]
fn inst_names_a_missing_mkimage() {
    let (_d, tree) = tmp_tree();
    let mut o = inst_options(Some(1), "gpt", 0);
    o["core"]["binary"] = json!("osbuild-rs-no-such-mkimage");
    let e = run_stage("org.osbuild.grub2.inst", &tree, o).unwrap_err();
    assert_eq!(e, "osbuild-rs-no-such-mkimage not found in the build root, but org.osbuild.grub2.inst needs it");
}

/// With neither grub2-mkimage nor grub-mkimage on PATH the error names both. Runs the stage
/// in a child process of this test binary, with an empty PATH.
#[test]
fn inst_names_both_mkimage_programs_when_neither_is_there() {
    if std::env::var_os("OSBUILD_RS_GRUB_CHILD").is_some() {
        let (_d, tree) = tmp_tree();
        let e = run_stage("org.osbuild.grub2.inst", &tree, inst_options(Some(1), "gpt", 0)).unwrap_err();
        println!("child error: {e}");
        return;
    }
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "inst_names_both_mkimage_programs_when_neither_is_there", "--nocapture", "--test-threads=1"])
        .env("OSBUILD_RS_GRUB_CHILD", "1")
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let want = "child error: grub2-mkimage (or grub-mkimage) not found in the build root, \
                but org.osbuild.grub2.inst needs it";
    assert!(stdout.contains(want), "{stdout}");
}

/// The whole BIOS path on a real disk image: the legacy config and modules in an ext4 root
/// partition, the core in the BIOS boot partition with the prefix `(,gpt2)/boot/grub2`; GRUB's
/// own partition and ext2 code (grub-fstest) then finds grub.cfg, grubenv, normal.mod and the
/// kernel there.
#[test]
fn debian_bios_disk_end_to_end() {
    need_grub();
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    let root = d.path().join("root");
    fs::create_dir_all(&tree).unwrap();
    fs::create_dir_all(&root).unwrap();
    debian_boot(&root);
    run_stage("org.osbuild.grub2.legacy", &root, legacy_debian_options()).unwrap();

    let script = format!("label: gpt\nstart=2048, size=2048, type={BIOS_BOOT}\nstart=4096, type={LINUX_FS}\n");
    let img = disk(d.path(), 32, &script);
    let table = sfdisk_json(&img);
    let part = &table["partitiontable"]["partitions"][1];
    let (start, size) = (part["start"].as_u64().unwrap(), part["size"].as_u64().unwrap());
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-U", ROOT_UUID, "-d"])
        .arg(&root)
        .arg("-E")
        .arg(format!("offset={}", start * 512))
        .arg(&img)
        .arg(format!("{}k", size / 2))
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfs.ext4");
    run_stage("org.osbuild.grub2.inst", &tree, inst_options(Some(2048), "gpt", 1)).unwrap();
    assert_eq!(sfdisk_json(&img), table);

    let fstest = |args: &[&str]| -> Vec<u8> {
        let out = Command::new("grub-fstest").arg(&img).args(args).output().unwrap();
        assert!(out.status.success(), "grub-fstest {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    // the prefix's partition, (,gpt2), as grub-fstest names it on this disk
    let prefix = "(loop0,gpt2)/boot/grub2";
    assert_eq!(fstest(&["cat", &format!("{prefix}/grub.cfg")]), fs::read(root.join("boot/grub2/grub.cfg")).unwrap());
    assert_eq!(fstest(&["cat", &format!("{prefix}/grubenv")]), fs::read(root.join("boot/grub2/grubenv")).unwrap());
    let cmp = Command::new("grub-fstest")
        .arg(&img)
        .args(["cmp", &format!("{prefix}/i386-pc/normal.mod"), &format!("{MODULES}/normal.mod")])
        .status()
        .unwrap();
    assert!(cmp.success(), "normal.mod under the prefix differs");
    let listing = String::from_utf8(fstest(&["ls", "(loop0,gpt2)/boot/"])).unwrap();
    assert!(listing.contains(&format!("vmlinuz-{KERNEL}")) && listing.contains(&format!("initrd.img-{KERNEL}")));
}

// ------------------------------------------------------------- compat manifests

/// The GRUB half of upstream's `fedora-boot` manifest on a disk laid out as its image is:
/// BIOS boot partition at 2048, ESP, /boot (partition 3, where the core's prefix points).
#[test]
fn fedora_boot_manifest_options() {
    need_grub();
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let grub2 = compat::stage_options("test__data__manifests__fedora-boot.json", "org.osbuild.grub2").remove(0);
    run_stage("org.osbuild.grub2", &tree, grub2).unwrap();
    let env = read(&tree, "boot/grub2/grubenv");
    let head = "# GRUB Environment Block\nsaved_entry=ffffffffffffffffffffffffffffffff-6.19.7-200.fc43.x86_64\n";
    assert_eq!(env, format!("{head}{}", "#".repeat(1024 - head.len())));
    assert_eq!(
        read(&tree, "boot/efi/EFI/fedora/grub.cfg"),
        "\nsearch --no-floppy --set prefix --file /grub2/grub.cfg\nset prefix=($prefix)/grub2\nconfigfile $prefix/grub.cfg\n"
    );
    let cfg = read(&tree, "boot/grub2/grub.cfg");
    assert!(cfg.contains("\nsearch --no-floppy --set=root --fs-uuid 0194fdc2-fa2f-4cc0-81d3-ff12045b73c8\n"), "{cfg}");
    assert_eq!(
        read(&tree, "etc/default/grub"),
        "GRUB_CMDLINE_LINUX=\"ro no_timer_check console=ttyS0,115200n8 biosdevname=0 net.ifnames=0\"\n\
         GRUB_TIMEOUT=0\nGRUB_ENABLE_BLSCFG=true\nGRUB_DEFAULT=saved\n"
    );
    assert_modules_copied(&tree);

    let script = format!(
        "label: gpt\nstart=2048, size=2048, type={BIOS_BOOT}\nstart=4096, size=8192, type=U\nstart=12288, type={LINUX_FS}\n"
    );
    let img = disk(d.path(), 16, &script);
    let table = sfdisk_json(&img);
    let inst = compat::stage_options("test__data__manifests__fedora-boot.json", "org.osbuild.grub2.inst").remove(0);
    run_stage("org.osbuild.grub2.inst", &tree, inst).unwrap();
    assert_eq!(sfdisk_json(&img), table);
    let after = fs::read(&img).unwrap();
    assert_eq!(u64_at(&after, 0x5c), 2048);
    let mut core = mkimage("(,gpt3)/grub2", "i386-pc", &["biosdisk", "part_gpt", "ext2"]);
    core[500..508].copy_from_slice(&2049u64.to_le_bytes());
    assert_eq!(after[2048 * 512..2048 * 512 + core.len()], core[..]);
}

/// Upstream rejects the arch-build manifest for its grub2.legacy options (`bios` given as a
/// string, an unknown `architecture`); so does our schema. Its grub2.inst options (xfs, an
/// explicit `grub-mkimage`) are fine.
#[test]
fn arch_build_manifest_options() {
    let file = "test__data__manifests__arch__arch-build.json";
    let legacy = compat::stage_options(file, "org.osbuild.grub2.legacy").remove(0);
    let schema = module_schema(ModuleKind::Stage, "org.osbuild.grub2.legacy").unwrap();
    let errors = validate_against("stages/org.osbuild.grub2.legacy", schema, &legacy);
    let messages: BTreeSet<String> = errors.iter().map(|e| format!("{e:?}")).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("'i386-pc' is not of type 'object'")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("'architecture' was unexpected")), "{messages:?}");
    assert!(find("org.osbuild.grub2.legacy").unwrap().check_options(&legacy).is_err());
    let inst = compat::stage_options(file, "org.osbuild.grub2.inst").remove(0);
    let schema = module_schema(ModuleKind::Stage, "org.osbuild.grub2.inst").unwrap();
    assert!(validate_against("stages/org.osbuild.grub2.inst", schema, &inst).is_empty());
    find("org.osbuild.grub2.inst").unwrap().check_options(&inst).unwrap();
}

// ------------------------------------------------------------------- schemas

/// Options the schemas must refuse (as upstream's do).
fn rejected_samples() -> Vec<(&'static str, Value)> {
    let r = json!({"label": "r"});
    let entry = json!({"id": "a", "kernel": "1", "product": {"name": "D", "version": "1"}});
    let core = json!({"type": "mkimage", "partlabel": "gpt", "filesystem": "ext4"});
    let prefix = json!({"type": "partition", "partlabel": "gpt", "number": 1, "path": "/boot/grub2"});
    vec![
        ("org.osbuild.grub2", json!({})),
        ("org.osbuild.grub2", json!({"rootfs": r, "root_fs_uuid": ROOT_UUID})),
        ("org.osbuild.grub2", json!({"rootfs": {}})),
        ("org.osbuild.grub2", json!({"rootfs": {"uuid": "not-a-uuid"}})),
        ("org.osbuild.grub2", json!({"rootfs": r, "legacy": 1})),
        ("org.osbuild.grub2", json!({"rootfs": r, "uefi": {}})),
        ("org.osbuild.grub2", json!({"rootfs": r, "uefi": {"vendor": ""}})),
        ("org.osbuild.grub2", json!({"rootfs": r, "config": {"timeout": -1}})),
        ("org.osbuild.grub2", json!({"rootfs": r, "config": {"timeout_style": "loud"}})),
        ("org.osbuild.grub2", json!({"rootfs": r, "config": {"terminal": "console"}})),
        ("org.osbuild.grub2", json!({"rootfs": r, "config": {"cmdline": "ro"}})),
        ("org.osbuild.grub2", json!({"rootfs": r, "compat_version": 3})),
        ("org.osbuild.grub2", json!({"rootfs": r, "entries": [entry]})),
        ("org.osbuild.grub2.legacy", json!({"rootfs": r, "bios": {"platform": "i386-pc"}})),
        ("org.osbuild.grub2.legacy", json!({"rootfs": r, "bios": {"platform": "i386-pc"}, "entries": []})),
        ("org.osbuild.grub2.legacy", json!({"rootfs": r, "entries": [entry]})),
        ("org.osbuild.grub2.legacy", json!({"rootfs": r, "bios": "i386-pc", "entries": [entry]})),
        ("org.osbuild.grub2.legacy", json!({"rootfs": r, "bios": {"platform": "x86_64-efi"}, "entries": [entry]})),
        ("org.osbuild.grub2.legacy", json!({"rootfs": {}, "uefi": {"vendor": "d"}, "entries": [entry]})),
        (
            "org.osbuild.grub2.legacy",
            json!({"rootfs": r, "uefi": {"vendor": "d"}, "entries": [{"id": "a", "kernel": "1"}]}),
        ),
        (
            "org.osbuild.grub2.legacy",
            json!({"rootfs": r, "uefi": {"vendor": "d"},
                   "entries": [{"id": "a", "kernel": "1", "initrd": "x", "product": {"name": "D", "version": "1"}}]}),
        ),
        (
            "org.osbuild.grub2.legacy",
            json!({"rootfs": r, "uefi": {"vendor": "d"}, "entries": [entry], "kernel_opts": ""}),
        ),
        ("org.osbuild.grub2.inst", json!({"filename": "d", "platform": "i386-pc", "core": core})),
        (
            "org.osbuild.grub2.inst",
            json!({"filename": "d", "platform": "i386-pc", "prefix": prefix,
                   "core": {"type": "other", "partlabel": "gpt", "filesystem": "ext4"}}),
        ),
        (
            "org.osbuild.grub2.inst",
            json!({"filename": "d", "platform": "i386-pc", "prefix": prefix,
                   "core": {"type": "mkimage", "partlabel": "mbr", "filesystem": "ext4"}}),
        ),
        (
            "org.osbuild.grub2.inst",
            json!({"filename": "d", "platform": "i386-pc", "prefix": prefix,
                   "core": {"type": "mkimage", "partlabel": "gpt", "filesystem": "vfat"}}),
        ),
        (
            "org.osbuild.grub2.inst",
            json!({"filename": "d", "platform": "i386-pc", "core": core, "prefix": {"path": "boot"}}),
        ),
        (
            "org.osbuild.grub2.inst",
            json!({"filename": "d", "platform": "i386-pc", "core": core,
                   "prefix": {"type": "partition", "partlabel": "gpt", "path": "/boot"}}),
        ),
        (
            "org.osbuild.grub2.inst",
            json!({"filename": "d", "platform": "i386-pc", "core": core, "prefix": prefix, "location": "1"}),
        ),
    ]
}

/// Options the schemas and the typed options must accept.
fn accepted_samples() -> Vec<(&'static str, Value)> {
    let entry =
        json!({"id": "a", "kernel": "1", "default": true, "product": {"name": "D", "version": "1", "nick": "n"}});
    let mut out = vec![
        ("org.osbuild.grub2", json!({"rootfs": {"label": "r"}})),
        ("org.osbuild.grub2", json!({"root_fs_uuid": "6699-AFB5", "boot_fs_uuid": BOOT_UUID, "compat_version": 2})),
        (
            "org.osbuild.grub2",
            json!({"rootfs": {"uuid": ROOT_UUID}, "legacy": "i386-pc", "uefi": {"vendor": "d", "future": 1},
                   "ignition": true, "greenboot": true, "write_cmdline": false, "saved_entry": "x",
                   "config": {"default": "saved", "disable_recovery": true, "disable_submenu": false,
                              "distributor": "D", "terminal": ["console"], "terminal_input": [],
                              "terminal_output": ["serial"], "timeout": 0, "timeout_style": "hidden", "serial": "serial"}}),
        ),
        ("org.osbuild.grub2.legacy", legacy_debian_options()),
        (
            "org.osbuild.grub2.legacy",
            json!({"rootfs": {"device": "/dev/vda3"}, "uefi": {"vendor": "d", "install": false}, "entries": [entry],
                   "write_defaults": false, "config": {"cmdline": "ro", "default": "0"}}),
        ),
        (
            "org.osbuild.grub2.inst",
            json!({"filename": "d", "platform": "powerpc-ieee1275", "sector-size": 4096, "prefix": {"path": "/boot/grub2"},
                   "core": {"type": "mkimage", "partlabel": "dos", "filesystem": "btrfs", "binary": "grub-mkimage"}}),
        ),
    ];
    for file in ["test__data__manifests__fedora-boot.json", "test__data__manifests__fedora-ostree-image.json"] {
        for stage in ["org.osbuild.grub2", "org.osbuild.grub2.inst"] {
            for o in compat::stage_options(file, stage) {
                out.push((stage, o));
            }
        }
    }
    out.push((
        "org.osbuild.grub2.legacy",
        compat::stage_options("test__data__stages__grub2.legacy__b.json", "org.osbuild.grub2.legacy").remove(0),
    ));
    out
}

#[test]
fn schemas_take_what_upstream_takes() {
    for (name, options) in rejected_samples() {
        let errors =
            validate_against(&format!("stages/{name}"), module_schema(ModuleKind::Stage, name).unwrap(), &options);
        assert!(!errors.is_empty(), "{name} accepted {options}");
    }
    for (name, options) in accepted_samples() {
        let errors =
            validate_against(&format!("stages/{name}"), module_schema(ModuleKind::Stage, name).unwrap(), &options);
        assert!(errors.is_empty(), "{name} refused {options}: {errors:?}");
        find(name).unwrap().check_options(&options).unwrap_or_else(|e| panic!("{name}: {options}: {e:?}"));
    }
}

/// The same samples through upstream's schemas (from its `.meta.json`) give the same verdicts.
#[test]
fn schemas_agree_with_upstream() {
    let upstream = upstream::dir();
    for (name, options, accepted) in rejected_samples()
        .into_iter()
        .map(|(n, o)| (n, o, false))
        .chain(accepted_samples().into_iter().map(|(n, o)| (n, o, true)))
    {
        let meta: Value =
            serde_json::from_str(&fs::read_to_string(upstream.join(format!("stages/{name}.meta.json"))).unwrap())
                .unwrap();
        let mut schema = meta["schema"].clone();
        schema.as_object_mut().unwrap().insert("type".into(), json!("object"));
        let text: &'static str = Box::leak(schema.to_string().into_boxed_str());
        let errors = validate_against(&format!("upstream/{name}"), text, &options);
        assert_eq!(errors.is_empty(), accepted, "upstream {name}: {options}: {errors:?}");
    }
}

// ------------------------------------------------------------- upstream cross-check

/// Run upstream's Python stage `name` on `tree` with `options`.
fn upstream_stage(upstream: &Path, name: &str, tree: &Path, options: &Value) {
    let script = r#"
import importlib.machinery, importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
loader = importlib.machinery.SourceFileLoader("stage", sys.argv[1] + "/stages/" + sys.argv[2])
module = importlib.util.module_from_spec(importlib.util.spec_from_loader("stage", loader))
loader.exec_module(module)
sys.exit(module.main(sys.argv[3], json.loads(sys.argv[4])))
"#;
    let out = Command::new("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-c", script])
        .arg(upstream)
        .arg(name)
        .arg(tree)
        .arg(options.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "upstream {name}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every file below `root` (relative path, content, mode).
fn files(root: &Path) -> Vec<(String, Vec<u8>, u32)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let (p, m) = (e.path(), e.metadata().unwrap());
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        if m.is_dir() {
            out.push((rel + "/", Vec::new(), m.permissions().mode() & 0o7777));
        } else {
            out.push((rel, fs::read(p).unwrap(), m.permissions().mode() & 0o7777));
        }
    }
    out
}

#[test]
fn same_files_as_upstream() {
    need_grub();
    let upstream = upstream::dir();
    let config = json!({"default": "saved", "disable_submenu": true, "disable_recovery": false,
        "distributor": "$(sed 's, release .*$,,g' /etc/system-release)", "serial": SERIAL,
        "terminal": ["serial", "console"], "terminal_output": ["console"], "timeout": 10, "timeout_style": "menu"});
    let mut cases = vec![
        ("org.osbuild.grub2", json!({"rootfs": {"label": "root"}})),
        (
            "org.osbuild.grub2",
            json!({"root_fs_uuid": ROOT_UUID, "kernel_opts": "ro", "legacy": true, "config": config}),
        ),
        (
            "org.osbuild.grub2",
            json!({"rootfs": {"uuid": ROOT_UUID}, "bootfs": {"label": "boot"}, "legacy": "i386-pc",
                   "uefi": {"vendor": "debian"}, "ignition": true, "greenboot": true, "saved_entry": "x-1",
                   "compat_version": 2, "config": {"terminal_input": ["serial"]}}),
        ),
        (
            "org.osbuild.grub2",
            json!({"rootfs": {"label": "root"}, "uefi": {"vendor": "debian", "unified": true}, "write_cmdline": false,
                   "write_defaults": false, "ignition": true}),
        ),
        ("org.osbuild.grub2", json!({"rootfs": {"label": "root"}, "uefi": {"vendor": "debian"}})),
    ];
    let mut legacy = legacy_debian_options();
    legacy["entries"][0]["default"] = json!(false); // upstream's saved_entry differs on purpose
    legacy["entries"].as_array_mut().unwrap().push(json!({"id": "b", "kernel": "1.0",
        "product": {"name": "Debian", "version": "12"}}));
    cases.push(("org.osbuild.grub2.legacy", legacy));
    cases.push((
        "org.osbuild.grub2.legacy",
        json!({"rootfs": {"device": "/dev/vda3"}, "bootfs": {"uuid": BOOT_UUID}, "bios": {"platform": "i386-pc"},
               "uefi": {"vendor": "debian"}, "config": config,
               "entries": [{"id": "a", "kernel": "4.18", "product": {"name": "Fedora", "version": "40", "nick": "F"}}]}),
    ));
    for (n, (stage, options)) in cases.into_iter().enumerate() {
        let (_a, ours) = tmp_tree();
        let (_b, theirs) = tmp_tree();
        for t in [&ours, &theirs] {
            // what a grub2-efi package would have installed
            fs::create_dir_all(t.join("boot/efi/EFI/debian")).unwrap();
        }
        run_stage(stage, &ours, options.clone()).unwrap();
        upstream_stage(&upstream, stage, &theirs, &options);
        let (a, b) = (files(&ours), files(&theirs));
        let names = |v: &[(String, Vec<u8>, u32)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b), "case {n}: {stage} {options}");
        for (x, y) in a.iter().zip(&b) {
            assert!(
                x == y,
                "case {n}: {stage}: {} differs\nours:     {:?}\nupstream: {:?}",
                x.0,
                String::from_utf8_lossy(&x.1),
                String::from_utf8_lossy(&y.1)
            );
        }
    }
}
