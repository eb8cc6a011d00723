//! `stepjail run [--profile P] [--workspace DIR] [--user U] [-v] -- COMMAND...`

use std::path::{Path, PathBuf};

use crate::audit::{AuditLog, Event, NetMode, StepEnd, StepStart};
use crate::policy::model::{NetworkMode, Profile, Vars};
use crate::proxy::broker::{Broker, BrokeredSecret};
use crate::proxy::engine::Engine;
use crate::sandbox::{self, host, plan::Plan};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A built-in profile name (see `stepjail profiles`) or a path to a profile file.
    #[arg(long, short = 'p', default_value = "default")]
    pub profile: String,
    /// The directory the step may write to ($WORKSPACE); defaults to the current directory.
    #[arg(long, short = 'w')]
    pub workspace: Option<PathBuf>,
    /// When stepjail runs as root: the user (name or uid[:gid]) to run the step as.
    /// Defaults to the user who ran sudo, else root (without any capability).
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Write every DNS query and connection attempt to FILE as JSON Lines.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Override the profile's network mode: `enforce` (only the allowlist), `audit` (everything
    /// allowed, would-be denials logged), or `none` (no network).
    #[arg(long, value_parser = ["none", "enforce", "audit"])]
    pub mode: Option<String>,
    /// The DNS resolver the proxy asks (ADDR:PORT); defaults to the host's first nameserver.
    #[arg(long, value_name = "ADDR:PORT")]
    pub resolver: Option<std::net::SocketAddr>,
    /// Send allowed connections through this HTTP proxy (`http://[user:pass@]host:port`) with
    /// CONNECT, by name; never direct. Default: $STEPJAIL_UPSTREAM_PROXY (which keeps the
    /// credentials out of the process list), else the profile's `network.upstream_proxy`.
    #[arg(long, value_name = "URL")]
    pub upstream_proxy: Option<String>,
    /// Use the caller's HTTPS_PROXY (or https_proxy) as the upstream proxy, and its NO_PROXY
    /// for the destinations that go direct. `--upstream-proxy` wins over it.
    #[arg(long)]
    pub upstream_proxy_from_env: bool,
    /// Values for the secrets the profile declares: a dotenv file, or JSON as produced by
    /// `${{ toJSON(secrets) }}` (a file descriptor works too: /dev/fd/N). Undeclared names in
    /// it never reach the step. Declared secrets not found here are taken from the environment.
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Do not replace secret values with *** in the step's output (which otherwise passes
    /// through pipes, so the step sees no terminal).
    #[arg(long)]
    pub no_mask: bool,
    /// Print what the sandbox applied (landlock ABI, identity) to stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    eprintln!("stepjail: {msg}");
    code
}

pub fn run(args: RunArgs) -> i32 {
    let profile = match crate::policy::load(&args.profile) {
        Ok(p) => p,
        Err(e) => return fail(super::exit::EXIT_USAGE, e),
    };
    let workspace = args.workspace.clone().unwrap_or_else(|| PathBuf::from("."));
    let file_secrets = match &args.secrets_file {
        Some(p) => match crate::secrets::load_file(p) {
            Ok(v) => Some(v),
            Err(e) => return fail(super::exit::EXIT_USAGE, e),
        },
        None => None,
    };
    let mode = args.mode.as_deref().map(|m| match m {
        "enforce" => NetworkMode::Enforce,
        "audit" => NetworkMode::Audit,
        _ => NetworkMode::None,
    });
    execute(Request {
        profile,
        workspace,
        user: args.user,
        audit_log: args.audit_log,
        mode,
        resolver: args.resolver,
        upstream_proxy: args
            .upstream_proxy
            .or_else(|| std::env::var("STEPJAIL_UPSTREAM_PROXY").ok()),
        upstream_from_env: args.upstream_proxy_from_env,
        file_secrets,
        no_mask: args.no_mask,
        verbose: args.verbose,
        command: args.command,
        ci: None,
    })
    .code
}

