//! One way to run a build-root tool, in the variants stages need (bootc's `CommandRunExt` is
//! the model): [`CommandRunExt::run`] (stdout to the build log), [`run_with_input`],
//! [`run_get_output`] / [`run_get_string`] / [`run_and_parse_json`] (stdout captured),
//! [`pipe_into`] (one tool's stdout into another's stdin) and [`run_unchecked`] for the few
//! stages that read a failing tool's stderr themselves (dpkg, rpm).
//!
//! Every variant streams the tool's stderr to ours (the build log) while keeping its tail, and
//! a failure is one typed error: [`StageError::ToolMissing`] when the tool is not there,
//! [`StageError::ToolSpawn`] when it cannot be started, [`StageError::ToolFailed`] (argv, exit
//! status, the tail of stderr) when it exits unsuccessfully.
//!
//! [`run_with_input`]: CommandRunExt::run_with_input
//! [`run_get_output`]: CommandRunExt::run_get_output
//! [`run_get_string`]: CommandRunExt::run_get_string
//! [`run_and_parse_json`]: CommandRunExt::run_and_parse_json
//! [`run_unchecked`]: CommandRunExt::run_unchecked

use crate::StageError;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, ExitStatus, Stdio};

/// How much of a tool's stderr is kept for error reports (the newest part).
const KEEP_STDERR: usize = 1 << 20;

