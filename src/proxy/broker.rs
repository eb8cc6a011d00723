//! Brokered secrets: for the hosts a secret is bound to, the proxy terminates the step's TLS
//! with a certificate from an ephemeral CA (generated in memory for this run, trusted only
//! inside the sandbox), verifies the real server against the system roots, and writes the real
//! value in place of the placeholder the step holds, on the way out — only in the places the
//! secret's declaration names (`broker.in`: the `Authorization` header unless it says
//! otherwise; other headers, a query parameter, the body). Anywhere else the placeholder goes
//! out as it is. Hosts no secret is bound to (and with no method/path rules) are never
//! intercepted.
//!
//! On the way back every response from an intercepted host is scanned, headers and streamed
//! body, for every brokered value, raw and encoded (`secrets::Reflection`), and each is
//! replaced by its placeholder before the step reads it: a host that echoes what it was sent
//! must not hand the step the value brokering keeps from it. A response the scan cannot read
//! (a `Content-Encoding` other than identity, although the proxy asked for identity) is
//! withheld: the step gets `502`, never the bytes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

pub use super::brokered::{Broker, BrokerError, BrokeredSecret};
use super::denial::{Denial, Kind as DenialKind};
use super::engine::{Attempt, Engine};
use crate::audit::{self, Decision, Event};
use crate::policy::model::BrokerPlace;
use crate::secrets::{Reflection, Replacer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body with placeholders replaced on the way through.
struct ReplacingBody {
    inner: http_body_util::combinators::BoxBody<Bytes, BoxError>,
    replacer: Replacer,
    done: bool,
    /// Watches the body for secrets bound to other hosts; a find aborts the request.
    leaks: Option<BodyLeakWatch>,
}

struct BodyLeakWatch {
    stream: crate::secrets::LeakStream,
    engine: Arc<Engine>,
    host: String,
}

impl BodyLeakWatch {
    /// The first secret in `data` that is not bound to this host, reported as a leak.
    fn check(&mut self, data: &[u8]) -> Option<String> {
        let name = self.stream.feed(data)?;
        let bound = self.engine.broker.as_ref().is_some_and(|b| {
            b.secrets()
                .iter()
                .any(|s| s.name == name && s.hosts.iter().any(|h| h == &self.host))
        });
        if bound {
            return None;
        }
        self.engine.report_leak(
            &name,
            &self.host,
            crate::audit::Via::Proxy,
            "an intercepted request body",
        );
        Some(name)
    }
}

impl Body for ReplacingBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    // Checked before anything of this chunk is sent on.
                    if let Some(secret) = self.leaks.as_mut().and_then(|w| w.check(&data)) {
                        self.done = true;
                        return Poll::Ready(Some(Err(
                            format!("the body carries secret {secret}").into()
                        )));
                    }
                    let out = self.replacer.feed(&data);
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
                }
                Err(trailers) => Poll::Ready(Some(Ok(trailers))),
            },
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => {
                self.done = true;
                let tail = self.replacer.finish();
                if tail.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(tail)))))
                }
            }
        }
    }
}

