//! `$VARIABLES` in paths and `env.set` values.
//!
//! Only four variables exist: `$WORKSPACE`, `$HOME`, `$TMPDIR`, `$RUNNER_TEMP`, each also written
//! `${NAME}`. Any other name is an error when the profile is loaded (a typo would otherwise
//! silently become a literal path); an allowed variable without a value is an error when the
//! profile is resolved for a run. `$$` is a literal `$`.

use std::path::Path;

use super::model::Vars;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Var {
    Workspace,
    Home,
    Tmpdir,
    RunnerTemp,
}

impl Var {
    pub(crate) const ALL: [Var; 4] = [Var::Workspace, Var::Home, Var::Tmpdir, Var::RunnerTemp];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Var::Workspace => "WORKSPACE",
            Var::Home => "HOME",
            Var::Tmpdir => "TMPDIR",
            Var::RunnerTemp => "RUNNER_TEMP",
        }
    }

    fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }

    pub(crate) fn value(self, vars: &Vars) -> Option<&Path> {
        match self {
            Var::Workspace => vars.workspace.as_deref(),
            Var::Home => vars.home.as_deref(),
            Var::Tmpdir => vars.tmpdir.as_deref(),
            Var::RunnerTemp => vars.runner_temp.as_deref(),
        }
    }

    /// Where the value normally comes from, for "has no value" messages.
    pub(crate) fn hint(self) -> &'static str {
        match self {
            Var::Workspace => "pass --workspace or run inside a checkout",
            Var::Home => "HOME is not set",
            Var::Tmpdir => "TMPDIR is not set",
            Var::RunnerTemp => "RUNNER_TEMP is only set on GitHub Actions runners",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// `$FOO` / `${FOO}` with a name that is not allowed.
    Unknown(String),
    /// A `$` not followed by a name, `{` or `$`; or a bad `${...}`.
    Syntax(String),
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Split `s` into literal text and variable references.
pub(crate) fn parse(s: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, next) = if let Some(tail) = after.strip_prefix('$') {
            lit.push('$');
            rest = tail;
            continue;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| TemplateError::Syntax("`${` without a closing `}`".to_string()))?;
            let name = &braced[..end];
            let valid = name.starts_with(is_name_start) && name.chars().all(is_name_char);
            if !valid {
                return Err(TemplateError::Syntax(format!(
                    "`${{{name}}}` is not a variable reference"
                )));
            }
            (name, &braced[end + 1..])
        } else if after.starts_with(is_name_start) {
            let end = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            (&after[..end], &after[end..])
        } else {
            return Err(TemplateError::Syntax(
                "a `$` that does not start a variable".to_string(),
            ));
        };
        let var = Var::from_name(name).ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
        if !lit.is_empty() {
            pieces.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        pieces.push(Piece::Var(var));
        rest = next;
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

/// Write pieces back as template text in one canonical spelling: `$NAME` unless a name
/// character follows (then `${NAME}`), `$$` for a literal `$`. Two templates that mean the same
/// thing have the same canonical text.
pub(crate) fn canonical(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Lit(s) => out.push_str(&s.replace('$', "$$")),
            Piece::Var(v) => {
                let glued = matches!(pieces.get(i + 1), Some(Piece::Lit(next)) if next.starts_with(is_name_char));
                if glued {
                    out.push_str(&format!("${{{}}}", v.name()));
                } else {
                    out.push('$');
                    out.push_str(v.name());
                }
            }
        }
    }
    out
}

/// Substitute values. `Err(var)` names the first variable without a value (or whose value is
/// not UTF-8, which a profile value cannot carry).
pub(crate) fn expand(pieces: &[Piece], vars: &Vars) -> Result<String, Var> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Lit(s) => out.push_str(s),
            Piece::Var(v) => out.push_str(v.value(vars).and_then(Path::to_str).ok_or(*v)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn parses_both_forms_and_escapes() {
        assert_eq!(
            parse("$HOME/a${WORKSPACE}b$$c").unwrap(),
            vec![
                Piece::Var(Var::Home),
                Piece::Lit("/a".into()),
                Piece::Var(Var::Workspace),
                Piece::Lit("b$c".into()),
            ]
        );
        assert_eq!(parse("/plain").unwrap(), vec![Piece::Lit("/plain".into())]);
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        assert_eq!(parse("$FOO/x"), Err(TemplateError::Unknown("FOO".into())));
        assert_eq!(parse("${PATH}"), Err(TemplateError::Unknown("PATH".into())));
        // A longer name is a different (unknown) variable, not $HOME followed by text.
        assert_eq!(
            parse("$HOMEDIR"),
            Err(TemplateError::Unknown("HOMEDIR".into()))
        );
        assert!(matches!(parse("a$"), Err(TemplateError::Syntax(_))));
        assert!(matches!(parse("$1"), Err(TemplateError::Syntax(_))));
        assert!(matches!(parse("${HOME"), Err(TemplateError::Syntax(_))));
        assert!(matches!(parse("${}"), Err(TemplateError::Syntax(_))));
        assert!(matches!(parse("${HO ME}"), Err(TemplateError::Syntax(_))));
    }

    #[test]
    fn canonical_spelling() {
        let c = |s: &str| canonical(&parse(s).unwrap());
        assert_eq!(c("${HOME}/x"), "$HOME/x");
        assert_eq!(c("${HOME}x"), "${HOME}x");
        assert_eq!(c("/a$$b"), "/a$$b");
        assert_eq!(c("$RUNNER_TEMP"), "$RUNNER_TEMP");
    }

    #[test]
    fn expands_and_reports_unset() {
        let vars = Vars {
            home: Some(PathBuf::from("/home/u")),
            ..Vars::default()
        };
        assert_eq!(
            expand(&parse("$HOME/.cargo$$").unwrap(), &vars).unwrap(),
            "/home/u/.cargo$"
        );
        assert_eq!(
            expand(&parse("$TMPDIR/x").unwrap(), &vars),
            Err(Var::Tmpdir)
        );
    }
}
