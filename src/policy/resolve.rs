//! [`Profile::resolve`]: templates -> absolute paths and final environment for one run.

use std::path::PathBuf;

use super::error::PolicyError;
use super::model::{
    EnvPattern, Location, PathTemplate, Profile, ResolvedProfile, RunAdditions, Vars,
};
use super::paths::{self, Entry};
use super::vars::{self, TemplateError, Var};

pub(super) fn template_error(
    e: TemplateError,
    at: &Location,
    path: &str,
    raw: &str,
) -> PolicyError {
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

/// One list of expanded paths as the rules see it: `key` names the list in messages, `at` says
/// whose it is (the profile's, or the run's).
fn resolved_templates(list: &[PathBuf], key: &str, at: &Location) -> Vec<PathTemplate> {
    list.iter()
        .enumerate()
        .map(|(i, p)| PathTemplate {
            raw: p.display().to_string(),
            at: at.clone(),
            key: format!("{key}[{i}]"),
        })
        .collect()
}

/// A path a run adds, normalised as [`Profile::resolve`] normalises an expanded template: it
/// must be absolute UTF-8 without a `..` component.
fn run_path(p: &std::path::Path, key: &str, at: &Location) -> Result<PathBuf, PolicyError> {
    let bad = |reason: String| PolicyError::BadPath {
        at: at.clone(),
        path: key.to_string(),
        raw: p.display().to_string(),
        reason,
    };
    let s = p
        .to_str()
        .ok_or_else(|| bad("is not UTF-8 text".to_string()))?;
    paths::normalise_absolute(s).map(PathBuf::from).map_err(bad)
}

impl ResolvedProfile {
    /// This profile with what one run adds: a new value, built once, which the run then only
    /// reads (nothing patches a resolved profile field by field). The paths it adds are checked
    /// as [`Profile::resolve`] checks the profile's own: each absolute, without `..`, and the
    /// rules again on the whole (nothing makes `/` writable or hidden, no path both hidden and
    /// writable or read-only, no hidden path containing a writable one).
    pub fn with_run(self, add: RunAdditions) -> Result<ResolvedProfile, PolicyError> {
        let ours = Location {
            file: format!("profile {}", self.name),
            line: 0,
            column: 0,
        };
        let run = Location {
            file: "this run".to_string(),
            line: 0,
            column: 0,
        };
        let checked = |list: &[PathBuf], key: &str| -> Result<Vec<PathBuf>, PolicyError> {
            list.iter()
                .enumerate()
                .map(|(i, p)| run_path(p, &format!("{key}[{i}]"), &run))
                .collect()
        };
        let added_rw = checked(&add.read_write, "run.read_write")?;
        let added_ro = checked(&add.read_only, "run.read_only")?;
        let added_hidden = checked(&add.hidden, "run.hidden")?;
        let templates = |have: &[PathBuf], key: &str, added: &[PathBuf], run_key: &str| {
            let mut t = resolved_templates(have, key, &ours);
            t.extend(resolved_templates(added, run_key, &run));
            t
        };
        let rw = templates(
            &self.read_write,
            "filesystem.read_write",
            &added_rw,
            "run.read_write",
        );
        let ro = templates(
            &self.read_only,
            "filesystem.read_only",
            &added_ro,
            "run.read_only",
        );
        let hidden = templates(
            &self.hidden,
            "filesystem.hidden",
            &added_hidden,
            "run.hidden",
        );
        paths::check_rules(
            &paths::entries_as_written(&rw),
            &paths::entries_as_written(&ro),
            &paths::entries_as_written(&hidden),
        )?;

        let mut p = self;
        p.hidden.extend(added_hidden);
        p.env_pass
            .extend(add.pass.into_iter().map(EnvPattern::Exact));
        p.env_set.extend(add.set);
        p.env_scrub.extend(add.scrub);
        if let Some(mode) = add.mode {
            p.network.mode = mode;
        }
        p.read_only.extend(added_ro);
        p.read_write.extend(added_rw);
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::error::Conflict;

    /// `$WORKSPACE` (/home/u/ws) writable, `$HOME/.ssh` hidden.
    fn resolved() -> ResolvedProfile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yml");
        std::fs::write(
            &path,
            "name: t\ndescription: t\nfilesystem:\n  read_write: [$WORKSPACE]\n  hidden: [$HOME/.ssh]\n",
        )
        .unwrap();
        let vars = Vars {
            workspace: Some("/home/u/ws".into()),
            home: Some("/home/u".into()),
            ..Vars::default()
        };
        crate::policy::load_file(&path)
            .unwrap()
            .resolve(&vars)
            .unwrap()
    }

    fn refused(add: RunAdditions) -> PolicyError {
        resolved().with_run(add).unwrap_err()
    }

    fn hide(p: &str) -> RunAdditions {
        RunAdditions {
            hidden: vec![p.into()],
            ..RunAdditions::default()
        }
    }

    fn conflict(e: &PolicyError) -> Option<Conflict> {
        match e {
            PolicyError::Contradiction { conflict, .. } => Some(*conflict),
            _ => None,
        }
    }

    #[test]
    fn a_run_cannot_add_paths_resolve_would_refuse() {
        // The workspace is writable: the run may not hide it, nor a directory holding it.
        let e = refused(hide("/home/u/ws"));
        assert_eq!(conflict(&e), Some(Conflict::HiddenAndWritable), "{e}");
        assert!(
            e.to_string().starts_with(
                "this run:0:0: `run.hidden[0]` (/home/u/ws) is also in `filesystem.read_write[0]`"
            ),
            "{e}"
        );
        let e = refused(hide("/home/u"));
        assert_eq!(conflict(&e), Some(Conflict::HiddenContainsWritable), "{e}");
        let e = refused(hide("/"));
        assert!(
            e.to_string().contains("would hide the whole filesystem"),
            "{e}"
        );
        // Nor a writable path inside a hidden one, a writable `/`, or a read-only hidden path.
        let rw = |p: &str| RunAdditions {
            read_write: vec![p.into()],
            ..RunAdditions::default()
        };
        let e = refused(rw("/home/u/.ssh/keys"));
        assert_eq!(conflict(&e), Some(Conflict::HiddenContainsWritable), "{e}");
        let e = refused(rw("/"));
        assert!(e.to_string().contains("the whole host writable"), "{e}");
        let e = refused(RunAdditions {
            read_only: vec!["/home/u/.ssh".into()],
            ..RunAdditions::default()
        });
        assert_eq!(conflict(&e), Some(Conflict::HiddenAndReadOnly), "{e}");
        // Paths as resolve takes them: absolute, without `..`.
        for bad in ["home/u/x", "/home/u/ws/../x"] {
            let e = refused(hide(bad));
            assert!(
                matches!(&e, PolicyError::BadPath { path, .. } if path == "run.hidden[0]"),
                "{e}"
            );
        }
    }

    #[test]
    fn what_a_run_adds_is_kept_normalised() {
        // Hidden state inside the workspace, the audit log's read-only hole, pinned directories.
        let p = resolved()
            .with_run(RunAdditions {
                hidden: vec!["/home/u/ws/.state/".into()],
                read_only: vec!["/home/u/ws/logs/audit.jsonl".into()],
                read_write: vec!["/home/u/ws//logs".into()],
                ..RunAdditions::default()
            })
            .unwrap();
        let last = |l: &[PathBuf]| l.last().unwrap().clone();
        assert_eq!(last(p.hidden()), PathBuf::from("/home/u/ws/.state"));
        assert_eq!(
            last(p.read_only()),
            PathBuf::from("/home/u/ws/logs/audit.jsonl")
        );
        assert_eq!(last(p.read_write()), PathBuf::from("/home/u/ws/logs"));
    }
}
