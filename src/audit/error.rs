//! Everything that can go wrong writing or reading an audit log.

use std::path::PathBuf;

use super::event::{SCHEMA_NAME, SCHEMA_VERSION};

/// Everything that can go wrong writing or reading an audit log.
///
/// A write error means an event may be missing from the log. The caller must treat that as a
/// failure of the step (fail closed: stop forwarding traffic and fail the step), never carry on
/// unaudited.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log file could not be opened for appending.
    #[error("{}: cannot open audit log: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The path is a symbolic link, a hard link, or not a regular file: refused, untouched.
    #[error("cannot open audit log: {0}")]
    Unsafe(crate::host_file::HostFileError),

    /// A record could not be written.
    #[error("{}: cannot write audit record: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The kernel accepted only part of a record (disk full, file size limit). The log now ends
    /// in a partial line, which readers skip; nothing more is written after it by this call.
    #[error("{}: audit record cut short: wrote {written} of {len} bytes", path.display())]
    ShortWrite {
        path: PathBuf,
        written: usize,
        len: usize,
    },

    /// `fsync` of the log failed.
    #[error("{}: cannot sync audit log: {source}", path.display())]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A record could not be serialized (never expected for the types in [`super::event`]).
    #[error("cannot serialize audit record: {0}")]
    Serialize(#[source] serde_json::Error),

    /// The log file could not be read.
    #[error("{}: cannot read audit log: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A complete line is not a valid record.
    #[error("{}:{line}: malformed audit record: {source}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },

    /// A line is a record of another schema or of a version this build cannot read.
    #[error(
        "{}:{line}: audit record has schema `{schema}` version {v}; this stepjail reads `{}` version {}",
        path.display(), SCHEMA_NAME, SCHEMA_VERSION
    )]
    WrongSchema {
        path: PathBuf,
        line: usize,
        schema: String,
        v: u64,
    },
}
