//! The runner operator's file (default `/etc/stepjail/github.yml`): which profile every step of
//! every repository's jobs runs under, and the settings of the runner's hooks.
//!
//! ```yaml
//! version: 1
//! audit_dir: /var/log/stepjail/github   # one JSON Lines log per job (required)
//! images:                               # job `container.image` -> where its steps run
//!   ubuntu:24.04: host                  #   the host's root filesystem (the only target so far)
//!   ghcr.io/acme/ci:*: host             #   a trailing * matches any suffix
//! repository_policy: narrow             # ignore (default) | narrow: a repository's own
//!                                       #   .github/stepjail.yml may narrow, never widen
//! user: runner                          # when the runner runs as root: the steps' user
//! secrets_file: /etc/stepjail/github-secrets.env  # values for declared secrets (optional)
//! resolver: 192.0.2.53:53               # the DNS resolver the proxy asks (optional)
//! default: offline                      # every step of every repository not listed
//! profiles:                             # inline profiles, as in a policy file
//!   npm-ci: { description: npm ci, extends: npm }
//! repositories:
//!   acme/app:                           # GITHUB_REPOSITORY (or `acme/*`)
//!     default: offline
//!     jobs:
//!       build:                          # GITHUB_JOB
//!         steps:
//!           deps: { profile: npm-ci }   # GITHUB_ACTION (the step's `id:`)
//! ```
//!
//! The file is parsed by the policy module's one YAML function (unknown keys are errors naming
//! file, line and column); each repository's section is a policy (`policy::Policy`) built from
//! the shared `profiles` and the top-level `default`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::policy::model::Location;
use crate::policy::{JobWire, Policy, PolicyError, PolicyWire, ProfileWire, SpannedMap, Str};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorWire {
    version: Str,
    audit_dir: Str,
    state_dir: Option<Str>,
    user: Option<Str>,
    resolver: Option<Str>,
    secrets_file: Option<Str>,
    images: Option<SpannedMap<Str>>,
    repository_policy: Option<Str>,
    repository_policy_path: Option<Str>,
    default: Option<Str>,
    profiles: Option<SpannedMap<Spanned<ProfileWire>>>,
    repositories: Option<SpannedMap<RepoWire>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoWire {
    default: Option<Str>,
    jobs: Option<SpannedMap<JobWire>>,
}

/// Whether a repository's own policy file counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoPolicy {
    /// Only the operator's file decides.
    Ignore,
    /// The file at this path in the workspace may narrow each step's profile, never widen it.
    Narrow(PathBuf),
}

/// The operator's file, checked.
#[derive(Debug, Clone)]
pub struct Operator {
    pub path: PathBuf,
    pub label: String,
    /// The file's text: frozen into the job's state at `prepare_job`.
    pub text: String,
    pub audit_dir: PathBuf,
    pub state_dir: Option<PathBuf>,
    pub user: Option<String>,
    pub resolver: Option<std::net::SocketAddr>,
    pub secrets_file: Option<PathBuf>,
    /// Image patterns that run on the host's root filesystem.
    pub host_images: Vec<String>,
    pub repository_policy: RepoPolicy,
}

fn at(label: &str, s: &Str) -> Location {
    Location {
        file: label.to_string(),
        line: s.referenced.line() as usize,
        column: s.referenced.column() as usize,
    }
}

fn invalid(label: &str, s: &Str, path: &str, expected: &str) -> PolicyError {
    PolicyError::InvalidValue {
        at: at(label, s),
        path: path.to_string(),
        expected: expected.to_string(),
        found: s.value.clone(),
    }
}

fn absolute(label: &str, s: &Option<Str>, key: &str) -> Result<Option<PathBuf>, PolicyError> {
    match s {
        Some(s) if Path::new(&s.value).is_absolute() => Ok(Some(PathBuf::from(&s.value))),
        Some(s) => Err(invalid(label, s, key, "an absolute path")),
        None => Ok(None),
    }
}

/// Whether image pattern `pattern` (exact, or ending in `*`) matches `image`.
pub fn image_matches(pattern: &str, image: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => image.starts_with(prefix),
        None => pattern == image,
    }
}

/// Whether repository key `key` (`owner/name` or `owner/*`) matches `repo`; GitHub names
/// ignore ASCII case.
fn repo_matches(key: &str, repo: &str) -> bool {
    match key.strip_suffix("/*") {
        Some(owner) => repo
            .split_once('/')
            .is_some_and(|(o, _)| o.eq_ignore_ascii_case(owner)),
        None => key.eq_ignore_ascii_case(repo),
    }
}

