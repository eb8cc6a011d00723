//! Loading a profile: read, parse, convert, follow `extends`, merge, check.
//!
//! Merging rules (parent first, child on top): lists concatenate and drop duplicates, `env.set`
//! entries of the child replace the parent's, scalars the child sets replace the parent's,
//! `name` and `description` are the child's. `network.allow` rules concatenate (a rule with the
//! same canonical text is kept once); `network.mode` is the child's if written, else `enforce`
//! when the child adds an `allow` list to a parent without network, else the parent's.
//! `secrets` entries of the child replace the parent's entry of the same name (in place);
//! `env.scrub` lists concatenate. The
//! merged profile is checked once, at the end: a child cannot undo a parent's rule, and a
//! contradiction between them is an error.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::convert::{self, Layer};
use super::error::{Conflict, PolicyError};
use super::model::{Location, NetworkMode, Profile};
use super::paths;
use super::wire::ProfileWire;
use super::{builtin, secret_decls, yaml};

/// Longest `extends` chain, counting the profile itself.
pub const MAX_EXTENDS_DEPTH: usize = 16;

/// Where a profile's text comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Builtin(&'static str, &'static str),
    File(PathBuf),
}

impl Source {
    /// How it is named in messages and in [`Profile::source`].
    pub(crate) fn label(&self) -> String {
        match self {
            Source::Builtin(name, _) => format!("builtin:{name}"),
            Source::File(p) => p.display().to_string(),
        }
    }

    /// What makes two sources the same profile, for cycle detection.
    fn identity(&self) -> String {
        match self {
            Source::Builtin(..) => self.label(),
            Source::File(p) => std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
        }
    }
}

/// `spec` names a built-in rather than a file: no `/` and no `.yml`/`.yaml` ending.
pub(super) fn looks_like_name(spec: &str) -> bool {
    !spec.contains('/') && !spec.ends_with(".yml") && !spec.ends_with(".yaml")
}

pub(super) fn unknown_builtin(name: &str) -> PolicyError {
    PolicyError::UnknownBuiltin {
        name: name.to_string(),
        available: builtin::names().iter().map(|s| s.to_string()).collect(),
    }
}

/// Load a profile by built-in name or path. A bare name is a built-in if one exists, else a file
/// of that name if one exists, else an error listing the built-ins.
pub fn load(spec: &str) -> Result<Profile, PolicyError> {
    if looks_like_name(spec) {
        if builtin::text(spec).is_some() {
            return load_builtin(spec);
        }
        if !Path::new(spec).exists() {
            return Err(unknown_builtin(spec));
        }
    }
    load_file(Path::new(spec))
}

/// Load, merge and check a profile file.
pub fn load_file(path: &Path) -> Result<Profile, PolicyError> {
    load_source(Source::File(path.to_path_buf()))
}

/// Load, merge and check a built-in profile.
pub fn load_builtin(name: &str) -> Result<Profile, PolicyError> {
    let (name, text) = builtin::text(name).ok_or_else(|| unknown_builtin(name))?;
    load_source(Source::Builtin(name, text))
}

/// The YAML text of the built-in profile `name`, as embedded in the binary.
pub fn builtin_text(name: &str) -> Option<&'static str> {
    builtin::text(name).map(|(_, text)| text)
}

/// (name, description) of every built-in profile, for `stepjail profiles`.
pub fn builtins() -> Vec<(&'static str, String)> {
    builtin::names()
        .into_iter()
        .map(|name| {
            let description = load_builtin(name)
                .map(|p| p.description)
                .unwrap_or_else(|e| format!("(broken built-in: {e})"));
            (name, description)
        })
        .collect()
}

fn load_source(source: Source) -> Result<Profile, PolicyError> {
    let text = match &source {
        Source::Builtin(_, text) => (*text).to_string(),
        Source::File(p) => yaml::read_file(p, &source.label())?,
    };
    load_text(source, &text, &mut Vec::new())
}

/// SHA-256 of `bytes`: how a parent file's content is recorded in a [`Dependency`].
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A file a profile was built from besides its own: an `extends` parent read from disk, as
/// the loader named it, with its canonical path and the SHA-256 of the bytes it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dependency {
    pub path: PathBuf,
    pub identity: String,
    pub sha256: [u8; 32],
}

