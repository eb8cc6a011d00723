//! One pass over audit records into the totals every view of them reads: `stepjail audit
//! summarize` ([`super::summarize`]), `stepjail audit suggest` ([`super::suggest`]) and the
//! GitHub step summary and annotations (`ci::github::report`).
//!
//! The aggregate keeps each destination, name and request as the log spelled it (and under the
//! run that logged it); each view then groups these into its own rows (`summarize` by
//! normalised `host:port/protocol`, `suggest` by valid host name, the GitHub report by a
//! Markdown-safe name), so no view reads the records again. Everything borrows from the
//! records: nothing here copies a name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use super::event::{
    Decision, Event, FileCommand, Protocol, Record, SecretLeak, SecretReflected, StepEnd, StepStart,
};

/// Events of one kind by decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub allowed: u64,
    pub denied: u64,
    pub would_deny: u64,
}

impl Counts {
    fn add(&mut self, decision: Decision) {
        match decision {
            Decision::Allow => self.allowed += 1,
            Decision::Deny => self.denied += 1,
            Decision::WouldDeny => self.would_deny += 1,
        }
    }
    pub fn merge(&mut self, other: &Counts) {
        self.allowed += other.allowed;
        self.denied += other.denied;
        self.would_deny += other.would_deny;
    }
    pub fn total(&self) -> u64 {
        self.allowed + self.denied + self.would_deny
    }
    /// Denied or would-deny.
    pub fn refused(&self) -> u64 {
        self.denied + self.would_deny
    }
}

/// Bytes of closed connections, each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bytes {
    pub up: u64,
    pub down: u64,
}

impl Bytes {
    fn add(&mut self, up: u64, down: u64) {
        self.up += up;
        self.down += down;
    }
}

/// The first refusal (deny or would-deny) of something: its position among the records read
/// (to find the first over several rows a view merges) and its reason.
pub type FirstRefusal<'a> = Option<(usize, Option<&'a str>)>;

/// One destination as a `connect` event names it, in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestKey<'a> {
    pub step: &'a str,
    /// `dest_name` as logged (any case, maybe a trailing dot, maybe an address literal).
    pub name: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestStats<'a> {
    /// `connect` events.
    pub counts: Counts,
    pub first_refusal: FirstRefusal<'a>,
    /// The reasons of `deny` events, with how many had each.
    pub denied_reasons: BTreeMap<&'a str, u64>,
    /// Bytes of the connections whose last `connect` event named this destination.
    pub bytes: Bytes,
    /// Bytes of the connections whose last allowed or would-deny `connect` event named this
    /// destination (what went through); `None` until one such connection closed.
    pub passed: Option<Bytes>,
}

/// One name as a `dns` event spells it, in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameStats<'a> {
    pub counts: Counts,
    /// Query types asked.
    pub qtypes: BTreeSet<&'a str>,
    pub first_refusal: FirstRefusal<'a>,
}

/// One `http` request line (method and logged URL), in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestStats {
    pub counts: Counts,
    /// Position of the first refusal among the records read.
    pub first_refusal: Option<usize>,
}

/// What a run's `step_start` and `step_end` events said, in log order (a run normally has one
/// of each; logs joined by hand may hold more).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepFacts<'a> {
    pub starts: Vec<&'a StepStart>,
    pub ends: Vec<&'a StepEnd>,
}

/// Every audit record read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregate<'a> {
    /// Every run id that logged anything, with its start and end events.
    pub steps: BTreeMap<&'a str, StepFacts<'a>>,
    pub destinations: BTreeMap<DestKey<'a>, DestStats<'a>>,
    /// `dns` events by (run, name as logged).
    pub names: BTreeMap<(&'a str, &'a str), NameStats<'a>>,
    /// `http` events by (run, method, URL).
    pub requests: BTreeMap<(&'a str, &'a str, &'a str), RequestStats>,
    /// In log order, with their run.
    pub leaks: Vec<(&'a str, &'a SecretLeak)>,
    pub reflected: Vec<(&'a str, &'a SecretReflected)>,
    pub file_commands: Vec<(&'a str, &'a FileCommand)>,
    /// DNS queries the stub refused over its rate limit (`dns_limited` events), all runs.
    pub dns_limited: u64,
}

/// Where a connection's `close` bytes go: its last destination, and its last one let through.
struct Conn<'a> {
    last: DestKey<'a>,
    passed: Option<DestKey<'a>>,
}

