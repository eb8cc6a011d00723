//! An upstream (corporate) HTTP proxy that allowed connections leave through.
//!
//! Decisions do not change: the step's attempts are decided by name here, as without an
//! upstream. Only the dial does: instead of connecting to the checked address, the proxy
//! connects to the upstream and asks it for `CONNECT host:port` by *name* (on such networks
//! only the upstream resolves outside names). Plain HTTP goes through the same tunnel, so every
//! connection takes one path. A failing upstream fails the connection (502 with the
//! upstream's answer); nothing ever falls back to a direct connection.
//!
//! Credentials (`http://user:pass@host:port`) become a `Proxy-Authorization: Basic` header;
//! they are never printed: [`UpstreamProxy`]'s `Display` and every error show the URL without
//! them.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::denial::Denial;
pub use crate::policy::upstream_proxy::{UpstreamProxy, UrlError};

/// The longest response head an upstream may send to a CONNECT.
const MAX_HEAD: usize = 16 * 1024;
/// How long the upstream may take to connect onward and answer the CONNECT.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

impl UpstreamProxy {
    /// The value of `Proxy-Authorization: Basic`: `user:pass` in base64.
    fn proxy_authorization(&self) -> Option<String> {
        self.credentials().map(crate::secrets::base64_standard)
    }

    /// The CONNECT request for `host:port` (host by name, or an address literal).
    fn connect_request(&self, host: &str, port: u16) -> String {
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = self.proxy_authorization() {
            req.push_str(&format!("Proxy-Authorization: Basic {auth}\r\n"));
        }
        req.push_str("\r\n");
        req
    }

    /// Opens a tunnel to `host:port` through the upstream. Any failure is
    /// [`Denial::unreachable`] (502), never a fallback to a direct connection.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        connect_timeout: Duration,
    ) -> Result<TcpStream, Denial> {
        let fail = |what: String| Denial::unreachable(format!("upstream proxy {self}: {what}"));
        let mut s =
            match tokio::time::timeout(connect_timeout, TcpStream::connect(self.host_port())).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(fail(format!("cannot connect: {e}"))),
                Err(_) => return Err(fail("connecting timed out".into())),
            };
        let _ = s.set_nodelay(true);
        let exchange = async {
            s.write_all(self.connect_request(host, port).as_bytes())
                .await?;
            read_head(&mut s).await
        };
        let head = match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Err(fail(format!("CONNECT {host}:{port}: {e}"))),
            Err(_) => return Err(fail(format!("no answer to CONNECT {host}:{port}"))),
        };
        let status_line = head.lines().next().unwrap_or("").trim().to_string();
        match parse_status(&status_line) {
            Some(code) if (200..300).contains(&code) => Ok(s),
            Some(401 | 407) => Err(fail(format!(
                "answered `{}` to CONNECT {host}:{port} ({})",
                printable(&status_line),
                if self.has_credentials() {
                    "the credentials were refused"
                } else {
                    "it wants credentials: http://user:pass@host:port"
                }
            ))),
            Some(_) => Err(fail(format!(
                "answered `{}` to CONNECT {host}:{port}",
                printable(&status_line)
            ))),
            None => Err(fail(format!(
                "answered something that is not HTTP to CONNECT {host}:{port}"
            ))),
        }
    }
}

/// Reads a response head up to and including the blank line, byte by byte: nothing of the
/// tunnel that follows may be read here (the relay splices the socket itself).
async fn read_head(s: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_HEAD {
            return Err(std::io::Error::other("response head too long"));
        }
        if s.read(&mut byte).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the upstream proxy closed the connection",
            ));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// At most 120 printable ASCII characters of what the upstream said.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(120)
        .collect()
}

/// Where the upstream setting of a run came from, in precedence order (first wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--upstream-proxy URL`, or `STEPJAIL_UPSTREAM_PROXY`.
    Flag,
    /// `--upstream-proxy-from-env`: the caller's `HTTPS_PROXY` / `https_proxy` (and NO_PROXY).
    CallerEnv,
    /// The profile's `network.upstream_proxy`.
    Profile,
}

