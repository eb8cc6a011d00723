//! The audit log through the library API: the wire format and its JSON Schema, the writer's
//! one-line-per-event guarantee under concurrency and crashes, and the exact text of
//! `summarize` and `suggest` on a fixed pair of runs.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use stepjail::audit::{
    AuditError, AuditLog, Close, Connect, Decision, Dns, DnsClass, DnsLimited, DnsTransport, Event,
    FileCommand, Http, NameSource, Protocol, Record, SecretLeak, SecretReflected, StepEnd,
    StepStart, Via, read_log, sanitize_url, suggest, summarize,
};
// The audit log's mode is the one network mode (it was `audit::NetMode`).
use stepjail::policy::model::NetworkMode as NetMode;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A record at `secs` after the epoch, so the fixtures' text is fixed.
fn rec(step: &str, secs: u64, event: Event) -> Record {
    Record::at(step, UNIX_EPOCH + Duration::from_secs(secs), event)
}

fn connect(conn: u64, name: Option<&str>, addr: Option<&str>, port: u16) -> Connect {
    Connect {
        conn,
        dest_name: name.map(str::to_owned),
        name_source: if name.is_some() {
            NameSource::Sni
        } else {
            NameSource::None
        },
        dest_ip: addr.map(ip),
        dest_port: port,
        protocol: Protocol::Tcp,
        via: Via::Transparent,
        decision: Decision::Allow,
        rule: None,
        reason: None,
    }
}

fn dns(name: &str, qtype: &str, decision: Decision, answers: &[&str], rcode: &str) -> Dns {
    Dns {
        name: name.to_owned(),
        qtype: qtype.to_owned(),
        transport: DnsTransport::Udp,
        decision,
        answers: answers.iter().map(|a| ip(a)).collect(),
        rcode: rcode.to_owned(),
        rule: None,
        reason: None,
    }
}

fn close(conn: u64, up: u64, down: u64) -> Event {
    Event::Close(Close {
        conn,
        bytes_up: up,
        bytes_down: down,
        duration_ms: 10,
    })
}

/// One event of every kind, with optional fields both set and unset.
fn every_event() -> Vec<Event> {
    vec![
        Event::StepStart(StepStart {
            profile: "ci".into(),
            mode: NetMode::Audit,
            command: "npm".into(),
            workspace: "/home/runner/work/app".into(),
            ci_job: None,
            ci_step: None,
        }),
        Event::StepEnd(StepEnd {
            profile: "ci".into(),
            exit_code: -1,
            duration_ms: 5300,
            timed_out: true,
            cancel_signal: Some(2),
            init_signal: Some(15),
            limit: Some("memory".into()),
        }),
        Event::Dns(Dns {
            rule: Some("registry.npmjs.org:443".into()),
            transport: DnsTransport::Tcp,
            ..dns(
                "registry.npmjs.org",
                "AAAA",
                Decision::Allow,
                &["2001:db8::10", "192.0.2.10"],
                "NOERROR",
            )
        }),
        Event::Dns(Dns {
            reason: Some("not in allowlist".into()),
            ..dns("telemetry.example", "TXT", Decision::Deny, &[], "NXDOMAIN")
        }),
        Event::Connect(Connect {
            name_source: NameSource::Connect,
            via: Via::Proxy,
            decision: Decision::WouldDeny,
            rule: Some("*.github.com:443".into()),
            reason: Some("port not allowed".into()),
            ..connect(u64::MAX, Some("github.com"), Some("198.51.100.5"), 443)
        }),
        Event::Connect(Connect {
            protocol: Protocol::Udp,
            decision: Decision::Deny,
            ..connect(0, None, None, 0)
        }),
        Event::Http(Http {
            conn: 3,
            method: "GET".into(),
            url: sanitize_url("http://github.com/x?token=1"),
            decision: Decision::Deny,
            status: Some(403),
        }),
        Event::Http(Http {
            conn: 3,
            method: "CONNECT".into(),
            url: "https://github.com/".into(),
            decision: Decision::Allow,
            status: None,
        }),
        close(3, u64::MAX, 0),
        Event::SecretLeak(SecretLeak {
            secret_name: "NPM_TOKEN".into(),
            dest_name: "evil.example".into(),
            via: Via::Transparent,
            reason: "placeholder sent to a host the secret is not bound to".into(),
        }),
        Event::SecretReflected(SecretReflected {
            conn: 7,
            secret_name: "CODECOV_TOKEN".into(),
            dest_name: "codecov.io".into(),
            part: "body".into(),
            reason: "the response body carried the value; the step got the placeholder".into(),
        }),
        Event::FileCommand(FileCommand {
            file: "GITHUB_ENV".into(),
            name: "LD_PRELOAD".into(),
            line: 2,
            reason: "changes how later programs load code".into(),
        }),
        Event::DnsLimited(DnsLimited {
            class: DnsClass::NotAllowed,
            refused: 25_000,
            duration_ms: 1000,
            limit: 1000,
            burst: 2000,
        }),
    ]
}

