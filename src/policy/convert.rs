//! Wire types -> one checked [`Layer`]: every scalar parsed, every name and path validated, each
//! error pointing at the value that caused it. `extends` merging happens on layers (`load.rs`).

use std::time::Duration;

use super::error::PolicyError;
use super::model::{Enforce, EnvPattern, Limits, Location, NetworkMode, PathTemplate, SecretDecl};
use super::network;
use super::syntax::{parse_count, valid_env_name};
use super::vars::{self, TemplateError};
use super::wire::{ProfileWire, Str};
use super::yaml::{self, expected_for};
use super::{paths, secret_decls, wire};

/// One profile as written in one file, checked but not yet merged with what it extends.
#[derive(Debug)]
pub(crate) struct Layer {
    pub name: String,
    pub description: String,
    /// The `extends` value and where it was written.
    pub extends: Option<(String, Location)>,
    pub read_write: Vec<PathTemplate>,
    pub read_only: Vec<PathTemplate>,
    pub hidden: Vec<PathTemplate>,
    /// `filesystem.files`: (path under /tmp, content template, where).
    pub files: Vec<(String, String, Location)>,
    /// `network.mode` if written: the mode, where, and its key path.
    pub network_mode: Option<(NetworkMode, Location, String)>,
    /// `network.allow` if written (an empty list counts as written: it means enforce).
    pub allow: Option<Vec<super::model::AllowRule>>,
    /// `network.upstream_proxy` if written.
    pub upstream_proxy: Option<super::upstream_proxy::UpstreamProxy>,
    /// `network.max_connections` if written.
    pub max_connections: Option<u32>,
    pub env_pass: Vec<EnvPattern>,
    /// (name, value template, where).
    pub env_set: Vec<(String, String, Location)>,
    pub timeout: Option<Duration>,
    pub limits: Limits,
    pub min_abi: Option<u32>,
    /// `env.scrub`, in file order, without duplicates.
    pub env_scrub: Vec<String>,
    /// `secrets:`, in file order (YAML refuses a name written twice).
    pub secrets: Vec<SecretDecl>,
}

/// Converts within one file; `prefix` is prepended to key paths (`profiles.ci.` for an inline
/// profile in a policy file).
struct Ctx<'a> {
    file: &'a str,
    prefix: &'a str,
}

impl Ctx<'_> {
    fn at(&self, s: &Str) -> Location {
        yaml::location(self.file, &s.referenced)
    }

    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn invalid(&self, s: &Str, key: &str, expected: Option<&str>) -> PolicyError {
        let path = self.path(key);
        let expected = expected
            .or_else(|| expected_for(&path))
            .unwrap_or("something else")
            .to_string();
        PolicyError::InvalidValue {
            at: self.at(s),
            path,
            expected,
            found: s.value.clone(),
        }
    }

    fn template(&self, s: &Str, key: &str) -> Result<Vec<vars::Piece>, PolicyError> {
        vars::parse(&s.value).map_err(|e| match e {
            TemplateError::Unknown(name) => PolicyError::UnknownVariable {
                at: self.at(s),
                path: self.path(key),
                name,
            },
            TemplateError::Syntax(problem) => PolicyError::BadVariableSyntax {
                at: self.at(s),
                path: self.path(key),
                raw: s.value.clone(),
                problem,
            },
        })
    }

    fn paths(&self, list: Option<Vec<Str>>, key: &str) -> Result<Vec<PathTemplate>, PolicyError> {
        let mut out = Vec::new();
        for (i, s) in list.unwrap_or_default().into_iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            let pieces = self.template(&s, &item_key)?;
            let raw =
                paths::normalise_template(&pieces).map_err(|reason| PolicyError::BadPath {
                    at: self.at(&s),
                    path: self.path(&item_key),
                    raw: s.value.clone(),
                    reason,
                })?;
            out.push(PathTemplate {
                raw,
                at: self.at(&s),
                key: self.path(&item_key),
            });
        }
        Ok(out)
    }

    fn optional<T>(
        &self,
        s: Option<Str>,
        key: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, PolicyError> {
        s.map(|s| parse(s.value.trim()).ok_or_else(|| self.invalid(&s, key, None)))
            .transpose()
    }
}

