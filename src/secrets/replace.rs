//! Swapping placeholders for real values in an intercepted request, as the bytes stream through.
//!
//! Each pair is `(from, to)`: a placeholder and the real value, of equal length, so that a
//! `Content-Length` computed by the step stays right. Matching is leftmost-longest and
//! non-overlapping: scanning from the start, at each position the longest `from` that begins
//! there is replaced and scanning resumes after it; bytes of the output that came from a `to`
//! are never matched again.
//!
//! One Aho-Corasick automaton (see `leak.rs`) finds the occurrences in linear time. The stream
//! holds back only bytes that may still be the start of an occurrence, never more than the
//! longest `from` − 1.

use std::collections::VecDeque;
use std::sync::Arc;

use super::search::Automaton;
use super::wipe::wipe_vec;

/// Why a set of pairs is refused. Holds indices and lengths, never bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplaceError {
    /// `from` and `to` differ in length, which would change the message's length.
    #[error("replacement {index}: the placeholder is {from_len} bytes but the value {to_len}")]
    LengthMismatch {
        index: usize,
        from_len: usize,
        to_len: usize,
    },
    /// An empty `from` matches everywhere.
    #[error("replacement {index}: the placeholder is empty")]
    Empty { index: usize },
    /// The same `from` twice with different `to`s.
    #[error("replacements {first} and {index} have the same placeholder but different values")]
    Conflict { first: usize, index: usize },
}

struct Table {
    automaton: Automaton,
    /// Pattern id → replacement.
    to: Vec<Vec<u8>>,
    /// Pattern id → index of its pair in the list given to [`Replacer::new`].
    index: Vec<usize>,
}

impl Drop for Table {
    fn drop(&mut self) {
        for v in &mut self.to {
            wipe_vec(v);
        }
    }
}

/// Where a stream stands between calls.
#[derive(Default)]
struct Stream {
    state: u32,
    /// Bytes read and not yet written, starting at offset `base` of the stream.
    pending: VecDeque<u8>,
    /// For each pending byte, the longest pattern found starting there (id + 1, 0 for none).
    best: VecDeque<u32>,
    /// Offset of `pending[0]`.
    base: u64,
    /// Bytes read.
    seen: u64,
    /// Pattern ids replaced since the caller last asked.
    hits: Vec<u32>,
}

/// Replaces placeholders by values in one stream (see the module docs).
///
/// `Debug` shows counts only. The real values are zeroed when the last replacer sharing them is
/// dropped (best effort, see `wipe.rs`).
pub struct Replacer {
    table: Arc<Table>,
    stream: Stream,
}

impl Replacer {
    /// A replacer for `pairs` of `(placeholder, value)`, which must have equal lengths and
    /// non-empty placeholders. A pair repeated exactly is accepted once; the same placeholder
    /// with a different value is an error.
    pub fn new(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Replacer, ReplaceError> {
        let mut automaton = Automaton::new();
        let mut to: Vec<Vec<u8>> = Vec::new();
        let mut first_index: Vec<usize> = Vec::new();
        let mut error = None;
        for (index, (mut from, mut value)) in pairs.into_iter().enumerate() {
            if error.is_none() {
                if from.is_empty() {
                    error = Some(ReplaceError::Empty { index });
                } else if from.len() != value.len() {
                    error = Some(ReplaceError::LengthMismatch {
                        index,
                        from_len: from.len(),
                        to_len: value.len(),
                    });
                } else {
                    match automaton.insert(&from) {
                        Ok(_) => {
                            to.push(std::mem::take(&mut value));
                            first_index.push(index);
                        }
                        Err(id) if to[id as usize] == value => {}
                        Err(id) => {
                            error = Some(ReplaceError::Conflict {
                                first: first_index[id as usize],
                                index,
                            });
                        }
                    }
                }
            }
            wipe_vec(&mut from);
            wipe_vec(&mut value);
        }
        automaton.build();
        let table = Table {
            automaton,
            to,
            index: first_index,
        };
        match error {
            Some(e) => Err(e),
            None => Ok(Replacer {
                table: Arc::new(table),
                stream: Stream::default(),
            }),
        }
    }

    /// A replacer with the same pairs and a new, empty stream (the pairs are shared, not copied).
    pub fn new_stream(&self) -> Replacer {
        Replacer {
            table: Arc::clone(&self.table),
            stream: Stream::default(),
        }
    }

    /// Read `chunk`; returns the output that is settled (all of it but at most the longest
    /// placeholder − 1 bytes, which may be the start of a placeholder).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + self.stream.pending.len());
        run(&self.table, &mut self.stream, chunk, false, &mut out);
        out
    }

