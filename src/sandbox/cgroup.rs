//! The step's cgroup: `process.limits.memory`, `pids` and `cpu` hold for every process of the
//! step together, which rlimits (per process) cannot do. The supervisor creates one cgroup per
//! step under its own cgroup in each hierarchy that has a wanted controller (cgroup v2 when the
//! controller is there, else the v1 hierarchy that has it), moves the cloned child into it
//! before releasing it (so no step code ever runs outside), and after the step reads which
//! limit was hit, kills any member left and removes it.
//!
//! Every path is taken relative to a `root` directory (`/` in use) so that the parsing and the
//! layout are tested against a fake tree. Plain file writes only: nothing here is `unsafe`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::policy::model::{Enforce, Limits};

/// The name every step cgroup starts with; the rest is the run id, whose last part is the
/// supervisor's pid (hex), which is how a later run tells a leftover from a live one.
pub const PREFIX: &str = "stepjail-";

/// What the profile asks of the step's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub cpu_millis: Option<u64>,
    pub enforce: Enforce,
    /// The cgroup's directory name, `stepjail-<run id>`.
    pub name: String,
    /// The profile's source (`builtin:NAME` or its file), for messages.
    pub source: String,
}

impl Request {
    /// `None` when the profile sets no cgroup limit.
    pub fn from_limits(l: &Limits) -> Option<Request> {
        l.needs_cgroup().then(|| Request {
            memory: l.memory,
            pids: l.pids,
            cpu_millis: l.cpu_millis,
            enforce: l.enforce.unwrap_or_default(),
            name: default_name(),
            source: String::new(),
        })
    }

    fn wanted(&self) -> Vec<Controller> {
        let mut out = vec![];
        if self.memory.is_some() {
            out.push(Controller::Memory);
        }
        if self.pids.is_some() {
            out.push(Controller::Pids);
        }
        if self.cpu_millis.is_some() {
            out.push(Controller::Cpu);
        }
        out
    }
}

/// `stepjail-<ms hex>-<pid hex>`, the shape of a run id, for a plan whose caller names no run
/// (`step::launch` gives the run's own id).
fn default_name() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{PREFIX}{ms:x}-{:x}", std::process::id())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A limit the step ran into, read from the cgroup after the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// The kernel's OOM killer killed `kills` processes of the step at `limit` bytes.
    Memory { limit: u64, kills: u64 },
    /// The kernel refused `refused` forks (or new threads) at `limit`.
    Pids { limit: u64, refused: u64 },
}

impl LimitHit {
    /// The audit log's name for it (`step_end.limit`).
    pub fn name(&self) -> &'static str {
        match self {
            LimitHit::Memory { .. } => "memory",
            LimitHit::Pids { .. } => "pids",
        }
    }
}

/// One line of `/proc/self/cgroup`: `ID:CONTROLLERS:PATH` (`0::PATH` is the v2 hierarchy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub id: u32,
    pub controllers: Vec<String>,
    pub path: String,
}

pub fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let id = parts.next()?.parse().ok()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(Membership {
                id,
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: path.to_string(),
            })
        })
        .collect()
}

/// A cgroup mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The hierarchy's directory mounted there (`/` unless a container mounted a subtree).
    pub root: String,
    pub point: PathBuf,
    pub version: Version,
    /// v1: the controllers of the hierarchy (from the super options); v2: empty.
    pub controllers: Vec<String>,
}

pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let _source = post.next()?;
            let options = post.next().unwrap_or("");
            let version = match fstype {
                "cgroup2" => Version::V2,
                "cgroup" => Version::V1,
                _ => return None,
            };
            let controllers = match version {
                Version::V2 => vec![],
                Version::V1 => options
                    .split(',')
                    .filter(|o| !o.contains('=') && *o != "rw" && *o != "ro")
                    .map(str::to_string)
                    .collect(),
            };
            Some(Mount {
                root: unescape(pre.get(3)?),
                point: PathBuf::from(unescape(pre.get(4)?)),
                version,
                controllers,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| c.is_ascii_digit()) {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Our own cgroup's directory in one hierarchy, and the wanted controllers it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub version: Version,
    pub dir: PathBuf,
    pub controllers: Vec<Controller>,
}

/// `root` + an absolute path.
fn under(root: &Path, abs: &Path) -> PathBuf {
    root.join(abs.strip_prefix("/").unwrap_or(abs))
}

/// The directory of the cgroup at `path` (as /proc/self/cgroup says it) in the hierarchy
/// mounted by `m`; `None` when the mount does not show it (another subtree is mounted).
fn dir_in(root: &Path, m: &Mount, path: &str) -> Option<PathBuf> {
    let rel = if m.root == "/" {
        path.strip_prefix('/').unwrap_or(path)
    } else {
        let rest = path.strip_prefix(m.root.as_str())?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest.trim_start_matches('/')
    };
    let base = under(root, &m.point);
    Some(if rel.is_empty() { base } else { base.join(rel) })
}

/// Where each wanted controller can be had: v2 when our v2 cgroup offers it in
/// `cgroup.controllers`, else the v1 hierarchy that has it. Controllers found nowhere come
/// back with the reason.
pub fn locate(root: &Path, wanted: &[Controller]) -> (Vec<Place>, Vec<(Controller, String)>) {
    let read = |p: &str| std::fs::read_to_string(under(root, Path::new(p))).unwrap_or_default();
    let members = parse_proc_cgroup(&read("/proc/self/cgroup"));
    let mounts = parse_mountinfo(&read("/proc/self/mountinfo"));
    let v2_dir = members
        .iter()
        .find(|m| m.id == 0 && m.controllers.is_empty())
        .and_then(|me| {
            mounts
                .iter()
                .filter(|m| m.version == Version::V2)
                .find_map(|m| dir_in(root, m, &me.path))
        });
    let v2_offers: Vec<String> = v2_dir
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("cgroup.controllers")).ok())
        .map(|t| t.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut places: Vec<Place> = vec![];
    let mut missing = vec![];
    for &c in wanted {
        let name = c.name();
        let found = if let Some(d) = v2_dir
            .as_ref()
            .filter(|_| v2_offers.iter().any(|o| o == name))
        {
            Some((Version::V2, d.clone()))
        } else {
            members
                .iter()
                .find(|m| m.controllers.iter().any(|x| x == name))
                .and_then(|me| {
                    mounts
                        .iter()
                        .filter(|m| {
                            m.version == Version::V1 && m.controllers.iter().any(|x| x == name)
                        })
                        .find_map(|m| dir_in(root, m, &me.path))
                })
                .map(|d| (Version::V1, d))
        };
        match found {
            Some((version, dir)) => match places.iter_mut().find(|p| p.dir == dir) {
                Some(p) => p.controllers.push(c),
                None => places.push(Place {
                    version,
                    dir,
                    controllers: vec![c],
                }),
            },
            None => missing.push((
                c,
                match &v2_dir {
                    Some(d) => format!(
                        "the {name} controller is neither offered to our cgroup v2 {} (cgroup.controllers: {}) nor mounted as a cgroup v1 hierarchy",
                        d.display(),
                        if v2_offers.is_empty() { "none".to_string() } else { v2_offers.join(" ") }
                    ),
                    None => format!("no cgroup hierarchy with the {name} controller is mounted"),
                },
            )),
        }
    }
    (places, missing)
}

/// One cgroup made for the step.
#[derive(Debug)]
struct Made {
    version: Version,
    dir: PathBuf,
    controllers: Vec<Controller>,
}

/// The step's cgroups, one per hierarchy. Removed by [`StepCgroup::finish`], or on drop when
/// the run failed before the step.
#[derive(Debug)]
pub struct StepCgroup {
    made: Vec<Made>,
    memory: Option<u64>,
    pids: Option<u64>,
    /// Set for `best-effort` when some limit could not be applied: said once, before the step.
    pub warning: Option<String>,
}

