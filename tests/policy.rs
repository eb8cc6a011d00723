//! The profile loader through the library API: what users get for good and bad files.
//! Negative tests assert the message (file, line, column, key), not just that loading failed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stepjail::policy::model::{Enforce, EnvPattern, NetworkMode, RuleTarget, Vars};
use stepjail::policy::{PolicyError, builtins, check_file, load, load_builtin, load_file};

/// A temp dir with files in it; returns the dir and the path of `name`.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn load_text(
    text: &str,
) -> (
    Result<stepjail::policy::model::Profile, PolicyError>,
    String,
) {
    let files = Files::new();
    let p = files.write("p.yml", text);
    let r = load_file(&p);
    // Keep the dir alive until the profile is loaded; return the label to compare against.
    (r, p.display().to_string())
}

fn load_err(text: &str) -> String {
    let (r, file) = load_text(text);
    let e = r.expect_err("expected an error").to_string();
    e.replacen(&file, "FILE", 1)
}

/// Every built-in, in the order messages list them.
const AVAILABLE: &str = "default, offline, cargo, npm, pip, go, rubygems, maven, github, codecov, apt, yarn, pnpm, \
     uv, poetry, gradle, nuget, composer, dockerhub, ghcr";

fn vars() -> Vars {
    Vars {
        workspace: Some("/work/repo".into()),
        home: Some("/home/runner".into()),
        tmpdir: Some("/tmp".into()),
        runner_temp: Some("/home/runner/work/_temp".into()),
    }
}

const FULL: &str = r#"name: full
description: one line
extends: default
filesystem:
  read_write: [$WORKSPACE, $HOME/.cargo/registry]
  read_only: [$WORKSPACE/.git]
  hidden: [$HOME/.ssh, $HOME/.netrc]
network:
  mode: none
env:
  pass: [CI, GITHUB_*, RUNNER_*]
  set: { LANG: C.UTF-8, CARGO_HOME: $HOME/.cargo }
process:
  timeout: 30m
  limits:
    open_files: 4096
    file_size: 1G
    processes: 512
    cpu_seconds: 3600
    address_space: 8G
    core_size: 0
    memory: 2G
    pids: 256
    cpu: 1.5
    enforce: best-effort
landlock:
  min_abi: 4
"#;

#[test]
fn the_documented_example_parses_and_resolves() {
    let (r, file) = load_text(FULL);
    let p = r.unwrap();
    assert_eq!(p.name(), "full");
    assert_eq!(p.description(), "one line");
    assert_eq!(p.source(), file);
    let rw: Vec<&str> = p
        .filesystem()
        .read_write
        .iter()
        .map(|t| t.raw.as_str())
        .collect();
    // Parent's entries first; $WORKSPACE from both is kept once.
    assert_eq!(rw, ["$WORKSPACE", "$HOME/.cargo/registry"]);
    assert_eq!(p.filesystem().read_only[0].raw, "$WORKSPACE/.git");
    assert_eq!(p.filesystem().read_only[0].key, "filesystem.read_only[0]");
    assert_eq!(p.filesystem().read_only[0].at.line, 6);
    assert!(
        p.filesystem()
            .hidden
            .iter()
            .any(|t| t.raw == "$HOME/.gnupg")
    );
    assert_eq!(
        p.filesystem()
            .hidden
            .iter()
            .filter(|t| t.raw == "$HOME/.ssh")
            .count(),
        1
    );
    assert_eq!(p.network().mode, NetworkMode::None);
    assert!(p.env().pass.contains(&EnvPattern::Prefix("GITHUB_".into())));
    assert!(p.env().pass.contains(&EnvPattern::Exact("CI".into())));
    assert_eq!(p.env().set["LANG"], "C.UTF-8");
    assert_eq!(p.process().timeout, Some(Duration::from_secs(1800)));
    let l = &p.process().limits;
    assert_eq!(l.open_files, Some(4096));
    assert_eq!(l.file_size, Some(1 << 30));
    assert_eq!(l.processes, Some(512));
    assert_eq!(l.cpu_seconds, Some(3600));
    assert_eq!(l.address_space, Some(8 << 30));
    assert_eq!(l.core_size, Some(0));
    assert_eq!(l.memory, Some(2 << 30));
    assert_eq!(l.pids, Some(256));
    assert_eq!(l.cpu_millis, Some(1500));
    assert_eq!(l.enforce, Some(Enforce::BestEffort));
    assert_eq!(p.landlock().min_abi, Some(4));

    let r = p.resolve(&vars()).unwrap();
    assert_eq!(
        r.read_write(),
        [
            PathBuf::from("/work/repo"),
            PathBuf::from("/home/runner/.cargo/registry")
        ]
    );
    assert_eq!(r.read_only(), [PathBuf::from("/work/repo/.git")]);
    assert!(r.hidden().contains(&PathBuf::from("/home/runner/.ssh")));
    assert_eq!(r.env_set()["CARGO_HOME"], "/home/runner/.cargo");
}