impl Operator {
    /// Reads and checks the operator's file, every repository's policy included.
    pub fn load(path: &Path) -> Result<Operator, PolicyError> {
        let label = path.display().to_string();
        let text = crate::policy::read_text(path, &label)?;
        Operator::parse(path, &text, &label)
    }

    /// Parses and checks the file's text (`label` names it in errors).
    pub fn parse(path: &Path, text: &str, label: &str) -> Result<Operator, PolicyError> {
        Operator::parse_inner(path, text, label, true)
    }

    /// [`Operator::parse`] of the copy frozen at `prepare_job` (checked then): the settings
    /// only; each step builds the one policy it needs.
    pub fn parse_frozen(path: &Path, text: &str, label: &str) -> Result<Operator, PolicyError> {
        Operator::parse_inner(path, text, label, false)
    }

    fn parse_inner(
        path: &Path,
        text: &str,
        label: &str,
        check_all: bool,
    ) -> Result<Operator, PolicyError> {
        let w: OperatorWire = crate::policy::parse_yaml(text, label)?;
        let audit_dir = absolute(label, &Some(w.audit_dir), "audit_dir")?.unwrap_or_default();
        let state_dir = absolute(label, &w.state_dir, "state_dir")?;
        let secrets_file = absolute(label, &w.secrets_file, "secrets_file")?;
        let resolver = match &w.resolver {
            Some(s) => Some(
                s.value
                    .parse()
                    .map_err(|_| invalid(label, s, "resolver", "ADDR:PORT"))?,
            ),
            None => None,
        };
        let mut host_images = Vec::new();
        for (image, target) in w.images.map(|m| m.0).unwrap_or_default() {
            if target.value != "host" {
                return Err(invalid(
                    label,
                    &target,
                    &format!("images.{}", image.value),
                    "host (the host's root filesystem; unpacking images is not supported yet)",
                ));
            }
            host_images.push(image.value);
        }
        let repository_policy = match w.repository_policy.as_ref().map(|s| s.value.as_str()) {
            None | Some("ignore") => RepoPolicy::Ignore,
            Some("narrow") => {
                let rel = w
                    .repository_policy_path
                    .as_ref()
                    .map(|s| s.value.clone())
                    .unwrap_or_else(|| ".github/stepjail.yml".to_string());
                if Path::new(&rel).is_absolute() || rel.split('/').any(|c| c == "..") {
                    let s = w.repository_policy_path.as_ref().unwrap_or(&w.version);
                    return Err(invalid(
                        label,
                        s,
                        "repository_policy_path",
                        "a path relative to the workspace, without ..",
                    ));
                }
                RepoPolicy::Narrow(PathBuf::from(rel))
            }
            Some(_) => {
                return Err(invalid(
                    label,
                    w.repository_policy.as_ref().unwrap_or(&w.version),
                    "repository_policy",
                    "ignore or narrow",
                ));
            }
        };
        let op = Operator {
            path: path.to_path_buf(),
            label: label.to_string(),
            text: text.to_string(),
            audit_dir,
            state_dir,
            user: w.user.map(|u| u.value),
            resolver,
            secrets_file,
            host_images,
            repository_policy,
        };
        // Every repository's policy (and the one for repositories not listed) is built now, so
        // a mistake anywhere fails every job's `prepare_job`, not one step in the middle of one.
        let keys: Vec<String> = w
            .repositories
            .map(|m| m.0.into_iter().map(|(k, _)| k.value).collect())
            .unwrap_or_default();
        for key in keys
            .iter()
            .map(String::as_str)
            .chain([""])
            .filter(|_| check_all)
        {
            op.build(key, None, true)?;
        }
        Ok(op)
    }

    /// Whether the job container image `image` runs on the host's root filesystem.
    pub fn runs_on_host(&self, image: &str) -> bool {
        self.host_images.iter().any(|p| image_matches(p, image))
    }

    /// The policy of repository `repo` (`owner/name`): its section, or the top-level default
    /// for a repository the file does not list. With `only`, built for that (job, step).
    pub fn policy_for(
        &self,
        repo: &str,
        only: Option<(&str, &str)>,
    ) -> Result<Policy, PolicyError> {
        let w: OperatorWire = crate::policy::parse_yaml(&self.text, &self.label)?;
        let keys: Vec<String> = w
            .repositories
            .as_ref()
            .map(|m| m.0.iter().map(|(k, _)| k.value.clone()).collect())
            .unwrap_or_default();
        // An exact entry wins over an `owner/*` one.
        let key = keys
            .iter()
            .find(|k| !k.ends_with("/*") && repo_matches(k, repo))
            .or_else(|| keys.iter().find(|k| repo_matches(k, repo)))
            .cloned()
            .unwrap_or_default();
        self.build_from(w, &key, only, false)
    }

