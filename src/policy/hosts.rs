//! Host names: the one normalisation every name goes through, whether it comes from a profile
//! rule, a CONNECT request, a TLS SNI, an HTTP `Host` header or a DNS query.
//!
//! A name is compared only after [`normalize_host`]: lower-cased, one trailing dot removed,
//! internationalised labels converted to punycode A-labels (`bücher.example` →
//! `xn--bcher-kva.example`), and checked against DNS limits. Anything that is, or that a resolver
//! would read as, an IP address is refused here: addresses are decided by `cidr` rules only.

use std::net::IpAddr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use super::model::RuleTarget;

/// Longest name in presentation form without the trailing dot (RFC 1035: 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a string is not a host name we will match against.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host name")]
    Empty,
    #[error("an IP address ({0}), not a host name")]
    IpLiteral(IpAddr),
    /// `2130706433`, `0x7f.1`, `0177.0.0.1`: not a canonical address, but `getaddrinfo` and
    /// URL parsers read a name whose last label is a number as an IPv4 address.
    #[error(
        "the last label `{0}` is a number, so resolvers would read the name as an IPv4 address"
    )]
    NumericName(String),
    #[error("`{}` is not allowed in a host name (letters, digits, `-` and `.` only)", .0.escape_debug())]
    BadChar(char),
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    /// `label` is cut to its first 20 characters.
    #[error("label `{label}` is {len} characters long; at most 63")]
    LabelTooLong { label: String, len: usize },
    #[error("name is {0} characters long; at most 253")]
    TooLong(usize),
    #[error("not a valid internationalised domain name")]
    Idna,
}

/// Canonical form of a host name, for matching and for the audit log.
pub fn normalize_host(s: &str) -> Result<String, HostError> {
    if s.is_empty() {
        return Err(HostError::Empty);
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Err(HostError::IpLiteral(ip));
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(HostError::Empty);
    }
    // No valid name is this long even in Unicode form; spare IDNA a hostile megabyte.
    if s.len() > 4 * MAX_NAME_LEN {
        return Err(HostError::TooLong(s.len()));
    }
    // Report ASCII punctuation ourselves: the IDNA error would not say which character.
    if let Some(c) = s
        .chars()
        .find(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(HostError::BadChar(c));
    }
    // Hyphens are allowed anywhere: real hosts such as `r1---sn-x.example` have `--` in
    // positions 3-4, and a refusal here would only turn a working name into a denial.
    let ascii = Uts46::new()
        .to_ascii(
            s.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .map_err(|_| HostError::Idna)?;
    check_ascii_name(&ascii)?;
    Ok(ascii.into_owned())
}

/// DNS limits on an A-label name (no trailing dot).
fn check_ascii_name(name: &str) -> Result<(), HostError> {
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(HostError::BadChar(c));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostError::LabelTooLong {
                label: format!("{}...", &label[..20]),
                len: label.len(),
            });
        }
    }
    if name.len() > MAX_NAME_LEN {
        return Err(HostError::TooLong(name.len()));
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if looks_numeric(last) {
        return Err(HostError::NumericName(last.to_string()));
    }
    Ok(())
}

/// A label the WHATWG URL parser and `inet_aton` take as a number: decimal, octal (leading 0)
/// or hex (`0x`). No top-level domain is numeric, so refusing these costs nothing.
fn looks_numeric(label: &str) -> bool {
    let digits = label
        .strip_prefix("0x")
        .map(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or(false);
    digits || label.bytes().all(|b| b.is_ascii_digit())
}

/// Why a host pattern in a rule is refused. Wraps [`HostError`] with the pattern-only cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PatternError {
    #[error("{0}")]
    Host(HostError),
    #[error("an IP address in a host rule; use {} for addresses", cidr_hint(.0))]
    IpLiteral(IpAddr),
    #[error(
        "`*` alone would allow every host; list the hosts (`mode: audit` shows which are used)"
    )]
    StarAlone,
    #[error("`*` is only allowed as the whole first label (`*.example.com`)")]
    MisplacedStar,
}

fn cidr_hint(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{{ cidr: {v4}/32 }}"),
        IpAddr::V6(v6) => format!("{{ cidr: \"{v6}/128\" }}"),
    }
}

/// `example.com` → exact, `*.example.com` → any name ending in `.example.com` (any depth, never
/// the apex). `*.com` is accepted: it is what the author wrote, and the audit log shows it.
pub(crate) fn parse_pattern(s: &str) -> Result<RuleTarget, PatternError> {
    let host = |h: &str| {
        normalize_host(h).map_err(|e| match e {
            HostError::IpLiteral(ip) => PatternError::IpLiteral(ip),
            HostError::BadChar('*') => PatternError::MisplacedStar,
            other => PatternError::Host(other),
        })
    };
    match s.strip_prefix("*.") {
        _ if s == "*" || s == "*." => Err(PatternError::StarAlone),
        Some(rest) => {
            let name = host(rest)?;
            Ok(RuleTarget::Suffix(format!(".{name}")))
        }
        None => host(s).map(RuleTarget::Exact),
    }
}

