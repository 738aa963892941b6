//! `org.osbuild.grub2.iso`: the UEFI boot files of an installer ISO, in the tree's
//! `/EFI/BOOT`, for a later stage to pack into the ISO's `efiboot.img` (a FAT image) and to
//! copy onto the ISO itself:
//!
//! - for each of `architectures` (`X64`, `IA32`, `AA64`, ...; `<a>` is it in lower case), from
//!   the build root's `/boot/efi/EFI/<vendor>/`: `shim<a>.efi` as `BOOT<A>.EFI`, `mm<a>.efi`
//!   as it is and GRUB's CD image `gcd<a>.efi` as `grub<a>.efi`;
//! - the build root's GRUB font `/usr/share/grub/unicode.pf2` in `fonts/`;
//! - `grub.cfg`: a menu that finds the ISO by its label `isolabel` and boots
//!   `<kernel.dir>/vmlinuz` and `<kernel.dir>/initrd.img` with `kernel.opts`: the `custom`
//!   entries, then (each unless switched off) install, test-media, FIPS (only when `fips`)
//!   and a troubleshooting sub-menu, `config.timeout` (60 by default) and `config.default`;
//! - with `IA32` among the architectures, a copy of it as `BOOT.cfg`.
//!
//! The menu is upstream's byte for byte, including its template rules: `custom` entries may
//! use the stage's variables (`${kernelpath}`, `$product`, ...; `$$` for a dollar), filled in
//! as Python's `string.Template.safe_substitute` does. The menu code is shared with
//! `org.osbuild.grub2.iso.legacy` ([`Menu`]).
//!
//! Deviations from upstream (which fails with a Python exception in these cases):
//! - `kernel.opts` missing is an empty list;
//! - `architectures` or `vendor` missing, a `vendor` that is not a plain name, or a missing
//!   EFI binary or font is a typed error naming the option or the build-root file.

use super::grub_util::copy_file;
use super::util::{create_parents, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};

/// The directory of the EFI binaries in the build root, one sub-directory per vendor.
pub const EFI_VENDOR_DIR: &str = "/boot/efi/EFI";
/// GRUB's font in the build root (Fedora and Debian alike).
pub const FONT: &str = "/usr/share/grub/unicode.pf2";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub product: Product,
    pub kernel: Kernel,
    pub isolabel: String,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub fips: bool,
    #[serde(default = "crate::util::yes")]
    pub troubleshooting: bool,
    #[serde(default = "crate::util::yes")]
    pub test: bool,
    #[serde(default = "crate::util::yes")]
    pub install: bool,
    #[serde(default)]
    pub custom: Vec<CustomEntry>,
    #[serde(default)]
    pub config: MenuConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub name: String,
    pub version: String,
}

/// The schema leaves this object open: other keys are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct Kernel {
    #[serde(default = "default_kernel_dir")]
    pub dir: String,
    #[serde(default)]
    pub opts: Vec<String>,
}

fn default_kernel_dir() -> String {
    "/images/pxeboot".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomEntry {
    pub name: String,
    pub linux: String,
    pub initrd: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuConfig {
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default)]
    pub default: Option<i64>,
}

impl Default for MenuConfig {
    fn default() -> Self {
        MenuConfig { timeout: default_timeout(), default: None }
    }
}

fn default_timeout() -> u64 {
    60
}

/// Which GRUB the menu is for: they differ in the video modules loaded, and the BIOS one can
/// chain-load the first disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Uefi,
    Bios,
}

/// One menu of an installer ISO, as both ISO stages write it.
pub struct Menu<'a> {
    pub product: &'a Product,
    pub kernel: &'a Kernel,
    pub isolabel: &'a str,
    pub fips: bool,
    pub troubleshooting: bool,
    pub test: bool,
    pub install: bool,
    pub custom: &'a [CustomEntry],
    pub config: &'a MenuConfig,
}

const CLASSES: &str = "--class fedora --class gnu-linux --class gnu --class os";

/// `os.path.join(dir, name)` for a relative `name`.
pub fn py_join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn ident_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.first().is_none_or(|c| !(c.is_ascii_alphabetic() || *c == b'_')) {
        return 0;
    }
    b.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count()
}

