//! The adversarial suite, host side: what a manifest (or a server it names, or an input it
//! points at) tries against the machine running osbuild-rs as root. Each test is written so
//! that the escape, leak, hang or orphan would be visible if it happened: victims live where
//! the host-side code reaches them (the test's own directory under /var/tmp, copies of /etc
//! files), servers are real sockets on 127.0.0.1, processes are looked up in /proc.
//!
//! `OSBUILD_RS_SECURITY_BIN=/path/to/osbuild-rs` runs the suite against another build (e.g.
//! an older release) to measure what it lets through.

mod common;

use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn binary() -> PathBuf {
    std::env::var_os("OSBUILD_RS_SECURITY_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(bin()))
}

/// `osbuild-rs --store S --output-directory O ARGS MANIFEST`.
fn command(env: &Env, manifest: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(binary());
    c.arg("--store").arg(env.store()).arg("--output-directory").arg(env.out());
    c.args(extra).arg(manifest).stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Waits for `child` to exit, at most `limit`; its exit status and how long it took.
fn wait_within(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st, started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("still running {limit:?} after being told to stop");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A manifest whose one pipeline copies the curl item `url` (named by `checksum`) into its tree.
fn download_manifest(env: &Env, name: &str, checksum: &str, url: &str) -> PathBuf {
    env.write_manifest(
        name,
        &json!({"version": "2",
        "sources": {"org.osbuild.curl": {"items": {checksum: url}}},
        "pipelines": [{"name": "tree", "stages": [
            {"type": "org.osbuild.copy",
             "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [checksum]}},
             "options": {"paths": [{"from": format!("input://f/{checksum}"), "to": "tree:///f"}]}}
        ]}]}),
    )
}

/// Entries of the store's download directory whose names start with `.tmp-`.
fn staging_entries(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.store().join("sources/org.osbuild.files"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// A server that accepts, reads the request and never answers, recording when each connection
// closes (the client died or gave up).

#[derive(Clone, Default)]
struct Connections(Arc<Mutex<Vec<Option<Instant>>>>);

impl Connections {
    fn opened(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn all_closed(&self) -> bool {
        self.0.lock().unwrap().iter().all(Option::is_some)
    }
}

fn hanging_server() -> (String, Connections) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let conns = Connections::default();
    let record = conns.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let index = {
                let mut v = record.0.lock().unwrap();
                v.push(None);
                v.len() - 1
            };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut conn: TcpStream = conn;
                let mut buf = [0u8; 4096];
                // Read the request and then whatever comes, until the client goes away.
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                record.0.lock().unwrap()[index] = Some(Instant::now());
            });
        }
    });
    (addr, conns)
}

/// Children of `ppid` whose command name is `name` (from /proc/<pid>/stat).
fn children_named(ppid: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Some((comm, _, parent)) = stat(pid) else { continue };
        if parent == ppid && comm == name {
            found.push(pid);
        }
    }
    found
}

/// (comm, state, ppid) of `pid`.
fn stat(pid: u32) -> Option<(String, char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let mut rest = s[close + 2..].split(' ');
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((s[open + 1..close].to_string(), state, ppid))
}

/// Whether `pid` still runs (a zombie no longer does).
fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, state, _)| state != 'Z' && state != 'X')
}

