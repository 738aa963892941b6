//! Pieces shared by the GRUB configuration stages (`org.osbuild.grub2` and
//! `org.osbuild.grub2.legacy`): naming a file system for `search`, the terminal lines of
//! `grub.cfg`, the 1024-byte `grubenv` block, and copying GRUB's platform modules, its font
//! and the EFI binaries from the build root into the tree.

use super::util::{create_parents, tree_path, walk_error, write_file};
use super::{StageArgs, StageError};
use serde::{Deserialize, Deserializer};
use std::fs::{self, File, FileTimes};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Where the build root keeps GRUB's per-platform modules (Fedora and Debian alike).
pub const MODULES_DIR: &str = "/usr/lib/grub";
/// The font both upstream stages copy next to the modules.
pub const FONT: &str = "/usr/share/grub/unicode.pf2";
/// The size of a `grubenv` block; GRUB refuses an environment block of any other size.
pub const GRUBENV_SIZE: usize = 1024;

/// The `config` object of both stages: what goes into `/etc/default/grub` and the console
/// lines of `grub.cfg`. `cmdline` is an option of `org.osbuild.grub2.legacy` only
/// (`org.osbuild.grub2` parses it with [`config_without_cmdline`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub cmdline: Option<String>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub disable_recovery: Option<bool>,
    #[serde(default)]
    pub disable_submenu: Option<bool>,
    #[serde(default)]
    pub distributor: Option<String>,
    #[serde(default)]
    pub terminal: Option<Vec<String>>,
    #[serde(default)]
    pub terminal_input: Option<Vec<String>>,
    #[serde(default)]
    pub terminal_output: Option<Vec<String>>,
    #[serde(default)]
    pub timeout: Option<u64>,
    #[serde(default)]
    pub timeout_style: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
}

/// Parse a [`Config`] that must not have `cmdline`, failing as `deny_unknown_fields` would.
pub fn config_without_cmdline<'de, D: Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
    const FIELDS: &[&str] = &[
        "default",
        "disable_recovery",
        "disable_submenu",
        "distributor",
        "terminal",
        "terminal_input",
        "terminal_output",
        "timeout",
        "timeout_style",
        "serial",
    ];
    let c = Config::deserialize(d)?;
    if c.cmdline.is_some() {
        return Err(serde::de::Error::unknown_field("cmdline", FIELDS));
    }
    Ok(c)
}

impl Config {
    /// The `/etc/default/grub` lines both stages write the same way: distributor, serial
    /// command and the terminal lists, each only when set and not empty.
    pub fn console_defaults(&self) -> String {
        let mut s = String::new();
        if let Some(d) = self.distributor.as_deref().filter(|d| !d.is_empty()) {
            s += &format!("GRUB_DISTRIBUTOR=\"{d}\"\n");
        }
        if let Some(serial) = self.serial.as_deref().filter(|d| !d.is_empty()) {
            s += &format!("GRUB_SERIAL_COMMAND=\"{serial}\"\n");
        }
        for (key, list) in [
            ("GRUB_TERMINAL", &self.terminal),
            ("GRUB_TERMINAL_INPUT", &self.terminal_input),
            ("GRUB_TERMINAL_OUTPUT", &self.terminal_output),
        ] {
            if let Some(l) = list.as_ref().filter(|l| !l.is_empty()) {
                s += &format!("{key}=\"{}\"\n", l.join(" "));
            }
        }
        s
    }

    /// The `serial`, `terminal_input` and `terminal_output` values of `grub.cfg` (each with
    /// its leading newline); an unset one becomes its `${name}` placeholder when
    /// `keep_placeholders`, else nothing.
    pub fn console_lines(&self, keep_placeholders: bool) -> [String; 3] {
        let unset = |name: &str| if keep_placeholders { format!("${{{name}}}") } else { String::new() };
        let serial = self
            .serial
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| format!("\n{s}"))
            .unwrap_or_else(|| unset("serial"));
        let input =
            terminal_line("terminal_input", self.terminal_input.as_deref()).unwrap_or_else(|| unset("terminal_input"));
        let output = terminal_line("terminal_output", self.terminal_output.as_deref())
            .unwrap_or_else(|| unset("terminal_output"));
        [serial, input, output]
    }
}

/// How a manifest names a file system: `{"uuid": ..}`, `{"label": ..}` or (grub2.legacy's
/// root file system only) `{"device": ..}`. The schemas leave the object open, so unknown
/// keys are accepted.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filesystem {
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
}

