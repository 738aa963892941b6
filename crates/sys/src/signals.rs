//! SIGINT/SIGTERM/SIGHUP: remember the signal and pass it on to every running sandbox and helper.
//!
//! The handler only touches atomics and calls `kill(2)`, both async-signal-safe. Each running
//! bubblewrap, and each helper process (curl, ostree, cp), is the leader of its own process
//! group; the signal goes to that group, and killing bubblewrap takes the whole sandbox with it
//! (its PID namespace dies with it). The run loops also poll `interrupted()` and kill what is
//! left, so a signal that lands between spawn and registration is not lost.
//!
//! SIGKILL cannot be caught: helpers are tied to us by `PR_SET_PDEATHSIG` instead (see
//! [`tie_to_build`]), bubblewrap by `--die-with-parent`.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

use crate::SysError;

/// The first signal received, 0 if none.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// Process groups of running sandboxes (0 = free slot).
static RUNNING: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];

extern "C" fn on_signal(signal: libc::c_int) {
    let Ok(sig) = Signal::try_from(signal) else { return };
    if INTERRUPTED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        // A second signal: the user insists. Die of it now; the kernel still tears down our mount
        // namespace, and every sandbox dies with us (bubblewrap runs with --die-with-parent).
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: restoring the default disposition installs no Rust code as a handler, and
        // sigaction(2) is async-signal-safe.
        #[allow(unsafe_code)]
        let _ = unsafe { sigaction(sig, &default) };
        let _ = nix::sys::signal::raise(sig);
        return;
    }
    for slot in &RUNNING {
        let pgid = slot.load(Ordering::SeqCst);
        if pgid > 0 {
            let _ = kill(Pid::from_raw(-pgid), sig);
        }
    }
}

/// The signals that stop a build. SIGHUP is one of them: a closed terminal or a CI runner that
/// hangs up must not leave the build (and its work directories) running unattended.
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Install handlers for SIGINT, SIGTERM and SIGHUP that record the signal (see `interrupted`) and forward it
/// to the running sandboxes. A second signal kills the process with it (default action), for when
/// the engine does not stop soon enough. Safe to call more than once.
pub fn install_signal_handlers() -> Result<(), SysError> {
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for signal in STOP_SIGNALS {
        // SAFETY: `on_signal` is async-signal-safe: it only uses atomics, kill(2), sigaction(2) and
        // raise(3), never allocates or takes locks, so running it at any point of any thread is sound.
        #[allow(unsafe_code)]
        unsafe { sigaction(signal, &action) }.map_err(|source| SysError::SignalHandler { signal, source })?;
    }
    Ok(())
}

/// The signal number of the first SIGINT/SIGTERM/SIGHUP received since `install_signal_handlers`, if any.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// A running sandbox's process group, registered for signal forwarding while the guard lives.
pub struct Registration(Option<usize>);

impl Registration {
    pub fn new(pgid: i32) -> Self {
        let slot = RUNNING.iter().position(|s| s.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst).is_ok());
        Registration(slot)
    }
}

/// Tie a helper process to the build before it is spawned: its own process group (which
/// [`Registration`] forwards our stop signals to) and `PR_SET_PDEATHSIG(SIGKILL)`, so the kernel
/// kills it when osbuild-rs dies, even of SIGKILL. The death signal follows the *thread* that
/// spawns the child: spawn from the thread that also waits for it.
pub fn tie_to_build(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    cmd.process_group(0);
    let arm = move || -> std::io::Result<()> {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
        // We may have died between fork and prctl: then nobody would ever send the signal.
        if nix::unistd::getppid() != parent {
            let _ = nix::sys::signal::raise(Signal::SIGKILL);
        }
        Ok(())
    };
    // SAFETY: the closure runs in the forked child before exec; it only makes the prctl(2),
    // getppid(2) and kill(2) system calls (async-signal-safe), allocates nothing and takes no
    // locks, so it cannot deadlock on state another thread held at fork time.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(arm);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            RUNNING[i].store(0, Ordering::SeqCst);
        }
    }
}
