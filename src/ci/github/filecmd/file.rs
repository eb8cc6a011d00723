//! Reading and rewriting a file-command file safely: no symbolic link followed, one regular
//! file with one link, a size bound, and emptied when what it holds cannot be trusted.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::error::{EMPTIED, FileCommandError};

/// Largest file-command file read. Anything bigger is not an environment: the file is emptied.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

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
pub(super) fn fail_closed(
    file: &File,
    path: &Path,
    rejected: FileCommandError,
) -> FileCommandError {
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
pub(super) fn rewrite(file: &mut File, path: &Path, text: &str) -> Result<(), FileCommandError> {
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
pub(super) fn read_command_file(path: &Path) -> Result<Option<(File, String)>, FileCommandError> {
    let Some(mut file) = open_command_file(path)? else {
        return Ok(None);
    };
    match read_text(&mut file, path) {
        Ok(text) => Ok(Some((file, text))),
        Err(e) => Err(fail_closed(&file, path, e)),
    }
}
