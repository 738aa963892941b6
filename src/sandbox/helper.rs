//! Host-side helper processes (curl, ostree, cp): tied to the build, bounded in time, and
//! never left behind.
//!
//! A helper runs in its own process group, registered for signal forwarding, with
//! `PR_SET_PDEATHSIG(SIGKILL)` (see [`super::signals::tie_to_build`]). While it runs the caller
//! waits here, not in a blocking `wait(2)`: a stop signal or a passed deadline kills the whole
//! group, so a hanging server or tool can hold a build only as long as its deadline says.

use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::signals::{interrupted, tie_to_build, Registration};

/// The most of a helper's stdout and of its stderr kept in memory (the end is kept).
const OUTPUT_CAP: usize = 8 << 20;

/// The longest nap between two looks at the helper, the clock and the stop flag.
const MAX_NAP: Duration = Duration::from_millis(50);

/// How a helper ended.
#[derive(Debug)]
pub struct HelperOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Killed because its deadline passed.
    pub timed_out: bool,
    /// Killed because osbuild-rs was asked to stop by this signal.
    pub interrupted: Option<i32>,
}

impl HelperOutput {
    /// Exited 0 on its own.
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out && self.interrupted.is_none()
    }

    /// The last few non-empty lines of stderr, joined by "; ".
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let all: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("; ")
    }

    /// "exit code N" / "killed by signal N" / why we killed it.
    pub fn describe(&self) -> String {
        if let Some(sig) = self.interrupted {
            format!("stopped: osbuild-rs was interrupted by signal {sig}")
        } else if self.timed_out {
            "killed: its deadline passed".to_string()
        } else if let Some(code) = self.status.code() {
            format!("exit code {code}")
        } else {
            format!("killed by signal {}", self.status.signal().unwrap_or(0))
        }
    }
}

/// Run `cmd` as a helper tied to the build: `input` goes to its stdin, stdout and stderr are
/// collected, and it is killed (its whole process group) when `deadline` passes or a stop signal
/// arrives. Refuses to start once a stop signal was received. Call it from the thread that
/// waits (the death signal follows the spawning thread).
pub fn run_helper(cmd: &mut Command, input: Option<Vec<u8>>, deadline: Option<Instant>) -> io::Result<HelperOutput> {
    if let Some(sig) = interrupted() {
        return Err(io::Error::new(io::ErrorKind::Interrupted, format!("interrupted by signal {sig}")));
    }
    run(cmd, input, deadline, true)
}

/// [`run_helper`] for the clean-up after a build (`chattr` before removing a tree): tied to the
/// build the same way, but a stop signal does not stop it, since it is what stopping needs.
pub fn run_cleanup_helper(cmd: &mut Command) -> io::Result<HelperOutput> {
    run(cmd, None, None, false)
}

fn run(
    cmd: &mut Command,
    input: Option<Vec<u8>>,
    deadline: Option<Instant>,
    stop_on_signal: bool,
) -> io::Result<HelperOutput> {
    tie_to_build(cmd);
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    let registration = Registration::new(pgid);
    let mut guard = KillOnDrop(Some(&mut child), pgid);
    let child = guard.0.as_mut().expect("set above");

    let feeder = match (input, child.stdin.take()) {
        (Some(data), Some(mut stdin)) => Some(std::thread::spawn(move || {
            // A helper that exits early closes the pipe: its status tells why, not EPIPE.
            let _ = stdin.write_all(&data);
        })),
        _ => None,
    };
    let out = child.stdout.take().map(collect);
    let err = child.stderr.take().map(collect);

    let mut timed_out = false;
    let mut stopped = None;
    let mut nap = Duration::from_micros(200);
    loop {
        match waitid(Id::Pid(Pid::from_raw(pgid)), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(_) => break,
            Err(e) => return Err(e.into()),
        }
        if stopped.is_none() && !timed_out {
            if let Some(sig) = interrupted().filter(|_| stop_on_signal) {
                stopped = Some(sig);
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out = true;
            }
            if stopped.is_some() || timed_out {
                let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
            }
        }
        let budget = deadline.map_or(MAX_NAP, |d| d.saturating_duration_since(Instant::now()).min(MAX_NAP));
        std::thread::sleep(nap.min(budget).max(Duration::from_micros(100)));
        nap = (nap * 2).min(MAX_NAP);
    }
    // Whatever the helper started in its group goes with it (a grandchild would keep our pipes
    // open and the readers below waiting).
    let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
    // Unregister before reaping, so a signal is never forwarded to a recycled process group.
    drop(registration);
    let status = child.wait()?;
    guard.0 = None;
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = out.map(join_output).unwrap_or_default();
    let stderr = err.map(join_output).unwrap_or_default();
    if stop_on_signal && stopped.is_none() && !status.success() {
        // The forwarded signal may have ended the helper before the loop looked at the flag.
        stopped = interrupted();
    }
    Ok(HelperOutput { status, stdout, stderr, timed_out, interrupted: stopped })
}

/// Kills and reaps the helper's group if the caller returns early (an error, a panic).
struct KillOnDrop<'a>(Option<&'a mut Child>, i32);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            let _ = kill(Pid::from_raw(-self.1), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Reads `r` to its end on a thread, keeping the last [`OUTPUT_CAP`] bytes.
fn collect(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > 2 * OUTPUT_CAP {
                        kept.drain(..kept.len() - OUTPUT_CAP);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if kept.len() > OUTPUT_CAP {
            kept.drain(..kept.len() - OUTPUT_CAP);
        }
        kept
    })
}

fn join_output(h: JoinHandle<Vec<u8>>) -> Vec<u8> {
    h.join().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_output_and_feeds_input() {
        let out = run_helper(Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]), Some(b"in".to_vec()), None)
            .unwrap();
        assert_eq!(out.stdout, b"in");
        assert_eq!(out.stderr_tail(5), "err");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.describe(), "exit code 3");
        assert!(!out.success());
    }

    #[test]
    fn deadline_kills_the_whole_group() {
        let started = Instant::now();
        // The grandchild holds the pipes: without the group kill the readers would wait 30 s.
        let out = run_helper(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30"]),
            None,
            Some(Instant::now() + Duration::from_millis(300)),
        )
        .unwrap();
        assert!(out.timed_out && !out.success());
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        assert_eq!(out.describe(), "killed: its deadline passed");
    }

    #[test]
    fn helpers_lead_their_group_and_die_with_us() {
        let script = "import ctypes, os\n\
            sig = ctypes.c_int(0)\n\
            ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)\n\
            print(sig.value, os.getpgid(0) == os.getpid())";
        let out = run_helper(Command::new("python3").args(["-c", script]), None, None).unwrap();
        assert!(out.success(), "{out:?}");
        // PR_GET_PDEATHSIG (2) gives SIGKILL (9); the helper leads its own process group.
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "9 True");
    }
}
