//! GitLab Runner's Custom executor: `stepjail gitlab config|prepare|run|cleanup`.
//!
//! The protocol, as documented in `docs/executors/custom.md` and implemented in
//! `executors/custom/` of gitlabhq/gitlab-runner:
//! - `config_exec` prints JSON on stdout (`executors/custom/api/config.go`,
//!   `ConfigExecOutput`: `builds_dir`, `cache_dir`, `builds_dir_is_shared`, `hostname`,
//!   `driver.name`/`driver.version`, `job_env`, `shell`).
//! - `prepare_exec` once; `run_exec <script> <stage>` per stage (`executors/custom/custom.go`,
//!   `Run`: `run_args..., scriptFile, stage`, with `step_script` passed as `build_script`);
//!   `cleanup_exec` always, its result ignored.
//! - Every call gets the runner's own environment, the job's variables as `CUSTOM_ENV_<KEY>`
//!   (`custom.go`, `prepareCommand`), and `BUILD_FAILURE_EXIT_CODE`,
//!   `SYSTEM_FAILURE_EXIT_CODE`, `BUILD_EXIT_CODE_FILE`, `JOB_RESPONSE_FILE`, `TMPDIR`
//!   (`executors/custom/command/command.go`, `New`; names in `executors/custom/api/const.go`).
//! - Exit `BUILD_FAILURE_EXIT_CODE` when the job's script failed (its own code written to
//!   `BUILD_EXIT_CODE_FILE`), `SYSTEM_FAILURE_EXIT_CODE` when the driver failed; any other
//!   code is an "unknown Custom executor executable exit code" (`command.go`,
//!   `waitForCommand`).
//!
//! Stage names are `common/build.go`'s `BuildStage` values (plus `step_*` and `build_script`).
//! Each stage runs in a fresh sandbox; which one depends on the stage's kind ([`Kind`]).

pub mod job;
pub mod launch;
pub mod policy;
pub mod script;

use std::io::Read as _;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use job::JobResponse;
use policy::{Narrowing, OperatorPolicy, RepositoryMode, Rule};

use crate::policy::model::NetworkMode;

/// `executors/custom/api/const.go`.
pub const BUILD_FAILURE_EXIT_CODE: &str = "BUILD_FAILURE_EXIT_CODE";
pub const SYSTEM_FAILURE_EXIT_CODE: &str = "SYSTEM_FAILURE_EXIT_CODE";
pub const BUILD_EXIT_CODE_FILE: &str = "BUILD_EXIT_CODE_FILE";
/// The runner's values when the variables are missing (`executors/custom/command/command.go`).
const DEFAULT_BUILD_FAILURE: i32 = 1;
const DEFAULT_SYSTEM_FAILURE: i32 = 2;

/// Which sandbox a stage gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `get_sources`, `clear_worktree`: git against the GitLab host, with the job token.
    Sources,
    /// cache and artifact stages: the GitLab host (artifact API), with the job token.
    Transfer,
    /// `build_script`, `step_script`, `step_*`, `after_script`: the job's policy entry.
    Build,
    /// `prepare_script`, `cleanup_file_variables`: the default (offline) profile.
    Housekeeping,
}

/// The kind of a `run_exec` stage name; unknown names are refused (fail closed).
pub fn kind(stage: &str) -> Option<Kind> {
    Some(match stage {
        "get_sources" | "clear_worktree" => Kind::Sources,
        "restore_cache"
        | "archive_cache"
        | "archive_cache_on_failure"
        | "download_artifacts"
        | "upload_artifacts_on_success"
        | "upload_artifacts_on_failure" => Kind::Transfer,
        "build_script" | "step_script" | "after_script" => Kind::Build,
        s if s.starts_with("step_") && s.len() > 5 => Kind::Build,
        "prepare_script" | "cleanup_file_variables" | "prepare_executor" => Kind::Housekeeping,
        _ => return None,
    })
}

/// Variables that carry the job token or a registry credential derived from it.
const TOKEN_VARIABLES: &[&str] = &[
    "CI_JOB_TOKEN",
    "CI_BUILD_TOKEN",
    "CI_REGISTRY_PASSWORD",
    "CI_DEPENDENCY_PROXY_PASSWORD",
    "CI_REPOSITORY_URL",
    "CI_JOB_JWT",
    "CI_JOB_JWT_V1",
    "CI_JOB_JWT_V2",
];

