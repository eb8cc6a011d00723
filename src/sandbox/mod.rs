//! The sandbox: `plan` (pure) decides, `apply` carries out in the cloned child, `init` is the
//! step's PID 1, and this module is the supervisor that clones, maps ids, relays signals and
//! enforces the timeout. Every syscall and every `unsafe` lives in `sys`.

pub mod apply;
pub mod cgroup;
pub mod host;
pub mod init;
pub mod output;
pub mod plan;
pub mod report;
pub mod seccomp;
pub mod settings;

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::sys;

pub use plan::Plan;
use report::Message;

/// Namespaces every step gets.
const NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("preparing the supervisor: {0}")]
    Prepare(std::io::Error),
    #[error(
        "cannot create the sandbox's namespaces: {0} (are unprivileged user namespaces disabled? \
         check kernel.unprivileged_userns_clone, user.max_user_namespaces, and on Ubuntu 24.04 \
         kernel.apparmor_restrict_unprivileged_userns)"
    )]
    Clone(std::io::Error),
    #[error("writing {file} for the sandbox: {error}")]
    IdMap { file: String, error: std::io::Error },
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    #[error("cannot run {command}: {error}")]
    Exec {
        command: String,
        error: String,
        code: i32,
    },
    #[error("waiting for the step: {0}")]
    Wait(std::io::Error),
    #[error("starting the egress proxy: {0} (the step was not started)")]
    Egress(std::io::Error),
    /// `process.limits` asks for cgroup limits that cannot be had (`enforce: required`).
    #[error("{0}; the step was not started")]
    Limits(String),
}

impl SandboxError {
    /// The exit code stepjail ends with for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            SandboxError::Exec { code, .. } => *code,
            _ => crate::exit::SETUP,
        }
    }
}

/// How the step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code stepjail should end with.
    pub code: i32,
    pub timed_out: bool,
    /// The first signal stepjail itself received and relayed to the step (a cancellation).
    pub cancel_signal: Option<i32>,
    /// The first signal a process of the step sent to the step's PID 1.
    pub init_signal: Option<i32>,
    /// Informational lines from setup (landlock ABI and status).
    pub info: Vec<String>,
    /// The cgroup limit the step ran into (an OOM kill, a refused fork).
    pub limit: Option<cgroup::LimitHit>,
}

