//! A profile's `network.allow` rules as one table of bytes: what the egress decisions read
//! ([`RuleRef`], no allocation per rule), and what the profile cache stores as it is and, on a
//! hit, maps from its entry without decoding or copying it (`cache.rs`). The rules as
//! [`AllowRule`] values are built from the table only when something asks for them
//! ([`AllowList::rules`]: merging, narrowing, tests), once.
//!
//! Layout (every number a little-endian `u32`; offsets count from the start of the blob or
//! of the binary area):
//!
//! ```text
//! header   rules, files, blob length, binary length
//! files    (offset, length) of each `Location::file` name, in the blob
//! records  13 words a rule: flags (kind 0 exact / 1 suffix / 2 cidr, 4 raw_tcp,
//!          8 has methods or paths), target (offset, length: a name in the blob; a cidr's
//!          18 bytes in the binary area: family 4 or 6, 16 address bytes, prefix), ports
//!          (offset in the binary area, count of u16), text (offset, length), key (offset,
//!          length), file index, line, column, lists (offset in the binary area: methods count
//!          and (offset, length) each, then paths the same)
//! blob     the strings, UTF-8
//! binary   ports, cidr addresses, lists
//! ```
//!
//! A table read from elsewhere is checked whole before use ([`AllowList::from_table`]): every
//! range inside its area, every string on character boundaries of a blob that is UTF-8, every
//! kind and cidr valid. The accessors then cannot fail.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

// The rule types live here, with the table that holds them, and `model` re-exports them: the
// table is built from them and builds them, and `model` holds the table.

/// Where a value came from, for error messages: `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// A path, or `builtin:NAME` for an embedded profile.
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// What one `network.allow` entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTarget {
    /// A normalised host name (lower case, A-labels, no trailing dot).
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: any name ending in it, at any depth, never the
    /// apex itself.
    Suffix(String),
    /// An address range, written as `{ cidr: ... }`. Only these allow connections to bare
    /// addresses, or names resolving to special ranges (loopback, private, ...).
    Cidr(ipnet::IpNet),
}

/// One `network.allow` entry, checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    pub target: RuleTarget,
    /// Sorted, without duplicates, never empty.
    pub ports: Vec<u16>,
    /// Canonical spelling, e.g. `github.com:443`, `*.example.com:80,443`,
    /// `203.0.113.0/24:443`, `[2001:db8::/32]:8080`: the rule named in audit events, and what
    /// `extends` merging compares.
    pub text: String,
    pub at: Location,
    /// Key path where it was written, e.g. `network.allow[2]`, for error messages.
    pub key: String,
    /// HTTP methods allowed (upper case); empty = any. With `paths`, makes the host intercepted.
    pub methods: Vec<String>,
    /// Path prefixes allowed, matched on segment boundaries; empty = any.
    pub paths: Vec<String>,
    /// A CONNECT tunnel to the host may carry bytes that are neither TLS nor HTTP, relayed
    /// unread. Only on name rules (a cidr rule already allows any TCP to its addresses).
    pub raw_tcp: bool,
}

const HEADER: usize = 16;
const WORDS: usize = 13;
const REC: usize = WORDS * 4;
const KIND: u32 = 3;
const EXACT: u32 = 0;
const SUFFIX: u32 = 1;
const CIDR: u32 = 2;
const RAW_TCP: u32 = 4;
const RESTRICTED: u32 = 8;
const CIDR_LEN: usize = 18;
/// The lists word of a rule without methods or paths.
const NO_LISTS: u32 = u32::MAX;

/// Where a table's bytes live: built here, or a mapped cache entry.
pub(crate) enum Backing {
    Owned(Vec<u8>),
    Mapped(crate::sys::MappedFile),
}

impl Backing {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Backing::Owned(v) => v,
            Backing::Mapped(m) => m.bytes(),
        }
    }
}

/// The checked table: where its parts are within `backing`.
struct Table {
    backing: Arc<Backing>,
    start: usize,
    end: usize,
    n: usize,
    files_at: usize,
    records_at: usize,
    blob_at: usize,
    bin_at: usize,
    /// Some rule has methods or paths.
    any_restricted: bool,
}