/// The exit codes the runner asked for.
#[derive(Clone, Copy)]
pub struct Codes {
    pub build: i32,
    pub system: i32,
}

impl Codes {
    pub fn from_env() -> Codes {
        let get = |k: &str, d: i32| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(d)
        };
        Codes {
            build: get(BUILD_FAILURE_EXIT_CODE, DEFAULT_BUILD_FAILURE),
            system: get(SYSTEM_FAILURE_EXIT_CODE, DEFAULT_SYSTEM_FAILURE),
        }
    }
}

/// The frozen state of one job (`<state_dir>/<job id>/job.json`), written by `prepare`.
#[derive(serde::Serialize, serde::Deserialize)]
struct JobState {
    project: String,
    job: String,
    rule: Rule,
}

fn system(codes: Codes, msg: impl std::fmt::Display) -> i32 {
    say!("stepjail: {msg}");
    codes.system
}

fn policy_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("STEPJAIL_GITLAB_POLICY").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(policy::DEFAULT_POLICY))
}

/// The operator's policy and the job response, which every call needs.
fn context(flag: Option<&Path>) -> Result<(OperatorPolicy, JobResponse, PathBuf), String> {
    let policy = OperatorPolicy::load(&policy_path(flag))?;
    let (job, path) = JobResponse::from_env()?;
    if job.id <= 0 {
        return Err(format!("{}: no job id", path.display()));
    }
    Ok((policy, job, path))
}

fn job_dir(p: &OperatorPolicy, job: &JobResponse) -> PathBuf {
    p.builds_dir.join(job.id.to_string())
}

fn state_dir(p: &OperatorPolicy, job: &JobResponse) -> PathBuf {
    p.state_dir.join(job.id.to_string())
}

fn mkdir(p: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
        .map_err(|e| format!("creating {}: {e}", p.display()))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// `config_exec`: where the job's directories are (one per job, never shared).
pub fn config(policy_flag: Option<&Path>) -> i32 {
    let codes = Codes::from_env();
    let (p, job, _) = match context(policy_flag) {
        Ok(c) => c,
        Err(e) => return system(codes, e),
    };
    let out = serde_json::json!({
        "builds_dir": job_dir(&p, &job),
        "cache_dir": p.cache_dir,
        "builds_dir_is_shared": false,
        "driver": { "name": "stepjail", "version": env!("CARGO_PKG_VERSION") },
        "shell": "bash",
    });
    println!("{out}");
    0
}

/// `prepare_exec`: choose the job's rule from the operator's policy and freeze it.
pub fn prepare(policy_flag: Option<&Path>) -> i32 {
    let codes = Codes::from_env();
    let (p, job, _) = match context(policy_flag) {
        Ok(c) => c,
        Err(e) => return system(codes, e),
    };
    let project = match job.project() {
        Ok(x) => x,
        Err(e) => return system(codes, e),
    };
    let name = job.job_info.name.clone();
    let rule = p.for_job(&project, &name);
    let state = state_dir(&p, &job);
    let work = job_dir(&p, &job);
    for (d, mode) in [
        (&p.state_dir, 0o711),
        (&state, 0o700),
        (&p.audit_dir, 0o700),
        (&p.builds_dir, 0o755),
        (&work, 0o755),
        (&p.cache_dir, 0o755),
    ] {
        if let Err(e) = mkdir(d, mode) {
            return system(codes, e);
        }
    }
    if let Some(user) = &p.user
        && nix::unistd::geteuid().is_root()
    {
        match nix::unistd::User::from_name(user) {
            Ok(Some(u)) => {
                for d in [&work, &p.cache_dir] {
                    if let Err(e) = nix::unistd::chown(d.as_path(), Some(u.uid), Some(u.gid)) {
                        return system(codes, format!("chown {}: {e}", d.display()));
                    }
                }
            }
            _ => return system(codes, format!("user `{user}` (policy `user:`) not found")),
        }
    }
    let st = JobState {
        project: project.clone(),
        job: name.clone(),
        rule: rule.clone(),
    };
    let text = serde_json::to_vec(&st).unwrap_or_default();
    if let Err(e) = std::fs::write(state.join("job.json"), text) {
        return system(codes, format!("writing the job state: {e}"));
    }
    println!(
        "stepjail: job {project} / {name}: build stages run under profile `{}` ({}); variables passed: {}",
        rule.profile,
        rule.from,
        if rule.variables.is_empty() {
            "none of the secret ones".to_string()
        } else {
            rule.variables.join(", ")
        }
    );
    0
}

/// Job variables the stage must not see.
fn withheld<'a>(
    kind: Kind,
    job: &'a JobResponse,
    declared: &[String],
) -> Vec<script::Withheld<'a>> {
    let token = job.token.as_str();
    let carries_token = |v: &job::Variable| {
        TOKEN_VARIABLES.contains(&v.key.as_str())
            || (token.len() >= script::MIN_SEARCHED && v.value.contains(token))
    };
    // The token itself, whatever variables carry it.
    let token_allowed = match kind {
        Kind::Sources | Kind::Transfer => true,
        Kind::Build => declared.iter().any(|d| d == "CI_JOB_TOKEN"),
        Kind::Housekeeping => false,
    };
    let mut out: Vec<script::Withheld> = job
        .variables()
        .iter()
        .filter(|v| match kind {
            // Git, cache and artifacts need the token (and the public settings), never the
            // project's secrets, whatever they are named.
            Kind::Sources | Kind::Transfer => (!v.public || v.masked) && !carries_token(v),
            Kind::Build => {
                !declared.contains(&v.key)
                    && (!v.public || v.masked || carries_token(v))
                    && !(token_allowed && v.value == token)
            }
            Kind::Housekeeping => !v.public || v.masked || carries_token(v),
        })
        .map(|v| script::Withheld {
            key: &v.key,
            value: &v.value,
            file: v.file,
        })
        .collect();
    if !token_allowed && !token.is_empty() {
        out.push(script::Withheld {
            key: "CI_JOB_TOKEN",
            value: token,
            file: false,
        });
    }
    out
}

