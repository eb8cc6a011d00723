//! `network.allow` wire entries -> checked [`AllowRule`]s, each error naming the entry's key path
//! and position.
//!
//! Three spellings: `host[:port]` text (no port = 443), `{ host: NAME, ports: [...] }` and
//! `{ cidr: RANGE, ports: [...] }`. Addresses are only accepted in the explicit `cidr` form, so
//! that a name rule can never be read as "and whatever address it resolves to".

use std::collections::HashSet;
use std::net::IpAddr;

use serde_saphyr::Spanned;

use super::error::PolicyError;
use super::hosts::{parse_pattern, rule_text};
use super::model::{AllowRule, Location, RuleTarget};
use super::syntax::parse_count;
use super::wire::{AllowRuleWire, AllowWire, Str};
use super::yaml;

/// The port a rule allows when it names none: HTTPS, what registries and APIs speak.
pub(crate) const DEFAULT_PORT: u16 = 443;

/// Convert one `network.allow` list; `prefix` is prepended to key paths (inline profiles).
pub(crate) fn allow_rules(
    list: Vec<Spanned<AllowWire>>,
    file: &str,
    prefix: &str,
) -> Result<Vec<AllowRule>, PolicyError> {
    let mut out: Vec<AllowRule> = Vec::new();
    // Linear in the number of rules: organisations keep allowlists of thousands of hosts.
    let mut seen: HashSet<String> = HashSet::new();
    for (i, entry) in list.into_iter().enumerate() {
        let at = yaml::location(file, &entry.referenced);
        let key = format!("{prefix}network.allow[{i}]");
        let rule = match entry.value {
            AllowWire::Text(text) => text_rule(&text, at, key)?,
            AllowWire::Rule(map) => map_rule(*map, at, key, file)?,
        };
        if seen.insert(rule.text.clone()) {
            out.push(rule);
        }
    }
    Ok(out)
}

fn bad(at: &Location, key: &str, raw: &str, reason: impl Into<String>) -> PolicyError {
    PolicyError::BadAllowRule {
        at: at.clone(),
        path: key.to_string(),
        raw: raw.to_string(),
        reason: reason.into(),
    }
}

fn rule(target: RuleTarget, mut ports: Vec<u16>, at: Location, key: String) -> AllowRule {
    ports.sort_unstable();
    ports.dedup();
    AllowRule {
        text: rule_text(&target, &ports),
        target,
        ports,
        at,
        key,
        methods: Vec::new(),
        paths: Vec::new(),
        raw_tcp: false,
    }
}

/// `1` to `65535`, digits only.
fn port(s: &str) -> Option<u16> {
    parse_count(s)
        .filter(|p| (1..=65535).contains(p))
        .map(|p| p as u16)
}

/// `example.com`, `example.com:8443`, `*.example.com:443`.
fn text_rule(text: &str, at: Location, key: String) -> Result<AllowRule, PolicyError> {
    let fail = |reason: String| bad(&at, &key, text, reason);
    if let Some((_, rest)) = text.split_once("://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        return Err(fail(format!(
            "a URL; a rule names a host and port, like `{host}` (port 443) or `{host}:80`"
        )));
    }
    // An IPv6 address, bracketed or not, with or without a port: point at the cidr form.
    let bracketed = text
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(inside, _)| inside);
    let ip = bracketed
        .unwrap_or(text)
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.rsplit_once(':').and_then(|(h, _)| h.parse().ok()));
    if let Some(ip) = ip {
        return Err(fail(super::hosts::PatternError::IpLiteral(ip).to_string()));
    }
    if bracketed.is_some() {
        return Err(fail(
            "brackets are only for IPv6 addresses, and those go in { cidr: ... } rules".into(),
        ));
    }
    let (host, ports) = match text.split_once(':') {
        None => (text, vec![DEFAULT_PORT]),
        Some((host, p)) => match port(p) {
            Some(p) => (host, vec![p]),
            None => {
                return Err(fail(format!(
                    "port `{p}` is not a number from 1 to 65535 (write {{ host: {host}, ports: [...] }} for several ports)"
                )));
            }
        },
    };
    let target = parse_pattern(host).map_err(|e| fail(e.to_string()))?;
    Ok(rule(target, ports, at, key))
}