/// `network.allow`, in file order, parents' rules first.
#[derive(Clone)]
pub struct AllowList {
    table: Arc<Table>,
    rules: Arc<OnceLock<Vec<AllowRule>>>,
}

impl Default for AllowList {
    fn default() -> AllowList {
        AllowList::new(Vec::new())
    }
}

impl From<Vec<AllowRule>> for AllowList {
    fn from(rules: Vec<AllowRule>) -> AllowList {
        AllowList::new(rules)
    }
}

impl FromIterator<AllowRule> for AllowList {
    fn from_iter<I: IntoIterator<Item = AllowRule>>(rules: I) -> AllowList {
        AllowList::new(rules.into_iter().collect())
    }
}

/// The rules as values ([`AllowList::rules`]): built on first use, for readers that want
/// [`AllowRule`]s. Decisions read the table ([`AllowList::views`]).
impl std::ops::Deref for AllowList {
    type Target = [AllowRule];
    fn deref(&self) -> &[AllowRule] {
        self.rules()
    }
}

impl PartialEq for AllowList {
    fn eq(&self, other: &AllowList) -> bool {
        self.rules() == other.rules()
    }
}

impl Eq for AllowList {}

impl std::fmt::Debug for AllowList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.rules()).finish()
    }
}

impl AllowList {
    pub fn new(rules: Vec<AllowRule>) -> AllowList {
        let bytes = build(&rules);
        let len = bytes.len();
        let table = Table::check(Arc::new(Backing::Owned(bytes)), 0, len)
            .expect("a table built from rules is well formed");
        let cell = OnceLock::new();
        let _ = cell.set(rules);
        AllowList {
            table: Arc::new(table),
            rules: Arc::new(cell),
        }
    }

    /// The table at `start..start + len` of `backing`, if it is one (checked whole).
    pub(crate) fn from_table(backing: Arc<Backing>, start: usize, len: usize) -> Option<AllowList> {
        Some(AllowList {
            table: Arc::new(Table::check(backing, start, len)?),
            rules: Arc::new(OnceLock::new()),
        })
    }

    /// The table's bytes, as [`AllowList::from_table`] reads them.
    pub(crate) fn table_bytes(&self) -> &[u8] {
        &self.table.backing.bytes()[self.table.start..self.table.end]
    }

    pub fn len(&self) -> usize {
        self.table.n
    }

    pub fn is_empty(&self) -> bool {
        self.table.n == 0
    }

    /// Each rule, in order, read in place.
    pub fn views(&self) -> impl Iterator<Item = RuleRef<'_>> + Clone {
        let t = &*self.table;
        let b = t.backing.bytes();
        let blob = &b[t.blob_at..t.bin_at];
        let bin = &b[t.bin_at..t.end];
        let files = &b[t.files_at..t.records_at];
        b[t.records_at..t.blob_at]
            .chunks_exact(REC)
            .map(move |rec| RuleRef {
                rec,
                blob,
                bin,
                files,
            })
    }

    /// Whether some rule restricts methods or paths (the step's TLS to its host is then
    /// intercepted).
    pub fn any_restricted(&self) -> bool {
        self.table.any_restricted
    }

    /// The rules as values, built from the table the first time they are asked for.
    pub fn rules(&self) -> &[AllowRule] {
        self.rules
            .get_or_init(|| self.views().map(|r| r.to_rule()).collect())
    }
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

fn get_word(b: &[u8], at: usize) -> Option<usize> {
    let w = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(w.try_into().ok()?) as usize)
}

/// A string of a checked blob.
fn text_of(blob: &[u8], off: u32, len: u32) -> &str {
    let (off, len) = (off as usize, len as usize);
    std::str::from_utf8(&blob[off..off + len]).expect("a checked table's strings are UTF-8")
}

