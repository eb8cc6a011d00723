//! The seccomp filter: which syscalls a step may not make, as one classic-BPF program
//! assembled here and installed with seccompiler.
//!
//! The filter is a deny list on top of the other layers (namespaces, landlock, no capabilities):
//! it removes the kernel interfaces that let a process read another's memory, escape or
//! rebuild namespaces, or reach large attack surfaces a CI step never needs. Denied calls fail
//! with `EPERM` so tools see an ordinary error; `clone3` fails with `ENOSYS` because its flags
//! live in memory the filter cannot inspect, and libc then falls back to `clone`, whose flags it
//! can. A syscall from a foreign architecture, or through the x32 ABI, kills the process.

use seccompiler::{BpfProgram, sock_filter};

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

// Classic BPF (linux/bpf_common.h) and seccomp (linux/seccomp.h, linux/audit.h).
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// The low 32 bits of argument `i` (seccomp_data.args[i], little endian).
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// Where an instruction jumps: the next one, or a labelled one further on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum To {
    Next,
    Kill,
    Allow,
    Eperm,
    Enosys,
    Eafnosupport,
    Clone,
    Ioctl,
    Family,
}

enum Op {
    Load(u32),
    /// `code k`: to `jt` when the comparison holds, to `jf` when not.
    Jump(u16, u32, To, To),
    Ret(u32),
    Label(To),
}

