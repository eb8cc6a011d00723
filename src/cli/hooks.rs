//! `stepjail hooks`: the GitHub Actions runner's container hooks
//! (`ACTIONS_RUNNER_CONTAINER_HOOKS`; see `ci::github::hooks`).

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct HooksArgs {
    /// The runner operator's file: which profile each repository's jobs and steps get, which
    /// container images run on the host, where audit logs go.
    #[arg(long, value_name = "FILE", default_value = crate::ci::github::hooks::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Check the operator's file (every repository's policy) and exit: 0 when it is valid,
    /// 2 with the error's file, line and column otherwise. Reads no stdin.
    #[arg(long)]
    pub check: bool,
    /// Internal: the second half of `run_script_step`, re-executed with the step's environment.
    #[arg(long, value_name = "FILE", hide = true)]
    pub in_step: Option<PathBuf>,
}

pub fn run(args: HooksArgs) -> i32 {
    if args.check {
        return match crate::ci::github::hooks::config::Operator::load(&args.config) {
            Ok(_) => {
                println!("{}: ok", args.config.display());
                0
            }
            Err(e) => {
                say!("stepjail: {e}");
                crate::exit::USAGE
            }
        };
    }
    crate::ci::github::hooks::run(&args.config, args.in_step.as_deref())
}
