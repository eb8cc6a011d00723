//! The step's network namespace when the profile allows egress: what exists inside it, and the
//! listeners created there and handed to the supervisor.
//!
//! Inside the namespace there is only `lo`. It carries the step's own addresses (10.255.255.1,
//! fd00:5a::1), and the default routes for IPv4 and IPv6 are `local` routes on it ([`rtnl`]):
//! nothing is routed anywhere, every packet a step sends stays in the namespace. nf_tables
//! rules there ([`nft`]) send every TCP connection for outside to the capture listener and DNS
//! for outside to the stub, so captured TCP runs on the kernel's TCP and is relayed with
//! splice(2); what is left for outside (other UDP, ICMP, raw IP) is dropped on arrival and
//! copied to the supervisor over NFLOG ([`nflog`]), which logs it. Where nf_tables (or NFLOG)
//! is unavailable, a TUN device `sj0` is the default route instead and a userspace TCP/IP
//! stack in the supervisor carries captured TCP (slow, but never unconfined). The supervisor,
//! outside, decides and dials upstream from the host's namespace. No helper process runs in
//! the sandbox.

mod netlink;
pub mod nflog;
pub mod nft;
pub mod rtnl;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};

use crate::sys;

/// The explicit proxy's port on 127.0.0.1 and ::1 inside the sandbox.
pub const PROXY_PORT: u16 = 3128;
/// The DNS stub's address inside the sandbox (UDP and TCP).
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 53);
/// The step's own addresses: on `lo`, the source of everything it sends for outside.
pub const OWN_V4: Ipv4Addr = Ipv4Addr::new(10, 255, 255, 1);
pub const OWN_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5a, 0, 0, 0, 0, 0, 1);
/// The fallback's TUN device and its addresses (the step's own; only the default routes point
/// at it).
pub const TUN_NAME: &str = "sj0";
pub const TUN_V4: Ipv4Addr = OWN_V4;
pub const TUN_V6: Ipv6Addr = OWN_V6;
pub const TUN_MTU: u16 = 1500;
/// The port of the capture listener (`[::]`, dual-stack) that nf_tables redirects TCP to.
pub const CAPTURE_PORT: u16 = 3129;

/// The proxy URL the step's environment points at.
pub fn proxy_url() -> String {
    format!("http://127.0.0.1:{PROXY_PORT}")
}

/// Environment variables that point tools at the proxy.
pub fn proxy_env() -> Vec<(String, String)> {
    let url = proxy_url();
    let mut out = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        out.push((name.to_string(), url.clone()));
        out.push((name.to_lowercase(), url.clone()));
    }
    let no = "localhost,127.0.0.1,::1".to_string();
    out.push(("NO_PROXY".into(), no.clone()));
    out.push(("no_proxy".into(), no));
    out
}

/// JVM system properties that point `java.net` (HttpURLConnection, java.net.http.HttpClient,
/// and the build tools on them: Maven, Gradle, sbt) at the proxy. The JVM reads no proxy
/// variables, so without these its connections are captured transparently (the slow path).
pub fn jvm_proxy_options() -> String {
    format!(
        "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort={PROXY_PORT} \
         -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort={PROXY_PORT} \
         -Dhttp.nonProxyHosts=localhost|127.*|[::1]"
    )
}

/// Variables for tools that ignore `HTTPS_PROXY` but have a switch of their own, so they take
/// the explicit proxy (the fast path) instead of transparent capture. `java_options` is the
/// step's `JAVA_TOOL_OPTIONS`, if any: the proxy properties are appended (the last `-D` of a
/// name wins), the rest is kept.
pub fn tool_proxy_env(java_options: Option<&str>) -> Vec<(String, String)> {
    let url = proxy_url();
    let java = match java_options.map(str::trim).filter(|o| !o.is_empty()) {
        Some(o) => format!("{o} {}", jvm_proxy_options()),
        None => jvm_proxy_options(),
    };
    vec![
        ("JAVA_TOOL_OPTIONS".into(), java),
        // Node.js >= 24: its built-in fetch (undici) and http(s) honour the proxy variables.
        ("NODE_USE_ENV_PROXY".into(), "1".into()),
        // Yarn 2+ reads its own settings, not the proxy variables.
        ("YARN_HTTP_PROXY".into(), url.clone()),
        ("YARN_HTTPS_PROXY".into(), url),
    ]
}

