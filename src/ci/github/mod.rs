//! GitHub Actions: the frozen policy (`stepjail setup`), the `shell:` wrapper (`stepjail step`),
//! file-command sanitizing, the job summary and annotations; the self-hosted runner's
//! container hooks (`stepjail hooks`).

pub mod action;
pub mod filecmd;
pub mod hooks;
pub mod report;
pub mod setup;
pub mod state;
pub mod step;
