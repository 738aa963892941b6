//! A QEMU boot harness for end-to-end tests: boot a disk image in `qemu-system-x86_64`, read
//! and write its serial console, log in, run commands, power it off.
//!
//! - The image is opened with `-snapshot`: the guest's writes go to a temporary overlay and the
//!   image file stays as it was.
//! - The first serial port is QEMU's stdin/stdout (pipes); the human monitor listens on a unix
//!   socket in a private directory (for `system_powerdown`). No display; no network unless
//!   `network` is set: then one virtio NIC on QEMU's user-mode network, where the guest gets
//!   an address by DHCP and reaches the host's 127.0.0.1 as 10.0.2.2.
//! - A guest reboot ends QEMU (`-no-reboot`) unless `reboot` is set: then the machine resets
//!   and boots again in the same process, with the same `-snapshot` overlay, so what the
//!   guest wrote (an `ostree admin upgrade`) survives its reboots but never reaches the image.
//! - Acceleration: KVM is tried first when `/dev/kvm` is there, but KVM can be present and
//!   still unable to run a guest (nested virtualization): QEMU aborts, or the guest hangs after
//!   the boot loader. So a KVM boot must show `probe` (by default the kernel's `Linux version`
//!   banner) within `kvm_probe_timeout`; otherwise QEMU is killed and the image is booted
//!   again with TCG. `OSBUILD_RS_QEMU_ACCEL=kvm|tcg` forces one of them (no fallback).
//! - Expect-style API: `wait_for` a text in the console output after what was consumed so
//!   far, `send_line`, `login`, `run` (a command's output captured between unique markers),
//!   `poweroff` (ACPI power button, then wait for QEMU to exit). QEMU is killed on drop.
//!
//! Errors are `String`s that end with the tail of the console, so a failing test shows what
//! the guest printed.
//!
//! Also the steps the end-to-end tests take before booting: depsolving a Debian template,
//! building it into a store whose downloads are cached between runs.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    fn arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// How to boot.
#[derive(Clone, Debug)]
pub struct BootOptions {
    pub memory_mib: u32,
    /// A text every working boot prints soon (checked on KVM only).
    pub probe: String,
    /// How long a KVM boot may take to print `probe` before TCG is tried instead.
    pub kvm_probe_timeout: Duration,
    /// `None`: KVM with TCG fallback (or what `OSBUILD_RS_QEMU_ACCEL` says).
    pub accel: Option<Accel>,
    /// A user-mode network NIC (the host is 10.0.2.2).
    pub network: bool,
    /// Let a guest reboot restart the machine instead of ending QEMU.
    pub reboot: bool,
    /// An ISO in the CD-ROM drive (IDE, the guest's /dev/sr0).
    pub cdrom: Option<PathBuf>,
    /// Boot from the CD-ROM once; a reboot then starts from the disk (an installer's run).
    pub boot_cdrom_once: bool,
    /// Boot this kernel and initrd with this command line (QEMU's `-kernel`), not the disk.
    pub kernel: Option<(PathBuf, PathBuf, String)>,
    /// A VGA card: ISOLINUX's menu needs one (the console stays on the serial line).
    pub vga: bool,
    /// UEFI firmware (OVMF, from Debian's `ovmf`) instead of SeaBIOS, with its variable store
    /// in the VM's private directory. The disk comes first in the boot order, then the CD:
    /// an empty disk is passed over, an installed one boots, as on a real machine.
    pub uefi: bool,
}

/// OVMF's code and the template of its variable store (Debian's `ovmf`, 4 MiB flavour).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

impl Default for BootOptions {
    fn default() -> Self {
        let accel = match std::env::var("OSBUILD_RS_QEMU_ACCEL").as_deref() {
            Ok("kvm") => Some(Accel::Kvm),
            Ok("tcg") => Some(Accel::Tcg),
            _ => None,
        };
        BootOptions {
            memory_mib: 1024,
            probe: "Linux version".into(),
            kvm_probe_timeout: Duration::from_secs(10),
            accel,
            network: false,
            reboot: false,
            cdrom: None,
            boot_cdrom_once: false,
            kernel: None,
            vga: false,
            uefi: false,
        }
    }
}

