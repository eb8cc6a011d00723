//! `stepjail hooks`: the GitHub Actions runner's container hooks.
//!
//! With `ACTIONS_RUNNER_CONTAINER_HOOKS` pointing at `hooks/index.js` (which runs this with the
//! runner's stdin), a self-hosted runner hands every step of a container job — `run:` steps and
//! JavaScript actions alike — to `run_script_step` instead of `docker exec`; the workflow
//! cannot opt out. The runner's operator decides what each step may do in one file
//! ([`config`]); the repository can only narrow it ([`narrow`]).
//!
//! - `prepare_job`: checks the job container image against the operator's `images` (only
//!   images mapped to `host` run: on the host's root filesystem), refuses services and user
//!   volumes, freezes the operator's file and the job's facts into a private job directory
//!   ([`job`]) and answers with the state, the container id and `isAlpine`.
//! - `run_script_step`: runs `entryPoint entryPointArgs` in a fresh sandbox under the step's
//!   profile ([`run_step`]), then sanitizes its `GITHUB_ENV`/`GITHUB_PATH` as `stepjail step`
//!   does, reports denials and writes the step's summary.
//! - `run_container_step` (Docker actions): refused.
//! - `cleanup_job`: removes the job directory (the audit log stays where the operator keeps
//!   logs). Every sandbox ended with its step, so no process is left.
//!
//! The protocol was read from actions/runner (`src/Runner.Worker/Container/ContainerHooks/
//! {ContainerHookManager,HookInput,HookResponse}.cs`, `Handlers/StepHost.cs`,
//! `ContainerOperationProvider.cs`) and actions/runner-container-hooks
//! (`packages/hooklib/src/interfaces.ts`, `examples/*.json`, `packages/docker`); see
//! [`protocol`].

pub mod config;
mod exit;
pub mod job;
pub mod narrow;
pub mod protocol;
mod run_step;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::report;
use config::Operator;
pub use exit::EXIT_FAILED;
use exit::fail;
use protocol::{HookInput, PrepareJobArgs, PrepareJobResponse, ResponseContainer, ResponseContext};

/// Where the operator's file is unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/stepjail/github.yml";

/// The largest hook input read (the runner's JSON holds a step's whole environment).
const MAX_INPUT: u64 = 16 << 20;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Runs one hook: reads the runner's JSON from stdin; returns the exit code.
pub fn run(config: &Path, in_step: Option<&Path>) -> i32 {
    if let Some(file) = in_step {
        return run_step::second_half(file);
    }
    let mut text = String::new();
    if let Err(e) = std::io::stdin().take(MAX_INPUT).read_to_string(&mut text) {
        return fail(format!("reading the runner's input on stdin: {e}"));
    }
    let input: HookInput = match serde_json::from_str(text.trim()) {
        Ok(i) => i,
        Err(e) => {
            return fail(format!(
                "the runner's input on stdin is not a hook input: {e}"
            ));
        }
    };
    match input.command.as_str() {
        "prepare_job" => prepare_job(config, &input),
        "run_script_step" => run_step::first_half(&input),
        "run_container_step" => fail(
            "this runner runs every step in stepjail's sandbox and has no container engine: \
             Docker container actions (`runs.using: docker`, `uses: docker://...`) cannot run \
             here; use a JavaScript or composite action, or a `run:` step",
        ),
        "cleanup_job" => cleanup_job(&input),
        other => fail(format!(
            "unknown hook command {:?} (expected prepare_job, run_script_step, \
             run_container_step or cleanup_job)",
            report::safe_path(other)
        )),
    }
}

/// Writes the response file the runner created empty (never through a link).
fn write_response(path: Option<&str>, body: &str) -> Result<(), String> {
    use std::io::Write;
    let path = path.ok_or("the runner gave no responseFile")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            format!("the response file {path} (which the runner creates before the hook): {e}")
        })?;
    f.write_all(body.as_bytes())
        .map_err(|e| format!("writing the response file {path}: {e}"))
}

/// Whether the host's root filesystem is Alpine (what the runner asks, to pick its musl node:
/// actions/runner `Handlers/StepHost.cs` `DetermineNodeRuntimeVersion`; the docker hook checks
/// `/etc/*release*` for `ID=alpine`).
fn host_is_alpine() -> bool {
    std::fs::read_to_string("/etc/os-release").is_ok_and(|t| {
        t.lines()
            .any(|l| l.trim() == "ID=alpine" || l.trim() == "ID=\"alpine\"")
    })
}