#[test]
fn unknown_key_names_key_position_and_expected_keys() {
    let e = load_err("name: x\ndescription: d\nfilesystem:\n  read_wrte: [$WORKSPACE]\n");
    assert_eq!(
        e,
        "FILE:4:3: unknown key `read_wrte` in `filesystem` (expected one of: read_write, read_only, hidden, files)"
    );
    let e = load_err("name: x\ndescription: d\nnetwrk: {}\n");
    assert!(e.starts_with("FILE:3:1: unknown key `netwrk` in the top level (expected one of: name, description, extends, filesystem, network, env, process, landlock, secrets)"), "{e}");
}

#[test]
fn duplicate_key_names_line() {
    let e = load_err("name: x\ndescription: d\nname: y\n");
    assert_eq!(
        e,
        "FILE:3:1: duplicate key `name` in the top level (first written at line 1)"
    );
    let e = load_err("name: x\ndescription: d\nenv:\n  set:\n    A: 1\n    A: 2\n");
    assert_eq!(
        e,
        "FILE:6:5: duplicate key `A` in `env.set` (first written at line 5)"
    );
}

#[test]
fn wrong_types_say_what_was_expected_and_found() {
    let e = load_err("name: x\ndescription: d\nprocess:\n  timeout: [1]\n");
    assert_eq!(
        e,
        "FILE:4:12: `process.timeout`: expected a duration like 90s, 30m or 2h, found a list"
    );
    let e = load_err("name: x\ndescription: d\nfilesystem:\n  read_write: 5\n");
    assert_eq!(
        e,
        "FILE:4:15: `filesystem.read_write`: expected a list of paths, like [$WORKSPACE, /opt/cache], found `5`"
    );
    let e = load_err("name: x\ndescription: d\nfilesystem:\n  hidden:\n    - /a\n    - {b: c}\n");
    assert_eq!(
        e,
        "FILE:6:7: `filesystem.hidden[1]`: expected a path (a string starting with / or a variable like $HOME), found a mapping"
    );
    let e = load_err("name: x\ndescription:\n");
    assert_eq!(
        e,
        "FILE:2:12: `description`: expected a one-line description, found nothing (null)"
    );
}

#[test]
fn missing_required_keys() {
    let e = load_err("description: d\n");
    assert_eq!(
        e,
        "FILE:1:1: missing key `name` in the top level (every profile file names itself)"
    );
    let e = load_err("name: x\n");
    assert_eq!(
        e,
        "FILE:1:1: missing key `description` in the top level (it is required)"
    );
}

#[test]
fn invalid_values_name_key_and_expectation() {
    let e = load_err("name: x\ndescription: d\nprocess:\n  timeout: soon\n");
    assert_eq!(
        e,
        "FILE:4:12: `process.timeout`: expected a duration like 90s, 30m or 2h, found `soon`"
    );
    let e = load_err("name: x\ndescription: d\nprocess:\n  limits:\n    file_size: 1GB\n");
    assert_eq!(
        e,
        "FILE:5:16: `process.limits.file_size`: expected a size like 4096, 512M or 1G, found `1GB`"
    );
    let limit = |kv: &str| {
        load_err(&format!(
            "name: x\ndescription: d\nprocess:\n  limits:\n    {kv}\n"
        ))
    };
    assert_eq!(
        limit("memory: 512MB"),
        "FILE:5:13: `process.limits.memory`: expected a size of at least 1M, like 512M or 2G, found `512MB`"
    );
    assert_eq!(
        limit("memory: 4K"),
        "FILE:5:13: `process.limits.memory`: expected a size of at least 1M, like 512M or 2G, found `4K`"
    );
    assert_eq!(
        limit("pids: 1"),
        "FILE:5:11: `process.limits.pids`: expected an integer of at least 2 (processes and threads), found `1`"
    );
    assert_eq!(
        limit("cpu: 150%"),
        "FILE:5:10: `process.limits.cpu`: expected a number of CPUs like 0.5, 1.5 or 2 (at least 0.01), found `150%`"
    );
    assert_eq!(
        limit("enforce: maybe"),
        "FILE:5:14: `process.limits.enforce`: expected `required` or `best-effort`, found `maybe`"
    );
    let e = limit("swap: 1G");
    assert!(e.starts_with("FILE:5:5: "), "{e}");
    assert!(e.contains("swap"), "{e}");
    let e = load_err("name: x\ndescription: d\nlandlock:\n  min_abi: 0\n");
    assert_eq!(
        e,
        "FILE:4:12: `landlock.min_abi`: expected an integer from 1 to 255, found `0`"
    );
    let e = load_err("name: x\ndescription: d\nnetwork:\n  mode: allowlist\n");
    assert_eq!(
        e,
        "FILE:4:9: `network.mode`: expected `none`, `enforce` or `audit`, found `allowlist`"
    );
    let e = load_err("name: My Profile\ndescription: d\n");
    assert!(
        e.starts_with("FILE:1:7: `name`: expected a profile name"),
        "{e}"
    );
}

