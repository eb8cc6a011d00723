//! A repository's own policy narrowing the operator's (`repository_policy: narrow`).
//!
//! The operator's profile for a step is the ceiling. The repository's profile for the same
//! step may take away, never add:
//! - network: a stricter mode (`none` < `enforce` < `audit`), and under `enforce` an allowlist
//!   whose every rule is covered by one of the operator's (host or suffix, ports, methods,
//!   paths, raw TCP, address ranges);
//! - secrets: only names the operator gives the step (with the operator's declaration, so a
//!   brokered secret stays brokered);
//! - `allow_env`: the names both allow;
//! - the timeout: the shorter one.
//!
//! Everything else (filesystem, environment, limits, landlock) is the operator's. A repository
//! rule that would widen anything is an error naming the rule's file, line and column: the step
//! is not run (the repository asked for less than it would get; running it with more would
//! hide the mistake).
//!
//! The profile's part is `policy`'s ([`Profile::narrowed_by`], which also checks the result as
//! loading checks a profile); this module adds `allow_env`.
//!
//! [`Profile::narrowed_by`]: crate::policy::model::Profile::narrowed_by

use crate::policy::Chosen;

/// The operator's choice `op` for a step narrowed by the repository's choice `repo`: the
/// profile by [`Profile::narrowed_by`], `allow_env` the names both allow.
pub fn narrow(op: Chosen, repo: &Chosen) -> Result<Chosen, String> {
    let profile = op
        .profile
        .narrowed_by(&repo.profile)
        .map_err(|e| e.to_string())?;
    let allow_env = op
        .allow_env
        .iter()
        .filter(|n| repo.allow_env.contains(n))
        .cloned()
        .collect();
    Ok(Chosen {
        profile,
        allow_env,
        entry: op.entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::policy::model::NetworkMode;
    use std::path::Path;

    fn chosen(text: &str, step: &str) -> Chosen {
        Policy::parse(Path::new("/p.yml"), text, "/p.yml")
            .unwrap()
            .for_step("j", step)
            .unwrap()
    }

    const OP: &str = "version: 1
profiles:
  reg:
    description: registry and api
    extends: default
    network:
      allow:
        - registry.npmjs.org:443
        - { host: \"*.example.com\", ports: [443, 80] }
        - { host: api.example.org, ports: [443], methods: [GET], paths: [/v1] }
    secrets: { NPM_TOKEN: { broker: [registry.npmjs.org] }, OTHER: {} }
jobs:
  j:
    steps:
      s: { profile: reg, allow_env: [LD_LIBRARY_PATH, PYTHONPATH] }
";

    fn repo(profile: &str) -> String {
        format!(
            "version: 1\nprofiles:\n  mine:\n    description: mine\n    extends: default\n{profile}jobs:\n  j:\n    steps:\n      s: {{ profile: mine, allow_env: [PYTHONPATH] }}\n"
        )
    }

    #[test]
    fn a_narrower_repository_profile_narrows() {
        let r = chosen(
            &repo(
                "    network: { allow: [registry.npmjs.org:443, a.example.com:443, { host: api.example.org, ports: [443], methods: [GET], paths: [/v1/x] }] }\n    secrets: { NPM_TOKEN: {} }\n",
            ),
            "s",
        );
        let n = narrow(chosen(OP, "s"), &r).unwrap();
        assert_eq!(n.profile.network().mode, NetworkMode::Enforce);
        let texts: Vec<&str> = n
            .profile
            .network()
            .allow
            .iter()
            .map(|r| r.text.as_str())
            .collect();
        assert_eq!(texts[..2], ["registry.npmjs.org:443", "a.example.com:443"]);
        // The operator's declaration: still brokered.
        assert_eq!(n.profile.secrets().len(), 1);
        assert_eq!(n.profile.secrets()[0].broker, vec!["registry.npmjs.org"]);
        assert_eq!(n.allow_env, vec!["PYTHONPATH"]);
        assert_eq!(n.profile.name(), "reg&mine");
        // No network at all is narrower still.
        let n = narrow(chosen(OP, "s"), &chosen(&repo(""), "s")).unwrap();
        assert_eq!(n.profile.network().mode, NetworkMode::None);
        assert!(n.profile.secrets().is_empty());
    }

    #[test]
    fn a_wider_repository_profile_is_refused_with_its_position() {
        let wider = |extra: &str| narrow(chosen(OP, "s"), &chosen(&repo(extra), "s")).unwrap_err();
        let e = wider("    network: { allow: [evil.example.net:443] }\n");
        assert!(e.starts_with("/p.yml:6:"), "{e}");
        assert!(
            e.contains("evil.example.net:443") && e.contains("'reg'"),
            "{e}"
        );
        // Another port, the apex of a suffix rule, another method or path, raw TCP.
        assert!(wider("    network: { allow: [registry.npmjs.org:80] }\n").contains(":80"));
        assert!(wider("    network: { allow: [example.com:443] }\n").contains("example.com"));
        assert!(wider("    network: { allow: [\"*.com:443\"] }\n").contains("*.com"));
        wider(
            "    network: { allow: [{ host: api.example.org, ports: [443], methods: [POST], paths: [/v1] }] }\n",
        );
        wider(
            "    network: { allow: [{ host: api.example.org, ports: [443], methods: [GET], paths: [/v10] }] }\n",
        );
        wider("    network: { allow: [api.example.org:443] }\n");
        wider(
            "    network: { allow: [{ host: registry.npmjs.org, ports: [443], raw_tcp: true }] }\n",
        );
        let e = wider("    network: { mode: audit }\n");
        assert!(e.contains("audit"), "{e}");
        let e = wider("    secrets: { AWS_KEY: {} }\n");
        assert!(e.contains("AWS_KEY") && e.starts_with("/p.yml:6:"), "{e}");
    }
}
