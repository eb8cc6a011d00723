//! What a GitHub user sees of a step: workflow-command annotations for denials and a compact
//! section in the step's summary (`$GITHUB_STEP_SUMMARY`).
//!
//! Every host name here comes from the step's own traffic, so it is hostile input: names are
//! reduced to host-name characters before they reach Markdown or a workflow command, and a
//! step cannot grow the summary past GitHub's 1 MiB limit through us.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::audit::{Aggregate, Record};
use crate::policy::model::NetworkMode;

/// GitHub's limit on one step's summary.
pub const SUMMARY_LIMIT: u64 = 1024 * 1024;
/// The most stepjail adds to one step's summary.
pub const SECTION_LIMIT: usize = 64 * 1024;
/// Rows per table before "and N more".
const MAX_ROWS: usize = 40;
/// Annotations per step: GitHub shows 10 errors per step anyway.
pub const MAX_ANNOTATIONS: usize = 10;

/// One destination (name or address, port).
type Dest = (String, u16);

/// What one step did on the network, from its audit records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// Allowed destinations: connections, bytes sent, bytes received.
    pub reached: BTreeMap<Dest, (u64, u64, u64)>,
    /// Denied (or would-be denied) destinations: attempts and the first reason.
    pub denied: BTreeMap<Dest, (u64, String)>,
    /// Secret names seen on their way somewhere they may not go.
    pub leaks: BTreeMap<String, u64>,
    /// Brokered secrets a bound host sent back, replaced by their placeholders: (secret, host).
    pub reflected: BTreeMap<(String, String), u64>,
}

/// Reduces a name from the step's traffic to characters that are safe in Markdown and in
/// workflow commands: letters, digits, `.-_:[]` (IPv6 brackets); anything else becomes `?`.
pub fn safe_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(253)
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_:[]".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '?'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('?');
    }
    out
}

