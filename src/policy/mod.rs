//! Profiles: YAML wire types -> validated [`model::Profile`]; built-in profiles; variables.
//!
//! The path a file takes: `yaml` parses it (the only YAML entry point) into `wire` types,
//! `convert` checks every value into a layer, `load` follows `extends` and merges, `paths`
//! checks the merged rules, and [`model::Profile::resolve`] expands variables for one run.
//! [`egress`] is the decision engine the egress proxy asks about names, addresses and DNS.

pub mod allow_list;
mod amend;
mod builtin;
mod cache;
mod check;
mod convert;
pub mod egress;
pub mod error;
mod hosts;
mod load;
pub mod model;
mod network;
mod paths;
pub mod policy_file;
pub(crate) mod ranges;
pub mod reserved;
mod resolve;
mod secret_decls;
mod syntax;
pub mod upstream_proxy;
mod vars;
mod wire;
mod yaml;

pub use cache::{guarded_dirs as profile_cache_dirs, load_cached};
pub use check::check_file;
pub use error::{Conflict, PolicyError};
pub use load::{MAX_EXTENDS_DEPTH, builtin_text, builtins, load, load_builtin, load_file};
pub use policy_file::{Chosen, Policy, StepRule};
/// The wire types of a policy, for files that embed one (`stepjail hooks`' operator file).
pub(crate) use wire::{JobWire, PolicyWire, ProfileWire, Str};
pub(crate) use yaml::SpannedMap;

/// Reads and parses any YAML file into `T` with the same limits and error messages as profiles
/// (for other YAML the product reads, such as a JavaScript action's `action.yml`).
pub fn read_yaml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, PolicyError> {
    let label = path.display().to_string();
    let text = yaml::read_file(path, &label)?;
    yaml::parse(&text, &label)
}

/// Reads a YAML file's text under the same size limit and UTF-8 check as profiles.
pub(crate) fn read_text(path: &std::path::Path, label: &str) -> Result<String, PolicyError> {
    yaml::read_file(path, label)
}

/// Parses YAML text (`label` names it in errors) with the same limits as profiles.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    label: &str,
) -> Result<T, PolicyError> {
    yaml::parse(text, label)
}
