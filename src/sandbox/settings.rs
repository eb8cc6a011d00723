//! Tool settings checked before a run: what a package manager would have read outside the
//! sandbox and will not, or will read and cannot use, said once at start instead of a failure
//! (or a silent fallback to the public registry) minutes later.
//!
//! Pure: [`check`] gets the caller's environment, the step's planned environment, the resolved
//! profile, the paths the step may write and a reader for the caller's config files, and
//! returns what to refuse and what to warn about. `cli/run.rs` prints them.

use std::path::{Path, PathBuf};

use crate::policy::model::{NetworkMode, ResolvedProfile, scrub_matches};

/// What a known variable holds, which decides how it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One registry or index URL.
    Url,
    /// URLs separated by spaces, commas or `|` (`PIP_EXTRA_INDEX_URL`, `GOPROXY`).
    Urls,
    /// A CA bundle file.
    Ca,
    /// A directory the tool writes to (`sub` below it, for homes that hold a cache).
    Cache(&'static str),
    /// Anything else the tool needs to find its registry or toolchain.
    Setting,
}

/// A variable a package manager reads for its registry, CA or toolchain.
struct Known {
    /// A name, or a `*` pattern (matched like `env.scrub`, ignoring case).
    name: &'static str,
    /// What it is, for the warning: "pip's index URL".
    what: &'static str,
    kind: Kind,
    /// The built-in profiles that pass it (the tool's own first).
    profiles: &'static [&'static str],
}

const fn k(
    name: &'static str,
    what: &'static str,
    kind: Kind,
    profiles: &'static [&'static str],
) -> Known {
    Known {
        name,
        what,
        kind,
        profiles,
    }
}

const PIP: &[&str] = &["pip"];
const NPM: &[&str] = &["npm"];
const CARGO: &[&str] = &["cargo"];
const GO: &[&str] = &["go"];
const GEMS: &[&str] = &["rubygems"];
const YARN: &[&str] = &["yarn"];
const COREPACK: &[&str] = &["yarn", "pnpm"];
const PNPM: &[&str] = &["pnpm"];
const UV: &[&str] = &["uv"];
const POETRY: &[&str] = &["poetry"];
const GRADLE: &[&str] = &["gradle"];
const NUGET: &[&str] = &["nuget"];
const COMPOSER: &[&str] = &["composer"];
const OPENSSL: &[&str] = &[
    "pip",
    "npm",
    "cargo",
    "go",
    "rubygems",
    "yarn",
    "pnpm",
    "uv",
    "poetry",
    "nuget",
    "composer",
    "dockerhub",
    "ghcr",
];

