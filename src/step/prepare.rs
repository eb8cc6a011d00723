//! `prepare`: a [`Spec`] checked and decided, in the order the host side of a run needs, without
//! printing anything or changing anything on the host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cache_guard::cache_guard;
use super::error::RunError;
use super::log_guard::audit_log_guard;
use super::spec::{Host, Spec, read_small};
use crate::audit::StepStart;
use crate::policy::model::{Network, NetworkMode, RunAdditions, SecretDecl, Vars};
use crate::proxy::broker::{Broker, BrokeredSecret};
use crate::proxy::hosts::HostsFile;
use crate::proxy::upstream::UpstreamProxy;
use crate::sandbox::plan::{Extras, HiddenKind, Identity, Plan, TrustedCa};
use crate::sandbox::{self, host};

/// A step ready to launch: the plan and everything the supervisor and the proxy need.
pub struct Prepared {
    pub(super) run_id: String,
    pub(super) plan: Plan,
    /// Where the resolved profile came from (for `-v`).
    pub(super) source: String,
    pub(super) network: Network,
    pub(super) mode: NetworkMode,
    pub(super) writable: Vec<PathBuf>,
    /// Caches under the step user's home to create before the sandbox exists.
    pub(super) create_dirs: Vec<PathBuf>,
    /// Profile cache directories to create before the sandbox (see cache_guard.rs).
    pub(super) cache_dirs: Vec<(PathBuf, u32, u32)>,
    pub(super) audit_log: Option<PathBuf>,
    /// Lines to print as `stepjail: warning: ...` when the step is launched.
    pub(super) warnings: Vec<String>,
    pub(super) verbose: bool,
    pub(super) start: StepStart,
    pub(super) resolver: std::net::SocketAddr,
    pub(super) hosts: HostsFile,
    pub(super) upstream: Option<UpstreamProxy>,
    pub(super) pointers: Vec<(String, String)>,
    pub(super) broker: Option<Arc<Broker>>,
    pub(super) scanner: Option<crate::secrets::LeakScanner>,
    /// Values to mask in the step's output (empty: the output is not filtered).
    pub(super) mask: Vec<Vec<u8>>,
}

