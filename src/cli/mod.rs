//! The command line: clap definitions and one function per subcommand. Each returns the exit
//! code stepjail ends with; `main.rs` only parses and exits.

pub mod action;
pub mod audit;
pub mod check;
pub mod profiles;
pub mod run;
pub mod setup;
pub mod step;

use clap::{Parser, Subcommand};

/// Exit code for a usage or profile error: nothing ran.
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Parser)]
#[command(name = "stepjail", version, about = "Run a CI step in a throwaway Linux sandbox", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a sandbox under a profile.
    Run(run::RunArgs),
    /// List the built-in profiles.
    Profiles,
    /// Validate profile and policy files; exits non-zero with precise errors.
    Check(check::CheckArgs),
    /// Read audit logs: `summarize` them, or `suggest` an allowlist from them.
    Audit(audit::AuditArgs),
    /// GitHub Actions: validate the job's policy and freeze it, with the secrets, for `step`.
    Setup(setup::SetupArgs),
    /// GitHub Actions: the `shell:` of a `run:` step; runs it under its policy entry.
    Step(step::StepArgs),
    /// GitHub Actions: run a JavaScript action's `main` in the sandbox under a step's policy
    /// entry (what the `run-action` composite calls).
    Action(action::ActionArgs),
}

/// Dispatches a parsed command line; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Profiles => profiles::run(),
        Command::Check(args) => check::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Setup(args) => setup::run(args),
        Command::Step(args) => step::run(args),
        Command::Action(args) => action::run(args),
    }
}