const KNOWN: &[Known] = &[
    k("PIP_INDEX_URL", "pip's index URL", Kind::Url, PIP),
    k(
        "PIP_EXTRA_INDEX_URL",
        "pip's extra index URLs",
        Kind::Urls,
        PIP,
    ),
    k(
        "PIP_FIND_LINKS",
        "pip's find-links locations",
        Kind::Urls,
        PIP,
    ),
    k("PIP_CERT", "pip's CA bundle", Kind::Ca, PIP),
    k("PIP_CACHE_DIR", "pip's cache", Kind::Cache(""), PIP),
    k(
        "REQUESTS_CA_BUNDLE",
        "the CA bundle of Python's requests",
        Kind::Ca,
        PIP,
    ),
    k(
        "npm_config_*registry",
        "an npm registry URL",
        Kind::Url,
        NPM,
    ),
    k("npm_config_cafile", "npm's CA bundle", Kind::Ca, NPM),
    k("npm_config_cache", "npm's cache", Kind::Cache(""), NPM),
    k(
        "NODE_EXTRA_CA_CERTS",
        "Node's extra CA certificates",
        Kind::Ca,
        NPM,
    ),
    k("SSL_CERT_FILE", "OpenSSL's CA bundle", Kind::Ca, OPENSSL),
    k("CARGO_HOME", "cargo's home", Kind::Cache("registry"), CARGO),
    k("RUSTUP_HOME", "rustup's toolchains", Kind::Setting, CARGO),
    k(
        "CARGO_REGISTRIES_*_INDEX",
        "a cargo registry's index URL",
        Kind::Url,
        CARGO,
    ),
    k("CARGO_HTTP_CAINFO", "cargo's CA bundle", Kind::Ca, CARGO),
    k(
        "CARGO_TARGET_DIR",
        "cargo's build directory",
        Kind::Cache(""),
        CARGO,
    ),
    k("GOPROXY", "Go's module proxy list", Kind::Urls, GO),
    k(
        "GOFLAGS",
        "the go command's default flags",
        Kind::Setting,
        GO,
    ),
    k(
        "GOPRIVATE",
        "Go's private module patterns",
        Kind::Setting,
        GO,
    ),
    k(
        "GONOSUMDB",
        "Go's checksum database exceptions",
        Kind::Setting,
        GO,
    ),
    k("GOMODCACHE", "Go's module cache", Kind::Cache(""), GO),
    k("GOCACHE", "Go's build cache", Kind::Cache(""), GO),
    k("GOPATH", "Go's GOPATH", Kind::Cache("pkg/mod"), GO),
    k("BUNDLE_MIRROR__*", "a Bundler mirror URL", Kind::Url, GEMS),
    k(
        "GEM_HOME",
        "where gems are installed",
        Kind::Cache(""),
        GEMS,
    ),
    k(
        "BUNDLE_PATH",
        "where Bundler installs gems",
        Kind::Cache(""),
        GEMS,
    ),
    k(
        "YARN_NPM_REGISTRY_SERVER",
        "Yarn's registry URL",
        Kind::Url,
        YARN,
    ),
    k("YARN_REGISTRY", "Yarn 1's registry URL", Kind::Url, YARN),
    k(
        "YARN_HTTPS_CA_FILE_PATH",
        "Yarn's CA bundle",
        Kind::Ca,
        YARN,
    ),
    k("YARN_CACHE_FOLDER", "Yarn's cache", Kind::Cache(""), YARN),
    k(
        "COREPACK_NPM_REGISTRY",
        "the registry Corepack downloads package managers from",
        Kind::Url,
        COREPACK,
    ),
    k(
        "COREPACK_HOME",
        "Corepack's package manager cache",
        Kind::Cache(""),
        COREPACK,
    ),
    k("PNPM_HOME", "pnpm's home", Kind::Cache(""), PNPM),
    k("UV_DEFAULT_INDEX", "uv's index URL", Kind::Url, UV),
    k("UV_INDEX_URL", "uv's index URL", Kind::Url, UV),
    k(
        "UV_EXTRA_INDEX_URL",
        "uv's extra index URLs",
        Kind::Urls,
        UV,
    ),
    k("UV_FIND_LINKS", "uv's find-links locations", Kind::Urls, UV),
    k(
        "UV_PYTHON_INSTALL_MIRROR",
        "where uv downloads Python from",
        Kind::Url,
        UV,
    ),
    k("UV_CACHE_DIR", "uv's cache", Kind::Cache(""), UV),
    k(
        "POETRY_REPOSITORIES_*_URL",
        "a Poetry repository URL",
        Kind::Url,
        POETRY,
    ),
    k(
        "POETRY_CERTIFICATES_*_CERT",
        "a Poetry repository's CA bundle",
        Kind::Ca,
        POETRY,
    ),
    k(
        "POETRY_CACHE_DIR",
        "Poetry's cache",
        Kind::Cache(""),
        POETRY,
    ),
    k(
        "GRADLE_USER_HOME",
        "Gradle's user home",
        Kind::Cache("caches"),
        GRADLE,
    ),
    k(
        "NUGET_PACKAGES",
        "NuGet's global packages folder",
        Kind::Cache(""),
        NUGET,
    ),
    k(
        "NUGET_HTTP_CACHE_PATH",
        "NuGet's HTTP cache",
        Kind::Cache(""),
        NUGET,
    ),
    k(
        "COMPOSER_CAFILE",
        "Composer's CA bundle",
        Kind::Ca,
        COMPOSER,
    ),
    k(
        "COMPOSER_CACHE_DIR",
        "Composer's cache",
        Kind::Cache(""),
        COMPOSER,
    ),
];

fn known(name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| {
        if k.name.contains('*') {
            scrub_matches(k.name, name)
        } else {
            k.name.eq_ignore_ascii_case(name)
        }
    })
}