/// Terminates the step's TLS for `attempt` (a bound host), then relays HTTP/1.1 requests to the
/// real server with the secrets bound to that host swapped in. `first` holds bytes already read
/// from `step` (the start of its ClientHello).
pub async fn intercept<S>(
    engine: Arc<Engine>,
    broker: Arc<Broker>,
    step: S,
    mut attempt: Attempt,
    rule: Option<String>,
    would_deny: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let host = attempt.name.clone().unwrap_or_default();
    // The step's ClientHello must name the bound host (no fronting through the intercepting
    // path either).
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), step);
    let Ok(start) = acceptor.await else { return };
    let sni = start.client_hello().server_name().map(str::to_string);
    if sni
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case(&host))
    {
        engine.log_refusal_only(
            &attempt,
            &Denial::policy(format!(
                "TLS server name {sni:?} does not match {host} (domain fronting)"
            )),
        );
        return;
    }
    let config = match broker.server_config(&host) {
        Ok(c) => c,
        Err(e) => {
            return engine
                .log_refusal_only(&attempt, &Denial::new(DenialKind::Internal, e.to_string()));
        }
    };
    let Ok(step_tls) = start.into_stream(config).await else {
        return;
    };
    // Upstream: the checked address, and the real server's certificate against the system roots.
    let tcp = match engine.dial(&mut attempt, rule.as_deref()).await {
        Ok(s) => s,
        Err(denial) => return engine.log_refusal_only(&attempt, &denial),
    };
    // The close event counts the upstream leg as it crosses the wire (TLS records).
    let counters = Arc::<super::counting::Counters>::default();
    let tcp = super::counting::Counting::with(tcp, counters.clone());
    let Ok(server_name) = ServerName::try_from(host.clone()) else {
        return;
    };
    let upstream = match tokio_rustls::TlsConnector::from(broker.client.clone())
        .connect(server_name, tcp)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            // Fail closed: never fall back to an unverified connection.
            return engine.log_refusal_only(
                &attempt,
                &Denial::unreachable(format!("upstream certificate verification failed: {e}")),
            );
        }
    };
    if !engine.admitted(&attempt, rule, would_deny) {
        // Nothing sent yet: the verified upstream is dropped, the step's TLS closed.
        return;
    }
    let open = engine.opened_counting(attempt.conn, started, counters);
    let Ok((sender, connection)) =
        hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await
    else {
        return;
    };
    tokio::spawn(connection);
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let conn = attempt.conn;
    let port = attempt.port;
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (engine, broker, sender, host) =
            (engine.clone(), broker.clone(), sender.clone(), host.clone());
        async move {
            Ok::<_, std::convert::Infallible>(
                forward_bound(req, &engine, &broker, &sender, &host, port, conn).await,
            )
        }
    });
    // Every request head gets the time a connection's first bytes get (see `explicit.rs`).
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(super::client_hello::FIRST_BYTES_TIMEOUT)
        .serve_connection(TokioIo::new(step_tls), svc)
        .await;
    drop(open);
}

type Sender = tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<ReplacingBody>>;
type Out = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

