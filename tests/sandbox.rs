//! End-to-end tests of `stepjail run`: the real binary, real namespaces, landlock and seccomp.
//! Each runs as root and as an unprivileged user where the machine allows (see `users()`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn py(dir: &Dir, code: &str) -> Out {
    Sj::run(dir, &[], &[PYTHON, "-c", code]).output()
}

#[test]
fn hello_runs_as_the_expected_user() {
    for uid in users() {
        let dir = Dir::new(uid);
        let out = Sj::run(&dir, &[], &["sh", "-c", "echo hello; id -u; id -g"]).output();
        assert_eq!(out.ok(), format!("hello\n{uid}\n{uid}\n"), "as uid {uid}");
    }
}

#[test]
fn root_runs_the_step_as_sudo_uid_or_user() {
    if !is_root() {
        return;
    }
    let dir = Dir::new(0);
    let out = Sj::run(&dir, &[], &["sh", "-c", "id -u; echo $HOME"])
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .output();
    // HOME is the sudo user's (from passwd), like the $HOME the profile's paths expand to.
    assert_eq!(out.ok(), "65534\n/nonexistent\n");
    let out = Sj::run(
        &dir,
        &["--user", "1234:4321"],
        &["sh", "-c", "id -u; id -g"],
    )
    .output();
    assert_eq!(out.ok(), "1234\n4321\n");
}

#[test]
fn another_process_and_its_secrets_are_out_of_reach() {
    for uid in users() {
        let dir = Dir::new(uid);
        // A process outside the sandbox, same user, holding a marker in its environment and memory.
        let mut victim = Command::new("/bin/sh");
        victim
            .args(["-c", "MEM=stepjail-marker-mem; sleep 30"])
            .env("MARKER", "stepjail-marker-env");
        if uid != 0 {
            std::os::unix::process::CommandExt::uid(&mut victim, uid);
        }
        let mut victim = victim.spawn().unwrap();
        let pid = victim.id();
        let code = format!(
            r#"
import ctypes, os, errno
pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
print('pids', pids)
for f in ('environ', 'mem'):
    try:
        open('/proc/{pid}/' + f, 'rb').read(64); print(f, 'READ')
    except OSError as e:
        print(f, errno.errorcode[e.errno])
# The init (PID 1) is a copy of stepjail: its environment and memory must be closed too.
for f in ('environ', 'mem'):
    try:
        open('/proc/1/' + f, 'rb').read(64); print('init', f, 'READ')
    except OSError as e:
        print('init', f, errno.errorcode[e.errno])
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, {pid}, 0, 0)  # PTRACE_ATTACH
print('ptrace', r, errno.errorcode[ctypes.get_errno()])
r = libc.ptrace(16, 1, 0, 0)
print('ptrace-init', r, errno.errorcode[ctypes.get_errno()])
"#
        );
        let out = py(&dir, &code).ok();
        victim.kill().unwrap();
        victim.wait().unwrap();
        let lines: Vec<&str> = out.lines().collect();
        // Only the sandbox's own init (1) and python (2) exist in its PID namespace.
        assert_eq!(lines[0], "pids [1, 2]", "as uid {uid}: {out}");
        assert_eq!(lines[1], "environ ENOENT", "as uid {uid}");
        assert_eq!(lines[2], "mem ENOENT", "as uid {uid}");
        assert_eq!(lines[3], "init environ EACCES", "as uid {uid}");
        assert_eq!(lines[4], "init mem EACCES", "as uid {uid}");
        assert_eq!(lines[5], "ptrace -1 EPERM", "as uid {uid}");
        assert_eq!(lines[6], "ptrace-init -1 EPERM", "as uid {uid}");
        assert!(!out.contains("stepjail-marker"), "{out}");
    }
}

