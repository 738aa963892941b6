//! Privileged integration tests of the stage sandbox. They need root and bubblewrap
//! (`apt-get install -y bubblewrap busybox-static` on Debian) and fail loudly without them.
//!
//! Two tests re-run this test binary as a helper process (`helper_*`, doing nothing unless
//! `HELPER_ENV` names them), because they change process-wide state: the mount namespace and the
//! signal handlers / interrupt flag.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use osbuild_rs::sandbox::{
    self, capability_mask, host_bounding_set, parse_status_mask, ExitStatusLike, StageOutcome, StageSandbox,
    DEFAULT_CAPABILITIES,
};

const EXE: &str = env!("CARGO_BIN_EXE_osbuild-rs");
const HELPER_ENV: &str = "OSBUILD_RS_SANDBOX_TEST_HELPER";
const HELPER_DIR_ENV: &str = "OSBUILD_RS_SANDBOX_TEST_DIR";

/// A sandbox over fresh tree/api/meta paths in a temporary directory.
fn fixture(argv: &[&str]) -> (tempfile::TempDir, StageSandbox) {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let api = tmp.path().join("api");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::create_dir_all(&api).unwrap();
    std::fs::write(api.join("arguments"), r#"{"tree": "/run/osbuild/tree"}"#).unwrap();
    let meta = tmp.path().join("meta");
    std::fs::write(&meta, "").unwrap();
    let sb = StageSandbox {
        tree,
        api_dir: api,
        meta_file: meta,
        exe: EXE.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    (tmp, sb)
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn run(sb: &StageSandbox) -> (StageOutcome, Vec<String>) {
    let mut lines = Vec::new();
    let outcome = sb.run(&mut |l| lines.push(l.to_owned())).expect("sandbox run failed");
    (outcome, lines)
}

fn run_ok(sb: &StageSandbox) -> StageOutcome {
    let (outcome, _) = run(sb);
    assert!(outcome.success(), "stage failed: {outcome:?}");
    outcome
}

/// Pids of processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

/// Wait up to 1 s for every process with `marker` to be gone; report survivors.
fn assert_no_process_with(marker: &str) {
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < until, "processes survived the sandbox: {left:?} ({marker})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bwrap_is_installed() {
    let out = Command::new("bwrap").arg("--version").output();
    assert!(
        out.as_ref().is_ok_and(|o| o.status.success()),
        "bubblewrap is required: apt-get install -y bubblewrap ({out:?})"
    );
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()),
        0,
        "the sandbox integration tests must run as root"
    );
}

#[test]
fn tree_build_root_with_only_static_tools() {
    let busybox = Path::new("/usr/bin/busybox");
    assert!(busybox.exists(), "busybox is required: apt-get install -y busybox-static");
    let (tmp, mut sb) = fixture(&[]);
    let root = tmp.path().join("buildroot");
    let bin = root.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    std::fs::copy(EXE, bin.join("osbuild-rs")).unwrap();
    for applet in ["sh", "echo", "ls", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();

    sb.build_root = Some(root);
    sb.argv = sh("echo hello from the build root > /run/osbuild/tree/hello; \
         ls / > /run/osbuild/tree/rootdir; \
         /run/osbuild/bin/osbuild-rs --version > /run/osbuild/tree/version; \
         osbuild-rs --version >> /run/osbuild/tree/version");
    run_ok(&sb);

    let read = |name: &str| std::fs::read_to_string(sb.tree.join(name)).unwrap();
    assert_eq!(read("hello"), "hello from the build root\n");
    let rootdir: Vec<String> = read("rootdir").lines().map(str::to_owned).collect();
    assert_eq!(rootdir, ["bin", "dev", "lib", "lib64", "proc", "run", "sbin", "sys", "tmp", "usr", "var"]);
    let version = read("version");
    assert_eq!(version.lines().count(), 2, "{version}");
    assert!(version.lines().all(|l| l.contains("191")), "{version}");
}

#[test]
fn empty_build_root_runs_the_static_binary() {
    let (tmp, mut sb) = fixture(&["/run/osbuild/bin/osbuild-rs", "--version"]);
    let root = tmp.path().join("empty-root");
    std::fs::create_dir_all(root.join("usr")).unwrap();
    sb.build_root = Some(root);
    let (outcome, lines) = run(&sb);
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("191"), "{lines:?}");
}

#[test]
fn stage_abi_paths() {
    let (_tmp, mut sb) = fixture(&[]);
    sb.argv = sh("echo '{\"ok\": true}' > /run/osbuild/meta; \
         cat /run/osbuild/api/arguments; echo; \
         touch /run/osbuild/api/x 2>/dev/null && echo api-writable || echo api-read-only; \
         touch /usr/x 2>/dev/null && echo usr-writable || echo usr-read-only; \
         touch /tmp/x /var/tmp/x /run/x /var/x && echo scratch-writable; \
         echo \"$PATH|$LC_ALL|$container|$FOO|$HOME\"; pwd; cat /proc/cmdline");
    sb.env = vec![("FOO".into(), "bar".into())];
    let (outcome, lines) = run(&sb);
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(
        lines,
        [
            r#"{"tree": "/run/osbuild/tree"}"#,
            "api-read-only",
            "usr-read-only",
            "scratch-writable",
            "/usr/sbin:/usr/bin:/sbin:/bin|C.UTF-8|bwrap-osbuild|bar|",
            "/",
            "root=/dev/osbuild",
        ]
    );
    assert_eq!(std::fs::read_to_string(&sb.meta_file).unwrap(), "{\"ok\": true}\n");
    assert!(!sb.api_dir.join("x").exists());
}

#[test]
fn output_is_streamed_line_by_line() {
    let (_tmp, sb) = fixture(&["/bin/sh", "-c", "echo one; echo two >&2; sleep 1; printf three"]);
    let start = Instant::now();
    let mut seen: Vec<(String, Duration)> = Vec::new();
    let outcome = sb.run(&mut |l| seen.push((l.to_owned(), start.elapsed()))).unwrap();
    let finished = start.elapsed();
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.output, "one\ntwo\nthree");
    let lines: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(lines, ["one", "two", "three"]);
    // "one" arrived while the stage was still sleeping, not when it ended.
    assert!(finished - seen[0].1 >= Duration::from_millis(700), "{seen:?} finished at {finished:?}");
}