/// A config file a tool reads for its registry or CA, and the lines that matter.
struct ConfigFile {
    /// Below `$HOME`.
    rel: &'static str,
    tool: &'static str,
    /// Keys (before `=`, or a TOML table header) that set a registry, an index or a CA.
    keys: &'static [&'static str],
    /// How to give the tool the same settings inside.
    instead: &'static str,
}

const CONFIG_FILES: &[ConfigFile] = &[
    ConfigFile {
        rel: ".npmrc",
        tool: "npm",
        keys: &[
            "registry",
            ":registry",
            "cafile",
            "ca",
            "ca[]",
            "strict-ssl",
        ],
        instead: "set npm_config_registry / npm_config_cafile instead (the npm profile passes npm_config_*)",
    },
    ConfigFile {
        rel: ".pypirc",
        tool: "twine",
        keys: &["repository", "index-servers"],
        instead: "set TWINE_REPOSITORY_URL and add it to env.pass",
    },
    ConfigFile {
        rel: ".config/pip/pip.conf",
        tool: "pip",
        keys: &[
            "index-url",
            "extra-index-url",
            "find-links",
            "cert",
            "trusted-host",
        ],
        instead: "set PIP_INDEX_URL / PIP_CERT instead (the pip profile passes PIP_*)",
    },
    ConfigFile {
        rel: ".pip/pip.conf",
        tool: "pip",
        keys: &[
            "index-url",
            "extra-index-url",
            "find-links",
            "cert",
            "trusted-host",
        ],
        instead: "set PIP_INDEX_URL / PIP_CERT instead (the pip profile passes PIP_*)",
    },
    ConfigFile {
        rel: ".cargo/config.toml",
        tool: "cargo",
        keys: &["[registries", "[source", "[registry]", "cainfo"],
        instead: "set CARGO_REGISTRIES_<NAME>_INDEX / CARGO_HTTP_CAINFO instead (the cargo profile passes them)",
    },
    ConfigFile {
        rel: ".cargo/config",
        tool: "cargo",
        keys: &["[registries", "[source", "[registry]", "cainfo"],
        instead: "set CARGO_REGISTRIES_<NAME>_INDEX / CARGO_HTTP_CAINFO instead (the cargo profile passes them)",
    },
];

/// The keys of `keys` that `text` sets, in `keys` order. Never values.
fn keys_set(text: &str, keys: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let key = match line.split_once('=') {
            Some((k, _)) => k.trim(),
            None => line,
        };
        for want in keys {
            let hit = if want.starts_with('[') {
                key.starts_with(want)
            } else if let Some(suffix) = want.strip_prefix(':') {
                // `@scope:registry`
                key.starts_with('@') && key.ends_with(&format!(":{suffix}"))
            } else {
                key == *want
            };
            let shown = if want.starts_with('[') {
                key.to_string()
            } else {
                format!("{key}=")
            };
            if hit && !found.contains(&shown) {
                found.push(shown);
            }
        }
    }
    found
}

/// What [`check`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Reasons not to run the step at all (exit 2).
    pub refusals: Vec<String>,
    /// One line each, printed as `stepjail: warning: ...`.
    pub warnings: Vec<String>,
    /// Registry hosts a passed variable points at that the profile does not allow, with that
    /// variable: `(host, variable)`. The proxy names the variable when it denies the host.
    pub pointers: Vec<(String, String)>,
}

/// What the check needs to know about the run.
pub struct Inputs<'a> {
    pub profile: &'a ResolvedProfile,
    /// The caller's environment.
    pub caller: &'a [(String, String)],
    /// The step's environment as planned (before secrets are injected).
    pub step_env: &'a [(String, String)],
    /// Paths bound writable into the sandbox (existing ones only).
    pub writable: &'a [PathBuf],
    /// The step's `$HOME`.
    pub home: Option<&'a Path>,
    /// Reads a config file of the caller's (`None`: absent or unreadable).
    pub read: &'a dyn Fn(&Path) -> Option<String>,
}

