//! Finding secret values, and their placeholders, in what a step sends out.
//!
//! The proxy builds a [`LeakScanner`] from the secrets that must not reach a destination (every
//! secret not bound to that host), each with its needles: the real value and, for a brokered
//! secret, its placeholder. Each needle is searched for as is and in every form
//! [`super::encodings`] lists (base64 in both alphabets and at every byte offset, hex and URL encoding
//! in both cases), plus base32 (RFC 4648, upper and lower case, at every byte offset mod 5),
//! which is how data usually travels in DNS names.
//!
//! Every form is matched without ASCII case. Hex, base32, percent-encoding and the value's own
//! letters are case-insensitive in practice (`tr a-z A-Z` is the cheapest disguise there is);
//! base64 is not, and matching it without case gives up one bit in six of each form, which at
//! the length of a real credential's forms still leaves a chance match out of reach. It keeps
//! one automaton and one pass instead of two.
//!
//! - [`LeakScanner::find`]: one buffer (a request line, headers, a whole body).
//! - [`LeakScanner::find_normalised`]: the same, and when it differs also in the buffer's
//!   [`normalise`]d view: JSON string escapes (`\u0074\u006b`) decoded, and line breaks (raw,
//!   `\n` in JSON, `%0A` in a form) removed, which undoes base64 wrapped into MIME or PEM lines.
//!   The proxy uses it for plain-HTTP request heads and bodies (bodies after undoing their
//!   `Content-Encoding`, see `proxy::content_coding`).
//! - [`LeakScanner::find_in_dns_name`]: a query name, which DNS compares without case and which
//!   an exfiltrating step splits into labels: the lower-cased name is searched both as is and
//!   with its dots removed, for lower-cased needles both as is and with their own dots removed.
//! - [`LeakStream`]: a body arriving in chunks; a needle split across chunks is found. It does
//!   not normalise.
//!
//! What this does not catch: a value transformed in any other way (encrypted, reversed, split
//! across requests or queries, encoded in an alphabet not listed). Detection is a tripwire; what
//! keeps a brokered secret from leaking is that the step only ever holds its placeholder.
//!
//! Every non-empty needle is searched for, however short; a one-character value will match
//! nearly every request and so deny it. That is the price of not leaking it.
//!
//! Matching is an Aho-Corasick automaton over all forms of all needles (written here: the crate
//! is in the lock file only as a dependency of a dependency), so the cost is linear in the
//! haystack whatever the needles, and a stream carries one automaton state between chunks
//! instead of a tail of bytes.

use std::sync::Arc;

use super::search::{Automaton, forms};

/// Best-effort zeroing of a list of forms.
fn wipe_all(forms: &mut Vec<Vec<u8>>) {
    for f in forms.iter_mut() {
        super::wipe::wipe_vec(f);
    }
    forms.clear();
}

struct Tables {
    names: Vec<String>,
    /// For each secret, the number of needles it was given (for `Debug`).
    needles: Vec<usize>,
    exact: Automaton,
    /// Pattern id → index in `names`.
    exact_owner: Vec<u32>,
    dns: Automaton,
    dns_owner: Vec<u32>,
}

/// Finds the values and placeholders of a set of named secrets, in all their forms.
///
/// Cheap to clone (the tables are shared). `Debug` shows the names only.
#[derive(Clone)]
pub struct LeakScanner {
    tables: Arc<Tables>,
}

