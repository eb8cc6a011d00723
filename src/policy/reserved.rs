//! Variables stepjail sets in every step itself, which no secret and no profile may set.

/// Variables that point the common tools at a CA bundle.
pub const CA_BUNDLE_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
];

/// Variables the sandbox sets for every step (besides the proxy and CA bundle ones).
pub const SANDBOX_VARS: &[&str] = &["PATH", "HOME", "TMPDIR", "USER", "LOGNAME"];

/// Whether stepjail sets variable `name` itself: the proxy variables ([`crate::net::proxy_env`]),
/// the CA bundle variables and [`SANDBOX_VARS`]. A secret of that name would replace stepjail's
/// value (`HTTPS_PROXY` pointing the step's tools around the proxy, `SSL_CERT_FILE` at a bundle
/// of the secret's choosing), so profiles and policies may not declare one.
pub fn sets_itself(name: &str) -> bool {
    crate::net::proxy_env().iter().any(|(k, _)| k == name)
        || CA_BUNDLE_VARS.contains(&name)
        || SANDBOX_VARS.contains(&name)
}
