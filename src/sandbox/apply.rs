//! Carrying out a [`Plan`] inside the freshly cloned child. The whole setup order is in
//! [`setup`], top to bottom; each ordering constraint says why.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
};

use super::plan::{HiddenKind, MountOp, Plan, Rlimit};
use super::{report, seccomp};
use crate::sys;

/// The highest landlock ABI whose rights stepjail asks for. Rights of newer ABIs than the
/// kernel's are dropped by the crate's best-effort mode, and reported.
const LANDLOCK_TARGET: ABI = ABI::V9;

/// A failing setup step: which step, and the OS error.
#[derive(Debug)]
pub struct SetupError {
    pub step: String,
    pub error: io::Error,
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.error)
    }
}

trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupError>;
}

impl<T, E: Into<io::Error>> Step<T> for Result<T, E> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupError> {
        self.map_err(|e| SetupError {
            step: what(),
            error: e.into(),
        })
    }
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// The sandbox child: set everything up, start the step, then serve as its PID 1.
/// Never returns; exits 125 (after reporting why) if setup fails.
pub fn child(
    plan: &Plan,
    sync: OwnedFd,
    report_fd: OwnedFd,
    net_fd: Option<OwnedFd>,
    output: Option<[OwnedFd; 2]>,
) -> ! {
    // The step's stdout and stderr become the supervisor's pipes (to be filtered) before
    // anything else can write to them.
    if let Some([out, err]) = output {
        let moved = nix::unistd::dup2_stdout(out.as_fd())
            .and_then(|_| nix::unistd::dup2_stderr(err.as_fd()));
        if let Err(e) = moved {
            report::send(
                report_fd.as_fd(),
                &report::Message::SetupFailed(format!("redirecting output: {e}")),
            );
            sys::exit_now(crate::exit::SETUP);
        }
    }
    match setup(plan, sync, &report_fd, net_fd) {
        Ok(step_pid) => {
            // The step holds the write end until it execs (close-on-exec); ours stays open for
            // init's own report (a signal the step sent it), so EOF comes when init exits.
            super::init::serve(step_pid, report_fd)
        }
        Err(e) => {
            report::send(
                report_fd.as_fd(),
                &report::Message::SetupFailed(e.to_string()),
            );
            sys::exit_now(crate::exit::SETUP)
        }
    }
}