impl Prepared {
    /// The run id of the step's audit records.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
    /// The resolved profile's name.
    pub fn profile_name(&self) -> &str {
        self.plan.profile_name()
    }
    /// The network mode the step runs under.
    pub fn mode(&self) -> NetworkMode {
        self.mode
    }
    /// The paths the step can write (the profile's `read_write`, resolved).
    pub fn writable(&self) -> &[PathBuf] {
        &self.writable
    }
    /// The sandbox's plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    /// Directories `launch` creates before the sandbox exists (missing caches the profile makes
    /// writable under the step user's home).
    pub fn create_dirs(&self) -> &[PathBuf] {
        &self.create_dirs
    }
    /// Warnings `launch` prints first.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Validates `spec` against the host and decides everything the run needs. Prints nothing and
/// changes nothing on the host.
pub fn prepare(spec: Spec, host: &Host) -> Result<Prepared, RunError> {
    let mut warnings = Vec::new();
    prepare_with(spec, host, &mut warnings).map_err(|e| e.with_warnings(warnings))
}

fn prepare_with(
    mut spec: Spec,
    host: &Host,
    warnings: &mut Vec<String>,
) -> Result<Prepared, RunError> {
    let run_id = super::spec::new_run_id();
    let env = host.env.clone();
    let identity = host::identity(spec.user.as_deref(), &env).map_err(RunError::Identity)?;
    let workspace = match std::fs::canonicalize(&spec.workspace) {
        Ok(w) if w.is_dir() => w,
        _ => return Err(RunError::Workspace(spec.workspace)),
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
    let base = spec.profile.resolve_taking_network(&vars)?;
    // The log is the record of what the step did: after the run, the path the user named must
    // hold what we wrote. Checked before the file is created (at launch).
    let guard = match &spec.audit_log {
        Some(p) => Some(audit_log_guard(p, base.read_write()).map_err(RunError::AuditLogPath)?),
        None => None,
    };
    let writable = base.read_write().to_vec();
    let file_secrets = spec.file_secrets.take();
    let mut add = RunAdditions {
        mode: spec.mode,
        // Every name in the secrets file is a secret: undeclared ones never pass, whatever
        // `env.pass` says.
        scrub: file_secrets
            .iter()
            .flat_map(|f| f.names().map(str::to_string))
            .collect(),
        ..RunAdditions::default()
    };
    if let Some(ci) = &spec.ci {
        add.hidden.extend(ci.hidden.iter().cloned());
        add.pass.extend(ci.pass.iter().cloned());
        add.set.extend(ci.set.iter().cloned());
    }
    // The log file becomes a read-only hole in a writable path, and each directory between that
    // path and the file a mountpoint of its own (bound writable onto itself), which the step
    // can neither rename nor remove (EBUSY): no `mv logs logs.old; mkdir logs`.
    let log_hole = guard
        .as_ref()
        .filter(|g| g.inside_writable)
        .map(|g| g.file.clone());
    if let Some(g) = guard {
        add.read_only.extend(log_hole.clone());
        add.read_write.extend(g.pinned);
    }
    // The profile cache is out of every step's reach, whatever the profile grants: hidden,
    // the directories on the way to it pinned, created first where the step could create it
    // (see cache_guard.rs).
    let cache_dirs = crate::policy::profile_cache_dirs(&env, identity.home.as_deref());
    let cache = cache_guard(&cache_dirs, &writable).map_err(RunError::ProfileCachePath)?;
    add.hidden.extend(cache.hidden.iter().cloned());
    add.read_write.extend(cache.pinned.iter().cloned());
    let resolved = base.with_run(add)?;
    let create_dirs = missing_caches(&identity, &writable, resolved.hidden());
    let secret_values = crate::secrets::resolve(resolved.secrets(), file_secrets.as_ref(), &env)?;
    let mode = resolved.network().mode;
    let (resolver, hosts, upstream) = network_inputs(&spec, mode, resolved.network(), &env)?;
    let skeleton_files: Vec<PathBuf> = spec
        .ci
        .iter()
        .filter_map(|c| c.skeleton.as_ref())
        .flat_map(|s| s.read_write.iter().chain(&s.read_only).cloned())
        .collect();
    let paths = resolved
        .read_write()
        .iter()
        .chain(resolved.read_only())
        .chain(resolved.hidden())
        .chain(&skeleton_files);
    let mut facts = host::facts(paths, env.clone()).map_err(RunError::HostFacts)?;
    // What launch creates, as it will be by then: the caches (directories) and the audit log
    // (a file), so that the plan binds them.
    for d in create_dirs
        .iter()
        .chain(cache.create.iter().map(|(d, _, _)| d))
    {
        facts.kinds.entry(d.clone()).or_insert(HiddenKind::Dir);
    }
    if let Some(f) = log_hole {
        facts.kinds.entry(f).or_insert(HiddenKind::File);
    }
    let skeleton = spec.ci.as_ref().and_then(|c| c.skeleton.as_ref());
    let draft = Plan::draft(
        &resolved,
        identity,
        &workspace,
        spec.command,
        &facts,
        skeleton,
    )?;
    // What the step's package managers would miss or could not use: a credential in a passed
    // URL stops the run (fail closed); the rest is one warning line each, said now rather than
    // as a fallback to the public registry or a denial minutes later.
    let read_config = |p: &Path| read_small(p).ok();
    let findings = sandbox::settings::check(&sandbox::settings::Inputs {
        profile: &resolved,
        caller: &facts.env,
        step_env: draft.env(),
        writable: draft.writable(),
        home: draft.identity().home.as_deref(),
        read: &read_config,
    });
    warnings.extend(findings.warnings);
    if let Some(refusal) = findings.refusals.into_iter().next() {
        return Err(RunError::Refused(refusal));
    }
    let pointers = findings.pointers;
    let (step_values, brokered) = step_secrets(&secret_values, resolved.secrets())?;
    // Interception (brokered secrets, method and path rules) needs the broker and its CA.
    let restricted = resolved.network().allow.any_restricted();
    let (broker, ca) = if brokered.is_empty() && !restricted {
        (None, None)
    } else {
        let broker = Broker::new(brokered)?;
        let ca = trusted_ca(&broker, draft.env(), warnings)?;
        (Some(Arc::new(broker)), Some(ca))
    };
    let plan = draft.finish(Extras {
        secrets: step_values.clone(),
        ca,
        // A CI runner keeps one log of both streams: mask them as one, or a value printed half
        // to stdout and half to stderr would be whole in that log.
        merge_output: spec.ci.is_some(),
        run_id: run_id.clone(),
        source: spec.profile.source().to_string(),
    });
    let scanner = leak_scanner(&secret_values, &step_values);
    let mask = if spec.no_mask {
        Vec::new()
    } else {
        secret_values
            .iter()
            .map(|(_, v)| v.as_bytes().to_vec())
            .collect()
    };
    let start = StepStart {
        profile: plan.profile_name().to_string(),
        mode,
        command: plan.argv()[0].clone(),
        workspace: workspace.display().to_string(),
        ci_job: spec.ci.as_ref().map(|c| c.job.clone()),
        ci_step: spec.ci.as_ref().map(|c| c.step.clone()),
    };
    Ok(Prepared {
        run_id,
        plan,
        source: spec.profile.source().to_string(),
        network: resolved.into_network(),
        mode,
        writable,
        create_dirs,
        cache_dirs: cache.create,
        audit_log: spec.audit_log,
        warnings: std::mem::take(warnings),
        verbose: spec.verbose,
        start,
        resolver,
        hosts,
        upstream,
        pointers,
        broker,
        scanner,
        mask,
    })
}

/// Caches a profile makes writable under the step user's home (`~/.npm`, `~/.cache/pip`) that
/// are missing, for launch to create: a fresh runner has none of them yet, and a writable path
/// that does not exist would grant nothing (the tool would fail). Only when stepjail runs as
/// that user, so they are the user's own; never inside a hidden path.
fn missing_caches(identity: &Identity, writable: &[PathBuf], hidden: &[PathBuf]) -> Vec<PathBuf> {
    let Some(home) = &identity.home else {
        return Vec::new();
    };
    if nix::unistd::geteuid().as_raw() != identity.uid {
        return Vec::new();
    }
    writable
        .iter()
        .filter(|p| {
            p.starts_with(home)
                && *p != home
                && !hidden.iter().any(|h| p.starts_with(h))
                && std::fs::symlink_metadata(p).is_err()
        })
        .cloned()
        .collect()
}

/// What the proxy needs of the host: the resolver it asks, the host's hosts file, and the
/// corporate proxy allowed connections leave through (none of them without network).
fn network_inputs(
    spec: &Spec,
    mode: NetworkMode,
    network: &Network,
    env: &[(String, String)],
) -> Result<(std::net::SocketAddr, HostsFile, Option<UpstreamProxy>), RunError> {
    let resolver = match (
        mode,
        spec.resolver.or_else(crate::proxy::dns::host_resolver),
    ) {
        (NetworkMode::None, r) => r.unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 53))),
        (_, Some(r)) => r,
        (_, None) => return Err(RunError::NoResolver),
    };
    // Read here in the supervisor before the sandbox exists: the proxy consults it (before
    // DNS) for allowed names. Only `stepjail run` honours STEPJAIL_HOSTS_FILE (a workflow's
    // `env:` reaches a CI step's environment).
    let hosts = HostsFile::load_for_run(spec.ci.is_none())?;
    // Decisions do not change with an upstream; only the way out does.
    let upstream = match mode {
        NetworkMode::None => None,
        _ => crate::proxy::upstream::choose(
            spec.upstream_proxy.as_deref(),
            spec.upstream_from_env,
            env,
            network.upstream_proxy.as_ref(),
        )
        .map_err(RunError::UpstreamProxy)?
        .map(|(u, _)| u),
    };
    Ok((resolver, hosts, upstream))
}

