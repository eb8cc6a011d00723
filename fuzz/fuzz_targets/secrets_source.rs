//! The secrets file readers: dotenv (`from_dotenv`) and JSON (`from_json`), both via
//! `parse_text`'s choice.
//!
//! Properties:
//! - no panic;
//! - what the dotenv reader returns, written as a JSON object, reads back through `from_json`
//!   as the same names and values (the two readers agree on values);
//! - an error message names the origin and never contains a value the other reader found in
//!   the same text (errors must not leak secrets).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stepjail::secrets::SecretsError;
use stepjail::secrets::source::{SecretValues, from_dotenv, from_json, parse_text};

const ORIGIN: &str = "fuzz-origin";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dotenv = from_dotenv(text, ORIGIN);
    let json = from_json(text, ORIGIN);
    let _ = parse_text(text, ORIGIN);
    if let Ok(values) = &dotenv {
        let mut map = serde_json::Map::new();
        for name in values.names() {
            map.insert(
                name.to_string(),
                serde_json::Value::String(values.get(name).unwrap().to_string()),
            );
        }
        let rendered = serde_json::Value::Object(map).to_string();
        let back = from_json(&rendered, ORIGIN).expect("JSON of dotenv values does not parse");
        assert_eq!(back.len(), values.len());
        for name in values.names() {
            assert_eq!(back.get(name), values.get(name), "value of {name}");
        }
    }
    type Reader = fn(&str, &str) -> Result<SecretValues, SecretsError>;
    let readers: [(Reader, &Result<SecretValues, SecretsError>); 2] =
        [(from_dotenv, &json), (from_json, &dotenv)];
    for (reader, other) in readers {
        let Err(e) = reader(text, ORIGIN) else {
            continue;
        };
        let message = e.to_string();
        assert!(
            message.contains(ORIGIN),
            "{message:?} does not name the origin"
        );
        let Ok(values) = other else {
            continue;
        };
        for name in values.names() {
            let v = values.get(name).unwrap();
            // Short values occur in any message by chance; a value can also spell the fixed
            // words of a message. It leaks when the message shows it only because the input
            // held it: with the value blanked out of the input, the message no longer does.
            if v.len() < 8 || !message.contains(v) {
                continue;
            }
            let blanked = text.replace(v, &"X".repeat(v.len()));
            let without = reader(&blanked, ORIGIN).err().map(|e| e.to_string());
            assert!(
                without.is_some_and(|m| m.contains(v)),
                "error message contains the value of {name}: {message:?}"
            );
        }
    }
});