impl LeakScanner {
    /// One entry per secret: its name and its needles (its real value, its placeholder if it
    /// has one). Empty needles are ignored. When a form belongs to several secrets (two secrets
    /// with the same value), the first of them is the one named.
    pub fn new(secrets: &[(String, Vec<Vec<u8>>)]) -> LeakScanner {
        let mut exact = Automaton::new();
        let mut exact_owner = Vec::new();
        let mut dns = Automaton::new();
        let mut dns_owner = Vec::new();
        for (index, (_, needles)) in secrets.iter().enumerate() {
            for needle in needles.iter().filter(|n| !n.is_empty()) {
                let mut all = forms(needle);
                for form in &all {
                    let mut lower = form.to_ascii_lowercase();
                    if exact.insert(&lower).is_ok() {
                        exact_owner.push(index as u32);
                    }
                    let mut undotted: Vec<u8> =
                        lower.iter().copied().filter(|&b| b != b'.').collect();
                    for variant in [&lower, &undotted] {
                        if !variant.is_empty() && dns.insert(variant).is_ok() {
                            dns_owner.push(index as u32);
                        }
                    }
                    super::wipe::wipe_vec(&mut lower);
                    super::wipe::wipe_vec(&mut undotted);
                }
                wipe_all(&mut all);
            }
        }
        exact.build();
        dns.build();
        LeakScanner {
            tables: Arc::new(Tables {
                names: secrets.iter().map(|(name, _)| name.clone()).collect(),
                needles: secrets.iter().map(|(_, n)| n.len()).collect(),
                exact,
                exact_owner,
                dns,
                dns_owner,
            }),
        }
    }

    /// True when there is nothing to find.
    pub fn is_empty(&self) -> bool {
        self.tables.exact.patterns() == 0
    }

    /// The name of the secret with the occurrence that ends first in `haystack`, compared
    /// without ASCII case.
    pub fn find(&self, haystack: &[u8]) -> Option<&str> {
        self.run(&mut 0, haystack)
    }

    /// [`LeakScanner::find`] in `haystack` as sent and, when it differs, in its normalised
    /// view ([`normalise`]: JSON string escapes decoded, line breaks removed). For a request
    /// line with its headers, or a whole (decoded) body.
    pub fn find_normalised(&self, haystack: &[u8]) -> Option<&str> {
        if let Some(name) = self.find(haystack) {
            return Some(name);
        }
        if !needs_normalising(haystack) {
            return None;
        }
        // The view is made a block at a time (runs between special bytes copied whole), so the
        // automaton reads a slice, as in the first pass.
        const BLOCK: usize = 64 << 10;
        let mut view = Normalised::new(haystack);
        let mut block = Vec::with_capacity(haystack.len().min(BLOCK) + 4);
        let mut state = 0;
        loop {
            block.clear();
            view.fill(&mut block, BLOCK);
            if block.is_empty() {
                return None;
            }
            if let Some(name) = self.run(&mut state, &block) {
                return Some(name);
            }
        }
    }

    /// Feeds `bytes` to the automaton from `state`; the secret of the first occurrence to end.
    fn run(&self, state: &mut u32, bytes: &[u8]) -> Option<&str> {
        let t = &*self.tables;
        for &b in bytes {
            *state = t.exact.next(*state, b.to_ascii_lowercase());
            if let Some(id) = t.exact.first_match(*state) {
                return Some(&t.names[t.exact_owner[id as usize] as usize]);
            }
        }
        None
    }

    /// The name of a secret found in the DNS name `name`, compared without case, both with its
    /// dots (a value in one label, or a value with dots) and without them (a value split across
    /// labels). A trailing dot makes no difference.
    pub fn find_in_dns_name(&self, name: &str) -> Option<&str> {
        let t = &*self.tables;
        let lower = name.to_ascii_lowercase();
        let undotted: Vec<u8> = lower.bytes().filter(|&b| b != b'.').collect();
        for haystack in [lower.as_bytes(), &undotted] {
            let mut state = 0;
            for &b in haystack {
                state = t.dns.next(state, b);
                if let Some(id) = t.dns.first_match(state) {
                    return Some(&t.names[t.dns_owner[id as usize] as usize]);
                }
            }
        }
        None
    }

    /// A stream scanner for one body, sharing these tables.
    pub fn stream(&self) -> LeakStream {
        LeakStream {
            tables: Arc::clone(&self.tables),
            state: 0,
        }
    }

    /// The secrets' names, in the order given.
    pub fn names(&self) -> &[String] {
        &self.tables.names
    }
}

impl std::fmt::Debug for LeakScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &*self.tables;
        f.debug_struct("LeakScanner")
            .field("secrets", &t.names)
            .field("needles", &t.needles)
            .field("forms", &t.exact.patterns())
            .finish_non_exhaustive()
    }
}