/// The canonical text of a rule: `github.com:443`, `*.example.com:80,443`,
/// `203.0.113.0/24:443`, `[2001:db8::/32]:8080`. `ports` must be sorted.
pub fn rule_text(target: &RuleTarget, ports: &[u16]) -> String {
    let ports = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    match target {
        RuleTarget::Cidr(ipnet::IpNet::V6(net)) => format!("[{net}]:{ports}"),
        other => format!("{other}:{ports}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        let long_label = "a".repeat(63);
        let ok_253 = format!("{0}.{0}.{0}.{1}", long_label, "a".repeat(61));
        assert_eq!(ok_253.len(), 253);
        let cases: &[(&str, &str)] = &[
            ("example.com", "example.com"),
            ("Example.COM", "example.com"),
            ("example.com.", "example.com"),
            ("EXAMPLE.com.", "example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("BÜCHER.example", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
            ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
            // Ideographic full stop is a dot under UTS 46.
            ("example。com", "example.com"),
            ("r1---sn-abc.example", "r1---sn-abc.example"),
            ("-lead.example", "-lead.example"),
            ("a1.b2", "a1.b2"),
            ("localhost", "localhost"),
            (&long_label, &long_label),
            (&ok_253, &ok_253),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_host(input).as_deref(), Ok(*want), "{input:?}");
        }
    }

    #[test]
    fn refusals() {
        let ip = |s: &str| HostError::IpLiteral(s.parse().unwrap());
        let too_long = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "a".repeat(62));
        let cases: Vec<(&str, HostError)> = vec![
            ("", HostError::Empty),
            (".", HostError::Empty),
            ("example..com", HostError::EmptyLabel),
            (".example.com", HostError::EmptyLabel),
            ("example.com..", HostError::EmptyLabel),
            ("exa_mple.com", HostError::BadChar('_')),
            ("exa mple.com", HostError::BadChar(' ')),
            ("example.com:443", HostError::BadChar(':')),
            ("*.example.com", HostError::BadChar('*')),
            ("user@example.com", HostError::BadChar('@')),
            ("example.com/x", HostError::BadChar('/')),
            ("1.2.3.4", ip("1.2.3.4")),
            ("::1", ip("::1")),
            ("[::1]", ip("::1")),
            ("[2001:db8::1]", ip("2001:db8::1")),
            ("2130706433", HostError::NumericName("2130706433".into())),
            ("0177.0.0.1", HostError::NumericName("1".into())),
            ("0x7f.1", HostError::NumericName("1".into())),
            ("0x7f000001", HostError::NumericName("0x7f000001".into())),
            ("1.2.3.4.", HostError::NumericName("4".into())),
            ("example.123", HostError::NumericName("123".into())),
            (&too_long, HostError::TooLong(254)),
            ("xn--zz.example", HostError::Idna),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_host(input), Err(want), "{input:?}");
        }
        let e = normalize_host(&format!("{}.example", "a".repeat(64))).unwrap_err();
        assert!(
            matches!(e, HostError::LabelTooLong { len: 64, .. }),
            "{e:?}"
        );
        // A label that is only long once converted to punycode.
        let e = normalize_host(&format!("{}.example", "ü".repeat(60))).unwrap_err();
        assert!(matches!(e, HostError::LabelTooLong { .. }), "{e:?}");
    }

    #[test]
    fn patterns() {
        let ok: &[(&str, RuleTarget)] = &[
            ("github.com", RuleTarget::Exact("github.com".into())),
            ("GitHub.com.", RuleTarget::Exact("github.com".into())),
            (
                "*.githubusercontent.com",
                RuleTarget::Suffix(".githubusercontent.com".into()),
            ),
            (
                "*.bücher.example",
                RuleTarget::Suffix(".xn--bcher-kva.example".into()),
            ),
            ("*.com", RuleTarget::Suffix(".com".into())),
        ];
        for (input, want) in ok {
            assert_eq!(parse_pattern(input).as_ref(), Ok(want), "{input:?}");
        }
        let bad: &[(&str, PatternError)] = &[
            ("*", PatternError::StarAlone),
            ("*.", PatternError::StarAlone),
            ("*.*.example.com", PatternError::MisplacedStar),
            ("a.*.example.com", PatternError::MisplacedStar),
            ("*example.com", PatternError::MisplacedStar),
            ("example.*", PatternError::MisplacedStar),
            ("**.example.com", PatternError::MisplacedStar),
            ("*..com", PatternError::Host(HostError::EmptyLabel)),
            (
                "1.2.3.4",
                PatternError::IpLiteral("1.2.3.4".parse().unwrap()),
            ),
            (
                "*.1.2.3.4",
                PatternError::IpLiteral("1.2.3.4".parse().unwrap()),
            ),
            (
                "*.2130706433",
                PatternError::Host(HostError::NumericName("2130706433".into())),
            ),
        ];
        for (input, want) in bad {
            assert_eq!(parse_pattern(input).as_ref(), Err(want), "{input:?}");
        }
        assert_eq!(
            PatternError::IpLiteral("1.2.3.4".parse().unwrap()).to_string(),
            "an IP address in a host rule; use { cidr: 1.2.3.4/32 } for addresses"
        );
        assert_eq!(
            PatternError::IpLiteral("2001:db8::1".parse().unwrap()).to_string(),
            "an IP address in a host rule; use { cidr: \"2001:db8::1/128\" } for addresses"
        );
    }
}
