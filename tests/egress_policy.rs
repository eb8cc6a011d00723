//! The `network:` section of profiles through the library API: what a good file turns into, and
//! the exact message (file, line, column, key) for each kind of bad rule.

use stepjail::policy::egress::{DenyReason, NameDecision};
use stepjail::policy::model::{NetworkMode, Profile, RuleTarget};
use stepjail::policy::{PolicyError, check_file, load_file};

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A profile file `name: x` with `network:` set to `network` (indented by the caller).
fn with_network(network: &str) -> String {
    format!("name: x\ndescription: d\nnetwork:\n{network}")
}

fn load(text: &str) -> Result<Profile, PolicyError> {
    let files = Files::new();
    load_file(&files.write("p.yml", text))
}

/// The error message with the file path replaced by `FILE`.
fn err(text: &str) -> String {
    let files = Files::new();
    let p = files.write("p.yml", text);
    let e = load_file(&p).expect_err("expected an error").to_string();
    e.replace(&p.display().to_string(), "FILE")
}

const DOCUMENTED: &str = r#"name: web
description: the documented example
network:
  mode: enforce
  allow:
    - index.crates.io:443
    - registry.npmjs.org
    - "*.githubusercontent.com:443"
    - { host: github.com, ports: [443, 80] }
    - { cidr: 203.0.113.0/24, ports: [443] }
    - { cidr: "2001:db8::/32", ports: [8080] }
    - Bücher.Example.
"#;

#[test]
fn the_documented_shape_loads() {
    let p = load(DOCUMENTED).unwrap();
    assert_eq!(p.network().mode, NetworkMode::Enforce);
    let rules: Vec<(&RuleTarget, &[u16], &str, usize, usize)> = p
        .network()
        .allow
        .iter()
        .map(|r| {
            (
                &r.target,
                r.ports.as_slice(),
                r.text.as_str(),
                r.at.line,
                r.at.column,
            )
        })
        .collect();
    let exact = |s: &str| RuleTarget::Exact(s.into());
    let cidr = |s: &str| RuleTarget::Cidr(s.parse().unwrap());
    assert_eq!(
        rules,
        [
            (
                &exact("index.crates.io"),
                &[443][..],
                "index.crates.io:443",
                6,
                7
            ),
            (
                &exact("registry.npmjs.org"),
                &[443][..],
                "registry.npmjs.org:443",
                7,
                7
            ),
            (
                &RuleTarget::Suffix(".githubusercontent.com".into()),
                &[443][..],
                "*.githubusercontent.com:443",
                8,
                7
            ),
            (
                &exact("github.com"),
                &[80, 443][..],
                "github.com:80,443",
                9,
                7
            ),
            (
                &cidr("203.0.113.0/24"),
                &[443][..],
                "203.0.113.0/24:443",
                10,
                7
            ),
            (
                &cidr("2001:db8::/32"),
                &[8080][..],
                "[2001:db8::/32]:8080",
                11,
                7
            ),
            (
                &exact("xn--bcher-kva.example"),
                &[443][..],
                "xn--bcher-kva.example:443",
                12,
                7
            ),
        ]
    );
    assert_eq!(p.network().allow[3].key, "network.allow[3]");

    let n = &p.network();
    let allowed = |rule: &str| NameDecision::Allowed { rule: rule.into() };
    assert_eq!(
        n.decide_name("bücher.example", 443),
        allowed("xn--bcher-kva.example:443")
    );
    assert_eq!(
        n.decide_name("GitHub.com.", 80),
        allowed("github.com:80,443")
    );
    assert_eq!(
        n.decide_name("github.com", 22),
        NameDecision::Denied {
            reason: DenyReason::PortNotAllowed {
                host: "github.com".into(),
                port: 22,
                allowed: vec![80, 443],
            }
        }
    );
    assert_eq!(
        n.decide_name("github.com", 22),
        n.decide_name("GITHUB.COM", 22)
    );
    assert_eq!(
        n.decide_ip("203.0.113.9".parse().unwrap(), 443),
        allowed("203.0.113.0/24:443")
    );
    assert_eq!(
        n.decide_name("[2001:db8::1]", 8080),
        allowed("[2001:db8::/32]:8080")
    );
    assert_eq!(
        n.decide_name("githubusercontent.com", 443),
        NameDecision::Denied {
            reason: DenyReason::NotAllowed
        }
    );
}

