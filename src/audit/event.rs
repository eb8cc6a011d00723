//! The audit log's wire schema: one [`Record`] per JSON line.
//!
//! Every line is a flat JSON object:
//! `{"schema":"stepjail.audit","v":1,"ts":"2026-11-26T03:37:40.123Z","step":"run-1","event":"connect",...}`.
//! The machine-readable contract is `schema/audit-v1.schema.json`; a change to a type here that
//! changes the JSON must bump [`SCHEMA_VERSION`] and get a new schema file.
//!
//! **What is never recorded.** These types have no field for HTTP header values, request or
//! response bodies, URL query strings, URL userinfo, or secret values, and none may be added: the
//! audit log is handed to people and tools that must not see a step's credentials. URLs go through
//! [`sanitize_url`] before they reach an [`Http`] event; a [`SecretLeak`] names the secret, never
//! its value. Fields map onto OCSF Network Activity / ECS `network.*`, `destination.*`, `dns.*`.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::policy::model::NetworkMode;

/// The value of every line's `schema` field.
pub const SCHEMA_NAME: &str = "stepjail.audit";
/// The value of every line's `v` field; bumped on any incompatible change to the JSON.
pub const SCHEMA_VERSION: u32 = 1;

/// One line of the audit log: the envelope every event shares, and the event itself.
///
/// The event's fields are flattened into the same JSON object, tagged by `"event"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Always [`SCHEMA_NAME`].
    pub schema: String,
    /// Always [`SCHEMA_VERSION`] for records this build writes.
    pub v: u32,
    /// When the event happened: RFC 3339, UTC, milliseconds (`2026-11-26T03:37:40.123Z`).
    pub ts: String,
    /// The run id of the step the event belongs to; joins the lines of one step across logs.
    pub step: String,
    #[serde(flatten)]
    pub event: Event,
}

impl Record {
    /// A record of `event` in step `step`, stamped now.
    pub fn new(step: impl Into<String>, event: Event) -> Self {
        Record::at(step, SystemTime::now(), event)
    }

    /// A record of `event` in step `step`, stamped with `time` (for tests and replays).
    pub fn at(step: impl Into<String>, time: SystemTime, event: Event) -> Self {
        Record {
            schema: SCHEMA_NAME.to_owned(),
            v: SCHEMA_VERSION,
            ts: format_timestamp(time),
            step: step.into(),
            event,
        }
    }
}

/// What happened. The JSON `"event"` field is the snake_case variant name.
///
/// No variant carries header values, bodies, query strings or credentials (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    StepStart(StepStart),
    StepEnd(StepEnd),
    Dns(Dns),
    Connect(Connect),
    Http(Http),
    Close(Close),
    SecretLeak(SecretLeak),
    SecretReflected(SecretReflected),
    FileCommand(FileCommand),
    DnsLimited(DnsLimited),
}

/// The step is about to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStart {
    /// Name of the resolved profile.
    pub profile: String,
    pub mode: NetworkMode,
    /// `argv[0]` only: arguments often carry tokens (`curl -H "Authorization: ..."`).
    pub command: String,
    /// The workspace directory as the host sees it.
    pub workspace: String,
    /// The CI job id (`GITHUB_JOB`), for steps run by `stepjail step`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
    /// The CI step id (`GITHUB_ACTION`), for steps run by `stepjail step`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_step: Option<String>,
}

/// The step has finished (or was killed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEnd {
    pub profile: String,
    /// The step's exit status; `128 + signal` when it was killed by a signal.
    pub exit_code: i32,
    pub duration_ms: u64,
    pub timed_out: bool,
    /// The signal stepjail received and relayed to the step (the runner cancelling it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_signal: Option<i32>,
    /// The signal a process of the step sent to the sandbox's PID 1 (`kill -TERM 1`), which
    /// forwards it to the step: the step signalled itself and was not cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_signal: Option<i32>,
    /// The cgroup limit the step ran into: `memory` (the kernel OOM-killed a process of the
    /// step) or `pids` (it refused a fork). Absent when none was hit or none was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// One DNS query the stub resolver answered or refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// The queried name as asked (no normalization).
    pub name: String,
    /// Query type mnemonic: `A`, `AAAA`, `TXT`, ...; `TYPE<n>` for types without one.
    pub qtype: String,
    pub transport: DnsTransport,
    pub decision: Decision,
    /// Addresses handed to the step; empty when the query was refused or had no address answers.
    #[serde(default)]
    pub answers: Vec<IpAddr>,
    /// Response code given to the step: `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`, ...
    pub rcode: String,
    /// The allowlist rule that matched, as written in the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why the query was denied (or would have been).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A decision on one outgoing connection (or UDP flow, or ICMP echo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connect {
    /// Connection id, unique within one step; [`Http`] and [`Close`] refer to it.
    pub conn: u64,
    /// The destination's name, when one is known (see `name_source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_name: Option<String>,
    /// How `dest_name` was learned.
    pub name_source: NameSource,
    /// The destination address, when one is known (a denied CONNECT is never resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_ip: Option<IpAddr>,
    pub dest_port: u16,
    pub protocol: Protocol,
    pub via: Via,
    pub decision: Decision,
    /// The allowlist rule that matched, as written in the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why the connection was denied (or would have been).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One plain-HTTP request forwarded (or refused) by the proxy.