/// Runs the plan's command in a new sandbox and waits for it. Must be called while the process
/// is single-threaded: it forks. When the plan has egress, `start_egress` receives the
/// listeners the child made inside the step's namespace and starts serving them (this is where
/// threads may begin: the child exists by then); what it returns is kept alive until the step
/// ends.
pub fn run<G>(
    plan: &Plan,
    start_egress: impl FnOnce(crate::net::Listeners) -> std::io::Result<G>,
    output_filter: Option<&dyn Fn() -> Box<dyn output::Filter>>,
) -> Result<Outcome, SandboxError> {
    let prep = SandboxError::Prepare;
    reap_exited();
    // The step's cgroup exists before the clone: a `required` limit that cannot be had stops
    // the run before anything started, and the child can be moved in before it is released.
    let step_cgroup = match &plan.cgroup {
        Some(req) => {
            let cg = cgroup::StepCgroup::create(std::path::Path::new("/"), req)
                .map_err(SandboxError::Limits)?;
            if let Some(w) = &cg.warning {
                say!("stepjail: warning: {w}");
            }
            tracing::debug!(dirs = ?cg.dirs(), "step cgroup made");
            Some(cg)
        }
        None => None,
    };
    let (sync_r, sync_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| prep(e.into()))?;
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| prep(e.into()))?;
    // Block the signals we relay before cloning: the child inherits the mask, so its init loop
    // cannot miss one, and we read ours from a signalfd.
    let mut relay: Vec<libc::c_int> = init::FORWARDED.to_vec();
    relay.push(libc::SIGCHLD);
    let mask = sys::block_signals(&relay).map_err(prep)?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| prep(e.into()))?;

    let (net_ours, net_theirs) = if plan.egress {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| prep(e.into()))?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    // With an output filter the step writes into pipes that we copy out through it.
    let (out_ours, out_theirs) = match output_filter {
        Some(_) => {
            let (ours, theirs) = output::pipes(plan.merge_output).map_err(prep)?;
            (Some(ours), Some(theirs))
        }
        None => (None, None),
    };
    let child = match sys::clone_process(NAMESPACES).map_err(SandboxError::Clone)? {
        sys::Forked::Child => {
            drop((sync_w, report_r, sfd, net_ours, out_ours));
            apply::child(plan, sync_r, report_w, net_theirs, out_theirs)
        }
        sys::Forked::Parent { child } => child,
    };
    // The parent only: the child above emits nothing between the clone and execve.
    tracing::info!(pid = child, "sandbox child cloned");
    drop((sync_r, report_w, net_theirs, out_theirs));
    // One relay, and one filter, per pipe: stdout's first (with merged output, the only one).
    let relays: Vec<output::Relay> = match (out_ours, output_filter) {
        (Some(fds), Some(make)) => fds
            .into_iter()
            .enumerate()
            .map(|(i, fd)| {
                let to: Box<dyn std::io::Write + Send> = if i == 0 {
                    Box::new(std::io::stdout())
                } else {
                    Box::new(std::io::stderr())
                };
                output::Relay::new(fd, to, make())
            })
            .collect(),
        _ => Vec::new(),
    };
    let started = Instant::now();
    if let Err(e) = write_id_maps(child, &plan.identity) {
        sys::kill(child, libc::SIGKILL);
        let _ = waitpid(Pid::from_raw(child), None);
        return Err(e);
    }
    // Into the step's cgroup before the child is released: it has run no step code yet, and
    // everything it starts from here on is born inside.
    if let (Some(cg), Some(req)) = (&step_cgroup, &plan.cgroup)
        && let Err(e) = cg.attach(child)
    {
        match req.enforce {
            crate::policy::model::Enforce::Required => {
                sys::kill(child, libc::SIGKILL);
                let _ = waitpid(Pid::from_raw(child), None);
                return Err(SandboxError::Limits(e));
            }
            crate::policy::model::Enforce::BestEffort => {
                say!("stepjail: warning: {e}; the step runs without its cgroup limits")
            }
        }
    }
    // Release the child.
    tracing::debug!("identity maps written; releasing the child");
    sys::write_all(sync_w.as_fd(), b"1").map_err(SandboxError::Wait)?;
    drop(sync_w);
    let mut _egress = None;
    if let Some(sock) = net_ours {
        // The child sends the listeners before it finishes setup; nothing arrives if it failed,
        // and then `supervise` collects its report.
        let (fds, tag) = sys::recv_fds(sock.as_fd(), crate::net::Listeners::COUNT)
            .map_err(SandboxError::Wait)?;
        if let Some(listeners) = crate::net::Listeners::from_parts(fds, &tag) {
            match start_egress(listeners) {
                Ok(guard) => {
                    tracing::debug!("egress started on the step's listeners");
                    _egress = Some(guard)
                }
                Err(e) => {
                    // Fail closed: no proxy, no step.
                    sys::kill(child, libc::SIGKILL);
                    let _ = waitpid(Pid::from_raw(child), None);
                    return Err(SandboxError::Egress(e));
                }
            }
        }
    }
    let (mut outcome, reaped) = supervise(
        child,
        plan.timeout.map(|t| started + t),
        report_r,
        sfd,
        relays,
    )?;
    if !reaped {
        // The step is over and every process of it is gone; its PID 1 is exiting. The proxy
        // stops meanwhile (on the other core). With a step cgroup, which must be empty to be
        // finished, the PID 1 is reaped now; otherwise nothing waits for its exit (unmapping
        // its copy of our memory, tearing down the mount and other namespaces: 0.2-0.4 ms)
        // and it is reaped later (see `leave_exiting`).
        drop(_egress.take());
        if step_cgroup.is_some() {
            let _ = waitpid(Pid::from_raw(child), None);
        } else {
            leave_exiting(child);
        }
    }
    outcome.limit = step_cgroup.and_then(cgroup::StepCgroup::finish);
    // A step that failed after running into a limit failed because of it (an OOM-killed
    // process, a refused fork): one code says so, unless the runner cancelled it.
    if outcome.limit.is_some() && outcome.code != 0 && outcome.cancel_signal.is_none() {
        outcome.code = crate::exit::LIMIT;
    }
    Ok(outcome)
}

