//! `run_script_step`: one step of the job in a fresh sandbox.
//!
//! What the runner sends (actions/runner `Handlers/StepHost.cs` `ContainerStepHost.ExecuteAsync`
//! -> `ContainerHookManager.RunScriptStepAsync`): `entryPoint` (the shell, e.g. `bash`, or the
//! runner's node `/__e/node24/bin/node` for a JavaScript action), `entryPointArgs` (the script
//! `/__w/_temp/<guid>.sh` with the shell's flags, or the action's `main`), the step's whole
//! environment with every value translated to container paths, `prependPath` (the job's
//! `GITHUB_PATH` entries, newest first) and `workingDirectory`. The docker hook runs it as
//! `docker exec -i --workdir W -e K... CONTAINER entryPoint args` with
//! `PATH=prependPath:containerPATH` (runner-container-hooks `packages/docker/src/
//! dockerCommands/container.ts` `containerExecStep`); here the job runs on the host's root
//! filesystem, so container paths are translated back to the host paths the runner made them
//! from.
//!
//! Two halves. The first (the hook as the runner started it) builds the step's environment and
//! re-executes stepjail with it, in the step's working directory; the second runs the step
//! through [`launch`] and then does what `stepjail step` does after a step. The re-execution
//! exists only because today's pipeline (`cli::run::execute`) reads the step's environment
//! from its own process; see [`launch`].

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::{Operator, RepoPolicy};
use super::exit::{EXIT_FAILED, fail};
use super::job::{self, JobState};
use super::protocol::{HookInput, ScriptStepArgs};
use crate::audit::{AuditLog, Event, FileCommand};
use crate::ci::github::action::ACTION_CONTEXT;
use crate::ci::github::filecmd;
use crate::ci::github::report::{self, Header, StepReport};
use crate::ci::github::step::{FILE_COMMANDS, SHADOWED, read_from};
use crate::policy::model::NetworkMode;
use crate::policy::model::Profile;
use crate::policy::{Chosen, Policy};
use crate::sandbox::plan::Skeleton;
use crate::step::{CiStep, Host, Spec};

type Vars = Vec<(String, String)>;

/// What the first half hands the second, in a file of the job directory (deleted on reading).
#[derive(Debug, Serialize, Deserialize)]
struct StepInput {
    job_dir: PathBuf,
    entry_point: String,
    args: Vec<String>,
    /// Variables of the step kept out of stepjail's own environment (they would change how
    /// stepjail itself loads or runs); given to the step if its profile passes them.
    held: Vec<(String, String)>,
}

/// Whether variable `name` of the step must not be in stepjail's own environment: the names
/// `stepjail step` refuses in `GITHUB_ENV` (loader, interpreter, proxy, CA, `STEPJAIL_*`)
/// except `PATH`, and what else the C library or stepjail read at start (the workflow sets a
/// step's variables; stepjail runs outside the sandbox).
fn held_from_supervisor(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    (filecmd::is_dangerous(name) && upper != "PATH")
        || [
            "MALLOC_",
            "RUST_",
            "STEPJAIL_",
            "LOCPATH",
            "NLSPATH",
            "HOSTALIASES",
            "LOCALDOMAIN",
            "RES_OPTIONS",
            "TZDIR",
            "TMPDIR",
        ]
        .iter()
        .any(|p| upper.starts_with(p))
}