/// Starts a build downloading from a server that never answers and waits until curl is
/// connected; the build and the pids of its curl processes.
fn build_stuck_in_a_download(env: &Env, conns: &Connections, manifest: &Path) -> (Child, Vec<u32>) {
    let mut child =
        command(env, manifest, &["--export", "tree"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while conns.opened() == 0 {
        assert!(Instant::now() < deadline, "the download never started");
        if let Some(st) = child.try_wait().unwrap() {
            let mut e = String::new();
            child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            panic!("the build ended before downloading: {st}: {e}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let curls = children_named(child.id(), "curl");
    assert!(!curls.is_empty(), "no curl child of osbuild-rs found");
    (child, curls)
}

#[test]
fn sigkill_during_a_download_leaves_no_curl_and_the_next_build_cleans_up() {
    let env = Env::new();
    let (addr, conns) = hanging_server();
    let m = download_manifest(&env, "hang.json", &sha256(b"never served"), &format!("{addr}/big.rpm"));
    let (mut child, curls) = build_stuck_in_a_download(&env, &conns, &m);

    child.kill().unwrap();
    let killed = Instant::now();
    child.wait().unwrap();
    while curls.iter().any(|&p| running(p)) || !conns.all_closed() {
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "1 s after SIGKILL of osbuild-rs: curl {:?} still running, connections all closed: {}",
            curls.iter().filter(|&&p| running(p)).collect::<Vec<_>>(),
            conns.all_closed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("curl gone {:?} after SIGKILL", killed.elapsed());
    // The killed build's partial download is still there, in its staging directory ...
    assert!(!staging_entries(&env).is_empty(), "the test no longer sees partial downloads");
    // ... and the next build (of anything) removes it.
    let fine = env.write_manifest(
        "fine.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/x")]}]}),
    );
    ok(&command(&env, &fine, &["--export", "tree"]).output().unwrap());
    assert!(staging_entries(&env).is_empty(), "left in sources/: {:?}", staging_entries(&env));
    assert!(env.tmp_entries().is_empty(), "left in tmp/: {:?}", env.tmp_entries());
}

#[test]
fn stop_signals_during_a_download_end_the_build_at_once() {
    for (signal, name) in [(15, "SIGTERM"), (1, "SIGHUP"), (2, "SIGINT")] {
        let env = Env::new();
        let (addr, conns) = hanging_server();
        let m = download_manifest(&env, "hang.json", &sha256(b"never served"), &format!("{addr}/big.rpm"));
        let (mut child, curls) = build_stuck_in_a_download(&env, &conns, &m);
        let st = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
        assert!(st.success());
        let (status, took) = wait_within(&mut child, Duration::from_secs(2));
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        eprintln!("{name}: exited with {status} after {took:?}");
        assert_eq!(status.code(), Some(130), "{name}: {err}");
        assert!(err.contains(&format!("interrupted by signal {signal}")), "{name}: {err}");
        std::thread::sleep(Duration::from_millis(100));
        assert!(curls.iter().all(|&p| !running(p)), "{name}: curl left running");
        assert!(conns.all_closed(), "{name}: a connection stayed open");
        assert!(staging_entries(&env).is_empty(), "{name}: left in sources/: {:?}", staging_entries(&env));
        assert!(env.tmp_entries().is_empty(), "{name}: left in tmp/: {:?}", env.tmp_entries());
    }
}

#[test]
fn a_hanging_server_fails_the_build_within_the_documented_bound() {
    let env = Env::new();
    let (addr, conns) = hanging_server();
    let url = format!("{addr}/stuck.rpm");
    let m = download_manifest(&env, "hang.json", &sha256(b"never served"), &url);
    let started = Instant::now();
    let mut child = command(&env, &m, &["--export", "tree"])
        .env("OSBUILD_RS_DOWNLOAD_STALL_TIME", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two attempts of 2 s (a stall is retried once) and a 0.5 s pause.
    let (status, took) = wait_within(&mut child, Duration::from_secs(15));
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    eprintln!("gave up after {took:?} ({:?} since start)", started.elapsed());
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("curl: error downloading {url}")) && err.contains("(exit code 28)"), "{err}");
    assert_eq!(conns.opened(), 2);
    assert!(staging_entries(&env).is_empty());
}

// ---------------------------------------------------------------------------------------------
// file:// items

#[test]
fn a_wrong_checksum_never_reveals_a_host_file_hash() {
    let env = Env::new();
    // A copy of a host secret, where the host-side source code reads it.
    let victim = env.path("etc-copy/shadow");
    std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
    let secret = b"root:$6$c2VjcmV0$Zm9yIHRoZSB0ZXN0IG9ubHk:19000:0:99999:7:::\n";
    std::fs::write(&victim, secret).unwrap();
    let real = sha256(secret);
    let url = format!("file://{}", victim.display());
    let m = download_manifest(&env, "probe.json", &sha256(b"a guess"), &url);
    for extra in [&["--export", "tree"][..], &["--export", "tree", "--json"][..]] {
        let o = command(&env, &m, extra).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(text(&o).contains(&url), "the error must name the url: {}", text(&o));
        assert!(!text(&o).contains(&real[7..]), "the real hash leaked: {}", text(&o));
    }
    let stored: Vec<_> = std::fs::read_dir(env.store().join("sources/org.osbuild.files")).unwrap().flatten().collect();
    assert!(stored.is_empty(), "something was stored");
}

