//! `org.osbuild.grub2`: configure GRUB 2 to boot the Boot Loader Specification entries of the
//! tree (`blscfg`), for BIOS (`legacy`), UEFI (`uefi`) or both (hybrid).
//!
//! Written as upstream does, byte for byte:
//! - `/etc/default/grub` (unless `write_defaults` is false) from `kernel_opts` and `config`;
//! - `/boot/grub2/grubenv`, one 1024-byte block with `kernelopts=root=<UUID|LABEL>=<id>
//!   <kernel_opts>` (unless `write_cmdline` is false) and `saved_entry`. An existing
//!   `grubenv` symlink (Fedora's link into the ESP) is written through, inside the tree,
//!   except for hybrid boot where it is replaced by a file;
//! - the main `grub.cfg`: load the environment, pick `next_entry`/`saved_entry`, `search` the
//!   file system holding `/boot` (`bootfs`, else `rootfs`), optional ignition and greenboot
//!   blocks, serial and terminal lines, then `blscfg`. It goes to `/boot/grub2/grub.cfg`, or
//!   for UEFI-only boot to `/boot/efi/EFI/<vendor>/grub.cfg`; for hybrid or `uefi.unified` the
//!   EFI directory gets a small config that redirects to `/boot/grub2/grub.cfg`.
//!   With `compat_version` 1 (the default) an unset serial/terminal option leaves its
//!   placeholder (`${serial}` …) in the file, as upstream's version 1 does; version 2 drops it;
//! - `uefi.install` copies `<efi_src_dir>/{BOOT,<vendor>}` of the build root to
//!   `/boot/efi/EFI/`;
//! - `legacy` (`true` = `i386-pc`, or a platform name) copies the build root's
//!   `/usr/lib/grub/<platform>/*.{mod,lst}` (not `fdt.lst`) to `/boot/grub2/<platform>/` and
//!   `/usr/share/grub/unicode.pf2` to `/boot/grub2/fonts/`.
//!
//! Deviations: the parent directory of the EFI `grub.cfg` is created when missing (upstream
//! fails); `grubenv` is padded to 1024 bytes, not characters (they differ only for non-ASCII
//! options, where upstream's block would be invalid); extended attributes of copied files are
//! not copied.
//!
//! Debian's GRUB has no `blscfg` command: a Debian tree boots with `org.osbuild.grub2.legacy`.

use super::grub_util::{
    bool_word, check_platform, config_without_cmdline, copy_efi_data, copy_font, copy_modules, grubenv_block, render,
    write_tree_file, Config, Filesystem, FsRef,
};
use super::util::{create_parents, remove_if_exists, tree_path};
use super::{StageArgs, StageError, StageResult};
use crate::util::yes;
use crate::Stage;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// 1 keeps upstream's unfilled template placeholders, 2 removes them.
    #[serde(default)]
    pub compat_version: Option<f64>,
    #[serde(default)]
    pub rootfs: Option<Filesystem>,
    #[serde(default)]
    pub bootfs: Option<Filesystem>,
    /// Old spelling of `rootfs: {"uuid": ..}`.
    #[serde(default)]
    pub root_fs_uuid: Option<String>,
    /// Old spelling of `bootfs: {"uuid": ..}`.
    #[serde(default)]
    pub boot_fs_uuid: Option<String>,
    #[serde(default)]
    pub kernel_opts: String,
    #[serde(default)]
    pub legacy: Option<Legacy>,
    #[serde(default)]
    pub uefi: Option<Uefi>,
    #[serde(default)]
    pub saved_entry: Option<String>,
    #[serde(default = "yes")]
    pub write_defaults: bool,
    #[serde(default = "yes")]
    pub write_cmdline: bool,
    #[serde(default)]
    pub ignition: bool,
    #[serde(default)]
    pub greenboot: bool,
    #[serde(default, deserialize_with = "config_without_cmdline")]
    pub config: Config,
}

