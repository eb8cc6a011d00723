//! stepjail: run one CI step in a throwaway Linux sandbox.
//!
//! The crate is split the way the product is: [`policy`] reads and validates profiles,
//! [`sandbox`] plans and applies the sandbox (all syscalls and all `unsafe` live in
//! `sys`), [`step`] is the run pipeline (spec -> prepare -> launch) that the CLI and
//! every CI integration call, and [`cli`] holds the subcommands `main.rs` dispatches to.

/// `eprintln!` that cannot fail: with stderr closed, or a pipe whose reader went away
/// (`stepjail run ... 2>&1 | head`), the line is lost but not the run (`eprintln!` panics
/// there, and a panicking supervisor aborts and takes the step with it).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod audit;
pub mod ci;
pub mod cli;
pub mod diag;
pub mod exit;
pub mod host_file;
pub mod net;
pub mod policy;
pub mod proxy;
pub mod sandbox;
pub mod secrets;
pub mod step;
pub(crate) mod sys;
