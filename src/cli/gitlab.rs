//! `stepjail gitlab config|prepare|run|cleanup`: GitLab Runner's Custom executor driver.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct GitlabArgs {
    /// The operator's policy (default: $STEPJAIL_GITLAB_POLICY, else /etc/stepjail/gitlab.yml).
    #[arg(long, value_name = "FILE", global = true)]
    pub policy: Option<PathBuf>,
    #[command(subcommand)]
    pub command: GitlabCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum GitlabCommand {
    /// `config_exec`: print the job's directories as JSON.
    Config,
    /// `prepare_exec`: choose the job's policy entry and freeze it.
    Prepare,
    /// `run_exec SCRIPT STAGE`: run one stage's script in a fresh sandbox.
    Run {
        /// The script GitLab Runner wrote for the stage.
        script: PathBuf,
        /// The stage's name (`get_sources`, `build_script`, ...).
        stage: String,
    },
    /// `cleanup_exec`: end what is left of the job and remove its state.
    Cleanup,
}

pub fn run(args: GitlabArgs) -> i32 {
    use crate::ci::gitlab;
    let policy = args.policy.as_deref();
    match args.command {
        GitlabCommand::Config => gitlab::config(policy),
        GitlabCommand::Prepare => gitlab::prepare(policy),
        GitlabCommand::Run { script, stage } => gitlab::run(policy, &script, &stage),
        GitlabCommand::Cleanup => gitlab::cleanup(policy),
    }
}
