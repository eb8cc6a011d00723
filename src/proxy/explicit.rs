//! The explicit proxy on 127.0.0.1:3128 inside the sandbox (what `HTTP(S)_PROXY` point at):
//! `CONNECT host:port` tunnels and plain-HTTP forwarding of absolute-form requests.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::client_hello::{FIRST_BYTES_TIMEOUT, FirstBytes, read_client_hello};
use super::content_coding::MAX_SCANNED_BODY;
use super::denial::{Denial, Kind as DenialKind};
use super::engine::{AUDIT_BROKEN, Attempt, Engine, Verdict, classify_host};
use super::http_head::{RequestHead, parse_request_head, target_authority};
use super::limit::{REFUSAL_READ, Slot};
use super::sni::Peek;
use crate::audit::{self, Decision, Event, NameSource, Protocol, Via};

type Body = BoxBody<Bytes, hyper::Error>;

/// The same where a rule allows raw TCP: protocols where the server speaks first (SMTP, MySQL)
/// send nothing, and are relayed after this.
const RAW_FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors (EMFILE) or the like: the pending connection stays queued,
            // so retrying at once would spin; wait for connections to close.
            super::engine::accept_backoff().await;
            continue;
        };
        // TCP_NODELAY comes from the listener, and the connection arrives with its first bytes
        // (TCP_DEFER_ACCEPT, `net::tcp_listener`).
        let engine = engine.clone();
        // Taken before anything is read: a client dribbling its head holds a descriptor too.
        let Some(slot) = engine.limit.slot() else {
            tokio::spawn(over_limit(stream, engine));
            continue;
        };
        tokio::spawn(async move {
            // Held until the connection (and a tunnel it became) ends.
            let slot = Arc::new(slot);
            // CONNECT, the common case (every HTTPS request), is handled on the raw socket:
            // no HTTP machinery in the tunnel's way, and the socket itself is spliced.
            let (stream, first) = match read_first_head(stream).await {
                FirstHead::Connect(stream, head, rest) => {
                    return raw_connect(stream, head, rest, engine).await;
                }
                FirstHead::Other(stream, first) => (stream, first),
                FirstHead::Gone => return,
            };
            let pool: Pool = Arc::default();
            let svc = {
                let slot = slot.clone();
                service_fn(move |req| handle(req, engine.clone(), pool.clone(), slot.clone()))
            };
            let io = super::prefixed::Prefixed::new(first, stream);
            let _ = http1::Builder::new()
                .preserve_header_case(true)
                .timer(TokioTimer::new())
                .header_read_timeout(FIRST_BYTES_TIMEOUT)
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades()
                .await;
            drop(slot);
        });
    }
}

/// A connection accepted with the step's cap reached: given [`REFUSAL_READ`] to send its
/// request head (so its record names where it was going, and the client reads the answer rather
/// than a reset), then answered `503` and closed.
async fn over_limit(mut stream: TcpStream, engine: Arc<Engine>) {
    let local = stream.local_addr().ok();
    let mut a = Attempt {
        conn: engine.conn_id(),
        name: None,
        source: NameSource::None,
        ip: local.map(|l| l.ip()),
        port: local.map_or(0, |l| l.port()),
        protocol: Protocol::Tcp,
        via: Via::Proxy,
    };
    let Some(_answering) = engine.limit.answering() else {
        engine.refuse_over_limit(&a);
        return super::limit::reset(stream);
    };
    let mut buf = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + REFUSAL_READ;
    let head = loop {
        match parse_request_head(&buf) {
            Peek::Done(head) => break Some(head),
            Peek::NeedMore => {}
            Peek::NotThis | Peek::Malformed(_) => break None,
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break None,
        }
    };
    if let Some(head) = head
        && let Ok((host, port, _)) = target_authority(&head)
        && let Ok(host) = classify_host(&host)
    {
        let source = if head.method == "CONNECT" {
            NameSource::Connect
        } else {
            NameSource::Host
        };
        a = Attempt::proxied(a.conn, host, port, source);
    }
    let denial = engine.refuse_over_limit(&a);
    respond_raw(&mut stream, &denial).await;
}

