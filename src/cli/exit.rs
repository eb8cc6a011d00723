//! The command line's own exit code.

/// Exit code for a usage or profile error: nothing ran.
pub const EXIT_USAGE: i32 = 2;
