//! Allowed connections leaving through an upstream (corporate) HTTP proxy: tinyproxy in the
//! fake internet's namespace (common/inet.rs), and stepjail in a second namespace, `corp`,
//! whose only routes lead to that proxy and to the DNS server. The web servers are unreachable
//! from `corp` directly, so a page that arrives came through the proxy (its log shows the
//! CONNECT), and the same request without the upstream setting fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::inet::{Internet, audit_events, egress_users, find, needs_root, run_in_netns};
use common::*;

const PROXY: &str = "http://198.51.100.20:3128";
const USER: &str = "builder";
const PASSWORD: &str = "s3cret-Pw";

const PROFILE: &str = "\
name: upstream-test
description: the allowlist the upstream proxy tests run under
extends: default
network:
  allow:
    - { host: allowed.test, ports: [80, 443] }
    - meta.test:443
    - inside.corp.test:443
";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fake internet plus a corporate network: tinyproxy on 198.51.100.20:3128 (optionally
/// with Basic authentication) and the `corp` namespace stepjail runs in.
struct Corp {
    net: Internet,
    corp: String,
    proxy: Child,
    proxy_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Corp {
    fn new(auth: bool) -> Corp {
        let net = Internet::new();
        let ns = net.ns.clone();
        let corp = format!("{ns}-corp");
        ip(&["-n", &ns, "addr", "add", "198.51.100.20/32", "dev", "lo"]);
        ip(&["netns", "add", &corp]);
        ip(&["-n", &corp, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &ns, "link", "add", "up0", "type", "veth", "peer", "name", "up0", "netns", &corp,
        ]);
        ip(&["-n", &ns, "addr", "add", "203.0.113.253/30", "dev", "up0"]);
        ip(&["-n", &corp, "addr", "add", "203.0.113.254/30", "dev", "up0"]);
        ip(&["-n", &ns, "link", "set", "up0", "up"]);
        ip(&["-n", &corp, "link", "set", "up0", "up"]);
        // Only the proxy and the DNS server: no route to the web servers (192.0.2.10-12) or
        // the attacker (198.51.100.7).
        for dest in ["198.51.100.20/32", "192.0.2.53/32"] {
            ip(&["-n", &corp, "route", "add", dest, "via", "203.0.113.253"]);
        }
        // tinyproxy resolves names with the system resolver: `ip netns exec` binds
        // /etc/netns/NS/resolv.conf over /etc/resolv.conf, pointing it at the fake DNS.
        let etc = PathBuf::from("/etc/netns").join(&ns);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
        // A name only the proxy can resolve (the fake DNS answers NXDOMAIN for it).
        std::fs::write(
            etc.join("hosts"),
            "127.0.0.1 localhost\n192.0.2.10 inside.corp.test\n",
        )
        .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("sjproxy-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let proxy_log = dir.path().join("tinyproxy.log");
        let mut conf = format!(
            "Port 3128\nListen 198.51.100.20\nTimeout 30\nLogFile \"{}\"\nLogLevel Connect\n\
             MaxClients 50\nDisableViaHeader Yes\n",
            proxy_log.display()
        );
        if auth {
            conf.push_str(&format!("BasicAuth {USER} {PASSWORD}\n"));
        }
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let proxy = Command::new("ip")
            .args(["netns", "exec", &ns, "tinyproxy", "-d", "-c"])
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy is needed for the upstream proxy tests (apt-get install tinyproxy)");
        let start = Instant::now();
        while !std::fs::read_to_string(&proxy_log)
            .unwrap_or_default()
            .contains("Reloading config file finished")
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "tinyproxy did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Corp {
            net,
            corp,
            proxy,
            proxy_log,
            _dir: dir,
        }
    }

    /// The `Request` lines tinyproxy logged: `CONNECT host:port HTTP/1.1`.
    fn proxy_requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.proxy_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("]: Request (file descriptor ").map(|(_, r)| r))
            .filter_map(|r| r.split_once("): ").map(|(_, req)| req.to_string()))
            .collect()
    }

    /// `stepjail run --profile <yaml> --resolver 192.0.2.53:53 --audit-log ... EXTRA... --
    /// sh -c SCRIPT` inside `corp`, as the directory's owner, with `env` for stepjail itself.
    fn run(
        &self,
        dir: &Dir,
        profile: &str,
        extra: &[&str],
        script: &str,
        env: &[(&str, &str)],
    ) -> Out {
        let _ = std::fs::remove_file(dir.root.join("audit.jsonl"));
        run_in_netns(&self.corp, dir, profile, extra, script, env)
    }
}

