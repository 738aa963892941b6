//! Running one bubblewrap sandbox: spawn, stream its output, enforce timeout and interruption.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, Pid};

use super::{sandbox_env, ExitStatusLike, SandboxError, StageOutcome, StageSandbox};
use osbuild_sys::{interrupted, Registration};

/// How often the loop looks at the clock and the interrupt flag while nothing else happens.
const TICK: Duration = Duration::from_millis(100);

/// After killing the sandbox, how long to keep reading what it already wrote.
const DRAIN: Duration = Duration::from_secs(2);

/// Splits a byte stream into lines, hands each to the callback and keeps the whole text.
pub(super) struct Lines<'a> {
    pub(super) on_line: &'a mut dyn FnMut(&str),
    pub(super) partial: Vec<u8>,
    pub(super) output: String,
}

impl Lines<'_> {
    pub(super) fn feed(&mut self, mut data: &[u8]) {
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&data[..nl]);
            self.emit(true);
            data = &data[nl + 1..];
        }
        self.partial.extend_from_slice(data);
    }

    fn emit(&mut self, newline: bool) {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        (self.on_line)(&line);
        self.output.push_str(&line);
        if newline {
            self.output.push('\n');
        }
    }

    pub(super) fn finish(mut self) -> String {
        if !self.partial.is_empty() {
            self.emit(false);
        }
        self.output
    }
}

/// Why the sandbox is being killed, if it is.
#[derive(Default)]
pub(super) struct Stop {
    pub(super) timed_out: bool,
    pub(super) interrupted: Option<i32>,
    pub(super) killed_at: Option<Instant>,
}

impl Stop {
    /// Check the deadline and the interrupt flag; kill the sandbox's process group on the first hit.
    pub(super) fn check(&mut self, pgid: i32, deadline: Option<Instant>) {
        if self.killed_at.is_some() {
            return;
        }
        if let Some(sig) = interrupted() {
            self.interrupted = Some(sig);
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            self.timed_out = true;
        } else {
            return;
        }
        // Killing bubblewrap (the group leader) and its PID-1 helper tears down the PID namespace,
        // which the kernel empties with SIGKILL: nothing started inside survives.
        let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
        self.killed_at = Some(Instant::now());
    }

    /// Time to wait before the next check.
    pub(super) fn wait_budget(&self, deadline: Option<Instant>) -> Duration {
        let now = Instant::now();
        match (self.killed_at, deadline) {
            (Some(_), _) | (None, None) => TICK,
            (None, Some(d)) => d.saturating_duration_since(now).min(TICK),
        }
    }

    fn drain_over(&self) -> bool {
        self.killed_at.is_some_and(|t| t.elapsed() >= DRAIN)
    }
}

pub(crate) fn run(
    sb: &StageSandbox,
    argv: Vec<String>,
    on_line: &mut dyn FnMut(&str),
) -> Result<StageOutcome, SandboxError> {
    if let Some(signal) = interrupted() {
        return Err(SandboxError::Interrupted { signal });
    }
    let started = Instant::now();
    // A timeout past what the clock can hold (`--stage-timeout 18446744073709551615`) is none.
    let deadline = sb.timeout.and_then(|t| started.checked_add(t));

    let (reader, writer) = pipe2(OFlag::O_CLOEXEC).map_err(|source| SandboxError::Pipe { source: source.into() })?;
    let writer2 = writer.try_clone().map_err(|source| SandboxError::Pipe { source })?;
    let mut child = spawn_bwrap(&argv, &sb.env, Stdio::null(), Stdio::from(writer), Stdio::from(writer2))?;
    let pgid = child.id() as i32;
    let registration = Registration::new(pgid);

    let mut stop = Stop::default();
    let mut lines = Lines { on_line, partial: Vec::new(), output: String::new() };
    let mut reader = File::from(reader);
    let mut buf = vec![0u8; 32 * 1024];
    let result = (|| {
        // Read until every writer is gone (the whole sandbox has exited) ...
        loop {
            stop.check(pgid, deadline);
            if stop.drain_over() {
                break;
            }
            let timeout = PollTimeout::try_from(stop.wait_budget(deadline)).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(source) => return Err(SandboxError::Read { source: source.into() }),
            }
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => lines.feed(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => return Err(SandboxError::Read { source }),
            }
        }
        // ... then until bubblewrap itself has exited (a stage may close its output early).
        // It usually exits right after its output closes: poll quickly first, then back off,
        // since a fixed 10 ms nap here was most of the cost of a trivial stage.
        let mut nap = Duration::from_micros(100);
        loop {
            match waitid(
                Id::Pid(Pid::from_raw(pgid)),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
            ) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                Ok(_) => return Ok(()),
                Err(source) => return Err(SandboxError::Wait { source: source.into() }),
            }
            stop.check(pgid, deadline);
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    })();
    if result.is_err() || stop.drain_over() {
        let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
    }
    // Unregister before reaping, so a signal can never be forwarded to a recycled process group.
    drop(registration);
    let status = reap(&mut child)?;
    result?;
    // The forwarded signal may have ended the sandbox before the loop looked at the flag.
    if stop.interrupted.is_none() {
        stop.interrupted = interrupted();
    }
    Ok(StageOutcome { status, output: lines.finish(), timed_out: stop.timed_out, interrupted: stop.interrupted })
}

/// Start bubblewrap with `argv` and the sandbox environment, as the leader of its own process
/// group (what a stop signal is forwarded to).
pub(super) fn spawn_bwrap(
    argv: &[String],
    env: &[(String, String)],
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<Child, SandboxError> {
    let mut cmd = Command::new(find_program(&argv[0])?);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(sandbox_env(env))
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        // No `current_dir`: bubblewrap's `--chdir /` sets the stage's, and without one the
        // standard library can spawn with posix_spawn (vfork) instead of copying our address
        // space with fork, whose page faults were a tenth of a trivial stage's host-side cost.
        .process_group(0);
    let spawned = cmd.spawn();
    // The command holds pipe write ends; drop it so we see end-of-file when the sandbox is gone.
    drop(cmd);
    spawned.map_err(|source| match source.kind() {
        ErrorKind::NotFound => SandboxError::BwrapNotFound,
        _ => SandboxError::Spawn { source },
    })
}

pub(super) fn reap(child: &mut Child) -> Result<ExitStatusLike, SandboxError> {
    let status = child.wait().map_err(|source| SandboxError::Wait { source })?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatusLike::Code(code),
        (None, Some(sig)) => ExitStatusLike::Signal(sig),
        (None, None) => ExitStatusLike::Code(-1),
    })
}

/// Run bubblewrap on the caller's terminal and wait for it.
pub(crate) fn run_interactive(argv: Vec<String>, env: &[(String, String)]) -> Result<ExitStatusLike, SandboxError> {
    let mut child = Command::new(find_program(&argv[0])?)
        .args(&argv[1..])
        .env_clear()
        .envs(sandbox_env(env))
        .current_dir("/")
        .spawn()
        .map_err(|source| match source.kind() {
            ErrorKind::NotFound => SandboxError::BwrapNotFound,
            _ => SandboxError::Spawn { source },
        })?;
    reap(&mut child)
}

/// `bwrap` looked up in our own `PATH` (the child's `PATH` is the sandbox's).
pub(super) fn find_program(name: &str) -> Result<PathBuf, SandboxError> {
    if name.contains('/') {
        return Ok(name.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()).ok_or(SandboxError::BwrapNotFound)
}