    /// End of stream: returns the bytes held back, replaced. The replacer starts a new stream
    /// afterwards.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.stream.pending.len());
        run(&self.table, &mut self.stream, &[], true, &mut out);
        let hits = std::mem::take(&mut self.stream.hits);
        self.stream = Stream {
            hits,
            ..Stream::default()
        };
        out
    }

    /// The indices (in the list given to [`Replacer::new`]) of the pairs replaced in the
    /// output returned since the last call, each once, in increasing order.
    pub fn take_replaced(&mut self) -> Vec<usize> {
        let hits = std::mem::take(&mut self.stream.hits);
        pair_indices(&self.table, hits)
    }

    /// [`Replacer::replace_all`], also returning the indices of the pairs replaced (each once,
    /// in increasing order).
    pub fn replace_all_counting(&self, data: &[u8]) -> (Vec<u8>, Vec<usize>) {
        let mut stream = Stream::default();
        let mut out = Vec::with_capacity(data.len());
        run(&self.table, &mut stream, data, true, &mut out);
        (out, pair_indices(&self.table, stream.hits))
    }

    /// Bytes read but not yet returned.
    pub fn held_back(&self) -> usize {
        self.stream.pending.len()
    }

    /// Replace in one buffer, independently of (and without touching) this replacer's stream.
    pub fn replace_all(&self, data: &[u8]) -> Vec<u8> {
        let mut stream = Stream::default();
        let mut out = Vec::with_capacity(data.len());
        run(&self.table, &mut stream, data, true, &mut out);
        out
    }
}