/// Convert one parsed profile. `map_at` is where the profile's mapping starts (for "missing
/// `name`"); `name_from_key` is the key of an inline profile in a policy file.
pub(crate) fn layer(
    w: ProfileWire,
    map_at: Location,
    file: &str,
    prefix: &str,
    name_from_key: Option<&Str>,
) -> Result<Layer, PolicyError> {
    let cx = Ctx { file, prefix };

    let name = match (w.name, name_from_key) {
        (Some(n), None) => {
            if !valid_profile_name(&n.value) {
                return Err(cx.invalid(
                    &n,
                    "name",
                    Some("a profile name: lowercase letters, digits, `_` and `-`, starting with a letter or digit"),
                ));
            }
            n.value
        }
        (None, None) => {
            return Err(PolicyError::MissingKey {
                at: map_at,
                path: String::new(),
                key: "name".to_string(),
                why: "every profile file names itself",
            });
        }
        (written, Some(key)) => {
            if let Some(n) = written.filter(|n| n.value != key.value) {
                return Err(PolicyError::InvalidValue {
                    at: cx.at(&n),
                    path: cx.path("name"),
                    expected: format!(
                        "`{}` (the key this profile is under), or no `name:`",
                        key.value
                    ),
                    found: n.value,
                });
            }
            key.value.clone()
        }
    };

    let d = &w.description;
    if d.value.trim().is_empty() || d.value.contains('\n') {
        return Err(cx.invalid(
            d,
            "description",
            Some("a non-empty description on one line"),
        ));
    }

    let fs = w.filesystem.unwrap_or(wire::FilesystemWire {
        read_write: None,
        read_only: None,
        hidden: None,
        files: None,
    });
    let read_write = cx.paths(fs.read_write, "filesystem.read_write")?;
    let read_only = cx.paths(fs.read_only, "filesystem.read_only")?;
    let hidden = cx.paths(fs.hidden, "filesystem.hidden")?;
    let mut files = Vec::new();
    for (k, v) in fs.files.map(|m| m.0).unwrap_or_default() {
        // Only the step's own, private /tmp: a file anywhere else would need a writable host
        // path, and these are the step's settings (it may change them), not a boundary.
        let under_tmp = paths::normalise_absolute(&k.value)
            .ok()
            .filter(|p| p == &k.value && p.starts_with("/tmp/"));
        if under_tmp.is_none() {
            return Err(cx.invalid(&k, "filesystem.files", None));
        }
        cx.template(&v, &format!("filesystem.files.{}", k.value))?;
        files.push((k.value, v.value.clone(), cx.at(&v)));
    }

    let (mode, allow, upstream, max_connections) = w
        .network
        .map(|n| (n.mode, n.allow, n.upstream_proxy, n.max_connections))
        .unwrap_or((None, None, None, None));
    let max_connections = cx.optional(max_connections, "network.max_connections", |s| {
        parse_count(s)
            .filter(|n| *n > 0)
            .and_then(|n| u32::try_from(n).ok())
    })?;
    let upstream_proxy = match upstream {
        None => None,
        Some(u) => {
            let bad = |reason: String| PolicyError::BadUpstreamProxy {
                at: cx.at(&u),
                path: cx.path("network.upstream_proxy"),
                reason,
            };
            let up = super::upstream_proxy::UpstreamProxy::parse(&u.value)
                .map_err(|e| bad(e.to_string()))?;
            // A profile is committed with the repository: a password in it is a leak.
            if up.has_credentials() {
                return Err(bad(
                    "credentials do not belong in a profile; give the URL with \
                     credentials in STEPJAIL_UPSTREAM_PROXY (or --upstream-proxy) instead"
                        .into(),
                ));
            }
            Some(up)
        }
    };
    let network_mode = match mode {
        None => None,
        Some(m) => {
            let mode = match m.value.as_str() {
                "none" => NetworkMode::None,
                "enforce" => NetworkMode::Enforce,
                "audit" => NetworkMode::Audit,
                _ => return Err(cx.invalid(&m, "network.mode", None)),
            };
            Some((mode, cx.at(&m), cx.path("network.mode")))
        }
    };
    let allow = allow
        .map(|list| network::allow_rules(list, file, prefix))
        .transpose()?;

    let (pass, set, scrub) = w
        .env
        .map(|e| (e.pass, e.set, e.scrub))
        .unwrap_or((None, None, None));
    let mut env_pass = Vec::new();
    for (i, s) in pass.unwrap_or_default().iter().enumerate() {
        let key = format!("env.pass[{i}]");
        env_pass.push(env_pattern(&s.value).ok_or_else(|| {
            cx.invalid(
                s,
                &key,
                Some("a variable name like CI, or a prefix pattern like GITHUB_* (names are [A-Za-z_][A-Za-z0-9_]*, one trailing `*` at most)"),
            )
        })?);
    }
    let mut env_set = Vec::new();
    for (k, v) in set.map(|m| m.0).unwrap_or_default() {
        if !valid_env_name(&k.value) {
            return Err(cx.invalid(
                &k,
                "env.set",
                Some("a variable name ([A-Za-z_][A-Za-z0-9_]*) as the key"),
            ));
        }
        let key = format!("env.set.{}", k.value);
        cx.template(&v, &key)?;
        env_set.push((k.value, v.value.clone(), cx.at(&v)));
    }

    let mut env_scrub: Vec<String> = Vec::new();
    for (i, s) in scrub.unwrap_or_default().iter().enumerate() {
        if !valid_scrub_pattern(&s.value) {
            return Err(cx.invalid(
                s,
                &format!("env.scrub[{i}]"),
                Some("a variable name ([A-Za-z_][A-Za-z0-9_]*), or a pattern with `*` like *_authToken"),
            ));
        }
        if !env_scrub.contains(&s.value) {
            env_scrub.push(s.value.clone());
        }
    }
    let secrets = w
        .secrets
        .map(|m| secret_decls::declarations(m, file, prefix))
        .transpose()?
        .unwrap_or_default();

    let (timeout, limits) = w
        .process
        .map(|p| (p.timeout, p.limits))
        .unwrap_or((None, None));
    let timeout = cx.optional(timeout, "process.timeout", parse_duration)?;
    let limits = match limits {
        None => Limits::default(),
        Some(l) => Limits {
            open_files: cx.optional(l.open_files, "process.limits.open_files", parse_count)?,
            file_size: cx.optional(l.file_size, "process.limits.file_size", parse_size)?,
            processes: cx.optional(l.processes, "process.limits.processes", parse_count)?,
            cpu_seconds: cx.optional(l.cpu_seconds, "process.limits.cpu_seconds", parse_count)?,
            address_space: cx.optional(
                l.address_space,
                "process.limits.address_space",
                parse_size,
            )?,
            core_size: cx.optional(l.core_size, "process.limits.core_size", parse_size)?,
            // A limit of zero would stop the step before it starts: refused as a value.
            memory: cx.optional(l.memory, "process.limits.memory", |s| {
                parse_size(s).filter(|&n| n >= 1 << 20)
            })?,
            pids: cx.optional(l.pids, "process.limits.pids", |s| {
                parse_count(s).filter(|&n| n >= 2)
            })?,
            cpu_millis: cx.optional(l.cpu, "process.limits.cpu", parse_cpus)?,
            enforce: cx.optional(l.enforce, "process.limits.enforce", |s| match s {
                "required" => Some(Enforce::Required),
                "best-effort" => Some(Enforce::BestEffort),
                _ => None,
            })?,
        },
    };
    let min_abi = cx.optional(
        w.landlock.and_then(|l| l.min_abi),
        "landlock.min_abi",
        |s| {
            parse_count(s)
                .filter(|n| (1..=255).contains(n))
                .map(|n| n as u32)
        },
    )?;

    Ok(Layer {
        name,
        description: d.value.trim().to_string(),
        extends: w.extends.as_ref().map(|e| (e.value.clone(), cx.at(e))),
        read_write,
        read_only,
        hidden,
        files,
        network_mode,
        allow,
        upstream_proxy,
        max_connections,
        env_pass,
        env_set,
        timeout,
        limits,
        min_abi,
        env_scrub,
        secrets,
    })
}

