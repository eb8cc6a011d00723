//! The step's PID 1: reaps every process, forwards signals, and when the step's first process
//! exits, kills whatever it left behind and exits with its status.
//!
//! It is the sandbox child itself (no exec): after setup it is not dumpable, holds no
//! capability and is under the same landlock and seccomp rules as the step, so the step can
//! neither read its memory nor signal it into doing anything but forwarding.

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::sys;

/// Signals the supervisor forwards to the step (through us).
pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The exit code that reports `status` to the supervisor: the code, or 128+N for signal N.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

pub fn serve(step: libc::pid_t) -> ! {
    // The supervisor blocked these (and SIGCHLD) before cloning us, so none is lost between
    // the fork of the step and this loop: blocked signals stay pending until sigwait.
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(Signal::SIGCHLD);
    for &s in FORWARDED {
        if let Ok(s) = Signal::try_from(s) {
            set.add(s);
        }
    }
    loop {
        if let Some(code) = reap(step) {
            // The step is done: nothing it started may outlive it.
            sys::kill(-1, libc::SIGKILL);
            while waitpid(None, None).is_ok() {}
            sys::exit_now(code);
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                // The step leads its own session and process group: signal all of it.
                sys::kill(-step, sig as libc::c_int);
            }
        }
    }
}

/// Reaps every exited child; returns the exit code once the step's first process is among them.
fn reap(step: libc::pid_t) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(status) if status.pid() == Some(Pid::from_raw(step)) => return exit_code(status),
            Ok(_) => continue,
        }
    }
}
