//! The egress leak scanner (`LeakScanner`).
//!
//! Property: a secret planted in a body, in any of the forms `encodings` lists (raw, base64
//! with offsets, hex, percent-encoding, ...), is found by `find`, by `find_normalised` and by
//! a `LeakStream` over any chunking of the body, and is named correctly.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stepjail::secrets::{LeakScanner, encodings};
use stepjail_fuzz::chunks;

#[derive(Debug, Arbitrary)]
struct Input {
    value: Vec<u8>,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    cuts: Vec<u8>,
    /// Which form to plant.
    form: u8,
}

fuzz_target!(|input: Input| {
    if input.value.is_empty() || input.value.len() > 128 {
        return;
    }
    let scanner = LeakScanner::new(&[("TOKEN".to_string(), vec![input.value.clone()])]);
    let mut forms = vec![input.value.clone()];
    forms.extend(encodings(&input.value));
    let form = &forms[usize::from(input.form) % forms.len()];
    let mut body = input.prefix.clone();
    body.extend_from_slice(form);
    body.extend_from_slice(&input.suffix);

    assert_eq!(
        scanner.find(&body),
        Some("TOKEN"),
        "find missed form {form:?}"
    );
    assert_eq!(scanner.find_normalised(&body), Some("TOKEN"));
    let mut stream = scanner.stream();
    let mut found = false;
    for piece in chunks(&body, &input.cuts) {
        if let Some(name) = stream.feed(piece) {
            assert_eq!(name, "TOKEN");
            found = true;
        }
    }
    assert!(found, "stream missed form {form:?}");
});
