//! The audit log: what the egress proxy decided, one JSON line per event.
//!
//! [`event`] is the wire schema (`schema/audit-v1.schema.json` is its JSON Schema),
//! [`writer`] appends records to a file, [`mod@summarize`] reads logs back and tabulates them,
//! and [`mod@suggest`] turns logs into a profile allowlist. Nothing here ever records header
//! values, bodies, query strings or secret values.
//!
//! The proxy writes through one [`AuditLog`] per step:
//!
//! ```no_run
//! use stepjail::audit::{AuditLog, Close, Event};
//! # fn main() -> Result<(), stepjail::audit::AuditError> {
//! let log = AuditLog::open("audit.jsonl".as_ref(), "run-1")?;
//! log.write(Event::Close(Close { conn: 1, bytes_up: 10, bytes_down: 20, duration_ms: 5 }))?;
//! # Ok(())
//! # }
//! ```

pub mod event;
pub mod suggest;
pub mod suggest_policy;
pub mod summarize;
pub mod writer;

use std::path::PathBuf;

pub use event::{
    Close, Connect, Decision, Dns, DnsTransport, Event, FileCommand, Http, NameSource, Protocol,
    Record, SCHEMA_NAME, SCHEMA_VERSION, SecretLeak, SecretReflected, StepEnd, StepStart, Via,
    format_timestamp, sanitize_url,
};
pub use suggest::suggest;
pub use suggest_policy::suggest_policy;
pub use summarize::{ReadLog, parse_log, read_log, summarize};
pub use writer::{AuditLog, MemoryLog};

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

    /// A record could not be serialized (never expected for the types in [`event`]).
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