/// Python's `string.Template(text).safe_substitute(vars)`: `$name` and `${name}` (ASCII
/// identifiers) become their value, `$$` one dollar; unknown names and any other `$` stay.
pub fn safe_substitute(text: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let found = match after.strip_prefix('{') {
            Some(braced) => {
                let n = ident_len(braced);
                (n > 0 && braced[n..].starts_with('}')).then(|| (&braced[..n], n + 2))
            }
            None => Some((&after[..ident_len(after)], ident_len(after))).filter(|(_, n)| *n > 0),
        };
        match found.and_then(|(name, used)| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v, used))) {
            Some((value, used)) => {
                out.push_str(value);
                rest = &after[used..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Menu<'_> {
    /// The whole `grub.cfg`.
    pub fn render(&self, firmware: Firmware) -> String {
        let s = self;
        let (name, version) = (&self.product.name, &self.product.version);
        let kernelpath = py_join(&self.kernel.dir, "vmlinuz");
        let initrdpath = py_join(&self.kernel.dir, "initrd.img");
        let root = self.kernel.opts.join(" ");
        let entry = |indent: &str, title: &str, extra: &str| {
            format!(
                "{indent}menuentry '{title}' {CLASSES} {{\n{indent}\tlinux {kernelpath} {root}{extra}\n\
                 {indent}\tinitrd {initrdpath}\n{indent}}}"
            )
        };
        let default = s.config.default.map(|d| format!("set default=\"{d}\"\n")).unwrap_or_default();
        let timeout = s.config.timeout.to_string();

        // Custom entries are expanded twice, as upstream does: their own fields first, then the
        // stage's variables as they stand at that point (later entries are still empty).
        let mut custom = String::new();
        for c in s.custom {
            let text = format!("\nmenuentry '{}' {CLASSES} {{\n\tlinux {}\n\tinitrd {}\n}}", c.name, c.linux, c.initrd);
            let vars = [
                ("version", version.as_str()),
                ("product", name.as_str()),
                ("kernelpath", &kernelpath),
                ("initrdpath", &initrdpath),
                ("isolabel", self.isolabel),
                ("root", &root),
                ("timeout", &timeout),
                ("defaultentry", &default),
                ("fipsentry", ""),
                ("installentry", ""),
                ("testentry", ""),
                ("troubleshootingentry", ""),
                ("customentries", &custom),
            ];
            let expanded = safe_substitute(&text, &vars);
            custom.push_str(&expanded);
        }

        let install = if s.install {
            format!("\n{}", entry("", &format!("Install {name} {version}"), " quiet"))
        } else {
            String::new()
        };
        let test = if s.test {
            format!("\n{}", entry("", &format!("Test this media & install {name} {version}"), " rd.live.check quiet"))
        } else {
            String::new()
        };
        let fips = if s.fips {
            format!("\n{}\n", entry("", &format!("Install {name} {version} in FIPS mode"), " quiet fips=1"))
        } else {
            String::new()
        };
        let troubleshooting = if s.troubleshooting {
            let mut t = String::from("\nsubmenu 'Troubleshooting -->' {\n");
            t += &entry("\t", &format!("Install {name} {version} in basic graphics mode"), " nomodeset quiet");
            t.push('\n');
            t += &entry("\t", &format!("Rescue a {name} system"), " inst.rescue quiet");
            t.push('\n');
            if firmware == Firmware::Bios {
                t += &format!("\tmenuentry 'Boot first drive' {CLASSES} {{\n\t\tchainloader (hd0)+1\n\t}}\n");
            }
            t.push('}');
            t
        } else {
            String::new()
        };

        let video: &[&str] = match firmware {
            Firmware::Uefi => &["efi_gop", "efi_uga", "video_bochs", "video_cirrus", "all_video"],
            Firmware::Bios => &["all_video"],
        };
        let mut cfg = format!("{default}\nfunction load_video {{\n");
        for m in video {
            cfg += &format!("  insmod {m}\n");
        }
        cfg += "}\n\nload_video\nset gfxpayload=keep\ninsmod gzio\ninsmod part_gpt\ninsmod ext2\n";
        if firmware == Firmware::Bios {
            cfg += "insmod chain\n";
        }
        cfg += &format!(
            "\nset timeout={timeout}\n### END /etc/grub.d/00_header ###\n\n\
             search --no-floppy --set=root -l '{}'\n\n{custom}\n{install}\n{test}\n{fips}\n{troubleshooting}\n",
            self.isolabel
        );
        cfg
    }
}

/// A name from the options that becomes one path component in the build root.
pub fn check_name(option: &str, value: &str) -> Result<(), StageError> {
    if value.is_empty() || value.contains('/') || value == "." || value == ".." {
        return Err(StageError::Invalid(format!("option {option}: '{value}' is not a plain name")));
    }
    Ok(())
}

/// The build root's file `path` below `build_root` (`/` but in tests), which must exist;
/// `why` says what asks for it.
fn build_root_file(build_root: &Path, path: &str, why: &str, stage: &'static str) -> Result<PathBuf, StageError> {
    let p = build_root.join(path.trim_start_matches('/'));
    if !p.is_file() {
        return Err(StageError::ToolMissing { tool: format!("{path} ({why})"), stage, place: "in the build root" });
    }
    Ok(p)
}

/// Fill the tree's `/EFI/BOOT` (which must not exist yet) with the shim, MokManager and GRUB
/// binaries of `architectures` from the build root's `/boot/efi/EFI/<vendor>/` and GRUB's
/// font; return the directory (confined in the tree). Shared with `org.osbuild.bootiso.mono`.
pub fn install_efi_binaries(
    args: &StageArgs,
    build_root: &Path,
    architectures: &[String],
    vendor: &str,
    stage: &'static str,
) -> Result<PathBuf, StageError> {
    check_name("vendor", vendor)?;
    let efidir = tree_path(args, "EFI/BOOT", false)?;
    if fs::symlink_metadata(&efidir).is_ok() {
        return Err(StageError::Invalid(format!("{} already exists in the tree", "/EFI/BOOT")));
    }
    create_parents(&efidir.join("x"))?;
    for arch in architectures {
        let a = arch.to_lowercase();
        check_name("architectures", &a)?;
        for (src, dst) in [
            (format!("shim{a}.efi"), format!("BOOT{a}.EFI").to_uppercase()),
            (format!("mm{a}.efi"), format!("mm{a}.efi")),
            (format!("gcd{a}.efi"), format!("grub{a}.efi")),
        ] {
            let from = build_root_file(
                build_root,
                &format!("{EFI_VENDOR_DIR}/{vendor}/{src}"),
                &format!("EFI binary for architecture {arch} of vendor {vendor}"),
                stage,
            )?;
            copy_file(&from, &efidir.join(dst))?;
        }
    }
    let font = build_root_file(build_root, FONT, "GRUB's font", stage)?;
    let fonts = efidir.join("fonts");
    create_parents(&fonts.join("x"))?;
    copy_file(&font, &fonts.join("unicode.pf2"))?;
    Ok(efidir)
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Grub2Iso;

impl Stage for Grub2Iso {
    const NAME: &'static str = "org.osbuild.grub2.iso";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        run_with_build_root(args, &options, Path::new("/"))
    }
}

/// The menu these options describe.
fn menu(o: &Options) -> Menu<'_> {
    Menu {
        product: &o.product,
        kernel: &o.kernel,
        isolabel: &o.isolabel,
        fips: o.fips,
        troubleshooting: o.troubleshooting,
        test: o.test,
        install: o.install,
        custom: &o.custom,
        config: &o.config,
    }
}

fn run_with_build_root(args: &StageArgs, o: &Options, build_root: &Path) -> StageResult {
    let missing =
        |name: &str| StageError::Invalid(format!("option {name} is missing: it names the EFI binaries to install"));
    let architectures = o.architectures.as_deref().ok_or_else(|| missing("architectures"))?;
    let vendor = o.vendor.as_deref().ok_or_else(|| missing("vendor"))?;
    let efidir = install_efi_binaries(args, build_root, architectures, vendor, Grub2Iso::NAME)?;
    println!("kernel dir at {}", o.kernel.dir);
    let cfg = menu(o).render(Firmware::Uefi);
    write_file(&efidir.join("grub.cfg"), cfg.as_bytes(), 0o644)?;
    if architectures.iter().any(|a| a == "IA32") {
        copy_file(&efidir.join("grub.cfg"), &efidir.join("BOOT.cfg"))?;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn safe_substitute_follows_python() {
        let vars = [("a", "1"), ("ab", "2"), ("A", "3")];
        assert_eq!(
            safe_substitute("$a ${a}b $ab $A $$a $b ${ a} $ {a} $9 $", &vars),
            "1 1b 2 3 $a $b ${ a} $ {a} $9 $"
        );
        // a value is never expanded again
        assert_eq!(safe_substitute("$a", &[("a", "$b"), ("b", "x")]), "$b");
        assert_eq!(safe_substitute("${ab}c$ab_", &vars), "2c$ab_");
    }

    #[test]
    fn py_join_is_os_path_join() {
        assert_eq!(py_join("/images/pxeboot", "vmlinuz"), "/images/pxeboot/vmlinuz");
        assert_eq!(py_join("/k/", "vmlinuz"), "/k/vmlinuz");
        assert_eq!(py_join("", "vmlinuz"), "vmlinuz");
    }

    fn options(v: serde_json::Value) -> Options {
        serde_json::from_value(v).unwrap()
    }

    fn render(o: &Options, firmware: Firmware) -> String {
        menu(o).render(firmware)
    }

    /// Upstream's output for these options (its stage run with Python), kept verbatim.
    #[test]
    fn menu_with_custom_entries_default_and_fips_is_upstreams() {
        let o = options(json!({"product": {"name": "P", "version": "9"}, "isolabel": "L",
            "kernel": {"dir": "/k/", "opts": ["a", "b"]}, "fips": true, "test": false, "troubleshooting": false,
            "config": {"timeout": 5, "default": 1},
            "custom": [{"name": "C ${product}", "linux": "$kernelpath x $$ $nope ${root} $ {",
                        "initrd": "${initrdpath}$customentries"},
                       {"name": "D", "linux": "y", "initrd": "$customentries"}]}));
        let want = "set default=\"1\"\n\nfunction load_video {\n  insmod efi_gop\n  insmod efi_uga\n  insmod video_bochs\n  insmod video_cirrus\n  insmod all_video\n}\n\nload_video\nset gfxpayload=keep\ninsmod gzio\ninsmod part_gpt\ninsmod ext2\n\nset timeout=5\n### END /etc/grub.d/00_header ###\n\nsearch --no-floppy --set=root -l 'L'\n\n\nmenuentry 'C P' --class fedora --class gnu-linux --class gnu --class os {\n\tlinux /k/vmlinuz x $ $nope a b $ {\n\tinitrd /k/initrd.img\n}\nmenuentry 'D' --class fedora --class gnu-linux --class gnu --class os {\n\tlinux y\n\tinitrd \nmenuentry 'C P' --class fedora --class gnu-linux --class gnu --class os {\n\tlinux /k/vmlinuz x $ $nope a b $ {\n\tinitrd /k/initrd.img\n}\n}\n\nmenuentry 'Install P 9' --class fedora --class gnu-linux --class gnu --class os {\n\tlinux /k/vmlinuz a b quiet\n\tinitrd /k/initrd.img\n}\n\n\nmenuentry 'Install P 9 in FIPS mode' --class fedora --class gnu-linux --class gnu --class os {\n\tlinux /k/vmlinuz a b quiet fips=1\n\tinitrd /k/initrd.img\n}\n\n\n";
        assert_eq!(render(&o, Firmware::Uefi), want);
    }

    #[test]
    fn bios_menu_differs_in_video_chain_and_first_drive() {
        let o = options(json!({"product": {"name": "P", "version": "9"}, "isolabel": "L", "kernel": {"dir": "/k"},
                               "install": false, "test": false}));
        let bios = render(&o, Firmware::Bios);
        let uefi = render(&o, Firmware::Uefi);
        assert!(bios.starts_with("\nfunction load_video {\n  insmod all_video\n}\n"), "{bios}");
        assert!(bios.contains("insmod ext2\ninsmod chain\n\nset timeout=60\n"), "{bios}");
        assert!(bios.ends_with(
            "\tmenuentry 'Boot first drive' --class fedora --class gnu-linux --class gnu --class os {\n\
             \t\tchainloader (hd0)+1\n\t}\n}\n"
        ));
        assert!(!uefi.contains("chain") && uefi.contains("insmod efi_gop"), "{uefi}");
        // no kernel options: upstream's double space stays
        assert!(uefi.contains("\t\tlinux /k/vmlinuz  inst.rescue quiet\n"), "{uefi}");
        assert!(!uefi.contains("Install P 9'") && !uefi.contains("Test this media"), "{uefi}");
    }

    /// A build root with the EFI binaries of `vendor` for `arches` and GRUB's font.
    fn build_root(vendor: &str, arches: &[&str]) -> tempfile::TempDir {
        let r = tempfile::tempdir().unwrap();
        let dir = r.path().join("boot/efi/EFI").join(vendor);
        fs::create_dir_all(&dir).unwrap();
        for a in arches {
            for f in ["shim", "mm", "gcd"] {
                fs::write(dir.join(format!("{f}{a}.efi")), format!("{f} {a}")).unwrap();
            }
        }
        fs::create_dir_all(r.path().join("usr/share/grub")).unwrap();
        fs::write(r.path().join("usr/share/grub/unicode.pf2"), "font").unwrap();
        r
    }

    fn ls(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn installs_binaries_font_and_config() {
        let r = build_root("fedora", &["ia32", "x64"]);
        let t = tempfile::tempdir().unwrap();
        let v = json!({"product": {"name": "Fedora-IoT", "version": "43"}, "isolabel": "Fedora-43-X86_64",
            "kernel": {"dir": "/images/pxeboot", "opts": ["inst.ks=hd:LABEL=Fedora-43-X86_64:/install.ks"]},
            "architectures": ["IA32", "X64"], "vendor": "fedora"});
        let a = args(t.path(), v.clone());
        run_with_build_root(&a, &options(v), r.path()).unwrap();
        let efi = t.path().join("EFI/BOOT");
        assert_eq!(
            ls(&efi),
            [
                "BOOT.cfg",
                "BOOTIA32.EFI",
                "BOOTX64.EFI",
                "fonts",
                "grub.cfg",
                "grubia32.efi",
                "grubx64.efi",
                "mmia32.efi",
                "mmx64.efi"
            ]
        );
        assert_eq!(fs::read_to_string(efi.join("BOOTX64.EFI")).unwrap(), "shim x64");
        assert_eq!(fs::read_to_string(efi.join("grubia32.efi")).unwrap(), "gcd ia32");
        assert_eq!(fs::read_to_string(efi.join("fonts/unicode.pf2")).unwrap(), "font");
        let cfg = fs::read_to_string(efi.join("grub.cfg")).unwrap();
        assert_eq!(fs::read_to_string(efi.join("BOOT.cfg")).unwrap(), cfg);
        assert!(cfg.contains("search --no-floppy --set=root -l 'Fedora-43-X86_64'\n"), "{cfg}");
        assert!(cfg.contains(
            "\tlinux /images/pxeboot/vmlinuz inst.ks=hd:LABEL=Fedora-43-X86_64:/install.ks rd.live.check quiet\n"
        ));
        // a second run finds /EFI/BOOT there, as upstream's makedirs would
        let again = run_with_build_root(&a, &options(a.options.clone()), r.path()).unwrap_err();
        assert_eq!(again.to_string(), "/EFI/BOOT already exists in the tree");
    }

    #[test]
    fn no_ia32_no_boot_cfg_and_missing_parts_are_named() {
        let r = build_root("debian", &["x64"]);
        let run = |v: serde_json::Value| {
            let t = tempfile::tempdir().unwrap();
            let res = run_with_build_root(&args(t.path(), v.clone()), &options(v), r.path());
            (t, res)
        };
        let base = json!({"product": {"name": "D", "version": "12"}, "isolabel": "D", "kernel": {"dir": "/k"},
                          "architectures": ["X64"], "vendor": "debian"});
        let (t, res) = run(base.clone());
        res.unwrap();
        assert!(!t.path().join("EFI/BOOT/BOOT.cfg").exists());
        let mut o = base.clone();
        o["architectures"] = json!(["AA64"]);
        let e = run(o).1.unwrap_err().to_string();
        assert_eq!(
            e,
            "/boot/efi/EFI/debian/shimaa64.efi (EFI binary for architecture AA64 of vendor debian) not found in \
             the build root, but org.osbuild.grub2.iso needs it"
        );
        let mut o = base.clone();
        o["vendor"] = json!("..");
        assert_eq!(run(o).1.unwrap_err().to_string(), "option vendor: '..' is not a plain name");
        let mut o = base.clone();
        o.as_object_mut().unwrap().remove("architectures");
        let e = run(o).1.unwrap_err().to_string();
        assert_eq!(e, "option architectures is missing: it names the EFI binaries to install");
        let mut o = base;
        o["bogus"] = json!(1);
        assert!(serde_json::from_value::<Options>(o).is_err());
    }
}