/// One step to run: what `stepjail run` and `stepjail step` both come down to.
pub struct Request {
    pub profile: Profile,
    pub workspace: PathBuf,
    pub user: Option<String>,
    pub audit_log: Option<PathBuf>,
    /// Overrides the profile's network mode.
    pub mode: Option<NetworkMode>,
    pub resolver: Option<std::net::SocketAddr>,
    /// `--upstream-proxy` / `STEPJAIL_UPSTREAM_PROXY` (may hold credentials: never printed).
    pub upstream_proxy: Option<String>,
    /// `--upstream-proxy-from-env`: the caller's HTTPS_PROXY and NO_PROXY.
    pub upstream_from_env: bool,
    /// Secret values (every name in it is scrubbed from the inherited environment).
    pub file_secrets: Option<crate::secrets::SecretValues>,
    pub no_mask: bool,
    pub verbose: bool,
    pub command: Vec<String>,
    /// For a CI step: the runner's scratch directory reduced to the step's own files, more
    /// hidden paths and variables, and the job and step ids for the audit log.
    pub ci: Option<CiStep>,
}

/// What `stepjail step` adds to a run.
pub struct CiStep {
    pub skeleton: Option<sandbox::plan::Skeleton>,
    /// Paths hidden on top of the profile's (stepjail's own state).
    pub hidden: Vec<PathBuf>,
    /// Variables passed whatever the profile says (`GITHUB_ENV` and the other file commands).
    pub pass: Vec<String>,
    /// Variables set for the step (a JavaScript action's `INPUT_*`).
    pub set: Vec<(String, String)>,
    pub job: String,
    pub step: String,
}

/// How a run ended.
pub struct Finished {
    /// The exit code stepjail ends with.
    pub code: i32,
    /// The run id of the step's audit records.
    pub run_id: String,
    /// The resolved profile's name and network mode (empty when the run failed before that).
    pub profile: String,
    pub mode: Option<NetMode>,
    /// The paths the step could write (the profile's `read_write`, resolved).
    pub writable: Vec<PathBuf>,
}