#[test]
fn mode_defaults_from_allow() {
    let mode = |network: &str| load(&with_network(network)).unwrap().network().mode;
    assert_eq!(mode("  allow: [example.com]\n"), NetworkMode::Enforce);
    // An empty list is still an allow list: enforce, nothing reachable.
    assert_eq!(mode("  allow: []\n"), NetworkMode::Enforce);
    assert_eq!(
        mode("  mode: audit\n  allow: [example.com]\n"),
        NetworkMode::Audit
    );
    assert_eq!(mode("  mode: audit\n"), NetworkMode::Audit);
    assert_eq!(mode("  mode: enforce\n"), NetworkMode::Enforce);
    assert_eq!(mode("  mode: none\n"), NetworkMode::None);
    assert_eq!(mode("  mode: none\n  allow: []\n"), NetworkMode::None);
    assert_eq!(mode("  {}\n"), NetworkMode::None);
    let empty = load(&with_network("  allow: []\n"))
        .unwrap()
        .network()
        .clone();
    assert_eq!(
        empty.decide_name("example.com", 443),
        NameDecision::Denied {
            reason: DenyReason::NotAllowed
        }
    );
}

#[test]
fn extends_concatenates_allow_and_derives_mode() {
    let files = Files::new();
    files.write(
        "base.yml",
        "name: base\ndescription: d\nnetwork:\n  allow: [a.example, b.example:8443]\n",
    );
    files.write(
        "audit.yml",
        "name: audit\ndescription: d\nnetwork:\n  mode: audit\n",
    );
    let child = files.write(
        "child.yml",
        "name: child\ndescription: d\nextends: base.yml\nnetwork:\n  allow: [c.example, A.Example., { host: b.example, ports: [8443] }]\n",
    );
    let p = load_file(&child).unwrap();
    let texts: Vec<&str> = p.network().allow.iter().map(|r| r.text.as_str()).collect();
    // Parent first; duplicates by canonical text (however spelled) kept once.
    assert_eq!(texts, ["a.example:443", "b.example:8443", "c.example:443"]);
    assert_eq!(p.network().mode, NetworkMode::Enforce);
    assert!(p.network().allow[0].at.file.ends_with("base.yml"));

    // The built-in `offline` says `none`; a child that adds hosts is enforced.
    let off = files.write(
        "off.yml",
        "name: off\ndescription: d\nextends: offline\nnetwork:\n  allow: [a.example]\n",
    );
    assert_eq!(
        load_file(&off).unwrap().network().mode,
        NetworkMode::Enforce
    );

    // An audit parent stays audit when a child adds hosts; a child can switch it to enforce.
    let a = files.write(
        "a.yml",
        "name: a\ndescription: d\nextends: audit.yml\nnetwork:\n  allow: [a.example]\n",
    );
    assert_eq!(load_file(&a).unwrap().network().mode, NetworkMode::Audit);
    let e = files.write(
        "e.yml",
        "name: e\ndescription: d\nextends: a.yml\nnetwork:\n  mode: enforce\n",
    );
    let p = load_file(&e).unwrap();
    assert_eq!(p.network().mode, NetworkMode::Enforce);
    assert_eq!(p.network().allow.len(), 1);

    // A child without a network section inherits everything.
    let plain = files.write("plain.yml", "name: plain\ndescription: d\nextends: cargo\n");
    let p = load_file(&plain).unwrap();
    assert_eq!(p.network().mode, NetworkMode::Enforce);
    assert_eq!(p.network().allow.len(), 2);
}

#[test]
fn mode_none_with_allow_is_a_contradiction() {
    assert_eq!(
        err(&with_network("  mode: none\n  allow:\n    - a.example\n")),
        "FILE:4:9: `network.mode` (none) contradicts `network.allow[0]` (a.example:443, line 6): mode `none` reaches nothing, so no allow rule could apply (drop `mode: none`, or extend a profile without `allow`)"
    );
    // Across files: the child's `none` against the built-in parent's rules.
    let e = err("name: x\ndescription: d\nextends: cargo\nnetwork:\n  mode: none\n");
    assert!(
        e.starts_with("FILE:5:9: `network.mode` (none) contradicts `network.allow[0]` (index.crates.io:443, builtin:cargo:"),
        "{e}"
    );
}

#[test]
fn unknown_mode_lists_the_modes() {
    assert_eq!(
        err(&with_network("  mode: open\n")),
        "FILE:4:9: `network.mode`: expected `none`, `enforce` or `audit`, found `open`"
    );
    assert_eq!(
        err(&with_network("  mode: [none]\n")),
        "FILE:4:9: `network.mode`: expected `none`, `enforce` or `audit`, found a list"
    );
}

