//! The `$GITHUB_ENV` format as the runner reads it: parsing, dropping the dangerous names,
//! rendering what is kept, and doing all three to the file in place.

use std::path::Path;

use super::deny::{RESERVED, RESERVED_REASON, core_name, dangerous_reason, pattern_matches};
use super::error::FileCommandError;
use super::file::{fail_closed, read_command_file, rewrite};

/// One NAME/value pair from a `$GITHUB_ENV`-format file, in file order.
///
/// `Debug` leaves the value out: it may be a token.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvEntry {
    pub name: String,
    pub value: String,
    /// 1-based line of the NAME (after a leading byte order mark, which the runner drops).
    pub line: usize,
}

impl std::fmt::Debug for EnvEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvEntry")
            .field("name", &self.name)
            .field("value_len", &self.value.len())
            .field("line", &self.line)
            .finish()
    }
}

/// An entry [`sanitize_env`] took out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub name: String,
    pub line: usize,
    pub reason: String,
}

/// The outcome of [`sanitize_env`]: what later steps get, and what they do not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sanitized {
    pub kept: Vec<EnvEntry>,
    pub removed: Vec<Removed>,
}

fn parse_error(line: usize, problem: impl Into<String>) -> FileCommandError {
    FileCommandError::Parse {
        line,
        problem: problem.into(),
    }
}

/// Parse `$GITHUB_ENV` text the way the runner does on Linux:
/// - a leading UTF-8 byte order mark is dropped (.NET's `ReadAllText` does);
/// - lines end at `\n` only: a `\r` is part of the line (and of the value);
/// - empty lines between entries are skipped;
/// - with `e` the first `=` and `h` the first `<<` of a line: `NAME=value` if `e` comes first
///   (`A=x<<y` is `A` = `x<<y`), else `NAME<<DELIMITER` if there is an `h`, whose value is the
///   following lines up to the first line that is exactly `DELIMITER`, joined with `\n`;
/// - anything else, an empty name or an empty delimiter is an error (the runner fails the step).
///
/// A name may appear more than once; the runner keeps the last value, and so does the list's
/// consumer if it applies the entries in order.
pub fn parse_env_file(text: &str) -> Result<Vec<EnvEntry>, FileCommandError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // `split_terminator` is the runner's `ReadLine`: a final `\n` does not start another line.
    let mut lines = text.split_terminator('\n').zip(1..);
    let mut entries = Vec::new();
    while let Some((line, number)) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line.find("<<");
        match (equals, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                let name = &line[..e];
                if name.is_empty() {
                    return Err(parse_error(number, "`=value` without a variable name"));
                }
                entries.push(EnvEntry {
                    name: name.to_string(),
                    value: line[e + 1..].to_string(),
                    line: number,
                });
            }
            (_, Some(h)) => {
                let name = &line[..h];
                let delimiter = &line[h + 2..];
                if name.is_empty() {
                    return Err(parse_error(number, "`<<DELIMITER` without a variable name"));
                }
                if delimiter.is_empty() {
                    return Err(parse_error(
                        number,
                        format!("{name:?}: `NAME<<` without a delimiter"),
                    ));
                }
                let mut value: Vec<&str> = Vec::new();
                loop {
                    match lines.next() {
                        Some((l, _)) if l == delimiter => break,
                        Some((l, _)) => value.push(l),
                        None => {
                            return Err(parse_error(
                                number,
                                format!(
                                    "{name:?}: no line {delimiter:?} ends the multi-line value"
                                ),
                            ));
                        }
                    }
                }
                entries.push(EnvEntry {
                    name: name.to_string(),
                    value: value.join("\n"),
                    line: number,
                });
            }
            _ => {
                return Err(parse_error(
                    number,
                    "neither `NAME=value` nor `NAME<<DELIMITER`",
                ));
            }
        }
    }
    Ok(entries)
}