/// Scans a body chunk by chunk, finding needles split across chunks.
///
/// Between chunks it keeps one automaton state (which stands for the longest tail of the input
/// that may begin an occurrence, at most longest form − 1 bytes, without holding those bytes).
pub struct LeakStream {
    tables: Arc<Tables>,
    state: u32,
}

impl LeakStream {
    /// The name of the secret with the first occurrence that ends in `chunk` (it may have begun
    /// in earlier chunks). Scanning goes on after a find; the next occurrence is reported by a
    /// later call.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<String> {
        let t = &*self.tables;
        let mut found = None;
        for &b in chunk {
            self.state = t.exact.next(self.state, b.to_ascii_lowercase());
            if found.is_none()
                && let Some(id) = t.exact.first_match(self.state)
            {
                found = Some(t.names[t.exact_owner[id as usize] as usize].clone());
            }
        }
        found
    }

    /// Forget the input so far: the next chunk starts a new body.
    pub fn reset(&mut self) {
        self.state = 0;
    }

    /// The longest form searched for; at most this minus one bytes of history matter.
    pub fn longest(&self) -> usize {
        self.tables.exact.longest()
    }
}

impl std::fmt::Debug for LeakStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakStream")
            .field("secrets", &self.tables.names)
            .finish_non_exhaustive()
    }
}

/// Whether [`normalise`] would change `haystack`: it holds a line break (raw, or written `%0A`
/// / `%0D`) or a JSON string escape.
fn needs_normalising(haystack: &[u8]) -> bool {
    // Most bodies hold none of the special bytes: test a block at a time without branching
    // (which the compiler vectorises), and look closer only in a block that has one.
    const BLOCK: usize = 64;
    for (n, block) in haystack.chunks(BLOCK).enumerate() {
        if !block.iter().fold(false, |any, &b| any | is_special(b)) {
            continue;
        }
        for (j, &b) in block.iter().enumerate() {
            let i = n * BLOCK + j;
            let changes = match b {
                b'\r' | b'\n' => true,
                b'\\' => matches!(
                    haystack.get(i + 1),
                    Some(b'u' | b'n' | b'r' | b't' | b'b' | b'f' | b'"' | b'\\' | b'/')
                ),
                b'%' => is_encoded_line_break(&haystack[i..]),
                _ => false,
            };
            if changes {
                return true;
            }
        }
    }
    false
}

/// A byte where [`normalise`] may change something.
fn is_special(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b'\\' | b'%')
}

/// `%0A` or `%0D` (either case) at the start of `s`.
fn is_encoded_line_break(s: &[u8]) -> bool {
    s.len() >= 3 && s[1] == b'0' && matches!(s[2], b'a' | b'A' | b'd' | b'D')
}

/// The normalised view of a haystack, as bytes: JSON string escapes decoded (`\uXXXX`, surrogate
/// pairs included, to UTF-8; `\"`, `\\`, `\/`, `\t`, `\b`, `\f` to their characters) and line
/// breaks removed (CR, LF, their JSON escapes `\r` `\n`, and `%0D` `%0A`), so that a value written
/// as JSON escapes, or base64 wrapped into MIME or PEM lines, reads as one run again. Anything
/// that is not a complete escape is passed through unchanged. Allocates nothing.
pub fn normalise(haystack: &[u8]) -> impl Iterator<Item = u8> + '_ {
    Normalised::new(haystack)
}

struct Normalised<'a> {
    input: &'a [u8],
    pos: usize,
    /// A decoded character's UTF-8 bytes still to hand out, from `out_at` to `out_len`.
    out: [u8; 4],
    out_at: u8,
    out_len: u8,
}

impl<'a> Normalised<'a> {
    fn new(input: &'a [u8]) -> Normalised<'a> {
        Normalised {
            input,
            pos: 0,
            out: [0; 4],
            out_at: 0,
            out_len: 0,
        }
    }

    /// The four hex digits of a `\uXXXX` escape starting at `at` (the backslash).
    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.input.get(at + 2..at + 6)?;
        if self.input.get(at..at + 2) != Some(br"\u") {
            return None;
        }
        let text = std::str::from_utf8(digits).ok()?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok()
    }

