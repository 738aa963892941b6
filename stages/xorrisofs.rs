//! `org.osbuild.xorrisofs`: make an ISO 9660 image of the `tree` input with the build root's
//! `xorrisofs`, in one of upstream's three layouts (chosen by the options given, as upstream
//! chooses):
//!
//! - `chrp_boot` given (true or false): a PowerPC (CHRP) image, no UEFI;
//! - `grub2mbr` given: a hybrid BIOS/UEFI image booted by GRUB: its hybrid MBR from the build
//!   root, the `efi` image (a file of the tree) appended as GPT partition 2 and booted by El
//!   Torito from there, the ISO itself as an MBR partition of the "basic data" type;
//! - otherwise: an ISOLINUX-style image, with an isohybrid MBR (`isohybridmbr`, from the build
//!   root) and the `efi` image (a path on the ISO) as El Torito's UEFI entry, marked in the
//!   GPT too (`-isohybrid-gpt-basdat`).
//!
//! The command line is upstream's. Beyond upstream:
//! - with a `source-epoch` (`SOURCE_DATE_EPOCH`, which xorriso takes for the volume dates and
//!   the GPT GUIDs) every file date in the image is set to the epoch too
//!   (`--set_all_file_dates`), so the image does not depend on when the input was built;
//! - a build root without the Fedora path of the isohybrid MBR
//!   (`/usr/share/syslinux/isohdpfx*.bin`) gets Debian's (`/usr/lib/ISOLINUX/`);
//! - `filename` is a path in the tree (upstream joins an absolute one onto nothing).

use super::fs_image::{output_file, source_epoch_from_env};
use super::util::resolve_in_root;
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The image file, in the tree.
    pub filename: String,
    pub volid: String,
    pub sysid: Option<String>,
    #[serde(rename = "pub")]
    pub publisher: Option<String>,
    pub appid: Option<String>,
    pub prep: Option<String>,
    pub boot: Option<Boot>,
    /// The EFI boot image: a file of the input tree (GRUB layout) or a path on the ISO
    /// (ISOLINUX layout).
    pub efi: Option<String>,
    /// The GRUB hybrid MBR, in the build root; selects the GRUB layout.
    pub grub2mbr: Option<String>,
    /// The ISOLINUX isohybrid MBR, in the build root.
    pub isohybridmbr: Option<String>,
    pub isolevel: Option<u8>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub rational_rock: Option<bool>,
    pub untranslated_filenames: Option<bool>,
    pub full_filenames: Option<bool>,
    pub volset: Option<String>,
    /// Present (true or false): selects the PowerPC layout.
    pub chrp_boot: Option<bool>,
}

/// The El Torito BIOS boot entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// The boot image, a path on the ISO.
    pub image: String,
    /// The boot catalog, a path on the ISO.
    pub catalog: String,
    #[serde(default)]
    pub nobootinfo: bool,
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Xorrisofs;

impl Stage for Xorrisofs {
    const NAME: &'static str = "org.osbuild.xorrisofs";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let tree = args.input_path("tree")?;
        let output = output_file(args, &options.filename)?;
        xorrisofs(&tree, &output, &options, Path::new("/"), source_epoch_from_env()?)?.run(Xorrisofs::NAME)?;
        Ok(None)
    }
}

/// Where Debian keeps a file that upstream's manifests name by its Fedora path.
const DEBIAN_PATHS: &[(&str, &str)] = &[("/usr/share/syslinux/", "/usr/lib/ISOLINUX/")];

/// The build root's file `path` (below `root`, `/` in the sandbox), or Debian's place for it.
fn build_root_file(root: &Path, path: &str) -> PathBuf {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    if !at(path).exists() {
        for (fedora, debian) in DEBIAN_PATHS {
            if let Some(rest) = path.strip_prefix(fedora) {
                let alt = format!("{debian}{rest}");
                if at(&alt).exists() {
                    return at(&alt);
                }
            }
        }
    }
    at(path)
}

/// The options every layout starts with: volume, system, publisher, application and
/// preparer ids, after the ISO level.
fn ids(cmd: &mut Command, o: &Options) {
    if let Some(level) = o.isolevel.filter(|l| *l != 0) {
        cmd.args(["-iso-level", &level.to_string()]);
    }
    cmd.args(["-V", &o.volid]);
    for (flag, value) in
        [("-sysid", &o.sysid), ("-publisher", &o.publisher), ("-appid", &o.appid), ("-preparer", &o.prep)]
    {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            cmd.args([flag, v]);
        }
    }
}

