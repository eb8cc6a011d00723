//! Every raw syscall stepjail makes, and every `unsafe` block in the crate.
//!
//! The rest of the crate is safe Rust (`unsafe_code` is denied crate-wide). Functions here are
//! thin: they take plain values, make one syscall (or a tightly coupled few) and turn the result
//! into `io::Result`. Deciding *what* to do is the plan's job.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The result of [`clone_process`] in each process.
pub enum Forked {
    Parent { child: libc::pid_t },
    Child,
}

/// `clone(2)` with fork semantics (no new stack: the child gets a copy-on-write copy of ours)
/// and the given namespace flags. The child is signalled to us with SIGCHLD like a fork.
pub fn clone_process(ns_flags: libc::c_int) -> io::Result<Forked> {
    // SAFETY: with a NULL stack pointer, raw clone behaves like fork(2): the child continues on a
    // copy of the caller's stack. The caller guarantees the process is single-threaded (this is
    // called before any thread or async runtime exists), so no lock can be held by another
    // thread at the time of the copy. The remaining arguments (ptid, ctid, tls) are unused
    // because CLONE_PARENT_SETTID/CHILD_SETTID/SETTLS are not in the flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (ns_flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match check(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            child: pid as libc::pid_t,
        }),
    }
}

/// Plain `fork(2)`; used inside the sandbox by the step's init.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: called in the sandbox's init, which is single-threaded (it was cloned from a
    // single-threaded parent and never starts threads). The child only calls async-signal-safe
    // functions or execs.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent {
            child: child.as_raw(),
        }),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only; none of the options used here take pointers.
    check_int(unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(drop)
}

pub fn set_pdeathsig(sig: libc::c_int) -> io::Result<()> {
    prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong)
}

pub fn set_dumpable(on: bool) -> io::Result<()> {
    prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong)
}

pub fn set_no_new_privs() -> io::Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
}

/// SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | its lock | SECBIT_KEEP_CAPS_LOCKED
/// | SECBIT_NO_CAP_AMBIENT_RAISE | its lock: uid 0 gains nothing at exec, and nothing can undo that.
pub fn lock_securebits() -> io::Result<()> {
    const SECURE_ALL: libc::c_ulong = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80;
    prctl(libc::PR_SET_SECUREBITS, SECURE_ALL)
}

/// `mount(2)`. `source`/`fstype`/`data` may be absent.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(|s| CString::new(s).expect("no NUL in fs type"));
    let data = data.map(|s| CString::new(s).expect("no NUL in mount data"));
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either NULL or points at a NUL-terminated string that outlives
    // the call.
    check_int(unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data) as *const libc::c_void,
        )
    })
    .map(drop)
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` on the mount at `path` (and, if `recursive`, every mount below it).
pub fn mount_setattr(path: &Path, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    let path = cstr(path)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let flags: libc::c_uint = if recursive {
        libc::AT_RECURSIVE as libc::c_uint
    } else {
        0
    };
    // SAFETY: `path` is NUL-terminated and `attr` is a correctly laid out `struct mount_attr`
    // whose size we pass; both outlive the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Opens `path` with `O_PATH | O_CLOEXEC` (following symlinks), for binding it later even if
/// the path itself gets covered by another mount.
pub fn open_path(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: `c` is NUL-terminated; on success the kernel returns a fresh descriptor we own.
    let fd = check_int(unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` is a valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Closes descriptors 1 and 2 (a process about to exit that must not hold a pipe open).
pub fn close_stdout_stderr() {
    // SAFETY: closing descriptors this process owns; nothing here uses them afterwards.
    unsafe {
        libc::close(1);
        libc::close(2);
    }
}

/// Closes every descriptor from `first` upward except those in `keep`.
pub fn close_fds_from(first: RawFd, keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= first).collect();
    keep.sort_unstable();
    let mut lo = first;
    for k in keep.into_iter().chain(std::iter::once(RawFd::MAX)) {
        if k > lo {
            let hi = if k == RawFd::MAX {
                u32::MAX
            } else {
                (k - 1) as u32
            };
            // SAFETY: close_range only closes descriptors; the kept ones are outside the range.
            // Nothing in this single-threaded process holds borrowed fds in that range.
            // (The raw syscall: musl has no close_range wrapper.)
            check(unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    lo as libc::c_uint,
                    hi,
                    0 as libc::c_uint,
                )
            })?;
        }
        lo = k.saturating_add(1);
    }
    Ok(())
}

/// Brings the loopback interface up in the current network namespace.
pub fn loopback_up() -> io::Result<()> {
    link_up("lo")
}

