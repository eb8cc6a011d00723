//! Secrets through the public API: the `secrets:`/`env.scrub` profile schema, the secret sources
//! (exact error messages), `resolve`, and masking of output split across writes.

use std::path::PathBuf;

use stepjail::policy::load_file;
use stepjail::policy::model::{Profile, SecretDecl};
use stepjail::secrets::{self, MASK, Masker, SecretValues, encodings, from_dotenv, from_json};

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn profile(text: &str) -> Profile {
    let files = Files::new();
    load_file(&files.write("p.yml", text)).unwrap()
}

fn profile_err(text: &str) -> String {
    let files = Files::new();
    let p = files.write("p.yml", text);
    let e = load_file(&p).unwrap_err().to_string();
    e.replace(&p.display().to_string(), "FILE")
}

const HEAD: &str = "name: t\ndescription: test\n";

fn decl_summary(d: &SecretDecl) -> (String, bool, Vec<String>, usize) {
    (d.name.clone(), d.optional, d.broker.clone(), d.at.line)
}

#[test]
fn secrets_and_scrub_parse_into_the_model() {
    let p = profile(&format!(
        "{HEAD}network:\n  allow: [codecov.io, Uploader.Example.com]\nsecrets:\n  NPM_TOKEN: {{}}\n  SENTRY_DSN: {{ optional: true }}\n  CODECOV_TOKEN: {{ broker: [codecov.io, CODECOV.IO., uploader.example.com] }}\n  BARE:\nenv:\n  pass: [NPM_*]\n  scrub: [MY_DEPLOY_KEY, MY_DEPLOY_KEY, OTHER]\n"
    ));
    let got: Vec<_> = p.secrets().iter().map(decl_summary).collect();
    assert_eq!(
        got,
        vec![
            ("NPM_TOKEN".into(), false, vec![], 6),
            ("SENTRY_DSN".into(), true, vec![], 7),
            (
                "CODECOV_TOKEN".into(),
                false,
                vec!["codecov.io".into(), "uploader.example.com".into()],
                8
            ),
            ("BARE".into(), false, vec![], 9),
        ]
    );
    assert_eq!(p.secrets()[0].key, "secrets.NPM_TOKEN");
    assert_eq!(p.secrets()[0].at.column, 3);
    assert!(p.secrets()[2].is_brokered());
    assert!(!p.secrets()[0].is_brokered());
    assert_eq!(p.env().scrub, ["MY_DEPLOY_KEY", "OTHER"]);
}

#[test]
fn no_secrets_section_means_none() {
    let p = profile(HEAD);
    assert!(p.secrets().is_empty());
    assert!(p.env().scrub.is_empty());
}

