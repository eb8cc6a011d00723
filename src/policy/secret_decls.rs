//! `secrets:` wire entries -> checked [`SecretDecl`]s, and the checks on a merged profile that
//! involve secrets: a name that is both a secret and an `env.set` value, and a broker host the
//! network rules could never reach (a secret that can never be delivered is a mistake).
//!
//! `broker` is parsed, normalised and checked here; the proxy (`crate::proxy::broker`) does the
//! brokering.

use serde_saphyr::Spanned;

use super::egress::normalize_host;
use super::error::{Conflict, PolicyError};
use super::hosts::HostError;
use super::model::{BrokerPlace, NetworkMode, Profile, SecretDecl};
use super::paths::where_relative;
use super::syntax::valid_env_name;
use super::wire::{BrokerWire, SecretWire, Str};
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
        if super::reserved::is_reserved(&name.value) {
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

        let broker_at = wire
            .broker
            .as_ref()
            .map(|b| yaml::location(file, &b.referenced));
        let (broker, broker_in) = match wire.broker.map(|b| b.value) {
            None => (Vec::new(), Vec::new()),
            Some(BrokerWire::Scalar(found)) => {
                return Err(PolicyError::InvalidValue {
                    at: broker_at.unwrap_or(entry_at),
                    path: format!("{key}.broker"),
                    expected: "a list of host names, like [codecov.io], or a mapping like \
                               { hosts: [codecov.io], in: [header:Authorization] }"
                        .to_string(),
                    found,
                });
            }
            Some(BrokerWire::Hosts(hosts)) => (
                broker_hosts(&hosts, file, &entry_at, &format!("{key}.broker"))?,
                BrokerPlace::default_places(),
            ),
            Some(BrokerWire::Spec(spec)) => {
                let Some(hosts) = spec.hosts else {
                    return Err(PolicyError::BadSecret {
                        at: entry_at,
                        path: format!("{key}.broker"),
                        raw: "hosts".to_string(),
                        reason: "missing; name the hosts the secret is bound to, like \
                                 `{ hosts: [codecov.io] }`"
                            .to_string(),
                    });
                };
                let hosts = broker_hosts(&hosts, file, &entry_at, &format!("{key}.broker.hosts"))?;
                let places = match spec.places {
                    None => BrokerPlace::default_places(),
                    Some(list) => broker_places(&list, file, &key, &entry_at)?,
                };
                (hosts, places)
            }
        };
        out.push(SecretDecl {
            name: name.value,
            optional,
            broker,
            broker_in,
            at,
            key,
        });
    }
    Ok(out)
}

/// The hosts of a `broker:` entry, normalised, without repeats; `path` names the list.
fn broker_hosts(
    hosts: &[Str],
    file: &str,
    entry_at: &super::model::Location,
    path: &str,
) -> Result<Vec<String>, PolicyError> {
    if hosts.is_empty() {
        return Err(PolicyError::BadSecret {
            at: entry_at.clone(),
            path: path.to_string(),
            raw: "[]".to_string(),
            reason: "an empty list binds the secret to no host; drop `broker:` to inject \
                     the value into the step instead"
                .to_string(),
        });
    }
    let mut out: Vec<String> = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let name = broker_host(host).map_err(|reason| PolicyError::BadSecret {
            at: yaml::location(file, &host.referenced),
            path: format!("{path}[{i}]"),
            raw: host.value.clone(),
            reason,
        })?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// `broker.in`: the places in a request where the value may be written, without repeats.
fn broker_places(
    list: &[Str],
    file: &str,
    key: &str,
    entry_at: &super::model::Location,
) -> Result<Vec<BrokerPlace>, PolicyError> {
    if list.is_empty() {
        return Err(PolicyError::BadSecret {
            at: entry_at.clone(),
            path: format!("{key}.broker.in"),
            raw: "[]".to_string(),
            reason: "an empty list names no place to write the value; drop `in:` for the \
                     default, the Authorization header"
                .to_string(),
        });
    }
    let mut out: Vec<BrokerPlace> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let place = broker_place(&s.value).map_err(|reason| PolicyError::BadSecret {
            at: yaml::location(file, &s.referenced),
            path: format!("{key}.broker.in[{i}]"),
            raw: s.value.clone(),
            reason,
        })?;
        if !out.contains(&place) {
            out.push(place);
        }
    }
    Ok(out)
}

