//! The DNS stub: the step's only resolver. Allowed names (any rule, any port) are resolved
//! upstream and answered with the A/AAAA addresses the policy accepts; every other name gets
//! NXDOMAIN without any query leaving the machine, so DNS tunnelling carries nothing out.
//! Served on 127.0.0.53 (UDP and TCP) and on port 53 of any address the step sends to.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::dns::{self, Rcode};
use super::engine::Engine;
use super::sni::Peek;
use crate::audit::{self, Decision, DnsTransport, Event};
use crate::policy::egress::normalize_host;

/// An idle TCP DNS connection is closed after this.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// While the step asks UDP queries back to back, the stub keeps polling its socket this long
/// after each answer instead of going to sleep: the next query then needs no wake-up of the
/// stub. On a VM a wake-up of an idle vCPU is an exit to the host (~25 us on the benchmark
/// machine, twice per sequential query), as much as the rest of the query. The kernel's guest
/// halt polling does the same for the whole machine, where it is turned on. At most this much
/// CPU a query, only while queries come back to back, and never with a single CPU, where
/// polling would hold off the very process that asks.
const SPIN: Duration = Duration::from_micros(50);
/// The stub polls after an answer when the query it answered was caught by polling, or came
/// this soon after the answer before while the stub slept (the time includes the stub's own
/// wake-up). A poll that catches nothing is not followed by another at once, so a step that
/// asks a little less often than [`SPIN`] costs at most one poll every other query.
const BACK_TO_BACK: Duration = Duration::from_micros(200);

fn rcode_name(r: Rcode) -> String {
    match r {
        Rcode::NoError => "NOERROR".into(),
        Rcode::FormErr => "FORMERR".into(),
        Rcode::ServFail => "SERVFAIL".into(),
        Rcode::NxDomain => "NXDOMAIN".into(),
        Rcode::NotImp => "NOTIMP".into(),
        Rcode::Refused => "REFUSED".into(),
        Rcode::Other(c) => format!("RCODE{c}"),
    }
}