/// Runs one step; errors are printed here and turned into the exit code.
pub fn execute(req: Request) -> Finished {
    let run_id = step_id();
    let mut finished = Finished {
        code: 0,
        run_id: run_id.clone(),
        profile: req.profile.name.clone(),
        mode: None,
        writable: Vec::new(),
    };
    // A CI step's setup failure is an annotation on the step too, not only a log line.
    let ci = req.ci.is_some();
    let failed = |mut f: Finished, code: i32, msg: &dyn std::fmt::Display| {
        if ci {
            crate::ci::github::report::error("stepjail", msg);
            f.code = code;
        } else {
            f.code = fail(code, msg);
        }
        f
    };
    let profile = req.profile;
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let identity = match host::identity(req.user.as_deref(), &env) {
        Ok(i) => i,
        Err(e) => return failed(finished, super::exit::EXIT_USAGE, &e),
    };
    let workspace = match std::fs::canonicalize(&req.workspace) {
        Ok(w) if w.is_dir() => w,
        _ => {
            let msg = format!(
                "the workspace {} is not a directory",
                req.workspace.display()
            );
            return failed(finished, super::exit::EXIT_USAGE, &msg);
        }
    };
    let var = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| PathBuf::from(v))
    };
    let vars = Vars {
        workspace: Some(workspace.clone()),
        home: identity.home.clone(),
        tmpdir: var("TMPDIR"),
        runner_temp: var("RUNNER_TEMP"),
    };
    let mut resolved = match profile.resolve(&vars) {
        Ok(r) => r,
        Err(e) => return failed(finished, super::exit::EXIT_USAGE, &e),
    };
    if let Some(ci) = &req.ci {
        resolved.hidden.extend(ci.hidden.iter().cloned());
        for name in &ci.pass {
            resolved
                .env_pass
                .push(crate::policy::model::EnvPattern::Exact(name.clone()));
        }
        for (k, v) in &ci.set {
            resolved.env_set.insert(k.clone(), v.clone());
        }
    }
    // Caches a profile makes writable under the step user's home (`~/.npm`, `~/.cache/pip`)
    // are created when missing, as a fresh runner has none of them yet: a writable path that
    // does not exist would grant nothing and the tool would fail. Only when stepjail runs as
    // that user, so they are the user's own; never inside a hidden path.
    if let Some(home) = &identity.home
        && nix::unistd::geteuid().as_raw() == identity.uid
    {
        for p in &resolved.read_write {
            if p.starts_with(home)
                && p != home
                && !resolved.hidden.iter().any(|h| p.starts_with(h))
                && std::fs::symlink_metadata(p).is_err()
            {
                use std::os::unix::fs::DirBuilderExt;
                if let Err(e) = std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(p)
                {
                    eprintln!("stepjail: creating {}: {e}", p.display());
                }
            }
        }
    }
    finished.writable = resolved.read_write.clone();
    let file_secrets = req.file_secrets;
    // Every name in the secrets file is a secret: undeclared ones never pass, whatever
    // `env.pass` says.
    if let Some(f) = &file_secrets {
        resolved.env_scrub.extend(f.names().map(str::to_string));
    }
    let secret_values =
        match crate::secrets::resolve(&resolved.secrets, file_secrets.as_ref(), &env) {
            Ok(v) => v,
            Err(e) => return failed(finished, super::exit::EXIT_USAGE, &e),
        };
    if let Some(mode) = req.mode {
        resolved.network.mode = mode;
    }
    let audit_mode = match resolved.network.mode {
        NetworkMode::None => NetMode::None,
        NetworkMode::Enforce => NetMode::Enforce,
        NetworkMode::Audit => NetMode::Audit,
    };
    finished.mode = Some(audit_mode);
    // The log is the record of what the step did: after the run, the path the user named must
    // hold what we wrote. Checked before the file is created.
    let guard = match &req.audit_log {
        Some(p) => match audit_log_guard(p, &resolved.read_write) {
            Ok(g) => Some(g),
            Err(msg) => return failed(finished, super::exit::EXIT_USAGE, &msg),
        },
        None => None,
    };
    let audit = match &req.audit_log {
        Some(p) => match AuditLog::open(p, &run_id) {
            Ok(a) => a,
            Err(e) => return failed(finished, sandbox::EXIT_SETUP, &e),
        },
        None => AuditLog::disabled(),
    };
    if let Some(g) = guard {
        // The file becomes a read-only hole in a writable path, and each directory between that
        // path and the file a mountpoint of its own (bound writable onto itself), which the
        // step can neither rename nor remove (EBUSY): no `mv logs logs.old; mkdir logs`.
        if g.inside_writable {
            resolved.read_only.push(g.file);
        }
        resolved.read_write.extend(g.pinned);
    }
    let resolver = match (
        resolved.network.mode,
        req.resolver.or_else(crate::proxy::dns::host_resolver),
    ) {
        (NetworkMode::None, r) => r.unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 53))),
        (_, Some(r)) => r,
        (_, None) => {
            let msg = "no DNS resolver found in /etc/resolv.conf; pass --resolver ADDR:PORT";
            return failed(finished, super::exit::EXIT_USAGE, &msg);
        }
    };
    // The host's hosts file, read here in the supervisor before the sandbox exists: the proxy
    // consults it (before DNS) for allowed names. Only `stepjail run` honours
    // STEPJAIL_HOSTS_FILE (a workflow's `env:` reaches a CI step's environment).
    let hosts = match crate::proxy::hosts::HostsFile::load_for_run(req.ci.is_none()) {
        Ok(h) => h,
        Err(e) => return failed(finished, super::exit::EXIT_USAGE, &e),
    };
    // The corporate proxy allowed connections leave through (decisions do not change).
    let upstream = match resolved.network.mode {
        NetworkMode::None => None,
        _ => match crate::proxy::upstream::choose(
            req.upstream_proxy.as_deref(),
            req.upstream_from_env,
            &env,
            resolved.network.upstream_proxy.as_ref(),
        ) {
            Ok(u) => u.map(|(u, _)| u),
            Err(msg) => return failed(finished, super::exit::EXIT_USAGE, &msg),
        },
    };
    let skeleton_files: Vec<PathBuf> = req
        .ci
        .iter()
        .filter_map(|c| c.skeleton.as_ref())
        .flat_map(|s| s.read_write.iter().chain(&s.read_only).cloned())
        .collect();
    let paths = resolved
        .read_write
        .iter()
        .chain(&resolved.read_only)
        .chain(&resolved.hidden)
        .chain(&skeleton_files);
    let facts = match host::facts(paths, env) {
        Ok(f) => f,
        Err(e) => return failed(finished, sandbox::EXIT_SETUP, &e),
    };
    let skeleton = req.ci.as_ref().and_then(|c| c.skeleton.as_ref());
    let mut plan = match Plan::build_with(
        &resolved,
        identity,
        &workspace,
        req.command,
        &facts,
        skeleton,
    ) {
        Ok(p) => p,
        Err(e) => return failed(finished, super::exit::EXIT_USAGE, &e),
    };
    // What the step's package managers would miss or could not use: a credential in a passed
    // URL stops the run (fail closed); the rest is one warning line each, said now rather than
    // as a fallback to the public registry or a denial minutes later.
    let read_config = |p: &Path| read_small(p).ok();
    let findings = sandbox::settings::check(&sandbox::settings::Inputs {
        profile: &resolved,
        caller: &facts.env,
        step_env: &plan.env,
        writable: &plan.writable,
        home: plan.identity.home.as_deref(),
        read: &read_config,
    });
    for w in &findings.warnings {
        eprintln!("stepjail: warning: {w}");
    }
    if let Some(refusal) = findings.refusals.first() {
        return failed(finished, super::exit::EXIT_USAGE, refusal);
    }
    let pointers = findings.pointers;
    // Brokered secrets: the step gets a placeholder of the same shape; the real value stays
    // here, with the proxy, which swaps it in towards the bound hosts only.
    // Names the sandbox sets itself cannot be secrets: a secret named HTTPS_PROXY would point
    // the step's tools around the proxy.
    // (The profile loader refuses such declarations already; names from elsewhere, never.)
    if let Some((name, _)) = secret_values
        .iter()
        .find(|(n, _)| sandbox::plan::sets_itself(n))
    {
        let msg = format!("secret {name}: stepjail sets this variable itself; rename the secret");
        return failed(finished, super::exit::EXIT_USAGE, &msg);
    }
    let seed = crate::secrets::fresh_seed();
    let mut brokered = Vec::new();
    let mut step_values = Vec::new();
    for (name, value) in &secret_values {
        match resolved
            .secrets
            .iter()
            .find(|d| &d.name == name && !d.broker.is_empty())
        {
            Some(d) => {
                let placeholder = match crate::secrets::placeholder(value, &seed) {
                    Ok(p) => p,
                    Err(e) => {
                        let msg = format!("secret {name}: {e}");
                        return failed(finished, super::exit::EXIT_USAGE, &msg);
                    }
                };
                step_values.push((name.clone(), placeholder.clone()));
                brokered.push(BrokeredSecret {
                    name: name.clone(),
                    value: value.clone(),
                    placeholder,
                    hosts: d.broker.clone(),
                    places: d.broker_in.clone(),
                });
            }
            None => step_values.push((name.clone(), value.clone())),
        }
    }
    plan.inject_secrets(&step_values);
    // A CI runner keeps one log of both streams: mask them as one, or a value printed half to
    // stdout and half to stderr would be whole in that log.
    plan.merge_output = req.ci.is_some();
    let restricted = resolved
        .network
        .allow
        .iter()
        .any(|r| !r.methods.is_empty() || !r.paths.is_empty());
    let broker = if brokered.is_empty() && !restricted {
        None
    } else {
        let broker = match Broker::new(brokered) {
            Ok(b) => b,
            Err(e) => return failed(finished, sandbox::EXIT_SETUP, &e),
        };
        let Some(bundle) = sandbox::plan::TRUST_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        else {
            let msg = "brokered secrets need a system CA bundle (none of /etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/cert.pem)";
            return failed(finished, sandbox::EXIT_SETUP, &msg);
        };
        let mut content = std::fs::read_to_string(&bundle).unwrap_or_default();
        content.push('\n');
        // The caller's own bundles (a corporate CA in NODE_EXTRA_CA_CERTS, PIP_CERT, ...) stay
        // trusted: every variable is pointed at this one bundle, so it must hold them too.
        let mut seen = vec![bundle.clone()];
        for (var, file) in sandbox::plan::user_ca_files(&plan.env) {
            // The system bundle is in already; a file named by two variables goes in once.
            if seen.contains(&file) {
                continue;
            }
            seen.push(file.clone());
            match read_small(&file) {
                Ok(text) => content.push_str(&sandbox::plan::pem_certificates(&text)),
                Err(e) => eprintln!(
                    "stepjail: warning: {var}={}: {e}; its certificates are not in the step's CA bundle",
                    file.display()
                ),
            }
        }
        content.push_str(broker.ca_pem());
        plan.trust_ca(bundle, content);
        Some(std::sync::Arc::new(broker))
    };
    if req.verbose {
        let id = &plan.identity;
        eprintln!(
            "stepjail: profile {} ({}), step runs as uid {} gid {}",
            plan.profile_name, profile.source, id.uid, id.gid
        );
        if let Some(up) = &upstream {
            eprintln!("stepjail: allowed connections leave through upstream proxy {up}");
        }
    }
    let started = std::time::Instant::now();
    let network = resolved.network.clone();
    let log = |e: Event| {
        if let Err(err) = audit.write(e) {
            eprintln!("stepjail: writing the audit log: {err}");
        }
    };
    log(Event::StepStart(StepStart {
        profile: plan.profile_name.clone(),
        mode: audit_mode,
        command: plan.argv[0].clone(),
        workspace: workspace.display().to_string(),
        ci_job: req.ci.as_ref().map(|c| c.job.clone()),
        ci_step: req.ci.as_ref().map(|c| c.step.clone()),
    }));
    let engine_audit = audit.clone();
    let profile_name = plan.profile_name.clone();
    // What must never leave: every declared value, and every placeholder the step holds.
    let needles: Vec<(String, Vec<Vec<u8>>)> = secret_values
        .iter()
        .map(|(name, value)| {
            let mut n = vec![value.as_bytes().to_vec()];
            if let Some((_, p)) = step_values.iter().find(|(k, v)| k == name && v != value) {
                n.push(p.as_bytes().to_vec());
            }
            (name.clone(), n)
        })
        .collect();
    let scanner = (!needles.is_empty()).then(|| crate::secrets::LeakScanner::new(&needles));
    let mask_values: Vec<Vec<u8>> = secret_values
        .iter()
        .map(|(_, v)| v.as_bytes().to_vec())
        .collect();
    let make_masker = move || -> Box<dyn sandbox::output::Filter> {
        let refs: Vec<&[u8]> = mask_values.iter().map(Vec::as_slice).collect();
        Box::new(MaskFilter(crate::secrets::Masker::with_encodings(&refs)))
    };
    let filter: Option<&dyn Fn() -> Box<dyn sandbox::output::Filter>> =
        if secret_values.is_empty() || req.no_mask {
            None
        } else {
            Some(&make_masker)
        };
    let result = sandbox::run(
        &plan,
        move |listeners| {
            crate::proxy::server::start(
                listeners,
                Engine::new(network, profile_name, engine_audit, resolver)
                    .with_hosts(hosts)
                    .with_broker(broker)
                    .with_leak_scanner(scanner)
                    .with_upstream(upstream)
                    .with_pointers(pointers),
            )
        },
        filter,
    );
    let (code, timed_out, cancel_signal, init_signal) = match &result {
        Ok(o) => (o.code, o.timed_out, o.cancel_signal, o.init_signal),
        Err(e) => (e.exit_code(), false, None, None),
    };
    log(Event::StepEnd(StepEnd {
        profile: plan.profile_name.clone(),
        exit_code: code,
        duration_ms: started.elapsed().as_millis() as u64,
        timed_out,
        cancel_signal,
        init_signal,
    }));
    finished.code = match result {
        Ok(outcome) => {
            if req.verbose {
                for line in &outcome.info {
                    eprintln!("stepjail: {line}");
                }
            }
            if outcome.timed_out {
                let t = plan.timeout.unwrap_or_default();
                eprintln!(
                    "stepjail: the step timed out after {}s and was killed",
                    t.as_secs_f64()
                );
            }
            if let Some(sig) = outcome.init_signal {
                let name = nix::sys::signal::Signal::try_from(sig)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {sig}"));
                eprintln!(
                    "stepjail: the step sent {name} to its own init (PID 1), which forwarded it to the step; it was not cancelled{}",
                    if outcome.code == sandbox::EXIT_INIT_SIGNALLED {
                        format!(" (exit code {}, not {})", outcome.code, 128 + sig)
                    } else {
                        String::new()
                    }
                );
            }
            outcome.code
        }
        Err(e) => fail(e.exit_code(), e),
    };
    finished
}