enum FirstHead {
    /// A CONNECT request head, and any bytes the client sent after it.
    Connect(TcpStream, RequestHead, Vec<u8>),
    /// Anything else: the bytes read so far, for hyper to parse again.
    Other(TcpStream, Vec<u8>),
    Gone,
}

/// Reads the connection's first request head (bounded in size and time).
async fn read_first_head(mut stream: TcpStream) -> FirstHead {
    let mut buf = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + FIRST_BYTES_TIMEOUT;
    loop {
        match parse_request_head(&buf) {
            Peek::Done(head) if head.method == "CONNECT" => {
                let rest = buf.split_off(head.head_len);
                return FirstHead::Connect(stream, head, rest);
            }
            Peek::NeedMore => {}
            _ => return FirstHead::Other(stream, buf),
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return FirstHead::Gone,
        }
    }
}

async fn respond_raw(stream: &mut TcpStream, denial: &Denial) {
    let _ = stream.write_all(&denial.raw_response()).await;
    let _ = stream.shutdown().await;
}

/// `CONNECT host:port` on the raw client socket.
async fn raw_connect(mut stream: TcpStream, head: RequestHead, rest: Vec<u8>, engine: Arc<Engine>) {
    let conn = engine.conn_id();
    let started = Instant::now();
    let target = target_authority(&head)
        .map_err(|e| e.to_string())
        .and_then(|(host, port, _)| Ok((classify_host(&host)?, port)));
    let (host, port) = match target {
        Ok(t) => t,
        Err(e) => return respond_raw(&mut stream, &Denial::bad_request(e)).await,
    };
    let mut attempt = Attempt::proxied(conn, host, port, NameSource::Connect);
    let (rule, would_deny) = match engine.decide(&attempt) {
        Verdict::Go { rule, would_deny } => (rule, would_deny),
        Verdict::Refuse(denial) => return respond_raw(&mut stream, &denial).await,
    };
    // A host a brokered secret is bound to: terminate TLS here and swap the secret in.
    if let Some(broker) = engine.broker_for(attempt.name.as_deref()) {
        if stream
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        let step = super::prefixed::Prefixed::new(rest, stream);
        return super::broker::intercept(engine.clone(), broker, step, attempt, rule, would_deny)
            .await;
    }
    let upstream = match engine
        .dial_then_nodelay(&mut attempt, rule.as_deref())
        .await
    {
        Ok(s) => s,
        Err(denial) => {
            engine.log_refusal_only(&attempt, &denial);
            return respond_raw(&mut stream, &denial).await;
        }
    };
    if !engine.admitted(&attempt, rule, would_deny) {
        drop(upstream);
        return respond_raw(&mut stream, &Denial::policy(AUDIT_BROKEN)).await;
    }
    let open = engine.opened(conn, started);
    if stream
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    // While the client reads the answer and sends its first bytes.
    let _ = upstream.set_nodelay(true);
    splice_tunnel(engine, attempt, stream, rest, upstream, open).await;
}

/// Serves an established tunnel on the step's own socket: HTTP in it request by request, TLS
/// or an allowed raw protocol relayed with splice (zero copy). `first`: bytes already read.
async fn splice_tunnel(
    engine: Arc<Engine>,
    attempt: Attempt,
    mut step: TcpStream,
    mut first: Vec<u8>,
    mut upstream: TcpStream,
    open: super::engine::Open,
) {
    match tunnel_first_bytes(&engine, &attempt, &mut step, &mut first).await {
        Tunnel::Relay => {}
        Tunnel::Http => {
            // Each request is decided and dialled on its own; this connection is not used
            // (its close event, with nothing carried, is written now).
            drop((upstream, open));
            let step = super::prefixed::Prefixed::new(first, step);
            return serve_plain_http(engine, step, PlainHttp::Tunnel(attempt)).await;
        }
        Tunnel::Stop => return,
    }
    if upstream.write_all(&first).await.is_err() {
        return;
    }
    open.add_up(first.len() as u64);
    super::splice::relay(step, upstream, &open.counters).await;
}