pub(super) fn first_half(input: &HookInput) -> i32 {
    let dir = match job::dir_from_state(input.state.as_ref()) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let state = match job::load(&dir) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let args: ScriptStepArgs = match input.args.clone().map(serde_json::from_value) {
        Some(Ok(a)) => a,
        Some(Err(e)) => return fail(format!("run_script_step arguments: {e}")),
        None => return fail("run_script_step without arguments"),
    };
    let host = |v: &str| state.to_host(v);
    // The container's variables, then the step's: `docker exec -e` over the container's env.
    let mut env: BTreeMap<String, String> = state
        .container_env
        .iter()
        .map(|(k, v)| (k.clone(), host(v)))
        .collect();
    for (k, v) in args.environment_variables.iter().flatten() {
        env.insert(k.clone(), host(v.as_deref().unwrap_or_default()));
    }
    let prepend: Vec<String> = args
        .prepend_path
        .as_ref()
        .map(|p| p.entries())
        .unwrap_or_default()
        .iter()
        .filter(|e| !e.is_empty())
        .map(|e| host(e))
        .collect();
    let base = crate::sandbox::plan::DEFAULT_PATH;
    if !prepend.is_empty() {
        env.insert("PATH".into(), format!("{}:{base}", prepend.join(":")));
    } else {
        env.entry("PATH".into()).or_insert_with(|| base.to_string());
    }
    // The values the sandbox's paths are made of come from the job, never from the step's
    // variables (which the workflow sets): the container's `HOME`, which the runner always
    // makes `RUNNER_TEMP/_github_home` (actions/runner `ContainerOperationProvider.cs`
    // `MountWellKnownDirectories`), the workspace and `RUNNER_TEMP` of `prepare_job`.
    env.insert(
        "HOME".into(),
        state.runner_temp.join("_github_home").display().to_string(),
    );
    env.insert(
        "GITHUB_WORKSPACE".into(),
        state.workspace.display().to_string(),
    );
    env.insert(
        "RUNNER_TEMP".into(),
        state.runner_temp.display().to_string(),
    );
    let (held, env): (Vars, Vars) = env.into_iter().partition(|(k, _)| held_from_supervisor(k));
    let cwd = PathBuf::from(host(
        args.working_directory
            .as_deref()
            .unwrap_or(&state.workspace.display().to_string()),
    ));
    if !cwd.is_dir() {
        return fail(format!(
            "the step's working directory {} does not exist",
            report::safe_path(&cwd.display().to_string())
        ));
    }
    let step = StepInput {
        job_dir: dir.clone(),
        entry_point: host(&args.entry_point),
        args: args.entry_point_args.iter().map(|a| host(a)).collect(),
        held,
    };
    let mut rand = [0u8; 8];
    if getrandom::fill(&mut rand).is_err() {
        return fail("no randomness for the step's file name");
    }
    let name = format!(
        "step-{}.json",
        rand.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let bytes = serde_json::to_vec(&step).unwrap_or_default();
    if let Err(e) = job::write(&dir, &name, &bytes) {
        return fail(format!("writing {}: {e}", dir.join(&name).display()));
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("finding stepjail's own binary: {e}")),
    };
    // Today's pipeline reads the step's environment from this process: become the step's
    // environment (see `launch`). The step's stdin is not the runner's JSON.
    let err = std::process::Command::new(exe)
        .args(["hooks", "--in-step"])
        .arg(dir.join(&name))
        .env_clear()
        .envs(env)
        .current_dir(&cwd)
        .stdin(std::process::Stdio::null())
        .exec();
    let _ = std::fs::remove_file(dir.join(&name));
    fail(format!("re-executing stepjail for the step: {err}"))
}