/// The step's `/etc/resolv.conf`: only the stub.
pub fn resolv_conf() -> String {
    format!(
        "# written by stepjail: the step's only resolver is its DNS stub\nnameserver {DNS_ADDR}\noptions edns0\n"
    )
}

/// The listeners made inside the namespace, in the order they travel to the supervisor.
pub struct Listeners {
    pub proxy_v4: OwnedFd,
    pub proxy_v6: OwnedFd,
    pub dns_udp: OwnedFd,
    /// The stub on `[::1]:53`, where the capture rules send DNS for IPv6 resolvers.
    pub dns_udp6: OwnedFd,
    pub dns_tcp: OwnedFd,
    /// Where the nf_tables rules send captured TCP (`[::]:CAPTURE_PORT`, dual-stack). Served
    /// even when the rules could not be installed: then only a direct connection reaches it,
    /// which has no original destination and is refused.
    pub captured: OwnedFd,
    /// With the nf_tables rules: the NFLOG socket that reports what they dropped.
    pub nflog: Option<OwnedFd>,
    /// Without them (the fallback): the TUN queue, which carries the step's captured TCP on
    /// a userspace TCP/IP stack, and its other datagrams. Absent when `/dev/net/tun` cannot be
    /// opened either: then the namespace has no route at all and only tools that use the proxy
    /// reach the network (fail closed, reported to the user).
    pub tun: Option<OwnedFd>,
}

impl Listeners {
    pub const COUNT: usize = 7;

    /// The descriptors, in the order they travel to the supervisor, and the tag that travels
    /// with them ([`Listeners::from_parts`] reads it back; at most 8 bytes arrive).
    pub fn into_parts(self) -> (Vec<OwnedFd>, &'static [u8]) {
        let mut v = vec![
            self.proxy_v4,
            self.proxy_v6,
            self.dns_udp,
            self.dns_udp6,
            self.dns_tcp,
            self.captured,
        ];
        let tag: &'static [u8] = match (self.nflog, self.tun) {
            (Some(nflog), _) => {
                v.push(nflog);
                b"nflog"
            }
            (None, Some(tun)) => {
                v.push(tun);
                b"tun"
            }
            (None, None) => b"fds",
        };
        (v, tag)
    }

    pub fn from_parts(v: Vec<OwnedFd>, tag: &[u8]) -> Option<Listeners> {
        let mut it = v.into_iter();
        let (proxy_v4, proxy_v6, dns_udp, dns_udp6, dns_tcp, captured) = (
            it.next()?,
            it.next()?,
            it.next()?,
            it.next()?,
            it.next()?,
            it.next()?,
        );
        let extra = it.next();
        let (nflog, tun) = match tag {
            b"nflog" => (Some(extra?), None),
            b"tun" => (None, Some(extra?)),
            _ => (None, None),
        };
        Some(Listeners {
            proxy_v4,
            proxy_v6,
            dns_udp,
            dns_udp6,
            dns_tcp,
            captured,
            nflog,
            tun,
        })
    }
}

/// Set to `1` in stepjail's environment: do not install the nf_tables rules, carry captured TCP
/// on the userspace stack (the fallback where nf_tables is unavailable; for tests and diagnosis).
pub const NO_NFTABLES_VAR: &str = "STEPJAIL_NO_NFTABLES";

/// How the step's direct connections are captured, as set up by [`assemble`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// nf_tables rules send TCP to the capture listener (kernel sockets, spliced); no device.
    Kernel,
    /// nf_tables is unavailable (the reason): TCP is carried by the userspace stack on the TUN.
    Userspace(String),
    /// No TUN device (the reason): there is no default route, so direct connections fail with
    /// ENETUNREACH and only tools that use the proxy reach the network.
    Off(String),
}

