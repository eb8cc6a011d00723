//! The small value syntaxes several converters share: plain counts and variable names.

/// A plain non-negative integer (digits only: no sign, no `_`, no `0x`).
pub(crate) fn parse_count(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