    /// Decodes the `\u` escape at the current position: the character and the escape's length.
    fn unicode_escape(&self) -> Option<(char, usize)> {
        let high = self.hex4(self.pos)?;
        if (0xD800..0xDC00).contains(&high) {
            let low = self.hex4(self.pos + 6)?;
            if !(0xDC00..0xE000).contains(&low) {
                return None;
            }
            let cp = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            return char::from_u32(cp).map(|c| (c, 12));
        }
        char::from_u32(high).map(|c| (c, 6))
    }
}

impl Normalised<'_> {
    /// Appends the view's next bytes to `out`, about `max` of them (a little more when a
    /// decoded character ends past it); nothing when the view is exhausted. Runs without
    /// special bytes are copied whole.
    fn fill(&mut self, out: &mut Vec<u8>, max: usize) {
        while out.len() < max {
            let rest = &self.input[self.pos..];
            let run = rest
                .iter()
                .take(max - out.len())
                .position(|&b| is_special(b))
                .unwrap_or(rest.len().min(max - out.len()));
            out.extend_from_slice(&rest[..run]);
            self.pos += run;
            if out.len() >= max {
                return;
            }
            // A raw line break (the common case: wrapped base64) is dropped right here.
            if let Some(b'\r' | b'\n') = self.input.get(self.pos) {
                self.pos += 1;
                continue;
            }
            // At another special byte (or the end): the byte-wise decoder, with what it holds back.
            match self.next() {
                Some(b) => out.push(b),
                None => return,
            }
            while self.out_at < self.out_len {
                out.push(self.out[usize::from(self.out_at)]);
                self.out_at += 1;
            }
        }
    }
}

