//! The upstream (corporate) HTTP proxy setting: `http://[user:pass@]host[:port]` and its
//! NO_PROXY list, parsed and checked here so a profile's `network.upstream_proxy` is validated
//! with the rest of the profile. Connecting through it is the proxy's (`proxy::upstream`).
//!
//! Credentials are never printed: [`UpstreamProxy`]'s `Display` and `Debug` and every
//! [`UrlError`] show the URL without them.

use std::net::IpAddr;

/// A parsed `http://[user:pass@]host[:port]` upstream, plus the destinations that go direct.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamProxy {
    host: String,
    port: u16,
    /// `user:pass`, percent-decoded: sent as `Proxy-Authorization: Basic` (see
    /// `proxy::upstream`).
    credentials: Option<Vec<u8>>,
    /// NO_PROXY entries, lower-cased: `*`, a domain (`.corp.example` or `corp.example`, which
    /// both match the name and its subdomains), an address, or a CIDR range.
    no_proxy: Vec<String>,
}

impl std::fmt::Debug for UpstreamProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials, not even in debug output.
        write!(f, "UpstreamProxy({self})")
    }
}

impl std::fmt::Display for UpstreamProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "http://{host}:{}", self.port)
    }
}

/// Why an upstream proxy URL is refused. Never contains the URL's credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("an upstream proxy is an http:// URL (`http://[user:pass@]host:port`)")]
    NotHttp,
    #[error(
        "https:// upstream proxies are not supported (TLS to the proxy itself); use its http:// port"
    )]
    Https,
    #[error("the upstream proxy URL has no host")]
    NoHost,
    #[error("the upstream proxy URL has a bad port")]
    BadPort,
    #[error("the upstream proxy URL may hold only scheme, credentials, host and port (no path)")]
    HasPath,
    #[error("the upstream proxy URL has badly percent-encoded credentials")]
    BadCredentials,
}

impl UpstreamProxy {
    /// Parses `http://[user[:pass]@]host[:port]` (port 80 when omitted, as curl does not
    /// assume 1080 for http://); a trailing `/` is accepted, a path is not.
    pub fn parse(url: &str) -> Result<UpstreamProxy, UrlError> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &url["http://".len()..]
        } else if lower.starts_with("https://") {
            return Err(UrlError::Https);
        } else if lower.contains("://") {
            return Err(UrlError::NotHttp);
        } else {
            // `proxy.corp:3128` without a scheme, as many HTTPS_PROXY values are written.
            url
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // The credentials end at the last `@` (a password may hold an unencoded `@`).
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if hostport.contains(['/', '?', '#']) {
            return Err(UrlError::HasPath);
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or(UrlError::NoHost)?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(UrlError::BadPort),
            };
            (ip.to_string(), port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(UrlError::BadPort)?,
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let user = percent_decode(user).ok_or(UrlError::BadCredentials)?;
                let pass = percent_decode(pass).ok_or(UrlError::BadCredentials)?;
                let mut plain = user;
                plain.push(b':');
                plain.extend_from_slice(&pass);
                Some(plain)
            }
        };
        Ok(UpstreamProxy {
            host: host.to_ascii_lowercase(),
            port,
            credentials,
            no_proxy: Vec::new(),
        })
    }

    /// Whether the URL carried credentials.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The upstream's host (lower-cased; an IPv6 address without brackets) and port.
    pub fn host_port(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// `user:pass` as written in the URL, percent-decoded; `None` without credentials.
    pub fn credentials(&self) -> Option<&[u8]> {
        self.credentials.as_deref()
    }

    /// Adds a `NO_PROXY` list (comma or space separated): destinations that go direct.
    pub fn with_no_proxy(mut self, list: &str) -> UpstreamProxy {
        self.no_proxy = list
            .split([',', ' '])
            .map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        self
    }

    /// Whether `host` (a normalised name or an address literal) goes direct: it matches a
    /// NO_PROXY entry. Entries with a port (`host:8080`) match the host on any port, as curl.
    pub fn goes_direct(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some(ip) = ip {
                if let Ok(net) = entry.parse::<ipnet::IpNet>() {
                    return net.contains(&ip);
                }
                let bare = entry
                    .trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("");
                return bare.parse::<IpAddr>().is_ok_and(|e| e == ip);
            }
            let domain = entry.split(':').next().unwrap_or("");
            let domain = domain.trim_start_matches("*.").trim_start_matches('.');
            !domain.is_empty()
                && (host == domain
                    || host
                        .strip_suffix(domain)
                        .is_some_and(|head| head.ends_with('.')))
        })
    }
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}