/// [`load_source`] on text already read; every parent file read on the way is added to `deps`.
pub(crate) fn load_text(
    source: Source,
    text: &str,
    deps: &mut Vec<Dependency>,
) -> Result<Profile, PolicyError> {
    let label = source.label();
    let mut chain = vec![(source.identity(), label.clone())];
    let wire: Spanned<ProfileWire> = yaml::parse(text, &label)?;
    let layer = convert::layer(
        wire.value,
        yaml::location(&label, &wire.referenced),
        &label,
        "",
        None,
    )?;
    let profile = merge_recording(layer, &source, label, &mut chain, deps)?;
    check(&profile)?;
    Ok(profile)
}

/// Follow `layer`'s `extends` (recursively) and put `layer` on top of the result. `chain` holds
/// (identity, label) of every profile from the one the user asked for down to `layer`'s own.
pub(crate) fn merge_with_parents(
    layer: Layer,
    current: &Source,
    label: String,
    chain: &mut Vec<(String, String)>,
) -> Result<Profile, PolicyError> {
    merge_recording(layer, current, label, chain, &mut Vec::new())
}

/// [`merge_with_parents`], adding every parent file it reads to `deps`.
fn merge_recording(
    layer: Layer,
    current: &Source,
    label: String,
    chain: &mut Vec<(String, String)>,
    deps: &mut Vec<Dependency>,
) -> Result<Profile, PolicyError> {
    let parent = match &layer.extends {
        None => None,
        Some((spec, at)) => Some(load_parent(current, spec, at, chain, deps)?),
    };
    let mode = layer.network_mode.clone();
    let merged = apply(parent, layer, label);
    // Checked on the merged profile: a child saying `none` under a parent that allows hosts
    // is as contradictory as one file saying both.
    if let (Some((NetworkMode::None, at, key)), Some(first)) =
        (mode, merged.network.allow.views().next())
    {
        return Err(PolicyError::Contradiction {
            other: format!(
                "`{}` ({}, {})",
                first.key(),
                first.text(),
                paths::where_relative(&at, &first.at())
            ),
            at,
            path: key,
            raw: "none".to_string(),
            conflict: Conflict::NoNetworkWithAllow,
        });
    }
    Ok(merged)
}

fn load_parent(
    current: &Source,
    spec: &str,
    at: &Location,
    chain: &mut Vec<(String, String)>,
    deps: &mut Vec<Dependency>,
) -> Result<Profile, PolicyError> {
    let wrap = |source: PolicyError| PolicyError::Extends {
        at: at.clone(),
        path: "extends".to_string(),
        target: spec.to_string(),
        source: Box::new(source),
    };
    let target = if looks_like_name(spec) {
        let (name, text) = builtin::text(spec).ok_or_else(|| wrap(unknown_builtin(spec)))?;
        Source::Builtin(name, text)
    } else {
        match current {
            Source::File(p) => {
                let dir = p.parent().unwrap_or(Path::new("."));
                // `./b.yml` next to `/x/a.yml` is shown as `/x/b.yml`, not `/x/./b.yml`.
                Source::File(dir.join(spec).components().collect())
            }
            // Built-ins are embedded; they cannot name files on the machine they run on.
            Source::Builtin(..) => return Err(wrap(unknown_builtin(spec))),
        }
    };
    let label = target.label();
    let id = target.identity();
    if let Some(i) = chain.iter().position(|(seen, _)| *seen == id) {
        let mut names: Vec<String> = chain[i..].iter().map(|(_, l)| l.clone()).collect();
        names.push(label);
        return Err(PolicyError::ExtendsCycle {
            file: at.to_string(),
            chain: names,
        });
    }
    if chain.len() >= MAX_EXTENDS_DEPTH {
        let mut names: Vec<String> = chain.iter().map(|(_, l)| l.clone()).collect();
        names.push(label);
        return Err(PolicyError::ExtendsTooDeep {
            file: at.to_string(),
            max: MAX_EXTENDS_DEPTH,
            chain: names,
        });
    }
    let text = match &target {
        Source::Builtin(_, text) => (*text).to_string(),
        Source::File(p) => {
            let text = yaml::read_file(p, &label).map_err(wrap)?;
            deps.push(Dependency {
                path: p.clone(),
                identity: id.clone(),
                sha256: sha256(text.as_bytes()),
            });
            text
        }
    };
    let wire: Spanned<ProfileWire> = yaml::parse(&text, &label)?;
    let layer = convert::layer(
        wire.value,
        yaml::location(&label, &wire.referenced),
        &label,
        "",
        None,
    )?;
    chain.push((id, label.clone()));
    let merged = merge_recording(layer, &target, label, chain, deps);
    chain.pop();
    merged
}

