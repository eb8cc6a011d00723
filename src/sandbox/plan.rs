//! The sandbox plan: every decision about one run, made by pure functions.
//!
//! Nothing here touches the kernel. [`Plan::build`] takes the resolved profile and facts about
//! the host (gathered by `host.rs`) and says which mounts to make in which order, which
//! environment the step gets, which identity it runs as and which limits apply. `apply.rs`
//! carries the plan out; tests here check the decisions without root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::policy::model::{EnvPattern, LandlockPolicy, NetworkMode, ResolvedProfile};
pub use crate::policy::reserved::SANDBOX_VARS;

/// Variables every step gets when the caller has them, before the profile's `env.pass`.
pub const SAFE_DEFAULT_ENV: &[&str] = &["PATH", "TERM", "LANG", "TZ"];

/// `PATH` when the caller has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Who the step runs as, inside and outside the user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// The user name for `USER`/`LOGNAME`, when known.
    pub name: Option<String>,
    /// The step's `HOME` (and the profile's `$HOME`), when known.
    pub home: Option<PathBuf>,
    /// Whether stepjail itself runs as root (it may then map any id and drop groups).
    pub privileged: bool,
}

impl Identity {
    /// The `uid_map` line: the step's uid is the same number inside and outside.
    pub fn uid_map(&self) -> String {
        format!("{0} {0} 1\n", self.uid)
    }
    pub fn gid_map(&self) -> String {
        format!("{0} {0} 1\n", self.gid)
    }
    /// Unprivileged callers must deny setgroups before writing a gid map; root may allow it and
    /// then drops the supplementary groups it came with.
    pub fn setgroups(&self) -> &'static str {
        if self.privileged { "allow" } else { "deny" }
    }
}

/// What kind of object a hidden path is, which decides how it is covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenKind {
    /// Covered by an empty, read-only tmpfs with mode 000.
    Dir,
    /// Files, sockets, devices: covered by a bind of an empty mode-000 file.
    File,
}

/// One mount operation, applied in order inside the step's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// Stop mount events propagating back to the host.
    MakePrivate,
    /// Make every mount inherited from the host read-only and nosuid.
    ReadOnlyEverything,
    /// A fresh procfs for the step's PID namespace.
    Proc,
    /// A private, empty tmpfs.
    Tmpfs { target: PathBuf, mode: u32 },
    /// A minimal /dev: null, zero, full, random, urandom, tty, a private devpts, shm.
    Dev,
    /// Bind a host path (opened before any mount, see `sources`) writable at the same path.
    BindWritable { source: usize, target: PathBuf },
    /// Make an existing path (and everything below it) read-only again.
    ReadOnly { target: PathBuf },
    /// Cover a path so that it cannot be read.
    Hide { target: PathBuf, kind: HiddenKind },
    /// Cover a file with a read-only one holding `content` (the step's /etc/resolv.conf).
    File { target: PathBuf, content: String },
    /// Write a file (and its missing parent directories) into the step's private /tmp: the
    /// profile's `filesystem.files`, settings a tool reads (apt's `APT_CONFIG`).
    TmpFile { target: PathBuf, content: String },
    /// Remount a tmpfs made above read-only (after its contents are in place).
    Seal { target: PathBuf },
    /// Bind one host file (opened before any mount) at the same path, writable or read-only;
    /// the mountpoint is created when missing (inside a [`Skeleton`]'s tmpfs).
    BindFile {
        source: usize,
        target: PathBuf,
        writable: bool,
    },
}

/// A CI step's own runner files. `dir` (GitHub's `RUNNER_TEMP`, which holds every step's
/// scripts and file-command files) is seen as an empty, read-only skeleton holding only the
/// listed read-only files at their own paths; the step's file-command files are bound
/// writable at their own paths wherever the runner put them (GitHub: inside `dir`, under
/// `_runner_file_commands`; act: in its own workflow directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skeleton {
    /// The directory to reduce; `None` when the runner has none.
    pub dir: Option<PathBuf>,
    /// Files the step may write (its `GITHUB_ENV`, `GITHUB_OUTPUT`, ...), inside `dir` or not.
    /// Never inside a writable or hidden path of the profile ([`PlanError::StepFile`]).
    pub read_write: Vec<PathBuf>,
    /// Files inside `dir` the step may read (its script).
    pub read_only: Vec<PathBuf>,
}

/// rlimit settings as (resource, value).
pub type Rlimits = Vec<(Rlimit, u64)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rlimit {
    OpenFiles,
    FileSize,
    Processes,
    CpuSeconds,
    AddressSpace,
    CoreSize,
}

/// Everything the sandbox needs to know to run one step.
///
/// Sealed: the fields are private to `sandbox` (whose child and supervisor carry the plan out),
/// so a plan exists only as [`Draft::finish`] made it from the resolved profile, the host's
/// facts and its [`Extras`] (the secrets, the CA, the cgroup's name); nothing patches it after.
/// Everything else reads it through the accessors, named like the fields.
///
/// ```compile_fail,E0616
/// fn widen(plan: &mut stepjail::sandbox::plan::Plan) {
///     plan.writable.push("/".into());
/// }
/// ```
///
/// ```compile_fail,E0451
/// fn forge(argv: Vec<String>, identity: stepjail::sandbox::plan::Identity) -> stepjail::sandbox::plan::Plan {
///     stepjail::sandbox::plan::Plan {
///         profile_name: "forged".into(),
///         identity,
///         hostname: "h".into(),
///         sources: Vec::new(),
///         mounts: Vec::new(),
///         writable: vec!["/".into()],
///         landlock: Default::default(),
///         env: Vec::new(),
///         cwd: "/".into(),
///         argv,
///         rlimits: Vec::new(),
///         cgroup: None,
///         timeout: None,
///         egress: true,
///         merge_output: false,
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Plan {
    pub(super) profile_name: String,
    pub(super) identity: Identity,
    pub(super) hostname: String,
    /// Paths to open (O_PATH) before the first mount, referred to by index from `mounts`.
    pub(super) sources: Vec<PathBuf>,
    pub(super) mounts: Vec<MountOp>,
    /// Paths the step may write (landlock rules, in addition to /tmp and /dev/shm).
    pub(super) writable: Vec<PathBuf>,
    pub(super) landlock: LandlockPolicy,
    pub(super) env: Vec<(String, String)>,
    pub(super) cwd: PathBuf,
    pub(super) argv: Vec<String>,
    pub(super) rlimits: Rlimits,
    /// The step's cgroup limits (memory, pids, cpu), when the profile sets any.
    pub(super) cgroup: Option<super::cgroup::Request>,
    pub(super) timeout: Option<Duration>,
    /// Whether the step gets the egress proxy (a TUN device, the proxy and DNS listeners);
    /// without it the network namespace holds only `lo`.
    pub(super) egress: bool,
    /// When output is filtered: the step's stderr goes into the same pipe as its stdout, so one
    /// masker sees one stream (a value split across the two is still one value). For CI steps,
    /// whose runner merges both into one log anyway.
    pub(super) merge_output: bool,
}