impl Drop for Corp {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.corp])
            .status();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.net.ns));
    }
}

fn audit_text(dir: &Dir) -> String {
    std::fs::read_to_string(dir.root.join("audit.jsonl")).unwrap_or_default()
}

const FETCH: &str = "curl -sSk https://allowed.test/ && curl -sS http://allowed.test/p && \
                     curl -sSk --noproxy '*' https://allowed.test/t";

#[test]
fn allowed_connections_leave_through_the_upstream_and_only_through_it() {
    if !needs_root() {
        return;
    }
    for uid in egress_users() {
        let corp = Corp::new(false);
        let dir = Dir::new(uid);
        // Without the upstream the web servers are out of reach from `corp`: 502.
        let out = corp.run(
            &dir,
            PROFILE,
            &[],
            "curl -sk -o /dev/null -w '%{http_connect}\\n' https://allowed.test/",
            &[],
        );
        assert_eq!(out.stdout(), "502\n", "as uid {uid}: {}", out.stderr());
        assert_eq!(corp.net.log("web.log"), "");

        // With it: the explicit CONNECT, plain HTTP through the proxy, and captured TLS.
        let out = corp.run(&dir, PROFILE, &["--upstream-proxy", PROXY], FETCH, &[]);
        assert_eq!(
            out.ok(),
            "hello from allowed.test over https\nhello from allowed.test over http\n\
             hello from allowed.test over https\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        assert_eq!(
            corp.net.log("web.log"),
            "https allowed.test /\nhttp allowed.test /p\nhttps allowed.test /t\n"
        );
        // By name: only the upstream resolves outside names on such networks.
        assert_eq!(
            corp.proxy_requests(),
            [
                "CONNECT allowed.test:443 HTTP/1.1",
                "CONNECT allowed.test:80 HTTP/1.1",
                "CONNECT allowed.test:443 HTTP/1.1",
            ],
            "as uid {uid}"
        );
        let ev = audit_events(&dir);
        let allowed = find(
            &ev,
            "connect",
            &[("dest_name", "allowed.test"), ("decision", "allow")],
        );
        assert_eq!(allowed.len(), 3, "{ev:#?}");
        // Every connection is closed in the log with the bytes it carried.
        for c in &allowed {
            let conn = c["conn"].to_string();
            let close = find(&ev, "close", &[("conn", conn.as_str())]);
            assert_eq!(close.len(), 1, "{ev:#?}");
            assert!(close[0]["bytes_down"].as_u64().unwrap() > 30, "{close:?}");
        }

        // A name the local resolver does not know goes to the upstream by name, which
        // resolves it (twice: the second time without asking the local resolver again).
        let out = corp.run(
            &dir,
            PROFILE,
            &["--upstream-proxy", PROXY],
            "curl -sSk https://inside.corp.test/ https://inside.corp.test/again",
            &[],
        );
        assert_eq!(
            out.ok(),
            "hello from inside.corp.test over https\nhello from inside.corp.test over https\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        assert_eq!(
            corp.proxy_requests()[3..],
            [
                "CONNECT inside.corp.test:443 HTTP/1.1",
                "CONNECT inside.corp.test:443 HTTP/1.1"
            ]
        );
        assert_eq!(
            corp.net
                .log("dns.log")
                .matches("inside.corp.test 1")
                .count(),
            1,
            "{}",
            corp.net.log("dns.log")
        );

        // Decisions do not change: a name the allowlist lacks and an allowed name resolving
        // to a special address are refused here (403) and never reach the upstream.
        let before = corp.proxy_requests().len();
        let out = corp.run(
            &dir,
            PROFILE,
            &["--upstream-proxy", PROXY],
            "curl -sk -o /dev/null -w '%{http_connect}\\n' https://denied.test/; \
             curl -sk -o /dev/null -w '%{http_connect}\\n' https://meta.test/; \
             curl -sk -o /dev/null -w '%{http_connect}\\n' https://198.51.100.7/",
            &[],
        );
        assert_eq!(
            out.stdout(),
            "403\n403\n403\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        assert_eq!(
            corp.proxy_requests().len(),
            before,
            "{:?}",
            corp.proxy_requests()
        );
        let ev = audit_events(&dir);
        let meta = find(
            &ev,
            "connect",
            &[("dest_name", "meta.test"), ("decision", "deny")],
        );
        assert!(
            meta[0]["reason"]
                .as_str()
                .unwrap()
                .contains("169.254.169.254 (link-local)"),
            "{ev:#?}"
        );
        assert_eq!(
            find(
                &ev,
                "connect",
                &[("dest_name", "denied.test"), ("decision", "deny")]
            )
            .len(),
            1,
            "{ev:#?}"
        );
    }
}

