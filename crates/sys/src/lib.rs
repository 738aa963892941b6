//! The system layer of osbuild-rs: the only crate that makes mount, namespace and loop-device
//! system calls, and the one confinement rule for paths from manifests and trees. Everything
//! unsafe in the project lives here, item by item, each with a `SAFETY:` comment.
//!
//! Used by the host (engine, sandbox) and, through the stage API, by stages that need a
//! chroot or loop devices of their own; neither calls `mount(2)` itself.

pub mod confine;
mod fdmount;
mod isolate;
mod loopdev;
mod mount;
mod signals;

use std::path::PathBuf;

pub use confine::{fd_path, is_plain_name, link_or_copy, proc_fd, reopen, DirEntry, EntryKind, PathError, Root};
pub use fdmount::{bind_fd, mount_fs_fd, move_fd, sync_fd, FdMount, FsOptions};
pub use isolate::run_isolated;
pub use loopdev::{LoopDevice, LoopOptions};
pub use mount::{
    bind_mount, enter_private_mount_namespace, mount_dev_tmpfs, mount_fs, mount_special, sync_fs, unmount, BindFlags,
    MountGuard, Special,
};
pub use signals::{install_signal_handlers, interrupted, tie_to_build, Registration};

/// A failed mount, namespace or loop-device operation, with the errno that caused it.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("failed to install the handler for {signal}")]
    SignalHandler {
        signal: nix::sys::signal::Signal,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot unshare the mount namespace")]
    Unshare {
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot make / recursively private")]
    MakePrivate {
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot bind mount {} on {}", src.display(), dest.display())]
    Mount {
        src: PathBuf,
        dest: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("loop device: cannot {what} {}", path.display())]
    Loop {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot mount {source_desc} ({fstype}) on {}", target.display())]
    MountFs {
        source_desc: String,
        fstype: String,
        target: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot mount {} ({fstype}) on {}: {step} failed{}", device.display(), target.display(), kernel_note(kernel_log))]
    FsMount {
        device: PathBuf,
        fstype: String,
        target: PathBuf,
        step: &'static str,
        /// What the kernel said about it (the file system context's log), if anything.
        kernel_log: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot {what}")]
    Isolate {
        what: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot unmount {}", path.display())]
    Unmount {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot sync the file system of {}", path.display())]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Path(#[from] PathError),
}

impl SysError {
    /// The errno behind the failure.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SysError::SignalHandler { source, .. }
            | SysError::Unshare { source }
            | SysError::MakePrivate { source }
            | SysError::Mount { source, .. }
            | SysError::MountFs { source, .. }
            | SysError::FsMount { source, .. }
            | SysError::Isolate { source, .. }
            | SysError::Unmount { source, .. } => Some(*source as i32),
            SysError::Loop { source, .. } | SysError::Sync { source, .. } => source.raw_os_error(),
            SysError::Path(e) => e.errno(),
        }
    }
}

fn kernel_note(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {log})")
    }
}

/// `error: cause: cause…` on one line: what every osbuild-rs message prints, so the errno at
/// the bottom of a chain reaches the user.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        // `#[error(transparent)]` layers repeat their source's text: print it once.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}