/// Inits that reported their step's end and were still exiting: our zombie children until
/// reaped (a zombie's pid is not reused, and `waitpid` on a pid takes only that child).
static EXITING: std::sync::Mutex<Vec<libc::pid_t>> = std::sync::Mutex::new(Vec::new());

/// Leaves an exiting init to finish on its own: every process of its step is already reaped
/// (it killed and waited for them before reporting), so only our own code is still running in
/// it, on its way out. It is reaped at the next sandbox's start in this process or, when this
/// process exits first, by whoever inherits it (the host's init or a subreaper).
fn leave_exiting(child: libc::pid_t) {
    if let Ok(WaitStatus::StillAlive) = waitpid(Pid::from_raw(child), Some(WaitPidFlag::WNOHANG)) {
        EXITING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
    }
}

/// Reaps, without waiting, the inits `leave_exiting` left that have finished.
fn reap_exited() {
    let mut exiting = EXITING.lock().unwrap_or_else(|e| e.into_inner());
    exiting.retain(|&pid| {
        matches!(
            waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        )
    });
}

fn write_id_maps(child: libc::pid_t, id: &plan::Identity) -> Result<(), SandboxError> {
    for (file, content) in [
        ("setgroups", id.setgroups().to_string()),
        ("uid_map", id.uid_map()),
        ("gid_map", id.gid_map()),
    ] {
        let path = format!("/proc/{child}/{file}");
        std::fs::write(&path, content.as_bytes())
            .map_err(|error| SandboxError::IdMap { file: path, error })?;
    }
    Ok(())
}

/// Waits for the child (the step's init), reading setup reports, relaying signals and
/// enforcing the deadline. Returns when the init reports the step's end (the init is then
/// still exiting: `false`, the caller reaps it or leaves it to finish) or when the init has
/// ended (`true`).
fn supervise(
    child: libc::pid_t,
    deadline: Option<Instant>,
    report_r: OwnedFd,
    sfd: SignalFd,
    mut relays: Vec<output::Relay>,
) -> Result<(Outcome, bool), SandboxError> {
    let mut report = std::fs::File::from(report_r);
    let mut report_open = true;
    let mut buf = Vec::new();
    let mut warned = 0;
    let mut timed_out = false;
    let mut cancel_signal = None;
    loop {
        let timeout = match deadline {
            Some(d) if !timed_out => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Killing the namespace's init kills every process in it.
                    tracing::debug!(pid = child, "timeout reached; killing the step's init");
                    sys::kill(child, libc::SIGKILL);
                    timed_out = true;
                    PollTimeout::NONE
                } else {
                    PollTimeout::try_from(left.min(Duration::from_secs(3600)))
                        .unwrap_or(PollTimeout::MAX)
                }
            }
            _ => PollTimeout::NONE,
        };
        let (sig_ready, report_ready, relay_ready) = {
            let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            if report_open {
                fds.push(PollFd::new(report.as_fd(), PollFlags::POLLIN));
            }
            let first_relay = fds.len();
            let open: Vec<usize> = (0..relays.len()).filter(|&i| relays[i].open).collect();
            for &i in &open {
                fds.push(PollFd::new(relays[i].fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(SandboxError::Wait(e.into())),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let relay_ready: Vec<usize> = open
                .iter()
                .enumerate()
                .filter(|(k, _)| ready(&fds[first_relay + k]))
                .map(|(_, &i)| i)
                .collect();
            (ready(&fds[0]), report_open && ready(&fds[1]), relay_ready)
        };
        for i in relay_ready {
            relays[i].pump();
        }
        if report_ready {
            let mut chunk = [0u8; 4096];
            match report.read(&mut chunk) {
                Ok(0) => report_open = false,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    print_warnings(&mut buf, &mut warned);
                    if let Some(code) = step_ended(&buf) {
                        tracing::info!(code, "the step ended; its init is exiting");
                        // The init closed its copies of the output pipes before saying so,
                        // and every process of the step is reaped: the pipes end.
                        for r in &mut relays {
                            r.drain();
                        }
                        let status = WaitStatus::Exited(Pid::from_raw(child), code);
                        let o = finish(status, timed_out, cancel_signal, None, buf)?;
                        return Ok((o, false));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SandboxError::Wait(e)),
            }
        }
        if sig_ready {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as libc::c_int;
                if sig != libc::SIGCHLD {
                    tracing::debug!(signal = sig, "relaying a signal to the step");
                    cancel_signal.get_or_insert(sig);
                    sys::kill(child, sig);
                }
            }
            match waitpid(Pid::from_raw(child), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status) => {
                    tracing::info!(?status, "the step's init ended");
                    // Every process of the step is gone: the pipes end; copy what is left.
                    for r in &mut relays {
                        r.drain();
                    }
                    let o = finish(status, timed_out, cancel_signal, Some(&mut report), buf)?;
                    return Ok((o, true));
                }
                Err(e) => return Err(SandboxError::Wait(e.into())),
            }
        }
    }
}