/// Running a build-root tool for a stage. `stage` is the stage's name, for
/// [`StageError::ToolMissing`].
pub trait CommandRunExt {
    /// Run the tool; its stdout goes where the command says (by default ours: the build log).
    fn run(&mut self, stage: &'static str) -> Result<(), StageError>;
    /// [`CommandRunExt::run`] with `input` on the tool's stdin.
    fn run_with_input(&mut self, stage: &'static str, input: &[u8]) -> Result<(), StageError>;
    /// Run the tool and return its stdout.
    fn run_get_output(&mut self, stage: &'static str) -> Result<Vec<u8>, StageError>;
    /// Run the tool and return its stdout as text (invalid UTF-8 replaced).
    fn run_get_string(&mut self, stage: &'static str) -> Result<String, StageError>;
    /// Run the tool and parse its stdout as JSON.
    fn run_and_parse_json<T: serde::de::DeserializeOwned>(&mut self, stage: &'static str) -> Result<T, StageError>;
    /// Run the tool to its end whatever its exit status, for stages that explain a failure
    /// from what the tool said ([`Finished::failure`]); stdout is captured if `capture_stdout`.
    /// Only a tool that cannot be started is an error here.
    fn run_unchecked(&mut self, stage: &'static str, capture_stdout: bool) -> Result<Finished, StageError>;
}

impl CommandRunExt for Command {
    fn run(&mut self, stage: &'static str) -> Result<(), StageError> {
        execute(self, stage, Stdin::Null, false)?.check().map(drop)
    }

    fn run_with_input(&mut self, stage: &'static str, input: &[u8]) -> Result<(), StageError> {
        execute(self, stage, Stdin::Bytes(input), false)?.check().map(drop)
    }

    fn run_get_output(&mut self, stage: &'static str) -> Result<Vec<u8>, StageError> {
        Ok(execute(self, stage, Stdin::Null, true)?.check()?.stdout)
    }

    fn run_get_string(&mut self, stage: &'static str) -> Result<String, StageError> {
        self.run_get_output(stage).map(|out| String::from_utf8_lossy(&out).into_owned())
    }

    fn run_and_parse_json<T: serde::de::DeserializeOwned>(&mut self, stage: &'static str) -> Result<T, StageError> {
        let out = self.run_get_output(stage)?;
        serde_json::from_slice(&out).map_err(|source| StageError::ToolOutput { argv: argv_string(self), source })
    }

    fn run_unchecked(&mut self, stage: &'static str, capture_stdout: bool) -> Result<Finished, StageError> {
        execute(self, stage, Stdin::Null, capture_stdout)
    }
}

/// Run `producer | consumer` (e.g. `dpkg-deb --fsys-tarfile x | tar -x`) and return the
/// consumer's stdout. Both must succeed; the producer's failure is reported first, since a
/// consumer fed a broken stream fails for that reason — unless the producer died of SIGPIPE,
/// which only says that the consumer stopped reading: then the consumer's failure is the cause.
pub fn pipe_into(stage: &'static str, producer: &mut Command, consumer: &mut Command) -> Result<Vec<u8>, StageError> {
    use std::os::unix::process::ExitStatusExt;
    let tool = program(producer);
    let mut child =
        producer.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().map_err(|e| spawn_error(stage, &tool, e))?;
    let pipe = child.stdout.take().expect("piped stdout");
    let consumed = execute(consumer, stage, Stdin::From(pipe.into()), true);
    let status = child.wait().map_err(|source| StageError::ToolSpawn { tool, source })?;
    let consumer_failed = consumed.as_ref().map_or(true, |f| !f.success());
    let only_lost_its_reader = status.signal() == Some(libc::SIGPIPE) && consumer_failed;
    if !status.success() && !only_lost_its_reader {
        return Err(StageError::ToolFailed { argv: argv_string(producer), status, stderr: String::new() });
    }
    Ok(consumed?.check()?.stdout)
}

/// A tool that ran to its end: its exit status, captured stdout and the kept tail of stderr.
#[derive(Debug)]
pub struct Finished {
    argv: String,
    pub status: ExitStatus,
    /// Empty unless stdout was captured.
    pub stdout: Vec<u8>,
    /// The newest part of stderr (everything unless the tool wrote more than a MiB).
    pub stderr: Vec<u8>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// `Ok(self)` if the tool succeeded, else [`StageError::ToolFailed`] with its stderr tail.
    pub fn check(self) -> Result<Finished, StageError> {
        if self.success() {
            return Ok(self);
        }
        let tail = stderr_tail(&self.stderr, None);
        Err(self.failure(tail))
    }

    /// [`StageError::ToolFailed`] for this run, with `detail` (e.g. the stage's reading of
    /// the tool's stderr) in place of the plain stderr tail.
    pub fn failure(&self, detail: impl AsRef<str>) -> StageError {
        let detail = detail.as_ref().trim();
        let stderr = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        StageError::ToolFailed { argv: self.argv.clone(), status: self.status, stderr }
    }

    /// The kept stderr, line by line.
    pub fn stderr_lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.stderr).lines().map(str::to_owned).collect()
    }
}

enum Stdin<'a> {
    Null,
    Bytes(&'a [u8]),
    From(Stdio),
}

/// The one place that spawns a tool and waits for it.
fn execute(cmd: &mut Command, stage: &'static str, stdin: Stdin, capture_stdout: bool) -> Result<Finished, StageError> {
    let tool = program(cmd);
    let input = match stdin {
        Stdin::Null => {
            cmd.stdin(Stdio::null());
            None
        }
        Stdin::Bytes(b) => {
            cmd.stdin(Stdio::piped());
            Some(b.to_vec())
        }
        Stdin::From(s) => {
            cmd.stdin(s);
            None
        }
    };
    if capture_stdout {
        cmd.stdout(Stdio::piped());
    }
    let spawned = cmd.stderr(Stdio::piped()).spawn();
    // The command must not keep a pipe end we handed it: a consumer that dies early has to
    // end its producer (SIGPIPE), not leave it blocked on a pipe nobody reads.
    cmd.stdin(Stdio::null());
    let mut child = spawned.map_err(|e| spawn_error(stage, &tool, e))?;
    // Threads for stdin and stdout, so a tool that fills one pipe while we serve another
    // cannot deadlock us.
    let writer = input.map(|data| {
        let mut pipe = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            // A tool may exit without reading all of it; its exit status tells what went wrong.
            let _ = pipe.write_all(&data);
        })
    });
    let reader = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            out.read_to_end(&mut buf).map(|_| buf)
        })
    });
    let stderr = child.stderr.take().map(stream_stderr).unwrap_or_default();
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = match reader.map(|r| r.join().expect("stdout reader does not panic")) {
        Some(Ok(out)) => out,
        Some(Err(source)) => return Err(StageError::ToolSpawn { tool, source }),
        None => Vec::new(),
    };
    let status = child.wait().map_err(|source| StageError::ToolSpawn { tool, source })?;
    Ok(Finished { argv: argv_string(cmd), status, stdout, stderr })
}