/// Split `entries` into those later steps may get and those they may not: the dangerous names,
/// unless `allow` lists the exact name (case-sensitively); `STEPJAIL_*` names whatever `allow`
/// says; and names containing a NUL character, which no program can receive intact.
pub fn sanitize_env(entries: Vec<EnvEntry>, allow: &[String]) -> Sanitized {
    let mut out = Sanitized::default();
    for entry in entries {
        let reason = if entry.name.contains('\0') {
            Some("the name contains a NUL character")
        } else if pattern_matches(RESERVED, core_name(&entry.name)) {
            Some(RESERVED_REASON)
        } else {
            dangerous_reason(&entry.name).filter(|_| !allow.contains(&entry.name))
        };
        match reason {
            Some(reason) => out.removed.push(Removed {
                name: entry.name,
                line: entry.line,
                reason: reason.to_string(),
            }),
            None => out.kept.push(entry),
        }
    }
    out
}

/// A delimiter for `value`: `ghadelimiter_` and 32 random hex digits, and never one of the
/// value's lines. Should the system's random number generator fail, `fallback` counts up
/// instead: the line check alone already makes the delimiter safe.
pub(super) fn delimiter_for(value: &str, fallback: &mut u128) -> String {
    loop {
        let mut bytes = [0u8; 16];
        let n = match getrandom::fill(&mut bytes) {
            Ok(()) => u128::from_be_bytes(bytes),
            Err(_) => {
                *fallback += 1;
                *fallback
            }
        };
        let delimiter = format!("ghadelimiter_{n:032x}");
        if !value.split('\n').any(|line| line == delimiter) {
            return delimiter;
        }
    }
}

/// `entries` as `$GITHUB_ENV` text that the runner (and [`parse_env_file`]) reads back as
/// exactly these names and values: every entry in heredoc form, with a fresh delimiter that
/// is none of its value's lines.
///
/// Two corners of the format are handled: a name ending in `<` cannot be written before `<<`
/// (the runner would split at the first `<<`), so it is written `NAME=value` (a parsed one's
/// value is one line); and a first name starting with U+FEFF is preceded by an empty line, or the
/// runner would drop that character as a byte order mark.
///
/// # Panics
///
/// On an entry [`parse_env_file`] cannot produce: an empty name, a name containing `=`, `<<` or
/// a newline, or a name ending in `<` with a multi-line value.
pub fn render_env(entries: &[EnvEntry]) -> String {
    let mut out = String::new();
    if entries
        .first()
        .is_some_and(|e| e.name.starts_with('\u{feff}'))
    {
        out.push('\n');
    }
    let mut fallback = 0;
    for entry in entries {
        let (name, value) = (&entry.name, &entry.value);
        let unwritable = name.is_empty()
            || name.contains(['=', '\n'])
            || name.contains("<<")
            || (name.ends_with('<') && value.contains('\n'));
        assert!(
            !unwritable,
            "render_env: entry {name:?} (line {}) cannot be written in GITHUB_ENV format",
            entry.line
        );
        if name.ends_with('<') {
            out.push_str(&format!("{name}={value}\n"));
        } else {
            let delimiter = delimiter_for(value, &mut fallback);
            out.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
        }
    }
    out
}

/// Sanitize the `$GITHUB_ENV` file at `path` in place, before the runner reads it: parse it
/// ([`parse_env_file`]), drop what [`sanitize_env`] drops, and rewrite it with [`render_env`]
/// if anything was dropped. A file with nothing to drop is left byte for byte as it is.
///
/// Fails closed: a file that does not parse, is not UTF-8 or is larger than
/// [`super::MAX_FILE_BYTES`] is emptied (nothing the step wrote reaches later steps) and the error
/// returned. A symbolic link or anything but a regular file with one link is an error and left
/// untouched. No file is `Ok` with nothing kept or removed.
pub fn sanitize_env_file(path: &Path, allow: &[String]) -> Result<Sanitized, FileCommandError> {
    let Some((mut file, text)) = read_command_file(path)? else {
        return Ok(Sanitized::default());
    };
    let entries = match parse_env_file(&text) {
        Ok(entries) => entries,
        Err(FileCommandError::Parse { line, problem }) => {
            let error = FileCommandError::ParseFile {
                path: path.display().to_string(),
                line,
                problem,
            };
            return Err(fail_closed(&file, path, error));
        }
        Err(other) => return Err(fail_closed(&file, path, other)),
    };
    let sanitized = sanitize_env(entries, allow);
    if !sanitized.removed.is_empty() {
        rewrite(&mut file, path, &render_env(&sanitized.kept))?;
    }
    Ok(sanitized)
}