async fn forward_bound(
    req: Request<Incoming>,
    engine: &Arc<Engine>,
    broker: &Broker,
    sender: &Sender,
    host: &str,
    port: u16,
    conn: u64,
) -> Response<Out> {
    let method = req.method().to_string();
    let url = audit::sanitize_url(&format!("https://{host}{}", req.uri()));
    let log = |decision, status: u16| {
        engine.log(Event::Http(audit::Http {
            conn,
            method: method.clone(),
            url: url.clone(),
            decision,
            status: Some(status),
        }));
    };
    // Fronting inside the terminated TLS: the request itself must be for the bound host, or a
    // shared front end (a CDN) would route it, with the real value swapped in, to another site.
    // Then the method and path rules (hosts where a name is too broad).
    let path = req.uri().path().to_string();
    let allowed = names_host(&req, host, port).and_then(|()| {
        engine
            .network
            .request_allowed(host, port, req.method().as_str(), &path)
    });
    if let Err(reason) = allowed {
        let denial = Denial::policy(reason);
        engine.log_refusal_only(
            &Attempt {
                conn,
                name: Some(host.to_string()),
                source: crate::audit::NameSource::Sni,
                ip: None,
                port,
                protocol: crate::audit::Protocol::Tcp,
                via: crate::audit::Via::Proxy,
            },
            &denial,
        );
        log(Decision::Deny, denial.status().as_u16());
        return answer(&denial);
    }
    // Secrets bound elsewhere must not ride along to this host either.
    let head = super::engine::request_head_bytes(
        req.method().as_str(),
        &req.uri().to_string(),
        req.headers(),
    );
    if let Some(secret) = engine.leaked_secret(&head, host, true) {
        engine.report_leak(
            &secret,
            host,
            crate::audit::Via::Proxy,
            "an intercepted request",
        );
        log(Decision::Deny, 403);
        return status(StatusCode::FORBIDDEN);
    }
    let (mut parts, body) = req.into_parts();
    let swapped = match swap_in(broker, host, &mut parts) {
        Ok(body_replacer) => body_replacer,
        Err(()) => {
            log(Decision::Deny, 500);
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    // Ask for a body the response scan can read (see `scrub_response`).
    if !broker.reflection.is_empty() {
        parts.headers.insert(
            hyper::header::ACCEPT_ENCODING,
            hyper::header::HeaderValue::from_static("identity"),
        );
    }
    // A coded body (gzip, deflate) hides secrets from the stream scan: read it whole, bounded,
    // and look where the server will, decoded (refused when that cannot be done).
    let coded = parts
        .headers
        .get(hyper::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let body = if coded && engine.leaks.is_some() {
        match check_coded_body(body, &parts.headers, engine, host).await {
            Ok(b) => http_body_util::Full::new(b)
                .map_err(|never| match never {})
                .boxed(),
            Err(denial) => {
                log(Decision::Deny, denial.status().as_u16());
                return answer(&denial);
            }
        }
    } else {
        body.map_err(BoxError::from).boxed()
    };
    let req = Request::from_parts(
        parts,
        ReplacingBody {
            inner: body,
            replacer: swapped,
            done: false,
            leaks: engine.leaks.as_ref().map(|l| BodyLeakWatch {
                stream: l.stream(),
                engine: engine.clone(),
                host: host.to_string(),
            }),
        },
    );
    let mut sender = sender.lock().await;
    if sender.ready().await.is_err() {
        log(Decision::Deny, 502);
        return status(StatusCode::BAD_GATEWAY);
    }
    match sender.send_request(req).await {
        Ok(resp) if broker.reflection.is_empty() => {
            log(Decision::Allow, resp.status().as_u16());
            resp.map(|b| b.boxed())
        }
        Ok(resp) => match scrub_response(resp, engine, broker, host, conn) {
            Ok(resp) => {
                log(Decision::Allow, resp.status().as_u16());
                resp
            }
            Err(reason) => {
                // Fail closed: what cannot be scanned does not reach the step.
                say!("stepjail: withheld a response from {host}: {reason}");
                let denial = Denial::unreachable(reason);
                log(Decision::Deny, denial.status().as_u16());
                answer(&denial)
            }
        },
        Err(_) => {
            log(Decision::Allow, 502);
            status(StatusCode::BAD_GATEWAY)
        }
    }
}

/// Reads a coded request body to a bound host whole (at most
/// [`super::content_coding::MAX_SCANNED_BODY`]) and looks for secrets bound elsewhere in it decoded,
/// as the plain-HTTP path does. Returns the body as received, or the denial to refuse it with.
async fn check_coded_body(
    body: Incoming,
    headers: &hyper::HeaderMap,
    engine: &Engine,
    host: &str,
) -> Result<Bytes, Denial> {
    let limit = super::content_coding::MAX_SCANNED_BODY;
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let reason = "a coded request body too large to check for secrets";
            say!("stepjail: refused a request to {host}: {reason}");
            return Err(Denial::new(DenialKind::TooLarge, reason));
        }
    };
    let decoded = super::content_coding::decode(headers, &body, limit).map_err(|e| {
        say!(
            "stepjail: refused a request to {host}: {e} (profile '{}')",
            engine.profile
        );
        Denial::undecodable(&e)
    })?;
    if let Some(secret) = engine.leaked_secret(decoded.as_deref().unwrap_or(&body), host, true) {
        engine.report_leak(
            &secret,
            host,
            crate::audit::Via::Proxy,
            "an intercepted request body",
        );
        return Err(Denial::policy(format!(
            "the request carries secret {secret}"
        )));
    }
    Ok(body)
}

/// Writes the real values of the secrets bound to `host` into the places of `parts` their
/// declarations name: those headers, those query parameters. Returns the replacer for the body
/// (with no pairs when no secret names the body). `Err` when a set of pairs is refused.
fn swap_in(
    broker: &Broker,
    host: &str,
    parts: &mut hyper::http::request::Parts,
) -> Result<Replacer, ()> {
    let replacer = |at: &dyn Fn(&BrokerPlace) -> bool| {
        Replacer::new(broker.replacements(host, at)).map_err(|_| ())
    };
    for (name, value) in parts.headers.iter_mut() {
        let r = replacer(&|p| matches!(p, BrokerPlace::Header(h) if h == name.as_str()))?;
        let swapped = r.replace_all(value.as_bytes());
        if swapped != value.as_bytes()
            && let Ok(v) = hyper::header::HeaderValue::from_bytes(&swapped)
        {
            *value = v;
        }
    }
    let target = parts.uri.to_string();
    if let Some((before, query)) = target.split_once('?') {
        let mut changed = false;
        let mut params = Vec::new();
        for param in query.split('&') {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            let r = replacer(&|p| matches!(p, BrokerPlace::Query(q) if q == name))?;
            let swapped = r.replace_all(value.as_bytes());
            if swapped != value.as_bytes() {
                changed = true;
                params.push(format!("{name}={}", String::from_utf8_lossy(&swapped)));
            } else {
                params.push(param.to_string());
            }
        }
        if changed {
            let uri = format!("{before}?{}", params.join("&"));
            parts.uri = hyper::Uri::try_from(uri).map_err(|_| ())?;
        }
    }
    replacer(&|p| *p == BrokerPlace::Body)
}

/// Whether a response's bytes can be scanned as they are: `Err` names what prevents it.
fn scannable(headers: &hyper::HeaderMap) -> Result<(), String> {
    for value in headers.get_all(hyper::header::CONTENT_ENCODING) {
        let coding = value.to_str().unwrap_or("(not text)").trim();
        if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
            return Err(format!(
                "the response is compressed (Content-Encoding: {coding}) although identity was \
                 requested, so it cannot be scanned for brokered secrets"
            ));
        }
    }
    for value in headers.get_all(hyper::header::TRANSFER_ENCODING) {
        let codings = value.to_str().unwrap_or("(not text)");
        if codings
            .split(',')
            .any(|c| !c.trim().eq_ignore_ascii_case("chunked"))
        {
            return Err(format!(
                "the response has Transfer-Encoding: {codings}, which cannot be scanned for \
                 brokered secrets"
            ));
        }
    }
    Ok(())
}