#[test]
fn extends_overrides_declarations_by_name_and_concatenates_scrub() {
    let files = Files::new();
    files.write(
        "base.yml",
        "name: base\ndescription: b\nsecrets:\n  A: {}\n  B: { optional: true }\nenv:\n  scrub: [X, Y]\n",
    );
    let child = files.write(
        "child.yml",
        "name: child\ndescription: c\nextends: ./base.yml\nsecrets:\n  B: {}\n  C: { optional: true }\nenv:\n  scrub: [Y, Z]\n",
    );
    let p = load_file(&child).unwrap();
    let got: Vec<_> = p
        .secrets()
        .iter()
        .map(|d| {
            (
                d.name.as_str(),
                d.optional,
                d.at.file.ends_with("child.yml"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("A", false, false), ("B", false, true), ("C", true, true)]
    );
    assert_eq!(p.env().scrub, ["X", "Y", "Z"]);
}

#[test]
fn a_declared_secret_may_also_match_env_pass() {
    let p = profile(&format!(
        "{HEAD}env:\n  pass: [NPM_*, NPM_TOKEN]\nsecrets:\n  NPM_TOKEN: {{}}\n"
    ));
    assert_eq!(p.secrets().len(), 1);
}

#[test]
fn schema_errors_point_at_the_value_and_name_the_key() {
    let cases = [
        (
            "secrets:\n  npm-token: {}\n",
            "FILE:4:3: `secrets`: expected a variable name ([A-Za-z_][A-Za-z0-9_]*) as the key, found `npm-token`",
        ),
        (
            "secrets:\n  A: { optional: yes }\n",
            "FILE:4:18: `secrets.A.optional`: expected `true` or `false`, found `yes`",
        ),
        (
            "secrets:\n  A: { optinal: true }\n",
            "FILE:4:8: unknown key `optinal` in `secrets.A` (expected one of: optional, broker)",
        ),
        (
            "secrets:\n  A: token\n",
            "FILE:4:6: `secrets.A`: expected a declaration: {}, { optional: true } or { broker: [HOST, ...] }, found `token`",
        ),
        (
            "secrets: [A]\n",
            "FILE:3:10: `secrets`: expected a mapping of variable names to declarations, like { NPM_TOKEN: {}, SENTRY_DSN: { optional: true } }, found a list",
        ),
        (
            "secrets:\n  A: {}\n  A: {}\n",
            "FILE:5:3: duplicate key `A` in `secrets` (first written at line 4)",
        ),
        (
            "network:\n  allow: [codecov.io]\nsecrets:\n  A: { broker: codecov.io }\n",
            "FILE:6:16: `secrets.A.broker`: expected a list of host names, like [codecov.io], or a mapping like { hosts: [codecov.io], in: [header:Authorization] }, found `codecov.io`",
        ),
        (
            "secrets:\n  A: { broker: [] }\n",
            "FILE:4:6: `secrets.A.broker` ([]): an empty list binds the secret to no host; drop `broker:` to inject the value into the step instead",
        ),
        (
            "secrets:\n  A: { broker: [\"https://codecov.io/upload\"] }\n",
            "FILE:4:17: `secrets.A.broker[0]` (https://codecov.io/upload): a URL; name the host only, like `codecov.io`",
        ),
        (
            "secrets:\n  A: { broker: [\"*.codecov.io\"] }\n",
            "FILE:4:17: `secrets.A.broker[0]` (*.codecov.io): a wildcard; a secret is bound to exact host names, so that no other name under the domain can receive it",
        ),
        (
            "secrets:\n  A: { broker: [\"codecov.io:443\"] }\n",
            "FILE:4:17: `secrets.A.broker[0]` (codecov.io:443): a port; name the host only, like `codecov.io` (the rules in `network.allow` decide the ports)",
        ),
        (
            "secrets:\n  A: { broker: [203.0.113.7] }\n",
            "FILE:4:17: `secrets.A.broker[0]` (203.0.113.7): an IP address; a secret is bound to a host name, whose certificate the proxy verifies before sending the secret",
        ),
        (
            "secrets:\n  A: { broker: [a..b] }\n",
            "FILE:4:17: `secrets.A.broker[0]` (a..b): not a host name: empty label (two dots in a row, or a leading dot)",
        ),
        (
            "env:\n  scrub: [MY-KEY]\n",
            "FILE:4:11: `env.scrub[0]`: expected a variable name ([A-Za-z_][A-Za-z0-9_]*), or a pattern with `*` like *_authToken, found `MY-KEY`",
        ),
        (
            "env:\n  scrub: MY_KEY\n",
            "FILE:4:10: `env.scrub`: expected a list of variable names or `*` patterns, like [MY_DEPLOY_KEY, \"*_authToken\"], found `MY_KEY`",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(profile_err(&format!("{HEAD}{body}")), expected, "{body}");
    }
}

#[test]
fn broker_places_parse_into_the_model() {
    use stepjail::policy::model::BrokerPlace;
    let p = profile(&format!(
        "{HEAD}network:\n  allow: [api.example.com, b.example.com]\nsecrets:\n  LIST: {{ broker: [api.example.com] }}\n  MAP:\n    broker:\n      hosts: [api.example.com, B.example.com.]\n      in: [\"header:X-Api-Key\", \"query:token\", body, \"header:x-api-key\", \"header:Authorization\"]\n  HOSTS_ONLY: {{ broker: {{ hosts: [b.example.com] }} }}\n  PLAIN: {{}}\n"
    ));
    let places: Vec<(&str, Vec<String>, Vec<BrokerPlace>)> = p
        .secrets()
        .iter()
        .map(|d| (d.name.as_str(), d.broker.clone(), d.broker_in.clone()))
        .collect();
    let auth = || BrokerPlace::Header("authorization".into());
    assert_eq!(
        places,
        [
            ("LIST", vec!["api.example.com".into()], vec![auth()]),
            (
                "MAP",
                vec!["api.example.com".into(), "b.example.com".into()],
                vec![
                    BrokerPlace::Header("x-api-key".into()),
                    BrokerPlace::Query("token".into()),
                    BrokerPlace::Body,
                    auth(),
                ]
            ),
            ("HOSTS_ONLY", vec!["b.example.com".into()], vec![auth()]),
            ("PLAIN", vec![], vec![]),
        ]
    );
    assert_eq!(
        p.secrets()[1]
            .broker_in
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>(),
        [
            "header:x-api-key",
            "query:token",
            "body",
            "header:authorization"
        ]
    );
}

#[test]
fn bad_broker_places_are_refused_with_file_line_and_key() {
    let net = "network:\n  allow: [codecov.io]\n";
    let cases = [
        (
            "secrets:\n  A: { broker: { hosts: [codecov.io], in: [cookie] } }\n",
            "FILE:6:44: `secrets.A.broker.in[0]` (cookie): expected `header:NAME` (a request header), `query:NAME` (a URL query parameter) or `body`",
        ),
        (
            "secrets:\n  A: { broker: { hosts: [codecov.io], in: [body, \"path:x\"] } }\n",
            "FILE:6:50: `secrets.A.broker.in[1]` (path:x): expected `header:NAME` (a request header), `query:NAME` (a URL query parameter) or `body`",
        ),
        (
            "secrets:\n  A: { broker: { hosts: [codecov.io], in: [\"header:X Token\"] } }\n",
            "FILE:6:44: `secrets.A.broker.in[0]` (header:X Token): `X Token` is not a header name (letters, digits and !#$%&'*+-.^_`|~)",
        ),
        (
            "secrets:\n  A: { broker: { hosts: [codecov.io], in: [\"header:\"] } }\n",
            "FILE:6:44: `secrets.A.broker.in[0]` (header:): `` is not a header name (letters, digits and !#$%&'*+-.^_`|~)",
        ),
        (
            "secrets:\n  A: { broker: { hosts: [codecov.io], in: [\"header:Host\"] } }\n",
            "FILE:6:44: `secrets.A.broker.in[0]` (header:Host): `Host` decides where the request goes or how it is framed; a secret cannot be written there",
        ),
        (
            "secrets:\n  A: { broker: { hosts: [codecov.io], in: [\"query:a&b\"] } }\n",
            "FILE:6:44: `secrets.A.broker.in[0]` (query:a&b): `a&b` is not a query parameter name (no spaces, `&`, `=`, `#` or `?`)",
        ),
        (
            "secrets:\n  A: { broker: { hosts: [codecov.io], in: [] } }\n",
            "FILE:6:6: `secrets.A.broker.in` ([]): an empty list names no place to write the value; drop `in:` for the default, the Authorization header",
        ),
        (
            "secrets:\n  A: { broker: { in: [body] } }\n",
            "FILE:6:6: `secrets.A.broker` (hosts): missing; name the hosts the secret is bound to, like `{ hosts: [codecov.io] }`",
        ),
        (
            "secrets:\n  A: { broker: { hosts: [], in: [body] } }\n",
            "FILE:6:6: `secrets.A.broker.hosts` ([]): an empty list binds the secret to no host; drop `broker:` to inject the value into the step instead",
        ),
        (
            "secrets:\n  A: { broker: { hosts: [\"*.codecov.io\"] } }\n",
            "FILE:6:26: `secrets.A.broker.hosts[0]` (*.codecov.io): a wildcard; a secret is bound to exact host names, so that no other name under the domain can receive it",
        ),
        (
            "secrets:\n  A: { broker: { hosts: [codecov.io], inn: [body] } }\n",
            "FILE:6:39: unknown key `inn` in `secrets.A.broker` (expected one of: hosts, in)",
        ),
        (
            "secrets:\n  A: { broker: { hosts: [codecov.io], in: body } }\n",
            "FILE:6:43: `secrets.A.broker.in`: expected a list of places, like [header:Authorization, query:token], found `body`",
        ),
        (
            "secrets:\n  A: { broker: { hosts: codecov.io } }\n",
            "FILE:6:25: `secrets.A.broker.hosts`: expected a list of host names, like [codecov.io], found `codecov.io`",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            profile_err(&format!("{HEAD}{net}{body}")),
            expected,
            "{body}"
        );
    }
}

#[test]
fn self_defeating_secret_declarations_are_refused() {
    assert_eq!(
        profile_err(&format!(
            "{HEAD}env:\n  set:\n    NPM_TOKEN: x\nsecrets:\n  NPM_TOKEN: {{}}\n"
        )),
        "FILE:7:3: `secrets.NPM_TOKEN` (NPM_TOKEN) is also in `env.set.NPM_TOKEN` (line 5): a variable is either a secret (taken from the secret sources) or a fixed `env.set` value, not both"
    );
    assert_eq!(
        profile_err(&format!(
            "{HEAD}secrets:\n  CODECOV_TOKEN: {{ broker: [codecov.io] }}\n"
        )),
        "FILE:4:3: `secrets.CODECOV_TOKEN.broker` (codecov.io): `network.mode` is `none`, so the secret could never be delivered to `codecov.io` (allow `codecov.io` in network.allow)"
    );
    assert_eq!(
        profile_err(&format!(
            "{HEAD}network:\n  allow: [example.com]\nsecrets:\n  CODECOV_TOKEN: {{ broker: [codecov.io] }}\n"
        )),
        "FILE:6:3: `secrets.CODECOV_TOKEN.broker` (codecov.io): no `network.allow` rule reaches `codecov.io`, so the secret could never be delivered (add `codecov.io` to network.allow)"
    );
    // A wildcard rule reaches it; audit mode reaches everything.
    profile(&format!(
        "{HEAD}network:\n  allow: [\"*.codecov.io\"]\nsecrets:\n  T: {{ broker: [api.codecov.io] }}\n"
    ));
    profile(&format!(
        "{HEAD}network:\n  mode: audit\nsecrets:\n  T: {{ broker: [codecov.io] }}\n"
    ));
}

#[test]
fn a_child_may_add_the_rule_a_parents_broker_needs() {
    let files = Files::new();
    files.write(
        "base.yml",
        "name: base\ndescription: b\nnetwork:\n  mode: enforce\nsecrets:\n  T: { broker: [codecov.io] }\n",
    );
    let child = files.write(
        "child.yml",
        "name: child\ndescription: c\nextends: ./base.yml\nnetwork:\n  allow: [codecov.io]\n",
    );
    let p = load_file(&child).unwrap();
    assert_eq!(p.secrets()[0].broker, ["codecov.io"]);
}

#[test]
fn dotenv_and_json_sources() {
    let v = from_dotenv(
        "# CI secrets\nexport NPM_TOKEN=npm_abc\nSENTRY_DSN=\"https://k@sentry.example/1\" # dsn\nMULTI='a\nb'\n",
        "ci.env",
    )
    .unwrap();
    assert_eq!(v.get("NPM_TOKEN"), Some("npm_abc"));
    assert_eq!(v.get("SENTRY_DSN"), Some("https://k@sentry.example/1"));
    assert_eq!(v.get("MULTI"), Some("a\nb"));
    assert_eq!(v.origin(), "ci.env");
    assert_eq!(
        v.names().collect::<Vec<_>>(),
        ["MULTI", "NPM_TOKEN", "SENTRY_DSN"]
    );

    let j = from_json(
        "{\n  \"github_token\": \"ghs_1\",\n  \"NPM_TOKEN\": \"npm_abc\"\n}\n",
        "/dev/fd/3",
    )
    .unwrap();
    assert_eq!(j.get("NPM_TOKEN"), Some("npm_abc"));
    assert_eq!(
        from_json("{\n  \"A\": true\n}", "/dev/fd/3")
            .unwrap_err()
            .to_string(),
        "/dev/fd/3: `A` is a boolean, not a string (secret values must be strings)"
    );
    assert_eq!(
        from_dotenv("A=1\n\n  = value-with-no-key\n", "ci.env")
            .unwrap_err()
            .to_string(),
        "ci.env:3: not a KEY=VALUE line (KEY is a variable name: [A-Za-z_][A-Za-z0-9_]*)"
    );
}

#[test]
fn load_file_reads_a_pipe_once() {
    // What `--secrets-file /dev/fd/N` sees: a pipe, readable once, with no size.
    let (mut reader, mut writer) = std::io::pipe().unwrap();
    let fd = {
        use std::os::fd::AsRawFd;
        reader.as_raw_fd()
    };
    std::thread::spawn(move || {
        use std::io::Write;
        writer
            .write_all(b"  {\"NPM_TOKEN\": \"npm_from_pipe\"}")
            .unwrap();
    });
    let v = secrets::load_file(std::path::Path::new(&format!("/dev/fd/{fd}"))).unwrap();
    assert_eq!(v.get("NPM_TOKEN"), Some("npm_from_pipe"));
    let _ = &mut reader;
}

fn decls(text: &str) -> Vec<SecretDecl> {
    profile(&format!("{HEAD}secrets:\n{text}"))
        .secrets()
        .to_vec()
}

fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn resolve_precedence_and_missing() {
    let d = decls("  A: {}\n  B: {}\n  OPT: { optional: true }\n");
    let file = from_dotenv("A=file-a\n", "ci.env").unwrap();
    let e = env(&[("A", "env-a"), ("B", "env-b"), ("UNDECLARED", "u")]);
    assert_eq!(
        secrets::resolve(&d, Some(&file), &e).unwrap(),
        env(&[("A", "file-a"), ("B", "env-b")])
    );
    assert_eq!(
        secrets::resolve(&d, Some(&file), &env(&[]))
            .unwrap_err()
            .to_string(),
        "secret `B` is declared by the profile but not provided (looked in ci.env, then the invoking environment; an empty value counts as not provided; declare it with `optional: true` to run without it)"
    );
    let empty = SecretValues::new("empty.json");
    assert_eq!(
        secrets::resolve(&d, Some(&empty), &env(&[("OPT", "o")]))
            .unwrap_err()
            .to_string(),
        "secrets `A`, `B` are declared by the profile but not provided (looked in empty.json, then the invoking environment; an empty value counts as not provided; declare it with `optional: true` to run without it)"
    );
    assert_eq!(
        secrets::resolve(&d, None, &env(&[("A", "a"), ("B", "b"), ("OPT", "o")])).unwrap(),
        env(&[("A", "a"), ("B", "b"), ("OPT", "o")])
    );
}

fn mask_chunks(m: &mut Masker, input: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for c in input.chunks(chunk) {
        out.extend(m.feed(c));
    }
    out.extend(m.finish());
    out
}

#[test]
fn masking_a_value_split_at_every_point() {
    for value in [&b"npm_AbC123xyz"[..], b"p@ss w0rd/+", b"\xe2\x82\xacuro"] {
        let input = [b"token: ".to_vec(), value.to_vec(), b"\n".to_vec()].concat();
        for split in 0..=input.len() {
            let mut m = Masker::new(&[value]);
            let mut out = m.feed(&input[..split]);
            out.extend(m.feed(&input[split..]));
            out.extend(m.finish());
            assert_eq!(out, b"token: ***\n", "split at {split}");
        }
    }
}

#[test]
fn masking_encoded_forms() {
    let value = b"ghs_Secret+Value/42";
    let mut m = Masker::with_encodings(&[value]);
    let lines = [
        "raw ghs_Secret+Value/42\n".to_string(),
        "b64 Z2hzX1NlY3JldCtWYWx1ZS80Mg==\n".to_string(),
        "url ghs_Secret%2BValue%2F42\n".to_string(),
        format!(
            "hex {}\n",
            value.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    ];
    let input: String = lines.concat();
    let out = String::from_utf8(mask_chunks(&mut m, input.as_bytes(), 3)).unwrap();
    assert_eq!(out, "raw ***\nb64 ***\nurl ***\nhex ***\n");
    assert!(
        encodings(value)
            .iter()
            .any(|f| f == b"Z2hzX1NlY3JldCtWYWx1ZS80Mg")
    );
    // URL-safe alphabet: `+/` become `-_`.
    assert!(
        encodings(b"\xfb\xff\xfe\xfb")
            .iter()
            .any(|f| f == b"-__--w==")
    );
}

#[test]
fn ten_megabytes_in_any_chunking_equal_one_shot() {
    let values: [&[u8]; 3] = [b"npm_AbC123xyz", b"AbC1", b"sk-live-0000000000000000"];
    // Output that is mostly near-misses, with real occurrences spread through it and across
    // every chunk boundary.
    let mut input = Vec::with_capacity(10 << 20);
    let mut i: u64 = 0;
    while input.len() < 10 << 20 {
        i += 1;
        match i % 7 {
            0 => input.extend_from_slice(b"npm_AbC123xyz"),
            1 => input.extend_from_slice(b"npm_AbC12"),
            2 => input.extend_from_slice(b"sk-live-000000000000000"),
            3 => input.extend_from_slice(b"0000sk-live-0000000000000000"),
            _ => input.extend_from_slice(format!("line {i} AbC\n").as_bytes()),
        }
    }
    let one_shot = mask_chunks(&mut Masker::new(&values), &input, input.len());
    assert!(one_shot.len() < input.len());
    assert!(!one_shot.windows(13).any(|w| w == b"npm_AbC123xyz"));
    assert!(one_shot.windows(MASK.len()).any(|w| w == MASK));
    let start = std::time::Instant::now();
    assert!(mask_chunks(&mut Masker::new(&values), &input, 4096) == one_shot);
    assert!(mask_chunks(&mut Masker::new(&values), &input, 1) == one_shot);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn ci_credentials_list() {
    assert!(secrets::CI_CREDENTIALS.contains(&"GITHUB_TOKEN"));
    assert!(secrets::CI_CREDENTIALS.contains(&"CI_JOB_TOKEN"));
    let d = decls("  GITHUB_TOKEN: {}\n");
    assert!(!secrets::is_scrubbed("GITHUB_TOKEN", &[], &d));
    assert!(secrets::is_scrubbed("ACTIONS_RUNTIME_TOKEN", &[], &d));
}
