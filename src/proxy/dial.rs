//! Why a dial did not connect: refused (403) or unreachable (502).

/// Why [`super::engine::Engine::dial`] did not connect. The allowlist said yes by name; then either the
/// address it resolved to is one the policy refuses (a special range no `cidr` rule opens: a
/// denial, `403`), or the destination could not be reached (`502`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialError {
    Refused(String),
    Unreachable(String),
}

impl DialError {
    /// The status the explicit proxy answers with.
    pub fn status(&self) -> hyper::StatusCode {
        match self {
            DialError::Refused(_) => hyper::StatusCode::FORBIDDEN,
            DialError::Unreachable(_) => hyper::StatusCode::BAD_GATEWAY,
        }
    }
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Refused(r) | DialError::Unreachable(r) => f.write_str(r),
        }
    }
}