#[test]
fn interactive_run_reports_the_exit_status() {
    let (_tmp, sb) = fixture(&["/run/osbuild/bin/osbuild-rs", "__stage", "org.osbuild.noop"]);
    let status = sb.run_interactive(&sh("test -e /run/osbuild/api/arguments && exit 4")).unwrap();
    assert_eq!(status, ExitStatusLike::Code(4));
}

#[test]
fn nonzero_exit_is_reported() {
    let (_tmp, sb) = fixture(&["/bin/sh", "-c", "echo failing; exit 3"]);
    let (outcome, lines) = run(&sb);
    assert_eq!(outcome.status, ExitStatusLike::Code(3));
    assert!(!outcome.success() && !outcome.timed_out && outcome.interrupted.is_none());
    assert_eq!(lines, ["failing"]);
}

#[test]
fn timeout_kills_the_whole_sandbox() {
    let marker = "60.0613";
    let (_tmp, mut sb) = fixture(&["/bin/sh", "-c", &format!("echo started; sleep {marker}; echo not reached")]);
    sb.timeout = Some(Duration::from_secs(1));
    let start = Instant::now();
    let (outcome, lines) = run(&sb);
    let elapsed = start.elapsed();
    assert!(outcome.timed_out, "{outcome:?}");
    assert!(!outcome.success());
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(elapsed >= Duration::from_secs(1), "took {elapsed:?}");
    assert_eq!(lines, ["started"]);
    assert_no_process_with(marker);
}

/// issue 11: `--stage-timeout 18446744073709551615` panicked adding the timeout to the clock.
#[test]
fn a_timeout_beyond_the_clock_is_no_timeout() {
    let (_tmp, mut sb) = fixture(&["/bin/sh", "-c", "echo done"]);
    sb.timeout = Some(Duration::from_secs(u64::MAX));
    let (outcome, lines) = run(&sb);
    assert!(outcome.success() && !outcome.timed_out, "{outcome:?}");
    assert_eq!(lines, ["done"]);
}