/// The setup recipe. Returns the PID (in the new namespace) of the started step.
fn setup(
    plan: &Plan,
    sync: OwnedFd,
    report_fd: &OwnedFd,
    net_fd: Option<OwnedFd>,
) -> Result<libc::pid_t, SetupError> {
    // Die with the supervisor. Set before waiting on it, so a supervisor that dies in between
    // is seen as EOF below rather than missed.
    sys::set_pdeathsig(libc::SIGKILL).step(|| "PR_SET_PDEATHSIG".into())?;
    // The supervisor writes our uid/gid maps, then releases us; EOF means it died.
    wait_for_supervisor(sync)?;
    // Descriptors inherited from whoever ran stepjail must not reach the step.
    let mut keep = vec![report_fd.as_raw_fd()];
    keep.extend(net_fd.as_ref().map(|f| f.as_raw_fd()));
    sys::close_fds_from(3, &keep).step(|| "closing inherited descriptors".into())?;
    // Become the step's user before touching the filesystem, so paths resolve with its rights.
    let id = &plan.identity;
    sys::switch_identity(id.uid, id.gid, id.privileged)
        .step(|| format!("switching to uid {} gid {}", id.uid, id.gid))?;
    nix::unistd::sethostname(&plan.hostname).step(|| "setting the hostname".into())?;
    sys::loopback_up().step(|| "bringing up lo".into())?;
    // The step's network, when it has one (see `net`): the capture rules and routes (or the
    // TUN fallback's device) on a thread of ours while this thread binds the listeners and
    // makes the mounts. `/dev/net/tun` is opened here, before /dev is replaced, in case the
    // fallback needs it. The thread is joined before anything that is per thread
    // (no_new_privs, landlock, capabilities, seccomp), so the step starts from one thread whose
    // network is finished, or does not start. After `lo` is up: bringing it up and changing
    // the namespace's network both hold the kernel's network configuration lock.
    let net_thread = match &net_fd {
        Some(_) => {
            let tun = crate::net::open_tun();
            let thread = std::thread::Builder::new()
                .name("stepjail-net".into())
                .spawn(move || crate::net::make_network(tun))
                .step(|| "starting the network set-up thread".into())?;
            Some(thread)
        }
        None => None,
    };
    let bound = match &net_fd {
        Some(_) => Some(crate::net::listen().step(|| "building the step's network".into())?),
        None => None,
    };
    // Bind sources are opened before any mount can cover them (a workspace under /tmp).
    let sources: Vec<OwnedFd> = plan
        .sources
        .iter()
        .map(|p| sys::open_path(p).step(|| format!("opening {}", p.display())))
        .collect::<Result<_, _>>()?;
    for op in &plan.mounts {
        mount_op(op, &sources)?;
    }
    drop(sources);
    // The listeners and the NFLOG socket (or the TUN queue) go to the supervisor, which starts serving them while
    // the step is still being set up; we keep no copy.
    if let (Some(net_fd), Some(thread), Some(bound)) = (net_fd, net_thread, bound) {
        let network = thread
            .join()
            .map_err(|_| other("the network set-up thread panicked".into()))
            .and_then(|r| r)
            .step(|| "building the step's network".into())?;
        let (listeners, capture) = crate::net::assemble(bound, network);
        let warning = match capture {
            crate::net::Capture::Kernel => None,
            crate::net::Capture::Userspace(why) => Some(format!(
                "captured TCP falls back to a userspace TCP stack ({why}): tools that ignore \
                 HTTP(S)_PROXY get about 0.03-0.2x the proxy's throughput"
            )),
            crate::net::Capture::Off(why) => Some(format!(
                "transparent capture is off ({why}): only tools that use HTTP(S)_PROXY reach the network"
            )),
        };
        if let Some(warning) = warning {
            report::send(report_fd.as_fd(), &report::Message::Warning(warning));
        }
        let (fds, tag) = listeners.into_parts();
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        sys::send_fds(net_fd.as_fd(), &raw, tag)
            .step(|| "handing the listeners to the supervisor".into())?;
    }
    // no_new_privs before landlock and seccomp (both require it without CAP_SYS_ADMIN), and so
    // that setuid binaries and file capabilities gain nothing from here on.
    sys::set_no_new_privs().step(|| "PR_SET_NO_NEW_PRIVS".into())?;
    let landlock = apply_landlock(plan)?;
    report::send(report_fd.as_fd(), &report::Message::Info(landlock));
    // Capabilities go after the last operation that needs them (mounts, hostname, landlock).
    drop_capabilities()?;
    // Dropping capabilities resets the parent-death signal and the dumpable flag; set both
    // again. Not dumpable: the step (same uid) cannot read our memory or environment via /proc.
    sys::set_pdeathsig(libc::SIGKILL).step(|| "PR_SET_PDEATHSIG".into())?;
    sys::set_dumpable(false).step(|| "PR_SET_DUMPABLE".into())?;
    // seccomp last: it forbids mount, unshare and friends that the steps above used.
    let filters = seccomp::build()
        .map_err(|e| other(e.to_string()))
        .step(|| "building the seccomp filter".into())?;
    for prog in filters {
        seccompiler::apply_filter(&prog)
            .map_err(|e| other(e.to_string()))
            .step(|| "installing seccomp".into())?;
    }
    start_step(plan, report_fd)
}

fn wait_for_supervisor(sync: OwnedFd) -> Result<(), SetupError> {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(&sync, &mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => sys::exit_now(crate::exit::SETUP), // supervisor gone: nobody to report to
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).step(|| "waiting for the supervisor".into()),
        }
    }
}

