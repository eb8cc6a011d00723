//! The validated profile model. Enforcement code only ever sees these types, never raw YAML.
//!
//! A [`Profile`] is what a file (or the built-in set) says after `extends` is merged and every
//! rule has been checked. Paths are still templates (`$WORKSPACE/...`); [`Profile::resolve`] turns
//! them into absolute paths for one run, given the values of the variables.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use super::allow_list::{AllowList, AllowRule, Location, RuleTarget};

/// A path as written in a profile, before variables are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// Normalised spelling: no trailing `/`, no `//` or `.` components, `$NAME` for `${NAME}`.
    pub raw: String,
    pub at: Location,
    /// Key path where it was written, e.g. `filesystem.hidden[2]`, for error messages.
    pub key: String,
}

/// `env.pass` entries: an exact name, or a `PREFIX_*` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvPattern {
    Exact(String),
    Prefix(String),
}

impl EnvPattern {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            EnvPattern::Exact(n) => n == name,
            EnvPattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// Whether the `env.scrub` entry `pattern` covers variable `name`. A name without `*` matches
/// exactly; a pattern with `*` matches any run of characters there and ignores ASCII case,
/// because the tools it is written for do too (npm reads `NPM_CONFIG__AUTH` as `_auth`), and a
/// credential that slips through on its spelling is the failure to avoid.
pub fn scrub_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let pattern = pattern.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if name.len() < first.len() + last.len() || !name.starts_with(first) || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The one network mode: a profile's `network.mode`, `--mode`, the job-wide mode of `stepjail
/// setup` (enforce or audit), and the `mode` of a `step_start` audit record.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// Loopback only; nothing outside the sandbox is reachable. No proxy runs.
    #[default]
    None,
    /// Only what `allow` names is reachable, through the egress proxy. An empty list reaches
    /// nothing (but every attempt is still logged).
    Enforce,
    /// Everything is reachable through the proxy; what `enforce` would refuse is logged as
    /// would-deny. For building an allowlist.
    Audit,
}

impl NetworkMode {
    /// The spelling in profile files and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Enforce => "enforce",
            NetworkMode::Audit => "audit",
        }
    }
}

