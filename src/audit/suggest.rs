//! `stepjail audit suggest`: a profile whose allowlist covers what the logged steps reached for.
//!
//! The output is a complete profile (`name`, `description`, `extends`, `network.mode`,
//! `network.allow`) that `stepjail check` accepts. Allow entries are `host:port` strings, or
//! `{ host: NAME, ports: [..] }` for a host seen on several ports.
//!
//! It extends the built-in profile the steps ran under (from `step_start`), and then leaves out
//! what that profile already allowed. An allowed name whose address was refused (a private or
//! link-local address) gets a commented `cidr` rule with that address: opening a special range
//! is a decision for a person.
//!
//! Every name in the output comes from the step's own traffic (SNI, `Host`, DNS queries), so it
//! is treated as hostile: only strings that are syntactically host names become rules, and the
//! rest is counted, never echoed. Addresses without a name are never turned into rules either;
//! allowing an address is a decision for a person, so they are listed as comments.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use super::aggregate::{Aggregate, DestKey, DestStats};
use super::event::{Protocol, Record};
use super::summarize::{host_of_ip, normalize_name};
use crate::policy::model::NetworkMode;

/// The suggested profile for `records` (merged from any number of runs), named `name`.
///
/// Covers every TCP destination with a name that was allowed, denied or would-denied, minus
/// what the profile it extends already allowed. Extends the profile the steps ran under when
/// they all ran under the same built-in one, else `default`. Output is deterministic: hosts by
/// connection count (most first), then by name.
pub fn suggest(records: &[Record], name: &str) -> String {
    let agg = Aggregate::new(records);
    let ran_under = agg.profiles_run();
    let extends = match ran_under.iter().collect::<Vec<_>>()[..] {
        [p] if *p != name && crate::policy::load_builtin(p).is_ok() => *p,
        _ => "default",
    };
    render(&agg, name, extends)
}

/// The special addresses an allowed name resolved to and was refused for, with how many
/// refusals each: the event's address, or (logs written before it was recorded) the one each
/// refusal's reason names.
fn refused_special(key: &DestKey<'_>, stats: &DestStats<'_>) -> Vec<(IpAddr, &'static str, u64)> {
    let special =
        |ip: IpAddr, n: u64| crate::policy::ranges::special_range(ip).map(|range| (ip, range, n));
    if stats.counts.denied == 0 {
        return Vec::new();
    }
    if let Some(ip) = key.ip {
        return special(ip, stats.counts.denied).into_iter().collect();
    }
    stats
        .denied_reasons
        .iter()
        .filter_map(|(reason, n)| {
            let rest = reason.split_once("resolved to ")?.1;
            special(rest.split_once(' ')?.0.parse().ok()?, *n)
        })
        .collect()
}

/// [`suggest`] with the parent profile given (a built-in name). Hosts and ports the parent
/// already allows are left out, and named in a comment.
pub fn suggest_extending(records: &[Record], name: &str, extends: &str) -> String {
    render(&Aggregate::new(records), name, extends)
}

