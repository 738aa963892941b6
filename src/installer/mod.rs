//! The unattended OSTree installer of osbuild-rs' installer ISOs (`osbuild-rs __install`),
//! for distributions without Anaconda (Debian). `org.osbuild-rs.installer` puts this binary
//! and a systemd unit into the installer's live root; at boot the unit runs it, and it:
//!
//! 1. reads the kickstart named by `inst.ks=` on the kernel command line (`hd:LABEL=<l>:<path>`,
//!    `hd:<device>:<path>`, `cdrom:<path>`, `file://<path>` or a path); the boot medium is at
//!    `/run/install/repo` (bound from live-boot's `/run/live/medium`), as Anaconda has it;
//! 2. parses it ([`kickstart`]): an unknown command or option stops the installation;
//! 3. checks the `ostreesetup` source — the repository exists and has the ref — before it
//!    touches any disk;
//! 4. lays out the target disk (`autopart`: GPT with a BIOS boot partition, an EFI system
//!    partition (FAT, labelled `ESP`) when the live system has GRUB for UEFI, `/boot` ext4
//!    labelled `boot`, `/` labelled `root`), after `zerombr`/`clearpart --all` allow it;
//! 5. makes the sysroot as an image build does, with the same stage code
//!    (`org.osbuild.ostree.init-fs`, `os-init`, `config`, `org.osbuild.grub2.syslinux-menu`,
//!    `org.osbuild.ostree.fillvar`), pulls the commit, `ostree admin deploy`s it with
//!    `root=LABEL=root` and the `bootloader --append` arguments, writes fstab, locale,
//!    keymap and time zone into the deployment, runs the `%post` scripts (in the deployment
//!    unless `--nochroot`), installs GRUB into the disk's MBR and BIOS boot partition and,
//!    with an ESP, as the removable-media loader `EFI/BOOT/BOOTX64.EFI` (no NVRAM entry is
//!    needed: the firmware finds it), so one disk boots on BIOS and UEFI machines alike;
//! 6. reboots or powers off as the kickstart says.
//!
//! Every step is printed on the console as `osbuild-rs-installer: ...`; a failure prints
//! `osbuild-rs-installer: ERROR: <what>` and `the installation stopped`, and leaves no mount.

pub mod kickstart;

use kickstart::{Finish, OstreeSetup, Plan};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SYSIMAGE: &str = "/mnt/sysimage";
const REPO_MEDIUM: &str = "/run/install/repo";
const LIVE_MEDIUM: &str = "/run/live/medium";
const KS_MOUNT: &str = "/run/install/ks";

/// A failed step, with what was being done.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error(msg.into()))
}

pub fn say(msg: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "osbuild-rs-installer: {msg}");
    let _ = out.flush();
}

/// `osbuild-rs __install [--kickstart <location>] [--check]`: with `--check` the kickstart
/// and its source are checked and nothing is written.
pub fn main(args: &[OsString]) -> i32 {
    let mut location = None;
    let mut check_only = false;
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kickstart" => location = it.next(),
            "--check" => check_only = true,
            other => {
                say(&format!("ERROR: unknown argument {other}"));
                return 2;
            }
        }
    }
    let mut mounts = Mounts::default();
    let result = run(location, check_only, &mut mounts);
    let unmounted = mounts.release();
    match result.and_then(|finish| unmounted.map(|()| finish)) {
        Ok(finish) => {
            match finish {
                Finish::Reboot => {
                    say("installation complete, rebooting");
                    let _ = Command::new("systemctl").args(["--no-block", "reboot"]).status();
                }
                Finish::Poweroff => {
                    say("installation complete, powering off");
                    let _ = Command::new("systemctl").args(["--no-block", "poweroff"]).status();
                }
                Finish::Stay => say("installation complete"),
            }
            0
        }
        Err(e) => {
            say(&format!("ERROR: {e}"));
            say("the installation stopped");
            1
        }
    }
}

