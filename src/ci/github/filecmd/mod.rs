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

mod deny;
mod env_file;
mod error;
mod file;
mod path;
#[cfg(test)]
mod tests;

pub use deny::{DANGEROUS, DANGEROUS_GROUPS, dangerous_reason, is_dangerous};
pub use env_file::{
    EnvEntry, Removed, Sanitized, parse_env_file, render_env, sanitize_env, sanitize_env_file,
};
pub use error::FileCommandError;
pub use file::{MAX_FILE_BYTES, step_file};
pub use path::{PathRemoved, sanitize_path_file};