/// One `in:` entry: `header:NAME`, `query:NAME` or `body`.
pub(crate) fn broker_place(raw: &str) -> Result<BrokerPlace, String> {
    const EXPECTED: &str = "expected `header:NAME` (a request header), `query:NAME` (a URL \
                            query parameter) or `body`";
    let raw = raw.trim();
    if raw == "body" {
        return Ok(BrokerPlace::Body);
    }
    let Some((kind, name)) = raw.split_once(':') else {
        return Err(EXPECTED.to_string());
    };
    let name = name.trim();
    match kind.trim() {
        "header" => {
            // RFC 9110 token characters.
            let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(tchar) {
                return Err(format!(
                    "`{name}` is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
                ));
            }
            let lower = name.to_ascii_lowercase();
            // The proxy and the HTTP framing own these: a value there would change where the
            // request goes or how it is read.
            if [
                "host",
                "content-length",
                "transfer-encoding",
                "connection",
                "te",
                "upgrade",
            ]
            .contains(&lower.as_str())
            {
                return Err(format!(
                    "`{name}` decides where the request goes or how it is framed; a secret \
                     cannot be written there"
                ));
            }
            Ok(BrokerPlace::Header(lower))
        }
        "query" => {
            if name.is_empty()
                || name
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "&=#?".contains(c))
            {
                return Err(format!(
                    "`{name}` is not a query parameter name (no spaces, `&`, `=`, `#` or `?`)"
                ));
            }
            Ok(BrokerPlace::Query(name.to_string()))
        }
        _ => Err(EXPECTED.to_string()),
    }
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
                    if p.network.allow.views().any(|r| r.matches_name(host)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_places_parse() {
        let h = |n: &str| BrokerPlace::Header(n.to_string());
        assert_eq!(broker_place("body"), Ok(BrokerPlace::Body));
        assert_eq!(broker_place(" body "), Ok(BrokerPlace::Body));
        assert_eq!(broker_place("header:Authorization"), Ok(h("authorization")));
        assert_eq!(broker_place("header: X-Api-Key"), Ok(h("x-api-key")));
        assert_eq!(broker_place("header:x_token.v2"), Ok(h("x_token.v2")));
        assert_eq!(
            broker_place("query:access_token"),
            Ok(BrokerPlace::Query("access_token".into()))
        );
        // Query names are kept as written (servers differ on case).
        assert_eq!(
            broker_place("query:Token"),
            Ok(BrokerPlace::Query("Token".into()))
        );
    }

    #[test]
    fn bad_broker_places_say_what_to_write() {
        let expected = "expected `header:NAME` (a request header), `query:NAME` (a URL query \
                        parameter) or `body`";
        for raw in ["", "Body", "header", "cookie:x", "path:/a", "query", ":x"] {
            assert_eq!(broker_place(raw).unwrap_err(), expected, "{raw:?}");
        }
        for raw in [
            "header:",
            "header:a b",
            "header:x:y",
            "header:é",
            "header:a\"b",
        ] {
            let e = broker_place(raw).unwrap_err();
            assert!(e.contains("is not a header name"), "{raw:?}: {e}");
        }
        for raw in [
            "header:Host",
            "header:content-length",
            "header:Transfer-Encoding",
        ] {
            let e = broker_place(raw).unwrap_err();
            assert!(e.contains("cannot be written there"), "{raw:?}: {e}");
        }
        for raw in ["query:", "query:a=b", "query:a&b", "query:a b", "query:#"] {
            let e = broker_place(raw).unwrap_err();
            assert!(e.contains("is not a query parameter name"), "{raw:?}: {e}");
        }
    }
}
