//! One way to run a build-root tool: its stderr streamed to the build log with the tail kept,
//! and one typed error ([`StageError::ToolFailed`]) carrying argv, exit status and that tail.

use crate::StageError;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

/// Run a build-root tool for `stage`. Its stdout goes where the command says (by default our
/// stdout, the build log); its stderr is streamed to our stderr, and its tail is kept for the
/// error if the tool fails. A tool that is not on `PATH` gives [`StageError::ToolMissing`].
pub fn run_tool(stage: &'static str, cmd: &mut Command) -> Result<(), StageError> {
    const KEEP: usize = 8192;
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let mut child =
        cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| spawn_error(stage, &tool, e))?;
    let mut tail = Vec::new();
    if let Some(mut err) = child.stderr.take() {
        let mut buf = [0u8; 8192];
        loop {
            match err.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let _ = std::io::stderr().write_all(&buf[..n]);
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > KEEP {
                        tail.drain(..tail.len() - KEEP);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }
    let status = child.wait().map_err(|source| StageError::ToolSpawn { tool: tool.clone(), source })?;
    if status.success() {
        return Ok(());
    }
    Err(StageError::ToolFailed { argv: argv_string(cmd), status, stderr: stderr_tail(&tail) })
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

/// A command line as a shell would read it back, for error messages.
pub fn argv_string(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(quote).collect::<Vec<_>>().join(" ")
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

/// The last lines of a tool's stderr, on one line, prefixed with `: ` (empty if none).
pub fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    if tail.is_empty() {
        return String::new();
    }
    let mut tail = tail;
    if tail.len() > 1000 {
        let mut cut = tail.len() - 1000;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    format!(": {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_is_named() {
        let e = run_tool("org.osbuild.test", &mut Command::new("osbuild-rs-no-such-tool")).unwrap_err();
        assert_eq!(e.to_string(), "osbuild-rs-no-such-tool not found in the build root, but org.osbuild.test needs it");
    }

    #[test]
    fn failing_tool_reports_argv_and_stderr() {
        let e = run_tool("org.osbuild.test", Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("`sh -c 'echo boom >&2; exit 3'` failed (exit status: 3): boom"), "{msg}");
    }
}