/// A file system reference, resolved as upstream does: the first non-empty of `uuid`,
/// `label` (and `device` where allowed), in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsRef<'a> {
    Uuid(&'a str),
    Label(&'a str),
    Device(&'a str),
}

impl Filesystem {
    /// Resolve this reference; `what` names it in the error ("rootfs", "bootfs").
    pub fn resolve(&self, what: &str, allow_device: bool) -> Result<FsRef<'_>, StageError> {
        fn pick(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.is_empty())
        }
        if let Some(u) = pick(&self.uuid) {
            return Ok(FsRef::Uuid(u));
        }
        if let Some(l) = pick(&self.label) {
            return Ok(FsRef::Label(l));
        }
        if allow_device {
            if let Some(d) = pick(&self.device) {
                return Ok(FsRef::Device(d));
            }
            return Err(StageError::Invalid(format!("unknown filesystem type: {what} needs a uuid, label or device")));
        }
        Err(StageError::Invalid(format!("unknown filesystem type: {what} needs a uuid or a label")))
    }

    /// Whether the object names anything at all (upstream treats `{}` as absent).
    pub fn is_empty(&self) -> bool {
        self.uuid.is_none() && self.label.is_none() && self.device.is_none()
    }
}

impl FsRef<'_> {
    /// The arguments of GRUB's `search` that find this file system.
    pub fn search_args(&self) -> String {
        match self {
            FsRef::Uuid(u) => format!("--fs-uuid {u}"),
            FsRef::Label(l) => format!("--label {l}"),
            FsRef::Device(d) => (*d).to_owned(),
        }
    }

    /// The kernel's `root=` value for this file system (`UUID=..`, `LABEL=..` or the device).
    pub fn root_arg(&self) -> String {
        match self {
            FsRef::Uuid(u) => format!("UUID={u}"),
            FsRef::Label(l) => format!("LABEL={l}"),
            FsRef::Device(d) => (*d).to_owned(),
        }
    }
}

/// The `grub.cfg` line for `terminal_input` / `terminal_output` (with its leading newline),
/// or `None` when the list is absent or empty.
pub fn terminal_line(name: &str, devices: Option<&[String]>) -> Option<String> {
    devices.filter(|d| !d.is_empty()).map(|d| format!("\n{name} {}", d.join(" ")))
}

/// `"true"` / `"false"` as `/etc/default/grub` spells booleans.
pub fn bool_word(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// A complete `grubenv` block: the header, the `key=value` lines given, then `#` padding up
/// to exactly [`GRUBENV_SIZE`] bytes.
pub fn grubenv_block(lines: &[String]) -> Result<Vec<u8>, StageError> {
    let mut data = String::from("# GRUB Environment Block\n");
    for l in lines {
        data.push_str(l);
        data.push('\n');
    }
    if data.len() > GRUBENV_SIZE {
        return Err(StageError::Invalid(format!(
            "the grubenv content is {} bytes, more than the {GRUBENV_SIZE} bytes of the block",
            data.len()
        )));
    }
    let mut out = data.into_bytes();
    out.resize(GRUBENV_SIZE, b'#');
    Ok(out)
}

/// Write `data` to the tree path `rel`, following symlinks inside the tree like upstream's
/// `open(path, "w")`, creating missing parent directories.
pub fn write_tree_file(args: &StageArgs, rel: &str, data: &[u8]) -> Result<(), StageError> {
    let path = tree_path(args, rel, true)?;
    create_parents(&path)?;
    write_file(&path, data, 0o644)
}

/// Fill `@name@` placeholders in `template` from `vars`, in one pass: inserted values are
/// never scanned again, and an `@` that does not start a known placeholder stays as it is.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let hit = after.find('@').and_then(|end| vars.iter().find(|(k, _)| *k == &after[..end]).map(|(_, v)| (end, v)));
        match hit {
            Some((end, v)) => {
                out.push_str(v);
                rest = &after[end + 1..];
            }
            None => {
                out.push('@');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Check a platform name taken from the options before it becomes a directory name.
pub fn check_platform(platform: &str) -> Result<(), StageError> {
    if platform.is_empty() || platform.contains('/') || platform == "." || platform == ".." {
        return Err(StageError::Invalid(format!("invalid grub platform '{platform}'")));
    }
    Ok(())
}

/// Copy one regular file as Python's `shutil.copy2` does: contents, permission bits and
/// access/modification times. `src` is followed if it is a symlink; `dst` (already confined)
/// must not be one.
pub fn copy_file(src: &Path, dst: &Path) -> Result<(), StageError> {
    let meta = fs::metadata(src).map_err(StageError::io("cannot read", src))?;
    let data = fs::read(src).map_err(StageError::io("cannot read", src))?;
    write_file(dst, &data, 0o644)?;
    copy_stat(&meta, dst)
}

/// Give `dst` the permission bits and times of `meta` (Python's `shutil.copystat`, without
/// the extended attributes).
fn copy_stat(meta: &fs::Metadata, dst: &Path) -> Result<(), StageError> {
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.permissions().mode() & 0o7777))
        .map_err(StageError::io("cannot set the mode of", dst))?;
    let mut times = FileTimes::new();
    if let Ok(t) = meta.accessed() {
        times = times.set_accessed(t);
    }
    if let Ok(t) = meta.modified() {
        times = times.set_modified(t);
    }
    let f = File::open(dst).map_err(StageError::io("cannot open", dst))?;
    f.set_times(times).map_err(StageError::io("cannot set the times of", dst))
}

/// Copy the build root's GRUB modules for `platform` (`*.mod` and `*.lst`, except the empty
/// `fdt.lst`) into the tree's `/boot/grub2/<platform>/`.
pub fn copy_modules(args: &StageArgs, stage: &'static str, platform: &str) -> Result<(), StageError> {
    check_platform(platform)?;
    let source = Path::new(MODULES_DIR).join(platform);
    let target = tree_path(args, format!("/boot/grub2/{platform}"), true)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&target)
        .map_err(StageError::io("cannot create directory", &target))?;
    let entries = fs::read_dir(&source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            StageError::ToolMissing { tool: source.display().to_string(), stage, place: "in the build root" }
        } else {
            StageError::Io { op: "cannot read directory", path: source.clone(), source: e }
        }
    })?;
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(StageError::io("cannot read directory", &source))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if (name.ends_with(".mod") || name.ends_with(".lst")) && name != "fdt.lst" {
            names.push(name);
        }
    }
    names.sort();
    for name in names {
        copy_file(&source.join(&name), &target.join(&name))?;
    }
    Ok(())
}

