//! `stepjail setup`: validate the job's policy and freeze it, with the secrets, where no
//! sandboxed step can reach (see [`super::state`]).

use std::path::{Path, PathBuf};

use super::state::{self, State};
use crate::policy::Policy;
use crate::policy::model::NetworkMode;

/// What the action passes to `stepjail setup`.
#[derive(Debug, Clone)]
pub struct SetupRequest {
    /// The policy file, relative to the working directory (the workspace).
    pub policy: PathBuf,
    /// Read the policy from this git revision (`origin/main`) instead of the working tree.
    pub policy_ref: Option<String>,
    /// `enforce` or `audit`.
    pub mode: NetworkMode,
    /// The secrets as `toJSON(secrets)` (or dotenv) text.
    pub secrets: Option<String>,
    pub state_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("secrets: {0}")]
    Secrets(String),
    #[error("reading the policy from git ({spec}): {message}")]
    Git { spec: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// Reads the policy text and the label errors name it by.
fn read_policy(req: &SetupRequest) -> Result<(String, String), SetupError> {
    let Some(rev) = &req.policy_ref else {
        let label = req.policy.display().to_string();
        let text = std::fs::read(&req.policy).map_err(|e| {
            SetupError::Other(format!(
                "{label}: {e} (set the action's `policy` input to your policy file)"
            ))
        })?;
        let text = String::from_utf8(text)
            .map_err(|_| SetupError::Other(format!("{label}: not UTF-8 text")))?;
        return Ok((text, label));
    };
    if rev.starts_with('-') || rev.contains(':') {
        return Err(SetupError::Git {
            spec: rev.clone(),
            message: "not a revision name".into(),
        });
    }
    let spec = format!("{rev}:./{}", req.policy.display());
    let out = std::process::Command::new("git")
        .args(["show", "--no-textconv", &spec])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| SetupError::Git {
            spec: spec.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(SetupError::Git {
            spec,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8(out.stdout).map_err(|_| SetupError::Git {
        spec: spec.clone(),
        message: "not UTF-8 text".into(),
    })?;
    Ok((text, spec))
}

/// What setup did, for the caller to print.
pub struct SetupOutcome {
    pub digest: String,
    pub source: String,
    /// `::add-mask::` lines for every secret value.
    pub masks: Vec<String>,
    /// One line per policy entry and one for the default.
    pub table: Vec<String>,
    /// Lines to append to `$GITHUB_ENV`.
    pub github_env: String,
}

/// Validates, freezes, and reports. Nothing is written unless the policy and secrets are valid.
pub fn setup(req: &SetupRequest) -> Result<SetupOutcome, SetupError> {
    let (text, label) = read_policy(req)?;
    let policy = Policy::parse(&req.policy, &text, &label)?;
    // The secrets: checked by the same reader `stepjail step` uses, before anything is frozen.
    let secrets_text = req.secrets.as_deref().filter(|s| !s.trim().is_empty());
    let mut masks = Vec::new();
    // What is frozen: the values as JSON. `toJSON(secrets)` names the job's token
    // `github_token`; it is also frozen as `GITHUB_TOKEN`, the name tools read, so a step can
    // declare it under that name.
    let mut frozen: Option<String> = None;
    if let Some(t) = secrets_text {
        let values = crate::secrets::parse_text(t, "the action's `secrets` input")
            .map_err(|e| SetupError::Secrets(e.to_string()))?;
        let mut map = serde_json::Map::new();
        for name in values.names() {
            let v = values.get(name).unwrap_or_default();
            for line in v.lines().map(str::trim).filter(|l| !l.is_empty()) {
                masks.push(format!("::add-mask::{line}"));
            }
            map.insert(name.to_string(), serde_json::Value::String(v.to_string()));
        }
        if let Some(token) = values.get("github_token")
            && !values.contains("GITHUB_TOKEN")
        {
            map.insert(
                "GITHUB_TOKEN".to_string(),
                serde_json::Value::String(token.to_string()),
            );
        }
        frozen = Some(serde_json::Value::Object(map).to_string());
    }
    let dir = &req.state_dir;
    if dir.to_str().is_none_or(|d| d.contains(['\n', '\r'])) {
        return Err(SetupError::Other(format!(
            "state directory {}: not a usable path",
            dir.display()
        )));
    }
    state::prepare_dir(dir)?;
    let digest = state::sha256_hex(text.as_bytes());
    match &frozen {
        Some(t) => state::write_atomic(dir, state::SECRETS_FILE, t.as_bytes(), 0o600)?,
        None => match std::fs::remove_file(dir.join(state::SECRETS_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(state::StateError::Io {
                    path: dir.join(state::SECRETS_FILE),
                    source: e,
                }
                .into());
            }
            _ => {}
        },
    }
    state::write_atomic(dir, state::POLICY_FILE, text.as_bytes(), 0o600)?;
    let st = State {
        version: 1,
        mode: req.mode,
        policy_sha256: digest.clone(),
        policy_source: label.clone(),
    };
    let json = serde_json::to_vec_pretty(&st).map_err(|e| SetupError::Other(e.to_string()))?;
    state::write_atomic(dir, state::STATE_FILE, &json, 0o600)?;

    let mut table = Vec::new();
    let describe = |p: &crate::policy::model::Profile| {
        let net = match (req.mode, p.network().mode) {
            (NetworkMode::Audit, _) => "audit: everything allowed and logged".to_string(),
            (_, NetworkMode::None) => "no network".to_string(),
            (_, NetworkMode::Audit) => "audit".to_string(),
            (_, NetworkMode::Enforce) => format!("{} allow rules", p.network().allow.len()),
        };
        let secrets: Vec<String> = p
            .secrets()
            .iter()
            .map(|s| {
                if s.broker.is_empty() {
                    s.name.clone()
                } else {
                    format!("{} (brokered)", s.name)
                }
            })
            .collect();
        if secrets.is_empty() {
            format!("{} ({net})", p.name())
        } else {
            format!("{} ({net}; secrets: {})", p.name(), secrets.join(", "))
        }
    };
    for rule in policy.steps() {
        let chosen = policy.for_step(&rule.job, &rule.step)?;
        table.push(format!(
            "{}/{} -> {}",
            rule.job,
            rule.step,
            describe(&chosen.profile)
        ));
    }
    let chosen = policy.for_step("", "")?;
    table.push(format!("any other step -> {}", describe(&chosen.profile)));
    let github_env = format!(
        "{}={}\n{}={}\n",
        state::STATE_VAR,
        dir.display(),
        state::DIGEST_VAR,
        digest
    );
    Ok(SetupOutcome {
        digest,
        source: label,
        masks,
        table,
        github_env,
    })
}

/// Appends `text` to the file named by `$GITHUB_ENV`, if there is one.
pub fn append_github_env(text: &str) -> std::io::Result<bool> {
    use std::io::Write as _;
    let Some(path) = std::env::var_os("GITHUB_ENV").filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    // The runner creates the file; a link or anything else in its place is refused.
    let mut f = crate::host_file::open(Path::new(&path), crate::host_file::Access::Append)
        .map_err(std::io::Error::other)?
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
    f.write_all(text.as_bytes())?;
    Ok(true)
}