/// Replaces every brokered value in the response by its placeholder: the headers here, the
/// body and trailers as they stream ([`ScrubbingBody`]). Each secret found is reported once
/// per part.
fn scrub_response(
    resp: Response<Incoming>,
    engine: &Arc<Engine>,
    broker: &Broker,
    host: &str,
    conn: u64,
) -> Result<Response<Out>, String> {
    let (mut parts, body) = resp.into_parts();
    scannable(&parts.headers)?;
    // A non-standard reason phrase is passed on by hyper; it is text the host chose.
    parts.extensions.remove::<hyper::ext::ReasonPhrase>();
    let found = scrub_headers(&mut parts.headers, &broker.reflection);
    for name in found {
        engine.report_reflection(conn, &name, host, "header");
    }
    let body = ScrubbingBody {
        inner: body,
        reflection: broker.reflection.new_stream(),
        engine: engine.clone(),
        host: host.to_string(),
        conn,
        reported: Vec::new(),
        trailers: None,
        done: false,
    };
    Ok(Response::from_parts(parts, body.boxed()))
}

/// Scrubs every header value in place; a value that is no longer a valid header value is
/// dropped. Returns the names of the secrets found.
fn scrub_headers(headers: &mut hyper::HeaderMap, reflection: &Reflection) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut out = hyper::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let (scrubbed, names) = reflection.scrub(value.as_bytes());
        if names.is_empty() {
            out.append(name.clone(), value.clone());
            continue;
        }
        for n in names {
            if !found.contains(&n) {
                found.push(n);
            }
        }
        if let Ok(v) = hyper::header::HeaderValue::from_bytes(&scrubbed) {
            out.append(name.clone(), v);
        }
    }
    *headers = out;
    found
}

/// A response body with brokered values replaced by their placeholders as it streams; a value
/// split across chunks is found (the end of a chunk that may start one is held back).
struct ScrubbingBody {
    inner: Incoming,
    reflection: Reflection,
    engine: Arc<Engine>,
    host: String,
    conn: u64,
    /// (secret, part) already reported for this response.
    reported: Vec<(String, &'static str)>,
    /// Trailers to send once the held-back tail of the body has gone out.
    trailers: Option<hyper::HeaderMap>,
    done: bool,
}

impl ScrubbingBody {
    fn report(&mut self, names: Vec<String>, part: &'static str) {
        for name in names {
            if !self.reported.iter().any(|(n, p)| *n == name && *p == part) {
                self.engine
                    .report_reflection(self.conn, &name, &self.host, part);
                self.reported.push((name, part));
            }
        }
    }

