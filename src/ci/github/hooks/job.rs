//! A job's state between the hooks: created by `prepare_job`, read by every
//! `run_script_step`, removed by `cleanup_job`.
//!
//! It lives in a directory of its own (`<state_dir>/sj-<random>`, mode 0700) that every step's
//! sandbox hides; the runner hands its path back in the hook `state` it keeps for the job.
//! It holds the job's facts (repository, job id, the container's path layout and variables),
//! the operator's file as it was when the job started, and the repository's policy once frozen.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const JOB_FILE: &str = "job.json";
pub const OPERATOR_FILE: &str = "github.yml";
pub const REPOSITORY_FILE: &str = "repository.yml";

/// The key of the job directory in the hook `state`.
pub const STATE_KEY: &str = "stepjailJob";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobState {
    pub id: String,
    pub repository: String,
    /// `GITHUB_JOB`.
    pub job: String,
    pub image: String,
    /// (container path, host path) of the runner's system mounts, longest container path first.
    pub mounts: Vec<(String, String)>,
    /// The job container's variables (`container.env` and the runner's `HOME`), as given.
    pub container_env: BTreeMap<String, String>,
    /// The workspace on the host (the container's working directory, translated).
    pub workspace: PathBuf,
    /// The runner's `RUNNER_TEMP` on the host.
    pub runner_temp: PathBuf,
    /// The job's one audit log.
    pub audit_log: PathBuf,
}

impl JobState {
    /// `path` with a container path prefix (`/__w/...`, `/__e/...`, `/github/home/...`) turned
    /// back into the host path the runner translated it from: the inverse of the runner's
    /// `ContainerInfo.TranslateToContainerPath` (actions/runner
    /// `src/Runner.Worker/Container/ContainerInfo.cs`), over the mounts of `prepare_job`.
    pub fn to_host(&self, value: &str) -> String {
        to_host(&self.mounts, value)
    }

    /// Whether `path` (a host path) lies in the runner's externals (`/__e`): the runner's own
    /// node, which runs JavaScript actions (actions/runner `Handlers/NodeScriptActionHandler.cs`,
    /// `StepHost.cs` `ResolvePathForStepHost`).
    pub fn is_externals(&self, path: &str) -> bool {
        self.mounts
            .iter()
            .find(|(c, _)| c == "/__e")
            .is_some_and(|(_, h)| Path::new(path).starts_with(h))
    }
}

pub fn to_host(mounts: &[(String, String)], value: &str) -> String {
    for (container, host) in mounts {
        if value == container {
            return host.clone();
        }
        if let Some(rest) = value.strip_prefix(container.as_str())
            && rest.starts_with('/')
        {
            return format!("{host}{rest}");
        }
    }
    value.to_string()
}

/// The mounts to translate with: the runner's system mounts minus the Docker socket (which the
/// steps never get) and anything mounted at `/`, longest container path first.
pub fn translation(mounts: &[crate::ci::github::hooks::protocol::Mount]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = mounts
        .iter()
        .filter(|m| m.target_volume_path.starts_with('/') && m.target_volume_path != "/")
        .filter(|m| m.source_volume_path.starts_with('/'))
        .filter(|m| !m.target_volume_path.ends_with("docker.sock"))
        .map(|m| {
            (
                m.target_volume_path.trim_end_matches('/').to_string(),
                // The runner's own examples carry a `//` (examples/run-container-step.json).
                format!("/{}", m.source_volume_path.trim_start_matches('/'))
                    .trim_end_matches('/')
                    .to_string(),
            )
        })
        .collect();
    out.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// A new job directory under `root`.
pub fn create_dir(root: &Path) -> std::io::Result<(String, PathBuf)> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)?;
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let dir = root.join(format!("sj-{id}"));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok((id, dir))
}

/// The job directory the hook `state` names, checked: an absolute `sj-<hex>` directory of ours
/// (not a link), that no one else can write.
pub fn dir_from_state(state: Option<&serde_json::Value>) -> Result<PathBuf, String> {
    let path = state
        .and_then(|s| s.get(STATE_KEY))
        .and_then(|v| v.as_str())
        .ok_or("the hook state names no stepjail job: prepare_job did not run through stepjail")?;
    let dir = PathBuf::from(path);
    let name_ok = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("sj-"))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()));
    if !dir.is_absolute() || !name_ok {
        return Err(format!(
            "the hook state names {path}, not a stepjail job directory"
        ));
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("{path}: {e}"))?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{path}: not a private directory of this user; refusing to use it"
        ));
    }
    Ok(dir)
}

/// Writes `name` in the job directory (mode 0600, never through a link).
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(name))?;
    f.write_all(bytes)
}

pub fn read(dir: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(name))?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

pub fn load(dir: &Path) -> Result<JobState, String> {
    let bytes =
        read(dir, JOB_FILE).map_err(|e| format!("{}: {e}", dir.join(JOB_FILE).display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", dir.join(JOB_FILE).display()))
}

/// A file name component from runner-provided text: `[A-Za-z0-9._-]`, others as `_`.
pub fn file_component(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::github::hooks::protocol::Mount;

    fn m(s: &str, t: &str) -> Mount {
        Mount {
            source_volume_path: s.into(),
            target_volume_path: t.into(),
            read_only: false,
        }
    }

    /// The layout of actions/runner `ContainerOperationProvider.MountWellKnownDirectories`, as
    /// in runner-container-hooks examples/prepare-job.json.
    #[test]
    fn container_paths_go_back_to_the_host_paths_the_runner_translated() {
        let t = translation(&[
            m("/var/run/docker.sock", "/var/run/docker.sock"),
            m("/r/_work", "/__w"),
            m("/r/externals", "/__e"),
            m("/r/_work/_temp", "/__w/_temp"),
            m("/r/_work/_actions", "/__w/_actions"),
            m("/r/_work/_tool", "/__w/_tool"),
            m("//r/_work/_temp/_github_home", "/github/home"),
            m("/r/_work/_temp/_github_workflow", "/github/workflow"),
        ]);
        assert!(!t.iter().any(|(c, _)| c.contains("docker")));
        assert_eq!(to_host(&t, "/__w/repo/repo"), "/r/_work/repo/repo");
        assert_eq!(to_host(&t, "/__w"), "/r/_work");
        assert_eq!(
            to_host(&t, "/__e/node24/bin/node"),
            "/r/externals/node24/bin/node"
        );
        assert_eq!(to_host(&t, "/github/home"), "/r/_work/_temp/_github_home");
        assert_eq!(
            to_host(&t, "/github/workflow/event.json"),
            "/r/_work/_temp/_github_workflow/event.json"
        );
        // Not a path prefix: left alone.
        assert_eq!(to_host(&t, "/__w2/x"), "/__w2/x");
        assert_eq!(to_host(&t, "development"), "development");
    }
}
