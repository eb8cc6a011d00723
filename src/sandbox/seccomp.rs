//! The seccomp filter: which syscalls a step may not make, compiled to BPF with seccompiler.
//!
//! The filter is a deny list on top of the other layers (namespaces, landlock, no capabilities):
//! it removes the kernel interfaces that let a process read another's memory, escape or
//! rebuild namespaces, or reach large attack surfaces a CI step never needs. Denied calls fail
//! with `EPERM` so tools see an ordinary error; `clone3` fails with `ENOSYS` because its flags
//! live in memory the filter cannot inspect, and libc then falls back to `clone`, whose flags it
//! can. A syscall from a foreign architecture, or through the x32 ABI, kills the process.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Syscalls that always fail with EPERM, by name (the name is what the docs and tests show).
pub fn denied_syscalls() -> Vec<(&'static str, i64)> {
    let mut v: Vec<(&'static str, i64)> = vec![
        // Reading or writing another process's memory (the tj-actions technique).
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ("process_madvise", libc::SYS_process_madvise),
        // Large kernel attack surfaces no build needs.
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("fanotify_init", libc::SYS_fanotify_init),
        // Replacing the kernel or loading code into it.
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        // Changing the filesystem view or the namespaces the sandbox built.
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("chroot", libc::SYS_chroot),
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
        ("open_tree", libc::SYS_open_tree),
        ("move_mount", libc::SYS_move_mount),
        ("fsopen", libc::SYS_fsopen),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsmount", libc::SYS_fsmount),
        ("fspick", libc::SYS_fspick),
        ("mount_setattr", libc::SYS_mount_setattr),
        // The kernel keyring is shared with the host user, not namespaced.
        ("keyctl", libc::SYS_keyctl),
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        // Opening files by handle bypasses the mount view (the "shocker" escape).
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        // Host administration.
        ("acct", libc::SYS_acct),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("reboot", libc::SYS_reboot),
        ("syslog", libc::SYS_syslog),
        ("quotactl", libc::SYS_quotactl),
        ("settimeofday", libc::SYS_settimeofday),
        ("clock_settime", libc::SYS_clock_settime),
        ("clock_adjtime", libc::SYS_clock_adjtime),
        ("adjtimex", libc::SYS_adjtimex),
        ("vhangup", libc::SYS_vhangup),
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        ("iopl", libc::SYS_iopl),
        ("ioperm", libc::SYS_ioperm),
        ("uselib", libc::SYS_uselib),
        ("_sysctl", libc::SYS__sysctl),
        ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ]);
    v
}

/// Namespace flags that `clone` may not carry.
const CLONE_NS_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// The socket address families a step may use: local sockets, IPv4 and IPv6 (which the network
/// namespace confines to the proxy), and netlink for route and address queries. Every other
/// family fails with `EAFNOSUPPORT`, as if the kernel lacked it: some are not confined by the
/// network namespace at all (`AF_VSOCK` reaches the hypervisor on VM-based runners), and the
/// rest are attack surface no build needs.
pub const ALLOWED_FAMILIES: &[(&str, libc::c_int)] = &[
    ("AF_UNIX", libc::AF_UNIX),
    ("AF_INET", libc::AF_INET),
    ("AF_INET6", libc::AF_INET6),
    ("AF_NETLINK", libc::AF_NETLINK),
];

/// Terminal ioctls that inject input into, or control, the terminal a step shares with its
/// caller (TIOCSTI types commands into the caller's shell; TIOCLINUX can do the same on a VT).
#[allow(clippy::unnecessary_cast)] // the ioctl request type differs between libcs
const TTY_IOCTLS: &[u64] = &[libc::TIOCSTI as u64, libc::TIOCLINUX as u64];

#[derive(Debug, thiserror::Error)]
#[error("building the seccomp filter: {0}")]
pub struct FilterError(String);

fn target_arch() -> TargetArch {
    #[cfg(target_arch = "x86_64")]
    return TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    return TargetArch::aarch64;
}

fn eq_rule(arg: u8, value: u64) -> Result<SeccompRule, FilterError> {
    let cond = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
        .map_err(|e| FilterError(e.to_string()))?;
    SeccompRule::new(vec![cond]).map_err(|e| FilterError(e.to_string()))
}

