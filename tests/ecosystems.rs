//! The ecosystem built-in profiles (yarn, pnpm, uv, poetry, gradle, nuget, composer, dockerhub,
//! ghcr): each is accepted by `stepjail check NAME`, passes its tool's settings but not its
//! credentials, and reaches exactly its registry hosts. The hosts are the fake internet's web
//! server (tests/fixtures/fake_internet.py lists them); the clients themselves are not installed
//! here, so curl asks each host through the proxy as the tools would (HTTPS, via HTTPS_PROXY).
//! Nothing leaves the test's network namespace.

mod common;

use common::inet::{Internet, audit_events, egress_users, find, needs_root};
use common::*;

/// A built-in profile, every host it allows, and one host in the fake internet it must refuse.
struct Eco {
    profile: &'static str,
    allowed: &'static [&'static str],
    denied: &'static str,
}

const ECOSYSTEMS: &[Eco] = &[
    Eco {
        profile: "yarn",
        allowed: &[
            "registry.yarnpkg.com",
            "registry.npmjs.org",
            "repo.yarnpkg.com",
        ],
        denied: "raw.githubusercontent.com",
    },
    Eco {
        profile: "pnpm",
        allowed: &["registry.npmjs.org"],
        denied: "nodejs.org",
    },
    Eco {
        profile: "uv",
        allowed: &["pypi.org", "files.pythonhosted.org"],
        denied: "github.com",
    },
    Eco {
        profile: "poetry",
        allowed: &["pypi.org", "files.pythonhosted.org"],
        denied: "registry.npmjs.org",
    },
    Eco {
        profile: "gradle",
        allowed: &[
            "services.gradle.org",
            "downloads.gradle.org",
            "plugins.gradle.org",
            "plugins-artifacts.gradle.org",
            "repo.maven.apache.org",
            "repo1.maven.org",
        ],
        denied: "scans.gradle.com",
    },
    Eco {
        profile: "nuget",
        allowed: &["api.nuget.org"],
        denied: "www.nuget.org",
    },
    Eco {
        profile: "composer",
        allowed: &[
            "repo.packagist.org",
            "packagist.org",
            "api.github.com",
            "codeload.github.com",
        ],
        denied: "github.com",
    },
    Eco {
        profile: "dockerhub",
        allowed: &[
            "registry-1.docker.io",
            "index.docker.io",
            "auth.docker.io",
            "production.cloudflare.docker.com",
            "production.cloudfront.docker.com",
            "docker-images-prod.6aa30f8b08e16409b46e0173d6de2f56.r2.cloudflarestorage.com",
        ],
        denied: "hub.docker.com",
    },
    Eco {
        profile: "ghcr",
        allowed: &["ghcr.io", "pkg-containers.githubusercontent.com"],
        denied: "raw.githubusercontent.com",
    },
];

#[test]
fn check_accepts_every_ecosystem_profile_by_name() {
    for uid in users() {
        let dir = Dir::new(uid);
        for eco in ECOSYSTEMS {
            let out = Sj::new(&dir, &["check", eco.profile]).output();
            assert_eq!(out.ok(), format!("{}: ok\n", eco.profile), "uid {uid}");
        }
    }
}

