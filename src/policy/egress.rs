//! The egress decision engine: may this step reach this name (or address) on this port?
//!
//! Pure functions of the profile's [`Network`] section, called by the proxy for every CONNECT
//! host, TLS SNI, HTTP `Host` and DNS query, and again for every address a name resolved to.
//! The proxy turns a decision into one outcome (status, audit event, stderr line); in audit mode
//! it turns a [`NameDecision::Denied`] into would-deny. Nothing here does I/O.
//!
//! Decisions are made by name. A name rule never allows a bare address, and a bare address is
//! allowed only by a `cidr` rule. After an allowed name is resolved, [`Network::check_resolved`]
//! refuses addresses in special ranges (loopback, private, metadata, ...) unless a `cidr` rule
//! covers them; the proxy must then dial exactly the address it checked.

use std::net::IpAddr;

use super::allow_list::RuleRef;
pub use super::hosts::rule_text;
use super::model::{AllowRule, Network, NetworkMode, RuleTarget};

pub use super::hosts::{HostError, normalize_host};
pub use super::ranges::{SPECIAL_RANGES, special_range};

/// The answer for one connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameDecision {
    /// `rule` is the canonical text of the first rule that allowed it ([`AllowRule::text`]).
    Allowed {
        rule: String,
    },
    Denied {
        reason: DenyReason,
    },
}

impl NameDecision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, NameDecision::Allowed { .. })
    }
}

/// Why an attempt is refused. The Display text is what users read after `denied HOST:PORT (`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DenyReason {
    /// `network.mode: none`: nothing is reachable.
    #[error("network access is disabled for this step (network.mode: none)")]
    NetworkDisabled,
    /// No rule names this host (or address).
    #[error("not allowed by profile")]
    NotAllowed,
    /// Some rule names the host, none on this port.
    #[error(
        "port {port} not allowed for {host} (allowed: {})",
        join_ports(allowed)
    )]
    PortNotAllowed {
        /// The normalised name, or the address.
        host: String,
        port: u16,
        /// Every port some matching rule allows, sorted.
        allowed: Vec<u16>,
    },
    /// The host is not a name we can match (bad characters, too long, a numeric last label).
    /// `host` is printable: control characters escaped, cut at 100 characters.
    #[error("invalid host name \"{host}\": {error}")]
    InvalidHost { host: String, error: HostError },
    /// An allowed name resolved to an address in a special range. The text ends with the rule
    /// that would open exactly that address (on the name rule's ports).
    #[error(
        "resolved to {ip} ({range}) which is not allowed unless a cidr rule names it: add `{}` to network.allow",
        cidr_rule_for(*ip, rule)
    )]
    SpecialAddress {
        /// The name rule that allowed the name.
        rule: String,
        ip: IpAddr,
        range: &'static str,
    },
}

/// The profile line that opens exactly `ip`, on the ports of `name_rule` (canonical rule text,
/// `mirror.corp:80,443 GET /x`); without ports when the rule text has none (audit mode).
pub fn cidr_rule_for(ip: IpAddr, name_rule: &str) -> String {
    let net = ipnet::IpNet::from(ip);
    let cidr = match net {
        // YAML reads an unquoted `::` as a mapping key.
        ipnet::IpNet::V6(_) => format!("\"{net}\""),
        ipnet::IpNet::V4(_) => net.to_string(),
    };
    let ports: Option<Vec<u16>> = name_rule
        .split_whitespace()
        .next()
        .and_then(|target| target.rsplit_once(':'))
        .and_then(|(_, ports)| ports.split(',').map(|p| p.parse().ok()).collect());
    match ports {
        Some(p) if !p.is_empty() => format!("- {{ cidr: {cidr}, ports: [{}] }}", join_ports(&p)),
        _ => format!("- {{ cidr: {cidr} }}"),
    }
}

fn join_ports(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A hostile name must not put escape sequences on a terminal or a megabyte in a log line.
fn printable(s: &str) -> String {
    let escaped: String = s.escape_debug().collect();
    match escaped.char_indices().nth(100) {
        Some((i, _)) => format!("{}...", &escaped[..i]),
        None => escaped,
    }
}

impl std::fmt::Display for RuleTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleTarget::Exact(name) => f.write_str(name),
            RuleTarget::Suffix(suffix) => write!(f, "*{suffix}"),
            RuleTarget::Cidr(net) => write!(f, "{net}"),
        }
    }
}