fn run(location: Option<String>, check_only: bool, mounts: &mut Mounts) -> Result<Finish, Error> {
    let location = match location {
        Some(l) => l,
        None => kernel_arg("inst.ks")?.ok_or_else(|| Error("no inst.ks= on the kernel command line".into()))?,
    };
    if is_mountpoint(Path::new(LIVE_MEDIUM)) && !is_mountpoint(Path::new(REPO_MEDIUM)) {
        std::fs::create_dir_all(REPO_MEDIUM).map_err(|e| Error(format!("create {REPO_MEDIUM}: {e}")))?;
        mounts.mount(&["--bind", LIVE_MEDIUM, REPO_MEDIUM], REPO_MEDIUM)?;
    }
    say(&format!("reading the kickstart {location}"));
    let text = read_kickstart(&location, mounts)?;
    let plan = kickstart::parse(&text).map_err(|e| Error(format!("{location}: {e}")))?;
    let ostree = plan.ostree.as_ref().expect("parse requires ostreesetup");
    let source = check_source(ostree)?;
    let disk = target_disk(&plan)?;
    let efi = efi_boot()?;
    let firmware = if Path::new(FIRMWARE_EFI).is_dir() { "UEFI" } else { "BIOS" };
    say(&format!(
        "this machine booted with {firmware}; the disk gets GRUB for {}",
        if efi { "BIOS and UEFI" } else { "BIOS" }
    ));
    say(&format!("the kickstart is fine; installing {} from {} onto /dev/{disk}", ostree.r#ref, ostree.url));
    if check_only {
        return Ok(Finish::Stay);
    }
    install(&plan, ostree, &source, &disk, efi, mounts)?;
    Ok(plan.finish)
}

/// Where the kernel shows UEFI runtime services (absent after a BIOS boot).
const FIRMWARE_EFI: &str = "/sys/firmware/efi";
/// GRUB's UEFI modules in the live system (Debian's grub-efi-amd64-bin).
const GRUB_EFI_MODULES: &str = "/usr/lib/grub/x86_64-efi";

/// Whether the installed disk gets an ESP and GRUB for UEFI: when the live system has GRUB's
/// UEFI modules. A machine booted by UEFI firmware needs them; their absence is an error
/// before any disk is touched.
fn efi_boot() -> Result<bool, Error> {
    let modules = Path::new(GRUB_EFI_MODULES).is_dir();
    if !modules && Path::new(FIRMWARE_EFI).is_dir() {
        return fail(format!(
            "this machine booted with UEFI, but the live system has no GRUB for it \
             ({GRUB_EFI_MODULES}: the package grub-efi-amd64-bin)"
        ));
    }
    Ok(modules)
}

/// The value of `name=` on the kernel command line.
fn kernel_arg(name: &str) -> Result<Option<String>, Error> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").map_err(|e| Error(format!("/proc/cmdline: {e}")))?;
    Ok(cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_owned)
        .next_back())
}

/// The kickstart's text from `location` (see the module's documentation).
fn read_kickstart(location: &str, mounts: &mut Mounts) -> Result<String, Error> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Error(format!("cannot read the kickstart {location}: {}: {e}", p.display())))
    };
    if let Some(rest) = location.strip_prefix("hd:") {
        let (device, path) =
            rest.rsplit_once(':').ok_or_else(|| Error(format!("{location}: expected hd:<device>:<path>")))?;
        let device = device_path(device);
        wait_for(&device, Duration::from_secs(90))?;
        std::fs::create_dir_all(KS_MOUNT).map_err(|e| Error(format!("create {KS_MOUNT}: {e}")))?;
        mounts.mount(&["-o", "ro", &device.to_string_lossy(), KS_MOUNT], KS_MOUNT)?;
        let text = read(&Path::new(KS_MOUNT).join(path.trim_start_matches('/')));
        mounts.unmount(KS_MOUNT)?;
        return text;
    }
    if let Some(path) = location.strip_prefix("cdrom:") {
        return read(&Path::new(REPO_MEDIUM).join(path.trim_start_matches('/')));
    }
    read(Path::new(location.strip_prefix("file://").unwrap_or(location)))
}

/// `LABEL=x`, `UUID=x`, `/dev/x` or `x` as a device path.
fn device_path(spec: &str) -> PathBuf {
    if let Some(label) = spec.strip_prefix("LABEL=") {
        // udev escapes blanks and slashes in by-label names
        return Path::new("/dev/disk/by-label").join(label.replace(' ', "\\x20").replace('/', "\\x2f"));
    }
    if let Some(uuid) = spec.strip_prefix("UUID=") {
        return Path::new("/dev/disk/by-uuid").join(uuid);
    }
    Path::new("/dev").join(spec.trim_start_matches("/dev/"))
}

