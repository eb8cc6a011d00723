//! Parsing an HTTP/1.x request head and working out which host and port it is for.
//!
//! Used for plain HTTP through the explicit proxy (absolute-form targets), CONNECT
//! (authority-form) and transparently captured port-80 traffic (origin-form plus the Host
//! header). The tokenising is done by `httparse`, the parser hyper uses; this module adds the caps
//! (64 headers, 16 KiB of head) and the checks the proxy's decision depends on: exactly which host
//! a request names, and whether its Host header agrees (domain fronting).

use std::net::Ipv6Addr;

pub use super::sni::Peek;

/// The most bytes of request head [`parse_request_head`] accepts.
pub const MAX_HEAD_LEN: usize = 16 * 1024;
/// The most header fields [`parse_request_head`] accepts.
pub const MAX_HEADERS: usize = 64;

/// The parts of a request head the proxy decides on. Header values other than Host are never
/// kept: they may carry credentials and must not reach the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target exactly as sent.
    pub target: String,
    /// The minor version of HTTP/1.x: 0 or 1.
    pub version: u8,
    /// The value of the first Host header, surrounding whitespace removed.
    pub host: Option<String>,
    /// Bytes up to and including the blank line that ends the head.
    pub head_len: usize,
    /// How many Host headers the request had; more than one is refused (RFC 9112 section 3.2).
    pub host_headers: usize,
}

/// The shape of the request target (RFC 9112 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `http://host:port/path`, sent to an explicit proxy.
    Absolute,
    /// `host:port`, the target of CONNECT.
    Authority,
    /// `/path`, sent to the origin; the host comes from the Host header.
    Origin,
}

/// Parses the request head at the start of `buf`.
///
/// `NotThis` when the first byte cannot start an HTTP method, `NeedMore` while the head is
/// incomplete and shorter than [`MAX_HEAD_LEN`], `Malformed` when it breaks HTTP/1.x syntax, has
/// more than [`MAX_HEADERS`] fields, is longer than [`MAX_HEAD_LEN`] or its Host is not ASCII.
pub fn parse_request_head(buf: &[u8]) -> Peek<RequestHead> {
    match buf.first() {
        None => return Peek::NeedMore,
        // Methods are tokens; every registered one is upper-case letters.
        Some(b) if !b.is_ascii_uppercase() => return Peek::NotThis,
        Some(_) => {}
    }
    let window = &buf[..buf.len().min(MAX_HEAD_LEN)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_LEN => {
            return Peek::Malformed("request head too large");
        }
        Ok(httparse::Status::Partial) => return Peek::NeedMore,
        Err(httparse::Error::TooManyHeaders) => return Peek::Malformed("too many headers"),
        Err(httparse::Error::Version) => return Peek::Malformed("not HTTP/1.x"),
        Err(_) => return Peek::Malformed("bad request head"),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Peek::Malformed("bad request line");
    };
    let mut host = None;
    let mut host_headers = 0;
    for h in req.headers.iter() {
        if !h.name.eq_ignore_ascii_case("host") {
            continue;
        }
        host_headers += 1;
        if host.is_none() {
            let Ok(value) = std::str::from_utf8(h.value) else {
                return Peek::Malformed("Host header is not ASCII");
            };
            if !value.is_ascii() {
                return Peek::Malformed("Host header is not ASCII");
            }
            host = Some(value.trim_matches([' ', '\t']).to_owned());
        }
    }
    Peek::Done(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version,
        host,
        head_len,
        host_headers,
    })
}

/// The host and port a request is for, and the form its target had.
///
/// Absolute-form: the URL's host and port (default 80; only `http:`; user info is refused
/// because `http://allowed@evil/` names `evil`). Authority-form (CONNECT): `host:port`, port
/// required. Origin-form: the Host header (exactly one required; default port 80). IPv6 literals
/// are written in brackets and returned without them. The host is returned as written; it is
/// not lower-cased or IDN-normalised here.
pub fn target_authority(head: &RequestHead) -> Result<(String, u16, Form), &'static str> {
    let target = head.target.as_str();
    if head.method == "CONNECT" {
        let (host, port) = split_host_port(target, None)?;
        return Ok((host, port, Form::Authority));
    }
    if target.starts_with('/') {
        let host = match (head.host_headers, head.host.as_deref()) {
            (1, Some(host)) => host,
            (0, _) | (_, None) => return Err("missing Host header"),
            _ => return Err("more than one Host header"),
        };
        let (host, port) = split_host_port(host, Some(80))?;
        return Ok((host, port, Form::Origin));
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        return Err("unrecognised request target");
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return Err("unsupported scheme in request target");
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err("user info in request target");
    }
    let (host, port) = split_host_port(authority, Some(80))?;
    Ok((host, port, Form::Absolute))
}

