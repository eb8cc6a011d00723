//! Appending records to the audit log: one `write(2)` of one whole line per event.
//!
//! The file is opened `O_APPEND`, and each record is serialized into one buffer ending in `\n`
//! and handed to the kernel in a single `write` call, with no userspace buffer in between. So:
//! - every event is in the kernel page cache as soon as [`AuditLog::write`] returns, and a crash
//!   of stepjail loses nothing that was written (a crash of the machine is what [`AuditLog::sync`]
//!   is for);
//! - writers sharing the file (clones of one [`AuditLog`], or several processes) never interleave
//!   inside a line, because `O_APPEND` positions and writes each call atomically for regular files;
//! - the worst a failure can leave is one partial last line, which [`super::read_log`] skips.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::error::AuditError;
use super::event::{Event, Record};

/// Where a step's audit records go. Cheap to clone; clones share one file descriptor.
///
/// `Send + Sync`: tokio tasks may each hold a clone and call [`AuditLog::write`] directly. A
/// `write` of one short line to a regular file does not block long enough to matter to the runtime.
#[derive(Debug, Clone)]
pub struct AuditLog {
    sink: Sink,
    step: Arc<str>,
    /// The first write that failed, shared by every clone: whoever ends the run asks
    /// [`AuditLog::first_failure`] whether the log is whole.
    failed: Arc<std::sync::OnceLock<String>>,
}

#[derive(Debug, Clone)]
enum Sink {
    /// No `--audit-log` was given: events are dropped.
    Disabled,
    File {
        file: Arc<File>,
        path: Arc<Path>,
    },
    /// Lines kept in memory, for tests.
    Memory(Arc<Mutex<Vec<u8>>>),
}

/// Reads back what an in-memory [`AuditLog`] was given. See [`AuditLog::memory`].
#[derive(Debug, Clone)]
pub struct MemoryLog {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl AuditLog {
    /// Opens (creating it with mode 0600 if needed) `path` for appending records of step `step`.
    ///
    /// An existing file keeps its mode and contents; records are appended after them. The path
    /// may lie in a directory a step controls: a symbolic link, a file with another hard link,
    /// or anything but a regular file is refused (see [`crate::host_file`]).
    pub fn open(path: &Path, step: &str) -> Result<Self, AuditError> {
        use crate::host_file::{HostFileError, open_append_create};
        let file = open_append_create(path, 0o600).map_err(|e| match e {
            HostFileError::Io { source, .. } => AuditError::Open {
                path: path.to_owned(),
                source,
            },
            unsafe_path => AuditError::Unsafe(unsafe_path),
        })?;
        Ok(Self::from_file(file, path, step))
    }

    fn from_file(file: File, path: &Path, step: &str) -> Self {
        AuditLog {
            sink: Sink::File {
                file: Arc::new(file),
                path: path.into(),
            },
            step: step.into(),
            failed: Arc::default(),
        }
    }

    /// A log on `/dev/full`, where every write fails with `ENOSPC` (`open` refuses a device).
    #[cfg(test)]
    pub(crate) fn full(step: &str) -> Self {
        let full = Path::new("/dev/full");
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(full)
            .expect("/dev/full");
        Self::from_file(file, full, step)
    }

    /// A log that drops every event, for runs without `--audit-log`.
    pub fn disabled() -> Self {
        AuditLog {
            sink: Sink::Disabled,
            step: "".into(),
            failed: Arc::default(),
        }
    }

    /// An in-memory log for tests, and the handle that reads its records back.
    ///
    /// Records go through the same serialization as the file log, one line each.
    pub fn memory(step: &str) -> (Self, MemoryLog) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let log = AuditLog {
            sink: Sink::Memory(Arc::clone(&buf)),
            step: step.into(),
            failed: Arc::default(),
        };
        (log, MemoryLog { buf })
    }

    /// Whether events are recorded at all (false for [`AuditLog::disabled`]).
    pub fn is_enabled(&self) -> bool {
        !matches!(self.sink, Sink::Disabled)
    }

    /// The run id stamped on every record.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// Records `event`, stamped now, as one line.
    ///
    /// An error means the event may not be in the log; the caller must fail the step closed.
    pub fn write(&self, event: Event) -> Result<(), AuditError> {
        if !self.is_enabled() {
            return Ok(());
        }
        self.write_record(&Record::new(&*self.step, event))
    }

    /// Records an already built record as one line (its `step` and `ts` are kept as they are).
    pub fn write_record(&self, record: &Record) -> Result<(), AuditError> {
        let r = self.write_line(record);
        if let Err(e) = &r {
            let _ = self.failed.set(e.to_string());
        }
        r
    }

    /// Why the first failed write of this log (or of any clone) failed, if one did: the log
    /// lacks that record at least, and maybe every one after it.
    pub fn first_failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    fn write_line(&self, record: &Record) -> Result<(), AuditError> {
        match &self.sink {
            Sink::Disabled => Ok(()),
            Sink::File { file, path } => {
                let line = to_line(record)?;
                write_once(file, &line).map_err(|e| e.at(path))
            }
            Sink::Memory(buf) => {
                let line = to_line(record)?;
                lock(buf).extend_from_slice(&line);
                Ok(())
            }
        }
    }

