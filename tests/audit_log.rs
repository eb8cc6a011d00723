//! The audit log is complete: every connection the proxy opened gets exactly one `close` event
//! with the bytes that crossed it, whichever path carried it (CONNECT, proxied plain HTTP,
//! captured TLS, captured plain HTTP) and also when it was still open as the step ended; and
//! what `audit suggest` makes of real logs. Runs the real binary in the fake internet.

mod common;

use std::collections::BTreeMap;

use common::inet::{Internet, audit_events, egress_users, find, needs_root};
use common::*;

const PROFILE: &str = "\
name: close-test
description: the allowlist the close-event tests run under
extends: default
network:
  allow:
    - { host: allowed.test, ports: [80, 443] }
";

/// The fake web server's reply head for a body of `n` bytes (tests/fixtures/fake_internet.py).
fn head_len(n: u64) -> u64 {
    format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\nconnection: keep-alive\r\n\r\n").len() as u64
}

/// TLS handshakes and record framing on top of the bytes the step sent or received.
const TLS_SLACK: u64 = 8192;

/// What one connection must have carried.
#[derive(Debug)]
enum Want {
    /// Plain HTTP: the upstream leg's bytes down are exactly these.
    Exact(u64),
    /// TLS: at least the body, at most the body plus handshakes; and at least this much up.
    Tls { down: u64, up: u64 },
    /// A download cut short by the step's end.
    Held { least: u64, most: u64 },
}

#[test]
fn every_connection_gets_one_close_with_its_bytes_even_when_still_open_at_the_end() {
    if !needs_root() {
        return;
    }
    const UPLOAD: u64 = 30_000;
    const HELD: u64 = 170_000;
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        // 15 requests, each on its own connection and each with its own size (10 000 apart,
        // more than the TLS overhead, so every close event falls in exactly one size bucket),
        // then a 16th download still running when the step exits.
        let script = format!(
            "set -e; head -c {UPLOAD} /dev/zero > up; \
             for i in 1 2 3 4; do curl -sSk -o /dev/null -w '%{{size_download}}\\n' https://allowed.test/bytes/${{i}}0000; done; \
             for i in 5 6 7 8; do curl -sS -o /dev/null -w '%{{size_download}}\\n' http://allowed.test/bytes/${{i}}0000; done; \
             for i in 9 10 11 12; do curl -sSk --noproxy '*' --data-binary @up -o /dev/null -w '%{{size_download}}\\n' https://allowed.test/bytes/${{i}}0000; done; \
             for i in 13 14 15; do curl -sS --noproxy '*' -o /dev/null -w '%{{size_download}}\\n' http://allowed.test/bytes/${{i}}0000; done; \
             curl -s -o held http://allowed.test/hold/{HELD} & \
             n=0; while [ \"$(stat -c %s held 2>/dev/null || echo 0)\" -lt {half} ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done; \
             stat -c %s held",
            half = HELD / 2
        );
        let started = std::time::Instant::now();
        let out = net.run(&dir, PROFILE, &[], &script);
        let elapsed = started.elapsed();
        let want_stdout: String = (1..=15).map(|i| format!("{}\n", i * 10_000)).collect();
        let stdout = out.ok();
        let (sizes, held) = stdout.split_at(want_stdout.len().min(stdout.len()));
        assert_eq!(sizes, want_stdout, "uid {uid}: {}", out.stderr());
        // What the step had of the held download when it ended.
        let held: u64 = held.trim().parse().unwrap();
        assert!(held >= HELD / 2, "uid {uid}: {held}");
        // Nothing waited for a minute-long timeout (the held download's server holds for 30 s).
        assert!(
            elapsed.as_secs() < 15,
            "uid {uid}: the step took {elapsed:?}"
        );

        let ev = audit_events(&dir);
        let connects = find(&ev, "connect", &[("decision", "allow")]);
        let closes = find(&ev, "close", &[]);
        assert_eq!(connects.len(), 16, "uid {uid}: {ev:#?}");
        assert_eq!(closes.len(), 16, "uid {uid}: {ev:#?}");
        // Exactly one close per allowed connection, all before the step's end.
        let mut per_conn: BTreeMap<u64, u32> = BTreeMap::new();
        for c in &closes {
            *per_conn.entry(c["conn"].as_u64().unwrap()).or_default() += 1;
        }
        for c in &connects {
            let id = c["conn"].as_u64().unwrap();
            assert_eq!(per_conn.get(&id), Some(&1), "uid {uid}: conn {id}: {ev:#?}");
        }
        // Written when each connection closed, not at a timeout: only the held one lasted.
        let slow = closes
            .iter()
            .filter(|c| c["duration_ms"].as_u64().unwrap() > 3000)
            .count();
        assert_eq!(slow, 0, "uid {uid}: {ev:#?}");
        let end = ev.iter().position(|e| e["event"] == "step_end").unwrap();
        assert_eq!(
            end,
            ev.len() - 1,
            "uid {uid}: step_end is not last: {ev:#?}"
        );

        // Each close carries the bytes of its connection.
        let mut wants: Vec<Want> = Vec::new();
        for i in 1..=4 {
            wants.push(Want::Tls {
                down: i * 10_000,
                up: 0,
            });
        }
        for i in 5..=8 {
            wants.push(Want::Exact(head_len(i * 10_000) + i * 10_000));
        }
        for i in 9..=12 {
            wants.push(Want::Tls {
                down: i * 10_000,
                up: UPLOAD,
            });
        }
        for i in 13..=15 {
            wants.push(Want::Exact(head_len(i * 10_000) + i * 10_000));
        }
        // The held download: at least what reached the step, at most what the server sent (its
        // reply head promised twice that).
        wants.push(Want::Held {
            least: head_len(2 * HELD) + held,
            most: head_len(2 * HELD) + HELD,
        });
        let mut got: Vec<(u64, u64)> = closes
            .iter()
            .map(|c| {
                (
                    c["bytes_down"].as_u64().unwrap(),
                    c["bytes_up"].as_u64().unwrap(),
                )
            })
            .collect();
        got.sort();
        wants.sort_by_key(|w| match w {
            Want::Exact(n) => *n,
            Want::Tls { down, .. } => *down,
            Want::Held { least, .. } => *least,
        });
        for ((down, up), want) in got.iter().zip(&wants) {
            match want {
                Want::Exact(n) => assert_eq!(down, n, "uid {uid}: {got:?}"),
                Want::Held { least, most } => {
                    assert!(
                        (*least..=*most).contains(down),
                        "uid {uid}: {want:?}: {got:?}"
                    )
                }
                Want::Tls { down: d, up: u } => {
                    assert!(
                        (*d..d + TLS_SLACK).contains(down) && (*u..u + TLS_SLACK).contains(up),
                        "uid {uid}: want {want:?}, got down {down} up {up}: {got:?}"
                    );
                }
            }
            assert!(*up > 0, "uid {uid}: {got:?}");
        }
    }
}

