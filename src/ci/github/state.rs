//! The frozen job state `stepjail setup` writes and `stepjail step` reads.
//!
//! One directory (default `$RUNNER_TEMP/stepjail`, mode 0700) holds:
//! - `policy.yml`: the policy exactly as validated at setup (from the workspace or, for pull
//!   requests, from the base branch);
//! - `state.json`: the policy's SHA-256, where it came from, and the job's mode;
//! - `secrets.json` (mode 0600): the secrets handed to the action, `toJSON(secrets)` as is;
//! - `audit.jsonl`: the job's audit log, one run after another.
//!
//! Every sandboxed step runs with `RUNNER_TEMP` reduced to its own files, and this directory
//! hidden, so no step can read the secrets or edit the policy or the log. `stepjail setup`
//! also writes the policy's digest to `$GITHUB_ENV` as `STEPJAIL_POLICY_SHA256`, which steps
//! cannot change (`STEPJAIL_*` is refused in what a step writes to `$GITHUB_ENV`), and
//! `stepjail step` refuses a policy whose digest differs.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::policy::model::NetworkMode;

/// Variable naming the state directory in later steps.
pub const STATE_VAR: &str = "STEPJAIL_STATE";
/// Variable holding the frozen policy's SHA-256 in later steps.
pub const DIGEST_VAR: &str = "STEPJAIL_POLICY_SHA256";

pub const POLICY_FILE: &str = "policy.yml";
pub const STATE_FILE: &str = "state.json";
pub const SECRETS_FILE: &str = "secrets.json";
pub const AUDIT_FILE: &str = "audit.jsonl";

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// The job-wide mode the action was given: `enforce` (each step's profile as written) or
    /// `audit` (every step allowed out; what enforcing would deny is logged and reported).
    pub mode: NetworkMode,
    /// Lower-case hex SHA-256 of `policy.yml`.
    pub policy_sha256: String,
    /// Where the policy was read from (`.github/stepjail.yml`, `origin/main:.github/stepjail.yml`).
    pub policy_source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a stepjail state file: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error(
        "no frozen policy in {dir} (add the stepjail action, which runs `stepjail setup`, before the first step that uses `stepjail step`)"
    )]
    Missing { dir: PathBuf },
    #[error(
        "the frozen policy in {dir} has SHA-256 {found}, but setup recorded {expected}: it was changed after setup; refusing to run the step"
    )]
    Tampered {
        dir: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{dir} is not a safe state directory: {why}")]
    Unsafe { dir: PathBuf, why: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The state directory: `explicit`, else `$STEPJAIL_STATE`, else `$RUNNER_TEMP/stepjail`.
pub fn state_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(STATE_VAR).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("RUNNER_TEMP")
        .filter(|v| !v.is_empty())
        .map(|t| PathBuf::from(t).join("stepjail"))
}

/// Creates `dir` (mode 0700) or checks an existing one is a directory of ours, not a symlink,
/// and not writable by others.
pub fn prepare_dir(dir: &Path) -> Result<(), StateError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir)),
        Err(e) => Err(io(dir)(e)),
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            let unsafe_dir = |why: &str| StateError::Unsafe {
                dir: dir.to_path_buf(),
                why: why.to_string(),
            };
            if !m.file_type().is_dir() {
                return Err(unsafe_dir("not a directory (or a symlink)"));
            }
            if m.uid() != nix::unistd::geteuid().as_raw() {
                return Err(unsafe_dir("owned by another user"));
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
        }
    }
}

/// Writes `bytes` to `dir/name` with `mode` through a temporary file and a rename, so a reader
/// sees the old file or the new one, never half of one.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let target = dir.join(name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &target).map_err(io(&target))
}

/// Reads a file of the state directory, refusing symlinks.
pub fn read(dir: &Path, name: &str) -> Result<Vec<u8>, StateError> {
    use std::io::Read as _;
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io(&path))?;
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(io(&path))?;
    Ok(out)
}

/// What `stepjail step` needs from the state directory.
pub struct Frozen {
    pub dir: PathBuf,
    pub state: State,
    /// The policy text (its digest checked).
    pub policy: String,
}

/// Loads and verifies the frozen state: the policy's digest must equal the one in `state.json`
/// and, when given, `expected` (from `$STEPJAIL_POLICY_SHA256`).
pub fn load(dir: &Path, expected: Option<&str>) -> Result<Frozen, StateError> {
    let state_path = dir.join(STATE_FILE);
    if !state_path.exists() {
        return Err(StateError::Missing {
            dir: dir.to_path_buf(),
        });
    }
    let malformed = |message: String| StateError::Malformed {
        path: state_path.clone(),
        message,
    };
    let state: State =
        serde_json::from_slice(&read(dir, STATE_FILE)?).map_err(|e| malformed(e.to_string()))?;
    if state.version != 1 {
        return Err(malformed(format!("version {} (expected 1)", state.version)));
    }
    if state.mode == NetworkMode::None {
        return Err(malformed("mode none (expected enforce or audit)".into()));
    }
    let policy = read(dir, POLICY_FILE)?;
    let found = sha256_hex(&policy);
    for want in std::iter::once(state.policy_sha256.as_str()).chain(expected) {
        if want != found {
            return Err(StateError::Tampered {
                dir: dir.to_path_buf(),
                expected: want.to_string(),
                found,
            });
        }
    }
    let policy =
        String::from_utf8(policy).map_err(|_| malformed("policy.yml is not UTF-8".into()))?;
    Ok(Frozen {
        dir: dir.to_path_buf(),
        state,
        policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tampered_policy_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("s");
        prepare_dir(&dir).unwrap();
        write_atomic(&dir, POLICY_FILE, b"version: 1\n", 0o600).unwrap();
        let state = State {
            version: 1,
            mode: NetworkMode::Enforce,
            policy_sha256: sha256_hex(b"version: 1\n"),
            policy_source: "x".into(),
        };
        write_atomic(
            &dir,
            STATE_FILE,
            &serde_json::to_vec(&state).unwrap(),
            0o600,
        )
        .unwrap();
        assert!(load(&dir, None).is_ok());
        assert!(matches!(
            load(&dir, Some("00")),
            Err(StateError::Tampered { .. })
        ));
        write_atomic(&dir, POLICY_FILE, b"version: 1\ndefault: cargo\n", 0o600).unwrap();
        let e = load(&dir, None).err().unwrap().to_string();
        assert!(e.contains("was changed after setup"), "{e}");
        assert!(matches!(
            load(&d.path().join("none"), None),
            Err(StateError::Missing { .. })
        ));
    }

    #[test]
    fn a_job_mode_is_enforce_or_audit_never_none() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("s");
        prepare_dir(&dir).unwrap();
        write_atomic(&dir, POLICY_FILE, b"version: 1\n", 0o600).unwrap();
        for (mode, ok) in [("enforce", true), ("audit", true), ("none", false)] {
            let state = format!(
                r#"{{"version":1,"mode":"{mode}","policy_sha256":"{}","policy_source":"x"}}"#,
                sha256_hex(b"version: 1\n")
            );
            write_atomic(&dir, STATE_FILE, state.as_bytes(), 0o600).unwrap();
            match load(&dir, None) {
                Ok(f) => assert!(ok, "{mode}: {:?}", f.state),
                Err(e) => {
                    assert!(!ok, "{mode}: {e}");
                    assert!(
                        e.to_string()
                            .contains("mode none (expected enforce or audit)"),
                        "{e}"
                    );
                }
            }
        }
    }
}