#[test]
fn env_patterns() {
    let e = load_err("name: x\ndescription: d\nenv:\n  pass: [CI, FOO*BAR]\n");
    assert!(
        e.starts_with("FILE:4:14: `env.pass[1]`: expected a variable name like CI, or a prefix pattern like GITHUB_*"),
        "{e}"
    );
    assert!(e.ends_with("found `FOO*BAR`"), "{e}");
    let e = load_err("name: x\ndescription: d\nenv:\n  pass: ['*']\n");
    assert!(e.starts_with("FILE:4:10: `env.pass[0]`"), "{e}");
    let e = load_err("name: x\ndescription: d\nenv:\n  set: {BAD-NAME: x}\n");
    assert!(
        e.starts_with("FILE:4:9: `env.set`: expected a variable name"),
        "{e}"
    );

    let (r, _) = load_text("name: x\ndescription: d\nenv:\n  pass: [GITHUB_*, CI]\n");
    let p = r.unwrap();
    assert_eq!(
        p.env().pass,
        [
            EnvPattern::Prefix("GITHUB_".into()),
            EnvPattern::Exact("CI".into())
        ]
    );
    assert!(p.env().pass[0].matches("GITHUB_SHA"));
    assert!(!p.env().pass[0].matches("GITHUB"));
}

#[test]
fn unknown_variable_is_a_load_error() {
    let e =
        load_err("name: x\ndescription: d\nfilesystem:\n  read_write: [$WORKSPACE, $FOO/bar]\n");
    assert!(
        e.starts_with("FILE:4:28: `filesystem.read_write[1]`: unknown variable `$FOO` (allowed: $WORKSPACE, $HOME, $TMPDIR, $RUNNER_TEMP"),
        "{e}"
    );
    let e = load_err("name: x\ndescription: d\nenv:\n  set: {A: '${PATH}'}\n");
    assert!(
        e.starts_with("FILE:4:12: `env.set.A`: unknown variable `$PATH`"),
        "{e}"
    );
    let e = load_err("name: x\ndescription: d\nfilesystem:\n  hidden: ['/a$']\n");
    assert!(
        e.starts_with("FILE:4:12: `filesystem.hidden[0]`: a `$` that does not start a variable"),
        "{e}"
    );
}

#[test]
fn unset_variable_is_a_resolve_error_with_position() {
    let (r, file) = load_text(
        "name: x\ndescription: d\nfilesystem:\n  read_write: [$WORKSPACE, $RUNNER_TEMP/cache]\nenv:\n  set:\n    T: ${TMPDIR}/x\n",
    );
    let p = r.unwrap();
    let mut v = vars();
    v.runner_temp = None;
    let e = p.resolve(&v).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{file}:4:28: `filesystem.read_write[1]`: variable `$RUNNER_TEMP` has no value in this run (RUNNER_TEMP is only set on GitHub Actions runners)"
        )
    );
    let mut v = vars();
    v.tmpdir = None;
    let e = p.resolve(&v).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{file}:7:8: `env.set.T`: variable `$TMPDIR` has no value"
        )),
        "{e}"
    );
}

#[test]
fn paths_must_be_absolute_without_dotdot() {
    let e = load_err("name: x\ndescription: d\nfilesystem:\n  read_only: [build]\n");
    assert!(
        e.starts_with("FILE:4:15: `filesystem.read_only[0]` (build): is relative"),
        "{e}"
    );
    let e = load_err("name: x\ndescription: d\nfilesystem:\n  read_only: [$HOME/../etc]\n");
    assert!(
        e.starts_with(
            "FILE:4:15: `filesystem.read_only[0]` ($HOME/../etc): contains a `..` component"
        ),
        "{e}"
    );
}

#[test]
fn hidden_and_writable_is_a_contradiction() {
    let e = load_err(
        "name: x\ndescription: d\nfilesystem:\n  read_write: [$HOME/.ssh]\n  hidden:\n    - /x\n    - $HOME/.ssh/\n",
    );
    assert_eq!(
        e,
        "FILE:7:7: `filesystem.hidden[1]` ($HOME/.ssh) is also in `filesystem.read_write[0]` (line 4): a path cannot be both hidden and writable"
    );
    let e =
        load_err("name: x\ndescription: d\nfilesystem:\n  read_only: [/opt]\n  hidden: [//opt]\n");
    assert_eq!(
        e,
        "FILE:5:12: `filesystem.hidden[0]` (/opt) is also in `filesystem.read_only[0]` (line 4): a path cannot be both hidden and read-only"
    );
}

#[test]
fn contradiction_across_extends_points_at_both_files() {
    // The child makes writable what the built-in default hides.
    let e = load_err(
        "name: x\ndescription: d\nextends: default\nfilesystem:\n  read_write: [$HOME/.ssh]\n",
    );
    assert!(
        e.starts_with("builtin:default:"),
        "the hidden entry is in the built-in: {e}"
    );
    assert!(
        e.contains("`filesystem.hidden[0]` ($HOME/.ssh) is also in `filesystem.read_write[0]` (FILE:5:16): a path cannot be both hidden and writable"),
        "{e}"
    );
}

#[test]
fn root_writable_is_refused() {
    let e = load_err("name: x\ndescription: d\nfilesystem:\n  read_write: [$WORKSPACE, /]\n");
    assert_eq!(
        e,
        "FILE:4:28: `filesystem.read_write[1]` (/): `/` in read_write would make the whole host writable"
    );
}