/// The profile of the git/cache/artifact stages: the default profile, the GitLab host, and
/// (for cache stages) the cache directory. Written to the job's state and loaded like any
/// profile file.
fn infra_profile(
    p: &OperatorPolicy,
    state: &Path,
    kind: Kind,
) -> Result<crate::policy::model::Profile, String> {
    let (_, host, port) = &p.gitlab;
    let name = if kind == Kind::Sources {
        "gitlab-sources"
    } else {
        "gitlab-transfer"
    };
    let mut text = format!(
        "name: {name}\ndescription: GitLab Runner's {name} stages; the GitLab host only\nextends: default\nnetwork:\n  allow:\n    - {host}:{port}\n"
    );
    if kind == Kind::Transfer {
        let cache = p.cache_dir.display().to_string().replace('$', "$$");
        text.push_str(&format!(
            "filesystem:\n  read_write:\n    - $WORKSPACE\n    - {}\n",
            serde_json::to_string(&cache).unwrap_or_default()
        ));
    }
    let file = state.join(format!("{name}.yml"));
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    crate::policy::load_file(&file).map_err(|e| e.to_string())
}

/// The start time of live process `pid` (field 22 of /proc/PID/stat), to tell it from a
/// reused pid; `None` once it has exited (a zombie waiting for its parent has).
fn start_time(pid: i32) -> Option<u64> {
    let stat = stat_after_name(pid)?;
    let mut fields = stat.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// `/proc/<pid>/stat` from the field after the command name (the state) on: the name, in
/// parentheses, may hold spaces and parentheses itself.
fn stat_after_name(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.get(stat.rfind(')')? + 2..)?.to_string())
}

