//! Taking brokered values back out of what an intercepted host answers.
//!
//! The proxy writes a brokered secret's real value into requests to the hosts it is bound to. A
//! host that echoes its input (an error message quoting a header, a stored issue body read back,
//! an "echo" endpoint) would hand the value to the step, which was promised never to hold it.
//! So every response from an intercepted host passes through a [`Reflection`]: each brokered
//! value, raw and in every form leak detection knows (see `leak.rs`), is replaced by the same
//! form of its placeholder. Pairs have equal lengths, so a `Content-Length` stays right.
//!
//! Matching is a [`Replacer`] (one automaton over all forms), so a value split across body
//! chunks is found; at most the longest form − 1 bytes are held back between chunks.
//!
//! What it cannot see: a value the host transforms in any other way (reverses, hashes,
//! re-encodes in an alphabet not listed) or returns a piece at a time across responses.

use super::replace::{ReplaceError, Replacer};
use super::search::form_pairs;

/// Replaces brokered values by their placeholders in one stream (see the module docs).
///
/// `Debug` shows the names only.
pub struct Reflection {
    replacer: Replacer,
    /// Pair index → index in `names`.
    owner: std::sync::Arc<Vec<usize>>,
    names: std::sync::Arc<Vec<String>>,
}

impl Reflection {
    /// One entry per brokered secret: its name, real value and placeholder. A form shared by
    /// two secrets (two secrets with the same value) is put back as the first one's.
    pub fn new(secrets: &[(&str, &[u8], &[u8])]) -> Result<Reflection, ReplaceError> {
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut owner = Vec::new();
        for (index, (_, value, placeholder)) in secrets.iter().enumerate() {
            for (from, to) in form_pairs(value, placeholder) {
                // Replacer refuses one `from` with two `to`s: the first pair wins.
                if pairs.iter().any(|(f, _)| *f == from) {
                    continue;
                }
                pairs.push((from, to));
                owner.push(index);
            }
        }
        Ok(Reflection {
            replacer: Replacer::new(pairs)?,
            owner: std::sync::Arc::new(owner),
            names: std::sync::Arc::new(secrets.iter().map(|(n, _, _)| n.to_string()).collect()),
        })
    }

    /// True when there is nothing to replace (no brokered secrets).
    pub fn is_empty(&self) -> bool {
        self.owner.is_empty()
    }

    /// A reflection with the same tables and a new, empty stream.
    pub fn new_stream(&self) -> Reflection {
        Reflection {
            replacer: self.replacer.new_stream(),
            owner: self.owner.clone(),
            names: self.names.clone(),
        }
    }

    /// Read `chunk`; returns the output that is settled.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.replacer.feed(chunk)
    }

    /// End of stream: the bytes held back. The stream starts afresh afterwards.
    pub fn finish(&mut self) -> Vec<u8> {
        self.replacer.finish()
    }

    /// Names of the secrets replaced in the output returned since the last call.
    pub fn take_found(&mut self) -> Vec<String> {
        let hits = self.replacer.take_replaced();
        self.names_of(&hits)
    }

    /// Replace in one buffer (a header value), independently of the stream; returns the
    /// output and the names of the secrets replaced.
    pub fn scrub(&self, data: &[u8]) -> (Vec<u8>, Vec<String>) {
        let (out, hits) = self.replacer.replace_all_counting(data);
        (out, self.names_of(&hits))
    }

    fn names_of(&self, hits: &[usize]) -> Vec<String> {
        let mut owners: Vec<usize> = hits.iter().map(|&i| self.owner[i]).collect();
        owners.sort_unstable();
        owners.dedup();
        owners.into_iter().map(|i| self.names[i].clone()).collect()
    }
}

