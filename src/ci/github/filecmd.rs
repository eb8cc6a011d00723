//! What a step leaves in `$GITHUB_ENV` and `$GITHUB_PATH`, made safe for the steps after it.
//!
//! The runner reads both files after every step and applies them to all later steps, including
//! the ones stepjail does not sandbox. A compromised step could use them to plant code in those
//! steps (`LD_PRELOAD=/tmp/evil.so`, a directory with a fake `stepjail` in front of `PATH`), so
//! stepjail reads them first, outside the sandbox, with the runner's own rules
//! (`FileCommandManager.cs` on Linux), and removes what is dangerous.
//!
//! Two properties matter more than anything else here:
//! - we read exactly what the runner will read: a file we leave untouched must not hold an entry
//!   the runner sees and we did not (so the parser copies the runner's rules, quirks included);
//! - when in doubt, nothing the step wrote gets through: a file we cannot parse is emptied.
//!
//! No value ever appears in an error (only names, heredoc delimiters and line numbers):
//! `$GITHUB_ENV` often carries tokens.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Largest file-command file read. Anything bigger is not an environment: the file is emptied.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The names a step may not set through `$GITHUB_ENV`, by what setting them does (the reason a
/// removal reports). A trailing `*` matches any name starting with what comes before it; names
/// compare ASCII case-insensitively (`http_proxy` is `HTTP_PROXY`).
pub const DANGEROUS_GROUPS: &[(&str, &[&str])] = &[
    (
        "changes how later programs load code",
        &["LD_*", "DYLD_*", "GCONV_PATH", "GLIBC_TUNABLES"],
    ),
    (
        "changes what later shells run",
        &[
            "BASH_ENV",
            "ENV",
            "BASH_FUNC_*",
            "SHELLOPTS",
            "BASHOPTS",
            "PROMPT_COMMAND",
            "PS4",
            "IFS",
        ],
    ),
    (
        "makes an interpreter load extra code",
        &[
            "NODE_OPTIONS",
            "NODE_PATH",
            "PYTHONSTARTUP",
            "PYTHONPATH",
            "PYTHONHOME",
            "PYTHONINSPECT",
            "PERL5OPT",
            "PERL5LIB",
            "PERLLIB",
            "RUBYOPT",
            "RUBYLIB",
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "JDK_JAVA_OPTIONS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
        ],
    ),
    (
        "makes git or ssh run another program or read another configuration",
        &[
            "GIT_SSH",
            "GIT_SSH_COMMAND",
            "GIT_PROXY_COMMAND",
            "GIT_ASKPASS",
            "SSH_ASKPASS",
            "GIT_EXEC_PATH",
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_SYSTEM",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_*",
            "GIT_CONFIG_VALUE_*",
            "GIT_CONFIG_PARAMETERS",
        ],
    ),
    ("changes where programs are found", &["PATH"]),
    (
        "redirects network traffic",
        &[
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
            "FTP_PROXY",
        ],
    ),
    (
        "replaces the trusted certificates",
        &[
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "NODE_EXTRA_CA_CERTS",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "GIT_SSL_CAINFO",
            "GIT_SSL_NO_VERIFY",
            "NODE_TLS_REJECT_UNAUTHORIZED",
        ],
    ),
    (RESERVED_REASON, &[RESERVED]),
];

/// Every pattern of [`DANGEROUS_GROUPS`], in order, for documentation.
pub const DANGEROUS: &[&str] = &DANGEROUS_FLAT;

const RESERVED: &str = "STEPJAIL_*";
const RESERVED_REASON: &str = "reserved for stepjail";

const DANGEROUS_COUNT: usize = count_patterns(DANGEROUS_GROUPS);
const DANGEROUS_FLAT: [&str; DANGEROUS_COUNT] = flatten(DANGEROUS_GROUPS);

const fn count_patterns(groups: &[(&str, &[&str])]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < groups.len() {
        n += groups[i].1.len();
        i += 1;
    }
    n
}