#[test]
fn hidden_ancestor_of_writable_is_refused() {
    let e = load_err(
        "name: x\ndescription: d\nfilesystem:\n  read_write: [$HOME/.cargo]\n  hidden: [$HOME]\n",
    );
    assert_eq!(
        e,
        "FILE:5:12: `filesystem.hidden[0]` ($HOME) contains `filesystem.read_write[0]` ($HOME/.cargo, line 4): a hidden directory cannot contain a writable path (hide the entries inside it instead)"
    );
}

#[test]
fn resolve_rechecks_rules_on_real_paths() {
    let (r, file) = load_text(
        "name: x\ndescription: d\nfilesystem:\n  read_write: [$WORKSPACE]\n  hidden: [$HOME/.ssh, $TMPDIR]\n",
    );
    let p = r.unwrap();
    // Workspace == HOME: .ssh hidden inside a writable workspace is fine.
    let mut v = vars();
    v.workspace = Some("/home/runner".into());
    let resolved = p.resolve(&v).unwrap();
    assert_eq!(resolved.read_write(), [PathBuf::from("/home/runner")]);
    // Workspace == TMPDIR: the same directory hidden and writable.
    let mut v = vars();
    v.workspace = Some("/tmp/".into());
    let e = p.resolve(&v).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{file}:5:24: `filesystem.hidden[1]` ($TMPDIR = /tmp) is also in `filesystem.read_write[0]` ($WORKSPACE = /tmp, line 4): a path cannot be both hidden and writable"
        )
    );
    // Workspace == /.
    let mut v = vars();
    v.workspace = Some("/".into());
    let e = p.resolve(&v).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{file}:4:16: `filesystem.read_write[0]` ($WORKSPACE = /): `/` in read_write would make the whole host writable"
        )
    );
    // A relative value is refused.
    let mut v = vars();
    v.workspace = Some("repo".into());
    let e = p.resolve(&v).unwrap_err().to_string();
    assert!(
        e.contains("expands to `repo`, which is not an absolute path"),
        "{e}"
    );
}

#[test]
fn extends_cycle_across_files_shows_the_chain() {
    let files = Files::new();
    let a = files.write("a.yml", "name: a\ndescription: d\nextends: b.yml\n");
    let b = files.write("b.yml", "name: b\ndescription: d\nextends: ./a.yml\n");
    let e = load_file(&a).unwrap_err();
    assert!(matches!(e, PolicyError::ExtendsCycle { .. }), "{e:?}");
    let msg = e.to_string();
    let dir = files.dir.path().display().to_string();
    assert_eq!(
        msg,
        format!(
            "{}:3:10: extends cycle: {} -> {} -> {dir}/a.yml",
            b.display(),
            a.display(),
            b.display()
        )
    );
}

