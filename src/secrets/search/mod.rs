//! Finding secret values in bytes, shared by leak detection (`leak.rs`), placeholder swapping
//! (`replace.rs`), reflection scrubbing (`reflect.rs`) and masking (`mask.rs`): the forms a
//! value is searched in ([`encodings`]) and the Aho-Corasick automaton that finds many patterns
//! in one pass ([`Automaton`]; masking matches each form with its own KMP automaton instead).

mod automaton;
mod encodings;

pub(in crate::secrets) use automaton::Automaton;
pub(crate) use encodings::base64_standard;
#[cfg(test)]
pub(in crate::secrets) use encodings::{BASE64_STD, BASE64_URL, base32_forms, base64};
pub use encodings::{MIN_ENCODED_LEN, encodings};
pub(in crate::secrets) use encodings::{form_pairs, forms};

/// A small deterministic generator for the tests of the matchers; they need variety, not
/// quality.
#[cfg(test)]
pub(in crate::secrets) fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}