/// `[a-z0-9][a-z0-9_-]*`, at most 64 characters.
pub(crate) fn valid_profile_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// An `env.scrub` entry: a variable name, or a pattern of name characters and `*` wildcards
/// (`*_authToken`, `CARGO_REGISTRIES_*_TOKEN`) with at least one name character. A pattern may
/// also hold `/ : @ . -`, which npm's per-registry names carry (`npm_config_//host/:_authToken`).
pub(crate) fn valid_scrub_pattern(s: &str) -> bool {
    if !s.contains('*') {
        return valid_env_name(s);
    }
    s.chars().any(|c| c != '*')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_*/:@.-".contains(c))
}

/// `NAME` or `PREFIX*`. A bare `*` would pass the whole environment, secrets included.
pub(crate) fn env_pattern(s: &str) -> Option<EnvPattern> {
    match s.strip_suffix('*') {
        Some(prefix) if valid_env_name(prefix) => Some(EnvPattern::Prefix(prefix.to_string())),
        Some(_) => None,
        None if valid_env_name(s) => Some(EnvPattern::Exact(s.to_string())),
        None => None,
    }
}

/// `4096`, `512K`, `1G`: an integer with an optional K/M/G/T suffix, powers of 1024.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 10),
        b'M' => (&s[..s.len() - 1], 20),
        b'G' => (&s[..s.len() - 1], 30),
        b'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    parse_count(digits)?.checked_mul(1u64 << shift)
}