impl std::str::FromStr for NetworkMode {
    type Err = String;
    /// The spelling in profile files and on the command line; anything else is refused.
    fn from_str(s: &str) -> Result<NetworkMode, String> {
        [NetworkMode::None, NetworkMode::Enforce, NetworkMode::Audit]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown network mode `{s}` (none, enforce or audit)"))
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filesystem {
    pub read_write: Vec<PathTemplate>,
    pub read_only: Vec<PathTemplate>,
    pub hidden: Vec<PathTemplate>,
    /// `filesystem.files`: path under /tmp -> (content template, where it was written). A
    /// child's entry replaces its parent's entry for the same path.
    pub files: BTreeMap<String, (String, Location)>,
}

/// The `network:` section. The decisions the egress proxy asks for are in `policy::egress`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub mode: NetworkMode,
    /// In file order, parents' rules first; one table of bytes the decisions read in place
    /// (the profile cache maps it from its entry as it is).
    pub allow: AllowList,
    /// `network.upstream_proxy`: the child's if written, else the parent's. Never holds
    /// credentials (the loader refuses them; they belong in `STEPJAIL_UPSTREAM_PROXY`).
    pub upstream_proxy: Option<super::upstream_proxy::UpstreamProxy>,
    /// `network.max_connections`: the child's if written, else the parent's; `None` is
    /// [`DEFAULT_MAX_CONNECTIONS`] (see [`Network::max_connections`]).
    pub max_connections: Option<u32>,
}

/// How many connections a step may have open to the proxy at once unless its profile says.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;

impl Network {
    /// The per-step connection cap the proxy enforces (`network.max_connections`).
    pub fn max_connections(&self) -> u32 {
        self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvPolicy {
    pub pass: Vec<EnvPattern>,
    /// Values may contain the same `$VARIABLES` as paths.
    pub set: BTreeMap<String, String>,
    /// Where each `set` entry was written, for error messages at resolve time.
    pub set_at: BTreeMap<String, Location>,
    /// `env.scrub`: variables never passed to the step, on top of the built-in list of CI
    /// credentials (`secrets::CI_CREDENTIALS`), unless a `secrets:` entry declares them.
    /// Exact names, or patterns with `*` ([`scrub_matches`]).
    /// Parents' names first, without duplicates.
    pub scrub: Vec<String>,
}

/// One `secrets:` entry: a variable the step may receive from the secret sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretDecl {
    /// A valid environment variable name.
    pub name: String,
    /// `optional: true`: left unset when no source provides it, instead of an error.
    pub optional: bool,
    /// `broker: [host, ...]`: normalised host names (`policy::egress::normalize_host`). Empty
    /// means the value is injected into the step's environment; non-empty means the step sees
    /// a placeholder and the proxy writes the value into requests to these hosts only.
    pub broker: Vec<String>,
    /// `broker: { in: [...] }`: where in a request to a bound host the proxy may write the real
    /// value. `[header:authorization]` for the list form; empty when not brokered.
    pub broker_in: Vec<BrokerPlace>,
    /// Where the entry's key was written.
    pub at: Location,
    /// Key path of the entry, e.g. `secrets.NPM_TOKEN`, for error messages.
    pub key: String,
}

/// One place in a request where the proxy swaps a brokered secret's placeholder for its value.
/// Anywhere else the placeholder is sent as it is, so a bound host that echoes a header, a
/// parameter or a body the declaration does not name only ever sees (and returns) the
/// placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BrokerPlace {
    /// The values of this header; the name lower-cased.
    Header(String),
    /// The value of this URL query parameter, name compared as written (not decoded).
    Query(String),
    /// Anywhere in the request body.
    Body,
}

impl BrokerPlace {
    /// Where the list form `broker: [host]` swaps the value.
    pub fn default_places() -> Vec<BrokerPlace> {
        vec![BrokerPlace::Header("authorization".to_string())]
    }
}

impl std::fmt::Display for BrokerPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerPlace::Header(h) => write!(f, "header:{h}"),
            BrokerPlace::Query(q) => write!(f, "query:{q}"),
            BrokerPlace::Body => f.write_str("body"),
        }
    }
}

impl SecretDecl {
    /// The value never enters the sandbox; the proxy swaps it in for the bound hosts.
    pub fn is_brokered(&self) -> bool {
        !self.broker.is_empty()
    }
}

/// rlimits (per process) and cgroup limits (for the whole step) applied to the step. `None`
/// leaves the inherited limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub open_files: Option<u64>,
    pub file_size: Option<u64>,
    pub processes: Option<u64>,
    pub cpu_seconds: Option<u64>,
    pub address_space: Option<u64>,
    pub core_size: Option<u64>,
    /// cgroup: bytes of memory for every process of the step together.
    pub memory: Option<u64>,
    /// cgroup: processes and threads of the step at once.
    pub pids: Option<u64>,
    /// cgroup: CPU time per wall time, in thousandths of a CPU (1500 = 1.5 CPUs).
    pub cpu_millis: Option<u64>,
    /// What happens when a cgroup limit cannot be applied; `None` means [`Enforce::Required`].
    pub enforce: Option<Enforce>,
}

impl Limits {
    /// Whether any limit needs a cgroup for the step.
    pub fn needs_cgroup(&self) -> bool {
        self.memory.is_some() || self.pids.is_some() || self.cpu_millis.is_some()
    }
}

