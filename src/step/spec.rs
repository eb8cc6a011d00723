//! What a step is asked to be (the [`Spec`] an integration builds, the [`Host`] it runs on) and
//! how it ended ([`Outcome`]).

use std::path::PathBuf;

use crate::policy::model::{NetworkMode, Profile};

/// One step to run, as the CLI or a CI integration asks for it.
pub struct Spec {
    pub profile: Profile,
    /// The directory the step may write (`$WORKSPACE`).
    pub workspace: PathBuf,
    /// `--user`: who the step runs as when stepjail runs as root.
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

/// What a CI step adds to a run.
pub struct CiStep {
    pub skeleton: Option<crate::sandbox::plan::Skeleton>,
    /// Paths hidden on top of the profile's (stepjail's own state).
    pub hidden: Vec<PathBuf>,
    /// Variables passed whatever the profile says (`GITHUB_ENV` and the other file commands).
    pub pass: Vec<String>,
    /// Variables set for the step (a JavaScript action's `INPUT_*`).
    pub set: Vec<(String, String)>,
    pub job: String,
    pub step: String,
}

/// What `prepare` reads of the host besides its files: the caller's environment.
pub struct Host {
    /// The caller's environment (variables that are not UTF-8 are left out).
    pub env: Vec<(String, String)>,
}

impl Host {
    /// The current process's environment.
    pub fn current() -> Host {
        Host {
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }
}

/// How a launched step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code stepjail ends with (the step's own, or 124 on a timeout, ...).
    pub code: i32,
    pub timed_out: bool,
    /// The first signal stepjail itself received and relayed to the step (a cancellation).
    pub cancel_signal: Option<i32>,
    /// The first signal a process of the step sent to the step's PID 1.
    pub init_signal: Option<i32>,
}

/// A fresh identifier for a run, shared by all its audit events: time and pid, in hex.
pub fn new_run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}-{:x}", t.as_millis(), std::process::id())
}

/// Reads a caller's config or CA file: at most 4 MiB, without hanging on a FIFO put there
/// (a symbolic link is followed, as the tool itself would).
pub(super) fn read_small(path: &std::path::Path) -> std::io::Result<String> {
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