/// Copy the build root's unicode font into the tree's `/boot/grub2/fonts/`.
pub fn copy_font(args: &StageArgs, stage: &'static str) -> Result<(), StageError> {
    let src = Path::new(FONT);
    if !src.exists() {
        return Err(StageError::ToolMissing { tool: FONT.to_owned(), stage, place: "in the build root" });
    }
    let dst = tree_path(args, "/boot/grub2/fonts/unicode.pf2", false)?;
    create_parents(&dst)?;
    copy_file(src, &dst)
}

/// Copy the build root's `<efi_src_dir>/BOOT` and `<efi_src_dir>/<vendor>` to the tree's
/// `/boot/efi/EFI/`, as Python's `shutil.copytree` does (symlinks followed, modes and times
/// kept, the targets must not exist yet).
pub fn copy_efi_data(args: &StageArgs, efi_src_dir: &Path, vendor: &str) -> Result<(), StageError> {
    for d in ["BOOT", vendor] {
        let src = efi_src_dir.join(d);
        let dst = tree_path(args, format!("/boot/efi/EFI/{d}"), false)?;
        if fs::symlink_metadata(&dst).is_ok() {
            return Err(StageError::Invalid(format!("cannot install EFI data: {} already exists", dst.display())));
        }
        create_parents(&dst)?;
        copy_tree(&src, &dst, false)?;
    }
    Ok(())
}

