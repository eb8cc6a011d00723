//! The one place YAML is parsed. Every profile and policy file goes through [`parse`].
//!
//! serde-saphyr does the work: it rejects duplicate keys, enforces budgets against hostile input
//! (deep nesting, alias bombs, huge documents) and reports line and column for every error. What
//! it does not report is the *key path* of the failing value, so when parsing fails we parse the
//! same text a second time into a [`Node`] tree that records the position of every key and value,
//! and look the error position up in it. That second pass only happens on the error path and runs
//! under the same budgets.

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{DuplicateKeyPolicy, MergeKeyPolicy, Options, Spanned};

use super::error::PolicyError;
use super::model::Location;

/// Profiles are a few dozen lines; a policy for a large monorepo a few thousand. Anything bigger
/// is a mistake or an attack.
pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The parser settings every file is read with. Budgets are far below serde-saphyr's defaults
/// where depth and aliases are concerned, so an alias bomb or a 10k-deep `[[[[` fails in
/// milliseconds. The node and event budgets do not bind before the file size limit does: an
/// allowlist of thousands of hosts (10,000 `{ host, ports: [a, b, c] }` rules are ~70,000 nodes
/// and ~100,000 events in 630 KB) is a normal profile, and its cost is linear in its size.
fn options(duplicate_keys: DuplicateKeyPolicy) -> Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 24,
            flow_nesting_limit: 24,
            max_nodes: MAX_FILE_BYTES as usize,
            max_events: 2 * MAX_FILE_BYTES as usize,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_recorded_anchor_events: 50_000,
            max_documents: 1,
            max_total_scalar_bytes: MAX_FILE_BYTES as usize,
            max_merge_keys: 0,
            max_inclusion_depth: 0,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 50_000,
            max_replay_stack_depth: 16,
        },
        duplicate_keys: duplicate_keys,
        // `<<` merges make "which key wins" non-obvious in a security policy; use `extends`.
        merge_keys: MergeKeyPolicy::Error,
        // No schema here has a use for custom tags; a tag is a typo or a trick.
        reject_unsupported_tags: true,
        reject_tagged_field_names: true,
        strict_booleans: true,
    }
}

/// Parse `text` (read from `file`, used only in messages) into `T`.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, PolicyError> {
    serde_saphyr::from_str_with_options(text, options(DuplicateKeyPolicy::Error))
        .map_err(|err| convert_error(&err, text, file))
}

/// Read a file under the size limit and check it is UTF-8.
pub(crate) fn read_file(path: &std::path::Path, file: &str) -> Result<String, PolicyError> {
    utf8(read_bytes(path, file)?, file)
}