///
/// Method and sanitized URL only: never header values, bodies, query strings or userinfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Http {
    pub conn: u64,
    pub method: String,
    /// `scheme://host[:port]/path`, produced by [`sanitize_url`].
    pub url: String,
    pub decision: Decision,
    /// The response status, when a response was seen (or the proxy's own denial status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// A connection has closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Close {
    pub conn: u64,
    /// Bytes from the step to the destination.
    pub bytes_up: u64,
    /// Bytes from the destination to the step.
    pub bytes_down: u64,
    pub duration_ms: u64,
}

/// A secret's value or placeholder (or an encoding of either) was seen on its way to a host
/// the secret is not bound to, or in a DNS query name.
///
/// Names the secret; never contains its value or the placeholder's surroundings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretLeak {
    pub secret_name: String,
    pub dest_name: String,
    pub via: Via,
    pub reason: String,
}

/// A response from an intercepted host carried a brokered secret's real value (raw or encoded:
/// the host echoed what the proxy had written into the request, or returned it from storage).
/// The proxy replaced it by the placeholder before the step could read it.
///
/// Names the secret; never contains its value, its placeholder or the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretReflected {
    /// The intercepted connection the response came on.
    pub conn: u64,
    pub secret_name: String,
    /// The host that answered.
    pub dest_name: String,
    /// Where in the response: `header`, `body` or `trailer`.
    pub part: String,
    pub reason: String,
}

/// An entry a step wrote to a GitHub file command (`GITHUB_ENV`, `GITHUB_PATH`) that stepjail
/// removed before later steps could get it: a poisoning attempt, or a legitimate one the policy
/// does not allow. Names the variable (or the path entry), never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCommand {
    /// `GITHUB_ENV` or `GITHUB_PATH`.
    pub file: String,
    /// The variable name, or the `GITHUB_PATH` entry; empty when the whole file was discarded.
    pub name: String,
    /// The entry's line in the file; 0 when the whole file was discarded.
    pub line: u64,
    pub reason: String,
}

/// DNS queries the stub answered REFUSED, without a `dns` record each, because the step sent
/// more than its rate limit allows: one record a second while it lasts, and one at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsLimited {
    /// Whose budget refused them: names the profile allows, or every other name. Records
    /// written before the field existed read as `not_allowed` (they quoted that budget).
    #[serde(default)]
    pub class: DnsClass,
    /// Queries refused since the last such record.
    pub refused: u64,
    /// From the first of them to this record.
    pub duration_ms: u64,
    /// Queries a second allowed, sustained, to this class of names.
    pub limit: u32,
    /// Queries of this class allowed at once.
    pub burst: u32,
}

/// The DNS stub's two rate-limit budgets: names the profile allows, and every other name (or
/// a name carrying a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsClass {
    Allowed,
    #[default]
    NotAllowed,
}

/// The outcome of a policy decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
    /// Allowed because the profile is in audit mode; enforce mode would have denied it.
    WouldDeny,
}

/// How a connection's destination name was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    /// The host in an HTTP `CONNECT` request.
    Connect,
    /// The TLS ClientHello's server name.
    Sni,
    /// The HTTP `Host` header (or absolute-form request target).
    Host,
    /// The name the stub resolver answered with this address.
    Dns,
    /// No name is known; only the address.
    None,
}

/// Transport a DNS query arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsTransport {
    Udp,
    Tcp,
}

/// Transport protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

/// How the traffic reached the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The step used the proxy explicitly (`HTTP(S)_PROXY`).
    Proxy,
    /// The step connected directly and the sandbox captured the connection.
    Transparent,
}