/// Prints warning lines as soon as they arrive (before the step's own output), once each;
/// `printed` counts the complete lines already looked at.
fn print_warnings(buf: &mut [u8], printed: &mut usize) {
    let text = String::from_utf8_lossy(buf);
    let complete: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    for line in complete.iter().skip(*printed) {
        if let Some(Message::Warning(w)) = Message::decode(line.trim_end_matches('\n')) {
            say!("stepjail: warning: {w}");
        }
    }
    *printed = complete.len();
}

/// The code of a complete `StepEnded` line in what the init has reported so far.
fn step_ended(buf: &[u8]) -> Option<i32> {
    String::from_utf8_lossy(buf)
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .find_map(|l| match Message::decode(l.trim_end_matches('\n')) {
            Some(Message::StepEnded(code)) => Some(code),
            _ => None,
        })
}

fn finish(
    status: WaitStatus,
    timed_out: bool,
    cancel_signal: Option<i32>,
    report: Option<&mut std::fs::File>,
    mut buf: Vec<u8>,
) -> Result<Outcome, SandboxError> {
    // The child is gone (or said it is done); whatever it wrote is in the pipe.
    if let Some(report) = report {
        let _ = report.read_to_end(&mut buf);
    }
    let mut info = Vec::new();
    let mut init_signal = None;
    for line in String::from_utf8_lossy(&buf).lines() {
        match Message::decode(line) {
            Some(Message::Info(s)) => info.push(s),
            Some(Message::InitSignalled(sig)) => init_signal = init_signal.or(Some(sig)),
            Some(Message::Warning(_)) => {}   // printed as it arrived
            Some(Message::StepEnded(_)) => {} // the status says the same
            Some(Message::SetupFailed(s)) => return Err(SandboxError::Setup(s)),
            Some(Message::ExecFailed { command, error }) => {
                let code = match status {
                    WaitStatus::Exited(_, c) => c,
                    _ => crate::exit::CANNOT_EXEC,
                };
                return Err(SandboxError::Exec {
                    command,
                    error,
                    code,
                });
            }
            None => {}
        }
    }
    let code = if timed_out {
        crate::exit::TIMEOUT
    } else {
        match status {
            WaitStatus::Exited(_, c) => c,
            WaitStatus::Signaled(_, Signal::SIGKILL, _) if info.is_empty() => {
                return Err(SandboxError::Setup(
                    "the sandbox was killed during setup".into(),
                ));
            }
            WaitStatus::Signaled(_, s, _) => 128 + s as i32,
            _ => crate::exit::SETUP,
        }
    };
    // Init exits 128+N when the step died of signal N. If the step sent N to init itself and
    // stepjail relayed no signal, nobody cancelled it: say so with a code of our own.
    let code = match init_signal {
        Some(sig) if !timed_out && cancel_signal.is_none() && code == 128 + sig => {
            crate::exit::INIT_SIGNALLED
        }
        _ => code,
    };
    Ok(Outcome {
        code,
        timed_out,
        cancel_signal,
        init_signal,
        info,
        limit: None,
    })
}