#[test]
fn the_profile_key_and_the_environment_choose_the_upstream() {
    if !needs_root() {
        return;
    }
    let corp = Corp::new(false);
    let dir = Dir::new(NOBODY);
    let curl = "curl -sSk https://allowed.test/";
    // network.upstream_proxy in the profile.
    let with_key = format!("{PROFILE}  upstream_proxy: {PROXY}\n");
    let out = corp.run(&dir, &with_key, &[], curl, &[]);
    assert_eq!(
        out.ok(),
        "hello from allowed.test over https\n",
        "{}",
        out.stderr()
    );
    // STEPJAIL_UPSTREAM_PROXY.
    let out = corp.run(
        &dir,
        PROFILE,
        &[],
        curl,
        &[("STEPJAIL_UPSTREAM_PROXY", PROXY)],
    );
    assert_eq!(
        out.ok(),
        "hello from allowed.test over https\n",
        "{}",
        out.stderr()
    );
    // The caller's HTTPS_PROXY, only when asked for.
    let env = [("HTTPS_PROXY", PROXY)];
    let out = corp.run(&dir, PROFILE, &["--upstream-proxy-from-env"], curl, &env);
    assert_eq!(
        out.ok(),
        "hello from allowed.test over https\n",
        "{}",
        out.stderr()
    );
    assert_eq!(
        corp.proxy_requests().len(),
        3,
        "{:?}",
        corp.proxy_requests()
    );
    let out = corp.run(
        &dir,
        PROFILE,
        &[],
        "curl -sk -o /dev/null -w '%{http_connect}\\n' https://allowed.test/",
        &env,
    );
    assert_eq!(out.stdout(), "502\n", "{}", out.stderr());
    // NO_PROXY sends a destination direct (here: unreachable, so 502, and not proxied).
    let env = [("HTTPS_PROXY", PROXY), ("NO_PROXY", ".test")];
    let out = corp.run(
        &dir,
        PROFILE,
        &["--upstream-proxy-from-env"],
        "curl -sk -o /dev/null -w '%{http_connect}\\n' https://allowed.test/",
        &env,
    );
    assert_eq!(out.stdout(), "502\n", "{}", out.stderr());
    assert_eq!(
        corp.proxy_requests().len(),
        3,
        "{:?}",
        corp.proxy_requests()
    );
    // A profile key with a bad value is an error at its file:line:col.
    let bad = format!("{PROFILE}  upstream_proxy: https://198.51.100.20:3128\n");
    let out = corp.run(&dir, &bad, &[], "true", &[]);
    assert_eq!(out.code(), 2, "{}", out.stderr());
    assert!(
        out.stderr()
            .contains("profile.yml:9:19: `network.upstream_proxy`: https:// upstream"),
        "{}",
        out.stderr()
    );
    // Credentials never belong in a profile, and the message does not repeat them.
    let bad = format!("{PROFILE}  upstream_proxy: http://{USER}:{PASSWORD}@198.51.100.20:3128\n");
    let out = corp.run(&dir, &bad, &[], "true", &[]);
    assert_eq!(out.code(), 2, "{}", out.stderr());
    assert!(
        out.stderr()
            .contains("credentials do not belong in a profile"),
        "{}",
        out.stderr()
    );
    assert!(!out.stderr().contains(PASSWORD), "{}", out.stderr());
}

#[test]
fn an_unreachable_or_refusing_upstream_fails_closed_with_502() {
    if !needs_root() {
        return;
    }
    for uid in egress_users() {
        let corp = Corp::new(true);
        let dir = Dir::new(uid);
        let curl = "curl -sk -o /dev/null -w '%{http_connect}\\n' https://allowed.test/";
        // Nothing listens on 3999: the step's connection fails, nothing goes direct.
        let out = corp.run(
            &dir,
            PROFILE,
            &["--upstream-proxy", "http://198.51.100.20:3999"],
            curl,
            &[],
        );
        assert_eq!(out.stdout(), "502\n", "as uid {uid}: {}", out.stderr());
        assert!(
            out.stderr()
                .contains("upstream proxy http://198.51.100.20:3999: cannot connect"),
            "{}",
            out.stderr()
        );
        // The proxy wants credentials and gets none: its status is in the reason.
        let out = corp.run(&dir, PROFILE, &["--upstream-proxy", PROXY], curl, &[]);
        assert_eq!(out.stdout(), "502\n", "as uid {uid}: {}", out.stderr());
        let ev = audit_events(&dir);
        let refused = find(&ev, "connect", &[("dest_name", "allowed.test")]);
        let reason = refused[0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("upstream proxy http://198.51.100.20:3128: answered `HTTP/1.0 407")
                && reason.contains("it wants credentials"),
            "{reason}"
        );
        assert_eq!(corp.net.log("web.log"), "");
    }
}

