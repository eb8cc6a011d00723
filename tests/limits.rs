//! `process.limits.memory`, `pids` and `cpu`: the step's own cgroup. A fork bomb and a memory
//! balloon are stopped while stepjail and the host carry on, a busy loop gets the CPU share it
//! was given, the cgroup is gone after the run (and a SIGKILLed supervisor's leftover is swept
//! by the next run), and without a cgroup to create `required` refuses and `best-effort` warns.
//!
//! This machine, like the CI one, has the memory, pids and cpu controllers in cgroup v1
//! hierarchies (cgroup v2 holds none of them): these tests drive the v1 backend as root. The
//! v2 backend's path logic is unit-tested against a fake tree (`sandbox::cgroup`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn needs_root() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "cgroup tests need root and CI runs as root"
    );
    eprintln!("skipped: creating cgroups needs root (or a delegated cgroup)");
    false
}

fn profile(dir: &Dir, limits: &str, timeout: &str) -> String {
    let text = format!(
        "name: limited\ndescription: cgroup limits\nfilesystem:\n  read_write: [$WORKSPACE]\nprocess:\n  timeout: {timeout}\n  limits:\n{limits}"
    );
    dir.write("limited.yml", &text).display().to_string()
}

fn run(dir: &Dir, profile: &str, script: &str) -> Sj {
    let audit = dir.root.join("audit.jsonl");
    Sj::run(
        dir,
        &["--profile", profile, "--audit-log", audit.to_str().unwrap()],
        &["bash", "-c", script],
    )
}

/// Starts the step with its output piped and returns it with the first line it printed (the
/// tests' scripts print one line once they are ready, then wait for the test).
fn spawn_first_line(dir: &Dir, profile: &str, script: &str) -> (std::process::Child, String) {
    let mut child = run(dir, profile, script)
        .cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    (child, line)
}

fn step_end(dir: &Dir) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.root.join("audit.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "step_end")
        .expect("a step_end event")
}

/// Our own cgroup's directory in the v1 hierarchy of `controller` (where stepjail, started by
/// us, makes the step's).
fn own_v1_dir(controller: &str) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = text
        .lines()
        .find_map(|l| {
            let mut p = l.splitn(3, ':');
            let _ = p.next();
            let c = p.next()?;
            c.split(',')
                .any(|x| x == controller)
                .then(|| p.next().unwrap().to_string())
        })
        .unwrap_or_else(|| panic!("no v1 {controller} hierarchy: {text}"));
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
}

/// The step cgroups a stepjail process `pid` made (named `stepjail-<ms>-<pid hex>`).
fn step_dirs_of(pid: u32) -> Vec<PathBuf> {
    ["memory", "pids", "cpu"]
        .iter()
        .flat_map(|c| std::fs::read_dir(own_v1_dir(c)).unwrap())
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("stepjail-") && n.ends_with(&format!("-{pid:x}"))
        })
        .collect()
}

fn pgrep(marker: &str) -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn marker(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "sjlim{}x{}x{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A bash fork bomb under `pids: 64` and a 4 s timeout: the kernel refuses forks at 64, the
/// test itself can still fork meanwhile, stepjail exits 122 with `step_end.limit == "pids"`,
/// and nothing of the step is left.
#[test]
fn fork_bomb_is_held_at_the_pids_limit() {
    if !needs_root() {
        return;
    }
    let dir = Dir::new(0);
    let p = profile(&dir, "    pids: 64\n", "4s");
    let mark = marker("bomb");
    let script = format!(": {mark}; bomb() {{ bomb | bomb & }}; bomb; sleep 60");
    let child = run(&dir, &p, &script)
        .cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(1500));
    let dirs = step_dirs_of(pid);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    // The host carries on: we fork and exec while the bomb runs.
    for _ in 0..20 {
        assert!(
            std::process::Command::new("true")
                .status()
                .unwrap()
                .success()
        );
    }
    // The step's cgroup holds it at 64 tasks.
    let read = |f: &str| std::fs::read_to_string(dirs[0].join(f)).unwrap();
    assert_eq!(read("pids.max").trim(), "64");
    let running: u64 = read("pids.current").trim().parse().unwrap();
    assert!(running <= 64, "{running} tasks in the step's cgroup");
    assert!(running >= 32, "only {running} tasks: did the bomb run?");
    let out = Out(child.wait_with_output().unwrap());
    assert_eq!(out.code(), 122, "stderr:\n{}", out.stderr());
    let end = step_end(&dir);
    assert_eq!(end["limit"], "pids", "{end}");
    assert_eq!(end["exit_code"], 122, "{end}");
    assert_eq!(end["timed_out"], true, "{end}");
    let line = out
        .stderr()
        .lines()
        .find(|l| l.starts_with("stepjail: the step hit its pids limit (64 processes and threads"))
        .map(str::to_string);
    assert!(line.is_some(), "{}", out.stderr());
    eprintln!(
        "LIMITS fork bomb: pids.current {} at 1.5 s; {}; step_end {end}",
        running,
        line.unwrap()
    );
    assert!(pgrep(&mark).is_empty(), "step processes left");
    assert!(step_dirs_of(pid).is_empty());
}

