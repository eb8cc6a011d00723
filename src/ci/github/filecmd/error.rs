//! Everything that can go wrong reading or rewriting a file-command file.

use std::io;

/// How the errors after which a file has been emptied end.
pub(super) const EMPTIED: &str = "; the file has been emptied";

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

    /// Larger than [`super::MAX_FILE_BYTES`]; the file has been emptied.
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
