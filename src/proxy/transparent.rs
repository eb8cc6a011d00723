//! Transparent capture: every packet the step sends to a non-loopback address arrives in the
//! TUN queue. A userspace TCP/IP stack (ipstack) terminates TCP here; each connection is
//! decided by the TLS ClientHello's server name or the HTTP Host header, then dialled upstream
//! from the host's namespace. UDP to port 53 is answered by the DNS stub; any other UDP, ICMP
//! and raw packet never leaves, and is logged. Where nf_tables rules redirect TCP to a kernel
//! listener instead ([`super::captured`]), the same decision runs on kernel sockets.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use ipstack::{IpStack, IpStackConfig, IpStackStream};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::client_hello::{FirstBytes, read_client_hello};
use super::denial::Denial;
use super::engine::{AUDIT_BROKEN, Attempt, Engine, Open, Verdict, classify_host};
use super::http_head::parse_request_head;
use super::limit::REFUSAL_READ;
use super::sni::Peek;
use crate::audit::{NameSource, Protocol, Via};

/// How long a captured connection may take to send its first bytes. Protocols where the server
/// speaks first (SSH, SMTP) send nothing: they are decided by address after this.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(3);

/// The TUN queue as an async packet device: one read is one packet, one write is one packet.
struct Tun(AsyncFd<OwnedFd>);

impl Tun {
    fn new(fd: OwnedFd) -> io::Result<Tun> {
        let flags =
            nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        Ok(Tun(crate::sys::async_fd(fd)?))
    }
}

impl AsyncRead for Tun {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard
                .try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(io::Error::from))
            {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Tun {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

pub async fn serve(tun: OwnedFd, engine: Arc<Engine>) {
    let raw = tun.as_raw_fd();
    let dev = match Tun::new(tun) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(
                "transparent capture unavailable (fd {raw}): {e}; captured traffic goes nowhere"
            );
            return;
        }
    };
    let mut config = IpStackConfig::default();
    config.mtu_unchecked(crate::net::TUN_MTU);
    config.packet_information(false);
    config.udp_timeout(Duration::from_secs(30));
    let mut stack = IpStack::new(config, dev);
    while let Ok(stream) = stack.accept().await {
        let engine = engine.clone();
        match stream {
            IpStackStream::Tcp(mut tcp) => match engine.limit.slot() {
                Some(slot) => {
                    tokio::spawn(async move {
                        let _slot = slot;
                        tcp_connection(tcp, engine).await
                    });
                }
                None => {
                    let dst = tcp.peer_addr();
                    let a = Attempt {
                        conn: engine.conn_id(),
                        name: None,
                        source: NameSource::None,
                        ip: Some(dst.ip()),
                        port: dst.port(),
                        protocol: Protocol::Tcp,
                        via: Via::Transparent,
                    };
                    engine.refuse_over_limit(&a);
                    // A dropped stream of the userspace stack sends nothing, and it sends its
                    // FIN only once the handshake is done: wait for that, briefly and bounded
                    // (at most the cap's number of refused connections at once).
                    if let Some(answering) = engine.limit.answering() {
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(REFUSAL_READ, tcp.shutdown()).await;
                            drop((tcp, answering));
                        });
                    }
                }
            },
            IpStackStream::Udp(udp) => {
                let dst = udp.peer_addr();
                if dst.port() == 53 {
                    tokio::spawn(async move { super::stub::serve_captured_udp(udp, engine).await });
                } else {
                    refuse_datagram(
                        &engine,
                        dst,
                        Protocol::Udp,
                        "UDP other than DNS never leaves the sandbox",
                    );
                }
            }
            // The kernel's own IPv6 housekeeping (router solicitations, MLD) on the TUN link.
            IpStackStream::UnknownTransport(u) if is_link_local_multicast(u.dst_addr()) => {}
            IpStackStream::UnknownTransport(u) => {
                let proto = if u.ip_protocol() == ipstack::IpNumber::ICMP
                    || u.ip_protocol() == ipstack::IpNumber::IPV6_ICMP
                {
                    Protocol::Icmp
                } else {
                    Protocol::Udp
                };
                refuse_datagram(
                    &engine,
                    SocketAddr::new(u.dst_addr(), 0),
                    proto,
                    "ICMP and raw IP never leave the sandbox",
                );
            }
            IpStackStream::UnknownNetwork(_) => {}
        }
    }
}