/// Where the audit log goes, and what keeps it there for the length of the run.
#[derive(Debug, PartialEq, Eq)]
struct LogGuard {
    /// The log's real path (its directory resolved).
    file: PathBuf,
    /// Whether the file lies inside a writable path.
    inside_writable: bool,
    /// The directories between a writable path and the file, shallowest first.
    pinned: Vec<PathBuf>,
}

/// Checks the audit log path `path` against the step's writable paths: a symbolic link on the
/// way that lies inside a writable path is refused (the step could replace it, and the path
/// would then lead to a file of the step's making); the directories to pin are returned.
fn audit_log_guard(path: &Path, writable: &[PathBuf]) -> Result<LogGuard, String> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let writable: Vec<PathBuf> = writable.iter().map(|w| real(w)).collect();
    let in_writable = |p: &Path| writable.iter().find(|w| p.starts_with(w));
    let abs = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(format!("--audit-log {}: not a file name", path.display()));
    };
    let mut prefix = PathBuf::new();
    for part in dir.components() {
        prefix.push(part);
        let is_link = std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.is_symlink());
        if let (true, Some(parent)) = (is_link, prefix.parent())
            && let Some(w) = in_writable(&real(parent))
        {
            return Err(format!(
                "--audit-log {}: {} is a symbolic link inside {}, which the step can write, so the \
                 step could replace it; name the directory it leads to ({}) instead",
                path.display(),
                prefix.display(),
                w.display(),
                real(&prefix).display()
            ));
        }
    }
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| format!("--audit-log {}: {}: {e}", path.display(), dir.display()))?;
    let mut pinned: Vec<PathBuf> = dir
        .ancestors()
        .filter(|a| in_writable(a).is_some() && !writable.iter().any(|w| w == a))
        .map(Path::to_path_buf)
        .collect();
    pinned.reverse();
    let file = dir.join(name);
    Ok(LogGuard {
        inside_writable: in_writable(&file).is_some(),
        file,
        pinned,
    })
}