const fn flatten<const N: usize>(groups: &[(&str, &[&'static str])]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut k = 0;
    let mut i = 0;
    while i < groups.len() {
        let mut j = 0;
        while j < groups[i].1.len() {
            out[k] = groups[i].1[j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

/// How the errors after which a file has been emptied end.
const EMPTIED: &str = "; the file has been emptied";

/// Everything that can go wrong reading or rewriting a file-command file.
///
/// No variant holds a value or a line of the file: only names, line numbers and fixed text.
#[derive(Debug, thiserror::Error)]
pub enum FileCommandError {
    /// A `$GITHUB_ENV` line the runner would reject (it fails the step on it).
    #[error("line {line}: {problem}")]
    Parse { line: usize, problem: String },

    /// [`FileCommandError::Parse`] in a file; the file has been emptied.
    #[error("{path}:{line}: {problem}{EMPTIED}")]
    ParseFile {
        path: String,
        line: usize,
        problem: String,
    },

    /// Reading, inspecting or writing the file failed. After a failed read or rewrite the file
    /// has been emptied.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        path: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// A symbolic link, directory, FIFO, device, or a file with other hard links: left as it is
    /// (following it or writing through it could touch a file that is not the step's).
    #[error("{path}: {what}; refusing to read or change it")]
    NotRegular { path: String, what: String },

    /// Larger than [`MAX_FILE_BYTES`]; the file has been emptied.
    #[error("{path}: larger than {max} bytes{EMPTIED}")]
    TooLarge { path: String, max: u64 },

    /// Not UTF-8 text; the file has been emptied.
    #[error("{path}: not UTF-8 text (invalid byte at offset {offset}){EMPTIED}")]
    NotUtf8 { path: String, offset: usize },

    /// The file was rejected, and emptying it failed too: what the step wrote may still reach
    /// later steps, so the step must be failed.
    #[error("{path}: rejected ({rejected}), and emptying it failed: {source}")]
    EmptyFailed {
        path: String,
        rejected: String,
        #[source]
        source: io::Error,
    },
}

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

/// A `$GITHUB_PATH` line [`sanitize_path_file`] took out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRemoved {
    pub entry: String,
    pub line: usize,
    pub reason: String,
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

/// Whether one pattern of [`DANGEROUS_GROUPS`] matches `name` (ASCII case-insensitively).
fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes())),
        None => name.eq_ignore_ascii_case(pattern),
    }
}

/// `name` without surrounding whitespace, control characters and byte order marks: a program
/// that strips them must not turn a harmless-looking name into a dangerous one.
fn core_name(name: &str) -> &str {
    name.trim_matches(|c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}')
}

/// Why setting `name` for later steps is dangerous (the reason of its [`DANGEROUS_GROUPS`]
/// group), or `None` when it is not.
pub fn dangerous_reason(name: &str) -> Option<&'static str> {
    let name = core_name(name);
    DANGEROUS_GROUPS.iter().find_map(|(reason, patterns)| {
        patterns
            .iter()
            .any(|p| pattern_matches(p, name))
            .then_some(*reason)
    })
}

/// Whether `name` matches [`DANGEROUS`] (ASCII case-insensitively).
pub fn is_dangerous(name: &str) -> bool {
    dangerous_reason(name).is_some()
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
fn delimiter_for(value: &str, fallback: &mut u128) -> String {
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

/// Open a file-command file for reading and rewriting, without following a symbolic link at
/// `path`, and only if it is a regular file with no other hard link. `Ok(None)`: no file.
fn open_command_file(path: &Path) -> Result<Option<File>, FileCommandError> {
    use crate::host_file::{Access, HostFileError};
    crate::host_file::open(path, Access::ReadWrite).map_err(|e| match e {
        HostFileError::NotRegular { what, .. } => FileCommandError::NotRegular {
            path: path.display().to_string(),
            what,
        },
        HostFileError::Io { action, source, .. } => FileCommandError::Io {
            path: path.display().to_string(),
            action,
            source,
        },
    })
}

/// A file-command file the runner named for a step, checked before it is bound into the
/// sandbox: a regular file with one link, not a symbolic link. Returns its path with the
/// directories resolved (what the sandbox binds); `Ok(None)`: no such file.
pub fn step_file(path: &Path) -> Result<Option<PathBuf>, FileCommandError> {
    let Some(_file) = open_command_file(path)? else {
        return Ok(None);
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    fs::canonicalize(parent)
        .map(|p| Some(p.join(name)))
        .map_err(|source| FileCommandError::Io {
            path: path.display().to_string(),
            action: "resolve its directory",
            source,
        })
}

/// Empty `file` because of `rejected`, and return the error to report.
fn fail_closed(file: &File, path: &Path, rejected: FileCommandError) -> FileCommandError {
    match file.set_len(0) {
        Ok(()) => rejected,
        Err(source) => FileCommandError::EmptyFailed {
            path: path.display().to_string(),
            rejected: {
                let message = rejected.to_string();
                message
                    .strip_suffix(EMPTIED)
                    .unwrap_or(&message)
                    .to_string()
            },
            source,
        },
    }
}

/// The whole of `file` as UTF-8 text, at most [`MAX_FILE_BYTES`].
fn read_text(file: &mut File, path: &Path) -> Result<String, FileCommandError> {
    let shown = || path.display().to_string();
    let too_large = || FileCommandError::TooLarge {
        path: shown(),
        max: MAX_FILE_BYTES,
    };
    let io_error = |source| FileCommandError::Io {
        path: shown(),
        action: "read it",
        source,
    };
    if file.metadata().map_err(io_error)?.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    // `take`: the size checked above may have grown since.
    Read::by_ref(file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| FileCommandError::NotUtf8 {
        path: shown(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Replace the content of `file` with `text`; emptied if that fails half way.
fn rewrite(file: &mut File, path: &Path, text: &str) -> Result<(), FileCommandError> {
    let result = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(text.as_bytes()))
        .and_then(|()| file.flush());
    result.map_err(|source| {
        let error = FileCommandError::Io {
            path: path.display().to_string(),
            action: "rewrite it",
            source,
        };
        fail_closed(file, path, error)
    })
}

/// Open and read a file-command file: `Ok(None)` when there is none; emptied when it cannot be
/// read (too large, not UTF-8, a read error), left alone when it is not a regular file.
fn read_command_file(path: &Path) -> Result<Option<(File, String)>, FileCommandError> {
    let Some(mut file) = open_command_file(path)? else {
        return Ok(None);
    };
    match read_text(&mut file, path) {
        Ok(text) => Ok(Some((file, text))),
        Err(e) => Err(fail_closed(&file, path, e)),
    }
}

/// Sanitize the `$GITHUB_ENV` file at `path` in place, before the runner reads it: parse it
/// ([`parse_env_file`]), drop what [`sanitize_env`] drops, and rewrite it with [`render_env`]
/// if anything was dropped. A file with nothing to drop is left byte for byte as it is.
///
/// Fails closed: a file that does not parse, is not UTF-8 or is larger than
/// [`MAX_FILE_BYTES`] is emptied (nothing the step wrote reaches later steps) and the error
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

/// The lines of `text` as .NET's `StreamReader.ReadLine` (the runner's `ReadAllLines`) sees
/// them: ended by `\n`, `\r` or `\r\n`, numbered from 1.
fn reader_lines(text: &str) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let end = i;
        i += match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => 2,
            b'\r' | b'\n' => 1,
            _ => {
                i += 1;
                continue;
            }
        };
        lines.push((lines.len() + 1, &text[start..end]));
        start = i;
    }
    if start < bytes.len() {
        lines.push((lines.len() + 1, &text[start..]));
    }
    lines
}

const OTHERS_WRITE: u32 = 0o002;
const STICKY: u32 = 0o1000;

/// Why a directory above a `PATH` entry lets others change what the entry holds: one anybody
/// may write to without the sticky bit (anybody may rename the entry's directory there).
fn ancestor_problem(dir: &Path) -> Option<String> {
    match fs::metadata(dir) {
        Ok(meta) if meta.mode() & OTHERS_WRITE != 0 && meta.mode() & STICKY == 0 => Some(format!(
            "{:?} above it is writable by other users",
            dir.display().to_string()
        )),
        Ok(_) => None,
        Err(e) => Some(format!(
            "{:?} above it cannot be inspected: {e}",
            dir.display().to_string()
        )),
    }
}

/// Why `entry` must not be put in front of `PATH` for later steps, or `None` if it may.
/// An entry inside a directory sandboxed steps may write (the workspace, the step's writable
/// paths): a later step could put a `stepjail`, `tar` or `node` there, which the runner (it
/// resolves the `shell:` command on this PATH) and unsandboxed `uses:` steps would then run
/// outside any sandbox. Symlinks are followed (for a path not created yet: its nearest existing
/// ancestor), so a link elsewhere that points inside counts too.
fn in_writable_root(entry: &str, roots: &[std::path::PathBuf]) -> Option<String> {
    let path = Path::new(entry);
    let resolved = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(_) => {
            let nearest = path.ancestors().find(|a| fs::metadata(a).is_ok())?;
            let rest = path.strip_prefix(nearest).ok()?;
            fs::canonicalize(nearest).ok()?.join(rest)
        }
    };
    roots.iter().find_map(|root| {
        let root = fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        resolved.starts_with(&root).then(|| {
            format!(
                "lies in {}, which sandboxed steps may write: a later step could put programs there that the runner and unsandboxed steps would run",
                root.display()
            )
        })
    })
}

fn path_problem(entry: &str, shadowed: &[&str]) -> Option<String> {
    if entry.contains(':') {
        return Some("contains `:`, which separates PATH entries".to_string());
    }
    if entry.trim() != entry {
        return Some("has leading or trailing whitespace".to_string());
    }
    let path = Path::new(entry);
    if !path.is_absolute() {
        return Some("is not an absolute path".to_string());
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Some("contains a `..` component".to_string());
    }
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Not there (yet): whoever may create it decides what it holds.
            let mut above = path.ancestors().skip(1);
            let nearest = above.find(|a| fs::symlink_metadata(a).is_ok())?;
            if fs::metadata(nearest).is_ok_and(|m| m.mode() & OTHERS_WRITE != 0) {
                return Some(format!(
                    "does not exist, and other users may create it in {:?}",
                    nearest.display().to_string()
                ));
            }
            return nearest.ancestors().find_map(ancestor_problem);
        }
        Err(e) => return Some(format!("cannot be inspected: {e}")),
    };
    if !meta.is_dir() {
        return Some("is not a directory".to_string());
    }
    // Even with the sticky bit, anybody may add a program to it.
    if meta.mode() & OTHERS_WRITE != 0 {
        return Some("is writable by other users".to_string());
    }
    for name in shadowed {
        match fs::symlink_metadata(path.join(name)) {
            Ok(_) => {
                return Some(format!(
                    "contains `{name}`, which would be run instead of the real one"
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Some(format!("cannot be searched for `{name}`: {e}")),
        }
    }
    let real = match fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) => return Some(format!("cannot be resolved: {e}")),
    };
    path.ancestors()
        .skip(1)
        .chain(real.ancestors().skip(1))
        .find_map(ancestor_problem)
}

/// Sanitize the `$GITHUB_PATH` file at `path` in place, before the runner reads it: every
/// non-empty line (lines end at `\n`, `\r` or `\r\n`, as the runner reads them) is a directory
/// the runner puts in front of `PATH` for later steps. Removed: an entry containing `:` or
/// surrounding whitespace, one that is not absolute or has a `..` component, a directory
/// writable by other users (or below one they may rename it in), one holding an entry of any
/// type named like one of `shadowed`, and one that does not exist where others could create it.
///
/// Returns the kept entries and the removed ones. The file is rewritten (one kept entry a line)
/// only if something was removed. Same refusals and fail-closed emptying as
/// [`sanitize_env_file`]; a missing file is `Ok` with nothing in it.
pub fn sanitize_path_file(
    path: &Path,
    shadowed: &[&str],
    writable_roots: &[std::path::PathBuf],
) -> Result<(Vec<String>, Vec<PathRemoved>), FileCommandError> {
    let Some((mut file, text)) = read_command_file(path)? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for (line, entry) in reader_lines(text) {
        if entry.is_empty() {
            continue;
        }
        match path_problem(entry, shadowed).or_else(|| in_writable_root(entry, writable_roots)) {
            Some(reason) => removed.push(PathRemoved {
                entry: entry.to_string(),
                line,
                reason,
            }),
            None => kept.push(entry.to_string()),
        }
    }
    if !removed.is_empty() {
        let text: String = kept.iter().map(|entry| format!("{entry}\n")).collect();
        rewrite(&mut file, path, &text)?;
    }
    Ok((kept, removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn entry(name: &str, value: &str, line: usize) -> EnvEntry {
        EnvEntry {
            name: name.to_string(),
            value: value.to_string(),
            line,
        }
    }

    /// The (name, value, line) triples of `text`, which must parse.
    fn parsed(text: &str) -> Vec<(String, String, usize)> {
        parse_env_file(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value, e.line))
            .collect()
    }

    fn triple(name: &str, value: &str, line: usize) -> (String, String, usize) {
        (name.to_string(), value.to_string(), line)
    }

    fn parse_failure(text: &str) -> (usize, String) {
        match parse_env_file(text) {
            Err(FileCommandError::Parse { line, problem }) => (line, problem),
            other => panic!("{text:?}: expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn plain_entries() {
        assert_eq!(
            parsed("A=1\n\nB=\nC=x=y\nD=x<<y\n"),
            vec![
                triple("A", "1", 1),
                triple("B", "", 3),
                triple("C", "x=y", 4),
                triple("D", "x<<y", 5),
            ]
        );
        // No final newline; a `\r` stays in the value; a name is taken as written.
        assert_eq!(
            parsed("A=1\r\nb c=2"),
            vec![triple("A", "1\r", 1), triple("b c", "2", 2)]
        );
        assert_eq!(parsed(""), vec![]);
        assert_eq!(parsed("\n\n"), vec![]);
    }

    #[test]
    fn heredoc_entries() {
        assert_eq!(
            parsed("A<<EOF\nline 1\nx=y\n\nEOF\nB=2\n"),
            vec![triple("A", "line 1\nx=y\n", 1), triple("B", "2", 6)]
        );
        // Empty value; `<<` before `=` is a heredoc whose delimiter holds the `=`.
        assert_eq!(
            parsed("A<<EOF\nEOF\nB<<X=Y\nv\nX=Y"),
            vec![triple("A", "", 1), triple("B", "v", 3)]
        );
        // A delimiter line must match exactly: `EOF\r` and ` EOF` do not end `EOF`.
        assert_eq!(
            parsed("A<<EOF\nEOF\r\n EOF\nEOF\n"),
            vec![triple("A", "EOF\r\n EOF", 1)]
        );
        // With CRLF line ends the delimiter itself ends in `\r`, and so do the lines.
        assert_eq!(
            parsed("A<<EOF\r\nx\r\nEOF\r\n"),
            vec![triple("A", "x\r", 1)]
        );
        // `A<<<EOF`: the first `<<` splits.
        assert_eq!(parsed("A<<<E\nv\n<E\n"), vec![triple("A", "v", 1)]);
    }

    #[test]
    fn byte_order_mark_is_dropped_like_the_runner_does() {
        assert_eq!(
            parsed("\u{feff}LD_PRELOAD=x\n"),
            vec![triple("LD_PRELOAD", "x", 1)]
        );
        // Only one, and only at the start.
        assert_eq!(
            parsed("\u{feff}\u{feff}A=x\n\u{feff}B=y"),
            vec![triple("\u{feff}A", "x", 1), triple("\u{feff}B", "y", 2)]
        );
    }

    #[test]
    fn errors_name_the_line_and_never_the_value() {
        let (line, problem) = parse_failure("A=1\nB<<EOF\nsecret\nEOF \n");
        assert_eq!(line, 2);
        assert!(problem.contains("no line \"EOF\" ends"), "{problem}");
        assert!(!problem.contains("secret"), "{problem}");

        let (line, problem) = parse_failure("A=1\n\nsecret-token\n");
        assert_eq!(line, 3);
        assert_eq!(problem, "neither `NAME=value` nor `NAME<<DELIMITER`");

        assert_eq!(parse_failure("=value").0, 1);
        assert!(
            parse_failure("=value")
                .1
                .contains("without a variable name")
        );
        assert!(
            parse_failure("A=1\n<<EOF\nx\nEOF")
                .1
                .contains("without a variable name")
        );
        assert_eq!(parse_failure("A=1\n<<EOF\nx\nEOF").0, 2);
        assert!(parse_failure("A<<\n\n").1.contains("without a delimiter"));
        // A `\r` alone is a line of its own, not an empty one.
        assert_eq!(parse_failure("A=1\n\r\n").0, 2);
    }

    #[test]
    fn render_round_trips_exactly() {
        let entries = vec![
            entry("A", "plain", 1),
            entry("EMPTY", "", 2),
            entry("MULTI", "one\ntwo\n\nthree\n", 3),
            entry("CR", "a\r\nb\r", 4),
            entry(
                "LOOKS",
                "EOF\nghadelimiter_00000000000000000000000000000000\nx=y",
                5,
            ),
            entry("ONLY_NEWLINES", "\n\n", 6),
            entry("LT<", "x<<y=z", 7),
            entry("sp ace", " lead and trail ", 8),
            entry("A", "again", 9),
        ];
        let text = render_env(&entries);
        let back = parse_env_file(&text).unwrap();
        assert_eq!(back.len(), entries.len());
        for (want, got) in entries.iter().zip(&back) {
            assert_eq!((&want.name, &want.value), (&got.name, &got.value));
        }
        // Fresh delimiters, of the documented shape.
        let delimiters: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once("<<").map(|(_, d)| d))
            .filter(|d| d.starts_with("ghadelimiter_"))
            .collect();
        assert_eq!(delimiters.len(), entries.len() - 1);
        for d in &delimiters {
            let hex = d.strip_prefix("ghadelimiter_").unwrap();
            assert_eq!(hex.len(), 32);
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let mut unique = delimiters.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), delimiters.len());
        assert_eq!(render_env(&[]), "");
    }

    #[test]
    #[should_panic(expected = "cannot be written in GITHUB_ENV format")]
    fn render_refuses_an_entry_the_parser_cannot_produce() {
        render_env(&[entry("A=B", "v", 1)]);
    }

    #[test]
    fn delimiter_is_never_a_line_of_the_value() {
        // Force the fallback sequence by predicting it: the value holds the first candidates.
        let value = "ghadelimiter_00000000000000000000000000000001\nghadelimiter_00000000000000000000000000000002";
        let mut fallback = 0;
        for _ in 0..100 {
            let d = delimiter_for(value, &mut fallback);
            assert!(!value.split('\n').any(|l| l == d));
        }
    }

    #[test]
    fn a_leading_feff_in_a_name_survives_rendering() {
        // Parsed from "\u{feff}\u{feff}LD_PRELOAD=..." the name is "\u{feff}LD_PRELOAD"; written
        // at the very start of the file, the runner would drop that character as a byte order
        // mark and read LD_PRELOAD.
        let entries = vec![entry("\u{feff}X", "v", 1)];
        let text = render_env(&entries);
        let back = parse_env_file(&text).unwrap();
        assert_eq!(back[0].name, "\u{feff}X");
        assert!(is_dangerous("\u{feff}LD_PRELOAD"));
    }

    #[test]
    fn render_then_parse_is_the_identity_on_anything_that_parses() {
        // A small deterministic fuzz over the characters that matter to the format.
        let alphabet = ['A', 'E', '=', '<', '\n', '\r', ' ', '\u{feff}', 'x'];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed_ok = 0;
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let Ok(entries) = parse_env_file(&text) else {
                continue;
            };
            parsed_ok += 1;
            let back = parse_env_file(&render_env(&entries)).unwrap();
            let pairs = |v: &[EnvEntry]| {
                v.iter()
                    .map(|e| (e.name.clone(), e.value.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(pairs(&back), pairs(&entries), "{text:?}");
        }
        assert!(parsed_ok > 1000, "{parsed_ok}");
    }

    #[test]
    fn dangerous_names() {
        for name in [
            "LD_PRELOAD",
            "ld_preload",
            "LD_AUDIT",
            "DYLD_INSERT_LIBRARIES",
            "BASH_ENV",
            "env",
            "BASH_FUNC_foo%%",
            "PATH",
            "path",
            "http_proxy",
            "HTTPS_PROXY",
            "no_proxy",
            "SSL_CERT_FILE",
            "GIT_CONFIG_KEY_0",
            "GIT_CONFIG_VALUE_12",
            "_JAVA_OPTIONS",
            "STEPJAIL_POLICY",
            "stepjail_x",
            " LD_PRELOAD",
            "LD_PRELOAD\r",
        ] {
            assert!(is_dangerous(name), "{name:?}");
        }
        for name in [
            "FOO",
            "LD",
            "LDFLAGS",
            "PATHS",
            "MYPATH",
            "ENVIRONMENT",
            "GIT_CONFIG",
            "GIT_CONFIG_KEY",
            "STEPJAIL",
            "NODE_ENV",
            "PYTHONUNBUFFERED",
            "",
            "ĿD_PRELOAD",
        ] {
            assert!(!is_dangerous(name), "{name:?}");
        }
        assert_eq!(
            dangerous_reason("https_proxy"),
            Some("redirects network traffic")
        );
        assert_eq!(
            dangerous_reason("STEPJAIL_X"),
            Some("reserved for stepjail")
        );
        assert_eq!(
            dangerous_reason("PATH"),
            Some("changes where programs are found")
        );
    }

    #[test]
    fn dangerous_is_every_group_pattern() {
        let all: Vec<&str> = DANGEROUS_GROUPS
            .iter()
            .flat_map(|(_, patterns)| patterns.iter().copied())
            .collect();
        assert_eq!(DANGEROUS, all.as_slice());
        for pattern in DANGEROUS {
            let name = pattern.replace('*', "X");
            assert!(is_dangerous(&name), "{pattern}");
            assert_eq!(pattern.to_ascii_uppercase(), *pattern);
        }
    }

    #[test]
    fn sanitize_removes_dangerous_names_unless_allowed() {
        let entries = vec![
            entry("LD_PRELOAD", "/tmp/evil.so", 1),
            entry("ld_preload", "/tmp/evil.so", 2),
            entry("BASH_FUNC_x%%", "() { evil; }", 3),
            entry("STEPJAIL_X", "1", 4),
            entry("LD_LIBRARY_PATH", "/opt/lib", 5),
            entry("FOO", "bar", 6),
            entry("X\0LD_PRELOAD", "y", 7),
            entry("GIT_SSH_COMMAND", "evil", 8),
        ];
        let allow = vec![
            "LD_LIBRARY_PATH".to_string(),
            "STEPJAIL_X".to_string(),
            // Exact names only: this does not allow `LD_PRELOAD`.
            "ld_preload".to_string(),
            "git_ssh_command".to_string(),
        ];
        let out = sanitize_env(entries, &allow);
        let kept: Vec<&str> = out.kept.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(kept, ["ld_preload", "LD_LIBRARY_PATH", "FOO"]);
        let removed: Vec<(&str, usize, &str)> = out
            .removed
            .iter()
            .map(|r| (r.name.as_str(), r.line, r.reason.as_str()))
            .collect();
        assert_eq!(
            removed,
            [
                ("LD_PRELOAD", 1, "changes how later programs load code"),
                ("BASH_FUNC_x%%", 3, "changes what later shells run"),
                ("STEPJAIL_X", 4, "reserved for stepjail"),
                ("X\0LD_PRELOAD", 7, "the name contains a NUL character"),
                (
                    "GIT_SSH_COMMAND",
                    8,
                    "makes git or ssh run another program or read another configuration"
                ),
            ]
        );
        // Without an allow list the lower-case spelling goes too.
        let out = sanitize_env(vec![entry("ld_preload", "x", 1)], &[]);
        assert!(out.kept.is_empty());
    }

    #[test]
    fn an_innocent_env_file_is_left_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set_env");
        let text = "\u{feff}A=1\r\n\nB<<EOF\nx\nEOF\nC=\n";
        fs::write(&path, text).unwrap();
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        let out = sanitize_env_file(&path, &[]).unwrap();
        assert_eq!(out.kept.len(), 3);
        assert!(out.removed.is_empty());
        assert_eq!(fs::read(&path).unwrap(), text.as_bytes());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
    }

    #[test]
    fn a_poisoned_env_file_is_rewritten_to_the_kept_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set_env");
        fs::write(
            &path,
            "A=1\nLD_PRELOAD=/tmp/evil.so\nB<<EOF\nline\nghadelimiter_x\nEOF\nhttps_proxy=http://evil\nC=3",
        )
        .unwrap();
        let out = sanitize_env_file(&path, &[]).unwrap();
        let removed: Vec<(&str, usize)> = out
            .removed
            .iter()
            .map(|r| (r.name.as_str(), r.line))
            .collect();
        assert_eq!(removed, [("LD_PRELOAD", 2), ("https_proxy", 7)]);
        let reread = parse_env_file(&fs::read_to_string(&path).unwrap()).unwrap();
        let pairs = |v: &[EnvEntry]| {
            v.iter()
                .map(|e| (e.name.clone(), e.value.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&reread), pairs(&out.kept));
        assert_eq!(
            pairs(&out.kept),
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "line\nghadelimiter_x".to_string()),
                ("C".to_string(), "3".to_string()),
            ]
        );
    }

    #[test]
    fn an_env_file_that_does_not_parse_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set_env");
        fs::write(&path, "A=1\nLD_PRELOAD<<EOF\n/tmp/evil.so\n").unwrap();
        match sanitize_env_file(&path, &[]) {
            Err(FileCommandError::ParseFile { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), b"");

        fs::write(&path, b"A=\xff\n").unwrap();
        assert!(matches!(
            sanitize_env_file(&path, &[]),
            Err(FileCommandError::NotUtf8 { offset: 2, .. })
        ));
        assert_eq!(fs::read(&path).unwrap(), b"");

        // UTF-16 (which the runner would decode) is not UTF-8.
        fs::write(&path, b"\xff\xfeA\0=\x001\0").unwrap();
        assert!(matches!(
            sanitize_env_file(&path, &[]),
            Err(FileCommandError::NotUtf8 { offset: 0, .. })
        ));
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn an_oversized_env_file_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set_env");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        drop(file);
        assert!(matches!(
            sanitize_env_file(&path, &[]),
            Err(FileCommandError::TooLarge { .. })
        ));
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn links_and_other_file_types_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "not an env file\n").unwrap();

        let link = dir.path().join("set_env");
        symlink(&target, &link).unwrap();
        match sanitize_env_file(&link, &[]) {
            Err(FileCommandError::NotRegular { what, .. }) => assert_eq!(what, "a symbolic link"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            sanitize_path_file(&link, &[], &[]),
            Err(FileCommandError::NotRegular { .. })
        ));
        assert_eq!(fs::read(&target).unwrap(), b"not an env file\n");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        let hard = dir.path().join("hard");
        fs::hard_link(&target, &hard).unwrap();
        assert!(matches!(
            sanitize_env_file(&hard, &[]),
            Err(FileCommandError::NotRegular { .. })
        ));
        assert_eq!(fs::read(&target).unwrap(), b"not an env file\n");

        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        assert!(matches!(
            sanitize_env_file(&sub, &[]),
            Err(FileCommandError::NotRegular { .. })
        ));
    }

    #[test]
    fn a_missing_file_is_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none");
        assert_eq!(sanitize_env_file(&path, &[]).unwrap(), Sanitized::default());
        assert_eq!(
            sanitize_path_file(&path, &[], &[]).unwrap(),
            (vec![], vec![])
        );
        assert!(!path.exists());
    }

    #[test]
    fn reader_lines_end_like_dotnet() {
        assert_eq!(
            reader_lines("a\nb\r\nc\rd\n\ne"),
            vec![(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, ""), (6, "e")]
        );
        assert_eq!(reader_lines("a\n"), vec![(1, "a")]);
        assert_eq!(reader_lines(""), vec![]);
        assert_eq!(reader_lines("\r\r\n"), vec![(1, ""), (2, "")]);
    }

    const SHADOWED: &[&str] = &["stepjail", "bash", "sh", "sudo", "env"];

    /// A directory with exactly `mode`, whatever the umask.
    fn mkdir(path: &Path, mode: u32) {
        fs::create_dir(path).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn reasons(removed: &[PathRemoved]) -> Vec<(usize, &str)> {
        removed
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect()
    }

    #[test]
    fn path_entries_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        mkdir(&good, 0o755);
        fs::write(good.join("tool"), "").unwrap();
        let fake = dir.path().join("fake");
        mkdir(&fake, 0o755);
        fs::write(fake.join("stepjail"), "#!/bin/sh\n").unwrap();
        let dangling = dir.path().join("dangling");
        mkdir(&dangling, 0o755);
        symlink("/nonexistent/bash", dangling.join("bash")).unwrap();
        let open = dir.path().join("open");
        mkdir(&open, 0o777);
        let sticky = dir.path().join("sticky");
        mkdir(&sticky, 0o1777);
        let below_open = open.join("bin");
        mkdir(&below_open, 0o755);
        let below_sticky = sticky.join("bin");
        mkdir(&below_sticky, 0o755);
        let a_file = good.join("tool");
        let later = dir.path().join("later");

        let d = |p: &Path| p.display().to_string();
        let lines = [
            d(&good),
            "relative/bin".to_string(),
            format!("{}/../fake", d(&good)),
            d(&fake),
            d(&dangling),
            d(&open),
            d(&sticky),
            d(&below_open),
            d(&below_sticky),
            format!("{}:{}", d(&good), d(&fake)),
            format!("{} ", d(&good)),
            d(&a_file),
            d(&later),
            format!("{}/later", d(&open)),
            String::new(),
            d(&good),
        ];
        let path = dir.path().join("add_path");
        fs::write(&path, lines.join("\n")).unwrap();
        let (kept, removed) = sanitize_path_file(&path, SHADOWED, &[]).unwrap();
        assert_eq!(kept, [d(&good), d(&below_sticky), d(&later), d(&good)]);
        let above_open = format!("{:?} above it is writable by other users", d(&open));
        let creatable = format!(
            "does not exist, and other users may create it in {:?}",
            d(&open)
        );
        assert_eq!(
            reasons(&removed),
            [
                (2, "is not an absolute path"),
                (3, "contains a `..` component"),
                (
                    4,
                    "contains `stepjail`, which would be run instead of the real one"
                ),
                (
                    5,
                    "contains `bash`, which would be run instead of the real one"
                ),
                (6, "is writable by other users"),
                (7, "is writable by other users"),
                (8, above_open.as_str()),
                (10, "contains `:`, which separates PATH entries"),
                (11, "has leading or trailing whitespace"),
                (12, "is not a directory"),
                (14, creatable.as_str()),
            ]
        );
        assert_eq!(removed[0].entry, "relative/bin");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!(
                "{}\n{}\n{}\n{}\n",
                d(&good),
                d(&below_sticky),
                d(&later),
                d(&good)
            )
        );
    }

    #[test]
    fn a_clean_path_file_is_left_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        mkdir(&good, 0o755);
        let path = dir.path().join("add_path");
        let text = format!("\u{feff}{0}\r\n\n{0}\r{0}", good.display());
        fs::write(&path, &text).unwrap();
        let (kept, removed) = sanitize_path_file(&path, SHADOWED, &[]).unwrap();
        assert_eq!(kept.len(), 3);
        assert!(removed.is_empty(), "{removed:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_path_file_that_is_not_utf8_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("add_path");
        fs::write(&path, b"/usr/bin\n/tmp/\xc3\n").unwrap();
        assert!(matches!(
            sanitize_path_file(&path, SHADOWED, &[]),
            Err(FileCommandError::NotUtf8 { offset: 14, .. })
        ));
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn path_entries_in_writable_roots_are_removed_through_symlinks_too() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let outside = dir.path().join("tools");
        fs::create_dir_all(ws.join("bin")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        let link = dir.path().join("link");
        symlink(ws.join("bin"), &link).unwrap();
        let file = dir.path().join("add_path");
        let text = format!(
            "{}\n{}\n{}\n{}\n",
            ws.join("bin").display(),
            ws.join("later/bin").display(),
            link.display(),
            outside.display()
        );
        fs::write(&file, text).unwrap();
        let (kept, removed) = sanitize_path_file(&file, &[], std::slice::from_ref(&ws)).unwrap();
        assert_eq!(kept, vec![outside.display().to_string()]);
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(
            removed
                .iter()
                .all(|r| r.reason.contains("sandboxed steps may write"))
        );
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("{}\n", outside.display())
        );
    }
}