    /// The bytes held back at the end of the body, scrubbed.
    fn tail(&mut self) -> Vec<u8> {
        let tail = self.reflection.finish();
        let found = self.reflection.take_found();
        self.report(found, "body");
        tail
    }
}

impl Body for ScrubbingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            if let Some(trailers) = self.trailers.take() {
                self.done = true;
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let out = self.reflection.feed(&data);
                        let found = self.reflection.take_found();
                        self.report(found, "body");
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body: the held-back tail goes out before them.
                        let Ok(mut trailers) = frame.into_trailers() else {
                            continue;
                        };
                        let found = scrub_headers(&mut trailers, &self.reflection);
                        self.report(found, "trailer");
                        self.trailers = Some(trailers);
                        let tail = self.tail();
                        if !tail.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(tail)))));
                        }
                    }
                },
                // Held-back bytes are dropped with the failed body.
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    self.done = true;
                    let tail = self.tail();
                    if !tail.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(tail)))));
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        // Replacements keep the length; the framing the host chose stays.
        self.inner.size_hint()
    }
}

/// Does the request name `host` (and `port`, when it names one) in its target and its `Host`
/// header? A request without a `Host` header (HTTP/1.0) goes to the host the TLS was for.
fn names_host(req: &Request<Incoming>, host: &str, port: u16) -> Result<(), String> {
    let same = |authority: &str| {
        let (h, p) = match authority.strip_prefix('[') {
            Some(rest) => match rest.split_once(']') {
                Some((h, tail)) => (h, tail.strip_prefix(':')),
                None => return false,
            },
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        h.trim_end_matches('.').eq_ignore_ascii_case(host)
            && p.is_none_or(|p| p.parse::<u16>() == Ok(port))
    };
    let fronting = || {
        format!(
            "the Host header or request target does not match the intercepted host {host} (domain fronting)"
        )
    };
    if let Some(a) = req.uri().authority()
        && !same(a.as_str())
    {
        return Err(fronting());
    }
    let hosts: Vec<_> = req.headers().get_all(hyper::header::HOST).iter().collect();
    match hosts.as_slice() {
        [] => Ok(()),
        [h] if h.to_str().is_ok_and(same) => Ok(()),
        [_] => Err(fronting()),
        _ => Err(format!("several Host headers in a request to {host}")),
    }
}

/// The answer to a refused request.
fn answer(denial: &Denial) -> Response<Out> {
    denial
        .response()
        .map(|b| b.map_err(|never| match never {}).boxed())
}

/// An answer without a body (the reason is on stderr, or there is none to give).
fn status(code: StatusCode) -> Response<Out> {
    let mut r = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in list {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                hyper::header::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_identity_and_chunked_bodies_are_scanned() {
        for ok in [
            &[][..],
            &[("content-encoding", "identity")],
            &[
                ("content-encoding", "IDENTITY"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            assert_eq!(scannable(&headers(ok)), Ok(()), "{ok:?}");
        }
        for bad in [
            &[("content-encoding", "gzip")][..],
            &[("content-encoding", "identity"), ("content-encoding", "br")],
            &[("content-encoding", "identity, deflate")],
            &[("transfer-encoding", "gzip, chunked")],
        ] {
            assert!(scannable(&headers(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_values_are_scrubbed_and_named() {
        let r = Reflection::new(&[("TOKEN", b"s3cr3t-Value", b"a1b2c3-Dxxxx")]).unwrap();
        let mut h = headers(&[
            ("x-echo", "Bearer s3cr3t-Value"),
            ("x-other", "fine"),
            ("x-echo", "czNjcjN0LVZhbHVl"),
        ]);
        assert_eq!(scrub_headers(&mut h, &r), ["TOKEN"]);
        let echo: Vec<_> = h.get_all("x-echo").iter().collect();
        assert_eq!(echo.len(), 2);
        assert_eq!(echo[0], "Bearer a1b2c3-Dxxxx");
        assert_ne!(echo[1], "czNjcjN0LVZhbHVl");
        assert_eq!(h.get("x-other").unwrap(), "fine");
    }
}
