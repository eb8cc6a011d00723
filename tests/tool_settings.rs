//! Package managers' settings through the real binary: the built-in profiles pass the tools'
//! registry, CA and toolchain variables (never their credentials), a passed URL holding
//! credentials stops the run, and what a tool would miss or could not use is one warning line
//! at start. pyenv's pip shim exits 0 with read-only shims. Nothing here reaches a network: the
//! steps print their environment, or install from a local wheel.

mod common;

use common::*;

/// The warnings stepjail printed, without the prefix.
fn warnings(out: &Out) -> Vec<String> {
    out.stderr()
        .lines()
        .filter_map(|l| l.strip_prefix("stepjail: warning: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn pip_index_url_reaches_the_step_and_its_host_is_checked_against_the_allowlist() {
    for uid in users() {
        let dir = Dir::new(uid);
        let out = Sj::run(&dir, &["--profile", "pip"], &["printenv", "PIP_INDEX_URL"])
            .env("PIP_INDEX_URL", "https://mirror.corp/simple")
            .output();
        assert_eq!(out.ok(), "https://mirror.corp/simple\n", "uid {uid}");
        assert_eq!(
            warnings(&out),
            [
                "PIP_INDEX_URL (pip's index URL) points at mirror.corp:443, which profile pip does \
              not allow, so those requests will be denied; add `- mirror.corp:443` under \
              network.allow"
            ],
            "uid {uid}"
        );
        // The default index: allowed, no warning.
        let out = Sj::run(&dir, &["--profile", "pip"], &["printenv", "PIP_INDEX_URL"])
            .env("PIP_INDEX_URL", "https://pypi.org/simple")
            .output();
        assert_eq!(out.ok(), "https://pypi.org/simple\n");
        assert_eq!(warnings(&out), Vec::<String>::new());
    }
}

#[test]
fn a_passed_url_with_credentials_stops_the_run_naming_the_variable_not_the_secret() {
    for uid in users() {
        let dir = Dir::new(uid);
        let marker = dir.ws.join("ran");
        let out = Sj::run(
            &dir,
            &["--profile", "npm"],
            &["touch", marker.to_str().unwrap()],
        )
        .env(
            "npm_config_registry",
            "https://deploy:hunter2@npm.corp.example/",
        )
        .output();
        assert_eq!(out.code(), 2, "uid {uid}: {}", out.stderr());
        assert_eq!(
            out.stderr(),
            "stepjail: npm_config_registry holds a URL with credentials \
             (https://***@npm.corp.example); stepjail does not pass credentials in variables: \
             remove them from the URL, or declare npm_config_registry under `secrets:` to hand \
             it to the step as a secret\n"
        );
        assert!(!marker.exists(), "the step ran");
        assert!(!out.stderr().contains("hunter2") && !out.stderr().contains("deploy"));
    }
}

#[test]
fn npm_passes_its_settings_and_node_ca_but_never_its_auth_settings() {
    for uid in users() {
        let dir = Dir::new(uid);
        let out = Sj::run(
            &dir,
            &["--profile", "npm"],
            &[
                "sh",
                "-c",
                "env | grep -iE '^(npm_config|node_extra)' | sort",
            ],
        )
        .env("npm_config_registry", "https://registry.npmjs.org/")
        .env("NPM_CONFIG_FUND", "false")
        .env("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt")
        .env("npm_config__auth", "dXNlcjpwYXNz")
        .env("NPM_CONFIG__AUTHTOKEN", "npm_tok1")
        .env("npm_config_//registry.npmjs.org/:_authToken", "npm_tok2")
        .env("npm_config_//npm.corp/:_password", "cGFzcw==")
        .env("npm_config_https_proxy", "http://proxy.corp:3128")
        .output();
        assert_eq!(
            out.ok(),
            "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt\nNPM_CONFIG_FUND=false\n\
             npm_config_registry=https://registry.npmjs.org/\n",
            "uid {uid}: {}",
            out.stderr()
        );
        assert_eq!(warnings(&out), Vec::<String>::new());
    }
}

#[test]
fn cargo_gets_its_homes_and_a_cache_in_the_private_tmp_is_named() {
    for uid in users() {
        let dir = Dir::new(uid);
        let out = Sj::run(
            &dir,
            &["--profile", "cargo"],
            &["sh", "-c", "echo $CARGO_HOME $RUSTUP_HOME $CARGO_REGISTRIES_CORP_INDEX $CARGO_REGISTRIES_CORP_TOKEN"],
        )
        .env("CARGO_HOME", "/tmp/cargo")
        .env("RUSTUP_HOME", "/usr/local/rustup")
        .env("CARGO_REGISTRIES_CORP_INDEX", "sparse+https://index.crates.io/")
        .env("CARGO_REGISTRIES_CORP_TOKEN", "cio_secret")
        .output();
        assert_eq!(
            out.ok(),
            "/tmp/cargo /usr/local/rustup sparse+https://index.crates.io/\n",
            "uid {uid}"
        );
        assert_eq!(
            warnings(&out),
            [
                "CARGO_HOME=/tmp/cargo (/tmp/cargo/registry below it) is in the step's /tmp, which \
              is private to the step and thrown away when it ends, so what the tool caches there \
              is lost; add the directory to filesystem.read_write (it is then bound through from \
              the host) or point CARGO_HOME outside /tmp"
            ],
            "uid {uid}"
        );
    }
}

#[test]
fn a_read_write_path_missing_under_tmp_is_named() {
    let dir = Dir::new(users()[users().len() - 1]);
    let p = dir.write(
        "ws/p.yml",
        "name: t\ndescription: x\nextends: default\nfilesystem:\n  read_write: [/tmp/sj-no-such-cache]\n",
    );
    let out = Sj::run(&dir, &["--profile", p.to_str().unwrap()], &["true"]).output();
    out.ok();
    assert_eq!(
        warnings(&out),
        [
            "filesystem.read_write /tmp/sj-no-such-cache does not exist, so nothing is bound there: \
          the step's /tmp is private and thrown away when it ends, and so is what it writes \
          there; create the directory before the run"
        ]
    );
}

#[test]
fn a_dropped_setting_and_a_hidden_npmrc_are_named_with_what_would_pass_them() {
    for uid in users() {
        let dir = Dir::new(uid);
        dir.write(
            "home/.npmrc",
            "registry=https://npm.corp.example/\n//npm.corp.example/:_authToken=npm_secret\ncafile=/etc/corp.pem\n",
        );
        // Audit mode: a step with network, which a dropped index URL matters to.
        let out = Sj::run(
            &dir,
            &["--profile", "default", "--mode", "audit"],
            &["true"],
        )
        .env("PIP_INDEX_URL", "https://mirror.corp/simple")
        .output();
        out.ok();
        assert_eq!(
            warnings(&out),
            [
                "PIP_INDEX_URL (pip's index URL) is set but not passed to the step under profile \
                 default; to pass it, add `PIP_INDEX_URL` to env.pass (the built-in pip profile \
                 passes it)"
                    .to_string(),
                format!(
                    "{0}/.npmrc is hidden from the step (filesystem.hidden: {0}/.npmrc, for the \
                     credentials it may hold), so npm does not see its registry= cafile= \
                     settings; set npm_config_registry / npm_config_cafile instead (the npm \
                     profile passes npm_config_*)",
                    dir.home.display()
                )
            ],
            "uid {uid}"
        );
        assert!(!out.stderr().contains("npm_secret"));
    }
}

#[test]
fn a_callers_ca_bundle_is_kept_when_the_step_trusts_stepjails_ca() {
    // Method rules make the host intercepted, so the step trusts stepjail's CA through a
    // combined bundle; the caller's NODE_EXTRA_CA_CERTS must be in it, not replaced.
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nQ09SUE9SQVRFLUNB\n-----END CERTIFICATE-----\n";
    for uid in users() {
        let dir = Dir::new(uid);
        let ca = dir.write(
            "home/corp.pem",
            &format!("-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n{CERT}"),
        );
        let p = dir.write(
            "ws/p.yml",
            "name: t\ndescription: x\nextends: npm\nnetwork:\n  allow:\n    - { host: api.example.com, methods: [GET] }\n",
        );
        let out = Sj::run(
            &dir,
            &["--profile", p.to_str().unwrap()],
            &[
                "sh",
                "-c",
                "echo $NODE_EXTRA_CA_CERTS $SSL_CERT_FILE; grep -c Q09SUE9SQVRFLUNB \"$NODE_EXTRA_CA_CERTS\"; grep -c S0VZ \"$NODE_EXTRA_CA_CERTS\"",
            ],
        )
        .env("NODE_EXTRA_CA_CERTS", ca.to_str().unwrap())
        .output();
        let bundle = "/etc/ssl/certs/ca-certificates.crt";
        assert_eq!(
            out.stdout(),
            format!("{bundle} {bundle}\n1\n0\n"),
            "uid {uid}: {}",
            out.stderr()
        );
    }
}

/// A pyenv-like layout: a `pip` shim whose wrapper runs `pyenv-rehash` after `install` with
/// pyenv's libexec first on PATH, and a `pyenv-rehash` that fails as pyenv's does when the shims
/// directory is not writable.
fn fake_pyenv(dir: &Dir) -> String {
    let root = dir.home.join(".pyenv");
    let libexec = root.join("libexec");
    dir.write(
        "home/.pyenv/libexec/pyenv-rehash",
        "#!/bin/bash\nSHIM_PATH=\"$PYENV_ROOT/shims\"\nif [ ! -w \"$SHIM_PATH\" ]; then echo \"pyenv: cannot rehash: $SHIM_PATH isn't writable\" >&2; exit 1; fi\n",
    );
    dir.write(
        "home/.pyenv/shims/pip",
        &format!(
            "#!/usr/bin/env bash\nset -e\nexport PATH=\"{}:$PATH\"\necho \"installed $*\"\nfor a in \"$@\"; do case $a in install) pyenv-rehash; break;; esac; done\n",
            libexec.display()
        ),
    );
    for f in ["libexec/pyenv-rehash", "shims/pip"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    root.display().to_string()
}

#[test]
fn pip_through_read_only_pyenv_shims_exits_0_and_says_the_rehash_was_skipped() {
    for uid in users() {
        let dir = Dir::new(uid);
        let root = fake_pyenv(&dir);
        let path = format!("{root}/shims:/usr/local/bin:/usr/bin:/bin");
        let out = Sj::run(&dir, &["--profile", "pip"], &["pip", "install", "x"])
            .env("PATH", &path)
            .env("PYENV_ROOT", &root)
            .output();
        assert_eq!(out.ok(), "installed install x\n", "uid {uid}");
        assert_eq!(
            out.stderr(),
            format!(
                "pyenv: rehash skipped: {root}/shims is read-only inside stepjail; run 'pyenv \
                 rehash' after the step if it installed new commands\n"
            ),
            "uid {uid}"
        );
        // The shims directory stays read-only.
        let out = Sj::run(
            &dir,
            &["--profile", "pip"],
            &["touch", &format!("{root}/shims/planted")],
        )
        .env("PATH", &path)
        .output();
        assert_ne!(out.code(), 0);
        assert!(!std::path::Path::new(&format!("{root}/shims/planted")).exists());
    }
}

/// The real pyenv, where this machine has one (root's, so root only): `pip install` of a local
/// wheel through its shims exits 0.
#[test]
fn real_pyenv_pip_install_exits_0() {
    let root = "/root/.pyenv";
    if !is_root() || !std::path::Path::new(root).join("shims/pip").exists() {
        eprintln!("skipped: no pyenv at {root} (or not root)");
        return;
    }
    let dir = Dir::new(0);
    let wheel = dir.ws.join("sjdemo-1.0-py3-none-any.whl");
    let script = format!(
        "import zipfile\nfiles={{'sjdemo.py':'def main(): pass\\n','sjdemo-1.0.dist-info/METADATA':'Metadata-Version: 2.1\\nName: sjdemo\\nVersion: 1.0\\n','sjdemo-1.0.dist-info/WHEEL':'Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n','sjdemo-1.0.dist-info/entry_points.txt':'[console_scripts]\\nsjdemo = sjdemo:main\\n'}}\nz=zipfile.ZipFile('{}','w')\nfor n,c in files.items(): z.writestr(n,c)\nz.writestr('sjdemo-1.0.dist-info/RECORD',''.join(n+',,\\n' for n in files))\nz.close()\n",
        wheel.display()
    );
    let st = std::process::Command::new(PYTHON)
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(st.success());
    let target = dir.ws.join("t");
    let out = Sj::run(
        &dir,
        &["--profile", "pip"],
        &[
            "pip",
            "install",
            "--no-index",
            "--target",
            target.to_str().unwrap(),
            wheel.to_str().unwrap(),
        ],
    )
    .env(
        "PATH",
        &format!("{root}/shims:/usr/local/bin:/usr/bin:/bin"),
    )
    .env("PYENV_ROOT", root)
    .output();
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert!(target.join("sjdemo.py").exists());
    assert!(
        out.stderr()
            .contains(&format!("pyenv: rehash skipped: {root}/shims is read-only")),
        "{}",
        out.stderr()
    );
}

/// Through the tests' fake internet: the registry variable leads the step to the mirror the
/// profile allows; one pointing elsewhere is named at start, before the proxy's denial.
#[test]
fn a_registry_variable_reaches_an_allowed_mirror_and_an_unallowed_one_is_named_before_its_denial() {
    use common::inet::{Internet, egress_users, needs_root};
    use std::path::Path;
    if !needs_root() {
        return;
    }
    const MIRROR: &str = "\
name: mirror
description: pip from the company mirror
extends: pip
network:
  allow:
    - { host: allowed.test, ports: [80, 443] }
";
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        let out = net.run_env(
            &dir,
            MIRROR,
            &[],
            "curl -sSf \"$PIP_INDEX_URL\"",
            &[("PIP_INDEX_URL", Path::new("http://allowed.test/simple/"))],
        );
        assert_eq!(
            out.ok(),
            "hello from allowed.test over http\n",
            "uid {uid}: {}",
            out.stderr()
        );
        assert_eq!(warnings(&out), Vec::<String>::new());
        assert_eq!(net.log("web.log"), "http allowed.test /simple/\n");
        let out = net.run_env(
            &dir,
            MIRROR,
            &[],
            "curl -sSf \"$PIP_INDEX_URL\"",
            &[("PIP_INDEX_URL", Path::new("http://other.test/simple/"))],
        );
        assert_eq!(
            out.code(),
            22,
            "curl's exit code for HTTP 403: {}",
            out.stderr()
        );
        let err = out.stderr();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines[0],
            "stepjail: warning: PIP_INDEX_URL (pip's index URL) points at other.test:80, which \
             profile mirror does not allow, so those requests will be denied; add \
             `- other.test:80` under network.allow",
            "uid {uid}: {err}"
        );
        assert!(
            lines.contains(
                &"stepjail: denied other.test:80 (not allowed by profile; profile 'mirror'; \
                   PIP_INDEX_URL points here)"
            ),
            "uid {uid}: {err}"
        );
        assert_eq!(net.log("web.log"), "http allowed.test /simple/\n");
    }
}
