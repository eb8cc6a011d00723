//! The step's PID 1: reaps every process, forwards signals, and when the step's first process
//! exits, kills whatever it left behind and exits with its status.
//!
//! It is the sandbox child itself (no exec): after setup it is not dumpable, holds no
//! capability and is under the same landlock and seccomp rules as the step, so the step can
//! neither read its memory nor signal it into doing anything but forwarding.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::sys;

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

/// Serves as the step's PID 1 until the step's first process exits. `report` is the pipe to
/// the supervisor: a signal sent to us from inside the sandbox (by the step) is reported there,
/// so that stepjail does not mistake it for a cancellation.
pub fn serve(step: libc::pid_t, report: OwnedFd) -> ! {
    // The supervisor blocked these (and SIGCHLD) before cloning us, so none is lost between
    // the fork of the step and this loop: blocked signals stay pending until read here.
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(Signal::SIGCHLD);
    for &s in FORWARDED {
        if let Ok(s) = Signal::try_from(s) {
            set.add(s);
        }
    }
    // A signalfd rather than sigwait: it says who sent the signal. The supervisor is outside
    // our PID namespace, so its signals (and the kernel's) arrive with sender pid 0.
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC);
    let mut reported = false;
    loop {
        if let Some(code) = reap(step) {
            // The step is done: nothing it started may outlive it.
            sys::kill(-1, libc::SIGKILL);
            while waitpid(None, None).is_ok() {}
            // Our copies of the step's output pipes (the supervisor's filter, when there is
            // one) close here, so the supervisor sees them end; then it is told the step is
            // over, and stops the proxy while this process exits (unmapping its memory and
            // unmounting the sandbox take most of a millisecond).
            sys::close_stdout_stderr();
            super::report::send(report.as_fd(), &super::report::Message::StepEnded(code));
            sys::exit_now(code);
        }
        let (sig, sender) = match &sfd {
            Ok(fd) => match fd.read_signal() {
                Ok(Some(info)) => (info.ssi_signo as libc::c_int, info.ssi_pid),
                Ok(None) | Err(_) => continue,
            },
            Err(_) => match set.wait() {
                Ok(s) => (s as libc::c_int, 0),
                Err(_) => continue,
            },
        };
        if sig == libc::SIGCHLD {
            continue;
        }
        if sender != 0 && !reported {
            super::report::send(report.as_fd(), &super::report::Message::InitSignalled(sig));
            reported = true;
        }
        // The step leads its own session and process group: signal all of it.
        sys::kill(-step, sig);
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