/// Checks the tool settings of one run; see the module documentation.
pub fn check(i: &Inputs) -> Findings {
    let mut f = Findings::default();
    let profile = i.profile.name();
    let step = |k: &str| i.step_env.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let declared = |k: &str| i.profile.secrets().iter().any(|d| d.name == k);
    // Dropped settings, grouped by the built-in profile that would pass them: one line each
    // (a runner image that sets CARGO_HOME and RUSTUP_HOME gets one line, not two, per step).
    let mut dropped: Vec<(String, Vec<(&str, &str)>)> = Vec::new();
    // Under a built-in ecosystem profile only its own tools run: NODE_EXTRA_CA_CERTS set on the
    // machine is no news to a pip step. Under any other profile every dropped setting counts.
    let ecosystem = KNOWN.iter().any(|k| k.profiles.contains(&profile));
    for (name, value) in i.caller {
        // Passed from the caller: the step has the caller's value, and stepjail did not set it.
        let passed = step(name) == Some(value) && !i.profile.env_set().contains_key(name);
        if passed
            && !declared(name)
            && let Some(url) = url_with_credentials(value)
        {
            f.refusals.push(format!(
                "{name} holds a URL with credentials ({url}); stepjail does not pass \
                     credentials in variables: remove them from the URL, or declare {name} under \
                     `secrets:` to hand it to the step as a secret"
            ));
            continue;
        }
        let Some(kn) = known(name) else { continue };
        if step(name).is_none() && !declared(name) {
            let scrubbed = i.profile.env_scrub().iter().any(|s| scrub_matches(s, name));
            // Without network, registry URLs and CA bundles change nothing; homes, caches and
            // flags still decide whether an offline build finds its toolchain and modules.
            let offline = i.profile.network().mode == NetworkMode::None
                && matches!(kn.kind, Kind::Url | Kind::Urls | Kind::Ca);
            let relevant = !offline && (!ecosystem || kn.profiles.contains(&profile));
            if !scrubbed && relevant && !is_default(name, value, i.home) {
                let builtins = kn.profiles.join(", ");
                match dropped.iter_mut().find(|(p, _)| *p == builtins) {
                    Some((_, names)) => names.push((name.as_str(), kn.what)),
                    None => dropped.push((builtins, vec![(name.as_str(), kn.what)])),
                }
            }
            continue;
        }
        if !passed {
            continue;
        }
        match kn.kind {
            Kind::Url | Kind::Urls => {
                for (host, port) in url_hosts(value) {
                    if let Some(w) = unreachable(i.profile, name, kn.what, &host, port) {
                        f.warnings.push(w);
                        let bare = host.trim_matches(['[', ']']).to_ascii_lowercase();
                        f.pointers.push((bare, name.clone()));
                    }
                }
            }
            Kind::Cache(sub) => {
                let dir = Path::new(value);
                if !dir.is_absolute() {
                    continue;
                }
                let target = if sub.is_empty() {
                    dir.to_path_buf()
                } else {
                    dir.join(sub)
                };
                if let Some(w) = cache_warning(name, value, &target, i.writable) {
                    f.warnings.push(w);
                }
            }
            Kind::Ca | Kind::Setting => {}
        }
    }
    for (builtin, names) in dropped {
        let listed: Vec<String> = names.iter().map(|(n, w)| format!("{n} ({w})")).collect();
        let keys: Vec<String> = names.iter().map(|(n, _)| format!("`{n}`")).collect();
        let (is, it) = if names.len() == 1 {
            ("is", "it")
        } else {
            ("are", "them")
        };
        let which = if builtin.contains(',') {
            format!("the built-in {builtin} profiles pass {it}")
        } else {
            format!("the built-in {builtin} profile passes {it}")
        };
        f.warnings.push(format!(
            "{} {is} set but not passed to the step under profile {profile}; to pass {it}, add \
             {} to env.pass ({which})",
            listed.join(", "),
            keys.join(", ")
        ));
    }
    for p in i.profile.read_write() {
        if p.starts_with("/tmp") && !i.writable.iter().any(|w| w == p) {
            f.warnings.push(format!(
                "filesystem.read_write {} does not exist, so nothing is bound there: the step's \
                 /tmp is private and thrown away when it ends, and so is what it writes there; \
                 create the directory before the run",
                p.display()
            ));
        }
    }
    if let Some(home) = i.home {
        for c in CONFIG_FILES {
            let file = home.join(c.rel);
            let Some(hidden) = i.profile.hidden().iter().find(|h| file.starts_with(h)) else {
                continue;
            };
            let Some(text) = (i.read)(&file) else {
                continue;
            };
            let keys = keys_set(&text, c.keys);
            if keys.is_empty() {
                continue;
            }
            f.warnings.push(format!(
                "{} is hidden from the step (filesystem.hidden: {}, for the credentials it may \
                 hold), so {} does not see its {} settings; {}",
                file.display(),
                hidden.display(),
                c.tool,
                keys.join(" "),
                c.instead
            ));
        }
    }
    f
}