#[test]
fn every_event_round_trips() {
    for event in every_event() {
        let record = rec("run-1", 1_700_000_000, event);
        let json = serde_json::to_string(&record).unwrap();
        assert!(
            json.starts_with(
                r#"{"schema":"stepjail.audit","v":1,"ts":"2023-11-14T22:13:20.000Z","step":"run-1","event":""#
            ),
            "{json}"
        );
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record, "{json}");
    }
}

#[test]
fn enums_serialize_snake_case() {
    let json = serde_json::to_value(rec("s", 0, every_event().remove(4))).unwrap();
    assert_eq!(json["event"], "connect");
    assert_eq!(json["decision"], "would_deny");
    assert_eq!(json["name_source"], "connect");
    assert_eq!(json["via"], "proxy");
    assert_eq!(json["protocol"], "tcp");
    assert_eq!(json["conn"], u64::MAX);
    let json = serde_json::to_value(rec("s", 0, every_event().remove(0))).unwrap();
    assert_eq!(json["event"], "step_start");
    assert_eq!(json["mode"], "audit");
}

fn schema() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/audit-v1.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema())
        .unwrap()
}

#[test]
fn every_event_validates_against_the_json_schema() {
    let validator = validator();
    let mut kinds = BTreeSet::new();
    for event in every_event() {
        let value = serde_json::to_value(rec("run-1", 1_700_000_000, event)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{value}\n{errors:#?}");
        kinds.insert(value["event"].as_str().unwrap().to_owned());
    }
    // The fixtures cover every kind the schema knows, and nothing else.
    let schema = schema();
    let schema_kinds: BTreeSet<String> = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["$ref"]
                .as_str()
                .unwrap()
                .trim_start_matches("#/$defs/")
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, schema_kinds);
}

#[test]
fn schema_rejects_what_the_log_must_never_hold() {
    let validator = validator();
    let base = serde_json::to_value(rec("s", 0, every_event().remove(6))).unwrap();

    let mut extra = base.clone();
    extra["headers"] = serde_json::json!({"authorization": "Bearer x"});
    assert!(!validator.is_valid(&extra), "unknown field accepted");

    let mut query = base.clone();
    query["url"] = "http://github.com/x?token=1".into();
    assert!(!validator.is_valid(&query), "query string accepted");

    let mut version = base.clone();
    version["v"] = 2.into();
    assert!(!validator.is_valid(&version), "version 2 accepted");

    let mut ts = base;
    ts["ts"] = "2023-11-14 22:13:20".into();
    assert!(!validator.is_valid(&ts), "non-RFC 3339 timestamp accepted");
}

#[test]
fn sanitize_url_strips_query_userinfo_and_fragment() {
    assert_eq!(
        sanitize_url("https://user:pw@h.example/p?q=secret#f"),
        "https://h.example/p"
    );
    assert_eq!(
        sanitize_url("http://h.example:8080/a?b"),
        "http://h.example:8080/a"
    );
    assert_eq!(sanitize_url("http://tok@h.example"), "http://h.example/");
}

#[test]
fn writer_appends_exactly_one_line_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, "run-1").unwrap();
    let events = every_event();
    for (i, event) in events.iter().enumerate() {
        log.write(event.clone()).unwrap();
        // Right after each write, without any flush, a reader sees only complete lines.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'), "{text}");
        assert_eq!(text.matches('\n').count(), i + 1);
        let last: Record = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(&last.event, event);
        assert_eq!(last.step, "run-1");
    }
    let read = read_log(&path).unwrap();
    assert_eq!(read.truncated_lines, 0);
    let got: Vec<Event> = read.records.into_iter().map(|r| r.event).collect();
    assert_eq!(got, events);
}

#[test]
fn memory_log_sees_what_was_written() {
    let (log, mem) = AuditLog::memory("run-7");
    for event in every_event() {
        log.write(event).unwrap();
    }
    let records = mem.records();
    assert_eq!(records.len(), every_event().len());
    assert!(records.iter().all(|r| r.step == "run-7" && r.v == 1));
    let text = String::from_utf8(mem.bytes()).unwrap();
    assert_eq!(text.lines().count(), records.len());
}

