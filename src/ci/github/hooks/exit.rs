//! How a hook fails: one `::error` annotation and the exit code the runner acts on.

use crate::ci::github::report;

/// Exit code of a hook that failed (the runner fails the step or the job on any non-zero).
pub const EXIT_FAILED: i32 = crate::exit::FAILURE;

/// Reports `msg` as the hook's error (an `::error` annotation, then `stepjail: ...` on stderr)
/// and returns [`EXIT_FAILED`].
pub(super) fn fail(msg: impl std::fmt::Display) -> i32 {
    let msg = msg.to_string();
    println!("{}", report::command("error", "stepjail hooks", &msg));
    say!("stepjail: {msg}");
    EXIT_FAILED
}
