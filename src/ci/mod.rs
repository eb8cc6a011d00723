//! CI integrations: GitHub Actions (`stepjail setup`, `stepjail step`), GitLab Runner's Custom
//! executor (`stepjail gitlab`).

pub mod github;
pub mod gitlab;