/// Does `path` fall under `prefix`, on a segment boundary (`/repos/acme` covers `/repos/acme`
/// and `/repos/acme/x`, not `/repos/acme-evil`)?
pub fn path_under(path: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Network {
    /// Whether some rule for `host` restricts methods or paths (its TLS is then intercepted).
    pub fn is_restricted(&self, host: &str) -> bool {
        self.allow
            .views()
            .any(|r| r.matches_name(host) && r.is_restricted())
    }

    /// Decides one HTTP request to `host:port` against the method and path rules: allowed by
    /// any matching rule without restrictions, or by one whose methods and paths cover it.
    pub fn request_allowed(
        &self,
        host: &str,
        port: u16,
        method: &str,
        path: &str,
    ) -> Result<String, String> {
        // Servers normalise dot segments and may decode %2e/%2f: such a path could match a
        // prefix here and mean another one there. Refused whenever rules restrict the host.
        let lower = path.to_ascii_lowercase();
        let sneaky = path.split('/').any(|seg| seg == ".." || seg == ".")
            || lower.contains("%2e")
            || lower.contains("%2f")
            || lower.contains("%5c")
            || path.contains('\\');
        if sneaky && self.is_restricted(host) {
            return Err(format!(
                "{method} {path}: dot segments or encoded separators are refused where method and path rules apply"
            ));
        }
        let rules = self
            .allow
            .views()
            .filter(|r| r.matches_name(host) && r.has_port(port));
        for r in rules {
            let method_ok = r.methods().is_empty() || r.methods().any(|m| m == method);
            let path_ok = r.paths().is_empty() || r.paths().any(|p| path_under(path, p));
            if method_ok && path_ok {
                return Ok(r.text().to_string());
            }
        }
        Err(format!(
            "{method} {path} is outside the method and path rules for {host}"
        ))
    }
}

impl Network {
    /// The rule, if any, that lets a CONNECT tunnel to the name `host` on `port` carry a
    /// protocol that is neither TLS nor HTTP (`raw_tcp: true`).
    pub fn raw_tcp_rule(&self, host: &str, port: u16) -> Option<String> {
        self.allow
            .views()
            .find(|r| r.raw_tcp() && r.matches_name(host) && r.has_port(port))
            .map(|r| r.text().to_string())
    }
}

impl AllowRule {
    /// Whether this rule names `name`, which must already be normalised. Cidr rules never match
    /// names.
    pub fn matches_name(&self, name: &str) -> bool {
        match &self.target {
            RuleTarget::Exact(exact) => name == exact,
            // A normalised name has no empty label, so a match always has a label before the
            // suffix: `example.com` does not end with `.example.com`, and `badexample.com`
            // does not either.
            RuleTarget::Suffix(suffix) => name.ends_with(suffix.as_str()),
            RuleTarget::Cidr(_) => false,
        }
    }

    /// Whether this is a cidr rule covering `ip`. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// is the IPv4 address it maps, so a rule for either spelling covers it.
    pub fn covers_ip(&self, ip: IpAddr) -> bool {
        match &self.target {
            RuleTarget::Cidr(net) => net.contains(&ip) || net.contains(&ip.to_canonical()),
            RuleTarget::Exact(_) | RuleTarget::Suffix(_) => false,
        }
    }
}

impl Network {
    pub fn mode(&self) -> NetworkMode {
        self.mode
    }

    /// May the step connect to `host` on `port`? `host` is as received (CONNECT host, SNI,
    /// `Host` header without its port) and is normalised here. An IP literal (`1.2.3.4`,
    /// `::1`, `[::1]`) is decided as an address by [`Network::decide_ip`].
    pub fn decide_name(&self, host: &str, port: u16) -> NameDecision {
        if self.mode == NetworkMode::None {
            return denied(DenyReason::NetworkDisabled);
        }
        let name = match normalize_host(host) {
            Ok(name) => name,
            Err(HostError::IpLiteral(ip)) => return self.decide_ip(ip, port),
            Err(error) => {
                return denied(DenyReason::InvalidHost {
                    host: printable(host),
                    error,
                });
            }
        };
        self.decide(&name, port, |rule| rule.matches_name(&name))
    }

    /// May the step connect to `ip` on `port` when there is no name (a transparent connection
    /// without SNI or `Host`, or an IP literal)? Only cidr rules can allow it.
    pub fn decide_ip(&self, ip: IpAddr, port: u16) -> NameDecision {
        if self.mode == NetworkMode::None {
            return denied(DenyReason::NetworkDisabled);
        }
        self.decide(&ip.to_string(), port, |rule| rule.covers_ip(ip))
    }

    fn decide(&self, shown: &str, port: u16, matches: impl Fn(&RuleRef) -> bool) -> NameDecision {
        let mut other_ports = Vec::new();
        for rule in self.allow.views().filter(|r| matches(r)) {
            if rule.has_port(port) {
                return NameDecision::Allowed {
                    rule: rule.text().to_string(),
                };
            }
            other_ports.extend(rule.ports());
        }
        if other_ports.is_empty() {
            return denied(DenyReason::NotAllowed);
        }
        other_ports.sort_unstable();
        other_ports.dedup();
        denied(DenyReason::PortNotAllowed {
            host: shown.to_string(),
            port,
            allowed: other_ports,
        })
    }

    /// After the name allowed by `name_rule` resolved to `ip`: may the proxy dial `ip`? Refuses
    /// every address in [`SPECIAL_RANGES`] unless a cidr rule (on any port: the name rule already
    /// decided the port) covers it.
    pub fn check_resolved(&self, name_rule: &str, ip: IpAddr) -> Result<(), DenyReason> {
        if self.mode == NetworkMode::None {
            return Err(DenyReason::NetworkDisabled);
        }
        match special_range(ip) {
            None => Ok(()),
            Some(_) if self.allow.views().any(|r| r.covers_ip(ip)) => Ok(()),
            Some(range) => Err(DenyReason::SpecialAddress {
                rule: name_rule.to_string(),
                ip,
                range,
            }),
        }
    }

    /// May the DNS stub answer `name` (ask upstream and return its A/AAAA records)? Yes when a
    /// name rule on any port matches it; returns that rule's text. `None` means NXDOMAIN without
    /// asking upstream. In audit mode the caller answers anyway and logs a would-deny.
    pub fn dns_allowed(&self, name: &str) -> Option<String> {
        if self.mode == NetworkMode::None {
            return None;
        }
        let name = normalize_host(name).ok()?;
        self.allow
            .views()
            .find(|r| r.matches_name(&name))
            .map(|r| r.text().to_string())
    }
}

fn denied(reason: DenyReason) -> NameDecision {
    NameDecision::Denied { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::hosts::parse_pattern;
    use crate::policy::model::Location;

    fn rule(pattern: &str, ports: &[u16]) -> AllowRule {
        let target = match pattern.parse::<ipnet::IpNet>() {
            Ok(net) => RuleTarget::Cidr(net),
            Err(_) => parse_pattern(pattern).unwrap(),
        };
        AllowRule {
            text: rule_text(&target, ports),
            target,
            ports: ports.to_vec(),
            at: Location {
                file: "t.yml".into(),
                line: 1,
                column: 1,
            },
            key: "network.allow[0]".into(),
            methods: vec![],
            paths: vec![],
            raw_tcp: false,
        }
    }

    fn net(mode: NetworkMode, rules: &[(&str, &[u16])]) -> Network {
        Network {
            mode,
            allow: rules.iter().map(|(p, ports)| rule(p, ports)).collect(),
            upstream_proxy: None,
            max_connections: None,
        }
    }

    fn allowed(rule: &str) -> NameDecision {
        NameDecision::Allowed { rule: rule.into() }
    }

    fn not_allowed() -> NameDecision {
        denied(DenyReason::NotAllowed)
    }

    fn wrong_port(host: &str, port: u16, allowed: &[u16]) -> NameDecision {
        denied(DenyReason::PortNotAllowed {
            host: host.into(),
            port,
            allowed: allowed.to_vec(),
        })
    }

    fn sample() -> Network {
        net(
            NetworkMode::Enforce,
            &[
                ("index.crates.io", &[443]),
                ("*.githubusercontent.com", &[443]),
                ("github.com", &[80, 443]),
                ("github.com", &[22]),
                ("bücher.example", &[443]),
                ("203.0.113.0/24", &[443]),
                ("2001:db8::/32", &[8080]),
                ("10.1.0.0/16", &[5432]),
            ],
        )
    }

    #[test]
    fn rule_texts() {
        let n = sample();
        let texts: Vec<&str> = n.allow.views().map(|r| r.text()).collect();
        assert_eq!(
            texts,
            [
                "index.crates.io:443",
                "*.githubusercontent.com:443",
                "github.com:80,443",
                "github.com:22",
                "xn--bcher-kva.example:443",
                "203.0.113.0/24:443",
                "[2001:db8::/32]:8080",
                "10.1.0.0/16:5432",
            ]
        );
    }

    #[test]
    fn decide_name_table() {
        let n = sample();
        let cases: Vec<(&str, u16, NameDecision)> = vec![
            ("index.crates.io", 443, allowed("index.crates.io:443")),
            ("INDEX.Crates.IO", 443, allowed("index.crates.io:443")),
            ("index.crates.io.", 443, allowed("index.crates.io:443")),
            (
                "index.crates.io",
                80,
                wrong_port("index.crates.io", 80, &[443]),
            ),
            ("static.crates.io", 443, not_allowed()),
            ("crates.io", 443, not_allowed()),
            ("xindex.crates.io", 443, not_allowed()),
            ("index.crates.io.evil.example", 443, not_allowed()),
            // Wildcard: any depth, never the apex, never a name that only ends in the same text.
            (
                "raw.githubusercontent.com",
                443,
                allowed("*.githubusercontent.com:443"),
            ),
            (
                "a.b.c.githubusercontent.com",
                443,
                allowed("*.githubusercontent.com:443"),
            ),
            (
                "RAW.GitHubUserContent.com.",
                443,
                allowed("*.githubusercontent.com:443"),
            ),
            ("githubusercontent.com", 443, not_allowed()),
            ("evilgithubusercontent.com", 443, not_allowed()),
            ("githubusercontent.com.evil.example", 443, not_allowed()),
            (
                "raw.githubusercontent.com",
                80,
                wrong_port("raw.githubusercontent.com", 80, &[443]),
            ),
            // Several rules for one host: first allowing rule wins; ports are pooled in the
            // denial.
            ("github.com", 443, allowed("github.com:80,443")),
            ("github.com", 80, allowed("github.com:80,443")),
            ("github.com", 22, allowed("github.com:22")),
            (
                "github.com",
                8443,
                wrong_port("github.com", 8443, &[22, 80, 443]),
            ),
            ("api.github.com", 443, not_allowed()),
            // IDN: Unicode and punycode spellings are one name.
            ("bücher.example", 443, allowed("xn--bcher-kva.example:443")),
            ("BÜCHER.example.", 443, allowed("xn--bcher-kva.example:443")),
            (
                "xn--bcher-kva.example",
                443,
                allowed("xn--bcher-kva.example:443"),
            ),
            ("bucher.example", 443, not_allowed()),
            // IP literals are decided as addresses: only cidr rules allow them.
            ("203.0.113.7", 443, allowed("203.0.113.0/24:443")),
            ("203.0.113.7", 80, wrong_port("203.0.113.7", 80, &[443])),
            ("198.51.100.1", 443, not_allowed()),
            ("[2001:db8::5]", 8080, allowed("[2001:db8::/32]:8080")),
            ("2001:db8::5", 8080, allowed("[2001:db8::/32]:8080")),
            ("[2001:db9::5]", 8080, not_allowed()),
        ];
        for (host, port, want) in cases {
            assert_eq!(n.decide_name(host, port), want, "{host}:{port}");
        }
    }

    #[test]
    fn invalid_names_are_denied_with_a_printable_reason() {
        let n = sample();
        let d = n.decide_name("2130706433", 443);
        assert_eq!(
            d,
            denied(DenyReason::InvalidHost {
                host: "2130706433".into(),
                error: HostError::NumericName("2130706433".into()),
            })
        );
        let NameDecision::Denied { reason } = n.decide_name("evil\u{1b}[2J.example", 443) else {
            panic!("allowed");
        };
        assert_eq!(
            reason.to_string(),
            "invalid host name \"evil\\u{1b}[2J.example\": `\\u{1b}` is not allowed in a host name (letters, digits, `-` and `.` only)"
        );
        let NameDecision::Denied { reason } = n.decide_name(&"a".repeat(5000), 443) else {
            panic!("allowed");
        };
        assert!(reason.to_string().len() < 200, "{reason}");
        for bad in ["", "*.github.com", "github.com:443", "git hub.com", "a..b"] {
            assert!(
                matches!(
                    n.decide_name(bad, 443),
                    NameDecision::Denied {
                        reason: DenyReason::InvalidHost { .. }
                    }
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reasons_read_well() {
        assert_eq!(DenyReason::NotAllowed.to_string(), "not allowed by profile");
        assert_eq!(
            DenyReason::PortNotAllowed {
                host: "github.com".into(),
                port: 22,
                allowed: vec![443],
            }
            .to_string(),
            "port 22 not allowed for github.com (allowed: 443)"
        );
        assert_eq!(
            DenyReason::PortNotAllowed {
                host: "github.com".into(),
                port: 22,
                allowed: vec![80, 443],
            }
            .to_string(),
            "port 22 not allowed for github.com (allowed: 80, 443)"
        );
        assert_eq!(
            DenyReason::NetworkDisabled.to_string(),
            "network access is disabled for this step (network.mode: none)"
        );
        assert_eq!(
            DenyReason::SpecialAddress {
                rule: "metadata.example:80".into(),
                ip: "169.254.169.254".parse().unwrap(),
                range: "link-local",
            }
            .to_string(),
            "resolved to 169.254.169.254 (link-local) which is not allowed unless a cidr rule names it: \
             add `- { cidr: 169.254.169.254/32, ports: [80] }` to network.allow"
        );
    }

    #[test]
    fn cidr_rule_for_names_the_address_and_the_name_rules_ports() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            cidr_rule_for(ip("10.1.2.3"), "mirror.corp:443"),
            "- { cidr: 10.1.2.3/32, ports: [443] }"
        );
        assert_eq!(
            cidr_rule_for(ip("10.1.2.3"), "*.corp:80,443 GET /simple/"),
            "- { cidr: 10.1.2.3/32, ports: [80, 443] }"
        );
        assert_eq!(
            cidr_rule_for(ip("fd00::5"), "mirror.corp:8443"),
            "- { cidr: \"fd00::5/128\", ports: [8443] }"
        );
        assert_eq!(
            cidr_rule_for(ip("127.0.0.1"), ""),
            "- { cidr: 127.0.0.1/32 }"
        );
    }

    #[test]
    fn decide_ip_table() {
        let n = sample();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases: Vec<(&str, u16, NameDecision)> = vec![
            ("203.0.113.0", 443, allowed("203.0.113.0/24:443")),
            ("203.0.113.255", 443, allowed("203.0.113.0/24:443")),
            ("203.0.112.255", 443, not_allowed()),
            ("203.0.114.0", 443, not_allowed()),
            ("203.0.113.1", 22, wrong_port("203.0.113.1", 22, &[443])),
            // The mapped spelling of an allowed IPv4 address is that address.
            ("::ffff:203.0.113.1", 443, allowed("203.0.113.0/24:443")),
            ("2001:db8::", 8080, allowed("[2001:db8::/32]:8080")),
            (
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                8080,
                allowed("[2001:db8::/32]:8080"),
            ),
            ("2001:db9::", 8080, not_allowed()),
            ("2001:db8::1", 443, wrong_port("2001:db8::1", 443, &[8080])),
            ("10.1.2.3", 5432, allowed("10.1.0.0/16:5432")),
            // Names never allow addresses, whatever they resolve to.
            ("140.82.112.3", 443, not_allowed()),
            ("127.0.0.1", 443, not_allowed()),
        ];
        for (addr, port, want) in cases {
            assert_eq!(n.decide_ip(ip(addr), port), want, "{addr}:{port}");
        }
    }

    #[test]
    fn check_resolved_table() {
        let n = sample();
        let special = |s: &str, range: &'static str| {
            Err(DenyReason::SpecialAddress {
                rule: "github.com:80,443".into(),
                ip: s.parse().unwrap(),
                range,
            })
        };
        let cases: Vec<(&str, Result<(), DenyReason>)> = vec![
            // The tests' "internet" (documentation ranges) and real public addresses.
            ("192.0.2.10", Ok(())),
            ("198.51.100.10", Ok(())),
            ("203.0.113.10", Ok(())),
            ("2001:db8::10", Ok(())),
            ("140.82.112.3", Ok(())),
            ("2606:50c0:8000::154", Ok(())),
            ("127.0.0.1", special("127.0.0.1", "loopback")),
            ("127.1.2.3", special("127.1.2.3", "loopback")),
            ("::1", special("::1", "loopback")),
            ("0.0.0.0", special("0.0.0.0", "unspecified")),
            ("::", special("::", "unspecified")),
            ("10.0.0.1", special("10.0.0.1", "private")),
            ("172.16.0.1", special("172.16.0.1", "private")),
            ("192.168.1.1", special("192.168.1.1", "private")),
            ("169.254.169.254", special("169.254.169.254", "link-local")),
            ("fe80::1", special("fe80::1", "link-local")),
            ("100.64.0.1", special("100.64.0.1", "CGNAT")),
            ("fd00::1", special("fd00::1", "unique local")),
            ("224.0.0.1", special("224.0.0.1", "multicast")),
            ("ff02::1", special("ff02::1", "multicast")),
            ("255.255.255.255", special("255.255.255.255", "broadcast")),
            ("240.0.0.1", special("240.0.0.1", "reserved")),
            ("198.18.0.1", special("198.18.0.1", "benchmarking")),
            (
                "192.0.0.170",
                special("192.0.0.170", "IETF protocol assignments"),
            ),
            // IPv4 inside IPv6: refused as whole ranges, whatever they embed.
            (
                "::ffff:127.0.0.1",
                special("::ffff:127.0.0.1", "IPv4-mapped"),
            ),
            (
                "::ffff:192.0.2.1",
                special("::ffff:192.0.2.1", "IPv4-mapped"),
            ),
            ("::127.0.0.1", special("::127.0.0.1", "IPv4-compatible")),
            ("64:ff9b::7f00:1", special("64:ff9b::7f00:1", "NAT64")),
            (
                "64:ff9b:1::a9fe:a9fe",
                special("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
            ),
            ("2002:7f00:1::", special("2002:7f00:1::", "6to4")),
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                special("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo"),
            ),
            // A cidr rule in the profile vouches for its range (any port).
            ("10.1.2.3", Ok(())),
            ("10.2.0.1", special("10.2.0.1", "private")),
            ("::ffff:10.1.2.3", Ok(())),
        ];
        for (addr, want) in cases {
            assert_eq!(
                n.check_resolved("github.com:80,443", addr.parse().unwrap()),
                want,
                "{addr}"
            );
        }
        let loopback = net(
            NetworkMode::Enforce,
            &[
                ("localhost", &[8080]),
                ("127.0.0.0/8", &[8080]),
                ("::1/128", &[8080]),
            ],
        );
        assert_eq!(
            loopback.check_resolved("localhost:8080", "127.0.0.1".parse().unwrap()),
            Ok(())
        );
        assert_eq!(
            loopback.check_resolved("localhost:8080", "::1".parse().unwrap()),
            Ok(())
        );
        assert_eq!(
            loopback.check_resolved("localhost:8080", "::ffff:127.0.0.1".parse().unwrap()),
            Ok(())
        );
        assert!(
            loopback
                .check_resolved("localhost:8080", "169.254.169.254".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn dns_answers_names_any_rule_names() {
        let n = sample();
        let cases: &[(&str, Option<&str>)] = &[
            ("index.crates.io", Some("index.crates.io:443")),
            ("Index.Crates.IO.", Some("index.crates.io:443")),
            ("github.com", Some("github.com:80,443")),
            (
                "objects.githubusercontent.com",
                Some("*.githubusercontent.com:443"),
            ),
            ("githubusercontent.com", None),
            ("bücher.example", Some("xn--bcher-kva.example:443")),
            ("xn--bcher-kva.example.", Some("xn--bcher-kva.example:443")),
            ("evil.example", None),
            ("aGVsbG8.tunnel.evil.example", None),
            ("203.0.113.5", None),
            ("", None),
            ("_dmarc.github.com", None),
        ];
        for (name, want) in cases {
            assert_eq!(n.dns_allowed(name).as_deref(), *want, "{name:?}");
        }
    }

    #[test]
    fn mode_none_and_empty_allow_refuse_everything() {
        let none = Network::default();
        assert_eq!(none.mode(), NetworkMode::None);
        let disabled = denied(DenyReason::NetworkDisabled);
        assert_eq!(none.decide_name("github.com", 443), disabled);
        assert_eq!(
            none.decide_ip("203.0.113.1".parse().unwrap(), 443),
            disabled
        );
        assert_eq!(
            none.check_resolved("x", "203.0.113.1".parse().unwrap()),
            Err(DenyReason::NetworkDisabled)
        );
        assert_eq!(none.dns_allowed("github.com"), None);

        let empty = net(NetworkMode::Enforce, &[]);
        assert_eq!(empty.decide_name("github.com", 443), not_allowed());
        assert_eq!(
            empty.decide_ip("203.0.113.1".parse().unwrap(), 443),
            not_allowed()
        );
        assert_eq!(empty.dns_allowed("github.com"), None);

        // Audit mode decides like enforce; the proxy turns Denied into would-deny.
        let audit = net(NetworkMode::Audit, &[("github.com", &[443])]);
        assert_eq!(audit.mode(), NetworkMode::Audit);
        assert_eq!(
            audit.decide_name("github.com", 443),
            allowed("github.com:443")
        );
        assert_eq!(audit.decide_name("evil.example", 443), not_allowed());
    }

    /// The decisions as they were made over `AllowRule` values before the rules became a
    /// table: the reference the table's answers must equal.
    mod reference {
        use super::*;

        pub fn decide(
            rules: &[AllowRule],
            shown: &str,
            port: u16,
            m: impl Fn(&AllowRule) -> bool,
        ) -> NameDecision {
            let mut other_ports = Vec::new();
            for rule in rules.iter().filter(|r| m(r)) {
                if rule.ports.contains(&port) {
                    return NameDecision::Allowed {
                        rule: rule.text.clone(),
                    };
                }
                other_ports.extend_from_slice(&rule.ports);
            }
            if other_ports.is_empty() {
                return denied(DenyReason::NotAllowed);
            }
            other_ports.sort_unstable();
            other_ports.dedup();
            denied(DenyReason::PortNotAllowed {
                host: shown.to_string(),
                port,
                allowed: other_ports,
            })
        }

        pub fn request(
            rules: &[AllowRule],
            host: &str,
            port: u16,
            method: &str,
            path: &str,
        ) -> Option<String> {
            rules
                .iter()
                .filter(|r| r.matches_name(host) && r.ports.contains(&port))
                .find(|r| {
                    (r.methods.is_empty() || r.methods.iter().any(|m| m == method))
                        && (r.paths.is_empty() || r.paths.iter().any(|p| path_under(path, p)))
                })
                .map(|r| r.text.clone())
        }
    }

    #[test]
    fn the_table_decides_exactly_as_the_rules_did() {
        // 3,000 rules drawn from a small vocabulary (so that many overlap: the first match,
        // the other ports, the restricted ones all matter) and every query against both.
        let mut seed: u64 = 0x5eed;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let names = [
            "a.test",
            "b.test",
            "x.a.test",
            "y.b.test",
            "c.example",
            "d.c.example",
        ];
        let all_ports = [22u16, 80, 443, 8443];
        let mut rules = Vec::new();
        for _ in 0..3000 {
            let mut ports: Vec<u16> = all_ports.iter().copied().filter(|_| next(2) == 0).collect();
            if ports.is_empty() {
                ports.push(443);
            }
            let pattern = match next(4) {
                0 => format!("*.{}", names[next(6) as usize]),
                1 => format!("10.{}.0.0/16", next(4)),
                2 => format!("2001:db8:{}::/48", next(4)),
                _ => names[next(6) as usize].to_string(),
            };
            let mut r = rule(&pattern, &ports);
            if next(5) == 0 && !matches!(r.target, RuleTarget::Cidr(_)) {
                r.methods = vec!["GET".into()];
                r.paths = vec![format!("/v{}", next(3))];
                r.text.push_str(" GET");
            }
            r.raw_tcp = next(7) == 0 && !matches!(r.target, RuleTarget::Cidr(_));
            rules.push(r);
        }
        let n = Network {
            mode: NetworkMode::Enforce,
            allow: rules.clone().into(),
            upstream_proxy: None,
            max_connections: None,
        };
        let mut queries: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        queries.extend(names.iter().map(|s| format!("deep.{s}")));
        queries.push("other.test".into());
        for q in &queries {
            for port in [22, 80, 443, 8443, 9000] {
                let want = reference::decide(&rules, q, port, |r| r.matches_name(q));
                assert_eq!(n.decide_name(q, port), want, "{q}:{port}");
                let raw = rules
                    .iter()
                    .find(|r| r.raw_tcp && r.matches_name(q) && r.ports.contains(&port))
                    .map(|r| r.text.clone());
                assert_eq!(n.raw_tcp_rule(q, port), raw, "{q}:{port}");
                for (m, p) in [("GET", "/v1/x"), ("POST", "/v2"), ("GET", "/v0")] {
                    let want = reference::request(&rules, q, port, m, p);
                    assert_eq!(
                        n.request_allowed(q, port, m, p).ok(),
                        want,
                        "{m} {q}:{port}{p}"
                    );
                }
            }
            let dns = rules
                .iter()
                .find(|r| r.matches_name(q))
                .map(|r| r.text.clone());
            assert_eq!(n.dns_allowed(q), dns, "{q}");
            let restricted = rules
                .iter()
                .any(|r| r.matches_name(q) && (!r.methods.is_empty() || !r.paths.is_empty()));
            assert_eq!(n.is_restricted(q), restricted, "{q}");
        }
        for ip in [
            "10.0.1.2",
            "10.3.9.9",
            "10.7.0.1",
            "::ffff:10.1.0.1",
            "2001:db8:2::1",
            "2001:db8:9::1",
            "127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            for port in [22, 443, 9000] {
                let want = reference::decide(&rules, &ip.to_string(), port, |r| r.covers_ip(ip));
                assert_eq!(n.decide_ip(ip, port), want, "{ip}:{port}");
            }
            let covered = rules.iter().any(|r| r.covers_ip(ip));
            assert_eq!(
                n.check_resolved("r", ip).is_ok(),
                covered || special_range(ip).is_none(),
                "{ip}"
            );
        }
    }
}

#[cfg(test)]
mod method_path_tests {
    use super::*;

    #[test]
    fn path_prefixes_match_on_segment_boundaries() {
        assert!(path_under("/repos/acme", "/repos/acme"));
        assert!(path_under("/repos/acme/app", "/repos/acme"));
        assert!(!path_under("/repos/acme-evil", "/repos/acme"));
        assert!(path_under("/repos/acme/app", "/repos/acme/"));
        assert!(!path_under("/repos/acme", "/repos/acme/"));
        assert!(!path_under("/", "/repos"));
    }
}

#[cfg(test)]
mod sneaky_path_tests {
    use super::*;
    use crate::policy::model::{Location, RuleTarget};

    #[test]
    fn dot_segments_and_encoded_separators_are_refused_under_rules() {
        let rule = AllowRule {
            target: RuleTarget::Exact("api.test".into()),
            ports: vec![443],
            text: "api.test:443 GET /repos/acme/".into(),
            at: Location {
                file: "t".into(),
                line: 1,
                column: 1,
            },
            key: "network.allow[0]".into(),
            methods: vec!["GET".into()],
            paths: vec!["/repos/acme/".into()],
            raw_tcp: false,
        };
        let net = Network {
            mode: NetworkMode::Enforce,
            allow: vec![rule].into(),
            upstream_proxy: None,
            max_connections: None,
        };
        assert!(
            net.request_allowed("api.test", 443, "GET", "/repos/acme/app")
                .is_ok()
        );
        for p in [
            "/repos/acme/../other",
            "/repos/acme/%2e%2e/other",
            "/repos/acme%2fx",
            "/repos/acme/./x",
        ] {
            assert!(
                net.request_allowed("api.test", 443, "GET", p).is_err(),
                "{p}"
            );
        }
        assert!(
            net.request_allowed("api.test", 443, "POST", "/repos/acme/app")
                .is_err()
        );
    }
}