/// The whole `xorrisofs` command line for `options` (`root`: where the build root's files
/// are, `/` but in tests), with the source epoch, if any, in its environment and every file
/// date set to it (and otherwise `SOURCE_DATE_EPOCH` removed from its environment).
fn xorrisofs(tree: &Path, output: &Path, o: &Options, root: &Path, epoch: Option<u64>) -> Result<Command, StageError> {
    let mut cmd = Command::new("xorrisofs");
    cmd.arg("-verbose");
    if o.chrp_boot.is_some() {
        ppc64le(&mut cmd, o)?;
    } else if let Some(mbr) = &o.grub2mbr {
        grub2(&mut cmd, tree, o, &build_root_file(root, mbr))?;
    } else {
        syslinux(&mut cmd, o, root);
    }
    for e in &o.exclude {
        cmd.args(["-exclude", e]);
    }
    match epoch {
        Some(epoch) => {
            cmd.args(["--set_all_file_dates", &format!("={epoch}")]).env("SOURCE_DATE_EPOCH", epoch.to_string());
        }
        None => {
            cmd.env_remove("SOURCE_DATE_EPOCH");
        }
    }
    cmd.arg("-o").arg(output).arg(tree);
    Ok(cmd)
}

fn grub2(cmd: &mut Command, tree: &Path, o: &Options, mbr: &Path) -> Result<(), StageError> {
    cmd.args(["-rock", "-joliet"]);
    ids(cmd, o);
    if !mbr.exists() {
        return Err(StageError::Invalid(format!("{} is missing from the build root", mbr.display())));
    }
    cmd.arg("--grub2-mbr").arg(mbr);
    let efi = o.efi.as_deref().filter(|e| !e.is_empty());
    if let Some(efi) = efi {
        let image = resolve_in_root(tree, efi.trim_start_matches('/'), true)?;
        cmd.args(["-partition_offset", "16", "-appended_part_as_gpt", "-append_partition", "2"]);
        cmd.arg("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").arg(image);
    }
    cmd.args(["-iso_mbr_part_type", "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"]);
    if let Some(boot) = &o.boot {
        cmd.args(["-b", &boot.image, "-c", &boot.catalog, "--boot-catalog-hide", "-no-emul-boot"]);
        cmd.args(["-boot-load-size", "4"]);
        if !boot.nobootinfo {
            cmd.args(["-boot-info-table", "--grub2-boot-info"]);
        }
        if efi.is_some() {
            cmd.args(["-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::"]);
        }
    }
    cmd.arg("-no-emul-boot");
    Ok(())
}

fn ppc64le(cmd: &mut Command, o: &Options) -> Result<(), StageError> {
    if o.efi.as_deref().is_some_and(|e| !e.is_empty()) {
        return Err(StageError::Invalid("UEFI is not supported on PPC64LE".into()));
    }
    cmd.args(["-rock", "-joliet"]);
    ids(cmd, o);
    let on = |b: Option<bool>| b.unwrap_or(false);
    if on(o.rational_rock) {
        cmd.arg("-rational-rock");
    }
    if on(o.untranslated_filenames) {
        cmd.arg("-untranslated-filenames");
    }
    if on(o.full_filenames) {
        cmd.arg("-full-iso9660-filenames");
    }
    if let Some(volset) = o.volset.as_deref().filter(|v| !v.is_empty()) {
        // always one volume
        cmd.args(["-volset", volset, "-volset-size", "1", "-volset-seqno", "1"]);
    }
    if on(o.chrp_boot) {
        cmd.arg("-chrp-boot");
    }
    Ok(())
}