/// Facts about the host the plan depends on, gathered before the sandbox exists.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// The caller's environment.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Kind of each path that exists (hidden paths that do not exist are skipped).
    pub kinds: BTreeMap<PathBuf, HiddenKind>,
    /// Pathname unix sockets bound by host processes (services the step must not reach).
    pub host_sockets: Vec<PathBuf>,
    /// The GitHub runner's root directory, if stepjail runs under a runner.
    pub runner_root: Option<PathBuf>,
}

/// Files in the runner root that identify and authenticate the runner.
pub const RUNNER_CREDENTIAL_FILES: &[&str] = &[
    ".credentials",
    ".credentials_rsaparams",
    ".runner",
    ".setup_info",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("no command given to run")]
    NoCommand,
    /// A runner file the step must write lies where binding it would be wrong.
    #[error("{} (the step's file-command file) lies inside {what} {}; it is not bound into the sandbox, so the step is not run", .file.display(), .inside.display())]
    StepFile {
        file: PathBuf,
        what: &'static str,
        inside: PathBuf,
    },
}

/// What a plan holds beyond the profile and the host: the step's secrets and a CA to trust.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The step's secret values (placeholders for brokered ones), set after everything else,
    /// so a declaration wins over `env.set` (which the profile loader already refuses anyway).
    pub secrets: Vec<(String, String)>,
    /// A CA the step trusts on top of the system's (the broker's).
    pub ca: Option<TrustedCa>,
    /// See [`Plan::merge_output`].
    pub merge_output: bool,
    /// The run's id: the step's cgroup (when the profile sets cgroup limits) is named
    /// `stepjail-<run id>`, so a leftover names its run. Empty: a name made of the time and pid.
    pub run_id: String,
    /// The profile's source (`builtin:NAME` or its file), for a cgroup refusal to point at.
    pub source: String,
}

/// A CA bundle the step sees at `bundle` (covered inside the sandbox only) holding `content`:
/// the system bundle, the certificates of [`user_ca_files`] of the [`Draft`]'s environment,
/// and the extra CA.
#[derive(Debug, Clone)]
pub struct TrustedCa {
    pub bundle: PathBuf,
    pub content: String,
}

/// A plan before its [`Extras`]: what the profile and the host decide. The tool-settings
/// check reads it (the caller's settings, not the step's secrets), and the CA bundle's content
/// is made from its environment; [`Draft::finish`] then makes the [`Plan`].
#[derive(Debug, Clone)]
pub struct Draft(Plan);

impl Draft {
    /// The step's environment without its secrets and without a trusted CA.
    pub fn env(&self) -> &[(String, String)] {
        &self.0.env
    }
    /// Paths bound writable into the sandbox (existing ones only).
    pub fn writable(&self) -> &[PathBuf] {
        &self.0.writable
    }
    pub fn identity(&self) -> &Identity {
        &self.0.identity
    }
    /// The plan, with `extras` in it.
    pub fn finish(self, extras: Extras) -> Plan {
        let mut plan = self.0;
        plan.set_secrets(&extras.secrets);
        if let Some(ca) = extras.ca {
            plan.trust_ca(ca.bundle, ca.content);
        }
        plan.merge_output = extras.merge_output;
        if let Some(req) = plan.cgroup.as_mut() {
            if !extras.run_id.is_empty() {
                req.name = format!("{}{}", super::cgroup::PREFIX, extras.run_id);
            }
            req.source = extras.source;
        }
        plan
    }
}

impl Plan {
    /// The profile's name, for messages and audit records.
    pub fn profile_name(&self) -> &str {
        &self.profile_name
    }
    /// Who the step runs as.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
    pub fn hostname(&self) -> &str {
        &self.hostname
    }
    /// Paths opened (O_PATH) before the first mount, referred to by index from `mounts`.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }
    /// The mount operations, in order.
    pub fn mounts(&self) -> &[MountOp] {
        &self.mounts
    }
    /// Paths the step may write (landlock rules, in addition to /tmp and /dev/shm).
    pub fn writable(&self) -> &[PathBuf] {
        &self.writable
    }
    pub fn landlock(&self) -> &LandlockPolicy {
        &self.landlock
    }
    /// The step's whole environment, secrets included.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }
    /// The command; never empty.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }
    pub fn rlimits(&self) -> &Rlimits {
        &self.rlimits
    }
    /// The step's cgroup limits (memory, pids, cpu), when the profile sets any.
    pub fn cgroup(&self) -> Option<&super::cgroup::Request> {
        self.cgroup.as_ref()
    }
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// Whether the step gets the egress proxy.
    pub fn egress(&self) -> bool {
        self.egress
    }
    /// Whether the step's stderr goes into its stdout's pipe.
    pub fn merge_output(&self) -> bool {
        self.merge_output
    }