/// The landlock ABI version the running kernel supports (0 when landlock is unavailable).
pub fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attribute pointer, size 0 and the VERSION flag, the syscall only
    // returns the ABI number (or an error); it touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 { 0 } else { r as u32 }
}

/// setresgid/setgroups/setresuid to `uid`/`gid`. `drop_groups` needs setgroups to be allowed.
pub fn switch_identity(uid: u32, gid: u32, drop_groups: bool) -> io::Result<()> {
    if drop_groups {
        // SAFETY: an empty group list; the pointer is not read when the size is 0.
        check_int(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    }
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::setresuid(uid, uid, uid) }).map(drop)
}

/// Puts SIGPIPE back to its default (Rust's runtime ignores it), so that a command that only
/// prints, piped into `head`, ends quietly when the pipe closes, as `cat` would, instead of
/// panicking on the write error. Never for a command that serves the proxy: a client's close
/// must not kill it.
pub fn default_sigpipe() {
    // SAFETY: installing SIG_DFL for SIGPIPE is always valid.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Restores default dispositions for every catchable signal and unblocks them all, so the step
/// starts as if exec'd by a shell (blocked masks and ignored signals survive execve otherwise).
pub fn reset_signals() -> io::Result<()> {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL is always valid; errors (for reserved signals) are ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // glibc refuses its two internal signals (32 and 33) above, and a stepjail started by a
    // glibc posix_spawn (Rust's Command, say) inherits them ignored: an ignored signal stays
    // ignored across exec. The kernel's rt_sigaction takes them. `struct kernel_sigaction`:
    // handler, flags, restorer, mask; all zero is SIG_DFL.
    for sig in [32, 33] {
        let act = [0usize; 4];
        // SAFETY: `act` is a valid kernel_sigaction (SIG_DFL) of the size passed; no old
        // action is asked for. This process is single-threaded and about to exec.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                act.as_ptr(),
                std::ptr::null_mut::<u8>(),
                8usize,
            )
        };
    }
    let empty = nix::sys::signal::SigSet::empty();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    )
    .map_err(io::Error::from)
}

/// Sets `SIG` to be caught by a handler that does nothing, so PID 1 of a PID namespace receives
/// it (signals without a handler are dropped for a namespace init) and `sigwait`-style loops see it.
pub fn block_signals(sigs: &[libc::c_int]) -> io::Result<nix::sys::signal::SigSet> {
    let mut set = nix::sys::signal::SigSet::empty();
    for &s in sigs {
        set.add(nix::sys::signal::Signal::try_from(s).map_err(io::Error::from)?);
    }
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(io::Error::from)?;
    Ok(set)
}

/// `execve(2)`. Returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: `path` and every element are NUL-terminated strings that live until the call
    // returns; both arrays are NULL-terminated.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// `posix_spawn(3)` of `path` as a new session leader with every signal at its default
/// disposition and none blocked (what [`reset_signals`] and [`setsid`] do after a fork), in the
/// caller's working directory. glibc runs the child on the caller's memory until it execs
/// (`CLONE_VM | CLONE_VFORK`): nothing is copied, where a fork copies the caller's page tables
/// and exec then tears the copy down. The error is exec's (or setsid's) in the child.
pub fn spawn(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Result<libc::pid_t> {
    let mut a: Vec<*mut libc::c_char> = argv.iter().map(|s| s.as_ptr() as *mut _).collect();
    a.push(std::ptr::null_mut());
    let mut e: Vec<*mut libc::c_char> = envp.iter().map(|s| s.as_ptr() as *mut _).collect();
    e.push(std::ptr::null_mut());
    // SAFETY: plain-old-data structures that the *_init calls below initialise before use, and
    // that are destroyed before returning; every pointer passed lives until posix_spawn
    // returns (the child has exec'd or failed by then); both arrays are NULL-terminated.
    unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let r = libc::posix_spawnattr_init(&mut attr);
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        // glibc's sigfillset leaves out its two internal signals (32 and 33), and its spawn
        // sets those to SIG_IGN in the child unless they are in this set: ignored, they would
        // stay ignored in the step after exec. Their bits are set directly (sigset_t is
        // `unsigned long __val[]` with signal N at bit N-1; sigaddset refuses them).
        let words = (&mut all as *mut libc::sigset_t).cast::<libc::c_ulong>();
        *words |= 0b11 << 31;
        libc::sigemptyset(&mut none);
        let flags = libc::POSIX_SPAWN_SETSID as libc::c_int
            | libc::POSIX_SPAWN_SETSIGDEF as libc::c_int
            | libc::POSIX_SPAWN_SETSIGMASK as libc::c_int;
        let mut r = libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
        if r == 0 {
            r = libc::posix_spawnattr_setsigdefault(&mut attr, &all);
        }
        if r == 0 {
            r = libc::posix_spawnattr_setsigmask(&mut attr, &none);
        }
        let mut pid: libc::pid_t = 0;
        if r == 0 {
            r = libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                std::ptr::null(),
                &attr,
                a.as_ptr(),
                e.as_ptr(),
            );
        }
        libc::posix_spawnattr_destroy(&mut attr);
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(pid)
    }
}