/// The answer to a refused request.
fn refused(denial: &Denial) -> Response<Body> {
    denial
        .response()
        .map(|b| b.map_err(|never| match never {}).boxed())
}

async fn handle(
    req: Request<Incoming>,
    engine: Arc<Engine>,
    pool: Pool,
    slot: Arc<Slot>,
) -> Result<Response<Body>, Infallible> {
    if req.method() == Method::CONNECT {
        Ok(connect(req, engine, slot).await)
    } else {
        Ok(forward(req, engine, pool, Via::Proxy).await)
    }
}

/// Where a connection of plain HTTP served by [`serve_plain_http`] comes from.
#[derive(Debug, Clone)]
pub enum PlainHttp {
    /// Captured on `port`: a tool that ignored the proxy variables and connected itself.
    Captured { port: u16 },
    /// A CONNECT tunnel whose first bytes were an HTTP request: every request in it must name
    /// the CONNECT host and port (the attempt the CONNECT was decided as).
    Tunnel(Attempt),
}

/// Plain HTTP on a connection of its own (captured, or inside a CONNECT tunnel): served request
/// by request, each one turned into absolute form from its `Host` header and decided, checked
/// and logged exactly as a proxied request is. A second request on a kept-alive connection to an
/// allowed host cannot name another host.
pub async fn serve_plain_http<S>(engine: Arc<Engine>, io: S, from: PlainHttp)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let pool: Pool = Arc::default();
    let svc = service_fn(move |req| {
        let (engine, pool, from) = (engine.clone(), pool.clone(), from.clone());
        async move { Ok::<_, Infallible>(captured(req, engine, pool, from).await) }
    });
    // A kept-alive connection's later heads get the same time as its first.
    let _ = http1::Builder::new()
        .preserve_header_case(true)
        .timer(TokioTimer::new())
        .header_read_timeout(FIRST_BYTES_TIMEOUT)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

async fn captured(
    mut req: Request<Incoming>,
    engine: Arc<Engine>,
    pool: Pool,
    from: PlainHttp,
) -> Response<Body> {
    let port = match &from {
        PlainHttp::Captured { port } => *port,
        PlainHttp::Tunnel(connect) => connect.port,
    };
    if req.uri().authority().is_none() {
        let hosts: Vec<_> = req.headers().get_all(hyper::header::HOST).iter().collect();
        let host = match (hosts.as_slice(), &from) {
            ([h], _) => h.to_str().ok().map(str::to_string),
            // No Host header in a tunnel: the CONNECT host is the one the request is for.
            ([], PlainHttp::Tunnel(connect)) => Some(super::engine::describe(connect)),
            _ => None,
        };
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let absolute = host.and_then(|h| {
            // The connection's port unless the Host header names one (then that one is
            // decided and dialled: the step gains nothing by it).
            let authority = if h.starts_with('[') && h.ends_with(']') || !h.contains(':') {
                if port == 80 { h } else { format!("{h}:{port}") }
            } else {
                h
            };
            format!("http://{authority}{path}")
                .parse::<hyper::Uri>()
                .ok()
        });
        let Some(uri) = absolute else {
            let denial = Denial::bad_request(
                "a captured plain-HTTP request needs exactly one valid Host header",
            );
            engine.log(Event::Http(audit::Http {
                conn: engine.conn_id(),
                method: req.method().to_string(),
                url: audit::sanitize_url(&format!("http://?{path}")),
                decision: Decision::Deny,
                status: Some(denial.status().as_u16()),
            }));
            return refused(&denial);
        };
        *req.uri_mut() = uri;
    }
    let PlainHttp::Tunnel(connect) = &from else {
        return forward(req, engine, pool, Via::Transparent).await;
    };
    // Fronting inside a tunnel: the request must name the host the tunnel was decided for.
    let named = req.uri().authority().map(|a| a.as_str()).unwrap_or("");
    if !same_authority(named, connect) {
        let mut a = connect.clone();
        a.conn = engine.conn_id();
        a.source = NameSource::Host;
        let reason = format!(
            "the request's Host header or target does not match the CONNECT host {} (domain fronting)",
            super::engine::describe(connect)
        );
        match engine.refuse(&a, Denial::policy(reason)) {
            Verdict::Refuse(denial) => {
                engine.log(Event::Http(audit::Http {
                    conn: a.conn,
                    method: req.method().to_string(),
                    url: audit::sanitize_url(&req.uri().to_string()),
                    decision: Decision::Deny,
                    status: Some(denial.status().as_u16()),
                }));
                return refused(&denial);
            }
            Verdict::Go { would_deny, .. } => {
                if !engine.admitted(&a, None, would_deny) {
                    return refused(&Denial::policy(AUDIT_BROKEN));
                }
            }
        }
    }
    forward(req, engine, pool, Via::Proxy).await
}

