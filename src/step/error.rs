//! Everything that can stop a step, or a subcommand, before it ends on its own: one variant per
//! failing step, each with the exit code it becomes. `cli::main` is the one place that turns
//! a `RunError` into output (a `stepjail: ...` line, and an `::error` annotation under GitHub
//! Actions).

use std::path::PathBuf;

use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    // Preparing a step: nothing ran, nothing changed (exit 2).
    /// The profile (or policy entry) cannot be loaded, resolved or chosen.
    #[error(transparent)]
    Profile(#[from] crate::policy::PolicyError),
    /// The secrets file cannot be read, or a declared secret has no value.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// Who the step runs as (`--user`).
    #[error(transparent)]
    Identity(crate::sandbox::host::HostError),
    #[error("the workspace {} is not a directory", .0.display())]
    Workspace(PathBuf),
    /// `--audit-log` names a path the step could redirect.
    #[error("{0}")]
    AuditLogPath(String),
    /// The way to a profile cache directory passes through a link the step could replace.
    #[error("{0}")]
    ProfileCachePath(String),
    #[error("no DNS resolver found in /etc/resolv.conf; pass --resolver ADDR:PORT")]
    NoResolver,
    #[error(transparent)]
    HostsFile(#[from] crate::proxy::hosts::HostsError),
    /// `--upstream-proxy`, `STEPJAIL_UPSTREAM_PROXY` or `network.upstream_proxy`.
    #[error("{0}")]
    UpstreamProxy(String),
    #[error(transparent)]
    Plan(#[from] crate::sandbox::plan::PlanError),
    /// A setting the step's tools would use against the policy (a credential in a passed URL).
    #[error("{0}")]
    Refused(String),
    #[error("secret {0}: stepjail sets this variable itself; rename the secret")]
    SecretSetsItself(String),
    #[error("secret {name}: {error}")]
    Placeholder {
        name: String,
        error: crate::secrets::PlaceholderError,
    },

    // Setting up the sandbox: the step did not run (exit 125).
    /// Facts about the host paths the plan needs.
    #[error(transparent)]
    HostFacts(crate::sandbox::host::HostError),
    #[error(transparent)]
    AuditLog(crate::audit::AuditError),
    /// A profile cache directory the step could otherwise create cannot be created.
    #[error("the profile cache: {0}")]
    ProfileCacheDir(String),
    #[error(transparent)]
    Broker(#[from] crate::proxy::broker::BrokerError),
    #[error(
        "brokered secrets need a system CA bundle (none of /etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/cert.pem)"
    )]
    NoCaBundle,
    /// The sandbox itself (its exit code: 125, or 126/127 when the command cannot run).
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),

    // After the step ran.
    /// The audit log failed during the step (the proxy then denied everything) or could not
    /// take `step_end`: the log is incomplete. Exit [`exit::AUDIT_FAILED`], unless the step
    /// failed with a code of its own (`code`), which is kept: the run fails either way, and
    /// that code still says how the step ended (a timeout, a signal, its tests).
    #[error(
        "the audit log could not be written ({cause}); {}",
        if *during_step {
            "the step's network was cut from then on, and the log is incomplete"
        } else {
            "the step's end (step_end) is not in it"
        }
    )]
    AuditIncomplete {
        cause: String,
        during_step: bool,
        code: i32,
    },

    // Subcommands around a step.
    /// stepjail's frozen state under a CI runner is missing, unreadable or was changed (125).
    #[error("{0}")]
    State(String),
    /// `stepjail setup` failed (2).
    #[error("{0}")]
    Setup(String),
    /// `stepjail action` cannot run the action (2).
    #[error("{0}")]
    Action(String),
    /// A usage error in the command line's own input (2).
    #[error("{0}")]
    Usage(String),
    /// Reading audit logs failed (1).
    #[error("{0}")]
    Read(String),

    /// Another error, with the warnings said before it (printed first).
    #[error("{source}")]
    Warned {
        warnings: Vec<String>,
        source: Box<RunError>,
    },
}

impl RunError {
    /// The exit code stepjail ends with for this error.
    pub fn exit_code(&self) -> i32 {
        use RunError::*;
        match self {
            Profile(_)
            | Secrets(_)
            | Identity(_)
            | Workspace(_)
            | AuditLogPath(_)
            | ProfileCachePath(_)
            | NoResolver
            | HostsFile(_)
            | UpstreamProxy(_)
            | Plan(_)
            | Refused(_)
            | SecretSetsItself(_)
            | Placeholder { .. } => exit::USAGE,
            HostFacts(_) | AuditLog(_) | ProfileCacheDir(_) | Broker(_) | NoCaBundle => exit::SETUP,
            Sandbox(e) => e.exit_code(),
            AuditIncomplete { code: 0, .. } => exit::AUDIT_FAILED,
            AuditIncomplete { code, .. } => *code,
            State(_) => exit::SETUP,
            Setup(_) | Action(_) | Usage(_) => exit::USAGE,
            Read(_) => exit::FAILURE,
            Warned { source, .. } => source.exit_code(),
        }
    }

    /// Warnings to print before the error itself.
    pub fn warnings(&self) -> &[String] {
        match self {
            RunError::Warned { warnings, .. } => warnings,
            _ => &[],
        }
    }

    /// The title of the `::error` annotation this error becomes under GitHub Actions; `None`
    /// for errors that are only a line on stderr there too (the sandbox's own, which the
    /// step's log already shows, and errors in stepjail's own command line).
    pub fn annotation(&self) -> Option<&'static str> {
        match self {
            RunError::Warned { source, .. } => source.annotation(),
            RunError::Sandbox(_) | RunError::Usage(_) | RunError::Read(_) => None,
            RunError::Setup(_) => Some("stepjail setup"),
            RunError::Action(_) => Some("stepjail action"),
            _ => Some("stepjail"),
        }
    }

    /// This error with `warnings` said before it.
    pub(crate) fn with_warnings(self, warnings: Vec<String>) -> RunError {
        if warnings.is_empty() {
            self
        } else {
            RunError::Warned {
                warnings,
                source: Box::new(self),
            }
        }
    }
}
