//! Which variables of the invoking environment never reach a step.

use crate::policy::model::SecretDecl;

/// Credentials CI systems put in every step's environment. Removed unless the step declares
/// them: a test suite has no business holding the token that can push to the repository.
pub const CI_CREDENTIALS: &[&str] = &[
    "GITHUB_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_RUNTIME_URL",
    "ACTIONS_CACHE_URL",
    "ACTIONS_RESULTS_URL",
    "CI_JOB_TOKEN",
    // stepjail's own: the upstream proxy URL may carry the proxy's credentials.
    "STEPJAIL_UPSTREAM_PROXY",
];

/// Whether `name` must be removed from the step's environment even if `env.pass` matches it:
/// it is a CI credential or in the profile's `env.scrub`, and no `secrets:` entry declares it
/// (a declaration is the explicit opt-in, so it wins over both lists).
pub fn is_scrubbed(name: &str, env_scrub: &[String], declared: &[SecretDecl]) -> bool {
    if declared.iter().any(|d| d.name == name) {
        return false;
    }
    CI_CREDENTIALS.contains(&name) || env_scrub.iter().any(|s| s == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::Location;

    fn decl(name: &str) -> SecretDecl {
        SecretDecl {
            name: name.to_string(),
            optional: false,
            broker: Vec::new(),
            broker_in: Vec::new(),
            at: Location {
                file: "p.yml".into(),
                line: 1,
                column: 1,
            },
            key: format!("secrets.{name}"),
        }
    }

    #[test]
    fn ci_credentials_and_listed_names_are_scrubbed_unless_declared() {
        let extra = vec!["MY_DEPLOY_KEY".to_string()];
        for name in CI_CREDENTIALS.iter().copied().chain(["MY_DEPLOY_KEY"]) {
            assert!(is_scrubbed(name, &extra, &[]), "{name}");
            assert!(!is_scrubbed(name, &extra, &[decl(name)]), "{name}");
        }
        assert!(!is_scrubbed("PATH", &extra, &[]));
        assert!(!is_scrubbed("GITHUB_SHA", &extra, &[]));
        // Exact names only: no prefix matching.
        assert!(!is_scrubbed("GITHUB_TOKEN_X", &extra, &[]));
    }
}
