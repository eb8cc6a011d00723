//! Policy files (`.github/stepjail.yml`): which profile, which secrets and which `$GITHUB_ENV`
//! exceptions each step of each job gets.
//!
//! ```yaml
//! version: 1
//! default: offline                 # every step the policy does not list
//! profiles:                        # inline profiles: key = name, built-in parents only
//!   npm-ci: { description: npm ci, extends: npm }
//! jobs:
//!   test:                          # GITHUB_JOB
//!     steps:
//!       deps: { profile: npm-ci }  # GITHUB_ACTION (the step's `id:`)
//!       coverage:
//!         profile: codecov
//!         secrets: { CODECOV_TOKEN: { broker: [ingest.codecov.io] } }
//!         allow_env: [LD_LIBRARY_PATH]
//! ```
//!
//! A policy is frozen at job start (`stepjail setup` copies it where no step can write), so it
//! must be self-contained: inline profiles may extend built-ins only, never files.

use std::path::Path;

use super::convert::{self, valid_profile_name};
use super::error::PolicyError;
use super::load::{self, Source};
use super::model::{Location, Profile, SecretDecl};
use super::syntax::valid_env_name;
use super::wire::{PolicyWire, Str};
use super::{builtin, secret_decls, yaml};

/// A parsed, checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The profile of every step not listed under `jobs`.
    pub default: String,
    profiles: Vec<(String, Profile)>,
    steps: Vec<StepRule>,
}

/// One `jobs.<job>.steps.<step>` entry.
#[derive(Debug, Clone)]
pub struct StepRule {
    pub job: String,
    pub step: String,
    pub profile: String,
    pub secrets: Vec<SecretDecl>,
    pub allow_env: Vec<String>,
    pub at: Location,
}

/// What one step runs under.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The merged, checked profile, the step's secrets included.
    pub profile: Profile,
    /// Names the step may write to `$GITHUB_ENV` despite the dangerous list.
    pub allow_env: Vec<String>,
    /// `Some((job, step))` when an entry matched; `None` when the default applied.
    pub entry: Option<(String, String)>,
}

impl Policy {
    /// Parse and check a policy; every step's profile (with its secrets) is built once here, so
    /// a policy that passes cannot fail later for any step.
    pub fn parse(path: &Path, text: &str, label: &str) -> Result<Policy, PolicyError> {
        let w: PolicyWire = yaml::parse(text, label)?;
        Policy::from_wire_checked(path, w, label)
    }

    /// [`Policy::parse`] of a policy already parsed into its wire form: a policy embedded in
    /// another file (the runner operator's file of `stepjail hooks` holds one per repository).
    pub(crate) fn from_wire_checked(
        path: &Path,
        w: PolicyWire,
        label: &str,
    ) -> Result<Policy, PolicyError> {
        let policy = Policy::from_wire(path, w, label, None)?;
        // Build every step's profile now: a broker host its profile cannot reach is an error
        // at setup, not in the middle of the job.
        policy.profile_named(&policy.default)?;
        for rule in &policy.steps {
            policy.for_step(&rule.job, &rule.step)?;
        }
        Ok(policy)
    }

    /// Parse a policy that [`Policy::parse`] has accepted before (the frozen copy, whose digest
    /// was checked) for one step: only the inline profile that step (job, step) runs under is
    /// built, so a long policy costs each step little. [`Policy::for_step`] of the returned
    /// policy answers for that step only.
    pub fn parse_frozen(
        path: &Path,
        text: &str,
        label: &str,
        job: &str,
        step: &str,
    ) -> Result<Policy, PolicyError> {
        Policy::parse_only(path, text, label, Some((job, step)))
    }

    fn parse_only(
        path: &Path,
        text: &str,
        label: &str,
        only: Option<(&str, &str)>,
    ) -> Result<Policy, PolicyError> {
        let w: PolicyWire = yaml::parse(text, label)?;
        Policy::from_wire(path, w, label, only)
    }