/// The cidr in 18 bytes: family, address, prefix.
fn cidr_of(b: &[u8]) -> Option<ipnet::IpNet> {
    let addr: IpAddr = match b[0] {
        4 => IpAddr::from(<[u8; 4]>::try_from(&b[1..5]).ok()?),
        6 => IpAddr::from(<[u8; 16]>::try_from(&b[1..17]).ok()?),
        _ => return None,
    };
    ipnet::IpNet::new(addr, b[17]).ok()
}

/// One rule of a table, read in place.
#[derive(Clone, Copy)]
pub struct RuleRef<'a> {
    rec: &'a [u8],
    blob: &'a [u8],
    bin: &'a [u8],
    files: &'a [u8],
}

impl<'a> RuleRef<'a> {
    fn w(&self, i: usize) -> u32 {
        word(self.rec, i * 4)
    }

    fn target_bytes(&self) -> &'a [u8] {
        let (off, len) = (self.w(1) as usize, self.w(2) as usize);
        match self.w(0) & KIND {
            CIDR => &self.bin[off..off + len],
            _ => &self.blob[off..off + len],
        }
    }

    /// Same as [`AllowRule::matches_name`]: `name` must already be normalised.
    pub fn matches_name(&self, name: &str) -> bool {
        match self.w(0) & KIND {
            EXACT => name.as_bytes() == self.target_bytes(),
            SUFFIX => name.as_bytes().ends_with(self.target_bytes()),
            _ => false,
        }
    }

    fn cidr(&self) -> Option<ipnet::IpNet> {
        (self.w(0) & KIND == CIDR)
            .then(|| cidr_of(self.target_bytes()))
            .flatten()
    }

    /// Same as [`AllowRule::covers_ip`].
    pub fn covers_ip(&self, ip: IpAddr) -> bool {
        self.cidr()
            .is_some_and(|net| net.contains(&ip) || net.contains(&ip.to_canonical()))
    }

    /// The rule's ports, sorted.
    pub fn ports(&self) -> impl Iterator<Item = u16> + 'a {
        let (off, n) = (self.w(3) as usize, self.w(4) as usize);
        self.bin[off..off + 2 * n]
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
    }

    pub fn has_port(&self, port: u16) -> bool {
        self.ports().any(|p| p == port)
    }

    /// [`AllowRule::text`].
    pub fn text(&self) -> &'a str {
        text_of(self.blob, self.w(5), self.w(6))
    }

    /// [`AllowRule::key`].
    pub fn key(&self) -> &'a str {
        text_of(self.blob, self.w(7), self.w(8))
    }

    /// [`AllowRule::at`].
    pub fn at(&self) -> Location {
        let f = self.w(9) as usize * 8;
        Location {
            file: text_of(self.blob, word(self.files, f), word(self.files, f + 4)).to_string(),
            line: self.w(10) as usize,
            column: self.w(11) as usize,
        }
    }

    pub fn raw_tcp(&self) -> bool {
        self.w(0) & RAW_TCP != 0
    }

    /// Whether the rule has methods or paths.
    pub fn is_restricted(&self) -> bool {
        self.w(0) & RESTRICTED != 0
    }

    /// (methods, paths).
    fn lists(&self) -> (StrList<'a>, StrList<'a>) {
        if self.w(12) == NO_LISTS {
            let none = StrList {
                pairs: &[],
                blob: self.blob,
            };
            return (none.clone(), none);
        }
        let off = self.w(12) as usize;
        let n = word(self.bin, off) as usize;
        let methods = StrList {
            pairs: &self.bin[off + 4..off + 4 + 8 * n],
            blob: self.blob,
        };
        let off = off + 4 + 8 * n;
        let n = word(self.bin, off) as usize;
        let paths = StrList {
            pairs: &self.bin[off + 4..off + 4 + 8 * n],
            blob: self.blob,
        };
        (methods, paths)
    }

    /// [`AllowRule::methods`].
    pub fn methods(&self) -> StrList<'a> {
        self.lists().0
    }

    /// [`AllowRule::paths`].
    pub fn paths(&self) -> StrList<'a> {
        self.lists().1
    }

    /// The rule as a value.
    pub fn to_rule(&self) -> AllowRule {
        let target = match self.w(0) & KIND {
            EXACT => RuleTarget::Exact(text_of(self.blob, self.w(1), self.w(2)).to_string()),
            SUFFIX => RuleTarget::Suffix(text_of(self.blob, self.w(1), self.w(2)).to_string()),
            _ => RuleTarget::Cidr(self.cidr().expect("a checked table's cidrs are valid")),
        };
        AllowRule {
            target,
            ports: self.ports().collect(),
            text: self.text().to_string(),
            at: self.at(),
            key: self.key().to_string(),
            methods: self.methods().map(str::to_string).collect(),
            paths: self.paths().map(str::to_string).collect(),
            raw_tcp: self.raw_tcp(),
        }
    }
}