/// [`suggest_extending`]'s text, from the aggregate of the records.
fn render(agg: &Aggregate<'_>, name: &str, extends: &str) -> String {
    let ran_under = agg.profiles_run();
    let same_parent = !ran_under.is_empty() && ran_under.iter().all(|p| *p == extends);
    let parent = crate::policy::load_builtin(extends).ok();
    let parent_allows = |host: &str, port: u16| {
        parent
            .as_ref()
            .is_some_and(|p| p.network().decide_name(host, port).is_allowed())
    };
    let audit_runs: BTreeSet<&str> = agg
        .steps
        .iter()
        .filter(|(_, f)| f.starts.iter().any(|s| s.mode == NetworkMode::Audit))
        .map(|(step, _)| *step)
        .collect();
    let mut looked_up_in_audit: BTreeSet<String> = BTreeSet::new();
    let mut special: BTreeMap<(String, IpAddr, &'static str, u16), usize> = BTreeMap::new();
    let mut hosts: BTreeMap<String, HostStats> = BTreeMap::new();
    let mut by_address: BTreeMap<(IpAddr, u16), usize> = BTreeMap::new();
    let mut not_tcp: BTreeMap<(Protocol, String, u16), usize> = BTreeMap::new();
    let mut looked_up: BTreeSet<String> = BTreeSet::new();
    let mut connected: BTreeSet<String> = BTreeSet::new();
    let mut invalid = 0usize;
    let connections = agg.connections() as usize;
    let runs = agg.steps.len();

    for (key, stats) in &agg.destinations {
        let n = stats.counts.total() as usize;
        let named = key
            .name
            .map(normalize_name)
            .filter(|n| n.trim_matches(['[', ']']).parse::<IpAddr>().is_err());
        let Some(host) = named else {
            // No name, or the "name" is an address literal (`CONNECT 203.0.113.7:443`).
            let ip = key
                .ip
                .or_else(|| key.name?.trim_matches(['[', ']']).parse().ok());
            match ip {
                Some(ip) => *by_address.entry((ip, key.port)).or_default() += n,
                None => invalid += n,
            }
            continue;
        };
        if !is_host_name(&host) {
            invalid += n;
            continue;
        }
        connected.insert(host.clone());
        if key.protocol != Protocol::Tcp {
            *not_tcp.entry((key.protocol, host, key.port)).or_default() += n;
            continue;
        }
        for (ip, range, refused) in refused_special(key, stats) {
            *special
                .entry((host.clone(), ip, range, key.port))
                .or_default() += refused as usize;
        }
        let host_stats = hosts.entry(host).or_default();
        host_stats.ports.insert(key.port);
        host_stats.connections += n;
        host_stats.denied += stats.counts.denied as usize;
        host_stats.would_deny += stats.counts.would_deny as usize;
    }
    for (step, name) in agg.names.keys() {
        let name = normalize_name(name);
        if is_host_name(&name) {
            if audit_runs.contains(step) {
                looked_up_in_audit.insert(name.clone());
            }
            looked_up.insert(name);
        }
    }

    let mut allow: Vec<(String, HostStats)> = hosts.into_iter().collect();
    allow.sort_by(|(ha, a), (hb, b)| b.connections.cmp(&a.connections).then_with(|| ha.cmp(hb)));
    // What the parent already allows needs no rule here.
    let mut already: Vec<String> = Vec::new();
    let mut entries: Vec<(String, String)> = Vec::new();
    for (host, stats) in &allow {
        let (had, needed): (BTreeSet<u16>, BTreeSet<u16>) =
            stats.ports.iter().partition(|p| parent_allows(host, **p));
        if !had.is_empty() {
            already.push(allow_entry(host, &had));
        }
        if !needed.is_empty() {
            entries.push((allow_entry(host, &needed), stats.comment()));
        }
    }
    let width = entries.iter().map(|(e, _)| e.len()).max().unwrap_or(0);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# suggested by `stepjail audit suggest` from {} ({}, {})",
        plural(runs, "run"),
        plural(connections, "connection"),
        plural(entries.len(), "name"),
    );
    if !same_parent && !ran_under.is_empty() {
        let names: Vec<String> = ran_under.iter().map(|p| yaml_scalar(p)).collect();
        let _ = writeln!(
            out,
            "# the steps ran under {} {}: extend {} instead to keep its other settings",
            if names.len() == 1 {
                "profile"
            } else {
                "profiles"
            },
            names.join(", "),
            if names.len() == 1 {
                "its file"
            } else {
                "the right one's file"
            },
        );
    }
    let _ = writeln!(out, "name: {}", yaml_scalar(name));
    out.push_str("description: network allowlist suggested from audit logs\n");
    let _ = writeln!(out, "extends: {}", yaml_scalar(extends));
    out.push_str("network:\n");
    out.push_str("  mode: enforce\n");
    if entries.is_empty() {
        out.push_str("  allow: []\n");
    } else {
        out.push_str("  allow:\n");
    }
    for (entry, comment) in &entries {
        let _ = writeln!(out, "    - {entry:width$}   # {comment}");
    }
    if !already.is_empty() {
        let _ = writeln!(
            out,
            "    # already allowed by {extends}: {}",
            already.join(", ")
        );
    }
    for ((host, ip, range, port), count) in &special {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let _ = writeln!(
            out,
            "    # {host}:{port} resolved to {ip} ({range}), refused ({}); if that address is intended:\n    # - {{ cidr: \"{ip}/{bits}\", ports: [{port}] }}",
            plural(*count, "connection"),
        );
    }
    for ((ip, port), count) in &by_address {
        let _ = writeln!(
            out,
            "    # {}:{port} seen by address only ({}); add an explicit cidr rule if this is intended",
            host_of_ip(*ip),
            plural(*count, "connection"),
        );
    }
    for ((protocol, host, port), count) in &not_tcp {
        let protocol = protocol.as_str();
        let _ = writeln!(
            out,
            "    # {protocol} to {host}:{port} seen {}; the allowlist above covers TCP only",
            plural(*count, "time"),
        );
    }
    // Names looked up in an audit run were answered, so the step could have connected and
    // did not: another audit run will not tell more. Only names denied by enforce might.
    let (in_audit, in_enforce): (Vec<&str>, Vec<&str>) = looked_up
        .iter()
        .filter(|n| !connected.contains(*n))
        .map(String::as_str)
        .partition(|n| looked_up_in_audit.contains(*n));
    if !in_enforce.is_empty() {
        out.push_str(
            "    # looked up but never connected to (port unknown; run in audit mode to learn it):\n",
        );
        for name in in_enforce {
            let _ = writeln!(out, "    #   {name}");
        }
    }
    if !in_audit.is_empty() {
        out.push_str(
            "    # looked up in audit mode but never connected to (nothing to allow unless a later run connects):\n",
        );
        for name in in_audit {
            let _ = writeln!(out, "    #   {name}");
        }
    }
    if invalid > 0 {
        let _ = writeln!(
            out,
            "    # {} to names that are not valid host names left out",
            plural(invalid, "connection"),
        );
    }
    out
}