    /// The plan for running `argv` under `profile`, with the step's secrets and trusted CA.
    pub fn build(
        profile: &ResolvedProfile,
        identity: Identity,
        workspace: &Path,
        argv: Vec<String>,
        host: &HostFacts,
        extras: Extras,
    ) -> Result<Plan, PlanError> {
        Ok(Plan::draft(profile, identity, workspace, argv, host, None)?.finish(extras))
    }

    /// The [`Draft`] of a plan, with a directory reduced to a [`Skeleton`] when given.
    pub fn draft(
        profile: &ResolvedProfile,
        identity: Identity,
        workspace: &Path,
        argv: Vec<String>,
        host: &HostFacts,
        skeleton: Option<&Skeleton>,
    ) -> Result<Draft, PlanError> {
        if argv.is_empty() {
            return Err(PlanError::NoCommand);
        }
        if let Some(sk) = skeleton {
            check_step_files(sk, profile, host)?;
        }
        let egress = profile.network().mode != NetworkMode::None;
        let (sources, mut mounts, writable) = mounts(profile, host, skeleton);
        if egress {
            // Before the final Seal of /dev, where the file's content is staged.
            let at = mounts.len() - 1;
            mounts.insert(
                at,
                MountOp::File {
                    target: "/etc/resolv.conf".into(),
                    content: crate::net::resolv_conf(),
                },
            );
        }
        let mut env = environment(profile, &identity, &host.env);
        if let Some(kv) = pyenv_rehash_off(&env, &writable) {
            env.push(kv);
            env.sort();
        }
        if egress {
            // Last, so that no profile can point the step's tools anywhere else.
            let java = env
                .iter()
                .find(|(k, _)| k == "JAVA_TOOL_OPTIONS")
                .map(|(_, v)| v.clone());
            let tools = crate::net::tool_proxy_env(java.as_deref());
            let ours = |k: &String| {
                crate::net::proxy_env().iter().any(|(p, _)| p == k)
                    || tools.iter().any(|(p, _)| p == k)
            };
            env.retain(|(k, _)| !ours(k));
            env.extend(crate::net::proxy_env());
            env.extend(tools);
            env.sort();
        }
        // The caller's directory, unless the step cannot see it: hidden, or under /tmp (the
        // sandbox's own, empty) outside any writable bind.
        let in_private_tmp =
            host.cwd.starts_with("/tmp") && !writable.iter().any(|w| host.cwd.starts_with(w));
        let cwd = if is_hidden(&host.cwd, &hidden_paths(profile, host))
            || in_private_tmp
            || !host.cwd.is_absolute()
        {
            workspace.to_path_buf()
        } else {
            host.cwd.clone()
        };
        Ok(Draft(Plan {
            profile_name: profile.name().to_string(),
            env,
            identity,
            hostname: "stepjail".to_string(),
            sources,
            mounts,
            writable,
            landlock: profile.landlock().clone(),
            cwd,
            argv,
            rlimits: rlimits(profile),
            cgroup: super::cgroup::Request::from_limits(&profile.process().limits),
            timeout: profile.process().timeout,
            egress,
            merge_output: false,
        }))
    }
}

/// Every path to cover: the profile's, the runner's credential files, and every host socket.
fn hidden_paths(profile: &ResolvedProfile, host: &HostFacts) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = profile.hidden().to_vec();
    if let Some(root) = &host.runner_root {
        out.extend(RUNNER_CREDENTIAL_FILES.iter().map(|f| root.join(f)));
    }
    out.extend(host.host_sockets.iter().cloned());
    out
}

fn is_hidden(path: &Path, hidden: &[PathBuf]) -> bool {
    hidden.iter().any(|h| path.starts_with(h))
}

/// The mount sequence. Order matters, and each step says why it comes where it does.
fn mounts(
    profile: &ResolvedProfile,
    host: &HostFacts,
    skeleton: Option<&Skeleton>,
) -> (Vec<PathBuf>, Vec<MountOp>, Vec<PathBuf>) {
    let mut ops = vec![
        // First, so nothing below ever shows up in the host's mount table.
        MountOp::MakePrivate,
        // Before our own mounts, so those (tmpfs, binds) are not made read-only by it.
        MountOp::ReadOnlyEverything,
        MountOp::Proc,
        MountOp::Tmpfs {
            target: "/tmp".into(),
            mode: 0o1777,
        },
        MountOp::Dev,
    ];
    // Right after the private /tmp exists, before any writable bind: a host directory bound
    // under /tmp then covers the file instead of the file being written into the host's tree.
    for (target, content) in profile.files() {
        ops.push(MountOp::TmpFile {
            target: target.clone(),
            content: content.clone(),
        });
    }
    // Writable binds come after /tmp, so a workspace under /tmp is bound on top of the private
    // tmpfs instead of being hidden by it; their sources were opened before any mount.
    let mut sources = Vec::new();
    let mut writable = Vec::new();
    for p in dedup(profile.read_write()) {
        if !host.kinds.contains_key(&p) {
            continue; // a writable path that does not exist grants nothing
        }
        ops.push(MountOp::BindWritable {
            source: sources.len(),
            target: p.clone(),
        });
        sources.push(p.clone());
        writable.push(p);
    }
    // The skeleton after the writable binds (one of them may contain its directory), then the
    // writable paths inside it bound again on top.
    if let Some(dir) = skeleton.and_then(|sk| sk.dir.as_ref()) {
        ops.push(MountOp::Tmpfs {
            target: dir.clone(),
            mode: 0o755,
        });
        for (i, w) in writable.iter().enumerate() {
            if w.starts_with(dir) && w != dir {
                ops.push(MountOp::BindWritable {
                    source: i,
                    target: w.clone(),
                });
            }
        }
    }
    // Read-only holes after the writable binds they punch through.
    for p in dedup(profile.read_only()) {
        if host.kinds.contains_key(&p) && writable.iter().any(|w| p.starts_with(w)) {
            ops.push(MountOp::ReadOnly { target: p });
        }
    }
    // Hidden last: a hidden path inside a writable bind must be covered on top of that bind.
    for p in dedup(&hidden_paths(profile, host)) {
        // /proc and /dev are the sandbox's own; /tmp too, except where a writable bind
        // brought host files into it.
        let private_tmp = p.starts_with("/tmp") && !writable.iter().any(|w| p.starts_with(w));
        if private_tmp || p.starts_with("/proc") || p.starts_with("/dev") {
            continue;
        }
        if let Some(kind) = host.kinds.get(&p) {
            ops.push(MountOp::Hide {
                target: p,
                kind: *kind,
            });
        }
    }
    // The step's files last, so no hidden path covers them, then the skeleton is sealed.
    if let Some(sk) = skeleton {
        let in_dir = |f: &Path| sk.dir.as_ref().is_some_and(|d| f.starts_with(d));
        let files = sk
            .read_write
            .iter()
            .map(|f| (f, true))
            .chain(sk.read_only.iter().map(|f| (f, false)));
        for (f, w) in files {
            // Only regular files that exist; read-only ones only inside the skeleton. A
            // writable one outside it is bound on itself (its mountpoint exists).
            if (!w && !in_dir(f)) || host.kinds.get(f) != Some(&HiddenKind::File) {
                continue;
            }
            ops.push(MountOp::BindFile {
                source: sources.len(),
                target: f.clone(),
                writable: w,
            });
            sources.push(f.clone());
            if w {
                writable.push(f.clone());
            }
        }
        if let Some(dir) = &sk.dir {
            ops.push(MountOp::Seal {
                target: dir.clone(),
            });
        }
    }
    ops.push(MountOp::Seal {
        target: "/dev".into(),
    });
    (sources, ops, writable)
}