impl StepCgroup {
    /// Makes the step's cgroups under `root` (`/`). `Err` is the message for a `required`
    /// profile that cannot have them: nothing is left behind then.
    pub fn create(root: &Path, req: &Request) -> Result<StepCgroup, String> {
        let (places, mut missing) = locate(root, &req.wanted());
        let mut made = vec![];
        for p in places {
            match make(root, &p, req) {
                Ok(m) => made.push(m),
                Err(why) => missing.extend(p.controllers.iter().map(|&c| (c, why.clone()))),
            }
        }
        let mut cg = StepCgroup {
            made,
            memory: req.memory,
            pids: req.pids,
            warning: None,
        };
        if missing.is_empty() {
            return Ok(cg);
        }
        let keys: Vec<String> = missing
            .iter()
            .map(|(c, _)| format!("process.limits.{}", c.name()))
            .collect();
        let mut reasons: Vec<&str> = missing.iter().map(|(_, r)| r.as_str()).collect();
        reasons.dedup();
        let source = if req.source.is_empty() {
            String::new()
        } else {
            format!(" (profile {})", req.source)
        };
        match req.enforce {
            Enforce::Required => {
                cg.remove();
                Err(format!(
                    "{}{source} cannot be applied: {}. Cgroup limits need root or a delegated cgroup \
                     (systemd-run --user --scope -p Delegate=yes stepjail ...); \
                     `process.limits.enforce: best-effort` runs the step without them",
                    keys.join(", "),
                    reasons.join("; ")
                ))
            }
            Enforce::BestEffort => {
                cg.warning = Some(format!(
                    "{}{source} not applied (process.limits.enforce: best-effort): {}",
                    keys.join(", "),
                    reasons.join("; ")
                ));
                Ok(cg)
            }
        }
    }

    /// Moves `pid` (the cloned child, not yet released) into every cgroup made.
    pub fn attach(&self, pid: libc::pid_t) -> Result<(), String> {
        for m in &self.made {
            let procs = m.dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .map_err(|e| format!("moving the step into {}: {e}", procs.display()))?;
        }
        Ok(())
    }

    /// The directories made (for tests and messages).
    pub fn dirs(&self) -> Vec<&Path> {
        self.made.iter().map(|m| m.dir.as_path()).collect()
    }

    /// After the step: which limit it hit (an OOM kill first: it ends processes; refused forks
    /// only slow them), then every cgroup removed.
    pub fn finish(mut self) -> Option<LimitHit> {
        let hit = self.hit();
        self.remove();
        hit
    }

    fn hit(&self) -> Option<LimitHit> {
        let mut hit = None;
        for m in &self.made {
            if m.controllers.contains(&Controller::Memory) {
                let (file, key) = match m.version {
                    Version::V2 => ("memory.events", "oom_kill"),
                    Version::V1 => ("memory.oom_control", "oom_kill"),
                };
                let kills = counter(&m.dir.join(file), key);
                if kills > 0 {
                    hit = Some(LimitHit::Memory {
                        limit: self.memory.unwrap_or_default(),
                        kills,
                    });
                }
            }
        }
        if hit.is_none() {
            for m in &self.made {
                if m.controllers.contains(&Controller::Pids) {
                    let refused = counter(&m.dir.join("pids.events"), "max");
                    if refused > 0 {
                        hit = Some(LimitHit::Pids {
                            limit: self.pids.unwrap_or_default(),
                            refused,
                        });
                    }
                }
            }
        }
        hit
    }

    /// Kills what is left in each cgroup and removes it. The step's init has ended by now, so
    /// the kernel has already killed its PID namespace: this is for the error paths.
    fn remove(&mut self) {
        for m in self.made.drain(..) {
            if let Err(e) = empty_and_remove(&m) {
                say!(
                    "stepjail: warning: removing the step's cgroup {}: {e}",
                    m.dir.display()
                );
            }
        }
    }
}

impl Drop for StepCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