fn syslinux(cmd: &mut Command, o: &Options, root: &Path) {
    ids(cmd, o);
    let isohybrid = o.isohybridmbr.as_deref().filter(|m| !m.is_empty());
    if let Some(mbr) = isohybrid {
        cmd.arg("-isohybrid-mbr").arg(build_root_file(root, mbr));
    }
    if let Some(boot) = &o.boot {
        cmd.args(["-b", &boot.image, "-c", &boot.catalog, "--boot-catalog-hide", "-boot-load-size", "4"]);
        if !boot.nobootinfo {
            cmd.arg("-boot-info-table");
        }
        cmd.arg("-no-emul-boot");
    }
    cmd.args(["-rock", "-joliet"]);
    if let Some(efi) = o.efi.as_deref().filter(|e| !e.is_empty()) {
        cmd.args(["-eltorito-alt-boot", "-e", efi, "-no-emul-boot"]);
        if isohybrid.is_some() {
            cmd.arg("-isohybrid-gpt-basdat");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;

    fn argv(options: serde_json::Value, root: &Path) -> Result<String, StageError> {
        let o: Options = serde_json::from_value(options).unwrap();
        let cmd = xorrisofs(Path::new("/in"), Path::new("/out/x.iso"), &o, root, None)?;
        let s = crate::tool::argv_string(&cmd);
        Ok(s.replace(&root.display().to_string(), "ROOT"))
    }

    /// A fake build root holding Debian's isohybrid MBR and GRUB's hybrid MBR.
    fn build_root() -> tempfile::TempDir {
        let r = tempfile::tempdir().unwrap();
        fs::create_dir_all(r.path().join("usr/lib/ISOLINUX")).unwrap();
        fs::write(r.path().join("usr/lib/ISOLINUX/isohdpfx.bin"), [0u8; 432]).unwrap();
        fs::create_dir_all(r.path().join("usr/lib/grub/i386-pc")).unwrap();
        fs::write(r.path().join("usr/lib/grub/i386-pc/boot_hybrid.img"), [0u8; 512]).unwrap();
        r
    }

    #[test]
    fn syslinux_layout_is_upstreams_command_line() {
        let r = build_root();
        // the Fedora path of the isohybrid MBR of upstream's test manifest maps to Debian's
        let a = argv(
            json!({"filename": "fedora-ostree-boot.iso", "volid": "Fedora-43-X86_64",
                   "boot": {"image": "isolinux/isolinux.bin", "catalog": "isolinux/boot.cat"},
                   "efi": "images/efiboot.img", "isohybridmbr": "/usr/share/syslinux/isohdpfx.bin"}),
            r.path(),
        )
        .unwrap();
        assert_eq!(
            a,
            "xorrisofs -verbose -V Fedora-43-X86_64 -isohybrid-mbr ROOT/usr/lib/ISOLINUX/isohdpfx.bin \
             -b isolinux/isolinux.bin -c isolinux/boot.cat --boot-catalog-hide -boot-load-size 4 -boot-info-table \
             -no-emul-boot -rock -joliet -eltorito-alt-boot -e images/efiboot.img -no-emul-boot -isohybrid-gpt-basdat \
             -o /out/x.iso /in"
        );
        let a = argv(
            json!({"filename": "x.iso", "volid": "V", "isolevel": 3, "sysid": "LINUX", "pub": "p q", "appid": "a",
                   "prep": "me", "boot": {"image": "b", "catalog": "c", "nobootinfo": true}, "exclude": ["x"]}),
            r.path(),
        )
        .unwrap();
        assert_eq!(
            a,
            "xorrisofs -verbose -iso-level 3 -V V -sysid LINUX -publisher 'p q' -appid a -preparer me -b b -c c \
             --boot-catalog-hide -boot-load-size 4 -no-emul-boot -rock -joliet -exclude x -o /out/x.iso /in"
        );
    }

    #[test]
    fn grub2_layout_is_upstreams_command_line() {
        let r = build_root();
        let a = argv(
            json!({"filename": "x.iso", "volid": "V", "grub2mbr": "/usr/lib/grub/i386-pc/boot_hybrid.img",
                   "efi": "/images/efiboot.img", "boot": {"image": "images/eltorito.img", "catalog": "boot.cat"}}),
            r.path(),
        )
        .unwrap();
        assert_eq!(
            a,
            "xorrisofs -verbose -rock -joliet -V V --grub2-mbr ROOT/usr/lib/grub/i386-pc/boot_hybrid.img \
             -partition_offset 16 -appended_part_as_gpt -append_partition 2 C12A7328-F81F-11D2-BA4B-00A0C93EC93B \
             /in/images/efiboot.img -iso_mbr_part_type EBD0A0A2-B9E5-4433-87C0-68B6B72699C7 -b images/eltorito.img \
             -c boot.cat --boot-catalog-hide -no-emul-boot -boot-load-size 4 -boot-info-table --grub2-boot-info \
             -eltorito-alt-boot -e --interval:appended_partition_2:all:: -no-emul-boot -o /out/x.iso /in"
        );
        let e = argv(json!({"filename": "x.iso", "volid": "V", "grub2mbr": "/nope.img"}), r.path()).unwrap_err();
        assert!(e.to_string().ends_with("/nope.img is missing from the build root"), "{e}");
    }

    #[test]
    fn ppc64le_layout_is_upstreams_command_line() {
        let r = build_root();
        let a = argv(
            json!({"filename": "x.iso", "volid": "V", "chrp_boot": true, "rational_rock": true,
                   "untranslated_filenames": true, "full_filenames": true, "volset": "S"}),
            r.path(),
        )
        .unwrap();
        assert_eq!(
            a,
            "xorrisofs -verbose -rock -joliet -V V -rational-rock -untranslated-filenames -full-iso9660-filenames \
             -volset S -volset-size 1 -volset-seqno 1 -chrp-boot -o /out/x.iso /in"
        );
        // chrp_boot present but false still picks this layout, as upstream does
        let a = argv(json!({"filename": "x.iso", "volid": "V", "chrp_boot": false, "grub2mbr": "/x"}), r.path());
        assert_eq!(a.unwrap(), "xorrisofs -verbose -rock -joliet -V V -o /out/x.iso /in");
        let e = argv(json!({"filename": "x.iso", "volid": "V", "chrp_boot": true, "efi": "e"}), r.path()).unwrap_err();
        assert_eq!(e.to_string(), "UEFI is not supported on PPC64LE");
    }

    /// `xorriso` reading the image: its report of `what` and the files it holds.
    fn report(iso: &Path) -> String {
        let out = Command::new("xorriso")
            .arg("-indev")
            .arg(iso)
            .args(["-pvd_info", "-report_el_torito", "plain", "-find", "/", "-exec", "lsdl"])
            .output()
            .expect("xorriso");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn makes_an_iso_of_the_input_tree() {
        // The kernel here cannot mount iso9660: xorriso reads the image back.
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("input");
        fs::create_dir_all(input.join("isolinux")).unwrap();
        fs::create_dir_all(input.join("skip")).unwrap();
        fs::write(input.join("isolinux/isolinux.bin"), [0u8; 2048]).unwrap();
        fs::write(input.join("hello.txt"), "hi\n").unwrap();
        fs::write(input.join("skip/x"), "x\n").unwrap();
        fs::create_dir_all(t.path().join("tree")).unwrap();
        let mut a = args(
            &t.path().join("tree"),
            json!({"filename": "/out.iso", "volid": "OSBUILD-TEST", "appid": "osbuild-rs",
                   "boot": {"image": "isolinux/isolinux.bin", "catalog": "isolinux/boot.cat"},
                   "exclude": [input.join("skip")]}),
        );
        a.inputs.insert("tree".into(), json!({"path": input}));
        Xorrisofs::execute(&a).unwrap();
        let r = report(&t.path().join("tree/out.iso"));
        assert!(r.contains("Volume Id    : OSBUILD-TEST"), "{r}");
        assert!(r.contains("App Id       : OSBUILD-RS"), "{r}");
        assert!(r.contains("El Torito boot img :   1  BIOS  y   none"), "{r}");
        assert!(r.contains("'/hello.txt'") && r.contains("'/isolinux/isolinux.bin'"), "{r}");
        // the catalog is hidden, the excluded directory left out
        assert!(!r.contains("boot.cat") && !r.contains("/skip"), "{r}");
    }

    #[test]
    fn source_epoch_makes_images_reproducible() {
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("input");
        fs::create_dir_all(input.join("d")).unwrap();
        fs::write(input.join("d/f"), "f\n").unwrap();
        let o: Options = serde_json::from_value(json!({"filename": "x.iso", "volid": "V"})).unwrap();
        let build = |name: &str, epoch| {
            let out = t.path().join(name);
            xorrisofs(&input, &out, &o, Path::new("/"), epoch).unwrap().run(Xorrisofs::NAME).unwrap();
            fs::read(out).unwrap()
        };
        let first = build("a.iso", Some(1_700_000_000));
        // the input's times change (as when it is built again): the image must not
        fs::write(input.join("d/f"), "f\n").unwrap();
        fs::File::open(input.join("d")).unwrap().set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(first == build("b.iso", Some(1_700_000_000)), "two builds with one source epoch differ");
        let r = report(&t.path().join("a.iso"));
        assert!(r.contains("Creation Time: 2023111422132000"), "{r}");
        assert!(r.contains("Nov 14  2023 '/d/f'"), "{r}");
        // without an epoch: the time of the build
        assert!(first != build("c.iso", None));
    }
}
