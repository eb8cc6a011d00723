//! Where the audit log goes, and what keeps it there for the length of the run: the step must
//! not be able to redirect, replace or remove the file the user named.

use std::path::{Path, PathBuf};

/// Where the audit log goes, and what keeps it there for the length of the run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LogGuard {
    /// The log's real path (its directory resolved).
    pub file: PathBuf,
    /// Whether the file lies inside a writable path.
    pub inside_writable: bool,
    /// The directories between a writable path and the file, shallowest first.
    pub pinned: Vec<PathBuf>,
}

/// `dir` and its ancestors that lie inside one of the (real) `writable` paths without being one,
/// shallowest first: each is bound onto itself in the sandbox, a mountpoint the step can neither
/// rename nor remove (EBUSY).
pub(crate) fn dirs_to_pin(dir: &Path, writable: &[PathBuf]) -> Vec<PathBuf> {
    let mut pinned: Vec<PathBuf> = dir
        .ancestors()
        .filter(|a| writable.iter().any(|w| a.starts_with(w)) && !writable.iter().any(|w| w == a))
        .map(Path::to_path_buf)
        .collect();
    pinned.reverse();
    pinned
}

/// Checks the audit log path `path` against the step's writable paths: a symbolic link on the
/// way that lies inside a writable path is refused (the step could replace it, and the path
/// would then lead to a file of the step's making); the directories to pin are returned.
pub(crate) fn audit_log_guard(path: &Path, writable: &[PathBuf]) -> Result<LogGuard, String> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let writable: Vec<PathBuf> = writable.iter().map(|w| real(w)).collect();
    let in_writable = |p: &Path| writable.iter().find(|w| p.starts_with(w));
    let abs = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(format!("--audit-log {}: not a file name", path.display()));
    };
    let mut prefix = PathBuf::new();
    for part in dir.components() {
        prefix.push(part);
        let is_link = std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.is_symlink());
        if let (true, Some(parent)) = (is_link, prefix.parent())
            && let Some(w) = in_writable(&real(parent))
        {
            return Err(format!(
                "--audit-log {}: {} is a symbolic link inside {}, which the step can write, so the \
                 step could replace it; name the directory it leads to ({}) instead",
                path.display(),
                prefix.display(),
                w.display(),
                real(&prefix).display()
            ));
        }
    }
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| format!("--audit-log {}: {}: {e}", path.display(), dir.display()))?;
    let pinned = dirs_to_pin(&dir, &writable);
    let file = dir.join(name);
    Ok(LogGuard {
        inside_writable: in_writable(&file).is_some(),
        file,
        pinned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_log_guard_pins_directories_inside_writable_paths_and_refuses_links_there() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        let ws = root.join("ws");
        std::fs::create_dir_all(ws.join("a/b")).unwrap();
        let w = std::slice::from_ref(&ws);
        let g = audit_log_guard(&ws.join("a/b/log.jsonl"), w).unwrap();
        assert_eq!(
            g,
            LogGuard {
                file: ws.join("a/b/log.jsonl"),
                inside_writable: true,
                pinned: vec![ws.join("a"), ws.join("a/b")],
            }
        );
        // Directly in the writable path: that is a mountpoint already.
        let g = audit_log_guard(&ws.join("log.jsonl"), w).unwrap();
        assert!(g.inside_writable && g.pinned.is_empty(), "{g:?}");
        let g = audit_log_guard(&root.join("log.jsonl"), w).unwrap();
        assert!(!g.inside_writable && g.pinned.is_empty(), "{g:?}");
        // A link the step could replace is refused; one outside writable paths is followed.
        std::os::unix::fs::symlink("a", ws.join("l")).unwrap();
        let err = audit_log_guard(&ws.join("l/b/log.jsonl"), w).unwrap_err();
        assert!(
            err.contains(&format!(
                "{} is a symbolic link inside",
                ws.join("l").display()
            )),
            "{err}"
        );
        std::os::unix::fs::symlink(ws.join("a"), root.join("out")).unwrap();
        let g = audit_log_guard(&root.join("out/log.jsonl"), w).unwrap();
        assert_eq!(g.file, ws.join("a/log.jsonl"));
        assert_eq!(g.pinned, vec![ws.join("a")]);
    }
}
