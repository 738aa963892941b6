//! End to end (issue 13), the IoT story on Debian: an OSTree OS built by osbuild-rs boots,
//! updates over HTTP and rolls back.
//!
//! 1. `test-manifests/iot-commit.json` and `iot-update.json`, filled by `osbuild-depsolve-apt`
//!    (the packages of `test-manifests/iot-packages.txt`; the update adds `hello` with
//!    `--then`), are built into one store: the Debian tree (`os`, shared by both manifests, so
//!    built once), `org.osbuild.ostree.preptree` and `org.osbuild.ostree.commit` of ref
//!    `osbuild-rs/x86_64/iot`, version 1; the update's commit (version 2) has the first as
//!    `parent`.
//! 2. nginx serves the first commit's exported repository on 127.0.0.1. The image
//!    (`test-manifests/iot-qcow2.json`) pulls the commit from it by URL and checksum
//!    (`org.osbuild.ostree` source), deploys it with `"remote": "osbuild-rs"`, points that
//!    remote at the same server as the guest sees it (10.0.2.2), writes fstab through the
//!    deployment mount and boots with GRUB reading the menu ostree's syslinux backend keeps
//!    (`org.osbuild.grub2.syslinux-menu`).
//! 3. The image boots in QEMU (user-mode network, reboots allowed, writes kept in QEMU's
//!    snapshot overlay): log in as `test`, `fish -c 'echo fish-ok'`, `ostree admin status`
//!    names the ref and the first commit. Meanwhile the update is built; it is merged into
//!    the served repository with `ostree pull-local`, as one publishes an update.
//! 4. `sudo ostree admin upgrade` pulls the second commit over HTTP; after a reboot it is
//!    booted and `hello` is there. Rollback (ostree 2022.7 has no rollback verb): reboot,
//!    pick the previous entry `(ostree:1)` in the GRUB menu, check the first commit is booted
//!    and `hello` gone, then `sudo ostree admin undeploy 0` drops the update, so the first
//!    commit is the default again (one deployment, one menu entry).
//!
//! 5. Reproducibility: while the device updates, commit 1's manifest is built again into a
//!    fresh store; its commit checksum must be commit 1's (the manifest has a `source-epoch`:
//!    the commit's timestamp and every file's mtime are the epoch).
//! 6. The installer ISO (issue 14, `test-manifests/iot-installer.json`): a Debian live root
//!    (`test-manifests/iot-installer-packages.txt`: live-boot, ostree, GRUB, the disk tools)
//!    with osbuild-rs' installer (`org.osbuild-rs.installer`) packed by `org.osbuild.squashfs`,
//!    commit 1 pulled into `/ostree/repo`, a kickstart whose `ostreesetup` installs it from the
//!    ISO and whose `%post` points the remote at the update server, ISOLINUX
//!    (`org.osbuild.isolinux`), the UEFI boot files (`org.osbuild.grub2.iso`) and their FAT
//!    image (`org.osbuild-rs.mkfs.fat.tree`), `org.osbuild.xorrisofs` (El Torito for BIOS and
//!    UEFI, isohybrid MBR and GPT) and `org.osbuild.implantisomd5`. It builds while the image
//!    boots: xorriso lists the repository (holding commit 1), kernel, initrd, live root, boot
//!    images and kickstart, mtools and fsck.fat check `efiboot.img`, and `checkisomd5` passes;
//!    later a rebuild in the fresh store has the same sha256.
//! 7. The installer in QEMU (TCG): the live system booted with the kernel and initrd of the
//!    ISO and kickstarts from a second disk stops with a console message naming an unknown
//!    command, a missing repository and a wrong ref; then the ISO itself boots with an empty
//!    disk attached, twice at once: under SeaBIOS (ISOLINUX) and under OVMF (UEFI: shim and
//!    GRUB from the El Torito EFI image), Enter skipping each menu's countdown. Each installs
//!    unattended, reboots from the disk with the same firmware, `test` logs in, fish runs,
//!    `ostree remote list -u` shows the update URL and the ESP is mounted.
//!
//! Every step is printed with the time it took and the time since the start. Downloads are
//! cached as in tests/e2e.rs (/var/cache/osbuild-rs-tests). Needs root, bwrap, apt, dpkg,
//! ostree, nginx, the GRUB, disk and qemu tools (`make deps`). Run alone:
//! `cargo test --test e2e_iot -- --nocapture`.
//!
//! The image manifest names the ref without its remote (`osbuild-rs/x86_64/iot`) in
//! `org.osbuild.ostree.fillvar` and in the fstab stage's `org.osbuild.ostree.deployment`
//! mount, as osbuild/images writes it, although `ostree.deploy` pulled it under the remote
//! `osbuild-rs`: both resolve it as libostree does.

