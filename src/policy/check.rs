//! `stepjail check FILE`: is this profile or policy file valid?
//!
//! A file with a top-level `name:` is a profile, one with `version:` is a policy. Policy files
//! are only checked for shape and for references to profiles that exist; what they map to at
//! run time comes in a later change.

use std::path::Path;

use serde_saphyr::Spanned;

use super::convert::{self, valid_profile_name};
use super::error::PolicyError;
use super::load::{self, Source};
use super::wire::{KindProbe, PolicyWire, Str};
use super::{builtin, yaml};

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
    let w: PolicyWire = yaml::parse(text, label)?;
    let at = |s: &Str| yaml::location(label, &s.referenced);
    if w.version.value != "1" {
        return Err(PolicyError::InvalidValue {
            at: at(&w.version),
            path: "version".to_string(),
            expected: "1 (the only policy format so far)".to_string(),
            found: w.version.value,
        });
    }

    let mut available: Vec<String> = builtin::names().iter().map(|s| s.to_string()).collect();
    for (key, profile) in w.profiles.map(|m| m.0).unwrap_or_default() {
        let path_key = format!("profiles.{}", key.value);
        if !valid_profile_name(&key.value) {
            return Err(PolicyError::InvalidValue {
                at: at(&key),
                path: "profiles".to_string(),
                expected: "a profile name as the key: lowercase letters, digits, `_` and `-`"
                    .to_string(),
                found: key.value,
            });
        }
        if builtin::text(&key.value).is_some() {
            // Shadowing a built-in would make `profile: default` mean different things in
            // different repositories; extend it under a new name instead.
            return Err(PolicyError::InvalidValue {
                at: at(&key),
                path: path_key,
                expected: format!(
                    "a name that is not a built-in profile (write `extends: {}` under a new name)",
                    key.value
                ),
                found: key.value,
            });
        }
        check_inline_profile(path, label, &key, profile)?;
        available.push(key.value);
    }

    let exists = |name: &Str, path: String| -> Result<(), PolicyError> {
        if available.contains(&name.value) {
            Ok(())
        } else {
            Err(PolicyError::UnknownProfile {
                at: at(name),
                path,
                name: name.value.clone(),
                available: available.clone(),
            })
        }
    };
    if let Some(default) = &w.default {
        exists(default, "default".to_string())?;
    }
    for (job, steps) in w.jobs.map(|m| m.0).unwrap_or_default() {
        for (step, s) in steps.steps.0 {
            exists(
                &s.profile,
                format!("jobs.{}.steps.{}.profile", job.value, step.value),
            )?;
        }
    }
    Ok(())
}

fn check_inline_profile(
    path: &Path,
    label: &str,
    key: &Str,
    profile: Spanned<super::wire::ProfileWire>,
) -> Result<(), PolicyError> {
    let prefix = format!("profiles.{}.", key.value);
    let layer = convert::layer(
        profile.value,
        yaml::location(label, &profile.referenced),
        label,
        &prefix,
        Some(key),
    )?;
    let inline_label = format!("{label}#profiles.{}", key.value);
    let mut chain = vec![(inline_label.clone(), inline_label.clone())];
    let merged = load::merge_with_parents(
        layer,
        &Source::File(path.to_path_buf()),
        inline_label,
        &mut chain,
    )?;
    load::check(&merged)
}
