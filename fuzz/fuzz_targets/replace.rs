//! The streaming rewriters: `Replacer` (placeholder → value) and `Masker` (value → `***`).
//!
//! Property: the output over any chunking of the input equals the one-shot result, and the
//! replacer's output has the input's length.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stepjail::secrets::{Masker, Replacer};
use stepjail_fuzz::chunks;

#[derive(Debug, Arbitrary)]
struct Input {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    data: Vec<u8>,
    cuts: Vec<u8>,
    encodings: bool,
}

fuzz_target!(|input: Input| {
    // Equal lengths, as the broker makes them (placeholders have their value's length).
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = input
        .pairs
        .iter()
        .take(8)
        .map(|(from, to)| {
            let from: Vec<u8> = from.iter().take(32).copied().collect();
            let mut to: Vec<u8> = to.iter().take(from.len()).copied().collect();
            to.resize(from.len(), b'#');
            (from, to)
        })
        .collect();
    let pieces = chunks(&input.data, &input.cuts);
    if let Ok(r) = Replacer::new(pairs.clone()) {
        let whole = r.replace_all(&input.data);
        assert_eq!(whole.len(), input.data.len());
        let mut s = r.new_stream();
        let mut streamed = Vec::new();
        for p in &pieces {
            streamed.extend(s.feed(p));
        }
        streamed.extend(s.finish());
        assert_eq!(streamed, whole, "replacer: chunked differs from one-shot");
    }

    let values: Vec<&[u8]> = pairs.iter().map(|(f, _)| f.as_slice()).collect();
    let make = || {
        if input.encodings {
            Masker::with_encodings(&values)
        } else {
            Masker::new(&values)
        }
    };
    let mut one = make();
    let mut whole = one.feed(&input.data);
    whole.extend(one.finish());
    let mut m = make();
    let mut streamed = Vec::new();
    for p in &pieces {
        streamed.extend(m.feed(p));
    }
    streamed.extend(m.finish());
    assert_eq!(streamed, whole, "masker: chunked differs from one-shot");
    // A masked output never contains a value (unless the mask itself or the surrounding text
    // can spell it: values made only of `*` are skipped).
    if !input.encodings {
        for v in &values {
            if !v.is_empty() && !v.contains(&b'*') && !whole.is_empty() {
                assert!(
                    !whole.windows(v.len()).any(|w| w == *v),
                    "masked output still contains a value"
                );
            }
        }
    }
});