/// A step's writable runner file inside a writable path would be the step's to replace (a
/// symlink planted there is followed when stepjail reads it back); inside a hidden path it
/// could not be bound. Inside the skeleton only what is bound again on top of its tmpfs counts.
fn check_step_files(
    sk: &Skeleton,
    profile: &ResolvedProfile,
    host: &HostFacts,
) -> Result<(), PlanError> {
    let hidden = hidden_paths(profile, host);
    for f in &sk.read_write {
        let in_dir = sk.dir.as_ref().filter(|d| f.starts_with(d));
        let found = |paths: &[PathBuf], what| {
            paths
                .iter()
                .filter(|p| in_dir.is_none_or(|d| p.starts_with(d) && *p != d))
                .find(|p| f.starts_with(p))
                .map(|p| PlanError::StepFile {
                    file: f.clone(),
                    what,
                    inside: p.clone(),
                })
        };
        let hidden_found = if in_dir.is_some() {
            None // covered by the skeleton's own tmpfs, on which the file is bound
        } else {
            found(&hidden, "the hidden path")
        };
        if let Some(e) = found(profile.read_write(), "the writable path").or(hidden_found) {
            return Err(e);
        }
    }
    Ok(())
}

fn dedup(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = std::collections::BTreeSet::new();
    paths
        .iter()
        .filter(|p| seen.insert((*p).clone()))
        .cloned()
        .collect()
}

/// The step's environment: the safe defaults, what the profile passes (never the CI
/// credentials), what it sets, and a few values the sandbox itself decides.
pub fn environment(
    profile: &ResolvedProfile,
    identity: &Identity,
    caller: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in caller {
        // CI credentials and the profile's scrub list never pass; declared secrets are
        // injected by name (see `Extras::secrets`), never picked up by a pattern.
        if crate::secrets::CI_CREDENTIALS.contains(&k.as_str())
            || profile
                .env_scrub()
                .iter()
                .any(|s| crate::policy::model::scrub_matches(s, k))
            || profile.secrets().iter().any(|d| &d.name == k)
        {
            continue;
        }
        let passed = SAFE_DEFAULT_ENV.contains(&k.as_str())
            || k.starts_with("LC_")
            || profile.env_pass().iter().any(|p: &EnvPattern| p.matches(k));
        if passed {
            env.insert(k.clone(), v.clone());
        }
    }
    env.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.into());
    // The step's own home (from passwd when root runs it as another user), the same one the
    // profile's $HOME paths were expanded with.
    if let Some(home) = &identity.home {
        env.insert("HOME".into(), home.display().to_string());
    }
    if let Some(name) = &identity.name {
        env.insert("USER".into(), name.clone());
        env.insert("LOGNAME".into(), name.clone());
    }
    env.insert("TMPDIR".into(), "/tmp".into());
    for (k, v) in profile.env_set() {
        env.insert(k.clone(), v.clone());
    }
    env.into_iter().collect()
}

/// The variable that makes bash define `pyenv-rehash` as a function, and its value.
pub const PYENV_REHASH_FUNCTION: &str = "BASH_FUNC_pyenv-rehash%%";

/// pyenv's `pip` shim runs `pyenv rehash` after every `pip install` and exits 1 when the shims
/// directory cannot be written ("pyenv: cannot rehash: ~/.pyenv/shims isn't writable"), although
/// the install succeeded; pyenv has no switch to skip it. The shims stay read-only (a step must
/// not plant commands for later steps): when the step's PATH holds a pyenv shims directory that
/// is not writable, the step gets a bash function of that name (bash imports functions from
/// `BASH_FUNC_NAME%%` variables, and pyenv's pip wrapper is a bash script calling
/// `pyenv-rehash` by name), which says the rehash was skipped instead of failing.
fn pyenv_rehash_off(env: &[(String, String)], writable: &[PathBuf]) -> Option<(String, String)> {
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let root = get("PYENV_ROOT").map(|r| Path::new(r).join("shims"));
    let dirs: Vec<&Path> = get("PATH")?.split(':').map(Path::new).collect();
    let pyenv = |d: &Path| d.ends_with("shims") && d.to_string_lossy().contains("pyenv");
    let plugin = |d: &Path| d.to_string_lossy().contains("/plugins/");
    // pyenv-rehash writes $PYENV_ROOT/shims; a plugin's shims (pyenv-virtualenv) come
    // earlier on PATH but are not the directory it complains about.
    let shims = dirs
        .iter()
        .copied()
        .find(|d| root.as_deref() == Some(*d))
        .or_else(|| dirs.iter().copied().find(|d| pyenv(d) && !plugin(d)))
        .or_else(|| dirs.iter().copied().find(|d| pyenv(d)))?;
    if writable.iter().any(|w| shims.starts_with(w)) {
        return None;
    }
    let body = format!(
        "() {{  echo \"pyenv: rehash skipped: {} is read-only inside stepjail; run 'pyenv rehash' after the step if it installed new commands\" >&2; }}",
        shims.display()
    );
    Some((PYENV_REHASH_FUNCTION.to_string(), body))
}