#[test]
fn concurrent_writers_never_interleave_lines() {
    const THREADS: u64 = 8;
    const EVENTS: u64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let shared = AuditLog::open(&path, "shared").unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);

    std::thread::scope(|s| {
        let mut writers = Vec::new();
        for t in 0..THREADS {
            // Half share one descriptor through clones; half open their own, as separate
            // processes appending to one file would.
            let log = if t % 2 == 0 {
                shared.clone()
            } else {
                AuditLog::open(&path, &format!("own-{t}")).unwrap()
            };
            writers.push(s.spawn(move || {
                for i in 0..EVENTS {
                    let mut c = connect(t * EVENTS + i, Some("a.example"), None, 443);
                    // Lines of varying length, some longer than a pipe's atomic 4 KiB.
                    c.reason = Some("x".repeat((i as usize * 37) % 6000));
                    log.write(Event::Connect(c)).unwrap();
                }
            }));
        }
        // A reader running alongside sees complete lines, or at worst a partial last one.
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                read_log(&path).unwrap();
            }
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches('\n').count(), (THREADS * EVENTS) as usize);
    let read = read_log(&path).unwrap();
    assert_eq!(read.truncated_lines, 0);
    let conns: BTreeSet<u64> = read
        .records
        .iter()
        .map(|r| match &r.event {
            Event::Connect(c) => c.conn,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(conns, (0..THREADS * EVENTS).collect());
}

fn write_lines(path: &Path, records: &[Record]) {
    let mut f = std::fs::File::create(path).unwrap();
    for r in records {
        writeln!(f, "{}", serde_json::to_string(r).unwrap()).unwrap();
    }
}

#[test]
fn truncated_last_line_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let records: Vec<Record> = every_event()
        .into_iter()
        .take(3)
        .map(|e| rec("r", 0, e))
        .collect();
    write_lines(&path, &records);
    // What a crash in the middle of the fourth write leaves.
    let fourth = serde_json::to_string(&rec("r", 0, close(1, 2, 3))).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&fourth.as_bytes()[..fourth.len() / 2]).unwrap();

    let read = read_log(&path).unwrap();
    assert_eq!(read.records, records);
    assert_eq!(read.truncated_lines, 1);
}

#[test]
fn malformed_middle_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let good = serde_json::to_string(&rec("r", 0, close(1, 2, 3))).unwrap();
    // A partial line followed by a whole one: the crash-then-restart case, not a clean tail.
    let text = format!("{good}\n{good}\n{}{good}\n{good}\n", &good[..20]);
    std::fs::write(&path, text).unwrap();

    let err = read_log(&path).unwrap_err();
    match &err {
        AuditError::Malformed { line, .. } => assert_eq!(*line, 3),
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("{}:3: malformed audit record: ", path.display())),
        "{err}"
    );
}

