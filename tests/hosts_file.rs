//! The host's hosts file, end to end: allowed names it knows are answered from it (before DNS),
//! names the profile does not allow never are, and special-range entries are refused like any
//! DNS answer, with one stderr line naming the cidr rule that would open them. The hosts file
//! is a test file named by `STEPJAIL_HOSTS_FILE`; the "internet" is the tests' own namespace.

mod common;

use common::inet::{Internet, audit_events, egress_users, find, needs_root};
use common::*;

const HOSTS: &str = "\
# the runner's hosts file
192.0.2.10   hostsonly.test  hosts-alias.test   # a name no DNS server knows
192.0.2.11\tallowed.test                        # pinned: DNS says 192.0.2.10
192.0.2.10   secret.test
10.1.2.3     mirror.corp
127.0.0.1    loopy.test
this line is not an entry
fe80::1%lo   zoned.test
";

const PROFILE: &str = "\
name: hosts-test
description: names the hosts file knows
extends: default
network:
  allow:
    - { host: hostsonly.test, ports: [80] }
    - { host: hosts-alias.test, ports: [80] }
    - { host: allowed.test, ports: [80] }
    - { host: mirror.corp, ports: [80] }
    - { host: loopy.test, ports: [80] }
";

/// Prints each name's IPv4 addresses as the step's resolver (the stub) answers them.
const RESOLVE: &str = r#"
import socket, sys
for name in sys.argv[1:]:
    try:
        print(name, sorted({a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET)}))
    except socket.gaierror as e:
        print(name, 'gaierror', e.errno)
"#;

#[test]
fn allowed_names_in_the_hosts_file_are_answered_from_it_before_dns() {
    if !needs_root() {
        return;
    }
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        let hosts = dir.write("hosts", HOSTS);
        dir.write("ws/r.py", RESOLVE);
        let out = net.run_env(
            &dir,
            PROFILE,
            &[],
            &format!(
                "{PYTHON} r.py hostsonly.test hosts-alias.test allowed.test && \
                 curl -sS http://hostsonly.test/proxied && \
                 curl -sS --noproxy '*' http://hosts-alias.test/captured"
            ),
            &[("STEPJAIL_HOSTS_FILE", &hosts)],
        );
        assert_eq!(
            out.ok(),
            "hostsonly.test ['192.0.2.10']\nhosts-alias.test ['192.0.2.10']\n\
             allowed.test ['192.0.2.11']\n\
             hello from hostsonly.test over http\nhello from hosts-alias.test over http\n",
            "uid {uid}: {}",
            out.stderr()
        );
        let web = net.log("web.log");
        assert!(
            web.contains("http hostsonly.test /proxied")
                && web.contains("http hosts-alias.test /captured"),
            "uid {uid}: {web}"
        );
        // Files before DNS: the upstream resolver never heard of the names the file knows.
        let dns = net.log("dns.log");
        assert!(
            !dns.contains("hostsonly.test")
                && !dns.contains("hosts-alias.test")
                && !dns.contains("allowed.test"),
            "uid {uid}: the upstream resolver saw {dns}"
        );
        let ev = audit_events(&dir);
        let a = find(
            &ev,
            "dns",
            &[
                ("name", "allowed.test"),
                ("qtype", "A"),
                ("decision", "allow"),
            ],
        );
        assert_eq!(
            a[0]["answers"],
            serde_json::json!(["192.0.2.11"]),
            "{ev:#?}"
        );
    }
}

#[test]
fn names_the_profile_does_not_allow_are_not_answered_from_the_hosts_file() {
    if !needs_root() {
        return;
    }
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        let hosts = dir.write("hosts", HOSTS);
        dir.write("ws/r.py", RESOLVE);
        let out = net.run_env(
            &dir,
            PROFILE,
            &[],
            &format!(
                "{PYTHON} r.py secret.test; \
                 curl -s -o /dev/null -w '%{{http_code}}\\n' http://secret.test/x"
            ),
            &[("STEPJAIL_HOSTS_FILE", &hosts)],
        );
        assert_eq!(
            out.stdout(),
            "secret.test gaierror -2\n403\n",
            "uid {uid}: {}",
            out.stderr()
        );
        assert!(
            out.stderr()
                .contains("stepjail: denied DNS A secret.test (not allowed by profile"),
            "uid {uid}: {}",
            out.stderr()
        );
        assert!(!net.log("web.log").contains("secret.test"));
        let ev = audit_events(&dir);
        let q = find(
            &ev,
            "dns",
            &[
                ("name", "secret.test"),
                ("decision", "deny"),
                ("rcode", "NXDOMAIN"),
            ],
        );
        assert!(!q.is_empty(), "{ev:#?}");
        assert_eq!(q[0]["answers"], serde_json::json!([]));
    }
}

