//! `org.osbuild.isolinux`: make `/isolinux` of a boot ISO's tree: the ISOLINUX boot image,
//! the COM32 modules its menu needs (taken from the `data` input tree), a menu
//! (`isolinux.cfg`) that starts the installer's kernel with the manifest's kernel options,
//! and the kernel and initrd of `kernel.dir` linked beside them (ISOLINUX reads only its
//! own directory's neighbours comfortably: `kernel vmlinuz` is relative to it).
//!
//! The `data` tree may have the Fedora layout (`/usr/share/syslinux/`) or Debian's
//! (`/usr/lib/ISOLINUX/isolinux.bin`, the modules in `/usr/lib/syslinux/modules/bios/`).
//! Anaconda's splash picture is used when the data tree has it; Debian has none, and the
//! menu then has a plain background.

use super::grub2_iso::Product;
use super::util::{create_parents, resolve_in_root, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
pub struct Kernel {
    /// The tree's directory holding `vmlinuz` and `initrd.img`.
    pub dir: String,
    #[serde(default)]
    pub opts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub product: Product,
    pub kernel: Kernel,
    #[serde(default)]
    pub fips: bool,
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Isolinux;

impl Stage for Isolinux {
    const NAME: &'static str = "org.osbuild.isolinux";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let data = args.input_path("data")?;
        let dir = tree_path(args, "isolinux", false)?;
        fs::create_dir(&dir).map_err(StageError::io("create", &dir))?;
        // resolve again: the directory now exists and is checked to be inside the tree
        let dir = tree_path(args, "isolinux", true)?;
        for name in FILES {
            let from = data_file(&data, name)?;
            install(&from, &dir.join(name), 0o755)?;
        }
        let splash = resolve_in_root(&data, SPLASH, true)?;
        let has_splash = splash.is_file();
        if has_splash {
            install(&splash, &dir.join("splash.png"), 0o644)?;
        }
        write_file(&dir.join("isolinux.cfg"), render(&options, has_splash).as_bytes(), 0o644)?;
        for name in ["vmlinuz", "initrd.img"] {
            let from = tree_path(args, Path::new(options.kernel.dir.trim_start_matches('/')).join(name), true)?;
            if !from.is_file() {
                return Err(StageError::Invalid(format!("kernel.dir: {} has no file {name}", options.kernel.dir)));
            }
            let to = dir.join(name);
            fs::hard_link(&from, &to).map_err(StageError::io("link", &to))?;
        }
        Ok(None)
    }
}

/// What the boot image and its menu need, in the data tree's syslinux directory.
const FILES: [&str; 5] = ["isolinux.bin", "ldlinux.c32", "libcom32.c32", "libutil.c32", "vesamenu.c32"];
const SPLASH: &str = "usr/share/anaconda/boot/syslinux-splash.png";

/// Where the data tree keeps `name`: Fedora's directory first, then Debian's.
fn data_file(data: &Path, name: &str) -> Result<PathBuf, StageError> {
    let debian = if name == "isolinux.bin" { "usr/lib/ISOLINUX" } else { "usr/lib/syslinux/modules/bios" };
    for dir in ["usr/share/syslinux", debian] {
        let p = resolve_in_root(data, format!("{dir}/{name}"), true)?;
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(StageError::BadInput {
        name: "data".into(),
        problem: format!("has no {name} (in /usr/share/syslinux or {debian}): install syslinux in it"),
    })
}

fn install(from: &Path, to: &Path, mode: u32) -> Result<(), StageError> {
    create_parents(to)?;
    fs::copy(from, to).map_err(StageError::io("copy", from))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).map_err(StageError::io("chmod", to))
}

/// The menu: install, check the medium and install (the default after a minute), FIPS when
/// asked, a troubleshooting submenu, and booting the local disk.
fn render(o: &Options, splash: bool) -> String {
    let (product, version) = (&o.product.name, &o.product.version);
    let name = format!("{product} {version}");
    let cmdline = o.kernel.opts.join(" ");
    let entry = |label: &str, title: &str, extra: &str, default: bool| {
        let extra = if extra.is_empty() { String::new() } else { format!("{extra} ") };
        let default = if default { "  menu default\n" } else { "" };
        format!(
            "label {label}\n  menu label {title}\n{default}  kernel vmlinuz\n  append initrd=initrd.img {cmdline} {extra}quiet\n\n"
        )
    };
    let mut out = String::from("# the boot menu of the installer ISO (org.osbuild.isolinux)\n");
    out.push_str("default vesamenu.c32\ntimeout 600\ndisplay boot.msg\nmenu clear\n");
    if splash {
        out.push_str("menu background splash.png\n");
    }
    out.push_str(&format!("menu title {name}\nmenu vshift 8\nmenu rows 18\nmenu margin 8\n"));
    out.push_str("menu helpmsgrow 15\nmenu tabmsgrow 13\n");
    out.push_str("menu tabmsg Press Tab for full configuration options on menu items.\n\n");
    out.push_str(&entry("linux", &format!("^Install {name}"), "", false));
    out.push_str(&entry("check", &format!("Test this ^media & install {name}"), "rd.live.check", true));
    if o.fips {
        out.push_str(&entry("fips", &format!("^Install {name} in FIPS mode"), "fips=1", false));
    }
    out.push_str(&format!("menu begin ^Troubleshooting\n  menu title Troubleshooting {name}\n\n"));
    out.push_str(&entry("basic", "Install using ^basic graphics mode", "nomodeset", false));
    out.push_str(&entry("rescue", &format!("^Rescue a {product} system"), "inst.rescue", false));
    out.push_str("label memtest\n  menu label Run a ^memory test\n  kernel memtest\n\n");
    out.push_str("label local\n  menu label Boot from ^local drive\n  localboot 0xffff\n\n");
    out.push_str("label returntomain\n  menu label Return to ^main menu\n  menu exit\nmenu end\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    /// A Debian-layout data tree with the real ISOLINUX files of this machine.
    fn data_tree(root: &Path) {
        for name in FILES {
            let debian = if name == "isolinux.bin" {
                "usr/lib/ISOLINUX".to_owned()
            } else {
                "usr/lib/syslinux/modules/bios".to_owned()
            };
            let host = Path::new("/").join(&debian).join(name);
            let to = root.join(&debian).join(name);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(&host, &to)
                .unwrap_or_else(|e| panic!("{}: {e}: install isolinux syslinux-common", host.display()));
        }
    }

    fn run(t: &Path, options: serde_json::Value) -> Result<(), StageError> {
        let tree = t.join("tree");
        fs::create_dir_all(tree.join("images/pxeboot")).unwrap();
        fs::write(tree.join("images/pxeboot/vmlinuz"), "kernel").unwrap();
        fs::write(tree.join("images/pxeboot/initrd.img"), "initrd").unwrap();
        let mut a = args(&tree, options);
        a.inputs.insert("data".into(), json!({"path": t.join("data")}));
        Isolinux::execute(&a).map(|_| ())
    }

    #[test]
    fn makes_the_isolinux_directory_from_a_debian_data_tree() {
        let t = tempfile::tempdir().unwrap();
        data_tree(&t.path().join("data"));
        let o = json!({"product": {"name": "Debian IoT", "version": "12"},
                       "kernel": {"dir": "/images/pxeboot", "opts": ["boot=live", "inst.ks=hd:LABEL=X:/osbuild.ks"]}});
        run(t.path(), o).unwrap();
        let dir = t.path().join("tree/isolinux");
        let bin = fs::read(dir.join("isolinux.bin")).unwrap();
        assert_eq!(bin, fs::read("/usr/lib/ISOLINUX/isolinux.bin").unwrap());
        assert_eq!(fs::metadata(dir.join("vesamenu.c32")).unwrap().permissions().mode() & 0o777, 0o755);
        let cfg = fs::read_to_string(dir.join("isolinux.cfg")).unwrap();
        assert!(cfg.contains("menu title Debian IoT 12\n"), "{cfg}");
        assert!(
            cfg.contains("  menu default\n  kernel vmlinuz\n  append initrd=initrd.img boot=live inst.ks=hd:LABEL=X:/osbuild.ks rd.live.check quiet\n"),
            "{cfg}"
        );
        assert!(!cfg.contains("splash") && !cfg.contains("fips"), "{cfg}");
        // linked, not copied: the ISO holds the kernel once
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(dir.join("vmlinuz")).unwrap().ino(), {
            fs::metadata(t.path().join("tree/images/pxeboot/vmlinuz")).unwrap().ino()
        });
        assert_eq!(fs::read_to_string(dir.join("initrd.img")).unwrap(), "initrd");
    }

    #[test]
    fn fips_entry_and_fedora_layout_with_splash() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        fs::create_dir_all(data.join("usr/share/syslinux")).unwrap();
        fs::create_dir_all(data.join("usr/share/anaconda/boot")).unwrap();
        for name in FILES {
            fs::write(data.join("usr/share/syslinux").join(name), name).unwrap();
        }
        fs::write(data.join(SPLASH), "png").unwrap();
        run(
            t.path(),
            json!({"product": {"name": "Fedora", "version": "41"}, "kernel": {"dir": "/images/pxeboot"}, "fips": true}),
        )
        .unwrap();
        let dir = t.path().join("tree/isolinux");
        assert_eq!(fs::read_to_string(dir.join("ldlinux.c32")).unwrap(), "ldlinux.c32");
        assert_eq!(fs::read_to_string(dir.join("splash.png")).unwrap(), "png");
        let cfg = fs::read_to_string(dir.join("isolinux.cfg")).unwrap();
        assert!(cfg.contains("menu background splash.png"), "{cfg}");
        assert!(cfg.contains("label fips\n  menu label ^Install Fedora 41 in FIPS mode\n  kernel vmlinuz\n  append initrd=initrd.img  fips=1 quiet\n"), "{cfg}");
    }

    #[test]
    fn missing_files_are_named() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("data")).unwrap();
        let o = json!({"product": {"name": "P", "version": "1"}, "kernel": {"dir": "/images/pxeboot"}});
        let e = run(t.path(), o).unwrap_err().to_string();
        assert!(e.contains("isolinux.bin") && e.contains("data"), "{e}");

        let t = tempfile::tempdir().unwrap();
        data_tree(&t.path().join("data"));
        let o = json!({"product": {"name": "P", "version": "1"}, "kernel": {"dir": "/boot"}});
        let e = run(t.path(), o).unwrap_err().to_string();
        assert!(e.contains("kernel.dir") && e.contains("vmlinuz"), "{e}");
    }
}
