//! A connection whose `connect` record cannot be written is not relayed: the audit log fails
//! exactly at that record (a log on /dev/full, which takes nothing), after the upstream was
//! dialled; the step is refused and the upstream receives nothing. Explicit CONNECT, plain HTTP
//! through the proxy, and a captured connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::engine::{AUDIT_BROKEN, Engine};
use crate::audit::AuditLog;
use crate::policy::egress::rule_text;
use crate::policy::model::{AllowRule, Location, Network, NetworkMode, RuleTarget};

/// An upstream on 127.0.0.1 recording the bytes each accepted connection sent until its end.
async fn upstream() -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen.clone();
            let i = {
                let mut g = seen.lock().unwrap();
                g.push(Vec::new());
                g.len() - 1
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    seen.lock().unwrap()[i].extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (addr, got)
}

/// An engine allowing exactly `up` (a cidr rule for its loopback address and port), logging to
/// a log that fails every write.
fn engine(up: SocketAddr) -> Arc<Engine> {
    let target = RuleTarget::Cidr("127.0.0.1/32".parse().unwrap());
    let rule = AllowRule {
        text: rule_text(&target, &[up.port()]),
        target,
        ports: vec![up.port()],
        at: Location {
            file: "t.yml".into(),
            line: 1,
            column: 1,
        },
        key: "network.allow[0]".into(),
        methods: vec![],
        paths: vec![],
        raw_tcp: true,
    };
    let network = Network {
        mode: NetworkMode::Enforce,
        allow: vec![rule].into(),
        upstream_proxy: None,
        max_connections: None,
    };
    let resolver = "127.0.0.1:9".parse().unwrap();
    Arc::new(Engine::new(
        network,
        "t".into(),
        AuditLog::full("t"),
        resolver,
    ))
}

/// The explicit proxy serving `engine` on a local port.
async fn proxy(engine: Arc<Engine>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(super::explicit::serve(l, engine));
    addr
}

/// Sends `bytes` on a new connection to `to` and reads until the other side closes.
async fn exchange(to: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "no end: {}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).into_owned()
}

/// The upstream saw exactly one connection (the dial), which carried nothing.
async fn dialled_once_got_nothing(got: &Mutex<Vec<Vec<u8>>>) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].is_empty(),
        "relayed: {:?}",
        String::from_utf8_lossy(&got[0])
    );
}

#[tokio::test]
async fn explicit_connect_whose_record_fails_is_refused_and_relays_nothing() {
    let (up, got) = upstream().await;
    let e = engine(up);
    let p = proxy(e.clone()).await;
    let req = format!("CONNECT {up} HTTP/1.1\r\nHost: {up}\r\n\r\nfirst bytes of the tunnel");
    let resp = exchange(p, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 403 "), "{resp}");
    assert!(resp.contains(AUDIT_BROKEN), "{resp}");
    dialled_once_got_nothing(&got).await;
    assert!(e.audit_broken());
    assert_eq!(e.open_connections(), 0);
    // And the next one is refused before any dial.
    let resp = exchange(p, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 403 "), "{resp}");
    dialled_once_got_nothing(&got).await;
}

#[tokio::test]
async fn plain_http_whose_record_fails_is_refused_and_sends_nothing() {
    let (up, got) = upstream().await;
    let p = proxy(engine(up)).await;
    let req = format!("GET http://{up}/x HTTP/1.1\r\nHost: {up}\r\nConnection: close\r\n\r\n");
    let resp = exchange(p, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 403 "), "{resp}");
    assert!(resp.contains(AUDIT_BROKEN), "{resp}");
    dialled_once_got_nothing(&got).await;
}

#[tokio::test]
async fn captured_connection_whose_record_fails_is_closed_and_relays_nothing() {
    let (up, got) = upstream().await;
    let e = engine(up);
    // The step's side: a connection to a local listener, handed over as captured for `up`.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        super::transparent::captured_connection(s, up, e).await;
    });
    // Neither TLS nor HTTP: decided by the address, which the cidr rule allows.
    let resp = exchange(at, b"\x00\x01raw protocol\r\n\r\n").await;
    assert_eq!(resp, "");
    dialled_once_got_nothing(&got).await;
}