fn proc_fd(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn mount_op(op: &MountOp, sources: &[OwnedFd]) -> Result<(), SetupError> {
    use libc::{MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_REC};
    let desc = || format!("{op:?}");
    match op {
        MountOp::MakePrivate => {
            sys::mount(None, Path::new("/"), None, MS_REC | MS_PRIVATE, None).step(desc)
        }
        MountOp::ReadOnlyEverything => sys::mount_setattr(
            Path::new("/"),
            true,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID,
            0,
        )
        .step(desc),
        MountOp::Proc => sys::mount(
            Some(Path::new("proc")),
            Path::new("/proc"),
            Some("proc"),
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            None,
        )
        .step(desc),
        MountOp::Tmpfs { target, mode } => {
            // A skeleton directory under /tmp is missing from the step's private /tmp.
            make_mountpoint(target, true).step(desc)?;
            sys::mount(
                Some(Path::new("tmpfs")),
                target,
                Some("tmpfs"),
                MS_NOSUID | MS_NODEV,
                Some(&format!("mode={mode:o}")),
            )
            .step(desc)
        }
        MountOp::Dev => minimal_dev().step(desc),
        MountOp::TmpFile { target, content } => write_tmp_file(target, content).step(desc),
        MountOp::BindWritable { source, target } => {
            make_mountpoint(target, true).step(desc)?;
            sys::mount(
                Some(&proc_fd(&sources[*source])),
                target,
                None,
                MS_BIND | MS_REC,
                None,
            )
            .step(desc)?;
            // The source mount was made read-only with everything else; lift that here only.
            sys::mount_setattr(target, false, 0, sys::MOUNT_ATTR_RDONLY).step(desc)
        }
        MountOp::ReadOnly { target } => {
            sys::mount(Some(target), target, None, MS_BIND | MS_REC, None).step(desc)?;
            sys::mount_setattr(target, true, sys::MOUNT_ATTR_RDONLY, 0).step(desc)
        }
        MountOp::Hide { target, kind } => match hide(target, *kind) {
            // Gone since the host was surveyed (a service removed its socket): nothing to cover.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.step(desc),
        },
        MountOp::File { target, content } => cover_file(target, content).step(desc),
        MountOp::Seal { target } => {
            sys::mount_setattr(target, false, sys::MOUNT_ATTR_RDONLY, 0).step(desc)
        }
        MountOp::BindFile {
            source,
            target,
            writable,
        } => {
            make_mountpoint(target, false).step(desc)?;
            sys::mount(
                Some(&proc_fd(&sources[*source])),
                target,
                None,
                MS_BIND,
                None,
            )
            .step(desc)?;
            let (set, clear) = if *writable {
                (0, sys::MOUNT_ATTR_RDONLY)
            } else {
                (sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOEXEC, 0)
            };
            sys::mount_setattr(target, false, set, clear).step(desc)
        }
    }
}

/// Creates a directory (and its parents) to mount on, when it is missing. Missing mountpoints
/// can only be created in tmpfs mounts of our own: the host's tree is read-only by now.
fn make_mountpoint(target: &Path, dir: bool) -> io::Result<()> {
    if target.symlink_metadata().is_ok() {
        return Ok(());
    }
    if dir {
        std::fs::create_dir_all(target)
    } else {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(target).map(drop)
    }
}

const HIDDEN_FILE: &str = "/dev/.stepjail-hidden";

/// Binds a read-only file with `content` over `target` (following a symlink at `target`, as
/// /etc/resolv.conf often is). The content is staged in our /dev before it is sealed.
fn cover_file(target: &Path, content: &str) -> io::Result<()> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staged = Path::new("/dev").join(format!(".stepjail-{name}"));
    std::fs::write(&staged, content)?;
    sys::mount(Some(&staged), target, None, libc::MS_BIND, None)?;
    sys::mount_setattr(target, false, sys::MOUNT_ATTR_RDONLY, 0)
}

/// Writes a profile's file into the freshly mounted, still empty private /tmp (nothing else
/// runs yet, so no link can be waiting there).
fn write_tmp_file(target: &Path, content: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = target.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(target)?
        .write_all(content.as_bytes())
}

/// Covers `target`: directories with an empty read-only tmpfs of mode 000, anything else with a
/// read-only bind of an empty mode-000 file. Neither can be read, listed, connected to, or
/// have its mode changed (the cover is read-only); the step has no capability to bypass modes.
fn hide(target: &Path, kind: HiddenKind) -> io::Result<()> {
    use libc::{MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID};
    match kind {
        HiddenKind::Dir => {
            let flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
            sys::mount(
                Some(Path::new("tmpfs")),
                target,
                Some("tmpfs"),
                flags,
                Some("mode=000,size=4k"),
            )?;
        }
        HiddenKind::File => sys::mount(Some(Path::new(HIDDEN_FILE)), target, None, MS_BIND, None)?,
    }
    sys::mount_setattr(
        target,
        false,
        sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOEXEC,
        0,
    )
}

