//! stepjail's own exit codes for a sandboxed step.

/// stepjail's own exit codes (the step's code passes through otherwise; 128+N for signal N).
/// The step sent a signal to its own init (`kill -TERM 1`) and was ended by it: not 128+N, which
/// would look like the runner cancelling the step.
pub const EXIT_INIT_SIGNALLED: i32 = 123;
pub const EXIT_TIMEOUT: i32 = 124;
pub const EXIT_SETUP: i32 = 125;
pub const EXIT_CANNOT_EXEC: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;