/// The listeners, bound inside the namespace by [`listen`] (after `lo` is up).
pub struct Bound {
    proxy_v4: OwnedFd,
    proxy_v6: OwnedFd,
    dns_udp: OwnedFd,
    dns_udp6: OwnedFd,
    dns_tcp: OwnedFd,
    captured: OwnedFd,
}

/// The namespace's network is made in two parts, both in the sandbox child, which holds
/// CAP_NET_ADMIN and CAP_NET_BIND_SERVICE in its own user namespace until it drops them:
/// [`listen`] and [`make_network`]. The second installs the capture rules and routes (or, as
/// the fallback, registers a TUN device, most of a millisecond), so the child runs it on a
/// thread of its own while it binds and makes the step's mounts, and [`assemble`] puts the
/// results together. Until both are done nothing can leave: there is no route but `lo`.
pub fn listen() -> std::io::Result<Bound> {
    Ok(Bound {
        proxy_v4: tcp_listener(SocketAddr::from((Ipv4Addr::LOCALHOST, PROXY_PORT)), true)?,
        proxy_v6: tcp_listener(SocketAddr::from((Ipv6Addr::LOCALHOST, PROXY_PORT)), true)?,
        dns_tcp: tcp_listener(SocketAddr::from((DNS_ADDR, 53)), true)?,
        dns_udp: OwnedFd::from(std::net::UdpSocket::bind(SocketAddr::from((DNS_ADDR, 53)))?),
        dns_udp6: OwnedFd::from(std::net::UdpSocket::bind(SocketAddr::from((
            Ipv6Addr::LOCALHOST,
            53,
        )))?),
        // `[::]` takes IPv4 too (bindv6only is 0 in a new namespace): redirect sends IPv4 to
        // 127.0.0.1 and IPv6 to ::1, both reach it.
        captured: tcp_listener(
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, CAPTURE_PORT)),
            false,
        )?,
    })
}

/// How long a connection to a listener whose clients speak first may stay silent before it is
/// handed to the proxy anyway (the kernel rounds it up to its SYN-ACK retransmissions: ~7 s).
const DEFER_ACCEPT_SECS: libc::c_int = 5;

/// A TCP listener for the proxy. Every one sets `TCP_NODELAY`, which the sockets it accepts
/// inherit (one `setsockopt` per listener instead of one per connection: a tunnel relays
/// small messages, which Nagle would hold back). Where the client always speaks first (an HTTP
/// request, a DNS query; not a captured connection, which may be SMTP or MySQL, whose server
/// speaks first), `TCP_DEFER_ACCEPT` hands a connection over only once its first bytes are
/// there: the proxy is woken once per connection, not once for the handshake and again for the
/// request, and a client that connects and sends nothing costs it nothing.
fn tcp_listener(addr: SocketAddr, client_first: bool) -> std::io::Result<OwnedFd> {
    let l = OwnedFd::from(std::net::TcpListener::bind(addr)?);
    nix::sys::socket::setsockopt(&l, nix::sys::socket::sockopt::TcpNoDelay, &true)?;
    if client_first {
        sys::set_defer_accept(l.as_fd(), DEFER_ACCEPT_SECS)?;
    }
    Ok(l)
}

/// The step's network: the capture rules and `local` default routes on `lo` with an NFLOG
/// socket for what the rules drop (no device), or, where nf_tables or NFLOG is unavailable,
/// the TUN device `tun` (`/dev/net/tun`, opened while `/dev` was still the host's) as the
/// default route. The error is fatal (rules installed without their routes).
pub fn make_network(tun: std::io::Result<OwnedFd>) -> std::io::Result<Network> {
    match kernel_capture()? {
        Ok(nflog) => Ok(Network::Kernel(nflog)),
        Err(why) => Ok(match make_tun(tun)? {
            Ok(tun) => Network::Tun(tun, why),
            Err(no_tun) => Network::Off(format!("{why}; {no_tun}")),
        }),
    }
}