#[test]
fn wrong_schema_or_version_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let good = serde_json::to_string(&rec("r", 0, close(1, 2, 3))).unwrap();
    let v2 = good
        .replace(r#""v":1"#, r#""v":2"#)
        .replace("close", "teleport");
    std::fs::write(&path, format!("{good}\n{v2}\n")).unwrap();
    let err = read_log(&path).unwrap_err();
    assert!(
        matches!(err, AuditError::WrongSchema { line: 2, v: 2, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: audit record has schema `stepjail.audit` version 2; this stepjail reads `stepjail.audit` version 1",
            path.display()
        )
    );

    let other = good.replace("stepjail.audit", "otherapp.log");
    std::fs::write(&path, format!("{other}\n")).unwrap();
    let err = read_log(&path).unwrap_err();
    assert!(
        matches!(&err, AuditError::WrongSchema { line: 1, schema, .. } if schema == "otherapp.log"),
        "{err:?}"
    );
}

/// Two runs of a step: one in audit mode, one enforcing.
fn two_runs() -> Vec<Record> {
    let npm = Some("registry.npmjs.org");
    vec![
        rec(
            "run-1",
            0,
            Event::StepStart(StepStart {
                profile: "ci".into(),
                mode: NetMode::Audit,
                command: "npm".into(),
                workspace: "/w".into(),
                ci_job: None,
                ci_step: None,
            }),
        ),
        rec(
            "run-1",
            1,
            Event::Dns(dns(
                "registry.npmjs.org",
                "A",
                Decision::Allow,
                &["192.0.2.10"],
                "NOERROR",
            )),
        ),
        rec(
            "run-1",
            1,
            Event::Connect(Connect {
                rule: Some("registry.npmjs.org:443".into()),
                ..connect(1, npm, Some("192.0.2.10"), 443)
            }),
        ),
        rec(
            "run-1",
            2,
            Event::Dns(dns(
                "GitHub.com.",
                "A",
                Decision::WouldDeny,
                &["198.51.100.5"],
                "NOERROR",
            )),
        ),
        rec(
            "run-1",
            2,
            Event::Connect(Connect {
                name_source: NameSource::Connect,
                via: Via::Proxy,
                decision: Decision::WouldDeny,
                ..connect(2, Some("github.com"), None, 443)
            }),
        ),
        rec(
            "run-1",
            3,
            Event::Connect(Connect {
                name_source: NameSource::Host,
                decision: Decision::WouldDeny,
                ..connect(3, Some("github.com"), Some("198.51.100.5"), 80)
            }),
        ),
        rec(
            "run-1",
            3,
            Event::Http(Http {
                conn: 3,
                method: "GET".into(),
                url: "http://github.com/x".into(),
                decision: Decision::WouldDeny,
                status: Some(301),
            }),
        ),
        rec(
            "run-1",
            4,
            Event::Connect(Connect {
                decision: Decision::WouldDeny,
                ..connect(4, None, Some("203.0.113.7"), 443)
            }),
        ),
        rec("run-1", 5, close(1, 1200, 1_400_000)),
        rec("run-1", 5, close(2, 500, 2048)),
        rec("run-1", 5, close(3, 80, 300)),
        rec("run-1", 5, close(4, 10, 0)),
        rec(
            "run-1",
            6,
            Event::StepEnd(StepEnd {
                profile: "ci".into(),
                exit_code: 0,
                duration_ms: 5300,
                timed_out: false,
                cancel_signal: None,
                init_signal: None,
                limit: None,
            }),
        ),
        rec(
            "run-2",
            10,
            Event::StepStart(StepStart {
                profile: "ci".into(),
                mode: NetMode::Enforce,
                command: "npm".into(),
                workspace: "/w".into(),
                ci_job: None,
                ci_step: None,
            }),
        ),
        rec(
            "run-2",
            11,
            Event::Dns(dns(
                "registry.npmjs.org",
                "AAAA",
                Decision::Allow,
                &["2001:db8::10"],
                "NOERROR",
            )),
        ),
        // Same conn id as in run-1: ids are per step, so bytes must not be mixed up.
        rec(
            "run-2",
            11,
            Event::Connect(connect(1, npm, Some("2001:db8::10"), 443)),
        ),
        rec("run-2", 12, close(1, 100, 200)),
        rec(
            "run-2",
            12,
            Event::Dns(Dns {
                reason: Some("not in allowlist".into()),
                ..dns("telemetry.example", "A", Decision::Deny, &[], "NXDOMAIN")
            }),
        ),
        rec(
            "run-2",
            13,
            Event::Connect(Connect {
                protocol: Protocol::Udp,
                decision: Decision::Deny,
                ..connect(2, Some("dns.example"), Some("198.51.100.53"), 853)
            }),
        ),
        rec(
            "run-2",
            14,
            Event::Connect(Connect {
                decision: Decision::Deny,
                ..connect(3, None, Some("2001:db8::7"), 22)
            }),
        ),
        rec(
            "run-2",
            14,
            Event::Connect(Connect {
                decision: Decision::Deny,
                ..connect(4, Some("evil.example\n    - everything"), None, 443)
            }),
        ),
        rec(
            "run-2",
            15,
            Event::SecretLeak(SecretLeak {
                secret_name: "NPM_TOKEN".into(),
                dest_name: "evil.example".into(),
                via: Via::Transparent,
                reason: "placeholder sent to an unbound host".into(),
            }),
        ),
        rec(
            "run-2",
            16,
            Event::StepEnd(StepEnd {
                profile: "ci".into(),
                exit_code: 1,
                duration_ms: 800,
                timed_out: false,
                cancel_signal: None,
                init_signal: None,
                limit: None,
            }),
        ),
    ]
}

#[test]
fn summarize_fixed_runs() {
    let got = summarize(&two_runs());
    print!("{got}");
    let want = "\
2 steps, 8 connections (2 allowed, 3 denied, 3 would-deny), 4 DNS queries

steps
  step   profile  mode     exit  duration
  run-1  ci       audit       0     5.3 s
  run-2  ci       enforce     1    800 ms

connections
  destination                         allowed  denied  would-deny  bytes up  bytes down
  registry.npmjs.org:443                    2       0           0   1.3 KiB     1.3 MiB
  203.0.113.7:443                           0       0           1      10 B         0 B
  [2001:db8::7]:22                          0       1           0       0 B         0 B
  dns.example:853/udp                       0       1           0       0 B         0 B
  evil.example\\n    - everything:443        0       1           0       0 B         0 B
  github.com:443                            0       0           1     500 B     2.0 KiB
  github.com:80                             0       0           1      80 B       300 B

dns
  name                queries  allowed  denied  would-deny  types
  registry.npmjs.org        2        2       0           0  A,AAAA
  github.com                1        0       0           1  A
  telemetry.example         1        0       1           0  A

secret leaks
  NPM_TOKEN -> evil.example (transparent): placeholder sent to an unbound host
";
    assert_eq!(got, want);
}

#[test]
fn summarize_nothing() {
    assert_eq!(summarize(&[]), "no audit records\n");
}

#[test]
fn suggest_fixed_runs() {
    let got = suggest(&two_runs(), "npm-ci");
    print!("{got}");
    let want = "\
# suggested by `stepjail audit suggest` from 2 runs (8 connections, 2 names)
# the steps ran under profile ci: extend its file instead to keep its other settings
name: npm-ci
description: network allowlist suggested from audit logs
extends: default
network:
  mode: enforce
  allow:
    - { host: github.com, ports: [80, 443] }   # 2 connections, 2 would-deny
    - registry.npmjs.org:443                   # 2 connections
    # 203.0.113.7:443 seen by address only (1 connection); add an explicit cidr rule if this is intended
    # [2001:db8::7]:22 seen by address only (1 connection); add an explicit cidr rule if this is intended
    # udp to dns.example:853 seen 1 time; the allowlist above covers TCP only
    # looked up but never connected to (port unknown; run in audit mode to learn it):
    #   telemetry.example
    # 1 connection to names that are not valid host names left out
";
    assert_eq!(got, want);
}

#[test]
fn suggest_with_nothing_seen_denies_everything() {
    let got = suggest(&[], "suggested");
    assert_eq!(
        got,
        "\
# suggested by `stepjail audit suggest` from 0 runs (0 connections, 0 names)
name: suggested
description: network allowlist suggested from audit logs
extends: default
network:
  mode: enforce
  allow: []
"
    );
}

/// The profile shape `suggest` promises (the `network.allow` entry forms the profile parser takes).
#[derive(Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct SuggestedProfile {
    name: String,
    description: String,
    extends: String,
    network: SuggestedNetwork,
}

