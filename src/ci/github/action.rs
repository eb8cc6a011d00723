//! `stepjail action`: run a JavaScript action (`runs.using: node*`) inside the sandbox, under
//! the policy entry of a step id, as `stepjail step` runs a `run:` step.
//!
//! GitHub's `shell:` covers `run:` steps only; a `uses:` step runs unsandboxed. The
//! `run-action` composite action fetches an action's code and calls this, so the action's
//! `main` script (the code the tj-actions/changed-files payload was in) runs with its own
//! allowlist, no runner memory, no other steps' files. Only `main` runs: `pre` and `post`
//! scripts are reported and skipped; outputs are written to the wrapping step's
//! `GITHUB_OUTPUT` (sanitized like any step's file commands) but a composite action cannot
//! re-export them under the wrapped action's names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::report;
use super::step::{self, StepRequest};
use crate::step::RunError;

/// The runner's default variables an action's toolkit reads for its context (`@actions/github`
/// builds `context` from them). None is a credential: `GITHUB_TOKEN` and the `ACTIONS_*`
/// tokens are never passed unless the policy declares them as secrets.
pub const ACTION_CONTEXT: &[&str] = &[
    "GITHUB_ACTOR",
    "GITHUB_ACTOR_ID",
    "GITHUB_API_URL",
    "GITHUB_BASE_REF",
    "GITHUB_EVENT_NAME",
    "GITHUB_GRAPHQL_URL",
    "GITHUB_HEAD_REF",
    "GITHUB_REF",
    "GITHUB_REF_NAME",
    "GITHUB_REF_PROTECTED",
    "GITHUB_REF_TYPE",
    "GITHUB_REPOSITORY",
    "GITHUB_REPOSITORY_ID",
    "GITHUB_REPOSITORY_OWNER",
    "GITHUB_REPOSITORY_OWNER_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_NUMBER",
    "GITHUB_SERVER_URL",
    "GITHUB_SHA",
    "GITHUB_TRIGGERING_ACTOR",
    "GITHUB_WORKFLOW",
    "GITHUB_WORKFLOW_REF",
    "GITHUB_WORKFLOW_SHA",
    "GITHUB_WORKSPACE",
    "RUNNER_ARCH",
    "RUNNER_DEBUG",
    "RUNNER_ENVIRONMENT",
    "RUNNER_NAME",
    "RUNNER_OS",
    "RUNNER_TEMP",
    "RUNNER_TOOL_CACHE",
];

/// The parts of `action.yml` stepjail reads; everything else (name, branding, outputs...) is
/// ignored.
#[derive(Debug, Deserialize)]
struct ActionYml {
    #[serde(default)]
    inputs: BTreeMap<String, Option<InputYml>>,
    runs: RunsYml,
}