/// What [`make_network`] made.
pub enum Network {
    /// Capture rules, routes on `lo`, and the NFLOG socket.
    Kernel(OwnedFd),
    /// The TUN fallback, and why there are no rules.
    Tun(OwnedFd, String),
    /// Neither (why): no default route at all.
    Off(String),
}

/// The capture rules, NFLOG and routes; the inner error is why there are none (the TUN
/// fallback then), the outer one is fatal.
fn kernel_capture() -> std::io::Result<Result<OwnedFd, String>> {
    if std::env::var_os(NO_NFTABLES_VAR).is_some_and(|v| v == "1") {
        return Ok(Err(format!("{NO_NFTABLES_VAR}=1")));
    }
    let nflog = match nflog::open(nflog::GROUP) {
        Ok(s) => s,
        Err(e) => return Ok(Err(format!("NFLOG: {e}"))),
    };
    let rules = nft::Rules {
        port: CAPTURE_PORT,
        stub: DNS_ADDR,
        own_v4: OWN_V4,
        own_v6: OWN_V6,
        group: nflog::GROUP,
        snaplen: nflog::COPY_RANGE,
    };
    if let Err(e) = nft::install_capture(&rules) {
        return Ok(Err(format!("nf_tables: {e}")));
    }
    rtnl::local_default_routes(OWN_V4, OWN_V6)?;
    Ok(Ok(nflog))
}

/// Where this namespace's IPv6 keeps the default for new devices' generated link-local address.
const ADDR_GEN_MODE: &str = "/proc/sys/net/ipv6/conf/default/addr_gen_mode";

/// Opens `/dev/net/tun` for [`make_tun`] (while `/dev` is still the host's), after telling this
/// namespace's IPv6 to generate no link-local address for new devices (`addr_gen_mode` 1, in
/// the step's own namespace; the host's is untouched). `sj0` needs none: its one address and
/// its routes are set explicitly. With one, bringing it up runs the address generation and
/// cost 3-6 ms instead of 0.2 ms in a fresh namespace on this kernel (a Python replica of the
/// ioctls, 3 runs each). Best effort: where the write is refused the device works the same,
/// only slower to bring up. Before the mounts, which make `/proc` read-only.
pub fn open_tun() -> std::io::Result<OwnedFd> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(ADDR_GEN_MODE)
    {
        let _ = f.write_all(b"1");
    }
    sys::tun_open()
}

/// The TUN device and the default routes through it. The outer error is fatal (a device that
/// exists without its routes); the inner one is why there is no device at all, typically
/// `/dev/net/tun` with mode 0600 (distributions ship 0666): then there is no default route, so
/// direct connections fail with ENETUNREACH: less access, not more. `tun` is `/dev/net/tun`,
/// opened while `/dev` was still the host's.
fn make_tun(tun: std::io::Result<OwnedFd>) -> std::io::Result<Result<OwnedFd, String>> {
    let tun = match tun.and_then(|fd| sys::tun_attach(&fd, TUN_NAME).map(|()| fd)) {
        Ok(fd) => fd,
        Err(e) => return Ok(Err(format!("/dev/net/tun: {e}"))),
    };
    sys::ipv4_default_via(TUN_NAME, TUN_V4)?;
    sys::ipv6_default_via(TUN_NAME, TUN_V6)?;
    Ok(Ok(tun))
}