/// `process.limits.enforce`: what happens when the step's cgroup limits cannot be applied
/// (no cgroup the supervisor may create, a controller missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Enforce {
    /// The step does not run (exit 125), with a message naming the missing delegation.
    #[default]
    Required,
    /// One warning naming what is missing, and the step runs without those limits.
    BestEffort,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessPolicy {
    pub timeout: Option<Duration>,
    pub limits: Limits,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandlockPolicy {
    /// Refuse to run on a kernel whose landlock ABI is lower than this.
    pub min_abi: Option<u32>,
}

/// A checked profile: what a file (or the built-in set) says, `extends` merged, every rule
/// checked.
///
/// Sealed: the fields are private to `policy`, so a value exists only as loading made it
/// ([`crate::policy::load`] and the policy-file readers) or as one of the named operations of
/// `policy::amend` derived it from such a value, each re-checking what it changes. Everything
/// else reads it through the accessors, named like the fields.
///
/// ```compile_fail,E0616
/// let mut p = stepjail::policy::load_builtin("default").unwrap();
/// p.network.mode = stepjail::policy::model::NetworkMode::Audit;
/// ```
///
/// ```compile_fail,E0451
/// let p = stepjail::policy::load_builtin("default").unwrap();
/// let q = stepjail::policy::model::Profile {
///     name: "widened".into(),
///     description: String::new(),
///     source: String::new(),
///     filesystem: p.filesystem().clone(),
///     network: p.network().clone(),
///     env: p.env().clone(),
///     process: p.process().clone(),
///     landlock: p.landlock().clone(),
///     secrets: Vec::new(),
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub(super) name: String,
    pub(super) description: String,
    /// `builtin:NAME` or the file path.
    pub(super) source: String,
    pub(super) filesystem: Filesystem,
    pub(super) network: Network,
    pub(super) env: EnvPolicy,
    pub(super) process: ProcessPolicy,
    pub(super) landlock: LandlockPolicy,
    /// `secrets:`, in file order, parents' first; a child's entry replaces the parent's entry
    /// of the same name in place.
    pub(super) secrets: Vec<SecretDecl>,
}

impl Profile {
    /// The profile's name (`a&b` for a profile narrowed by another).
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn description(&self) -> &str {
        &self.description
    }
    /// `builtin:NAME` or the file path.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// `filesystem:`, paths still templates.
    pub fn filesystem(&self) -> &Filesystem {
        &self.filesystem
    }
    pub fn network(&self) -> &Network {
        &self.network
    }
    pub fn env(&self) -> &EnvPolicy {
        &self.env
    }
    pub fn process(&self) -> &ProcessPolicy {
        &self.process
    }
    pub fn landlock(&self) -> &LandlockPolicy {
        &self.landlock
    }
    /// `secrets:`, in file order, parents' first.
    pub fn secrets(&self) -> &[SecretDecl] {
        &self.secrets
    }
}

/// For unit tests elsewhere in the crate that need a profile no file could describe (a
/// declaration the loader refuses, to test the run's own refusal): a test build only.
#[cfg(test)]
impl Profile {
    pub(crate) fn with_unchecked_secret(mut self, decl: SecretDecl) -> Profile {
        self.secrets.push(decl);
        self
    }
    /// The profile with its allow rules as a cache hit holds them: the table only, no rule
    /// built yet.
    pub(crate) fn with_table_only(mut self) -> Profile {
        let bytes = self.network.allow.table_bytes().to_vec();
        let len = bytes.len();
        let backing = std::sync::Arc::new(super::allow_list::Backing::Owned(bytes));
        self.network.allow = AllowList::from_table(backing, 0, len).unwrap();
        self
    }
}

/// Values for the variables a profile may use.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub workspace: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub tmpdir: Option<PathBuf>,
    pub runner_temp: Option<PathBuf>,
}

