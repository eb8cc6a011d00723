//! What the capture rules dropped (UDP other than DNS, ICMP, raw IP for outside), read from the
//! NFLOG socket the sandbox child handed over ([`crate::net::nflog`]) and logged as refused
//! attempts, as the TUN fallback logs what reaches it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;

use super::engine::Engine;
use super::transparent::refuse_datagram;
use crate::audit::Protocol;
use crate::net::nflog;

/// Logs each dropped packet as it is reported, until the runtime stops.
pub async fn serve(fd: Arc<AsyncFd<OwnedFd>>, engine: Arc<Engine>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let mut ready = match fd.readable().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "NFLOG socket failed; dropped datagrams are no longer logged");
                return;
            }
        };
        match ready.try_io(|inner| recv(inner.get_ref(), &mut buf)) {
            Ok(Ok(n)) => log(&engine, &buf[..n]),
            Ok(Err(e)) => {
                // ENOBUFS: the kernel dropped reports (a flood); the packets were dropped anyway.
                tracing::debug!(error = %e, "reading the NFLOG socket");
            }
            Err(_would_block) => {}
        }
    }
}

/// Logs what is waiting on the socket now (the proxy is stopping), without blocking.
pub fn drain(fd: &OwnedFd, engine: &Engine) {
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = recv(fd, &mut buf) {
        log(engine, &buf[..n]);
    }
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    nix::sys::socket::recv(
        fd.as_raw_fd(),
        buf,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)
}

fn log(engine: &Engine, buf: &[u8]) {
    for d in nflog::parse(buf) {
        let (protocol, reason) = match d.protocol as i32 {
            libc::IPPROTO_UDP => (Protocol::Udp, "UDP other than DNS never leaves the sandbox"),
            libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6 => {
                (Protocol::Icmp, "ICMP and raw IP never leave the sandbox")
            }
            // A TCP segment the redirect did not rewrite (one conntrack found invalid, say):
            // its connection was captured and logged when it began.
            libc::IPPROTO_TCP => continue,
            _ => (Protocol::Udp, "ICMP and raw IP never leave the sandbox"),
        };
        refuse_datagram(engine, d.dst, protocol, reason);
    }
}
