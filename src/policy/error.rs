//! Everything that can go wrong while reading, merging, checking or resolving a profile.
//!
//! One variant per failing step. Every message starts with where the problem is (`file:line:col`,
//! or just `file` when no position applies), names the key path (`filesystem.hidden[2]`) and says
//! what was expected, so the message alone lets a user fix the file.

use super::model::Location;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read at all.
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },

    /// The file is larger than any sane profile; refused before parsing.
    #[error("{file}: file is {size} bytes; a profile or policy file may be at most {max} bytes")]
    TooLarge { file: String, size: u64, max: u64 },

    /// The file is not UTF-8 text.
    #[error("{file}: not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { file: String, offset: usize },

    /// Malformed YAML, or YAML this loader refuses (several documents, tags, merge keys).
    #[error("{at}: {message}")]
    Syntax { at: Location, message: String },

    /// The input tripped a parser budget (nesting, node count, alias expansion): likely hostile.
    #[error("{at}: refusing input: {what}")]
    TooComplex { at: Location, what: String },

    /// A key the schema does not have (usually a typo).
    #[error("{at}: unknown key `{key}` in {} (expected one of: {})", scope(path), expected.join(", "))]
    UnknownKey {
        at: Location,
        /// The mapping that holds the key; empty for the top level.
        path: String,
        key: String,
        expected: Vec<String>,
    },

    /// The same key twice in one mapping.
    #[error("{at}: duplicate key `{key}` in {}{}", scope(path), first_line.map(|l| format!(" (first written at line {l})")).unwrap_or_default())]
    DuplicateKey {
        at: Location,
        path: String,
        key: String,
        first_line: Option<usize>,
    },

    /// A required key is absent.
    #[error("{at}: missing key `{key}` in {} ({why})", scope(path))]
    MissingKey {
        at: Location,
        path: String,
        key: String,
        why: &'static str,
    },

    /// A value of the wrong YAML kind (a list where a string belongs, ...).
    #[error("{at}: {}: expected {expected}, found {found}", key(path))]
    WrongType {
        at: Location,
        path: String,
        expected: String,
        found: String,
    },

    /// A scalar of the right kind whose text does not parse (`timeout: soon`).
    #[error("{at}: `{path}`: expected {expected}, found `{found}`")]
    InvalidValue {
        at: Location,
        path: String,
        expected: String,
        found: String,
    },

    /// `$NAME` where NAME is not one of the variables a profile may use.
    #[error(
        "{at}: `{path}`: unknown variable `${name}` (allowed: $WORKSPACE, $HOME, $TMPDIR, $RUNNER_TEMP, or ${{NAME}} for one of those; write $$ for a literal $)"
    )]
    UnknownVariable {
        at: Location,
        path: String,
        name: String,
    },

    /// A `$` that does not start a variable reference.
    #[error("{at}: `{path}`: {problem} in `{raw}` (write $$ for a literal $)")]
    BadVariableSyntax {
        at: Location,
        path: String,
        raw: String,
        problem: String,
    },

    /// An allowed variable that has no value in this run (resolve time).
    #[error("{at}: `{path}`: variable `${name}` has no value in this run ({hint})")]
    UnsetVariable {
        at: Location,
        path: String,
        name: &'static str,
        hint: &'static str,
    },

    /// A path that can never mean what the author intended.
    #[error("{at}: `{path}` ({raw}): {reason}")]
    BadPath {
        at: Location,
        path: String,
        raw: String,
        reason: String,
    },

    /// A `network.allow` entry that cannot be a rule (bad host, IP literal, bad port, ...).
    #[error("{at}: `{path}` ({raw}): {reason}")]
    BadAllowRule {
        at: Location,
        path: String,
        raw: String,
        reason: String,
    },

    /// A `secrets:` entry that cannot work as written (bad broker host, empty broker list, a
    /// broker host the network rules never reach).
    #[error("{at}: `{path}` ({raw}): {reason}")]
    BadSecret {
        at: Location,
        path: String,
        raw: String,
        reason: String,
    },

    /// Two rules that cannot both hold (hidden and writable, ...).
    #[error("{at}: `{path}` ({raw}) {} {other}: {}", conflict.relation(), conflict.reason())]
    Contradiction {
        at: Location,
        path: String,
        raw: String,
        conflict: Conflict,
        /// The other entry's key path, value and where it was written.
        other: String,
    },

    /// `network.upstream_proxy` is not a usable proxy URL (the value is not echoed: it may
    /// hold credentials).
    #[error("{at}: `{path}`: {reason}")]
    BadUpstreamProxy {
        at: Location,
        path: String,
        reason: String,
    },

    /// `extends` leads back to a profile already on the chain.
    #[error("{file}: extends cycle: {}", chain.join(" -> "))]
    ExtendsCycle { file: String, chain: Vec<String> },

    /// `extends` chain longer than the limit.
    #[error("{file}: extends chain is deeper than {max} profiles: {}", chain.join(" -> "))]
    ExtendsTooDeep {
        file: String,
        max: usize,
        chain: Vec<String>,
    },

    /// The profile named by `extends` could not be found or read.
    #[error("{at}: `{path}`: cannot load `{target}`: {source}")]
    Extends {
        at: Location,
        path: String,
        target: String,
        #[source]
        source: Box<PolicyError>,
    },

    /// A built-in profile name that does not exist.
    #[error("unknown built-in profile `{name}` (available: {})", available.join(", "))]
    UnknownBuiltin {
        name: String,
        available: Vec<String>,
    },

    /// A policy file references a profile that is neither built in nor defined in `profiles:`.
    #[error("{at}: `{path}`: unknown profile `{name}` (available: {})", available.join(", "))]
    UnknownProfile {
        at: Location,
        path: String,
        name: String,
        available: Vec<String>,
    },

    /// A profile meant to narrow another asks for more than it (`repository_policy: narrow`):
    /// `place` is the repository's rule (`file:line:col`) or file.
    #[error("{place}: {what}")]
    Wider { place: String, what: String },

    /// `stepjail check` could not tell what kind of file this is.
    #[error("{file}: {message}")]
    UnknownFileKind { file: String, message: String },
}

