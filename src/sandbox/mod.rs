//! The sandbox: the one place for the bubblewrap command line, signals and capabilities of a
//! stage. The namespace and mount primitives it (and the engine) stands on, and all unsafe
//! code, live in `osbuild-sys`.
//!
//! A stage runs in a bubblewrap sandbox laid out as upstream osbuild's stage ABI expects:
//!
//! | inside                        | what                                                               |
//! |-------------------------------|--------------------------------------------------------------------|
//! | `/usr`, `/etc`, `/bin`, ...   | the build root, read-only (host or a committed build tree)         |
//! | `/dev`                        | fresh (bubblewrap `--dev`) plus the requested host device nodes    |
//! | `/proc`, `/sys`               | a new procfs for the new PID namespace; the host's sysfs read-only |
//! | `/proc/cmdline`               | `root=/dev/osbuild` (as upstream), not the host's command line     |
//! | `/run`, `/tmp`, `/var`        | fresh tmpfs (with an empty `/var/tmp`)                             |
//! | `/run/osbuild/tree`           | the tree being built, writable                                     |
//! | `/run/osbuild/bin/osbuild-rs` | the running osbuild-rs binary (static), read-only                  |
//! | `/run/osbuild/api`            | the directory holding `arguments`, read-only                       |
//! | `/run/osbuild/meta`           | the metadata file the stage writes                                 |
//! | binds                         | inputs, mounts, ... as the engine asks, applied last               |
//!
//! IPC, PID, network and UTS namespaces are new; all capabilities are dropped except upstream's
//! default set and those the stage declares; the stage has no terminal and a minimal environment.

mod argv;
mod caps;
mod helper;
mod run;
mod session;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use argv::{
    sandbox_env, scan_build_root, RootEntry, API_DIR, BIN_DIR, EXE_PATH, INPUTS_DIR, META_FILE, MOUNTS_DIR,
    PROC_CMDLINE, PROC_CMDLINE_FILE, SANDBOX_PATH, TREE_DIR,
};
pub use caps::{
    capability_mask, capability_number, dropped_capabilities, host_bounding_set, parse_status_mask,
    DEFAULT_CAPABILITIES, ENV_DROP_CAPABILITIES,
};
pub use helper::{run_cleanup_helper, run_helper, run_helper_into, HelperOutput};
pub use osbuild_sys::{bind_mount, enter_private_mount_namespace, unmount, SysError};
pub use osbuild_sys::{install_signal_handlers, interrupted};
pub use session::{serve as serve_stage_session, sessions_enabled, StageSession, ENV_STAGE_SESSIONS, SESSION_COMMAND};

/// Everything that can go wrong setting up or running a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("bubblewrap (bwrap) not found in PATH: install the bubblewrap package")]
    BwrapNotFound,
    #[error("failed to start bwrap")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("failed to create the pipe for the stage output")]
    Pipe {
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the stage output")]
    Read {
        #[source]
        source: std::io::Error,
    },
    #[error("failed to wait for bwrap")]
    Wait {
        #[source]
        source: std::io::Error,
    },
    #[error("{what} not found: {}", path.display())]
    MissingPath { what: &'static str, path: PathBuf },
    #[error("failed to write {}", path.display())]
    RuntimeFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox has an empty command")]
    EmptyCommand,
    #[error("unknown capability {0}")]
    UnknownCapability(String),
    #[error("failed to read the capability bounding set from /proc/self/status")]
    ReadCapabilities {
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("interrupted by signal {signal} before the stage started")]
    Interrupted { signal: i32 },
    #[error(transparent)]
    Sys(#[from] SysError),
}

/// A host path made visible inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Host path (file or directory).
    pub src: PathBuf,
    /// Absolute path inside the sandbox.
    pub dest: PathBuf,
    pub writable: bool,
}

/// One stage's sandbox; see the module documentation for the layout.
#[derive(Debug, Clone, Default)]
pub struct StageSandbox {
    /// `None`: the host's `/` is the build root; `Some(tree)`: a committed build pipeline tree.
    pub build_root: Option<PathBuf>,
    /// Host path of the tree being built, writable at `/run/osbuild/tree`.
    pub tree: PathBuf,
    /// Inputs (read-only, under `/run/osbuild/inputs/<name>`), the mounts dir (`/run/osbuild/mounts`), etc.
    /// Applied last, in order, so they may cover anything else.
    pub binds: Vec<Bind>,
    /// Host directory holding `arguments`, read-only at `/run/osbuild/api`.
    pub api_dir: PathBuf,
    /// Host file, writable at `/run/osbuild/meta`.
    pub meta_file: PathBuf,
    /// The static osbuild-rs binary, read-only at `/run/osbuild/bin/osbuild-rs`.
    pub exe: PathBuf,
    /// What to run inside, e.g. `["/run/osbuild/bin/osbuild-rs", "__stage", "org.osbuild.mkdir"]`.
    pub argv: Vec<String>,
    /// Extra capabilities the stage declares, kept on top of `DEFAULT_CAPABILITIES`.
    pub capabilities: Vec<String>,
    /// Host device nodes exposed at the same path.
    pub devices: Vec<PathBuf>,
    pub timeout: Option<Duration>,
    /// Added to (and overriding) the minimal environment: `PATH`, `LC_ALL=C.UTF-8`, `TERM=dumb`,
    /// `container=bwrap-osbuild`.
    pub env: Vec<(String, String)>,
    /// Lay out `/` as upstream's build root does, for external stages and their runners: only
    /// `/usr` (and a build pipeline's `/boot`) from the build root, a fresh writable `/etc` with
    /// the few files upstream takes from the build root (`mke2fs.conf`, `containers/`,
    /// `selinux/`), and its `/ostree`. Native stages see the whole build root read-only.
    pub upstream_root: bool,
}

/// How bubblewrap ended. bubblewrap reports a stage killed by signal N as exit code 128+N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatusLike {
    Code(i32),
    Signal(i32),
}

