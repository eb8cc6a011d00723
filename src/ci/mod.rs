//! CI integrations: GitHub Actions (`stepjail setup`, `stepjail step`).

pub mod github;