#[test]
fn background_children_do_not_survive() {
    let marker = "60.0719";
    let (_tmp, sb) = fixture(&[
        "/bin/sh",
        "-c",
        &format!("sleep {marker} & sleep {marker} </dev/null >/dev/null 2>&1 & echo forked"),
    ]);
    let start = Instant::now();
    let (outcome, lines) = run(&sb);
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(lines, ["forked"]);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_no_process_with(marker);
}

#[test]
fn network_is_unavailable() {
    let (_tmp, sb) = fixture(&["/bin/sh", "-c", "readlink /proc/self/ns/net; cat /proc/net/dev"]);
    let (outcome, lines) = run(&sb);
    assert!(outcome.success(), "{outcome:?}");
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(lines[0], host_ns.to_string_lossy(), "sandbox shares the host network namespace");
    let interfaces: Vec<&str> = lines[1..].iter().filter_map(|l| l.split_once(':')).map(|(i, _)| i.trim()).collect();
    assert_eq!(interfaces, ["lo"]);
}

#[test]
fn capabilities_are_dropped_to_the_default_set() {
    let (_tmp, mut sb) = fixture(&["/bin/sh", "-c", "cat /proc/self/status"]);
    let bounding = host_bounding_set().unwrap();
    let effective = |sb: &StageSandbox| {
        let (outcome, _) = run(sb);
        assert!(outcome.success(), "{outcome:?}");
        parse_status_mask(&outcome.output, "CapEff").expect("no CapEff line")
    };
    let default = capability_mask(DEFAULT_CAPABILITIES).unwrap();
    assert_eq!(effective(&sb), default & bounding);
    assert_eq!(sb.effective_capabilities().unwrap().len() as u32, (default & bounding).count_ones());

    sb.capabilities = vec!["CAP_NET_ADMIN".into()];
    let net_admin = capability_mask(&["CAP_NET_ADMIN"]).unwrap();
    assert_eq!(effective(&sb), (default | net_admin) & bounding);

    sb.capabilities = vec!["CAP_NOT_A_CAPABILITY".into()];
    let err = sb.run(&mut |_| {}).unwrap_err();
    assert_eq!(err.to_string(), "unknown capability CAP_NOT_A_CAPABILITY");
}

#[test]
fn only_requested_devices_are_exposed() {
    let dev = PathBuf::from("/dev/loop-control");
    assert!(dev.exists(), "this test needs {}", dev.display());
    let script = "test -c /dev/loop-control && echo loop-control; test -e /dev/loop0 && echo loop0; test -c /dev/null && echo null";
    let (_tmp, mut sb) = fixture(&["/bin/sh", "-c", script]);
    sb.devices = vec![dev];
    let (outcome, lines) = run(&sb);
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(lines, ["loop-control", "null"]);
}

#[test]
fn binds_are_applied_read_only_or_writable() {
    let (tmp, mut sb) = fixture(&[]);
    let input = tmp.path().join("input");
    let mounts = tmp.path().join("mounts");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&mounts).unwrap();
    std::fs::write(input.join("file"), "input data\n").unwrap();
    sb.binds = vec![
        sandbox::Bind { src: input, dest: "/run/osbuild/inputs/tree".into(), writable: false },
        sandbox::Bind { src: mounts.clone(), dest: "/run/osbuild/mounts".into(), writable: true },
    ];
    sb.argv = sh("cat /run/osbuild/inputs/tree/file; \
         touch /run/osbuild/inputs/tree/x 2>/dev/null && echo input-writable || echo input-read-only; \
         touch /run/osbuild/mounts/x && echo mounts-writable");
    let (outcome, lines) = run(&sb);
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(lines, ["input data", "input-read-only", "mounts-writable"]);
    assert!(mounts.join("x").exists());
}

/// Start this test binary as a helper running only `name`.
fn spawn_helper(name: &str, dir: &Path) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(HELPER_ENV, name)
        .env(HELPER_DIR_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// Read helper lines until one contains `prefix` (libtest may print its own text before it on the
/// same line); return what follows it.
fn expect_line(stdout: &mut BufReader<ChildStdout>, prefix: &str) -> String {
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("helper ended before printing {prefix:?}; it printed {seen:?}");
        }
        if let Some(at) = line.find(prefix) {
            return line[at + prefix.len()..].trim_end().to_owned();
        }
        seen.push(line);
    }
}