/// A minimal /dev on a private tmpfs: the harmless character devices (bound from the host's
/// /dev, since creating device nodes needs privileges we do not have), a private devpts, shm.
fn minimal_dev() -> io::Result<()> {
    use libc::{MS_BIND, MS_NOEXEC, MS_NOSUID};
    const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
    // Open the host's nodes before our tmpfs covers them.
    let nodes: Vec<(&str, OwnedFd)> = DEVICES
        .iter()
        .map(|d| sys::open_path(&Path::new("/dev").join(d)).map(|fd| (*d, fd)))
        .collect::<io::Result<_>>()?;
    let dev = Path::new("/dev");
    sys::mount(
        Some(Path::new("tmpfs")),
        dev,
        Some("tmpfs"),
        MS_NOSUID | MS_NOEXEC,
        Some("mode=755"),
    )?;
    for (name, fd) in &nodes {
        let target = dev.join(name);
        std::fs::File::create(&target)?;
        sys::mount(Some(&proc_fd(fd)), &target, None, MS_BIND, None)?;
    }
    std::fs::create_dir(dev.join("pts"))?;
    sys::mount(
        Some(Path::new("devpts")),
        &dev.join("pts"),
        Some("devpts"),
        MS_NOSUID | MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )?;
    std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"))?;
    std::fs::create_dir(dev.join("shm"))?;
    sys::mount(
        Some(Path::new("tmpfs")),
        &dev.join("shm"),
        Some("tmpfs"),
        MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777"),
    )?;
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))?;
    }
    // The empty file that hidden paths are covered with; sealed read-only with the rest of /dev.
    let f = std::fs::File::create(HIDDEN_FILE)?;
    nix::sys::stat::fchmod(f.as_fd(), nix::sys::stat::Mode::empty())?;
    Ok(())
}

/// landlock: everything readable and executable, writable only where the plan says, abstract
/// unix sockets and signals scoped to the sandbox. Returns the line that reports what applied.
fn apply_landlock(plan: &Plan) -> Result<String, SetupError> {
    let kernel = sys::landlock_abi();
    if let Some(min) = plan.landlock.min_abi
        && kernel < min
    {
        return Err(SetupError {
            step: "landlock".into(),
            error: other(format!(
                "the profile requires landlock ABI {min}, this kernel has {kernel}"
            )),
        });
    }
    let err = |e: landlock::RulesetError| SetupError {
        step: "landlock".into(),
        error: other(e.to_string()),
    };
    let pfd = |p: &Path| {
        PathFd::new(p).map_err(|e| SetupError {
            step: format!("landlock rule for {}", p.display()),
            error: other(e.to_string()),
        })
    };
    // Ask for exactly what this kernel has (up to what we know), so "fully enforced" means it.
    let applied = kernel.min(LANDLOCK_TARGET as u32);
    let abi = ABI::from(applied as i32);
    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi);
    let mut writable: Vec<PathBuf> = vec!["/tmp".into(), "/dev/shm".into()];
    writable.extend(plan.writable.iter().cloned());
    let mut rs = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(err)?
        .scope(if applied >= 6 {
            Scope::AbstractUnixSocket | Scope::Signal
        } else {
            landlock::BitFlags::EMPTY
        })
        .map_err(err)?
        .create()
        .map_err(err)?
        .add_rule(PathBeneath::new(pfd(Path::new("/"))?, read))
        .map_err(err)?
        // Terminals and the harmless devices: read, write, and ioctl (tcgetattr and friends).
        .add_rule(PathBeneath::new(
            pfd(Path::new("/dev"))?,
            read | AccessFs::WriteFile | AccessFs::IoctlDev | AccessFs::Truncate,
        ))
        .map_err(err)?;
    for p in &writable {
        // A file rule may only hold file rights (a step's own GITHUB_ENV, for one).
        let rights = if p.is_dir() {
            all
        } else {
            AccessFs::from_file(abi)
        };
        rs = rs
            .add_rule(PathBeneath::new(pfd(p)?, rights))
            .map_err(err)?;
    }
    let status = rs.restrict_self().map_err(err)?;
    let state = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced (kernel without landlock)",
    };
    if plan.landlock.min_abi.is_some() && status.ruleset == RulesetStatus::NotEnforced {
        return Err(SetupError {
            step: "landlock".into(),
            error: other("landlock not enforced".into()),
        });
    }
    Ok(format!(
        "landlock: ABI {applied} applied (kernel ABI {kernel}), {state}"
    ))
}