/// Copy a tool's stderr to ours as it comes and return its newest [`KEEP_STDERR`] bytes.
fn stream_stderr(mut err: std::process::ChildStderr) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match err.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = std::io::stderr().write_all(&buf[..n]);
                kept.extend_from_slice(&buf[..n]);
                // trimmed in large steps, so a chatty tool does not make us move the buffer
                // for every chunk
                if kept.len() > 2 * KEEP_STDERR {
                    kept.drain(..kept.len() - KEEP_STDERR);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if kept.len() > KEEP_STDERR {
        kept.drain(..kept.len() - KEEP_STDERR);
    }
    kept
}

fn program(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// The error for a build-root `tool` that `stage` could not start: [`StageError::ToolMissing`]
/// when it is not there, else [`StageError::ToolSpawn`].
pub fn spawn_error(stage: &'static str, tool: &str, e: std::io::Error) -> StageError {
    if e.kind() == std::io::ErrorKind::NotFound {
        StageError::ToolMissing { tool: tool.to_owned(), stage, place: "in the build root" }
    } else {
        StageError::ToolSpawn { tool: tool.to_owned(), source: e }
    }
}

/// A command line as a shell would read it back, for error messages. Very long ones (a
/// package manager given hundreds of files) are cut, saying how many arguments were left out.
pub fn argv_string(cmd: &Command) -> String {
    const MAX: usize = 600;
    let words: Vec<String> = std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(quote).collect();
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if out.len() + w.len() > MAX && i + 1 < words.len() {
            out.push_str(&format!(" … ({} more arguments)", words.len() - i));
            break;
        }
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

fn quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain = !s.is_empty() && arg.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(b));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The last `n` non-empty lines of a tool's output, trimmed, those `keep` rejects left out.
pub fn last_lines(output: &[u8], n: usize, keep: Option<fn(&str) -> bool>) -> Vec<String> {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && keep.is_none_or(|keep| keep(l))).collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| (*l).to_owned()).collect()
}

