//! Captured TCP on kernel sockets: nf_tables rules in the step's namespace (see
//! [`crate::net::nft`]) redirect every TCP connection the step routes to the TUN device to one
//! listener there. The original destination comes from conntrack (`SO_ORIGINAL_DST`,
//! `IP6T_SO_ORIGINAL_DST`); the connection is then decided exactly as the userspace-stack path
//! decides it ([`super::transparent::captured_connection`]) and an allowed one is relayed with
//! splice(2), like a CONNECT tunnel.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;

use nix::sys::socket::{getsockopt, sockopt};
use tokio::net::{TcpListener, TcpStream};

use super::engine::{Attempt, Engine};
use crate::audit::{NameSource, Protocol, Via};

pub async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of descriptors or a connection reset before accept: keep serving.
            Err(_) => {
                super::engine::accept_backoff().await;
                continue;
            }
        };
        let engine = engine.clone();
        // Taken before anything is read (see `super::limit`); held until the task ends.
        let Some(slot) = engine.limit.slot() else {
            over_limit(stream, &engine);
            continue;
        };
        tokio::spawn(async move {
            let _slot = slot;
            // TCP_NODELAY comes from the listener (`net::tcp_listener`).
            match original_destination(&stream) {
                Some(dst) => super::transparent::captured_connection(stream, dst, engine).await,
                None => refuse_direct(&stream, &engine),
            }
        });
    }
}

/// Where the step sent this connection before the redirect. `None` when it was not redirected
/// (the step connected to the capture listener itself): there is no destination to decide.
fn original_destination(stream: &TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    let dst = match getsockopt(stream, sockopt::OriginalDst) {
        Ok(v4) => SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
            u16::from_be(v4.sin_port),
        )),
        Err(_) => {
            let v6 = getsockopt(stream, sockopt::Ip6tOriginalDst).ok()?;
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                0,
                0,
            ))
        }
    };
    // Not translated: conntrack reports the listener's own address.
    let same = |a: SocketAddr, b: SocketAddr| {
        a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
    };
    (!same(dst, local)).then_some(dst)
}

/// A connection accepted with the step's cap reached: its record (by the address the step
/// dialled: nothing is read from it), then a reset, at once.
fn over_limit(stream: TcpStream, engine: &Arc<Engine>) {
    let dst = original_destination(&stream).or_else(|| stream.local_addr().ok());
    let a = Attempt {
        conn: engine.conn_id(),
        name: None,
        source: NameSource::None,
        ip: dst.map(|d| d.ip().to_canonical()),
        port: dst.map_or(0, |d| d.port()),
        protocol: Protocol::Tcp,
        via: Via::Transparent,
    };
    engine.refuse_over_limit(&a);
    super::limit::reset(stream);
}

fn refuse_direct(stream: &TcpStream, engine: &Engine) {
    let local = stream.local_addr().ok();
    let a = Attempt {
        conn: engine.conn_id(),
        name: None,
        source: NameSource::None,
        ip: local.map(|l| l.ip().to_canonical()),
        port: local.map_or(0, |l| l.port()),
        protocol: Protocol::Tcp,
        via: Via::Transparent,
    };
    engine.log_refusal_only(
        &a,
        &super::denial::Denial::policy(
            "a direct connection to the capture listener has no destination",
        ),
    );
}
