//! `$GITHUB_PATH` entries: which directories later steps may get in front of `PATH`.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use super::error::FileCommandError;
use super::file::{read_command_file, rewrite};

/// A `$GITHUB_PATH` line [`sanitize_path_file`] took out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRemoved {
    pub entry: String,
    pub line: usize,
    pub reason: String,
}

/// The lines of `text` as .NET's `StreamReader.ReadLine` (the runner's `ReadAllLines`) sees
/// them: ended by `\n`, `\r` or `\r\n`, numbered from 1.
pub(super) fn reader_lines(text: &str) -> Vec<(usize, &str)> {
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
/// [`super::sanitize_env_file`]; a missing file is `Ok` with nothing in it.
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
