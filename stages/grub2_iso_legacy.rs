//! `org.osbuild.grub2.iso.legacy`: the BIOS (or Open Firmware) GRUB files of an installer
//! ISO: `grub.cfg` in `grub2dir` (`boot/grub2` when absent or empty) and a copy of the build
//! root's GRUB platform directory (`/usr/lib/grub/<platform>`: modules, `moddep.lst`, the
//! El Torito and hybrid MBR images) as `<grub2dir>/<platform>/`, existing files replaced.
//!
//! The menu is the one `org.osbuild.grub2.iso` writes ([`Menu`]), in its BIOS flavour: only
//! `all_video`, `chain` loaded, and "Boot first drive" in the troubleshooting sub-menu.
//!
//! The stage makes no core image: as upstream, an ISO's El Torito image comes from
//! `org.osbuild.grub2.inst` (`grub2-mkimage`/`grub-mkimage` with the `iso9660` file system),
//! which finds its configuration and modules here through the prefix it is given.
//!
//! Deviations from upstream:
//! - `grub2dir` is a path in the tree even when absolute (upstream's `os.path.join` would
//!   leave the tree for an absolute one);
//! - a build root without `/usr/lib/grub/<platform>` may have it as `/usr/lib/grub2/<platform>`
//!   or `/usr/share/grub2/<platform>` (other distributions' places); upstream only looks in
//!   the first;
//! - the copy never writes through a symlink already in the tree;
//! - `kernel.opts` missing is an empty list (upstream fails).

use super::grub2_iso::{CustomEntry, Firmware, Kernel, Menu, MenuConfig, Product};
use super::grub_util::copy_tree;
use super::util::{tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::util::yes;
use crate::Stage;
use serde::Deserialize;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Where build roots keep GRUB's platform directories: upstream's (Fedora's and Debian's)
/// first.
pub const MODULE_DIRS: &[&str] = &["/usr/lib/grub", "/usr/lib/grub2", "/usr/share/grub2"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub grub2dir: Option<String>,
    pub product: Product,
    pub kernel: Kernel,
    pub isolabel: String,
    #[serde(default)]
    pub fips: bool,
    #[serde(default = "yes")]
    pub troubleshooting: bool,
    #[serde(default = "yes")]
    pub test: bool,
    #[serde(default = "yes")]
    pub install: bool,
    #[serde(default)]
    pub platform: Platform,
    #[serde(default)]
    pub custom: Vec<CustomEntry>,
    #[serde(default)]
    pub config: MenuConfig,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub enum Platform {
    #[default]
    #[serde(rename = "i386-pc")]
    I386Pc,
    #[serde(rename = "powerpc-ieee1275")]
    PowerpcIeee1275,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::I386Pc => "i386-pc",
            Platform::PowerpcIeee1275 => "powerpc-ieee1275",
        }
    }
}

/// The build root's directory of `platform` below `build_root` (`/` but in tests).
fn module_dir(build_root: &Path, platform: Platform) -> Result<PathBuf, StageError> {
    MODULE_DIRS
        .iter()
        .map(|d| build_root.join(d.trim_start_matches('/')).join(platform.name()))
        .find(|p| p.is_dir())
        .ok_or_else(|| StageError::ToolMissing {
            tool: format!("{}/{} (GRUB modules of option platform)", MODULE_DIRS[0], platform.name()),
            stage: Grub2IsoLegacy::NAME,
            place: "in the build root",
        })
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Grub2IsoLegacy;

impl Stage for Grub2IsoLegacy {
    const NAME: &'static str = "org.osbuild.grub2.iso.legacy";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        run_with_build_root(args, &options, Path::new("/"))
    }
}