#[test]
fn bad_host_rules_name_the_entry() {
    let cases: &[(&str, &str)] = &[
        (
            "1.2.3.4",
            "FILE:5:7: `network.allow[0]` (1.2.3.4): an IP address in a host rule; use { cidr: 1.2.3.4/32 } for addresses",
        ),
        (
            "1.2.3.4:443",
            "FILE:5:7: `network.allow[0]` (1.2.3.4:443): an IP address in a host rule; use { cidr: 1.2.3.4/32 } for addresses",
        ),
        (
            "'[2001:db8::1]:443'",
            "FILE:5:7: `network.allow[0]` ([2001:db8::1]:443): an IP address in a host rule; use { cidr: \"2001:db8::1/128\" } for addresses",
        ),
        (
            "'::1'",
            "FILE:5:7: `network.allow[0]` (::1): an IP address in a host rule; use { cidr: \"::1/128\" } for addresses",
        ),
        (
            "'2130706433'",
            "FILE:5:7: `network.allow[0]` (2130706433): the last label `2130706433` is a number, so resolvers would read the name as an IPv4 address",
        ),
        (
            "'*'",
            "FILE:5:7: `network.allow[0]` (*): `*` alone would allow every host; list the hosts (`mode: audit` shows which are used)",
        ),
        (
            "'*:443'",
            "FILE:5:7: `network.allow[0]` (*:443): `*` alone would allow every host; list the hosts (`mode: audit` shows which are used)",
        ),
        (
            "'api.*.example.com'",
            "FILE:5:7: `network.allow[0]` (api.*.example.com): `*` is only allowed as the whole first label (`*.example.com`)",
        ),
        (
            "'*example.com'",
            "FILE:5:7: `network.allow[0]` (*example.com): `*` is only allowed as the whole first label (`*.example.com`)",
        ),
        (
            "a..example",
            "FILE:5:7: `network.allow[0]` (a..example): empty label (two dots in a row, or a leading dot)",
        ),
        (
            "under_score.example",
            "FILE:5:7: `network.allow[0]` (under_score.example): `_` is not allowed in a host name (letters, digits, `-` and `.` only)",
        ),
        (
            "https://example.com",
            "FILE:5:7: `network.allow[0]` (https://example.com): a URL; a rule names a host and port, like `example.com` (port 443) or `example.com:80`",
        ),
        (
            "example.com:0",
            "FILE:5:7: `network.allow[0]` (example.com:0): port `0` is not a number from 1 to 65535 (write { host: example.com, ports: [...] } for several ports)",
        ),
        (
            "example.com:65536",
            "FILE:5:7: `network.allow[0]` (example.com:65536): port `65536` is not a number from 1 to 65535 (write { host: example.com, ports: [...] } for several ports)",
        ),
        (
            "'example.com:'",
            "FILE:5:7: `network.allow[0]` (example.com:): port `` is not a number from 1 to 65535 (write { host: example.com, ports: [...] } for several ports)",
        ),
        ("''", "FILE:5:7: `network.allow[0]` (): empty host name"),
    ];
    for (rule, want) in cases {
        let text = with_network(&format!("  allow:\n    - {rule}\n"));
        assert_eq!(err(&text), *want, "{rule}");
    }
    // Unquoted, `host:` is a YAML mapping, not a rule with an empty port.
    assert_eq!(
        err(&with_network("  allow:\n    - example.com:\n")),
        "FILE:5:7: unknown key `example.com` in `network.allow[0]` (expected one of: host, cidr, ports, methods, paths, raw_tcp)"
    );

    let long = format!("{}.example", "a".repeat(64));
    assert_eq!(
        err(&with_network(&format!(
            "  allow:\n    - ok.example\n    - {long}\n"
        ))),
        format!(
            "FILE:6:7: `network.allow[1]` ({long}): label `aaaaaaaaaaaaaaaaaaaa...` is 64 characters long; at most 63"
        )
    );
    let long = format!("{0}.{0}.{0}.{1}.example", "a".repeat(63), "a".repeat(54));
    assert_eq!(long.len(), 254);
    assert_eq!(
        err(&with_network(&format!("  allow: [{long}]\n"))),
        format!("FILE:4:11: `network.allow[0]` ({long}): name is 254 characters long; at most 253")
    );
}