/// `run_exec <script> <stage>`.
pub fn run(policy_flag: Option<&Path>, script_path: &Path, stage: &str) -> i32 {
    let codes = Codes::from_env();
    let Some(kind) = kind(stage) else {
        return system(
            codes,
            format!(
                "unknown stage `{stage}`: not run (stepjail knows the stages of docs/executors/custom.md)"
            ),
        );
    };
    let (p, job, response) = match context(policy_flag) {
        Ok(c) => c,
        Err(e) => return system(codes, e),
    };
    let state = state_dir(&p, &job);
    let st: JobState = match std::fs::read(state.join("job.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            return system(
                codes,
                format!(
                    "the job's state ({}): {e}; did prepare_exec run?",
                    state.display()
                ),
            );
        }
    };
    let narrowing: Narrowing = match std::fs::read(state.join("narrowing.json")) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(n) => n,
            Err(e) => return system(codes, format!("the job's frozen repository policy: {e}")),
        },
        Err(_) => Narrowing::default(),
    };
    let declared: Vec<String> = match &narrowing.variables {
        Some(keep) => keep.clone(),
        None => st.rule.variables.clone(),
    };
    let mut text = String::new();
    if let Err(e) =
        std::fs::File::open(script_path).and_then(|f| f.take(64 << 20).read_to_string(&mut text))
    {
        return system(codes, format!("{}: {e}", script_path.display()));
    }
    let hold = withheld(kind, &job, &declared);
    let reduced = match script::rewrite(&text, &hold) {
        Ok(s) => s,
        Err(e) => return system(codes, format!("stage {stage}: {e}")),
    };
    let shell = match text.lines().next() {
        Some(l) if l.trim_end().ends_with(" sh") || l.trim_end() == "#!/bin/sh" => "sh",
        _ => "bash",
    };
    let workspace = job_dir(&p, &job);
    let (profile, mode, masked) = match kind {
        Kind::Sources | Kind::Transfer => match infra_profile(&p, &state, kind) {
            Ok(pr) => (pr, None, Vec::new()),
            Err(e) => return system(codes, e),
        },
        Kind::Build | Kind::Housekeeping => {
            let spec = if kind == Kind::Build {
                st.rule.profile.as_str()
            } else {
                "default"
            };
            let pr = match crate::policy::load(spec) {
                Ok(pr) => pr,
                Err(e) => return system(codes, e),
            };
            let mode = (kind == Kind::Build && narrowing.no_network).then_some(NetworkMode::None);
            // Masked variables that reach the stage are masked in its output.
            let masked: Vec<(String, String)> = job
                .variables()
                .iter()
                .filter(|v| v.masked && !v.value.is_empty())
                .filter(|v| !hold.iter().any(|w| w.key == v.key))
                .filter(|v| !crate::policy::reserved::is_reserved(&v.key))
                .map(|v| (v.key.clone(), v.value.clone()))
                .collect();
            (pr, mode, masked)
        }
    };
    // The runner's variables for the driver never reach a stage, whatever a profile passes.
    let profile =
        match profile.with_scrubbed(["CUSTOM_ENV_*", "JOB_RESPONSE_FILE", BUILD_EXIT_CODE_FILE]) {
            Ok(pr) => pr,
            Err(e) => return system(codes, e),
        };
    let mut hidden = vec![p.state_dir.clone(), p.audit_dir.clone()];
    // The runner's temporary directory: the job response (token, every variable) and the
    // unreduced scripts of every stage.
    for dir in [
        response.parent(),
        script_path.parent().and_then(Path::parent),
    ]
    .into_iter()
    .flatten()
    {
        if let Ok(d) = std::fs::canonicalize(dir)
            && d != Path::new("/")
            && !hidden.contains(&d)
        {
            hidden.push(d);
        }
    }
    let audit_log = p.audit_dir.join(format!("{}.jsonl", job.id));
    let offset = std::fs::metadata(&audit_log).map(|m| m.len()).unwrap_or(0);
    // While the stage runs, cleanup can find this process (and so the sandbox) by its pid.
    let pid = std::process::id() as i32;
    let pids = state.join("pids");
    let pid_file = pids.join(pid.to_string());
    let _ = mkdir(&pids, 0o700);
    let _ = std::fs::write(&pid_file, start_time(pid).unwrap_or(0).to_string());
    let ended = launch::launch(launch::Stage {
        profile,
        workspace: workspace.clone(),
        user: p.user.clone(),
        audit_log: audit_log.clone(),
        mode,
        resolver: p.resolver,
        script: reduced,
        shell: shell.to_string(),
        hidden,
        masked,
        job: format!("{}/{}", st.project, st.job),
        stage: stage.to_string(),
    });
    let _ = std::fs::remove_file(&pid_file);
    // Whatever the outcome: the stages after a failure (after_script, *_on_failure) read
    // the same directory.
    if matches!(kind, Kind::Sources | Kind::Transfer) {
        scrub_token(&workspace, &job.token);
    }
    sanitize_gitlab_env(&workspace, stage);
    let started = report_denials(&audit_log, offset, &ended.run_id, stage);
    let code = ended.code;
    if !started || code == crate::exit::SETUP {
        return system(
            codes,
            format!("stage {stage}: the sandbox could not run it (exit code {code})"),
        );
    }
    if code != 0 {
        if let Some(f) = std::env::var_os(BUILD_EXIT_CODE_FILE).filter(|f| !f.is_empty())
            && let Err(e) = std::fs::write(&f, format!("{code}\n"))
        {
            say!("stepjail: writing {}: {e}", Path::new(&f).display());
        }
        return codes.build;
    }
    if kind == Kind::Sources
        && stage == "get_sources"
        && p.repository == RepositoryMode::Narrow
        && let Err(e) = freeze_repository_policy(&state, &workspace, &st)
    {
        say!("stepjail: {e}");
        return codes.build;
    }
    0
}

