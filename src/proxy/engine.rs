//! The proxy's shared state and the one place where a decision becomes what the user sees:
//! an audit event, a stderr line, and (for the caller) whether to go on.
//!
//! Every path into the network (explicit CONNECT, plain HTTP, transparent TCP, UDP, DNS) asks
//! [`Engine::decide`], then [`Engine::dial`] for the upstream connection, which resolves the
//! name itself, checks every address against the special ranges, and dials exactly the address
//! it checked — or, with an upstream proxy, asks that proxy for a tunnel by name (see
//! [`Engine::dial`] for what is still checked here then).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::denial::{Denial, Kind as DenialKind};
use crate::audit::{self, AuditLog, Decision, Event, NameSource, Protocol, Via};
use crate::policy::egress::{NameDecision, normalize_host};
use crate::policy::model::{Network, NetworkMode};

/// How long an upstream connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a DNS lookup upstream may take.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest the proxy reuses an upstream answer (or a name it could not resolve).
const CACHE_TTL: Duration = super::dns::CACHE_TTL;
/// Buffer per direction for relayed tunnels (tokio's default of 8 KiB costs throughput).
const RELAY_BUFFER: usize = 64 * 1024;
/// How long a relay waits for the step's side to acknowledge the end of the response (the
/// userspace TCP stack waits for the FIN's ACK, which a peer that already left never sends).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// How long an accept loop waits after a failed `accept` (EMFILE above all) before it retries.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// `TcpStream::connect` within `limit`. The connect is started by hand so that one that has
/// completed inside connect(2) (to this host or a near one: the kernel runs the handshake in
/// the call) is seen at once by a zero-timeout poll(2): no turn of the reactor, so the `200`
/// goes out before any other task runs (the closes of a tunnel that ended at the same moment
/// among them) and no timer is registered (tokio's timer driver writes its eventfd for the
/// first timer of an idle runtime). Otherwise it waits for the socket to become writable
/// under the timer, then reads `SO_ERROR`, as tokio's own connect does.
async fn connect_within(
    addr: SocketAddr,
    limit: Duration,
) -> Result<std::io::Result<TcpStream>, tokio::time::error::Elapsed> {
    let started = Instant::now();
    let (fd, done) = match start_connect(addr) {
        Ok(connecting) => connecting,
        Err(e) => return Ok(Err(e)),
    };
    let stream = match TcpStream::from_std(std::net::TcpStream::from(fd)) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    if !done {
        let wait = limit.saturating_sub(started.elapsed());
        if let Err(e) = tokio::time::timeout(wait, stream.writable()).await? {
            return Ok(Err(e));
        }
    }
    Ok(match stream.take_error() {
        Ok(None) => Ok(stream),
        Ok(Some(e)) | Err(e) => Err(e),
    })
}