fn is_helper(name: &str) -> bool {
    std::env::var(HELPER_ENV).is_ok_and(|v| v == name)
}

fn helper_dir() -> PathBuf {
    std::env::var_os(HELPER_DIR_ENV).unwrap().into()
}

fn mountinfo_mentions(path: &str, dir: &Path) -> bool {
    std::fs::read_to_string(path).unwrap().contains(&*dir.to_string_lossy())
}

#[test]
fn helper_private_mount_namespace() {
    if !is_helper("helper_private_mount_namespace") {
        return;
    }
    let dir = helper_dir();
    let (src, dest) = (dir.join("src"), dir.join("dest"));
    sandbox::enter_private_mount_namespace().unwrap();
    sandbox::bind_mount(&src, &dest, false).unwrap();
    // This thread is in the new namespace; /proc/self would show the main thread's.
    assert!(mountinfo_mentions("/proc/thread-self/mountinfo", &dest));
    assert!(dest.join("marker").exists());
    println!("MOUNTED");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    sandbox::unmount(&dest, false).unwrap();
    assert!(!dest.join("marker").exists());
    println!("UNMOUNTED");
}

#[test]
fn private_mount_namespace_hides_mounts_from_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dest) = (tmp.path().join("src"), tmp.path().join("dest"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(src.join("marker"), "").unwrap();

    for kill_it in [false, true] {
        let (mut child, mut stdout) = spawn_helper("helper_private_mount_namespace", tmp.path());
        expect_line(&mut stdout, "MOUNTED");
        for mountinfo in ["/proc/self/mountinfo", "/proc/1/mountinfo"] {
            assert!(!mountinfo_mentions(mountinfo, &dest), "bind mount leaked into {mountinfo}");
        }
        assert!(!dest.join("marker").exists(), "bind mount visible on the host");
        if kill_it {
            child.kill().unwrap();
            child.wait().unwrap();
        } else {
            child.stdin.take().unwrap().write_all(b"go\n").unwrap();
            expect_line(&mut stdout, "UNMOUNTED");
            assert!(child.wait().unwrap().success());
        }
        assert!(!mountinfo_mentions("/proc/self/mountinfo", &dest));
    }
}

#[test]
fn helper_interrupt() {
    if !is_helper("helper_interrupt") {
        return;
    }
    sandbox::install_signal_handlers().unwrap();
    let (_tmp, sb) = fixture(&["/bin/sh", "-c", "echo ready; sleep 60.0827; echo not reached"]);
    let outcome = sb
        .run(&mut |line| {
            println!("LINE {line}");
            std::io::stdout().flush().unwrap();
        })
        .unwrap();
    println!("OUTCOME {:?} {}", outcome.interrupted, outcome.status);
    assert_eq!(sandbox::interrupted(), Some(libc::SIGTERM));
    assert_eq!(outcome.interrupted, Some(libc::SIGTERM));
    assert!(!outcome.timed_out && !outcome.success());
    let again = sb.run(&mut |_| {}).unwrap_err();
    assert_eq!(again.to_string(), "interrupted by signal 15 before the stage started");
    println!("REFUSED");
    std::io::stdout().flush().unwrap();
    // The parent now sends a second SIGTERM, which must kill us.
    std::thread::sleep(Duration::from_secs(30));
    println!("SURVIVED A SECOND SIGNAL");
}

#[test]
fn sigterm_stops_the_running_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, mut stdout) = spawn_helper("helper_interrupt", tmp.path());
    expect_line(&mut stdout, "LINE ready");
    let start = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let outcome = expect_line(&mut stdout, "OUTCOME ");
    let elapsed = start.elapsed();
    assert!(outcome.starts_with("Some(15)"), "{outcome}");
    assert!(elapsed < Duration::from_secs(2), "stopping took {elapsed:?}");
    expect_line(&mut stdout, "REFUSED");
    assert_no_process_with("60.0827");

    // A second signal is not caught: it kills the process.
    let start = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGTERM), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}