#[test]
fn file_urls_outside_the_allowed_directories_are_never_imported() {
    let env = Env::new();
    let allowed = env.path("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let victim = env.path("etc-copy/passwd");
    std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
    std::fs::copy("/etc/passwd", &victim).unwrap();
    let data = std::fs::read(&victim).unwrap();
    // A symlink inside the allowed directory that points at the victim.
    std::os::unix::fs::symlink(&victim, allowed.join("passwd")).unwrap();
    for url in [format!("file://{}", victim.display()), format!("file://{}/passwd", allowed.display())] {
        // The right checksum: without the setting this would be imported.
        let m = download_manifest(&env, "import.json", &sha256(&data), &url);
        let o = command(&env, &m, &["--export", "tree"]).env("OSBUILD_RS_FILE_URL_DIRS", &allowed).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{url}: {}", text(&o));
        assert!(text(&o).contains(&url), "{}", text(&o));
        assert!(!env.out().join("tree/f").exists(), "{url}: imported into the export");
        assert!(!env.store().join("sources/org.osbuild.files").join(sha256(&data)).exists(), "{url}: stored");
    }
    // Endless and blocking files end at once, with or without the setting.
    let fifo = env.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for path in [Path::new("/dev/zero"), fifo.as_path()] {
        let url = format!("file://{}", path.display());
        let m = download_manifest(&env, "endless.json", &sha256(b"x"), &url);
        let mut child =
            command(&env, &m, &["--export", "tree"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let (status, _) = wait_within(&mut child, Duration::from_secs(10));
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// The manifest and the command line

#[test]
fn an_endless_manifest_stops_at_the_size_limit() {
    let started = Instant::now();
    let o = Command::new(binary()).args(["--inspect", "/dev/zero"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/dev/zero is larger than the limit of 67108864 bytes"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    // A FIFO fed forever, and stdin fed forever: the writer sees its reader go away.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("manifest");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let feeder = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            let chunk = vec![b' '; 1 << 16];
            let mut written = 0u64;
            while f.write_all(&chunk).is_ok() {
                written += chunk.len() as u64;
            }
            written
        })
    };
    let o = Command::new(binary())
        .args(["--inspect"])
        .arg(&fifo)
        .env("OSBUILD_RS_MAX_MANIFEST_SIZE", "1000000")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("larger than the limit of 1000000 bytes"));
    let written = feeder.join().unwrap();
    assert!(written < 10_000_000, "read {written} bytes of an endless manifest");

    let mut child = Command::new(binary())
        .args(["--inspect", "-"])
        .env("OSBUILD_RS_MAX_MANIFEST_SIZE", "1000000")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let chunk = vec![b' '; 1 << 16];
    while stdin.write_all(&chunk).is_ok() {}
    let (status, _) = wait_within(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(2));
}

#[test]
fn numbers_out_of_range_are_refused_without_panic() {
    let env = Env::new();
    let m = env.write_manifest(
        "noop.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/x")]}]}),
    );
    for value in ["18446744073709551615", "4294967296", "99999999999999999999999", "-1", "1.5", "soon"] {
        let o = command(&env, &m, &[&format!("--stage-timeout={value}"), "--export", "tree"]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{value}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{value}: {}", text(&o));
        assert!(text(&o).contains("--stage-timeout"), "{}", text(&o));
    }
    // The largest accepted timeout runs a build (no overflow in the deadline arithmetic).
    ok(&command(&env, &m, &["--stage-timeout", "4294967295", "--export", "tree"]).output().unwrap());
    for (name, value) in [
        ("OSBUILD_RS_DOWNLOAD_TIMEOUT", "18446744073709551616"),
        ("OSBUILD_RS_DOWNLOAD_STALL_TIME", "0"),
        ("OSBUILD_RS_FILE_URL_DIRS", "relative/dir"),
        ("OSBUILD_RS_MAX_MANIFEST_SIZE", "-5"),
    ] {
        let o = command(&env, &m, &["--export", "tree"]).env(name, value).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{name}={value}: {}", text(&o));
        assert!(text(&o).contains(&format!("invalid {name}={value}")), "{}", text(&o));
        assert!(!text(&o).contains("panicked"), "{}", text(&o));
    }
}