/// A rule's methods or paths.
#[derive(Clone)]
pub struct StrList<'a> {
    pairs: &'a [u8],
    blob: &'a [u8],
}

impl<'a> StrList<'a> {
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl<'a> Iterator for StrList<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.pairs.is_empty() {
            return None;
        }
        let s = text_of(self.blob, word(self.pairs, 0), word(self.pairs, 4));
        self.pairs = &self.pairs[8..];
        Some(s)
    }
}

impl Table {
    /// The layout of `backing[start..start + len]`, if every part of it is well formed.
    fn check(backing: Arc<Backing>, start: usize, len: usize) -> Option<Table> {
        let end = start.checked_add(len)?;
        let b = backing.bytes().get(start..end)?;
        let n = get_word(b, 0)?;
        let n_files = get_word(b, 4)?;
        let blob_len = get_word(b, 8)?;
        let bin_len = get_word(b, 12)?;
        let files_at = HEADER;
        let records_at = files_at.checked_add(n_files.checked_mul(8)?)?;
        let blob_at = records_at.checked_add(n.checked_mul(REC)?)?;
        let bin_at = blob_at.checked_add(blob_len)?;
        if bin_at.checked_add(bin_len)? != b.len() {
            return None;
        }
        // Every offset of an ASCII blob is a character boundary (the common case, checked in
        // one pass); in any other, each string's ends are checked.
        let blob_bytes = &b[blob_at..bin_at];
        let text = match blob_bytes.is_ascii() {
            true => None,
            false => Some(std::str::from_utf8(blob_bytes).ok()?),
        };
        let bin = &b[bin_at..];
        let string = |off: usize, len: usize| {
            off.checked_add(len).is_some_and(|e| {
                e <= blob_len
                    && text.is_none_or(|t| t.is_char_boundary(off) && t.is_char_boundary(e))
            })
        };
        let in_bin = |off: usize, len: usize| off.checked_add(len).is_some_and(|e| e <= bin.len());
        // A list at `off`: its end, if each of its strings is one.
        let list = |off: usize| -> Option<usize> {
            let n = get_word(bin, off)?;
            let pairs = off.checked_add(4)?;
            let end = pairs.checked_add(n.checked_mul(8)?)?;
            if !in_bin(pairs, end - pairs) {
                return None;
            }
            (0..n)
                .all(|i| {
                    string(
                        word(bin, pairs + 8 * i) as usize,
                        word(bin, pairs + 8 * i + 4) as usize,
                    )
                })
                .then_some(end)
        };
        for i in 0..n_files {
            let at = files_at + 8 * i;
            if !string(word(b, at) as usize, word(b, at + 4) as usize) {
                return None;
            }
        }
        let mut any_restricted = false;
        for rec in b[records_at..blob_at].chunks_exact(REC) {
            let w = |i: usize| word(rec, i * 4) as usize;
            let flags = w(0) as u32;
            if flags & !(KIND | RAW_TCP | RESTRICTED) != 0 {
                return None;
            }
            let target_ok = match flags & KIND {
                EXACT | SUFFIX => string(w(1), w(2)),
                CIDR => {
                    w(2) == CIDR_LEN
                        && in_bin(w(1), CIDR_LEN)
                        && cidr_of(&bin[w(1)..w(1) + CIDR_LEN]).is_some()
                }
                _ => false,
            };
            let ports_ok = w(4).checked_mul(2).is_some_and(|l| in_bin(w(3), l));
            // Methods from w(12) to `paths`, paths from there to `end`; each empty list 4 bytes.
            // A rule without either has no lists at all.
            let restricted = flags & RESTRICTED != 0;
            let lists_ok = match w(12) as u32 {
                NO_LISTS => !restricted,
                _ => {
                    let paths = list(w(12))?;
                    let end = list(paths)?;
                    restricted && (paths != w(12) + 4 || end != paths + 4)
                }
            };
            any_restricted |= restricted;
            if !(target_ok
                && ports_ok
                && string(w(5), w(6))
                && string(w(7), w(8))
                && w(9) < n_files
                && lists_ok)
            {
                return None;
            }
        }
        Some(Table {
            backing,
            start,
            end,
            n,
            files_at: start + files_at,
            records_at: start + records_at,
            blob_at: start + blob_at,
            bin_at: start + bin_at,
            any_restricted,
        })
    }
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).expect("an allow table under 4 GiB")
}

