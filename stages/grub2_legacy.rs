//! `org.osbuild.grub2.legacy`: configure GRUB 2 with classic `menuentry` blocks, one per
//! kernel in `entries`, for GRUB builds without the `blscfg` command (e.g. Debian's).
//!
//! As upstream:
//! - `/etc/default/grub` (unless `write_defaults` is false) from `config` (defaults: timeout
//!   0, no sub-menu, no recovery entries, `countdown`, `GRUB_DEFAULT=saved`);
//! - `/boot/grub2/grubenv`, one 1024-byte block, with `saved_entry` when an entry has
//!   `default: true` (at most one may);
//! - with `uefi`: `/boot/efi/EFI/<vendor>/grub.cfg` (and, with `uefi.install`, the build
//!   root's `/boot/efi/EFI/{BOOT,<vendor>}` copied into the tree);
//! - with `bios`: `/boot/grub2/grub.cfg`, the build root's `/usr/lib/grub/<platform>/*.{mod,lst}`
//!   (not `fdt.lst`) in `/boot/grub2/<platform>/` and `unicode.pf2` in `/boot/grub2/fonts/`.
//!
//! Each menu entry searches the file system holding `/boot` (`bootfs`, else `rootfs`; by
//! uuid, label or device), loads `<home>vmlinuz-<kernel>` with `root=<rootfs> <cmdline>` and
//! its initrd, `<home>` being `/boot/` or, with a separate boot file system, `/`. On
//! `i386-pc` the commands are `linux16`/`initrd16` in the BIOS config and
//! `linuxefi`/`initrdefi` in the UEFI one; elsewhere plain `linux`/`initrd`. As in upstream,
//! an unset `serial`, `terminal_input` or `terminal_output` leaves its placeholder
//! (`${serial}` …) in the file; GRUB expands it to nothing.
//!
//! Deviations from upstream:
//! - the `saved_entry` written for the default entry is the entry's menu id
//!   (`gnulinux-<kernel>-advanced-<id>`); upstream writes `gnulinux-$<kernel>-…`, which
//!   matches no entry, so GRUB fell back to the first one;
//! - the initrd is `initramfs-<kernel>.img` as upstream, unless the tree has Debian's
//!   `/boot/initrd.img-<kernel>` and no `/boot/initramfs-<kernel>.img`: then the Debian name;
//! - `uefi` without `bios` works (upstream fails looking up the BIOS platform);
//! - `grubenv` is padded to 1024 bytes rather than characters; extended attributes of copied
//!   files are not copied; the EFI config's directory is created when missing.

use super::grub_util::{
    bool_word, check_platform, copy_efi_data, copy_font, copy_modules, grubenv_block, render, write_tree_file, Config,
    Filesystem,
};
use super::util::tree_path;
use super::{StageArgs, StageError, StageResult};
use crate::util::yes;
use crate::Stage;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub rootfs: Filesystem,
    #[serde(default)]
    pub bootfs: Option<Filesystem>,
    #[serde(default)]
    pub bios: Option<Bios>,
    #[serde(default)]
    pub uefi: Option<Uefi>,
    #[serde(default = "yes")]
    pub write_defaults: bool,
    pub entries: Vec<Entry>,
    #[serde(default)]
    pub config: Config,
}

#[derive(Debug, Deserialize)]
pub struct Bios {
    /// `i386-pc` or `powerpc-ieee1275`.
    pub platform: String,
}

#[derive(Debug, Deserialize)]
pub struct Uefi {
    pub vendor: String,
    #[serde(default)]
    pub install: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(default)]
    pub default: bool,
    /// Part of the menu id (GRUB's own scripts use the root file system's uuid).
    pub id: String,
    pub product: Product,
    /// The kernel version, as in `vmlinuz-<kernel>`.
    pub kernel: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub nick: Option<String>,
}

const MAIN_CFG: &str = r#"
# Created by osbuild

set timeout=@timeout@

# load the grubenv file
load_env

# selection of the next boot entry
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${saved_entry}"
fi

if [ "${prev_saved_entry}" ]; then
  set saved_entry="${prev_saved_entry}"
  save_env saved_entry
  set prev_saved_entry=
  save_env prev_saved_entry
  set boot_once=true
fi

function savedefault {
  if [ -z "${boot_once}" ]; then
    saved_entry="${chosen}"
    save_env saved_entry
  fi
}
@serial@@terminal_input@@terminal_output@
"#;