pub fn setsid() -> io::Result<()> {
    nix::unistd::setsid().map(drop).map_err(io::Error::from)
}

/// The type `setrlimit` takes its resource as: an enum type in glibc, `c_int` in musl.
#[cfg(target_env = "gnu")]
pub type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub type RlimitResource = libc::c_int;

/// The type `ioctl` takes its request as: `c_ulong` in glibc, `c_int` in musl.
#[cfg(target_env = "gnu")]
type IoctlRequest = libc::c_ulong;
#[cfg(not(target_env = "gnu"))]
type IoctlRequest = libc::c_int;

pub fn set_rlimit(resource: RlimitResource, value: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: `lim` is a valid rlimit that outlives the call.
    check_int(unsafe { libc::setrlimit(resource, &lim) }).map(drop)
}

/// `TCP_DEFER_ACCEPT` on a listening socket: a connection is handed to `accept` only once the
/// client has sent something (or after about `secs` seconds), so a server whose clients speak
/// first is woken once per connection instead of twice.
pub fn set_defer_accept(fd: BorrowedFd<'_>, secs: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a c_int that outlives the call, its size given exactly.
    check_int(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Writes all of `buf` to a raw descriptor (used on pipes between processes of the sandbox).
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `_exit(2)`: leave without running destructors or atexit handlers (used by forked children,
/// which must not flush buffers they share with the parent).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// `kill(2)`, ignoring ESRCH (the target already exited).
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: integer arguments only.
    unsafe { libc::kill(pid, sig) };
}

fn ifreq_named(name: &str) -> io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

fn dgram_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a plain socket() call; the returned fd is owned below.
    let fd = check_int(unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is valid and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `/dev/net/tun`: a queue not attached to any device yet (see [`tun_attach`]). Split
/// from the attach so the open can happen while `/dev` is still the host's and the (slower)
/// device registration later.
pub fn tun_open() -> io::Result<OwnedFd> {
    // SAFETY: the path is a NUL-terminated literal; on success we own the descriptor.
    let fd =
        check_int(unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: fd is valid and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates a TUN device (layer 3, no packet-information header) named `name` in the caller's
/// network namespace and attaches the queue `fd` (from [`tun_open`]) to it, persistent.
pub fn tun_attach(fd: &OwnedFd, name: &str) -> io::Result<()> {
    let mut req = ifreq_named(name)?;
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads a valid ifreq with name and flags.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &req) })?;
    // Persistent: closing the queue at the end of a run then does not unregister the device
    // synchronously (an RCU wait of tens of milliseconds in the exiting supervisor); it goes
    // with its network namespace, which the kernel tears down in the background.
    // SAFETY: TUNSETPERSIST takes an integer argument.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) })?;
    Ok(())
}

/// Sets the interface up.
pub fn link_up(name: &str) -> io::Result<()> {
    let sock = dgram_socket(libc::AF_INET)?;
    let mut req = ifreq_named(name)?;
    // SAFETY: SIOCGIFFLAGS fills `req.ifr_ifru`, a valid ifreq with a name.
    check_int(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as IoctlRequest,
            &mut req,
        )
    })?;
    // SAFETY: reading the union member SIOCGIFFLAGS just filled in.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as IoctlRequest, &req) })
        .map(drop)
}

fn sockaddr_in(ip: std::net::Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux, and sockaddr is the
    // generic view of any sockaddr_* the kernel interprets by its family field.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Gives `name` the IPv4 address `ip/32` and makes it the default route.
pub fn ipv4_default_via(name: &str, ip: std::net::Ipv4Addr) -> io::Result<()> {
    let sock = dgram_socket(libc::AF_INET)?;
    let mut req = ifreq_named(name)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(ip);
    // SAFETY: SIOCSIFADDR reads a valid ifreq holding an AF_INET address.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFADDR as IoctlRequest, &req) })?;
    req.ifr_ifru.ifru_netmask = sockaddr_in(std::net::Ipv4Addr::BROADCAST);
    // SAFETY: SIOCSIFNETMASK reads a valid ifreq holding an AF_INET netmask.
    check_int(unsafe {
        libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFNETMASK as IoctlRequest, &req)
    })?;
    link_up(name)?;
    let dev = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `rtentry` is plain old data; all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(std::net::Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(std::net::Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(std::net::Ipv4Addr::UNSPECIFIED);
    rt.rt_flags = libc::RTF_UP;
    rt.rt_dev = dev.as_ptr() as *mut libc::c_char;
    // SAFETY: SIOCADDRT reads `rt`; `rt_dev` points at `dev`, which outlives the call.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT as IoctlRequest, &rt) })
        .map(drop)
}

fn if_index(name: &str) -> io::Result<i32> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is NUL-terminated.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i as i32),
    }
}