#[test]
fn source_epochs_out_of_range_are_refused_naming_the_path() {
    let env = Env::new();
    for epoch in ["1e23", "100000000000000000000000", "-1", "9223372036854775808", "1.5"] {
        let doc = format!(
            r#"{{"version": "2", "pipelines": [{{"name": "tree", "source-epoch": {epoch}, "stages": [{{"type": "org.osbuild.noop"}}]}}]}}"#
        );
        let path = env.path("epoch.json");
        std::fs::write(&path, doc).unwrap();
        let o = command(&env, &path, &["--export", "tree"]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{epoch}: {}", text(&o));
        assert!(text(&o).contains("pipelines[0].source-epoch"), "{epoch}: {}", text(&o));
        assert!(env.objects().is_empty());
    }
}

#[test]
fn names_that_are_not_plain_never_reach_the_output_directory() {
    let env = Env::new();
    std::fs::create_dir_all(env.out()).unwrap();
    // Where `../escape` and an absolute name would be exported to.
    let victim_dir = env.path("escape");
    let abs = env.path("abs-victim");
    for name in ["../escape".to_string(), abs.display().to_string(), "/".into(), "a/b".into(), "..".into(), "".into()] {
        let m = env.write_manifest(
            "names.json",
            &json!({"version": "2", "pipelines": [{"name": name, "stages": [mkdir("/x")]}]}),
        );
        let o = command(&env, &m, &["--export", &name]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{name:?}: {}", text(&o));
        assert!(text(&o).contains("pipelines[0].name"), "{name:?}: {}", text(&o));
    }
    let m = env
        .write_manifest("ok.json", &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/x")]}]}));
    for export in ["../escape", "/", "tree/../../escape"] {
        let o = command(&env, &m, &["--export", export]).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{export}: {}", text(&o));
        assert!(text(&o).contains("is not a plain name"), "{}", text(&o));
    }
    assert!(!victim_dir.exists() && !abs.exists(), "something was exported outside the output directory");
    assert!(env.objects().is_empty(), "refused manifests must not build");
}

#[test]
fn errors_reach_the_user_with_their_errno() {
    let env = Env::new();
    let m = env.write_manifest(
        "noop.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/x")]}]}),
    );
    let o = Command::new(binary())
        .args(["--store", "/dev/null/store", "--output-directory"])
        .arg(env.out())
        .args(["--export", "tree"])
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/dev/null/store") && err.contains("Not a directory (os error 20)"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// A stage that never ends: stopped by SIGHUP, and seen from the host while it runs