/// Empties every capability set, bounding and ambient included, and locks the securebits so
/// that even uid 0 regains nothing at execve.
fn drop_capabilities() -> Result<(), SetupError> {
    use caps::CapSet;
    let e = |what: &str| {
        let what = what.to_string();
        move |err: caps::errors::CapsError| SetupError {
            step: format!("dropping capabilities ({what})"),
            error: other(err.to_string()),
        }
    };
    caps::clear(None, CapSet::Ambient).map_err(e("ambient"))?;
    // Bounding and securebits need CAP_SETPCAP, so they go before the effective set.
    for cap in caps::runtime::thread_all_supported() {
        caps::drop(None, CapSet::Bounding, cap).map_err(e("bounding"))?;
    }
    sys::lock_securebits().step(|| "locking securebits".into())?;
    caps::clear(None, CapSet::Inheritable).map_err(e("inheritable"))?;
    caps::clear(None, CapSet::Effective).map_err(e("effective"))?;
    caps::clear(None, CapSet::Permitted).map_err(e("permitted"))?;
    Ok(())
}

/// Forks the step's first process, which becomes a session leader (detached from the caller's
/// controlling terminal: with TIOCSTI refused by seccomp it cannot type into it) and execs.
fn start_step(plan: &Plan, report_fd: &OwnedFd) -> Result<libc::pid_t, SetupError> {
    // Everything exec needs is prepared before the fork, so the child only makes syscalls.
    let argv: Vec<CString> = plan
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let envp: Vec<CString> = plan
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
        .collect::<Result<_, _>>()?;
    let path_var = plan
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let candidates: Vec<CString> = exec_candidates(&plan.argv[0], path_var)
        .iter()
        .map(|p| cstring(p.as_os_str().as_bytes()))
        .collect::<Result<_, _>>()?;
    // Where the profile sets no limit that would bind this process too (address space, CPU
    // time, processes), the step is spawned without copying this process (see `sys::spawn`):
    // its limits and working directory are set here and inherited. Otherwise it is forked
    // and sets them itself.
    let spawnable = plan
        .rlimits
        .iter()
        .all(|(r, _)| matches!(r, Rlimit::CoreSize | Rlimit::FileSize | Rlimit::OpenFiles));
    if spawnable {
        return spawn_step(plan, report_fd, &candidates, &argv, &envp);
    }
    let cwd = plan.cwd.clone();
    match sys::fork().step(|| "forking the step".into())? {
        sys::Forked::Parent { child } => Ok(child),
        sys::Forked::Child => {
            let fail = |m: report::Message, code: i32| -> ! {
                report::send(report_fd.as_fd(), &m);
                sys::exit_now(code)
            };
            if let Err(e) = sys::reset_signals().and_then(|_| sys::setsid()) {
                fail(
                    report::Message::SetupFailed(format!("preparing the step: {e}")),
                    crate::exit::SETUP,
                );
            }
            for (r, v) in &plan.rlimits {
                if let Err(e) = sys::set_rlimit(rlimit_resource(*r), *v) {
                    fail(
                        report::Message::SetupFailed(format!("setting {r:?} limit: {e}")),
                        crate::exit::SETUP,
                    );
                }
            }
            if let Err(e) = std::env::set_current_dir(&cwd) {
                fail(
                    report::Message::SetupFailed(format!("entering {}: {e}", cwd.display())),
                    crate::exit::SETUP,
                );
            }
            // Like execvp: try each PATH entry; remember a permission error over "not found".
            let mut search = ExecSearch::new();
            for c in &candidates {
                search.failed(sys::execve(c, &argv, &envp));
            }
            let (message, code) = search.failure(plan);
            fail(message, code)
        }
    }
}