/// A profile with every variable expanded: what the sandbox plan is built from.
///
/// Sealed: the fields are private to `policy`, so a value exists only as [`Profile::resolve`]
/// made it (checked on the expanded paths) and, for one run, [`ResolvedProfile::with_run`]
/// extended it (the paths it adds checked by the same rules). Everything else reads it through
/// the accessors, named like the fields.
///
/// ```compile_fail,E0616
/// fn widen(p: &mut stepjail::policy::model::ResolvedProfile) {
///     p.read_write.push("/".into());
/// }
/// ```
///
/// ```compile_fail,E0451
/// fn forge(p: &stepjail::policy::model::ResolvedProfile) -> stepjail::policy::model::ResolvedProfile {
///     stepjail::policy::model::ResolvedProfile {
///         name: p.name().to_string(),
///         read_write: vec!["/".into()],
///         read_only: Vec::new(),
///         hidden: Vec::new(),
///         network: p.network().clone(),
///         env_pass: Vec::new(),
///         env_set: Default::default(),
///         process: p.process().clone(),
///         landlock: p.landlock().clone(),
///         secrets: Vec::new(),
///         env_scrub: Vec::new(),
///         files: Vec::new(),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProfile {
    pub(super) name: String,
    pub(super) read_write: Vec<PathBuf>,
    pub(super) read_only: Vec<PathBuf>,
    pub(super) hidden: Vec<PathBuf>,
    pub(super) network: Network,
    pub(super) env_pass: Vec<EnvPattern>,
    pub(super) env_set: BTreeMap<String, String>,
    pub(super) process: ProcessPolicy,
    pub(super) landlock: LandlockPolicy,
    /// Secrets the step declares (values come from `--secrets-file` or the environment).
    pub(super) secrets: Vec<SecretDecl>,
    /// Variables never passed to the step, besides the built-in CI credentials.
    pub(super) env_scrub: Vec<String>,
    /// Files written into the step's private /tmp before it starts: (path, expanded content).
    pub(super) files: Vec<(PathBuf, String)>,
}

/// The fields of a [`ResolvedProfile`], for unit tests elsewhere in the crate that need a
/// profile no file could describe (a test build only: nothing else can make one).
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct ResolvedParts {
    pub name: String,
    pub read_write: Vec<PathBuf>,
    pub read_only: Vec<PathBuf>,
    pub hidden: Vec<PathBuf>,
    pub network: Network,
    pub env_pass: Vec<EnvPattern>,
    pub env_set: BTreeMap<String, String>,
    pub process: ProcessPolicy,
    pub landlock: LandlockPolicy,
    pub secrets: Vec<SecretDecl>,
    pub env_scrub: Vec<String>,
    pub files: Vec<(PathBuf, String)>,
}

#[cfg(test)]
impl From<ResolvedParts> for ResolvedProfile {
    fn from(p: ResolvedParts) -> ResolvedProfile {
        ResolvedProfile {
            name: p.name,
            read_write: p.read_write,
            read_only: p.read_only,
            hidden: p.hidden,
            network: p.network,
            env_pass: p.env_pass,
            env_set: p.env_set,
            process: p.process,
            landlock: p.landlock,
            secrets: p.secrets,
            env_scrub: p.env_scrub,
            files: p.files,
        }
    }
}

/// What one run adds to a resolved profile, all at once: a CI step's hidden state and passed or
/// set variables, the names of a secrets file (scrubbed), a `--mode` override, and the audit
/// log's read-only hole and pinned directories.
#[derive(Debug, Clone, Default)]
pub struct RunAdditions {
    pub hidden: Vec<PathBuf>,
    pub pass: Vec<String>,
    pub set: Vec<(String, String)>,
    pub scrub: Vec<String>,
    pub mode: Option<NetworkMode>,
    pub read_only: Vec<PathBuf>,
    pub read_write: Vec<PathBuf>,
}

impl ResolvedProfile {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Paths the step may write, expanded, without duplicates.
    pub fn read_write(&self) -> &[PathBuf] {
        &self.read_write
    }
    /// Paths bound read-only inside writable ones.
    pub fn read_only(&self) -> &[PathBuf] {
        &self.read_only
    }
    /// Paths covered in the sandbox.
    pub fn hidden(&self) -> &[PathBuf] {
        &self.hidden
    }
    pub fn network(&self) -> &Network {
        &self.network
    }
    /// The network section, moved out: the proxy's copy of thousands of allow rules is the
    /// one the profile held, not a clone of it.
    pub fn into_network(self) -> Network {
        self.network
    }
    pub fn env_pass(&self) -> &[EnvPattern] {
        &self.env_pass
    }
    /// `env.set`, values expanded.
    pub fn env_set(&self) -> &BTreeMap<String, String> {
        &self.env_set
    }
    pub fn process(&self) -> &ProcessPolicy {
        &self.process
    }
    pub fn landlock(&self) -> &LandlockPolicy {
        &self.landlock
    }
    /// Secrets the step declares (values come from `--secrets-file` or the environment).
    pub fn secrets(&self) -> &[SecretDecl] {
        &self.secrets
    }
    /// Variables never passed to the step, besides the built-in CI credentials.
    pub fn env_scrub(&self) -> &[String] {
        &self.env_scrub
    }
    /// Files written into the step's private /tmp before it starts: (path, expanded content).
    pub fn files(&self) -> &[(PathBuf, String)] {
        &self.files
    }
}