#[test]
fn writes_outside_the_workspace_fail_and_inside_persist() {
    for uid in users() {
        let dir = Dir::new(uid);
        let code = format!(
            r#"
import errno
for p in ('/etc/stepjail-test', '/usr/stepjail-test', '{home}/stepjail-test', '{root}/stepjail-test'):
    try:
        open(p, 'w').write('x'); print(p, 'WROTE')
    except OSError as e:
        print(errno.errorcode[e.errno])
open('{ws}/out.txt', 'w').write('persisted')
open('/tmp/private', 'w').write('tmp ok')
print(open('/tmp/private').read())
"#,
            home = dir.home.display(),
            root = dir.root.display(),
            ws = dir.ws.display()
        );
        let out = py(&dir, &code).ok();
        assert_eq!(out, "EROFS\nEROFS\nEROFS\nEROFS\ntmp ok\n", "as uid {uid}");
        assert_eq!(
            std::fs::read_to_string(dir.ws.join("out.txt")).unwrap(),
            "persisted"
        );
        assert!(
            !std::path::Path::new("/tmp/private").exists(),
            "the sandbox's /tmp is private"
        );
    }
}

#[test]
fn hidden_credentials_are_unreadable() {
    for uid in users() {
        let dir = Dir::new(uid);
        dir.write("home/.ssh/id_rsa", "PRIVATE KEY");
        dir.write("home/.netrc", "machine x password y");
        dir.write("home/.aws/credentials", "aws_secret");
        dir.write("home/visible.txt", "fine");
        let code = format!(
            r#"
import errno, os
for p in ('.ssh/id_rsa', '.ssh', '.netrc', '.aws/credentials', 'visible.txt'):
    p = os.path.join('{home}', p)
    try:
        if os.path.isdir(p):
            print(os.listdir(p))
        else:
            print(open(p).read())
    except OSError as e:
        print(errno.errorcode[e.errno])
try:
    os.chmod('{home}/.netrc', 0o644); print('CHMOD')
except OSError as e:
    print(errno.errorcode[e.errno])
"#,
            home = dir.home.display()
        );
        let out = py(&dir, &code).ok();
        assert_eq!(
            out, "EACCES\nEACCES\nEACCES\nEACCES\nfine\nEROFS\n",
            "as uid {uid}"
        );
    }
}

#[test]
fn only_loopback_exists_and_outside_addresses_are_unreachable() {
    for uid in users() {
        let dir = Dir::new(uid);
        let code = r#"
import socket, errno
print(socket.if_nameindex())
for fam, addr in ((socket.AF_INET, ('192.0.2.1', 80)), (socket.AF_INET6, ('2001:db8::1', 80))):
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.connect(addr); print('CONNECTED')
    except OSError as e:
        print(errno.errorcode[e.errno])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('127.0.0.1', 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); print('loopback ok')
"#;
        let out = py(&dir, code).ok();
        assert_eq!(
            out, "[(1, 'lo')]\nENETUNREACH\nENETUNREACH\nloopback ok\n",
            "as uid {uid}"
        );
    }
}

#[test]
fn dangerous_syscalls_fail_with_eperm() {
    for uid in users() {
        let dir = Dir::new(uid);
        let code = r#"
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def show(name, r):
    print(name, r, errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()))
params = ctypes.create_string_buffer(120)
show('io_uring_setup', libc.syscall(425, 8, params))
show('unshare', libc.unshare(0x10000000))  # CLONE_NEWUSER
show('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))
show('ptrace', libc.ptrace(0, 0, 0, 0))    # PTRACE_TRACEME
show('bpf', libc.syscall(321, 0, None, 0))
show('keyctl', libc.syscall(250, 0, 0, 0, 0))
show('clone3', libc.syscall(435, None, 0))
"#;
        let out = py(&dir, code).ok();
        assert_eq!(
            out,
            "io_uring_setup -1 EPERM\nunshare -1 EPERM\nmount -1 EPERM\nptrace -1 EPERM\nbpf -1 EPERM\nkeyctl -1 EPERM\nclone3 -1 ENOSYS\n",
            "as uid {uid}"
        );
    }
}

