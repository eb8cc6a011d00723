//! stepjail: run one CI step in a throwaway Linux sandbox.
//!
//! The crate is split the way the product is: [`policy`] reads and validates profiles,
//! [`sandbox`] plans and applies the sandbox (all syscalls and all `unsafe` live in
//! `sys`), and [`cli`] holds the subcommands `main.rs` dispatches to.

pub mod audit;
pub mod ci;
pub mod cli;
pub mod diag;
pub mod host_file;
pub mod net;
pub mod policy;
pub mod proxy;
pub mod sandbox;
pub mod secrets;
pub(crate) mod sys;
