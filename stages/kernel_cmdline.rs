//! `org.osbuild.kernel-cmdline`: write the kernel command line to `/etc/kernel/cmdline`.
//!
//! As upstream: `root=UUID=<root_fs_uuid>` and `kernel_opts`, joined by a space, written
//! without a trailing newline (mode 0644, `/etc/kernel` created 0755 if missing). The length
//! limit defaults by the machine's architecture (`uname -m`, as upstream's
//! `platform.machine()`), and counts characters as upstream does.

use super::util::{create_parents, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub root_fs_uuid: Option<String>,
    #[serde(default)]
    pub kernel_opts: Option<String>,
    #[serde(default)]
    pub kernel_cmdline_size: Option<i64>,
}

/// Upstream's table of command-line limits by `uname -m`; anything else gets 4096.
fn default_max_size(machine: &str) -> i64 {
    match machine.to_lowercase().as_str() {
        "x86_64" | "i386" | "aarch64" | "powerpc" | "ppc64" => 2048,
        "arm" | "riscv" => 1024,
        _ => 4096,
    }
}

/// What `uname -m` says on the machine this binary is built for.
fn machine() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "i686",
        "arm" => "armv7l",
        "powerpc" => "ppc",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct KernelCmdline;

impl Stage for KernelCmdline {
    const NAME: &'static str = "org.osbuild.kernel-cmdline";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let max = match options.kernel_cmdline_size {
            Some(n) => n,
            None => default_max_size(machine()),
        };
        let mut params = Vec::new();
        if let Some(uuid) = options.root_fs_uuid.as_deref().filter(|u| !u.is_empty()) {
            params.push(format!("root=UUID={uuid}"));
        }
        if let Some(opts) = options.kernel_opts.filter(|o| !o.is_empty()) {
            params.push(opts);
        }
        let params = params.join(" ");
        if params.chars().count() as i64 > max {
            return Err(StageError::Invalid(format!(
                "The size of the kernel cmdline options cannot be larger than {max}"
            )));
        }
        let path = tree_path(args, "/etc/kernel/cmdline", true)?;
        create_parents(&path)?;
        write_file(&path, params.as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_cmdline_without_newline() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"root_fs_uuid": "76a22bf4-f153-4541-b6c7-0332c0dfaeac", "kernel_opts": "ro quiet"});
        KernelCmdline::execute(&args(t.path(), opts)).unwrap();
        let got = std::fs::read_to_string(t.path().join("etc/kernel/cmdline")).unwrap();
        assert_eq!(got, "root=UUID=76a22bf4-f153-4541-b6c7-0332c0dfaeac ro quiet");
        KernelCmdline::execute(&args(t.path(), json!({}))).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("etc/kernel/cmdline")).unwrap(), "");
    }

    #[test]
    fn size_limit() {
        let t = tempfile::tempdir().unwrap();
        let e = KernelCmdline::execute(&args(
            t.path(),
            json!({"kernel_opts": "x".repeat(300), "kernel_cmdline_size": 256}),
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "The size of the kernel cmdline options cannot be larger than 256");
        assert_eq!(default_max_size("x86_64"), 2048);
        assert_eq!(default_max_size("riscv64"), 4096);
        assert_eq!(default_max_size("arm"), 1024);
    }
}
