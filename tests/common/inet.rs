//! A fake internet for egress tests: a network namespace of the test's own holding web servers,
//! a DNS server and an attacker on documentation addresses (tests/fixtures/fake_internet.py).
//! stepjail runs inside that namespace (`ip netns exec`), so its supervisor dials "upstream"
//! there; nothing is ever sent to an address outside it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{Dir, NOBODY, Out, bin};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Internet {
    pub ns: String,
    pub logs: PathBuf,
    _logdir: tempfile::TempDir,
    server: Child,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("running ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Internet {
    /// Builds the namespace and starts its servers. Needs root (`ip netns`).
    pub fn new() -> Internet {
        let ns = format!(
            "sjt-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        for a in [
            "192.0.2.10/32",
            "192.0.2.11/32",
            "192.0.2.12/32",
            "192.0.2.53/32",
            "198.51.100.7/32",
            // A "corporate mirror" on a private address, only inside this namespace.
            "10.1.2.3/32",
        ] {
            ip(&["-n", &ns, "addr", "add", a, "dev", "lo"]);
        }
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            "2001:db8::10/128",
            "dev",
            "lo",
            "nodad",
        ]);
        let logdir = tempfile::Builder::new()
            .prefix("sjnet-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let logs = logdir.path().to_path_buf();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fake_internet.py"
        );
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "/usr/bin/python3",
                script,
                logs.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !logs.join("ready").exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the fake internet did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Internet {
            ns,
            logs,
            _logdir: logdir,
            server,
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(name)).unwrap_or_default()
    }

    /// `stepjail run --profile <yaml> --resolver 192.0.2.53:53 --audit-log <dir>/audit.jsonl
    /// EXTRA... -- sh -c SCRIPT`, run inside the namespace as the directory's owner.
    pub fn run(&self, dir: &Dir, profile: &str, extra: &[&str], script: &str) -> Out {
        self.run_env(dir, profile, extra, script, &[])
    }

    /// [`Internet::run`] with extra environment variables for stepjail itself.
    pub fn run_env(
        &self,
        dir: &Dir,
        profile: &str,
        extra: &[&str],
        script: &str,
        env: &[(&str, &Path)],
    ) -> Out {
        run_in_netns(&self.ns, dir, profile, extra, script, env)
    }
}

/// `stepjail run --profile <yaml> --resolver 192.0.2.53:53 --audit-log <dir>/audit.jsonl
/// EXTRA... -- sh -c SCRIPT` inside network namespace `ns`, as the directory's owner, with `env`
/// for stepjail itself (the step gets what its profile passes).
pub fn run_in_netns<V: AsRef<std::ffi::OsStr>>(
    ns: &str,
    dir: &Dir,
    profile: &str,
    extra: &[&str],
    script: &str,
    env: &[(&str, V)],
) -> Out {
    let p = dir.write("ws/profile.yml", profile);
    let audit = dir.root.join("audit.jsonl");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    if dir.owner != 0 {
        let id = dir.owner.to_string();
        cmd.args(["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups"]);
    }
    cmd.arg(bin())
        .args([
            "run",
            "--profile",
            p.to_str().unwrap(),
            "--resolver",
            "192.0.2.53:53",
        ])
        .args(["--audit-log", audit.to_str().unwrap()])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &dir.home)
        .current_dir(&dir.ws)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Out(cmd.output().unwrap())
}

impl Drop for Internet {
    fn drop(&mut self) {
        // `ip netns exec` runs python as its child; killing the namespace's processes ends both.
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// The audit events in `dir`'s log, parsed.
pub fn audit_events(dir: &Dir) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.root.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l:?}: {e}")))
        .collect()
}

/// Events of one kind whose fields include every `(key, value)` given.
pub fn find<'a>(
    events: &'a [serde_json::Value],
    kind: &str,
    fields: &[(&str, &str)],
) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind)
        .filter(|e| {
            fields.iter().all(|(k, v)| match &e[*k] {
                serde_json::Value::String(s) => s == v,
                serde_json::Value::Number(n) => n.to_string() == *v,
                other => other.to_string().as_str() == *v,
            })
        })
        .collect()
}

/// The users egress tests run stepjail as: the unprivileged one matters most (GitHub's runner).
pub fn egress_users() -> Vec<u32> {
    vec![NOBODY, 0]
}

pub fn needs_root() -> bool {
    if super::is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "egress tests need root (ip netns) and CI runs as root"
    );
    eprintln!("skipped: egress tests need root to build their network namespaces");
    false
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