/// Put `layer` on top of `parent`.
fn apply(parent: Option<Profile>, layer: Layer, source: String) -> Profile {
    let mut p = parent.unwrap_or_else(|| Profile {
        name: String::new(),
        description: String::new(),
        source: String::new(),
        filesystem: Default::default(),
        network: Default::default(),
        env: Default::default(),
        process: Default::default(),
        landlock: Default::default(),
        secrets: Vec::new(),
    });
    p.name = layer.name;
    p.description = layer.description;
    p.source = source;

    let fs = &mut p.filesystem;
    for (list, new) in [
        (&mut fs.read_write, layer.read_write),
        (&mut fs.read_only, layer.read_only),
        (&mut fs.hidden, layer.hidden),
    ] {
        for t in new {
            if !list.iter().any(|have| have.raw == t.raw) {
                list.push(t);
            }
        }
    }
    for (path, content, at) in layer.files {
        fs.files.insert(path, (content, at));
    }
    // Mode: the child's if written; else allow rules turn an inherited `none` into `enforce`
    // (an `audit` or `enforce` parent keeps its mode); else the parent's.
    let allow_given = layer.allow.is_some();
    // A set of the rule texts keeps the merge linear in the number of rules.
    if let Some(rules) = layer.allow {
        let mut seen: HashSet<String> = p
            .network
            .allow
            .views()
            .map(|r| r.text().to_string())
            .collect();
        let mut all = p.network.allow.rules().to_vec();
        for rule in rules {
            if seen.insert(rule.text.clone()) {
                all.push(rule);
            }
        }
        p.network.allow = all.into();
    }
    if layer.upstream_proxy.is_some() {
        p.network.upstream_proxy = layer.upstream_proxy;
    }
    if layer.max_connections.is_some() {
        p.network.max_connections = layer.max_connections;
    }
    p.network.mode = match layer.network_mode {
        Some((mode, ..)) => mode,
        None if allow_given && p.network.mode == NetworkMode::None => NetworkMode::Enforce,
        None => p.network.mode,
    };
    for pat in layer.env_pass {
        if !p.env.pass.contains(&pat) {
            p.env.pass.push(pat);
        }
    }
    for (name, value, at) in layer.env_set {
        p.env.set.insert(name.clone(), value);
        p.env.set_at.insert(name, at);
    }
    for name in layer.env_scrub {
        if !p.env.scrub.contains(&name) {
            p.env.scrub.push(name);
        }
    }
    for decl in layer.secrets {
        match p.secrets.iter_mut().find(|have| have.name == decl.name) {
            Some(have) => *have = decl,
            None => p.secrets.push(decl),
        }
    }
    p.process.timeout = layer.timeout.or(p.process.timeout);
    let (l, new) = (&mut p.process.limits, layer.limits);
    l.open_files = new.open_files.or(l.open_files);
    l.file_size = new.file_size.or(l.file_size);
    l.processes = new.processes.or(l.processes);
    l.cpu_seconds = new.cpu_seconds.or(l.cpu_seconds);
    l.address_space = new.address_space.or(l.address_space);
    l.core_size = new.core_size.or(l.core_size);
    l.memory = new.memory.or(l.memory);
    l.pids = new.pids.or(l.pids);
    l.cpu_millis = new.cpu_millis.or(l.cpu_millis);
    l.enforce = new.enforce.or(l.enforce);
    p.landlock.min_abi = layer.min_abi.or(p.landlock.min_abi);
    p
}

/// The contradiction rules on the merged profile: paths, then secrets.
pub(crate) fn check(p: &Profile) -> Result<(), PolicyError> {
    let entries = paths::entries_as_written;
    paths::check_rules(
        &entries(&p.filesystem.read_write),
        &entries(&p.filesystem.read_only),
        &entries(&p.filesystem.hidden),
    )?;
    secret_decls::check(p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_allowlist_of_ten_thousand_map_rules_loads() {
        let mut text = String::from("name: big\ndescription: many hosts\nnetwork:\n  allow:\n");
        for i in 0..10_000 {
            text.push_str(&format!(
                "    - {{ host: mirror{i}.example.net, ports: [80, 443, 8443] }}\n"
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yml");
        std::fs::write(&path, &text).unwrap();
        let profile = super::load_file(&path).unwrap();
        assert_eq!(profile.network.allow.len(), 10_000);
        assert_eq!(
            profile.network.allow.rules()[9_999].text,
            "mirror9999.example.net:80,443,8443"
        );
    }
}
