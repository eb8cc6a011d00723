//! Placeholders for brokered secrets: what the step sees instead of the real value.
//!
//! A placeholder has the same length in bytes as the value and the same character class at
//! every position: an ASCII lower-case letter becomes a lower-case letter, upper-case an
//! upper-case letter, a digit a digit; every other byte (punctuation such as `ghp_`'s `_`, `-`,
//! `.`, spaces, control characters and every byte of a non-ASCII character) is kept. A
//! well-known vendor prefix at the start of the value ([`KEPT_PREFIXES`]: `ghp_`, `npm_`,
//! `glpat-`, `AKIA`, ...) is kept too: it names the kind of token, which is no secret, and tools
//! route or validate on it. Tools that check a token's shape (`ghp_` + 36 alphanumerics, a UUID,
//! a JWT's dots) accept the placeholder, and `Content-Length` stays right when the proxy swaps
//! the real value in. Nothing else of the value is kept: a leading word that is not on the list
//! (`correct-horse`) is replaced like the rest.
//!
//! # Randomness, and what the placeholder says about the value
//!
//! The letters and digits come from a SplitMix64 stream keyed by the 32-byte seed, the value,
//! a position and a round number. No cryptographic claim is made, but the construction is such
//! that the stream says nothing about the value when the seed is random: the value is absorbed
//! into the seeded state by a map that is a bijection of the state for every value, so a uniform
//! state stays uniform whatever the value. The value still changes the stream, so two secrets
//! of the same shape under the same seed get different placeholders (with overwhelming
//! probability: a collision is possible, as for any random choice).
//!
//! # Guarantees
//!
//! - Same length, same class per position, same bytes at every non-alphanumeric position and
//!   in the kept prefix.
//! - Deterministic: the same seed and value give the same placeholder.
//! - It differs from the value at `min(8, n)` or more of the value's `n` alphanumeric positions
//!   after the kept prefix (so at every one of them when `n <= 8`), hence it never equals the
//!   value; since both have the same length, neither is a substring of the other either. (A
//!   value that is nothing but a listed prefix, `sk-`, keeps no prefix.)
//!
//! The difference is obtained by drawing whole candidates (round 0, 1, ...) until one differs
//! enough, which is almost always the first and reveals next to nothing about the value; after
//! [`MAX_ROUNDS`] unlucky rounds (probability below 2⁻⁶⁰⁰), each alphanumeric position still equal
//! to the value is moved to the next character of its class, which always works.
//!
//! A value with no ASCII letter or digit (including the empty value) has no placeholder of its
//! shape that differs from it: [`placeholder`] returns [`PlaceholderError::NoAlphanumeric`], and
//! such a secret cannot be brokered.

/// Vendor prefixes kept at the start of a value (case-sensitive; the longest that matches).
pub const KEPT_PREFIXES: &[&str] = &[
    // GitHub
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    // GitLab
    "glpat-",
    "gldt-",
    "glptt-",
    "glrt-",
    // Package registries
    "npm_",
    "pypi-",
    "dckr_pat_",
    // Slack
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xoxe-",
    "xapp-",
    // Stripe
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "pk_live_",
    "pk_test_",
    "whsec_",
    // AI providers
    "sk-ant-",
    "sk-proj-",
    "sk-",
    "hf_",
    // Cloud
    "AKIA",
    "ASIA",
    "AIza",
    "ya29.",
    "dop_v1_",
    "doo_v1_",
    "shpat_",
    "shpss_",
    "SG.",
];

/// Candidates drawn before falling back to moving equal positions (see the module docs).
pub const MAX_ROUNDS: u32 = 1000;

/// How many alphanumeric positions must differ (all of them when there are fewer).
pub const MIN_DIFFERENT: usize = 8;

/// Why a value has no placeholder. Holds nothing about the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    /// No ASCII letter or digit: every placeholder of the same shape would equal the value.
    #[error(
        "the value has no ASCII letter or digit, so no placeholder of the same shape can differ from it"
    )]
    NoAlphanumeric,
}