impl<'a> Aggregate<'a> {
    /// Reads `records` once, in order.
    pub fn new(records: impl IntoIterator<Item = &'a Record>) -> Aggregate<'a> {
        let mut agg = Aggregate::default();
        let mut conns: HashMap<(&'a str, u64), Conn<'a>> = HashMap::new();
        for (seq, record) in records.into_iter().enumerate() {
            let step = record.step.as_str();
            let facts = agg.steps.entry(step).or_default();
            match &record.event {
                Event::StepStart(s) => facts.starts.push(s),
                Event::StepEnd(e) => facts.ends.push(e),
                Event::Connect(c) => {
                    let key = DestKey {
                        step,
                        name: c.dest_name.as_deref(),
                        ip: c.dest_ip,
                        port: c.dest_port,
                        protocol: c.protocol,
                    };
                    let stats = agg.destinations.entry(key).or_default();
                    stats.counts.add(c.decision);
                    if c.decision != Decision::Allow && stats.first_refusal.is_none() {
                        stats.first_refusal = Some((seq, c.reason.as_deref()));
                    }
                    if let (Decision::Deny, Some(reason)) = (c.decision, &c.reason) {
                        *stats.denied_reasons.entry(reason.as_str()).or_default() += 1;
                    }
                    let conn = conns.entry((step, c.conn)).or_insert(Conn {
                        last: key,
                        passed: None,
                    });
                    conn.last = key;
                    if c.decision != Decision::Deny {
                        conn.passed = Some(key);
                    }
                }
                Event::Close(c) => {
                    if let Some(conn) = conns.get(&(step, c.conn)) {
                        if let Some(stats) = agg.destinations.get_mut(&conn.last) {
                            stats.bytes.add(c.bytes_up, c.bytes_down);
                        }
                        if let Some(stats) = conn.passed.and_then(|k| agg.destinations.get_mut(&k))
                        {
                            stats
                                .passed
                                .get_or_insert_default()
                                .add(c.bytes_up, c.bytes_down);
                        }
                    }
                }
                Event::Dns(d) => {
                    let stats = agg.names.entry((step, d.name.as_str())).or_default();
                    stats.counts.add(d.decision);
                    stats.qtypes.insert(d.qtype.as_str());
                    if d.decision != Decision::Allow && stats.first_refusal.is_none() {
                        stats.first_refusal = Some((seq, d.reason.as_deref()));
                    }
                }
                Event::Http(h) => {
                    let key = (step, h.method.as_str(), h.url.as_str());
                    let stats = agg.requests.entry(key).or_default();
                    stats.counts.add(h.decision);
                    if h.decision != Decision::Allow && stats.first_refusal.is_none() {
                        stats.first_refusal = Some(seq);
                    }
                }
                Event::SecretLeak(l) => agg.leaks.push((step, l)),
                Event::SecretReflected(r) => agg.reflected.push((step, r)),
                Event::FileCommand(f) => agg.file_commands.push((step, f)),
                Event::DnsLimited(l) => agg.dns_limited += l.refused,
            }
        }
        agg
    }

    /// `connect` events in all.
    pub fn connections(&self) -> u64 {
        self.destinations.values().map(|d| d.counts.total()).sum()
    }

    /// The profiles the steps ran under (every `step_start`).
    pub fn profiles_run(&self) -> BTreeSet<&'a str> {
        self.steps
            .values()
            .flat_map(|s| s.starts.iter().map(|s| s.profile.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{Close, Connect, NameSource, Via};

    fn connect(conn: u64, name: &str, decision: Decision, reason: &str) -> Record {
        Record::new(
            "r",
            Event::Connect(Connect {
                conn,
                dest_name: Some(name.into()),
                name_source: NameSource::Connect,
                dest_ip: None,
                dest_port: 443,
                protocol: Protocol::Tcp,
                via: Via::Proxy,
                decision,
                rule: None,
                reason: Some(reason.into()),
            }),
        )
    }

    fn close(conn: u64, up: u64) -> Record {
        Record::new(
            "r",
            Event::Close(Close {
                conn,
                bytes_up: up,
                bytes_down: 2 * up,
                duration_ms: 1,
            }),
        )
    }

    #[test]
    fn bytes_go_to_the_last_destination_and_the_last_one_let_through() {
        let records = [
            connect(1, "a.example", Decision::Allow, ""),
            connect(1, "b.example", Decision::Deny, "no rule"),
            close(1, 10),
            connect(2, "b.example", Decision::WouldDeny, "later"),
            close(2, 1),
            close(3, 100),
        ];
        let agg = Aggregate::new(&records);
        let at = |name| {
            agg.destinations
                .iter()
                .find(|(k, _)| k.name == Some(name))
                .unwrap()
                .1
        };
        let (a, b) = (at("a.example"), at("b.example"));
        assert_eq!(a.bytes, Bytes::default());
        assert_eq!(a.passed, Some(Bytes { up: 10, down: 20 }));
        assert_eq!(b.bytes, Bytes { up: 11, down: 22 });
        assert_eq!(b.passed, Some(Bytes { up: 1, down: 2 }));
        assert_eq!(
            b.counts,
            Counts {
                allowed: 0,
                denied: 1,
                would_deny: 1
            }
        );
        assert_eq!(b.first_refusal, Some((1, Some("no rule"))));
        assert_eq!(b.denied_reasons, [("no rule", 1)].into());
        assert_eq!(agg.connections(), 3);
        assert_eq!(agg.steps.len(), 1);
    }
}
