//! `prepare` without root and without touching the host: the plan it decides, the error each
//! bad input becomes, and that nothing is created before launch.

use std::path::{Path, PathBuf};

use super::*;
use crate::policy::model::{NetworkMode, Profile};
use crate::sandbox::plan::MountOp;

struct Fixture {
    _dir: tempfile::TempDir,
    home: PathBuf,
    workspace: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let home = root.join("home");
    let workspace = root.join("ws");
    std::fs::create_dir(&home).unwrap();
    std::fs::create_dir(&workspace).unwrap();
    Fixture {
        _dir: dir,
        home,
        workspace,
    }
}

fn profile(f: &Fixture, yaml: &str) -> Profile {
    let path = f.workspace.join("profile.yml");
    std::fs::write(&path, yaml).unwrap();
    let p = crate::policy::load_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    p
}

fn spec(f: &Fixture, profile: Profile) -> Spec {
    Spec {
        profile,
        workspace: f.workspace.clone(),
        user: None,
        audit_log: None,
        mode: None,
        resolver: Some("192.0.2.53:53".parse().unwrap()),
        upstream_proxy: None,
        upstream_from_env: false,
        file_secrets: None,
        no_mask: false,
        verbose: false,
        command: vec!["true".into()],
        ci: None,
    }
}