/// `shutil.copytree` of a build-root directory: links followed (the EFI data are files, not
/// links, on the target), directories' modes and times set once their contents are in. With
/// `merge` (`dirs_exist_ok=True`) directories already in the tree are filled in and files
/// there replaced, but a symlink in the tree is never written through: `dst` is confined, and
/// what lies below it must stay so.
pub fn copy_tree(src: &Path, dst: &Path, merge: bool) -> Result<(), StageError> {
    if !fs::metadata(src).map_err(StageError::io("cannot read", src))?.is_dir() {
        return Err(StageError::Invalid(format!("cannot copy {}: not a directory", src.display())));
    }
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(src).follow_links(true).sort_by_file_name() {
        let entry = entry.map_err(|e| walk_error(src, e))?;
        let target = dst.join(entry.path().strip_prefix(src).expect("below the source"));
        if entry.file_type().is_dir() {
            let existing = fs::symlink_metadata(&target).ok();
            match existing {
                Some(m) if merge && m.is_dir() => {}
                Some(_) if merge => {
                    return Err(StageError::Invalid(format!("cannot copy into {}: not a directory", target.display())))
                }
                _ => fs::create_dir(&target).map_err(StageError::io("cannot create directory", &target))?,
            }
            dirs.push((entry.metadata().map_err(|e| walk_error(src, e))?, target));
        } else {
            copy_file(entry.path(), &target)?;
        }
    }
    // deepest first, so setting a directory's times is the last change made in it
    for (meta, dir) in dirs.iter().rev() {
        copy_stat(meta, dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystem_resolution_order() {
        let fs: Filesystem = serde_json::from_value(serde_json::json!({"label": "root", "uuid": ""})).unwrap();
        assert_eq!(fs.resolve("rootfs", false).unwrap(), FsRef::Label("root"));
        let fs: Filesystem = serde_json::from_value(serde_json::json!({"label": "r", "uuid": "u"})).unwrap();
        assert_eq!(fs.resolve("rootfs", false).unwrap().search_args(), "--fs-uuid u");
        let fs: Filesystem = serde_json::from_value(serde_json::json!({"device": "/dev/vda3"})).unwrap();
        assert_eq!(fs.resolve("rootfs", true).unwrap().root_arg(), "/dev/vda3");
        let e = fs.resolve("bootfs", false).unwrap_err().to_string();
        assert_eq!(e, "unknown filesystem type: bootfs needs a uuid or a label");
    }

    #[test]
    fn config_without_cmdline_fails_like_an_unknown_field() {
        let c = config_without_cmdline(serde_json::json!({"timeout": 3})).unwrap();
        assert_eq!(c.timeout, Some(3));
        let e = config_without_cmdline(serde_json::json!({"cmdline": "ro"})).unwrap_err().to_string();
        assert!(e.starts_with("unknown field `cmdline`, expected one of `default`"), "{e}");
        let e = config_without_cmdline(serde_json::json!({"bogus": 1})).unwrap_err().to_string();
        assert!(e.starts_with("unknown field `bogus`"), "{e}");
    }

    #[test]
    fn grubenv_is_one_padded_block() {
        let b = grubenv_block(&["saved_entry=x".into()]).unwrap();
        assert_eq!(b.len(), 1024);
        assert!(b.starts_with(b"# GRUB Environment Block\nsaved_entry=x\n###"));
        assert!(b.ends_with(b"#"));
        let e = grubenv_block(&["k=".to_owned() + &"v".repeat(1000)]).unwrap_err().to_string();
        assert!(e.starts_with("the grubenv content is 1028 bytes"), "{e}");
    }

    #[test]
    fn render_is_one_pass() {
        let vars = [("a", "@b@"), ("b", "x")];
        assert_eq!(render("@a@@b@ m@il @c@ @", &vars), "@b@x m@il @c@ @");
    }

    #[test]
    fn terminal_lines() {
        let v = vec!["serial".to_owned(), "console".to_owned()];
        assert_eq!(terminal_line("terminal_input", Some(&v)).unwrap(), "\nterminal_input serial console");
        assert_eq!(terminal_line("terminal_input", Some(&[])), None);
        assert_eq!(terminal_line("terminal_input", None), None);
    }

    #[test]
    fn platform_must_be_a_name() {
        assert!(check_platform("i386-pc").is_ok());
        for bad in ["", "..", "../etc", "a/b"] {
            assert!(check_platform(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn efi_tree_copy_keeps_modes_and_refuses_existing_target() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("EFI");
        fs::create_dir_all(src.join("BOOT")).unwrap();
        fs::create_dir_all(src.join("debian/sub")).unwrap();
        fs::write(src.join("BOOT/BOOTX64.EFI"), "boot").unwrap();
        fs::write(src.join("debian/grubx64.efi"), "grub").unwrap();
        fs::set_permissions(src.join("debian/grubx64.efi"), fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("../../BOOT/BOOTX64.EFI", src.join("debian/sub/link")).unwrap();
        let tree = t.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let args = crate::testutil::args(&tree, serde_json::json!({}));
        copy_efi_data(&args, &src, "debian").unwrap();
        let efi = tree.join("boot/efi/EFI");
        assert_eq!(fs::read_to_string(efi.join("BOOT/BOOTX64.EFI")).unwrap(), "boot");
        assert_eq!(fs::metadata(efi.join("debian/grubx64.efi")).unwrap().permissions().mode() & 0o777, 0o700);
        // symlinks are followed: the copy is a regular file
        let m = fs::symlink_metadata(efi.join("debian/sub/link")).unwrap();
        assert!(m.is_file());
        assert_eq!(
            fs::metadata(efi.join("BOOT/BOOTX64.EFI")).unwrap().modified().unwrap(),
            fs::metadata(src.join("BOOT/BOOTX64.EFI")).unwrap().modified().unwrap()
        );
        let e = copy_efi_data(&args, &src, "debian").unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
    }
}