/// `legacy`: a boolean (`true` means `i386-pc`) or the GRUB platform name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Legacy {
    Enabled(bool),
    Platform(String),
}

impl Legacy {
    /// The platform whose modules are installed, if BIOS boot is wanted.
    fn platform(&self) -> Option<&str> {
        match self {
            Legacy::Enabled(true) => Some("i386-pc"),
            Legacy::Enabled(false) => None,
            Legacy::Platform(p) if p.is_empty() => None,
            Legacy::Platform(p) => Some(p),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Uefi {
    pub vendor: String,
    #[serde(default)]
    pub efi_src_dir: Option<String>,
    #[serde(default)]
    pub install: bool,
    #[serde(default)]
    pub unified: bool,
}

const MAIN_CFG: &str = r#"
set timeout=@timeout@

# load the grubenv file
load_env

# selection of the next boot entry via variables 'next_entry' and
# `saved_entry` present in the 'grubenv' file. Both variables are
# set by grub tools, like grub2-reboot, grub2-set-default

if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${saved_entry}"
fi

search --no-floppy --set=root @search@
set boot=${root}
function load_video {
  insmod all_video
}
@features@@serial@@terminal_input@@terminal_output@
blscfg
"#;

const REDIRECT_CFG: &str = r#"
search --no-floppy --set prefix --file @home@grub2/grub.cfg
set prefix=($prefix)@home@grub2
configfile $prefix/grub.cfg
"#;

const IGNITION: &str = r#"
# Ignition support
set ignition_firstboot=""
if [ -f "@home@ignition.firstboot" ]; then
    # Default networking parameters to be used with ignition.
    set ignition_network_kcmdline=''

    # Source in the `ignition.firstboot` file which could override the
    # above $ignition_network_kcmdline with static networking config.
    # This override feature is primarily used by coreos-installer to
    # persist static networking config provided during install to the
    # first boot of the machine.
    source "@home@ignition.firstboot"

    set ignition_firstboot="ignition.firstboot ${ignition_network_kcmdline}"
fi
"#;

const GREENBOOT: &str = r#"
# greenboot support, aka boot counter and boot success reporting
insmod increment
# Check if boot_counter exists and boot_success=0 to activate this behaviour.
if [ -n "${boot_counter}" -a "${boot_success}" = "0" ]; then
  # if countdown has ended, choose to boot rollback deployment,
  # i.e. default=1 on OSTree-based systems.
  if  [ "${boot_counter}" = "0" -o "${boot_counter}" = "-1" ]; then
    set default=1
    set boot_counter=-1
  # otherwise decrement boot_counter
  else
    decrement boot_counter
  fi
  save_env boot_counter
fi

# Reset boot_success for current boot
set boot_success=0
save_env boot_success
"#;

/// The options after upstream's fallbacks: the file systems and where GRUB's files live.
struct Layout<'a> {
    root: FsRef<'a>,
    /// The file system holding `/boot` (`bootfs`, else `rootfs`).
    grubfs: FsRef<'a>,
    /// `/boot/` on the root file system, `/` on a separate boot partition.
    home: &'static str,
}

fn layout<'a>(o: &'a Options, root_uuid: &'a Filesystem, boot_uuid: &'a Filesystem) -> Result<Layout<'a>, StageError> {
    let rootfs = match o.rootfs.as_ref().filter(|f| !f.is_empty()) {
        Some(f) => f,
        None if o.root_fs_uuid.is_some() => root_uuid,
        None => return Err(StageError::Invalid("either rootfs or root_fs_uuid is required".into())),
    };
    let bootfs = match o.bootfs.as_ref() {
        Some(f) if !f.is_empty() => Some(f),
        _ if o.boot_fs_uuid.is_some() => Some(boot_uuid),
        other => other,
    };
    let root = rootfs.resolve("rootfs", false)?;
    let grubfs = match bootfs.filter(|f| !f.is_empty()) {
        Some(b) => b.resolve("bootfs", false)?,
        None => root,
    };
    Ok(Layout { root, grubfs, home: if bootfs.is_some() { "/" } else { "/boot/" } })
}