impl std::fmt::Debug for Reflection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reflection")
            .field("secrets", &self.names)
            .field("forms", &self.owner.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::search::encodings;

    const VALUE: &[u8] = b"ghp_Rt7kLm29QpXz81VbNc4WdY6hJ+/x";
    const HOLDER: &[u8] = b"ghp_Ab3cDe45FgHi67JkLm8NoP9qR+/y";

    fn reflection() -> Reflection {
        Reflection::new(&[
            ("GH_TOKEN", VALUE, HOLDER),
            ("OTHER", b"s3cr3t-Value", b"a1b2c3-Dxxxx"),
        ])
        .unwrap()
    }

    fn stream(r: &mut Reflection, input: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = input;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].clamp(1, rest.len());
            out.extend(r.feed(&rest[..n]));
            rest = &rest[n..];
            i += 1;
        }
        out.extend(r.finish());
        out
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn raw_and_encoded_values_become_the_placeholders_forms() {
        let r = reflection();
        let mut input = b"{\"echo\": \"Bearer ".to_vec();
        input.extend_from_slice(VALUE);
        input.extend_from_slice(b"\", \"b64\": \"");
        let b64 = &encodings(VALUE)[0];
        input.extend_from_slice(b64);
        input.extend_from_slice(b"\", \"hex\": \"");
        input.extend(VALUE.iter().flat_map(|b| format!("{b:02X}").into_bytes()));
        input.extend_from_slice(b"\", \"url\": \"");
        input.extend_from_slice(b"ghp_Rt7kLm29QpXz81VbNc4WdY6hJ%2B%2Fx\"}");
        let (out, found) = r.scrub(&input);
        assert_eq!(out.len(), input.len());
        assert_eq!(found, ["GH_TOKEN"]);
        for form in std::iter::once(VALUE.to_vec()).chain(encodings(VALUE)) {
            assert!(!contains(&out, &form), "{}", String::from_utf8_lossy(&out));
        }
        assert!(contains(&out, HOLDER));
        assert!(contains(&out, &encodings(HOLDER)[0]));
        assert!(contains(&out, b"ghp_Ab3cDe45FgHi67JkLm8NoP9qR%2B%2Fy"));
        // Nothing to replace: unchanged, nothing found.
        assert_eq!(r.scrub(b"plain text"), (b"plain text".to_vec(), vec![]));
    }

    #[test]
    fn a_value_split_at_every_point_of_a_stream_is_replaced() {
        let r = reflection();
        let mut input = b"prefix ".to_vec();
        input.extend_from_slice(VALUE);
        input.extend_from_slice(b" middle s3cr3t-Value ");
        input.extend_from_slice(&encodings(VALUE)[1]);
        input.extend_from_slice(b" end ghp_Rt7kLm");
        let (expected, _) = r.scrub(&input);
        assert!(!contains(&expected, VALUE));
        assert!(!contains(&expected, b"s3cr3t-Value"));
        for i in 0..=input.len() {
            for j in (i..=input.len()).step_by(3) {
                let mut s = r.new_stream();
                let mut out = s.feed(&input[..i]);
                out.extend(s.feed(&input[i..j]));
                out.extend(s.feed(&input[j..]));
                out.extend(s.finish());
                assert_eq!(out, expected, "split at {i} and {j}");
                assert_eq!(
                    s.take_found(),
                    ["GH_TOKEN", "OTHER"],
                    "split at {i} and {j}"
                );
                assert!(s.take_found().is_empty());
            }
        }
        for sizes in [&[1][..], &[2, 7], &[4096]] {
            let mut s = r.new_stream();
            assert_eq!(stream(&mut s, &input, sizes), expected);
        }
    }

    #[test]
    fn a_large_body_in_small_chunks_equals_one_shot() {
        let r = reflection();
        let mut input = Vec::with_capacity(1 << 20);
        let mut i = 0u32;
        while input.len() < 1 << 20 {
            i += 1;
            match i % 5 {
                0 => input.extend_from_slice(VALUE),
                1 => input.extend_from_slice(&VALUE[..(i as usize % VALUE.len())]),
                2 => input.extend_from_slice(&encodings(VALUE)[(i as usize) % 5]),
                _ => input.extend_from_slice(format!("line {i} ghp_ text\n").as_bytes()),
            }
        }
        let (expected, found) = r.scrub(&input);
        assert_eq!(found, ["GH_TOKEN"]);
        assert!(!contains(&expected, VALUE));
        let mut s = r.new_stream();
        assert_eq!(stream(&mut s, &input, &[1, 13, 4096, 3]), expected);
    }

    #[test]
    fn same_value_twice_and_no_secrets() {
        let r = Reflection::new(&[
            ("A", b"value-1234", b"aaaaa-0000"),
            ("B", b"value-1234", b"bbbbb-1111"),
        ])
        .unwrap();
        assert_eq!(
            r.scrub(b"x value-1234 y"),
            (b"x aaaaa-0000 y".to_vec(), vec!["A".to_string()])
        );
        let none = Reflection::new(&[]).unwrap();
        assert!(none.is_empty());
        assert_eq!(none.scrub(b"abc").0, b"abc");
    }

    /// The cost of the response scan: `cargo test --release --lib reflect -- --ignored
    /// --nocapture` prints MB/s for a 64 MiB body in 16 KiB chunks, against a plain copy.
    #[test]
    #[ignore = "a measurement, run by hand in release mode"]
    fn throughput() {
        let line = b"{\"id\": 12345, \"name\": \"ghp_ text\"}\n";
        let body: Vec<u8> = (0..64usize << 20).map(|i| line[i % line.len()]).collect();
        let secrets: Vec<(String, Vec<u8>, Vec<u8>)> = (0..5)
            .map(|i| {
                (
                    format!("S{i}"),
                    format!("ghp_Rt7kLm29QpXz81VbNc4WdY6hJqq{i}").into_bytes(),
                    format!("ghp_Ab3cDe45FgHi67JkLm8NoP9qRzz{i}").into_bytes(),
                )
            })
            .collect();
        let mb = body.len() as f64 / 1e6;
        let start = std::time::Instant::now();
        let mut copied = 0;
        for c in body.chunks(16 << 10) {
            copied += std::hint::black_box(c.to_vec()).len();
        }
        let copy = start.elapsed();
        println!("copy: {:.0} MB/s", mb / copy.as_secs_f64());
        assert_eq!(copied, body.len());
        for n in [1, 5] {
            let list: Vec<(&str, &[u8], &[u8])> = secrets[..n]
                .iter()
                .map(|(a, b, c)| (a.as_str(), b.as_slice(), c.as_slice()))
                .collect();
            let mut r = Reflection::new(&list).unwrap();
            let start = std::time::Instant::now();
            let mut out = 0;
            for c in body.chunks(16 << 10) {
                out += r.feed(c).len();
            }
            out += r.finish().len();
            let t = start.elapsed();
            assert_eq!(out, body.len());
            println!(
                "{n} secret(s), {} forms: {:.0} MB/s",
                r.owner.len(),
                mb / t.as_secs_f64()
            );
        }
    }

    #[test]
    fn debug_shows_names_only() {
        let shown = format!("{:?}", reflection());
        assert!(shown.contains("GH_TOKEN"), "{shown}");
        assert!(
            !shown.contains("Rt7k") && !shown.contains("Ab3c"),
            "{shown}"
        );
    }
}
