//! The command line: clap definitions and one function per subcommand. Each returns the exit
//! code stepjail ends with, or the error that stopped it; [`main`] is the one place that turns
//! an error into output and an exit code. `main.rs` only parses and exits.

pub mod action;
pub mod audit;
pub mod check;
pub mod gitlab;
pub mod hooks;
pub mod profiles;
pub mod run;
pub mod setup;
pub mod step;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "stepjail", version, about = "Run a CI step in a throwaway Linux sandbox", long_about = None)]
pub struct Cli {
    /// Diagnostics on stderr: `-v` info (with what the sandbox applied: identity, landlock
    /// ABI), `-vv` debug, `-vvv` trace; anywhere before `--` (`stepjail run -v -- ...`).
    /// STEPJAIL_LOG (a tracing filter directive such as `stepjail::proxy=debug`) wins over it.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a sandbox under a profile.
    Run(run::RunArgs),
    /// List the built-in profiles, or print one with `profiles show NAME`.
    Profiles(profiles::ProfilesArgs),
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
    /// GitLab Runner's Custom executor: `config_exec`, `prepare_exec`, `run_exec` and
    /// `cleanup_exec` (see docs/gitlab.md).
    Gitlab(gitlab::GitlabArgs),
    /// GitHub Actions self-hosted runners: the container hooks (`ACTIONS_RUNNER_CONTAINER_HOOKS`)
    /// that run every step of a job in the sandbox under the operator's policy; reads the
    /// runner's JSON on stdin.
    Hooks(hooks::HooksArgs),
}

/// Dispatches a parsed command line; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    crate::diag::init(cli.verbose);
    // One `-v`, wherever it is written: at 1 and above, `run`, `step` and `action` also say
    // what the sandbox applied (they had a `-v` of their own before it was global).
    let verbose = cli.verbose > 0;
    // The subcommands a GitHub Actions runner calls: their errors are annotations there too.
    let github = matches!(
        cli.command,
        Command::Setup(_) | Command::Step(_) | Command::Action(_)
    );
    let result = match cli.command {
        Command::Run(args) => run::run(args, verbose),
        Command::Profiles(args) => profiles::run(args),
        Command::Check(args) => check::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Setup(args) => setup::run(args),
        Command::Step(args) => step::run(args, verbose),
        Command::Action(args) => action::run(args, verbose),
        // The runners' drivers report in their runner's own way and return its exit codes.
        Command::Gitlab(args) => Ok(gitlab::run(args)),
        Command::Hooks(args) => Ok(hooks::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => crate::ci::github::report::say_error(&e, github),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every subcommand says what it is in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "stepjail", &mut missing);
        assert_eq!(missing, Vec::<String>::new());
    }
}