/// Console output collected by a reader thread.
struct Console {
    state: Mutex<(Vec<u8>, bool)>,
    cond: Condvar,
}

pub struct Vm {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<Console>,
    /// Bytes of the console output consumed by `wait_for`.
    pos: usize,
    accel: Accel,
    dir: tempfile::TempDir,
    started: Instant,
    marker: u32,
    /// Why KVM was given up, when it was.
    pub kvm_failure: Option<String>,
}

/// Fail with a message saying what to install when QEMU is missing.
pub fn require_qemu() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("qemu-system-x86_64").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "qemu-system-x86_64 is missing: apt-get install -y qemu-system-x86 qemu-utils (in one call; `make deps`)"
    );
}

/// Where the end-to-end tests keep what they download between runs.
pub const CACHE: &str = "/var/cache/osbuild-rs-tests";

/// Fail with a message saying what to install when one of `tools` (tool, Debian package) or
/// QEMU is missing.
pub fn require_tools(tools: &[(&str, &str)]) {
    for (tool, package) in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(found, "{tool} is missing: apt-get install -y {package} (or `make deps`)");
    }
    require_qemu();
}

/// `template` filled by osbuild-depsolve-apt with `packages` (and `then` as a later dpkg
/// layer, when given); apt's lists live in the cache.
pub fn depsolve<S: AsRef<std::ffi::OsStr>>(template: &Path, packages: &[S], then: Option<&str>) -> serde_json::Value {
    let state = Path::new(CACHE).join("apt-state");
    std::fs::create_dir_all(&state).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osbuild-depsolve-apt"));
    cmd.arg("--state-dir").arg(&state).arg("--template").arg(template).args(packages);
    if let Some(t) = then {
        cmd.args(["--then", t]);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    super::ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The version of the one kernel package a depsolved manifest installs (its .deb is
/// `linux-image-<version>_<debian version>_<arch>.deb`).
pub fn kernel_version(m: &serde_json::Value) -> String {
    let urls = m["sources"]["org.osbuild.curl"]["items"].as_object().unwrap();
    let kernels: Vec<String> = urls
        .values()
        .filter_map(|u| u.as_str()?.rsplit('/').next()?.split('_').next()?.strip_prefix("linux-image-"))
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect();
    assert_eq!(kernels.len(), 1, "exactly one kernel package expected: {kernels:?}");
    kernels[0].clone()
}

/// A store `name` in `env` whose downloaded files live in the shared cache.
pub fn cached_store(env: &super::Env, name: &str) -> std::path::PathBuf {
    let store = env.path(name);
    let cache = Path::new(CACHE).join("debs");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(store.join("sources")).unwrap();
    std::os::unix::fs::symlink(&cache, store.join("sources/org.osbuild.files")).unwrap();
    store
}

/// Start building `export` of `manifest` into `out`; the log goes to `<out>.log`.
pub fn spawn_build(manifest: &Path, store: &Path, out: &Path, export: &str) -> Child {
    let log = std::fs::File::create(out.with_extension("log")).unwrap();
    Command::new(super::bin())
        .arg("--store")
        .arg(store)
        .arg("--output-directory")
        .arg(out)
        .args(["--export", export])
        .arg(manifest)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Wait for a build [`spawn_build`] started and fail with its log's tail unless it succeeded;
/// returns that tail.
pub fn finish_build(mut child: Child, out: &Path) -> String {
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(out.with_extension("log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(status.success(), "build into {} failed ({status}):\n{tail}", out.display());
    tail
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

impl Vm {
    /// Boot `image` (qcow2) with the default options: KVM, else TCG.
    pub fn boot(image: &Path) -> Result<Vm, String> {
        Vm::boot_with(image, &BootOptions::default())
    }

    pub fn boot_with(image: &Path, o: &BootOptions) -> Result<Vm, String> {
        require_qemu();
        assert!(image.is_file(), "no image at {}", image.display());
        match o.accel {
            Some(a) => Vm::start(image, o, a),
            None if !kvm_usable() => {
                let mut vm = Vm::start(image, o, Accel::Tcg)?;
                vm.kvm_failure = Some("/dev/kvm cannot be opened".into());
                Ok(vm)
            }
            None => {
                let reason = match Vm::start(image, o, Accel::Kvm) {
                    Ok(mut vm) => match vm.wait_for(&o.probe, o.kvm_probe_timeout) {
                        Ok(_) => return Ok(vm),
                        Err(e) => e,
                    },
                    Err(e) => e,
                };
                let mut vm = Vm::start(image, o, Accel::Tcg)?;
                vm.kvm_failure = Some(reason);
                Ok(vm)
            }
        }
    }

    fn start(image: &Path, o: &BootOptions, accel: Accel) -> Result<Vm, String> {
        let dir = tempfile::Builder::new().prefix("qemu").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let monitor = dir.path().join("monitor.sock");
        let stderr = std::fs::File::create(dir.path().join("stderr")).map_err(|e| format!("stderr file: {e}"))?;
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", accel.arg(), "-m", &o.memory_mib.to_string(), "-smp", "1"])
            .args(["-nographic", "-vga", if o.vga { "std" } else { "none" }, "-serial", "stdio"])
            .arg("-monitor")
            .arg(format!("unix:{},server=on,wait=off", monitor.display()))
            .args(["-nic", if o.network { "user,model=virtio-net-pci" } else { "none" }])
            .args(if o.reboot { &[][..] } else { &["-no-reboot"][..] })
            .arg("-snapshot");
        if o.uefi {
            assert!(!o.boot_cdrom_once, "UEFI boots follow the boot order (disk, then CD)");
            let vars = dir.path().join("OVMF_VARS.fd");
            std::fs::copy(OVMF_VARS, &vars).map_err(|e| format!("{OVMF_VARS} (apt-get install ovmf): {e}"))?;
            cmd.arg("-drive").arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"));
            cmd.arg("-drive").arg(format!("if=pflash,format=raw,file={}", vars.display()));
            cmd.arg("-drive").arg(format!("file={},if=none,id=disk0,format=qcow2", image.display()));
            cmd.args(["-device", "virtio-blk-pci,drive=disk0,bootindex=0"]);
            if let Some(iso) = &o.cdrom {
                cmd.arg("-drive").arg(format!("file={},if=none,id=cd0,media=cdrom,readonly=on", iso.display()));
                cmd.args(["-device", "ide-cd,drive=cd0,bootindex=1"]);
            }
        } else {
            cmd.arg("-drive").arg(format!("file={},if=virtio,format=qcow2", image.display()));
            if let Some(iso) = &o.cdrom {
                cmd.arg("-cdrom").arg(iso);
            }
        }
        if o.boot_cdrom_once {
            cmd.args(["-boot", "once=d"]);
        }
        if let Some((kernel, initrd, append)) = &o.kernel {
            cmd.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd).args(["-append", append]);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(stderr);
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("cannot run qemu-system-x86_64: {e}"))?;
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("piped stdout");
        let console = Arc::new(Console { state: Mutex::new((Vec::new(), false)), cond: Condvar::new() });
        let c = console.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                let n = stdout.read(&mut chunk).unwrap_or(0);
                let mut st = c.state.lock().unwrap();
                if n == 0 {
                    st.1 = true;
                    c.cond.notify_all();
                    return;
                }
                st.0.extend_from_slice(&chunk[..n]);
                c.cond.notify_all();
            }
        });
        Ok(Vm { child, stdin, console, pos: 0, accel, dir, started, marker: 0, kvm_failure: None })
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// Time since this QEMU process was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Everything the console printed so far.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.console.state.lock().unwrap().0).into_owned()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// The last part of the console (and QEMU's stderr), for error messages.
    pub fn tail(&self) -> String {
        let t = self.transcript();
        let cut = t.char_indices().rev().nth(3000).map(|(i, _)| i).unwrap_or(0);
        let mut s = format!("--- console ({:?}, {:.0?}) ---\n{}", self.accel, self.elapsed(), &t[cut..]);
        let err = self.stderr();
        if !err.trim().is_empty() {
            s += &format!("\n--- qemu stderr ---\n{err}");
        }
        s
    }

    /// Wait until the console prints one of `patterns` after what was consumed so far;
    /// consume up to the end of it and return (which pattern, the text up to and including it).
    pub fn wait_for_any(&mut self, patterns: &[&str], timeout: Duration) -> Result<(usize, String), String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.console.state.lock().unwrap();
        loop {
            let hay = &st.0[self.pos..];
            let hit = patterns
                .iter()
                .enumerate()
                .filter_map(|(i, p)| find(hay, p.as_bytes()).map(|at| (at, i, p.len())))
                .min();
            if let Some((at, i, len)) = hit {
                let text = String::from_utf8_lossy(&hay[..at + len]).into_owned();
                self.pos += at + len;
                return Ok((i, text));
            }
            let exited = st.1;
            let now = Instant::now();
            if exited || now >= deadline {
                drop(st);
                let why = if exited { "qemu exited" } else { "timed out" };
                return Err(format!("{why} after {timeout:.0?} waiting for {patterns:?}\n{}", self.tail()));
            }
            st = self.console.cond.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// Wait until the console prints `pattern`; returns the text up to and including it.
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) -> Result<String, String> {
        self.wait_for_any(&[pattern], timeout).map(|(_, t)| t)
    }

    /// Type `text` on the serial console.
    pub fn send(&mut self, text: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("qemu's stdin is closed")?;
        stdin.write_all(text.as_bytes()).and_then(|_| stdin.flush()).map_err(|e| format!("writing to qemu: {e}"))
    }

    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        self.send(&format!("{line}\n"))
    }

    /// Wait until the console has printed nothing for `quiet` (at most `max`); consume and
    /// return what it printed meanwhile.
    pub fn wait_quiet(&mut self, quiet: Duration, max: Duration) -> String {
        let deadline = Instant::now() + max;
        let start = self.pos;
        let mut st = self.console.state.lock().unwrap();
        loop {
            let len = st.0.len();
            let now = Instant::now();
            if st.1 || now >= deadline {
                break;
            }
            st = self.console.cond.wait_timeout(st, quiet.min(deadline - now)).unwrap().0;
            if st.0.len() == len {
                break;
            }
        }
        self.pos = st.0.len();
        String::from_utf8_lossy(&st.0[start..]).into_owned()
    }

    /// Log in on the serial getty; checks with `id -un` that the session is `user`'s.
    pub fn login(&mut self, user: &str, password: &str, timeout: Duration) -> Result<(), String> {
        self.wait_for("login: ", timeout)?;
        self.send_line(user)?;
        self.wait_for("Password: ", Duration::from_secs(60))?;
        self.send_line(password)?;
        // login flushes what is typed before the shell runs: wait until the console is
        // quiet (motd, prompt), then ask who we are until the shell answers
        let said = self.wait_quiet(Duration::from_secs(2), Duration::from_secs(120));
        if said.contains("Login incorrect") {
            return Err(format!("login as {user} failed\n{}", self.tail()));
        }
        let mut last = String::new();
        for _ in 0..5 {
            match self.run_inner("id -un", Duration::from_secs(30), &["Login incorrect"]) {
                Ok(who) if who.trim() == user => return Ok(()),
                Ok(who) => return Err(format!("logged in as {:?}, not {user}\n{}", who.trim(), self.tail())),
                Err(e) if e.contains("Login incorrect") || e.starts_with("qemu exited") => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(format!("no shell answered after logging in as {user}: {last}"))
    }

    /// Run `cmd` in the logged-in shell (sh or fish syntax: `a; b && c || d` must work) and
    /// return its output; an error when it fails. Kernel messages printed on the console
    /// meanwhile are left out.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> Result<String, String> {
        self.run_inner(cmd, timeout, &[])
    }

    fn run_inner(&mut self, cmd: &str, timeout: Duration, failures: &[&str]) -> Result<String, String> {
        self.marker += 1;
        let n = self.marker;
        // the typed line echoes `OSB''RS…`; only the output reads `OSBRS…`
        self.send_line(&format!("echo OSB''RS-{n}-BEGIN; {cmd} && echo OSB''RS-{n}-OK || echo OSB''RS-{n}-FAIL"))?;
        let begin = format!("OSBRS-{n}-BEGIN");
        let mut first = vec![begin.as_str()];
        first.extend_from_slice(failures);
        let (i, _) = self.wait_for_any(&first, timeout)?;
        if i > 0 {
            return Err(format!("console printed {:?} before {cmd:?} ran\n{}", first[i], self.tail()));
        }
        let ok = format!("OSBRS-{n}-OK");
        let fail = format!("OSBRS-{n}-FAIL");
        let (i, text) = self.wait_for_any(&[&ok, &fail], timeout)?;
        let end = text.len() - [&ok, &fail][i].len();
        let out = clean_output(&text[..end]);
        if i == 1 {
            return Err(format!("{cmd:?} failed in the guest: {out}\n{}", self.tail()));
        }
        Ok(out)
    }

    /// A human monitor command (on the unix socket).
    pub fn monitor(&mut self, command: &str) -> Result<(), String> {
        let path = self.dir.path().join("monitor.sock");
        // QEMU makes the socket a moment after it starts
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match UnixStream::connect(&path) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(format!("qemu monitor {}: {e}\n{}", path.display(), self.tail())),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        // the greeting ends with the prompt
        let mut got = Vec::new();
        let mut chunk = [0u8; 512];
        while !got.ends_with(b"(qemu) ") {
            let n = s.read(&mut chunk).map_err(|e| format!("qemu monitor: {e}"))?;
            if n == 0 {
                return Err("qemu monitor closed".into());
            }
            got.extend_from_slice(&chunk[..n]);
        }
        s.write_all(format!("{command}\n").as_bytes()).map_err(|e| format!("qemu monitor: {e}"))?;
        // the next prompt says the command ran
        got.clear();
        while !got.ends_with(b"(qemu) ") {
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("qemu monitor: {e}")),
            }
        }
        Ok(())
    }

    /// Press Enter on the machine's keyboard (a boot menu reads it; ISOLINUX shows its menu
    /// on the VGA screen only) every 2 s until the console prints `until` (something the booted
    /// system prints); returns the text up to it. Skips a boot menu's countdown.
    pub fn press_enter_until(&mut self, until: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.monitor("sendkey ret")?;
            match self.wait_for(until, Duration::from_secs(2)) {
                Ok(t) => return Ok(t),
                Err(e) if e.starts_with("qemu exited") || Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// Press the (ACPI) power button and wait until QEMU exits; `Ok` when it exits
    /// successfully after the guest's kernel said it powers down.
    pub fn poweroff(&mut self, timeout: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        self.monitor("system_powerdown")?;
        self.wait_for("reboot: Power down", timeout)?;
        let deadline = start + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) if st.success() => return Ok(start.elapsed()),
                Ok(Some(st)) => return Err(format!("qemu exited with {st}\n{}", self.tail())),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                Ok(None) => return Err(format!("qemu still runs {timeout:.0?} after power-off\n{}", self.tail())),
                Err(e) => return Err(format!("waiting for qemu: {e}")),
            }
        }
    }

    /// Stop QEMU at once.
    pub fn kill(&mut self) {
        self.stdin.take();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A command's output as the console gave it: without carriage returns, ANSI escape
/// sequences, kernel messages (`[   12.345678] …`) and the line break before it.
fn clean_output(raw: &str) -> String {
    let mut s = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\x1b' => {
                // CSI: ESC [ params final; other escapes: ESC + one character
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            c => s.push(c),
        }
    }
    let lines: Vec<&str> = s.lines().filter(|l| !is_kernel_message(l)).collect();
    let mut out = lines.join("\n");
    while out.starts_with('\n') {
        out.remove(0);
    }
    out
}

fn is_kernel_message(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else { return false };
    let Some((stamp, _)) = rest.split_once(']') else { return false };
    let stamp = stamp.trim();
    !stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit() || c == '.') && stamp.contains('.')
}
