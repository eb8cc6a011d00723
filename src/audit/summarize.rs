//! Reading audit logs back, and `stepjail audit summarize`: a plain-text table of what a step
//! talked to.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::aggregate::{Aggregate, Counts, DestKey};
use super::error::AuditError;
use super::event::{Protocol, Record, SCHEMA_NAME, SCHEMA_VERSION};

/// The records of one log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLog {
    pub records: Vec<Record>,
    /// Unterminated, unparsable last lines skipped (0 or 1): what a crash mid-write leaves.
    pub truncated_lines: usize,
}

/// Reads and checks the audit log at `path`. See [`parse_log`] for what is tolerated.
pub fn read_log(path: &Path) -> Result<ReadLog, AuditError> {
    let bytes = std::fs::read(path).map_err(|source| AuditError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_log(&bytes, path)
}

/// Parses a whole log; `path` is only used in error messages.
///
/// - A last line without its `\n` that does not parse is what a crash mid-write leaves: it is
///   skipped and counted in [`ReadLog::truncated_lines`]. (If it parses, it is kept; if it is a
///   whole record of another schema version, that is an error as below.)
/// - Any other line that does not parse is an error naming `path:line`, because the writer never
///   produces one: the log was damaged or is not an audit log.
/// - A line of another schema or version is an error, checked before the event itself so that
///   a newer log gets a version message rather than a confusing field error.
/// - Blank lines are ignored.
pub fn parse_log(bytes: &[u8], path: &Path) -> Result<ReadLog, AuditError> {
    let mut records = Vec::new();
    let mut truncated_lines = 0;
    let (complete, last) = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (&bytes[..0], bytes),
    };
    // Every `\n` ends one complete line; `complete` splits into exactly that many pieces.
    let complete_lines = bytes.iter().filter(|&&b| b == b'\n').count();
    for (index, line) in complete
        .split(|&b| b == b'\n')
        .take(complete_lines)
        .enumerate()
    {
        if let Some(record) = parse_line(line, path, index + 1)? {
            records.push(record);
        }
    }
    if !last.trim_ascii().is_empty() {
        match parse_line(last, path, complete_lines + 1) {
            Ok(Some(record)) => records.push(record),
            Ok(None) => {}
            // A cut-off line never parses as JSON; a whole line of another version is an error.
            Err(AuditError::Malformed { .. }) => truncated_lines += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(ReadLog {
        records,
        truncated_lines,
    })
}

/// The envelope alone, to check the schema before the event.
#[derive(Deserialize)]
struct Envelope {
    schema: String,
    v: u64,
}

fn parse_line(line: &[u8], path: &Path, number: usize) -> Result<Option<Record>, AuditError> {
    if line.trim_ascii().is_empty() {
        return Ok(None);
    }
    let malformed = |source| AuditError::Malformed {
        path: path.to_owned(),
        line: number,
        source,
    };
    let envelope: Envelope = serde_json::from_slice(line).map_err(malformed)?;
    if envelope.schema != SCHEMA_NAME || envelope.v != u64::from(SCHEMA_VERSION) {
        return Err(AuditError::WrongSchema {
            path: path.to_owned(),
            line: number,
            schema: envelope.schema,
            v: envelope.v,
        });
    }
    serde_json::from_slice(line).map(Some).map_err(malformed)
}

/// A plain-text report of `records` (from one or several logs): steps, one row per destination
/// with connection counts and bytes, DNS names, and secret leaks.
///
/// Names come from the step's own traffic, so control characters are escaped before printing.
pub fn summarize(records: &[Record]) -> String {
    if records.is_empty() {
        return "no audit records\n".to_owned();
    }
    render(&Aggregate::new(records))
}

/// [`summarize`]'s text, from the aggregate of the records.
fn render(agg: &Aggregate<'_>) -> String {
    let mut steps: BTreeMap<&str, StepRow> = BTreeMap::new();
    for (step, facts) in &agg.steps {
        if facts.starts.is_empty() && facts.ends.is_empty() {
            continue;
        }
        let mut row = StepRow::default();
        // The last `step_start` says how it ran; without one, the first `step_end` names the
        // profile.
        if let Some(s) = facts.starts.last() {
            row.profile = Some(s.profile.clone());
            row.mode = Some(s.mode.as_str().to_owned());
        }
        // `job/step` from the last `step_start` that has them.
        row.ci = facts
            .starts
            .iter()
            .rev()
            .find_map(|s| match (&s.ci_job, &s.ci_step) {
                (Some(job), Some(ci_step)) => Some(format!("{job}/{ci_step}")),
                _ => None,
            });
        if let Some(e) = facts.ends.first() {
            row.profile.get_or_insert_with(|| e.profile.clone());
        }
        row.end = facts
            .ends
            .last()
            .map(|e| (e.exit_code, e.duration_ms, e.timed_out));
        steps.insert(step, row);
    }
    let mut dests: HashMap<String, DestRow> = HashMap::new();
    let mut totals = Counts::default();
    for (key, stats) in &agg.destinations {
        let row = dests.entry(destination(key)).or_default();
        add_counts(&mut row.counts, &stats.counts);
        totals.merge(&stats.counts);
        row.bytes_up += stats.bytes.up;
        row.bytes_down += stats.bytes.down;
    }
    let mut names: BTreeMap<String, DnsRow> = BTreeMap::new();
    let mut queries = 0u64;
    for ((_, name), stats) in &agg.names {
        queries += stats.counts.total();
        let row = names.entry(normalize_name(name)).or_default();
        add_counts(&mut row.counts, &stats.counts);
        row.qtypes
            .extend(stats.qtypes.iter().map(|t| (*t).to_owned()));
    }
    let leaks: Vec<_> = agg.leaks.iter().map(|(_, l)| *l).collect();
    let reflected: Vec<_> = agg.reflected.iter().map(|(_, r)| *r).collect();
    let removed: Vec<_> = agg.file_commands.iter().map(|(_, f)| *f).collect();
    let totals = [totals.allowed, totals.denied, totals.would_deny].map(|n| n as usize);
    let queries = queries as usize;
    let limited = agg.dns_limited;

    let mut out = String::new();
    let connections: usize = totals.iter().sum();
    let _ = writeln!(
        out,
        "{}, {} ({} allowed, {} denied, {} would-deny), {}",
        plural(agg.steps.len(), "step"),
        plural(connections, "connection"),
        totals[0],
        totals[1],
        totals[2],
        plural(queries, "DNS query"),
    );

    if !steps.is_empty() {
        // Steps run by `stepjail step` also carry their CI job and step id.
        let with_ci = steps.values().any(|r| r.ci.is_some());
        let rows = steps
            .iter()
            .map(|(step, row)| {
                let (exit, duration) = match row.end {
                    Some((code, ms, timed_out)) => (
                        if timed_out {
                            format!("{code} (timed out)")
                        } else {
                            code.to_string()
                        },
                        duration_ms(ms),
                    ),
                    None => ("-".to_owned(), "-".to_owned()),
                };
                let mut cells = vec![clean(step)];
                if with_ci {
                    cells.push(clean(row.ci.as_deref().unwrap_or("-")));
                }
                cells.extend([
                    clean(row.profile.as_deref().unwrap_or("-")),
                    row.mode.clone().unwrap_or_else(|| "-".to_owned()),
                    exit,
                    duration,
                ]);
                cells
            })
            .collect();
        out.push_str("\nsteps\n");
        if with_ci {
            out.push_str(&table(
                &["step", "job/step", "profile", "mode", "exit", "duration"],
                rows,
                "llllrr",
            ));
        } else {
            out.push_str(&table(
                &["step", "profile", "mode", "exit", "duration"],
                rows,
                "lllrr",
            ));
        }
    }

    if !dests.is_empty() {
        let mut sorted: Vec<_> = dests.into_iter().collect();
        sorted.sort_by(|(ka, a), (kb, b)| {
            let (ta, tb): (usize, usize) = (a.counts.iter().sum(), b.counts.iter().sum());
            tb.cmp(&ta).then_with(|| ka.cmp(kb))
        });
        let rows = sorted
            .into_iter()
            .map(|(key, row)| {
                vec![
                    clean(&key),
                    row.counts[0].to_string(),
                    row.counts[1].to_string(),
                    row.counts[2].to_string(),
                    human_bytes(row.bytes_up),
                    human_bytes(row.bytes_down),
                ]
            })
            .collect();
        out.push_str("\nconnections\n");
        out.push_str(&table(
            &[
                "destination",
                "allowed",
                "denied",
                "would-deny",
                "bytes up",
                "bytes down",
            ],
            rows,
            "lrrrrr",
        ));
    }

    if !names.is_empty() {
        let mut sorted: Vec<_> = names.into_iter().collect();
        sorted.sort_by(|(na, a), (nb, b)| {
            let (ta, tb): (usize, usize) = (a.counts.iter().sum(), b.counts.iter().sum());
            tb.cmp(&ta).then_with(|| na.cmp(nb))
        });
        let rows = sorted
            .into_iter()
            .map(|(name, row)| {
                let qtypes: Vec<String> = row.qtypes.iter().map(|t| clean(t)).collect();
                vec![
                    clean(&name),
                    row.counts.iter().sum::<usize>().to_string(),
                    row.counts[0].to_string(),
                    row.counts[1].to_string(),
                    row.counts[2].to_string(),
                    qtypes.join(","),
                ]
            })
            .collect();
        out.push_str("\ndns\n");
        out.push_str(&table(
            &[
                "name",
                "queries",
                "allowed",
                "denied",
                "would-deny",
                "types",
            ],
            rows,
            "lrrrrl",
        ));
    }
    if limited > 0 {
        let _ = writeln!(
            out,
            "\n{} over the step's rate limit, refused and not listed one by one",
            plural(limited as usize, "DNS query")
        );
    }

    if !removed.is_empty() {
        out.push_str("\nremoved from file commands\n");
        for f in removed {
            let _ = writeln!(
                out,
                "  {} {} (line {}): {}",
                clean(&f.file),
                clean(if f.name.is_empty() {
                    "(all of it)"
                } else {
                    &f.name
                }),
                f.line,
                clean(&f.reason)
            );
        }
    }

    if !leaks.is_empty() {
        out.push_str("\nsecret leaks\n");
        for leak in leaks {
            let via = leak.via.as_str();
            let _ = writeln!(
                out,
                "  {} -> {} ({via}): {}",
                clean(&leak.secret_name),
                clean(&leak.dest_name),
                clean(&leak.reason)
            );
        }
    }
    if !reflected.is_empty() {
        out.push_str("\nsecrets reflected by a bound host (the step got the placeholder)\n");
        for r in reflected {
            let _ = writeln!(
                out,
                "  {} <- {} ({})",
                clean(&r.secret_name),
                clean(&r.dest_name),
                clean(&r.part)
            );
        }
    }
    out
}

#[derive(Default)]
struct StepRow {
    profile: Option<String>,
    /// `job/step` for steps run by `stepjail step`.
    ci: Option<String>,
    mode: Option<String>,
    /// (exit code, duration, timed out)
    end: Option<(i32, u64, bool)>,
}

#[derive(Default)]
struct DestRow {
    /// allowed, denied, would-deny
    counts: [usize; 3],
    bytes_up: u64,
    bytes_down: u64,
}

#[derive(Default)]
struct DnsRow {
    counts: [usize; 3],
    qtypes: BTreeSet<String>,
}

fn add_counts(row: &mut [usize; 3], c: &Counts) {
    row[0] += c.allowed as usize;
    row[1] += c.denied as usize;
    row[2] += c.would_deny as usize;
}

/// `host:port` (or `[v6]:port`), with `/udp` or `/icmp` appended for non-TCP.
fn destination(c: &DestKey<'_>) -> String {
    let host = match (c.name, c.ip) {
        (Some(name), _) => normalize_name(name),
        (None, Some(ip)) => host_of_ip(ip),
        (None, None) => "(unknown)".to_owned(),
    };
    let proto = match c.protocol {
        Protocol::Tcp => "",
        Protocol::Udp => "/udp",
        Protocol::Icmp => "/icmp",
    };
    format!("{host}:{}{proto}", c.port)
}

/// An address as the host part of `host:port`: IPv6 in brackets.
pub(crate) fn host_of_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// DNS names compare case-insensitively and without the root dot.
pub(crate) fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Escapes control characters so a hostile name cannot drive the terminal or fake a row.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn plural(n: usize, word: &str) -> String {
    match (n, word.strip_suffix('y')) {
        (1, _) => format!("1 {word}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {word}s"),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Two-space indented columns; `align` has one `l` (left) or `r` (right) per column.
fn table(headers: &[&str], rows: Vec<Vec<String>>, align: &str) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(header_row).chain(rows) {
        let mut line = String::from(" ");
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            let pad = width - cell.chars().count();
            line.push(' ');
            if align.as_bytes().get(i) == Some(&b'l') {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
            line.push(' ');
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_and_plural_formats() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1_363_149), "1.3 MiB");
        assert_eq!(plural(1, "DNS query"), "1 DNS query");
        assert_eq!(plural(2, "DNS query"), "2 DNS queries");
        assert_eq!(plural(0, "step"), "0 steps");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(clean("plain.example"), "plain.example");
    }

    #[test]
    fn line_numbers_count_blank_lines() {
        let text = b"\n\n{\"schema\":\"stepjail.audit\",\"v\":1,\"ts\":\"x\",\"step\":\"s\"}\n";
        let err = parse_log(text, Path::new("f")).unwrap_err();
        assert!(err.to_string().starts_with("f:3: malformed"), "{err}");
    }

    #[test]
    fn unterminated_last_line_of_another_version_is_an_error() {
        let text = b"{\"schema\":\"stepjail.audit\",\"v\":2}";
        let err = parse_log(text, Path::new("f")).unwrap_err();
        assert!(
            matches!(err, AuditError::WrongSchema { line: 1, v: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn empty_and_newline_only_logs() {
        assert_eq!(parse_log(b"", Path::new("f")).unwrap().records, vec![]);
        assert_eq!(parse_log(b"\n", Path::new("f")).unwrap().records, vec![]);
        let r = parse_log(b"{\"sch", Path::new("f")).unwrap();
        assert_eq!((r.records.len(), r.truncated_lines), (0, 1));
    }
}