#[test]
fn upstream_credentials_are_sent_and_never_shown() {
    if !needs_root() {
        return;
    }
    for uid in egress_users() {
        let corp = Corp::new(true);
        let dir = Dir::new(uid);
        let with_creds = format!("http://{USER}:{PASSWORD}@198.51.100.20:3128");
        let script = format!("{FETCH} && env | grep -c {PASSWORD}; true");
        let out = corp.run(
            &dir,
            PROFILE,
            &["-v"],
            &script,
            &[("STEPJAIL_UPSTREAM_PROXY", with_creds.as_str())],
        );
        assert_eq!(
            out.stdout(),
            "hello from allowed.test over https\nhello from allowed.test over http\n\
             hello from allowed.test over https\n0\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        assert!(
            out.stderr().contains(
                "allowed connections leave through upstream proxy http://198.51.100.20:3128"
            ),
            "{}",
            out.stderr()
        );
        assert_eq!(
            corp.proxy_requests().len(),
            3,
            "{:?}",
            corp.proxy_requests()
        );
        let audit = audit_text(&dir);
        // A wrong password: the upstream refuses, the reason says so, the password is shown
        // nowhere (in plain or base64).
        let wrong = format!("http://{USER}:wrong-{PASSWORD}@198.51.100.20:3128");
        let out2 = corp.run(
            &dir,
            PROFILE,
            &["--upstream-proxy", &wrong],
            "curl -sk -o /dev/null -w '%{http_connect}\\n' https://allowed.test/",
            &[],
        );
        assert_eq!(out2.stdout(), "502\n", "{}", out2.stderr());
        assert!(
            out2.stderr().contains("the credentials were refused"),
            "{}",
            out2.stderr()
        );
        // base64("builder:s3cret-Pw") and the wrong one, as sent in Proxy-Authorization.
        let sent = [
            "YnVpbGRlcjpzM2NyZXQtUHc=",
            "YnVpbGRlcjp3cm9uZy1zM2NyZXQtUHc=",
        ];
        for text in [out.stderr(), out2.stderr(), audit, audit_text(&dir)] {
            assert!(!text.contains(PASSWORD), "{text}");
            assert!(!sent.iter().any(|b| text.contains(b)), "{text}");
        }
    }
}

/// A host a brokered secret is bound to is intercepted as usual, and the TLS to the real host
/// runs inside the upstream's tunnel: the value reaches the host, the step holds a placeholder.
#[test]
fn brokered_secrets_reach_their_host_through_the_upstream() {
    if !needs_root() {
        return;
    }
    const VALUE: &str = "ech0_Up5tr3amBr0k3r3dV4lu3";
    let corp = Corp::new(false);
    let dir = Dir::new(NOBODY);
    let profile = "name: echo\ndescription: talks to the echo service\nextends: default\n\
                   network:\n  allow: [echo.test]\nsecrets:\n  ECHO_TOKEN: { broker: [echo.test] }\n";
    let file = dir.write(
        "home/secrets.json",
        &format!("{{\"ECHO_TOKEN\": \"{VALUE}\"}}"),
    );
    let ca = corp.net.logs.join("ca.pem");
    let out = corp.run(
        &dir,
        profile,
        &["--secrets-file", file.to_str().unwrap(), "--upstream-proxy", PROXY],
        "curl -s -o /dev/null -w '%{http_code}\\n' https://echo.test/auth \
         -H \"Authorization: Bearer $ECHO_TOKEN\"; test \"$ECHO_TOKEN\" != '' && echo placeholder-set",
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    assert_eq!(out.stdout(), "200\nplaceholder-set\n", "{}", out.stderr());
    assert_eq!(corp.proxy_requests(), ["CONNECT echo.test:443 HTTP/1.1"]);
    assert!(
        corp.net
            .log("requests.log")
            .contains(&format!("https echo.test GET /auth auth=Bearer {VALUE}")),
        "{}",
        corp.net.log("requests.log")
    );
}