/// `{ host: ..., ports: [...] }` or `{ cidr: ..., ports: [...] }`.
fn map_rule(
    w: AllowRuleWire,
    at: Location,
    key: String,
    file: &str,
) -> Result<AllowRule, PolicyError> {
    let here = |s: &Str| yaml::location(file, &s.referenced);
    let target = match (&w.host, &w.cidr) {
        (Some(h), Some(c)) => {
            return Err(bad(
                &here(c),
                &format!("{key}.cidr"),
                &c.value,
                format!(
                    "a rule has `host:` or `cidr:`, not both (this one also has host `{}`); write two rules",
                    h.value
                ),
            ));
        }
        (None, None) => {
            return Err(PolicyError::MissingKey {
                at,
                path: key,
                key: "host".to_string(),
                why: "a rule mapping needs `host:` (a name) or `cidr:` (an address range)",
            });
        }
        (Some(h), None) => {
            let hkey = format!("{key}.host");
            if h.value.contains(':') && h.value.parse::<IpAddr>().is_err() {
                return Err(bad(
                    &here(h),
                    &hkey,
                    &h.value,
                    "a host name without `:port` (ports go under `ports:`)",
                ));
            }
            parse_pattern(&h.value).map_err(|e| bad(&here(h), &hkey, &h.value, e.to_string()))?
        }
        (None, Some(c)) => cidr(&c.value)
            .map(RuleTarget::Cidr)
            .map_err(|reason| bad(&here(c), &format!("{key}.cidr"), &c.value, reason))?,
    };
    let ports = match w.ports {
        None => vec![DEFAULT_PORT],
        Some(list) if list.is_empty() => {
            return Err(bad(
                &at,
                &format!("{key}.ports"),
                "[]",
                "an empty list allows nothing; list at least one port, or drop the rule",
            ));
        }
        Some(list) => {
            let mut ports = Vec::new();
            for (j, p) in list.iter().enumerate() {
                ports.push(
                    port(p.value.trim()).ok_or_else(|| PolicyError::InvalidValue {
                        at: here(p),
                        path: format!("{key}.ports[{j}]"),
                        expected: "a port number from 1 to 65535".to_string(),
                        found: p.value.clone(),
                    })?,
                );
            }
            ports
        }
    };
    let is_cidr = matches!(target, RuleTarget::Cidr(_));
    let mut r = rule(target, ports, at, key.clone());
    // Method and path rules: a name is too broad for some hosts (github.com lets a step push
    // to any repository); these restrict what may be sent to it.
    const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    for (j, m) in w.methods.iter().flatten().enumerate() {
        let up = m.value.trim().to_ascii_uppercase();
        if !METHODS.contains(&up.as_str()) {
            return Err(PolicyError::InvalidValue {
                at: here(m),
                path: format!("{key}.methods[{j}]"),
                expected: format!("an HTTP method ({})", METHODS.join(", ")),
                found: m.value.clone(),
            });
        }
        if !r.methods.contains(&up) {
            r.methods.push(up);
        }
    }
    for (j, p) in w.paths.iter().flatten().enumerate() {
        let v = p.value.trim();
        if !v.starts_with('/') || v.contains(['?', '#']) || v.split('/').any(|seg| seg == "..") {
            return Err(PolicyError::InvalidValue {
                at: here(p),
                path: format!("{key}.paths[{j}]"),
                expected: "a path prefix starting with `/`, without `?`, `#` or `..`".to_string(),
                found: p.value.clone(),
            });
        }
        r.paths.push(v.to_string());
    }
    if (!r.methods.is_empty() || !r.paths.is_empty()) && is_cidr {
        return Err(bad(
            &r.at,
            &r.key,
            &r.text,
            "methods and paths need a `host:` rule (the host's TLS is intercepted by name)",
        ));
    }
    if let Some(raw) = &w.raw_tcp {
        let rkey = format!("{key}.raw_tcp");
        r.raw_tcp = match raw.value.trim() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(PolicyError::InvalidValue {
                    at: here(raw),
                    path: rkey,
                    expected: "`true` or `false`".to_string(),
                    found: raw.value.clone(),
                });
            }
        };
        if r.raw_tcp && is_cidr {
            return Err(bad(
                &here(raw),
                &rkey,
                &raw.value,
                "a `cidr:` rule already allows any TCP to its addresses; `raw_tcp` is for `host:` rules",
            ));
        }
        if r.raw_tcp && (!r.methods.is_empty() || !r.paths.is_empty()) {
            return Err(bad(
                &here(raw),
                &rkey,
                &raw.value,
                "raw TCP is relayed unread, so methods and paths could not be enforced on it; write the raw ports as a rule of their own",
            ));
        }
    }
    if !r.methods.is_empty() {
        r.text.push_str(&format!(" {}", r.methods.join(",")));
    }
    if !r.paths.is_empty() {
        r.text.push_str(&format!(" {}", r.paths.join(",")));
    }
    if r.raw_tcp {
        r.text.push_str(" raw_tcp");
    }
    Ok(r)
}

/// `203.0.113.0/24`, `2001:db8::/32`, or a single address (`/32` or `/128` implied).
fn cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let net = match s.parse::<ipnet::IpNet>() {
        Ok(net) => net,
        Err(_) => match s.parse::<IpAddr>() {
            Ok(ip) => ipnet::IpNet::from(ip),
            Err(_) => {
                return Err(
                    "not an address range like 203.0.113.0/24 or 2001:db8::/32 (names go under `host:`)"
                        .to_string(),
                );
            }
        },
    };
    if net.prefix_len() == 0 {
        return Err(
            "a /0 range allows every address, loopback and cloud metadata included; name the ranges the step needs"
                .to_string(),
        );
    }
    if net.trunc() != net {
        return Err(format!(
            "has address bits set after the /{} prefix; the range is {}",
            net.prefix_len(),
            net.trunc()
        ));
    }
    Ok(net)
}