#[test]
fn no_capabilities_and_setuid_gains_nothing() {
    for uid in users() {
        let dir = Dir::new(uid);
        let out = Sj::run(&dir, &[], &["sh", "-c", "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status"])
            .output()
            .ok();
        let want = "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
                    CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";
        assert_eq!(out, want, "as uid {uid}");
    }
    if is_root() {
        // A setuid-root copy of `id` in the workspace: run by an unprivileged step, it must
        // still report the step's uid.
        let dir = Dir::new(NOBODY);
        let suid = dir.ws.join("suid-id");
        std::fs::copy("/usr/bin/id", &suid).unwrap();
        std::os::unix::fs::lchown(&suid, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&suid, std::os::unix::fs::PermissionsExt::from_mode(0o4755))
            .unwrap();
        let out = Sj::run(&dir, &[], &[suid.to_str().unwrap(), "-u"]).output();
        assert_eq!(out.ok(), "65534\n");
        // And outside the sandbox it would have worked: the test is able to fail.
        let outside = Command::new(&suid).arg("-u").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&outside.stdout), "0\n");
    }
}

#[test]
fn only_allowlisted_environment_arrives() {
    for uid in users() {
        let dir = Dir::new(uid);
        let out = Sj::run(&dir, &[], &["env"])
            .env("CI", "true")
            .env("GITHUB_SHA", "abc123")
            .env("GITHUB_TOKEN", "ghs_secret")
            .env("AWS_SECRET_ACCESS_KEY", "aws_secret")
            .env("LANG", "C.UTF-8")
            .env("MY_PRIVATE", "private")
            .output()
            .ok();
        let mut names: Vec<&str> = out.lines().map(|l| l.split('=').next().unwrap()).collect();
        names.sort_unstable();
        let mut want = vec!["CI", "GITHUB_SHA", "HOME", "LANG", "PATH", "TMPDIR"];
        if uid == 0 || uid == NOBODY {
            want.extend(["LOGNAME", "USER"]);
        }
        want.sort_unstable();
        assert_eq!(names, want, "as uid {uid}: {out}");
        assert!(!out.contains("secret") && !out.contains("private"), "{out}");
    }
}

#[test]
fn exit_codes_pass_through() {
    for uid in users() {
        let dir = Dir::new(uid);
        assert_eq!(
            Sj::run(&dir, &[], &["sh", "-c", "exit 7"]).output().code(),
            7
        );
        assert_eq!(
            Sj::run(&dir, &[], &["sh", "-c", "kill -TERM $$"])
                .output()
                .code(),
            128 + 15
        );
        let out = Sj::run(&dir, &[], &["no-such-command-xyz"]).output();
        assert_eq!(out.code(), 127, "{}", out.stderr());
        assert!(
            out.stderr().contains("cannot run no-such-command-xyz"),
            "{}",
            out.stderr()
        );
        dir.write("ws/not-exec", "#!/bin/sh\n");
        let out = Sj::run(&dir, &[], &["./not-exec"]).output();
        assert_eq!(out.code(), 126, "{}", out.stderr());
    }
}

/// The step starts as if exec'd by a shell, whether it is spawned without copying its PID 1
/// (the default profile: only limits that cannot bind the PID 1) or forked (a profile with an
/// address-space limit, which would bind the PID 1 too): no signal blocked or ignored (glibc's
/// spawn ignores its two internal signals in the child unless told otherwise), its own session,
/// the workspace as its working directory, the profile's limits.
#[test]
fn the_step_starts_alike_spawned_or_forked() {
    let script = "grep -E '^(SigBlk|SigIgn):' /proc/self/status; \
                  [ \"$(cut -d' ' -f6 /proc/self/stat)\" = \"$$\" ] && echo session leader; \
                  pwd; ulimit -c; ulimit -n";
    for uid in users() {
        let dir = Dir::new(uid);
        let forked = dir.write(
            "forked.yml",
            "name: forked\ndescription: d\nextends: default\nprocess:\n  limits:\n    address_space: 8G\n    open_files: 512\n",
        );
        let spawned = dir.write(
            "spawned.yml",
            "name: spawned\ndescription: d\nextends: default\nprocess:\n  limits:\n    open_files: 512\n",
        );
        for profile in [&spawned, &forked] {
            let out = Sj::run(
                &dir,
                &["--profile", profile.to_str().unwrap()],
                &["sh", "-c", script],
            )
            .output();
            assert_eq!(
                out.ok(),
                format!(
                    "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nsession leader\n{}\n0\n512\n",
                    dir.ws.display()
                ),
                "as uid {uid}, {}",
                profile.display()
            );
        }
    }
}

/// Is any process running whose command line contains `marker`?
fn process_with(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(marker))
            .unwrap_or(false)
    })
}