/// Gives `name` the IPv6 address `ip/128` and makes it the default IPv6 route.
pub fn ipv6_default_via(name: &str, ip: std::net::Ipv6Addr) -> io::Result<()> {
    let sock = dgram_socket(libc::AF_INET6)?;
    let ifindex = if_index(name)?;
    let req = libc::in6_ifreq {
        ifr6_addr: libc::in6_addr {
            s6_addr: ip.octets(),
        },
        ifr6_prefixlen: 128,
        ifr6_ifindex: ifindex,
    };
    // SAFETY: SIOCSIFADDR on an AF_INET6 socket reads a valid in6_ifreq.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFADDR as IoctlRequest, &req) })?;
    // `struct in6_rtmsg` from <linux/ipv6_route.h> (libc keeps its fields private).
    #[repr(C)]
    struct In6Rtmsg {
        dst: [u8; 16],
        src: [u8; 16],
        gateway: [u8; 16],
        rtype: u32,
        dst_len: u16,
        src_len: u16,
        metric: u32,
        info: libc::c_ulong,
        flags: u32,
        ifindex: libc::c_int,
    }
    let rt = In6Rtmsg {
        dst: [0; 16], // ::/0
        src: [0; 16],
        gateway: [0; 16],
        rtype: 0,
        dst_len: 0,
        src_len: 0,
        metric: 1,
        info: 0,
        flags: libc::RTF_UP as u32,
        ifindex,
    };
    // SAFETY: SIOCADDRT on an AF_INET6 socket reads a valid in6_rtmsg.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT as IoctlRequest, &rt) })
        .map(drop)
}

/// Sends descriptors over a unix socket (one message, SCM_RIGHTS).
pub fn send_fds(sock: BorrowedFd<'_>, fds: &[RawFd], tag: &[u8]) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let iov = [std::io::IoSlice::new(tag)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map(drop)
        .map_err(io::Error::from)
}

/// Receives up to `max` descriptors sent with [`send_fds`]. An empty vector means the peer
/// closed without sending.
pub fn recv_fds(sock: BorrowedFd<'_>, max: usize) -> io::Result<(Vec<OwnedFd>, Vec<u8>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = [0u8; 8];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 16]);
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(io::Error::from)?,
        }
    };
    let n = msg.bytes;
    let mut out = Vec::new();
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in our table for us; nothing else owns it.
                out.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if out.len() > max {
        return Err(io::Error::other("too many descriptors received"));
    }
    Ok((out, buf[..n.min(buf.len())].to_vec()))
}

/// Registers a descriptor with the current tokio reactor (the TUN queue).
pub fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd takes ownership of `fd`; nothing else holds, closes or replaces the
    // descriptor while it is registered, which is what `register` requires.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))
}

/// A regular file's bytes mapped read-only and private (`mmap(2)`, `PROT_READ`,
/// `MAP_PRIVATE`): read without copying them, and a forked child shares the mapping instead of
/// copying page tables for it. Unmapped on drop.
///
/// The bytes are the file's as it is while mapped: a file written in place by another process
/// shows its new bytes, and one truncated under the mapping kills the reader with `SIGBUS`.
/// Only for files no one else may write (the profile cache's entries, written once, by rename).
pub struct MappedFile {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only memory owned by this value; sharing `&[u8]` views of it
// between threads is as safe as sharing any other immutable byte slice.
unsafe impl Send for MappedFile {}
// SAFETY: as for `Send`: nothing writes through this mapping.
unsafe impl Sync for MappedFile {}

impl MappedFile {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes (see `map_file`) that stays
        // mapped until `self` is dropped; the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region `map_file` mapped, which nothing borrows any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Map the first `len` bytes of `file` (see [`MappedFile`]). `len` 0 is `EINVAL`.
pub fn map_file(file: &std::fs::File, len: usize) -> io::Result<MappedFile> {
    if len == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: a new mapping chosen by the kernel (no fixed address), so no existing memory is
    // replaced; the fd is valid for the call (borrowed from `file`).
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let ptr = std::ptr::NonNull::new(ptr.cast::<u8>())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(MappedFile { ptr, len })
}