#[cfg(test)]
mod tests {
    use super::NetworkMode;

    #[test]
    fn run_additions_extend_a_resolved_profile_once() {
        use super::{EnvPattern, ResolvedProfile, RunAdditions};
        let base = ResolvedProfile {
            name: "t".into(),
            read_write: vec!["/ws".into()],
            read_only: vec![],
            hidden: vec!["/h".into()],
            network: Default::default(),
            env_pass: vec![],
            env_set: [("A".to_string(), "1".to_string())].into(),
            process: Default::default(),
            landlock: Default::default(),
            secrets: vec![],
            env_scrub: vec!["S".into()],
            files: vec![],
        };
        let p = base
            .clone()
            .with_run(RunAdditions {
                hidden: vec!["/state".into()],
                pass: vec!["GITHUB_ENV".into()],
                set: vec![("A".into(), "2".into())],
                scrub: vec!["T".into()],
                mode: Some(NetworkMode::Audit),
                read_only: vec!["/ws/log".into()],
                read_write: vec!["/ws/logs".into()],
            })
            .unwrap();
        assert_eq!(p.hidden, ["/h", "/state"].map(std::path::PathBuf::from));
        assert_eq!(p.env_pass, [EnvPattern::Exact("GITHUB_ENV".into())]);
        assert_eq!(p.env_set["A"], "2");
        assert_eq!(p.env_scrub, ["S", "T"]);
        assert_eq!(p.network.mode, NetworkMode::Audit);
        assert_eq!(p.read_only, ["/ws/log"].map(std::path::PathBuf::from));
        assert_eq!(
            p.read_write,
            ["/ws", "/ws/logs"].map(std::path::PathBuf::from)
        );
        assert_eq!(
            base.clone().with_run(RunAdditions::default()).unwrap(),
            base
        );
    }

    #[test]
    fn network_mode_spellings_round_trip_and_others_are_refused() {
        for m in [NetworkMode::None, NetworkMode::Enforce, NetworkMode::Audit] {
            assert_eq!(m.as_str().parse::<NetworkMode>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        for bad in ["", "Enforce", "off", "audit "] {
            assert!(bad.parse::<NetworkMode>().is_err(), "{bad:?}");
        }
    }
    use super::scrub_matches;

    #[test]
    fn scrub_patterns_match_exact_names_or_globs_ignoring_case() {
        assert!(scrub_matches("MY_KEY", "MY_KEY"));
        assert!(!scrub_matches("MY_KEY", "my_key"));
        assert!(!scrub_matches("MY_KEY", "MY_KEY2"));
        assert!(scrub_matches(
            "*_authToken",
            "npm_config_//registry.npmjs.org/:_authToken"
        ));
        assert!(scrub_matches("*_authToken", "NPM_CONFIG__AUTHTOKEN"));
        assert!(scrub_matches("npm_config__auth*", "NPM_CONFIG__AUTH"));
        assert!(!scrub_matches("*_authToken", "npm_config_registry"));
        assert!(scrub_matches(
            "CARGO_REGISTRIES_*_TOKEN",
            "CARGO_REGISTRIES_CORP_TOKEN"
        ));
        assert!(!scrub_matches(
            "CARGO_REGISTRIES_*_TOKEN",
            "CARGO_REGISTRIES_CORP_INDEX"
        ));
        assert!(!scrub_matches(
            "CARGO_REGISTRIES_*_TOKEN",
            "CARGO_REGISTRIES_TOKEN"
        ));
        assert!(scrub_matches("*PASSWORD*", "npm_config_//h/:_password"));
        assert!(scrub_matches("A*B*C", "AxxBxxC") && !scrub_matches("A*B*C", "AxxCxxB"));
    }
}
