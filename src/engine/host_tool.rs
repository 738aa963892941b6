//! The few tools the engine itself runs on the host (not in a sandbox): `ostree` for ostree
//! inputs, `sfdisk` to find partitions. They run as helpers tied to the build (their own
//! process group, stop signals forwarded, killed if osbuild-rs dies), like the sources' curl.
//! Their failures carry the argv, how the tool ended and the tail of stderr, with the stage
//! API's helpers for both.

use osbuild_stage_api::tool::{argv_string, stderr_detail};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum HostToolError {
    #[error("{tool} not found on the host, but {needed_by} needs it")]
    Missing { tool: String, needed_by: &'static str },
    #[error("cannot run {tool}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{argv}` failed ({outcome}){stderr}")]
    Failed { argv: String, outcome: String, stderr: String },
}

/// Run `cmd` (stdin closed) to its end; its stdout, or the failure. `needed_by` names what
/// needs the tool, for the message when it is missing.
pub fn run(cmd: &mut Command, needed_by: &'static str) -> Result<Vec<u8>, HostToolError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let out = crate::sandbox::run_helper(cmd, None, None).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => HostToolError::Missing { tool: tool.clone(), needed_by },
        _ => HostToolError::Spawn { tool: tool.clone(), source },
    })?;
    if !out.success() {
        return Err(HostToolError::Failed {
            argv: argv_string(cmd),
            outcome: out.describe(),
            stderr: stderr_detail(&out.stderr),
        });
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_tool_argv_and_stderr() {
        let e = run(&mut Command::new("osbuild-rs-no-such-tool"), "the test").unwrap_err();
        assert_eq!(e.to_string(), "osbuild-rs-no-such-tool not found on the host, but the test needs it");
        let e = run(Command::new("sh").args(["-c", "echo out; echo boom >&2; exit 3"]), "the test").unwrap_err();
        assert_eq!(e.to_string(), "`sh -c 'echo out; echo boom >&2; exit 3'` failed (exit code 3): boom");
        assert_eq!(run(Command::new("echo").arg("hi"), "the test").unwrap(), b"hi\n");
    }
}
