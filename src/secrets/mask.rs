//! Masking secret values in a step's stdout and stderr, as the bytes stream through.
//!
//! Every occurrence of every value becomes `***`. Occurrences that overlap (two values sharing
//! bytes, or a value and one of its encodings) are masked as one `***` covering all of them, so
//! no byte of any occurrence survives; this also means the longest value at a position wins.
//! Occurrences that merely touch (`TOKENTOKEN`) stay separate: `******`.
//!
//! Every non-empty value is masked, however short; a value of one or two characters will mask
//! ordinary output too and make logs hard to read. That is the price of not leaking it.
//!
//! Matching runs one Knuth-Morris-Pratt automaton per value, so the cost is O(n·k) for n bytes
//! and k values (amortised constant work per byte per value, whatever the input looks like),
//! and at most (longest value − 1) bytes are held back between calls.

use std::collections::VecDeque;

pub use super::search::{MIN_ENCODED_LEN, encodings};
use super::wipe::wipe_vec;

/// What replaces an occurrence.
pub const MASK: &[u8] = b"***";

/// One value and its matching state.
struct Pattern {
    bytes: Vec<u8>,
    /// KMP failure function: `fail[i]` is the length of the longest proper prefix of
    /// `bytes[..=i]` that is also a suffix of it.
    fail: Vec<usize>,
    /// How many bytes of `bytes` the input currently ends with.
    state: usize,
}

impl Pattern {
    fn new(bytes: Vec<u8>) -> Pattern {
        let mut fail = vec![0; bytes.len()];
        let mut k = 0;
        for i in 1..bytes.len() {
            while k > 0 && bytes[i] != bytes[k] {
                k = fail[k - 1];
            }
            if bytes[i] == bytes[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Pattern {
            bytes,
            fail,
            state: 0,
        }
    }

    /// Advance by one input byte; true when the input now ends with the whole value.
    fn step(&mut self, b: u8) -> bool {
        while self.state > 0 && self.bytes[self.state] != b {
            self.state = self.fail[self.state - 1];
        }
        if self.bytes[self.state] == b {
            self.state += 1;
        }
        if self.state == self.bytes.len() {
            self.state = self.fail[self.state - 1];
            return true;
        }
        false
    }
}

/// A streaming masker for one output stream (use one per stream: stdout and stderr interleave
/// arbitrarily). Offsets are counted from the start of the stream.
pub struct Masker {
    patterns: Vec<Pattern>,
    /// Length of the longest value; 0 when there is nothing to mask.
    longest: usize,
    /// Bytes received but not yet emitted; `pending[0]` is at offset `base`.
    pending: VecDeque<u8>,
    base: u64,
    /// Offset just past the last byte received.
    seen: u64,
    /// Occurrences still touching `pending`, merged where they overlap: sorted, disjoint
    /// `[start, end)` ranges. A range starting before `base` has had its `***` emitted already.
    covered: VecDeque<(u64, u64)>,
}

impl Masker {
    /// Mask every non-empty value in `values` (duplicates are fine).
    pub fn new(values: &[&[u8]]) -> Masker {
        let mut unique: Vec<Vec<u8>> = Vec::new();
        for v in values {
            if !v.is_empty() && !unique.iter().any(|u| u == v) {
                unique.push(v.to_vec());
            }
        }
        Masker::from_patterns(unique)
    }

    /// Mask every value and every form [`encodings`] lists for it.
    pub fn with_encodings(values: &[&[u8]]) -> Masker {
        let mut all: Vec<Vec<u8>> = Vec::new();
        for v in values.iter().filter(|v| !v.is_empty()) {
            for form in std::iter::once(v.to_vec()).chain(encodings(v)) {
                if !all.contains(&form) {
                    all.push(form);
                }
            }
        }
        Masker::from_patterns(all)
    }

    fn from_patterns(patterns: Vec<Vec<u8>>) -> Masker {
        Masker {
            longest: patterns.iter().map(Vec::len).max().unwrap_or(0),
            patterns: patterns.into_iter().map(Pattern::new).collect(),
            pending: VecDeque::new(),
            base: 0,
            seen: 0,
            covered: VecDeque::new(),
        }
    }

    /// How many bytes are held back, waiting to see whether a value continues in them.
    pub fn held_back(&self) -> usize {
        self.pending.len()
    }

    /// Take the next bytes of the stream; returns the bytes that can be written out now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.patterns.is_empty() {
            self.seen += chunk.len() as u64;
            self.base = self.seen;
            return chunk.to_vec();
        }
        for &b in chunk {
            self.pending.push_back(b);
            self.seen += 1;
            for p in &mut self.patterns {
                if p.step(b) {
                    let start = self.seen - p.bytes.len() as u64;
                    add_range(&mut self.covered, start, self.seen);
                }
            }
        }
        // An occurrence not yet complete started at most `longest - 1` bytes ago.
        let settled = self.seen.saturating_sub(self.longest as u64 - 1);
        self.emit(settled)
    }