/// `/etc/default/grub`.
fn defaults(o: &Options) -> String {
    let c = &o.config;
    let mut s = format!(
        "GRUB_CMDLINE_LINUX=\"{}\"\nGRUB_TIMEOUT={}\nGRUB_ENABLE_BLSCFG=true\n",
        o.kernel_opts,
        c.timeout.unwrap_or(0)
    );
    if let Some(b) = c.disable_recovery {
        s += &format!("GRUB_DISABLE_RECOVERY={}\n", bool_word(b));
    }
    if let Some(b) = c.disable_submenu {
        s += &format!("GRUB_DISABLE_SUBMENU={}\n", bool_word(b));
    }
    s += &c.console_defaults();
    if let Some(style) = c.timeout_style.as_deref().filter(|d| !d.is_empty()) {
        s += &format!("GRUB_TIMEOUT_STYLE={style}\n");
    }
    if let Some(d) = &c.default {
        s += &format!("GRUB_DEFAULT={d}\n");
    }
    s
}

/// The main `grub.cfg`.
fn main_cfg(o: &Options, l: &Layout) -> String {
    let c = &o.config;
    let mut features = Vec::new();
    if o.ignition {
        features.push(render(IGNITION, &[("home", l.home)]));
    }
    if o.greenboot {
        features.push(GREENBOOT.to_owned());
    }
    let features = features.join("\n");
    // version 1 leaves a placeholder that got no value in the file
    let [serial, input, output] = c.console_lines(o.compat_version.unwrap_or(1.0) < 2.0);
    render(
        MAIN_CFG,
        &[
            ("timeout", &c.timeout.unwrap_or(0).to_string()),
            ("search", &l.grubfs.search_args()),
            ("features", &features),
            ("serial", &serial),
            ("terminal_input", &input),
            ("terminal_output", &output),
        ],
    )
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Grub2;

impl Stage for Grub2 {
    const NAME: &'static str = "org.osbuild.grub2";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        let root_uuid = Filesystem { uuid: o.root_fs_uuid.clone(), ..Default::default() };
        let boot_uuid = Filesystem { uuid: o.boot_fs_uuid.clone(), ..Default::default() };
        let l = layout(&o, &root_uuid, &boot_uuid)?;
        let platform = o.legacy.as_ref().and_then(Legacy::platform);
        if let Some(p) = platform {
            check_platform(p)?;
        }
        let hybrid = o.uefi.is_some() && platform.is_some();

        if o.write_defaults {
            write_tree_file(args, "/etc/default/grub", defaults(&o).as_bytes())?;
        }

        create_parents(&tree_path(args, "/boot/grub2/grubenv", false)?)?;
        if hybrid {
            // one grubenv for both boot paths: drop the link into the ESP that grub2-efi ships
            remove_if_exists(&tree_path(args, "/boot/grub2/grubenv", false)?)?;
        }
        let mut env = Vec::new();
        if o.write_cmdline {
            env.push(format!("kernelopts=root={} {}", l.root.root_arg(), o.kernel_opts));
        }
        if let Some(e) = o.saved_entry.as_deref().filter(|e| !e.is_empty()) {
            env.push(format!("saved_entry={e}"));
        }
        let block = grubenv_block(&env)?;
        write_tree_file(args, "/boot/grub2/grubenv", &block)?;

        let mut main_path = "/boot/grub2/grub.cfg".to_owned();
        if let Some(uefi) = &o.uefi {
            if uefi.install {
                let src = uefi.efi_src_dir.as_deref().unwrap_or("/boot/efi/EFI");
                copy_efi_data(args, Path::new(src), &uefi.vendor)?;
            }
            let efi_cfg = format!("/boot/efi/EFI/{}/grub.cfg", uefi.vendor);
            if hybrid || uefi.unified {
                println!("hybrid boot or unified grub config enabled, writing a redirecting {efi_cfg}");
                write_tree_file(args, &efi_cfg, render(REDIRECT_CFG, &[("home", l.home)]).as_bytes())?;
            } else {
                main_path = efi_cfg;
            }
        }
        write_tree_file(args, &main_path, main_cfg(&o, &l).as_bytes())?;

        if let Some(platform) = platform {
            copy_modules(args, Grub2::NAME, platform)?;
            copy_font(args, Grub2::NAME)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::{json, Value};
    use std::fs;

    const SERIAL: &str = "serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1";

    /// The fixed part of every BLS grub.cfg, from the start to the `search` line.
    fn head(timeout: u32) -> String {
        format!(
            "\nset timeout={timeout}\n\n# load the grubenv file\nload_env\n\n\
             # selection of the next boot entry via variables 'next_entry' and\n\
             # `saved_entry` present in the 'grubenv' file. Both variables are\n\
             # set by grub tools, like grub2-reboot, grub2-set-default\n\n\
             if [ \"${{next_entry}}\" ] ; then\n   set default=\"${{next_entry}}\"\n   set next_entry=\n   \
             save_env next_entry\n   set boot_once=true\nelse\n   set default=\"${{saved_entry}}\"\nfi\n\n"
        )
    }

    const VIDEO: &str = "set boot=${root}\nfunction load_video {\n  insmod all_video\n}\n";

    fn run_in(tree: &Path, options: Value) {
        Grub2::execute(&args(tree, options)).unwrap();
    }

    fn read(tree: &Path, rel: &str) -> String {
        fs::read_to_string(tree.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    #[test]
    fn defaults_with_version_1_placeholders() {
        let t = tempfile::tempdir().unwrap();
        run_in(t.path(), json!({"rootfs": {"label": "root"}}));
        assert_eq!(
            read(t.path(), "etc/default/grub"),
            "GRUB_CMDLINE_LINUX=\"\"\nGRUB_TIMEOUT=0\nGRUB_ENABLE_BLSCFG=true\n"
        );
        let want = head(0)
            + "search --no-floppy --set=root --label root\n"
            + VIDEO
            + "${serial}${terminal_input}${terminal_output}\nblscfg\n";
        assert_eq!(read(t.path(), "boot/grub2/grub.cfg"), want);
        let env = read(t.path(), "boot/grub2/grubenv");
        assert_eq!(env.len(), 1024);
        assert!(env.starts_with("# GRUB Environment Block\nkernelopts=root=LABEL=root \n#"), "{env}");
        assert!(!t.path().join("boot/grub2/i386-pc").exists());
    }

    #[test]
    fn version_2_drops_unset_placeholders() {
        let t = tempfile::tempdir().unwrap();
        run_in(t.path(), json!({"compat_version": 2, "rootfs": {"label": "root"}}));
        let want = head(0) + "search --no-floppy --set=root --label root\n" + VIDEO + "\nblscfg\n";
        assert_eq!(read(t.path(), "boot/grub2/grub.cfg"), want);
    }

    #[test]
    fn serial_and_terminals() {
        let t = tempfile::tempdir().unwrap();
        let config = json!({"default": "0", "timeout": 10, "terminal_input": ["console"],
                            "terminal_output": ["serial"], "serial": SERIAL});
        run_in(t.path(), json!({"rootfs": {"label": "root"}, "config": config}));
        assert_eq!(
            read(t.path(), "etc/default/grub"),
            format!(
                "GRUB_CMDLINE_LINUX=\"\"\nGRUB_TIMEOUT=10\nGRUB_ENABLE_BLSCFG=true\nGRUB_SERIAL_COMMAND=\"{SERIAL}\"\n\
                 GRUB_TERMINAL_INPUT=\"console\"\nGRUB_TERMINAL_OUTPUT=\"serial\"\nGRUB_DEFAULT=0\n"
            )
        );
        let want = head(10)
            + "search --no-floppy --set=root --label root\n"
            + VIDEO
            + &format!("\n{SERIAL}\nterminal_input console\nterminal_output serial\nblscfg\n");
        assert_eq!(read(t.path(), "boot/grub2/grub.cfg"), want);
    }

    #[test]
    fn azure_like_config_keeps_the_one_missing_placeholder() {
        let t = tempfile::tempdir().unwrap();
        let config = json!({"default": "saved", "disable_submenu": true, "disable_recovery": true,
            "distributor": "$(sed 's, release .*$,,g' /etc/system-release)", "serial": SERIAL,
            "terminal": ["serial", "console"], "terminal_output": ["console"], "timeout": 10,
            "timeout_style": "countdown"});
        let opts = "loglevel=3 crashkernel=auto console=tty1 console=ttyS0 earlyprintk=ttyS0 rootdelay=300";
        run_in(t.path(), json!({"rootfs": {"label": "root"}, "config": config, "kernel_opts": opts}));
        assert_eq!(
            read(t.path(), "etc/default/grub"),
            format!(
                "GRUB_CMDLINE_LINUX=\"{opts}\"\nGRUB_TIMEOUT=10\nGRUB_ENABLE_BLSCFG=true\n\
                 GRUB_DISABLE_RECOVERY=true\nGRUB_DISABLE_SUBMENU=true\n\
                 GRUB_DISTRIBUTOR=\"$(sed 's, release .*$,,g' /etc/system-release)\"\n\
                 GRUB_SERIAL_COMMAND=\"{SERIAL}\"\nGRUB_TERMINAL=\"serial console\"\n\
                 GRUB_TERMINAL_OUTPUT=\"console\"\nGRUB_TIMEOUT_STYLE=countdown\nGRUB_DEFAULT=saved\n"
            )
        );
        let cfg = read(t.path(), "boot/grub2/grub.cfg");
        assert!(
            cfg.ends_with(&format!("}}\n\n{SERIAL}${{terminal_input}}\nterminal_output console\nblscfg\n")),
            "{cfg}"
        );
        let env = read(t.path(), "boot/grub2/grubenv");
        assert!(env.starts_with(&format!("# GRUB Environment Block\nkernelopts=root=LABEL=root {opts}\n#")));
    }

    #[test]
    fn uuid_bootfs_ignition_greenboot_saved_entry() {
        let t = tempfile::tempdir().unwrap();
        let root = "76a22bf4-f153-4541-b6c7-0332c0dfaeac";
        let boot = "156f0420-627b-4151-ae6f-fda298097515";
        run_in(
            t.path(),
            json!({"root_fs_uuid": root, "boot_fs_uuid": boot, "ignition": true, "greenboot": true,
                   "saved_entry": "ffff-5.6.6", "write_defaults": false, "compat_version": 2}),
        );
        assert!(!t.path().join("etc").exists());
        let env = read(t.path(), "boot/grub2/grubenv");
        assert!(env.starts_with(&format!(
            "# GRUB Environment Block\nkernelopts=root=UUID={root} \nsaved_entry=ffff-5.6.6\n#"
        )));
        let cfg = read(t.path(), "boot/grub2/grub.cfg");
        assert!(cfg.contains(&format!("search --no-floppy --set=root --fs-uuid {boot}\n")), "{cfg}");
        // separate /boot: ignition looks at the top of the boot file system
        assert!(cfg.contains(
            "}\n\n# Ignition support\nset ignition_firstboot=\"\"\nif [ -f \"/ignition.firstboot\" ]; then\n"
        ));
        assert!(cfg.contains("    source \"/ignition.firstboot\"\n\n    set ignition_firstboot=\"ignition.firstboot ${ignition_network_kcmdline}\"\nfi\n\n\n# greenboot support"));
        assert!(cfg.contains("    # above $ignition_network_kcmdline with static"));
        assert!(cfg.ends_with("set boot_success=0\nsave_env boot_success\n\nblscfg\n"), "{cfg}");
        let no_cmdline = tempfile::tempdir().unwrap();
        run_in(no_cmdline.path(), json!({"rootfs": {"uuid": root}, "write_cmdline": false}));
        assert!(read(no_cmdline.path(), "boot/grub2/grubenv").starts_with("# GRUB Environment Block\n##"));
    }

    #[test]
    fn uefi_only_writes_the_main_config_into_the_esp_and_follows_the_grubenv_link() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("boot/grub2")).unwrap();
        fs::create_dir_all(t.path().join("boot/efi/EFI/fedora")).unwrap();
        std::os::unix::fs::symlink("../efi/EFI/fedora/grubenv", t.path().join("boot/grub2/grubenv")).unwrap();
        run_in(t.path(), json!({"rootfs": {"label": "root"}, "uefi": {"vendor": "fedora"}, "compat_version": 2}));
        assert!(read(t.path(), "boot/efi/EFI/fedora/grub.cfg").ends_with("\nblscfg\n"));
        assert!(!t.path().join("boot/grub2/grub.cfg").exists());
        assert!(fs::symlink_metadata(t.path().join("boot/grub2/grubenv")).unwrap().file_type().is_symlink());
        assert_eq!(fs::metadata(t.path().join("boot/efi/EFI/fedora/grubenv")).unwrap().len(), 1024);
    }

    #[test]
    fn unified_uefi_gets_a_redirect() {
        let t = tempfile::tempdir().unwrap();
        run_in(t.path(), json!({"rootfs": {"label": "root"}, "uefi": {"vendor": "fedora", "unified": true}}));
        assert_eq!(
            read(t.path(), "boot/efi/EFI/fedora/grub.cfg"),
            "\nsearch --no-floppy --set prefix --file /boot/grub2/grub.cfg\n\
             set prefix=($prefix)/boot/grub2\nconfigfile $prefix/grub.cfg\n"
        );
        assert!(read(t.path(), "boot/grub2/grub.cfg").ends_with("\nblscfg\n"));
    }

    #[test]
    fn empty_bootfs_falls_back_to_boot_fs_uuid() {
        let t = tempfile::tempdir().unwrap();
        let boot = "156f0420-627b-4151-ae6f-fda298097515";
        run_in(t.path(), json!({"rootfs": {"label": "root"}, "bootfs": {}, "boot_fs_uuid": boot, "ignition": true}));
        let cfg = read(t.path(), "boot/grub2/grub.cfg");
        assert!(cfg.contains(&format!("search --no-floppy --set=root --fs-uuid {boot}\n")), "{cfg}");
        // an empty bootfs alone still means a separate /boot, found through the root file system
        let t = tempfile::tempdir().unwrap();
        run_in(t.path(), json!({"rootfs": {"label": "root"}, "bootfs": {}, "ignition": true}));
        let cfg = read(t.path(), "boot/grub2/grub.cfg");
        assert!(cfg.contains("search --no-floppy --set=root --label root\n"), "{cfg}");
        assert!(cfg.contains("if [ -f \"/ignition.firstboot\" ]; then"), "{cfg}");
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let e = Grub2::execute(&args(t.path(), json!({}))).unwrap_err().to_string();
        assert_eq!(e, "either rootfs or root_fs_uuid is required");
        let e = Grub2::execute(&args(t.path(), json!({"rootfs": {"device": "/dev/vda"}}))).unwrap_err().to_string();
        assert_eq!(e, "unknown filesystem type: rootfs needs a uuid or a label");
        let e = Grub2::execute(&args(t.path(), json!({"rootfs": {"label": "r"}, "entries": []}))).unwrap_err();
        assert!(crate::error_chain(&e).contains("unknown field `entries`"));
        let e = Grub2::execute(&args(t.path(), json!({"rootfs": {"label": "r"}, "legacy": "../x"})))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid grub platform '../x'");
    }
}
