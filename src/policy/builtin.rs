//! The built-in profiles, embedded in the binary from `profiles/*.yml`.

/// (name, YAML text). The file's `name:` must equal the name here (checked by a test).
const BUILTINS: &[(&str, &str)] = &[
    ("default", include_str!("../../profiles/default.yml")),
    ("offline", include_str!("../../profiles/offline.yml")),
];

/// The YAML text of a built-in profile.
pub(crate) fn text(name: &str) -> Option<(&'static str, &'static str)> {
    BUILTINS.iter().copied().find(|(n, _)| *n == name)
}

/// Names of all built-in profiles, in table order.
pub(crate) fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}