    fn build(
        &self,
        key: &str,
        only: Option<(&str, &str)>,
        all: bool,
    ) -> Result<Policy, PolicyError> {
        let w: OperatorWire = crate::policy::parse_yaml(&self.text, &self.label)?;
        self.build_from(w, key, only, all)
    }

    /// The policy of the repository section `key` ("" for none).
    fn build_from(
        &self,
        w: OperatorWire,
        key: &str,
        only: Option<(&str, &str)>,
        all: bool,
    ) -> Result<Policy, PolicyError> {
        let section = w
            .repositories
            .and_then(|m| m.0.into_iter().find(|(k, _)| k.value == key))
            .map(|(_, r)| r);
        let (default, jobs) = match section {
            Some(r) => (r.default.or(w.default), r.jobs),
            None => (w.default, None),
        };
        let policy = PolicyWire {
            version: w.version,
            default,
            profiles: w.profiles,
            jobs,
        };
        if all {
            Policy::from_wire_checked(&self.path, policy, &self.label)
        } else {
            Policy::from_wire(&self.path, policy, &self.label, only)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "version: 1
audit_dir: /var/log/sj
images: { \"ubuntu:24.04\": host, \"ghcr.io/acme/*\": host }
repository_policy: narrow
default: offline
profiles:
  deps: { description: deps, extends: default, env: { set: { MARK: deps } } }
repositories:
  acme/app:
    jobs:
      build:
        steps:
          fetch: { profile: deps }
  acme/*:
    default: default
";

    fn op() -> Operator {
        Operator::parse(Path::new("/etc/g.yml"), FILE, "/etc/g.yml").unwrap()
    }

    #[test]
    fn repositories_jobs_and_steps_choose_profiles_with_defaults() {
        let op = op();
        let p = op.policy_for("acme/app", None).unwrap();
        assert_eq!(p.for_step("build", "fetch").unwrap().profile.name(), "deps");
        assert_eq!(
            p.for_step("build", "other").unwrap().profile.name(),
            "offline"
        );
        // Case-insensitive, as GitHub's names are.
        let p = op.policy_for("ACME/App", None).unwrap();
        assert_eq!(p.for_step("build", "fetch").unwrap().profile.name(), "deps");
        // `acme/*` has its own default; everyone else gets the top-level one.
        let p = op.policy_for("acme/lib", None).unwrap();
        assert_eq!(
            p.for_step("build", "fetch").unwrap().profile.name(),
            "default"
        );
        let p = op.policy_for("evil/app", None).unwrap();
        assert_eq!(
            p.for_step("build", "fetch").unwrap().profile.name(),
            "offline"
        );
        assert!(op.runs_on_host("ubuntu:24.04"));
        assert!(op.runs_on_host("ghcr.io/acme/ci:1"));
        assert!(!op.runs_on_host("ubuntu:22.04"));
        assert_eq!(
            op.repository_policy,
            RepoPolicy::Narrow(".github/stepjail.yml".into())
        );
    }

    #[test]
    fn mistakes_name_the_file_line_and_column() {
        let err = |text: &str| {
            Operator::parse(Path::new("/g.yml"), text, "/g.yml")
                .unwrap_err()
                .to_string()
        };
        let e = err("version: 1\naudit_dir: /l\nimage: {}\n");
        assert!(e.starts_with("/g.yml:3:1"), "{e}");
        assert!(e.contains("image"), "{e}");
        let e = err("version: 1\naudit_dir: /l\nimages: { \"node:22\": docker }\n");
        assert!(e.starts_with("/g.yml:3:"), "{e}");
        assert!(e.contains("host"), "{e}");
        let e = err("version: 1\naudit_dir: logs\n");
        assert!(e.starts_with("/g.yml:2:12"), "{e}");
        let e = err(
            "version: 1\naudit_dir: /l\nrepositories:\n  a/b:\n    jobs: { j: { steps: { s: { profile: nope } } } }\n",
        );
        assert!(e.starts_with("/g.yml:5:"), "{e}");
        assert!(e.contains("nope"), "{e}");
        let e = err("version: 1\naudit_dir: /l\nrepositories:\n  a/b:\n    defaults: x\n");
        assert!(e.starts_with("/g.yml:5:5"), "{e}");
    }
}