/// The table for `rules`.
fn build(rules: &[AllowRule]) -> Vec<u8> {
    let mut blob: Vec<u8> = Vec::new();
    let mut bin: Vec<u8> = Vec::new();
    let mut recs: Vec<u32> = Vec::with_capacity(rules.len() * WORDS);
    let mut files: Vec<(&str, u32, u32)> = Vec::new();
    let put = |blob: &mut Vec<u8>, s: &str| -> (u32, u32) {
        let off = u32_of(blob.len());
        blob.extend_from_slice(s.as_bytes());
        (off, u32_of(s.len()))
    };
    for r in rules {
        let AllowRule {
            target,
            ports,
            text,
            at,
            key,
            methods,
            paths,
            raw_tcp,
        } = r;
        let restricted = !methods.is_empty() || !paths.is_empty();
        let mut flags =
            if *raw_tcp { RAW_TCP } else { 0 } | if restricted { RESTRICTED } else { 0 };
        let text = put(&mut blob, text);
        // A name is almost always inside the rule's text (`name:443`, `*.suffix:443`): it is
        // those bytes, not a second copy.
        let name = |blob: &mut Vec<u8>, s: &str| {
            let written = &blob[text.0 as usize..];
            match written.windows(s.len()).position(|w| w == s.as_bytes()) {
                Some(i) if !s.is_empty() => (text.0 + u32_of(i), u32_of(s.len())),
                _ => put(blob, s),
            }
        };
        let (t_off, t_len) = match target {
            RuleTarget::Exact(s) => {
                flags |= EXACT;
                name(&mut blob, s)
            }
            RuleTarget::Suffix(s) => {
                flags |= SUFFIX;
                name(&mut blob, s)
            }
            RuleTarget::Cidr(net) => {
                flags |= CIDR;
                let off = u32_of(bin.len());
                let mut addr = [0u8; 16];
                let family = match net.addr() {
                    IpAddr::V4(a) => {
                        addr[..4].copy_from_slice(&a.octets());
                        4
                    }
                    IpAddr::V6(a) => {
                        addr.copy_from_slice(&a.octets());
                        6
                    }
                };
                bin.push(family);
                bin.extend_from_slice(&addr);
                bin.push(net.prefix_len());
                (off, CIDR_LEN as u32)
            }
        };
        let p_off = u32_of(bin.len());
        for p in ports {
            bin.extend_from_slice(&p.to_le_bytes());
        }
        let key = put(&mut blob, key);
        let file = match files.iter().position(|(f, _, _)| *f == at.file) {
            Some(i) => i,
            None => {
                let (off, len) = put(&mut blob, &at.file);
                files.push((&at.file, off, len));
                files.len() - 1
            }
        };
        let lists = if restricted {
            u32_of(bin.len())
        } else {
            NO_LISTS
        };
        for list in [methods, paths].into_iter().filter(|_| restricted) {
            bin.extend_from_slice(&u32_of(list.len()).to_le_bytes());
            let at = bin.len();
            bin.resize(at + 8 * list.len(), 0);
            for (i, s) in list.iter().enumerate() {
                let (off, len) = put(&mut blob, s);
                bin[at + 8 * i..at + 8 * i + 4].copy_from_slice(&off.to_le_bytes());
                bin[at + 8 * i + 4..at + 8 * i + 8].copy_from_slice(&len.to_le_bytes());
            }
        }
        recs.extend_from_slice(&[
            flags,
            t_off,
            t_len,
            p_off,
            u32_of(ports.len()),
            text.0,
            text.1,
            key.0,
            key.1,
            u32_of(file),
            u32_of(at.line),
            u32_of(at.column),
            lists,
        ]);
    }
    let mut out =
        Vec::with_capacity(HEADER + files.len() * 8 + recs.len() * 4 + blob.len() + bin.len());
    for n in [rules.len(), files.len(), blob.len(), bin.len()] {
        out.extend_from_slice(&u32_of(n).to_le_bytes());
    }
    for (_, off, len) in &files {
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    for w in recs {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&blob);
    out.extend_from_slice(&bin);
    out
}

#[cfg(test)]
impl AllowList {
    /// Whether the table lies in a mapped file (a cache entry).
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(*self.table.backing, Backing::Mapped(_))
    }
    /// Whether [`AllowList::rules`] has built the values.
    pub(crate) fn is_built(&self) -> bool {
        self.rules.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &str, line: usize) -> Location {
        Location {
            file: file.into(),
            line,
            column: 7,
        }
    }

    /// One rule of every shape: both name kinds, both address families, several ports,
    /// methods and paths (one not ASCII), raw TCP, two files.
    fn sample() -> Vec<AllowRule> {
        let rule = |target, ports: &[u16], file: &str, methods: &[&str], paths: &[&str]| {
            let ports = ports.to_vec();
            AllowRule {
                text: format!("{target:?}:{ports:?}"),
                target,
                ports,
                at: at(file, 3),
                key: "network.allow[0]".into(),
                methods: methods.iter().map(|s| s.to_string()).collect(),
                paths: paths.iter().map(|s| s.to_string()).collect(),
                raw_tcp: false,
            }
        };
        let mut raw = rule(
            RuleTarget::Exact("git.example.com".into()),
            &[22],
            "a.yml",
            &[],
            &[],
        );
        raw.raw_tcp = true;
        vec![
            rule(
                RuleTarget::Exact("registry.example.com".into()),
                &[443],
                "a.yml",
                &[],
                &[],
            ),
            rule(
                RuleTarget::Suffix(".example.org".into()),
                &[80, 443, 8443],
                "b.yml",
                &[],
                &[],
            ),
            rule(
                RuleTarget::Cidr("203.0.113.0/24".parse().unwrap()),
                &[443],
                "a.yml",
                &[],
                &[],
            ),
            rule(
                RuleTarget::Cidr("2001:db8::/32".parse().unwrap()),
                &[8080],
                "b.yml",
                &[],
                &[],
            ),
            rule(
                RuleTarget::Exact("api.example.com".into()),
                &[443],
                "b.yml",
                &["GET", "HEAD"],
                &["/v1", "/dépôt"],
            ),
            raw,
        ]
    }

    /// The table as read from elsewhere.
    fn read_back(bytes: &[u8]) -> Option<AllowList> {
        AllowList::from_table(Arc::new(Backing::Owned(bytes.to_vec())), 0, bytes.len())
    }

    #[test]
    fn a_table_read_back_gives_every_rule_and_the_same_answers() {
        let rules = sample();
        let list = read_back(AllowList::new(rules.clone()).table_bytes()).unwrap();
        assert!(!list.is_built());
        let names = [
            "registry.example.com",
            "x.registry.example.com",
            "example.org",
            "a.example.org",
            "api.example.com",
            "git.example.com",
            "203.0.113.9",
        ];
        let ips = [
            "203.0.113.9",
            "203.0.114.1",
            "::ffff:203.0.113.2",
            "2001:db8::1",
        ];
        for (view, rule) in list.views().zip(&rules) {
            for n in names {
                assert_eq!(view.matches_name(n), rule.matches_name(n), "{n} {rule:?}");
            }
            for ip in ips {
                let ip: IpAddr = ip.parse().unwrap();
                assert_eq!(view.covers_ip(ip), rule.covers_ip(ip), "{ip} {rule:?}");
            }
            assert_eq!(view.ports().collect::<Vec<_>>(), rule.ports);
            assert_eq!((view.text(), view.key()), (&*rule.text, &*rule.key));
            assert_eq!(view.at(), rule.at);
            assert_eq!(view.raw_tcp(), rule.raw_tcp);
            assert_eq!(view.methods().collect::<Vec<_>>(), rule.methods);
            assert_eq!(view.paths().collect::<Vec<_>>(), rule.paths);
            assert_eq!(view.is_restricted(), !rule.methods.is_empty());
        }
        assert_eq!(list.len(), rules.len());
        assert!(list.any_restricted());
        assert_eq!(list.rules(), &rules[..]);
        assert!(list.is_built());
        let empty = read_back(AllowList::default().table_bytes()).unwrap();
        assert!(empty.is_empty() && empty.rules().is_empty() && !empty.any_restricted());
    }

    #[test]
    fn a_damaged_table_is_refused() {
        let good = AllowList::new(sample()).table_bytes().to_vec();
        assert!(read_back(&good).is_some());
        let n_files = word(&good, 4) as usize;
        let rec = |i: usize, w: usize| HEADER + 8 * n_files + REC * i + 4 * w;
        let set = |at: usize, v: u32| {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            b
        };
        let blob_at = HEADER + 8 * n_files + REC * sample().len();
        let bin_at = blob_at + word(&good, 8) as usize;
        let path = "/dépôt".as_bytes();
        let in_path = blob_at
            + good[blob_at..bin_at]
                .windows(path.len())
                .position(|w| w == path)
                .unwrap();
        let mut not_utf8 = good.clone();
        not_utf8[in_path + 2] = 0xff;
        let damaged: Vec<(&str, Vec<u8>)> = vec![
            ("one byte short", good[..good.len() - 1].to_vec()),
            ("one byte more", [&good[..], &[0]].concat()),
            ("more rules than records", set(0, 7)),
            ("a file name out of the blob", set(HEADER, u32::MAX - 2)),
            ("an unknown kind", set(rec(0, 0), 3)),
            ("an unknown flag", set(rec(0, 0), 16)),
            ("a target out of the blob", set(rec(0, 2), 1 << 30)),
            ("a cidr of the wrong length", set(rec(2, 2), 17)),
            ("ports out of the binary area", set(rec(1, 4), 1 << 30)),
            (
                "a file index out of the table",
                set(rec(0, 9), n_files as u32),
            ),
            (
                "a restricted flag without lists",
                set(rec(0, 0), EXACT | RESTRICTED),
            ),
            ("lists without the restricted flag", set(rec(4, 0), EXACT)),
            (
                "a text inside a character",
                set(rec(0, 5), (in_path + 3 - blob_at) as u32),
            ),
            ("a blob that is not UTF-8", not_utf8),
        ];
        for (what, bytes) in damaged {
            assert!(read_back(&bytes).is_none(), "{what}");
        }
        // An ASCII blob (checked in one pass, no boundary to check) is still checked for ranges.
        let ascii = AllowList::new(sample()[..4].to_vec())
            .table_bytes()
            .to_vec();
        let blob_len = word(&ascii, 8);
        let mut over = ascii.clone();
        let text = HEADER + 8 * word(&ascii, 4) as usize + 4 * 6;
        over[text..text + 4].copy_from_slice(&(blob_len + 1).to_le_bytes());
        assert!(read_back(&ascii).is_some());
        assert!(read_back(&over).is_none());
        // A cidr prefix too long for its family.
        let cidr = word(&good, rec(2, 1)) as usize;
        let mut long = good.clone();
        long[bin_at + cidr + 17] = 33;
        assert!(read_back(&long).is_none());
    }
}