/// The two parts put together: what travels to the supervisor, and how capture works.
pub fn assemble(bound: Bound, network: Network) -> (Listeners, Capture) {
    let (nflog, tun, capture) = match network {
        Network::Kernel(nflog) => (Some(nflog), None, Capture::Kernel),
        Network::Tun(tun, why) => (None, Some(tun), Capture::Userspace(why)),
        Network::Off(why) => (None, None, Capture::Off(why)),
    };
    (
        Listeners {
            proxy_v4: bound.proxy_v4,
            proxy_v6: bound.proxy_v6,
            dns_udp: bound.dns_udp,
            dns_udp6: bound.dns_udp6,
            dns_tcp: bound.dns_tcp,
            captured: bound.captured,
            nflog,
            tun,
        },
        capture,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener for clients that speak first hands a connection over only with its first
    /// bytes; the capture listener at once. Both give accepted sockets TCP_NODELAY.
    #[test]
    fn proxy_listeners_defer_silent_connections_and_pass_on_nodelay() {
        use nix::sys::socket::{getsockopt, sockopt::TcpNoDelay};
        use std::io::Write;
        let accept_now = |l: &std::net::TcpListener| match l.accept() {
            Ok((s, _)) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => panic!("accept: {e}"),
        };
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        for client_first in [true, false] {
            let l = std::net::TcpListener::from(tcp_listener(any, client_first).unwrap());
            l.set_nonblocking(true).unwrap();
            let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let early = accept_now(&l);
            assert_eq!(
                early.is_some(),
                !client_first,
                "client_first {client_first}"
            );
            let s = early.unwrap_or_else(|| {
                c.write_all(b"C").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
                accept_now(&l).expect("handed over with its first byte")
            });
            assert!(
                getsockopt(&s, TcpNoDelay).unwrap(),
                "client_first {client_first}"
            );
            assert!(!getsockopt(&c, TcpNoDelay).unwrap());
        }
    }

    #[test]
    fn every_proxy_variable_the_step_gets_is_reserved() {
        // A secret of one of these names would replace the proxy setting: the one list of
        // names no secret may take must hold each of them.
        for (name, _) in proxy_env().into_iter().chain(tool_proxy_env(None)) {
            assert!(crate::policy::reserved::is_reserved(&name), "{name}");
        }
    }

    #[test]
    fn proxy_env_sets_both_cases_and_excludes_loopback() {
        let env = proxy_env();
        for k in ["HTTP_PROXY", "https_proxy", "ALL_PROXY"] {
            assert!(
                env.contains(&(k.to_string(), "http://127.0.0.1:3128".to_string())),
                "{k}"
            );
        }
        assert!(env.contains(&(
            "NO_PROXY".to_string(),
            "localhost,127.0.0.1,::1".to_string()
        )));
    }

    #[test]
    fn resolv_conf_names_only_the_stub() {
        let r = resolv_conf();
        assert_eq!(
            r.lines()
                .filter(|l| l.starts_with("nameserver"))
                .collect::<Vec<_>>(),
            ["nameserver 127.0.0.53"]
        );
    }

    #[test]
    fn the_jvm_gets_the_proxy_after_the_callers_own_options() {
        let get = |env: Vec<(String, String)>, k: &str| {
            env.into_iter().find(|(n, _)| n == k).map(|(_, v)| v)
        };
        let props = "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts=localhost|127.*|[::1]";
        assert_eq!(jvm_proxy_options(), props);
        assert_eq!(
            get(tool_proxy_env(None), "JAVA_TOOL_OPTIONS").unwrap(),
            props
        );
        assert_eq!(
            get(tool_proxy_env(Some("  ")), "JAVA_TOOL_OPTIONS").unwrap(),
            props
        );
        assert_eq!(
            get(
                tool_proxy_env(Some("-Xmx1g -Dhttps.proxyHost=evil")),
                "JAVA_TOOL_OPTIONS"
            )
            .unwrap(),
            format!("-Xmx1g -Dhttps.proxyHost=evil {props}")
        );
        assert_eq!(
            get(tool_proxy_env(None), "NODE_USE_ENV_PROXY").unwrap(),
            "1"
        );
        assert_eq!(
            get(tool_proxy_env(None), "YARN_HTTPS_PROXY").unwrap(),
            "http://127.0.0.1:3128"
        );
    }
}