/// After `get_sources`: the repository's `.gitlab/stepjail.yml`, checked against the
/// operator's rule and frozen where no stage can write.
fn freeze_repository_policy(state: &Path, workspace: &Path, st: &JobState) -> Result<(), String> {
    let dir = std::env::var_os("CUSTOM_ENV_CI_PROJECT_DIR")
        .map(PathBuf::from)
        .and_then(|d| std::fs::canonicalize(d).ok())
        .ok_or("CUSTOM_ENV_CI_PROJECT_DIR is not set or does not exist")?;
    let root = std::fs::canonicalize(workspace).map_err(|e| e.to_string())?;
    if !dir.starts_with(&root) {
        return Err(format!(
            "the project directory {} is outside the job's directory {}",
            dir.display(),
            root.display()
        ));
    }
    let file = dir.join(policy::REPOSITORY_POLICY);
    // Opened without following a final symbolic link; the directories on the way are the
    // checkout's own (a link in them must still end inside the job's directory).
    let real_parent = file
        .parent()
        .and_then(|d| std::fs::canonicalize(d).ok())
        .filter(|d| d.starts_with(&root));
    let Some(parent) = real_parent else {
        return Ok(()); // no .gitlab directory (or one leading elsewhere): nothing to narrow
    };
    let file = parent.join("stepjail.yml");
    let mut f = match crate::host_file::open_read(&file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let mut text = String::new();
    f.by_ref()
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let label = format!("{} (the repository's policy)", policy::REPOSITORY_POLICY);
    let n = policy::narrowing(&text, &label, &st.job, &st.rule)?;
    let bytes = serde_json::to_vec(&n).map_err(|e| e.to_string())?;
    std::fs::write(state.join("narrowing.json"), bytes).map_err(|e| e.to_string())?;
    if n != Narrowing::default() {
        println!(
            "stepjail: {label} narrows job {}: {}{}",
            st.job,
            if n.no_network { "no network; " } else { "" },
            match &n.variables {
                Some(v) => format!("variables: {}", v.join(", ")),
                None => "variables as the operator's policy says".into(),
            }
        );
    }
    Ok(())
}

/// Removes the job token from the git configuration the git stages leave in the job's
/// directory, before any build stage can read it: without FF_GIT_URLS_WITHOUT_TOKENS the
/// runner's get_sources writes remote URLs and `insteadOf` rules that carry the token
/// (`shells/abstract.go`, `writeGitSSLConfig`/`writeRefspecFetchCmd`) into `.git/config` and
/// into files under `<project dir>.tmp`. `gitlab-ci-token:<token>@` is cut out of URLs; any
/// other line holding the token is dropped. Symbolic links are not followed.
fn scrub_token(job_dir: &Path, token: &str) {
    if token.len() < script::MIN_SEARCHED {
        return;
    }
    let mut files = Vec::new();
    let mut stack = vec![(job_dir.to_path_buf(), 0u32, false)];
    while let Some((dir, depth, in_tmp)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            let name = e.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                if name == ".git" {
                    files.push(e.path().join("config"));
                } else if (in_tmp || name.ends_with(".tmp")) && depth < 6 {
                    stack.push((e.path(), depth + 1, true));
                } else if depth < 3 {
                    stack.push((e.path(), depth + 1, in_tmp));
                }
            } else if in_tmp && meta.is_file() && meta.len() <= 1 << 20 && files.len() < 1000 {
                files.push(e.path());
            }
        }
    }
    for f in files {
        use std::io::{Seek as _, Write as _};
        use std::os::unix::fs::OpenOptionsExt;
        // Read and rewritten through one descriptor, never through a symbolic link.
        let Ok(mut file) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&f)
        else {
            continue;
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        let mut text = String::new();
        if file.read_to_string(&mut text).is_err() || !text.contains(token) {
            continue;
        }
        let cut = text.replace(&format!("gitlab-ci-token:{token}@"), "");
        let kept: String = cut
            .split_inclusive('\n')
            .filter(|l| !l.contains(token))
            .collect();
        let written = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(kept.as_bytes()));
        if let Err(e) = written {
            say!("stepjail: removing the job token from {}: {e}", f.display());
        }
    }
}