#[test]
fn every_ecosystem_profile_reaches_its_hosts_and_nothing_else() {
    if !needs_root() {
        return;
    }
    let net = Internet::new();
    for uid in egress_users() {
        for eco in ECOSYSTEMS {
            let dir = Dir::new(uid);
            // The built-in, unchanged (the fake internet's runner takes a profile file).
            let profile = format!(
                "name: {p}-as-is\ndescription: the built-in {p} profile\nextends: {p}\n",
                p = eco.profile
            );
            let mut script = String::new();
            for host in eco.allowed.iter().chain([&eco.denied]) {
                script += &format!(
                    "curl -sk -o /dev/null -w '{host} %{{http_connect}} %{{http_code}}\\n' \
                     https://{host}/{p}/{uid}; ",
                    p = eco.profile
                );
            }
            // curl exits 56 on the refused CONNECT; the statuses say what happened.
            script += "true";
            let out = net.run(&dir, &profile, &[], &script);
            let mut want: String = eco
                .allowed
                .iter()
                .map(|h| format!("{h} 200 200\n"))
                .collect();
            want += &format!("{} 403 000\n", eco.denied);
            assert_eq!(
                out.ok(),
                want,
                "{} as uid {uid}: {}",
                eco.profile,
                out.stderr()
            );
            assert!(
                out.stderr().contains(&format!(
                    "stepjail: denied {}:443 (not allowed by profile",
                    eco.denied
                )),
                "{} as uid {uid}: {}",
                eco.profile,
                out.stderr()
            );
            let ev = audit_events(&dir);
            for host in eco.allowed {
                assert_eq!(
                    find(
                        &ev,
                        "connect",
                        &[("dest_name", host), ("decision", "allow")]
                    )
                    .len(),
                    1,
                    "{} as uid {uid}: {host}: {ev:#?}",
                    eco.profile
                );
            }
            assert_eq!(
                find(
                    &ev,
                    "connect",
                    &[("dest_name", eco.denied), ("decision", "deny")]
                )
                .len(),
                1,
                "{} as uid {uid}: {ev:#?}",
                eco.profile
            );
        }
    }
    // Every allowed request reached its host, once per user; the refused hosts saw nothing.
    let web = net.log("web.log");
    for eco in ECOSYSTEMS {
        for uid in egress_users() {
            for host in eco.allowed {
                let line = format!("https {host} /{}/{uid}", eco.profile);
                assert_eq!(
                    web.lines().filter(|l| *l == line).count(),
                    1,
                    "{line}:\n{web}"
                );
            }
            assert!(
                !web.contains(&format!("https {} /{}/", eco.denied, eco.profile)),
                "{} reached {}:\n{web}",
                eco.profile,
                eco.denied
            );
        }
    }
}

/// `(variable, value)` the caller sets, and which of them the step must see.
struct Settings {
    profile: &'static str,
    set: &'static [(&'static str, &'static str)],
    passed: &'static [&'static str],
}

const SETTINGS: &[Settings] = &[
    Settings {
        profile: "yarn",
        set: &[
            ("YARN_NPM_REGISTRY_SERVER", "https://registry.yarnpkg.com"),
            ("YARN_CACHE_FOLDER", "/var/cache/yarn"),
            ("COREPACK_NPM_REGISTRY", "https://registry.npmjs.org"),
            ("YARN_NPM_AUTH_TOKEN", "yarn_secret"),
            ("YARN_NPM_AUTH_IDENT", "user:pass"),
            ("COREPACK_NPM_TOKEN", "corepack_secret"),
            ("npm_config__authToken", "npm_secret"),
            ("YARN_HTTPS_PROXY", "http://proxy.corp:3128"),
        ],
        passed: &[
            "YARN_NPM_REGISTRY_SERVER",
            "YARN_CACHE_FOLDER",
            "COREPACK_NPM_REGISTRY",
        ],
    },
    Settings {
        profile: "pnpm",
        set: &[
            ("npm_config_registry", "https://registry.npmjs.org/"),
            ("PNPM_HOME", "/opt/pnpm"),
            ("npm_config_//registry.npmjs.org/:_authToken", "npm_secret"),
            ("pnpm_config__auth", "dXNlcjpwYXNz"),
        ],
        passed: &["npm_config_registry", "PNPM_HOME"],
    },
    Settings {
        profile: "uv",
        set: &[
            ("UV_DEFAULT_INDEX", "https://pypi.org/simple"),
            ("UV_NATIVE_TLS", "1"),
            ("UV_INDEX_CORP_USERNAME", "deploy"),
            ("UV_INDEX_CORP_PASSWORD", "uv_secret"),
            ("UV_PUBLISH_TOKEN", "pypi-secret"),
        ],
        passed: &["UV_DEFAULT_INDEX", "UV_NATIVE_TLS"],
    },
    Settings {
        profile: "poetry",
        set: &[
            ("POETRY_VIRTUALENVS_IN_PROJECT", "true"),
            ("POETRY_REPOSITORIES_CORP_URL", "https://pypi.org/simple"),
            ("POETRY_HTTP_BASIC_CORP_PASSWORD", "poetry_secret"),
            ("POETRY_PYPI_TOKEN_PYPI", "pypi-secret"),
        ],
        passed: &[
            "POETRY_VIRTUALENVS_IN_PROJECT",
            "POETRY_REPOSITORIES_CORP_URL",
        ],
    },
    Settings {
        profile: "gradle",
        set: &[
            ("GRADLE_OPTS", "-Dorg.gradle.daemon=false"),
            ("ORG_GRADLE_PROJECT_mavenPassword", "gradle_secret"),
        ],
        passed: &["GRADLE_OPTS"],
    },
    Settings {
        profile: "nuget",
        set: &[
            ("NUGET_PACKAGES", "/var/cache/nuget"),
            (
                "NuGetPackageSourceCredentials_corp",
                "Username=u;Password=nuget_secret",
            ),
        ],
        passed: &["NUGET_PACKAGES"],
    },
    Settings {
        profile: "composer",
        set: &[
            ("COMPOSER_NO_INTERACTION", "1"),
            (
                "COMPOSER_AUTH",
                r#"{"github-oauth":{"github.com":"ghp_secret"}}"#,
            ),
        ],
        passed: &["COMPOSER_NO_INTERACTION"],
    },
];

