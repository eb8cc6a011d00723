//! The named operations that derive a new [`Profile`] from a checked one, for the CI adapters
//! that must change a profile after it was loaded: a repository's profile narrowing the
//! operator's (`stepjail hooks`), and a GitLab stage's script file, masked variables and
//! driver variables. Each re-checks its result with the checks loading runs on a merged
//! profile ([`load::check`](super::load::check) and the `none`-with-`allow` contradiction),
//! after checking what it adds as the converter checks the same value in a file, so a
//! `Profile` is only ever one that passed validation.

use std::time::Duration;

use super::convert::{valid_profile_name, valid_scrub_pattern};
use super::error::{Conflict, PolicyError};
use super::model::{AllowRule, Location, NetworkMode, Profile, RuleTarget, SecretDecl};
use super::syntax::valid_env_name;
use super::{load, paths, reserved, resolve, vars};

/// Whether operator rule `o` allows everything repository rule `r` does.
fn covers(o: &AllowRule, r: &AllowRule) -> bool {
    let target = match (&o.target, &r.target) {
        (RuleTarget::Exact(a), RuleTarget::Exact(b)) => a == b,
        (RuleTarget::Suffix(s), RuleTarget::Exact(b)) => b.ends_with(s.as_str()),
        (RuleTarget::Suffix(s), RuleTarget::Suffix(t)) => t.ends_with(s.as_str()),
        (RuleTarget::Cidr(a), RuleTarget::Cidr(b)) => a.contains(b),
        _ => false,
    };
    let ports = r.ports.iter().all(|p| o.ports.contains(p));
    let methods = o.methods.is_empty()
        || (!r.methods.is_empty() && r.methods.iter().all(|m| o.methods.contains(m)));
    let under = |p: &str, base: &str| {
        p == base
            || base.ends_with('/') && p.starts_with(base)
            || p.strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let paths = o.paths.is_empty()
        || (!r.paths.is_empty() && r.paths.iter().all(|p| o.paths.iter().any(|b| under(p, b))));
    let raw = !r.raw_tcp || o.raw_tcp;
    target && ports && methods && paths && raw
}

fn rank(m: NetworkMode) -> u8 {
    match m {
        NetworkMode::None => 0,
        NetworkMode::Enforce => 1,
        NetworkMode::Audit => 2,
    }
}

/// The checks loading runs on a merged profile, on a derived one.
fn recheck(p: Profile) -> Result<Profile, PolicyError> {
    if !p.name.split('&').all(valid_profile_name) {
        return Err(PolicyError::InvalidValue {
            at: Location {
                file: p.source.clone(),
                line: 0,
                column: 0,
            },
            path: "name".to_string(),
            expected: "profile names (lowercase letters, digits, `_` and `-`) joined by `&`"
                .to_string(),
            found: p.name.clone(),
        });
    }
    if p.network.mode == NetworkMode::None
        && let Some(first) = p.network.allow.views().next()
    {
        return Err(PolicyError::Contradiction {
            at: first.at(),
            path: first.key().to_string(),
            raw: first.text().to_string(),
            conflict: Conflict::NoNetworkWithAllow,
            other: "`network.mode` (none)".to_string(),
        });
    }
    load::check(&p)?;
    Ok(p)
}

impl Profile {
    /// `repository_policy: narrow`: this (the operator's) profile narrowed by `repo`, the
    /// repository's profile for the same step, which may take away and never add. The result
    /// has `repo`'s network mode and allow rules, only the secrets both declare (this profile's
    /// declarations, so a brokered secret stays brokered), the shorter timeout, and the name
    /// `THIS&REPO`; everything else is this profile's.
    ///
    /// Refused, with the position of the repository's rule, when `repo` asks for more: a wider
    /// network mode, an allow rule no rule of this profile covers (host or suffix, ports,
    /// methods, paths, raw TCP, address ranges), a secret this profile does not declare. Then
    /// the result is checked like a loaded profile (a brokered secret whose host the narrowed
    /// rules no longer reach is refused).
    pub fn narrowed_by(&self, repo: &Profile) -> Result<Profile, PolicyError> {
        let (on, rn) = (&self.network, &repo.network);
        let ceiling = format!("the operator's profile '{}'", self.name);
        let wider = |place: String, what: String| PolicyError::Wider { place, what };
        if rank(rn.mode) > rank(on.mode) {
            return Err(wider(
                repo.source.clone(),
                format!(
                    "the repository's profile '{}' has network mode {}, wider than {} ({})",
                    repo.name, rn.mode, ceiling, on.mode
                ),
            ));
        }
        let mut p = self.clone();
        match (on.mode, rn.mode) {
            (NetworkMode::None, _) => {}
            (_, NetworkMode::None) => {
                p.network.mode = NetworkMode::None;
                p.network.allow = Default::default();
            }
            (NetworkMode::Enforce, _) => {
                if let Some(r) = rn
                    .allow
                    .rules()
                    .iter()
                    .find(|r| !on.allow.rules().iter().any(|o| covers(o, r)))
                {
                    return Err(wider(
                        r.at.to_string(),
                        format!("{} ({}) is not allowed by {}", r.text, r.key, ceiling),
                    ));
                }
                p.network.allow = rn.allow.clone();
            }
            // The operator audits (allows everything): any repository choice is narrower.
            (NetworkMode::Audit, m) => {
                p.network.mode = m;
                p.network.allow = rn.allow.clone();
            }
        }
        if let Some(d) = repo
            .secrets
            .iter()
            .find(|d| !self.secrets.iter().any(|o| o.name == d.name))
        {
            return Err(wider(
                d.at.to_string(),
                format!("secret {} is not given to this step by {}", d.name, ceiling),
            ));
        }
        p.secrets
            .retain(|d| repo.secrets.iter().any(|r| r.name == d.name));
        p.process.timeout = shorter(self.process.timeout, repo.process.timeout);
        p.name = format!("{}&{}", self.name, repo.name);
        recheck(p)
    }

    /// This profile with one more `filesystem.files` entry (replacing one of the same path):
    /// `path` must be a normalised absolute path under `/tmp/`, `content` a template with the
    /// variables a profile may use (`$$` for a literal `$`), as in a file.
    pub fn with_file(
        &self,
        path: &str,
        content: &str,
        at: &Location,
    ) -> Result<Profile, PolicyError> {
        let key = format!("filesystem.files.{path}");
        let under_tmp = paths::normalise_absolute(path)
            .ok()
            .filter(|p| p == path && p.starts_with("/tmp/"));
        if under_tmp.is_none() {
            return Err(PolicyError::InvalidValue {
                at: at.clone(),
                path: "filesystem.files".to_string(),
                expected: "a normalised absolute path under /tmp/ as the key".to_string(),
                found: path.to_string(),
            });
        }
        vars::parse(content).map_err(|e| resolve::template_error(e, at, &key, content))?;
        let mut p = self.clone();
        p.filesystem
            .files
            .insert(path.to_string(), (content.to_string(), at.clone()));
        recheck(p)
    }

    /// This profile with `names` declared as optional secrets injected into the step's
    /// environment (`optional: true`, no `broker`), each replacing a declaration of the same
    /// name; `key` names where they come from in messages (`variables` gives
    /// `variables.NAME`). Each name must be a variable name stepjail does not set itself, and
    /// not one `env.set` gives a fixed value.
    pub fn with_injected_secrets<I>(
        &self,
        names: I,
        key: &str,
        at: &Location,
    ) -> Result<Profile, PolicyError>
    where
        I: IntoIterator<Item = String>,
    {
        let mut p = self.clone();
        for name in names {
            let key = format!("{key}.{name}");
            if !valid_env_name(&name) {
                return Err(PolicyError::InvalidValue {
                    at: at.clone(),
                    path: key,
                    expected: "a variable name ([A-Za-z_][A-Za-z0-9_]*)".to_string(),
                    found: name,
                });
            }
            if reserved::is_reserved(&name) {
                return Err(PolicyError::BadSecret {
                    at: at.clone(),
                    path: key,
                    raw: name,
                    reason: "stepjail sets this variable itself (the proxy, CA bundle and \
                             sandbox variables), so a secret cannot have this name"
                        .to_string(),
                });
            }
            p.secrets.retain(|d| d.name != name);
            p.secrets.push(SecretDecl {
                key,
                name,
                optional: true,
                broker: Vec::new(),
                broker_in: Vec::new(),
                at: at.clone(),
            });
        }
        recheck(p)
    }

    /// This profile with more `env.scrub` entries (names, or patterns with `*`), each checked
    /// as in a file and added once.
    pub fn with_scrubbed<'a, I>(&self, patterns: I) -> Result<Profile, PolicyError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut p = self.clone();
        for s in patterns {
            if !valid_scrub_pattern(s) {
                return Err(PolicyError::InvalidValue {
                    at: Location {
                        file: p.source.clone(),
                        line: 0,
                        column: 0,
                    },
                    path: "env.scrub".to_string(),
                    expected: "a variable name ([A-Za-z_][A-Za-z0-9_]*), or a pattern with `*` \
                               like *_authToken"
                        .to_string(),
                    found: s.to_string(),
                });
            }
            if !p.env.scrub.iter().any(|have| have == s) {
                p.env.scrub.push(s.to_string());
            }
        }
        recheck(p)
    }
}

