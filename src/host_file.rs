//! Opening the files stepjail writes on the host: the audit log, the job summary, the GitHub
//! file-command files, `$GITHUB_ENV` at setup.
//!
//! Their paths can lie in directories a step (or the repository it checked out) controls, so a
//! path may name a symbolic link or a hard link to a file elsewhere, or a FIFO or device. One
//! rule for all of them: never follow a symbolic link at the path (`O_NOFOLLOW`), and write only
//! to a regular file with exactly one link. Everything is opened `O_CLOEXEC`, so no step inherits
//! a descriptor, and `O_NONBLOCK | O_NOCTTY`, so a FIFO or terminal swapped in cannot hang or
//! adopt stepjail.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How to open a host file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Append; create the file with this mode when it is missing.
    AppendCreate(u32),
    /// Append to an existing file.
    Append,
    /// Read and rewrite an existing file.
    ReadWrite,
}

#[derive(Debug, thiserror::Error)]
pub enum HostFileError {
    #[error("{}: refusing to write it: {what}", path.display())]
    NotRegular { path: PathBuf, what: String },
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

/// Opens `path` for writing as `access` says, refusing a symbolic link, anything but a regular
/// file, and a file with another hard link. `Ok(None)`: no file there (never for
/// [`Access::AppendCreate`]).
pub fn open(path: &Path, access: Access) -> Result<Option<File>, HostFileError> {
    let not_regular = |what: &str| HostFileError::NotRegular {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    let io_error = |action, source| HostFileError::Io {
        path: path.to_path_buf(),
        action,
        source,
    };
    // Checked before opening too: opening a device can have effects of its own.
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("inspect it", e)),
        Ok(meta) if meta.file_type().is_symlink() => return Err(not_regular("a symbolic link")),
        Ok(meta) if !meta.is_file() => return Err(not_regular("not a regular file")),
        Ok(_) => {}
    }
    let mut options = OpenOptions::new();
    options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY);
    match access {
        Access::AppendCreate(mode) => options.append(true).create(true).mode(mode),
        Access::Append => options.append(true),
        Access::ReadWrite => options.read(true).write(true),
    };
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a link (dangling ones included, even with O_CREAT).
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_regular("a symbolic link"));
        }
        Err(e) => return Err(io_error("open it", e)),
    };
    let meta = file.metadata().map_err(|e| io_error("inspect it", e))?;
    if !meta.is_file() {
        return Err(not_regular("not a regular file"));
    }
    if meta.nlink() != 1 {
        return Err(not_regular(&format!(
            "has {} hard links (writing it would change another file)",
            meta.nlink()
        )));
    }
    Ok(Some(file))
}

/// [`open`] with [`Access::AppendCreate`]: always a file.
pub fn open_append_create(path: &Path, mode: u32) -> Result<File, HostFileError> {
    open(path, Access::AppendCreate(mode))?.ok_or_else(|| HostFileError::Io {
        path: path.to_path_buf(),
        action: "create it",
        source: io::ErrorKind::NotFound.into(),
    })
}

/// Opens `path` for reading without following a symbolic link at it.
pub fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_regular_file_is_opened_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        open_append_create(&p, 0o600)
            .unwrap()
            .write_all(b"a")
            .unwrap();
        open(&p, Access::Append)
            .unwrap()
            .unwrap()
            .write_all(b"b")
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"ab");
        assert!(
            open(&dir.path().join("none"), Access::Append)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn links_fifos_and_directories_are_refused_and_their_targets_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "precious").unwrap();
        let sym = dir.path().join("sym");
        std::os::unix::fs::symlink(&target, &sym).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("new"), &dangling).unwrap();
        let hard = dir.path().join("hard");
        std::fs::hard_link(&target, &hard).unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for (p, what) in [
            (&sym, "a symbolic link"),
            (&dangling, "a symbolic link"),
            (&hard, "has 2 hard links"),
            (&fifo, "not a regular file"),
            (&dir.path().to_path_buf(), "not a regular file"),
        ] {
            for access in [
                Access::AppendCreate(0o600),
                Access::Append,
                Access::ReadWrite,
            ] {
                let err = open(p, access).unwrap_err();
                assert!(err.to_string().contains(what), "{}: {err}", p.display());
            }
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert!(!dir.path().join("new").exists());
    }
}