/// python3 allocating 64 MiB chunks under `memory: 128M`: the OOM killer ends it, stepjail
/// (which is not in the step's cgroup) survives and says so: 122, `step_end.limit ==
/// "memory"`, one stderr line.
#[test]
fn memory_balloon_is_oom_killed_and_stepjail_survives() {
    if !needs_root() {
        return;
    }
    let dir = Dir::new(0);
    let p = profile(&dir, "    memory: 128M\n", "20s");
    let script = "echo ready; while [ ! -e go ]; do sleep 0.05; done; exec python3 -c '\na = []\nwhile True:\n    a.append(b\"x\" * (64 << 20))\n'";
    let (child, line) = spawn_first_line(&dir, &p, script);
    assert_eq!(line, "ready\n");
    // While the step runs: its cgroups hold its processes, and stepjail is in none of them.
    let dirs = step_dirs_of(child.id());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let procs = std::fs::read_to_string(dirs[0].join("cgroup.procs")).unwrap();
    let members: Vec<u32> = procs.lines().map(|l| l.parse().unwrap()).collect();
    assert!(!members.is_empty());
    assert!(
        !members.contains(&child.id()),
        "stepjail is in the step's cgroup"
    );
    assert_eq!(
        std::fs::read_to_string(dirs[0].join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        (128u64 << 20).to_string()
    );
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
    assert!(!own.contains("stepjail-"), "{own}");
    std::fs::write(dir.ws.join("go"), "").unwrap(); // the step goes on to the balloon
    let out = Out(child.wait_with_output().unwrap());
    assert_eq!(out.code(), 122, "stderr:\n{}", out.stderr());
    let end = step_end(&dir);
    assert_eq!(end["limit"], "memory", "{end}");
    assert_eq!(end["timed_out"], false, "{end}");
    assert!(
        out.stderr().contains(
            "stepjail: the step hit its memory limit (128 MiB, process.limits.memory); the kernel killed 1 of its processes (out of memory) (exit code 122)"
        ),
        "{}",
        out.stderr()
    );
    assert!(!dirs[0].exists(), "{} left", dirs[0].display());
    eprintln!("LIMITS memory balloon: step_end {end}");
}

/// A busy loop of about 1 s wall under `cpu: 0.2` gets about 0.2 s of CPU (the kernel's
/// quota: 20 ms per 100 ms period), and the kernel throttled the step's cgroup to hold it
/// there (on a busy machine a loop may get little CPU anyway: the throttling count is what
/// tells the quota did it).
#[test]
fn cpu_quota_holds_a_busy_loop_to_its_share() {
    if !needs_root() {
        return;
    }
    let dir = Dir::new(0);
    let p = profile(&dir, "    cpu: 0.2\n", "20s");
    let script = "exec python3 -c '\nimport os, time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.0:\n    pass\nc = os.times()\nprint(c.user + c.system, time.monotonic() - t, flush=True)\nwhile not os.path.exists(\"done\"):\n    time.sleep(0.05)\n'";
    let (child, line) = spawn_first_line(&dir, &p, script);
    let nums: Vec<f64> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(nums.len(), 2, "{line:?}");
    let (cpu, wall) = (nums[0], nums[1]);
    let dirs = step_dirs_of(child.id());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let read = |f: &str| std::fs::read_to_string(dirs[0].join(f)).unwrap();
    assert_eq!(read("cpu.cfs_quota_us").trim(), "20000");
    assert_eq!(read("cpu.cfs_period_us").trim(), "100000");
    let stat = read("cpu.stat");
    let throttled: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .unwrap()
        .parse()
        .unwrap();
    std::fs::write(dir.ws.join("done"), "").unwrap();
    let out = Out(child.wait_with_output().unwrap());
    assert_eq!(out.code(), 0, "{}", out.stderr());
    eprintln!("LIMITS cpu 0.2: {cpu:.3} s of CPU in {wall:.3} s wall, throttled {throttled} times");
    assert!(wall >= 1.0);
    assert!(cpu < 0.4, "cpu {cpu} s in {wall} s wall under cpu: 0.2");
    // 10 or 11 on an idle machine; fewer when the machine gives the loop less than its quota
    // anyway. Without the step in its cgroup, 0.
    assert!(throttled >= 1, "{stat}");
    assert!(step_end(&dir).get("limit").is_none());
    assert!(!dirs[0].exists());
}

/// A supervisor killed with SIGKILL cannot remove the step's cgroup: the step dies with it
/// (PDEATHSIG, PID namespace), its cgroup is left empty, and the next run removes it.
#[test]
fn a_sigkilled_supervisors_cgroup_is_swept_by_the_next_run() {
    if !needs_root() {
        return;
    }
    let dir = Dir::new(0);
    let p = profile(&dir, "    pids: 32\n", "30s");
    let mark = marker("killed");
    let mut child = run(&dir, &p, &format!("echo ready; sleep 60; : {mark}"))
        .cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let dirs = step_dirs_of(child.id());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    while !pgrep(&mark).is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(pgrep(&mark).is_empty(), "the step outlived its supervisor");
    assert!(
        dirs[0].exists(),
        "removed although its supervisor was SIGKILLed?"
    );
    // A leftover is swept once it is 2 s old (younger, it may be another PID namespace's run
    // between making its cgroup and moving its child in).
    let made = std::fs::metadata(&dirs[0]).unwrap().modified().unwrap();
    while made.elapsed().unwrap() < Duration::from_millis(2100) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The next run with a cgroup limit sweeps it.
    let out = run(&dir, &p, "true").output();
    out.ok();
    assert!(!dirs[0].exists(), "{} left", dirs[0].display());
}

/// As uid 65534 there is no cgroup to create here (nor on GitHub's runner without a delegated
/// scope): `required` (the default) refuses with 125 and names the keys, the profile and the
/// way out; `best-effort` warns once and runs.
#[test]
fn unprivileged_required_refuses_and_best_effort_warns() {
    if !needs_root() {
        return;
    }
    let dir = Dir::new(NOBODY);
    let p = profile(&dir, "    memory: 256M\n    pids: 128\n", "20s");
    let ran = dir.ws.join("ran");
    let script = format!("touch {}; echo ran", ran.display());
    let out = run(&dir, &p, &script).output();
    assert_eq!(out.code(), 125, "stderr:\n{}", out.stderr());
    assert!(!ran.exists(), "the step ran");
    let err = out.stderr();
    assert!(
        err.starts_with(&format!(
            "stepjail: process.limits.memory, process.limits.pids (profile {p}) cannot be applied: creating /sys/fs/cgroup/"
        )),
        "{err}"
    );
    assert!(err.contains("Permission denied"), "{err}");
    assert!(err.contains("Delegate=yes"), "{err}");
    assert!(err.contains("process.limits.enforce: best-effort"), "{err}");
    assert_eq!(step_end(&dir)["exit_code"], 125);

    let p = profile(
        &dir,
        "    memory: 256M\n    pids: 128\n    enforce: best-effort\n",
        "20s",
    );
    let out = run(&dir, &p, &script).output();
    assert_eq!(out.ok(), "ran\n");
    let warnings: Vec<&str> = out
        .0
        .stderr
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(&format!(
            "stepjail: warning: process.limits.memory, process.limits.pids (profile {p}) not applied (process.limits.enforce: best-effort): creating /sys/fs/cgroup/"
        )),
        "{}",
        warnings[0]
    );
    assert!(ran.exists());
}