/// Reads a caller's config or CA file: at most 4 MiB, without hanging on a FIFO put there
/// (a symbolic link is followed, as the tool itself would).
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    f.take(4 << 20).read_to_string(&mut text)?;
    Ok(text)
}

/// An identifier for this run, shared by all its audit events: time and pid, in hex.
fn step_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}-{:x}", t.as_millis(), std::process::id())
}

/// The secret masker as an output filter for the sandbox.
struct MaskFilter(crate::secrets::Masker);

impl sandbox::output::Filter for MaskFilter {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.0.feed(chunk)
    }
    fn finish(&mut self) -> Vec<u8> {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_log_guard_pins_directories_inside_writable_paths_and_refuses_links_there() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        let ws = root.join("ws");
        std::fs::create_dir_all(ws.join("a/b")).unwrap();
        let w = std::slice::from_ref(&ws);
        let g = audit_log_guard(&ws.join("a/b/log.jsonl"), w).unwrap();
        assert_eq!(
            g,
            LogGuard {
                file: ws.join("a/b/log.jsonl"),
                inside_writable: true,
                pinned: vec![ws.join("a"), ws.join("a/b")],
            }
        );
        // Directly in the writable path: that is a mountpoint already.
        let g = audit_log_guard(&ws.join("log.jsonl"), w).unwrap();
        assert!(g.inside_writable && g.pinned.is_empty(), "{g:?}");
        let g = audit_log_guard(&root.join("log.jsonl"), w).unwrap();
        assert!(!g.inside_writable && g.pinned.is_empty(), "{g:?}");
        // A link the step could replace is refused; one outside writable paths is followed.
        std::os::unix::fs::symlink("a", ws.join("l")).unwrap();
        let err = audit_log_guard(&ws.join("l/b/log.jsonl"), w).unwrap_err();
        assert!(
            err.contains(&format!(
                "{} is a symbolic link inside",
                ws.join("l").display()
            )),
            "{err}"
        );
        std::os::unix::fs::symlink(ws.join("a"), root.join("out")).unwrap();
        let g = audit_log_guard(&root.join("out/log.jsonl"), w).unwrap();
        assert_eq!(g.file, ws.join("a/log.jsonl"));
        assert_eq!(g.pinned, vec![ws.join("a")]);
    }
}
