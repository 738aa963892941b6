//! Namespaces of its own for each stage that runs in a shared sandbox (osbuild-rs's stage
//! sessions): consecutive stages of a pipeline that need the same sandbox share one bubblewrap,
//! and each runs in a process tree that cannot leave anything behind for the next one.
//!
//! [`run_isolated`] forks three times:
//!
//! 1. a keeper, which unshares mount, UTS, IPC and PID namespaces, makes `/` recursively private
//!    and mounts fresh tmpfs on `/tmp` and `/var` (with `/var/tmp`), as bubblewrap gives each
//!    sandbox; mounts the stage makes die with this mount namespace;
//! 2. the new PID namespace's init, which reaps orphans as bubblewrap's init does and, once the
//!    stage has exited, exits itself: the kernel then kills whatever the stage left running and
//!    waits for it to die before the init's exit is complete;
//! 3. the stage (PID 2, as a bubblewrap command is), in a session of its own, with stdin from
//!    `/dev/null` and stdout joined to stderr.
//!
//! By the time [`run_isolated`] returns, every process of the stage is gone, so all it wrote is
//! already in its output pipe.

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::SysError;

/// Exit code of a keeper or init that could not set the stage up (bubblewrap uses 1 for its own
/// failures too; the message on stderr tells them apart).
const SETUP_FAILED: i32 = 1;

/// Run `stage` as described in the module documentation and return its exit code, or 128+N when
/// a signal N killed it (as bubblewrap reports it). Only for a single-threaded process (the
/// session supervisor): forking a process with other threads could copy a lock another thread
/// holds. That is checked, and refused with `EDEADLK`.
pub fn run_isolated(stage: impl FnOnce() -> i32) -> Result<i32, SysError> {
    let fail = |what: &'static str| move |source| SysError::Isolate { what, source };
    if thread_count().map_err(fail("count the threads of the stage supervisor"))? != 1 {
        return Err(SysError::Isolate { what: "fork a stage from a multi-threaded process", source: Errno::EDEADLK });
    }
    // SAFETY: the process has exactly one thread (checked above), so the child's copy of memory
    // holds no lock another thread was in the middle of; the child either runs `keeper` and
    // leaves through `_exit`, never returning into the caller's frames.
    #[allow(unsafe_code)]
    match unsafe { fork() }.map_err(fail("fork the stage keeper"))? {
        ForkResult::Parent { child } => wait_code(child).map_err(fail("wait for the stage keeper")),
        ForkResult::Child => exit_now(keeper(stage)),
    }
}

fn keeper(stage: impl FnOnce() -> i32) -> i32 {
    if let Err(e) = enter_namespaces() {
        eprintln!("osbuild-rs: cannot give the stage namespaces of its own: {}", crate::error_chain(&e));
        return SETUP_FAILED;
    }
    // SAFETY: the keeper is single-threaded (a fork of a single-threaded process).
    #[allow(unsafe_code)]
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => wait_code(child).unwrap_or(SETUP_FAILED),
        Ok(ForkResult::Child) => exit_now(init(stage)),
        Err(e) => {
            eprintln!("osbuild-rs: cannot start the stage's PID namespace: {e}");
            SETUP_FAILED
        }
    }
}

fn enter_namespaces() -> Result<(), SysError> {
    let flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID;
    unshare(flags).map_err(|source| SysError::Unshare { source })?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|source| SysError::MakePrivate { source })?;
    for dir in ["/tmp", "/var"] {
        mount_scratch(Path::new(dir))?;
    }
    std::fs::create_dir("/var/tmp").map_err(|e| SysError::Isolate {
        what: "create /var/tmp for the stage",
        source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })
}

/// A fresh tmpfs as bubblewrap's `--tmpfs` makes it.
fn mount_scratch(target: &Path) -> Result<(), SysError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some("mode=0755")).map_err(|source| SysError::MountFs {
        source_desc: "tmpfs".into(),
        fstype: "tmpfs".into(),
        target: target.to_owned(),
        source,
    })
}

/// PID 1 of the stage's namespace: start the stage, reap every child until the stage is gone.
fn init(stage: impl FnOnce() -> i32) -> i32 {
    // SAFETY: single-threaded, as above.
    #[allow(unsafe_code)]
    let child = match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => child,
        Ok(ForkResult::Child) => {
            let code = match prepare_stage_process() {
                Ok(()) => stage(),
                Err(e) => {
                    eprintln!("osbuild-rs: cannot prepare the stage process: {e}");
                    SETUP_FAILED
                }
            };
            // `exit`, not `_exit`: the stage's buffered standard output must be flushed.
            std::process::exit(code)
        }
        Err(e) => {
            eprintln!("osbuild-rs: cannot start the stage: {e}");
            return SETUP_FAILED;
        }
    };
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => return 128 + sig as i32,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return SETUP_FAILED,
        }
    }
}

fn prepare_stage_process() -> Result<(), Errno> {
    nix::unistd::setsid()?;
    let null = open(c"/dev/null", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(std::io::stderr())?;
    Ok(())
}

/// Leave a forked helper at once: no atexit handlers, no flushing of buffers it copied from
/// the supervisor (whose own output is the supervisor's to write).
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes no locks and touches no memory; it ends the process.
    #[allow(unsafe_code)]
    unsafe {
        libc::_exit(code)
    }
}

/// Wait for `child` and give its exit code, 128+N for a signal N.
fn wait_code(child: Pid) -> Result<i32, Errno> {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The number of threads of this process (`/proc/self/stat`, field 20).
fn thread_count() -> Result<usize, Errno> {
    let stat = std::fs::read("/proc/self/stat").map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    let after = stat.iter().rposition(|b| *b == b')').map(|i| &stat[i + 1..]).ok_or(Errno::EINVAL)?;
    let text = String::from_utf8_lossy(after);
    text.split_whitespace().nth(17).and_then(|n| n.parse().ok()).ok_or(Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_sees_this_test_harness() {
        // The test harness runs each test in a thread of its own: at least two.
        assert!(thread_count().unwrap() >= 2);
    }

    #[test]
    fn refuses_a_multi_threaded_process() {
        let e = run_isolated(|| 0).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EDEADLK as i32), "{e}");
    }
}