fn pair_indices(table: &Table, hits: Vec<u32>) -> Vec<usize> {
    let mut out: Vec<usize> = hits.iter().map(|&id| table.index[id as usize]).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Read `input`, then write every position that is decided (all of them when `end`).
fn run(table: &Table, s: &mut Stream, input: &[u8], end: bool, out: &mut Vec<u8>) {
    let ac = &table.automaton;
    let longest = ac.longest() as u64;
    for &b in input {
        s.pending.push_back(b);
        s.best.push_back(0);
        s.seen += 1;
        s.state = ac.next(s.state, b);
        for id in ac.matches(s.state) {
            let len = ac.pattern_len(id) as u64;
            let start = s.seen - len;
            // Occurrences starting before `base` overlap one already replaced, or began at a
            // position already decided (which cannot happen, see `decided`).
            if start >= s.base {
                let slot = &mut s.best[(start - s.base) as usize];
                if *slot == 0 || ac.pattern_len(*slot - 1) < len as usize {
                    *slot = id + 1;
                }
            }
        }
        decide(table, s, false, longest, out);
    }
    decide(table, s, end, longest, out);
}

/// Write out pending positions while the one in front is decided: every occurrence that starts
/// there has been seen, because the stream has read `longest` bytes past it, or because no
/// occurrence still in progress reaches back to it (the automaton's depth is the length of the
/// longest suffix read that is a prefix of some pattern).
fn decide(table: &Table, s: &mut Stream, end: bool, longest: u64, out: &mut Vec<u8>) {
    let ac = &table.automaton;
    let open = s.seen - ac.depth(s.state) as u64;
    while let Some(&best) = s.best.front() {
        let decided = end || s.seen - s.base >= longest || s.base < open;
        if !decided {
            break;
        }
        if best == 0 {
            out.push(s.pending.pop_front().unwrap_or_default());
            s.best.pop_front();
            s.base += 1;
        } else {
            let len = ac.pattern_len(best - 1);
            out.extend_from_slice(&table.to[(best - 1) as usize]);
            if !s.hits.contains(&(best - 1)) {
                s.hits.push(best - 1);
            }
            for b in s.pending.range_mut(..len) {
                *b = 0;
            }
            s.pending.drain(..len);
            s.best.drain(..len);
            s.base += len as u64;
        }
    }
}

impl std::fmt::Debug for Replacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replacer")
            .field("pairs", &self.table.to.len())
            .field("longest", &self.table.automaton.longest())
            .field("held_back", &self.stream.pending.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::search::lcg;

    fn pairs(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        list.iter()
            .map(|(f, t)| (f.as_bytes().to_vec(), t.as_bytes().to_vec()))
            .collect()
    }

    fn replacer(list: &[(&str, &str)]) -> Replacer {
        Replacer::new(pairs(list)).unwrap()
    }

    fn one_shot(list: &[(&str, &str)], input: &str) -> String {
        String::from_utf8(replacer(list).replace_all(input.as_bytes())).unwrap()
    }

    /// The definition, the slow way.
    fn reference(list: &[(Vec<u8>, Vec<u8>)], input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            let best = list
                .iter()
                .filter(|(f, _)| input[i..].starts_with(f))
                .max_by_key(|(f, _)| f.len());
            match best {
                Some((f, t)) => {
                    out.extend_from_slice(t);
                    i += f.len();
                }
                None => {
                    out.push(input[i]);
                    i += 1;
                }
            }
        }
        out
    }

    fn chunked(r: &mut Replacer, input: &[u8], sizes: &mut dyn FnMut() -> usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = sizes().clamp(1, rest.len());
            out.extend(r.feed(&rest[..n]));
            rest = &rest[n..];
        }
        out.extend(r.finish());
        out
    }

    #[test]
    fn replaces_in_request_lines_headers_and_bodies() {
        let list = [("PLACEHOLDER_x1", "real-secret-99")];
        assert_eq!(
            one_shot(
                &list,
                "GET /?t=PLACEHOLDER_x1 HTTP/1.1\r\nAuthorization: Bearer PLACEHOLDER_x1\r\n"
            ),
            "GET /?t=real-secret-99 HTTP/1.1\r\nAuthorization: Bearer real-secret-99\r\n"
        );
        assert_eq!(one_shot(&list, "PLACEHOLDER_x1"), "real-secret-99");
        assert_eq!(one_shot(&list, "PLACEHOLDER_x"), "PLACEHOLDER_x");
        assert_eq!(one_shot(&list, ""), "");
        assert_eq!(
            one_shot(&list, "PLACEHOLDER_x1PLACEHOLDER_x1"),
            "real-secret-99real-secret-99"
        );
    }

    #[test]
    fn output_length_equals_input_length() {
        let list = [("abc", "XYZ"), ("zzzzzz", "123456")];
        for input in ["abcabc zzzzzzz ab", "", "zzabczz"] {
            assert_eq!(one_shot(&list, input).len(), input.len());
        }
    }

    #[test]
    fn leftmost_longest_and_no_rematching_of_output() {
        let list = [("abc", "111"), ("abcdef", "222222"), ("cdefgh", "333333")];
        assert_eq!(one_shot(&list, "abcdefgh"), "222222gh");
        assert_eq!(one_shot(&list, "xabcx"), "x111x");
        assert_eq!(one_shot(&list, "xcdefghabc"), "x333333111");
        // `to` bytes are not matched again.
        assert_eq!(one_shot(&[("ab", "ba")], "aab"), "aba");
        assert_eq!(one_shot(&[("aa", "bb")], "aaa"), "bba");
        assert_eq!(one_shot(&[("aa", "bb")], "aaaa"), "bbbb");
    }

    #[test]
    fn invalid_pairs_are_refused_without_showing_bytes() {
        let e = Replacer::new(pairs(&[("ok", "OK"), ("short", "longer-secret")])).unwrap_err();
        assert_eq!(
            e,
            ReplaceError::LengthMismatch {
                index: 1,
                from_len: 5,
                to_len: 13
            }
        );
        assert!(!e.to_string().contains("longer-secret"));
        assert!(!format!("{e:?}").contains("longer-secret"));
        assert_eq!(
            Replacer::new(pairs(&[("", "")])).unwrap_err(),
            ReplaceError::Empty { index: 0 }
        );
        assert_eq!(
            Replacer::new(pairs(&[("p1", "v1"), ("x", "y"), ("p1", "v2")])).unwrap_err(),
            ReplaceError::Conflict { first: 0, index: 2 }
        );
        // An exact repeat is fine.
        let r = Replacer::new(pairs(&[("p1", "v1"), ("p1", "v1")])).unwrap();
        assert_eq!(r.replace_all(b"p1"), b"v1");
        // No pairs: the identity.
        let mut none = Replacer::new(Vec::new()).unwrap();
        assert_eq!(none.feed(b"abc"), b"abc");
        assert_eq!(none.held_back(), 0);
        assert_eq!(none.finish(), b"");
    }

    #[test]
    fn every_split_point_gives_the_one_shot_result() {
        let list = pairs(&[
            ("ghp_Xq9Lm20Pz8r5", "ghp_16C7e42F292c"),
            ("tok", "TOK"),
            ("aXa", "bYb"),
        ]);
        let input =
            b"pre ghp_Xq9Lm20Pz8r5 mid aXaXa tok ghp_Xq9Lm20Pz8r5ghp_Xq9Lm20Pz8r5 ghp_Xq9L end";
        let r = Replacer::new(list.clone()).unwrap();
        let expected = reference(&list, input);
        assert_eq!(r.replace_all(input), expected);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let mut s = r.new_stream();
                let mut out = s.feed(&input[..i]);
                out.extend(s.feed(&input[i..j]));
                out.extend(s.feed(&input[j..]));
                out.extend(s.finish());
                assert_eq!(out, expected, "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn holds_back_at_most_longest_minus_one_and_only_what_may_match() {
        let mut r = replacer(&[("secret", "SECRET"), ("pw", "PW")]);
        for &b in b"this is not the secret, nor is it pw, secre" {
            r.feed(&[b]);
            assert!(r.held_back() <= 5, "{}", r.held_back());
        }
        assert_eq!(r.held_back(), 5);
        assert_eq!(r.finish(), b"secre");
        assert_eq!(r.held_back(), 0);
        // Bytes that cannot start a placeholder are not held back.
        assert_eq!(r.feed(b"xyz"), b"xyz");
        assert_eq!(r.feed(b"sec"), b"");
        assert_eq!(r.feed(b"x"), b"secx");
    }

    #[test]
    fn finish_starts_a_new_stream_and_replace_all_leaves_the_stream_alone() {
        let mut r = replacer(&[("secret", "SECRET")]);
        let mut out = r.feed(b"sec");
        assert_eq!(r.replace_all(b"a secret"), b"a SECRET");
        out.extend(r.feed(b"ret"));
        out.extend(r.finish());
        out.extend(r.feed(b"ret secret"));
        out.extend(r.finish());
        assert_eq!(out, b"SECRETret SECRET");
    }

    #[test]
    fn agrees_with_the_reference_on_random_inputs_and_chunkings() {
        let mut seed = 3;
        for _ in 0..500 {
            let mut list: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            for _ in 0..1 + lcg(&mut seed) % 4 {
                let len = 1 + lcg(&mut seed) % 6;
                let from: Vec<u8> = (0..len)
                    .map(|_| b"ab"[(lcg(&mut seed) % 2) as usize])
                    .collect();
                if list.iter().any(|(f, _)| *f == from) {
                    continue;
                }
                let to = (0..len)
                    .map(|_| b"XYZ"[(lcg(&mut seed) % 3) as usize])
                    .collect();
                list.push((from, to));
            }
            let input: Vec<u8> = (0..lcg(&mut seed) % 80)
                .map(|_| b"abc"[(lcg(&mut seed) % 3) as usize])
                .collect();
            let expected = reference(&list, &input);
            let mut r = Replacer::new(list.clone()).unwrap();
            assert_eq!(r.replace_all(&input), expected);
            let longest = list.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
            let mut out = Vec::new();
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let n = (1 + lcg(&mut seed) % 7).min(rest.len() as u64) as usize;
                out.extend(r.feed(&rest[..n]));
                assert!(r.held_back() < longest.max(1));
                rest = &rest[n..];
            }
            out.extend(r.finish());
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn one_megabyte_in_one_byte_chunks_equals_one_shot() {
        let list = pairs(&[
            (
                "ghp_Xq9Lm20Pz8r5301Kq4468t771236Bw512H7m",
                "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            ),
            ("npm_Qz81aBcD", "npm_realVal1"),
            ("aaaaaaab", "zzzzzzzy"),
        ]);
        let mut seed = 5;
        let mut input = Vec::with_capacity(1 << 20);
        while input.len() < 1 << 20 {
            match lcg(&mut seed) % 8 {
                0 => input.extend_from_slice(&list[0].0),
                1 => input.extend_from_slice(&list[1].0[..(lcg(&mut seed) % 12) as usize]),
                2 => input.extend_from_slice(&b"aaaaaaaaaaaaab"[..(lcg(&mut seed) % 14) as usize]),
                3 => input.extend_from_slice(&list[1].0),
                _ => input.extend(
                    (0..lcg(&mut seed) % 40).map(|_| b"abgh_p "[(lcg(&mut seed) % 7) as usize]),
                ),
            }
        }
        input.truncate(1 << 20);
        let r = Replacer::new(list.clone()).unwrap();
        let expected = r.replace_all(&input);
        assert_eq!(expected.len(), input.len());
        assert_ne!(expected, input);
        let mut s = r.new_stream();
        let out = chunked(&mut s, &input, &mut || 1);
        assert_eq!(out, expected);
        let out = chunked(&mut s, &input, &mut || (lcg(&mut seed) % 5000) as usize);
        assert_eq!(out, expected);
        // And the slow definition agrees on a prefix.
        assert_eq!(
            reference(&list, &input[..50_000]),
            r.replace_all(&input[..50_000])
        );
    }

    #[test]
    fn linear_on_adversarial_input() {
        let from = [b"a".repeat(999), b"b".to_vec()].concat();
        let to = vec![b'z'; 1000];
        let mut r = Replacer::new(vec![(from, to)]).unwrap();
        let input = b"a".repeat(2_000_000);
        let start = std::time::Instant::now();
        let out = chunked(&mut r, &input, &mut || 4096);
        assert_eq!(out, input);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn reports_which_pairs_were_replaced_across_chunks() {
        let mut r = replacer(&[("secret", "SECRET"), ("pw", "PW"), ("secret", "SECRET")]);
        let (out, hits) = r.replace_all_counting(b"a pw and a secret");
        assert_eq!(
            (out.as_slice(), hits),
            (&b"a PW and a SECRET"[..], vec![0, 1])
        );
        assert_eq!(r.feed(b"no match, sec"), b"no match, ");
        assert!(r.take_replaced().is_empty());
        // The occurrence completes in the next chunk: reported once its output is returned.
        assert_eq!(r.feed(b"ret and p"), b"SECRET and ");
        assert_eq!(r.take_replaced(), [0]);
        assert_eq!(r.finish(), b"p");
        assert!(r.take_replaced().is_empty());
        r.feed(b"p");
        assert_eq!(r.finish(), b"p");
        r.feed(b"pw");
        assert_eq!(r.finish(), b"PW");
        assert_eq!(r.take_replaced(), [1]);
    }

    #[test]
    fn debug_shows_counts_only() {
        let r = replacer(&[("PLACEHOLDER_x1", "real-secret-99")]);
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("PLACEHOLDER") && !shown.contains("real-secret"),
            "{shown}"
        );
        assert!(shown.contains("pairs: 1"), "{shown}");
    }
}