/// `$GITLAB_ENV` (`<project dir>.tmp/gitlab_runner_env`, `shells/abstract.go`,
/// `gitlabEnvFileName`) is read back by every later stage script (`SourceEnv`: `export
/// "$line"` per line), the git, cache and artifact stages that hold the job token included.
/// What a stage wrote there that would run code in them (`LD_PRELOAD`, `BASH_ENV`, ...) is
/// removed, by the same list of names as for `$GITHUB_ENV` ([`sanitize_env_lines`]).
fn sanitize_gitlab_env(job_dir: &Path, stage: &str) {
    let Ok(entries) = std::fs::read_dir(job_dir) else {
        return;
    };
    // <job dir>/<namespace...>/<project>.tmp/gitlab_runner_env, a few levels down.
    let mut stack: Vec<(PathBuf, u32)> = entries.flatten().map(|e| (e.path(), 1)).collect();
    while let Some((p, depth)) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        if p.extension().is_some_and(|e| e == "tmp") {
            let env = p.join("gitlab_runner_env");
            if std::fs::symlink_metadata(&env).is_err() {
                continue;
            }
            if let Err(e) = sanitize_env_lines(&env, stage) {
                say!("stepjail: {stage}: GITLAB_ENV: {e}");
            }
        } else if depth < 4
            && let Ok(entries) = std::fs::read_dir(&p)
        {
            stack.extend(entries.flatten().map(|e| (e.path(), depth + 1)));
        }
    }
}

/// Keeps the `NAME=value` lines of `path` whose name is not dangerous
/// (`ci::github::filecmd::dangerous_reason`); any other line (one `export` would take as an
/// option, or as a bare name) is dropped too. Rewritten through one descriptor, never through
/// a symbolic link; left byte for byte as it is when nothing is dropped.
fn sanitize_env_lines(path: &Path, stage: &str) -> std::io::Result<()> {
    use std::io::{Seek as _, Write as _};
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    std::io::Read::by_ref(&mut file)
        .take(4 << 20)
        .read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut kept = String::new();
    let mut dropped = false;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let name = line.split_once('=').map(|(k, _)| k).unwrap_or("");
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let why = if !valid {
            Some("not a NAME=value line")
        } else {
            crate::ci::github::filecmd::dangerous_reason(name)
        };
        match why {
            Some(why) => {
                dropped = true;
                say!(
                    "stepjail: {stage}: removed {} from GITLAB_ENV (line {}): {why}; later stages will not see it",
                    if valid { name } else { "a line" },
                    n + 1
                );
            }
            None => kept.push_str(line),
        }
    }
    if dropped {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(kept.as_bytes())?;
    }
    Ok(())
}

/// Prints the stage's denials to the job log; returns whether the stage started at all.
fn report_denials(log: &Path, offset: u64, run_id: &str, stage: &str) -> bool {
    use std::io::Seek as _;
    let mut bytes = Vec::new();
    if let Ok(mut f) = crate::host_file::open_read(log) {
        let _ = f.seek(std::io::SeekFrom::Start(offset));
        let _ = f.read_to_end(&mut bytes);
    }
    let mut started = false;
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if v["step"] != run_id {
            continue;
        }
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        match v["event"].as_str() {
            Some("step_start") => started = true,
            Some("connect") if v["decision"] == "deny" => {
                let dest = v["dest_name"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| v["dest_ip"].as_str().map(str::to_string))
                    .unwrap_or_default();
                say!(
                    "stepjail: {stage}: denied connection to {dest}:{} ({})",
                    v["dest_port"],
                    s("reason")
                );
            }
            Some("dns") if v["decision"] == "deny" => {
                say!(
                    "stepjail: {stage}: denied DNS query {} {}",
                    s("name"),
                    s("qtype")
                );
            }
            Some("secret_leak") => {
                say!(
                    "stepjail: {stage}: refused to send secret {} ({})",
                    s("secret_name"),
                    s("dest")
                );
            }
            _ => {}
        }
    }
    started
}