/// Picks the upstream for a run: the flag (or `STEPJAIL_UPSTREAM_PROXY`), else the caller's
/// HTTPS_PROXY when `from_env`, else the profile's. The caller's NO_PROXY applies whichever
/// wins when `from_env` is given. `Ok(None)`: connections go direct.
pub fn choose(
    flag: Option<&str>,
    from_env: bool,
    env: &[(String, String)],
    profile: Option<&UpstreamProxy>,
) -> Result<Option<(UpstreamProxy, Source)>, String> {
    let var = |names: &[&str]| {
        names.iter().find_map(|n| {
            env.iter()
                .find(|(k, v)| k == n && !v.trim().is_empty())
                .map(|(_, v)| v.clone())
        })
    };
    let no_proxy = if from_env {
        var(&["NO_PROXY", "no_proxy"])
    } else {
        None
    };
    let chosen = if let Some(url) = flag.filter(|u| !u.trim().is_empty()) {
        let up = UpstreamProxy::parse(url)
            .map_err(|e| format!("--upstream-proxy (or STEPJAIL_UPSTREAM_PROXY): {e}"))?;
        Some((up, Source::Flag))
    } else if from_env {
        let Some(url) = var(&["HTTPS_PROXY", "https_proxy"]) else {
            return Err(
                "--upstream-proxy-from-env: neither HTTPS_PROXY nor https_proxy is set".into(),
            );
        };
        let up = UpstreamProxy::parse(&url).map_err(|e| format!("HTTPS_PROXY: {e}"))?;
        Some((up, Source::CallerEnv))
    } else {
        profile.map(|p| (p.clone(), Source::Profile))
    };
    Ok(chosen.map(|(up, src)| match &no_proxy {
        Some(list) => (up.with_no_proxy(list), src),
        None => (up, src),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_hides_credentials() {
        let p = UpstreamProxy::parse("http://alice:s%40cret@Proxy.Corp:3128/").unwrap();
        assert_eq!(p.to_string(), "http://proxy.corp:3128");
        assert_eq!(format!("{p:?}"), "UpstreamProxy(http://proxy.corp:3128)");
        assert!(p.has_credentials());
        assert_eq!(
            p.connect_request("allowed.test", 443),
            "CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\
             Proxy-Authorization: Basic YWxpY2U6c0BjcmV0\r\n\r\n"
        );
        let p = UpstreamProxy::parse("proxy.corp:8080").unwrap();
        assert_eq!(p.to_string(), "http://proxy.corp:8080");
        assert!(!p.has_credentials());
        assert_eq!(
            p.connect_request("2001:db8::1", 443),
            "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"
        );
        let p = UpstreamProxy::parse("http://[2001:db8::5]:3128").unwrap();
        assert_eq!(p.to_string(), "http://[2001:db8::5]:3128");
        assert_eq!(UpstreamProxy::parse("http://p").unwrap().host_port().1, 80);
        // A password holding an unencoded `@`.
        let p = UpstreamProxy::parse("http://u:a@b@p:1").unwrap();
        assert_eq!(p.proxy_authorization().as_deref(), Some("dTphQGI="));
    }

    #[test]
    fn refuses_what_it_cannot_use_without_echoing_credentials() {
        let cases = [
            ("https://u:hunter2@p:443", UrlError::Https),
            ("socks5://u:hunter2@p:1080", UrlError::NotHttp),
            ("http://u:hunter2@:3128", UrlError::NoHost),
            ("http://u:hunter2@p:0", UrlError::BadPort),
            ("http://u:hunter2@p:99999", UrlError::BadPort),
            ("http://u:hunter2@p:3128/path", UrlError::HasPath),
            ("http://u:hunter2%zz@p:3128", UrlError::BadCredentials),
        ];
        for (url, want) in cases {
            let e = UpstreamProxy::parse(url).unwrap_err();
            assert_eq!(e, want, "{url}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn no_proxy_matches_domains_addresses_and_ranges() {
        let p = UpstreamProxy::parse("http://p:1")
            .unwrap()
            .with_no_proxy(".corp.example, mirror.test:8080 10.0.0.0/8,192.0.2.7,[2001:db8::1]");
        for direct in [
            "corp.example",
            "a.corp.example",
            "mirror.test",
            "x.mirror.test",
            "10.1.2.3",
            "192.0.2.7",
            "2001:db8::1",
            "A.CORP.EXAMPLE.",
        ] {
            assert!(p.goes_direct(direct), "{direct}");
        }
        for proxied in [
            "notcorp.example",
            "example",
            "mirror.test.evil",
            "11.0.0.1",
            "192.0.2.8",
            "2001:db8::2",
        ] {
            assert!(!p.goes_direct(proxied), "{proxied}");
        }
        let all = UpstreamProxy::parse("http://p:1")
            .unwrap()
            .with_no_proxy("*");
        assert!(all.goes_direct("anything.test"));
        assert!(!UpstreamProxy::parse("http://p:1").unwrap().goes_direct("a"));
    }

    #[test]
    fn precedence_flag_then_caller_env_then_profile() {
        let env = vec![
            (
                "HTTPS_PROXY".to_string(),
                "http://envproxy:3128".to_string(),
            ),
            ("NO_PROXY".to_string(), "internal.test".to_string()),
        ];
        let profile = UpstreamProxy::parse("http://profileproxy:3128").unwrap();
        let pick = |flag, from_env| {
            choose(flag, from_env, &env, Some(&profile))
                .unwrap()
                .map(|(u, s)| (u.to_string(), s, u.goes_direct("internal.test")))
        };
        assert_eq!(
            pick(Some("http://flag:1"), true),
            Some(("http://flag:1".into(), Source::Flag, true))
        );
        assert_eq!(
            pick(Some("http://flag:1"), false),
            Some(("http://flag:1".into(), Source::Flag, false))
        );
        assert_eq!(
            pick(None, true),
            Some(("http://envproxy:3128".into(), Source::CallerEnv, true))
        );
        assert_eq!(
            pick(None, false),
            Some(("http://profileproxy:3128".into(), Source::Profile, false))
        );
        // The caller's HTTPS_PROXY is never used unless asked for.
        assert_eq!(choose(None, false, &env, None).unwrap(), None);
        let err = choose(None, true, &[], None).unwrap_err();
        assert!(err.contains("HTTPS_PROXY"), "{err}");
        let err = choose(Some("https://u:pw@x:1"), false, &[], None).unwrap_err();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status("HTTP/1.1 200 Connection established"),
            Some(200)
        );
        assert_eq!(
            parse_status("HTTP/1.0 407 Proxy Authentication Required"),
            Some(407)
        );
        assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
    }
}
