//! The run pipeline as a library: what `stepjail run` and every CI integration come down to.
//!
//! An integration builds a [`Spec`] (the profile, the command, and for a CI step the runner's
//! files to expose or hide), then [`prepare`] validates it and decides everything — the
//! identity, the resolved profile, the secrets, the plan, the proxy's inputs — reading the host
//! but printing nothing and changing nothing on it; what launching must create (missing cache
//! directories, the audit log) is data in the [`Prepared`]. [`Prepared::launch`] then carries
//! it out: it creates those, clones the sandbox while the process is still single-threaded,
//! and only then starts the proxy's runtime. Errors come back as a [`RunError`] for the caller
//! to show (`cli::main` is the one place that does).

mod cache_guard;
mod error;
mod launch;
mod log_guard;
mod prepare;
mod spec;

pub use error::RunError;
pub use prepare::{Prepared, prepare};
pub use spec::{CiStep, Host, Outcome, Spec, new_run_id};

#[cfg(test)]
mod tests;