#[derive(Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct SuggestedNetwork {
    mode: String,
    allow: Vec<AllowEntry>,
}

#[derive(Debug, serde::Deserialize, PartialEq)]
#[serde(untagged)]
enum AllowEntry {
    HostPort(String),
    Ports { host: String, ports: Vec<u16> },
}

#[test]
fn suggest_output_is_yaml_of_the_profile_shape() {
    let profile: SuggestedProfile =
        serde_saphyr::from_str(&suggest(&two_runs(), "needs \"quoting\": yes")).unwrap();
    assert_eq!(
        profile,
        SuggestedProfile {
            name: "needs \"quoting\": yes".into(),
            description: "network allowlist suggested from audit logs".into(),
            extends: "default".into(),
            network: SuggestedNetwork {
                mode: "enforce".into(),
                allow: vec![
                    AllowEntry::Ports {
                        host: "github.com".into(),
                        ports: vec![80, 443],
                    },
                    AllowEntry::HostPort("registry.npmjs.org:443".into()),
                ],
            },
        }
    );
    let empty: SuggestedProfile = serde_saphyr::from_str(&suggest(&[], "x")).unwrap();
    assert_eq!(empty.network.allow, vec![]);
}

fn start(step: &str, profile: &str, mode: NetMode) -> Record {
    rec(
        step,
        0,
        Event::StepStart(StepStart {
            profile: profile.into(),
            mode,
            command: "npm".into(),
            workspace: "/w".into(),
            ci_job: None,
            ci_step: None,
        }),
    )
}