/// The last three non-empty lines of a tool's stderr on one line, joined by ` / ` (empty if
/// there are none). `keep`, if given, passes over lines that
/// say nothing about the failure (rpm's chatter, for instance).
pub fn stderr_tail(stderr: &[u8], keep: Option<fn(&str) -> bool>) -> String {
    let mut tail = last_lines(stderr, 3, keep).join(" / ");
    if tail.len() > 1000 {
        let mut cut = tail.len() - 1000;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    tail
}

/// [`stderr_tail`] as the end of a failure message: `: <tail>`, or nothing if the tool said
/// nothing (the form [`StageError::ToolFailed`] and the engine's tool errors display).
pub fn stderr_detail(stderr: &[u8]) -> String {
    let tail = stderr_tail(stderr, None);
    if tail.is_empty() {
        tail
    } else {
        format!(": {tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGE: &str = "org.osbuild.test";

    #[test]
    fn missing_tool_is_named() {
        let e = Command::new("osbuild-rs-no-such-tool").run(STAGE).unwrap_err();
        assert_eq!(e.to_string(), "osbuild-rs-no-such-tool not found in the build root, but org.osbuild.test needs it");
        let e = Command::new("osbuild-rs-no-such-tool").run_with_input(STAGE, b"x").unwrap_err();
        assert!(matches!(e, StageError::ToolMissing { .. }), "{e}");
    }

    #[test]
    fn failing_tool_reports_argv_and_stderr() {
        let e = Command::new("sh").args(["-c", "echo boom >&2; exit 3"]).run(STAGE).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("`sh -c 'echo boom >&2; exit 3'` failed (exit status: 3): boom"), "{msg}");
    }

    #[test]
    fn stdin_reaches_the_tool_and_stdout_is_captured() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        Command::new("sh").arg("-c").arg(format!("cat > {}", out.display())).run_with_input(STAGE, b"hi\n").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"hi\n");
        let e = Command::new("sh").args(["-c", "cat >&2; exit 2"]).run_with_input(STAGE, b"bad input").unwrap_err();
        assert_eq!(e.to_string(), "`sh -c 'cat >&2; exit 2'` failed (exit status: 2): bad input");
        assert_eq!(Command::new("echo").arg("x").run_get_output(STAGE).unwrap(), b"x\n");
        assert_eq!(Command::new("printf").arg("é").run_get_string(STAGE).unwrap(), "é");
    }

    #[test]
    fn large_input_and_output_do_not_deadlock() {
        // more than any pipe buffer in both directions, with stderr in between
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let script = format!("echo start >&2; cat > {}; echo done >&2", out.display());
        Command::new("sh").args(["-c", &script]).run_with_input(STAGE, &data).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), data);
        let mut c = Command::new("sh");
        c.args(["-c", "head -c 3000000 /dev/zero; head -c 300000 /dev/zero >&2"]);
        assert_eq!(c.run_get_output(STAGE).unwrap().len(), 3_000_000);
    }

    #[test]
    fn json_output_is_parsed_or_the_tool_named() {
        let v: serde_json::Value = Command::new("echo").arg(r#"{"a": [1]}"#).run_and_parse_json(STAGE).unwrap();
        assert_eq!(v["a"][0], 1);
        let e = Command::new("echo").arg("nope").run_and_parse_json::<serde_json::Value>(STAGE).unwrap_err();
        assert!(crate::error_chain(&e).starts_with("cannot parse the output of `echo nope`: expected"), "{e}");
    }

    #[test]
    fn unchecked_runs_keep_what_the_tool_said() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo one >&2; echo two >&2; exit 4"]);
        let done = c.run_unchecked(STAGE, true).unwrap();
        assert!(!done.success());
        assert_eq!(done.stdout, b"out\n");
        assert_eq!(done.stderr_lines(), ["one", "two"]);
        let e = done.failure("package x: broken");
        assert_eq!(
            e.to_string(),
            "`sh -c 'echo out; echo one >&2; echo two >&2; exit 4'` failed (exit status: 4): package x: broken"
        );
    }

    #[test]
    fn pipelines_check_both_tools() {
        let out = pipe_into(STAGE, Command::new("echo").arg("abc"), &mut Command::new("rev")).unwrap();
        assert_eq!(out, b"cba\n");
        let e = pipe_into(STAGE, Command::new("false").arg("x"), &mut Command::new("cat")).unwrap_err();
        assert_eq!(e.to_string(), "`false x` failed (exit status: 1)");
        // The producer may die of SIGPIPE first (a consumer that reads nothing): still the
        // consumer's failure is the one reported. `yes` never ends on its own, so it always does.
        let mut echo = Command::new("echo");
        echo.arg("abc");
        for producer in [echo, Command::new("yes")].iter_mut() {
            let e = pipe_into(STAGE, producer, Command::new("sh").args(["-c", "exit 5"])).unwrap_err();
            assert!(e.to_string().starts_with("`sh -c 'exit 5'` failed (exit status: 5)"), "{e}");
        }
    }

    #[test]
    fn tails_are_short_and_filtered() {
        assert_eq!(stderr_tail(b"a\n\nb\nc\nd\n", None), "b / c / d");
        assert_eq!(stderr_tail(b"", None), "");
        assert_eq!(stderr_detail(b"x\n"), ": x");
        assert_eq!(stderr_detail(b"\n"), "");
        fn not_rpm(l: &str) -> bool {
            !l.starts_with("rpm: ")
        }
        assert_eq!(stderr_tail(b"error: x\nrpm: chatter\n", Some(not_rpm)), "error: x");
        let long = "é".repeat(2000);
        let t = stderr_tail(long.as_bytes(), None);
        assert!(t.starts_with('…') && t.len() < 1100, "{}", t.len());
    }

    #[test]
    fn long_argv_is_cut() {
        let mut c = Command::new("dpkg");
        c.arg("--unpack").args((0..200).map(|i| format!("/tmp/osbuild-dpkg.1/sha256:{i:064}")));
        let s = argv_string(&c);
        assert!(s.starts_with("dpkg --unpack /tmp/osbuild-dpkg.1/sha256:") && s.ends_with("more arguments)"), "{s}");
        assert!(s.len() < 700, "{}", s.len());
        assert_eq!(argv_string(Command::new("a").args(["b c", "it's"])), r#"a 'b c' 'it'\''s'"#);
    }
}
