//! Shared helpers for the integration tests: a command builder that runs the real `stepjail`
//! binary in a per-test directory, as root or as an unprivileged user.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The unprivileged user the tests run stepjail as (GitHub's runner is not root).
pub const NOBODY: u32 = 65534;

/// Python with ctypes, used inside the sandbox to make raw syscalls and report errno.
pub const PYTHON: &str = "/usr/bin/python3";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stepjail")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A per-test directory tree: `ws/` (the workspace) and `home/` (the step's $HOME), under
/// /var/tmp rather than /tmp (or the target dir, which may itself be under /tmp) so that they
/// are visible inside the sandbox, whose /tmp is private.
pub struct Dir {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub ws: PathBuf,
    pub home: PathBuf,
    /// uid the step's files belong to.
    pub owner: u32,
}

impl Dir {
    pub fn new(owner: u32) -> Dir {
        let tmp = tempfile::Builder::new()
            .prefix("sj-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ws = root.join("ws");
        let home = root.join("home");
        chown(&root, owner);
        for d in [&ws, &home] {
            std::fs::create_dir(d).unwrap();
            chown(d, owner);
        }
        Dir {
            _tmp: tmp,
            root,
            ws,
            home,
            owner,
        }
    }

    /// Writes a file (creating parents) owned by the test's user.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        let mut cur = p.clone();
        while cur != self.root {
            chown(&cur, self.owner);
            cur = cur.parent().unwrap().to_path_buf();
        }
        p
    }
}

pub fn chown(p: &Path, uid: u32) {
    if is_root() {
        std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    }
}

/// A `stepjail` invocation.
pub struct Sj {
    pub cmd: Command,
}

impl Sj {
    /// `stepjail ARGS...` with a clean environment: PATH, HOME from `dir`, and `extra`.
    pub fn new(dir: &Dir, args: &[&str]) -> Sj {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &dir.home)
            .current_dir(&dir.ws)
            .stdin(Stdio::null());
        if dir.owner != 0 {
            cmd.uid(dir.owner).gid(dir.owner);
        }
        Sj { cmd }
    }

    /// `stepjail run [EXTRA...] -- ARGV...`
    pub fn run(dir: &Dir, extra: &[&str], argv: &[&str]) -> Sj {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(argv);
        Sj::new(dir, &args)
    }

    pub fn env(mut self, k: &str, v: &str) -> Sj {
        self.cmd.env(k, v);
        self
    }

    pub fn output(mut self) -> Out {
        Out(self.cmd.output().expect("spawning stepjail"))
    }
}

pub struct Out(pub Output);

impl Out {
    pub fn code(&self) -> i32 {
        self.0
            .status
            .code()
            .unwrap_or_else(|| panic!("stepjail killed by a signal: {:?}", self.0.status))
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code(),
            0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }
}

/// The users each sandbox test runs as: root (as in CI) and an unprivileged user (as on
/// GitHub's runner). Not root: only the current user.
pub fn users() -> Vec<u32> {
    if is_root() {
        vec![0, NOBODY]
    } else {
        vec![nix::unistd::geteuid().as_raw()]
    }
}

/// A Python snippet run inside the sandbox that prints `errno` of a raw syscall.
pub fn syscall_errno(call: &str) -> String {
    format!(
        "import ctypes,os\nlibc=ctypes.CDLL(None,use_errno=True)\nr={call}\nprint(r, ctypes.get_errno())"
    )
}
pub mod inet;