#[test]
fn bad_mapping_rules_point_at_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            "{ host: github.com, ports: [443, 0] }",
            "FILE:5:40: `network.allow[0].ports[1]`: expected a port number from 1 to 65535, found `0`",
        ),
        (
            "{ host: github.com, ports: [70000] }",
            "FILE:5:35: `network.allow[0].ports[0]`: expected a port number from 1 to 65535, found `70000`",
        ),
        (
            "{ host: github.com, ports: [https] }",
            "FILE:5:35: `network.allow[0].ports[0]`: expected a port number from 1 to 65535, found `https`",
        ),
        (
            "{ host: github.com, ports: [] }",
            "FILE:5:7: `network.allow[0].ports` ([]): an empty list allows nothing; list at least one port, or drop the rule",
        ),
        (
            "{ host: github.com, ports: 443 }",
            "FILE:5:34: `network.allow[0].ports`: expected a list of ports, like [443] or [80, 443], found `443`",
        ),
        (
            "{ host: 'github.com:443' }",
            "FILE:5:15: `network.allow[0].host` (github.com:443): a host name without `:port` (ports go under `ports:`)",
        ),
        (
            "{ host: 10.0.0.1 }",
            "FILE:5:15: `network.allow[0].host` (10.0.0.1): an IP address in a host rule; use { cidr: 10.0.0.1/32 } for addresses",
        ),
        (
            "{ host: github.com, cidr: 203.0.113.0/24 }",
            "FILE:5:33: `network.allow[0].cidr` (203.0.113.0/24): a rule has `host:` or `cidr:`, not both (this one also has host `github.com`); write two rules",
        ),
        (
            "{ ports: [443] }",
            "FILE:5:7: missing key `host` in `network.allow[0]` (a rule mapping needs `host:` (a name) or `cidr:` (an address range))",
        ),
        (
            "{ host: github.com, prots: [443] }",
            "FILE:5:27: unknown key `prots` in `network.allow[0]` (expected one of: host, cidr, ports, methods, paths, raw_tcp)",
        ),
        (
            "{ cidr: 203.0.113.5/24 }",
            "FILE:5:15: `network.allow[0].cidr` (203.0.113.5/24): has address bits set after the /24 prefix; the range is 203.0.113.0/24",
        ),
        (
            "{ cidr: 0.0.0.0/0 }",
            "FILE:5:15: `network.allow[0].cidr` (0.0.0.0/0): a /0 range allows every address, loopback and cloud metadata included; name the ranges the step needs",
        ),
        (
            "{ cidr: '::/0' }",
            "FILE:5:15: `network.allow[0].cidr` (::/0): a /0 range allows every address, loopback and cloud metadata included; name the ranges the step needs",
        ),
        (
            "{ cidr: 10.0.0.0/33 }",
            "FILE:5:15: `network.allow[0].cidr` (10.0.0.0/33): not an address range like 203.0.113.0/24 or 2001:db8::/32 (names go under `host:`)",
        ),
        (
            "{ cidr: example.com }",
            "FILE:5:15: `network.allow[0].cidr` (example.com): not an address range like 203.0.113.0/24 or 2001:db8::/32 (names go under `host:`)",
        ),
    ];
    for (rule, want) in cases {
        let text = with_network(&format!("  allow:\n    - {rule}\n"));
        assert_eq!(err(&text), *want, "{rule}");
    }
}

#[test]
fn wrong_yaml_kinds_say_what_a_rule_looks_like() {
    assert_eq!(
        err(&with_network("  allow: example.com\n")),
        "FILE:4:10: `network.allow`: expected a list of rules, like [example.com:443, \"*.example.com\", { host: example.com, ports: [80, 443] }], found `example.com`"
    );
    assert_eq!(
        err(&with_network("  allow:\n    - 2130706433\n")),
        "FILE:5:7: `network.allow[0]`: expected a rule: `host:port` text, or a mapping with `host:` or `cidr:` and `ports:`, found `2130706433`"
    );
    assert_eq!(
        err(&with_network("  allow:\n    - [a.example]\n")),
        "FILE:5:7: `network.allow[0]`: expected a rule: `host:port` text, or a mapping with `host:` or `cidr:` and `ports:`, found a list"
    );
    assert_eq!(
        err(&with_network("  allow:\n    - { host: [a.example] }\n")),
        "FILE:5:15: `network.allow[0].host`: expected a host name like `example.com` or `*.example.com`, found a list"
    );
    assert_eq!(
        err(&with_network("  alow: []\n")),
        "FILE:4:3: unknown key `alow` in `network` (expected one of: mode, allow, upstream_proxy, max_connections)"
    );
}

#[test]
fn single_addresses_and_duplicates() {
    let p = load(&with_network(
        "  allow:\n    - { cidr: 192.0.2.7 }\n    - { cidr: '2001:db8::7' }\n    - { cidr: 192.0.2.7/32, ports: [443, 443] }\n    - a.example\n    - A.EXAMPLE:443\n",
    ))
    .unwrap();
    let texts: Vec<&str> = p.network().allow.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(
        texts,
        ["192.0.2.7/32:443", "[2001:db8::7/128]:443", "a.example:443"]
    );
}