/// Splits the CONNECT authority into a classified host and the port (required).
fn connect_target(
    req: &Request<Incoming>,
) -> Result<(Result<String, std::net::IpAddr>, u16), String> {
    let auth = req.uri().authority().ok_or("CONNECT needs host:port")?;
    let port = auth.port_u16().ok_or("CONNECT needs an explicit port")?;
    Ok((classify_host(auth.host())?, port))
}

/// `slot`: the connection's place under the cap, which the tunnel keeps once hyper lets go.
async fn connect(req: Request<Incoming>, engine: Arc<Engine>, slot: Arc<Slot>) -> Response<Body> {
    let conn = engine.conn_id();
    let started = Instant::now();
    let (host, port) = match connect_target(&req) {
        Ok(t) => t,
        Err(e) => return refused(&Denial::bad_request(e)),
    };
    let mut attempt = Attempt::proxied(conn, host, port, NameSource::Connect);
    let (rule, would_deny) = match engine.decide(&attempt) {
        Verdict::Go { rule, would_deny } => (rule, would_deny),
        Verdict::Refuse(denial) => return refused(&denial),
    };
    if engine.broker_for(attempt.name.as_deref()).is_some() {
        // Interception needs the raw connection; this CONNECT came after other requests.
        return refused(&Denial::policy(
            "CONNECT to a host with brokered secrets must open a new proxy connection",
        ));
    }
    let upstream = match engine.dial(&mut attempt, rule.as_deref()).await {
        Ok(s) => s,
        Err(denial) => {
            // Audit mode cannot make an unreachable (or special) address reachable.
            engine.log_refusal_only(&attempt, &denial);
            return refused(&denial);
        }
    };
    if !engine.admitted(&attempt, rule, would_deny) {
        drop(upstream);
        return refused(&Denial::policy(AUDIT_BROKEN));
    }
    let open = engine.opened(conn, started);
    tokio::spawn(async move {
        let _slot = slot;
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let mut upstream = upstream;
        match upgraded.downcast::<TokioIo<tokio::net::TcpStream>>() {
            // The usual case: the client's socket itself, relayed with splice (zero copy).
            Ok(parts) => {
                let step = parts.io.into_inner();
                let first = parts.read_buf.to_vec();
                splice_tunnel(engine, attempt, step, first, upstream, open).await;
            }
            Err(upgraded) => {
                let mut step = TokioIo::new(upgraded);
                let mut first = Vec::with_capacity(1024);
                match tunnel_first_bytes(&engine, &attempt, &mut step, &mut first).await {
                    Tunnel::Relay => {}
                    Tunnel::Http => {
                        drop((upstream, open));
                        let step = super::prefixed::Prefixed::new(first, step);
                        return serve_plain_http(engine, step, PlainHttp::Tunnel(attempt)).await;
                    }
                    Tunnel::Stop => return,
                }
                if upstream.write_all(&first).await.is_err() {
                    return;
                }
                Engine::relay(open, step, upstream, first.len() as u64).await;
            }
        }
    });
    Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    )
}

/// What a CONNECT tunnel carries, from its first bytes, once checked.
enum Tunnel {
    /// TLS whose server name is the CONNECT host, or another protocol a rule allows (or that
    /// audit mode lets through): relay the bytes.
    Relay,
    /// Plain HTTP: served request by request, like captured plain HTTP.
    Http,
    /// Refused (already logged), or closed before sending anything.
    Stop,
}