/// A variable name as written (case kept), reduced to `A-Za-z0-9_`; anything else becomes `?`.
fn safe_var(s: &str) -> String {
    s.chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn dest_of(name: Option<&str>, ip: Option<IpAddr>, port: u16) -> Dest {
    let host = match (name, ip) {
        (Some(n), _) => safe_name(n),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => "?".to_string(),
    };
    (host, port)
}

impl StepReport {
    /// Builds the report from the records of one run (`run_id`).
    pub fn from_records(records: &[Record], run_id: &str) -> StepReport {
        StepReport::from_aggregate(&Aggregate::new(records.iter().filter(|x| x.step == run_id)))
    }

    /// Builds the report from the aggregate of one run's records.
    pub fn from_aggregate(agg: &Aggregate<'_>) -> StepReport {
        let mut r = StepReport::default();
        // Rows merge destinations the log spells apart (`A.example`, `a.example`): each keeps
        // the reason of its first refusal in the log.
        let mut first: BTreeMap<Dest, usize> = BTreeMap::new();
        let mut refused = |denied: &mut BTreeMap<Dest, (u64, String)>,
                           d: Dest,
                           n: u64,
                           seq: usize,
                           why: String| {
            let e = denied.entry(d.clone()).or_insert_with(|| (0, why.clone()));
            e.0 += n;
            let at = first.entry(d).or_insert(seq);
            if seq < *at {
                *at = seq;
                e.1 = why;
            }
        };
        for (key, stats) in &agg.destinations {
            let d = dest_of(key.name, key.ip, key.port);
            // Allowed, or let through in audit mode: its bytes count as reached.
            if stats.counts.allowed > 0 || stats.passed.is_some() {
                let e = r.reached.entry(d.clone()).or_default();
                e.0 += stats.counts.allowed;
                if let Some(b) = stats.passed {
                    e.1 += b.up;
                    e.2 += b.down;
                }
            }
            if let Some((seq, why)) = stats.first_refusal {
                let why = why.unwrap_or_default().to_string();
                refused(&mut r.denied, d, stats.counts.refused(), seq, why);
            }
        }
        for ((_, method, url), stats) in &agg.requests {
            let Some(seq) = stats.first_refusal else {
                continue;
            };
            let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
            let authority = rest.split('/').next().unwrap_or("?");
            let default_port = if scheme == "https" { 443 } else { 80 };
            let (name, port) = match authority.rsplit_once(':') {
                Some((n, p)) if !p.contains(']') => (n, p.parse().unwrap_or(default_port)),
                _ => (authority, default_port),
            };
            let path = url.splitn(4, '/').nth(3).unwrap_or("");
            let why = format!(
                "{} /{} not allowed",
                safe_name(method).to_uppercase(),
                safe_name(path)
            );
            let d = (safe_name(name), port);
            refused(&mut r.denied, d, stats.counts.refused(), seq, why);
        }
        let mut dns_denied: BTreeMap<String, (u64, String)> = BTreeMap::new();
        let mut dns_first: BTreeMap<String, usize> = BTreeMap::new();
        for ((_, name), stats) in &agg.names {
            let Some((seq, why)) = stats.first_refusal else {
                continue;
            };
            let name = safe_name(name.trim_end_matches('.'));
            let why = why.unwrap_or_default();
            let e = dns_denied
                .entry(name.clone())
                .or_insert_with(|| (0, why.to_string()));
            e.0 += stats.counts.refused();
            let at = dns_first.entry(name).or_insert(seq);
            if seq < *at {
                *at = seq;
                e.1 = why.to_string();
            }
        }
        for (_, l) in &agg.leaks {
            *r.leaks.entry(safe_name(&l.secret_name)).or_default() += 1;
        }
        for (_, x) in &agg.reflected {
            let key = (safe_var(&x.secret_name), safe_name(&x.dest_name));
            *r.reflected.entry(key).or_default() += 1;
        }
        // A name refused by DNS is an attempt of its own, unless a connection to it was denied
        // too (then that row says it all).
        for (name, (n, why)) in dns_denied {
            if !r.denied.keys().any(|(h, _)| *h == name) {
                let why = if why.is_empty() {
                    "name not allowed (DNS)".to_string()
                } else {
                    format!("{why} (DNS)")
                };
                r.denied.insert((name, 53), (n, why));
            }
        }
        r
    }
}

/// [`safe_name`] for a path a step wrote: `/` kept as well.
pub fn safe_path(s: &str) -> String {
    s.chars()
        .take(1024)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "./-_+~@=,".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Free text that may hold the step's own bytes (an error quoting a variable name), made
/// inert in Markdown: no HTML, code, link, emphasis or table syntax (intraword `_` is kept:
/// GitHub does not emphasise it), no control characters, at most 300 characters.
pub fn safe_text(s: &str) -> String {
    s.chars()
        .take(300)
        .map(|c| {
            if c.is_control() || "|<>`[]*#!\\".contains(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Escapes workflow-command data (`%`, CR, LF).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow-command property value (data escapes plus `:` and `,`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One workflow command, `::error title=...::message`.
pub fn command(kind: &str, title: &str, message: &str) -> String {
    format!(
        "::{kind} title={}::{}",
        escape_property(title),
        escape_data(message)
    )
}

/// Says a step's error the one way stepjail says errors: its warnings, then (`annotate`: under
/// GitHub Actions) an `::error` annotation on stdout, then `stepjail: ...` on stderr; returns its
/// exit code. `cli::main` says every subcommand's error with it; the runner drivers, which go on
/// after a failed step, say theirs with it too.
pub fn say_error(e: &crate::step::RunError, annotate: bool) -> i32 {
    for w in e.warnings() {
        say!("stepjail: warning: {w}");
    }
    if let Some(title) = e.annotation().filter(|_| annotate) {
        println!("{}", command("error", title, &e.to_string()));
    }
    say!("stepjail: {e}");
    e.exit_code()
}

/// One annotation per distinct denial (`::error`, or `::warning` in audit mode), at most
/// [`MAX_ANNOTATIONS`], then one saying how many more are in the summary.
pub fn annotations(
    report: &StepReport,
    step: &str,
    profile: &str,
    mode: Option<NetworkMode>,
) -> Vec<String> {
    let audit = mode == Some(NetworkMode::Audit);
    let (kind, verb) = if audit {
        ("warning", "would deny")
    } else {
        ("error", "denied")
    };
    let mut out: Vec<String> = report
        .denied
        .iter()
        .take(MAX_ANNOTATIONS)
        .map(|((host, port), (n, why))| {
            let why = if why.is_empty() { "no rule" } else { why };
            command(
                kind,
                &format!("stepjail {verb} egress"),
                &format!(
                    "step {step}: {verb} {host}:{port} ({why}; profile '{profile}'){}",
                    if *n > 1 {
                        format!(", {n} attempts")
                    } else {
                        String::new()
                    }
                ),
            )
        })
        .collect();
    if report.denied.len() > MAX_ANNOTATIONS {
        out.push(command(
            kind,
            &format!("stepjail {verb} egress"),
            &format!(
                "step {step}: {} more destinations {verb}; see the job summary",
                report.denied.len() - MAX_ANNOTATIONS
            ),
        ));
    }
    for (name, n) in &report.leaks {
        out.push(command(
            "error",
            "stepjail secret leak",
            &format!("step {step}: secret {name} was on its way to a host it is not for ({n}x); the request was refused"),
        ));
    }
    for ((name, host), n) in &report.reflected {
        out.push(command(
            "warning",
            "stepjail secret reflected",
            &format!("step {step}: {host} sent brokered secret {name} back ({n}x); the step got its placeholder instead"),
        ));
    }
    out
}

fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// How the step is named in the summary and annotations: `job/step`.
pub struct Header<'a> {
    pub step: &'a str,
    pub profile: &'a str,
    pub mode: Option<NetworkMode>,
    pub exit_code: i32,
    /// Entries stepjail removed from `$GITHUB_ENV` / `$GITHUB_PATH`.
    pub removed: &'a [String],
}

/// The step's summary section (Markdown), at most [`SECTION_LIMIT`] bytes.
pub fn summary(report: &StepReport, h: &Header<'_>) -> String {
    let mode = match h.mode {
        Some(NetworkMode::Enforce) => "enforce",
        Some(NetworkMode::Audit) => "audit",
        Some(NetworkMode::None) => "no network",
        None => "not started",
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#### stepjail · `{}` · profile `{}` · {mode} · exit {}\n",
        h.step
            .split('/')
            .map(safe_name)
            .collect::<Vec<_>>()
            .join("/"),
        safe_name(h.profile),
        h.exit_code
    );
    if report.reached.is_empty() {
        s.push_str("No hosts reached.\n\n");
    } else {
        let (n, up, down) = report
            .reached
            .values()
            .fold((0, 0, 0), |a, v| (a.0 + v.0, a.1 + v.1, a.2 + v.2));
        let _ = writeln!(
            s,
            "Reached {} hosts ({n} connections, {} sent, {} received):\n",
            report.reached.len(),
            bytes(up),
            bytes(down)
        );
        s.push_str("| host | port | connections | sent | received |\n|---|---|---|---|---|\n");
        for ((host, port), (n, up, down)) in report.reached.iter().take(MAX_ROWS) {
            let _ = writeln!(
                s,
                "| {host} | {port} | {n} | {} | {} |",
                bytes(*up),
                bytes(*down)
            );
        }
        if report.reached.len() > MAX_ROWS {
            let _ = writeln!(s, "\n…and {} more.", report.reached.len() - MAX_ROWS);
        }
        s.push('\n');
    }
    let audit = h.mode == Some(NetworkMode::Audit);
    if !report.denied.is_empty() {
        let _ = writeln!(
            s,
            "**{} ({}):**\n",
            if audit { "Would deny" } else { "Denied" },
            report.denied.len()
        );
        s.push_str("| host | port | attempts | reason |\n|---|---|---|---|\n");
        for ((host, port), (n, why)) in report.denied.iter().take(MAX_ROWS) {
            let why = if why.is_empty() {
                "no rule".to_string()
            } else {
                why.replace(['|', '<', '>', '`', '[', ']', '\n', '\r'], " ")
            };
            let _ = writeln!(s, "| {host} | {port} | {n} | {why} |");
        }
        if report.denied.len() > MAX_ROWS {
            let _ = writeln!(s, "\n…and {} more.", report.denied.len() - MAX_ROWS);
        }
        s.push('\n');
        if audit {
            s.push_str("Allowlist lines that would let these through (add to the step's profile under `network.allow`):\n\n```yaml\n");
            for line in allow_lines(report).iter().take(MAX_ROWS) {
                let _ = writeln!(s, "- {line}");
            }
            s.push_str("```\n\n");
        }
    }
    for (name, n) in &report.leaks {
        let _ = writeln!(
            s,
            "**Secret `{name}` was refused {n}x on its way to a host it is not for.**\n"
        );
    }
    for ((name, host), n) in &report.reflected {
        let _ = writeln!(
            s,
            "**`{host}` sent brokered secret `{name}` back {n}x; the step got its placeholder instead.**\n"
        );
    }
    for r in h.removed {
        let _ = writeln!(s, "- removed from file commands: {}", safe_text(r));
    }
    if !h.removed.is_empty() {
        s.push('\n');
    }
    if s.len() > SECTION_LIMIT {
        let mut cut = SECTION_LIMIT - 40;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("\n\n…(truncated)\n");
    }
    s
}

/// `host:port` allow rules for the denied destinations (names only; an address gets a `cidr`
/// rule, which a person should think twice about; DNS-only rows allow port 443).
pub fn allow_lines(report: &StepReport) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (host, port) in report.denied.keys() {
        let line = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => format!("{{ cidr: {ip}/32, ports: [{port}] }}"),
            Ok(IpAddr::V6(ip)) => format!("{{ cidr: \"{ip}/128\", ports: [{port}] }}"),
            Err(_) if crate::audit::suggest::is_host_name(host) => {
                let port = if *port == 53 { 443 } else { *port };
                format!("{host}:{port}")
            }
            Err(_) => continue,
        };
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

/// Appends `section` to the summary file at `path`, keeping the file within GitHub's limit:
/// when the step's own summary leaves too little room, a one-line note goes in instead, and
/// nothing when even that does not fit.
/// A symbolic link, a file with another hard link or anything but a regular file is refused
/// ([`crate::host_file`]); no file is nothing to do.
pub fn append_summary(
    path: &std::path::Path,
    section: &str,
) -> Result<(), crate::host_file::HostFileError> {
    use crate::host_file::{Access, HostFileError};
    use std::io::Write as _;
    let Some(mut f) = crate::host_file::open(path, Access::Append)? else {
        return Ok(());
    };
    let io = |source| HostFileError::Io {
        path: path.to_path_buf(),
        action: "append to it",
        source,
    };
    let have = f.metadata().map_err(io)?.len();
    let room = SUMMARY_LIMIT.saturating_sub(have);
    let note =
        "\n_stepjail: the step's summary is near GitHub's 1 MiB limit; see the audit log._\n";
    let text = if (section.len() as u64) < room {
        format!("\n{section}")
    } else if note.len() as u64 <= room {
        note.to_string()
    } else {
        return Ok(());
    };
    f.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{
        Close, Connect, Decision, Dns, DnsTransport, Event, NameSource, Protocol, Via,
    };

    fn rec(event: Event) -> Record {
        Record::new("run-1", event)
    }

    fn connect(conn: u64, name: &str, port: u16, decision: Decision) -> Event {
        Event::Connect(Connect {
            conn,
            dest_name: Some(name.into()),
            name_source: NameSource::Connect,
            dest_ip: None,
            dest_port: port,
            protocol: Protocol::Tcp,
            via: Via::Proxy,
            decision,
            rule: None,
            reason: (decision != Decision::Allow).then(|| "no rule".into()),
        })
    }

    fn sample() -> Vec<Record> {
        vec![
            rec(connect(1, "registry.npmjs.org", 443, Decision::Allow)),
            rec(Event::Close(Close {
                conn: 1,
                bytes_up: 1000,
                bytes_down: 5000,
                duration_ms: 3,
            })),
            rec(connect(2, "evil.example", 443, Decision::Deny)),
            rec(connect(3, "evil.example", 443, Decision::Deny)),
            rec(connect(4, "x|<b>`y`", 80, Decision::Deny)),
            rec(Event::Dns(Dns {
                name: "tunnel.attacker.example".into(),
                qtype: "TXT".into(),
                transport: DnsTransport::Udp,
                decision: Decision::Deny,
                answers: vec![],
                rcode: "NXDOMAIN".into(),
                rule: None,
                reason: Some("no rule".into()),
            })),
            Record::new(
                "other-run",
                connect(9, "other.example", 443, Decision::Deny),
            ),
        ]
    }

    #[test]
    fn report_counts_this_run_only() {
        let r = StepReport::from_records(&sample(), "run-1");
        assert_eq!(
            r.reached[&("registry.npmjs.org".to_string(), 443)],
            (1, 1000, 5000)
        );
        assert_eq!(r.denied[&("evil.example".to_string(), 443)].0, 2);
        assert!(r.denied.contains_key(&("x??b??y?".to_string(), 80)));
        assert!(
            r.denied
                .contains_key(&("tunnel.attacker.example".to_string(), 53))
        );
        assert!(!r.denied.keys().any(|(h, _)| h == "other.example"));
    }

    #[test]
    fn a_reflected_secret_is_a_warning_and_a_summary_line() {
        let mut records = sample();
        for part in ["header", "body"] {
            records.push(rec(Event::SecretReflected(crate::audit::SecretReflected {
                conn: 5,
                secret_name: "ECHO_TOKEN".into(),
                dest_name: "echo.test".into(),
                part: part.into(),
                reason: "echoed".into(),
            })));
        }
        let r = StepReport::from_records(&records, "run-1");
        assert_eq!(
            r.reflected[&("ECHO_TOKEN".to_string(), "echo.test".to_string())],
            2
        );
        let a = annotations(&r, "t/s", "p", Some(NetworkMode::Enforce));
        assert_eq!(
            a.last().unwrap(),
            "::warning title=stepjail secret reflected::step t/s: echo.test sent brokered secret ECHO_TOKEN back (2x); the step got its placeholder instead"
        );
    }

    #[test]
    fn annotations_name_step_host_and_port_and_escape() {
        let r = StepReport::from_records(&sample(), "run-1");
        let a = annotations(&r, "test/deps", "npm", Some(NetworkMode::Enforce));
        assert_eq!(a.len(), 3);
        assert_eq!(
            a[0],
            "::error title=stepjail denied egress::step test/deps: denied evil.example:443 (no rule; profile 'npm'), 2 attempts"
        );
        let w = annotations(&r, "t/s", "npm", Some(NetworkMode::Audit));
        assert!(
            w[0].starts_with("::warning title=stepjail would deny egress::step t/s: would deny")
        );
        assert_eq!(
            command("error", "a:b,c", "x\ny%"),
            "::error title=a%3Ab%2Cc::x%0Ay%25"
        );
    }

    #[test]
    fn summary_has_tables_and_audit_suggestions() {
        let r = StepReport::from_records(&sample(), "run-1");
        let removed = vec![
            "GITHUB_ENV LD_PRELOAD (line 1): changes how later programs load code".to_string(),
        ];
        let s = summary(
            &r,
            &Header {
                step: "test/deps",
                profile: "npm",
                mode: Some(NetworkMode::Audit),
                exit_code: 0,
                removed: &removed,
            },
        );
        assert!(
            s.contains("#### stepjail · `test/deps` · profile `npm` · audit · exit 0"),
            "{s}"
        );
        assert!(
            s.contains("| registry.npmjs.org | 443 | 1 | 1000 B | 4.9 KiB |"),
            "{s}"
        );
        assert!(s.contains("| evil.example | 443 | 2 | no rule |"), "{s}");
        assert!(s.contains("- evil.example:443\n"), "{s}");
        assert!(s.contains("- tunnel.attacker.example:443\n"), "{s}");
        assert!(!s.contains("<b>"), "{s}");
        assert!(s.contains("LD_PRELOAD"));
    }

    /// Rows merge spellings the log keeps apart; each row keeps its first refusal's reason in
    /// log order (not in the order the aggregate sorts spellings), and bytes of a connection
    /// let through in audit mode count as reached.
    #[test]
    fn merged_spellings_keep_the_first_reason_and_would_deny_bytes_are_reached() {
        let reason = |e: Event, why: &str| match e {
            Event::Connect(mut c) => {
                c.reason = Some(why.into());
                rec(Event::Connect(c))
            }
            _ => unreachable!(),
        };
        let records = vec![
            reason(connect(1, "upper.example", 443, Decision::Deny), "first"),
            reason(connect(2, "UPPER.example", 443, Decision::Deny), "second"),
            reason(connect(3, "audit.example", 443, Decision::WouldDeny), "x"),
            rec(Event::Close(Close {
                conn: 3,
                bytes_up: 7,
                bytes_down: 9,
                duration_ms: 1,
            })),
        ];
        let r = StepReport::from_records(&records, "run-1");
        assert_eq!(
            r.denied[&("upper.example".to_string(), 443)],
            (2, "first".to_string())
        );
        assert_eq!(r.reached[&("audit.example".to_string(), 443)], (0, 7, 9));
    }

    #[test]
    fn free_text_is_inert_markdown() {
        assert_eq!(
            safe_text("A<img src=x>|`b`[l](u)*e*\n"),
            "A img src=x   b  l (u) e  "
        );
        assert_eq!(safe_text("LD_PRELOAD"), "LD_PRELOAD");
    }

    #[test]
    fn summary_section_is_bounded() {
        let mut recs = Vec::new();
        for i in 0..5000 {
            recs.push(rec(connect(
                i,
                &format!("h{i}.example"),
                443,
                Decision::Deny,
            )));
        }
        let r = StepReport::from_records(&recs, "run-1");
        let s = summary(
            &r,
            &Header {
                step: "a/b",
                profile: "p",
                mode: Some(NetworkMode::Enforce),
                exit_code: 1,
                removed: &[],
            },
        );
        assert!(s.len() <= SECTION_LIMIT);
        assert!(s.contains("…and 4960 more."));
        assert_eq!(annotations(&r, "a/b", "p", None).len(), MAX_ANNOTATIONS + 1);
    }

    #[test]
    fn append_refuses_a_link_and_leaves_its_target_alone() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("elsewhere");
        std::fs::write(&target, "x").unwrap();
        let p = d.path().join("summary");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let err = append_summary(&p, "y").unwrap_err();
        assert!(err.to_string().ends_with("a symbolic link"), "{err}");
        std::fs::remove_file(&p).unwrap();
        std::fs::hard_link(&target, &p).unwrap();
        let err = append_summary(&p, "y").unwrap_err();
        assert!(err.to_string().contains("2 hard links"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
    }

    #[test]
    fn append_respects_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("summary");
        std::fs::write(&p, vec![b'x'; (SUMMARY_LIMIT - 100) as usize]).unwrap();
        append_summary(&p, &"y".repeat(500)).unwrap();
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= SUMMARY_LIMIT, "{len}");
        assert!(
            std::fs::read_to_string(&p)
                .unwrap()
                .contains("near GitHub's 1 MiB limit")
        );
        std::fs::write(&p, vec![b'x'; (SUMMARY_LIMIT - 10) as usize]).unwrap();
        append_summary(&p, "y").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), SUMMARY_LIMIT - 10 + 2);
    }
}
