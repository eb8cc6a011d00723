//! Secrets through the real binary: only declared secrets reach the step, missing ones stop it
//! before anything runs, CI credentials are scrubbed, and values are masked in its output.

mod common;

use common::*;

const PROFILE: &str = "\
name: secretive
description: declares one required and one optional secret
extends: default
secrets:
  NPM_TOKEN: {}
  SENTRY_DSN: { optional: true }
env:
  pass: [CI, GITHUB_*, ACTIONS_*, EXTRA_*]
  scrub: [EXTRA_DEPLOY_KEY]
";

const VALUE: &str = "npm_Zq8sVv0realvalue42";

fn run(dir: &Dir, extra: &[&str], script: &str) -> Sj {
    let p = dir.write("ws/profile.yml", PROFILE);
    let mut args = vec!["--profile", p.to_str().unwrap()];
    args.extend_from_slice(extra);
    Sj::run(dir, &args, &["sh", "-c", script])
}

#[test]
fn only_declared_secrets_arrive_and_are_masked_in_output() {
    for uid in users() {
        let dir = Dir::new(uid);
        let file = dir.write(
            "home/secrets.env",
            &format!("NPM_TOKEN={VALUE}\nEXTRA_UNDECLARED=from-file\n"),
        );
        let out = run(
            &dir,
            &["--secrets-file", file.to_str().unwrap()],
            // The value printed whole, split across two writes, and base64-encoded.
            "env | grep -E '^(NPM_TOKEN|SENTRY_DSN|EXTRA_|GITHUB_TOKEN|ACTIONS_)' | sort; \
             printf 'split:npm_Zq8sVv0'; sleep 0.2; printf 'realvalue42:end\\n'; \
             printf '%s' \"$NPM_TOKEN\" | base64",
        )
        .env("EXTRA_UNDECLARED", "from-env")
        .env("EXTRA_DEPLOY_KEY", "scrubbed-by-profile")
        .env("EXTRA_FINE", "passed")
        .env("GITHUB_TOKEN", "ghs_never")
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc_never")
        .env("ACTIONS_RUNTIME_TOKEN", "runtime_never")
        .env("ACTIONS_CACHE_URL", "https://cache.invalid/")
        .output();
        // The undeclared name from the secrets file never passes, even though EXTRA_* would.
        assert_eq!(
            out.ok(),
            "EXTRA_FINE=passed\nNPM_TOKEN=***\nsplit:***:end\n***\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        assert!(!out.stderr().contains(VALUE));
    }
}

#[test]
fn without_masking_the_value_is_really_there() {
    let dir = Dir::new(users()[users().len() - 1]);
    let out = run(
        &dir,
        &["--no-mask"],
        "printf '%s\\n' \"$NPM_TOKEN\"; printf '%s\\n' \"${SENTRY_DSN-unset}\"",
    )
    .env("NPM_TOKEN", VALUE)
    .output();
    assert_eq!(out.ok(), format!("{VALUE}\nunset\n"));
}

#[test]
fn json_secrets_as_from_github_tojson() {
    let dir = Dir::new(users()[users().len() - 1]);
    let file = dir.write(
        "home/secrets.json",
        &format!("{{\"NPM_TOKEN\": \"{VALUE}\", \"SENTRY_DSN\": \"https://k@sentry.invalid/1\", \"OTHER\": \"x\"}}"),
    );
    let out = run(
        &dir,
        &["--secrets-file", file.to_str().unwrap(), "--no-mask"],
        "echo \"$NPM_TOKEN $SENTRY_DSN ${OTHER-none}\"",
    )
    .output();
    assert_eq!(
        out.ok(),
        format!("{VALUE} https://k@sentry.invalid/1 none\n")
    );
}

#[test]
fn a_missing_declared_secret_stops_the_step_before_it_runs() {
    for uid in users() {
        let dir = Dir::new(uid);
        let marker = dir.ws.join("ran");
        let out = run(&dir, &[], &format!("touch {}", marker.display())).output();
        assert_eq!(out.code(), 2, "{}", out.stderr());
        assert!(
            out.stderr()
                .contains("secret `NPM_TOKEN` is declared by the profile but not provided"),
            "{}",
            out.stderr()
        );
        assert!(
            !out.stderr().contains("SENTRY_DSN"),
            "optional secrets may be missing"
        );
        assert!(!marker.exists());
    }
}

#[test]
fn a_brokered_secret_is_a_placeholder_and_the_ca_is_trusted_only_inside() {
    let dir = Dir::new(users()[users().len() - 1]);
    let p = dir.write(
        "ws/b.yml",
        "name: b\ndescription: brokered\nextends: default\nnetwork:\n  allow: [codecov.io]\nsecrets:\n  CODECOV_TOKEN: { broker: [codecov.io] }\n",
    );
    let host_bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap();
    let out = Sj::run(
        &dir,
        &["--profile", p.to_str().unwrap(), "--no-mask", "--resolver", "127.0.0.1:9"],
        &["sh", "-c", "echo \"$CODECOV_TOKEN\"; echo \"$SSL_CERT_FILE $CURL_CA_BUNDLE $NODE_EXTRA_CA_CERTS\"; grep -c 'BEGIN CERTIFICATE' \"$SSL_CERT_FILE\"; tail -n 30 \"$SSL_CERT_FILE\" | sed -n '/BEGIN/,/END/p' | sed -n 2p"],
    )
    .env("CODECOV_TOKEN", VALUE)
    .output();
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    // Same length, same prefix, not the value.
    assert_eq!(lines[0].len(), VALUE.len());
    assert!(
        lines[0].starts_with("npm_") && lines[0] != VALUE,
        "{}",
        lines[0]
    );
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    assert_eq!(lines[1], format!("{bundle} {bundle} {bundle}"));
    // Inside, the system bundle plus one certificate: the run's CA.
    let outside = host_bundle.matches("BEGIN CERTIFICATE").count();
    assert_eq!(lines[2], (outside + 1).to_string());
    // The host's trust store is untouched and does not hold that CA.
    assert_eq!(std::fs::read_to_string(bundle).unwrap(), host_bundle);
    assert!(
        !host_bundle.contains(lines[3]),
        "the run's CA is in the host's bundle"
    );
    assert!(!text.contains(VALUE));
}

#[test]
fn a_bad_secrets_file_is_refused_without_printing_values() {
    let dir = Dir::new(users()[users().len() - 1]);
    let file = dir.write(
        "home/bad.env",
        &format!("NPM_TOKEN={VALUE}\nthis line {VALUE} is not KEY=VALUE\n"),
    );
    let out = run(&dir, &["--secrets-file", file.to_str().unwrap()], "true").output();
    assert_eq!(out.code(), 2, "{}", out.stderr());
    assert!(
        out.stderr().contains(&format!("{}:2", file.display())),
        "{}",
        out.stderr()
    );
    assert!(!out.stderr().contains(VALUE), "{}", out.stderr());
}