/// The step started with `sys::spawn`: the limits (none of which binds this process, which
/// only waits from here on) and the working directory are set here first; PATH is searched as
/// execvp does (the first candidate that runs; a permission error is remembered over "not
/// found"). A failure is reported and ends this process with the code the step would have had.
fn spawn_step(
    plan: &Plan,
    report_fd: &OwnedFd,
    candidates: &[CString],
    argv: &[CString],
    envp: &[CString],
) -> Result<libc::pid_t, SetupError> {
    for (r, v) in &plan.rlimits {
        sys::set_rlimit(rlimit_resource(*r), *v).step(|| format!("setting {r:?} limit"))?;
    }
    std::env::set_current_dir(&plan.cwd).step(|| format!("entering {}", plan.cwd.display()))?;
    let mut search = ExecSearch::new();
    for c in candidates {
        // A PATH entry without the command costs a stat here instead of a spawn (each spawn
        // is a clone and an exec that fails), so only candidates that exist are spawned.
        if let Err(e) = nix::unistd::access(c.as_c_str(), nix::unistd::AccessFlags::F_OK)
            && (e == nix::errno::Errno::ENOENT || e == nix::errno::Errno::ENOTDIR)
        {
            continue;
        }
        match sys::spawn(c, argv, envp) {
            Ok(pid) => return Ok(pid),
            Err(e) => search.failed(e),
        }
    }
    let (message, code) = search.failure(plan);
    report::send(report_fd.as_fd(), &message);
    sys::exit_now(code)
}

/// The worst error of a PATH search, as execvp keeps it: a permission error (or any other)
/// over "not found".
struct ExecSearch {
    worst: io::Error,
}

impl ExecSearch {
    fn new() -> ExecSearch {
        ExecSearch {
            worst: io::Error::from_raw_os_error(libc::ENOENT),
        }
    }

    /// One candidate failed with `e`.
    fn failed(&mut self, e: io::Error) {
        if e.raw_os_error() != Some(libc::ENOENT) && e.raw_os_error() != Some(libc::ENOTDIR) {
            self.worst = e;
        }
    }

    /// What is reported when no candidate ran, and the exit code the step gets.
    fn failure(self, plan: &Plan) -> (report::Message, i32) {
        let code = if self.worst.raw_os_error() == Some(libc::ENOENT) {
            crate::exit::NOT_FOUND
        } else {
            crate::exit::CANNOT_EXEC
        };
        let message = report::Message::ExecFailed {
            command: plan.argv[0].clone(),
            error: self.worst.to_string(),
        };
        (message, code)
    }
}

fn cstring(b: &[u8]) -> Result<CString, SetupError> {
    CString::new(b).step(|| "a NUL byte in the command or environment".into())
}

/// Where to look for `cmd`: itself if it has a slash, else each `PATH` entry.
pub fn exec_candidates(cmd: &str, path: &str) -> Vec<PathBuf> {
    if cmd.contains('/') {
        return vec![PathBuf::from(cmd)];
    }
    path.split(':')
        .map(|d| {
            if d.is_empty() {
                Path::new(".").join(cmd)
            } else {
                Path::new(d).join(cmd)
            }
        })
        .collect()
}

fn rlimit_resource(r: Rlimit) -> sys::RlimitResource {
    match r {
        Rlimit::OpenFiles => libc::RLIMIT_NOFILE,
        Rlimit::FileSize => libc::RLIMIT_FSIZE,
        Rlimit::Processes => libc::RLIMIT_NPROC,
        Rlimit::CpuSeconds => libc::RLIMIT_CPU,
        Rlimit::AddressSpace => libc::RLIMIT_AS,
        Rlimit::CoreSize => libc::RLIMIT_CORE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lookup_follows_path_like_execvp() {
        assert_eq!(exec_candidates("./x", "/bin"), vec![PathBuf::from("./x")]);
        assert_eq!(
            exec_candidates("sh", "/usr/bin::/bin"),
            vec![
                PathBuf::from("/usr/bin/sh"),
                PathBuf::from("./sh"),
                PathBuf::from("/bin/sh")
            ]
        );
    }
}
