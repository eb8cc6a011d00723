//! `stepjail audit suggest --policy`: a policy file (`.github/stepjail.yml`) with one suggested
//! profile per CI step, from the audit log of a job run by `stepjail step` (typically in the
//! action's audit mode).
//!
//! Each step seen with network activity gets an inline profile named after its job and step,
//! extending the built-in profile it ran under (so its filesystem rules stay) with the
//! allowlist [`super::suggest`] derives from that step's records alone. Steps seen without any
//! network activity get `offline` (or the built-in they ran under, when it has no network).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::event::{Event, Record};
use super::suggest::{suggest_extending, yaml_scalar};

#[derive(Debug, thiserror::Error)]
#[error(
    "none of these records comes from `stepjail step` (no step_start with ci_job and ci_step); use `stepjail audit suggest` without --policy for a profile"
)]
pub struct NoCiSteps;

#[derive(Default)]
struct StepSeen {
    /// The profile the step ran under, last seen.
    profile: String,
    runs: Vec<String>,
}

/// A profile name from a job and step id: lowercase letters, digits, `_` and `-`.
fn profile_key(job: &str, step: &str) -> String {
    let raw = format!("{job}-{step}").to_ascii_lowercase();
    let mut key: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !key.starts_with(|c: char| c.is_ascii_lowercase()) {
        key.insert_str(0, "step-");
    }
    key
}

/// The suggested policy for `records` (one job's log, or several runs of it).
pub fn suggest_policy(records: &[Record]) -> Result<String, NoCiSteps> {
    let mut steps: BTreeMap<(String, String), StepSeen> = BTreeMap::new();
    for r in records {
        if let Event::StepStart(s) = &r.event
            && let (Some(job), Some(step)) = (&s.ci_job, &s.ci_step)
        {
            let seen = steps.entry((job.clone(), step.clone())).or_default();
            seen.profile = s.profile.clone();
            seen.runs.push(r.step.clone());
        }
    }
    if steps.is_empty() {
        return Err(NoCiSteps);
    }
    let mut profiles = String::new();
    let mut jobs: BTreeMap<String, Vec<(String, String, Option<String>)>> = BTreeMap::new();
    let mut used: Vec<String> = crate::policy::builtins()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    for ((job, step), seen) in &steps {
        let mine: Vec<Record> = records
            .iter()
            .filter(|r| seen.runs.contains(&r.step))
            .cloned()
            .collect();
        let mut comment = None;
        let network = mine
            .iter()
            .any(|r| matches!(r.event, Event::Connect(_) | Event::Dns(_)));
        let builtin = crate::policy::load_builtin(&seen.profile).ok();
        let entry = if !network {
            match &builtin {
                Some(p) if p.network().mode == crate::policy::model::NetworkMode::None => {
                    seen.profile.clone()
                }
                _ => {
                    comment = Some(format!(
                        "ran under {}; no network seen",
                        yaml_scalar(&seen.profile)
                    ));
                    "offline".to_string()
                }
            }
        } else if builtin.is_some()
            && suggest_extending(&mine, "x", &seen.profile).contains("\n  allow: []\n")
        {
            // Everything the step reached, the built-in it ran under already allows.
            comment = Some(format!(
                "everything it reached is allowed by {}",
                yaml_scalar(&seen.profile)
            ));
            seen.profile.clone()
        } else {
            let mut key = profile_key(job, step);
            let base = key.clone();
            let mut n = 2;
            while used.contains(&key) {
                key = format!("{base}-{n}");
                n += 1;
            }
            used.push(key.clone());
            let extends = if builtin.is_some() {
                seen.profile.as_str()
            } else {
                "default"
            };
            let text = suggest_extending(&mine, &key, extends);
            let _ = writeln!(profiles, "  {key}:");
            for line in text.lines() {
                if line.starts_with("name:") {
                    continue;
                }
                if line.starts_with("description:") {
                    let _ = writeln!(
                        profiles,
                        "    description: {}",
                        yaml_scalar(&format!(
                            "network allowlist suggested from {} of {job}/{step}",
                            if seen.runs.len() == 1 {
                                "1 run".to_string()
                            } else {
                                format!("{} runs", seen.runs.len())
                            }
                        ))
                    );
                    continue;
                }
                let _ = writeln!(profiles, "    {line}");
            }
            key
        };
        jobs.entry(job.clone())
            .or_default()
            .push((step.clone(), entry, comment));
    }
    let mut out = String::new();
    out.push_str(
        "# suggested by `stepjail audit suggest --policy`: review every host before enforcing\n",
    );
    out.push_str("version: 1\ndefault: offline\n");
    if !profiles.is_empty() {
        out.push_str("profiles:\n");
        out.push_str(&profiles);
    }
    out.push_str("jobs:\n");
    for (job, entries) in &jobs {
        let _ = writeln!(out, "  {}:\n    steps:", yaml_scalar(job));
        for (step, profile, comment) in entries {
            let _ = write!(out, "      {}: {{ profile: {profile} }}", yaml_scalar(step));
            match comment {
                Some(c) => {
                    let _ = writeln!(out, "   # {c}");
                }
                None => out.push('\n'),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_profile_names() {
        assert_eq!(profile_key("test", "deps"), "test-deps");
        assert_eq!(profile_key("Build", "__run_2"), "build-__run_2");
        assert_eq!(profile_key("1job", "x.y"), "step-1job-x-y");
    }

    #[test]
    fn a_step_that_needed_nothing_new_keeps_its_built_in() {
        use crate::audit::event::{Connect, Decision, NameSource, Protocol, StepStart, Via};
        use crate::policy::model::NetworkMode;
        let start = |step: &str| {
            Record::new(
                "run-1",
                Event::StepStart(StepStart {
                    profile: "npm".into(),
                    mode: NetworkMode::Audit,
                    command: "npm".into(),
                    workspace: "/w".into(),
                    ci_job: Some("test".into()),
                    ci_step: Some(step.into()),
                }),
            )
        };
        let connect = |host: &str, decision| {
            Record::new(
                "run-1",
                Event::Connect(Connect {
                    conn: 1,
                    dest_name: Some(host.into()),
                    name_source: NameSource::Connect,
                    dest_ip: None,
                    dest_port: 443,
                    protocol: Protocol::Tcp,
                    via: Via::Proxy,
                    decision,
                    rule: None,
                    reason: None,
                }),
            )
        };
        let got = suggest_policy(&[
            start("deps"),
            connect("registry.npmjs.org", Decision::Allow),
        ])
        .unwrap();
        assert!(
            got.contains(
                "      deps: { profile: npm }   # everything it reached is allowed by npm\n"
            ),
            "{got}"
        );
        assert!(!got.contains("profiles:"), "{got}");
        let mut more = vec![
            start("deps"),
            connect("registry.npmjs.org", Decision::Allow),
        ];
        more.push(connect("github.com", Decision::WouldDeny));
        let got = suggest_policy(&more).unwrap();
        assert!(
            got.contains("      deps: { profile: test-deps }\n"),
            "{got}"
        );
        assert!(got.contains("        - github.com:443"), "{got}");
        assert!(
            got.contains("        # already allowed by npm: registry.npmjs.org:443"),
            "{got}"
        );
    }
}