/// Resolves labels to forward offsets. Every target must come after its jump and within 255
/// instructions (classic BPF's conditional jumps are one byte).
fn assemble(ops: &[Op]) -> Result<BpfProgram, FilterError> {
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for op in ops {
        match op {
            Op::Label(l) => {
                at.insert(*l, n);
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    for op in ops {
        let here = out.len();
        let off = |t: To| -> Result<u8, FilterError> {
            if t == To::Next {
                return Ok(0);
            }
            let target = *at
                .get(&t)
                .ok_or_else(|| FilterError(format!("no label {t:?}")))?;
            target
                .checked_sub(here + 1)
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| FilterError(format!("jump to {t:?} out of range")))
        };
        match *op {
            Op::Label(_) => {}
            Op::Load(k) => out.push(sock_filter {
                code: LD_W_ABS,
                jt: 0,
                jf: 0,
                k,
            }),
            Op::Jump(code, k, jt, jf) => out.push(sock_filter {
                code,
                jt: off(jt)?,
                jf: off(jf)?,
                k,
            }),
            Op::Ret(k) => out.push(sock_filter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k,
            }),
        }
    }
    Ok(out)
}

/// The filter to install: one program (one install costs a fixed ~50 µs and then time in
/// proportion to its length; three seccompiler programs of 335, 10 and 31 instructions took
/// 0.4-0.5 ms of every start, this one of about 90 well under half of that).
///
/// In order: a syscall through the x32 ABI (x86_64: bit 30 of the number) or from a foreign
/// architecture kills the process; a number on the deny list fails with `EPERM`; `clone3` with
/// `ENOSYS`; `clone` carrying a namespace flag with `EPERM`; the terminal `ioctl`s with `EPERM`;
/// `socket`/`socketpair` of a family not in [`ALLOWED_FAMILIES`] with `EAFNOSUPPORT`; anything
/// else is allowed. Arguments are compared on their low 32 bits, where flags, requests and
/// families live. `tests` checks it against the same rules compiled by seccompiler, syscall by
/// syscall.
pub fn build() -> Result<Vec<BpfProgram>, FilterError> {
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA);
    let mut ops = Vec::new();
    #[cfg(target_arch = "x86_64")]
    ops.extend([
        Op::Load(DATA_NR),
        Op::Jump(JGE_K, 0x4000_0000, To::Kill, To::Next),
    ]);
    ops.extend([
        Op::Load(DATA_ARCH),
        Op::Jump(JEQ_K, AUDIT_ARCH, To::Next, To::Kill),
        Op::Load(DATA_NR),
    ]);
    let mut denied: Vec<i64> = denied_syscalls().iter().map(|&(_, nr)| nr).collect();
    denied.sort_unstable();
    for nr in denied {
        ops.push(Op::Jump(JEQ_K, nr as u32, To::Eperm, To::Next));
    }
    ops.extend([
        Op::Jump(JEQ_K, libc::SYS_clone3 as u32, To::Enosys, To::Next),
        Op::Jump(JEQ_K, libc::SYS_clone as u32, To::Clone, To::Next),
        Op::Jump(JEQ_K, libc::SYS_ioctl as u32, To::Ioctl, To::Next),
        Op::Jump(JEQ_K, libc::SYS_socket as u32, To::Family, To::Next),
        Op::Jump(JEQ_K, libc::SYS_socketpair as u32, To::Family, To::Next),
        Op::Ret(libc::SECCOMP_RET_ALLOW),
        // On both architectures the flags are clone's first argument.
        Op::Label(To::Clone),
        Op::Load(arg_low(0)),
    ]);
    let ns_flags = CLONE_NS_FLAGS.iter().fold(0u64, |m, f| m | f);
    ops.extend([
        Op::Jump(JSET_K, ns_flags as u32, To::Eperm, To::Allow),
        Op::Label(To::Ioctl),
        Op::Load(arg_low(1)),
    ]);
    for &request in TTY_IOCTLS {
        ops.push(Op::Jump(JEQ_K, request as u32, To::Eperm, To::Next));
    }
    ops.extend([
        Op::Ret(libc::SECCOMP_RET_ALLOW),
        Op::Label(To::Family),
        Op::Load(arg_low(0)),
    ]);
    for &(_, family) in ALLOWED_FAMILIES {
        ops.push(Op::Jump(JEQ_K, family as u32, To::Allow, To::Next));
    }
    ops.extend([
        Op::Label(To::Eafnosupport),
        Op::Ret(errno(libc::EAFNOSUPPORT)),
        Op::Label(To::Eperm),
        Op::Ret(errno(libc::EPERM)),
        Op::Label(To::Enosys),
        Op::Ret(errno(libc::ENOSYS)),
        Op::Label(To::Kill),
        Op::Ret(libc::SECCOMP_RET_KILL_PROCESS),
        Op::Label(To::Allow),
        Op::Ret(libc::SECCOMP_RET_ALLOW),
    ]);
    Ok(vec![assemble(&ops)?])
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
    fn the_filter_is_one_short_program_with_the_x32_guard_first() {
        let progs = build().unwrap();
        assert_eq!(progs.len(), 1);
        assert!(
            progs[0].len() < 128,
            "program of {} instructions",
            progs[0].len()
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(progs[0][1].k, 0x4000_0000, "x32 guard comes first");
    }

    // The reference: the same rules compiled by seccompiler as three filters (one match
    // action each), which is what stepjail installed before the filter was assembled here.
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    use std::collections::BTreeMap;

    fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> BpfProgram {
        #[cfg(target_arch = "x86_64")]
        let arch = TargetArch::x86_64;
        #[cfg(target_arch = "aarch64")]
        let arch = TargetArch::aarch64;
        let f = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .unwrap();
        BpfProgram::try_from(f).unwrap()
    }

    fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, v: u64) -> SeccompRule {
        SeccompRule::new(vec![SeccompCondition::new(arg, len, op, v).unwrap()]).unwrap()
    }

    fn reference() -> Vec<BpfProgram> {
        let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for (_, nr) in denied_syscalls() {
            eperm.insert(nr, vec![]);
        }
        let flags = CLONE_NS_FLAGS.iter();
        eperm.insert(
            libc::SYS_clone,
            flags
                .map(|&f| cond(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(f), f))
                .collect(),
        );
        eperm.insert(
            libc::SYS_ioctl,
            TTY_IOCTLS
                .iter()
                .map(|&c| cond(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, c))
                .collect(),
        );
        let mut main = compile(eperm, libc::EPERM);
        #[cfg(target_arch = "x86_64")]
        main.splice(
            0..0,
            [
                sock_filter {
                    code: LD_W_ABS,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                sock_filter {
                    code: JGE_K,
                    jt: 0,
                    jf: 1,
                    k: 0x4000_0000,
                },
                sock_filter {
                    code: RET_K,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_KILL_PROCESS,
                },
            ],
        );
        let mut enosys = BTreeMap::new();
        enosys.insert(libc::SYS_clone3, vec![]);
        let other_family = SeccompRule::new(
            ALLOWED_FAMILIES
                .iter()
                .map(|&(_, f)| {
                    SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, f as u64)
                        .unwrap()
                })
                .collect(),
        )
        .unwrap();
        let mut families = BTreeMap::new();
        for nr in [libc::SYS_socket, libc::SYS_socketpair] {
            families.insert(nr, vec![other_family.clone()]);
        }
        vec![
            main,
            compile(enosys, libc::ENOSYS),
            compile(families, libc::EAFNOSUPPORT),
        ]
    }

    /// A classic-BPF interpreter for what both generators emit; anything else panics.
    fn run(prog: &[sock_filter], data: &[u8; 64]) -> u32 {
        let word =
            |k: u32| u32::from_ne_bytes(data[k as usize..k as usize + 4].try_into().unwrap());
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = &prog[pc];
            pc += 1;
            match i.code {
                0x20 => a = word(i.k),
                0x54 => a &= i.k, // BPF_ALU | BPF_AND | BPF_K
                0x06 => return i.k,
                0x05 => pc += i.k as usize, // BPF_JMP | BPF_JA
                0x15 | 0x25 | 0x35 | 0x45 => {
                    let hold = match i.code {
                        0x15 => a == i.k,
                        0x25 => a > i.k,
                        0x35 => a >= i.k,
                        _ => a & i.k != 0,
                    };
                    pc += usize::from(if hold { i.jt } else { i.jf });
                }
                c => panic!("unexpected BPF opcode {c:#x}"),
            }
        }
    }

    /// The kernel's answer for several filters: the action of highest precedence (the lowest
    /// action as a signed number; KILL_PROCESS is negative), the first evaluated on a tie.
    fn decide(progs: &[BpfProgram], data: &[u8; 64]) -> u32 {
        progs
            .iter()
            .rev()
            .map(|p| run(p, data))
            .reduce(|best, r| {
                let act = |x: u32| (x & 0xffff_0000) as i32;
                if act(r) < act(best) { r } else { best }
            })
            .unwrap()
    }

    fn data(nr: u32, arch: u32, arg: u64) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_ne_bytes());
        d[4..8].copy_from_slice(&arch.to_ne_bytes());
        for i in 0..6 {
            d[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
        }
        d
    }

    #[test]
    fn the_assembled_filter_decides_every_syscall_as_the_seccompiler_rules_do() {
        let ours = build().unwrap();
        let theirs = reference();
        let mut args: Vec<u64> = vec![0, 1, 0x11, u64::MAX, 0xffff_ffff, 1 << 32];
        args.extend(
            CLONE_NS_FLAGS
                .iter()
                .flat_map(|&f| [f, f | 0x11, f | (1 << 40)]),
        );
        args.push(CLONE_NS_FLAGS.iter().fold(0, |m, f| m | f));
        args.push(!CLONE_NS_FLAGS.iter().fold(0, |m, f| m | f));
        args.extend(TTY_IOCTLS.iter().flat_map(|&c| [c, c | (7 << 32), c + 1]));
        args.extend((0..64u64).flat_map(|f| [f, f | (1 << 32)]));
        let mut differ = Vec::new();
        let (mut eperm, mut kill) = (0, 0);
        for nr in (0..1024u32).chain([0x4000_0000, 0x4000_0001, 0x4000_0000 | 59, u32::MAX]) {
            for arch in [AUDIT_ARCH, 0x4000_0003, 0] {
                for &arg in &args {
                    let d = data(nr, arch, arg);
                    let (a, b) = (decide(&ours, &d), decide(&theirs, &d));
                    if a != b {
                        differ.push((nr, arch, arg, a, b));
                    }
                    eperm += usize::from(a == libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
                    kill += usize::from(a == libc::SECCOMP_RET_KILL_PROCESS);
                }
            }
        }
        assert!(
            differ.is_empty(),
            "{} differences, first: {:?}",
            differ.len(),
            &differ[..1]
        );
        // Not a vacuous comparison: both deny and both kill.
        assert!(eperm > 1000 && kill > 1000, "eperm {eperm} kill {kill}");
    }
}