fn signal(pid: i32, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Stops `pid` (so that it cannot fork while it is read) and returns its children with
/// their start times. A process that does not stop within a second gives what it has then.
fn stopped_children(pid: i32) -> Vec<(i32, u64)> {
    signal(pid, Signal::SIGSTOP);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while stat_after_name(pid).is_some_and(|s| !s.starts_with(['T', 't', 'Z', 'X']))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut children = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for child in list
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok())
            {
                // A zombie (no start time) is already gone.
                if let Some(t) = start_time(child) {
                    children.push((child, t));
                }
            }
        }
    }
    children
}

/// `cleanup_exec`: end whatever a stage left running, and remove the job's state and
/// directory. Its result does not change the job's status (docs/executors/custom.md,
/// "Cleanup"), so it keeps going past errors.
pub fn cleanup(policy_flag: Option<&Path>) -> i32 {
    let codes = Codes::from_env();
    let (p, job, _) = match context(policy_flag) {
        Ok(c) => c,
        Err(e) => return system(codes, e),
    };
    let state = state_dir(&p, &job);
    let mut alive = Vec::new();
    if let Ok(entries) = std::fs::read_dir(state.join("pids")) {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let recorded: Option<u64> = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if pid > 1 && recorded.is_some() && start_time(pid) == recorded {
                // The stage's supervisor, and the sandbox's PID 1 (its child). The sandbox
                // would die with the supervisor (PDEATHSIG, then the PID namespace), but only
                // after this returns: kill both and wait for both.
                for (child, t) in stopped_children(pid) {
                    signal(child, Signal::SIGKILL);
                    alive.push((child, Some(t)));
                }
                signal(pid, Signal::SIGKILL);
                alive.push((pid, recorded));
            }
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive.iter().any(|(pid, t)| start_time(*pid) == *t) {
        if std::time::Instant::now() > deadline {
            say!("stepjail: cleanup: a stage's process did not end within 10 s");
            return codes.system;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut code = 0;
    for d in [&state, &job_dir(&p, &job)] {
        if let Err(e) = std::fs::remove_dir_all(d)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            say!("stepjail: cleanup: removing {}: {e}", d.display());
            code = codes.system;
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_kinds() {
        assert_eq!(kind("get_sources"), Some(Kind::Sources));
        assert_eq!(kind("clear_worktree"), Some(Kind::Sources));
        assert_eq!(kind("upload_artifacts_on_failure"), Some(Kind::Transfer));
        assert_eq!(kind("build_script"), Some(Kind::Build));
        assert_eq!(kind("step_release"), Some(Kind::Build));
        assert_eq!(kind("step_"), None);
        assert_eq!(kind("cleanup_file_variables"), Some(Kind::Housekeeping));
        assert_eq!(kind("something_new"), None);
    }

    #[test]
    fn the_token_reaches_only_the_stages_that_need_it() {
        let job: JobResponse = serde_json::from_str(
            r#"{"id":1,"token":"glcbt-0123456789abcdef","variables":[
            {"key":"CI_JOB_TOKEN","value":"glcbt-0123456789abcdef","public":false,"masked":true},
            {"key":"CI_PROJECT_PATH","value":"g/p","public":true},
            {"key":"DEPLOY_KEY","value":"deploy-secret-value","public":false,"masked":true},
            {"key":"CI_LOOKALIKE","value":"a-project-secret","public":false,"masked":true},
            {"key":"PLAIN","value":"x","public":true}]}"#,
        )
        .unwrap();
        let keys = |k: Kind, d: &[&str]| {
            let d: Vec<String> = d.iter().map(|s| s.to_string()).collect();
            let mut v: Vec<&str> = withheld(k, &job, &d).iter().map(|w| w.key).collect();
            v.sort();
            v.dedup();
            v
        };
        let secrets = vec!["CI_LOOKALIKE", "DEPLOY_KEY"];
        assert_eq!(keys(Kind::Sources, &[]), secrets);
        assert_eq!(keys(Kind::Transfer, &[]), secrets);
        let all = vec!["CI_JOB_TOKEN", "CI_LOOKALIKE", "DEPLOY_KEY"];
        assert_eq!(keys(Kind::Build, &[]), all);
        assert_eq!(keys(Kind::Build, &secrets), vec!["CI_JOB_TOKEN"]);
        assert!(keys(Kind::Build, &all).is_empty());
        assert_eq!(keys(Kind::Housekeeping, &[]), all);
    }
}
