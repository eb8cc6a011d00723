//! `secrets:` wire entries -> checked [`SecretDecl`]s, and the checks on a merged profile that
//! involve secrets: a name that is both a secret and an `env.set` value, and a broker host the
//! network rules could never reach (a secret that can never be delivered is a mistake).
//!
//! `broker` is parsed, normalised and checked here; the proxy (`crate::proxy::broker`) does the
//! brokering.

use serde_saphyr::Spanned;

use super::convert::valid_env_name;
use super::egress::normalize_host;
use super::error::{Conflict, PolicyError};
use super::hosts::HostError;
use super::model::{NetworkMode, Profile, SecretDecl};
use super::paths::where_relative;
use super::wire::{SecretWire, Str};
use super::yaml::{self, SpannedMap};

/// Convert one `secrets:` mapping; `prefix` is prepended to key paths (inline profiles).
pub(crate) fn declarations(
    map: SpannedMap<Spanned<Option<SecretWire>>>,
    file: &str,
    prefix: &str,
) -> Result<Vec<SecretDecl>, PolicyError> {
    let mut out = Vec::new();
    for (name, entry) in map.0 {
        let at = yaml::location(file, &name.referenced);
        if !valid_env_name(&name.value) {
            return Err(PolicyError::InvalidValue {
                at,
                path: format!("{prefix}secrets"),
                expected: "a variable name ([A-Za-z_][A-Za-z0-9_]*) as the key".to_string(),
                found: name.value,
            });
        }
        let key = format!("{prefix}secrets.{}", name.value);
        if crate::sandbox::plan::sets_itself(&name.value) {
            return Err(PolicyError::BadSecret {
                at,
                path: key,
                raw: name.value,
                reason: "stepjail sets this variable itself (the proxy, CA bundle and sandbox \
                         variables), so a secret cannot have this name; rename the secret"
                    .to_string(),
            });
        }
        let entry_at = yaml::location(file, &entry.referenced);
        let wire = entry.value.unwrap_or_default();

        let optional = match &wire.optional {
            None => false,
            Some(s) => match s.value.trim() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(PolicyError::InvalidValue {
                        at: yaml::location(file, &s.referenced),
                        path: format!("{key}.optional"),
                        expected: "`true` or `false`".to_string(),
                        found: s.value.clone(),
                    });
                }
            },
        };

        let mut broker: Vec<String> = Vec::new();
        if let Some(hosts) = wire.broker {
            if hosts.is_empty() {
                return Err(PolicyError::BadSecret {
                    at: entry_at,
                    path: format!("{key}.broker"),
                    raw: "[]".to_string(),
                    reason: "an empty list binds the secret to no host; drop `broker:` to inject \
                             the value into the step instead"
                        .to_string(),
                });
            }
            for (i, host) in hosts.iter().enumerate() {
                let name = broker_host(host).map_err(|reason| PolicyError::BadSecret {
                    at: yaml::location(file, &host.referenced),
                    path: format!("{key}.broker[{i}]"),
                    raw: host.value.clone(),
                    reason,
                })?;
                if !broker.contains(&name) {
                    broker.push(name);
                }
            }
        }

        out.push(SecretDecl {
            name: name.value,
            optional,
            broker,
            at,
            key,
        });
    }
    Ok(out)
}

/// A broker host: one exact, normalised host name. The message for a refusal says what to write.
fn broker_host(s: &Str) -> Result<String, String> {
    let raw = s.value.trim();
    if let Some((_, rest)) = raw.split_once("://") {
        let host = rest.split(['/', '?', '#', ':']).next().unwrap_or(rest);
        return Err(format!("a URL; name the host only, like `{host}`"));
    }
    if raw.contains('*') {
        return Err(
            "a wildcard; a secret is bound to exact host names, so that no other name under \
             the domain can receive it"
                .to_string(),
        );
    }
    match normalize_host(raw) {
        Ok(name) => Ok(name),
        Err(HostError::IpLiteral(_)) => Err(
            "an IP address; a secret is bound to a host name, whose certificate the proxy \
             verifies before sending the secret"
                .to_string(),
        ),
        Err(HostError::BadChar(':')) => {
            let host = raw.split(':').next().unwrap_or(raw);
            Err(format!(
                "a port; name the host only, like `{host}` (the rules in `network.allow` decide the ports)"
            ))
        }
        Err(e) => Err(format!("not a host name: {e}")),
    }
}

/// Checks on the merged profile (a child may add the `allow` rule a parent's secret needs).
pub(crate) fn check(p: &Profile) -> Result<(), PolicyError> {
    for d in &p.secrets {
        if p.env.set.contains_key(&d.name) {
            let other = match p.env.set_at.get(&d.name) {
                Some(at) => format!("`env.set.{}` ({})", d.name, where_relative(&d.at, at)),
                None => format!("`env.set.{}`", d.name),
            };
            return Err(PolicyError::Contradiction {
                at: d.at.clone(),
                path: d.key.clone(),
                raw: d.name.clone(),
                conflict: Conflict::SecretAlsoSet,
                other,
            });
        }
        for host in &d.broker {
            let reason = match p.network.mode {
                NetworkMode::Audit => continue,
                NetworkMode::None => format!(
                    "`network.mode` is `none`, so the secret could never be delivered to \
                     `{host}` (allow `{host}` in network.allow)"
                ),
                NetworkMode::Enforce => {
                    if p.network.allow.iter().any(|r| r.matches_name(host)) {
                        continue;
                    }
                    format!(
                        "no `network.allow` rule reaches `{host}`, so the secret could never be \
                         delivered (add `{host}` to network.allow)"
                    )
                }
            };
            return Err(PolicyError::BadSecret {
                at: d.at.clone(),
                path: format!("{}.broker", d.key),
                raw: host.clone(),
                reason,
            });
        }
    }
    Ok(())
}