impl ExitStatusLike {
    pub fn success(&self) -> bool {
        *self == ExitStatusLike::Code(0)
    }

    pub fn code(&self) -> Option<i32> {
        match self {
            ExitStatusLike::Code(c) => Some(*c),
            ExitStatusLike::Signal(_) => None,
        }
    }

    pub fn signal(&self) -> Option<i32> {
        match self {
            ExitStatusLike::Code(_) => None,
            ExitStatusLike::Signal(s) => Some(*s),
        }
    }
}

impl fmt::Display for ExitStatusLike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatusLike::Code(c) => write!(f, "exit code {c}"),
            ExitStatusLike::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// The result of `StageSandbox::run`.
#[derive(Debug, Clone)]
pub struct StageOutcome {
    pub status: ExitStatusLike,
    /// Combined stdout and stderr, as written (invalid UTF-8 replaced).
    pub output: String,
    /// Killed because `timeout` passed.
    pub timed_out: bool,
    /// Killed because of this signal (see `interrupted`).
    pub interrupted: Option<i32>,
}

impl StageOutcome {
    /// Exited 0, neither timed out nor interrupted.
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out && self.interrupted.is_none()
    }
}

impl StageSandbox {
    /// The exact bubblewrap argv, with every requested capability; reads only the build root's
    /// top-level entries (see `scan_build_root`). `run` uses the same argv, minus capabilities
    /// this host's bounding set lacks.
    pub fn bwrap_argv(&self) -> Vec<String> {
        let root = scan_build_root(self.build_root.as_deref());
        argv::build_argv(self, &root, &caps::requested(&self.capabilities))
    }

    /// The argv for given build root entries and capabilities (no I/O at all).
    pub fn bwrap_argv_with(&self, root: &[RootEntry], capabilities: &[String]) -> Vec<String> {
        argv::build_argv(self, root, capabilities)
    }

    /// The capabilities the stage will actually have here: the default set and the declared ones,
    /// less those outside this process's bounding set (bubblewrap cannot grant those).
    pub fn effective_capabilities(&self) -> Result<Vec<String>, SandboxError> {
        let requested = caps::requested(&self.capabilities);
        capability_mask(&requested)?;
        let bounding = host_bounding_set()?;
        Ok(requested.into_iter().filter(|c| capability_number(c).is_some_and(|n| bounding & (1 << n) != 0)).collect())
    }

    /// Run the sandbox. Each line of output (stdout and stderr combined, without the newline) goes to
    /// `on_line` as it arrives and is also collected. On timeout or when `interrupted()` becomes set
    /// the whole sandbox is killed (bubblewrap's PID namespace takes every process in it along).
    /// Refuses to start when a signal was already received. bubblewrap runs with --die-with-parent,
    /// which the kernel ties to the calling *thread*: it blocks until the sandbox is gone anyway.
    pub fn run(&self, on_line: &mut dyn FnMut(&str)) -> Result<StageOutcome, SandboxError> {
        self.check_paths()?;
        ensure_proc_cmdline()?;
        let root = scan_build_root(self.build_root.as_deref());
        let argv = argv::build_argv(self, &root, &self.effective_capabilities()?);
        run::run(self, argv, on_line)
    }

    /// Run `command` (e.g. `["/bin/sh"]`) in this stage's sandbox instead of the stage, on the
    /// caller's terminal, and wait for it: the debug shell of `--break`. No timeout, no capture.
    pub fn run_interactive(&self, command: &[String]) -> Result<ExitStatusLike, SandboxError> {
        let sb = StageSandbox { argv: command.to_vec(), timeout: None, ..self.clone() };
        sb.check_paths()?;
        ensure_proc_cmdline()?;
        let root = scan_build_root(sb.build_root.as_deref());
        let argv = argv::build_argv(&sb, &root, &sb.effective_capabilities()?);
        run::run_interactive(argv, &sb.env)
    }

    fn check_paths(&self) -> Result<(), SandboxError> {
        if self.argv.is_empty() {
            return Err(SandboxError::EmptyCommand);
        }
        for (what, path) in [
            ("tree", &self.tree),
            ("api directory", &self.api_dir),
            ("meta file", &self.meta_file),
            ("osbuild-rs executable", &self.exe),
        ] {
            if !path.exists() {
                return Err(SandboxError::MissingPath { what, path: path.clone() });
            }
        }
        if let Some(root) = &self.build_root {
            if !root.is_dir() {
                return Err(SandboxError::MissingPath { what: "build root", path: root.clone() });
            }
        }
        Ok(())
    }
}

/// Make sure `PROC_CMDLINE_FILE` holds `PROC_CMDLINE` (written atomically; shared by every
/// osbuild-rs process on the host, all writing the same bytes).
fn ensure_proc_cmdline() -> Result<(), SandboxError> {
    let path = std::path::Path::new(PROC_CMDLINE_FILE);
    if std::fs::read(path).is_ok_and(|c| c == PROC_CMDLINE.as_bytes()) {
        return Ok(());
    }
    let err = |source| SandboxError::RuntimeFile { path: path.to_owned(), source };
    let dir = path.parent().expect("absolute path");
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new().prefix(".proc-cmdline.").tempfile_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, PROC_CMDLINE.as_bytes()).map_err(err)?;
    // world-readable, as /proc/cmdline is (tempfile makes 0600)
    tmp.as_file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644)).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests;
