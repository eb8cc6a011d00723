//! Everything that can go wrong reading secret sources or resolving declarations.

/// Everything that can go wrong reading secret sources or resolving declarations.
///
/// No variant holds a secret value, or text that could be one: dotenv problems are fixed
/// strings, a key is only named once it is known to be a variable name, and JSON syntax errors
/// keep serde_json's fixed description without the input.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The secrets file (or descriptor) could not be read.
    #[error("{file}: cannot read secrets: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },

    /// Refused before parsing: no set of secrets is this large.
    #[error("{file}: secrets file is larger than {max} bytes")]
    TooLarge { file: String, max: u64 },

    /// The source is not UTF-8 text.
    #[error("{origin}: not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { origin: String, offset: usize },

    /// A dotenv line that cannot be read. `key` is set only once the text before `=` is known
    /// to be a variable name: on a broken line it may be a piece of a value.
    #[error("{origin}:{line}: {}{problem}", key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
    Dotenv {
        origin: String,
        line: usize,
        key: Option<String>,
        problem: &'static str,
    },

    /// The same variable twice in one dotenv source.
    #[error("{origin}:{line}: `{key}` is defined twice (first at line {first_line})")]
    DuplicateKey {
        origin: String,
        line: usize,
        key: String,
        first_line: usize,
    },

    /// Malformed JSON. `problem` is serde_json's description of the error kind, which never
    /// quotes the input.
    #[error("{origin}:{line}:{column}: invalid JSON: {problem}")]
    Json {
        origin: String,
        line: usize,
        column: usize,
        problem: String,
    },

    /// Valid JSON that is not an object.
    #[error(
        "{origin}: expected a JSON object of names to string values (what `${{{{ toJSON(secrets) }}}}` produces), found {found}"
    )]
    JsonNotObject { origin: String, found: &'static str },

    /// A member of the object that is not a string.
    #[error("{origin}: `{key}` is {found}, not a string (secret values must be strings)")]
    JsonNotString {
        origin: String,
        key: String,
        found: &'static str,
    },

    /// The same name twice in the JSON object.
    #[error("{origin}: `{key}` is defined twice")]
    JsonDuplicateKey { origin: String, key: String },

    /// A value with a NUL byte cannot be put in an environment. `origin` is `file:line` for
    /// dotenv sources.
    #[error(
        "{origin}: `{key}`: the value contains a NUL byte, which no environment variable can hold"
    )]
    NulInValue { origin: String, key: String },

    /// Declared, not optional, and provided by no source.
    #[error(
        "{} declared by the profile but not provided (looked in {}the invoking environment; an empty value counts as not provided; declare it with `optional: true` to run without it)",
        missing_names(names),
        file.as_ref().map(|f| format!("{f}, then ")).unwrap_or_default()
    )]
    Missing {
        names: Vec<String>,
        /// The secrets file, when one was given.
        file: Option<String>,
    },
}

/// "secret `A` is" / "secrets `A`, `B` are".
fn missing_names(names: &[String]) -> String {
    let list = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() == 1 {
        format!("secret {list} is")
    } else {
        format!("secrets {list} are")
    }
}