/// The snake_case wire names, for text output that must match the JSON.
macro_rules! wire_names {
    ($($ty:ident { $($variant:ident => $name:literal),+ $(,)? })+) => {$(
        impl $ty {
            /// The name this value has in the JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }
    )+};
}

wire_names! {
    Decision { Allow => "allow", Deny => "deny", WouldDeny => "would_deny" }
    NameSource { Connect => "connect", Sni => "sni", Host => "host", Dns => "dns", None => "none" }
    DnsTransport { Udp => "udp", Tcp => "tcp" }
    Protocol { Tcp => "tcp", Udp => "udp", Icmp => "icmp" }
    Via { Proxy => "proxy", Transparent => "transparent" }
}

/// Reduces a URL to `scheme://host[:port]/path`: drops userinfo, query string and fragment.
///
/// Query strings and userinfo routinely carry tokens (`?access_token=`, `https://user:pat@`), so
/// nothing after `?` or `#` and nothing before `@` in the authority survives. A target without a
/// scheme (origin-form `/path?q`) keeps only its path. An empty path becomes `/`.
pub fn sanitize_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        // A `://` inside the query or path is not a scheme separator.
        Some((scheme, rest)) if !scheme.is_empty() && !scheme.contains(['/', '?', '#', '@']) => {
            (Some(scheme), rest)
        }
        _ => (None, url),
    };
    let Some(scheme) = scheme else {
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        return if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        };
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    // Userinfo may itself contain `@` only percent-encoded, but split at the last one regardless:
    // whatever precedes it is never a host.
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let path = after.split(['?', '#']).next().unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    format!("{}://{host}{path}", scheme.to_ascii_lowercase())
}

/// Formats `time` as RFC 3339 in UTC with milliseconds: `2026-11-26T03:37:40.123Z`.
///
/// Times before 1970 (a clock set wildly wrong) are clamped to the epoch.
pub fn format_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
///
/// Howard Hinnant's `civil_from_days`, restricted to non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> String {
        format_timestamp(UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis))
    }

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_709_164_799, 999), "2024-02-28T23:59:59.999Z");
        assert_eq!(at(1_709_251_200, 0), "2024-03-01T00:00:00.000Z");
        assert_eq!(at(1_798_243_060, 123), "2026-12-25T23:57:40.123Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn timestamps_match_a_day_by_day_walk() {
        // Walk every day from 1970 to 2200 and check the formatter against a naive calendar.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..84_000u64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn sanitize_url_keeps_scheme_host_port_path() {
        let cases = [
            (
                "https://user:pw@h.example/p?q=secret#f",
                "https://h.example/p",
            ),
            ("http://h.example:8080/a/b", "http://h.example:8080/a/b"),
            ("http://h.example", "http://h.example/"),
            ("http://h.example?token=x", "http://h.example/"),
            ("http://h.example#frag", "http://h.example/"),
            ("HTTP://tok@h.example:80/x?y", "http://h.example:80/x"),
            ("http://a@b@h.example/", "http://h.example/"),
            (
                "http://[2001:db8::1]:8080/p?x",
                "http://[2001:db8::1]:8080/p",
            ),
            ("/only/path?token=1", "/only/path"),
            ("/p?next=http://x@y/", "/p"),
            ("?x", "/"),
            ("", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_url(input), want, "{input}");
        }
    }

    #[test]
    fn as_str_matches_serde() {
        fn check<T: Serialize>(value: T, name: &str) {
            assert_eq!(serde_json::to_value(value).unwrap(), name);
        }
        for v in [NetworkMode::None, NetworkMode::Enforce, NetworkMode::Audit] {
            check(v, v.as_str());
        }
        for v in [Decision::Allow, Decision::Deny, Decision::WouldDeny] {
            check(v, v.as_str());
        }
        for v in [
            NameSource::Connect,
            NameSource::Sni,
            NameSource::Host,
            NameSource::Dns,
            NameSource::None,
        ] {
            check(v, v.as_str());
        }
        for v in [DnsTransport::Udp, DnsTransport::Tcp] {
            check(v, v.as_str());
        }
        for v in [Protocol::Tcp, Protocol::Udp, Protocol::Icmp] {
            check(v, v.as_str());
        }
        for v in [Via::Proxy, Via::Transparent] {
            check(v, v.as_str());
        }
    }

    #[test]
    fn record_flattens_event_fields() {
        let r = Record::at(
            "run-1",
            UNIX_EPOCH,
            Event::Close(Close {
                conn: 7,
                bytes_up: 1,
                bytes_down: 2,
                duration_ms: 3,
            }),
        );
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"schema":"stepjail.audit","v":1,"ts":"1970-01-01T00:00:00.000Z","step":"run-1","event":"close","conn":7,"bytes_up":1,"bytes_down":2,"duration_ms":3}"#
        );
    }
}