/// Whether dropping `name=value` changes nothing: the value is where the tool looks anyway
/// (`CARGO_HOME=$HOME/.cargo` and `RUSTUP_HOME=$HOME/.rustup` on GitHub's runners, OpenSSL's own
/// bundle in `SSL_CERT_FILE`).
fn is_default(name: &str, value: &str, home: Option<&Path>) -> bool {
    let under_home = |rel: &str| home.is_some_and(|h| Path::new(value) == h.join(rel));
    match name {
        "CARGO_HOME" => under_home(".cargo"),
        "RUSTUP_HOME" => under_home(".rustup"),
        "GOPATH" => under_home("go"),
        "GOMODCACHE" => under_home("go/pkg/mod"),
        "GOCACHE" => under_home(".cache/go-build"),
        "PIP_CACHE_DIR" => under_home(".cache/pip"),
        "npm_config_cache" | "NPM_CONFIG_CACHE" => under_home(".npm"),
        "SSL_CERT_FILE" => super::plan::TRUST_BUNDLES.contains(&value),
        _ => false,
    }
}

/// Whether the profile lets the step reach `host:port`; if not, the warning.
fn unreachable(
    profile: &ResolvedProfile,
    name: &str,
    what: &str,
    host: &str,
    port: u16,
) -> Option<String> {
    let net = &profile.network();
    // Loopback is the sandbox's own (NO_PROXY names it): nothing the allowlist decides.
    let bare = host.trim_matches(['[', ']']);
    let loopback = bare == "localhost"
        || bare.ends_with(".localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return None;
    }
    match net.mode {
        NetworkMode::Audit => None,
        NetworkMode::None => Some(format!(
            "{name} ({what}) points at {host}:{port}, but profile {} gives the step no network \
             (network.mode: none)",
            profile.name()
        )),
        NetworkMode::Enforce => {
            if net.decide_name(host, port).is_allowed() {
                return None;
            }
            let rule = match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    let bits = if ip.is_ipv4() { 32 } else { 128 };
                    format!("{{ cidr: {ip}/{bits}, ports: [{port}] }}")
                }
                Err(_) => format!("{host}:{port}"),
            };
            Some(format!(
                "{name} ({what}) points at {host}:{port}, which profile {} does not allow, so \
                 those requests will be denied; add `- {rule}` under network.allow",
                profile.name()
            ))
        }
    }
}

fn cache_warning(name: &str, value: &str, target: &Path, writable: &[PathBuf]) -> Option<String> {
    if writable.iter().any(|w| target.starts_with(w)) {
        return None;
    }
    let shown = if target == Path::new(value) {
        String::new()
    } else {
        format!(" ({} below it)", target.display())
    };
    if target.starts_with("/tmp") {
        Some(format!(
            "{name}={value}{shown} is in the step's /tmp, which is private to the step and thrown \
             away when it ends, so what the tool caches there is lost; add the directory to \
             filesystem.read_write (it is then bound through from the host) or point {name} \
             outside /tmp"
        ))
    } else {
        Some(format!(
            "{name}={value}{shown} is read-only in the sandbox, so the tool cannot write there; \
             add it to filesystem.read_write"
        ))
    }
}

/// Every `scheme://authority` in `value`, with where it starts.
fn urls(value: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find("://") {
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |j| j + 1);
        let scheme = &rest[scheme_start..i];
        let after = &rest[i + 3..];
        let end = after
            .find(['/', '?', '#', ',', '|', ' ', '\t', '\n'])
            .unwrap_or(after.len());
        out.push((scheme, &after[..end]));
        rest = &after[end..];
    }
    out
}