/// Where tools look for the system's trust bundle, in the order we try them.
pub const TRUST_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

pub use crate::policy::reserved::CA_BUNDLE_VARS;

/// Tools' own CA bundle settings, which replace the system bundle for that tool. When the step
/// trusts an extra CA ([`Extras::ca`]), those present point at the combined bundle too.
pub const TOOL_CA_VARS: &[&str] = &[
    "PIP_CERT",
    "npm_config_cafile",
    "NPM_CONFIG_CAFILE",
    "CARGO_HTTP_CAINFO",
    "BUNDLE_SSL_CA_CERT",
];

/// The CA files the step's environment names (the caller's own bundles, passed by the
/// profile), which a combined bundle must keep: (variable, path), in variable order.
pub fn user_ca_files(env: &[(String, String)]) -> Vec<(String, PathBuf)> {
    env.iter()
        .filter(|(k, v)| {
            (CA_BUNDLE_VARS.contains(&k.as_str()) || TOOL_CA_VARS.contains(&k.as_str()))
                && Path::new(v).is_absolute()
        })
        .map(|(k, v)| (k.clone(), PathBuf::from(v)))
        .collect()
}

/// Only the certificates of a PEM file: a private key or anything else in a file a variable
/// names never reaches the step's bundle.
pub fn pem_certificates(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = String::new();
    let mut rest = text;
    while let Some(b) = rest.find(BEGIN) {
        let Some(e) = rest[b..].find(END) else { break };
        out.push_str(&rest[b..b + e + END.len()]);
        out.push('\n');
        rest = &rest[b + e + END.len()..];
    }
    out
}

impl Plan {
    /// Makes the step trust an extra CA: the bundle at `bundle` is covered (inside the sandbox
    /// only) with `content` (the system bundle, the certificates of [`user_ca_files`], and the
    /// CA), and the usual variables, and the tools' own CA settings present, point at it.
    fn trust_ca(&mut self, bundle: PathBuf, content: String) {
        let at = self.mounts.len() - 1; // before the final Seal of /dev, where it is staged
        self.mounts.insert(
            at,
            MountOp::File {
                target: bundle.clone(),
                content,
            },
        );
        let path = bundle.display().to_string();
        // A tool's own CA setting replaces the bundle for that tool: point it at the combined
        // one too (whose content the caller built with that file's certificates in it).
        for (k, v) in self.env.iter_mut() {
            if TOOL_CA_VARS.contains(&k.as_str()) {
                *v = path.clone();
            }
        }
        self.env
            .retain(|(k, _)| !CA_BUNDLE_VARS.contains(&k.as_str()));
        self.env
            .extend(CA_BUNDLE_VARS.iter().map(|k| (k.to_string(), path.clone())));
        self.env.sort();
    }

    /// Adds the step's declared secrets to its environment (after everything else, so a
    /// declaration wins over `env.set`, which the profile loader already refuses anyway).
    fn set_secrets(&mut self, values: &[(String, String)]) {
        for (k, v) in values {
            self.env.retain(|(name, _)| name != k);
            self.env.push((k.clone(), v.clone()));
        }
        self.env.sort();
    }
}

