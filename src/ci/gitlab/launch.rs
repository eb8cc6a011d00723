//! The one place the GitLab driver calls the run pipeline (`step::prepare`, then
//! `Prepared::launch`). Everything GitLab-specific is decided before this.

use std::path::PathBuf;

use crate::policy::model::{Location, NetworkMode, Profile};
use crate::step::{CiStep, Host, Spec};

/// Where the stage's script is put: the sandbox's own private /tmp (the runner's copy, with
/// every variable in it, stays outside).
pub const SCRIPT_IN_SANDBOX: &str = "/tmp/stepjail-gitlab-stage.sh";

/// One stage to run in a fresh sandbox.
pub struct Stage {
    pub profile: Profile,
    pub workspace: PathBuf,
    pub user: Option<String>,
    pub audit_log: PathBuf,
    pub mode: Option<NetworkMode>,
    pub resolver: Option<std::net::SocketAddr>,
    /// The reduced stage script and the shell that runs it (`bash` or `sh`).
    pub script: String,
    pub shell: String,
    /// Paths hidden on top of the profile's (the runner's temporary directory, stepjail's).
    pub hidden: Vec<PathBuf>,
    /// Values masked in the stage's output (and refused on plain HTTP to any host).
    pub masked: Vec<(String, String)>,
    pub job: String,
    pub stage: String,
}

/// How a stage ended.
pub struct Ended {
    pub code: i32,
    /// The run id of the stage's audit records.
    pub run_id: String,
}

pub fn launch(s: Stage) -> Ended {
    let at = Location {
        file: "gitlab job".into(),
        line: 0,
        column: 0,
    };
    let mut values = crate::secrets::SecretValues::new("the GitLab job response");
    let mut masked = Vec::new();
    for (name, value) in s.masked {
        masked.push(name.clone());
        values.insert(name, value);
    }
    // `filesystem.files` contents are templates: `$$` is a literal `$`.
    let profile = s
        .profile
        .with_file(SCRIPT_IN_SANDBOX, &s.script.replace('$', "$$"), &at)
        .and_then(|p| p.with_injected_secrets(masked, "variables", &at));
    let profile = match profile {
        Ok(p) => p,
        // A setup failure like any other: the stage does not run.
        Err(e) => {
            let e = crate::step::RunError::from(e);
            return Ended {
                code: crate::ci::github::report::say_error(&e, false),
                run_id: crate::step::new_run_id(),
            };
        }
    };
    let spec = Spec {
        profile,
        workspace: s.workspace,
        user: s.user,
        audit_log: Some(s.audit_log),
        mode: s.mode,
        resolver: s.resolver,
        upstream_proxy: std::env::var("STEPJAIL_UPSTREAM_PROXY").ok(),
        upstream_from_env: false,
        file_secrets: Some(values),
        no_mask: false,
        verbose: false,
        command: vec![s.shell, SCRIPT_IN_SANDBOX.to_string()],
        ci: Some(CiStep {
            skeleton: None,
            hidden: s.hidden,
            pass: Vec::new(),
            set: Vec::new(),
            job: s.job,
            step: s.stage,
        }),
    };
    let mut run_id = crate::step::new_run_id();
    let result = crate::step::prepare(spec, &Host::current()).and_then(|prepared| {
        run_id = prepared.run_id().to_string();
        prepared.launch()
    });
    let code = match result {
        Ok(outcome) => outcome.code,
        // GitLab shows the job log as is: no GitHub annotation.
        Err(e) => crate::ci::github::report::say_error(&e, false),
    };
    Ended { code, run_id }
}