fn wait_gone(marker: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if !process_with(marker) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn background_processes_die_with_the_step() {
    for uid in users() {
        let dir = Dir::new(uid);
        let marker = format!("4{uid}1.25");
        let out = Sj::run(
            &dir,
            &[],
            &["sh", "-c", &format!("sleep {marker} & echo started")],
        )
        .output();
        assert_eq!(out.ok(), "started\n");
        assert!(wait_gone(&marker), "a background process outlived the step");
    }
}

/// stepjail returns once the step's init has killed and reaped every process of the step (it
/// does not wait for the init's own exit): nothing of the step is left at that moment, with
/// no grace period.
#[test]
fn nothing_of_the_step_is_left_when_stepjail_returns() {
    for uid in users() {
        let dir = Dir::new(uid);
        let marker = format!("4{uid}2.75");
        let out = Sj::run(
            &dir,
            &[],
            &[
                "sh",
                "-c",
                // Not holding stdout: the harness's read of it does not wait for them.
                &format!(
                    "sleep {marker} >/dev/null 2>&1 & sh -c 'sleep {marker}' >/dev/null 2>&1 & echo started"
                ),
            ],
        )
        .output();
        assert_eq!(out.ok(), "started\n");
        assert!(
            !process_with(&marker),
            "a process of the step was still there when stepjail returned (as uid {uid})"
        );
    }
}

#[test]
fn timeout_kills_the_step_with_code_124() {
    for uid in users() {
        let dir = Dir::new(uid);
        let profile = dir.write(
            "ws/t.yml",
            "name: t\ndescription: short timeout\nextends: default\nprocess:\n  timeout: 1s\n",
        );
        let marker = format!("5{uid}2.5");
        let start = Instant::now();
        let out = Sj::run(
            &dir,
            &["--profile", profile.to_str().unwrap()],
            &["sh", "-c", &format!("sleep {marker} & sleep {marker}")],
        )
        .output();
        assert_eq!(out.code(), 124, "{}", out.stderr());
        assert!(start.elapsed() < Duration::from_secs(20));
        assert!(
            out.stderr().contains("timed out after 1s"),
            "{}",
            out.stderr()
        );
        assert!(wait_gone(&marker));
    }
}

#[test]
fn signals_reach_the_step_and_stepjail_death_kills_it() {
    for uid in users() {
        let dir = Dir::new(uid);
        let mut sj = Sj::run(
            &dir,
            &[],
            &[
                "sh",
                "-c",
                "trap 'echo got-int; exit 42' INT; echo ready; while :; do sleep 0.05; done",
            ],
        );
        sj.cmd.stdout(Stdio::piped());
        let mut child = sj.cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::SIGINT,
        )
        .unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "got-int");
        assert_eq!(child.wait().unwrap().code(), Some(42), "as uid {uid}");

        let marker = format!("6{uid}3.5");
        let mut sj = Sj::run(
            &dir,
            &[],
            &["sh", "-c", &format!("sleep {marker} & echo ready; wait")],
        );
        sj.cmd.stdout(Stdio::piped());
        let mut child = sj.cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        assert!(process_with(&marker));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            wait_gone(&marker),
            "the step outlived stepjail (as uid {uid})"
        );
    }
}

#[test]
fn verbose_reports_the_landlock_abi_applied() {
    let dir = Dir::new(users()[users().len() - 1]);
    let out = Sj::run(&dir, &["-v"], &["true"]).output();
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let kernel_abi = landlock_kernel_abi();
    assert!(
        out.stderr()
            .contains(&format!("(kernel ABI {kernel_abi}), fully enforced")),
        "{}",
        out.stderr()
    );
}

