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

mod error;
pub mod leak;
pub mod mask;
pub mod placeholder;
pub mod reflect;
pub mod replace;
pub mod scrub;
mod search;
pub mod source;
mod wipe;

pub use error::SecretsError;
pub use leak::{LeakScanner, LeakStream};
pub use mask::{MASK, Masker};
pub use placeholder::{PlaceholderError, fresh_seed, placeholder};
pub use reflect::Reflection;
pub use replace::{ReplaceError, Replacer};
pub use scrub::{CI_CREDENTIALS, is_scrubbed};
pub(crate) use search::base64_standard;
pub use search::encodings;
pub use source::{
    MAX_FILE_BYTES, SecretValues, from_dotenv, from_json, load_file, parse_text, resolve,
};

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