fn is_link_local_multicast(ip: std::net::IpAddr) -> bool {
    matches!(ip, std::net::IpAddr::V6(v6) if v6.segments()[0] == 0xff02)
}

pub(super) fn refuse_datagram(
    engine: &Engine,
    dst: SocketAddr,
    protocol: Protocol,
    reason: &'static str,
) {
    let a = Attempt {
        conn: engine.conn_id(),
        name: None,
        source: NameSource::None,
        ip: Some(dst.ip()),
        port: dst.port(),
        protocol,
        via: Via::Transparent,
    };
    // Never allowed, not even in audit mode: there is nothing to relay UDP or ICMP with.
    engine.log_refusal_only(&a, &Denial::policy(reason));
}

/// The step's end of a captured TCP connection: a stream of the userspace stack (TUN), or a
/// kernel socket redirected by nf_tables (see [`super::captured`]), which is relayed with splice.
pub(super) trait StepSide: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Relays an admitted connection until both sides finish; `already_up`: bytes sent first.
    fn relay(
        self,
        open: Open,
        upstream: TcpStream,
        already_up: u64,
    ) -> impl Future<Output = ()> + Send;
}

impl StepSide for ipstack::IpStackTcpStream {
    async fn relay(self, open: Open, upstream: TcpStream, already_up: u64) {
        Engine::relay(open, self, upstream, already_up).await
    }
}

impl StepSide for TcpStream {
    async fn relay(self, open: Open, upstream: TcpStream, already_up: u64) {
        open.add_up(already_up);
        super::splice::relay(self, upstream, &open.counters).await;
    }
}

async fn tcp_connection(tcp: ipstack::IpStackTcpStream, engine: Arc<Engine>) {
    let dst = tcp.peer_addr();
    captured_connection(tcp, dst, engine).await
}

/// One captured TCP connection to `dst` (where the step sent it): decided by the TLS server
/// name, the HTTP Host or the address, then relayed, served request by request, or refused.
pub(super) async fn captured_connection<S: StepSide>(
    mut tcp: S,
    dst: SocketAddr,
    engine: Arc<Engine>,
) {
    let started = Instant::now();
    let mut first = Vec::with_capacity(1024);
    let peeked = tokio::time::timeout(
        FIRST_BYTES_TIMEOUT + Duration::from_millis(100),
        peek_name(&mut tcp, &mut first),
    )
    .await;
    let mut attempt = Attempt {
        conn: engine.conn_id(),
        name: None,
        source: NameSource::None,
        ip: Some(dst.ip()),
        port: dst.port(),
        protocol: Protocol::Tcp,
        via: Via::Transparent,
    };
    let peeked = peeked.unwrap_or(Peeked::Nothing);
    // Plain HTTP is served request by request, each one decided and checked as a proxied
    // request is, never relayed as a byte stream after its first request.
    if let Peeked::Name(NameSource::Host, _) = &peeked {
        let mut io = super::prefixed::Prefixed::new(first, tcp);
        let from = super::explicit::PlainHttp::Captured { port: dst.port() };
        super::explicit::serve_plain_http(engine, &mut io, from).await;
        // However hyper ended (an upstream reset mid-body included), end the step's side: a
        // dropped userspace-stack stream sends nothing, and the step would wait forever. One
        // poll sends the FIN (waiting for its acknowledgement could block on a gone step).
        let _ = tokio::time::timeout(Duration::ZERO, io.shutdown()).await;
        return;
    }
    let verdict = match peeked {
        Peeked::Name(source, host) => match classify_host(&host) {
            Ok(Ok(name)) => {
                attempt.name = Some(name);
                attempt.source = source;
                engine.decide(&attempt)
            }
            Ok(Err(_ip)) => engine.decide(&attempt),
            Err(reason) => engine.refuse(&attempt, Denial::policy(reason)),
        },
        Peeked::Refuse(source, reason) => {
            attempt.source = source;
            engine.refuse(&attempt, Denial::policy(reason))
        }
        Peeked::Nothing => engine.decide(&attempt),
        Peeked::Closed => return,
    };
    let (rule, would_deny) = match verdict {
        Verdict::Go { rule, would_deny } => (rule, would_deny),
        Verdict::Refuse(denial) => return close_refused(tcp, &first, &denial).await,
    };
    if let Some(broker) = engine.broker_for(attempt.name.as_deref())
        && attempt.source == NameSource::Sni
    {
        let step = super::prefixed::Prefixed::new(first, tcp);
        return super::broker::intercept(engine.clone(), broker, step, attempt, rule, would_deny)
            .await;
    }
    // An allowed name is dialled by name (resolved and checked by us), never at the address
    // the step picked: that address is only trusted when no name is known and a cidr allows it.
    let mut upstream = match engine.dial(&mut attempt, rule.as_deref()).await {
        Ok(s) => s,
        Err(denial) => {
            engine.log_refusal_only(&attempt, &denial);
            return close_refused(tcp, &first, &denial).await;
        }
    };
    if !engine.admitted(&attempt, rule, would_deny) {
        drop(upstream);
        return close_refused(tcp, &first, &Denial::policy(AUDIT_BROKEN)).await;
    }
    let open = engine.opened(attempt.conn, started);
    if upstream.write_all(&first).await.is_err() {
        return;
    }
    tcp.relay(open, upstream, first.len() as u64).await;
}