/// Answers one query message from the step.
pub async fn answer(engine: &Engine, msg: &[u8], transport: DnsTransport) -> Option<Vec<u8>> {
    let q = match dns::parse_query(msg) {
        Ok(q) => q,
        Err(e) => return dns::error_answer(msg, &e),
    };
    let event = |decision,
                 answers: Vec<IpAddr>,
                 rcode: &str,
                 rule: Option<String>,
                 reason: Option<String>| {
        Event::Dns(audit::Dns {
            name: q.name.clone(),
            qtype: q.qtype_name.clone(),
            transport,
            decision,
            answers,
            rcode: rcode.to_string(),
            rule,
            reason,
        })
    };
    let leaked = engine.leaked_in_dns(&q.name);
    let rule = normalize_host(&q.name)
        .ok()
        .and_then(|n| engine.network.dns_allowed(&n));
    // Over the step's rate: REFUSED, counted, no record each (a flood must neither grow the
    // log without bound nor starve the step's lookups of allowed names; see dns::Limiter).
    let class = match (&rule, &leaked) {
        (Some(_), None) => dns::Class::Allowed,
        _ => dns::Class::NotAllowed,
    };
    let (within, reports) = engine.dns_limit.check(class, std::time::Instant::now());
    for r in reports.iter().flatten() {
        say_limited(engine, r);
    }
    if !within {
        return Some(dns::refused(msg));
    }
    // A secret (or its placeholder) spelled into a query name is exfiltration: refused before
    // anything else (audit mode included), and no resolver hears of it. The name is not logged:
    // the leak event names the secret and the domain it was aimed at.
    if let Some(secret) = leaked {
        let rest = q.name.split_once('.').map_or("", |(_, r)| r);
        engine.report_leak(
            &secret,
            &format!("<{secret}>.{rest}"),
            crate::audit::Via::Proxy,
            "a DNS query",
        );
        return Some(dns::nxdomain(msg));
    }
    let decision = match (&rule, engine.audit_mode()) {
        // A failed audit log denies everything from then on, names included (fail closed).
        _ if engine.audit_broken() => Decision::Deny,
        (Some(_), _) => Decision::Allow,
        (None, true) => Decision::WouldDeny,
        (None, false) => Decision::Deny,
    };
    let not_allowed = || Some("not allowed by profile".to_string());
    if decision == Decision::Deny {
        // Refused here: the upstream resolver never hears of this name.
        engine.log(event(
            Decision::Deny,
            vec![],
            "NXDOMAIN",
            None,
            not_allowed(),
        ));
        say!(
            "stepjail: denied DNS {} {} (not allowed by profile '{}')",
            q.qtype_name,
            q.name,
            engine.profile
        );
        return Some(dns::nxdomain(msg));
    }
    let reason = if decision == Decision::WouldDeny {
        // The same line a refusal prints, so an audit run shows every name enforce would cut.
        say!(
            "stepjail: would deny DNS {} {} (not allowed by profile; profile '{}' is in audit mode)",
            q.qtype_name,
            q.name,
            engine.profile
        );
        not_allowed()
    } else {
        None
    };
    if q.qtype != 1 && q.qtype != 28 {
        // Only addresses: TXT and friends are tunnelling channels, HTTPS/SVCB records could
        // point clients at other endpoints. An allowed name gets an empty answer (NODATA).
        engine.log(event(decision, vec![], "NOERROR", rule, reason));
        return Some(dns::build_answer(msg, &q, &[], 0));
    }
    // Files before DNS (glibc's default order): a name the host's hosts file knows is answered
    // from it alone, with the same special-range check as a DNS answer.
    let looked_up = match engine.hosts.lookup(&q.name, q.qtype) {
        Some(addrs) => Ok(dns::Answer {
            addrs,
            ttl: super::hosts::TTL,
            cnames: vec![],
            rcode: Rcode::NoError,
        }),
        None => engine.answer_cached(&q.name, q.qtype).await,
    };
    match looked_up {
        Ok(ans) if ans.rcode == Rcode::NoError => {
            let name_rule = rule.as_deref().unwrap_or("");
            let mut addrs: Vec<IpAddr> = Vec::new();
            let mut removed = Vec::new();
            for ip in &ans.addrs {
                match engine.network.check_resolved(name_rule, *ip) {
                    Ok(()) => addrs.push(*ip),
                    Err(why) => removed.push((*ip, why)),
                }
            }
            if let Some((_, why)) = removed.first()
                && engine.first_special_for(&q.name)
            {
                // Tools only say `Could not resolve host`: say once per name what was removed
                // and which rule would keep it.
                say!(
                    "stepjail: {} {why} (removed from the DNS answer; profile '{}')",
                    q.name,
                    engine.profile
                );
            }
            let reason = reason.or_else(|| {
                (!removed.is_empty()).then(|| {
                    let list: Vec<String> = removed.iter().map(|(ip, _)| ip.to_string()).collect();
                    format!(
                        "{} address(es) in special ranges removed: {}",
                        removed.len(),
                        list.join(", ")
                    )
                })
            });
            engine.log(event(decision, addrs.clone(), "NOERROR", rule, reason));
            Some(dns::build_answer(msg, &q, &addrs, ans.ttl))
        }
        Ok(ans) => {
            let rc = rcode_name(ans.rcode);
            engine.log(event(decision, vec![], &rc, rule, reason));
            Some(if ans.rcode == Rcode::NxDomain {
                dns::nxdomain(msg)
            } else {
                dns::servfail(msg)
            })
        }
        Err(e) => {
            engine.log(event(
                decision,
                vec![],
                "SERVFAIL",
                rule,
                Some(format!("upstream: {e}")),
            ));
            Some(dns::servfail(msg))
        }
    }
}