const ENTRY: &str = "menuentry '@title@' --class red --class gnu-linux --class gnu --class os --unrestricted \
                     --id '@menu_id@' {\n\
                     \tinsmod all_video\n\
                     \tset gfxpayload=keep\n\
                     \tsearch --no-floppy --set=root @search@\n\
                     \tlinux@loader@ @home@vmlinuz-@kernel@ @cmdline@\n\
                     \tinitrd@loader@ @home@@initrd@\n\
                     }\n";

impl Entry {
    fn title(&self) -> String {
        let p = &self.product;
        let mut t = format!("{} ({}) {}", p.name, self.kernel, p.version);
        if let Some(nick) = p.nick.as_deref().filter(|n| !n.is_empty()) {
            t += &format!(" ({nick})");
        }
        t
    }

    fn menu_id(&self) -> String {
        format!("gnulinux-{}-advanced-{}", self.kernel, self.id)
    }
}

/// `/etc/default/grub`.
fn defaults(c: &Config) -> String {
    let mut s = format!(
        "GRUB_TIMEOUT={}\nGRUB_CMDLINE_LINUX=\"{}\"\nGRUB_DISABLE_SUBMENU={}\nGRUB_DISABLE_RECOVERY={}\n\
         GRUB_TIMEOUT_STYLE={}\nGRUB_DEFAULT={}\n",
        c.timeout.unwrap_or(0),
        c.cmdline.as_deref().unwrap_or(""),
        bool_word(c.disable_submenu.unwrap_or(true)),
        bool_word(c.disable_recovery.unwrap_or(true)),
        c.timeout_style.as_deref().unwrap_or("countdown"),
        c.default.as_deref().unwrap_or("saved"),
    );
    s += &c.console_defaults();
    s
}

/// The initrd file name of `kernel`: upstream's `initramfs-<kernel>.img`, or Debian's
/// `initrd.img-<kernel>` when only that one is in the tree's `/boot`.
fn initrd_name(args: &StageArgs, kernel: &str) -> Result<String, StageError> {
    let fedora = format!("initramfs-{kernel}.img");
    let debian = format!("initrd.img-{kernel}");
    let exists =
        |name: &str| -> Result<bool, StageError> { Ok(tree_path(args, format!("/boot/{name}"), true)?.exists()) };
    if !exists(&fedora)? && exists(&debian)? {
        return Ok(debian);
    }
    Ok(fedora)
}

