//! Path normalisation and the rules a set of filesystem entries must obey.
//!
//! The same rules run twice: on the templates when a profile is loaded (so a contradictory
//! profile never loads), and on the expanded absolute paths when it is resolved for a run
//! (because `$WORKSPACE` may turn out to equal `$HOME`, or `/`).

use super::error::{Conflict, PolicyError};
use super::model::{Location, PathTemplate};
use super::vars::{self, Piece};

/// Collapse `//` and `.` components and drop a trailing `/`; refuse `..`. `s` starts with `/`
/// or with a variable reference.
fn normalise_components(s: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(
                    "contains a `..` component; write the path without it (`..` through a symlink does not mean what it seems)"
                        .to_string(),
                );
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    Ok(if s.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    })
}

/// Normalise a path template as written in a profile. Variable errors are the caller's job
/// (`pieces` is already parsed).
pub(crate) fn normalise_template(pieces: &[Piece]) -> Result<String, String> {
    let starts_ok = match pieces.first() {
        Some(Piece::Var(_)) => true,
        Some(Piece::Lit(s)) => s.starts_with('/'),
        None => return Err("is empty".to_string()),
    };
    if !starts_ok {
        return Err(
            "is relative; a path must start with `/` or a variable like $WORKSPACE or $HOME"
                .to_string(),
        );
    }
    normalise_components(&vars::canonical(pieces))
}

/// Normalise an expanded path. It must be absolute.
pub(crate) fn normalise_absolute(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("expands to `{s}`, which is not an absolute path"));
    }
    normalise_components(s)
}

/// `a` is a strict ancestor of `b`.
fn is_ancestor(a: &str, b: &str) -> bool {
    a != b && (a == "/" || b.strip_prefix(a).is_some_and(|rest| rest.starts_with('/')))
}

/// One filesystem entry as the rules see it.
pub(crate) struct Entry<'a> {
    /// Normalised template (load time) or normalised absolute path (resolve time).
    pub norm: String,
    /// How to show it in a message: the template, or `template = /expanded/path`.
    pub shown: String,
    pub tpl: &'a PathTemplate,
}

/// Paths taken as they are written (already normalised) as entries for [`check_rules`].
pub(crate) fn entries_as_written(list: &[PathTemplate]) -> Vec<Entry<'_>> {
    list.iter()
        .map(|t| Entry {
            norm: t.raw.clone(),
            shown: t.raw.clone(),
            tpl: t,
        })
        .collect()
}

/// "line 3" when `other` is in the same file as `here`, else the full location.
pub(crate) fn where_relative(here: &Location, other: &Location) -> String {
    if here.file == other.file {
        format!("line {}", other.line)
    } else {
        other.to_string()
    }
}

/// The rules: nothing makes `/` writable or hidden; no path is both hidden and writable or
/// read-only; no hidden path contains a writable one. Duplicates are fine (the caller dedups).
pub(crate) fn check_rules(
    read_write: &[Entry],
    read_only: &[Entry],
    hidden: &[Entry],
) -> Result<(), PolicyError> {
    if let Some(w) = read_write.iter().find(|w| w.norm == "/") {
        return Err(PolicyError::BadPath {
            at: w.tpl.at.clone(),
            path: w.tpl.key.clone(),
            raw: w.shown.clone(),
            reason: "`/` in read_write would make the whole host writable".to_string(),
        });
    }
    if let Some(h) = hidden.iter().find(|h| h.norm == "/") {
        return Err(PolicyError::BadPath {
            at: h.tpl.at.clone(),
            path: h.tpl.key.clone(),
            raw: h.shown.clone(),
            reason: "`/` in hidden would hide the whole filesystem".to_string(),
        });
    }
    for h in hidden {
        let contradiction = |other: &Entry, conflict| {
            let place = where_relative(&h.tpl.at, &other.tpl.at);
            PolicyError::Contradiction {
                at: h.tpl.at.clone(),
                path: h.tpl.key.clone(),
                raw: h.shown.clone(),
                conflict,
                other: if other.shown == h.shown {
                    format!("`{}` ({place})", other.tpl.key)
                } else {
                    format!("`{}` ({}, {place})", other.tpl.key, other.shown)
                },
            }
        };
        if let Some(w) = read_write.iter().find(|w| w.norm == h.norm) {
            return Err(contradiction(w, Conflict::HiddenAndWritable));
        }
        if let Some(r) = read_only.iter().find(|r| r.norm == h.norm) {
            return Err(contradiction(r, Conflict::HiddenAndReadOnly));
        }
        if let Some(w) = read_write.iter().find(|w| is_ancestor(&h.norm, &w.norm)) {
            return Err(contradiction(w, Conflict::HiddenContainsWritable));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, String> {
        normalise_template(&vars::parse(s).unwrap())
    }

    #[test]
    fn normalises_templates() {
        assert_eq!(norm("$HOME/.ssh/").unwrap(), "$HOME/.ssh");
        assert_eq!(norm("${HOME}//a/./b").unwrap(), "$HOME/a/b");
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("//").unwrap(), "/");
        assert_eq!(
            norm("/var/run/docker.sock").unwrap(),
            "/var/run/docker.sock"
        );
        assert_eq!(norm("$WORKSPACE").unwrap(), "$WORKSPACE");
    }

    #[test]
    fn rejects_relative_dotdot_and_empty() {
        assert!(norm("src").unwrap_err().contains("is relative"));
        assert!(norm("./src").unwrap_err().contains("is relative"));
        assert!(norm("$HOME/../etc").unwrap_err().contains("`..`"));
        assert!(norm("").unwrap_err().contains("empty"));
    }

    #[test]
    fn ancestors() {
        assert!(is_ancestor("/", "/a"));
        assert!(is_ancestor("$HOME", "$HOME/.cargo"));
        assert!(!is_ancestor("$HOME", "$HOMEX"));
        assert!(!is_ancestor("/a", "/ab"));
        assert!(!is_ancestor("/a", "/a"));
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(normalise_absolute("/home/u//x/").unwrap(), "/home/u/x");
        assert!(
            normalise_absolute("home")
                .unwrap_err()
                .contains("not an absolute path")
        );
        assert!(
            normalise_absolute("/a/../b").unwrap_err().contains(".."),
            "a `..` component is refused"
        );
    }
}