fn rlimits(profile: &ResolvedProfile) -> Rlimits {
    let l = &profile.process().limits;
    let mut out = vec![];
    let pairs = [
        (Rlimit::OpenFiles, l.open_files),
        (Rlimit::FileSize, l.file_size),
        (Rlimit::Processes, l.processes),
        (Rlimit::CpuSeconds, l.cpu_seconds),
        (Rlimit::AddressSpace, l.address_space),
        (Rlimit::CoreSize, l.core_size),
    ];
    for (r, v) in pairs {
        if let Some(v) = v {
            out.push((r, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan without secrets or a trusted CA.
    fn build(
        p: &ResolvedProfile,
        id: Identity,
        ws: &Path,
        argv: Vec<String>,
        h: &HostFacts,
    ) -> Result<Plan, PlanError> {
        Plan::build(p, id, ws, argv, h, Extras::default())
    }
    use crate::policy::model::{Network, ProcessPolicy, ResolvedParts, RunAdditions};

    fn profile() -> ResolvedProfile {
        parts().into()
    }

    fn parts() -> ResolvedParts {
        ResolvedParts {
            name: "t".into(),
            read_write: vec!["/ws".into(), "/missing".into()],
            read_only: vec!["/ws/.git".into(), "/etc".into()],
            hidden: vec![
                "/home/u/.ssh".into(),
                "/home/u/.netrc".into(),
                "/home/u/.aws".into(),
            ],
            network: Network::default(),
            env_pass: vec![
                EnvPattern::Exact("CI".into()),
                EnvPattern::Prefix("GITHUB_".into()),
            ],
            env_set: [("LANG".to_string(), "C.UTF-8".to_string())]
                .into_iter()
                .collect(),
            process: ProcessPolicy::default(),
            landlock: LandlockPolicy::default(),
            secrets: vec![],
            env_scrub: vec!["GITHUB_DEPLOY_KEY".into()],
            files: vec![],
        }
    }

    fn host() -> HostFacts {
        let mut kinds = BTreeMap::new();
        for d in ["/ws", "/ws/.git", "/home/u/.ssh", "/etc", "/srv/runner"] {
            kinds.insert(PathBuf::from(d), HiddenKind::Dir);
        }
        for f in [
            "/home/u/.netrc",
            "/run/docker.sock",
            "/tmp/.X11-unix/X0",
            "/srv/runner/.credentials",
        ] {
            kinds.insert(PathBuf::from(f), HiddenKind::File);
        }
        HostFacts {
            env: vec![],
            cwd: "/ws/sub".into(),
            kinds,
            host_sockets: vec![
                "/run/docker.sock".into(),
                "/tmp/.X11-unix/X0".into(),
                "/tmp/ws/agent.sock".into(),
            ],
            runner_root: Some("/srv/runner".into()),
        }
    }

    fn ident() -> Identity {
        Identity {
            uid: 1001,
            gid: 1001,
            name: Some("runner".into()),
            home: Some("/home/runner".into()),
            privileged: false,
        }
    }

    fn with_files(host: &mut HostFacts, files: &[&str]) {
        for f in files {
            host.kinds.insert(PathBuf::from(f), HiddenKind::File);
        }
    }

    fn binds(plan: &Plan) -> Vec<(PathBuf, bool)> {
        plan.mounts
            .iter()
            .filter_map(|m| match m {
                MountOp::BindFile {
                    source,
                    target,
                    writable,
                } => {
                    assert_eq!(&plan.sources[*source], target);
                    Some((target.clone(), *writable))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn profile_files_are_written_into_the_fresh_tmp_before_any_bind() {
        let mut p = parts();
        p.files = vec![("/tmp/stepjail/apt.conf".into(), "Dir \"/ws\";\n".into())];
        let p = ResolvedProfile::from(p);
        let plan = build(&p, ident(), Path::new("/ws"), vec!["true".into()], &host()).unwrap();
        let at = |want: fn(&MountOp) -> bool| plan.mounts.iter().position(want).unwrap();
        let file = at(|m| matches!(m, MountOp::TmpFile { .. }));
        assert_eq!(
            plan.mounts[file],
            MountOp::TmpFile {
                target: "/tmp/stepjail/apt.conf".into(),
                content: "Dir \"/ws\";\n".into()
            }
        );
        assert!(
            at(|m| matches!(m, MountOp::Tmpfs { target, .. } if target == Path::new("/tmp")))
                < file
        );
        assert!(file < at(|m| matches!(m, MountOp::BindWritable { .. })));
    }

    #[test]
    fn file_command_files_are_bound_writable_wherever_the_runner_put_them() {
        // act's layout: RUNNER_TEMP empty, the file commands and the script in its own
        // workflow directory.
        let mut h = host();
        with_files(
            &mut h,
            &["/act/wf/envs.txt", "/act/wf/outputcmd.txt", "/act/wf/a.sh"],
        );
        let sk = Skeleton {
            dir: Some("/rt".into()),
            read_write: vec!["/act/wf/envs.txt".into(), "/act/wf/outputcmd.txt".into()],
            // Read-only files outside the skeleton are visible anyway: never bound.
            read_only: vec!["/act/wf/a.sh".into()],
        };
        let plan = Plan::draft(
            &profile(),
            ident(),
            Path::new("/ws"),
            vec!["true".into()],
            &h,
            Some(&sk),
        )
        .unwrap()
        .0;
        assert_eq!(
            binds(&plan),
            vec![
                ("/act/wf/envs.txt".into(), true),
                ("/act/wf/outputcmd.txt".into(), true)
            ]
        );
        assert!(plan.writable.contains(&"/act/wf/envs.txt".into()));
        // Without a RUNNER_TEMP there is no skeleton tmpfs, the files are still bound.
        let sk = Skeleton { dir: None, ..sk };
        let plan = Plan::draft(
            &profile(),
            ident(),
            Path::new("/ws"),
            vec!["true".into()],
            &h,
            Some(&sk),
        )
        .unwrap()
        .0;
        assert_eq!(binds(&plan).len(), 2);
        assert!(
            !plan
                .mounts
                .iter()
                .any(|m| matches!(m, MountOp::Seal { target } if target != Path::new("/dev")))
        );
    }

    #[test]
    fn file_command_files_inside_writable_or_hidden_paths_are_refused() {
        let mut h = host();
        with_files(
            &mut h,
            &["/ws/env.txt", "/home/u/.ssh/env.txt", "/rt/cmd/env"],
        );
        let build = |file: &str, hidden: &[&str]| {
            let p = profile()
                .with_run(RunAdditions {
                    hidden: hidden.iter().map(PathBuf::from).collect(),
                    ..RunAdditions::default()
                })
                .unwrap();
            let sk = Skeleton {
                dir: Some("/rt".into()),
                read_write: vec![file.into()],
                read_only: vec![],
            };
            Plan::draft(
                &p,
                ident(),
                Path::new("/ws"),
                vec!["true".into()],
                &h,
                Some(&sk),
            )
            .map(|_| ())
        };
        assert_eq!(
            build("/ws/env.txt", &[]),
            Err(PlanError::StepFile {
                file: "/ws/env.txt".into(),
                what: "the writable path",
                inside: "/ws".into()
            })
        );
        assert_eq!(
            build("/home/u/.ssh/env.txt", &[]),
            Err(PlanError::StepFile {
                file: "/home/u/.ssh/env.txt".into(),
                what: "the hidden path",
                inside: "/home/u/.ssh".into()
            })
        );
        // GitHub's layout: every step's files hidden, this step's bound on the skeleton.
        assert_eq!(build("/rt/cmd/env", &["/rt/cmd"]), Ok(()));
    }

    #[test]
    fn mount_order_is_private_readonly_then_private_mounts_then_binds_then_hides() {
        let plan = build(
            &profile(),
            ident(),
            Path::new("/ws"),
            vec!["true".into()],
            &host(),
        )
        .unwrap();
        assert_eq!(plan.sources, vec![PathBuf::from("/ws")]);
        assert_eq!(
            plan.mounts,
            vec![
                MountOp::MakePrivate,
                MountOp::ReadOnlyEverything,
                MountOp::Proc,
                MountOp::Tmpfs {
                    target: "/tmp".into(),
                    mode: 0o1777
                },
                MountOp::Dev,
                MountOp::BindWritable {
                    source: 0,
                    target: "/ws".into()
                },
                // /etc is read-only already; only holes inside writable paths need a mount.
                MountOp::ReadOnly {
                    target: "/ws/.git".into()
                },
                MountOp::Hide {
                    target: "/home/u/.ssh".into(),
                    kind: HiddenKind::Dir
                },
                MountOp::Hide {
                    target: "/home/u/.netrc".into(),
                    kind: HiddenKind::File
                },
                // .aws does not exist on this host: nothing to cover.
                MountOp::Hide {
                    target: "/srv/runner/.credentials".into(),
                    kind: HiddenKind::File
                },
                MountOp::Hide {
                    target: "/run/docker.sock".into(),
                    kind: HiddenKind::File
                },
                // The X11 socket lives in /tmp, which is private already.
                MountOp::Seal {
                    target: "/dev".into()
                },
            ]
        );
        assert_eq!(plan.writable, vec![PathBuf::from("/ws")]);
        assert_eq!(plan.cwd, PathBuf::from("/ws/sub"));
    }

    #[test]
    fn hidden_paths_in_tmp_are_covered_only_inside_a_writable_bind() {
        let mut p = parts();
        p.read_write = vec!["/tmp/ws".into()];
        let p = ResolvedProfile::from(p);
        let mut h = host();
        h.kinds.insert("/tmp/ws".into(), HiddenKind::Dir);
        h.kinds
            .insert("/tmp/ws/agent.sock".into(), HiddenKind::File);
        let plan = build(&p, ident(), Path::new("/tmp/ws"), vec!["true".into()], &h).unwrap();
        let hides: Vec<&MountOp> = plan
            .mounts
            .iter()
            .filter(|m| matches!(m, MountOp::Hide { .. }))
            .collect();
        assert!(hides.contains(&&MountOp::Hide {
            target: "/tmp/ws/agent.sock".into(),
            kind: HiddenKind::File
        }));
        assert!(!hides.iter().any(
            |m| matches!(m, MountOp::Hide { target, .. } if target.starts_with("/tmp/.X11-unix"))
        ));
    }

    #[test]
    fn cwd_inside_a_hidden_path_falls_back_to_the_workspace() {
        let mut h = host();
        h.cwd = "/home/u/.ssh".into();
        let plan = build(
            &profile(),
            ident(),
            Path::new("/ws"),
            vec!["true".into()],
            &h,
        )
        .unwrap();
        assert_eq!(plan.cwd, PathBuf::from("/ws"));
    }

    #[test]
    fn cwd_in_the_private_tmp_falls_back_to_the_workspace() {
        let mut h = host();
        h.cwd = "/tmp/checkout".into();
        let cwd = |h: &HostFacts| {
            build(
                &profile(),
                ident(),
                Path::new("/ws"),
                vec!["true".into()],
                h,
            )
            .unwrap()
            .cwd
        };
        assert_eq!(cwd(&h), PathBuf::from("/ws"));
        // Inside a writable bind under /tmp, the directory is there: it stays.
        let p = profile()
            .with_run(RunAdditions {
                read_write: vec!["/tmp/checkout".into()],
                ..RunAdditions::default()
            })
            .unwrap();
        h.kinds.insert("/tmp/checkout".into(), HiddenKind::Dir);
        let plan = build(&p, ident(), Path::new("/ws"), vec!["true".into()], &h).unwrap();
        assert_eq!(plan.cwd, PathBuf::from("/tmp/checkout"));
    }

    #[test]
    fn empty_command_is_an_error() {
        let err = build(&profile(), ident(), Path::new("/ws"), vec![], &host()).unwrap_err();
        assert_eq!(err, PlanError::NoCommand);
    }

    #[test]
    fn environment_passes_only_allowed_names_and_never_ci_credentials() {
        let caller: Vec<(String, String)> = [
            ("PATH", "/bin"),
            ("HOME", "/home/u"),
            ("CI", "true"),
            ("GITHUB_SHA", "abc"),
            ("GITHUB_TOKEN", "ghs_secret"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("GITHUB_TOKEN2", "matched by GITHUB_* and kept"),
            ("GITHUB_DEPLOY_KEY", "matched by GITHUB_* but scrubbed"),
            ("LC_ALL", "C"),
            ("LANG", "en_US.UTF-8"),
            ("TMPDIR", "/var/tmp"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let env = environment(&profile(), &ident(), &caller);
        let got: BTreeMap<_, _> = env.into_iter().collect();
        let want: BTreeMap<String, String> = [
            ("CI", "true"),
            ("GITHUB_SHA", "abc"),
            ("GITHUB_TOKEN2", "matched by GITHUB_* and kept"),
            ("HOME", "/home/runner"), // the step user's, not the caller's
            ("LANG", "C.UTF-8"),      // env.set wins over the caller's value
            ("LC_ALL", "C"),
            ("LOGNAME", "runner"),
            ("PATH", "/bin"),
            ("TMPDIR", "/tmp"),
            ("USER", "runner"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn read_only_pyenv_shims_get_a_rehash_that_says_it_was_skipped() {
        let mut h = host();
        h.env = vec![(
            "PATH".into(),
            "/home/u/.pyenv/plugins/pyenv-virtualenv/shims:/home/u/.pyenv/shims:/usr/bin".into(),
        )];
        let plan = build(
            &profile(),
            ident(),
            Path::new("/ws"),
            vec!["true".into()],
            &h,
        )
        .unwrap();
        let f = plan
            .env
            .iter()
            .find(|(k, _)| k == PYENV_REHASH_FUNCTION)
            .map(|(_, v)| v.as_str());
        assert_eq!(
            f,
            Some(
                "() {  echo \"pyenv: rehash skipped: /home/u/.pyenv/shims is read-only inside stepjail; run 'pyenv rehash' after the step if it installed new commands\" >&2; }"
            )
        );
        // Writable shims (a profile that allows it) or no pyenv: nothing set.
        let p = profile()
            .with_run(RunAdditions {
                read_write: vec!["/home/u/.pyenv".into()],
                ..RunAdditions::default()
            })
            .unwrap();
        h.kinds.insert("/home/u/.pyenv".into(), HiddenKind::Dir);
        h.env = vec![("PATH".into(), "/home/u/.pyenv/shims:/usr/bin".into())];
        let plan = build(&p, ident(), Path::new("/ws"), vec!["true".into()], &h).unwrap();
        assert!(!plan.env.iter().any(|(k, _)| k == PYENV_REHASH_FUNCTION));
        h.env = vec![("PATH".into(), "/usr/bin".into())];
        let plan = build(&p, ident(), Path::new("/ws"), vec!["true".into()], &h).unwrap();
        assert!(!plan.env.iter().any(|(k, _)| k == PYENV_REHASH_FUNCTION));
    }

    #[test]
    fn extras_put_the_secrets_and_the_ca_into_the_plan() {
        let plan = Plan::build(
            &profile(),
            ident(),
            Path::new("/ws"),
            vec!["true".into()],
            &host(),
            Extras {
                secrets: vec![("TOKEN".into(), "v".into())],
                ca: Some(TrustedCa {
                    bundle: "/etc/ssl/certs/ca-certificates.crt".into(),
                    content: "pem".into(),
                }),
                merge_output: true,
                ..Extras::default()
            },
        )
        .unwrap();
        assert!(plan.env.contains(&("TOKEN".to_string(), "v".to_string())));
        assert!(plan.env.contains(&(
            "SSL_CERT_FILE".to_string(),
            "/etc/ssl/certs/ca-certificates.crt".to_string()
        )));
        assert!(plan.merge_output);
        // Staged before the final seal of /dev.
        let n = plan.mounts.len();
        assert_eq!(
            plan.mounts[n - 2],
            MountOp::File {
                target: "/etc/ssl/certs/ca-certificates.crt".into(),
                content: "pem".into()
            }
        );
        assert!(matches!(plan.mounts[n - 1], MountOp::Seal { .. }));
        let bare = build(
            &profile(),
            ident(),
            Path::new("/ws"),
            vec!["true".into()],
            &host(),
        );
        let bare = bare.unwrap();
        assert!(!bare.env.iter().any(|(k, _)| k == "TOKEN"));
        assert!(!bare.merge_output);
        assert_eq!(bare.mounts.len(), n - 1);
    }

    #[test]
    fn extras_name_the_steps_cgroup_after_the_run() {
        let mut limited = parts();
        limited.process.limits.memory = Some(1 << 30);
        let draft = |p: ResolvedParts| {
            Plan::draft(
                &p.into(),
                ident(),
                Path::new("/ws"),
                vec!["true".into()],
                &host(),
                None,
            )
            .unwrap()
        };
        let plan = draft(limited.clone()).finish(Extras {
            run_id: "19a2b-3c".into(),
            source: "/p/ci.yml".into(),
            ..Extras::default()
        });
        let req = plan.cgroup().unwrap();
        assert_eq!(req.name, "stepjail-19a2b-3c");
        assert_eq!(req.source, "/p/ci.yml");
        assert_eq!(req.memory, Some(1 << 30));
        // Without a run id, a name of its own; without limits, no cgroup.
        let plan = draft(limited).finish(Extras::default());
        assert!(plan.cgroup().unwrap().name.starts_with("stepjail-"));
        assert_ne!(plan.cgroup().unwrap().name, "stepjail-");
        let plan = draft(parts()).finish(Extras {
            run_id: "19a2b-3c".into(),
            ..Extras::default()
        });
        assert_eq!(plan.cgroup(), None);
    }

    #[test]
    fn a_trusted_ca_keeps_the_callers_bundles_and_repoints_tool_settings() {
        let mut draft = Plan::draft(
            &profile(),
            ident(),
            Path::new("/ws"),
            vec!["true".into()],
            &host(),
            None,
        )
        .unwrap();
        let plan = &mut draft.0;
        plan.env
            .push(("NODE_EXTRA_CA_CERTS".into(), "/corp/ca.pem".into()));
        plan.env.push(("PIP_CERT".into(), "/corp/pip.pem".into()));
        plan.env.push(("PIP_INDEX_URL".into(), "https://x/".into()));
        assert_eq!(
            user_ca_files(&plan.env),
            [
                (
                    "NODE_EXTRA_CA_CERTS".to_string(),
                    PathBuf::from("/corp/ca.pem")
                ),
                ("PIP_CERT".to_string(), PathBuf::from("/corp/pip.pem"))
            ]
        );
        let plan = draft.finish(Extras {
            ca: Some(TrustedCa {
                bundle: "/etc/ssl/certs/ca-certificates.crt".into(),
                content: "x".into(),
            }),
            ..Extras::default()
        });
        let get = |k: &str| plan.env.iter().find(|(n, _)| n == k).unwrap().1.clone();
        for k in ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "PIP_CERT"] {
            assert_eq!(get(k), "/etc/ssl/certs/ca-certificates.crt", "{k}");
        }
        assert_eq!(get("PIP_INDEX_URL"), "https://x/");
        let pem = "junk\n-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\nx\n-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----";
        assert_eq!(
            pem_certificates(pem),
            "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"
        );
    }

    #[test]
    fn environment_has_a_default_path() {
        let env = environment(&profile(), &ident(), &[]);
        assert!(env.contains(&("PATH".to_string(), DEFAULT_PATH.to_string())));
    }

    #[test]
    fn id_maps_keep_the_same_number_and_deny_setgroups_unprivileged() {
        let i = ident();
        assert_eq!(i.uid_map(), "1001 1001 1\n");
        assert_eq!(i.gid_map(), "1001 1001 1\n");
        assert_eq!(i.setgroups(), "deny");
        let root = Identity {
            privileged: true,
            ..i
        };
        assert_eq!(root.setgroups(), "allow");
    }
}