/// The shorter of two timeouts; no timeout is the longest.
fn shorter(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Profile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yml");
        std::fs::write(&path, text).unwrap();
        super::load::load_file(&path).unwrap()
    }

    const BROKERED: &str = "name: op\ndescription: d\nnetwork:\n  allow: [registry.npmjs.org:443, a.example.com:443]\nsecrets:\n  NPM_TOKEN: { broker: [registry.npmjs.org] }\nenv:\n  set: { FIXED: x }\n";

    #[test]
    fn narrowing_to_rules_that_no_longer_reach_a_brokered_host_is_refused() {
        let op = load(BROKERED);
        let ok = load(
            "name: repo\ndescription: d\nnetwork:\n  allow: [registry.npmjs.org:443]\nsecrets: { NPM_TOKEN: {} }\n",
        );
        let n = op.narrowed_by(&ok).unwrap();
        assert_eq!(n.name(), "op&repo");
        assert!(n.secrets()[0].is_brokered());
        // The repository's own profile is fine (its NPM_TOKEN is injected), but the operator's
        // declaration it keeps is brokered to a host the narrowed rules do not reach.
        let repo = load(
            "name: repo\ndescription: d\nnetwork:\n  allow: [a.example.com:443]\nsecrets: { NPM_TOKEN: {} }\n",
        );
        let e = op.narrowed_by(&repo).unwrap_err();
        assert!(
            matches!(&e, PolicyError::BadSecret { path, raw, .. }
                if path == "secrets.NPM_TOKEN.broker" && raw == "registry.npmjs.org"),
            "{e}"
        );
    }

    #[test]
    fn a_file_must_be_under_tmp_and_a_template() {
        let op = load(BROKERED);
        let at = Location {
            file: "gitlab job".into(),
            line: 0,
            column: 0,
        };
        let p = op.with_file("/tmp/s.sh", "echo $$HOME", &at).unwrap();
        assert_eq!(p.filesystem().files["/tmp/s.sh"].0, "echo $$HOME");
        for bad in ["/etc/profile", "/tmp/../etc/x", "/tmp//x", "tmp/x"] {
            let e = op.with_file(bad, "x", &at).unwrap_err();
            assert!(
                matches!(&e, PolicyError::InvalidValue { found, .. } if found == bad),
                "{e}"
            );
        }
        let e = op.with_file("/tmp/s.sh", "echo $HOME_X", &at).unwrap_err();
        assert!(matches!(e, PolicyError::UnknownVariable { .. }), "{e}");
    }

    #[test]
    fn injected_secrets_are_checked_like_declared_ones() {
        let op = load(BROKERED);
        let at = Location {
            file: "gitlab job".into(),
            line: 0,
            column: 0,
        };
        let p = op
            .with_injected_secrets(
                ["NPM_TOKEN".to_string(), "DEPLOY".to_string()],
                "variables",
                &at,
            )
            .unwrap();
        let names: Vec<&str> = p.secrets().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["NPM_TOKEN", "DEPLOY"]);
        assert!(p.secrets().iter().all(|d| d.optional && !d.is_brokered()));
        assert_eq!(p.secrets()[1].key, "variables.DEPLOY");
        let refused = |name: &str| {
            op.with_injected_secrets([name.to_string()], "variables", &at)
                .unwrap_err()
        };
        assert!(matches!(
            refused("HTTPS_PROXY"),
            PolicyError::BadSecret { .. }
        ));
        assert!(matches!(refused("A-B"), PolicyError::InvalidValue { .. }));
        assert!(matches!(
            refused("FIXED"),
            PolicyError::Contradiction {
                conflict: Conflict::SecretAlsoSet,
                ..
            }
        ));
    }

    #[test]
    fn scrubbed_patterns_are_checked_and_added_once() {
        let op = load(BROKERED);
        let p = op
            .with_scrubbed(["CUSTOM_ENV_*", "JOB_RESPONSE_FILE", "CUSTOM_ENV_*"])
            .unwrap();
        assert_eq!(p.env().scrub, ["CUSTOM_ENV_*", "JOB_RESPONSE_FILE"]);
        let e = op.with_scrubbed(["*"]).unwrap_err();
        assert!(
            matches!(&e, PolicyError::InvalidValue { path, .. } if path == "env.scrub"),
            "{e}"
        );
    }
}
