//! The names a step may not pass to later steps through `$GITHUB_ENV`, and why.

/// The names a step may not set through `$GITHUB_ENV`, by what setting them does (the reason a
/// removal reports). A trailing `*` matches any name starting with what comes before it; names
/// compare ASCII case-insensitively (`http_proxy` is `HTTP_PROXY`).
pub const DANGEROUS_GROUPS: &[(&str, &[&str])] = &[
    (
        "changes how later programs load code",
        &["LD_*", "DYLD_*", "GCONV_PATH", "GLIBC_TUNABLES"],
    ),
    (
        "changes what later shells run",
        &[
            "BASH_ENV",
            "ENV",
            "BASH_FUNC_*",
            "SHELLOPTS",
            "BASHOPTS",
            "PROMPT_COMMAND",
            "PS4",
            "IFS",
        ],
    ),
    (
        "makes an interpreter load extra code",
        &[
            "NODE_OPTIONS",
            "NODE_PATH",
            "PYTHONSTARTUP",
            "PYTHONPATH",
            "PYTHONHOME",
            "PYTHONINSPECT",
            "PERL5OPT",
            "PERL5LIB",
            "PERLLIB",
            "RUBYOPT",
            "RUBYLIB",
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "JDK_JAVA_OPTIONS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
        ],
    ),
    (
        "makes git or ssh run another program or read another configuration",
        &[
            "GIT_SSH",
            "GIT_SSH_COMMAND",
            "GIT_PROXY_COMMAND",
            "GIT_ASKPASS",
            "SSH_ASKPASS",
            "GIT_EXEC_PATH",
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_SYSTEM",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_*",
            "GIT_CONFIG_VALUE_*",
            "GIT_CONFIG_PARAMETERS",
        ],
    ),
    ("changes where programs are found", &["PATH"]),
    (
        "redirects network traffic",
        &[
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
            "FTP_PROXY",
        ],
    ),
    (
        "replaces the trusted certificates",
        &[
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "NODE_EXTRA_CA_CERTS",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "GIT_SSL_CAINFO",
            "GIT_SSL_NO_VERIFY",
            "NODE_TLS_REJECT_UNAUTHORIZED",
        ],
    ),
    (RESERVED_REASON, &[RESERVED]),
];

/// Every pattern of [`DANGEROUS_GROUPS`], in order, for documentation.
pub const DANGEROUS: &[&str] = &DANGEROUS_FLAT;

pub(super) const RESERVED: &str = "STEPJAIL_*";
pub(super) const RESERVED_REASON: &str = "reserved for stepjail";

const DANGEROUS_COUNT: usize = count_patterns(DANGEROUS_GROUPS);
const DANGEROUS_FLAT: [&str; DANGEROUS_COUNT] = flatten(DANGEROUS_GROUPS);

const fn count_patterns(groups: &[(&str, &[&str])]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < groups.len() {
        n += groups[i].1.len();
        i += 1;
    }
    n
}

const fn flatten<const N: usize>(groups: &[(&str, &[&'static str])]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut k = 0;
    let mut i = 0;
    while i < groups.len() {
        let mut j = 0;
        while j < groups[i].1.len() {
            out[k] = groups[i].1[j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

/// Whether one pattern of [`DANGEROUS_GROUPS`] matches `name` (ASCII case-insensitively).
pub(super) fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes())),
        None => name.eq_ignore_ascii_case(pattern),
    }
}

/// `name` without surrounding whitespace, control characters and byte order marks: a program
/// that strips them must not turn a harmless-looking name into a dangerous one.
pub(super) fn core_name(name: &str) -> &str {
    name.trim_matches(|c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}')
}

/// Why setting `name` for later steps is dangerous (the reason of its [`DANGEROUS_GROUPS`]
/// group), or `None` when it is not.
pub fn dangerous_reason(name: &str) -> Option<&'static str> {
    let name = core_name(name);
    DANGEROUS_GROUPS.iter().find_map(|(reason, patterns)| {
        patterns
            .iter()
            .any(|p| pattern_matches(p, name))
            .then_some(*reason)
    })
}

/// Whether `name` matches [`DANGEROUS`] (ASCII case-insensitively).
pub fn is_dangerous(name: &str) -> bool {
    dangerous_reason(name).is_some()
}
