//! Every exit code stepjail ends with, defined once. The step's own code passes through
//! otherwise (128+N when a signal N ended it, as a shell reports it).

/// A check or a read found problems (`stepjail check`, `stepjail audit`), or a step wrote a
/// file command the runner could not have parsed (the runner would have failed the step).
pub const FAILURE: i32 = 1;
/// A usage, profile or policy error: nothing ran.
pub const USAGE: i32 = 2;
/// A cgroup limit of the profile (`process.limits.memory` or `pids`) ended the step: the kernel
/// OOM-killed a process of the step, or refused a fork, and the step then failed (timed-out
/// steps included). A step that succeeds anyway keeps 0; the audit `step_end.limit` and a
/// stderr line say which limit.
pub const LIMIT: i32 = 122;
/// The step succeeded, but the audit log could not be written during it (its network was cut
/// from then on) or at its end: the log is incomplete. A step that failed keeps its own code.
pub const AUDIT_FAILED: i32 = 121;
/// The step sent a signal to its own init (`kill -TERM 1`) and was ended by it: not 128+N,
/// which would look like the runner cancelling the step.
pub const INIT_SIGNALLED: i32 = 123;
/// The profile's timeout ended the step.
pub const TIMEOUT: i32 = 124;
/// The sandbox could not be set up (or stepjail's own state under a CI runner is missing,
/// unreadable or was changed): the step did not run.
pub const SETUP: i32 = 125;
/// The command exists but cannot be executed.
pub const CANNOT_EXEC: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;
