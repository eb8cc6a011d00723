//! The misbehaving part of the fake internet, for tests/faults.rs and tests/load.rs: the test's
//! own network namespace (common/inet.rs) plus tests/fixtures/faulty_internet.py on
//! 203.0.113.0/24, and stepjail pointed at that fixture's resolver.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::inet::Internet;
use crate::common::{Dir, bin};

pub struct Faulty {
    pub net: Internet,
    server: std::process::Child,
}

impl Drop for Faulty {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

pub const RESOLVER: &str = "203.0.113.53:53";

/// Allows every name the fixture serves, so that what fails is the fault, not the policy.
pub const PROFILE: &str = "\
name: faults
description: every name of the faulty internet on port 80
extends: default
network:
  allow:
    - ok.test:80
    - herd.test:80
    - reset.test:80
    - hang.test:80
    - servfail.test:80
    - garbage.test:80
    - trunc.test:80
    - slow.test:80
";

impl Faulty {
    pub fn new() -> Faulty {
        let net = Internet::new();
        for a in [
            "203.0.113.20",
            "203.0.113.21",
            "203.0.113.22",
            "203.0.113.53",
        ] {
            let ok = Command::new("ip")
                .args([
                    "-n",
                    &net.ns,
                    "addr",
                    "add",
                    &format!("{a}/32"),
                    "dev",
                    "lo",
                ])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let logs = net.logs.join("faulty");
        std::fs::create_dir(&logs).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/faulty_internet.py"
        );
        let server = Command::new("ip")
            .args(["netns", "exec", &net.ns, "/usr/bin/python3", script])
            .arg(&logs)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !logs.join("ready").exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no faulty internet"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Faulty { net, server }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.net.logs.join("faulty").join(name)).unwrap_or_default()
    }

    /// `[WRAP...] ip netns exec NS [setpriv ...] stepjail run --profile P --resolver RESOLVER
    /// --audit-log AUDIT -- sh -c SCRIPT`, not yet started.
    pub fn command(
        &self,
        wrap: &[&str],
        dir: &Dir,
        profile: &str,
        audit: &Path,
        script: &str,
    ) -> Command {
        let p = dir.write("ws/profile.yml", profile);
        let mut args: Vec<String> = wrap.iter().map(|s| s.to_string()).collect();
        args.extend(["ip", "netns", "exec", &self.net.ns].map(String::from));
        if dir.owner != 0 {
            let id = dir.owner.to_string();
            args.extend(
                ["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups"].map(String::from),
            );
        }
        args.push(bin().into());
        args.extend(
            [
                "run",
                "--profile",
                p.to_str().unwrap(),
                "--resolver",
                RESOLVER,
                "--audit-log",
                audit.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                script,
            ]
            .map(String::from),
        );
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &dir.home)
            .current_dir(&dir.ws)
            .stdin(Stdio::null());
        cmd
    }
}

/// `dir`'s default audit log.
pub fn audit_path(dir: &Dir) -> PathBuf {
    dir.root.join("audit.jsonl")
}

/// The pids of processes whose command line contains `marker` (the test's own `pgrep` aside).
pub fn pids_with(marker: &str) -> Vec<u32> {
    let out = Command::new("pgrep").args(["-f", marker]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits up to `limit` for no process to carry `marker`; returns the ones left.
pub fn wait_gone(marker: &str, limit: Duration) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let left = pids_with(marker);
        if left.is_empty() || start.elapsed() > limit {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A marker unique to this test run, to find the step's processes by command line.
pub fn marker(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "sjmark{}x{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        tag
    )
}

/// `VmHWM` (peak resident memory) of `pid`, in KiB, and its open descriptors.
pub fn vm_hwm_and_fds(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((hwm, fds))
}