fn host(f: &Fixture) -> Host {
    Host {
        env: vec![
            ("HOME".into(), f.home.display().to_string()),
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("TOKEN".into(), "s3cret-value-1234".into()),
        ],
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

const NPM_LIKE: &str = "name: t\ndescription: t\nextends: default\nnetwork:\n  mode: enforce\n  allow: [registry.npmjs.org:443]\nfilesystem:\n  read_write: [$HOME/.npm]\nsecrets:\n  TOKEN: {}\n";

#[test]
fn prepare_builds_no_allow_rule() {
    // A step under a cached profile decides from the allow table: `prepare` (the settings
    // check's registry decisions, whether the broker is needed) must not build the rules.
    let f = fixture();
    let yaml = NPM_LIKE.replace(
        "allow: [registry.npmjs.org:443]",
        "allow: [registry.npmjs.org:443, { host: api.example.com, ports: [443], methods: [GET] }]",
    ) + "env:\n  pass: [NPM_CONFIG_REGISTRY]\n";
    let p = profile(&f, &yaml).with_table_only();
    assert!(!p.network().allow.is_built());
    let h = Host {
        env: [
            host(&f).env,
            vec![(
                "NPM_CONFIG_REGISTRY".into(),
                "https://npm.corp.example/".into(),
            )],
        ]
        .concat(),
    };
    let prepared = prepare(spec(&f, p), &h).unwrap();
    assert!(prepared.broker.is_some(), "a method rule needs the broker");
    // The registry the step is pointed at was decided (not allowed: one warning).
    assert!(
        prepared
            .warnings()
            .iter()
            .any(|w| w.contains("npm.corp.example:443")),
        "{:?}",
        prepared.warnings()
    );
    assert!(!prepared.network.allow.is_built());
}

#[test]
fn a_valid_spec_gives_the_plan_and_creates_nothing() {
    let f = fixture();
    let mut s = spec(&f, profile(&f, NPM_LIKE));
    s.audit_log = Some(f.workspace.join("logs/audit.jsonl"));
    std::fs::create_dir(f.workspace.join("logs")).unwrap();
    let p = prepare(s, &host(&f)).unwrap();
    assert_eq!(p.profile_name(), "t");
    assert_eq!(p.mode(), crate::policy::model::NetworkMode::Enforce);
    assert_eq!(p.plan().argv(), vec!["true".to_string()]);
    assert!(p.plan().egress());
    assert!(!p.run_id().is_empty());
    // The step holds the secret it declared, and its output is masked.
    assert!(
        p.plan()
            .env()
            .iter()
            .any(|(k, v)| k == "TOKEN" && v == "s3cret-value-1234")
    );
    assert_eq!(p.mask, vec![b"s3cret-value-1234".to_vec()]);
    // ~/.npm is missing: described, bound writable in the plan, and not created.
    let npm = f.home.join(".npm");
    assert_eq!(p.create_dirs(), std::slice::from_ref(&npm));
    assert!(
        p.plan().writable().contains(&npm),
        "{:?}",
        p.plan().writable()
    );
    assert!(p.writable().contains(&npm));
    // The audit log is a read-only hole in the workspace, its directory pinned; not created.
    let log = f.workspace.join("logs/audit.jsonl");
    assert!(
        p.plan().mounts().contains(&MountOp::ReadOnly {
            target: log.clone()
        }),
        "{:?}",
        p.plan().mounts()
    );
    assert!(p.plan().writable().contains(&f.workspace.join("logs")));
    assert_eq!(entries(&f.home), Vec::<PathBuf>::new());
    assert_eq!(entries(&f.workspace.join("logs")), Vec::<PathBuf>::new());
    assert!(p.warnings().is_empty(), "{:?}", p.warnings());
}

#[test]
fn the_mode_override_and_no_mask_are_applied() {
    let f = fixture();
    let mut s = spec(&f, profile(&f, NPM_LIKE));
    s.mode = Some(NetworkMode::None);
    s.no_mask = true;
    let p = prepare(s, &host(&f)).unwrap();
    assert_eq!(p.mode(), crate::policy::model::NetworkMode::None);
    assert!(!p.plan().egress());
    assert!(p.mask.is_empty());
}

#[test]
fn a_missing_secret_is_a_usage_error() {
    let f = fixture();
    let mut h = host(&f);
    h.env.retain(|(k, _)| k != "TOKEN");
    let e = prepare(spec(&f, profile(&f, NPM_LIKE)), &h).err().unwrap();
    assert!(matches!(e, RunError::Secrets(_)), "{e:?}");
    assert_eq!(e.exit_code(), crate::exit::USAGE);
    assert!(e.to_string().contains("TOKEN"), "{e}");
    assert_eq!(entries(&f.home), Vec::<PathBuf>::new());
}

#[test]
fn a_secret_named_like_a_sandbox_variable_is_refused() {
    let f = fixture();
    let mut s = spec(
        &f,
        profile(&f, "name: t\ndescription: t\nextends: default\n"),
    );
    let values = "HTTPS_PROXY=http://evil.example:8080\n";
    let path = f.workspace.join("secrets.env");
    std::fs::write(&path, values).unwrap();
    s.file_secrets = Some(crate::secrets::load_file(&path).unwrap());
    // Declared by the run, not the profile (the loader refuses such declarations already).
    s.profile = s
        .profile
        .clone()
        .with_unchecked_secret(crate::policy::model::SecretDecl {
            name: "HTTPS_PROXY".into(),
            optional: false,
            broker: Vec::new(),
            broker_in: Vec::new(),
            at: crate::policy::model::Location {
                file: "test".into(),
                line: 1,
                column: 1,
            },
            key: String::new(),
        });
    let e = prepare(s, &host(&f)).err().unwrap();
    assert!(
        matches!(e, RunError::SecretSetsItself(ref n) if n == "HTTPS_PROXY"),
        "{e:?}"
    );
    assert_eq!(e.exit_code(), crate::exit::USAGE);
    assert_eq!(
        e.to_string(),
        "secret HTTPS_PROXY: stepjail sets this variable itself; rename the secret"
    );
}

#[test]
fn a_workspace_that_is_not_a_directory_is_a_usage_error() {
    let f = fixture();
    let mut s = spec(
        &f,
        profile(&f, "name: t\ndescription: t\nextends: default\n"),
    );
    s.workspace = f.workspace.join("missing");
    let e = prepare(s, &host(&f)).err().unwrap();
    assert!(matches!(e, RunError::Workspace(_)), "{e:?}");
    assert_eq!(e.exit_code(), crate::exit::USAGE);
    assert_eq!(
        e.to_string(),
        format!(
            "the workspace {} is not a directory",
            f.workspace.join("missing").display()
        )
    );
}

#[test]
fn an_audit_log_behind_a_link_the_step_can_replace_is_refused() {
    let f = fixture();
    std::fs::create_dir(f.workspace.join("real")).unwrap();
    std::os::unix::fs::symlink("real", f.workspace.join("link")).unwrap();
    let mut s = spec(
        &f,
        profile(&f, "name: t\ndescription: t\nextends: default\n"),
    );
    s.audit_log = Some(f.workspace.join("link/audit.jsonl"));
    let e = prepare(s, &host(&f)).err().unwrap();
    assert!(matches!(e, RunError::AuditLogPath(_)), "{e:?}");
    assert_eq!(e.exit_code(), crate::exit::USAGE);
    assert_eq!(entries(&f.workspace.join("real")), Vec::<PathBuf>::new());
}

#[test]
fn errors_map_to_their_exit_codes_and_annotations() {
    assert_eq!(RunError::NoResolver.exit_code(), crate::exit::USAGE);
    assert_eq!(RunError::NoCaBundle.exit_code(), crate::exit::SETUP);
    assert_eq!(RunError::State("x".into()).exit_code(), crate::exit::SETUP);
    assert_eq!(RunError::Read("x".into()).exit_code(), crate::exit::FAILURE);
    let warned = RunError::NoCaBundle.with_warnings(vec!["w".into()]);
    assert_eq!(warned.exit_code(), crate::exit::SETUP);
    assert_eq!(warned.warnings(), ["w".to_string()]);
    assert_eq!(warned.to_string(), RunError::NoCaBundle.to_string());
    assert_eq!(warned.annotation(), Some("stepjail"));
    assert_eq!(
        RunError::Action("x".into()).annotation(),
        Some("stepjail action")
    );
    assert_eq!(
        RunError::Setup("x".into()).annotation(),
        Some("stepjail setup")
    );
    assert_eq!(RunError::Usage("x".into()).annotation(), None);
}

#[test]
fn a_ci_step_adds_its_hidden_state_and_variables_and_scrubs_the_secrets_file_names() {
    let f = fixture();
    // Inside a writable bind, so it is covered (the rest of /tmp is the sandbox's own).
    let state = f.workspace.join("state");
    std::fs::create_dir(&state).unwrap();
    let mut s = spec(
        &f,
        profile(&f, "name: t\ndescription: t\nextends: default\n"),
    );
    let path = f.workspace.join("secrets.env");
    std::fs::write(&path, "UNDECLARED=zzz-value-9876\n").unwrap();
    s.file_secrets = Some(crate::secrets::load_file(&path).unwrap());
    s.mode = Some(NetworkMode::Audit);
    s.ci = Some(CiStep {
        skeleton: None,
        hidden: vec![state.clone()],
        pass: vec!["GITHUB_ENV".into()],
        set: vec![("INPUT_WHO".into(), "me".into())],
        job: "j".into(),
        step: "s".into(),
    });
    let mut h = host(&f);
    h.env.push(("GITHUB_ENV".into(), "/rt/env".into()));
    h.env.push(("UNDECLARED".into(), "zzz-value-9876".into()));
    let p = prepare(s, &h).unwrap();
    let env = p.plan().env();
    assert!(env.contains(&("INPUT_WHO".to_string(), "me".to_string())));
    assert!(env.contains(&("GITHUB_ENV".to_string(), "/rt/env".to_string())));
    assert!(!env.iter().any(|(k, _)| k == "UNDECLARED"), "{env:?}");
    assert!(
        p.plan()
            .mounts()
            .iter()
            .any(|m| matches!(m, MountOp::Hide { target, .. } if target == &state)),
        "{:?}",
        p.plan().mounts()
    );
    assert_eq!(p.mode(), NetworkMode::Audit);
    assert!(p.plan().merge_output());
    assert_eq!(p.start.ci_job.as_deref(), Some("j"));
}

/// A hole in the audit log marks the run: exit 121 when the step succeeded, its own code when
/// it failed; under GitHub Actions an `::error` annotation (the one rescue point prints it).
#[test]
fn an_incomplete_audit_log_marks_the_run_unless_the_step_failed() {
    let e = RunError::AuditIncomplete {
        cause: "/l/audit.jsonl: audit record cut short: wrote 62 of 164 bytes".into(),
        during_step: true,
        code: 0,
    };
    assert_eq!(e.exit_code(), crate::exit::AUDIT_FAILED);
    assert_eq!(e.annotation(), Some("stepjail"));
    assert_eq!(
        e.to_string(),
        "the audit log could not be written (/l/audit.jsonl: audit record cut short: wrote 62 of \
         164 bytes); the step's network was cut from then on, and the log is incomplete"
    );
    let e = RunError::AuditIncomplete {
        cause: "/l/audit.jsonl: cannot write audit record: No space left on device".into(),
        during_step: false,
        code: crate::exit::TIMEOUT,
    };
    assert_eq!(e.exit_code(), crate::exit::TIMEOUT);
    assert!(
        e.to_string()
            .ends_with("; the step's end (step_end) is not in it"),
        "{e}"
    );
}
