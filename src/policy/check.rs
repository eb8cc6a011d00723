//! `stepjail check FILE`: is this profile or policy file valid?
//!
//! A file with a top-level `name:` is a profile, one with `version:` is a policy (see
//! [`super::policy_file`]); a policy is checked as `stepjail setup` would: every step's profile
//! is built, its secrets included.

use std::path::Path;

use super::error::PolicyError;
use super::load;
use super::wire::KindProbe;
use super::yaml;

/// Check a profile or policy file; `Ok` means every rule holds.
pub fn check_file(path: &Path) -> Result<(), PolicyError> {
    let label = path.display().to_string();
    let text = yaml::read_file(path, &label)?;
    let probe: KindProbe = yaml::parse(&text, &label)?;
    let kind_error = |message: &str| PolicyError::UnknownFileKind {
        file: label.clone(),
        message: message.to_string(),
    };
    match (probe.name.is_some(), probe.version.is_some()) {
        (true, false) => load::load_file(path).map(drop),
        (false, true) => check_policy(path, &text, &label),
        (true, true) => Err(kind_error(
            "has both `name:` (a profile) and `version:` (a policy); a file is one or the other",
        )),
        (false, false) => Err(kind_error(
            "is neither a profile (no top-level `name:`) nor a policy (no top-level `version:`)",
        )),
    }
}

fn check_policy(path: &Path, text: &str, label: &str) -> Result<(), PolicyError> {
    super::policy_file::Policy::parse(path, text, label).map(drop)
}
