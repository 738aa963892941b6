//! `org.osbuild.grub2.syslinux-menu` (osbuild-rs' own): GRUB 2 for an OSTree sysroot whose
//! boot menu ostree itself keeps up to date, for GRUB builds without `blscfg` (Debian's).
//!
//! ostree writes a Boot Loader Specification entry per deployment; Fedora's GRUB reads them
//! with `blscfg`, Debian's cannot. ostree's syslinux backend (`sysroot.bootloader=syslinux`)
//! also writes every deployment as a `LABEL` of `/boot/loader/syslinux.cfg`, newest (the
//! default) first, in the same atomic `/boot/loader` swap as the entries — at build time and
//! after every `ostree admin upgrade`, `deploy` or `undeploy` on the device. GRUB's
//! `syslinux_source` command turns that file into menu entries. So the stage writes, once:
//!
//! - `/boot/grub2/grub.cfg`: the console lines (`serial`, `terminal_input`,
//!   `terminal_output`), a `search` for the file system holding `/boot` (`bootfs`), and
//!   `syslinux_source -s /boot/syslinux/syslinux.cfg`. The path also works when `/boot` is
//!   a partition of its own: ostree keeps a `boot -> .` link in it, which is also how the
//!   `/boot/ostree/...` kernel paths of the menu resolve;
//! - the build root's GRUB modules for `platform` in `/boot/grub2/<platform>/` (for
//!   `org.osbuild.grub2.inst`'s core image, whose prefix points there);
//! - the empty menu ostree's syslinux backend starts from (its test suite's layout):
//!   `/boot/loader.0/syslinux.cfg` holding `TIMEOUT` (tenths of a second; ostree keeps every
//!   line outside its `LABEL` blocks), `/boot/loader -> loader.0` and
//!   `/boot/syslinux/syslinux.cfg -> ../loader/syslinux.cfg`.
//!
//! The stage therefore runs before `org.osbuild.ostree.deploy`; once deployments exist
//! without that menu it fails, naming the order. It also fails when the sysroot's repository
//! (`/ostree/repo/config`) sets a `sysroot.bootloader` other than `syslinux` or `auto`: ostree
//! would then never rewrite the menu. With `timeout` 0 GRUB boots the default entry without
//! showing a menu (its syslinux parser emits only that entry), so older deployments are not
//! selectable at boot.

use super::grub_util::{copy_modules, terminal_line, write_tree_file, Filesystem};
use super::util::{create_parents, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The file system holding `/boot`.
    pub bootfs: Filesystem,
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Seconds the menu waits before booting the default entry.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub terminal_input: Vec<String>,
    #[serde(default)]
    pub terminal_output: Vec<String>,
}

fn default_platform() -> String {
    "i386-pc".into()
}

fn default_timeout() -> u64 {
    3
}

/// Where GRUB finds the menu, relative to the file system holding `/boot`.
const MENU: &str = "/boot/syslinux/syslinux.cfg";

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Grub2SyslinuxMenu;

impl Stage for Grub2SyslinuxMenu {
    const NAME: &'static str = "org.osbuild.grub2.syslinux-menu";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let bootfs = options.bootfs.resolve("bootfs", false)?;
        check_bootloader_config(&args.tree.join("ostree/repo/config"))?;
        lay_out_menu(args, options.timeout)?;
        copy_modules(args, Self::NAME, &options.platform)?;
        let mut cfg = String::from(
            "# Written by osbuild-rs (org.osbuild.grub2.syslinux-menu). The menu entries are the\n\
             # OSTree deployments: ostree's syslinux backend rewrites /boot/loader/syslinux.cfg at\n\
             # every deployment change and GRUB reads it with syslinux_source.\n",
        );
        if let Some(s) = options.serial.as_deref().filter(|s| !s.is_empty()) {
            cfg += &format!("{s}\n");
        }
        for (name, list) in [("terminal_input", &options.terminal_input), ("terminal_output", &options.terminal_output)]
        {
            if let Some(line) = terminal_line(name, Some(list.as_slice())) {
                cfg += &format!("{}\n", line.trim_start_matches('\n'));
            }
        }
        cfg += &format!("search --no-floppy --set=root {}\nsyslinux_source -s {MENU}\n", bootfs.search_args());
        write_tree_file(args, "/boot/grub2/grub.cfg", cfg.as_bytes())?;
        Ok(None)
    }
}