/// The placeholder for `value` under `seed` (see the module docs for its guarantees).
pub fn placeholder(value: &str, seed: &[u8; 32]) -> Result<String, PlaceholderError> {
    placeholder_with_rounds(value, seed, MAX_ROUNDS)
}

/// A seed from the operating system's random number generator, for one run.
///
/// # Panics
///
/// When the operating system cannot provide random bytes (on Linux, the `getrandom` system call
/// failing where it exists and `/dev/urandom` being unreadable): there is no safe way to go on.
pub fn fresh_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system's random number generator failed");
    seed
}

/// The class of an ASCII byte: its alphabet, or `None` when the byte is kept.
fn class(b: u8) -> Option<&'static [u8]> {
    match b {
        b'a'..=b'z' => Some(b"abcdefghijklmnopqrstuvwxyz"),
        b'A'..=b'Z' => Some(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        b'0'..=b'9' => Some(b"0123456789"),
        _ => None,
    }
}

fn placeholder_with_rounds(
    value: &str,
    seed: &[u8; 32],
    max_rounds: u32,
) -> Result<String, PlaceholderError> {
    let value = value.as_bytes();
    let alnum = |v: &[u8]| v.iter().filter(|&&b| class(b).is_some()).count();
    let mut keep = kept_prefix(value);
    if alnum(&value[keep..]) == 0 {
        keep = 0;
    }
    let alnum = alnum(&value[keep..]);
    if alnum == 0 {
        return Err(PlaceholderError::NoAlphanumeric);
    }
    let needed = alnum.min(MIN_DIFFERENT);
    let key = absorb(seed, value);
    let mut out = Vec::with_capacity(value.len());
    let mut accepted = false;
    for round in 0..max_rounds {
        draw(value, keep, key, round, &mut out);
        if differing(value, &out) >= needed {
            accepted = true;
            break;
        }
    }
    if !accepted {
        if out.len() != value.len() {
            draw(value, keep, key, 0, &mut out);
        }
        for (o, &v) in out.iter_mut().zip(value).skip(keep) {
            if *o == v
                && let Some(alphabet) = class(v)
            {
                let at = alphabet.iter().position(|&c| c == v).unwrap_or(0);
                *o = alphabet[(at + 1) % alphabet.len()];
            }
        }
    }
    // Only ASCII bytes were replaced, by ASCII bytes, so the result is UTF-8 like the value.
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// Number of positions where `a` and `b` differ.
fn differing(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// Length in bytes of the listed prefix `value` starts with, 0 for none.
fn kept_prefix(value: &[u8]) -> usize {
    KEPT_PREFIXES
        .iter()
        .filter(|p| value.starts_with(p.as_bytes()))
        .map(|p| p.len())
        .max()
        .unwrap_or(0)
}

/// Candidate `round`: every alphanumeric position after the first `keep` bytes drawn from its
/// class, the rest copied.
fn draw(value: &[u8], keep: usize, key: u64, round: u32, out: &mut Vec<u8>) {
    out.clear();
    for (i, &v) in value.iter().enumerate() {
        match class(v).filter(|_| i >= keep) {
            Some(alphabet) => {
                let counter = (u64::from(round) << 32) ^ (i as u64);
                let r = mix(key.wrapping_add(counter.wrapping_add(1).wrapping_mul(GOLDEN)));
                // The bias of `% 26` on 64 bits is below 2⁻⁵⁹.
                out.push(alphabet[(r % alphabet.len() as u64) as usize]);
            }
            None => out.push(v),
        }
    }
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function, a bijection of `u64`.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stream key: the seed folded into a state, then the value's length and bytes absorbed by
/// `state = mix(state ^ block) + GOLDEN`, which is a bijection of the state for each block. With a
/// uniformly random seed the key is uniform whatever the value (see the module docs).
fn absorb(seed: &[u8; 32], value: &[u8]) -> u64 {
    let mut state = 0u64;
    for word in seed.chunks_exact(8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
        state = mix(state ^ w).wrapping_add(GOLDEN);
    }
    state = mix(state ^ value.len() as u64).wrapping_add(GOLDEN);
    for block in value.chunks(8) {
        let mut word = [0u8; 8];
        word[..block.len()].copy_from_slice(block);
        state = mix(state ^ u64::from_le_bytes(word)).wrapping_add(GOLDEN);
        word.fill(0);
        std::hint::black_box(&word);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];

    fn seed(n: u8) -> [u8; 32] {
        let mut s = [0u8; 32];
        for (i, b) in s.iter_mut().enumerate() {
            *b = n.wrapping_mul(31).wrapping_add(i as u8);
        }
        s
    }

    /// Everything the module docs promise, for one value and seed.
    fn check(value: &str, seed: &[u8; 32]) -> String {
        let p = placeholder(value, seed).unwrap();
        assert_eq!(p.len(), value.len());
        let mut keep = kept_prefix(value.as_bytes());
        if !value[keep..].bytes().any(|b| class(b).is_some()) {
            keep = 0;
        }
        assert_eq!(p[..keep], value[..keep]);
        let alnum = value
            .bytes()
            .skip(keep)
            .filter(|&b| class(b).is_some())
            .count();
        for (&v, &q) in value.as_bytes().iter().zip(p.as_bytes()).skip(keep) {
            match class(v) {
                Some(alphabet) => assert!(alphabet.contains(&q), "{value:?} -> {p:?}"),
                None => assert_eq!(v, q, "{value:?} -> {p:?}"),
            }
        }
        assert!(
            differing(value.as_bytes(), p.as_bytes()) >= alnum.min(MIN_DIFFERENT),
            "{value:?} -> {p:?}"
        );
        assert_ne!(p, value);
        assert!(!p.contains(value) && !value.contains(p.as_str()));
        assert_eq!(placeholder(value, seed).unwrap(), p, "deterministic");
        p
    }

    #[test]
    fn keeps_shape_and_prefixes() {
        let value = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
        let p = check(value, &SEED);
        assert!(p.starts_with("ghp_"), "{p}");
        let p = check("npm_abcDEF123-x.y", &SEED);
        assert!(p.starts_with("npm_") && !p.starts_with("npm_abc"), "{p}");
        for prefix in KEPT_PREFIXES {
            let value = format!("{prefix}Ab3dEf6hIj9lMn2pQr5tUv8x");
            let p = check(&value, &SEED);
            assert!(p.starts_with(prefix), "{p}");
        }
        // Longest listed prefix wins; an unlisted leading word is replaced.
        assert!(check("sk-ant-api03-abcdefgh", &SEED).starts_with("sk-ant-"));
        assert!(!check("correct-horse-battery", &SEED).starts_with("correct-"));
        // Nothing but a prefix: nothing is kept.
        let p = check("sk-", &SEED);
        assert!(!p.starts_with("sk-"), "{p}");
        let p = check("AKIA", &SEED);
        assert_ne!(p, "AKIA");
        assert!(p.bytes().all(|b| b.is_ascii_uppercase()));
        let uuid = "123e4567-e89b-12d3-a456-426614174000";
        let p = check(uuid, &SEED);
        assert_eq!(
            p.match_indices('-').map(|(i, _)| i).collect::<Vec<_>>(),
            [8, 13, 18, 23]
        );
        check("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature", &SEED);
    }

    #[test]
    fn non_ascii_and_control_bytes_are_kept() {
        let value = "pässwörd\tÜber-9 ✓x";
        let p = check(value, &SEED);
        for (v, q) in value.chars().zip(p.chars()) {
            if !v.is_ascii_alphanumeric() {
                assert_eq!(v, q);
            }
        }
    }

    #[test]
    fn deterministic_per_seed_and_value_and_different_across_them() {
        let value = "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let a = check(value, &seed(1));
        let b = check(value, &seed(2));
        assert_ne!(a, b, "different seeds");
        // Same shape, same seed, different value: a different placeholder.
        let c = check("ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", &seed(1));
        assert_ne!(a, c);
    }

    #[test]
    fn short_and_degenerate_values() {
        for value in [
            "a", "Z", "0", "9", "-a-", "__1__", "ab", "a1B2", "1234567", "12345678",
        ] {
            for n in 0..50 {
                check(value, &seed(n));
            }
        }
        for value in ["", "-", "--__..", "ü", "✓✓", " \t"] {
            assert_eq!(
                placeholder(value, &SEED),
                Err(PlaceholderError::NoAlphanumeric),
                "{value:?}"
            );
        }
    }

    #[test]
    fn exhaustive_over_all_short_shapes() {
        // Every value of up to three bytes over a sample of each class and a kept byte.
        let alphabet = b"azAZ09-";
        let mut values = vec![String::new()];
        for _ in 0..3 {
            let mut longer = Vec::new();
            for v in &values {
                for &c in alphabet {
                    let mut w = v.clone();
                    w.push(c as char);
                    longer.push(w);
                }
            }
            values.extend(longer);
        }
        values.sort();
        values.dedup();
        for v in &values {
            if v.bytes().any(|b| class(b).is_some()) {
                for n in 0..8 {
                    check(v, &seed(n));
                }
            } else {
                assert_eq!(placeholder(v, &SEED), Err(PlaceholderError::NoAlphanumeric));
            }
        }
    }

    #[test]
    fn eight_or_more_positions_differ() {
        for n in 0..200u8 {
            // All digits is the hardest class: one chance in ten per position to be equal.
            let value = "01234567890123";
            let p = check(value, &seed(n));
            assert!(differing(value.as_bytes(), p.as_bytes()) >= 8);
            let value = "00000000";
            let p = check(value, &seed(n));
            assert!(!p.contains('0'), "all eight differ: {p}");
        }
    }

    #[test]
    fn fallback_moves_equal_positions_when_rounds_run_out() {
        for n in 0..100 {
            for value in [
                "0",
                "00000000",
                "a-b-c",
                "0123456789abcdefABCDEF",
                "ghp_0000",
            ] {
                let p = placeholder_with_rounds(value, &seed(n), 0).unwrap();
                let keep = kept_prefix(value.as_bytes());
                assert_eq!(p[..keep], value[..keep]);
                let alnum = value
                    .bytes()
                    .skip(keep)
                    .filter(|&b| class(b).is_some())
                    .count();
                assert_eq!(p.len(), value.len());
                assert!(differing(value.as_bytes(), p.as_bytes()) >= alnum.min(MIN_DIFFERENT));
                // With rounds 0 the fallback starts from candidate 0 and moves every equal
                // position, so every alphanumeric position differs.
                assert_eq!(differing(value.as_bytes(), p.as_bytes()), alnum);
            }
        }
        // Moving wraps inside the class.
        let p = placeholder_with_rounds("z", &SEED, 0).unwrap();
        assert_ne!(p, "z");
        assert!(p.as_bytes()[0].is_ascii_lowercase());
    }

    #[test]
    fn characters_are_spread_over_their_class() {
        let value = "a".repeat(26 * 200);
        let p = placeholder(&value, &SEED).unwrap();
        let mut counts = [0usize; 26];
        for b in p.bytes() {
            counts[usize::from(b - b'a')] += 1;
        }
        // Expected 200 each; a generous band catches a broken generator, not bad luck.
        assert!(
            counts.iter().all(|&c| (100..=300).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn fresh_seeds_differ() {
        assert_ne!(fresh_seed(), fresh_seed());
    }

    #[test]
    fn errors_show_no_value() {
        let e = placeholder("----", &SEED).unwrap_err();
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains("----"), "{shown}");
        }
    }
}
