//! `stepjail action --step ID [--input NAME=VALUE]... DIR`: a JavaScript action under a step's
//! policy entry (see `ci::github::action`).

use std::path::PathBuf;

use crate::ci::github::action;

#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    /// The policy key the action runs under (`jobs.<GITHUB_JOB>.steps.<STEP>`).
    #[arg(long)]
    pub step: String,
    /// An input (`with:` entry), NAME=VALUE; repeatable.
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = action::parse_input_arg)]
    pub inputs: Vec<(String, String)>,
    /// A YAML file of inputs (`name: value` lines, as under `with:`).
    #[arg(long, value_name = "FILE")]
    pub inputs_file: Option<PathBuf>,
    /// The state directory `stepjail setup` wrote (default: $STEPJAIL_STATE, else
    /// $RUNNER_TEMP/stepjail).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The action's directory (holding action.yml).
    pub dir: PathBuf,
}

pub fn run(args: ActionArgs, verbose: bool) -> Result<i32, crate::step::RunError> {
    let mut inputs = Vec::new();
    if let Some(f) = &args.inputs_file {
        let label = f.display().to_string();
        let parsed = std::fs::read_to_string(f)
            .map_err(|e| format!("{label}: {e}"))
            .and_then(|t| action::parse_inputs(&t, &label));
        inputs.extend(parsed.map_err(crate::step::RunError::Usage)?);
    }
    inputs.extend(args.inputs);
    action::run(action::ActionRequest {
        state_dir: args.state_dir,
        verbose,
        step: args.step,
        dir: args.dir,
        inputs,
    })
}