/// `0.5`, `1.5`, `2`: a number of CPUs with at most three decimals, from 0.01 to 4096, as
/// thousandths of a CPU. One syntax only (no `150%`): the same number `nproc` counts in.
pub(crate) fn parse_cpus(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || frac.len() > 3 || s.ends_with('.') {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = parse_count(whole)?;
    let frac: u64 = format!("{frac:0<3}").parse().ok()?;
    let millis = whole.checked_mul(1000)?.checked_add(frac)?;
    (10..=4096 * 1000).contains(&millis).then_some(millis)
}

/// `90s`, `30m`, `2h`, `1h30m`, or a plain integer of seconds. Units go from larger to smaller,
/// each at most once. Zero is refused: a step that may run for no time cannot run.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(secs) = parse_count(s) {
        return (secs > 0).then(|| Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    let mut last_unit = u64::MAX;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest.find(|c: char| !c.is_ascii_digit())?;
        let n = parse_count(&rest[..end])?;
        let unit = match rest[end..].chars().next()? {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        if unit >= last_unit {
            return None;
        }
        last_unit = unit;
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[end + 1..];
    }
    (total > 0).then(|| Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(d("90s"), Some(90));
        assert_eq!(d("30m"), Some(1800));
        assert_eq!(d("2h"), Some(7200));
        assert_eq!(d("1h30m"), Some(5400));
        assert_eq!(d("1h0m5s"), Some(3605));
        assert_eq!(d("45"), Some(45));
        for bad in [
            "",
            "0",
            "0s",
            "soon",
            "1.5h",
            "-5s",
            "5 m",
            "1m1h",
            "1h1h",
            "h",
            "1d",
            "5sx",
            "+5",
            "18446744073709551615h",
            "1_000",
        ] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1K"), Some(1024));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("2T"), Some(2 << 40));
        for bad in [
            "",
            "G",
            "1g",
            "1KB",
            "1.5G",
            "-1",
            "16777216T",
            "1 G",
            "0x10",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1"), Some(1000));
        assert_eq!(parse_cpus("0.5"), Some(500));
        assert_eq!(parse_cpus("1.5"), Some(1500));
        assert_eq!(parse_cpus("0.25"), Some(250));
        assert_eq!(parse_cpus("0.01"), Some(10));
        assert_eq!(parse_cpus("4096"), Some(4_096_000));
        for bad in [
            "", "0", "0.0", "0.001", "4097", "1.", ".5", "1.2345", "150%", "-1", "1,5", "1e3",
            "one", "1.5.", "0x1", "1. 5", "+1",
        ] {
            assert_eq!(parse_cpus(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn env_patterns() {
        assert_eq!(env_pattern("CI"), Some(EnvPattern::Exact("CI".into())));
        assert_eq!(
            env_pattern("GITHUB_*"),
            Some(EnvPattern::Prefix("GITHUB_".into()))
        );
        assert_eq!(env_pattern("_x1"), Some(EnvPattern::Exact("_x1".into())));
        for bad in [
            "*", "FOO*BAR", "FOO**", "1FOO", "FOO-BAR", "", "*FOO", "A B",
        ] {
            assert_eq!(env_pattern(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn profile_names() {
        assert!(valid_profile_name("default"));
        assert!(valid_profile_name("0day_x-y"));
        for bad in ["", "Default", "-x", "_x", "a b", "a/b", &"a".repeat(65)] {
            assert!(!valid_profile_name(bad), "{bad:?}");
        }
    }
}
