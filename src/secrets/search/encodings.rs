//! The forms a secret value is searched in besides itself: base64 (both alphabets, padded or
//! not, and at every byte offset), hex, percent-encoding and base32, and the pairing of a
//! brokered value's forms with its placeholder's.

use crate::secrets::wipe::wipe_vec;

/// Encoded forms shorter than this are left out of [`encodings`]: a two-character base64
/// fragment occurs by chance everywhere, and would mask (or, in the proxy, deny) everything.
pub const MIN_ENCODED_LEN: usize = 4;

pub(in crate::secrets) const BASE64_STD: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub(in crate::secrets) const BASE64_URL: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The forms a value is commonly leaked in, without the value itself, without duplicates and
/// without forms shorter than [`MIN_ENCODED_LEN`]:
/// - base64, standard and URL-safe alphabets, with and without `=` padding;
/// - for each alphabet, the characters that depend only on the value when it is encoded at byte
///   offset 0, 1 or 2 of a larger input (`base64("user:" + token)` in a Basic `Authorization`
///   header holds the token at offset 5, i.e. 2 mod 3);
/// - hex, lower and upper case;
/// - URL (percent) encoding with upper- and lower-case hex digits, and the form encoding that
///   writes a space as `+`; the same as the value when it has no reserved characters, and then
///   left out.
///
/// The egress proxy uses the same list for leak detection.
pub fn encodings(value: &[u8]) -> Vec<Vec<u8>> {
    let mut unique: Vec<Vec<u8>> = Vec::new();
    for form in encodings_in_order(value) {
        if form.len() >= MIN_ENCODED_LEN && form != value && !unique.contains(&form) {
            unique.push(form);
        }
    }
    unique
}

/// The forms [`encodings`] draws from, always the same number in the same order for values of
/// the same length, duplicates and short forms included: the broker pairs a value's forms with
/// its placeholder's by position.
pub(in crate::secrets) fn encodings_in_order(value: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    if value.is_empty() {
        return out;
    }
    for alphabet in [BASE64_STD, BASE64_URL] {
        let padded = base64(value, alphabet, true);
        let unpadded = padded
            .iter()
            .copied()
            .take_while(|&b| b != b'=')
            .collect::<Vec<u8>>();
        out.push(padded);
        out.push(unpadded);
        for shift in 0..3 {
            out.push(base64_core(value, shift, alphabet));
        }
    }
    out.push(hex(value, b"0123456789abcdef"));
    out.push(hex(value, b"0123456789ABCDEF"));
    out.push(percent(value, b"0123456789ABCDEF", false));
    out.push(percent(value, b"0123456789abcdef", false));
    out.push(percent(value, b"0123456789ABCDEF", true));
    out
}

/// Standard base64 with padding (RFC 4648 section 4), as HTTP Basic authentication uses.
pub(crate) fn base64_standard(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    String::from_utf8(base64(input, ALPHABET, true)).expect("base64 is ASCII")
}

pub(in crate::secrets) fn base64(input: &[u8], alphabet: &[u8; 64], pad: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize]);
            } else if pad {
                out.push(b'=');
            }
        }
    }
    out
}

/// The base64 characters fully determined by `value` when it sits at byte offset `shift` (mod 3)
/// of a larger encoded input: character j covers bits [6j, 6j + 6) of the input, and is kept
/// when those bits all belong to the value.
fn base64_core(value: &[u8], shift: usize, alphabet: &[u8; 64]) -> Vec<u8> {
    let mut input = vec![0u8; shift];
    input.extend_from_slice(value);
    let encoded = base64(&input, alphabet, false);
    wipe_vec(&mut input);
    let first = (8 * shift).div_ceil(6);
    let end = (8 * (shift + value.len())) / 6;
    encoded.get(first..end).unwrap_or_default().to_vec()
}

fn hex(value: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    for &b in value {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 15)]);
    }
    out
}

/// RFC 3986 percent-encoding: everything but unreserved characters. `plus_for_space` gives the
/// `application/x-www-form-urlencoded` spelling.
fn percent(value: &[u8], digits: &[u8; 16], plus_for_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b),
            b' ' if plus_for_space => out.push(b'+'),
            _ => {
                out.push(b'%');
                out.push(digits[usize::from(b >> 4)]);
                out.push(digits[usize::from(b & 15)]);
            }
        }
    }
    out
}

/// Base32 (RFC 4648 alphabet, upper and lower case): the unpadded and padded encodings of the
/// value, and for each byte offset mod 5 the characters that depend only on the value when it
/// is encoded inside a larger input. Forms shorter than [`MIN_ENCODED_LEN`] are left out.
pub(in crate::secrets) fn base32_forms(value: &[u8]) -> Vec<Vec<u8>> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let encode = |input: &[u8]| -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len().div_ceil(5) * 8);
        let mut acc: u64 = 0;
        let mut bits = 0;
        for &b in input {
            acc = (acc << 8) | u64::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(ALPHABET[((acc >> bits) & 31) as usize]);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize]);
        }
        out
    };
    let mut forms = Vec::new();
    if value.is_empty() {
        return forms;
    }
    let full = encode(value);
    let mut padded = full.clone();
    while padded.len() % 8 != 0 {
        padded.push(b'=');
    }
    forms.push(full);
    forms.push(padded);
    for shift in 1..5 {
        let mut input = vec![0u8; shift];
        input.extend_from_slice(value);
        let encoded = encode(&input);
        input.fill(0);
        std::hint::black_box(&input);
        let first = (8 * shift).div_ceil(5);
        let end = (8 * (shift + value.len())) / 5;
        forms.push(encoded.get(first..end).unwrap_or_default().to_vec());
    }
    // Shift 0's core is the full encoding without its last, partial character.
    let end = (8 * value.len()) / 5;
    forms.push(forms[0][..end].to_vec());
    let lower: Vec<Vec<u8>> = forms.iter().map(|f| f.to_ascii_lowercase()).collect();
    forms.extend(lower);
    forms.retain(|f| f.len() >= MIN_ENCODED_LEN);
    forms
}

/// Every form a needle is searched in: itself, [`encodings`] and base32.
pub(in crate::secrets) fn forms(needle: &[u8]) -> Vec<Vec<u8>> {
    let mut all = vec![needle.to_vec()];
    all.extend(encodings(needle));
    all.extend(base32_forms(needle));
    all
}

/// A brokered value's forms paired with its placeholder's, position by position: raw, every
/// form [`encodings`] draws from, and base32. The two have the same length and keep their other
/// bytes in the same places, so each pair has the same length too; should one ever not, the
/// value's form is paired with as many `*`. Encoded forms shorter than [`MIN_ENCODED_LEN`] are
/// left out (they occur by chance), and so are forms equal to their placeholder's.
pub(in crate::secrets) fn form_pairs(value: &[u8], placeholder: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = vec![(value.to_vec(), placeholder.to_vec())];
    let encoded = encodings_in_order(value)
        .into_iter()
        .zip(encodings_in_order(placeholder))
        .chain(
            base32_forms(value)
                .into_iter()
                .zip(base32_forms(placeholder)),
        );
    for (from, to) in encoded {
        if from.len() >= MIN_ENCODED_LEN {
            pairs.push((from, to));
        }
    }
    for (from, to) in &mut pairs {
        if from.len() != to.len() {
            wipe_vec(to);
            *to = vec![b'*'; from.len()];
        }
    }
    pairs.retain(|(from, to)| !from.is_empty() && from != to);
    pairs
}