/// Says the queries refused over one class's rate limit: one stderr line and one `dns_limited`
/// record, quoting the budget that refused them.
fn say_limited(engine: &Engine, r: &dns::Report) {
    let (limit, burst) = r.class.limits();
    let (class, names) = match r.class {
        dns::Class::Allowed => (audit::DnsClass::Allowed, "names the profile allows"),
        dns::Class::NotAllowed => (audit::DnsClass::NotAllowed, "other names"),
    };
    say!(
        "stepjail: refused {} DNS queries in {:.1}s over the step's limit for {names} ({limit} a second, bursts of {burst}); not logged one by one (profile '{}')",
        r.refused,
        r.duration.as_secs_f64(),
        engine.profile
    );
    engine.log(Event::DnsLimited(audit::DnsLimited {
        class,
        refused: r.refused,
        duration_ms: r.duration.as_millis() as u64,
        limit,
        burst,
    }));
}

/// Says the refusals over the rate limit not said yet: the proxy is stopping.
pub fn flush_limited(engine: &Engine) {
    for r in engine
        .dns_limit
        .flush(std::time::Instant::now())
        .iter()
        .flatten()
    {
        say_limited(engine, r);
    }
}

/// Whether the stub may poll for back-to-back queries (see [`SPIN`]): more than one CPU to run
/// on, by affinity and cgroup quota. Read once, when it is first needed (not at start-up).
fn may_spin() -> bool {
    static MAY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MAY.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

pub async fn serve_udp(sock: UdpSocket, engine: Arc<Engine>) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 4096];
    let mut answered: Option<std::time::Instant> = None;
    let mut spin = false;
    loop {
        let spun = if spin {
            spin_recv(&sock, &mut buf, SPIN).await
        } else {
            None
        };
        let caught = spun.is_some();
        let got = match spun {
            Some(got) => Ok(got),
            None => sock.recv_from(&mut buf).await,
        };
        let (n, from) = match got {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(error = %e, "DNS stub: receiving a UDP query failed");
                continue;
            }
        };
        spin = if spin {
            caught
        } else {
            answered.is_some_and(|t| t.elapsed() <= BACK_TO_BACK) && may_spin()
        };
        let msg = buf[..n].to_vec();
        let engine = engine.clone();
        let mut pending = Box::pin(async move { answer(&engine, &msg, DnsTransport::Udp).await });
        // Polled once here: a name answered without waiting (cached, refused, from the hosts
        // file) is answered on this task, without waking another worker thread for it. Only
        // a query that waits for the upstream resolver becomes a task of its own, which polls
        // it again (with its own waker) so nothing stalls behind it.
        let polled = pending
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        match polled {
            Poll::Ready(resp) => send_udp(&sock, resp, from).await,
            Poll::Pending => {
                let sock = sock.clone();
                tokio::spawn(async move { send_udp(&sock, pending.await, from).await });
            }
        }
        answered = Some(std::time::Instant::now());
    }
}

/// Polls `sock` for a query for up to `spin`, letting the runtime's other tasks and its
/// driver run between tries.
async fn spin_recv(
    sock: &UdpSocket,
    buf: &mut [u8],
    spin: Duration,
) -> Option<(usize, std::net::SocketAddr)> {
    let until = std::time::Instant::now() + spin;
    loop {
        match sock.try_recv_from(buf) {
            Ok(got) => return Some(got),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
        if std::time::Instant::now() >= until {
            return None;
        }
        tokio::task::yield_now().await;
    }
}

async fn send_udp(sock: &UdpSocket, resp: Option<Vec<u8>>, to: std::net::SocketAddr) {
    if let Some(resp) = resp
        && let Err(e) = sock.send_to(&resp, to).await
    {
        tracing::debug!(error = %e, "DNS stub: sending a UDP answer failed");
    }
}

pub async fn serve_tcp(listener: TcpListener, engine: Arc<Engine>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) or the like: the pending connection stays queued,
                // so retrying at once would spin; wait for connections to close.
                tracing::debug!(error = %e, "DNS stub: accepting a TCP connection failed");
                super::engine::accept_backoff().await;
                continue;
            }
        };
        let engine = engine.clone();
        // DNS over TCP holds a descriptor like any connection: it counts against the cap.
        let Some(slot) = engine.limit.slot() else {
            let local = stream.local_addr().ok();
            let a = super::engine::Attempt {
                conn: engine.conn_id(),
                name: None,
                source: audit::NameSource::None,
                ip: local.map(|l| l.ip()),
                port: local.map_or(53, |l| l.port()),
                protocol: audit::Protocol::Tcp,
                via: audit::Via::Proxy,
            };
            engine.refuse_over_limit(&a);
            super::limit::reset(stream);
            continue;
        };
        tokio::spawn(async move {
            let _slot = slot;
            serve_tcp_stream(stream, engine).await
        });
    }
}