/// [`read_file`] without the UTF-8 check: a cached profile only needs its bytes' hash.
pub(crate) fn read_bytes(path: &std::path::Path, file: &str) -> Result<Vec<u8>, PolicyError> {
    use std::io::Read;
    let read_err = |source| PolicyError::Read {
        file: file.to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(read_err)?;
    // Sized up front (a 415 KB profile read into a growing vector is copied a dozen times).
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(size.min(MAX_FILE_BYTES) as usize + 1);
    // Read one byte past the limit so an oversized file is detected without reading all of it.
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let size = std::fs::metadata(path)
            .map(|m| m.len())
            .unwrap_or(bytes.len() as u64);
        return Err(PolicyError::TooLarge {
            file: file.to_string(),
            size,
            max: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// The bytes of the file named `file` as text, or the error [`read_file`] gives.
pub(crate) fn utf8(bytes: Vec<u8>, file: &str) -> Result<String, PolicyError> {
    String::from_utf8(bytes).map_err(|e| PolicyError::NotUtf8 {
        file: file.to_string(),
        offset: e.utf8_error().valid_up_to(),
    })
}

pub(crate) fn location(file: &str, at: &serde_saphyr::Location) -> Location {
    Location {
        file: file.to_string(),
        line: at.line() as usize,
        column: at.column() as usize,
    }
}

/// Strip serde-saphyr's wrappers (source snippet, alias use-site) down to the error itself.
fn innermost(err: &serde_saphyr::Error) -> &serde_saphyr::Error {
    match err {
        serde_saphyr::Error::WithSnippet { error, .. }
        | serde_saphyr::Error::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

/// Turn a serde-saphyr error into a [`PolicyError`] naming file, position and key path.
fn convert_error(err: &serde_saphyr::Error, text: &str, file: &str) -> PolicyError {
    use serde_saphyr::Error as E;
    let pos = err.location().filter(|l| l.line() > 0);
    let at = pos
        .as_ref()
        .map(|l| location(file, l))
        .unwrap_or_else(|| Location {
            file: file.to_string(),
            line: 1,
            column: 1,
        });
    let inner = innermost(err);
    // The tree is only needed for errors that talk about a key or a value.
    let tree = || pos.and_then(|p| Tree::parse(text).map(|t| (t, (p.line(), p.column()))));
    match inner {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let path = tree()
                .and_then(|(t, p)| t.key_at(p).map(|k| k.parent))
                .unwrap_or_default();
            PolicyError::UnknownKey {
                at,
                path,
                key: field.clone(),
                expected: expected.iter().map(|s| s.to_string()).collect(),
            }
        }
        E::DuplicateMappingKey { key, .. } => {
            let found = tree().and_then(|(t, p)| t.key_at(p));
            PolicyError::DuplicateKey {
                at,
                path: found.as_ref().map(|k| k.parent.clone()).unwrap_or_default(),
                key: key
                    .clone()
                    .or_else(|| found.as_ref().map(|k| k.key.clone()))
                    .unwrap_or_else(|| "?".to_string()),
                first_line: found.and_then(|k| k.first_line),
            }
        }
        E::SerdeMissingField { field, .. } => {
            let path = tree().and_then(|(t, p)| t.map_at(p)).unwrap_or_default();
            PolicyError::MissingKey {
                at,
                path,
                key: field.to_string(),
                why: "it is required",
            }
        }
        E::Unexpected { expected, .. } => wrong_type(at, tree(), expected),
        E::SerdeInvalidType { expected, .. } => wrong_type(at, tree(), expected),
        E::NullIntoString { .. } => wrong_type(at, tree(), "string scalar"),
        E::InvalidScalar { ty, .. } => wrong_type(at, tree(), ty),
        E::Budget {
            breach: BudgetBreach::Documents { .. },
            ..
        }
        | E::MultipleDocuments { .. } => PolicyError::Syntax {
            at,
            message: "a second YAML document (`---`); a file holds exactly one profile or policy"
                .to_string(),
        },
        E::Budget { breach, .. } => PolicyError::TooComplex {
            at,
            what: describe_breach(breach),
        },
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => PolicyError::TooComplex {
            at,
            what: "aliases (`*name`) expand to too much data".to_string(),
        },
        E::Eof { .. } if text.trim().is_empty() => PolicyError::Syntax {
            at,
            message: "the file is empty (expected a mapping with `name:` and `description:`)"
                .to_string(),
        },
        E::MergeKeyNotAllowed { .. } => PolicyError::Syntax {
            at,
            message:
                "YAML merge keys (`<<`) are not supported; use `extends` to build on a profile"
                    .to_string(),
        },
        other => {
            let message = strip_position(&other.to_string());
            // The parser's own nesting guard (flow collections) fires before our budget does.
            if message.contains("recursion limit") {
                PolicyError::TooComplex {
                    at,
                    what: "nested too deeply".to_string(),
                }
            } else {
                PolicyError::Syntax {
                    at,
                    message: format!("invalid YAML: {message}"),
                }
            }
        }
    }
}

/// serde-saphyr appends " at line L, column C" to plain messages; we put the position first.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn describe_breach(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Depth { depth } => format!("nested more than {} levels deep", depth - 1),
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
            "too many values (aliases counted as expanded); profiles are small".to_string()
        }
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::RecordedAnchorEvents { .. }
        | BudgetBreach::RecordedAnchorBytes { .. } => {
            "anchors and aliases (`&a`, `*a`) expand to too much data".to_string()
        }
        BudgetBreach::MergeKeys { .. } => {
            "YAML merge keys (`<<`) are not supported; use `extends` to build on a profile"
                .to_string()
        }
        BudgetBreach::ScalarBytes { .. } => "too much text".to_string(),
        other => format!("input exceeds parser limits ({other:?})"),
    }
}

fn wrong_type(at: Location, tree: Option<(Tree, Pos)>, serde_expected: &str) -> PolicyError {
    let (path, found) = tree
        .and_then(|(t, p)| t.value_at(p).map(|(path, node)| (path, node.describe())))
        .unwrap_or_else(|| (String::new(), "something else".to_string()));
    let expected = expected_for(&path)
        .map(str::to_string)
        .unwrap_or_else(|| plain_expected(serde_expected));
    let expected = if path.is_empty() {
        "a mapping with `name:` (a profile) or `version:` (a policy)".to_string()
    } else {
        expected
    };
    PolicyError::WrongType {
        at,
        path,
        expected,
        found,
    }
}

/// serde-saphyr's "expected" strings are written for Rust developers.
fn plain_expected(serde_expected: &str) -> String {
    match serde_expected {
        "string scalar" | "a string" => "a string",
        "sequence start" | "a sequence" => "a list",
        "mapping start" | "a map" => "a mapping",
        "u32" | "u64" | "usize" | "i64" => "an integer",
        other => other,
    }
    .to_string()
}

/// What a key of the profile or policy schema holds, in words, by its key path.
pub(crate) fn expected_for(path: &str) -> Option<&'static str> {
    // Inline profiles in a policy file have the same schema under `profiles.NAME.`.
    let rel = match path.strip_prefix("profiles.") {
        Some(rest) => match rest.find('.') {
            Some(i) => &rest[i + 1..],
            None => return Some("a mapping (an inline profile)"),
        },
        None => path,
    };
    let no_index = match rel.rfind('[') {
        Some(i) if rel.ends_with(']') => &rel[..i],
        _ => rel,
    };
    let is_item = no_index.len() != rel.len();
    Some(match (no_index, is_item) {
        ("name", _) => "a profile name like `default`",
        ("description", _) => "a one-line description",
        ("extends", _) => "a built-in profile name or a path to a .yml file",
        ("filesystem" | "network" | "env" | "process" | "process.limits" | "landlock", _) => {
            "a mapping"
        }
        ("filesystem.read_write" | "filesystem.read_only" | "filesystem.hidden", false) => {
            "a list of paths, like [$WORKSPACE, /opt/cache]"
        }
        ("filesystem.read_write" | "filesystem.read_only" | "filesystem.hidden", true) => {
            "a path (a string starting with / or a variable like $HOME)"
        }
        ("filesystem.files", _) => {
            "a mapping from a file under /tmp (like /tmp/stepjail/apt.conf) to its content"
        }
        ("network.mode", _) => "`none`, `enforce` or `audit`",
        ("network.max_connections", _) => "a positive integer, like 4096",
        ("network.allow", false) => {
            "a list of rules, like [example.com:443, \"*.example.com\", { host: example.com, ports: [80, 443] }]"
        }
        ("network.allow", true) => {
            "a rule: `host:port` text, or a mapping with `host:` or `cidr:` and `ports:`"
        }
        ("env.pass", false) => "a list of variable names or PREFIX_* patterns",
        ("env.pass", true) => "a variable name or a PREFIX_* pattern",
        ("env.set", _) => "a mapping of variable names to string values",
        ("env.scrub", false) => {
            "a list of variable names or `*` patterns, like [MY_DEPLOY_KEY, \"*_authToken\"]"
        }
        ("env.scrub", true) => "a variable name or a `*` pattern",
        ("secrets", _) => {
            "a mapping of variable names to declarations, like { NPM_TOKEN: {}, SENTRY_DSN: { optional: true } }"
        }
        ("process.timeout", _) => "a duration like 90s, 30m or 2h",
        (
            "process.limits.file_size"
            | "process.limits.address_space"
            | "process.limits.core_size",
            _,
        ) => "a size like 4096, 512M or 1G",
        (
            "process.limits.open_files" | "process.limits.processes" | "process.limits.cpu_seconds",
            _,
        ) => "a non-negative integer",
        ("process.limits.memory", _) => "a size of at least 1M, like 512M or 2G",
        ("process.limits.pids", _) => "an integer of at least 2 (processes and threads)",
        ("process.limits.cpu", _) => "a number of CPUs like 0.5, 1.5 or 2 (at least 0.01)",
        ("process.limits.enforce", _) => "`required` or `best-effort`",
        ("landlock.min_abi", _) => "an integer from 1 to 255",
        ("version", _) => "the policy format version, 1",
        ("default", _) => "a profile name",
        ("profiles" | "jobs", _) => "a mapping",
        _ if rel.starts_with("env.set.") => "a string value",
        _ if rel.starts_with("network.allow[") => match rel.rsplit_once('.') {
            Some((_, "host")) => "a host name like `example.com` or `*.example.com`",
            Some((_, "cidr")) => "an address range like `203.0.113.0/24` or `2001:db8::/32`",
            Some((_, "ports")) => "a list of ports, like [443] or [80, 443]",
            Some((_, p)) if p.starts_with("ports[") => "a port number from 1 to 65535",
            _ => return None,
        },
        _ if rel.starts_with("secrets.") => match no_index.rsplit_once('.') {
            Some((_, "optional")) => "`true` or `false`",
            Some((_, "broker")) if is_item => "a host name like `codecov.io`",
            Some((_, "broker")) => {
                "a list of host names, like [codecov.io], or a mapping like { hosts: [codecov.io], in: [header:Authorization] }"
            }
            Some((p, "hosts")) if p.ends_with(".broker") && is_item => {
                "a host name like `codecov.io`"
            }
            Some((p, "hosts")) if p.ends_with(".broker") => {
                "a list of host names, like [codecov.io]"
            }
            Some((p, "in")) if p.ends_with(".broker") && is_item => {
                "`header:NAME`, `query:NAME` or `body`"
            }
            Some((p, "in")) if p.ends_with(".broker") => {
                "a list of places, like [header:Authorization, query:token]"
            }
            _ => "a declaration: {}, { optional: true } or { broker: [HOST, ...] }",
        },
        _ if rel.starts_with("jobs.") && rel.ends_with(".profile") => "a profile name",
        _ if rel.starts_with("jobs.") => "a mapping",
        _ => return None,
    })
}

/// A position-annotated copy of the document, used only to name the key path of an error.
#[derive(Debug)]
enum Node {
    Scalar(String),
    Null,
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl Node {
    fn describe(&self) -> String {
        match self {
            Node::Scalar(s) => format!("`{s}`"),
            Node::Null => "nothing (null)".to_string(),
            Node::Seq(_) => "a list".to_string(),
            Node::Map(_) => "a mapping".to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar("(binary)".to_string()))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = a.next_key::<Spanned<String>>()? {
                    entries.push((key, a.next_value()?));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

struct Tree(Spanned<Node>);

struct KeyHit {
    /// Path of the mapping that holds the key.
    parent: String,
    key: String,
    /// For a repeated key: the line of its first occurrence.
    first_line: Option<usize>,
}

type Pos = (u64, u64);

fn pos_of(l: &serde_saphyr::Location) -> Pos {
    (l.line(), l.column())
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Tree {
    fn parse(text: &str) -> Option<Tree> {
        // Duplicates pass through so the tree can point at both occurrences.
        serde_saphyr::from_str_with_options::<Spanned<Node>>(
            text,
            options(DuplicateKeyPolicy::PassThrough),
        )
        .ok()
        .map(Tree)
    }

    /// The deepest mapping key written at `pos`.
    fn key_at(&self, pos: Pos) -> Option<KeyHit> {
        fn walk(node: &Spanned<Node>, path: &str, pos: Pos) -> Option<KeyHit> {
            match &node.value {
                Node::Map(entries) => {
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if let Some(hit) = walk(v, &join(path, &k.value), pos) {
                            return Some(hit);
                        }
                        if pos_of(&k.referenced) == pos {
                            let first_line = entries[..i]
                                .iter()
                                .find(|(other, _)| other.value == k.value)
                                .map(|(other, _)| other.referenced.line() as usize);
                            return Some(KeyHit {
                                parent: path.to_string(),
                                key: k.value.clone(),
                                first_line,
                            });
                        }
                    }
                    None
                }
                Node::Seq(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| walk(v, &format!("{path}[{i}]"), pos)),
                Node::Scalar(_) | Node::Null => None,
            }
        }
        walk(&self.0, "", pos)
    }

    /// The outermost value that starts at `pos` (a block mapping starts at its first key, so the
    /// outermost is the one the error is about).
    fn value_at(&self, pos: Pos) -> Option<(String, &Node)> {
        fn walk<'a>(node: &'a Spanned<Node>, path: &str, pos: Pos) -> Option<(String, &'a Node)> {
            if pos_of(&node.referenced) == pos {
                return Some((path.to_string(), &node.value));
            }
            match &node.value {
                Node::Map(entries) => entries
                    .iter()
                    .find_map(|(k, v)| walk(v, &join(path, &k.value), pos)),
                Node::Seq(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| walk(v, &format!("{path}[{i}]"), pos)),
                Node::Scalar(_) | Node::Null => None,
            }
        }
        walk(&self.0, "", pos)
    }

    /// The path of the deepest mapping that starts at `pos`.
    fn map_at(&self, pos: Pos) -> Option<String> {
        fn walk(node: &Spanned<Node>, path: &str, pos: Pos) -> Option<String> {
            match &node.value {
                Node::Map(entries) => entries
                    .iter()
                    .find_map(|(k, v)| walk(v, &join(path, &k.value), pos))
                    .or_else(|| (pos_of(&node.referenced) == pos).then(|| path.to_string())),
                Node::Seq(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| walk(v, &format!("{path}[{i}]"), pos)),
                Node::Scalar(_) | Node::Null => None,
            }
        }
        walk(&self.0, "", pos)
    }
}

/// A YAML mapping kept in file order with the position of every key; used where the keys are
/// data (`env.set`, `jobs`, `steps`, `profiles`) rather than schema.
#[derive(Debug)]
pub(crate) struct SpannedMap<V>(pub Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SpannedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = SpannedMap<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = a.next_key::<Spanned<String>>()? {
                    entries.push((key, a.next_value()?));
                }
                Ok(SpannedMap(entries))
            }
            // An empty value (`set:`) is an empty mapping, like an absent key.
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(SpannedMap(Vec::new()))
            }
        }
        d.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: Option<Vec<String>>,
        b: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    fn err(text: &str) -> String {
        parse::<Outer>(text, "t.yml").unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_names_parent_path_and_position() {
        assert_eq!(
            err("name: x\ninner:\n  c: 1\n"),
            "t.yml:3:3: unknown key `c` in `inner` (expected one of: a, b)"
        );
        assert_eq!(
            err("nme: x\n"),
            "t.yml:1:1: unknown key `nme` in the top level (expected one of: name, inner)"
        );
    }

    #[test]
    fn duplicate_key_points_at_second_and_names_first() {
        assert_eq!(
            err("name: x\ninner:\n  b: 1\n  b: 2\n"),
            "t.yml:4:3: duplicate key `b` in `inner` (first written at line 3)"
        );
    }

    #[test]
    fn wrong_type_names_path_and_what_was_found() {
        assert_eq!(
            err("name: x\ninner:\n  a: 5\n"),
            "t.yml:3:6: `inner.a`: expected a list, found `5`"
        );
        assert_eq!(
            err("name: x\ninner:\n  a: [x, [y]]\n"),
            "t.yml:3:10: `inner.a[1]`: expected a string, found a list"
        );
        assert_eq!(
            err("name: [x]\n"),
            "t.yml:1:7: `name`: expected a profile name like `default`, found a list"
        );
    }

    #[test]
    fn missing_key_is_reported() {
        assert_eq!(
            err("inner: {}\n"),
            "t.yml:1:1: missing key `name` in the top level (it is required)"
        );
    }

    #[test]
    fn hostile_inputs_fail_fast() {
        let start = std::time::Instant::now();
        let e = err(&"[".repeat(10_000));
        assert!(e.starts_with("t.yml:1:"), "{e}");
        assert!(e.contains("refusing input"), "{e}");
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = err(&bomb);
        assert!(
            e.contains("refusing input") || e.contains("unknown key"),
            "{e}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn several_documents_and_merge_keys_are_refused() {
        assert!(err("name: x\n---\nname: y\n").contains("second YAML document"));
        let e = err("<<: {name: x}\n");
        assert!(e.contains("merge keys"), "{e}");
    }

    #[test]
    fn expected_for_knows_inline_profiles() {
        assert_eq!(
            expected_for("profiles.ci.process.timeout"),
            expected_for("process.timeout")
        );
        assert_eq!(
            expected_for("filesystem.hidden[3]"),
            Some("a path (a string starting with / or a variable like $HOME)")
        );
    }
}
