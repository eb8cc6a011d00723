//! The built-in profiles, embedded in the binary from `profiles/*.yml`.

/// (name, YAML text). The file's `name:` must equal the name here (checked by a test).
/// `default` and `offline` first: error messages list the names in this order.
const BUILTINS: &[(&str, &str)] = &[
    ("default", include_str!("../../profiles/default.yml")),
    ("offline", include_str!("../../profiles/offline.yml")),
    ("cargo", include_str!("../../profiles/cargo.yml")),
    ("npm", include_str!("../../profiles/npm.yml")),
    ("pip", include_str!("../../profiles/pip.yml")),
    ("go", include_str!("../../profiles/go.yml")),
    ("rubygems", include_str!("../../profiles/rubygems.yml")),
    ("maven", include_str!("../../profiles/maven.yml")),
    ("github", include_str!("../../profiles/github.yml")),
    ("codecov", include_str!("../../profiles/codecov.yml")),
    ("apt", include_str!("../../profiles/apt.yml")),
    ("yarn", include_str!("../../profiles/yarn.yml")),
    ("pnpm", include_str!("../../profiles/pnpm.yml")),
    ("uv", include_str!("../../profiles/uv.yml")),
    ("poetry", include_str!("../../profiles/poetry.yml")),
    ("gradle", include_str!("../../profiles/gradle.yml")),
    ("nuget", include_str!("../../profiles/nuget.yml")),
    ("composer", include_str!("../../profiles/composer.yml")),
    ("dockerhub", include_str!("../../profiles/dockerhub.yml")),
    ("ghcr", include_str!("../../profiles/ghcr.yml")),
];

/// The YAML text of a built-in profile.
pub(crate) fn text(name: &str) -> Option<(&'static str, &'static str)> {
    BUILTINS.iter().copied().find(|(n, _)| *n == name)
}

/// Names of all built-in profiles, in table order.
pub(crate) fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}