fn empty_and_remove(m: &Made) -> io::Result<()> {
    let kill_file = m.dir.join("cgroup.kill");
    if m.version == Version::V2 && kill_file.exists() {
        let _ = std::fs::write(&kill_file, "1");
    }
    let start = Instant::now();
    loop {
        // v1 has no cgroup.kill: SIGKILL each member until none is left (a fork bomb may add
        // members while we go; the pids limit bounds them).
        let procs = std::fs::read_to_string(m.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace().filter_map(|p| p.parse().ok()) {
            crate::sys::kill(pid, libc::SIGKILL);
        }
        match std::fs::remove_dir(&m.dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // EBUSY while killed members are still exiting.
            Err(e) if start.elapsed() > Duration::from_secs(5) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// `KEY N` from a flat-keyed cgroup file; 0 when absent.
fn counter(file: &Path, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(|e| format!("writing {value:?} to {}: {e}", p.display()))
}

/// Makes the step's cgroup under our own in one hierarchy and writes its limits.
fn make(root: &Path, p: &Place, req: &Request) -> Result<Made, String> {
    sweep(root, &p.dir);
    if p.version == Version::V2 {
        enable_controllers(&p.dir, &p.controllers, &req.name)?;
    }
    let dir = p.dir.join(&req.name);
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let made = Made {
        version: p.version,
        dir,
        controllers: p.controllers.clone(),
    };
    if let Err(e) = write_limits(&made, req) {
        let _ = std::fs::remove_dir(&made.dir);
        return Err(e);
    }
    Ok(made)
}

fn write_limits(m: &Made, req: &Request) -> Result<(), String> {
    const PERIOD_US: u64 = 100_000;
    for &c in &m.controllers {
        match (c, m.version) {
            (Controller::Memory, Version::V2) => {
                let bytes = req.memory.unwrap_or_default();
                write(&m.dir, "memory.max", &bytes.to_string())?;
                // Without this the step would page out past its limit instead of being stopped.
                if m.dir.join("memory.swap.max").exists() {
                    write(&m.dir, "memory.swap.max", "0")?;
                }
            }
            (Controller::Memory, Version::V1) => {
                let bytes = req.memory.unwrap_or_default().to_string();
                // The memory limit first: memsw (memory + swap) may not be below it.
                write(&m.dir, "memory.limit_in_bytes", &bytes)?;
                if m.dir.join("memory.memsw.limit_in_bytes").exists() {
                    write(&m.dir, "memory.memsw.limit_in_bytes", &bytes)?;
                }
            }
            (Controller::Pids, _) => {
                write(
                    &m.dir,
                    "pids.max",
                    &req.pids.unwrap_or_default().to_string(),
                )?;
            }
            (Controller::Cpu, Version::V2) => {
                let quota = req.cpu_millis.unwrap_or_default() * PERIOD_US / 1000;
                write(&m.dir, "cpu.max", &format!("{quota} {PERIOD_US}"))?;
            }
            (Controller::Cpu, Version::V1) => {
                let quota = req.cpu_millis.unwrap_or_default() * PERIOD_US / 1000;
                write(&m.dir, "cpu.cfs_period_us", &PERIOD_US.to_string())?;
                write(&m.dir, "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
    }
    Ok(())
}

/// cgroup v2 gives a child a controller only when its parent lists it in
/// `cgroup.subtree_control`. A cgroup with processes of its own may not enable controllers
/// (EBUSY, "no internal processes"): when we are its only process, as in a delegated scope made
/// for us, we move ourselves into a leaf of our own first, as systemd asks of delegated
/// subtrees. With other processes there we cannot, and say so.
fn enable_controllers(dir: &Path, wanted: &[Controller], name: &str) -> Result<(), String> {
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let need: Vec<String> = wanted
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == c.name()))
        .map(|c| format!("+{}", c.name()))
        .collect();
    if need.is_empty() {
        return Ok(());
    }
    let line = need.join(" ");
    let file = dir.join("cgroup.subtree_control");
    match std::fs::write(&file, &line) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) => return Err(format!("enabling {line} in {}: {e}", file.display())),
    }
    let me = std::process::id().to_string();
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let others = procs.split_whitespace().filter(|p| *p != me).count();
    if others > 0 {
        return Err(format!(
            "enabling {line} in {} needs our cgroup to hold no process, and it holds {others} besides stepjail \
             (start stepjail in a cgroup of its own: systemd-run --scope -p Delegate=yes)",
            file.display()
        ));
    }
    let leaf = dir.join(format!("{name}-supervisor"));
    std::fs::create_dir(&leaf).map_err(|e| format!("creating {}: {e}", leaf.display()))?;
    write(&leaf, "cgroup.procs", &me)?;
    std::fs::write(&file, &line).map_err(|e| format!("enabling {line} in {}: {e}", file.display()))
}

/// Removes step cgroups that earlier runs left behind (a supervisor killed with SIGKILL cannot
/// remove its own): empty ones whose supervisor pid no longer runs, made at least
/// [`LEFTOVER_AGE`] ago. A live run's are never touched: its pid runs, or (a supervisor in
/// another PID namespace, whose pid means nothing here) its cgroup is empty only for the
/// moment between its creation and the child's move into it.
fn sweep(root: &Path, dir: &Path) {
    for d in leftovers(root, dir) {
        let _ = std::fs::remove_dir(d);
    }
}

const LEFTOVER_AGE: Duration = Duration::from_secs(2);

fn leftovers(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out = vec![];
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = leftover_pid(&name) else {
            continue;
        };
        let alive = under(root, Path::new(&format!("/proc/{pid}"))).exists();
        let empty = std::fs::read_to_string(e.path().join("cgroup.procs"))
            .map(|t| t.trim().is_empty())
            .unwrap_or(false);
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= LEFTOVER_AGE);
        if !alive && empty && old {
            out.push(e.path());
        }
    }
    out
}

/// The supervisor pid in a step cgroup's name: `stepjail-<ms hex>-<pid hex>[-supervisor]`.
fn leftover_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let rest = rest.strip_suffix("-supervisor").unwrap_or(rest);
    let (_, pid) = rest.rsplit_once('-')?;
    u32::from_str_radix(pid, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_CGROUP: &str =
        "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n";
    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V2_CGROUP: &str = "0::/user.slice/user-1001.slice/run-r1.scope\n";
    const V2_MOUNTS: &str = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn fake(cgroup: &str, mounts: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("proc/self")).unwrap();
        std::fs::write(t.path().join("proc/self/cgroup"), cgroup).unwrap();
        std::fs::write(t.path().join("proc/self/mountinfo"), mounts).unwrap();
        t
    }

    fn req(name: &str) -> Request {
        Request {
            memory: Some(128 << 20),
            pids: Some(64),
            cpu_millis: Some(1500),
            enforce: Enforce::Required,
            name: name.into(),
            source: "p.yml".into(),
        }
    }

    #[test]
    fn proc_cgroup_lines() {
        let m = parse_proc_cgroup("4:memory:/a/b\n0::/\n1:cpu,cpuacct:/x:y\nbad\n");
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].controllers, vec!["memory"]);
        assert_eq!(m[0].path, "/a/b");
        assert!(m[1].controllers.is_empty() && m[1].id == 0 && m[1].path == "/");
        assert_eq!(m[2].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m[2].path, "/x:y");
    }

    #[test]
    fn mountinfo_lines() {
        let m = parse_mountinfo(HYBRID_MOUNTS);
        assert_eq!(m.len(), 6, "{m:?}");
        assert_eq!(m[0].point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(m[0].controllers, vec!["cpu"]);
        assert!(m[4].controllers.is_empty(), "{m:?}");
        assert_eq!(m[5].version, Version::V2);
        let esc = parse_mountinfo("1 2 0:1 /a\\040b /mnt/x\\040y rw - cgroup2 none rw\n");
        assert_eq!(esc[0].root, "/a b");
        assert_eq!(esc[0].point, PathBuf::from("/mnt/x y"));
    }

    #[test]
    fn hybrid_uses_v1_under_our_own_cgroup() {
        let t = fake(HYBRID_CGROUP, HYBRID_MOUNTS);
        let uni = t.path().join("sys/fs/cgroup/unified");
        std::fs::create_dir_all(&uni).unwrap();
        std::fs::write(uni.join("cgroup.controllers"), "hugetlb\n").unwrap();
        let (places, missing) = locate(t.path(), &req("x").wanted());
        assert!(missing.is_empty(), "{missing:?}");
        let root = t.path();
        assert_eq!(
            places,
            vec![
                Place {
                    version: Version::V1,
                    dir: root.join("sys/fs/cgroup/memory/process_api/abc"),
                    controllers: vec![Controller::Memory]
                },
                Place {
                    version: Version::V1,
                    dir: root.join("sys/fs/cgroup/pids"),
                    controllers: vec![Controller::Pids]
                },
                Place {
                    version: Version::V1,
                    dir: root.join("sys/fs/cgroup/cpu"),
                    controllers: vec![Controller::Cpu]
                },
            ]
        );
    }

    #[test]
    fn v2_with_controllers_makes_one_cgroup_and_writes_its_limits() {
        let t = fake(V2_CGROUP, V2_MOUNTS);
        let me = t
            .path()
            .join("sys/fs/cgroup/user.slice/user-1001.slice/run-r1.scope");
        std::fs::create_dir_all(&me).unwrap();
        std::fs::write(me.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        std::fs::write(me.join("cgroup.subtree_control"), "").unwrap();
        let r = req("stepjail-1-2");
        let (places, missing) = locate(t.path(), &r.wanted());
        assert!(missing.is_empty());
        assert_eq!(places.len(), 1);
        assert_eq!(places[0].version, Version::V2);
        assert_eq!(places[0].dir, me);
        // A real cgroupfs makes the control files; a fake directory gets them written.
        let cg = StepCgroup::create(t.path(), &r).unwrap();
        assert_eq!(
            std::fs::read_to_string(me.join("cgroup.subtree_control")).unwrap(),
            "+memory +pids +cpu"
        );
        let step = me.join("stepjail-1-2");
        assert_eq!(cg.dirs(), vec![step.as_path()]);
        let read = |f: &str| std::fs::read_to_string(step.join(f)).unwrap();
        assert_eq!(read("memory.max"), (128u64 << 20).to_string());
        assert_eq!(read("pids.max"), "64");
        assert_eq!(read("cpu.max"), "150000 100000");
        std::fs::write(
            step.join("memory.events"),
            "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(step.join("pids.events"), "max 3\n").unwrap();
        assert_eq!(
            cg.hit(),
            Some(LimitHit::Memory {
                limit: 128 << 20,
                kills: 1
            })
        );
        std::fs::write(step.join("memory.events"), "oom_kill 0\n").unwrap();
        assert_eq!(
            cg.hit(),
            Some(LimitHit::Pids {
                limit: 64,
                refused: 3
            })
        );
        // A real cgroupfs removes its control files with the directory; a fake one needs help.
        for f in std::fs::read_dir(&step).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        assert_eq!(cg.finish(), None);
        assert!(!step.exists());
    }

    #[test]
    fn v2_without_the_controller_is_refused_or_warned_as_asked() {
        let t = fake(V2_CGROUP, V2_MOUNTS);
        let me = t
            .path()
            .join("sys/fs/cgroup/user.slice/user-1001.slice/run-r1.scope");
        std::fs::create_dir_all(&me).unwrap();
        std::fs::write(me.join("cgroup.controllers"), "cpu\n").unwrap();
        let mut r = req("stepjail-1-2");
        r.cpu_millis = None;
        let err = StepCgroup::create(t.path(), &r).unwrap_err();
        assert!(err.starts_with("process.limits.memory, process.limits.pids (profile p.yml) cannot be applied: the memory controller is neither offered"), "{err}");
        assert!(err.contains("best-effort"), "{err}");
        assert!(!me.join("stepjail-1-2").exists());
        r.enforce = Enforce::BestEffort;
        r.pids = None;
        let cg = StepCgroup::create(t.path(), &r).unwrap();
        let w = cg.warning.clone().unwrap();
        assert!(
            w.starts_with("process.limits.memory (profile p.yml) not applied"),
            "{w}"
        );
        assert!(cg.dirs().is_empty());
    }

    #[test]
    fn nothing_mounted_names_the_controller() {
        let t = fake("0::/\n", "");
        let (places, missing) = locate(t.path(), &[Controller::Pids]);
        assert!(places.is_empty());
        assert_eq!(
            missing,
            vec![(
                Controller::Pids,
                "no cgroup hierarchy with the pids controller is mounted".to_string()
            )]
        );
    }

    #[test]
    fn a_subtree_mount_maps_paths_below_its_root() {
        let t = fake(
            "0::/a/b\n",
            "1 2 0:1 /a /sys/fs/cgroup rw - cgroup2 none rw\n",
        );
        let me = t.path().join("sys/fs/cgroup/b");
        std::fs::create_dir_all(&me).unwrap();
        std::fs::write(me.join("cgroup.controllers"), "pids\n").unwrap();
        let (places, _) = locate(t.path(), &[Controller::Pids]);
        assert_eq!(places[0].dir, me);
        // A cgroup outside the mounted subtree is not reachable.
        let t = fake(
            "0::/ab\n",
            "1 2 0:1 /a /sys/fs/cgroup rw - cgroup2 none rw\n",
        );
        let (places, missing) = locate(t.path(), &[Controller::Pids]);
        assert!(places.is_empty() && missing.len() == 1);
    }

    #[test]
    fn leftovers_are_swept_only_when_their_supervisor_is_gone() {
        assert_eq!(leftover_pid("stepjail-18c1a2b3c4d-1f"), Some(31));
        assert_eq!(leftover_pid("stepjail-18c1a2b3c4d-1f-supervisor"), Some(31));
        assert_eq!(leftover_pid("other-1-2"), None);
        let t = fake("", "");
        let parent = t.path().join("cg");
        for name in [
            "stepjail-1-10",
            "stepjail-1-20",
            "stepjail-1-30",
            "keep-1-10",
        ] {
            std::fs::create_dir_all(parent.join(name)).unwrap();
            std::fs::write(parent.join(name).join("cgroup.procs"), "").unwrap();
        }
        // pid 0x20 runs; 0x30's cgroup still has a member; 0x40's has no cgroup.procs.
        std::fs::create_dir_all(t.path().join("proc/32")).unwrap();
        std::fs::write(parent.join("stepjail-1-30/cgroup.procs"), "77\n").unwrap();
        std::fs::create_dir_all(parent.join("stepjail-1-40")).unwrap();
        // Just made: not yet a leftover (another PID namespace's run may be about to move its
        // child in).
        assert!(leftovers(t.path(), &parent).is_empty());
        let past = std::time::SystemTime::now() - Duration::from_secs(3);
        for name in [
            "stepjail-1-10",
            "stepjail-1-20",
            "stepjail-1-30",
            "stepjail-1-40",
            "keep-1-10",
        ] {
            std::fs::File::open(parent.join(name))
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        assert_eq!(
            leftovers(t.path(), &parent),
            vec![parent.join("stepjail-1-10")]
        );
    }

    /// The v2 attach, `cgroup.kill` and removal on the real unified hierarchy (which holds no
    /// memory, pids or cpu controller on a hybrid machine, but takes processes): a member is
    /// killed and the directory removed. Needs root; the parsers read the real /proc.
    #[test]
    fn v2_attach_kill_and_remove_on_the_real_hierarchy() {
        if !nix::unistd::geteuid().is_root() {
            say!("skipped: creating a cgroup needs root");
            return;
        }
        let root = Path::new("/");
        let members = parse_proc_cgroup(&std::fs::read_to_string("/proc/self/cgroup").unwrap());
        let mounts = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
        let me = members
            .iter()
            .find(|m| m.id == 0 && m.controllers.is_empty());
        let Some(dir) = me.and_then(|me| {
            mounts
                .iter()
                .filter(|m| m.version == Version::V2)
                .find_map(|m| dir_in(root, m, &me.path))
        }) else {
            say!("skipped: no cgroup v2 hierarchy");
            return;
        };
        let step = dir.join(format!("{PREFIX}test-{:x}", std::process::id()));
        std::fs::create_dir(&step).unwrap();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let cg = StepCgroup {
            made: vec![Made {
                version: Version::V2,
                dir: step.clone(),
                controllers: vec![],
            }],
            memory: None,
            pids: None,
            warning: None,
        };
        cg.attach(sleeper.id() as libc::pid_t).unwrap();
        let procs = std::fs::read_to_string(step.join("cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), sleeper.id().to_string());
        assert_eq!(cg.finish(), None);
        assert!(!step.exists());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(sleeper.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}
