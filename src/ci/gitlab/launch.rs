//! The one place the GitLab driver calls the run pipeline (`step::prepare`, then
//! `Prepared::launch`). Everything GitLab-specific is decided before this.

use std::path::PathBuf;

use crate::policy::model::{Location, NetworkMode, Profile, SecretDecl};
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

pub fn launch(mut s: Stage) -> Ended {
    let at = Location {
        file: "gitlab job".into(),
        line: 0,
        column: 0,
    };
    // `filesystem.files` contents are templates: `$$` is a literal `$`.
    s.profile.filesystem.files.insert(
        SCRIPT_IN_SANDBOX.to_string(),
        (s.script.replace('$', "$$"), at.clone()),
    );
    let mut values = crate::secrets::SecretValues::new("the GitLab job response");
    for (name, value) in s.masked {
        s.profile.secrets.retain(|d| d.name != name);
        s.profile.secrets.push(SecretDecl {
            key: format!("variables.{name}"),
            name: name.clone(),
            optional: true,
            broker: Vec::new(),
            broker_in: Vec::new(),
            at: at.clone(),
        });
        values.insert(name, value);
    }
    let spec = Spec {
        profile: s.profile,
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
