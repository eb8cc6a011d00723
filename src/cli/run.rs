//! `stepjail run [--profile P] [--workspace DIR] [--user U] [-v] -- COMMAND...`

use std::path::PathBuf;

use crate::policy::model::Vars;
use crate::sandbox::{self, host, plan::Plan};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A built-in profile name (see `stepjail profiles`) or a path to a profile file.
    #[arg(long, short = 'p', default_value = "default")]
    pub profile: String,
    /// The directory the step may write to ($WORKSPACE); defaults to the current directory.
    #[arg(long, short = 'w')]
    pub workspace: Option<PathBuf>,
    /// When stepjail runs as root: the user (name or uid[:gid]) to run the step as.
    /// Defaults to the user who ran sudo, else root (without any capability).
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Print what the sandbox applied (landlock ABI, identity) to stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    eprintln!("stepjail: {msg}");
    code
}

pub fn run(args: RunArgs) -> i32 {
    let profile = match crate::policy::load(&args.profile) {
        Ok(p) => p,
        Err(e) => return fail(super::EXIT_USAGE, e),
    };
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let identity = match host::identity(args.user.as_deref(), &env) {
        Ok(i) => i,
        Err(e) => return fail(super::EXIT_USAGE, e),
    };
    let workspace = args.workspace.clone().unwrap_or_else(|| PathBuf::from("."));
    let workspace = match std::fs::canonicalize(&workspace) {
        Ok(w) if w.is_dir() => w,
        _ => {
            return fail(
                super::EXIT_USAGE,
                format!("the workspace {} is not a directory", workspace.display()),
            );
        }
    };
    let var = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| PathBuf::from(v))
    };
    let vars = Vars {
        workspace: Some(workspace.clone()),
        home: identity.home.clone(),
        tmpdir: var("TMPDIR"),
        runner_temp: var("RUNNER_TEMP"),
    };
    let resolved = match profile.resolve(&vars) {
        Ok(r) => r,
        Err(e) => return fail(super::EXIT_USAGE, e),
    };
    let paths = resolved
        .read_write
        .iter()
        .chain(&resolved.read_only)
        .chain(&resolved.hidden);
    let facts = match host::facts(paths, env) {
        Ok(f) => f,
        Err(e) => return fail(sandbox::EXIT_SETUP, e),
    };
    let plan = match Plan::build(&resolved, identity, &workspace, args.command, &facts) {
        Ok(p) => p,
        Err(e) => return fail(super::EXIT_USAGE, e),
    };
    if args.verbose {
        let id = &plan.identity;
        eprintln!(
            "stepjail: profile {} ({}), step runs as uid {} gid {}",
            plan.profile_name, profile.source, id.uid, id.gid
        );
    }
    match sandbox::run(&plan) {
        Ok(outcome) => {
            if args.verbose {
                for line in &outcome.info {
                    eprintln!("stepjail: {line}");
                }
            }
            if outcome.timed_out {
                let t = plan.timeout.unwrap_or_default();
                eprintln!(
                    "stepjail: the step timed out after {}s and was killed",
                    t.as_secs_f64()
                );
            }
            outcome.code
        }
        Err(e) => fail(e.exit_code(), e),
    }
}