/// One `grub.cfg`; `efi` selects the UEFI flavour of the i386-pc loader commands.
fn grub_cfg(args: &StageArgs, o: &Options, efi: bool) -> Result<String, StageError> {
    let c = &o.config;
    let grubfs = match o.bootfs.as_ref().filter(|b| !b.is_empty()) {
        Some(b) => b.resolve("bootfs", true)?,
        None => o.rootfs.resolve("rootfs", true)?,
    };
    let root = o.rootfs.resolve("rootfs", true)?;
    let home = if o.bootfs.is_some() { "/" } else { "/boot/" };
    let loader = match o.bios.as_ref().map(|b| b.platform.as_str()) {
        Some("i386-pc") if efi => "efi",
        Some("i386-pc") => "16",
        _ => "",
    };
    let [serial, input, output] = c.console_lines(true);
    let mut cfg = render(
        MAIN_CFG,
        &[
            ("timeout", &c.timeout.unwrap_or(0).to_string()),
            ("serial", &serial),
            ("terminal_input", &input),
            ("terminal_output", &output),
        ],
    );
    let search = grubfs.search_args();
    let cmdline = format!("root={} {}", root.root_arg(), c.cmdline.as_deref().unwrap_or(""));
    for e in &o.entries {
        let initrd = initrd_name(args, &e.kernel)?;
        cfg.push('\n');
        cfg += &render(
            ENTRY,
            &[
                ("title", &e.title()),
                ("menu_id", &e.menu_id()),
                ("search", &search),
                ("loader", loader),
                ("home", home),
                ("kernel", &e.kernel),
                ("cmdline", &cmdline),
                ("initrd", &initrd),
            ],
        );
    }
    cfg.push('\n');
    Ok(cfg)
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Grub2Legacy;

impl Stage for Grub2Legacy {
    const NAME: &'static str = "org.osbuild.grub2.legacy";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        if o.entries.is_empty() {
            return Err(StageError::Invalid("no menu entries: entries must not be empty".into()));
        }
        if let Some(b) = &o.bios {
            check_platform(&b.platform)?;
        }
        // fail on a bad file system before writing anything
        o.rootfs.resolve("rootfs", true)?;
        if let Some(b) = o.bootfs.as_ref().filter(|b| !b.is_empty()) {
            b.resolve("bootfs", true)?;
        }

        let default_entries: Vec<&Entry> = o.entries.iter().filter(|e| e.default).collect();
        if default_entries.len() > 1 {
            return Err(StageError::Invalid(format!("multiple default entries ({})", default_entries.len())));
        }

        if o.write_defaults {
            write_tree_file(args, "/etc/default/grub", defaults(&o.config).as_bytes())?;
        }

        let env: Vec<String> = default_entries.iter().map(|e| format!("saved_entry={}", e.menu_id())).collect();
        write_tree_file(args, "/boot/grub2/grubenv", &grubenv_block(&env)?)?;

        if let Some(uefi) = &o.uefi {
            if uefi.install {
                copy_efi_data(args, Path::new("/boot/efi/EFI"), &uefi.vendor)?;
            }
            let cfg = grub_cfg(args, &o, true)?;
            write_tree_file(args, &format!("/boot/efi/EFI/{}/grub.cfg", uefi.vendor), cfg.as_bytes())?;
        }
        if let Some(bios) = &o.bios {
            let cfg = grub_cfg(args, &o, false)?;
            print!("{cfg}");
            write_tree_file(args, "/boot/grub2/grub.cfg", cfg.as_bytes())?;
            copy_modules(args, Grub2Legacy::NAME, &bios.platform)?;
            copy_font(args, Grub2Legacy::NAME)?;
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

    fn opts(config: Value) -> Value {
        json!({"rootfs": {"label": "root"}, "config": config,
               "entries": [{"id": "fff", "kernel": "4.18", "product": {"name": "Fedora", "version": "40"}}]})
    }

    fn read(tree: &Path, rel: &str) -> String {
        fs::read_to_string(tree.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    #[test]
    fn default_config_files() {
        let t = tempfile::tempdir().unwrap();
        Grub2Legacy::execute(&args(t.path(), opts(json!({})))).unwrap();
        assert_eq!(
            read(t.path(), "etc/default/grub"),
            "GRUB_TIMEOUT=0\nGRUB_CMDLINE_LINUX=\"\"\nGRUB_DISABLE_SUBMENU=true\nGRUB_DISABLE_RECOVERY=true\n\
             GRUB_TIMEOUT_STYLE=countdown\nGRUB_DEFAULT=saved\n"
        );
        let env = read(t.path(), "boot/grub2/grubenv");
        assert_eq!(env, format!("# GRUB Environment Block\n{}", "#".repeat(1024 - 25)));
        // neither bios nor uefi: no grub.cfg at all
        assert!(!t.path().join("boot/grub2/grub.cfg").exists());
    }

    #[test]
    fn custom_defaults() {
        let t = tempfile::tempdir().unwrap();
        let config = json!({"default": "0", "disable_submenu": false, "disable_recovery": false,
                            "timeout": 10, "timeout_style": "hidden"});
        Grub2Legacy::execute(&args(t.path(), opts(config))).unwrap();
        assert_eq!(
            read(t.path(), "etc/default/grub"),
            "GRUB_TIMEOUT=10\nGRUB_CMDLINE_LINUX=\"\"\nGRUB_DISABLE_SUBMENU=false\nGRUB_DISABLE_RECOVERY=false\n\
             GRUB_TIMEOUT_STYLE=hidden\nGRUB_DEFAULT=0\n"
        );
        let t = tempfile::tempdir().unwrap();
        let config = json!({"cmdline": "console=ttyS0", "distributor": "$(sed 's, release .*$,,g' /etc/system-release)",
            "serial": "serial --unit=0", "terminal": ["serial", "console"], "terminal_output": ["console"]});
        Grub2Legacy::execute(&args(t.path(), opts(config))).unwrap();
        assert_eq!(
            read(t.path(), "etc/default/grub"),
            "GRUB_TIMEOUT=0\nGRUB_CMDLINE_LINUX=\"console=ttyS0\"\nGRUB_DISABLE_SUBMENU=true\nGRUB_DISABLE_RECOVERY=true\n\
             GRUB_TIMEOUT_STYLE=countdown\nGRUB_DEFAULT=saved\n\
             GRUB_DISTRIBUTOR=\"$(sed 's, release .*$,,g' /etc/system-release)\"\n\
             GRUB_SERIAL_COMMAND=\"serial --unit=0\"\nGRUB_TERMINAL=\"serial console\"\nGRUB_TERMINAL_OUTPUT=\"console\"\n"
        );
    }

    #[test]
    fn uefi_entries_with_bootfs_and_default() {
        let t = tempfile::tempdir().unwrap();
        let o = json!({
        "rootfs": {"device": "/dev/vda3"}, "bootfs": {"uuid": "156f0420-627b-4151-ae6f-fda298097515"},
        "bios": {"platform": "powerpc-ieee1275"}, "uefi": {"vendor": "debian"}, "write_defaults": false,
        "config": {"cmdline": "ro quiet", "timeout": 3, "serial": "serial --unit=0",
                   "terminal_input": ["serial"], "terminal_output": ["serial", "console"]},
        "entries": [
            {"id": "a", "kernel": "6.1.0-1-amd64", "product": {"name": "Debian", "version": "12", "nick": "bookworm"}},
            {"id": "a", "kernel": "6.1.0-2-amd64", "default": true, "product": {"name": "Debian", "version": "12"}}
        ]});
        // the BIOS half would need powerpc modules; only the UEFI config is checked here
        let e = Grub2Legacy::execute(&args(t.path(), o)).unwrap_err();
        assert!(e.to_string().contains("/usr/lib/grub/powerpc-ieee1275"), "{e}");
        assert!(!t.path().join("etc/default/grub").exists());
        let env = read(t.path(), "boot/grub2/grubenv");
        assert!(env.starts_with("# GRUB Environment Block\nsaved_entry=gnulinux-6.1.0-2-amd64-advanced-a\n#"));
        let cfg = read(t.path(), "boot/efi/EFI/debian/grub.cfg");
        assert!(cfg.starts_with("\n# Created by osbuild\n\nset timeout=3\n\n# load the grubenv file\nload_env\n"));
        assert!(cfg.contains("\n}\n\nserial --unit=0\nterminal_input serial\nterminal_output serial console\n\n"));
        let first = "menuentry 'Debian (6.1.0-1-amd64) 12 (bookworm)' --class red --class gnu-linux --class gnu \
                     --class os --unrestricted --id 'gnulinux-6.1.0-1-amd64-advanced-a' {\n\
                     \tinsmod all_video\n\tset gfxpayload=keep\n\
                     \tsearch --no-floppy --set=root --fs-uuid 156f0420-627b-4151-ae6f-fda298097515\n\
                     \tlinux /vmlinuz-6.1.0-1-amd64 root=/dev/vda3 ro quiet\n\
                     \tinitrd /initramfs-6.1.0-1-amd64.img\n}\n";
        assert!(
            cfg.contains(&format!("terminal_output serial console\n\n{first}\nmenuentry 'Debian (6.1.0-2-amd64) 12' "))
        );
        assert!(cfg.ends_with("\tinitrd /initramfs-6.1.0-2-amd64.img\n}\n\n"), "{cfg}");
    }

    #[test]
    fn debian_initrd_name_when_only_that_exists() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("boot")).unwrap();
        fs::write(t.path().join("boot/initrd.img-6.1.0-2-amd64"), "").unwrap();
        let a = args(t.path(), json!({}));
        assert_eq!(initrd_name(&a, "6.1.0-2-amd64").unwrap(), "initrd.img-6.1.0-2-amd64");
        assert_eq!(initrd_name(&a, "4.18").unwrap(), "initramfs-4.18.img");
        fs::write(t.path().join("boot/initramfs-6.1.0-2-amd64.img"), "").unwrap();
        assert_eq!(initrd_name(&a, "6.1.0-2-amd64").unwrap(), "initramfs-6.1.0-2-amd64.img");
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let mut o = opts(json!({}));
        o["entries"][0]["default"] = json!(true);
        let first = o["entries"][0].clone();
        o["entries"].as_array_mut().unwrap().push(first);
        let e = Grub2Legacy::execute(&args(t.path(), o)).unwrap_err().to_string();
        assert_eq!(e, "multiple default entries (2)");
        let mut o = opts(json!({}));
        o["rootfs"] = json!({});
        let e = Grub2Legacy::execute(&args(t.path(), o)).unwrap_err().to_string();
        assert_eq!(e, "unknown filesystem type: rootfs needs a uuid, label or device");
        let mut o = opts(json!({}));
        o["entries"][0]["initrd"] = json!("x");
        let e = crate::error_chain(&Grub2Legacy::execute(&args(t.path(), o)).unwrap_err());
        assert!(e.contains("unknown field `initrd`"), "{e}");
    }
}
