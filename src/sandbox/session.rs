//! Stage sessions: one bubblewrap sandbox for consecutive stages that need the same one.
//!
//! Starting bubblewrap costs about 10 ms here (namespaces, some 25 mounts, two execs): more than
//! a stage that edits a few files of the tree takes. The sandboxes of two native stages without
//! inputs, devices or mounts, in one pipeline, differ only in the `arguments` the engine writes
//! into the API directory before each. So the engine starts such a sandbox once, with the
//! supervisor `osbuild-rs __stage-session` as its command, and has it run the stages one by one.
//! Each stage still gets what its own bubblewrap would give it: mount, UTS, IPC and PID
//! namespaces of its own, fresh `/tmp` and `/var`, and no process of the stage before it (see
//! [`osbuild_sys::run_isolated`]); what a stage adds to the shared `/run` and `/dev` is removed
//! after it. The network namespace (empty but for loopback) is the one thing stages of a
//! session share.
//!
//! The protocol is a line each way: the engine writes `run <stage name>` to the supervisor's
//! stdin, and the supervisor answers `exit <code>` on its stdout once every process of the stage
//! is gone, so the stage's output, which goes to the sandbox's stderr as it would for one
//! stage, is complete in the pipe by then.

use std::fs::File;
use std::io::{BufRead, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{pipe2, Pid};

use super::run::{reap, spawn_bwrap, Lines, Stop};
use super::{argv, ensure_proc_cmdline, scan_build_root, ExitStatusLike, SandboxError, StageOutcome};
use super::{StageSandbox, EXE_PATH};
use osbuild_sys::{interrupted, Registration};

/// The supervisor's command inside the sandbox.
pub const SESSION_COMMAND: &str = "__stage-session";

/// Set to `0` to give every stage a bubblewrap of its own (to compare, or to rule sessions out).
pub const ENV_STAGE_SESSIONS: &str = "OSBUILD_RS_STAGE_SESSIONS";

/// After the sandbox was killed, how long to keep reading what it already wrote.
const DRAIN: Duration = Duration::from_secs(2);

/// Whether stage sessions are on (they are unless `OSBUILD_RS_STAGE_SESSIONS=0`).
pub fn sessions_enabled() -> bool {
    std::env::var_os(ENV_STAGE_SESSIONS).is_none_or(|v| v != "0")
}

/// A running session sandbox (engine side). Dropping it kills the sandbox.
pub struct StageSession {
    /// The sandbox it was started for; a stage whose sandbox differs needs another session.
    sandbox: StageSandbox,
    child: Child,
    pgid: i32,
    registration: Option<Registration>,
    commands: ChildStdin,
    replies: ChildStdout,
    reply: Vec<u8>,
    output: File,
    /// The sandbox has ended (or was killed): it can run nothing more.
    dead: bool,
}

impl StageSession {
    /// Whether a stage with sandbox `sb` can run in a session at all: a native stage (the
    /// supervisor runs stages compiled into osbuild-rs) with nothing bound but the stage ABI,
    /// and `CAP_SYS_ADMIN` in the sandbox (the supervisor needs it to give each stage its own
    /// namespaces; without it, as with `OSBUILD_RS_DROP_CAPABILITIES=CAP_SYS_ADMIN`, every stage
    /// gets a bubblewrap of its own).
    pub fn can_host(sb: &StageSandbox) -> bool {
        sb.binds.is_empty()
            && sb.devices.is_empty()
            && !sb.upstream_root
            && sb.argv.len() == 3
            && sb.argv[0] == EXE_PATH
            && sb.argv[1] == "__stage"
            && sb.effective_capabilities().is_ok_and(|caps| caps.iter().any(|c| c == "CAP_SYS_ADMIN"))
    }

    /// Run the stage of `sb` in the session held in `slot`, starting one (or replacing one made
    /// for a different sandbox) as needed; `sb` must pass [`StageSession::can_host`]. A session
    /// that ended is removed from `slot`.
    pub fn run_in(
        slot: &mut Option<StageSession>,
        sb: &StageSandbox,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<StageOutcome, SandboxError> {
        if slot.as_ref().is_some_and(|s| !s.hosts(sb)) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(StageSession::start(sb)?);
        }
        let session = slot.as_mut().expect("set above");
        let outcome = session.run(&sb.argv[2], sb.timeout, on_line);
        if session.dead {
            *slot = None;
        }
        outcome
    }

    /// Same sandbox but for the stage to run (and its timeout, which the engine enforces).
    fn hosts(&self, sb: &StageSandbox) -> bool {
        let a = &self.sandbox;
        a.build_root == sb.build_root
            && a.tree == sb.tree
            && a.api_dir == sb.api_dir
            && a.meta_file == sb.meta_file
            && a.exe == sb.exe
            && a.capabilities == sb.capabilities
            && a.env == sb.env
    }

    fn start(sb: &StageSandbox) -> Result<StageSession, SandboxError> {
        if let Some(signal) = interrupted() {
            return Err(SandboxError::Interrupted { signal });
        }
        let sandbox = StageSandbox { argv: vec![EXE_PATH.into(), SESSION_COMMAND.into()], timeout: None, ..sb.clone() };
        sandbox.check_paths()?;
        ensure_proc_cmdline()?;
        let root = scan_build_root(sandbox.build_root.as_deref());
        let argv = argv::build_argv(&sandbox, &root, &sandbox.effective_capabilities()?);

        let (reader, writer) =
            pipe2(OFlag::O_CLOEXEC).map_err(|source| SandboxError::Pipe { source: source.into() })?;
        fcntl(&reader, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|source| SandboxError::Pipe { source: source.into() })?;
        let mut child = spawn_bwrap(&argv, &sandbox.env, Stdio::piped(), Stdio::piped(), Stdio::from(writer))?;
        let pgid = child.id() as i32;
        let registration = Some(Registration::new(pgid));
        let commands = child.stdin.take().expect("piped");
        let replies = child.stdout.take().expect("piped");
        Ok(StageSession {
            sandbox,
            child,
            pgid,
            registration,
            commands,
            replies,
            reply: Vec::new(),
            output: File::from(reader),
            dead: false,
        })
    }

    fn run(
        &mut self,
        stage: &str,
        timeout: Option<Duration>,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<StageOutcome, SandboxError> {
        if let Some(signal) = interrupted() {
            return Err(SandboxError::Interrupted { signal });
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut lines = Lines { on_line, partial: Vec::new(), output: String::new() };
        let mut stop = Stop::default();
        self.reply.clear();
        // A sandbox that died before or while taking the command answers with end-of-file below.
        let sent = writeln!(self.commands, "run {stage}").and_then(|()| self.commands.flush());
        let code = if sent.is_ok() { self.wait_reply(&mut lines, &mut stop, deadline)? } else { None };
        let status = match code {
            Some(code) => {
                // Every process of the stage is gone: what it wrote is all in the pipe.
                self.drain(&mut lines, None)?;
                ExitStatusLike::Code(code)
            }
            None => self.end(&mut lines)?,
        };
        if stop.interrupted.is_none() && self.dead {
            stop.interrupted = interrupted();
        }
        Ok(StageOutcome { status, output: lines.finish(), timed_out: stop.timed_out, interrupted: stop.interrupted })
    }

    /// Read output and replies until the supervisor answers (`Some(exit code)`), or the sandbox
    /// ends or is killed for a timeout or a signal (`None`).
    fn wait_reply(
        &mut self,
        lines: &mut Lines,
        stop: &mut Stop,
        deadline: Option<Instant>,
    ) -> Result<Option<i32>, SandboxError> {
        let mut buf = [0u8; 256];
        loop {
            stop.check(self.pgid, deadline);
            if stop.killed_at.is_some() {
                return Ok(None);
            }
            let budget = PollTimeout::try_from(stop.wait_budget(deadline)).unwrap_or(PollTimeout::MAX);
            let mut fds = [
                PollFd::new(self.replies.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.output.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, budget) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(source) => return Err(SandboxError::Read { source: source.into() }),
            }
            let output_ready = fds[1].any().unwrap_or(false);
            let reply_ready = fds[0].any().unwrap_or(false);
            if output_ready {
                self.drain(lines, None)?;
            }
            if reply_ready {
                match self.replies.read(&mut buf) {
                    Ok(0) => return Ok(None),
                    Ok(n) => self.reply.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(source) => return Err(SandboxError::Read { source }),
                }
                if let Some(nl) = self.reply.iter().position(|b| *b == b'\n') {
                    let line = String::from_utf8_lossy(&self.reply[..nl]).into_owned();
                    return match line.strip_prefix("exit ").and_then(|c| c.parse().ok()) {
                        Some(code) => Ok(Some(code)),
                        None => {
                            lines.feed(format!("osbuild-rs: the stage session answered {line:?}\n").as_bytes());
                            Ok(None)
                        }
                    };
                }
            }
        }
    }

    /// Read what is in the output pipe now; with `until`, keep reading until end-of-file or
    /// that moment. Returns whether end-of-file was seen.
    fn drain(&mut self, lines: &mut Lines, until: Option<Instant>) -> Result<bool, SandboxError> {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match self.output.read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) => lines.feed(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let Some(until) = until else { return Ok(false) };
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    let mut fds = [PollFd::new(self.output.as_fd(), PollFlags::POLLIN)];
                    let budget =
                        PollTimeout::try_from(left.min(Duration::from_millis(100))).unwrap_or(PollTimeout::MAX);
                    match poll(&mut fds, budget) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(source) => return Err(SandboxError::Read { source: source.into() }),
                    }
                }
                Err(source) => return Err(SandboxError::Read { source }),
            }
        }
    }

    /// The sandbox is over (it ended, or is being killed): collect the rest of its output and
    /// bubblewrap's exit status.
    fn end(&mut self, lines: &mut Lines) -> Result<ExitStatusLike, SandboxError> {
        self.dead = true;
        // Ended on its own (bubblewrap could not set the sandbox up, or the supervisor died),
        // its last words are on its stderr; killed, the stage's are.
        self.drain(lines, Some(Instant::now() + DRAIN))?;
        self.kill_and_reap()
    }

    /// Kill the sandbox's process group and wait for bubblewrap: the session is over.
    fn kill_and_reap(&mut self) -> Result<ExitStatusLike, SandboxError> {
        self.dead = true;
        let _ = kill(Pid::from_raw(-self.pgid), Signal::SIGKILL);
        // Unregister before reaping: a signal must never go to a recycled process group.
        self.registration = None;
        reap(&mut self.child)
    }
}