impl Iterator for Normalised<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.out_at < self.out_len {
            self.out_at += 1;
            return Some(self.out[usize::from(self.out_at - 1)]);
        }
        loop {
            let b = *self.input.get(self.pos)?;
            match b {
                b'\r' | b'\n' => self.pos += 1,
                b'%' if is_encoded_line_break(&self.input[self.pos..]) => self.pos += 3,
                b'\\' => {
                    let simple = match self.input.get(self.pos + 1) {
                        Some(b'n' | b'r') => {
                            self.pos += 2;
                            continue;
                        }
                        Some(b't') => Some(b'\t'),
                        Some(b'b') => Some(0x08),
                        Some(b'f') => Some(0x0c),
                        Some(&c @ (b'"' | b'\\' | b'/')) => Some(c),
                        _ => None,
                    };
                    if let Some(c) = simple {
                        self.pos += 2;
                        return Some(c);
                    }
                    match self.unicode_escape() {
                        Some((c, len)) => {
                            self.pos += len;
                            if c == '\r' || c == '\n' {
                                continue;
                            }
                            let n = c.encode_utf8(&mut self.out).len() as u8;
                            self.out_len = n;
                            self.out_at = 1;
                            return Some(self.out[0]);
                        }
                        None => {
                            self.pos += 1;
                            return Some(b);
                        }
                    }
                }
                _ => {
                    self.pos += 1;
                    return Some(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::search::{base32_forms, encodings};

    const VALUE: &[u8] = b"ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    const PLACEHOLDER: &[u8] = b"ghp_Xq9Lm20Pz8r5301Kq4468t771236Bw512H7m";

    fn scanner() -> LeakScanner {
        LeakScanner::new(&[
            (
                "GITHUB_TOKEN".to_string(),
                vec![VALUE.to_vec(), PLACEHOLDER.to_vec()],
            ),
            ("NPM_TOKEN".to_string(), vec![b"npm_s3cr3t/v+lue".to_vec()]),
        ])
    }

    /// The definition, the slow way: the first end position of any form of any needle.
    fn reference<'a>(secrets: &'a [(String, Vec<Vec<u8>>)], haystack: &[u8]) -> Option<&'a str> {
        let mut best: Option<(usize, usize)> = None;
        for (index, (_, needles)) in secrets.iter().enumerate() {
            for needle in needles.iter().filter(|n| !n.is_empty()) {
                for form in forms(needle) {
                    if let Some(start) = haystack.windows(form.len()).position(|w| w == form) {
                        let end = start + form.len();
                        if best.is_none_or(|(e, i)| (end, index) < (e, i)) {
                            best = Some((end, index));
                        }
                    }
                }
            }
        }
        best.map(|(_, i)| secrets[i].0.as_str())
    }

    #[test]
    fn finds_values_and_placeholders_in_every_form() {
        let s = scanner();
        for needle in [VALUE, PLACEHOLDER] {
            for form in forms(needle) {
                let haystack =
                    [b"POST /x?q=".to_vec(), form.clone(), b" HTTP/1.1".to_vec()].concat();
                assert_eq!(
                    s.find(&haystack),
                    Some("GITHUB_TOKEN"),
                    "{}",
                    String::from_utf8_lossy(&form)
                );
            }
        }
        for form in forms(b"npm_s3cr3t/v+lue") {
            assert_eq!(s.find(&form), Some("NPM_TOKEN"));
        }
        assert_eq!(s.find(b"nothing here, ghp_16C7e42F292c"), None);
        assert_eq!(s.find(b""), None);
    }

    #[test]
    fn forms_match_without_case() {
        let s = scanner();
        assert_eq!(s.find(&VALUE.to_ascii_uppercase()), Some("GITHUB_TOKEN"));
        assert_eq!(s.find(&VALUE.to_ascii_lowercase()), Some("GITHUB_TOKEN"));
        // Hex with its case mixed, as no encoder writes it but any decoder reads it.
        let hex: String = VALUE
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if i % 2 == 0 {
                    format!("{b:02X}")
                } else {
                    format!("{b:02x}")
                }
            })
            .collect();
        assert_eq!(s.find(hex.as_bytes()), Some("GITHUB_TOKEN"));
        let mut b32 = base32_forms(VALUE).remove(0);
        for (i, b) in b32.iter_mut().enumerate() {
            if i % 3 == 0 {
                *b = b.to_ascii_lowercase();
            }
        }
        assert_eq!(s.find(&b32), Some("GITHUB_TOKEN"));
        let mut stream = s.stream();
        assert_eq!(
            stream.feed(&PLACEHOLDER.to_ascii_uppercase()).as_deref(),
            Some("GITHUB_TOKEN")
        );
        assert_eq!(s.find(b"ghp_16c7e42f292c"), None);
    }

    fn normalised(s: &[u8]) -> Vec<u8> {
        normalise(s).collect()
    }

    #[test]
    fn normalise_decodes_json_escapes_and_drops_line_breaks() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"plain", b"plain"),
            (br#"{"t":"\u0061\u0042c"}"#, br#"{"t":"aBc"}"#),
            (br#"a\/b\"c\\d\te"#, b"a/b\"c\\d\te"),
            (b"abcd\r\nefgh\n", b"abcdefgh"),
            (br"abcd\r\nefgh\n", b"abcdefgh"),
            (b"ab%0Acd%0d%0aef", b"abcdef"),
            // Non-ASCII and a surrogate pair, to UTF-8.
            (br"\u00e9\ud83d\ude00!", "\u{e9}\u{1f600}!".as_bytes()),
            (br"\u000a\u000Dx", b"x"),
            // Not complete escapes: passed through as they are.
            (br"\u12", br"\u12"),
            (br"\uzzzz", br"\uzzzz"),
            (br"\ud83dx", br"\ud83dx"),
            (br"\q%0", br"\q%0"),
            (br"\", br"\"),
            (b"", b""),
        ];
        for (input, want) in cases {
            let shown = String::from_utf8_lossy(input);
            assert_eq!(normalised(input), *want, "{shown}");
        }
        // The shortcut agrees with the definition where the view differs.
        for (input, want) in cases.iter().filter(|(i, w)| i != w) {
            assert!(
                needs_normalising(input),
                "{}",
                String::from_utf8_lossy(want)
            );
        }
        assert!(!needs_normalising(b"plain %20 text"));
    }

    #[test]
    fn the_block_view_is_the_byte_view() {
        let mut seed = 5u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        let alphabet: &[&[u8]] = &[
            b"a",
            b"B",
            b"0",
            b"%",
            b"%0a",
            b"%0D",
            b"\r",
            b"\n",
            b"\\",
            br"\n",
            br"\u0041",
            br"\ud83d\ude00",
            br"\u00",
            b"u",
            b"/",
        ];
        for _ in 0..500 {
            let input: Vec<u8> = (0..next() % 40)
                .flat_map(|_| alphabet[(next() % alphabet.len() as u64) as usize].to_vec())
                .collect();
            let want: Vec<u8> = normalise(&input).collect();
            for max in [1, 2, 3, 7, 64] {
                let mut view = Normalised::new(&input);
                let mut got = Vec::new();
                loop {
                    let before = got.len();
                    view.fill(&mut got, before + max);
                    if got.len() == before {
                        break;
                    }
                }
                assert_eq!(got, want, "{:?} max {max}", String::from_utf8_lossy(&input));
            }
            // The shortcut may say yes in vain (`\u` without four hex digits), never no.
            assert!(
                want == input || needs_normalising(&input),
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn find_normalised_sees_through_json_escapes_and_wrapped_base64() {
        let s = scanner();
        let json: String = VALUE.iter().map(|b| format!("\\u{b:04x}")).collect();
        let body = format!(r#"{{"token": "{json}"}}"#);
        assert_eq!(s.find(body.as_bytes()), None);
        assert_eq!(s.find_normalised(body.as_bytes()), Some("GITHUB_TOKEN"));
        // A slash escaped the way JSON encoders do.
        let npm = br#"{"t":"npm_s3cr3t\/v+lue"}"#;
        assert_eq!(s.find(npm), None);
        assert_eq!(s.find_normalised(npm), Some("NPM_TOKEN"));
        let base64 = encodings(VALUE).remove(0);
        for width in [4, 8, 19, 40] {
            for sep in ["\n", "\r\n", "%0A", "%0d%0a", r"\n", r"\r\n"] {
                let wrapped = base64
                    .chunks(width)
                    .collect::<Vec<_>>()
                    .join(sep.as_bytes());
                let body = [b"data=x".to_vec(), wrapped, sep.as_bytes().to_vec()].concat();
                assert_eq!(s.find(&body), None, "{width} {sep:?}");
                assert_eq!(
                    s.find_normalised(&body),
                    Some("GITHUB_TOKEN"),
                    "{width} {sep:?}"
                );
            }
        }
        // Upper-cased and written as JSON escapes: both at once.
        let upper: String = VALUE
            .to_ascii_uppercase()
            .iter()
            .map(|b| format!("\\u{b:04X}"))
            .collect();
        assert_eq!(s.find_normalised(upper.as_bytes()), Some("GITHUB_TOKEN"));
        // A value with line breaks in it is still found as sent.
        let pem =
            LeakScanner::new(&[("KEY".into(), vec![b"-----BEGIN\nMIIEvQ\n-----END".to_vec()])]);
        assert_eq!(
            pem.find_normalised(b"key=-----BEGIN\nMIIEvQ\n-----END"),
            Some("KEY")
        );
        for clean in [
            &br#"{"a": "b\n", "c": "\u0041"}"#[..],
            b"line one\r\nline two%0A",
            b"",
        ] {
            assert_eq!(s.find_normalised(clean), None);
        }
    }

    #[test]
    fn codecov_style_env_dump_is_caught() {
        let s = scanner();
        let body = [
            b"origin git@github.com:acme/app.git (fetch)\n<<<<<< ENV\nHOME=/home/runner\nGITHUB_TOKEN="
                .to_vec(),
            PLACEHOLDER.to_vec(),
            b"\nPATH=/usr/bin\n".to_vec(),
        ]
        .concat();
        assert_eq!(s.find(&body), Some("GITHUB_TOKEN"));
        // Sent as `curl -d @-` form data, and as a Basic auth header.
        let form: Vec<u8> = body
            .iter()
            .flat_map(|&b| match b {
                b'\n' => b"%0A".to_vec(),
                b'=' => b"%3D".to_vec(),
                _ => vec![b],
            })
            .collect();
        assert_eq!(s.find(&form), Some("GITHUB_TOKEN"));
    }

    #[test]
    fn basic_auth_and_base32_inside_larger_inputs() {
        let s = scanner();
        let b32 = |input: &[u8]| -> Vec<u8> {
            // Reference base32 via the forms of an empty-prefix encode.
            let mut acc: u64 = 0;
            let mut bits = 0;
            let mut out = Vec::new();
            for &b in input {
                acc = (acc << 8) | u64::from(b);
                bits += 8;
                while bits >= 5 {
                    bits -= 5;
                    out.push(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[((acc >> bits) & 31) as usize]);
                }
            }
            if bits > 0 {
                out.push(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[((acc << (5 - bits)) & 31) as usize]);
            }
            out
        };
        for prefix in 0..12 {
            for suffix in 0..6 {
                let input = [vec![b'x'; prefix], VALUE.to_vec(), vec![b'y'; suffix]].concat();
                let upper = b32(&input);
                assert_eq!(s.find(&upper), Some("GITHUB_TOKEN"), "{prefix} {suffix}");
                assert_eq!(
                    s.find(&upper.to_ascii_lowercase()),
                    Some("GITHUB_TOKEN"),
                    "{prefix} {suffix}"
                );
            }
        }
    }

    #[test]
    fn dns_names_without_case_with_and_without_dots() {
        let s = scanner();
        let hex: String = PLACEHOLDER.iter().map(|b| format!("{b:02x}")).collect();
        let labels = |text: &str, n: usize| -> String {
            text.as_bytes()
                .chunks(n)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(".")
        };
        let value = std::str::from_utf8(VALUE).unwrap();
        for name in [
            format!("{hex}.evil.example"),
            format!("{}.evil.example", labels(&hex, 63)),
            format!("{}.evil.example.", labels(&hex.to_uppercase(), 7)),
            format!("{}.evil.example", value.to_ascii_lowercase()),
            format!("{}.evil.example", labels(&value.to_ascii_uppercase(), 5)),
        ] {
            assert_eq!(s.find_in_dns_name(&name), Some("GITHUB_TOKEN"), "{name}");
        }
        // Base32 in labels, lower case, the usual exfiltration encoding.
        let form = base32_forms(VALUE)
            .into_iter()
            .find(|f| f.iter().any(u8::is_ascii_lowercase))
            .unwrap();
        let name = format!(
            "{}.x.example",
            labels(std::str::from_utf8(&form).unwrap(), 9)
        );
        assert_eq!(s.find_in_dns_name(&name), Some("GITHUB_TOKEN"), "{name}");
        // A value with dots, exfiltrated with its dots and re-split.
        let dotted =
            LeakScanner::new(&[("JWT".into(), vec![b"eyJhbGc.eyJzdWIi.c2lnbmF0".to_vec()])]);
        assert_eq!(
            dotted.find_in_dns_name("eyjhbgc.eyjzdwii.c2lnbmf0.a.example"),
            Some("JWT")
        );
        assert_eq!(
            dotted.find_in_dns_name("eyjhbgceyj.zdwiic2lnbmf0.a.example"),
            Some("JWT")
        );
        for clean in ["github.com", "registry.npmjs.org.", "a.b.c", ""] {
            assert_eq!(s.find_in_dns_name(clean), None, "{clean}");
        }
    }

    #[test]
    fn agrees_with_the_reference_on_random_inputs() {
        let mut seed = 11u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..300 {
            let secrets: Vec<(String, Vec<Vec<u8>>)> = (0..1 + next() % 3)
                .map(|i| {
                    let needles = (0..1 + next() % 2)
                        .map(|_| {
                            (0..1 + next() % 5)
                                .map(|_| b"ab="[(next() % 3) as usize])
                                .collect()
                        })
                        .collect();
                    (format!("S{i}"), needles)
                })
                .collect();
            let haystack: Vec<u8> = (0..next() % 60)
                .map(|_| b"ab=YWJ"[(next() % 6) as usize])
                .collect();
            let s = LeakScanner::new(&secrets);
            assert_eq!(s.find(&haystack), reference(&secrets, &haystack));
            // Any chunking of the stream finds something exactly when `find` does.
            let mut stream = s.stream();
            let mut found = None;
            let mut rest = haystack.as_slice();
            while !rest.is_empty() {
                let n = (1 + next() % 5).min(rest.len() as u64) as usize;
                if let Some(name) = stream.feed(&rest[..n]) {
                    found.get_or_insert(name);
                }
                rest = &rest[n..];
            }
            assert_eq!(found.as_deref(), s.find(&haystack));
        }
    }

    #[test]
    fn stream_finds_a_needle_split_at_every_point() {
        let s = scanner();
        let body = [b"data=".to_vec(), PLACEHOLDER.to_vec(), b"&x=1".to_vec()].concat();
        for i in 0..=body.len() {
            for j in i..=body.len() {
                let mut stream = s.stream();
                let found: Vec<String> = [&body[..i], &body[i..j], &body[j..]]
                    .iter()
                    .filter_map(|c| stream.feed(c))
                    .collect();
                assert_eq!(found, ["GITHUB_TOKEN"], "split at {i} and {j}");
            }
        }
        let mut stream = s.stream();
        assert_eq!(stream.feed(&PLACEHOLDER[..10]), None);
        stream.reset();
        assert_eq!(
            stream.feed(&PLACEHOLDER[10..]),
            None,
            "reset forgets the start"
        );
        assert!(stream.longest() >= 2 * PLACEHOLDER.len());
    }

    #[test]
    fn empty_and_duplicate_needles() {
        let none = LeakScanner::new(&[("E".into(), vec![Vec::new()])]);
        assert!(none.is_empty());
        assert_eq!(none.find(b"anything"), None);
        assert_eq!(none.find_in_dns_name("anything.example"), None);
        assert!(LeakScanner::new(&[]).is_empty());
        let dup = LeakScanner::new(&[
            ("A".into(), vec![b"same-value".to_vec()]),
            ("B".into(), vec![b"same-value".to_vec(), b"other".to_vec()]),
        ]);
        assert_eq!(dup.find(b"x same-value"), Some("A"));
        assert_eq!(dup.find(b"x other"), Some("B"));
        assert_eq!(dup.names(), ["A", "B"]);
    }

    #[test]
    fn the_first_occurrence_to_end_is_named() {
        let s = LeakScanner::new(&[
            ("LONG".into(), vec![b"abcdefgh".to_vec()]),
            ("SHORT".into(), vec![b"cde".to_vec()]),
        ]);
        assert_eq!(s.find(b"abcdefgh"), Some("SHORT"));
        assert_eq!(s.find(b"xxabcdefgh cde"), Some("SHORT"));
        assert_eq!(
            s.find(b"abcdefgh"),
            reference(
                &[
                    ("LONG".into(), vec![b"abcdefgh".to_vec()]),
                    ("SHORT".into(), vec![b"cde".to_vec()])
                ],
                b"abcdefgh"
            )
        );
    }

    #[test]
    fn linear_on_adversarial_input() {
        let s = LeakScanner::new(&[("A".into(), vec![[b"a".repeat(999), b"b".to_vec()].concat()])]);
        let start = std::time::Instant::now();
        assert_eq!(s.find(&b"a".repeat(2_000_000)), None);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn debug_shows_names_only() {
        let s = scanner();
        for shown in [format!("{s:?}"), format!("{:?}", s.stream())] {
            assert!(shown.contains("GITHUB_TOKEN"), "{shown}");
            assert!(!shown.contains("ghp_"), "{shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
    }
}