/// A non-blocking TCP socket with its connect to `addr` started, and whether the connect has
/// finished already (successfully or not: `SO_ERROR` says which).
fn start_connect(addr: SocketAddr) -> std::io::Result<(std::os::fd::OwnedFd, bool)> {
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use std::os::fd::{AsFd, AsRawFd};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket::socket(family, SockType::Stream, flags, None)?;
    match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => return Ok((fd, true)),
        // EINTR: the connect goes on in the background, as with EINPROGRESS.
        Err(Errno::EINPROGRESS | Errno::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    let mut poll = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    let done = matches!(nix::poll::poll(&mut poll, PollTimeout::ZERO), Ok(n) if n > 0);
    Ok((fd, done))
}

/// The pause after a failed `accept`: the pending connection stays queued, so retrying at once
/// would spin until descriptors are free again.
pub async fn accept_backoff() {
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// Why everything is refused once the audit log failed: 403, like any refusal (tools retry a
/// 5xx, and this does not pass).
pub const AUDIT_BROKEN: &str = "the audit log cannot be written";

/// Names the DNS stub explains a special-range answer for, at most, in one run.
const MAX_EXPLAINED: usize = 1024;

pub struct Engine {
    pub network: Network,
    pub profile: String,
    pub audit: AuditLog,
    pub resolver: SocketAddr,
    next_conn: AtomicU64,
    /// Set when writing the audit log fails: from then on everything is denied (fail closed).
    audit_failed: std::sync::atomic::AtomicBool,
    dns_cache: super::dns::Cache,
    /// The step's DNS query rate limit (see `stub::answer`).
    pub dns_limit: super::dns::Limiter,
    /// Brokered secrets, when the step has any: traffic to their hosts is intercepted.
    pub broker: Option<Arc<super::brokered::Broker>>,
    /// Every secret value (and placeholder) the step has, to catch them leaving.
    pub leaks: Option<crate::secrets::LeakScanner>,
    /// Upstream connections open now, by [`Open`] key.
    open: std::sync::Mutex<std::collections::HashMap<u64, Arc<OpenState>>>,
    next_open: AtomicU64,
    /// The host's hosts file, asked before DNS for allowed names (see [`super::hosts`]).
    pub hosts: super::hosts::HostsFile,
    /// Names whose special-range answer the DNS stub already explained on stderr.
    special_explained: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Hosts a variable of the step's tool settings points at, with that variable
    /// (`PIP_INDEX_URL`): named when such a host is denied.
    pub pointers: Vec<(String, String)>,
    /// The corporate proxy allowed connections leave through, if any.
    pub upstream: Option<super::upstream::UpstreamProxy>,
    /// Names the local resolver could not answer, until when: with an upstream they go to it
    /// by name without asking again (a resolver that drops outside names would otherwise
    /// cost every connection the whole DNS timeout).
    unresolved: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
    /// The per-step connection cap (`network.max_connections`), see [`super::limit`].
    pub limit: super::limit::ConnLimit,
}

/// An upstream connection the proxy opened for the step: the one place where a connection's
/// lifetime ends. Its `close` event is written exactly once, with the bytes counted so far:
/// when this is dropped (the relay finished, or failed), or when the proxy stops with the
/// connection still open because the step ended ([`Engine::close_all`]), whichever is first.
pub struct Open {
    engine: Arc<Engine>,
    key: u64,
    state: Arc<OpenState>,
    /// `written` = bytes to the destination (up), `read` = bytes from it (down).
    pub counters: Arc<super::counting::Counters>,
}

struct OpenState {
    conn: u64,
    started: Instant,
    counters: Arc<super::counting::Counters>,
    /// Held while the close record is written: [`Engine::close_all`] waits for one being
    /// written on a worker thread, which the process could otherwise exit in the middle of.
    closed: std::sync::Mutex<bool>,
}

impl Open {
    /// Counts bytes sent upstream outside the counted stream (a tunnel's first bytes).
    pub fn add_up(&self, n: u64) {
        self.counters.written.fetch_add(n, Ordering::Relaxed);
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.engine.write_close(&self.state);
        self.engine
            .open
            .lock()
            .expect("open lock")
            .remove(&self.key);
    }
}

/// What one attempt is, for the decision and its event.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub conn: u64,
    /// Normalised name, when known.
    pub name: Option<String>,
    pub source: NameSource,
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub protocol: Protocol,
    pub via: Via,
}

impl Attempt {
    /// A TCP attempt through the proxy to a classified host (a name, or an address literal).
    pub fn proxied(
        conn: u64,
        host: Result<String, IpAddr>,
        port: u16,
        source: NameSource,
    ) -> Attempt {
        let (name, ip) = match host {
            Ok(name) => (Some(name), None),
            Err(ip) => (None, Some(ip)),
        };
        Attempt {
            conn,
            name,
            source,
            ip,
            port,
            protocol: Protocol::Tcp,
            via: Via::Proxy,
        }
    }
}

/// A request's line and headers as bytes, for looking for secrets in them.
pub fn request_head_bytes(method: &str, uri: &str, headers: &hyper::HeaderMap) -> Vec<u8> {
    let mut head = format!("{method} {uri}\r\n").into_bytes();
    for (k, v) in headers {
        head.extend_from_slice(k.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head
}

/// The outcome of [`Engine::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on: `rule` allowed it, or (audit mode) `would_deny` says why enforce would not have.
    /// The decision is logged by [`Engine::admitted`] once the upstream address is known.
    Go {
        rule: Option<String>,
        would_deny: Option<String>,
    },
    /// Refuse (already logged and printed).
    Refuse(Denial),
}

impl Engine {
    pub fn new(network: Network, profile: String, audit: AuditLog, resolver: SocketAddr) -> Engine {
        let limit = super::limit::ConnLimit::new(network.max_connections());
        Engine {
            network,
            profile,
            audit,
            resolver,
            next_conn: AtomicU64::new(1),
            audit_failed: std::sync::atomic::AtomicBool::new(false),
            dns_cache: Default::default(),
            dns_limit: Default::default(),
            broker: None,
            leaks: None,
            open: Default::default(),
            next_open: AtomicU64::new(1),
            hosts: Default::default(),
            special_explained: Default::default(),
            pointers: Vec::new(),
            upstream: None,
            unresolved: Default::default(),
            limit,
        }
    }

    pub fn with_pointers(mut self, pointers: Vec<(String, String)>) -> Engine {
        self.pointers = pointers;
        self
    }

    /// `; PIP_INDEX_URL points here` when a tool setting names the attempt's host.
    fn pointed_by(&self, a: &Attempt) -> String {
        let Some(name) = a.name.as_deref() else {
            return String::new();
        };
        let vars: Vec<&str> = self
            .pointers
            .iter()
            .filter(|(h, _)| h.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        if vars.is_empty() {
            String::new()
        } else {
            format!("; {} points here", vars.join(", "))
        }
    }

    pub fn with_hosts(mut self, hosts: super::hosts::HostsFile) -> Engine {
        self.hosts = hosts;
        self
    }

    /// True the first time it is asked about `name` in this run: the stub prints one line per
    /// name, not one per query (and stops after [`MAX_EXPLAINED`] names: a wildcard rule must
    /// not let a step grow this set without bound).
    pub fn first_special_for(&self, name: &str) -> bool {
        let mut seen = self.special_explained.lock().expect("special lock");
        seen.len() < MAX_EXPLAINED && seen.insert(name.to_string())
    }

    pub fn with_upstream(mut self, upstream: Option<super::upstream::UpstreamProxy>) -> Engine {
        self.upstream = upstream;
        self
    }

    /// Starts the lifetime of connection `conn` (opened at `started`); see [`Open`].
    pub fn opened(self: &Arc<Self>, conn: u64, started: Instant) -> Open {
        self.opened_counting(conn, started, Arc::default())
    }

    /// [`Engine::opened`] with counters already counting (a stream wrapped before the decision).
    pub fn opened_counting(
        self: &Arc<Self>,
        conn: u64,
        started: Instant,
        counters: Arc<super::counting::Counters>,
    ) -> Open {
        let state = Arc::new(OpenState {
            conn,
            started,
            counters: counters.clone(),
            closed: Default::default(),
        });
        let key = self.next_open.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .expect("open lock")
            .insert(key, state.clone());
        Open {
            engine: self.clone(),
            key,
            state,
            counters,
        }
    }

    /// How many upstream connections are open now.
    pub fn open_connections(&self) -> usize {
        self.open.lock().expect("open lock").len()
    }

    /// Writes the close event of every connection still open: the proxy is stopping, and
    /// whatever its tasks do while being torn down, the log is complete first.
    pub fn close_all(&self) {
        let open: Vec<Arc<OpenState>> = self
            .open
            .lock()
            .expect("open lock")
            .values()
            .cloned()
            .collect();
        for state in open {
            self.write_close(&state);
        }
    }

    fn write_close(&self, s: &OpenState) {
        let mut closed = s.closed.lock().unwrap_or_else(|e| e.into_inner());
        if std::mem::replace(&mut *closed, true) {
            return;
        }
        self.log(Event::Close(audit::Close {
            conn: s.conn,
            bytes_up: s.counters.written.load(Ordering::Relaxed),
            bytes_down: s.counters.read.load(Ordering::Relaxed),
            duration_ms: s.started.elapsed().as_millis() as u64,
        }));
    }

    pub fn with_broker(mut self, broker: Option<Arc<super::brokered::Broker>>) -> Engine {
        self.broker = broker;
        self
    }

    pub fn with_leak_scanner(mut self, leaks: Option<crate::secrets::LeakScanner>) -> Engine {
        self.leaks = leaks.filter(|l| !l.is_empty());
        self
    }

    /// The secret whose value or placeholder appears in `bytes` on its way to `host`, unless
    /// it is a brokered secret bound to that host and the traffic is intercepted (`bound_ok`).
    /// `bytes` is searched as sent and normalised (JSON escapes, line breaks; see `leak.rs`).
    pub fn leaked_secret(&self, bytes: &[u8], host: &str, bound_ok: bool) -> Option<String> {
        let name = self.leaks.as_ref()?.find_normalised(bytes)?;
        let bound = self.broker.as_ref().is_some_and(|b| {
            b.secrets()
                .iter()
                .any(|s| s.name == name && s.hosts.iter().any(|h| h == host))
        });
        (!(bound && bound_ok)).then(|| name.to_string())
    }

    /// The secret carried in a DNS query name, if any (always a leak: no secret is bound to DNS).
    pub fn leaked_in_dns(&self, name: &str) -> Option<String> {
        self.leaks
            .as_ref()?
            .find_in_dns_name(name)
            .map(str::to_string)
    }

    /// Logs and prints a leak attempt (the secret's name, never its value). The caller refuses
    /// the request; audit mode does not let leaks through.
    pub fn report_leak(&self, secret: &str, dest: &str, via: Via, what: &str) {
        self.log(Event::SecretLeak(audit::SecretLeak {
            secret_name: secret.to_string(),
            dest_name: dest.to_string(),
            via,
            reason: format!("{what} carries secret {secret}, which is not bound to {dest}"),
        }));
        say!(
            "stepjail: denied {what} to {dest}: it carries secret {secret} (profile '{}')",
            self.profile
        );
    }

    /// Logs and prints that a response from `dest` carried brokered secret `secret`'s value in
    /// `part` (`header`, `body`, `trailer`), which the proxy replaced by the placeholder.
    pub fn report_reflection(&self, conn: u64, secret: &str, dest: &str, part: &str) {
        self.log(Event::SecretReflected(audit::SecretReflected {
            conn,
            secret_name: secret.to_string(),
            dest_name: dest.to_string(),
            part: part.to_string(),
            reason: format!(
                "a response {part} from {dest} carried the value of brokered secret {secret}; \
                 the step got the placeholder"
            ),
        }));
        say!(
            "stepjail: a response {part} from {dest} carried the value of secret {secret}; replaced by the placeholder (profile '{}')",
            self.profile
        );
    }

    /// The broker, when `name` is a host some secret is bound to, or one with method and path
    /// rules: such hosts are intercepted.
    pub fn broker_for(&self, name: Option<&str>) -> Option<Arc<super::brokered::Broker>> {
        let name = name?;
        self.broker
            .as_ref()
            .filter(|b| b.is_bound(name) || self.network.is_restricted(name))
            .cloned()
    }

    pub fn conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub fn audit_mode(&self) -> bool {
        self.network.mode == NetworkMode::Audit
    }

    /// Writes an event; a failing audit log turns the proxy into deny-everything. Returns
    /// whether the record was written whole: a connection whose record was not must not go on.
    pub fn log(&self, event: Event) -> bool {
        let Err(e) = self.audit.write(event) else {
            return true;
        };
        if !self.audit_failed.swap(true, Ordering::SeqCst) {
            say!(
                "stepjail: writing the audit log failed ({e}); denying all further network access"
            );
        }
        false
    }

    pub fn audit_broken(&self) -> bool {
        self.audit_failed.load(Ordering::SeqCst)
    }

    /// Decides an attempt by name (or by address when no name is known). A refusal is logged
    /// and printed here; a pass is logged by [`Engine::admitted`] after the upstream dial.
    pub fn decide(&self, a: &Attempt) -> Verdict {
        // A secret spelled into the destination name itself (CONNECT, SNI, Host) is a leak.
        if let Some(name) = &a.name
            && let Some(secret) = self.leaked_in_dns(name)
        {
            self.report_leak(
                &secret,
                &format!("<{secret}>"),
                a.via,
                "a connection whose host name",
            );
            return Verdict::Refuse(Denial::policy(format!(
                "the host name carries secret {secret}"
            )));
        }
        let decision = match (&a.name, a.ip) {
            (Some(name), _) => self.network.decide_name(name, a.port),
            (None, Some(ip)) => self.network.decide_ip(ip, a.port),
            (None, None) => NameDecision::Denied {
                reason: crate::policy::egress::DenyReason::NotAllowed,
            },
        };
        match decision {
            NameDecision::Allowed { rule } if !self.audit_broken() => {
                tracing::debug!(conn = a.conn, dest = %describe(a), rule = %rule, "allowed");
                Verdict::Go {
                    rule: Some(rule),
                    would_deny: None,
                }
            }
            NameDecision::Allowed { .. } => {
                self.refuse(a, Denial::policy("the audit log cannot be written"))
            }
            NameDecision::Denied { reason } => self.refuse(a, Denial::policy(reason.to_string())),
        }
    }

    /// Refuses an attempt with `denial` (or, in audit mode, lets it through as would-deny).
    pub fn refuse(&self, a: &Attempt, denial: Denial) -> Verdict {
        let dest = describe(a);
        if self.audit_mode() && !self.audit_broken() {
            say!(
                "stepjail: would deny {dest} ({denial}; profile '{}' is in audit mode)",
                self.profile
            );
            Verdict::Go {
                rule: None,
                would_deny: Some(denial.into_reason()),
            }
        } else {
            self.log_connect(a, Decision::Deny, None, Some(denial.reason().to_string()));
            say!(
                "stepjail: denied {dest} ({denial}; profile '{}'{})",
                self.profile,
                self.pointed_by(a)
            );
            Verdict::Refuse(denial)
        }
    }

    /// Logs a passed attempt once its upstream connection is open (so the address is known).
    /// False when its record could not be written: the caller drops the upstream connection
    /// and refuses with [`AUDIT_BROKEN`] (nothing is relayed without its whole record).
    #[must_use]
    pub fn admitted(&self, a: &Attempt, rule: Option<String>, would_deny: Option<String>) -> bool {
        match would_deny {
            Some(reason) => self.log_connect(a, Decision::WouldDeny, None, Some(reason)),
            None => self.log_connect(a, Decision::Allow, rule, None),
        }
    }

    /// Logs and prints a refusal that audit mode does not turn into a pass (traffic stepjail
    /// has no way to relay: UDP other than DNS, ICMP, raw IP).
    pub fn log_refusal_only(&self, a: &Attempt, denial: &Denial) {
        let reason = denial.reason();
        self.log_connect(a, Decision::Deny, None, Some(reason.to_string()));
        let proto = match a.protocol {
            Protocol::Tcp => String::new(),
            p => format!("{} ", protocol_name(p)),
        };
        say!(
            "stepjail: denied {proto}{} ({reason}; profile '{}')",
            describe(a),
            self.profile
        );
    }

    pub(super) fn log_connect(
        &self,
        a: &Attempt,
        decision: Decision,
        rule: Option<String>,
        reason: Option<String>,
    ) -> bool {
        self.log(Event::Connect(audit::Connect {
            conn: a.conn,
            dest_name: a.name.clone(),
            name_source: a.source,
            dest_ip: a.ip,
            dest_port: a.port,
            protocol: a.protocol,
            via: a.via,
            decision,
            rule,
            reason,
        }))
    }

    /// Resolves `name` with the upstream resolver (A and AAAA), keeping only addresses the
    /// policy accepts for `rule`. Errors are reasons, ready for [`Engine::refuse`], with the
    /// special address that was refused, if that was why (for the audit event).
    pub async fn resolve_checked(
        &self,
        name: &str,
        rule: Option<&str>,
    ) -> Result<Vec<IpAddr>, (Denial, Option<IpAddr>)> {
        let mut addrs = Vec::new();
        let mut last_err = None;
        let (v4, v6) = tokio::join!(self.lookup_cached(name, 1), self.lookup_cached(name, 28));
        for r in [v4, v6] {
            match r {
                Ok(a) => addrs.extend(a),
                Err(e) => last_err = Some(e),
            }
        }
        if addrs.is_empty() {
            let reason = match last_err {
                Some(e) => format!("cannot resolve {name}: {e}"),
                None => format!("{name} has no address"),
            };
            return Err((Denial::unreachable(reason), None));
        }
        let mut refused = None;
        let ok: Vec<IpAddr> = addrs
            .into_iter()
            .filter(
                |ip| match self.network.check_resolved(rule.unwrap_or(""), *ip) {
                    Ok(()) => true,
                    Err(r) => {
                        // Refused in audit mode too: audit mode widens the allowlist, not the
                        // boundary around loopback, link-local (metadata) and private ranges.
                        refused.get_or_insert((r.to_string(), *ip));
                        false
                    }
                },
            )
            .collect();
        match (ok.is_empty(), refused) {
            (true, Some((r, ip))) => Err((Denial::policy(r), Some(ip))),
            (true, None) => Err((
                Denial::unreachable(format!("{name} has no usable address")),
                None,
            )),
            _ => Ok(ok),
        }
    }

    /// The hosts file's answer when it knows the name (files before DNS, as the stub answers
    /// the step), else an upstream lookup with a small cache honouring the answer's TTL (at
    /// most [`CACHE_TTL`]), so a build's thousand requests to one registry cost one query.
    async fn lookup_cached(&self, name: &str, qtype: u16) -> Result<Vec<IpAddr>, String> {
        if let Some(addrs) = self.hosts.lookup(name, qtype) {
            tracing::debug!(name, qtype, ?addrs, "answered by the hosts file");
            return Ok(addrs);
        }
        let ans = self.answer_cached(name, qtype).await.map_err(|e| {
            tracing::debug!(name, qtype, error = %e, "upstream lookup failed");
            e.to_string()
        })?;
        Ok(ans.addrs)
    }

    /// The upstream resolver's filtered answer for `name`/`qtype`, from a cache shared by the
    /// DNS stub and the proxy's own dials (see [`super::dns::Cache`]): a NOERROR answer is
    /// kept for its TTL (at most [`CACHE_TTL`]), and callers asking for a name while it is
    /// being looked up wait for that one query.
    pub async fn answer_cached(
        &self,
        name: &str,
        qtype: u16,
    ) -> Result<super::dns::Answer, Arc<super::dns::DnsError>> {
        let lookup = || async {
            let ans = super::dns::lookup_answer(self.resolver, name, qtype, DNS_TIMEOUT).await?;
            tracing::debug!(name, qtype, addrs = ?ans.addrs, ttl = ans.ttl, "resolved upstream");
            Ok(ans)
        };
        self.dns_cache.get_or_lookup(name, qtype, lookup).await
    }

    /// Opens the upstream connection for an allowed attempt: by name (resolved and checked
    /// here, then that exact address dialled) or, without a name, to the address itself.
    /// With an upstream proxy, see [`Engine::dial_via_upstream`]. The socket has
    /// `TCP_NODELAY` (a relay passes small messages on as they come).
    pub async fn dial(&self, a: &mut Attempt, rule: Option<&str>) -> Result<TcpStream, Denial> {
        let s = self.dial_then_nodelay(a, rule).await?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    /// [`Engine::dial`] for a caller with an answer to send first (`200` to a CONNECT): it
    /// sets `TCP_NODELAY` itself, after that answer, one system call fewer before the client
    /// can go on. (Nagle holds nothing back before then: the socket has sent nothing yet.)
    pub async fn dial_then_nodelay(
        &self,
        a: &mut Attempt,
        rule: Option<&str>,
    ) -> Result<TcpStream, Denial> {
        let target = a.name.clone().or_else(|| a.ip.map(|ip| ip.to_string()));
        let candidates = match (&self.upstream, target) {
            (Some(up), Some(target)) if !up.goes_direct(&target) => {
                match self.route_via_upstream(a, rule).await? {
                    Route::Upstream => {
                        tracing::debug!(conn = a.conn, upstream = %up, "tunnelling {target}:{} through the upstream proxy", a.port);
                        return up.connect(&target, a.port, CONNECT_TIMEOUT).await;
                    }
                    Route::Direct(candidates) => candidates,
                }
            }
            _ => self.checked_candidates(a, rule).await?,
        };
        let mut last = String::from("no address to connect to");
        for ip in candidates {
            match connect_within(SocketAddr::new(ip, a.port), CONNECT_TIMEOUT).await {
                Ok(Ok(s)) => {
                    a.ip = Some(ip);
                    tracing::debug!(conn = a.conn, %ip, port = a.port, "connected");
                    return Ok(s);
                }
                Ok(Err(e)) => last = format!("connecting to {ip}:{}: {e}", a.port),
                Err(_) => last = format!("connecting to {ip}:{} timed out", a.port),
            }
            tracing::debug!(conn = a.conn, "{last}");
        }
        Err(Denial::unreachable(last))
    }

    /// The addresses a direct dial may use: the name resolved and checked, or the address
    /// given, checked.
    async fn checked_candidates(
        &self,
        a: &mut Attempt,
        rule: Option<&str>,
    ) -> Result<Vec<IpAddr>, Denial> {
        let candidates = match &a.name {
            Some(name) => match name.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                // The refused address goes into the denial's event (`audit suggest` offers a
                // cidr rule for it).
                Err(_) => self.resolve_checked(name, rule).await.map_err(|(r, ip)| {
                    a.ip = ip.or(a.ip);
                    r
                })?,
            },
            None => a.ip.into_iter().collect(),
        };
        // An address given directly (a bare IP, an IP literal in CONNECT) gets the same
        // special-range check as a resolved one; only a cidr rule naming the range opens it.
        for ip in &candidates {
            if let Err(r) = self.network.check_resolved(rule.unwrap_or(""), *ip) {
                return Err(Denial::policy(r.to_string()));
            }
        }
        Ok(candidates)
    }

    /// Which way an allowed attempt leaves when an upstream proxy is set (and NO_PROXY does
    /// not send it direct). The special-range check stays wherever it can be done here:
    /// - the name resolves locally: a special address is refused (403) exactly as without an
    ///   upstream; one a `cidr` rule opens is dialled *direct* (an internal mirror the rule
    ///   was written for; the upstream would resolve the name again and could not reach it);
    ///   public addresses go through the upstream, by name;
    /// - the name does not resolve locally (only the upstream resolves outside names): it goes
    ///   through the upstream by name, and the address it reaches is the upstream's to check;
    /// - an address without a name: special and opened by a `cidr` rule goes direct, refused
    ///   otherwise; public goes through the upstream.
    async fn route_via_upstream(
        &self,
        a: &mut Attempt,
        rule: Option<&str>,
    ) -> Result<Route, Denial> {
        let literal = match &a.name {
            Some(name) => name.parse::<IpAddr>().ok(),
            None => a.ip,
        };
        let addrs = match (literal, &a.name) {
            (Some(ip), _) => vec![ip],
            (None, Some(name)) => {
                let known_unresolved = self
                    .unresolved
                    .lock()
                    .expect("unresolved lock")
                    .get(name)
                    .is_some_and(|until| Instant::now() < *until);
                if known_unresolved {
                    return Ok(Route::Upstream);
                }
                match self.resolve_checked(name, rule).await {
                    Ok(addrs) => addrs,
                    Err((d, ip)) if d.kind() == DenialKind::Policy => {
                        a.ip = ip.or(a.ip);
                        return Err(d);
                    }
                    Err(_) => {
                        let mut u = self.unresolved.lock().expect("unresolved lock");
                        if u.len() > 4096 {
                            u.clear();
                        }
                        u.insert(name.clone(), Instant::now() + CACHE_TTL);
                        return Ok(Route::Upstream);
                    }
                }
            }
            (None, None) => return Err(Denial::unreachable("no address to connect to")),
        };
        for ip in &addrs {
            if let Err(r) = self.network.check_resolved(rule.unwrap_or(""), *ip) {
                return Err(Denial::policy(r.to_string()));
            }
        }
        if addrs
            .iter()
            .all(|ip| crate::policy::egress::special_range(*ip).is_some())
        {
            return Ok(Route::Direct(addrs));
        }
        Ok(Route::Upstream)
    }

    /// Relays bytes both ways until both sides have finished (or either fails); dropping
    /// `open` at the end writes the close event with the bytes counted on the way.
    pub async fn relay<A, B>(open: Open, step: A, upstream: B, already_up: u64)
    where
        A: AsyncRead + AsyncWrite + Unpin,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        use tokio::io::{AsyncWriteExt, BufReader};
        open.add_up(already_up);
        let upstream = super::counting::Counting::with(upstream, open.counters.clone());
        let (step_r, mut step_w) = tokio::io::split(step);
        let (up_r, mut up_w) = tokio::io::split(upstream);
        let step_done = std::sync::atomic::AtomicBool::new(false);
        let up = async {
            let mut from = BufReader::with_capacity(RELAY_BUFFER, step_r);
            let r = tokio::io::copy_buf(&mut from, &mut up_w).await;
            step_done.store(r.is_ok(), Ordering::SeqCst);
            let _ = up_w.shutdown().await;
            r
        };
        let down = async {
            let mut from = BufReader::with_capacity(RELAY_BUFFER, up_r);
            let r = tokio::io::copy_buf(&mut from, &mut step_w).await;
            // Pass the end on. A step that already closed its side will not acknowledge it
            // (the userspace stack would wait for that): one poll sends what can be sent.
            let grace = if step_done.load(Ordering::SeqCst) {
                Duration::ZERO
            } else {
                SHUTDOWN_GRACE
            };
            let _ = tokio::time::timeout(grace, step_w.shutdown()).await;
            r
        };
        let _ = tokio::try_join!(up, down);
        drop(open);
    }
}

/// How [`Engine::dial`] leaves when an upstream proxy is set.
enum Route {
    /// Through the upstream, by name.
    Upstream,
    /// Direct, to these checked addresses.
    Direct(Vec<IpAddr>),
}

/// The host part of a `Host` header value: `h`, `h:80`, `[v6]`, `[v6]:80`.
pub fn host_without_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split_once(']').map_or(h, |(ip, _)| ip);
    }
    match h.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host,
        _ => h,
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
    }
}