fn has_flag_rule(arg: u8, flag: u64) -> Result<SeccompRule, FilterError> {
    let cond = SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(flag),
        flag,
    )
    .map_err(|e| FilterError(e.to_string()))?;
    SeccompRule::new(vec![cond]).map_err(|e| FilterError(e.to_string()))
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: u32) -> Result<BpfProgram, FilterError> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        target_arch(),
    )
    .map_err(|e| FilterError(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| FilterError(e.to_string()))
}

/// `socket` and `socketpair` (the family is the first argument of both) with a family not in
/// [`ALLOWED_FAMILIES`]: one rule whose conditions must all hold.
fn other_family_rule() -> Result<SeccompRule, FilterError> {
    let conds = ALLOWED_FAMILIES
        .iter()
        .map(|&(_, f)| {
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, f as u64)
                .map_err(|e| FilterError(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    SeccompRule::new(conds).map_err(|e| FilterError(e.to_string()))
}

/// The filters to install, in order. Three programs because seccompiler gives one filter one
/// match action: EPERM for the deny list, ENOSYS for `clone3`, EAFNOSUPPORT for socket
/// families.
pub fn build() -> Result<Vec<BpfProgram>, FilterError> {
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in denied_syscalls() {
        eperm.insert(nr, vec![]);
    }
    // On both architectures the flags are clone's first argument.
    eperm.insert(
        libc::SYS_clone,
        CLONE_NS_FLAGS
            .iter()
            .map(|&f| has_flag_rule(0, f))
            .collect::<Result<_, _>>()?,
    );
    eperm.insert(
        libc::SYS_ioctl,
        TTY_IOCTLS
            .iter()
            .map(|&c| eq_rule(1, c))
            .collect::<Result<_, _>>()?,
    );
    let mut main = compile(eperm, libc::EPERM as u32)?;
    // seccompiler's program starts by killing the process on a foreign architecture. On x86_64
    // the x32 ABI shares the architecture token and sets bit 30 of the syscall number instead;
    // refuse it ahead of everything else.
    #[cfg(target_arch = "x86_64")]
    main.splice(0..0, x32_guard());
    let mut enosys = BTreeMap::new();
    enosys.insert(libc::SYS_clone3, vec![]);
    let mut families = BTreeMap::new();
    for nr in [libc::SYS_socket, libc::SYS_socketpair] {
        families.insert(nr, vec![other_family_rule()?]);
    }
    Ok(vec![
        main,
        compile(enosys, libc::ENOSYS as u32)?,
        compile(families, libc::EAFNOSUPPORT as u32)?,
    ])
}

#[cfg(target_arch = "x86_64")]
fn x32_guard() -> Vec<seccompiler::sock_filter> {
    use seccompiler::sock_filter;
    const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    vec![
        // A = seccomp_data.nr
        sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        // if (A >= X32_SYSCALL_BIT) goto kill; else skip it
        sock_filter {
            code: BPF_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_KILL_PROCESS,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_list_has_every_syscall_the_threat_model_names() {
        let names: Vec<&str> = denied_syscalls().iter().map(|(n, _)| *n).collect();
        for must in [
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "open_by_handle_at",
            "acct",
            "swapon",
            "swapoff",
            "reboot",
        ] {
            assert!(names.contains(&must), "{must} missing from the deny list");
        }
    }

    #[test]
    fn no_syscall_is_listed_twice() {
        let mut nrs: Vec<i64> = denied_syscalls().iter().map(|(_, n)| *n).collect();
        let before = nrs.len();
        nrs.sort_unstable();
        nrs.dedup();
        assert_eq!(before, nrs.len());
    }

    #[test]
    fn filters_compile_within_the_kernel_limit() {
        let progs = build().unwrap();
        assert_eq!(progs.len(), 3);
        for p in &progs {
            assert!(
                !p.is_empty() && p.len() < 4096,
                "program of {} instructions",
                p.len()
            );
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(progs[0][1].k, 0x4000_0000, "x32 guard comes first");
    }
}
