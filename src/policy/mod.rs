//! Profiles: YAML wire types -> validated [`model::Profile`]; built-in profiles; variables.

pub mod model;
