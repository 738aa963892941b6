//! `run_isolated` on the host, as root: what one stage does to `/tmp`, `/var`, the hostname,
//! mounts and processes is gone when it returns, and the exit code comes back as bubblewrap
//! reports it. A harness of its own (`harness = false`): `run_isolated` forks, which it allows
//! only in a single-threaded process, and the standard harness runs tests in threads.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    if rustix::process::geteuid().as_raw() != 0 {
        panic!("this test needs root (namespaces and mounts)");
    }
    let marker = format!("isolate-test-{}", std::process::id());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();

    // The stage leaves files in its /tmp and /var/tmp, a mount, a new hostname and a process
    // running in the background; the host sees none of it, then or afterwards.
    let started = Instant::now();
    let code = osbuild_sys::run_isolated(|| {
        std::fs::write(format!("/tmp/{marker}"), b"x").unwrap();
        std::fs::write(format!("/var/tmp/{marker}"), b"x").unwrap();
        std::fs::write("/proc/sys/kernel/hostname", &marker).unwrap();
        nix::mount::mount(Some("tmpfs"), "/mnt", Some("tmpfs"), nix::mount::MsFlags::empty(), None::<&str>).unwrap();
        // `exec -a` names the sleeper after the marker so the host can look for it.
        Command::new("bash").args(["-c", &format!("(exec -a {marker} sleep 600 &)")]).status().unwrap();
        assert_eq!(std::process::id(), 2, "the stage is PID 2 of its own namespace");
        7
    })
    .unwrap();
    assert_eq!(code, 7);
    assert!(started.elapsed() < Duration::from_secs(60), "the background sleeper was not waited for");
    assert!(!Path::new(&format!("/tmp/{marker}")).exists(), "the stage's /tmp is the host's");
    assert!(!Path::new(&format!("/var/tmp/{marker}")).exists(), "the stage's /var is the host's");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        hostname,
        "the stage changed the host's name"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.lines().any(|l| l.split(' ').nth(4) == Some("/mnt")), "the stage's mount leaked: {mounts}");
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .filter(|c| c.contains(&marker))
        .collect();
    assert!(left.is_empty(), "processes of the stage survived it: {left:?}");

    // A signal that kills the stage comes back as 128+N, as from bubblewrap.
    let code = osbuild_sys::run_isolated(|| {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM);
        0
    })
    .unwrap();
    assert_eq!(code, 128 + 15);

    // Each stage starts with an empty /tmp, even after one that filled it.
    for round in 0..2 {
        let code = osbuild_sys::run_isolated(|| {
            let seen = std::fs::read_dir("/tmp").unwrap().count() + std::fs::read_dir("/var/tmp").unwrap().count();
            std::fs::write("/tmp/left-behind", b"x").unwrap();
            std::fs::write("/var/tmp/left-behind", b"x").unwrap();
            seen as i32
        })
        .unwrap();
        assert_eq!(code, 0, "round {round}: the stage's /tmp and /var/tmp were not empty");
    }
    println!("isolate: ok");
}
