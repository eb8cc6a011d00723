//! The job as GitLab sent it: `JOB_RESPONSE_FILE`, the trusted context.
//!
//! `docs/executors/custom.md` ("Job response"): job-level `CUSTOM_ENV_*` variables can be
//! changed by the job (a `.gitlab-ci.yml` `variables:` entry can shadow `CI_PROJECT_PATH`),
//! so where the job's identity decides a policy, the runner's JSON copy of the job is read
//! instead. The runner writes it in `executors/custom/custom.go` (`createJobResponseFile`,
//! the encoding of `spec.Job`), and names it in every stage's environment
//! (`executors/custom/api/const.go`, `JobResponseFileVariable`). Field names are those of
//! `common/spec/spec.go` (`Job`, `JobInfo`, `GitInfo`, `Variable`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `JOB_RESPONSE_FILE` (`executors/custom/api/const.go`).
pub const JOB_RESPONSE_FILE: &str = "JOB_RESPONSE_FILE";

#[derive(Debug, Deserialize)]
pub struct JobResponse {
    pub id: i64,
    /// The job token (`CI_JOB_TOKEN`).
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub job_info: JobInfo,
    #[serde(default)]
    pub git_info: GitInfo,
    #[serde(default)]
    pub variables: Option<Vec<Variable>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct JobInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub project_full_path: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct GitInfo {
    #[serde(default)]
    pub repo_url: String,
}

#[derive(Debug, Deserialize)]
pub struct Variable {
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub file: bool,
    #[serde(default)]
    pub masked: bool,
}

impl JobResponse {
    /// Reads the file `JOB_RESPONSE_FILE` names.
    pub fn from_env() -> Result<(JobResponse, PathBuf), String> {
        let path = std::env::var_os(JOB_RESPONSE_FILE)
            .map(PathBuf::from)
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| {
                format!("{JOB_RESPONSE_FILE} is not set: stepjail gitlab runs as GitLab Runner's custom executor driver (GitLab Runner 13.x or later)")
            })?;
        Ok((JobResponse::read(&path)?, path))
    }

    pub fn read(path: &Path) -> Result<JobResponse, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn variables(&self) -> &[Variable] {
        self.variables.as_deref().unwrap_or_default()
    }

    /// The project's full path: `job_info.project_full_path`, else the path of
    /// `git_info.repo_url` (both set by GitLab, not by the job's YAML).
    pub fn project(&self) -> Result<String, String> {
        if !self.job_info.project_full_path.is_empty() {
            return Ok(self.job_info.project_full_path.clone());
        }
        let url = &self.git_info.repo_url;
        let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
        let path = after_scheme
            .split_once('/')
            .map(|(_, p)| p)
            .unwrap_or_default()
            .trim_end_matches('/')
            .trim_end_matches(".git");
        if path.is_empty() {
            return Err("the job response names no project (job_info.project_full_path and git_info.repo_url are empty)".into());
        }
        Ok(path.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_comes_from_the_job_response() {
        let j: JobResponse = serde_json::from_str(
            r#"{"id":7,"token":"t","job_info":{"name":"test","project_full_path":"g/p"},"git_info":{"repo_url":"https://gitlab-ci-token:t@h/x/y.git"},"variables":[{"key":"A","value":"1","public":true,"masked":false}],"unknown":1}"#,
        )
        .unwrap();
        assert_eq!(j.project().unwrap(), "g/p");
        let j: JobResponse = serde_json::from_str(
            r#"{"id":7,"git_info":{"repo_url":"https://gitlab-ci-token:t@h:8080/x/y.git"}}"#,
        )
        .unwrap();
        assert_eq!(j.project().unwrap(), "x/y");
        assert!(j.variables().is_empty());
    }
}