    /// Forces written records to stable storage (`fdatasync`): for the end of a step, not for
    /// every event.
    pub fn sync(&self) -> Result<(), AuditError> {
        match &self.sink {
            Sink::File { file, path } => file.sync_data().map_err(|source| AuditError::Sync {
                path: path.to_path_buf(),
                source,
            }),
            Sink::Disabled | Sink::Memory(_) => Ok(()),
        }
    }
}

impl MemoryLog {
    /// The raw bytes written so far.
    pub fn bytes(&self) -> Vec<u8> {
        lock(&self.buf).clone()
    }

    /// The records written so far, parsed back from their lines.
    ///
    /// Panics if a line does not parse: the in-memory log is for tests, where that is a bug.
    pub fn records(&self) -> Vec<Record> {
        super::summarize::parse_log(&self.bytes(), Path::new("<memory>"))
            .expect("in-memory audit log parses")
            .records
    }
}

fn lock(buf: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    // A panic while holding the lock cannot leave a half-appended line: extend_from_slice of a
    // reserved Vec does not panic midway in practice, and the buffer is test-only anyway.
    buf.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serializes `record` as one JSON line ending in `\n`.
fn to_line(record: &Record) -> Result<Vec<u8>, AuditError> {
    // serde_json escapes control characters inside strings, so the only `\n` is the final one.
    let mut line = serde_json::to_vec(record).map_err(AuditError::Serialize)?;
    line.push(b'\n');
    Ok(line)
}

/// The two ways a single write can fail, before the path is attached.
enum WriteError {
    Io(std::io::Error),
    Short { written: usize, len: usize },
}

impl WriteError {
    fn at(self, path: &Path) -> AuditError {
        let path = PathBuf::from(path);
        match self {
            WriteError::Io(source) => AuditError::Write { path, source },
            WriteError::Short { written, len } => AuditError::ShortWrite { path, written, len },
        }
    }
}

/// One `write(2)` of the whole line.
///
/// Never retries after a partial write: a second call would append the rest of the line after
/// another writer's record, turning one partial line into a malformed line in the middle.
fn write_once(mut file: &File, line: &[u8]) -> Result<(), WriteError> {
    loop {
        match file.write(line) {
            Ok(n) if n == line.len() => return Ok(()),
            Ok(written) => {
                return Err(WriteError::Short {
                    written,
                    len: line.len(),
                });
            }
            // Interrupted before anything was written: retrying cannot split the line.
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(WriteError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::Close;
    use std::os::unix::fs::PermissionsExt;

    fn close(conn: u64) -> Event {
        Event::Close(Close {
            conn,
            bytes_up: 1,
            bytes_down: 2,
            duration_ms: 3,
        })
    }

    #[test]
    fn file_is_created_0600_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        AuditLog::open(&path, "a").unwrap().write(close(1)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        AuditLog::open(&path, "b").unwrap().write(close(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains(r#""step":"a""#), "{}", lines[0]);
        assert!(lines[1].contains(r#""step":"b""#), "{}", lines[1]);
    }

    #[test]
    fn open_error_names_the_path() {
        let err = AuditLog::open(Path::new("/nonexistent-dir/audit.jsonl"), "s").unwrap_err();
        assert!(matches!(err, AuditError::Open { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("/nonexistent-dir/audit.jsonl: cannot open audit log"),
            "{err}"
        );
    }

    #[test]
    fn write_error_is_returned_not_swallowed() {
        // /dev/full fails every write with ENOSPC (`open` refuses it: not a regular file).
        let log = AuditLog::full("s");
        assert_eq!(log.first_failure(), None);
        let err = log.clone().write(close(1)).unwrap_err();
        // Every clone knows: the one that ends the run is not the one that failed.
        assert_eq!(log.first_failure(), Some(err.to_string().as_str()));
        match &err {
            AuditError::Write { source, .. } => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{err}")
            }
            other => panic!("expected a write error, got {other:?}"),
        }
    }

    #[test]
    fn a_link_or_a_device_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("audit.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = AuditLog::open(&link, "s").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("refusing to write it: a symbolic link"),
            "{err}"
        );
        let err = AuditLog::open(Path::new("/dev/full"), "s").unwrap_err();
        assert!(matches!(err, AuditError::Unsafe(_)), "{err:?}");
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
    }

    #[test]
    fn disabled_log_accepts_and_drops() {
        let log = AuditLog::disabled();
        assert!(!log.is_enabled());
        log.write(close(1)).unwrap();
        log.sync().unwrap();
    }

    #[test]
    fn memory_log_reads_back_records() {
        let (log, mem) = AuditLog::memory("run-9");
        log.write(close(1)).unwrap();
        log.clone().write(close(2)).unwrap();
        let records = mem.records();
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|r| r.step == "run-9"));
        assert_eq!(records[1].event, close(2));
        assert_eq!(mem.bytes().iter().filter(|&&b| b == b'\n').count(), 2);
    }

    #[test]
    fn audit_log_is_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<AuditLog>();
        assert_traits::<MemoryLog>();
    }
}