/// Starts a build whose `org.osbuild.users` stage runs a fake `useradd` that sleeps (in a
/// build root of busybox), with `envs` set; waits until it sleeps. The build, the pid of the
/// sleeping process and its marker.
fn build_stuck_in_a_stage(env: &Env, envs: &[(&str, &str)]) -> (Child, u32, String) {
    // Unique to this test process and call; longer than any other suite's marker.
    let marker = format!("sleep {}{:07}", 3 + envs.len(), std::process::id());
    let script = format!("#!/bin/sh\necho stage-started\n{marker}\n");
    let (build, mut items) = foreign_build_root_pipeline(env, &[("useradd", &script)]);
    let mut stages = etc_passwd_stages(env, &mut items);
    stages.push(json!({"type": "org.osbuild.users", "options": {"users": {"test": {}}}}));
    let m = env.write_manifest(
        "sleepy.json",
        &json!({"version": "2",
            "sources": {"org.osbuild.curl": {"items": items}},
            "pipelines": [build, {"name": "tree", "build": "name:build", "stages": stages}]}),
    );
    let mut cmd = command(env, &m, &["--export", "tree"]);
    cmd.envs(envs.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(line) = processes_with(&marker).first() {
            let pid = line.split(':').next().unwrap().parse().unwrap();
            return (child, pid, marker);
        }
        assert!(Instant::now() < deadline, "the stage never started");
        if let Some(st) = child.try_wait().unwrap() {
            let mut e = String::new();
            child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            panic!("the build ended before the stage slept: {st}: {e}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The capabilities a running process has: effective, permitted or ambient (bubblewrap keeps
/// the stage's set in all three, with no_new_privs, so exec cannot widen it).
fn capabilities(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mask = |field: &str| {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        u64::from_str_radix(line[field.len()..].trim(), 16).unwrap()
    };
    mask("CapEff:") | mask("CapPrm:") | mask("CapAmb:")
}

const CAP_SYS_ADMIN: u64 = 1 << 21;
const CAP_MKNOD: u64 = 1 << 27;

#[test]
fn sighup_mid_stage_stops_the_build_and_removes_work_directories() {
    let env = Env::new();
    let (mut child, pid, marker) = build_stuck_in_a_stage(&env, &[]);
    // Upstream's default set: every stage may mount and make device nodes.
    assert_eq!(capabilities(pid) & (CAP_SYS_ADMIN | CAP_MKNOD), CAP_SYS_ADMIN | CAP_MKNOD);
    assert!(!env.tmp_entries().is_empty(), "the test no longer sees work directories");
    Command::new("kill").arg("-HUP").arg(child.id().to_string()).status().unwrap();
    let (status, took) = wait_within(&mut child, Duration::from_secs(3));
    eprintln!("SIGHUP mid-stage: exited with {status} after {took:?}");
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(200));
    assert!(processes_with(&marker).is_empty(), "stage processes left: {:?}", processes_with(&marker));
    assert!(env.tmp_entries().is_empty(), "work directories left: {:?}", env.tmp_entries());
    assert!(env.mounts().is_empty(), "mounts left: {:?}", env.mounts());
}

#[test]
fn stages_can_run_without_cap_sys_admin_and_cap_mknod() {
    let env = Env::new();
    let drop = [("OSBUILD_RS_DROP_CAPABILITIES", "CAP_SYS_ADMIN,mknod")];
    let (mut child, pid, _) = build_stuck_in_a_stage(&env, &drop);
    let caps = capabilities(pid);
    assert_eq!(caps & (CAP_SYS_ADMIN | CAP_MKNOD), 0, "capabilities {caps:x}");
    assert_ne!(caps & 1, 0, "CAP_CHOWN stays");
    child.kill().unwrap();
    child.wait().unwrap();
    // An unknown name is refused before anything runs.
    let m = env.write_manifest(
        "noop.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/x")]}]}),
    );
    let o = command(&env, &m, &["--export", "tree"]).env("OSBUILD_RS_DROP_CAPABILITIES", "CAP_NOPE").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("invalid OSBUILD_RS_DROP_CAPABILITIES: unknown capability CAP_NOPE"), "{}", text(&o));
}

#[test]
fn a_compressed_inline_item_is_streamed_not_held_in_memory() {
    let env = Env::new();
    // 512 MiB of zeros in a few hundred kilobytes of xz.
    let xz = Command::new("sh")
        .args(["-c", "head -c 536870912 /dev/zero | xz -9 --format=xz"])
        .output()
        .expect("xz is needed (xz-utils)");
    assert!(xz.status.success() && xz.stdout.len() < 1 << 20, "{} bytes", xz.stdout.len());
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(&xz.stdout);
    let wrong = sha256(b"not the zeros");
    let m = env.write_manifest(
        "bomb.json",
        &json!({"version": "2",
        "sources": {"org.osbuild.inline": {"items": {&wrong: {"encoding": "lzma+base64", "data": data}}}},
        "pipelines": [{"name": "tree", "stages": [
            {"type": "org.osbuild.copy",
             "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [&wrong]}},
             "options": {"paths": [{"from": format!("input://f/{wrong}"), "to": "tree:///f"}]}}
        ]}]}),
    );
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "maxrss-kb=%M"]).arg(binary());
    cmd.arg("--store").arg(env.store()).arg("--output-directory").arg(env.out());
    let o = cmd.args(["--export", "tree"]).arg(&m).stdin(Stdio::null()).output().expect("GNU time is needed");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("checksum mismatch for inline item {wrong}")), "{err}");
    let rss_kb: u64 = err.split("maxrss-kb=").nth(1).and_then(|s| s.trim().parse().ok()).expect("max RSS");
    eprintln!("peak memory decoding 512 MiB: {} MiB", rss_kb / 1024);
    assert!(rss_kb < 200 * 1024, "held in memory: peak {} MiB", rss_kb / 1024);
    assert!(staging_entries(&env).is_empty());
}