/// Reads the tunnel's first bytes into `first` and checks them. A TLS ClientHello must name the
/// CONNECT host (no domain fronting, no ECH). An HTTP request head means plain HTTP, which is
/// never relayed as a byte stream. Anything else is refused in a tunnel to a name unless a rule
/// for it says `raw_tcp: true`; a tunnel to an address a cidr rule allows may carry any TCP, as
/// captured traffic to that address may.
async fn tunnel_first_bytes<S: tokio::io::AsyncRead + Unpin>(
    engine: &Engine,
    attempt: &Attempt,
    step: &mut S,
    first: &mut Vec<u8>,
) -> Tunnel {
    let raw_rule = attempt
        .name
        .as_deref()
        .and_then(|name| engine.network.raw_tcp_rule(name, attempt.port));
    let raw_ok = raw_rule.is_some() || attempt.name.is_none();
    // Only a rule that says raw TCP shortens the wait: elsewhere a slow ClientHello must still
    // arrive to be checked.
    let wait = if raw_rule.is_some() {
        RAW_FIRST_BYTES_TIMEOUT
    } else {
        FIRST_BYTES_TIMEOUT
    };
    let verdict = match read_client_hello(step, first, wait).await {
        FirstBytes::Tls { sni, ech } => tunnel_tls_check(attempt, sni, ech)
            .map(|()| Tunnel::Relay)
            .map_err(|why| (NameSource::Sni, why)),
        FirstBytes::Bad(why) => Err((NameSource::Sni, why)),
        FirstBytes::Closed => return Tunnel::Stop,
        // Silent, or an incomplete ClientHello, for the whole wait: judged as not TLS.
        FirstBytes::NotTls | FirstBytes::TimedOut if read_http_head(step, first).await => {
            Ok(Tunnel::Http)
        }
        FirstBytes::NotTls | FirstBytes::TimedOut if raw_ok => Ok(Tunnel::Relay),
        FirstBytes::NotTls | FirstBytes::TimedOut => Err((
            NameSource::Connect,
            format!(
                "the tunnel to {} carries neither TLS nor HTTP (a rule for it with `raw_tcp: true` allows other protocols)",
                super::engine::describe(attempt)
            ),
        )),
    };
    let (source, reason) = match verdict {
        Ok(t) => return t,
        Err(e) => e,
    };
    let mut a = attempt.clone();
    a.source = source;
    match engine.refuse(&a, Denial::policy(reason)) {
        Verdict::Refuse(_) => Tunnel::Stop,
        Verdict::Go { would_deny, .. } => match engine.admitted(&a, None, would_deny) {
            true => Tunnel::Relay,
            false => Tunnel::Stop,
        },
    }
}

