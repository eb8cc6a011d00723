//! Secrets per step: where values come from ([`source`]), which variables never reach a step
//! ([`scrub`]), and masking them in the step's output ([`mask`]).
//!
//! The rule every part follows: a secret value is never printed, logged or put in an error.
//! Errors name the source (`file:line`) and the variable; `Debug` on the types holding values
//! prints names only; buffers holding values are overwritten before they are freed
//! (best effort, see `wipe.rs`).
//!
//! Declarations (`secrets:` in a profile) are parsed by `policy` into
//! [`crate::policy::model::SecretDecl`]; brokering (`broker: [host]`) gives the step a
//! placeholder (`placeholder.rs`) and the proxy swaps the value in (`crate::proxy::broker`).

#![forbid(unsafe_code)]

pub mod leak;
pub mod mask;
pub mod placeholder;
pub mod reflect;
pub mod replace;
pub mod scrub;
pub mod source;
mod wipe;

pub use leak::{LeakScanner, LeakStream};
pub use mask::{MASK, Masker, encodings};
pub use placeholder::{PlaceholderError, fresh_seed, placeholder};
pub use reflect::Reflection;
pub use replace::{ReplaceError, Replacer};
pub use scrub::{CI_CREDENTIALS, is_scrubbed};
pub use source::{
    MAX_FILE_BYTES, SecretValues, from_dotenv, from_json, load_file, parse_text, resolve,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{Location, SecretDecl};

    const SENTINEL: &str = "SENTINEL_c0ffee";

    /// Naming every variant here makes a new variant fail to compile until it is covered below.
    fn variant(e: &SecretsError) -> &'static str {
        match e {
            SecretsError::Read { .. } => "Read",
            SecretsError::TooLarge { .. } => "TooLarge",
            SecretsError::NotUtf8 { .. } => "NotUtf8",
            SecretsError::Dotenv { .. } => "Dotenv",
            SecretsError::DuplicateKey { .. } => "DuplicateKey",
            SecretsError::Json { .. } => "Json",
            SecretsError::JsonNotObject { .. } => "JsonNotObject",
            SecretsError::JsonNotString { .. } => "JsonNotString",
            SecretsError::JsonDuplicateKey { .. } => "JsonDuplicateKey",
            SecretsError::NulInValue { .. } => "NulInValue",
            SecretsError::Missing { .. } => "Missing",
        }
    }

    /// Every error, produced the way users meet it, from inputs holding the sentinel as a value
    /// (and, where the input is broken, as the text around the break).
    fn every_error(dir: &std::path::Path) -> Vec<SecretsError> {
        let s = SENTINEL;
        let dotenv = |t: String| from_dotenv(&t, "s.env").unwrap_err();
        let json = |t: String| from_json(&t, "s.json").unwrap_err();
        let file = |name: &str, bytes: Vec<u8>| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            load_file(&p).unwrap_err()
        };
        let decl = SecretDecl {
            name: "NPM_TOKEN".into(),
            optional: false,
            broker: vec![],
            broker_in: vec![],
            at: Location {
                file: "p.yml".into(),
                line: 1,
                column: 1,
            },
            key: "secrets.NPM_TOKEN".into(),
        };
        let values = from_dotenv(&format!("OTHER={s}\n"), "s.env").unwrap();
        vec![
            load_file(&dir.join("missing")).unwrap_err(),
            file(
                "big",
                [s.as_bytes(), &vec![b'x'; MAX_FILE_BYTES as usize]].concat(),
            ),
            file("bin", [format!("A={s}").as_bytes(), b"\xff"].concat()),
            dotenv(format!("{s}\n")),
            dotenv(format!("{s}+/=x\n")),
            dotenv(format!("A=\"{s}")),
            dotenv(format!("A='{s}\n")),
            dotenv(format!("A=\"{s}\"{s}")),
            dotenv(format!("A={s}\nA={s}")),
            dotenv(format!("A=\"{s}\\0\0\"")),
            json(format!("{{\"A\": \"{s}\",}}")),
            json(format!("{{\"A\": \"{s}\" {s}}}")),
            json(format!("{{\"A\": {s}}}")),
            json(format!("\"{s}\"")),
            json(format!("[\"{s}\"]")),
            json(format!("{{\"A\": [\"{s}\"]}}")),
            json(format!("{{\"A\": \"{s}\", \"A\": \"{s}\"}}")),
            json(format!("{{\"A\": \"{s}\\u0000\"}}")),
            resolve(&[decl], Some(&values), &[("X".into(), s.into())]).unwrap_err(),
        ]
    }

    #[test]
    fn no_error_ever_shows_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let errors = every_error(dir.path());
        let mut seen: Vec<&str> = errors.iter().map(variant).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen,
            [
                "Dotenv",
                "DuplicateKey",
                "Json",
                "JsonDuplicateKey",
                "JsonNotObject",
                "JsonNotString",
                "Missing",
                "NotUtf8",
                "NulInValue",
                "Read",
                "TooLarge",
            ]
        );
        for e in &errors {
            for shown in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
                assert!(!shown.contains(SENTINEL), "{shown}");
                // Not even a piece of it.
                assert!(!shown.contains("c0ffee"), "{shown}");
            }
        }
    }
}