/// The ABI the kernel reports, read independently through the /sys knob when present.
fn landlock_kernel_abi() -> u32 {
    // Python asks the kernel the same question stepjail does, without stepjail's code.
    let out = Command::new(PYTHON)
        .args([
            "-c",
            "import ctypes;l=ctypes.CDLL(None);print(l.syscall(444,None,0,1))",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn a_profile_requiring_a_newer_landlock_abi_is_refused() {
    let dir = Dir::new(users()[0]);
    let need = landlock_kernel_abi() + 1;
    let p = dir.write(
        "ws/ll.yml",
        &format!(
            "name: ll\ndescription: needs more\nextends: default\nlandlock:\n  min_abi: {need}\n"
        ),
    );
    let marker = dir.ws.join("ran");
    let out = Sj::run(
        &dir,
        &["--profile", p.to_str().unwrap()],
        &["touch", marker.to_str().unwrap()],
    )
    .output();
    assert_eq!(out.code(), 125, "{}", out.stderr());
    assert!(
        out.stderr()
            .contains(&format!("requires landlock ABI {need}")),
        "{}",
        out.stderr()
    );
    assert!(!marker.exists());
}

#[test]
fn descriptors_of_the_caller_do_not_leak_in() {
    for uid in users() {
        let dir = Dir::new(uid);
        // The caller holds descriptor 7 open (not close-on-exec) when it starts stepjail.
        let script = format!(
            "exec 7</etc/hostname; exec {} run -- sh -c 'ls /proc/self/fd'",
            bin()
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &script])
            .current_dir(&dir.ws)
            .env("HOME", &dir.home);
        if uid != 0 {
            std::os::unix::process::CommandExt::uid(&mut cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, uid);
        }
        let out = Out(cmd.output().unwrap()).ok();
        // 0, 1, 2 and the one `ls` opened to read the directory; not 7.
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            ["0", "1", "2", "3"],
            "{out}"
        );
    }
}

#[test]
fn a_terminal_passes_through_but_cannot_be_typed_into() {
    for uid in users() {
        let dir = Dir::new(uid);
        let code = r#"
import os, fcntl, termios, errno
print('tty', os.isatty(0), os.isatty(1))
try:
    fcntl.ioctl(0, termios.TIOCSTI, b'x'); print('TIOCSTI WORKED')
except OSError as e:
    print('TIOCSTI', errno.errorcode[e.errno])
print('winsize ok', len(fcntl.ioctl(1, termios.TIOCGWINSZ, b'\0' * 8)) == 8)
"#;
        std::fs::write(dir.ws.join("t.py"), code).unwrap();
        // `script` gives stepjail a pseudo-terminal as its stdin/stdout, like an interactive shell.
        let inner = format!("{} run -- {PYTHON} t.py", bin());
        let mut cmd = Command::new("script");
        // A clean environment: the test runner's (CARGO_HOME from rustup, ...) would add
        // stepjail's start-up warnings to the terminal's output.
        cmd.args(["-qec", &inner, "/dev/null"])
            .current_dir(&dir.ws)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &dir.home);
        if uid != 0 {
            std::os::unix::process::CommandExt::uid(&mut cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, uid);
        }
        let out = Out(cmd.stdin(Stdio::null()).output().unwrap()).ok();
        assert_eq!(
            out.replace('\r', ""),
            "tty True True\nTIOCSTI EPERM\nwinsize ok True\n",
            "as uid {uid}"
        );
    }
}

#[test]
fn host_unix_sockets_are_covered() {
    for uid in users() {
        let dir = Dir::new(uid);
        // A host service listening on a socket the step's user could otherwise connect to.
        let path = dir.root.join("service.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let code = format!(
            "import socket, errno\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect('{}'); print('CONNECTED')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n",
            path.display()
        );
        assert_eq!(py(&dir, &code).ok(), "EACCES\n", "as uid {uid}");
        // Outside the sandbox the same connect works: the test can fail.
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        drop(listener);
    }
}

#[test]
fn missing_cache_directories_under_home_are_created() {
    for uid in users() {
        let dir = Dir::new(uid);
        let p = dir.write(
            "p.yml",
            "name: c\ndescription: d\nextends: default\nfilesystem:\n  read_write: [$HOME/.cache/tool]\n",
        );
        let out = Sj::run(
            &dir,
            &["--profile", p.to_str().unwrap()],
            &[
                "sh",
                "-c",
                "echo x > \"$HOME/.cache/tool/f\" && cat \"$HOME/.cache/tool/f\"",
            ],
        )
        .output();
        assert_eq!(out.ok(), "x\n", "uid {uid}");
        assert!(dir.home.join(".cache/tool/f").is_file());
    }
}