/// `host:port`, `[v6]:port`, or the address when no name is known.
pub fn describe(a: &Attempt) -> String {
    match (&a.name, a.ip) {
        (Some(n), _) if n.contains(':') => format!("[{n}]:{}", a.port),
        (Some(n), _) => format!("{n}:{}", a.port),
        (None, Some(IpAddr::V6(ip))) => format!("[{ip}]:{}", a.port),
        (None, Some(ip)) => format!("{ip}:{}", a.port),
        (None, None) => format!("?:{}", a.port),
    }
}

/// Normalises a host as the step gave it (CONNECT host, SNI, Host header). IP literals are
/// returned as `Err(ip)`: they are decided by address, never as names.
pub fn classify_host(raw: &str) -> Result<Result<String, IpAddr>, String> {
    let trimmed = raw.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(Err(ip));
    }
    normalize_host(raw)
        .map(Ok)
        .map_err(|e| format!("invalid host name: {e}"))
}

#[cfg(test)]
mod connect_tests {
    use super::*;

    // Whether the connect is seen done in the call (the fast path) depends on the kernel
    // running the loopback handshake inline, which a loaded machine may defer to ksoftirqd:
    // not asserted here; both paths must give the same connected stream.
    #[tokio::test]
    async fn a_connect_to_a_listener_on_this_host_is_made() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let s = connect_within(addr, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        let (accepted, from) = l.accept().unwrap();
        assert_eq!(s.local_addr().unwrap(), from);
        drop(accepted);
    }