fn wait_for(path: &Path, timeout: Duration) -> Result<(), Error> {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > timeout {
            return fail(format!("{} did not appear within {}s", path.display(), timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// Where the commit comes from, checked before any disk is touched.
enum Source {
    /// A repository on a mounted file system and the commit its ref points at.
    Local { repo: PathBuf, commit: String },
    /// A remote URL: pulled with `ostree pull`.
    Remote,
}

fn check_source(o: &OstreeSetup) -> Result<Source, Error> {
    let Some(path) = o.url.strip_prefix("file://") else {
        if o.url.starts_with("http://") || o.url.starts_with("https://") {
            return Ok(Source::Remote);
        }
        return fail(format!("ostreesetup --url={}: only file://, http:// and https:// URLs are supported", o.url));
    };
    let repo = PathBuf::from(path);
    if !repo.join("config").is_file() {
        return fail(format!(
            "ostreesetup --url={}: there is no OSTree repository at {} (no config file)",
            o.url,
            repo.display()
        ));
    }
    let refs = ostree_output(&repo, &["refs"])?;
    // a repository pulled with a remote keeps the ref as <remote>:<ref>
    let found: Vec<&str> = refs
        .lines()
        .map(str::trim)
        .filter(|r| *r == o.r#ref || r.rsplit_once(':').is_some_and(|(_, n)| n == o.r#ref))
        .collect();
    let Some(full) = found.first() else {
        let have: Vec<&str> = refs.lines().map(str::trim).filter(|r| !r.is_empty()).collect();
        return fail(format!(
            "ostreesetup --ref={}: the repository at {} has no such ref (it has: {})",
            o.r#ref,
            o.url,
            if have.is_empty() { "no refs".to_owned() } else { have.join(", ") }
        ));
    };
    let commit = ostree_output(&repo, &["rev-parse", full])?.trim().to_owned();
    Ok(Source::Local { repo, commit })
}

fn ostree_output(repo: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(args)
        .output()
        .map_err(|e| Error(format!("cannot run ostree: {e}")))?;
    if !out.status.success() {
        return fail(format!(
            "ostree --repo={} {}: {}",
            repo.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The disk to install to: the kickstart's (`ignoredisk --only-use`, `clearpart --drives`)
/// or the first whole, writable, non-removable disk that holds no mounted file system.
fn target_disk(plan: &Plan) -> Result<String, Error> {
    let mounted = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let busy = |d: &str| mounted.lines().any(|l| l.split_whitespace().next().is_some_and(|s| is_part_of(s, d)));
    let mut disks: Vec<String> = std::fs::read_dir("/sys/block")
        .map_err(|e| Error(format!("/sys/block: {e}")))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|d| !["loop", "ram", "sr", "zram", "dm-", "md", "nbd", "fd"].iter().any(|p| d.starts_with(p)))
        .collect();
    disks.sort();
    let attr = |d: &str, a: &str| std::fs::read_to_string(format!("/sys/block/{d}/{a}")).unwrap_or_default();
    if !plan.drives.is_empty() {
        let d = &plan.drives[0];
        if !disks.contains(d) {
            return fail(format!(
                "the kickstart names the disk {d}, which this machine does not have (it has: {})",
                disks.join(", ")
            ));
        }
        return Ok(d.clone());
    }
    disks
        .into_iter()
        .find(|d| {
            attr(d, "removable").trim() == "0"
                && attr(d, "ro").trim() == "0"
                && attr(d, "size").trim().parse::<u64>().unwrap_or(0) > 0
                && !busy(d)
        })
        .ok_or_else(|| Error("there is no disk to install to".into()))
}

/// Whether device path `source` is disk `disk` or one of its partitions.
fn is_part_of(source: &str, disk: &str) -> bool {
    source
        .strip_prefix("/dev/")
        .and_then(|s| s.strip_prefix(disk))
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == 'p'))
}

fn partition(disk: &str, n: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("/dev/{disk}p{n}")
    } else {
        format!("/dev/{disk}{n}")
    }
}

fn sh(argv: &[&str]) -> Result<(), Error> {
    say(&format!("$ {}", argv.join(" ")));
    let out =
        Command::new(argv[0]).args(&argv[1..]).output().map_err(|e| Error(format!("cannot run {}: {e}", argv[0])))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return fail(format!("{} failed ({}): {}", argv.join(" "), out.status, err.trim()));
    }
    Ok(())
}

/// Run one of osbuild-rs' stages on the target, as a manifest would.
fn stage(name: &str, tree: &Path, options: Value) -> Result<(), Error> {
    say(name);
    let info = crate::stages::find(name).ok_or_else(|| Error(format!("no stage {name}")))?;
    let args: osbuild_stage_api::StageArgs =
        serde_json::from_value(json!({"tree": tree, "options": options, "meta": {"id": "installer"}}))
            .map_err(|e| Error(format!("{name}: {e}")))?;
    (info.run)(&args).map(|_| ()).map_err(|e| Error(format!("{name}: {}", osbuild_stage_api::error_chain(&e))))
}

/// The GPT type GUIDs of the partitions the installer makes.
const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// The sfdisk script of autopart's layout (sizes in 512-byte sectors): a 1 MiB BIOS boot
/// partition, a 200 MiB ESP (with `efi`), a 512 MiB `/boot`, `/` on the rest.
fn layout(efi: bool) -> String {
    let mut s = format!("label: gpt\nstart=2048, size=2048, type={BIOS_BOOT}, name=bios-boot\n");
    if efi {
        s += &format!("size=409600, type={ESP}, name=EFI-SYSTEM\n");
    }
    s += &format!("size=1048576, type={LINUX}, name=boot\ntype={LINUX}, name=root\n");
    s
}

fn install(
    plan: &Plan,
    o: &OstreeSetup,
    source: &Source,
    disk: &str,
    efi: bool,
    mounts: &mut Mounts,
) -> Result<(), Error> {
    let dev = format!("/dev/{disk}");
    let has_table = std::fs::read_dir(format!("/sys/block/{disk}"))
        .map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with(disk)))
        .unwrap_or(false);
    if has_table && !(plan.clear_all || plan.zerombr) {
        return fail(format!("/dev/{disk} has partitions and the kickstart has no clearpart --all or zerombr"));
    }
    sh(&["wipefs", "--all", "--quiet", &dev])?;
    let layout = layout(efi);
    say(&format!("$ sfdisk {dev} <<< {}", layout.replace('\n', "; ")));
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--wipe", "always", &dev])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error(format!("cannot run sfdisk: {e}")))?;
    child.stdin.take().expect("piped").write_all(layout.as_bytes()).map_err(|e| Error(format!("sfdisk: {e}")))?;
    let status = child.wait().map_err(|e| Error(format!("sfdisk: {e}")))?;
    if !status.success() {
        return fail(format!("sfdisk {dev} failed ({status})"));
    }
    let _ = Command::new("udevadm").arg("settle").status();
    let first = if efi { 3 } else { 2 };
    let (esp, boot, root) = (partition(disk, 2), partition(disk, first), partition(disk, first + 1));
    wait_for(Path::new(&root), Duration::from_secs(30))?;
    if efi {
        sh(&["mkfs.vfat", "-F", "32", "-n", "ESP", &esp])?;
    }
    sh(&["mkfs.ext4", "-q", "-F", "-L", "boot", &boot])?;
    let fstype = &plan.autopart.as_ref().expect("parse requires autopart").fstype;
    match fstype.as_str() {
        "xfs" => sh(&["mkfs.xfs", "-q", "-f", "-L", "root", &root])?,
        _ => sh(&["mkfs.ext4", "-q", "-F", "-L", "root", &root])?,
    }
    std::fs::create_dir_all(SYSIMAGE).map_err(|e| Error(format!("create {SYSIMAGE}: {e}")))?;
    mounts.mount(&[&root, SYSIMAGE], SYSIMAGE)?;
    let boot_dir = format!("{SYSIMAGE}/boot");
    std::fs::create_dir_all(&boot_dir).map_err(|e| Error(format!("create {boot_dir}: {e}")))?;
    mounts.mount(&[&boot, &boot_dir], &boot_dir)?;
    let esp_dir = format!("{boot_dir}/efi");
    if efi {
        std::fs::create_dir_all(&esp_dir).map_err(|e| Error(format!("create {esp_dir}: {e}")))?;
        mounts.mount(&["-t", "vfat", &esp, &esp_dir], &esp_dir)?;
    }

    let sysroot = Path::new(SYSIMAGE);
    stage("org.osbuild.ostree.init-fs", sysroot, json!({}))?;
    stage("org.osbuild.ostree.os-init", sysroot, json!({"osname": o.osname}))?;
    stage(
        "org.osbuild.ostree.config",
        sysroot,
        json!({"repo": "/ostree/repo", "config": {"sysroot": {"readonly": true, "bootloader": "syslinux"}}}),
    )?;
    stage(
        "org.osbuild.grub2.syslinux-menu",
        sysroot,
        json!({"bootfs": {"label": "boot"}, "timeout": 3, "serial": "serial --unit=0 --speed=115200",
               "terminal_input": ["serial", "console"], "terminal_output": ["serial", "console"]}),
    )?;

    let repo = format!("{SYSIMAGE}/ostree/repo");
    let remote = o.remote.clone().unwrap_or_else(|| o.osname.clone());
    let mut add = vec!["ostree", "remote", "add", "--repo", &repo];
    if !o.gpg {
        add.push("--no-gpg-verify");
    }
    add.extend([remote.as_str(), o.url.as_str(), o.r#ref.as_str()]);
    sh(&add)?;
    let refspec = format!("{remote}:{}", o.r#ref);
    match source {
        Source::Local { repo: src, commit } => {
            say(&format!("pulling commit {commit} from {}", src.display()));
            sh(&["ostree", "pull-local", "--repo", &repo, &src.to_string_lossy(), commit])?;
            sh(&["ostree", "refs", "--repo", &repo, "--create", &refspec, commit])?;
        }
        Source::Remote => sh(&["ostree", "pull", "--repo", &repo, &remote, &o.r#ref])?,
    }
    let mut deploy = vec![
        "ostree".to_owned(),
        "admin".to_owned(),
        "deploy".to_owned(),
        format!("--sysroot={SYSIMAGE}"),
        format!("--os={}", o.osname),
        "--karg=root=LABEL=root".to_owned(),
    ];
    deploy.extend(plan.kernel_args.iter().map(|k| format!("--karg-append={k}")));
    deploy.push(refspec);
    sh(&deploy.iter().map(String::as_str).collect::<Vec<_>>())?;
    stage("org.osbuild.ostree.fillvar", sysroot, json!({"deployment": {"osname": o.osname, "ref": o.r#ref}}))?;

    let deployment = deployment_dir(&o.osname)?;
    configure(plan, &deployment, efi)?;
    for post in &plan.post {
        run_post(post, &deployment, mounts)?;
    }
    sh(&["grub-install", "--target=i386-pc", &format!("--boot-directory={boot_dir}"), &dev])?;
    if efi {
        // the core image finds /boot by its UUID and reads the same grub/grub.cfg as BIOS
        sh(&[
            "grub-install",
            "--target=x86_64-efi",
            &format!("--efi-directory={esp_dir}"),
            &format!("--boot-directory={boot_dir}"),
            "--removable",
            "--no-nvram",
        ])?;
    }
    // grub-install's core image looks for grub/grub.cfg on /boot (Debian's name); the menu
    // stage wrote it for grub2/, Fedora's
    let cfg = std::fs::read(format!("{boot_dir}/grub2/grub.cfg")).map_err(|e| Error(format!("grub2/grub.cfg: {e}")))?;
    std::fs::write(format!("{boot_dir}/grub/grub.cfg"), cfg).map_err(|e| Error(format!("grub/grub.cfg: {e}")))?;
    let _ = Command::new("sync").status();
    Ok(())
}

/// The one deployment of `osname` under the sysroot.
fn deployment_dir(osname: &str) -> Result<PathBuf, Error> {
    let base = Path::new(SYSIMAGE).join("ostree/deploy").join(osname).join("deploy");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&base)
        .map_err(|e| Error(format!("{}: {e}", base.display())))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => fail(format!("{} holds {n} deployments, not one", base.display())),
    }
}

/// `path` inside `root` (the deployment, a tree from the commit), resolved with the project's
/// confinement rule: a symlink in the tree never leads out of it.
fn inside(root: &Path, path: &str, follow_final: bool) -> Result<PathBuf, Error> {
    osbuild_stage_api::util::resolve_in_root(root, path, follow_final).map_err(|e| Error(format!("{path}: {e}")))
}

/// fstab, locale, keymap and time zone of the installed system (its `/etc` is the
/// deployment's, three-way merged by ostree on upgrades).
fn configure(plan: &Plan, deployment: &Path, efi: bool) -> Result<(), Error> {
    let fstype = &plan.autopart.as_ref().expect("parse requires autopart").fstype;
    let write = |path: &str, text: String| -> Result<(), Error> {
        let p = inside(deployment, path, false)?;
        say(&format!("writing {path}"));
        std::fs::write(&p, text).map_err(|e| Error(format!("{}: {e}", p.display())))
    };
    let mut fstab = format!("LABEL=root / {fstype} defaults 1 1\nLABEL=boot /boot ext4 defaults 1 2\n");
    if efi {
        fstab += "LABEL=ESP /boot/efi vfat umask=0077,shortname=winnt 0 2\n";
    }
    write("etc/fstab", fstab)?;
    if let Some(lang) = &plan.lang {
        write("etc/locale.conf", format!("LANG={lang}\n"))?;
        write("etc/default/locale", format!("LANG={lang}\n"))?;
    }
    if let Some(keymap) = &plan.keymap {
        write("etc/vconsole.conf", format!("KEYMAP={keymap}\n"))?;
    }
    if let Some(tz) = &plan.timezone {
        let zone = inside(deployment, &format!("usr/share/zoneinfo/{tz}"), true)?;
        if !zone.is_file() {
            return fail(format!("timezone {tz}: the installed system has no /usr/share/zoneinfo/{tz}"));
        }
        let link = inside(deployment, "etc/localtime", false)?;
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("../usr/share/zoneinfo/{tz}"), &link)
            .map_err(|e| Error(format!("etc/localtime: {e}")))?;
    }
    Ok(())
}

/// Run a `%post` script: in the deployment (with `/dev`, `/proc`, `/sys` and the sysroot
/// bound in) or, with `--nochroot`, here with the sysroot at /mnt/sysimage.
fn run_post(post: &kickstart::Post, deployment: &Path, mounts: &mut Mounts) -> Result<(), Error> {
    say(&format!("running %post of kickstart line {}", post.line));
    let (root, script_dir) = if post.chroot {
        (deployment.to_owned(), inside(deployment, "tmp", true)?)
    } else {
        (PathBuf::from("/"), PathBuf::from("/tmp"))
    };
    std::fs::create_dir_all(&script_dir).map_err(|e| Error(format!("{}: {e}", script_dir.display())))?;
    let script = script_dir.join(format!("ks-script-{}", post.line));
    std::fs::write(&script, &post.body).map_err(|e| Error(format!("{}: {e}", script.display())))?;
    let mut bound = Vec::new();
    if post.chroot {
        for (from, to) in [("/dev", "dev"), ("/proc", "proc"), ("/sys", "sys"), (SYSIMAGE, "sysroot")] {
            let target = inside(deployment, to, true)?;
            let target_s = target.to_string_lossy().into_owned();
            mounts.mount(&["--bind", from, &target_s], &target_s)?;
            bound.push(target_s);
        }
    }
    let in_chroot = format!("/{}", script.strip_prefix(&root).unwrap_or(&script).display());
    let mut cmd = if post.chroot {
        let mut c = Command::new("chroot");
        c.arg(deployment).arg(&post.interpreter).arg(&in_chroot);
        c
    } else {
        let mut c = Command::new(&post.interpreter);
        c.arg(&script);
        c
    };
    let out = cmd.output();
    for b in bound.iter().rev() {
        mounts.unmount(b)?;
    }
    let _ = std::fs::remove_file(&script);
    let out = out.map_err(|e| Error(format!("%post (line {}): cannot run {}: {e}", post.line, post.interpreter)))?;
    let mut log = out.stdout.clone();
    log.extend_from_slice(&out.stderr);
    for line in String::from_utf8_lossy(&log).lines() {
        say(&format!("  %post: {line}"));
    }
    if let Some(path) = &post.log {
        let at = inside(&root, path, false)?;
        let _ = std::fs::write(at, &log);
    }
    if !out.status.success() {
        let msg = format!("%post (kickstart line {}) failed: {}", post.line, out.status);
        if post.erroronfail {
            return fail(msg);
        }
        say(&format!("warning: {msg}; going on (no --erroronfail)"));
    }
    Ok(())
}

fn is_mountpoint(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let p = path.to_string_lossy();
    mounts.lines().any(|l| l.split_whitespace().nth(4) == Some(p.as_ref()))
}

/// The mounts the installer made, undone in reverse on every way out.
#[derive(Default)]
struct Mounts(Vec<String>);

impl Mounts {
    fn mount(&mut self, args: &[&str], target: &str) -> Result<(), Error> {
        sh(&[&["mount"][..], args].concat())?;
        self.0.push(target.to_owned());
        Ok(())
    }

    fn unmount(&mut self, target: &str) -> Result<(), Error> {
        sh(&["umount", target])?;
        self.0.retain(|t| t != target);
        Ok(())
    }

    fn release(&mut self) -> Result<(), Error> {
        let mut first = Ok(());
        while let Some(t) = self.0.pop() {
            if let Err(e) = sh(&["umount", &t]) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs() {
        assert_eq!(device_path("LABEL=OSBUILD-RS-IOT"), Path::new("/dev/disk/by-label/OSBUILD-RS-IOT"));
        assert_eq!(device_path("LABEL=a b/c"), Path::new("/dev/disk/by-label/a\\x20b\\x2fc"));
        assert_eq!(device_path("UUID=1-2"), Path::new("/dev/disk/by-uuid/1-2"));
        assert_eq!(device_path("/dev/sr0"), Path::new("/dev/sr0"));
        assert_eq!(device_path("sr0"), Path::new("/dev/sr0"));
    }

    #[test]
    fn partitions_and_disks() {
        assert_eq!(partition("vda", 3), "/dev/vda3");
        assert_eq!(partition("nvme0n1", 2), "/dev/nvme0n1p2");
        assert!(
            is_part_of("/dev/vda2", "vda") && is_part_of("/dev/vda", "vda") && is_part_of("/dev/nvme0n1p1", "nvme0n1")
        );
        assert!(!is_part_of("/dev/vdab", "vda") && !is_part_of("tmpfs", "vda"));
    }

    /// The layouts, as the real sfdisk makes them on an 8 GiB image: BIOS boot, ESP (only
    /// with `efi`), /boot, and / on the rest.
    #[test]
    fn layouts_as_sfdisk_makes_them() {
        let t = tempfile::tempdir().unwrap();
        for efi in [true, false] {
            let img = t.path().join(format!("disk-{efi}.img"));
            std::fs::File::create(&img).unwrap().set_len(8 << 30).unwrap();
            let mut child = Command::new("sfdisk")
                .args(["--quiet"])
                .arg(&img)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("sfdisk (fdisk)");
            child.stdin.take().unwrap().write_all(layout(efi).as_bytes()).unwrap();
            assert!(child.wait().unwrap().success());
            let out = Command::new("sfdisk").arg("--json").arg(&img).output().unwrap();
            let table: Value = serde_json::from_slice(&out.stdout).unwrap();
            let parts = table["partitiontable"]["partitions"].as_array().unwrap();
            let got: Vec<(&str, &str, u64)> = parts
                .iter()
                .map(|p| (p["name"].as_str().unwrap(), p["type"].as_str().unwrap(), p["size"].as_u64().unwrap()))
                .collect();
            let mut want = vec![("bios-boot", BIOS_BOOT, 2048)];
            if efi {
                want.push(("EFI-SYSTEM", ESP, 409_600));
            }
            want.push(("boot", LINUX, 1_048_576));
            assert_eq!(got[..want.len()], want[..], "{table}");
            assert_eq!(got.len(), want.len() + 1);
            let root = got[want.len()];
            assert_eq!((root.0, root.1), ("root", LINUX));
            let used: u64 = got.iter().map(|p| p.2).sum();
            assert!(root.2 > 14_000_000 && used + 2048 + 33 <= 8 << 21, "{table}");
        }
    }

    /// A deployment whose `/etc` and zone file are symlinks out of it (a hostile commit): the
    /// files land inside the deployment, the victim directory beside it stays empty.
    #[test]
    fn configure_stays_inside_the_deployment() {
        let t = tempfile::tempdir().unwrap();
        let (dep, victim) = (t.path().join("deploy"), t.path().join("victim"));
        std::fs::create_dir_all(dep.join("usr/share/zoneinfo/Etc")).unwrap();
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::create_dir_all(victim.join("default")).unwrap();
        std::fs::write(victim.join("UTC"), "not a zone").unwrap();
        std::os::unix::fs::symlink(&victim, dep.join("etc")).unwrap();
        std::os::unix::fs::symlink(victim.join("UTC"), dep.join("usr/share/zoneinfo/Etc/UTC")).unwrap();
        // the absolute link, read inside the deployment, names this directory of it
        let inner = dep.join(victim.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inner.join("default")).unwrap();
        let plan = kickstart::parse(
            "ostreesetup --osname=d --url=file:///r --ref=x --nogpg\nautopart\nlang C.UTF-8\ntimezone Etc/UTC\n",
        )
        .unwrap();
        // the zone file points out of the tree: within it, it does not exist
        let e = configure(&plan, &dep, true).unwrap_err().to_string();
        assert!(e.contains("has no /usr/share/zoneinfo/Etc/UTC"), "{e}");
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 2, "something was written through the etc link");
        let fstab = std::fs::read_to_string(inner.join("fstab")).unwrap();
        assert!(fstab.starts_with("LABEL=root / ext4"), "{fstab}");
        assert!(fstab.contains("\nLABEL=ESP /boot/efi vfat umask=0077"), "{fstab}");
        assert_eq!(std::fs::read_to_string(inner.join("locale.conf")).unwrap(), "LANG=C.UTF-8\n");
    }

    /// A real repository: the source check finds a ref kept under a remote, and names a
    /// missing repository and a missing ref.
    #[test]
    fn source_checks_with_a_real_repository() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        let ok = |c: &mut Command| assert!(c.status().expect("ostree (make deps)").success());
        ok(Command::new("ostree").arg(format!("--repo={}", repo.display())).args(["init", "--mode=archive"]));
        std::fs::create_dir_all(t.path().join("c/usr")).unwrap();
        ok(Command::new("ostree")
            .arg(format!("--repo={}", repo.display()))
            .args(["commit", "--branch=tmp", "--no-xattrs"])
            .arg(t.path().join("c")));
        let commit = ostree_output(&repo, &["rev-parse", "tmp"]).unwrap().trim().to_owned();
        ok(Command::new("ostree").arg(format!("--repo={}", repo.display())).args(["refs", "--delete", "tmp"]));
        ok(Command::new("ostree").arg(format!("--repo={}", repo.display())).args([
            "refs",
            "--create=osbuild-rs:os/x86_64/iot",
            &commit,
        ]));
        let setup = |url: String, r: &str| OstreeSetup {
            osname: "debian".into(),
            url,
            r#ref: r.into(),
            remote: None,
            gpg: false,
        };
        let url = format!("file://{}", repo.display());
        match check_source(&setup(url.clone(), "os/x86_64/iot")).unwrap() {
            Source::Local { commit: c, .. } => assert_eq!(c, commit),
            Source::Remote => panic!("a file:// URL is local"),
        }
        let e = check_source(&setup(url.clone(), "os/x86_64/other")).err().unwrap().to_string();
        assert_eq!(e, format!("ostreesetup --ref=os/x86_64/other: the repository at {url} has no such ref (it has: osbuild-rs:os/x86_64/iot)"));
        let e = check_source(&setup(format!("file://{}/nothing", t.path().display()), "os/x86_64/iot"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("there is no OSTree repository at") && e.contains("/nothing"), "{e}");
        assert!(matches!(check_source(&setup("http://10.0.2.2/repo".into(), "x")), Ok(Source::Remote)));
        assert!(check_source(&setup("ftp://x/repo".into(), "x")).is_err());
    }
}