/// Refuse a repository configuration under which ostree would not keep the menu.
fn check_bootloader_config(config: &Path) -> Result<(), StageError> {
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StageError::Io { op: "cannot read", path: config.to_owned(), source: e }),
    };
    match ini_value(&text, "sysroot", "bootloader") {
        None | Some("syslinux") | Some("auto") => Ok(()),
        Some(other) => Err(StageError::Invalid(format!(
            "{} sets sysroot.bootloader={other}: ostree would never update the syslinux menu GRUB reads; \
             set it to syslinux (org.osbuild.ostree.config)",
            config.display()
        ))),
    }
}

/// The value of `key` in `[section]` of a GKeyFile-style text (the last one wins, as in GLib).
fn ini_value<'a>(text: &'a str, section: &str, key: &str) -> Option<&'a str> {
    let mut current = "";
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name;
        } else if current == section {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    found = Some(v.trim());
                }
            }
        }
    }
    found
}

/// The empty menu and the links ostree's syslinux backend expects, unless the menu exists.
fn lay_out_menu(args: &StageArgs, timeout: u64) -> Result<(), StageError> {
    let menu_link = tree_path(args, MENU, false)?;
    if std::fs::symlink_metadata(&menu_link).is_ok() {
        println!("{MENU} exists: keeping the menu as it is");
        return Ok(());
    }
    let loader = tree_path(args, "/boot/loader", false)?;
    if std::fs::symlink_metadata(&loader).is_ok() {
        return Err(StageError::Invalid(
            "/boot/loader exists (the sysroot has deployments) but /boot/syslinux/syslinux.cfg does not: \
             run org.osbuild.grub2.syslinux-menu before org.osbuild.ostree.deploy"
                .into(),
        ));
    }
    let first = tree_path(args, "/boot/loader.0/syslinux.cfg", false)?;
    create_parents(&first)?;
    let text = format!(
        "# The OSTree deployments, newest first; ostree rewrites the LABEL entries and keeps\n\
         # the other lines. GRUB reads this file (/boot/grub2/grub.cfg).\n\
         TIMEOUT {}\n",
        timeout.saturating_mul(10)
    );
    write_file(&first, text.as_bytes(), 0o644)?;
    std::os::unix::fs::symlink("loader.0", &loader).map_err(StageError::io("cannot create link", &loader))?;
    let dir = menu_link.parent().expect("the menu path has a parent");
    std::fs::DirBuilder::new().mode(0o755).create(dir).map_err(StageError::io("cannot create directory", dir))?;
    std::os::unix::fs::symlink("../loader/syslinux.cfg", &menu_link)
        .map_err(StageError::io("cannot create link", &menu_link))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::process::Command;

    fn sysroot(bootloader: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("ostree/repo")).unwrap();
        std::fs::create_dir_all(t.path().join("boot")).unwrap();
        std::fs::write(
            t.path().join("ostree/repo/config"),
            format!("[core]\nrepo_version=1\nmode=bare\n\n[sysroot]\nbootloader={bootloader}\nreadonly=true\n"),
        )
        .unwrap();
        t
    }

    fn options() -> serde_json::Value {
        json!({"bootfs": {"label": "boot"}, "timeout": 5, "serial": "serial --unit=0 --speed=115200",
               "terminal_input": ["serial"], "terminal_output": ["serial", "console"]})
    }

    #[test]
    fn writes_grub_cfg_and_the_menu_ostree_starts_from() {
        let t = sysroot("syslinux");
        Grub2SyslinuxMenu::execute(&args(t.path(), options())).unwrap();
        let root = t.path();
        let cfg = std::fs::read_to_string(root.join("boot/grub2/grub.cfg")).unwrap();
        let lines: Vec<&str> = cfg.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "serial --unit=0 --speed=115200",
                "terminal_input serial",
                "terminal_output serial console",
                "search --no-floppy --set=root --label boot",
                "syslinux_source -s /boot/syslinux/syslinux.cfg"
            ]
        );
        assert_eq!(std::fs::read_link(root.join("boot/loader")).unwrap(), Path::new("loader.0"));
        assert_eq!(
            std::fs::read_link(root.join("boot/syslinux/syslinux.cfg")).unwrap(),
            Path::new("../loader/syslinux.cfg")
        );
        let menu = std::fs::read_to_string(root.join("boot/syslinux/syslinux.cfg")).unwrap();
        assert!(menu.lines().any(|l| l == "TIMEOUT 50"), "{menu}");
        assert!(root.join("boot/grub2/i386-pc/normal.mod").is_file());
        assert!(root.join("boot/grub2/i386-pc/syslinuxcfg.mod").is_file(), "the module syslinux_source lives in");

        // a second run keeps the menu (ostree may have filled it meanwhile)
        std::fs::write(root.join("boot/loader.0/syslinux.cfg"), "TIMEOUT 50\nLABEL x\n\tKERNEL /boot/ostree/k\n")
            .unwrap();
        Grub2SyslinuxMenu::execute(&args(root, options())).unwrap();
        assert!(std::fs::read_to_string(root.join("boot/loader.0/syslinux.cfg")).unwrap().contains("LABEL x"));
    }

    /// GRUB's own converter (the parser behind `syslinux_source`) reads the menu once ostree
    /// has added a deployment as its syslinux backend writes it.
    #[test]
    fn grub_reads_the_menu_with_the_timeout() {
        let t = sysroot("auto");
        Grub2SyslinuxMenu::execute(&args(t.path(), options())).unwrap();
        let menu = t.path().join("boot/loader.0/syslinux.cfg");
        let mut text = std::fs::read_to_string(&menu).unwrap();
        text += "DEFAULT Debian (ostree:0)\nLABEL Debian (ostree:0)\n\tKERNEL /boot/ostree/d-1/vmlinuz-6\n\
                 \tINITRD /boot/ostree/d-1/initramfs-6.img\n\tAPPEND root=LABEL=root ostree=/ostree/boot.1/d/1/0\n\
                 LABEL Debian (ostree:1)\n\tKERNEL /boot/ostree/d-0/vmlinuz-6\n\tAPPEND root=LABEL=root\n";
        std::fs::write(&menu, text).unwrap();
        let out =
            Command::new("grub-syslinux2cfg").arg("-s").arg(&menu).output().expect("grub-syslinux2cfg (grub-common)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let grub = String::from_utf8(out.stdout).unwrap();
        assert!(grub.contains("set timeout=5"), "{grub}");
        assert!(grub.contains(" default='Debian (ostree:0)'"), "{grub}");
        let entries: Vec<&str> = grub.lines().filter(|l| l.starts_with("menuentry ")).collect();
        assert_eq!(entries.len(), 2, "{grub}");
        assert!(entries[0].contains("(ostree:0)") && entries[1].contains("(ostree:1)"), "{grub}");
        assert!(grub.contains("'/boot/ostree/d-1/vmlinuz-6' root=LABEL=root ostree=/ostree/boot.1/d/1/0"), "{grub}");
    }

    #[test]
    fn refuses_a_bootloader_that_never_updates_the_menu() {
        let t = sysroot("none");
        let e = Grub2SyslinuxMenu::execute(&args(t.path(), options())).unwrap_err().to_string();
        assert!(e.contains("sysroot.bootloader=none") && e.contains("ostree/repo/config"), "{e}");
        assert!(!t.path().join("boot/grub2/grub.cfg").exists());
    }

    #[test]
    fn refuses_to_run_after_the_deployment() {
        let t = sysroot("syslinux");
        std::os::unix::fs::symlink("loader.1", t.path().join("boot/loader")).unwrap();
        let e = Grub2SyslinuxMenu::execute(&args(t.path(), options())).unwrap_err().to_string();
        assert!(e.contains("before org.osbuild.ostree.deploy"), "{e}");
    }

    #[test]
    fn options_and_ini_lookup() {
        assert!(serde_json::from_value::<Options>(json!({"bootfs": {"uuid": "x"}, "bogus": 1})).is_err());
        let o: Options = serde_json::from_value(json!({"bootfs": {"uuid": "x"}})).unwrap();
        assert_eq!((o.platform.as_str(), o.timeout), ("i386-pc", 3));
        let text = "[core]\nbootloader=grub2\n[sysroot]\n bootloader = none \n[sysroot]\nbootloader=syslinux\n";
        assert_eq!(ini_value(text, "sysroot", "bootloader"), Some("syslinux"));
        assert_eq!(ini_value(text, "remote \"x\"", "url"), None);
        let t = tempfile::tempdir().unwrap();
        let e = Grub2SyslinuxMenu::execute(&args(t.path(), json!({"bootfs": {}}))).unwrap_err().to_string();
        assert!(e.contains("bootfs needs a uuid or a label"), "{e}");
    }
}