/// Ends a refused connection at once, so the step's tool fails now instead of at its timeout:
/// a plain HTTP request gets the denial's answer saying why, anything else is closed.
async fn close_refused<S: AsyncWrite + Unpin>(mut tcp: S, first: &[u8], denial: &Denial) {
    if matches!(parse_request_head(first), Peek::Done(_)) {
        let _ = tcp.write_all(&denial.raw_response()).await;
    }
    let _ = tcp.shutdown().await;
}

enum Peeked {
    Name(NameSource, String),
    Refuse(NameSource, String),
    Nothing,
    Closed,
}

/// Reads the connection's first bytes and finds the name it is for.
async fn peek_name<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Peeked {
    match read_client_hello(s, buf, FIRST_BYTES_TIMEOUT).await {
        FirstBytes::Tls { ech: true, .. } => Peeked::Refuse(
            NameSource::Sni,
            "the TLS ClientHello is encrypted (ECH), which hides the real destination".into(),
        ),
        FirstBytes::Tls { sni: Some(sni), .. } => Peeked::Name(NameSource::Sni, sni),
        FirstBytes::Tls { sni: None, .. } => Peeked::Refuse(
            NameSource::Sni,
            "a TLS connection without a server name (SNI) cannot be checked".into(),
        ),
        FirstBytes::Bad(why) => Peeked::Refuse(NameSource::Sni, why),
        FirstBytes::Closed => Peeked::Closed,
        FirstBytes::TimedOut if buf.is_empty() => Peeked::Nothing,
        FirstBytes::TimedOut | FirstBytes::NotTls => http_host(s, buf).await,
    }
}

/// For plain HTTP: the Host header of the first request (read until the head is complete).
async fn http_host<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Peeked {
    use tokio::io::AsyncReadExt;
    loop {
        match parse_request_head(buf) {
            Peek::Done(head) => {
                return match (head.host, head.host_headers) {
                    (Some(h), 1) => Peeked::Name(
                        NameSource::Host,
                        super::engine::host_without_port(&h).to_string(),
                    ),
                    (_, 0) => Peeked::Nothing,
                    _ => Peeked::Refuse(NameSource::Host, "more than one Host header".into()),
                };
            }
            Peek::NotThis | Peek::Malformed(_) => return Peeked::Nothing,
            Peek::NeedMore => {}
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return Peeked::Nothing,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