impl Drop for StageSession {
    fn drop(&mut self) {
        if !self.dead {
            // An idle supervisor holds nothing worth a clean goodbye.
            let _ = self.kill_and_reap();
        }
    }
}

/// The supervisor inside the sandbox (`osbuild-rs __stage-session`): runs each stage it is asked
/// for with `run_stage` (in namespaces of its own), then answers with its exit code.
pub fn serve(run_stage: &dyn Fn(&str) -> i32) -> i32 {
    let scratch = SharedScratch::snapshot(&SharedScratch::DIRS.map(PathBuf::from));
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        // The lock is taken and released by each call: none may be held across the fork below.
        match stdin.lock().read_line(&mut line) {
            Ok(0) => return 0,
            Ok(_) => {}
            Err(e) => {
                eprintln!("osbuild-rs: stage session: cannot read its commands: {e}");
                return 1;
            }
        }
        let Some(stage) = line.trim_end().strip_prefix("run ") else {
            eprintln!("osbuild-rs: stage session: unknown command {:?}", line.trim_end());
            return 1;
        };
        let code = osbuild_sys::run_isolated(|| run_stage(stage)).unwrap_or_else(|e| {
            eprintln!("osbuild-rs: {}", osbuild_sys::error_chain(&e));
            1
        });
        scratch.reset();
        let mut out = std::io::stdout();
        if writeln!(out, "exit {code}").and_then(|()| out.flush()).is_err() {
            return 1;
        }
    }
}