/// Variables as (name, value) pairs.
type EnvPairs = Vec<(String, String)>;

/// The values the step holds, and the secrets the proxy brokers. A brokered secret's value
/// stays here, with the proxy, which swaps it in towards the bound hosts only; the step gets a
/// placeholder of the same shape. A name stepjail sets itself cannot be a secret (a secret named
/// HTTPS_PROXY would point the step's tools around the proxy): the profile loader refuses such
/// declarations already, and names from elsewhere are refused here.
fn step_secrets(
    values: &[(String, String)],
    decls: &[SecretDecl],
) -> Result<(EnvPairs, Vec<BrokeredSecret>), RunError> {
    if let Some((name, _)) = values
        .iter()
        .find(|(n, _)| crate::policy::reserved::is_reserved(n))
    {
        return Err(RunError::SecretSetsItself(name.clone()));
    }
    let seed = crate::secrets::fresh_seed();
    let mut brokered = Vec::new();
    let mut step_values = Vec::new();
    for (name, value) in values {
        match decls
            .iter()
            .find(|d| &d.name == name && !d.broker.is_empty())
        {
            Some(d) => {
                let placeholder = crate::secrets::placeholder(value, &seed).map_err(|error| {
                    RunError::Placeholder {
                        name: name.clone(),
                        error,
                    }
                })?;
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
    Ok((step_values, brokered))
}

/// The CA bundle the step trusts when the proxy intercepts: the system bundle, the caller's own
/// bundles the step's environment names (a corporate CA in NODE_EXTRA_CA_CERTS, PIP_CERT, ...:
/// every such variable is pointed at this one bundle, so it must hold them too), and the
/// broker's CA. An unreadable caller bundle is a warning.
fn trusted_ca(
    broker: &Broker,
    step_env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<TrustedCa, RunError> {
    let Some(bundle) = sandbox::plan::TRUST_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    else {
        return Err(RunError::NoCaBundle);
    };
    let mut content = std::fs::read_to_string(&bundle).unwrap_or_default();
    content.push('\n');
    let mut seen = vec![bundle.clone()];
    for (var, file) in sandbox::plan::user_ca_files(step_env) {
        // The system bundle is in already; a file named by two variables goes in once.
        if seen.contains(&file) {
            continue;
        }
        seen.push(file.clone());
        match read_small(&file) {
            Ok(text) => content.push_str(&sandbox::plan::pem_certificates(&text)),
            Err(e) => warnings.push(format!(
                "{var}={}: {e}; its certificates are not in the step's CA bundle",
                file.display()
            )),
        }
    }
    content.push_str(broker.ca_pem());
    Ok(TrustedCa { bundle, content })
}

/// What must never leave: every declared value, and every placeholder the step holds.
fn leak_scanner(
    values: &[(String, String)],
    step_values: &[(String, String)],
) -> Option<crate::secrets::LeakScanner> {
    let needles: Vec<(String, Vec<Vec<u8>>)> = values
        .iter()
        .map(|(name, value)| {
            let mut n = vec![value.as_bytes().to_vec()];
            if let Some((_, p)) = step_values.iter().find(|(k, v)| k == name && v != value) {
                n.push(p.as_bytes().to_vec());
            }
            (name.clone(), n)
        })
        .collect();
    (!needles.is_empty()).then(|| crate::secrets::LeakScanner::new(&needles))
}
