//! The variable names stepjail sets itself in every step, in one list. A secret may not take
//! one of them: its value would replace stepjail's (`HTTPS_PROXY` pointing the step's tools
//! around the proxy, `SSL_CERT_FILE` at a bundle of the secret's choosing). `stepjail check`
//! (and every profile or policy load) refuses such a declaration, and a run refuses a secret of
//! such a name from anywhere else. `net::proxy_env` and the sandbox plan set these names; a test
//! in `net` checks that every proxy variable the step gets is here.

/// The proxy variables, both cases (see `net::proxy_env`).
pub const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Variables that point the common tools at a CA bundle (the step's, when it trusts an extra
/// CA).
pub const CA_BUNDLE_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
];

/// The switches of tools that ignore the proxy variables, which stepjail sets to point them at
/// the explicit proxy (see `net::tool_proxy_env`; `JAVA_TOOL_OPTIONS` keeps the caller's options
/// with the proxy properties appended, which a secret of that name would replace).
pub const TOOL_PROXY_VARS: &[&str] = &[
    "JAVA_TOOL_OPTIONS",
    "NODE_USE_ENV_PROXY",
    "YARN_HTTP_PROXY",
    "YARN_HTTPS_PROXY",
];

/// Variables the sandbox sets for every step.
pub const SANDBOX_VARS: &[&str] = &["PATH", "HOME", "TMPDIR", "USER", "LOGNAME"];

/// Whether stepjail sets variable `name` itself, so that no secret may have that name.
pub fn is_reserved(name: &str) -> bool {
    [PROXY_VARS, TOOL_PROXY_VARS, CA_BUNDLE_VARS, SANDBOX_VARS]
        .iter()
        .any(|list| list.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::is_reserved;

    #[test]
    fn reserved_names_are_exact_and_case_sensitive() {
        for name in [
            "SSL_CERT_FILE",
            "PATH",
            "HOME",
            "https_proxy",
            "no_proxy",
            "NODE_USE_ENV_PROXY",
        ] {
            assert!(is_reserved(name), "{name}");
        }
        for name in ["NPM_TOKEN", "Https_Proxy", "PATH2", ""] {
            assert!(!is_reserved(name), "{name}");
        }
    }
}
