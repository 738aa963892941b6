//! Host-side helper processes (curl, ostree, cp): tied to the build, bounded in time, and
//! never left behind.
//!
//! A helper runs in its own process group, registered for signal forwarding, with
//! `PR_SET_PDEATHSIG(SIGKILL)` (see [`osbuild_sys::tie_to_build`]). While it runs the caller
//! waits here, not in a blocking `wait(2)`: a stop signal or a passed deadline kills the whole
//! group, so a hanging server or tool can hold a build only as long as its deadline says.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use osbuild_sys::{interrupted, tie_to_build, Registration};

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
        osbuild_stage_api::tool::last_lines(&self.stderr, lines, None).join("; ")
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
    refuse_after_stop()?;
    run(cmd, input, deadline, true, None)
}

/// [`run_helper`] for a helper whose stdout is data (a decompressor): it goes to `sink` as it
/// arrives, never all in memory (`HelperOutput::stdout` stays empty). An error of `sink` kills
/// the helper and is returned.
pub fn run_helper_into(
    cmd: &mut Command,
    input: Vec<u8>,
    deadline: Option<Instant>,
    sink: &mut dyn Write,
) -> io::Result<HelperOutput> {
    refuse_after_stop()?;
    run(cmd, Some(input), deadline, true, Some(sink))
}

/// [`run_helper`] for the clean-up after a build (`chattr` before removing a tree): tied to the
/// build the same way, but a stop signal does not stop it, since it is what stopping needs.
pub fn run_cleanup_helper(cmd: &mut Command) -> io::Result<HelperOutput> {
    run(cmd, None, None, false, None)
}

fn refuse_after_stop() -> io::Result<()> {
    match interrupted() {
        Some(sig) => Err(io::Error::new(io::ErrorKind::Interrupted, format!("interrupted by signal {sig}"))),
        None => Ok(()),
    }
}

/// Watches a running helper: kills its group once at the deadline or on a stop signal.
struct Watch {
    pgid: i32,
    deadline: Option<Instant>,
    stop_on_signal: bool,
    timed_out: bool,
    stopped: Option<i32>,
}

impl Watch {
    fn check(&mut self) {
        if self.stopped.is_some() || self.timed_out {
            return;
        }
        if let Some(sig) = interrupted().filter(|_| self.stop_on_signal) {
            self.stopped = Some(sig);
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.timed_out = true;
        } else {
            return;
        }
        let _ = kill(Pid::from_raw(-self.pgid), Signal::SIGKILL);
    }

    /// How long to nap at most before the next check.
    fn budget(&self) -> Duration {
        self.deadline.map_or(MAX_NAP, |d| d.saturating_duration_since(Instant::now()).min(MAX_NAP))
    }
}

fn run(
    cmd: &mut Command,
    input: Option<Vec<u8>>,
    deadline: Option<Instant>,
    stop_on_signal: bool,
    sink: Option<&mut dyn Write>,
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
    let mut watch = Watch { pgid, deadline, stop_on_signal, timed_out: false, stopped: None };

    let feeder = match (input, child.stdin.take()) {
        (Some(data), Some(mut stdin)) => Some(std::thread::spawn(move || {
            // A helper that exits early closes the pipe: its status tells why, not EPIPE.
            let _ = stdin.write_all(&data);
        })),
        _ => None,
    };
    let err = child.stderr.take().map(collect);
    let (out, sink_error) = match (sink, child.stdout.take()) {
        (Some(sink), Some(stdout)) => (None, pump(stdout, sink, &mut watch).err()),
        (None, stdout) => (stdout.map(collect), None),
        (Some(_), None) => (None, None),
    };

    let mut nap = Duration::from_micros(200);
    loop {
        match waitid(Id::Pid(Pid::from_raw(pgid)), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(_) => break,
            Err(e) => return Err(e.into()),
        }
        watch.check();
        std::thread::sleep(nap.min(watch.budget()).max(Duration::from_micros(100)));
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
    if let Some(e) = sink_error {
        return Err(e);
    }
    let stdout = out.map(join_output).unwrap_or_default();
    let stderr = err.map(join_output).unwrap_or_default();
    let mut stopped = watch.stopped;
    if stop_on_signal && stopped.is_none() && !status.success() {
        // The forwarded signal may have ended the helper before the loop looked at the flag.
        stopped = interrupted();
    }
    Ok(HelperOutput { status, stdout, stderr, timed_out: watch.timed_out, interrupted: stopped })
}

/// Copies `stdout` into `sink` until the helper closes it, watching the deadline and the stop
/// flag between reads; a failing sink kills the helper.
fn pump(stdout: ChildStdout, sink: &mut dyn Write, watch: &mut Watch) -> io::Result<()> {
    let mut stdout = stdout;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        watch.check();
        let timeout = PollTimeout::try_from(watch.budget()).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        match stdout.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if let Err(e) = sink.write_all(&buf[..n]) {
                    let _ = kill(Pid::from_raw(-watch.pgid), Signal::SIGKILL);
                    return Err(e);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
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
    fn streams_stdout_into_a_sink_and_stops_when_it_fails() {
        let mut got = Vec::new();
        let out =
            run_helper_into(Command::new("sh").args(["-c", "cat; printf tail"]), b"head-".to_vec(), None, &mut got)
                .unwrap();
        assert!(out.success() && out.stdout.is_empty());
        assert_eq!(got, b"head-tail");

        /// Takes 1 MiB, then refuses.
        struct Small(usize);
        impl Write for Small {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0 += buf.len();
                if self.0 > 1 << 20 {
                    return Err(io::Error::other("full"));
                }
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let started = Instant::now();
        let e = run_helper_into(Command::new("cat").arg("/dev/zero"), vec![], None, &mut Small(0)).unwrap_err();
        assert_eq!(e.to_string(), "full");
        assert!(started.elapsed() < Duration::from_secs(5));
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