/// The first URL in `value` whose authority carries credentials, redacted: any userinfo on
/// http(s) (a token alone is a credential), or a password on any scheme (`ssh://git@host` is
/// not a credential).
pub fn url_with_credentials(value: &str) -> Option<String> {
    for (scheme, authority) in urls(value) {
        let Some((userinfo, host)) = authority.rsplit_once('@') else {
            continue;
        };
        let base = scheme
            .rsplit('+')
            .next()
            .unwrap_or(scheme)
            .to_ascii_lowercase();
        if userinfo.contains(':') || base == "http" || base == "https" {
            return Some(format!("{scheme}://***@{host}"));
        }
    }
    None
}

/// The (host, port) of every http(s) URL in `value`; the port defaults by scheme.
fn url_hosts(value: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for (scheme, authority) in urls(value) {
        let base = scheme
            .rsplit('+')
            .next()
            .unwrap_or(scheme)
            .to_ascii_lowercase();
        let default = match base.as_str() {
            "https" => 443,
            "http" => 80,
            _ => continue,
        };
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => match p.parse() {
                Ok(p) => (h, p),
                Err(_) => continue,
            },
            _ => (hostport, default),
        };
        if host.is_empty() {
            continue;
        }
        out.push((host.to_ascii_lowercase(), port));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::RunAdditions;

    fn profile(name: &str) -> ResolvedProfile {
        crate::policy::load_builtin(name)
            .unwrap()
            .resolve(&crate::policy::model::Vars {
                workspace: Some("/ws".into()),
                home: Some("/home/u".into()),
                tmpdir: None,
                runner_temp: None,
            })
            .unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Runs the check the way `run` does: the step's environment from the plan.
    fn run(p: &ResolvedProfile, caller: &[(&str, &str)], files: &[(&str, &str)]) -> Findings {
        let caller = env(caller);
        let ident = crate::sandbox::plan::Identity {
            uid: 1000,
            gid: 1000,
            name: None,
            home: Some("/home/u".into()),
            privileged: false,
        };
        let step_env = crate::sandbox::plan::environment(p, &ident, &caller);
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(a, b)| (PathBuf::from(a), b.to_string()))
            .collect();
        let read = move |path: &Path| {
            files
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, t)| t.clone())
        };
        let writable = [PathBuf::from("/ws"), PathBuf::from("/home/u/.cache/pip")];
        check(&Inputs {
            profile: p,
            caller: &caller,
            step_env: &step_env,
            writable: &writable,
            home: Some(Path::new("/home/u")),
            read: &read,
        })
    }

    #[test]
    fn every_known_variable_is_passed_by_the_profile_it_names() {
        for kn in KNOWN {
            for name in kn.profiles {
                let p = profile(name);
                let sample = kn.name.replace('*', "X");
                assert!(
                    p.env_pass().iter().any(|e| e.matches(&sample)),
                    "{} is not passed by {name}",
                    kn.name,
                );
                assert!(
                    !p.env_scrub().iter().any(|s| scrub_matches(s, &sample)),
                    "{}",
                    kn.name
                );
            }
        }
    }

    #[test]
    fn a_dropped_setting_is_named_with_the_key_that_passes_it() {
        let online = profile("default")
            .with_run(RunAdditions {
                mode: Some(NetworkMode::Audit),
                ..RunAdditions::default()
            })
            .unwrap();
        let f = run(
            &online,
            &[("PIP_INDEX_URL", "https://mirror.corp/simple")],
            &[],
        );
        assert_eq!(
            f.warnings,
            [
                "PIP_INDEX_URL (pip's index URL) is set but not passed to the step under profile \
              default; to pass it, add `PIP_INDEX_URL` to env.pass (the built-in pip profile \
              passes it)"
            ]
        );
        assert!(f.refusals.is_empty());
        // Without network a registry URL or CA bundle changes nothing.
        let f = run(
            &profile("default"),
            &[
                ("PIP_INDEX_URL", "https://mirror.corp/simple"),
                ("PIP_CERT", "/c.pem"),
            ],
            &[],
        );
        assert!(f.warnings.is_empty(), "{f:?}");
        // Under another ecosystem's profile a pip setting is no news; SSL_CERT_FILE is.
        let f = run(
            &profile("npm"),
            &[("PIP_INDEX_URL", "https://x/"), ("SSL_CERT_FILE", "/c.pem")],
            &[],
        );
        assert!(f.warnings.is_empty(), "{f:?}");
        let f = run(&online, &[("SSL_CERT_FILE", "/c.pem")], &[]);
        assert_eq!(
            f.warnings,
            [
                "SSL_CERT_FILE (OpenSSL's CA bundle) is set but not passed to the step under profile \
              default; to pass it, add `SSL_CERT_FILE` to env.pass (the built-in pip, npm, \
              cargo, go, rubygems, yarn, pnpm, uv, poetry, nuget, composer, dockerhub, ghcr \
              profiles pass it)"
            ]
        );
        // Where the tools look anyway: nothing lost.
        let f = run(
            &profile("default"),
            &[
                ("CARGO_HOME", "/home/u/.cargo"),
                ("RUSTUP_HOME", "/home/u/.rustup"),
                ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
            ],
            &[],
        );
        assert!(f.warnings.is_empty(), "{f:?}");
        let f = run(
            &profile("default"),
            &[("CARGO_HOME", "/c"), ("RUSTUP_HOME", "/r")],
            &[],
        );
        assert_eq!(
            f.warnings,
            [
                "CARGO_HOME (cargo's home), RUSTUP_HOME (rustup's toolchains) are set but not \
              passed to the step under profile default; to pass them, add `CARGO_HOME`, \
              `RUSTUP_HOME` to env.pass (the built-in cargo profile passes them)"
            ]
        );
    }

    #[test]
    fn a_passed_url_with_credentials_is_refused_without_printing_them() {
        let f = run(
            &profile("pip"),
            &[(
                "PIP_EXTRA_INDEX_URL",
                "https://pypi.org/simple https://u:s3cret@pypi.org/x",
            )],
            &[],
        );
        assert_eq!(f.refusals.len(), 1, "{f:?}");
        assert!(
            f.refusals[0].starts_with(
                "PIP_EXTRA_INDEX_URL holds a URL with credentials (https://***@pypi.org);"
            ),
            "{}",
            f.refusals[0]
        );
        assert!(!f.refusals[0].contains("s3cret") && !f.refusals[0].contains("u:"));
        // Not passed: not the step's, nothing to refuse (the dropped-variable warning instead).
        let f = run(
            &profile("npm"),
            &[("PIP_INDEX_URL", "https://u:p@x.org/")],
            &[],
        );
        assert!(f.refusals.is_empty());
        assert_eq!(
            url_with_credentials("https://tok@h/"),
            Some("https://***@h".into())
        );
        assert_eq!(
            url_with_credentials("sparse+https://a:b@h/i/"),
            Some("sparse+https://***@h".into())
        );
        assert_eq!(url_with_credentials("ssh://git@github.com/o/r"), None);
        assert_eq!(url_with_credentials("https://h/p?x=a@b"), None);
    }

    #[test]
    fn a_registry_host_the_profile_does_not_allow_is_named_with_the_rule_to_add() {
        let f = run(
            &profile("pip"),
            &[("PIP_INDEX_URL", "https://mirror.corp/simple")],
            &[],
        );
        assert_eq!(
            f.warnings,
            [
                "PIP_INDEX_URL (pip's index URL) points at mirror.corp:443, which profile pip does \
              not allow, so those requests will be denied; add `- mirror.corp:443` under \
              network.allow"
            ]
        );
        let f = run(
            &profile("npm"),
            &[
                ("npm_config_registry", "https://registry.npmjs.org/"),
                ("npm_config_@corp:registry", "http://10.1.2.3:8080/npm/"),
            ],
            &[],
        );
        assert_eq!(f.warnings.len(), 1, "{f:?}");
        assert!(
            f.warnings[0].contains("points at 10.1.2.3:8080")
                && f.warnings[0]
                    .contains("add `- { cidr: 10.1.2.3/32, ports: [8080] }` under network.allow"),
            "{}",
            f.warnings[0]
        );
        let f = run(
            &profile("go"),
            &[(
                "GOPROXY",
                "https://proxy.golang.org,https://athens.corp|direct",
            )],
            &[],
        );
        assert_eq!(f.warnings.len(), 1, "{f:?}");
        assert!(
            f.warnings[0]
                .starts_with("GOPROXY (Go's module proxy list) points at athens.corp:443,")
        );
        let f = run(
            &profile("pip"),
            &[
                ("PIP_INDEX_URL", "http://localhost:8080/simple"),
                ("PIP_EXTRA_INDEX_URL", "http://127.0.0.1/x"),
            ],
            &[],
        );
        assert!(f.warnings.is_empty(), "{f:?}");
    }

    #[test]
    fn caches_in_the_private_tmp_or_outside_writable_paths_are_named() {
        let f = run(
            &profile("cargo"),
            &[("CARGO_HOME", "/tmp/cargo"), ("RUSTUP_HOME", "/opt/rustup")],
            &[],
        );
        assert_eq!(
            f.warnings,
            [
                "CARGO_HOME=/tmp/cargo (/tmp/cargo/registry below it) is in the step's /tmp, which \
              is private to the step and thrown away when it ends, so what the tool caches there \
              is lost; add the directory to filesystem.read_write (it is then bound through from \
              the host) or point CARGO_HOME outside /tmp"
            ]
        );
        let f = run(&profile("pip"), &[("PIP_CACHE_DIR", "/ws/.pip")], &[]);
        assert!(f.warnings.is_empty(), "{f:?}");
        let f = run(&profile("npm"), &[("npm_config_cache", "/opt/npm")], &[]);
        assert_eq!(
            f.warnings,
            [
                "npm_config_cache=/opt/npm is read-only in the sandbox, so the tool cannot write \
              there; add it to filesystem.read_write"
            ]
        );
        let p = profile("default")
            .with_run(RunAdditions {
                read_write: vec!["/tmp/missing".into()],
                ..RunAdditions::default()
            })
            .unwrap();
        let f = run(&p, &[], &[]);
        assert_eq!(f.warnings.len(), 1);
        assert!(f.warnings[0].starts_with("filesystem.read_write /tmp/missing does not exist"));
    }

    #[test]
    fn a_hidden_config_file_with_registry_lines_is_named_with_the_lines() {
        let npmrc = "registry=https://npm.corp/\n//npm.corp/:_authToken=SECRET\n@corp:registry=https://npm.corp/\ncafile=/etc/corp.pem\n";
        let f = run(&profile("npm"), &[], &[("/home/u/.npmrc", npmrc)]);
        assert_eq!(
            f.warnings,
            [
                "/home/u/.npmrc is hidden from the step (filesystem.hidden: /home/u/.npmrc, for the \
              credentials it may hold), so npm does not see its registry= @corp:registry= \
              cafile= settings; set npm_config_registry / npm_config_cafile instead (the npm \
              profile passes npm_config_*)"
            ]
        );
        assert!(!f.warnings[0].contains("SECRET"));
        // Only a token: nothing the tool loses but the token, which is the point.
        let f = run(
            &profile("npm"),
            &[],
            &[("/home/u/.npmrc", "//r/:_authToken=x\n")],
        );
        assert!(f.warnings.is_empty());
        // Not hidden: pip.conf is read as usual.
        let f = run(
            &profile("pip"),
            &[],
            &[("/home/u/.config/pip/pip.conf", "index-url = x\n")],
        );
        assert!(f.warnings.is_empty());
    }

    #[test]
    fn npm_auth_settings_never_pass_and_proxies_do_not_either() {
        let p = profile("npm");
        let caller = env(&[
            ("npm_config_registry", "https://registry.npmjs.org/"),
            ("NPM_CONFIG__AUTH", "x"),
            ("npm_config__authToken", "x"),
            ("npm_config_//registry.npmjs.org/:_authToken", "x"),
            ("npm_config_//r/:_password", "x"),
            ("npm_config_https_proxy", "http://proxy.corp:3128"),
            ("NODE_EXTRA_CA_CERTS", "/etc/corp.pem"),
        ]);
        let ident = crate::sandbox::plan::Identity {
            uid: 1,
            gid: 1,
            name: None,
            home: None,
            privileged: false,
        };
        let got: Vec<String> = crate::sandbox::plan::environment(&p, &ident, &caller)
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k != "PATH" && k != "TMPDIR")
            .collect();
        assert_eq!(got, ["NODE_EXTRA_CA_CERTS", "npm_config_registry"]);
    }
}