#[test]
fn extends_self_and_depth_limit() {
    let files = Files::new();
    let a = files.write("a.yml", "name: a\ndescription: d\nextends: a.yml\n");
    let e = load_file(&a).unwrap_err().to_string();
    assert!(e.contains("extends cycle: "), "{e}");
    for i in 0..20 {
        files.write(
            &format!("p{i}.yml"),
            &format!("name: p{i}\ndescription: d\nextends: p{}.yml\n", i + 1),
        );
    }
    files.write("p20.yml", "name: p20\ndescription: d\n");
    let e = load_file(&files.dir.path().join("p0.yml")).unwrap_err();
    assert!(
        matches!(e, PolicyError::ExtendsTooDeep { max: 16, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("extends chain is deeper than 16 profiles")
    );
}

#[test]
fn extends_missing_file_or_builtin() {
    let e = load_err("name: x\ndescription: d\nextends: nope.yml\n");
    assert!(
        e.starts_with("FILE:3:10: `extends`: cannot load `nope.yml`:"),
        "{e}"
    );
    assert!(e.contains("cannot read"), "{e}");
    let e = load_err("name: x\ndescription: d\nextends: nope\n");
    assert_eq!(
        e,
        format!(
            "FILE:3:10: `extends`: cannot load `nope`: unknown built-in profile `nope` (available: {AVAILABLE})"
        )
    );
}

#[test]
fn extends_builtin_merges() {
    let (r, _) = load_text(
        "name: cargo\ndescription: d\nextends: offline\nfilesystem:\n  read_write: [$HOME/.cargo/registry]\nenv:\n  pass: [CI, CARGO_*]\n  set: {A: b}\nprocess:\n  timeout: 1h30m\n  limits:\n    core_size: 1M\n",
    );
    let p = r.unwrap();
    let base = load_builtin("default").unwrap();
    assert_eq!(p.name(), "cargo");
    assert_eq!(p.description(), "d");
    assert_eq!(p.filesystem().read_write.len(), 2);
    assert_eq!(p.filesystem().read_write[0].raw, "$WORKSPACE");
    assert_eq!(p.filesystem().hidden, base.filesystem().hidden);
    // CI is not repeated; CARGO_* comes after the parent's patterns.
    assert_eq!(p.env().pass.len(), base.env().pass.len() + 1);
    assert_eq!(
        p.env().pass.last(),
        Some(&EnvPattern::Prefix("CARGO_".into()))
    );
    assert_eq!(p.process().timeout, Some(Duration::from_secs(5400)));
    // Child's scalar overrides the parent's.
    assert_eq!(p.process().limits.core_size, Some(1 << 20));
}

#[test]
fn cgroup_limits_merge_key_by_key_through_extends() {
    let files = Files::new();
    files.write(
        "base.yml",
        "name: base\ndescription: d\nprocess:\n  limits:\n    memory: 1G\n    pids: 100\n",
    );
    let child = files.write(
        "child.yml",
        "name: child\ndescription: d\nextends: base.yml\nprocess:\n  limits:\n    pids: 50\n    cpu: 0.5\n    enforce: best-effort\n",
    );
    let p = load_file(&child).unwrap();
    let l = &p.process().limits;
    assert_eq!(l.memory, Some(1 << 30));
    assert_eq!(l.pids, Some(50));
    assert_eq!(l.cpu_millis, Some(500));
    assert_eq!(l.enforce, Some(Enforce::BestEffort));
    assert!(l.needs_cgroup());
    // The built-ins set none: no built-in profile needs a cgroup.
    for (name, _) in builtins() {
        assert!(
            !load_builtin(name).unwrap().process().limits.needs_cgroup(),
            "{name}"
        );
    }
}

#[test]
fn builtins_load_and_resolve() {
    let list = builtins();
    let names: Vec<&str> = list.iter().map(|(n, _)| *n).collect();
    assert_eq!(names.join(", "), AVAILABLE);
    assert_eq!(
        list[0].1,
        "no network; workspace read-write; everything else read-only; credentials hidden"
    );
    let default = load_builtin("default").unwrap();
    for (name, _) in &list {
        let p = load_builtin(name).unwrap();
        assert_eq!(p.name(), *name);
        assert_eq!(p.source(), format!("builtin:{name}"));
        assert_eq!(load(name).unwrap(), p);
        let r = p.resolve(&vars()).unwrap();
        // Everything extends default: its workspace first, its hidden credentials kept.
        assert_eq!(r.read_write()[0], PathBuf::from("/work/repo"));
        // Some add their tools' credential files (profiles/*.yml `hidden`).
        let own_hidden = match *name {
            "yarn" | "poetry" | "gradle" => 1,
            "composer" => 2,
            _ => 0,
        };
        assert_eq!(r.hidden().len(), 18 + own_hidden, "{name}");
        assert!(
            r.hidden()
                .contains(&PathBuf::from("/home/runner/.cargo/credentials.toml"))
        );
        assert!(
            r.hidden()
                .contains(&PathBuf::from("/run/podman/podman.sock"))
        );
        assert_eq!(r.process().limits.core_size, Some(0));
        // default's list first; the package-manager profiles add their tools' settings.
        assert_eq!(
            r.env_pass()[..default.env().pass.len()],
            default.env().pass[..],
            "{name}"
        );
        if ["default", "offline", "github", "codecov", "apt"].contains(name) {
            assert_eq!(r.env_pass(), default.env().pass, "{name}");
        }
        assert!(r.env_pass().contains(&EnvPattern::Prefix("LC_".into())));
        assert!(!r.env_pass().iter().any(|p| p.matches("GITHUB_TOKEN")));
        // No built-in passes a tool's credential setting: matched by a pattern means scrubbed.
        for cred in [
            "npm_config__auth",
            "NPM_CONFIG__AUTHTOKEN",
            "npm_config_//registry.npmjs.org/:_authToken",
            "npm_config_//npm.corp/:_password",
            "CARGO_REGISTRY_TOKEN",
            "CARGO_REGISTRIES_CORP_TOKEN",
            "PIP_INDEX_PASSWORD",
            "BUNDLE_GEMS__CONTRIBSYS__COM",
            "YARN_NPM_AUTH_TOKEN",
            "YARN_NPM_AUTH_IDENT",
            "COREPACK_NPM_TOKEN",
            "pnpm_config__authToken",
            "UV_INDEX_CORP_PASSWORD",
            "UV_PUBLISH_TOKEN",
            "POETRY_HTTP_BASIC_CORP_PASSWORD",
            "POETRY_PYPI_TOKEN_PYPI",
            "POETRY_CERTIFICATES_CORP_CLIENT_CERT",
            "ORG_GRADLE_PROJECT_mavenPassword",
            "NuGetPackageSourceCredentials_corp",
            "VSS_NUGET_EXTERNAL_FEED_ENDPOINTS",
            "COMPOSER_AUTH",
        ] {
            let passed = r.env_pass().iter().any(|p| p.matches(cred));
            let scrubbed = r
                .env_scrub()
                .iter()
                .any(|s| stepjail::policy::model::scrub_matches(s, cred));
            assert!(!passed || scrubbed, "{name} passes {cred}");
        }
        match *name {
            "default" | "offline" => {
                assert_eq!(r.network().mode, NetworkMode::None);
                assert!(r.network().allow.is_empty());
                assert_eq!(r.read_write(), [PathBuf::from("/work/repo")]);
            }
            _ => {
                assert_eq!(r.network().mode, NetworkMode::Enforce, "{name}");
                assert!(!r.network().allow.is_empty(), "{name}");
                // Only names: no built-in reaches an address range.
                assert!(
                    r.network()
                        .allow
                        .iter()
                        .all(|rule| !matches!(rule.target, RuleTarget::Cidr(_))),
                    "{name}"
                );
                let caches = r.read_write().len() - 1;
                let expected = match *name {
                    // apt keeps its lists and downloads in the workspace (profiles/apt.yml).
                    "github" | "codecov" | "apt" => 0,
                    "npm" | "pip" | "poetry" | "composer" | "dockerhub" | "ghcr" => 1,
                    "rubygems" | "yarn" | "pnpm" => 3,
                    // ~/.gradle directory by directory, not its init.d/ (profiles/gradle.yml).
                    "gradle" => 7,
                    _ => 2,
                };
                assert_eq!(caches, expected, "{name}: {:?}", r.read_write());
            }
        }
    }
}

#[test]
fn builtin_host_lists() {
    let hosts = |name: &str| -> Vec<String> {
        load_builtin(name)
            .unwrap()
            .network()
            .allow
            .iter()
            .map(|r| r.text.clone())
            .collect()
    };
    assert_eq!(
        hosts("cargo"),
        ["index.crates.io:443", "static.crates.io:443"]
    );
    assert_eq!(hosts("npm"), ["registry.npmjs.org:443"]);
    assert_eq!(hosts("pip"), ["pypi.org:443", "files.pythonhosted.org:443"]);
    assert_eq!(
        hosts("go"),
        [
            "proxy.golang.org:443",
            "sum.golang.org:443",
            "storage.googleapis.com:443"
        ]
    );
    assert_eq!(
        hosts("rubygems"),
        ["rubygems.org:443", "index.rubygems.org:443"]
    );
    assert_eq!(
        hosts("maven"),
        ["repo.maven.apache.org:443", "repo1.maven.org:443"]
    );
    assert_eq!(
        hosts("github"),
        [
            "github.com:443",
            "api.github.com:443",
            "codeload.github.com:443",
            "objects.githubusercontent.com:443",
            "release-assets.githubusercontent.com:443"
        ]
    );
    assert_eq!(
        hosts("codecov"),
        [
            "ingest.codecov.io:443",
            "api.codecov.io:443",
            "codecov.io:443",
            "storage.googleapis.com:443"
        ]
    );
    assert_eq!(
        hosts("apt"),
        [
            "deb.debian.org:80,443",
            "security.debian.org:80,443",
            "archive.ubuntu.com:80,443",
            "*.archive.ubuntu.com:80,443",
            "security.ubuntu.com:80,443",
            "ports.ubuntu.com:80,443"
        ]
    );
    assert_eq!(
        hosts("yarn"),
        [
            "registry.yarnpkg.com:443",
            "registry.npmjs.org:443",
            "repo.yarnpkg.com:443"
        ]
    );
    assert_eq!(hosts("pnpm"), ["registry.npmjs.org:443"]);
    for python in ["uv", "poetry"] {
        assert_eq!(
            hosts(python),
            ["pypi.org:443", "files.pythonhosted.org:443"]
        );
    }
    assert_eq!(
        hosts("gradle"),
        [
            "services.gradle.org:443",
            "downloads.gradle.org:443",
            "plugins.gradle.org:443",
            "plugins-artifacts.gradle.org:443",
            "repo.maven.apache.org:443",
            "repo1.maven.org:443"
        ]
    );
    assert_eq!(hosts("nuget"), ["api.nuget.org:443"]);
    assert_eq!(
        hosts("composer"),
        [
            "repo.packagist.org:443",
            "packagist.org:443",
            "api.github.com:443",
            "codeload.github.com:443"
        ]
    );
    assert_eq!(
        hosts("dockerhub"),
        [
            "registry-1.docker.io:443",
            "index.docker.io:443",
            "auth.docker.io:443",
            "production.cloudflare.docker.com:443",
            "production.cloudfront.docker.com:443",
            "docker-images-prod.6aa30f8b08e16409b46e0173d6de2f56.r2.cloudflarestorage.com:443"
        ]
    );
    assert_eq!(
        hosts("ghcr"),
        ["ghcr.io:443", "pkg-containers.githubusercontent.com:443"]
    );

    // The decisions the proxy will get for them.
    let cargo = load_builtin("cargo").unwrap().network().clone();
    assert!(cargo.decide_name("index.crates.io", 443).is_allowed());
    assert!(!cargo.decide_name("crates.io", 443).is_allowed());
    assert!(!cargo.decide_name("index.crates.io", 80).is_allowed());
    let apt = load_builtin("apt").unwrap().network().clone();
    assert!(apt.decide_name("azure.archive.ubuntu.com", 80).is_allowed());
    assert!(apt.decide_name("archive.ubuntu.com", 80).is_allowed());
    assert!(
        !apt.decide_name("evil-archive.ubuntu.com.example", 80)
            .is_allowed()
    );
    let codecov = load_builtin("codecov").unwrap().network().clone();
    assert!(!codecov.decide_name("github.com", 443).is_allowed());
    assert_eq!(
        codecov.dns_allowed("ingest.codecov.io").as_deref(),
        Some("ingest.codecov.io:443")
    );
    assert_eq!(codecov.dns_allowed("attacker.example"), None);
}

#[test]
fn load_spec_chooses_builtin_or_file() {
    let e = load("nosuch").unwrap_err().to_string();
    assert_eq!(
        e,
        format!("unknown built-in profile `nosuch` (available: {AVAILABLE})")
    );
    let files = Files::new();
    let p = files.write("mine.yaml", "name: mine\ndescription: d\n");
    assert_eq!(load(p.to_str().unwrap()).unwrap().name(), "mine");
    let e = load("/nonexistent/x.yml").unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent/x.yml: cannot read:"), "{e}");
}

#[test]
fn hostile_yaml_fails_fast() {
    let start = Instant::now();
    let e = load_err(&"[".repeat(10_000));
    assert!(e.starts_with("FILE:1:"), "{e}");
    assert!(e.contains("refusing input: nested too deeply"), "{e}");

    // Deep nesting inside a value: the first pass stops at the type error, the second pass
    // (which finds the key path) must stop at the depth budget instead of recursing.
    let deep = format!(
        "name: x\ndescription: d\nfilesystem:\n  read_write: {}{}\n",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let e = load_err(&deep);
    assert!(e.starts_with("FILE:4:"), "{e}");

    // Billion laughs: 10^9 strings if expanded.
    let mut bomb = String::from(
        "name: &a0 x\ndescription: d\nfilesystem:\n  hidden: &h0 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n  read_only: [",
    );
    bomb.push_str(&["*h0"; 10].join(", "));
    bomb.push_str("]\nprocess: &p\n  x1: &h1 [*h0, *h0, *h0, *h0, *h0, *h0, *h0, *h0, *h0, *h0]\n");
    for i in 2..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "  x{i}: &h{i} [{}]\n",
            vec![format!("*h{p}"); 10].join(", ")
        ));
    }
    let e = load_err(&bomb);
    assert!(e.starts_with("FILE:"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );

    let e = load_err("");
    assert_eq!(
        e,
        "FILE:1:1: the file is empty (expected a mapping with `name:` and `description:`)"
    );
    let e = load_err("name: x\ndescription: d\n---\nname: y\n");
    assert!(e.starts_with("FILE:3:1: a second YAML document"), "{e}");
}

#[test]
fn oversized_and_binary_files_are_refused() {
    let files = Files::new();
    let big = files.write(
        "big.yml",
        &format!("name: x\ndescription: {}\n", "a".repeat(2 << 20)),
    );
    let e = load_file(&big).unwrap_err();
    assert!(matches!(e, PolicyError::TooLarge { .. }), "{e:?}");
    let bin = files.dir.path().join("bin.yml");
    std::fs::write(&bin, b"name: \xff\n").unwrap();
    assert!(
        load_file(&bin)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8 text (invalid byte at offset 6)")
    );
}

#[test]
fn check_file_profiles_and_policies() {
    let files = Files::new();
    let prof = files.write("p.yml", "name: x\ndescription: d\nextends: default\n");
    check_file(&prof).unwrap();

    let policy = files.write(
        "stepjail.yml",
        "version: 1\ndefault: offline\nprofiles:\n  crates:\n    description: crates\n    extends: cargo\n    network:\n      allow: [crates.io]\njobs:\n  test:\n    steps:\n      deps: { profile: crates }\n      fetch: { profile: cargo }\n      build: { profile: offline }\n",
    );
    check_file(&policy).unwrap();

    let bad = files.write(
        "bad.yml",
        "version: 1\njobs:\n  test:\n    steps:\n      deps: { profile: carg }\n",
    );
    assert_eq!(
        check_file(&bad).unwrap_err().to_string(),
        format!(
            "{}:5:24: `jobs.test.steps.deps.profile`: unknown profile `carg` (available: {AVAILABLE})",
            bad.display()
        )
    );

    let bad = files.write(
        "bad2.yml",
        "version: 1\nprofiles:\n  ci:\n    description: d\n    filesystem:\n      hidden: [$HOME]\n      read_write: [$HOME/x]\n",
    );
    assert_eq!(
        check_file(&bad).unwrap_err().to_string(),
        format!(
            "{p}:6:16: `profiles.ci.filesystem.hidden[0]` ($HOME) contains `profiles.ci.filesystem.read_write[0]` ($HOME/x, line 7): a hidden directory cannot contain a writable path (hide the entries inside it instead)",
            p = bad.display()
        )
    );

    let bad = files.write("bad3.yml", "version: 2\n");
    assert_eq!(
        check_file(&bad).unwrap_err().to_string(),
        format!(
            "{}:1:10: `version`: expected 1 (the only policy format so far), found `2`",
            bad.display()
        )
    );

    let bad = files.write(
        "bad4.yml",
        "version: 1\njobs:\n  t:\n    steps:\n      s: { profile: offline, secretz: {} }\n",
    );
    assert_eq!(
        check_file(&bad).unwrap_err().to_string(),
        format!(
            "{}:5:30: unknown key `secretz` in `jobs.t.steps.s` (expected one of: profile, secrets, allow_env)",
            bad.display()
        )
    );

    // A step's brokered secret must be deliverable by the step's profile.
    let bad = files.write(
        "bad4b.yml",
        "version: 1\njobs:\n  t:\n    steps:\n      s:\n        profile: offline\n        secrets: { TOKEN: { broker: [codecov.io] } }\n",
    );
    let msg = check_file(&bad).unwrap_err().to_string();
    assert!(
        msg.contains("jobs.t.steps.s.secrets.TOKEN") && msg.contains("codecov.io"),
        "{msg}"
    );
    let good = files.write(
        "good4.yml",
        "version: 1\njobs:\n  t:\n    steps:\n      s:\n        profile: codecov\n        secrets: { TOKEN: { broker: [codecov.io] }, OTHER: {} }\n        allow_env: [LD_LIBRARY_PATH]\n",
    );
    check_file(&good).unwrap();
    let bad = files.write(
        "bad4c.yml",
        "version: 1\njobs:\n  t:\n    steps:\n      s: { profile: offline, allow_env: [STEPJAIL_STATE] }\n",
    );
    assert!(
        check_file(&bad)
            .unwrap_err()
            .to_string()
            .contains("`jobs.t.steps.s.allow_env`: expected a variable name ([A-Za-z_][A-Za-z0-9_]*), not STEPJAIL_*")
    );
    // Frozen policies are self-contained: no `extends:` of files.
    let bad = files.write(
        "bad4d.yml",
        "version: 1\nprofiles:\n  x: { description: d, extends: ./p.yml }\n",
    );
    assert!(
        check_file(&bad)
            .unwrap_err()
            .to_string()
            .contains("`profiles.x.extends`: expected a built-in profile")
    );

    let bad = files.write(
        "bad5.yml",
        "version: 1\nprofiles:\n  default: {description: d}\n",
    );
    assert!(
        check_file(&bad)
            .unwrap_err()
            .to_string()
            .contains("`profiles.default`: expected a name that is not a built-in profile")
    );

    let bad = files.write("bad6.yml", "foo: 1\n");
    assert_eq!(
        check_file(&bad).unwrap_err().to_string(),
        format!(
            "{}: is neither a profile (no top-level `name:`) nor a policy (no top-level `version:`)",
            bad.display()
        )
    );

    let bad = files.write(
        "bad7.yml",
        "name: x\ndescription: d\nprocess: {timeout: 0}\n",
    );
    assert_eq!(
        check_file(&bad).unwrap_err().to_string(),
        format!(
            "{}:3:20: `process.timeout`: expected a duration like 90s, 30m or 2h, found `0`",
            bad.display()
        )
    );
}

#[test]
fn every_error_with_a_position_has_a_real_one() {
    // Errors that point into a file must never point at 0:0.
    let e = PolicyError::ExtendsCycle {
        file: "x".into(),
        chain: vec!["a".into(), "b".into(), "a".into()],
    };
    assert_eq!(e.to_string(), "x: extends cycle: a -> b -> a");
    assert!(e.location().is_none());
    let (r, _) = load_text("name: x\ndescription: d\nprocess: {timeout: nope}\n");
    let at = r.unwrap_err().location().cloned().unwrap();
    assert_eq!((at.line, at.column), (3, 20));
    let _ = Path::new("unused");
}

#[test]
fn a_list_is_not_a_profile() {
    let e = load_err("- a\n");
    assert_eq!(
        e,
        "FILE:1:1: the top level: expected a mapping with `name:` (a profile) or `version:` (a policy), found a list"
    );
}

#[test]
fn files_are_only_written_into_the_private_tmp_and_expand_variables() {
    let e = load_err("name: x\ndescription: d\nfilesystem:\n  files:\n    /etc/apt/apt.conf: x\n");
    assert_eq!(
        e,
        "FILE:5:5: `filesystem.files`: expected a mapping from a file under /tmp (like /tmp/stepjail/apt.conf) to its content, found `/etc/apt/apt.conf`"
    );
    for bad in ["/tmp", "/tmp/", "/tmp/../etc/x", "tmp/x", "/tmp//x"] {
        let text = format!("name: x\ndescription: d\nfilesystem:\n  files:\n    \"{bad}\": x\n");
        assert!(load_err(&text).contains("`filesystem.files`"), "{bad}");
    }
    let (r, _file) = load_text(
        "name: x\ndescription: d\nextends: apt\nfilesystem:\n  files:\n    /tmp/a/b.conf: \"dir $WORKSPACE\"\n",
    );
    let resolved = r.unwrap().resolve(&vars()).unwrap();
    assert_eq!(
        resolved.files(),
        [
            ("/tmp/a/b.conf".into(), "dir /work/repo".to_string()),
            (
                "/tmp/stepjail/apt.conf".into(),
                load_builtin("apt")
                    .unwrap()
                    .resolve(&vars())
                    .unwrap()
                    .files()[0]
                    .1
                    .clone()
            ),
        ]
    );
    assert!(resolved.files()[1].1.contains("Dir::State \"/work/repo\";"));
    assert_eq!(
        resolved.env_set().get("APT_CONFIG").map(String::as_str),
        Some("/tmp/stepjail/apt.conf")
    );
}