/// Whether the Host header agrees with the request target (the domain-fronting check).
///
/// Absolute-form: a Host header, if present, must name the same host (ASCII case-insensitive,
/// ignoring a trailing dot; IP literals compared as addresses) and the same port, a missing port
/// meaning 80. Authority-form: the same, except that a Host without a port matches any target
/// port (clients differ in whether they send it). Origin-form: the target *is* the Host header,
/// so it matches when there is exactly one. More than one Host header never matches, nor does a
/// target [`target_authority`] rejects.
pub fn host_matches_target(head: &RequestHead) -> bool {
    if head.host_headers > 1 {
        return false;
    }
    let Ok((target_host, target_port, form)) = target_authority(head) else {
        return false;
    };
    let Some(host) = head.host.as_deref() else {
        return true;
    };
    let default_port = match form {
        Form::Origin => return true,
        Form::Absolute => Some(80),
        Form::Authority => None,
    };
    let Ok((host, port)) = split_host_port(host, default_port.or(Some(0))) else {
        return false;
    };
    if port != target_port && !(form == Form::Authority && port == 0) {
        return false;
    }
    same_host(&host, &target_host)
}

fn same_host(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// Splits `host[:port]` or `[v6]:port`. `default_port` of `None` means the port is required;
/// `Some(0)` is used internally to mean "absent" and is never accepted from the input.
fn split_host_port(s: &str, default_port: Option<u16>) -> Result<(String, u16), &'static str> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err("unterminated IPv6 literal");
        };
        // Zone identifiers (`%eth0`) and anything else that is not an address are refused.
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err("bad IPv6 literal");
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err("junk after IPv6 literal"),
            },
        };
        (v6, port)
    } else {
        let (h, p) = match s.split_once(':') {
            Some((_, p)) if p.contains(':') => return Err("bare IPv6 literal or extra colon"),
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if !valid_reg_name(h) {
            return Err("bad host name");
        }
        (h, p)
    };
    let port = match port {
        Some(p) => parse_port(p)?,
        None => default_port.ok_or("port required")?,
    };
    Ok((host.to_owned(), port))
}

/// Host names the proxy will decide on: letters, digits, `-`, `_` and `.`, at most 253 bytes
/// plus a trailing dot. Percent-encoding, user info and whitespace are all refused.
fn valid_reg_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 254
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_port(p: &str) -> Result<u16, &'static str> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad port");
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err("bad port"),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("[2001:db8::1]:8080", None),
            Ok(("2001:db8::1".into(), 8080))
        );
        assert_eq!(
            split_host_port("[2001:db8::1]", Some(80)),
            Ok(("2001:db8::1".into(), 80))
        );
        assert_eq!(split_host_port("[2001:db8::1]", None), Err("port required"));
        assert_eq!(
            split_host_port("2001:db8::1", Some(80)),
            Err("bare IPv6 literal or extra colon")
        );
        assert_eq!(
            split_host_port("[fe80::1%eth0]:80", None),
            Err("bad IPv6 literal")
        );
        assert_eq!(split_host_port("a.example:0", None), Err("bad port"));
        assert_eq!(split_host_port("a.example:65536", None), Err("bad port"));
        assert_eq!(split_host_port("a.example:+80", None), Err("bad port"));
        assert_eq!(split_host_port("a.example:", Some(80)), Err("bad port"));
        assert_eq!(split_host_port(":80", None), Err("bad host name"));
        assert_eq!(
            split_host_port("a%2eexample:80", None),
            Err("bad host name")
        );
        assert_eq!(
            split_host_port("A.Example.:443", None),
            Ok(("A.Example.".into(), 443))
        );
    }

    #[test]
    fn same_host_rules() {
        assert!(same_host("A.example.", "a.EXAMPLE"));
        assert!(same_host("2001:DB8::1", "2001:db8:0::1"));
        assert!(!same_host("a.example", "b.example"));
        assert!(!same_host("1.2.3.4", "a.example"));
    }
}