/// A hosts entry on a private or loopback address is refused like a DNS answer: the stub
/// drops it and says once, on stderr, which cidr rule would open it; the proxy's dial is a
/// denial (403) naming the same rule. Adding that rule makes the mirror reachable.
#[test]
fn special_hosts_entries_need_a_cidr_rule_and_the_refusal_names_it() {
    if !needs_root() {
        return;
    }
    let rule = "`- { cidr: 10.1.2.3/32, ports: [80] }`";
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        let hosts = dir.write("hosts", HOSTS);
        dir.write("ws/r.py", RESOLVE);
        let script = format!(
            "{PYTHON} r.py mirror.corp mirror.corp loopy.test; \
             curl -s -o /dev/null -w '%{{http_code}}\\n' http://mirror.corp/proxied"
        );
        let out = net.run_env(
            &dir,
            PROFILE,
            &[],
            &script,
            &[("STEPJAIL_HOSTS_FILE", &hosts)],
        );
        assert_eq!(
            out.stdout(),
            "mirror.corp gaierror -5\nmirror.corp gaierror -5\nloopy.test gaierror -5\n403\n",
            "uid {uid}: {}",
            out.stderr()
        );
        let err = out.stderr();
        let stub_line = format!(
            "stepjail: mirror.corp resolved to 10.1.2.3 (private) which is not allowed unless a \
             cidr rule names it: add {rule} to network.allow (removed from the DNS answer; \
             profile 'hosts-test')\n"
        );
        assert_eq!(err.matches(&stub_line).count(), 1, "uid {uid}: {err}");
        assert!(
            err.contains(
                "stepjail: loopy.test resolved to 127.0.0.1 (loopback) which is not allowed \
                 unless a cidr rule names it: add `- { cidr: 127.0.0.1/32, ports: [80] }` to \
                 network.allow (removed from the DNS answer"
            ),
            "uid {uid}: {err}"
        );
        assert!(
            err.contains(&format!(
                "stepjail: denied mirror.corp:80 (resolved to 10.1.2.3 (private) which is not \
                 allowed unless a cidr rule names it: add {rule} to network.allow; profile \
                 'hosts-test')"
            )),
            "uid {uid}: {err}"
        );
        assert!(!net.log("web.log").contains("mirror.corp"));
        let ev = audit_events(&dir);
        let q = find(
            &ev,
            "dns",
            &[
                ("name", "mirror.corp"),
                ("qtype", "A"),
                ("decision", "allow"),
            ],
        );
        assert_eq!(q[0]["answers"], serde_json::json!([]), "{ev:#?}");
        assert!(
            q[0]["reason"].as_str().unwrap().contains("10.1.2.3"),
            "{ev:#?}"
        );
        let c = find(
            &ev,
            "connect",
            &[("dest_name", "mirror.corp"), ("decision", "deny")],
        );
        assert_eq!(c[0]["dest_ip"], "10.1.2.3", "{ev:#?}");

        // The rule the line names opens the mirror, by the proxy and by capture.
        let fixed = format!("{PROFILE}    - {{ cidr: 10.1.2.3/32, ports: [80] }}\n");
        let dir = Dir::new(uid);
        let hosts = dir.write("hosts", HOSTS);
        dir.write("ws/r.py", RESOLVE);
        let out = net.run_env(
            &dir,
            &fixed,
            &[],
            &format!(
                "{PYTHON} r.py mirror.corp && curl -sS http://mirror.corp/proxied && \
                 curl -sS --noproxy '*' http://mirror.corp/captured"
            ),
            &[("STEPJAIL_HOSTS_FILE", &hosts)],
        );
        assert_eq!(
            out.ok(),
            "mirror.corp ['10.1.2.3']\nhello from mirror.corp over http\n\
             hello from mirror.corp over http\n",
            "uid {uid}: {}",
            out.stderr()
        );
        assert!(!out.stderr().contains("resolved to"), "{}", out.stderr());
        let web = net.log("web.log");
        assert!(
            web.contains("http mirror.corp /proxied") && web.contains("http mirror.corp /captured"),
            "uid {uid}: {web}"
        );
    }
}

/// A hosts file named by `STEPJAIL_HOSTS_FILE` that cannot be read stops the run before the
/// step starts, naming the file.
#[test]
fn an_unreadable_hosts_file_is_an_error_naming_it() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    let dir = Dir::new(NOBODY);
    let missing = dir.root.join("no-such-hosts");
    let out = net.run_env(
        &dir,
        PROFILE,
        &[],
        "echo ran",
        &[("STEPJAIL_HOSTS_FILE", &missing)],
    );
    assert_ne!(out.code(), 0);
    assert_eq!(out.stdout(), "");
    assert!(
        out.stderr().contains(&format!(
            "{}: cannot read the hosts file",
            missing.display()
        )),
        "{}",
        out.stderr()
    );
}