fn run_with_build_root(args: &StageArgs, o: &Options, build_root: &Path) -> StageResult {
    let dir = o.grub2dir.as_deref().filter(|d| !d.is_empty()).unwrap_or("boot/grub2");
    let grub2dir = tree_path(args, dir, true)?;
    let modules = module_dir(build_root, o.platform)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&grub2dir)
        .map_err(StageError::io("cannot create directory", &grub2dir))?;
    let target = tree_path(args, Path::new(dir).join(o.platform.name()), false)?;
    copy_tree(&modules, &target, true)?;

    println!("kernel dir at {}", o.kernel.dir);
    let menu = Menu {
        product: &o.product,
        kernel: &o.kernel,
        isolabel: &o.isolabel,
        fips: o.fips,
        troubleshooting: o.troubleshooting,
        test: o.test,
        install: o.install,
        custom: &o.custom,
        config: &o.config,
    };
    let cfg = tree_path(args, Path::new(dir).join("grub.cfg"), true)?;
    write_file(&cfg, menu.render(Firmware::Bios).as_bytes(), 0o644)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::process::Command;

    const DEBIAN_MODULES: &str = "/usr/lib/grub/i386-pc";

    fn need_grub() {
        assert!(
            Path::new(DEBIAN_MODULES).join("moddep.lst").exists(),
            "{DEBIAN_MODULES} is missing: apt-get install -y grub-pc-bin"
        );
    }

    fn run(tree: &Path, v: serde_json::Value, build_root: &Path) -> StageResult {
        let o: Options = serde_json::from_value(v.clone()).unwrap();
        run_with_build_root(&args(tree, v), &o, build_root)
    }

    fn base() -> serde_json::Value {
        json!({"product": {"name": "Debian", "version": "12"}, "isolabel": "DEBIAN_12",
               "kernel": {"dir": "/images/pxeboot", "opts": ["inst.stage2=hd:LABEL=DEBIAN_12"]}})
    }

    #[test]
    fn copies_the_platform_directory_and_core_images_build_from_it() {
        need_grub();
        let t = tempfile::tempdir().unwrap();
        run(t.path(), base(), Path::new("/")).unwrap();
        let copied = t.path().join("boot/grub2/i386-pc");
        // everything, not only modules: the El Torito and MBR images too
        for f in ["moddep.lst", "iso9660.mod", "biosdisk.mod", "cdboot.img", "boot_hybrid.img", "kernel.img"] {
            assert_eq!(fs::read(copied.join(f)).unwrap(), fs::read(Path::new(DEBIAN_MODULES).join(f)).unwrap(), "{f}");
        }
        // the real grub-mkimage makes an El Torito core from the copied directory alone
        let core = t.path().join("eltorito.img");
        let out = Command::new("grub-mkimage")
            .arg("--directory")
            .arg(&copied)
            .args(["--prefix", "/boot/grub2", "--format", "i386-pc-eltorito", "--output"])
            .arg(&core)
            .args(["biosdisk", "iso9660"])
            .output()
            .expect("grub-mkimage: apt-get install -y grub-common");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let img = fs::read(&core).unwrap();
        // an El Torito core starts with cdboot.img
        let cdboot = fs::read(copied.join("cdboot.img")).unwrap();
        assert!(img.len() > 20_000 && img.starts_with(&cdboot), "{} bytes", img.len());

        let cfg = fs::read_to_string(t.path().join("boot/grub2/grub.cfg")).unwrap();
        assert!(cfg.starts_with("\nfunction load_video {\n  insmod all_video\n}\n"), "{cfg}");
        assert!(cfg.contains("search --no-floppy --set=root -l 'DEBIAN_12'\n"), "{cfg}");
        // grub-script-check parses what GRUB would run
        let check = Command::new("grub-script-check").arg(t.path().join("boot/grub2/grub.cfg")).output().unwrap();
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    }

    #[test]
    fn grub2dir_replaces_files_and_stays_in_the_tree() {
        need_grub();
        let t = tempfile::tempdir().unwrap();
        let mut v = base();
        v["grub2dir"] = json!("/isolinux/../boot/grub");
        let stale = t.path().join("boot/grub/i386-pc/iso9660.mod");
        fs::create_dir_all(stale.parent().unwrap()).unwrap();
        fs::write(&stale, "stale").unwrap();
        run(t.path(), v.clone(), Path::new("/")).unwrap();
        assert_eq!(fs::read(&stale).unwrap(), fs::read(Path::new(DEBIAN_MODULES).join("iso9660.mod")).unwrap());
        assert!(t.path().join("boot/grub/grub.cfg").is_file());
        assert!(!t.path().join("boot/grub2").exists());
        // a symlink to the outside where a file goes is not written through
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("victim"), "keep").unwrap();
        fs::remove_file(&stale).unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), &stale).unwrap();
        assert!(run(t.path(), v, Path::new("/")).is_err());
        assert_eq!(fs::read_to_string(outside.path().join("victim")).unwrap(), "keep");
    }

    #[test]
    fn module_directory_of_other_distributions_and_missing_platform() {
        let r = tempfile::tempdir().unwrap();
        fs::create_dir_all(r.path().join("usr/share/grub2/i386-pc")).unwrap();
        fs::write(r.path().join("usr/share/grub2/i386-pc/normal.mod"), "m").unwrap();
        let t = tempfile::tempdir().unwrap();
        run(t.path(), base(), r.path()).unwrap();
        assert_eq!(fs::read_to_string(t.path().join("boot/grub2/i386-pc/normal.mod")).unwrap(), "m");
        let mut v = base();
        v["platform"] = json!("powerpc-ieee1275");
        let e = run(t.path(), v, r.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            "/usr/lib/grub/powerpc-ieee1275 (GRUB modules of option platform) not found in the build root, but \
             org.osbuild.grub2.iso.legacy needs it"
        );
        let mut v = base();
        v["platform"] = json!("x86_64-efi");
        assert!(serde_json::from_value::<Options>(v).is_err());
    }
}
