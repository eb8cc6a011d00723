//! `stepjail step -- SHELL... SCRIPT`: the `shell:` of every `run:` step.
//!
//! The runner writes the step's script to `$RUNNER_TEMP/<guid>` and runs this with the script's
//! path in place of `{0}`. We find the step's entry in the frozen policy (by `GITHUB_JOB` and
//! `GITHUB_ACTION`), run the command in the sandbox with `RUNNER_TEMP` reduced to the script
//! and the step's own file-command files, then — before the runner reads them — remove what
//! would poison later steps from `$GITHUB_ENV` and `$GITHUB_PATH`, add the step's section to
//! its summary, print one annotation per denial, and exit with the step's code.

use std::path::{Path, PathBuf};

use super::filecmd;
use super::report::{self, Header, StepReport};
use super::state;
use crate::audit::{AuditLog, Event, FileCommand};
use crate::policy::Policy;
use crate::policy::model::NetworkMode;
use crate::sandbox::plan::Skeleton;
use crate::step::{CiStep, Host, RunError, Spec};

/// The file-command variables: each names a file of this step the step may write.
pub const FILE_COMMANDS: &[&str] = &[
    "GITHUB_ENV",
    "GITHUB_OUTPUT",
    "GITHUB_PATH",
    "GITHUB_STATE",
    "GITHUB_STEP_SUMMARY",
];

/// Programs a `$GITHUB_PATH` entry may not shadow.
pub const SHADOWED: &[&str] = &["stepjail", "bash", "sh", "env", "sudo"];

pub struct StepRequest {
    pub state_dir: Option<PathBuf>,
    pub verbose: bool,
    pub command: Vec<String>,
    /// The policy key of the step, instead of `GITHUB_ACTION` (a wrapped action's step).
    pub step_id: Option<String>,
    /// Variables set for the step (a JavaScript action's `INPUT_*`, `GITHUB_ACTION_PATH`).
    pub set: Vec<(String, String)>,
    /// More variables passed from the runner whatever the profile says (an action's context).
    pub pass: Vec<String>,
}