mod common;

use common::nginx::Nginx;
use common::qemu::{cached_store, finish_build, spawn_build, BootOptions, Vm};
use common::{ok, Env};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const REF: &str = "osbuild-rs/x86_64/iot";
const OSNAME: &str = "debian";
/// What the update adds; `hello` prints a fixed greeting and depends only on libc6.
const UPDATE_PACKAGE: &str = "hello";
const LONG: Duration = Duration::from_secs(900);
const SHORT: Duration = Duration::from_secs(120);

fn manifest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test-manifests")
}

/// The package list of `test-manifests/iot-packages.txt`.
fn packages() -> Vec<String> {
    package_list("iot-packages.txt")
}

/// The names in a package list of `test-manifests/`.
fn package_list(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(manifest_dir().join(name)).unwrap();
    text.lines().map(|l| l.split('#').next().unwrap().trim()).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// Prints each step with its duration and the time since the start.
struct Clock {
    start: Instant,
    step: Instant,
    steps: Vec<(String, Duration)>,
}

impl Clock {
    fn new() -> Clock {
        Clock { start: Instant::now(), step: Instant::now(), steps: Vec::new() }
    }
    fn done(&mut self, what: &str) {
        let took = self.step.elapsed();
        eprintln!("e2e_iot: [{:>6.1?}] {what} ({took:.1?})", self.start.elapsed());
        self.steps.push((what.to_owned(), took));
        self.step = Instant::now();
    }
}

fn require_tools() {
    common::qemu::require_tools(&[
        ("apt-get", "apt"),
        ("dpkg-deb", "dpkg"),
        ("ostree", "ostree"),
        ("grub-mkimage", "grub-common grub-pc-bin"),
        ("sfdisk", "fdisk"),
        ("mkfs.ext4", "e2fsprogs"),
        ("qemu-img", "qemu-utils"),
    ]);
}

/// `template` filled with the IoT packages (and `then` as a later dpkg layer, when given).
fn depsolve(template: &str, then: Option<&str>) -> Value {
    common::qemu::depsolve(&manifest_dir().join(template), &packages(), then)
}

/// The commit an `org.osbuild.ostree.commit` export made (its `compose.json`).
fn compose(out: &Path) -> Value {
    let p = out.join("commit/compose.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn host_ostree(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("ostree").arg(format!("--repo={}", repo.display())).args(args).output().unwrap();
    ok(&out);
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The checksum of the booted deployment (`* <osname> <checksum>.<serial>`) and of all the
/// deployments, in `ostree admin status` order.
fn deployments(status: &str) -> (Option<String>, Vec<String>) {
    let mut booted = None;
    let mut all = Vec::new();
    for line in status.lines() {
        let (star, rest) = match line.strip_prefix("* ") {
            Some(r) => (true, r),
            None => (false, line.trim_start()),
        };
        let mut words = rest.split_whitespace();
        if words.next() != Some(OSNAME) {
            continue;
        }
        let Some(csum) = words.next().and_then(|d| d.split('.').next()) else { continue };
        if star {
            booted = Some(csum.to_owned());
        }
        all.push(csum.to_owned());
    }
    (booted, all)
}

/// Run `cmd` in the guest and fail the test (with the console's tail) when it fails.
fn guest(vm: &mut Vm, cmd: &str, timeout: Duration) -> String {
    vm.run(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// Reboot the guest from its shell; returns once the boot loader shows its menu.
fn reboot(vm: &mut Vm) {
    vm.send_line("echo password | sudo -S systemctl reboot").unwrap();
    vm.wait_for("reboot: Restarting system", LONG).unwrap_or_else(|e| panic!("{e}"));
    vm.wait_for("GNU GRUB", SHORT).unwrap_or_else(|e| panic!("{e}"));
}

fn login(vm: &mut Vm) {
    vm.login("test", "password", LONG).unwrap_or_else(|e| panic!("{e}"));
}

/// The title of the entry GRUB boots on its own (`Booting `<title>'`).
fn booting(vm: &mut Vm) -> String {
    vm.wait_for("Booting `", SHORT).unwrap_or_else(|e| panic!("{e}"));
    let title = vm.wait_for("'", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    title.trim_end_matches('\'').to_owned()
}

/// test-manifests/iot-installer.json, depsolved, for the commit `commit` served at `url`;
/// the installed system's updates come from `remote_url`.
fn installer_manifest(template: &Value, commit: &str, url: &str, remote_url: &str) -> Value {
    let kernel = common::qemu::kernel_version(template);
    let text = serde_json::to_string(template).unwrap();
    let text = text
        .replace("@COMMIT@", commit)
        .replace("@URL@", url)
        .replace("@KERNEL_VERSION@", &kernel)
        .replace("@REMOTE_URL@", remote_url);
    // an @UPPER_CASE@ word is a placeholder; the text has other '@'s (serial-getty@ttyS0.service)
    let placeholder = text.match_indices('@').any(|(i, _)| {
        let rest = &text[i + 1..];
        let n = rest.find(|c: char| !(c.is_ascii_uppercase() || c == '_')).unwrap_or(rest.len());
        n > 0 && rest[n..].starts_with('@')
    });
    assert!(!placeholder, "a placeholder of iot-installer.json is left");
    serde_json::from_str(&text).unwrap()
}

fn xorriso(args: &[&str]) -> String {
    let out = Command::new("xorriso").args(args).output().expect("xorriso (make deps)");
    ok(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What issue 14 asks of the ISO: it lists the repository, kernel, initrd and kickstart
/// (read with xorriso: the kernel here cannot mount iso9660), the repository holds the commit,
/// the kickstart installs it from the ISO, and `checkisomd5` passes.
fn check_installer_iso(iso: &Path, commit: &str, remote_url: &str, scratch: &Path) {
    let iso_s = iso.to_str().unwrap();
    let files = xorriso(&["-indev", iso_s, "-find", "/", "-type", "f"]);
    for want in [
        "'/ostree/repo/config'",
        "'/images/pxeboot/vmlinuz'",
        "'/images/pxeboot/initrd.img'",
        "'/osbuild.ks'",
        "'/live/filesystem.squashfs'",
        "'/isolinux/isolinux.bin'",
        "'/isolinux/isolinux.cfg'",
        "'/isolinux/ldlinux.c32'",
        "'/images/efiboot.img'",
        "'/EFI/BOOT/BOOTX64.EFI'",
        "'/EFI/BOOT/grubx64.efi'",
        "'/EFI/BOOT/grub.cfg'",
    ] {
        assert!(
            files.lines().any(|l| l.trim() == want),
            "{want} is not on the ISO:\n{}",
            &files[..files.len().min(2000)]
        );
    }
    let objects = files.lines().filter(|l| l.starts_with("'/ostree/repo/objects/")).count();
    assert!(objects > 1000, "the ISO's repository has {objects} objects");
    std::fs::create_dir_all(scratch).unwrap();
    let s = scratch.to_str().unwrap();
    xorriso(&["-osirrox", "on", "-indev", iso_s, "-extract", "/osbuild.ks", &format!("{s}/osbuild.ks")]);
    let ks = std::fs::read_to_string(scratch.join("osbuild.ks")).unwrap();
    assert!(
        ks.contains(&format!("--url=file:///run/install/repo/ostree/repo --ref={REF}")) && ks.contains("--nogpg"),
        "{ks}"
    );
    assert!(ks.contains(&format!("ostree remote add --no-gpg-verify osbuild-rs {remote_url} {REF}")), "{ks}");
    // BIOS: an El Torito boot image (ISOLINUX) and the isohybrid MBR for USB sticks
    let boot = xorriso(&["-indev", iso_s, "-report_el_torito", "plain", "-report_system_area", "plain"]);
    assert!(boot.contains("/isolinux/isolinux.bin"), "{boot}");
    assert!(boot.contains("isohybrid"), "{boot}");
    // UEFI: El Torito's EFI entry is the FAT image (read with mtools: the kernel here cannot
    // mount vfat) holding shim as BOOTX64.EFI, GRUB and a menu that finds the ISO by label
    assert!(
        boot.lines().any(|l| l.starts_with("El Torito boot img") && l.contains("UEFI")),
        "no UEFI El Torito entry: {boot}"
    );
    assert!(boot.contains("/images/efiboot.img"), "{boot}");
    iso_extract(iso, "/images/efiboot.img", &scratch.join("efiboot.img"));
    let img = scratch.join("efiboot.img");
    let fsck = Command::new("fsck.fat").arg("-n").arg(&img).output().expect("fsck.fat (dosfstools)");
    assert!(fsck.status.success(), "fsck.fat: {}", String::from_utf8_lossy(&fsck.stdout));
    let mtools = |tool: &str, path: &str| {
        let out = Command::new(tool).arg("-i").arg(&img).args(["-b", path]).output().expect("mtools");
        ok(&out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let files = mtools("mdir", "::/EFI/BOOT");
    for f in ["BOOTX64.EFI", "mmx64.efi", "grubx64.efi", "grub.cfg", "fonts"] {
        assert!(
            files.lines().any(|l| l.trim_end_matches('/').ends_with(&format!("/{f}"))),
            "{f} is not in efiboot.img: {files}"
        );
    }
    let out = Command::new("mtype").arg("-i").arg(&img).arg("::/EFI/BOOT/grub.cfg").output().unwrap();
    let cfg = String::from_utf8_lossy(&out.stdout);
    assert!(cfg.contains("search --no-floppy --set=root -l 'OSBUILD-RS-IOT'"), "{cfg}");
    assert!(
        cfg.contains("linux /images/pxeboot/vmlinuz boot=live inst.ks=hd:LABEL=OSBUILD-RS-IOT:/osbuild.ks"),
        "{cfg}"
    );
    xorriso(&["-osirrox", "on", "-indev", iso_s, "-extract", "/ostree/repo", &format!("{s}/repo")]);
    let repo = scratch.join("repo");
    assert_eq!(host_ostree(&repo, &["rev-parse", &format!("osbuild-rs:{REF}")]), commit);
    host_ostree(&repo, &["ls", commit, "/usr/bin/fish"]);
    let check = Command::new("checkisomd5").arg(iso).output().expect("checkisomd5 (isomd5sum)");
    assert!(check.status.success(), "checkisomd5: {}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn e2e_iot_commit_boots_updates_over_http_and_rolls_back() {
    common::require_root_and_tools();
    require_tools();
    let mut clock = Clock::new();
    let env = Env::new();
    let store = cached_store(&env, "store");

    let commit_template = depsolve("iot-commit.json", None);
    let commit_manifest = env.write_manifest("iot-commit.json", &commit_template);
    let update_template = depsolve("iot-update.json", Some(UPDATE_PACKAGE));
    let iso_template = common::qemu::depsolve(
        &manifest_dir().join("iot-installer.json"),
        &package_list("iot-installer-packages.txt"),
        None,
    );
    clock.done("depsolve both commits and the installer ISO");

    let out1 = env.path("out-commit");
    finish_build(spawn_build(&commit_manifest, &store, &out1, "commit"), &out1);
    let c1 = compose(&out1)["ostree-commit"].as_str().unwrap().to_owned();
    let repo = out1.join("commit/repo");
    assert_eq!(host_ostree(&repo, &["rev-parse", REF]), c1);
    assert_eq!(host_ostree(&repo, &["show", "--print-metadata-key=version", &c1]), "'1'");
    clock.done(&format!("build commit 1 ({c1})"));

    // the repository as a device sees it: nginx on 127.0.0.1, http://10.0.2.2:<port>/repo in QEMU
    let www = env.path("www");
    std::fs::create_dir_all(&www).unwrap();
    std::os::unix::fs::symlink(&repo, www.join("repo")).unwrap();
    let nginx = Nginx::start(&env.path("nginx"), &www);
    let text = std::fs::read_to_string(manifest_dir().join("iot-qcow2.json")).unwrap();
    let remote_url = format!("http://10.0.2.2:{}/repo", nginx.port);
    let text = text.replace("@COMMIT@", &c1).replace("@URL@", &nginx.url("repo")).replace("@REMOTE_URL@", &remote_url);
    assert!(!text.contains('@'), "a placeholder of iot-qcow2.json is left");
    let image_manifest = env.write_manifest("iot-qcow2.json", &serde_json::from_str(&text).unwrap());
    let out_image = env.path("out-image");
    finish_build(spawn_build(&image_manifest, &store, &out_image, "qcow2"), &out_image);
    let qcow = out_image.join("qcow2/disk.qcow2");
    assert_eq!(common::disk::qemu_img_info(&qcow)["format"], "qcow2");
    let pulled = nginx.access_log().lines().filter(|l| l.contains("GET /repo/objects/")).count();
    assert!(pulled > 1000, "the image's commit came from nginx: {pulled} object requests");
    clock.done(&format!("build the qcow2 image ({pulled} objects pulled over HTTP)"));

    // the update and the installer ISO build while the image boots
    let update = serde_json::to_string(&update_template).unwrap().replace("@PARENT@", &c1);
    let update_manifest = env.write_manifest("iot-update.json", &serde_json::from_str(&update).unwrap());
    let out2 = env.path("out-update");
    let update_build = spawn_build(&update_manifest, &store, &out2, "commit");
    let iso_manifest = env
        .write_manifest("iot-installer.json", &installer_manifest(&iso_template, &c1, &nginx.url("repo"), &remote_url));
    let out_iso = env.path("out-iso");
    let iso_build = spawn_build(&iso_manifest, &store, &out_iso, "iso");

    let options = BootOptions { network: true, reboot: true, ..BootOptions::default() };
    let mut vm = Vm::boot_with(&qcow, &options).unwrap_or_else(|e| panic!("{e}"));
    login(&mut vm);
    clock.done(&format!("boot and log in as test ({:?})", vm.accel()));
    assert_eq!(guest(&mut vm, "fish -c 'echo fish-ok'", SHORT).trim(), "fish-ok");
    assert_eq!(guest(&mut vm, "hostname", SHORT).trim(), "osbuild-rs-iot");
    let status = guest(&mut vm, "ostree admin status", SHORT);
    assert!(status.contains(&format!("origin refspec: osbuild-rs:{REF}")), "{status}");
    assert_eq!(deployments(&status), (Some(c1.clone()), vec![c1.clone()]), "{status}");
    assert!(
        vm.run(&format!("command -v {UPDATE_PACKAGE}"), SHORT).is_err(),
        "the first commit has no {UPDATE_PACKAGE}"
    );
    clock.done("fish, hostname, ostree admin status names the ref and commit 1");

    finish_build(update_build, &out2);
    let c2 = compose(&out2)["ostree-commit"].as_str().unwrap().to_owned();
    clock.done(&format!("build commit 2 ({c2}, concurrently with the boot)"));
    finish_build(iso_build, &out_iso);
    let iso = out_iso.join("iso/installer.iso");
    check_installer_iso(&iso, &c1, &remote_url, &env.path("iso-repo"));
    let iso_sum = common::sha256(&std::fs::read(&iso).unwrap());
    clock.done(&format!(
        "build the installer ISO ({iso_sum}): repository with commit 1, kernel, initrd, kickstart, checkisomd5"
    ));
    // reproducibility: commit 1 again, in a fresh store, minutes later (while the device updates)
    let out_again = env.path("out-commit-again");
    let store_again = cached_store(&env, "store-again");
    let again = spawn_build(&commit_manifest, &store_again, &out_again, "commit");
    host_ostree(&repo, &["pull-local", out2.join("commit/repo").to_str().unwrap(), REF]);
    assert_eq!(host_ostree(&repo, &["rev-parse", REF]), c2);
    assert_eq!(host_ostree(&repo, &["rev-parse", &format!("{c2}^")]), c1, "commit 2's parent is commit 1");
    clock.done("publish commit 2 in the served repository (ostree pull-local)");

    // Logging in does not wait for DHCP: a device's update timer runs once the network is
    // online, so wait for that as it would (the first run here tried before the lease came).
    let online = vm.run("/lib/systemd/systemd-networkd-wait-online --timeout=120", LONG);
    if let Err(e) = online {
        let diag =
            vm.run("networkctl; ls -l /etc/systemd/network; cat /proc/net/route; true", SHORT).unwrap_or_else(|e| e);
        panic!("the guest's network did not come up: {e}\n{diag}");
    }
    let before = nginx.access_log().lines().count();
    let upgrade = guest(&mut vm, "echo password | sudo -S ostree admin upgrade", LONG);
    assert!(upgrade.contains("Transaction complete"), "{upgrade}");
    let requests = nginx.access_log().lines().count() - before;
    assert!(requests > 0, "the upgrade fetched nothing from nginx");
    let status = guest(&mut vm, "ostree admin status", SHORT);
    assert_eq!(deployments(&status), (Some(c1.clone()), vec![c2.clone(), c1.clone()]), "{status}");
    clock.done(&format!("ostree admin upgrade over HTTP ({requests} requests)"));

    reboot(&mut vm);
    let title = booting(&mut vm);
    assert!(title.ends_with("(ostree:0)"), "GRUB boots the newest deployment by default: {title}");
    login(&mut vm);
    let status = guest(&mut vm, "ostree admin status", SHORT);
    assert_eq!(deployments(&status), (Some(c2.clone()), vec![c2.clone(), c1.clone()]), "{status}");
    assert!(status.contains("Version: 2"), "{status}");
    assert_eq!(guest(&mut vm, UPDATE_PACKAGE, SHORT).trim(), "Hello, world!");
    clock.done("reboot: commit 2 booted, the new package is there");

    // rollback: the previous deployment is the second entry of the menu (GRUB says "Booting"
    // only when it boots on its own, so the status below tells which entry booted)
    reboot(&mut vm);
    vm.wait_for("(ostree:1)", SHORT).unwrap_or_else(|e| panic!("{e}"));
    vm.wait_for("automatically in", SHORT).unwrap_or_else(|e| panic!("{e}"));
    vm.send("\x0e").unwrap(); // Ctrl-N: the next entry, which stops the countdown
    vm.wait_for("(ostree:1)", SHORT).unwrap_or_else(|e| panic!("{e}"));
    vm.send("\r").unwrap();
    login(&mut vm);
    let status = guest(&mut vm, "ostree admin status", SHORT);
    assert_eq!(deployments(&status).0, Some(c1.clone()), "{status}");
    assert!(vm.run(&format!("command -v {UPDATE_PACKAGE}"), SHORT).is_err(), "{UPDATE_PACKAGE} is gone");
    let undeploy = guest(&mut vm, "echo password | sudo -S ostree admin undeploy 0", LONG);
    assert!(undeploy.contains(&format!("Deleted deployment {c2}.0")), "{undeploy}");
    let status = guest(&mut vm, "ostree admin status", SHORT);
    assert_eq!(deployments(&status), (Some(c1.clone()), vec![c1.clone()]), "{status}");
    let menu = guest(&mut vm, "grep -c '^LABEL ' /boot/loader/syslinux.cfg", SHORT);
    assert_eq!(menu.trim(), "1", "one menu entry left");
    clock.done("roll back: boot the previous menu entry, commit 1 booted, undeploy the update");
    vm.kill();

    finish_build(again, &out_again);
    let again = compose(&out_again)["ostree-commit"].as_str().unwrap().to_owned();
    assert_eq!(again, c1, "commit 1 built again in a fresh store has another checksum");
    clock.done(&format!("commit 1 rebuilt in a fresh store: the same checksum {again}"));
    let out_iso_again = env.path("out-iso-again");
    let iso_again = spawn_build(&iso_manifest, &store_again, &out_iso_again, "iso");

    // the installer, while the ISO builds again
    installer_errors(&iso, &env.path("iso-errors"));
    clock.done("the installer stops on an unknown command, a missing repository and a wrong ref");
    // the UEFI install runs beside the BIOS one (one TCG CPU each); its steps are printed as
    // they end, from the same start, and left out of the total
    let uefi = {
        let (iso, dir, c1, url) = (iso.clone(), env.path("iso-install-uefi"), c1.clone(), remote_url.clone());
        let mut uefi_clock = Clock { start: clock.start, step: Instant::now(), steps: Vec::new() };
        std::thread::spawn(move || install_from_iso(&iso, &dir, &c1, &url, true, &mut uefi_clock))
    };
    install_from_iso(&iso, &env.path("iso-install"), &c1, &remote_url, false, &mut clock);
    uefi.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
    clock.done("UEFI install (beside the BIOS one) finished");

    finish_build(iso_again, &out_iso_again);
    let again = common::sha256(&std::fs::read(out_iso_again.join("iso/installer.iso")).unwrap());
    assert_eq!(again, iso_sum, "the installer ISO built again in a fresh store differs");
    clock.done("installer ISO rebuilt in a fresh store: the same sha256");

    let total: Duration = clock.steps.iter().map(|(_, d)| *d).sum();
    eprintln!(
        "e2e_iot: total {total:.1?}: {}",
        clock.steps.iter().map(|(s, d)| format!("{s}: {d:.0?}")).collect::<Vec<_>>().join("; ")
    );
}

/// Extract `path` of the ISO to `to`.
fn iso_extract(iso: &Path, path: &str, to: &Path) {
    xorriso(&["-osirrox", "on", "-indev", iso.to_str().unwrap(), "-extract", path, to.to_str().unwrap()]);
}

/// Boot the ISO's live system with kickstarts from a second disk (labelled KS): one with an
/// unknown command (the installer service runs it at boot), one whose repository is missing
/// and one with a wrong ref (run again from the root shell the live system then gives).
/// Each must stop with a console message naming the problem, before any disk is touched.
fn installer_errors(iso: &Path, scratch: &Path) {
    let ks_dir = scratch.join("ks");
    std::fs::create_dir_all(&ks_dir).unwrap();
    iso_extract(iso, "/osbuild.ks", &scratch.join("osbuild.ks"));
    let ks = std::fs::read_to_string(scratch.join("osbuild.ks")).unwrap();
    let repo_url = "file:///run/install/repo/ostree/repo";
    assert!(ks.contains(repo_url) && ks.contains(&format!("--ref={REF}")), "{ks}");
    std::fs::write(ks_dir.join("unknown.ks"), format!("{ks}firewall --enabled\n")).unwrap();
    std::fs::write(ks_dir.join("norepo.ks"), ks.replace(repo_url, "file:///run/install/repo/no/repo")).unwrap();
    std::fs::write(ks_dir.join("badref.ks"), ks.replace(&format!("--ref={REF}"), "--ref=osbuild-rs/x86_64/nope"))
        .unwrap();
    let unknown_line = ks.lines().count() + 1;
    // an ext4 disk made from the directory (the kernel here could mount it too; QEMU wants qcow2)
    let raw = scratch.join("ks.img");
    ok(&Command::new("truncate").args(["-s", "16M"]).arg(&raw).output().unwrap());
    ok(&Command::new("mkfs.ext4").args(["-q", "-L", "KS", "-d"]).arg(&ks_dir).arg(&raw).output().unwrap());
    let disk = scratch.join("ks.qcow2");
    ok(&Command::new("qemu-img").args(["convert", "-O", "qcow2"]).arg(&raw).arg(&disk).output().unwrap());
    let (kernel, initrd) = (scratch.join("vmlinuz"), scratch.join("initrd.img"));
    iso_extract(iso, "/images/pxeboot/vmlinuz", &kernel);
    iso_extract(iso, "/images/pxeboot/initrd.img", &initrd);

    let append = "boot=live inst.ks=hd:LABEL=KS:/unknown.ks console=ttyS0,115200 quiet".to_owned();
    let options = BootOptions {
        memory_mib: 2048,
        cdrom: Some(iso.to_owned()),
        kernel: Some((kernel, initrd, append)),
        ..BootOptions::default()
    };
    let mut vm = Vm::boot_with(&disk, &options).unwrap_or_else(|e| panic!("{e}"));
    let said = format!(
        "ERROR: hd:LABEL=KS:/unknown.ks: kickstart line {unknown_line}: unknown or unsupported command 'firewall'"
    );
    vm.wait_for(&said, LONG).unwrap_or_else(|e| panic!("{e}"));
    vm.wait_for("the installation stopped", SHORT).unwrap_or_else(|e| panic!("{e}"));
    // the live system's console shell (org.osbuild-rs.installer's console_shell)
    vm.wait_for("root@osbuild-rs-installer", LONG).unwrap_or_else(|e| panic!("{e}"));
    vm.wait_quiet(Duration::from_secs(3), SHORT);
    let install = "/usr/libexec/osbuild-rs/osbuild-rs __install --kickstart";
    let out = guest(&mut vm, &format!("{install} hd:LABEL=KS:/norepo.ks; echo status=$?"), LONG);
    assert!(
        out.contains("ERROR: ostreesetup --url=file:///run/install/repo/no/repo: there is no OSTree repository at /run/install/repo/no/repo")
            && out.contains("status=1"),
        "{out}"
    );
    let out = guest(&mut vm, &format!("{install} hd:LABEL=KS:/badref.ks; echo status=$?"), LONG);
    assert!(
        out.contains(&format!(
            "ERROR: ostreesetup --ref=osbuild-rs/x86_64/nope: the repository at {repo_url} has no such ref (it has: osbuild-rs:{REF})"
        )) && out.contains("status=1"),
        "{out}"
    );
    // stopped before the disks: nothing mounted or partitioned
    let mounts = guest(&mut vm, "grep -c /mnt/sysimage /proc/mounts; true", SHORT);
    assert_eq!(mounts.trim(), "0", "{mounts}");
    let parts = guest(&mut vm, "ls /sys/block/vda | grep -c '^vda[0-9]'; true", SHORT);
    assert_eq!(parts.trim(), "0", "the KS disk was partitioned: {parts}");
    vm.kill();
}

/// Boot the ISO with an empty disk, on BIOS (SeaBIOS, the ISO's ISOLINUX) or UEFI (OVMF, the
/// ISO's El Torito EFI image: shim, GRUB): the installer installs commit 1 unattended and
/// reboots; the disk boots with the same firmware, `test` logs in, fish runs, the remote points
/// at the update server, the ESP is mounted.
fn install_from_iso(iso: &Path, scratch: &Path, commit: &str, remote_url: &str, uefi: bool, clock: &mut Clock) {
    let (firmware, loader) = if uefi { ("UEFI", "GRUB") } else { ("BIOS", "ISOLINUX") };
    std::fs::create_dir_all(scratch).unwrap();
    let disk = scratch.join("target.qcow2");
    ok(&Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&disk).arg("8G").output().unwrap());
    let options = BootOptions {
        memory_mib: 2048,
        cdrom: Some(iso.to_owned()),
        // OVMF's boot order (disk, then CD) passes over the empty disk
        boot_cdrom_once: !uefi,
        vga: !uefi,
        uefi,
        network: true,
        reboot: true,
        // what the firmware prints on the serial line at once (KVM may hang here)
        probe: if uefi { "BdsDxe".into() } else { "Linux version".into() },
        ..BootOptions::default()
    };
    let mut vm = Vm::boot_with(&disk, &options).unwrap_or_else(|e| panic!("{e}"));
    // Enter at the ISO's boot menu instead of its 60-second countdown (the menu entries boot
    // `quiet`: the installer's first message is the first sign of the kernel on the console)
    vm.press_enter_until("osbuild-rs-installer: ", LONG).unwrap_or_else(|e| panic!("{e}"));
    if uefi {
        let t = vm.transcript();
        assert!(t.contains("UEFI QEMU DVD-ROM") && t.contains("Install osbuild-rs IoT 1"), "{}", vm.tail());
    }
    let said =
        format!("osbuild-rs-installer: this machine booted with {firmware}; the disk gets GRUB for BIOS and UEFI");
    vm.wait_for(&said, LONG).unwrap_or_else(|e| panic!("{e}"));
    vm.wait_for("osbuild-rs-installer: the kickstart is fine; installing", LONG).unwrap_or_else(|e| panic!("{e}"));
    clock.done(&format!("{firmware}: boot the ISO ({loader}, live root) to the installer"));
    let (i, _) = vm
        .wait_for_any(&["osbuild-rs-installer: installation complete, rebooting", "osbuild-rs-installer: ERROR"], LONG)
        .unwrap_or_else(|e| panic!("{e}"));
    if i == 1 {
        let why = vm.wait_for("the installation stopped", SHORT).unwrap_or_else(|e| e);
        panic!("the installation failed: {why}\n{}", vm.tail());
    }
    clock.done(&format!("{firmware}: unattended install onto the empty disk"));
    vm.wait_for("GNU GRUB", LONG).unwrap_or_else(|e| panic!("{e}"));
    login(&mut vm);
    clock.done(&format!("{firmware}: reboot from the disk and log in as test"));
    assert_eq!(guest(&mut vm, "fish -c 'echo fish-ok'", SHORT).trim(), "fish-ok");
    let remotes = guest(&mut vm, "ostree remote list -u", SHORT);
    assert!(remotes.contains("osbuild-rs") && remotes.contains(remote_url), "{remotes}");
    let status = guest(&mut vm, "ostree admin status", SHORT);
    assert_eq!(deployments(&status), (Some(commit.to_owned()), vec![commit.to_owned()]), "{status}");
    let cmdline = guest(&mut vm, "cat /proc/cmdline", SHORT);
    assert!(cmdline.contains("root=LABEL=root") && cmdline.contains("console=ttyS0,115200"), "{cmdline}");
    // booted by the firmware it was installed with; the ESP is there for either
    let efi = guest(&mut vm, "test -d /sys/firmware/efi && echo uefi || echo bios", SHORT);
    assert_eq!(efi.trim(), if uefi { "uefi" } else { "bios" });
    assert_eq!(guest(&mut vm, "findmnt -n -o FSTYPE /boot/efi", SHORT).trim(), "vfat");
    let esp = guest(&mut vm, "echo password | sudo -S ls /boot/efi/EFI/BOOT", SHORT);
    assert!(esp.contains("BOOTX64.EFI"), "{esp}");
    let esp = esp.split_whitespace().collect::<Vec<_>>().join(" ");
    clock.done(&format!(
        "{firmware}: installed system: fish, the remote is the update URL, commit 1 deployed, ESP EFI/BOOT: {esp}"
    ));
    vm.kill();
}