/// The directories of the sandbox that its stages share and may write: `/run` (the stage ABI
/// lives there) and `/dev` (bubblewrap's). What a stage adds to them goes after it.
struct SharedScratch {
    known: Vec<(PathBuf, Vec<std::ffi::OsString>)>,
}

impl SharedScratch {
    const DIRS: [&'static str; 4] = ["/run", "/run/osbuild", "/dev", "/dev/shm"];

    fn snapshot(dirs: &[PathBuf]) -> SharedScratch {
        SharedScratch { known: dirs.iter().map(|d| (d.clone(), names(d))).collect() }
    }

    fn reset(&self) {
        for (dir, known) in &self.known {
            for name in names(dir) {
                if !known.contains(&name) {
                    let path = dir.join(&name);
                    // Never followed: remove_dir_all removes a symlink itself, not its target.
                    let removed = match std::fs::symlink_metadata(&path) {
                        Ok(md) if md.is_dir() => std::fs::remove_dir_all(&path),
                        Ok(_) => std::fs::remove_file(&path),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = removed {
                        eprintln!("osbuild-rs: stage session: cannot remove {}: {e}", path.display());
                    }
                }
            }
        }
    }
}

fn names(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name()).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_removes_what_was_added_and_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let shared = dir.path().join("run");
        std::fs::create_dir_all(shared.join("osbuild")).unwrap();
        std::fs::write(shared.join("kept"), b"").unwrap();
        let scratch = SharedScratch::snapshot(std::slice::from_ref(&shared));

        std::fs::write(shared.join("file"), b"x").unwrap();
        std::fs::create_dir_all(shared.join("dir/deeper")).unwrap();
        std::fs::write(shared.join("dir/deeper/f"), b"x").unwrap();
        std::fs::write(outside.path().join("victim"), b"keep me").unwrap();
        std::os::unix::fs::symlink(outside.path(), shared.join("link")).unwrap();
        scratch.reset();

        let mut left = names(&shared);
        left.sort();
        assert_eq!(left, ["kept", "osbuild"]);
        assert_eq!(std::fs::read(outside.path().join("victim")).unwrap(), b"keep me");
    }
}