#[derive(Debug, Default, Deserialize)]
struct InputYml {
    default: Option<serde_json::Value>,
    #[serde(default)]
    required: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RunsYml {
    using: String,
    main: Option<String>,
    pre: Option<String>,
    post: Option<String>,
}

pub struct ActionRequest {
    pub state_dir: Option<PathBuf>,
    pub verbose: bool,
    /// The policy key (`jobs.<job>.steps.<step>`) the action runs under.
    pub step: String,
    /// The action's directory (holding `action.yml`).
    pub dir: PathBuf,
    /// Inputs given (`with:`), by name as written.
    pub inputs: Vec<(String, String)>,
}

fn fail(msg: impl std::fmt::Display) -> Result<i32, RunError> {
    Err(RunError::Action(msg.to_string()))
}

/// `INPUT_<NAME>` as the runner names it: upper case, spaces as `_` (hyphens kept).
pub fn input_var(name: &str) -> String {
    format!("INPUT_{}", name.trim().replace(' ', "_").to_uppercase())
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Runs the action; returns stepjail's exit code.
pub fn run(req: ActionRequest) -> Result<i32, RunError> {
    let dir = match std::fs::canonicalize(&req.dir) {
        Ok(d) if d.is_dir() => d,
        _ => return fail(format!("{}: not a directory", req.dir.display())),
    };
    if let Some(t) = std::env::var_os("RUNNER_TEMP")
        .map(PathBuf::from)
        .and_then(|t| std::fs::canonicalize(t).ok())
        && dir.starts_with(&t)
    {
        return fail(format!(
            "{}: inside RUNNER_TEMP, which steps cannot see; fetch the action somewhere else (run-action uses $GITHUB_WORKSPACE/../_stepjail_actions)",
            dir.display()
        ));
    }
    let Some(file) = ["action.yml", "action.yaml"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
    else {
        return fail(format!("{}: no action.yml or action.yaml", dir.display()));
    };
    let action: ActionYml = match crate::policy::read_yaml(&file) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let using = action.runs.using.trim().to_ascii_lowercase();
    if !using.starts_with("node") {
        return fail(format!(
            "{}: `runs.using: {using}`; only JavaScript actions (node12 .. node24) can run in stepjail (composite actions: write their `run:` steps into the workflow; Docker actions are not supported)",
            file.display()
        ));
    }
    let Some(main) = action.runs.main.as_deref() else {
        return fail(format!("{}: no `runs.main`", file.display()));
    };
    let main_path = match std::fs::canonicalize(dir.join(main)) {
        Ok(p) if p.starts_with(&dir) && p.is_file() => p,
        _ => {
            return fail(format!(
                "{}: `runs.main: {main}` is not a file inside the action",
                file.display()
            ));
        }
    };
    for (what, script) in [("pre", &action.runs.pre), ("post", &action.runs.post)] {
        if let Some(s) = script {
            println!(
                "{}",
                report::command(
                    "warning",
                    "stepjail action",
                    &format!(
                        "the action's `{what}` script ({s}) is not run: stepjail runs `main` only"
                    ),
                )
            );
        }
    }
    // Inputs: given values, else declared defaults (expressions such as `${{ github.token }}`
    // cannot be evaluated here and are left unset: pass such values in `with:`).
    let mut set: Vec<(String, String)> = Vec::new();
    let given = |name: &str| {
        req.inputs
            .iter()
            .rev()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name.trim()))
            .map(|(_, v)| v.clone())
    };
    for (name, spec) in &action.inputs {
        let spec = spec.as_ref();
        let value = given(name).or_else(|| {
            spec.and_then(|s| s.default.as_ref())
                .and_then(scalar)
                .filter(|d| !d.contains("${{"))
        });
        match value {
            Some(v) => set.push((input_var(name), v)),
            None if spec
                .and_then(|s| s.required.as_ref())
                .and_then(scalar)
                .is_some_and(|r| r == "true") =>
            {
                println!(
                    "{}",
                    report::command(
                        "warning",
                        "stepjail action",
                        &format!("input `{name}` is required by the action and was not given"),
                    )
                );
            }
            None => {}
        }
    }
    for (name, _) in &req.inputs {
        if !action
            .inputs
            .keys()
            .any(|k| k.trim().eq_ignore_ascii_case(name.trim()))
        {
            println!(
                "{}",
                report::command(
                    "warning",
                    "stepjail action",
                    &format!("unexpected input `{name}`: the action does not declare it"),
                )
            );
            set.push((input_var(name), given(name).unwrap_or_default()));
        }
    }
    set.push(("GITHUB_ACTION_PATH".into(), dir.display().to_string()));
    step::run(StepRequest {
        state_dir: req.state_dir,
        verbose: req.verbose,
        command: vec!["node".into(), main_path.display().to_string()],
        step_id: Some(req.step),
        set,
        pass: ACTION_CONTEXT.iter().map(|s| s.to_string()).collect(),
    })
}

/// Reads `with:`-style inputs: a YAML mapping of names to scalars (the `with` input of
/// `run-action`, as the user wrote it).
pub fn parse_inputs(text: &str, label: &str) -> Result<Vec<(String, String)>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let map: BTreeMap<String, serde_json::Value> =
        crate::policy::parse_yaml(text, label).map_err(|e| e.to_string())?;
    map.into_iter()
        .map(|(k, v)| match scalar(&v) {
            Some(s) => Ok((k, s)),
            None if v.is_null() => Ok((k, String::new())),
            None => Err(format!(
                "{label}: input `{k}` is not a string, number or boolean"
            )),
        })
        .collect()
}

/// `NAME=VALUE` from the command line.
pub fn parse_input_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}`: expected NAME=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_names_as_the_runner_writes_them() {
        assert_eq!(input_var("who"), "INPUT_WHO");
        assert_eq!(input_var("num-octocats"), "INPUT_NUM-OCTOCATS");
        assert_eq!(input_var("my input"), "INPUT_MY_INPUT");
    }

    #[test]
    fn with_inputs_parse() {
        let i = parse_inputs("who: stepjail\ncount: 3\nflag: true\nempty:\n", "with").unwrap();
        assert_eq!(
            i,
            vec![
                ("count".into(), "3".into()),
                ("empty".into(), "".into()),
                ("flag".into(), "true".into()),
                ("who".into(), "stepjail".into()),
            ]
        );
        assert_eq!(
            parse_inputs("a: [1]\n", "with").unwrap_err(),
            "with: input `a` is not a string, number or boolean"
        );
        assert_eq!(
            parse_input_arg("=x").unwrap_err(),
            "`=x`: expected NAME=VALUE"
        );
        assert_eq!(
            parse_input_arg("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
    }
}