#[test]
fn inline_profiles_in_a_policy_file_get_prefixed_keys() {
    let files = Files::new();
    let p = files.write(
        "stepjail.yml",
        "version: 1\nprofiles:\n  ci:\n    description: d\n    network:\n      allow: [1.2.3.4]\n",
    );
    assert_eq!(
        check_file(&p).unwrap_err().to_string(),
        format!(
            "{}:6:15: `profiles.ci.network.allow[0]` (1.2.3.4): an IP address in a host rule; use {{ cidr: 1.2.3.4/32 }} for addresses",
            p.display()
        )
    );
    let p = files.write(
        "stepjail2.yml",
        "version: 1\nprofiles:\n  ci:\n    description: d\n    extends: npm\n    network:\n      mode: none\n",
    );
    let e = check_file(&p).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}:7:13: `profiles.ci.network.mode` (none) contradicts `network.allow[0]` (registry.npmjs.org:443, builtin:npm:",
            p.display()
        )),
        "{e}"
    );
}

/// `raw_tcp: true` on a host rule lets a CONNECT tunnel to it carry a protocol that is neither
/// TLS nor HTTP; the canonical text says so, and `false` is the same as leaving it out.
#[test]
fn raw_tcp_is_an_explicit_opt_in_on_host_rules() {
    let p = load(&with_network(
        "  allow:\n    - { host: git.example.com, ports: [9418], raw_tcp: true }\n    - { host: other.example, raw_tcp: false }\n",
    ))
    .unwrap();
    let got: Vec<(&str, bool)> = p
        .network()
        .allow
        .iter()
        .map(|r| (r.text.as_str(), r.raw_tcp))
        .collect();
    assert_eq!(
        got,
        [
            ("git.example.com:9418 raw_tcp", true),
            ("other.example:443", false)
        ]
    );
    assert_eq!(
        p.network().raw_tcp_rule("git.example.com", 9418).as_deref(),
        Some("git.example.com:9418 raw_tcp")
    );
    assert_eq!(p.network().raw_tcp_rule("git.example.com", 443), None);
    assert_eq!(p.network().raw_tcp_rule("other.example", 443), None);
    let cases: &[(&str, &str)] = &[
        (
            "{ host: git.example.com, raw_tcp: yes }",
            "FILE:5:41: `network.allow[0].raw_tcp`: expected `true` or `false`, found `yes`",
        ),
        (
            "{ cidr: 203.0.113.0/24, raw_tcp: true }",
            "FILE:5:40: `network.allow[0].raw_tcp` (true): a `cidr:` rule already allows any TCP to its addresses; `raw_tcp` is for `host:` rules",
        ),
        (
            "{ host: a.example, methods: [GET], raw_tcp: true }",
            "FILE:5:51: `network.allow[0].raw_tcp` (true): raw TCP is relayed unread, so methods and paths could not be enforced on it; write the raw ports as a rule of their own",
        ),
    ];
    for (rule, want) in cases {
        let text = with_network(&format!("  allow:\n    - {rule}\n"));
        assert_eq!(err(&text), *want, "{rule}");
    }
}

#[test]
fn max_connections_has_a_default_is_inherited_and_must_be_positive() {
    let files = Files::new();
    let base = files.write(
        "base.yml",
        "name: base\ndescription: d\nnetwork:\n  allow: [a.example]\n  max_connections: 100\n",
    );
    let p = load_file(&base).unwrap();
    assert_eq!(p.network().max_connections(), 100);
    // A child that does not write it keeps the parent's; one that does wins.
    let child = files.write(
        "child.yml",
        "name: child\ndescription: d\nextends: base.yml\nnetwork:\n  allow: [b.example]\n",
    );
    assert_eq!(load_file(&child).unwrap().network().max_connections(), 100);
    let wins = files.write(
        "wins.yml",
        "name: wins\ndescription: d\nextends: base.yml\nnetwork:\n  max_connections: 8\n",
    );
    assert_eq!(load_file(&wins).unwrap().network().max_connections(), 8);
    // Unwritten anywhere: the default.
    let p = load(&with_network("  allow: [a.example]\n")).unwrap();
    assert_eq!(p.network().max_connections, None);
    assert_eq!(p.network().max_connections(), 4096);
    for bad in ["0", "-1", "many", "1.5", "4294967296"] {
        assert_eq!(
            err(&with_network(&format!("  max_connections: {bad}\n"))),
            format!(
                "FILE:4:20: `network.max_connections`: expected a positive integer, like 4096, found `{bad}`"
            ),
        );
    }
}