    /// A policy from its wire form; with `only`, for that one (job, step) as
    /// [`Policy::parse_frozen`].
    pub(crate) fn from_wire(
        path: &Path,
        w: PolicyWire,
        label: &str,
        only: Option<(&str, &str)>,
    ) -> Result<Policy, PolicyError> {
        // The one inline profile to build, when parsing for one step.
        let wanted: Option<String> = only.map(|(job, step)| {
            w.jobs
                .as_ref()
                .and_then(|j| j.0.iter().find(|(k, _)| k.value == job))
                .and_then(|(_, j)| j.steps.0.iter().find(|(k, _)| k.value == step))
                .map(|(_, s)| s.profile.value.clone())
                .or_else(|| w.default.as_ref().map(|d| d.value.clone()))
                .unwrap_or_else(|| "default".to_string())
        });
        let mut names = Vec::new();
        let at = |s: &Str| yaml::location(label, &s.referenced);
        if w.version.value.trim() != "1" {
            return Err(PolicyError::InvalidValue {
                at: at(&w.version),
                path: "version".to_string(),
                expected: "1 (the only policy format so far)".to_string(),
                found: w.version.value,
            });
        }
        let mut profiles = Vec::new();
        for (key, profile) in w.profiles.map(|m| m.0).unwrap_or_default() {
            let path_key = format!("profiles.{}", key.value);
            if !valid_profile_name(&key.value) {
                return Err(PolicyError::InvalidValue {
                    at: at(&key),
                    path: "profiles".to_string(),
                    expected: "a profile name as the key: lowercase letters, digits, `_` and `-`"
                        .to_string(),
                    found: key.value,
                });
            }
            if builtin::text(&key.value).is_some() {
                // Shadowing a built-in would make `profile: default` mean different things in
                // different repositories; extend it under a new name instead.
                return Err(PolicyError::InvalidValue {
                    at: at(&key),
                    path: path_key,
                    expected: format!(
                        "a name that is not a built-in profile (write `extends: {}` under a new name)",
                        key.value
                    ),
                    found: key.value,
                });
            }
            if let Some(parent) = &profile.value.extends
                && builtin::text(&parent.value).is_none()
            {
                return Err(PolicyError::InvalidValue {
                    at: at(parent),
                    path: format!("{path_key}.extends"),
                    expected: format!(
                        "a built-in profile ({}): a policy is frozen at job start and must not depend on other files",
                        builtin::names().join(", ")
                    ),
                    found: parent.value.clone(),
                });
            }
            names.push(key.value.clone());
            if wanted.as_ref().is_some_and(|want| *want != key.value) {
                continue;
            }
            let prefix = format!("{path_key}.");
            let layer = convert::layer(
                profile.value,
                yaml::location(label, &profile.referenced),
                label,
                &prefix,
                Some(&key),
            )?;
            let inline_label = format!("{label}#{path_key}");
            let mut chain = vec![(inline_label.clone(), inline_label.clone())];
            let merged = load::merge_with_parents(
                layer,
                &Source::File(path.to_path_buf()),
                inline_label,
                &mut chain,
            )?;
            load::check(&merged)?;
            profiles.push((key.value, merged));
        }
        let mut available: Vec<String> = builtin::names().iter().map(|s| s.to_string()).collect();
        available.extend(names);
        let exists = |name: &Str, path: String| -> Result<(), PolicyError> {
            if available.contains(&name.value) {
                Ok(())
            } else {
                Err(PolicyError::UnknownProfile {
                    at: at(name),
                    path,
                    name: name.value.clone(),
                    available: available.clone(),
                })
            }
        };
        let default = match &w.default {
            Some(d) => {
                exists(d, "default".to_string())?;
                d.value.clone()
            }
            None => "default".to_string(),
        };
        let mut steps = Vec::new();
        for (job, j) in w.jobs.map(|m| m.0).unwrap_or_default() {
            for (step, s) in j.steps.0 {
                let key = format!("jobs.{}.steps.{}", job.value, step.value);
                exists(&s.profile, format!("{key}.profile"))?;
                let secrets = match s.secrets {
                    Some(m) => secret_decls::declarations(m, label, &format!("{key}."))?,
                    None => Vec::new(),
                };
                let mut allow_env = Vec::new();
                for name in s.allow_env.unwrap_or_default() {
                    let upper = name.value.to_ascii_uppercase();
                    if !valid_env_name(&name.value) || upper.starts_with("STEPJAIL_") {
                        return Err(PolicyError::InvalidValue {
                            at: at(&name),
                            path: format!("{key}.allow_env"),
                            expected: "a variable name ([A-Za-z_][A-Za-z0-9_]*), not STEPJAIL_*"
                                .to_string(),
                            found: name.value,
                        });
                    }
                    allow_env.push(name.value);
                }
                steps.push(StepRule {
                    at: at(&step),
                    job: job.value.clone(),
                    step: step.value,
                    profile: s.profile.value,
                    secrets,
                    allow_env,
                });
            }
        }
        Ok(Policy {
            default,
            profiles,
            steps,
        })
    }

    /// Read and parse a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let label = path.display().to_string();
        let text = yaml::read_file(path, &label)?;
        Policy::parse(path, &text, &label)
    }

    /// The entries, in file order.
    pub fn steps(&self) -> &[StepRule] {
        &self.steps
    }

    fn profile_named(&self, name: &str) -> Result<Profile, PolicyError> {
        match self.profiles.iter().find(|(n, _)| n == name) {
            Some((_, p)) => Ok(p.clone()),
            None => load::load_builtin(name),
        }
    }

    /// The profile, secrets and exceptions of step `step` of job `job`; the default profile
    /// when the policy does not list the step.
    pub fn for_step(&self, job: &str, step: &str) -> Result<Chosen, PolicyError> {
        let Some(rule) = self.steps.iter().find(|r| r.job == job && r.step == step) else {
            return Ok(Chosen {
                profile: self.profile_named(&self.default)?,
                allow_env: Vec::new(),
                entry: None,
            });
        };
        let mut profile = self.profile_named(&rule.profile)?;
        for decl in &rule.secrets {
            match profile.secrets.iter_mut().find(|d| d.name == decl.name) {
                Some(have) => *have = decl.clone(),
                None => profile.secrets.push(decl.clone()),
            }
        }
        load::check(&profile)?;
        Ok(Chosen {
            profile,
            allow_env: rule.allow_env.clone(),
            entry: Some((rule.job.clone(), rule.step.clone())),
        })
    }
}
