//! The audit log: what the egress proxy decided, one JSON line per event.
//!
//! [`event`] is the wire schema (`schema/audit-v1.schema.json` is its JSON Schema),
//! [`writer`] appends records to a file, [`mod@summarize`] reads logs back and tabulates them,
//! [`mod@suggest`] turns logs into a profile allowlist, and [`aggregate`] is the one pass over
//! the records that both (and the GitHub step summary) render from. Nothing here ever records header
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

pub mod aggregate;
mod error;
pub mod event;
pub mod suggest;
pub mod suggest_policy;
pub mod summarize;
pub mod writer;

pub use aggregate::Aggregate;
pub use error::AuditError;
pub use event::{
    Close, Connect, Decision, Dns, DnsClass, DnsLimited, DnsTransport, Event, FileCommand, Http,
    NameSource, Protocol, Record, SCHEMA_NAME, SCHEMA_VERSION, SecretLeak, SecretReflected,
    StepEnd, StepStart, Via, format_timestamp, sanitize_url,
};
pub use suggest::suggest;
pub use suggest_policy::suggest_policy;
pub use summarize::{ReadLog, parse_log, read_log, summarize};
pub use writer::{AuditLog, MemoryLog};