    #[tokio::test]
    async fn a_connect_that_is_not_answered_ends_at_the_limit() {
        use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType};
        use std::os::fd::AsRawFd;
        // A listener whose queue holds one connection: the next SYN is dropped (the client
        // would try again a second later), so a connect made after it stays in progress.
        let l = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        let any = socket::SockaddrIn::new(127, 0, 0, 1, 0);
        socket::bind(l.as_raw_fd(), &any).unwrap();
        socket::listen(&l, Backlog::new(0).unwrap()).unwrap();
        let addr: SocketAddr = socket::getsockname::<socket::SockaddrIn>(l.as_raw_fd())
            .unwrap()
            .into();
        let limit = Duration::from_millis(200);
        let mut held = Vec::new();
        let mut timed_out = false;
        for _ in 0..4 {
            let started = std::time::Instant::now();
            match connect_within(addr, limit).await {
                Ok(Ok(s)) => held.push(s),
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => {
                    assert!(started.elapsed() >= limit);
                    timed_out = true;
                    break;
                }
            }
        }
        assert!(timed_out, "{} connects made to a full queue", held.len());
    }

    #[tokio::test]
    async fn a_refused_connect_is_the_error_it_was() {
        // A port nobody listens on: bind one, note it, close it.
        let addr = std::net::TcpListener::bind("[::1]:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = connect_within(addr, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    }
}