/// An audit run under the built-in `npm` profile: what npm already allows is left out, the
/// private mirror's address gets a commented cidr rule, and the hint does not ask for the audit
/// mode the log came from.
#[test]
fn suggest_extends_the_profile_run_under_and_offers_cidr_rules() {
    let refused = |conn, dest_ip: Option<&str>| Connect {
        decision: Decision::Deny,
        rule: None,
        reason: Some(
            "resolved to 10.1.2.3 (private) which is not allowed unless a cidr rule names it"
                .into(),
        ),
        ..connect(conn, Some("mirror.corp.example"), dest_ip, 80)
    };
    let records = vec![
        start("run-1", "npm", NetMode::Audit),
        rec(
            "run-1",
            1,
            Event::Connect(Connect {
                rule: Some("registry.npmjs.org:443".into()),
                ..connect(1, Some("registry.npmjs.org"), Some("192.0.2.10"), 443)
            }),
        ),
        rec(
            "run-1",
            2,
            Event::Connect(Connect {
                decision: Decision::WouldDeny,
                ..connect(2, Some("github.com"), Some("198.51.100.5"), 443)
            }),
        ),
        // The proxy records the refused address; older logs only name it in the reason.
        rec("run-1", 3, Event::Connect(refused(3, Some("10.1.2.3")))),
        rec("run-1", 4, Event::Connect(refused(4, None))),
        rec(
            "run-1",
            5,
            Event::Dns(dns(
                "telemetry.example",
                "A",
                Decision::WouldDeny,
                &["198.51.100.9"],
                "NOERROR",
            )),
        ),
    ];
    let got = suggest(&records, "npm-more");
    let want = "\
# suggested by `stepjail audit suggest` from 1 run (4 connections, 2 names)
name: npm-more
description: network allowlist suggested from audit logs
extends: npm
network:
  mode: enforce
  allow:
    - mirror.corp.example:80   # 2 connections, 2 denied
    - github.com:443           # 1 connection, 1 would-deny
    # already allowed by npm: registry.npmjs.org:443
    # mirror.corp.example:80 resolved to 10.1.2.3 (private), refused (2 connections); if that address is intended:
    # - { cidr: \"10.1.2.3/32\", ports: [80] }
    # looked up in audit mode but never connected to (nothing to allow unless a later run connects):
    #   telemetry.example
";
    assert_eq!(got, want);
    // Once the cidr line is uncommented, the suggestion is a profile the loader accepts, and it
    // lets the mirror's address through on top of everything npm allows.
    let enabled = got.replace("    # - { cidr", "    - { cidr");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yml");
    std::fs::write(&file, &enabled).unwrap();
    let p = stepjail::policy::load_file(&file).unwrap();
    let net = p.network();
    assert!(
        net.check_resolved("mirror.corp.example:80", ip("10.1.2.3"))
            .is_ok()
    );
    assert!(net.decide_name("registry.npmjs.org", 443).is_allowed());
}

/// A `dns_limited` record says whose budget refused (`class`); one written before the field
/// existed (it always quoted the other names' budget) reads as `not_allowed`.
#[test]
fn dns_limited_records_carry_their_class() {
    let allowed = rec(
        "s",
        1,
        Event::DnsLimited(DnsLimited {
            class: DnsClass::Allowed,
            refused: 3,
            duration_ms: 1000,
            limit: 100_000,
            burst: 100_000,
        }),
    );
    let json = serde_json::to_string(&allowed).unwrap();
    assert!(json.contains(r#""class":"allowed""#), "{json}");
    let old = json.replace(r#""class":"allowed","#, "");
    assert_ne!(old, json);
    let back: Record = serde_json::from_str(&old).unwrap();
    match back.event {
        Event::DnsLimited(l) => assert_eq!(l.class, DnsClass::NotAllowed),
        e => panic!("{e:?}"),
    }
}

/// Queries refused over the DNS rate limit are summed into one line, not listed.
#[test]
fn summarize_sums_dns_limited_records() {
    let limited = |refused| {
        Event::DnsLimited(DnsLimited {
            class: DnsClass::NotAllowed,
            refused,
            duration_ms: 1000,
            limit: 1000,
            burst: 2000,
        })
    };
    let text = summarize(&[rec("s", 1, limited(24_000)), rec("s", 2, limited(1_000))]);
    assert!(
        text.contains(
            "\n25000 DNS queries over the step's rate limit, refused and not listed one by one\n"
        ),
        "{text}"
    );
    let text = summarize(&[rec("s", 1, limited(1))]);
    assert!(
        text.contains("\n1 DNS query over the step's rate limit"),
        "{text}"
    );
}
