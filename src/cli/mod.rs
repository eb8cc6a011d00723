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

impl Cli {
    /// Parses the process's command line. `stepjail run ...` (the one command whose start-up
    /// time is on every step's path) is parsed by a command holding only `run`: building
    /// every subcommand's arguments took a third of a millisecond. Anything that parser does
    /// not accept as a plain `run` (help, version, an error, another subcommand) goes to the
    /// full parser, which prints what it always printed.
    pub fn parse_args() -> Cli {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        Self::parse_run(&args).unwrap_or_else(|| <Cli as Parser>::parse_from(args))
    }

    /// `args` parsed as a `run` command line by a command that knows only `run`, or `None`.
    pub fn parse_run(args: &[std::ffi::OsString]) -> Option<Cli> {
        use clap::{Args, FromArgMatches};
        // Only when `run` is the first argument after the binary (no global flag before it):
        // then nothing but `run`'s own arguments and the global `-v` can follow.
        if args.get(1).map(|a| a.as_os_str()) != Some(std::ffi::OsStr::new("run")) {
            return None;
        }
        let verbose = clap::Arg::new("verbose")
            .short('v')
            .long("verbose")
            .action(clap::ArgAction::Count)
            .global(true);
        let cmd = clap::Command::new("stepjail")
            .arg(verbose)
            .subcommand(run::RunArgs::augment_args(clap::Command::new("run")))
            .subcommand_required(true);
        let m = cmd.try_get_matches_from(args).ok()?;
        let (name, sub) = m.subcommand()?;
        if name != "run" {
            return None;
        }
        let verbose = sub.get_count("verbose").max(m.get_count("verbose"));
        let run = run::RunArgs::from_arg_matches(sub).ok()?;
        Some(Cli {
            verbose,
            command: Command::Run(run),
        })
    }
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
    // The commands that only read and print (into `head`, `less`, `grep -q`).
    if matches!(
        cli.command,
        Command::Profiles(_) | Command::Check(_) | Command::Audit(_)
    ) {
        crate::sys::default_sigpipe();
    }
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

    /// The `run` fast path parses exactly as the full command line does, and leaves to it
    /// everything else (help, errors, other subcommands, a flag before `run`).
    #[test]
    fn the_run_parser_agrees_with_the_full_one() {
        use clap::Parser;
        let os = |v: &[&str]| -> Vec<std::ffi::OsString> { v.iter().map(|s| s.into()).collect() };
        for argv in [
            &["stepjail", "run", "--", "true"][..],
            &[
                "stepjail",
                "run",
                "-v",
                "--profile",
                "p.yml",
                "--",
                "a",
                "-b",
                "--c",
            ],
            &[
                "stepjail",
                "run",
                "-vv",
                "-w",
                "/tmp",
                "--mode",
                "audit",
                "--resolver",
                "1.2.3.4:53",
                "--",
                "sh",
                "-c",
                "x",
            ],
            &[
                "stepjail",
                "run",
                "--no-mask",
                "--upstream-proxy-from-env",
                "--secrets-file",
                "f",
                "--audit-log",
                "a",
                "-u",
                "1:2",
                "-p",
                "npm",
                "--",
                "x",
            ],
            &[
                "stepjail",
                "run",
                "--upstream-proxy",
                "http://u:p@h:1",
                "--verbose",
                "--",
                "x",
            ],
        ] {
            let fast = super::Cli::parse_run(&os(argv)).expect("the fast path takes it");
            let full = super::Cli::try_parse_from(os(argv)).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{argv:?}");
        }
        for argv in [
            &["stepjail", "run"][..],
            &["stepjail", "run", "--help"],
            &["stepjail", "run", "--mode", "bogus", "--", "x"],
            &["stepjail", "run", "--no-such-flag", "--", "x"],
            &["stepjail", "-v", "run", "--", "x"],
            &["stepjail", "check", "p.yml"],
            &["stepjail", "--version"],
            &["stepjail"],
        ] {
            assert!(super::Cli::parse_run(&os(argv)).is_none(), "{argv:?}");
        }
    }
}