/// `stepjail run --profile NAME` (a built-in) in the fake internet, as `dir`'s owner.
fn run_builtin(net: &Internet, dir: &Dir, profile: &str, extra: &[&str], script: &str) -> Out {
    let audit = dir.root.join("audit.jsonl");
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &net.ns]);
    if dir.owner != 0 {
        let id = dir.owner.to_string();
        cmd.args(["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups"]);
    }
    cmd.arg(bin())
        .args(["run", "--profile", profile, "--resolver", "192.0.2.53:53"])
        .args(["--audit-log", audit.to_str().unwrap()])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &dir.home)
        .current_dir(&dir.ws)
        .stdin(std::process::Stdio::null());
    Out(cmd.output().unwrap())
}

/// An audit run under the built-in `npm` profile, then `audit suggest` on its log: the
/// suggestion extends npm, leaves out the registry npm already allows, offers a commented cidr
/// rule for the name that resolved to the metadata address, and does not ask for audit mode.
/// Audit mode also printed a line for the DNS name enforce would have refused.
#[test]
fn audit_suggest_on_a_real_audit_log() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = run_builtin(
        &net,
        &dir,
        "npm",
        &["--mode", "audit"],
        "curl -sSk https://registry.npmjs.org/ && curl -sSk https://allowed.test/ && \
         { curl -sk https://meta.test/; getent hosts other.test; true; }",
    );
    assert_eq!(
        out.ok(),
        "hello from registry.npmjs.org over https\nhello from allowed.test over https\n\
         192.0.2.11      other.test\n",
        "{}",
        out.stderr()
    );
    assert!(
        out.stderr().contains(
            "stepjail: would deny DNS A other.test (not allowed by profile; profile 'npm' is in audit mode)"
        ),
        "{}",
        out.stderr()
    );
    let ev = audit_events(&dir);
    assert_eq!(
        find(
            &ev,
            "connect",
            &[
                ("dest_name", "meta.test"),
                ("dest_ip", "169.254.169.254"),
                ("decision", "deny")
            ]
        )
        .len(),
        1,
        "{ev:#?}"
    );
    let log = dir.root.join("audit.jsonl");
    let suggested = Sj::new(
        &dir,
        &["audit", "suggest", "--name", "more", log.to_str().unwrap()],
    )
    .output()
    .ok();
    assert_eq!(
        suggested,
        "\
# suggested by `stepjail audit suggest` from 1 run (3 connections, 2 names)
name: more
description: network allowlist suggested from audit logs
extends: npm
network:
  mode: enforce
  allow:
    - allowed.test:443   # 1 connection, 1 would-deny
    - meta.test:443      # 1 connection, 1 denied
    # already allowed by npm: registry.npmjs.org:443
    # meta.test:443 resolved to 169.254.169.254 (link-local), refused (1 connection); if that address is intended:
    # - { cidr: \"169.254.169.254/32\", ports: [443] }
    # looked up in audit mode but never connected to (nothing to allow unless a later run connects):
    #   other.test
"
    );
    // Enforced, with the cidr line taken in, the same step gets through, and the proxy now dials
    // the metadata address (which this fake internet does not have: unreachable, not refused).
    let enabled = suggested.replace("    # - { cidr", "    - { cidr");
    let p = dir.write("ws/more.yml", &enabled);
    std::fs::remove_file(&log).unwrap();
    let out = run_builtin(
        &net,
        &dir,
        p.to_str().unwrap(),
        &[],
        "curl -sSk https://registry.npmjs.org/ && curl -sSk https://allowed.test/ && \
         { curl -sk -o /dev/null -w '%{http_connect}\\n' https://meta.test/; true; }",
    );
    assert_eq!(
        out.ok(),
        "hello from registry.npmjs.org over https\nhello from allowed.test over https\n502\n",
        "{}",
        out.stderr()
    );
    assert!(
        out.stderr().contains(
            "stepjail: denied meta.test:443 (connecting to 169.254.169.254:443: Network is unreachable"
        ),
        "{}",
        out.stderr()
    );
}