/// The frozen state is missing, unreadable or was changed (exit 125).
fn state(msg: impl std::fmt::Display) -> RunError {
    RunError::State(msg.to_string())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Runs one step: locates its policy entry and files, launches it, then does what must follow
/// it (file commands, annotations, the summary). Returns the exit code stepjail ends with, or
/// the error that stopped the step (after the after-step, when the step was located).
pub fn run(req: StepRequest) -> Result<i32, RunError> {
    let (spec, located) = locate(req)?;
    let (finished, result) = launch(spec, &located);
    after_step(&located, finished, result)
}

/// What the after-step needs to know of the located step.
struct Located {
    /// `job/step`, for messages.
    shown: String,
    /// The chosen profile's name.
    profile: String,
    /// The policy entry's `allow_env`.
    allow_env: Vec<String>,
    workspace_dir: PathBuf,
    /// The job's audit log, and where this step's records begin in it.
    audit_path: PathBuf,
    offset: u64,
}

/// Finds the step's policy entry, its secrets and its runner files, and makes its spec. An
/// error here means the step is not run (and there is nothing to do after it).
fn locate(req: StepRequest) -> Result<(Spec, Located), RunError> {
    let Some(dir) = state::state_dir(req.state_dir.as_deref()) else {
        return Err(state(
            "no state directory: STEPJAIL_STATE and RUNNER_TEMP are unset (add the stepjail action before this step, or pass --state-dir)",
        ));
    };
    let expected = env(state::DIGEST_VAR);
    let frozen = state::load(&dir, expected.as_deref()).map_err(state)?;
    let policy_path = dir.join(state::POLICY_FILE);
    let label = format!(
        "frozen policy {} (from {})",
        policy_path.display(),
        frozen.state.policy_source
    );
    let job = env("GITHUB_JOB").unwrap_or_default();
    let step = req
        .step_id
        .clone()
        .or_else(|| env("GITHUB_ACTION"))
        .unwrap_or_default();
    let policy =
        Policy::parse_frozen(&policy_path, &frozen.policy, &label, &job, &step).map_err(state)?;
    let chosen = policy.for_step(&job, &step)?;
    let shown = format!("{job}/{step}");
    if req.verbose {
        say!(
            "stepjail: step {shown}: profile {} ({})",
            chosen.profile.name(),
            if chosen.entry.is_some() {
                "from the policy"
            } else {
                "the policy's default"
            }
        );
    }
    let secrets_path = dir.join(state::SECRETS_FILE);
    let file_secrets = if secrets_path.exists() {
        Some(crate::secrets::load_file(&secrets_path).map_err(state)?)
    } else {
        None
    };
    let workspace = env("GITHUB_WORKSPACE")
        .map(PathBuf::from)
        .filter(|w| w.is_dir())
        .unwrap_or_else(|| PathBuf::from("."));
    let workspace_dir = std::fs::canonicalize(&workspace).unwrap_or_else(|_| workspace.clone());
    let state_real = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    // The step's file-command files, wherever the runner put them (GitHub: under
    // RUNNER_TEMP/_runner_file_commands; act: its own workflow directory). The runner names
    // them; each must be a plain file of its own outside anything the step could replace.
    let mut files: Vec<PathBuf> = Vec::new();
    for var in FILE_COMMANDS {
        let Some(p) = env(var) else { continue };
        let refused = |why: &dyn std::fmt::Display| {
            Err(state(format!(
                "{var}={}: {why}; the step is not run",
                report::safe_path(&p)
            )))
        };
        match filecmd::step_file(Path::new(&p)) {
            Ok(Some(real)) if real.starts_with(&state_real) => {
                return refused(&"it lies in stepjail's own state directory");
            }
            Ok(Some(real)) if real.starts_with(&workspace_dir) => {
                return refused(&format!(
                    "it lies inside the workspace {}, which the step can write",
                    workspace_dir.display()
                ));
            }
            Ok(Some(real)) => files.push(real),
            Ok(None) => {} // not created by the runner: nothing to bind
            Err(e) => return refused(&e),
        }
    }
    // The runner's scratch directory, when there is one to reduce.
    let runner_temp = env("RUNNER_TEMP")
        .map(PathBuf::from)
        .filter(|t| t.is_dir())
        .map(|t| std::fs::canonicalize(&t).unwrap_or(t));
    let commands = runner_temp
        .as_ref()
        .map(|t| t.join("_runner_file_commands"));
    let skeleton = Skeleton {
        // The script (whatever argument names a file in RUNNER_TEMP) and the event's payload
        // (`GITHUB_EVENT_PATH`, public data scripts often read): never stepjail's own state
        // (whatever the shell line names), nor another step's file-command file.
        read_only: runner_temp
            .as_ref()
            .map(|t| {
                req.command
                    .iter()
                    .skip(1)
                    .map(PathBuf::from)
                    .chain(env("GITHUB_EVENT_PATH").map(PathBuf::from))
                    .filter_map(|a| std::fs::canonicalize(a).ok())
                    .filter(|p| p.starts_with(t) && p.is_file() && !p.starts_with(&state_real))
                    .filter(|p| commands.as_ref().is_none_or(|c| !p.starts_with(c)))
                    .collect()
            })
            .unwrap_or_default(),
        read_write: files,
        dir: runner_temp,
    };
    let mut hidden = vec![dir.clone()];
    if let Some(c) = commands {
        // Every step's file-command files: this step's own are bound back on top.
        hidden.push(c);
    }
    let mode = match frozen.state.mode {
        NetworkMode::Audit => Some(NetworkMode::Audit),
        // `enforce`: each step's profile as written (`state::load` refuses `none`).
        _ => None,
    };
    let audit_path = dir.join(state::AUDIT_FILE);
    let offset = std::fs::metadata(&audit_path).map(|m| m.len()).unwrap_or(0);
    let mut pass: Vec<String> = FILE_COMMANDS.iter().map(|s| s.to_string()).collect();
    pass.push("GITHUB_ACTION".into());
    pass.push("GITHUB_EVENT_PATH".into());
    pass.extend(req.pass.iter().cloned());
    let located = Located {
        shown,
        profile: chosen.profile.name().to_string(),
        allow_env: chosen.allow_env.clone(),
        workspace_dir,
        audit_path: audit_path.clone(),
        offset,
    };
    let spec = Spec {
        profile: chosen.profile,
        workspace,
        user: None,
        audit_log: Some(audit_path.clone()),
        mode,
        resolver: env("STEPJAIL_RESOLVER").and_then(|r| r.parse().ok()),
        upstream_proxy: env("STEPJAIL_UPSTREAM_PROXY"),
        upstream_from_env: env("STEPJAIL_UPSTREAM_PROXY_FROM_ENV")
            .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes")),
        file_secrets,
        no_mask: false,
        verbose: req.verbose,
        command: req.command,
        ci: Some(CiStep {
            skeleton: Some(skeleton),
            hidden,
            pass,
            set: req.set,
            job,
            step,
        }),
    };
    Ok((spec, located))
}

/// Prepares and launches the step; returns what the after-step needs, whether or not the step
/// could be launched, with the outcome.
fn launch(spec: Spec, at: &Located) -> (Finished, Result<crate::step::Outcome, RunError>) {
    let mut finished = Finished {
        run_id: crate::step::new_run_id(),
        profile: at.profile.clone(),
        mode: None,
        writable: Vec::new(),
    };
    let result = crate::step::prepare(spec, &Host::current()).and_then(|prepared| {
        finished.run_id = prepared.run_id().to_string();
        finished.profile = prepared.profile_name().to_string();
        finished.mode = Some(prepared.mode());
        finished.writable = prepared.writable().to_vec();
        prepared.launch()
    });
    (finished, result)
}

/// What must follow the step before the runner reads its files: file commands sanitized,
/// annotations, the summary section. Returns the step's code, or the error that stopped it.
fn after_step(
    at: &Located,
    finished: Finished,
    result: Result<crate::step::Outcome, RunError>,
) -> Result<i32, RunError> {
    let Located {
        shown,
        allow_env,
        workspace_dir,
        audit_path,
        offset,
        ..
    } = at;
    let (mut code, error) = match result {
        Ok(outcome) => (outcome.code, None),
        Err(e) => (e.exit_code(), Some(e)),
    };

    // File commands: what this step leaves for later steps. Names and paths come from the
    // step: reduced to plain characters before they reach annotations and the summary.
    // (title, annotation, summary line, audit event) per removal.
    let mut notes: Vec<(&str, String, String, FileCommand)> = Vec::new();
    let mut discarded = false;
    let mut discard = |file: &str, e: &dyn std::fmt::Display| {
        discarded = true;
        (
            if file == "GITHUB_ENV" {
                "stepjail discarded GITHUB_ENV"
            } else {
                "stepjail discarded GITHUB_PATH"
            },
            format!("step {shown}: {e}; nothing it wrote to {file} is kept"),
            format!("{file}: all of it ({e})"),
            FileCommand {
                file: file.to_string(),
                name: String::new(),
                line: 0,
                reason: e.to_string(),
            },
        )
    };
    if let Some(p) = env("GITHUB_ENV") {
        match filecmd::sanitize_env_file(Path::new(&p), allow_env) {
            Ok(s) => notes.extend(s.removed.iter().map(|r| {
                let name = report::safe_path(&r.name);
                (
                    "stepjail removed a GITHUB_ENV entry",
                    format!(
                        "step {shown} wrote {name} to GITHUB_ENV (line {}): {}; removed, later steps will not see it (allow it by name with `allow_env` in the policy if it is intended)",
                        r.line, r.reason
                    ),
                    format!("GITHUB_ENV: {name} (line {}): {}", r.line, r.reason),
                    FileCommand {
                        file: "GITHUB_ENV".into(),
                        name: r.name.clone(),
                        line: r.line as u64,
                        reason: r.reason.clone(),
                    },
                )
            })),
            Err(e) => notes.push(discard("GITHUB_ENV", &e)),
        }
    }
    if let Some(p) = env("GITHUB_PATH") {
        // Directories sandboxed steps may write: never on the PATH of later steps.
        let mut roots = finished.writable.clone();
        roots.push(workspace_dir.clone());
        match filecmd::sanitize_path_file(Path::new(&p), SHADOWED, &roots) {
            Ok((_, removed)) => notes.extend(removed.iter().map(|r| {
                let entry = report::safe_path(&r.entry);
                (
                    "stepjail removed a GITHUB_PATH entry",
                    format!(
                        "step {shown} added {entry} to GITHUB_PATH (line {}): {}; removed",
                        r.line, r.reason
                    ),
                    format!("GITHUB_PATH: {entry} (line {}): {}", r.line, r.reason),
                    FileCommand {
                        file: "GITHUB_PATH".into(),
                        name: r.entry.clone(),
                        line: r.line as u64,
                        reason: r.reason.clone(),
                    },
                )
            })),
            Err(e) => notes.push(discard("GITHUB_PATH", &e)),
        }
    }
    let mut removed_lines = Vec::new();
    // Removals go to the job's audit log too, under the step's run id: they are attempts.
    let log = AuditLog::open(audit_path, &finished.run_id)
        .inspect_err(|e| say!("stepjail: opening the audit log: {e}"))
        .ok();
    for (title, message, line, event) in notes {
        println!("{}", report::command("error", title, &message));
        removed_lines.push(line);
        if let Some(log) = &log
            && let Err(e) = log.write(Event::FileCommand(event))
        {
            say!("stepjail: writing the audit log: {e}");
        }
    }
    if discarded && code == 0 {
        // The runner would have failed the step on a file it cannot parse.
        code = crate::exit::FAILURE;
    }

    // Programs on the runner's PATH that this step could have replaced: later unsandboxed
    // steps (and the runner resolving `shell:`) would run them. Worth a warning.
    if let Some(path) = env("PATH") {
        for dir in std::env::split_paths(&path) {
            let real = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
            let inside = |w: &&PathBuf| {
                real.starts_with(std::fs::canonicalize(w).unwrap_or_else(|_| (*w).clone()))
            };
            if let Some(w) = finished.writable.iter().find(inside) {
                println!(
                    "{}",
                    report::command(
                        "warning",
                        "stepjail: writable PATH directory",
                        &format!(
                            "step {shown}: profile '{}' makes {} writable, and {} is on the runner's PATH: this step could put programs there that later unsandboxed steps run",
                            finished.profile,
                            w.display(),
                            dir.display()
                        ),
                    )
                );
            }
        }
    }

    // What the step did on the network: this run's records only.
    let records = read_from(audit_path, *offset);
    let rep = StepReport::from_records(&records, &finished.run_id);
    for a in report::annotations(&rep, shown, &finished.profile, finished.mode) {
        println!("{a}");
    }
    if let Some(p) = env("GITHUB_STEP_SUMMARY") {
        let section = report::summary(
            &rep,
            &Header {
                step: shown,
                profile: &finished.profile,
                mode: finished.mode,
                exit_code: code,
                removed: &removed_lines,
            },
        );
        if let Err(e) = report::append_summary(Path::new(&p), &section) {
            say!("stepjail: writing the step summary: {e}");
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(code),
    }
}

/// What the after-step knows of the run.
struct Finished {
    /// The run id of the step's audit records.
    run_id: String,
    /// The resolved profile's name (the chosen one's, when the step was not prepared).
    profile: String,
    /// The network mode, when the step was prepared.
    mode: Option<NetworkMode>,
    /// The paths the step could write (the profile's `read_write`, resolved).
    writable: Vec<PathBuf>,
}

/// The records appended to the log at `path` after `offset` (a record boundary).
pub(crate) fn read_from(path: &Path, offset: u64) -> Vec<crate::audit::Record> {
    use std::io::{Read as _, Seek as _};
    let Ok(mut f) = crate::host_file::open_read(path) else {
        return Vec::new();
    };
    let mut bytes = Vec::new();
    if f.seek(std::io::SeekFrom::Start(offset)).is_err() || f.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    match crate::audit::parse_log(&bytes, path) {
        Ok(log) => log.records,
        Err(e) => {
            say!("stepjail: reading the audit log back: {e}");
            Vec::new()
        }
    }
}
