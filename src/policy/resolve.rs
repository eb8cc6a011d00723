//! [`Profile::resolve`]: templates -> absolute paths and final environment for one run.

use std::path::PathBuf;

use super::error::PolicyError;
use super::model::{Location, PathTemplate, Profile, ResolvedProfile, Vars};
use super::paths::{self, Entry};
use super::vars::{self, TemplateError, Var};

fn template_error(e: TemplateError, at: &Location, path: &str, raw: &str) -> PolicyError {
    match e {
        TemplateError::Unknown(name) => PolicyError::UnknownVariable {
            at: at.clone(),
            path: path.to_string(),
            name,
        },
        TemplateError::Syntax(problem) => PolicyError::BadVariableSyntax {
            at: at.clone(),
            path: path.to_string(),
            raw: raw.to_string(),
            problem,
        },
    }
}

fn unset(v: Var, at: &Location, path: &str) -> PolicyError {
    PolicyError::UnsetVariable {
        at: at.clone(),
        path: path.to_string(),
        name: v.name(),
        hint: v.hint(),
    }
}

/// Expand `raw` with `vars`.
fn expand(raw: &str, vars: &Vars, at: &Location, path: &str) -> Result<String, PolicyError> {
    let pieces = vars::parse(raw).map_err(|e| template_error(e, at, path, raw))?;
    vars::expand(&pieces, vars).map_err(|v| unset(v, at, path))
}

fn entries<'a>(list: &'a [PathTemplate], vars: &Vars) -> Result<Vec<Entry<'a>>, PolicyError> {
    list.iter()
        .map(|t| {
            let expanded = expand(&t.raw, vars, &t.at, &t.key)?;
            let norm =
                paths::normalise_absolute(&expanded).map_err(|reason| PolicyError::BadPath {
                    at: t.at.clone(),
                    path: t.key.clone(),
                    raw: t.raw.clone(),
                    reason,
                })?;
            let shown = if norm == t.raw {
                norm.clone()
            } else {
                format!("{} = {norm}", t.raw)
            };
            Ok(Entry {
                norm,
                shown,
                tpl: t,
            })
        })
        .collect()
}

/// Expanded paths in order, without duplicates (two templates can expand to the same path).
fn dedup(entries: &[Entry]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for e in entries {
        let p = PathBuf::from(&e.norm);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

impl Profile {
    /// Expand every variable for one run and check the rules again on the real paths: a
    /// template pair that looked fine (`$WORKSPACE` writable, `$HOME` hidden) may collide once
    /// the values are known. Hidden paths inside writable ones stay fine.
    pub fn resolve(&self, vars: &Vars) -> Result<ResolvedProfile, PolicyError> {
        self.resolve_with(vars, self.network.clone())
    }

    /// [`Profile::resolve`] that moves the network section (thousands of allow rules in a
    /// large profile) into the result instead of copying it; `self` keeps an empty one.
    pub fn resolve_taking_network(&mut self, vars: &Vars) -> Result<ResolvedProfile, PolicyError> {
        let network = std::mem::take(&mut self.network);
        self.resolve_with(vars, network)
    }

    fn resolve_with(
        &self,
        vars: &Vars,
        network: super::model::Network,
    ) -> Result<ResolvedProfile, PolicyError> {
        let fs = &self.filesystem;
        let read_write = entries(&fs.read_write, vars)?;
        let read_only = entries(&fs.read_only, vars)?;
        let hidden = entries(&fs.hidden, vars)?;
        paths::check_rules(&read_write, &read_only, &hidden)?;

        let mut env_set = std::collections::BTreeMap::new();
        for (name, raw) in &self.env.set {
            let at = self
                .env
                .set_at
                .get(name)
                .cloned()
                .unwrap_or_else(|| Location {
                    file: self.source.clone(),
                    line: 0,
                    column: 0,
                });
            let value = expand(raw, vars, &at, &format!("env.set.{name}"))?;
            env_set.insert(name.clone(), value);
        }

        let mut files = Vec::new();
        for (path, (raw, at)) in &fs.files {
            let content = expand(raw, vars, at, &format!("filesystem.files.{path}"))?;
            files.push((PathBuf::from(path), content));
        }

        Ok(ResolvedProfile {
            name: self.name.clone(),
            read_write: dedup(&read_write),
            read_only: dedup(&read_only),
            hidden: dedup(&hidden),
            network,
            env_pass: self.env.pass.clone(),
            env_set,
            process: self.process.clone(),
            landlock: self.landlock.clone(),
            secrets: self.secrets.clone(),
            env_scrub: self.env.scrub.clone(),
            files,
        })
    }
}