#[derive(Default)]
struct HostStats {
    ports: BTreeSet<u16>,
    connections: usize,
    denied: usize,
    would_deny: usize,
}

impl HostStats {
    fn comment(&self) -> String {
        let mut c = plural(self.connections, "connection");
        if self.denied > 0 {
            let _ = write!(c, ", {} denied", self.denied);
        }
        if self.would_deny > 0 {
            let _ = write!(c, ", {} would-deny", self.would_deny);
        }
        c
    }
}

/// `host:port`, or `{ host: NAME, ports: [a, b] }` for several ports.
fn allow_entry(host: &str, ports: &BTreeSet<u16>) -> String {
    if let [port] = ports.iter().collect::<Vec<_>>()[..] {
        return format!("{host}:{port}");
    }
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!("{{ host: {host}, ports: [{}] }}", ports.join(", "))
}

/// A lowercase DNS host name: dot-separated labels of `a-z 0-9 - _`, no label empty, longer than
/// 63 or starting or ending with `-`, at most 253 bytes, and a last label that is not all digits.
///
/// Such a string is also a plain YAML scalar that cannot be read as anything but a string, which
/// is what makes writing it unquoted safe.
pub(crate) fn is_host_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    let tld_ok = name
        .rsplit('.')
        .next()
        .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    labels_ok && tld_ok
}

/// `name` as a YAML scalar: bare when it is a simple token, otherwise double-quoted (a JSON
/// string is a valid YAML double-quoted scalar).
pub(crate) fn yaml_scalar(s: &str) -> String {
    let simple = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if simple {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "\"suggested\"".to_owned())
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for ok in [
            "a.example",
            "registry.npmjs.org",
            "x_y.example",
            "1password.com",
            "localhost",
        ] {
            assert!(is_host_name(ok), "{ok}");
        }
        for bad in [
            "",
            "A.example",
            "a..example",
            "-a.example",
            "a-.example",
            "*.example",
            "a.example\n  - evil:443",
            "a example",
            "a:443",
            "1.2.3",
            "123",
            &"a".repeat(64),
        ] {
            assert!(!is_host_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn yaml_scalars() {
        assert_eq!(yaml_scalar("suggested"), "suggested");
        assert_eq!(yaml_scalar("ci-build.v2"), "ci-build.v2");
        assert_eq!(yaml_scalar("yes"), "\"yes\"");
        assert_eq!(yaml_scalar("a: b\n"), "\"a: b\\n\"");
        assert_eq!(yaml_scalar("1abc"), "\"1abc\"");
    }

    #[test]
    fn several_ports_become_a_map() {
        let ports: BTreeSet<u16> = [443, 80].into();
        assert_eq!(
            allow_entry("github.com", &ports),
            "{ host: github.com, ports: [80, 443] }"
        );
        assert_eq!(allow_entry("github.com", &[443].into()), "github.com:443");
    }
}