/// Reads the repository's policy file: the copy frozen in the job directory, else the file in
/// the workspace (frozen now, for the rest of the job: a later step cannot change it).
fn repository_policy(dir: &Path, state: &JobState, rel: &Path) -> Result<Option<Policy>, String> {
    let in_ws = state.workspace.join(rel);
    let label = in_ws.display().to_string();
    let text = match job::read(dir, job::REPOSITORY_FILE) {
        Ok(b) => String::from_utf8(b).map_err(|_| format!("{label}: not UTF-8"))?,
        Err(_) => {
            // Through no link: the workspace is the steps' to write.
            let Ok(bytes) = job::read(
                in_ws.parent().unwrap_or(&state.workspace),
                &in_ws.file_name().unwrap_or_default().to_string_lossy(),
            ) else {
                return Ok(None);
            };
            if bytes.len() as u64 > 1 << 20 {
                return Err(format!("{label}: larger than 1 MiB"));
            }
            job::write(dir, job::REPOSITORY_FILE, &bytes)
                .map_err(|e| format!("freezing {label}: {e}"))?;
            println!(
                "stepjail: the repository's policy {label} is frozen for the rest of the job; it can narrow, never widen, the operator's"
            );
            String::from_utf8(bytes).map_err(|_| format!("{label}: not UTF-8"))?
        }
    };
    Policy::parse(&in_ws, &text, &label)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// What [`launch`] runs: one step, its profile and its place in the job.
struct Launch {
    profile: Profile,
    workspace: PathBuf,
    user: Option<String>,
    audit_log: PathBuf,
    resolver: Option<std::net::SocketAddr>,
    secrets: Option<crate::secrets::SecretValues>,
    command: Vec<String>,
    ci: CiStep,
}

/// How a launched (or refused) step ended: what the after-step needs.
struct Finished {
    /// The exit code stepjail ends with.
    code: i32,
    /// The run id of the step's audit records.
    run_id: String,
    /// The resolved profile's name and network mode (empty and `None` when it was not prepared).
    profile: String,
    mode: Option<NetworkMode>,
    /// The paths the step could write (the profile's `read_write`, resolved).
    writable: Vec<PathBuf>,
}

/// THE adapter to the run pipeline: prepares and launches one step in a fresh sandbox and says
/// how it ended; an error that stopped it is said here (the after-step still runs).
///
/// `prepare` takes the step's environment from this process (the first half re-executed
/// stepjail with it); passing it in `Host` instead would let that re-execution go.
fn launch(l: Launch) -> Finished {
    let spec = Spec {
        profile: l.profile,
        workspace: l.workspace,
        user: l.user,
        audit_log: Some(l.audit_log),
        mode: None,
        resolver: l.resolver,
        upstream_proxy: None,
        upstream_from_env: false,
        file_secrets: l.secrets,
        no_mask: false,
        verbose: false,
        command: l.command,
        ci: Some(l.ci),
    };
    let mut finished = Finished {
        code: 0,
        run_id: crate::step::new_run_id(),
        profile: String::new(),
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
    finished.code = match result {
        Ok(outcome) => outcome.code,
        Err(e) => crate::ci::github::report::say_error(&e, true),
    };
    finished
}

pub(super) fn second_half(file: &Path) -> i32 {
    let Some(dir) = file.parent() else {
        return fail("--in-step needs a file in a job directory");
    };
    let checked = job::dir_from_state(Some(
        &serde_json::json!({ job::STATE_KEY: dir.display().to_string() }),
    ));
    let dir = match checked {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let name = file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let bytes = job::read(&dir, &name);
    let _ = std::fs::remove_file(dir.join(&name));
    let input: StepInput = match bytes
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<StepInput>(&b).map_err(|e| e.to_string()))
    {
        Ok(i) if i.job_dir == dir => i,
        Ok(_) => return fail("the step's input names another job"),
        Err(e) => return fail(format!("{}: {e}", file.display())),
    };
    let state = match job::load(&dir) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let op_path = dir.join(job::OPERATOR_FILE);
    let op = match job::read(&dir, job::OPERATOR_FILE)
        .map_err(|e| e.to_string())
        .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
        .and_then(|t| {
            Operator::parse_frozen(&op_path, &t, &format!("{} (frozen)", op_path.display()))
                .map_err(|e| e.to_string())
        }) {
        Ok(o) => o,
        Err(e) => return fail(format!("the operator's file frozen at job start: {e}")),
    };
    let step_id = std::env::var("GITHUB_ACTION").unwrap_or_default();
    let shown = format!("{}/{step_id}", state.job);
    let policy = match op.policy_for(&state.repository, None) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let mut chosen: Chosen = match policy.for_step(&state.job, &step_id) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let RepoPolicy::Narrow(rel) = &op.repository_policy {
        let narrowed = repository_policy(&dir, &state, rel).and_then(|rp| match rp {
            Some(rp) => rp
                .for_step(&state.job, &step_id)
                .map_err(|e| e.to_string())
                .and_then(|rc| super::narrow::narrow(chosen.clone(), &rc)),
            None => Ok(chosen.clone()),
        });
        chosen = match narrowed {
            Ok(c) => c,
            Err(e) => {
                return fail(format!(
                    "step {shown}: the repository's policy may only narrow the operator's: {e}; the step is not run"
                ));
            }
        };
    }
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    // Secrets: the operator's values, and the step's variables named like any secret this
    // repository's policy declares anywhere. Every name here is kept from steps that do not
    // declare it; the step's own declarations get their values.
    let mut secrets =
        crate::secrets::SecretValues::new("the operator's secrets and the step's variables");
    if let Some(f) = &op.secrets_file {
        match crate::secrets::load_file(f) {
            Ok(v) => {
                for n in v.names() {
                    secrets.insert(n.to_string(), v.get(n).unwrap_or_default().to_string());
                }
            }
            Err(e) => return fail(e),
        }
    }
    let mut declared: Vec<String> = Vec::new();
    let rules = policy
        .steps()
        .iter()
        .map(|r| (r.job.clone(), r.step.clone()));
    for (j, s) in rules.chain([(String::new(), String::new())]) {
        if let Ok(c) = policy.for_step(&j, &s) {
            declared.extend(c.profile.secrets().iter().map(|d| d.name.clone()));
        }
    }
    for name in declared {
        if !secrets.contains(&name)
            && let Some(v) = env.get(&name)
        {
            secrets.insert(name, v.clone());
        }
    }
    // The step's file-command files: in the runner's directory for them, plain files.
    let runner_temp =
        std::fs::canonicalize(&state.runner_temp).unwrap_or(state.runner_temp.clone());
    let commands = runner_temp.join("_runner_file_commands");
    let mut files = Vec::new();
    for var in FILE_COMMANDS {
        let Some(p) = env.get(*var).filter(|p| !p.is_empty()) else {
            continue;
        };
        match filecmd::step_file(Path::new(p)) {
            Ok(Some(real)) if real.parent() == Some(commands.as_path()) => files.push(real),
            Ok(Some(_)) => {
                return fail(format!(
                    "{var}={}: not in {}; the step is not run",
                    report::safe_path(p),
                    commands.display()
                ));
            }
            Ok(None) => {}
            Err(e) => {
                return fail(format!(
                    "{var}={}: {e}; the step is not run",
                    report::safe_path(p)
                ));
            }
        }
    }
    let job_root = dir.parent().map(Path::to_path_buf).unwrap_or(dir.clone());
    let skeleton = Skeleton {
        read_only: input
            .args
            .iter()
            .map(PathBuf::from)
            .chain(env.get("GITHUB_EVENT_PATH").map(PathBuf::from))
            .filter_map(|a| std::fs::canonicalize(a).ok())
            .filter(|p| p.starts_with(&runner_temp) && p.is_file())
            .filter(|p| !p.starts_with(&commands) && !p.starts_with(&job_root))
            .collect(),
        read_write: files,
        dir: Some(runner_temp.clone()),
    };
    let mut hidden = vec![job_root, commands, op.audit_dir.clone()];
    hidden.extend(op.secrets_file.iter().cloned());
    let mut pass: Vec<String> = FILE_COMMANDS.iter().map(|s| s.to_string()).collect();
    pass.extend(["GITHUB_ACTION".into(), "GITHUB_EVENT_PATH".into()]);
    let javascript = state.is_externals(&input.entry_point);
    if javascript {
        // A JavaScript action reads its inputs, its pre/post state and its context.
        pass.extend(ACTION_CONTEXT.iter().map(|s| s.to_string()));
        pass.extend(
            env.keys()
                .filter(|k| k.starts_with("INPUT_") || k.starts_with("STATE_"))
                .cloned(),
        );
        pass.extend(
            [
                "GITHUB_ACTION_PATH",
                "GITHUB_ACTION_REPOSITORY",
                "GITHUB_ACTION_REF",
            ]
            .map(String::from),
        );
    }
    let profile = &chosen.profile;
    let set: Vec<(String, String)> = input
        .held
        .iter()
        .filter(|(k, _)| profile.env().pass.iter().any(|p| p.matches(k)))
        .filter(|(k, _)| !crate::secrets::is_scrubbed(k, &profile.env().scrub, profile.secrets()))
        .cloned()
        .collect();
    let mut command = vec![input.entry_point.clone()];
    command.extend(input.args.iter().cloned());
    let offset = std::fs::metadata(&state.audit_log)
        .map(|m| m.len())
        .unwrap_or(0);
    let finished = launch(Launch {
        profile: chosen.profile.clone(),
        workspace: state.workspace.clone(),
        user: op.user.clone(),
        audit_log: state.audit_log.clone(),
        resolver: op.resolver,
        secrets: (!secrets.is_empty()).then_some(secrets),
        command,
        ci: CiStep {
            skeleton: Some(skeleton),
            hidden,
            pass,
            set,
            job: state.job.clone(),
            step: step_id.clone(),
        },
    });
    let code = after_step(&state, &shown, &chosen, &finished, &env, offset);
    // The step's own failure first; else a file command discarded whole fails it (the runner
    // would have failed it on a file it cannot parse).
    if finished.code != 0 {
        finished.code
    } else {
        code
    }
}

/// What `stepjail step` does once a step has exited, before the runner reads its files:
/// removes what would poison later steps from `GITHUB_ENV`/`GITHUB_PATH` (each removal an
/// annotation and an audit event), annotates denials and adds the step's section to its
/// summary. Returns non-zero when a file had to be discarded whole.
fn after_step(
    state: &JobState,
    shown: &str,
    chosen: &Chosen,
    finished: &Finished,
    env: &BTreeMap<String, String>,
    offset: u64,
) -> i32 {
    let mut notes: Vec<(String, String, FileCommand)> = Vec::new();
    let mut code = 0;
    let event = |file: &str, name: &str, line: usize, reason: &str| FileCommand {
        file: file.to_string(),
        name: name.to_string(),
        line: line as u64,
        reason: reason.to_string(),
    };
    if let Some(p) = env.get("GITHUB_ENV") {
        match filecmd::sanitize_env_file(Path::new(p), &chosen.allow_env) {
            Ok(s) => notes.extend(s.removed.iter().map(|r| {
                let name = report::safe_path(&r.name);
                (
                    format!(
                        "step {shown} wrote {name} to GITHUB_ENV (line {}): {}; removed, later steps will not see it",
                        r.line, r.reason
                    ),
                    format!("GITHUB_ENV: {name} (line {}): {}", r.line, r.reason),
                    event("GITHUB_ENV", &r.name, r.line, &r.reason),
                )
            })),
            Err(e) => {
                code = EXIT_FAILED;
                notes.push((
                    format!("step {shown}: {e}; nothing it wrote to GITHUB_ENV is kept"),
                    format!("GITHUB_ENV: all of it ({e})"),
                    event("GITHUB_ENV", "", 0, &e.to_string()),
                ));
            }
        }
    }
    if let Some(p) = env.get("GITHUB_PATH") {
        let mut roots = finished.writable.clone();
        roots.push(state.workspace.clone());
        match filecmd::sanitize_path_file(Path::new(p), SHADOWED, &roots) {
            Ok((_, removed)) => notes.extend(removed.iter().map(|r| {
                let entry = report::safe_path(&r.entry);
                (
                    format!(
                        "step {shown} added {entry} to GITHUB_PATH (line {}): {}; removed",
                        r.line, r.reason
                    ),
                    format!("GITHUB_PATH: {entry} (line {}): {}", r.line, r.reason),
                    event("GITHUB_PATH", &r.entry, r.line, &r.reason),
                )
            })),
            Err(e) => {
                code = EXIT_FAILED;
                notes.push((
                    format!("step {shown}: {e}; nothing it wrote to GITHUB_PATH is kept"),
                    format!("GITHUB_PATH: all of it ({e})"),
                    event("GITHUB_PATH", "", 0, &e.to_string()),
                ));
            }
        }
    }
    let log = AuditLog::open(&state.audit_log, &finished.run_id)
        .inspect_err(|e| say!("stepjail: opening the audit log: {e}"))
        .ok();
    let mut removed_lines = Vec::new();
    for (message, line, ev) in notes {
        println!(
            "{}",
            report::command("error", "stepjail removed a file command", &message)
        );
        removed_lines.push(line);
        if let Some(log) = &log
            && let Err(e) = log.write(Event::FileCommand(ev))
        {
            say!("stepjail: writing the audit log: {e}");
        }
    }
    let records = read_from(&state.audit_log, offset);
    let rep = StepReport::from_records(&records, &finished.run_id);
    for a in report::annotations(&rep, shown, &finished.profile, finished.mode) {
        println!("{a}");
    }
    if let Some(p) = env.get("GITHUB_STEP_SUMMARY") {
        let section = report::summary(
            &rep,
            &Header {
                step: shown,
                profile: &finished.profile,
                mode: finished.mode,
                exit_code: if finished.code != 0 {
                    finished.code
                } else {
                    code
                },
                removed: &removed_lines,
            },
        );
        if let Err(e) = report::append_summary(Path::new(p), &section) {
            say!("stepjail: writing the step summary: {e}");
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::held_from_supervisor;

    #[test]
    fn variables_that_change_how_stepjail_runs_are_held_from_it() {
        for name in [
            "LD_PRELOAD",
            "ld_library_path",
            "GLIBC_TUNABLES",
            "MALLOC_ARENA_MAX",
            "GCONV_PATH",
            "SSL_CERT_FILE",
            "HTTPS_PROXY",
            "STEPJAIL_UPSTREAM_PROXY",
            "RUST_MIN_STACK",
            "TMPDIR",
            "NODE_OPTIONS",
        ] {
            assert!(held_from_supervisor(name), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "GITHUB_ENV",
            "INPUT_WHO",
            "NPM_TOKEN",
            "CI",
            "LANG",
        ] {
            assert!(!held_from_supervisor(name), "{name}");
        }
    }
}