fn prepare_job(config: &Path, input: &HookInput) -> i32 {
    let op = match Operator::load(config) {
        Ok(o) => o,
        Err(e) => return fail(format!("the operator's file: {e}")),
    };
    let args: PrepareJobArgs = match input.args.clone().map(serde_json::from_value).transpose() {
        Ok(a) => a.unwrap_or_default(),
        Err(e) => return fail(format!("prepare_job arguments: {e}")),
    };
    if args.services.as_ref().is_some_and(|s| !s.is_empty()) {
        return fail(
            "service containers (`services:`) cannot run on this runner: stepjail runs the job's \
             steps in its sandbox and has no container engine",
        );
    }
    let Some(container) = args.container else {
        return fail(
            "this job has no job container, so its steps would run without stepjail; the \
             runner's operator should set ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER=true",
        );
    };
    let image = container.image.clone().unwrap_or_default();
    if !op.runs_on_host(&image) {
        return fail(format!(
            "the job container image {image:?} is not mapped to `host` under `images:` in {}: \
             this runner runs a job's steps on the host's root filesystem only for images its \
             operator maps there (unpacking container images is not supported)",
            op.label
        ));
    }
    if container
        .user_mount_volumes
        .as_ref()
        .is_some_and(|v| !v.is_empty())
    {
        return fail(
            "`container.volumes` cannot be mounted: the job's steps run on the host's root \
             filesystem with the workspace writable, nothing else",
        );
    }
    if let Some(o) = container
        .create_options
        .as_deref()
        .filter(|o| !o.trim().is_empty())
    {
        println!(
            "{}",
            report::command(
                "warning",
                "stepjail hooks",
                &format!(
                    "`container.options` ({}) are ignored: steps run in stepjail's sandbox, not a container",
                    report::safe_path(o)
                )
            )
        );
    }
    let (Some(repository), Some(runner_temp)) = (env("GITHUB_REPOSITORY"), env("RUNNER_TEMP"))
    else {
        return fail(
            "GITHUB_REPOSITORY and RUNNER_TEMP must be set (the runner sets them for hooks)",
        );
    };
    let job_id = env("GITHUB_JOB").unwrap_or_default();
    // The repository's policy, built now: a mistake stops the job before any step.
    if let Err(e) = op.policy_for(&repository, None) {
        return fail(format!("the operator's file: {e}"));
    }
    let mounts = job::translation(container.system_mount_volumes.as_deref().unwrap_or(&[]));
    let workspace = job::to_host(
        &mounts,
        container.working_directory.as_deref().unwrap_or_default(),
    );
    if !Path::new(&workspace).is_absolute() {
        return fail(format!(
            "the job container's working directory {:?} is not a path on the host",
            report::safe_path(&workspace)
        ));
    }
    let root = op
        .state_dir
        .clone()
        .unwrap_or_else(|| Path::new(&runner_temp).join("_stepjail_hooks"));
    let (id, dir) = match job::create_dir(&root) {
        Ok(x) => x,
        Err(e) => {
            return fail(format!(
                "creating the job's state under {}: {e}",
                root.display()
            ));
        }
    };
    if let Err(e) = std::fs::create_dir_all(&op.audit_dir) {
        return fail(format!(
            "creating the audit directory {}: {e}",
            op.audit_dir.display()
        ));
    }
    let log_name = format!(
        "{}-{}-{}-{}-{id}.jsonl",
        job::file_component(&repository),
        job::file_component(&env("GITHUB_RUN_ID").unwrap_or_default()),
        job::file_component(&env("GITHUB_RUN_ATTEMPT").unwrap_or_default()),
        job::file_component(&job_id),
    );
    let state = job::JobState {
        id: id.clone(),
        repository: repository.clone(),
        job: job_id.clone(),
        image: image.clone(),
        mounts,
        container_env: container
            .environment_variables
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
        workspace: workspace.into(),
        runner_temp: runner_temp.into(),
        audit_log: op.audit_dir.join(log_name),
    };
    let saved = serde_json::to_vec_pretty(&state)
        .map_err(|e| e.to_string())
        .and_then(|bytes| job::write(&dir, job::JOB_FILE, &bytes).map_err(|e| e.to_string()))
        .and_then(|()| {
            job::write(&dir, job::OPERATOR_FILE, op.text.as_bytes()).map_err(|e| e.to_string())
        });
    if let Err(e) = saved {
        let _ = std::fs::remove_dir_all(&dir);
        return fail(format!("writing the job's state in {}: {e}", dir.display()));
    }
    let response = PrepareJobResponse {
        state: serde_json::json!({ job::STATE_KEY: dir.display().to_string() }),
        context: ResponseContext {
            container: Some(ResponseContainer {
                id: format!("stepjail-{id}"),
            }),
            services: Vec::new(),
        },
        is_alpine: host_is_alpine(),
    };
    let body = serde_json::to_string(&response).unwrap_or_default();
    if let Err(e) = write_response(input.response_file.as_deref(), &body) {
        let _ = std::fs::remove_dir_all(&dir);
        return fail(e);
    }
    println!(
        "stepjail: job {}/{}: image {image:?} runs on the host's root filesystem; every step runs in a sandbox under {} (audit log {})",
        report::safe_path(&repository),
        report::safe_path(&job_id),
        op.label,
        state.audit_log.display()
    );
    0
}

fn cleanup_job(input: &HookInput) -> i32 {
    // Nothing to clean when prepare_job did not get as far as a job directory.
    if input
        .state
        .as_ref()
        .and_then(|s| s.get(job::STATE_KEY))
        .is_none()
    {
        return 0;
    }
    let dir = match job::dir_from_state(input.state.as_ref()) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    // Each step's sandbox ended with the step (its PID namespace dies with its init, and the
    // init with stepjail); what is left is files.
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        return fail(format!("removing the job's state {}: {e}", dir.display()));
    }
    0
}