/// Which two rules collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    HiddenAndWritable,
    HiddenAndReadOnly,
    HiddenContainsWritable,
    /// `network.mode: none` on a profile whose merged `network.allow` is not empty.
    NoNetworkWithAllow,
    /// A `secrets:` name that `env.set` also gives a fixed value.
    SecretAlsoSet,
}

impl Conflict {
    fn relation(self) -> &'static str {
        match self {
            Conflict::HiddenAndWritable | Conflict::HiddenAndReadOnly => "is also in",
            Conflict::HiddenContainsWritable => "contains",
            Conflict::NoNetworkWithAllow => "contradicts",
            Conflict::SecretAlsoSet => "is also in",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Conflict::HiddenAndWritable => "a path cannot be both hidden and writable",
            Conflict::HiddenAndReadOnly => "a path cannot be both hidden and read-only",
            Conflict::HiddenContainsWritable => {
                "a hidden directory cannot contain a writable path (hide the entries inside it instead)"
            }
            Conflict::NoNetworkWithAllow => {
                "mode `none` reaches nothing, so no allow rule could apply (drop `mode: none`, or extend a profile without `allow`)"
            }
            Conflict::SecretAlsoSet => {
                "a variable is either a secret (taken from the secret sources) or a fixed `env.set` value, not both"
            }
        }
    }
}

/// "the top level" or "`filesystem`", for messages about a mapping.
fn scope(path: &str) -> String {
    if path.is_empty() {
        "the top level".to_string()
    } else {
        format!("`{path}`")
    }
}

/// "the top level" or "`process.timeout`", for messages about a value.
fn key(path: &str) -> String {
    if path.is_empty() {
        "the top level".to_string()
    } else {
        format!("`{path}`")
    }
}

impl PolicyError {
    /// Where the error points, when it points at a position in a file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            PolicyError::Syntax { at, .. }
            | PolicyError::TooComplex { at, .. }
            | PolicyError::UnknownKey { at, .. }
            | PolicyError::DuplicateKey { at, .. }
            | PolicyError::MissingKey { at, .. }
            | PolicyError::WrongType { at, .. }
            | PolicyError::InvalidValue { at, .. }
            | PolicyError::UnknownVariable { at, .. }
            | PolicyError::BadVariableSyntax { at, .. }
            | PolicyError::UnsetVariable { at, .. }
            | PolicyError::BadPath { at, .. }
            | PolicyError::BadAllowRule { at, .. }
            | PolicyError::BadSecret { at, .. }
            | PolicyError::BadUpstreamProxy { at, .. }
            | PolicyError::Contradiction { at, .. }
            | PolicyError::Extends { at, .. }
            | PolicyError::UnknownProfile { at, .. } => Some(at),
            PolicyError::Read { .. }
            | PolicyError::TooLarge { .. }
            | PolicyError::NotUtf8 { .. }
            | PolicyError::ExtendsCycle { .. }
            | PolicyError::ExtendsTooDeep { .. }
            | PolicyError::UnknownBuiltin { .. }
            | PolicyError::Wider { .. }
            | PolicyError::UnknownFileKind { .. } => None,
        }
    }
}
