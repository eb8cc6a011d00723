//! `stepjail run [--profile P] [--workspace DIR] [--user U] [-v] -- COMMAND...`

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::policy::model::NetworkMode;
use crate::step::{Host, RunError, Spec};

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
    /// Write every DNS query and connection attempt to FILE as JSON Lines.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Override the profile's network mode: `enforce` (only the allowlist), `audit` (everything
    /// allowed, would-be denials logged), or `none` (no network).
    #[arg(long, value_parser = PossibleValuesParser::new(["none", "enforce", "audit"])
        .try_map(|m| m.parse::<NetworkMode>()))]
    pub mode: Option<NetworkMode>,
    /// The DNS resolver the proxy asks (ADDR:PORT); defaults to the host's first nameserver.
    #[arg(long, value_name = "ADDR:PORT")]
    pub resolver: Option<std::net::SocketAddr>,
    /// Send allowed connections through this HTTP proxy (`http://[user:pass@]host:port`) with
    /// CONNECT, by name; never direct. Default: $STEPJAIL_UPSTREAM_PROXY (which keeps the
    /// credentials out of the process list), else the profile's `network.upstream_proxy`.
    #[arg(long, value_name = "URL")]
    pub upstream_proxy: Option<String>,
    /// Use the caller's HTTPS_PROXY (or https_proxy) as the upstream proxy, and its NO_PROXY
    /// for the destinations that go direct. `--upstream-proxy` wins over it.
    #[arg(long)]
    pub upstream_proxy_from_env: bool,
    /// Values for the secrets the profile declares: a dotenv file, or JSON as produced by
    /// `${{ toJSON(secrets) }}` (a file descriptor works too: /dev/fd/N). Undeclared names in
    /// it never reach the step. Declared secrets not found here are taken from the environment.
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Do not replace secret values with *** in the step's output (which otherwise passes
    /// through pipes, so the step sees no terminal).
    #[arg(long)]
    pub no_mask: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

/// Builds the step's spec from the command line, prepares and launches it.
pub fn run(args: RunArgs, verbose: bool) -> Result<i32, RunError> {
    let profile = crate::policy::load_cached(&args.profile)?;
    let file_secrets = match &args.secrets_file {
        Some(p) => Some(crate::secrets::load_file(p)?),
        None => None,
    };
    let spec = Spec {
        profile,
        workspace: args.workspace.unwrap_or_else(|| PathBuf::from(".")),
        user: args.user,
        audit_log: args.audit_log,
        mode: args.mode,
        resolver: args.resolver,
        upstream_proxy: args
            .upstream_proxy
            .or_else(|| std::env::var("STEPJAIL_UPSTREAM_PROXY").ok()),
        upstream_from_env: args.upstream_proxy_from_env,
        file_secrets,
        no_mask: args.no_mask,
        verbose,
        command: args.command,
        ci: None,
    };
    let outcome = crate::step::prepare(spec, &Host::current())?.launch()?;
    Ok(outcome.code)
}