    /// End of stream: returns the bytes held back, masked. The masker starts a new stream
    /// afterwards (a value split across `finish` is not joined).
    pub fn finish(&mut self) -> Vec<u8> {
        let out = self.emit(self.seen);
        for p in &mut self.patterns {
            p.state = 0;
        }
        out
    }

    /// Write out everything before offset `limit`, which no future occurrence can reach.
    fn emit(&mut self, limit: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity((limit - self.base) as usize);
        let mut pos = self.base;
        while pos < limit {
            let index = |at: u64| (at - self.base) as usize;
            match self.covered.front().copied() {
                Some((start, end)) if start <= pos => {
                    if start == pos {
                        out.extend_from_slice(MASK);
                    }
                    pos = end.min(limit);
                    if end <= limit {
                        self.covered.pop_front();
                    }
                }
                next => {
                    let stop = next.map_or(limit, |(start, _)| start.min(limit));
                    out.extend(self.pending.range(index(pos)..index(stop)));
                    pos = stop;
                }
            }
        }
        let done = (limit - self.base) as usize;
        for b in self.pending.range_mut(..done) {
            *b = 0;
        }
        self.pending.drain(..done);
        self.base = limit;
        out
    }
}

/// Add occurrence `[start, end)`, where `end` is at least the end of every range already there:
/// ranges it overlaps are a suffix of the list, merged into it (amortised O(1)).
fn add_range(covered: &mut VecDeque<(u64, u64)>, start: u64, end: u64) {
    let mut start = start;
    while let Some(&(s, e)) = covered.back() {
        if e <= start {
            break;
        }
        start = start.min(s);
        covered.pop_back();
    }
    covered.push_back((start, end));
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("values", &self.patterns.len())
            .field("longest", &self.longest)
            .field("held_back", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Masker {
    fn drop(&mut self) {
        for p in &mut self.patterns {
            wipe_vec(&mut p.bytes);
        }
        for b in self.pending.iter_mut() {
            *b = 0;
        }
        std::hint::black_box(&self.pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::search::{BASE64_STD, BASE64_URL, base64, lcg};

    fn mask_all(values: &[&[u8]], input: &[u8]) -> Vec<u8> {
        let mut m = Masker::new(values);
        let mut out = m.feed(input);
        out.extend(m.finish());
        out
    }

    fn mask_str(values: &[&str], input: &str) -> String {
        let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        String::from_utf8(mask_all(&values, input.as_bytes())).unwrap()
    }

    /// The definition, written the slow way: mark every byte covered by an occurrence, then
    /// replace each run of overlapping occurrences by one `***`.
    fn reference(values: &[&[u8]], input: &[u8]) -> Vec<u8> {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for v in values.iter().filter(|v| !v.is_empty()) {
            for i in 0..input.len() {
                if input[i..].starts_with(v) {
                    ranges.push((i, i + v.len()));
                }
            }
        }
        ranges.sort();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (s, e) in ranges {
            match merged.last_mut() {
                Some(last) if s < last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let mut out = Vec::new();
        let mut pos = 0;
        for (s, e) in merged {
            out.extend_from_slice(&input[pos..s]);
            out.extend_from_slice(MASK);
            pos = e;
        }
        out.extend_from_slice(&input[pos..]);
        out
    }

    #[test]
    fn occurrences_are_replaced() {
        assert_eq!(mask_str(&["hunter2"], "pw=hunter2!"), "pw=***!");
        assert_eq!(mask_str(&["hunter2"], "hunter2"), "***");
        assert_eq!(mask_str(&["hunter2"], "a hunter2 b hunter2"), "a *** b ***");
        assert_eq!(mask_str(&["hunter2"], "hunter"), "hunter");
        assert_eq!(mask_str(&["hunter2"], ""), "");
    }

    #[test]
    fn touching_occurrences_stay_separate_and_overlapping_ones_merge() {
        assert_eq!(mask_str(&["abc"], "abcabc"), "******");
        // `aa` occurs at 0, 1 and 2 of `aaaa`: one overlapping run.
        assert_eq!(mask_str(&["aa"], "aaaa"), "***");
        assert_eq!(mask_str(&["aa"], "aaa-aa"), "***-***");
    }

    #[test]
    fn longest_value_wins_and_overlaps_leave_nothing_behind() {
        assert_eq!(mask_str(&["abc", "abcdef"], "xabcdefx"), "x***x");
        assert_eq!(mask_str(&["abcdef", "abc"], "xabcdefx"), "x***x");
        // Leftmost-longest would print `gh` here, the tail of the second value.
        assert_eq!(mask_str(&["abcdef", "cdefgh"], "abcdefgh"), "***");
        assert_eq!(mask_str(&["def", "abcdefgh"], "abcdefgh def"), "*** ***");
    }

    #[test]
    fn empty_and_duplicate_values_are_ignored() {
        let mut m = Masker::new(&[b"", b"", b"xyz", b"xyz"]);
        assert_eq!(m.patterns.len(), 1);
        assert_eq!(m.feed(b"axyzb"), b"a***");
        assert_eq!(m.finish(), b"b");
        let mut none = Masker::new(&[b""]);
        assert_eq!(none.feed(b"anything"), b"anything");
        assert_eq!(none.held_back(), 0);
        assert_eq!(none.finish(), b"");
    }

    #[test]
    fn single_byte_values_mask_every_occurrence() {
        assert_eq!(mask_str(&["x"], "axbxxc"), "a***b******c");
    }

    #[test]
    fn holds_back_at_most_longest_minus_one() {
        let mut m = Masker::new(&[b"secret", b"pw"]);
        for &b in b"this is not the secret, nor is it pw, secre" {
            m.feed(&[b]);
            assert!(m.held_back() <= 5, "{}", m.held_back());
        }
        assert_eq!(m.finish(), b"secre");
        assert_eq!(m.held_back(), 0);
    }

    #[test]
    fn a_value_split_across_feeds_is_masked_at_every_split() {
        let values: [&[u8]; 3] = [b"s3cr3t-t0ken", b"tok", b"aXa"];
        let input = b"pre s3cr3t-t0ken mid aXaXa tok s3cr3t-t0kens3cr3t-t0ken end";
        let expected = reference(&values, input);
        assert_eq!(mask_all(&values, input), expected);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let mut m = Masker::new(&values);
                let mut out = m.feed(&input[..i]);
                out.extend(m.feed(&input[i..j]));
                out.extend(m.feed(&input[j..]));
                out.extend(m.finish());
                assert_eq!(out, expected, "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn finish_starts_a_new_stream() {
        let mut m = Masker::new(&[b"secret"]);
        let mut out = m.feed(b"sec");
        out.extend(m.finish());
        out.extend(m.feed(b"ret secret"));
        out.extend(m.finish());
        assert_eq!(out, b"secret ***");
    }

    #[test]
    fn agrees_with_the_reference_on_random_inputs_and_chunkings() {
        let mut seed = 7;
        for _ in 0..400 {
            let nvalues = 1 + lcg(&mut seed) % 4;
            let values: Vec<Vec<u8>> = (0..nvalues)
                .map(|_| {
                    let len = 1 + lcg(&mut seed) % 6;
                    (0..len)
                        .map(|_| b"ab"[(lcg(&mut seed) % 2) as usize])
                        .collect()
                })
                .collect();
            let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let len = lcg(&mut seed) % 80;
            let input: Vec<u8> = (0..len)
                .map(|_| b"abc"[(lcg(&mut seed) % 3) as usize])
                .collect();
            let expected = reference(&values, &input);
            let mut m = Masker::new(&values);
            let mut out = Vec::new();
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let n = (1 + lcg(&mut seed) % 7).min(rest.len() as u64) as usize;
                out.extend(m.feed(&rest[..n]));
                rest = &rest[n..];
            }
            out.extend(m.finish());
            assert_eq!(
                out,
                expected,
                "values {:?} input {:?}",
                values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v))
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn adversarial_repetitive_input_stays_linear() {
        // The input KMP is worst for: almost-matches all the way.
        let value = [b"a".repeat(999), b"b".to_vec()].concat();
        let input = b"a".repeat(2_000_000);
        let start = std::time::Instant::now();
        let out = mask_all(&[&value], &input);
        assert_eq!(out, input);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b"", BASE64_STD, true), b"");
        assert_eq!(base64(b"f", BASE64_STD, true), b"Zg==");
        assert_eq!(base64(b"fo", BASE64_STD, true), b"Zm8=");
        assert_eq!(base64(b"foo", BASE64_STD, true), b"Zm9v");
        assert_eq!(base64(b"foobar", BASE64_STD, true), b"Zm9vYmFy");
        assert_eq!(base64(b"fooba", BASE64_STD, false), b"Zm9vYmE");
        assert_eq!(base64(&[0xfb, 0xff], BASE64_STD, true), b"+/8=");
        assert_eq!(base64(&[0xfb, 0xff], BASE64_URL, true), b"-_8=");
    }

    #[test]
    fn encodings_list_every_form_once() {
        let forms = encodings(b"hello world");
        let has = |f: &[u8]| forms.iter().any(|x| x == f);
        for f in [
            &b"aGVsbG8gd29ybGQ="[..],
            b"aGVsbG8gd29ybGQ",
            b"68656c6c6f20776f726c64",
            b"68656C6C6F20776F726C64",
            b"hello%20world",
            b"hello+world",
        ] {
            assert!(has(f), "{}", String::from_utf8_lossy(f));
        }
        let mut sorted = forms.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), forms.len(), "no duplicates");
        assert!(!has(b"hello world"), "the value itself is not an encoding");
        assert!(forms.iter().all(|f| f.len() >= MIN_ENCODED_LEN));
        // Percent-encoding differs only in hex case when there are reserved bytes.
        let forms = encodings(b"a/b?c=d");
        assert!(forms.iter().any(|f| f == b"a%2Fb%3Fc%3Dd"));
        assert!(forms.iter().any(|f| f == b"a%2fb%3fc%3dd"));
        // Nothing reserved: the URL form is the value, and is left out.
        assert!(
            !encodings(b"plain_token")
                .iter()
                .any(|f| f == b"plain_token")
        );
        assert!(encodings(b"").is_empty());
    }

    #[test]
    fn shifted_base64_cores_are_found_inside_any_larger_encoding() {
        let value = b"ghp_16C7e42F292c6912E7710c838347Ae178B4a";
        let forms = encodings(value);
        for prefix_len in 0..7 {
            for suffix_len in 0..4 {
                let input = [
                    vec![b'x'; prefix_len],
                    value.to_vec(),
                    vec![b'y'; suffix_len],
                ]
                .concat();
                for alphabet in [BASE64_STD, BASE64_URL] {
                    for pad in [true, false] {
                        let encoded = base64(&input, alphabet, pad);
                        assert!(
                            forms
                                .iter()
                                .any(|f| encoded.windows(f.len()).any(|w| w == f)),
                            "prefix {prefix_len} suffix {suffix_len}"
                        );
                    }
                }
            }
        }
        // The Basic auth header case, end to end through the masker.
        let header = [
            b"Authorization: Basic ".to_vec(),
            base64(
                &[b"user:".to_vec(), value.to_vec()].concat(),
                BASE64_STD,
                true,
            ),
        ]
        .concat();
        let masked = {
            let mut m = Masker::with_encodings(&[value]);
            let mut out = m.feed(&header);
            out.extend(m.finish());
            out
        };
        assert!(masked.starts_with(b"Authorization: Basic "));
        assert!(
            masked.windows(3).any(|w| w == MASK),
            "{}",
            String::from_utf8_lossy(&masked)
        );
        // What survives is the `user:` part and edge characters, not the token's encoding.
        assert!(masked.len() < header.len() - 40);
    }

    #[test]
    fn with_encodings_masks_each_form() {
        let value = b"s3cr3t value/+";
        let forms = encodings(value);
        for form in std::iter::once(value.to_vec()).chain(forms) {
            let input = [b"<".to_vec(), form.clone(), b">".to_vec()].concat();
            let mut m = Masker::with_encodings(&[value]);
            let mut out = m.feed(&input);
            out.extend(m.finish());
            assert_eq!(out, b"<***>", "{}", String::from_utf8_lossy(&form));
        }
    }

    #[test]
    fn debug_shows_no_values() {
        let m = Masker::with_encodings(&[b"SENTINEL-9f2c"]);
        let shown = format!("{m:?}");
        assert!(!shown.contains("SENTINEL"), "{shown}");
        assert!(shown.contains("values"), "{shown}");
    }
}