/// DNS over a stream (two-byte length prefix per message), until idle or closed.
pub async fn serve_tcp_stream<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    engine: Arc<Engine>,
) {
    let mut buf = Vec::new();
    loop {
        match dns::tcp_unframe(&buf) {
            Peek::Done((msg, used)) => {
                buf.drain(..used);
                if let Some(resp) = answer(&engine, &msg, DnsTransport::Tcp).await
                    && s.write_all(&dns::tcp_frame(&resp)).await.is_err()
                {
                    return;
                }
                continue;
            }
            Peek::NeedMore => {}
            Peek::NotThis | Peek::Malformed(_) => {
                tracing::debug!("DNS stub: a TCP stream that is not DNS framing; closed");
                return;
            }
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(TCP_IDLE, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}

/// DNS sent over UDP to port 53 of any address (a resolver the step chose itself): the stub
/// answers it as if it were that resolver.
pub async fn serve_captured_udp(mut udp: ipstack::IpStackUdpStream, engine: Arc<Engine>) {
    let mut buf = vec![0u8; 4096];
    loop {
        match udp.read(&mut buf).await {
            Ok(n) if n > 0 => {
                if let Some(resp) = answer(&engine, &buf[..n], DnsTransport::Udp).await
                    && udp.write_all(&resp).await.is_err()
                {
                    return;
                }
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;
    use crate::policy::egress::rule_text;
    use crate::policy::model::{AllowRule, Location, Network, NetworkMode, RuleTarget};
    use crate::proxy::denial::Denial;
    use crate::proxy::hosts::HostsFile;

    /// The poll after an answer finds a query that arrived since, through the runtime's
    /// driver (no `recv` awaited), and gives up after `SPIN` when none comes.
    #[tokio::test(flavor = "current_thread")]
    async fn polling_for_the_next_query_finds_one_or_gives_up() {
        let stub = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let step = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        let t = std::time::Instant::now();
        assert_eq!(spin_recv(&stub, &mut buf, SPIN).await, None);
        assert!(t.elapsed() >= SPIN, "{:?}", t.elapsed());
        step.send_to(b"query", stub.local_addr().unwrap()).unwrap();
        // Long enough that a preempted test thread still gets its tries.
        let got = spin_recv(&stub, &mut buf, Duration::from_secs(5)).await;
        assert_eq!(got, Some((5, step.local_addr().unwrap())));
        assert_eq!(&buf[..5], b"query");
        assert_eq!(spin_recv(&stub, &mut buf, SPIN).await, None);
    }

    const HOSTS: &str = "\
192.0.2.10 hostsonly.test
2001:db8::10 hostsonly.test
192.0.2.11 secret.test
10.1.2.3 mirror.corp
";

    fn rule(pattern: &str, ports: &[u16]) -> AllowRule {
        let target = match pattern.parse::<ipnet::IpNet>() {
            Ok(net) => RuleTarget::Cidr(net),
            Err(_) => RuleTarget::Exact(pattern.to_string()),
        };
        AllowRule {
            text: rule_text(&target, ports),
            target,
            ports: ports.to_vec(),
            at: Location {
                file: "t.yml".into(),
                line: 1,
                column: 1,
            },
            key: "network.allow[0]".into(),
            methods: vec![],
            paths: vec![],
            raw_tcp: false,
        }
    }

    /// An engine whose upstream resolver is a closed local port: every answer below comes
    /// from the hosts file, or the test fails with SERVFAIL.
    fn engine(extra: &[(&str, &[u16])]) -> Engine {
        let mut allow = vec![rule("hostsonly.test", &[80]), rule("mirror.corp", &[443])];
        allow.extend(extra.iter().map(|(p, ports)| rule(p, ports)));
        Engine::new(
            Network {
                mode: NetworkMode::Enforce,
                allow: allow.into(),
                upstream_proxy: None,
                max_connections: None,
            },
            "t".into(),
            AuditLog::disabled(),
            "127.0.0.1:9".parse().unwrap(),
        )
        .with_hosts(HostsFile::parse(HOSTS))
    }

    /// The rcode and addresses of the stub's answer to `name`/`qtype`.
    async fn ask(engine: &Engine, name: &str, qtype: u16) -> (Rcode, Vec<IpAddr>) {
        let msg = dns::build_upstream_query(name, qtype, 7);
        let resp = answer(engine, &msg, DnsTransport::Udp).await.unwrap();
        let q = dns::parse_query(&msg).unwrap();
        let ans = dns::filter_answer(&q, &resp).unwrap();
        (ans.rcode, ans.addrs)
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn allowed_names_are_answered_from_the_hosts_file_without_upstream() {
        let e = engine(&[]);
        assert_eq!(
            ask(&e, "hostsonly.test", 1).await,
            (Rcode::NoError, ips(&["192.0.2.10"]))
        );
        assert_eq!(
            ask(&e, "HostsOnly.test", 28).await,
            (Rcode::NoError, ips(&["2001:db8::10"]))
        );
        assert_eq!(
            e.resolve_checked("hostsonly.test", Some("hostsonly.test:80"))
                .await,
            Ok(ips(&["192.0.2.10", "2001:db8::10"]))
        );
    }

    #[tokio::test]
    async fn names_not_allowed_are_not_answered_from_the_hosts_file() {
        let e = engine(&[]);
        assert_eq!(ask(&e, "secret.test", 1).await, (Rcode::NxDomain, vec![]));
    }

    #[tokio::test]
    async fn special_entries_are_refused_naming_the_cidr_rule_until_one_opens_them() {
        let e = engine(&[]);
        assert_eq!(ask(&e, "mirror.corp", 1).await, (Rcode::NoError, vec![]));
        // Explained once per name: the stub already printed its line.
        assert!(!e.first_special_for("mirror.corp"));
        let (err, ip) = e
            .resolve_checked("mirror.corp", Some("mirror.corp:443"))
            .await
            .unwrap_err();
        assert_eq!(ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(
            err,
            Denial::policy(
                "resolved to 10.1.2.3 (private) which is not allowed unless a cidr rule names \
                 it: add `- { cidr: 10.1.2.3/32, ports: [443] }` to network.allow"
            )
        );
        let e = engine(&[("10.1.2.3/32", &[443])]);
        assert_eq!(
            ask(&e, "mirror.corp", 1).await,
            (Rcode::NoError, ips(&["10.1.2.3"]))
        );
        assert!(e.first_special_for("mirror.corp"));
    }

    #[tokio::test]
    async fn a_flood_is_refused_over_the_rate_without_records_and_said_once() {
        let (log, mem) = AuditLog::memory("t");
        let mut e = engine(&[]);
        e.audit = log;
        // Buckets that do not refill while the test runs (their clock starts in an hour).
        e.dns_limit = dns::Limiter::new(std::time::Instant::now() + Duration::from_secs(3600));
        let burst = dns::BURST as usize;
        let mut rcodes = std::collections::BTreeMap::new();
        for i in 0..burst + 500 {
            let (rcode, _) = ask(&e, &format!("x{i}.flood.test"), 1).await;
            *rcodes.entry(format!("{rcode:?}")).or_insert(0) += 1;
            // The step's own lookups of allowed names have a budget of their own.
            if i % 100 == 0 {
                assert_eq!(
                    ask(&e, "hostsonly.test", 1).await,
                    (Rcode::NoError, ips(&["192.0.2.10"]))
                );
            }
        }
        assert_eq!(rcodes.get("Refused"), Some(&500), "{rcodes:?}");
        let text = String::from_utf8(mem.bytes()).unwrap();
        let flood_records = text.lines().filter(|l| l.contains(".flood.test")).count();
        assert_eq!(flood_records, burst);
        flush_limited(&e);
        // Said once a second while it lasted (if the loop took that long) and at the end:
        // every refusal counted once.
        let records = mem.records();
        let said: Vec<u64> = records
            .iter()
            .filter_map(|r| match &r.event {
                Event::DnsLimited(l) => Some(l.refused),
                _ => None,
            })
            .collect();
        assert!(!said.is_empty());
        assert_eq!(said.iter().sum::<u64>(), 500, "{said:?}");
        let text = String::from_utf8(mem.bytes()).unwrap();
        flush_limited(&e);
        assert_eq!(String::from_utf8(mem.bytes()).unwrap(), text);
    }

    #[tokio::test]
    async fn a_refusal_of_an_allowed_name_quotes_the_allowed_names_budget() {
        let (log, mem) = AuditLog::memory("t");
        let mut e = engine(&[]);
        e.audit = log;
        // The allowed names' bucket emptied (its clock starts in an hour: no refill).
        let later = std::time::Instant::now() + Duration::from_secs(3600);
        e.dns_limit = dns::Limiter::new(later);
        while e.dns_limit.check(dns::Class::Allowed, later).0 {}
        // That loop's last query was refused, and so is the step's.
        assert_eq!(ask(&e, "hostsonly.test", 1).await.0, Rcode::Refused);
        // The other names' budget is untouched.
        assert_eq!(ask(&e, "x.flood.test", 1).await.0, Rcode::NxDomain);
        flush_limited(&e);
        let limited: Vec<audit::DnsLimited> = mem
            .records()
            .into_iter()
            .filter_map(|r| match r.event {
                Event::DnsLimited(l) => Some(l),
                _ => None,
            })
            .collect();
        assert_eq!(
            limited,
            [audit::DnsLimited {
                class: audit::DnsClass::Allowed,
                refused: 2,
                duration_ms: limited[0].duration_ms,
                limit: 100_000,
                burst: 100_000,
            }]
        );
    }

    /// A resolver on a local port answering every query with 192.0.2.20 and 10.0.0.1 (TTL 60);
    /// returns its address and the number of queries it has answered.
    async fn counting_upstream() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let q = dns::parse_query(&buf[..n]).unwrap();
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let resp = dns::build_answer(&buf[..n], &q, &ips(&["192.0.2.20", "10.0.0.1"]), 60);
                sock.send_to(&resp, from).await.unwrap();
            }
        });
        (addr, count)
    }

    #[tokio::test]
    async fn a_repeated_name_is_answered_from_the_cache_checked_and_logged_each_time() {
        let (upstream, asked) = counting_upstream().await;
        let (log, mem) = AuditLog::memory("t");
        let e = Engine::new(
            Network {
                mode: NetworkMode::Enforce,
                allow: vec![rule("cached.test", &[443])].into(),
                upstream_proxy: None,
                max_connections: None,
            },
            "t".into(),
            log,
            upstream,
        );
        for name in ["cached.test", "CACHED.test", "cached.test"] {
            // The private address is removed from the cached answer as from a fresh one.
            assert_eq!(
                ask(&e, name, 1).await,
                (Rcode::NoError, ips(&["192.0.2.20"]))
            );
        }
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The proxy's own lookup for a dial is served from the same cache.
        assert_eq!(
            e.resolve_checked("cached.test", Some("cached.test:443"))
                .await,
            Ok(ips(&["192.0.2.20"]))
        );
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 2); // the AAAA query
        let text = String::from_utf8(mem.bytes()).unwrap();
        let dns_events: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(r#""event":"dns""#))
            .collect();
        assert_eq!(dns_events.len(), 3, "{text}");
        for line in dns_events {
            assert!(line.contains(r#""answers":["192.0.2.20"]"#), "{line}");
            assert!(line.contains("10.0.0.1"), "{line}");
        }
    }
}
