//! `stepjail setup`: the GitHub action's setup step (see `ci::github::setup`).

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::ci::github::setup::{self, SetupRequest};
use crate::ci::github::state;
use crate::policy::model::NetworkMode;

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// The policy file (relative to the working directory, normally the workspace).
    #[arg(long, default_value = ".github/stepjail.yml")]
    pub policy: PathBuf,
    /// Read the policy from this git revision instead of the working tree (for pull requests:
    /// the base branch, `origin/main`, so a pull request cannot loosen its own policy).
    #[arg(long, value_name = "REV")]
    pub policy_ref: Option<String>,
    /// `enforce` each step's profile, or `audit`: allow everything and report what enforcing
    /// would deny.
    #[arg(long, default_value = "enforce", value_parser = PossibleValuesParser::new(["enforce", "audit"])
        .try_map(|m| m.parse::<NetworkMode>()))]
    pub mode: NetworkMode,
    /// The name of an environment variable holding the secrets as JSON
    /// (`${{ toJSON(secrets) }}`) or dotenv text.
    #[arg(long, value_name = "VAR")]
    pub secrets_env: Option<String>,
    /// A file holding the secrets (JSON or dotenv).
    #[arg(long, value_name = "FILE", conflicts_with = "secrets_env")]
    pub secrets_file: Option<PathBuf>,
    /// Where to freeze the policy, secrets and audit log (default: $RUNNER_TEMP/stepjail).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

pub fn run(args: SetupArgs) -> Result<i32, crate::step::RunError> {
    let fail = |msg: String| Err(crate::step::RunError::Setup(msg));
    // Only `stepjail setup` itself reads these variables; nothing is inherited by steps.
    let secrets = match (&args.secrets_env, &args.secrets_file) {
        (Some(var), _) => std::env::var(var).ok(),
        (None, Some(f)) => match std::fs::read_to_string(f) {
            Ok(t) => Some(t),
            Err(e) => return fail(format!("{}: {e}", f.display())),
        },
        (None, None) => None,
    };
    let Some(state_dir) = state::state_dir(args.state_dir.as_deref()) else {
        return fail("no state directory: RUNNER_TEMP is unset; pass --state-dir DIR".into());
    };
    let req = SetupRequest {
        policy: args.policy,
        policy_ref: args.policy_ref,
        mode: args.mode,
        secrets,
        state_dir: state_dir.clone(),
    };
    let out = match setup::setup(&req) {
        Ok(o) => o,
        Err(e) => return fail(e.to_string()),
    };
    for m in &out.masks {
        println!("{m}");
    }
    println!(
        "stepjail: policy {} (sha256 {}) frozen in {}, mode {}",
        out.source,
        out.digest,
        state_dir.display(),
        args.mode
    );
    for line in &out.table {
        println!("stepjail:   {line}");
    }
    println!(
        "stepjail: audit log: {}",
        state_dir.join(state::AUDIT_FILE).display()
    );
    match setup::append_github_env(&out.github_env) {
        Ok(true) => {}
        Ok(false) => say!(
            "stepjail: GITHUB_ENV is unset; later steps need {}",
            out.github_env.trim().replace('\n', " ")
        ),
        Err(e) => return fail(format!("writing GITHUB_ENV: {e}")),
    }
    Ok(0)
}