#[test]
fn ecosystem_profiles_pass_their_settings_but_never_their_credentials() {
    for uid in users() {
        let dir = Dir::new(uid);
        for s in SETTINGS {
            let mut sj = Sj::run(&dir, &["--profile", s.profile], &["env"]);
            for (k, v) in s.set {
                sj = sj.env(k, v);
            }
            let out = sj.output();
            let env = out.ok();
            for (k, v) in s.set {
                let line = format!("{k}={v}");
                let seen = env.lines().any(|l| l == line);
                assert_eq!(
                    seen,
                    s.passed.contains(k),
                    "{} as uid {uid}: {k}:\n{env}",
                    s.profile
                );
            }
            assert!(
                !env.contains("secret") && !out.stderr().contains("secret"),
                "{} as uid {uid}:\n{env}{}",
                s.profile,
                out.stderr()
            );
        }
    }
}

#[test]
fn nuget_turns_off_what_would_only_be_denied() {
    let dir = Dir::new(users()[0]);
    let out = Sj::run(
        &dir,
        &["--profile", "nuget"],
        &[
            "sh",
            "-c",
            "echo $NUGET_CERT_REVOCATION_MODE $DOTNET_CLI_TELEMETRY_OPTOUT",
        ],
    )
    .output();
    assert_eq!(out.ok(), "offline 1\n");
}

#[test]
fn a_new_tools_index_variable_is_checked_against_the_allowlist() {
    for uid in users() {
        let dir = Dir::new(uid);
        for (profile, var) in [
            ("uv", "UV_INDEX_URL"),
            ("yarn", "YARN_NPM_REGISTRY_SERVER"),
            ("poetry", "POETRY_REPOSITORIES_CORP_URL"),
        ] {
            let out = Sj::run(&dir, &["--profile", profile], &["printenv", var])
                .env(var, "https://mirror.corp/simple")
                .output();
            assert_eq!(out.ok(), "https://mirror.corp/simple\n", "uid {uid}");
            let warned = out.stderr().lines().any(|l| {
                l.starts_with(&format!("stepjail: warning: {var} ("))
                    && l.contains(&format!(
                        "points at mirror.corp:443, which profile {profile} does not allow"
                    ))
            });
            assert!(warned, "{profile} as uid {uid}: {}", out.stderr());
        }
    }
}
