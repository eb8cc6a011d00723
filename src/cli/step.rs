//! `stepjail step -- SHELL... SCRIPT`: the `shell:` of a GitHub `run:` step
//! (see `ci::github::step`).

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct StepArgs {
    /// The state directory `stepjail setup` wrote (default: $STEPJAIL_STATE, else
    /// $RUNNER_TEMP/stepjail).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The shell command the runner gives, with the script's path: `bash --noprofile --norc
    /// -eo pipefail {0}`.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

pub fn run(args: StepArgs, verbose: bool) -> Result<i32, crate::step::RunError> {
    crate::ci::github::step::run(crate::ci::github::step::StepRequest {
        state_dir: args.state_dir,
        verbose,
        command: args.command,
        step_id: None,
        set: Vec::new(),
        pass: Vec::new(),
    })
}