/// Reads on until `buf` holds a whole HTTP request head (true), or clearly does not start with
/// one (false). Bytes read stay in `buf`.
async fn read_http_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> bool {
    let deadline = tokio::time::Instant::now() + FIRST_BYTES_TIMEOUT;
    loop {
        match parse_request_head(buf) {
            Peek::Done(_) => return true,
            Peek::NeedMore if !buf.is_empty() => {}
            Peek::NeedMore | Peek::NotThis | Peek::Malformed(_) => return false,
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    }
}

/// Checks the ClientHello seen inside a CONNECT tunnel against the CONNECT host.
fn tunnel_tls_check(a: &Attempt, sni: Option<String>, ech: bool) -> Result<(), String> {
    if ech {
        return Err(
            "the TLS ClientHello is encrypted (ECH), which hides the real destination".into(),
        );
    }
    let Some(sni) = sni else { return Ok(()) }; // no SNI: the CONNECT host is all there is
    let want = match (&a.name, a.ip) {
        (Some(n), _) => n.clone(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => String::new(),
    };
    match classify_host(&sni) {
        Ok(Ok(n)) if n == want => Ok(()),
        _ => Err(format!(
            "TLS server name {sni:?} does not match the CONNECT host {want} (domain fronting)"
        )),
    }
}

/// Plain HTTP through the proxy: `GET http://host/path HTTP/1.1`.
async fn forward(
    req: Request<Incoming>,
    engine: Arc<Engine>,
    pool: Pool,
    via: Via,
) -> Response<Body> {
    let conn = engine.conn_id();
    let started = Instant::now();
    let method = req.method().to_string();
    let url = audit::sanitize_url(&req.uri().to_string());
    let log_http = |conn: u64, decision: Decision, status: u16| {
        engine.log(Event::Http(audit::Http {
            conn,
            method: method.clone(),
            url: url.clone(),
            decision,
            status: Some(status),
        }));
    };
    // A refused request: its record, with the status it is answered with, and the answer.
    let deny = |conn: u64, denial: &Denial| {
        log_http(conn, Decision::Deny, denial.status().as_u16());
        refused(denial)
    };
    let uri = req.uri().clone();
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return deny(
            conn,
            &Denial::bad_request(
                "the proxy forwards only absolute http:// URLs; use CONNECT for TLS",
            ),
        );
    }
    let auth = uri.authority().expect("checked above").clone();
    let port = auth.port_u16().unwrap_or(80);
    let host = match classify_host(auth.host()) {
        Ok(h) => h,
        Err(e) => return deny(conn, &Denial::bad_request(e)),
    };
    let mut attempt = Attempt::proxied(conn, host, port, NameSource::Host);
    attempt.via = via;
    // Domain fronting in plain HTTP: the Host header must name the request target.
    let hosts: Vec<_> = req.headers().get_all(hyper::header::HOST).iter().collect();
    let host_ok = match hosts.as_slice() {
        [] => true,
        [h] => h.to_str().ok().is_some_and(|h| same_authority(h, &attempt)),
        _ => false,
    };
    let verdict = if host_ok {
        engine.decide(&attempt)
    } else {
        engine.refuse(
            &attempt,
            Denial::policy("the Host header does not match the request target (domain fronting)"),
        )
    };
    let (rule, would_deny) = match verdict {
        Verdict::Go { rule, would_deny } => (rule, would_deny),
        Verdict::Refuse(denial) => return deny(conn, &denial),
    };
    let decision = if would_deny.is_some() {
        Decision::WouldDeny
    } else {
        Decision::Allow
    };
    // Secrets must not leave in plain HTTP: the request line, headers and body are checked
    // (the body is read whole first, up to a limit, when the step holds any secret).
    let dest = attempt
        .name
        .clone()
        .unwrap_or_else(|| attempt.ip.map(|i| i.to_string()).unwrap_or_default());
    // Method and path rules hold for plain HTTP as well as for intercepted HTTPS.
    if engine.network.is_restricted(&dest)
        && let Err(reason) =
            engine
                .network
                .request_allowed(&dest, port, req.method().as_str(), uri.path())
    {
        let denial = Denial::policy(reason);
        engine.log_refusal_only(&attempt, &denial);
        return deny(conn, &denial);
    }
    let req = match check_plain_request(req, &engine, &dest, via).await {
        Ok(r) => r,
        Err(denial) => return deny(conn, &denial),
    };
    let mut req = req;
    // Keep-alive towards the server: the client connection's last upstream connection is reused
    // when the next request (decided again above) goes to the same host and port.
    let key = (attempt.name.clone(), attempt.ip, port);
    let last = pool.lock().await.take();
    let pooled = match last {
        Some(mut p) if p.key == key => p.sender.ready().await.is_ok().then_some(p),
        _ => None,
    };
    // Origin-form towards the server; hop-by-hop proxy headers stay with us.
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    *req.uri_mut() = path
        .parse()
        .unwrap_or_else(|_| hyper::Uri::from_static("/"));
    for h in [
        "proxy-authorization",
        "proxy-connection",
        "proxy-authenticate",
    ] {
        req.headers_mut().remove(h);
    }
    if !req.headers().contains_key(hyper::header::HOST)
        && let Ok(v) = hyper::header::HeaderValue::from_str(auth.as_str())
    {
        req.headers_mut().insert(hyper::header::HOST, v);
    }
    let mut pooled = match pooled {
        Some(p) => p,
        None => {
            let upstream = match engine.dial(&mut attempt, rule.as_deref()).await {
                Ok(s) => s,
                Err(denial) => {
                    engine.log_refusal_only(&attempt, &denial);
                    return deny(conn, &denial);
                }
            };
            if !engine.admitted(&attempt, rule, would_deny) {
                drop(upstream);
                return deny(conn, &Denial::policy(AUDIT_BROKEN));
            }
            let open = engine.opened(conn, started);
            let upstream = super::counting::Counting::with(upstream, open.counters.clone());
            let (sender, connection) =
                match hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await {
                    Ok(x) => x,
                    Err(e) => {
                        return deny(conn, &Denial::unreachable(format!("upstream: {e}")));
                    }
                };
            tokio::spawn(async move {
                let _ = connection.await;
                drop(open);
            });
            Pooled { key, conn, sender }
        }
    };
    let result = pooled.sender.send_request(req).await;
    let upstream_conn = pooled.conn;
    *pool.lock().await = Some(pooled);
    match result {
        Ok(resp) => {
            log_http(upstream_conn, decision, resp.status().as_u16());
            resp.map(|b| b.boxed())
        }
        Err(e) => {
            // Allowed (or would-deny) and sent: the record keeps its decision.
            let denial = Denial::unreachable(format!("upstream: {e}"));
            log_http(upstream_conn, decision, denial.status().as_u16());
            refused(&denial)
        }
    }
}

/// Looks for the step's secrets in a plain-HTTP request about to leave; returns the request
/// (its body buffered when it had to be read), or the denial to refuse it with.
async fn check_plain_request(
    req: Request<Incoming>,
    engine: &Engine,
    dest: &str,
    via: Via,
) -> Result<Request<Body>, Denial> {
    if engine.leaks.is_none() {
        return Ok(req.map(|b| b.boxed()));
    }
    let (parts, body) = req.into_parts();
    let head = super::engine::request_head_bytes(
        parts.method.as_str(),
        &parts.uri.to_string(),
        &parts.headers,
    );
    let body = match http_body_util::Limited::new(body, MAX_SCANNED_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(Denial::new(
                DenialKind::TooLarge,
                "plain-HTTP request body too large to check for secrets",
            ));
        }
    };
    // The server reads the body decoded: so does the check (bounded, refused past the bound).
    let decoded = match super::content_coding::decode(&parts.headers, &body, MAX_SCANNED_BODY) {
        Ok(d) => d,
        Err(e) => {
            say!(
                "stepjail: denied a plain-HTTP request to {dest}: {e} (profile '{}')",
                engine.profile
            );
            return Err(Denial::undecodable(&e));
        }
    };
    for part in [&head[..], decoded.as_deref().unwrap_or(&body)] {
        if let Some(secret) = engine.leaked_secret(part, dest, false) {
            engine.report_leak(&secret, dest, via, "a plain-HTTP request");
            return Err(Denial::policy(format!(
                "the request carries secret {secret}"
            )));
        }
    }
    Ok(Request::from_parts(
        parts,
        Full::new(body).map_err(|never| match never {}).boxed(),
    ))
}

/// The upstream connection a client connection used last, for keep-alive.
pub struct Pooled {
    key: (Option<String>, Option<std::net::IpAddr>, u16),
    conn: u64,
    sender: hyper::client::conn::http1::SendRequest<Body>,
}

pub type Pool = Arc<tokio::sync::Mutex<Option<Pooled>>>;

/// Does a Host header value name the same host and port as the attempt's target?
fn same_authority(host_header: &str, a: &Attempt) -> bool {
    let (h, p) = if let Some(rest) = host_header.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':')),
            None => return false,
        }
    } else {
        match host_header.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_header, None),
        }
    };
    let port = match p {
        Some(p) => match p.parse::<u16>() {
            Ok(p) => p,
            Err(_) => return false,
        },
        None => 80,
    };
    if port != a.port {
        return false;
    }
    match (classify_host(h), &a.name, a.ip) {
        (Ok(Ok(n)), Some(want), _) => &n == want,
        (Ok(Err(ip)), None, Some(want)) => ip == want,
        _ => false,
    }
}
