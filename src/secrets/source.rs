//! Where secret values come from: a dotenv file, the JSON `${{ toJSON(secrets) }}` produces, or
//! the invoking environment; and [`resolve`], which picks each declared secret's value.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::error::SecretsError;
use super::wipe::{wipe_string, wipe_vec};
use crate::policy::model::SecretDecl;

/// Largest secrets file read. `toJSON(secrets)` of an organisation with hundreds of secrets is a
/// few tens of kilobytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Secret values by name, from one source. `Debug` prints the names only, and the values are
/// overwritten when this is dropped. Not `Clone`: every copy is one more place a value lives.
pub struct SecretValues {
    origin: String,
    values: BTreeMap<String, String>,
}

impl SecretValues {
    /// An empty set; `origin` names the source in messages (a path, `environment`, ...).
    pub fn new(origin: impl Into<String>) -> Self {
        SecretValues {
            origin: origin.into(),
            values: BTreeMap::new(),
        }
    }

    /// Where these values came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Set `name`; a value it replaces is overwritten.
    pub fn insert(&mut self, name: String, value: String) {
        if let Some(mut old) = self.values.insert(name, value) {
            wipe_string(&mut old);
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValues")
            .field("origin", &self.origin)
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Drop for SecretValues {
    fn drop(&mut self) {
        for value in self.values.values_mut() {
            wipe_string(value);
        }
    }
}

/// A value being built by a parser: overwritten if parsing fails half way.
struct Scratch(String);

impl Drop for Scratch {
    fn drop(&mut self) {
        wipe_string(&mut self.0);
    }
}

impl Scratch {
    fn take(mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

const NOT_KEY_VALUE: &str = "not a KEY=VALUE line (KEY is a variable name: [A-Za-z_][A-Za-z0-9_]*)";
const UNTERMINATED_DOUBLE: &str = "the double-quoted value has no closing `\"`";
const UNTERMINATED_SINGLE: &str = "the single-quoted value has no closing `'`";
const TEXT_AFTER_QUOTE: &str =
    "unexpected text after the closing quote (only a `# comment` may follow)";

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse dotenv text: `KEY=VALUE` lines, `# comments`, blank lines, an optional `export `
/// prefix. Values are read as:
/// - unquoted: up to the end of the line, trimmed; ` #` (whitespace, then `#`) starts a comment,
///   so quote a value that contains one;
/// - `'single-quoted'`: literally, and may span lines;
/// - `"double-quoted"`: `\n`, `\r`, `\t`, `\"` and `\\` are escapes (any other `\x` is kept as
///   written), and may span lines.
///
/// A name defined twice is an error rather than "last wins": one of the two is a mistake.
/// `origin` names the source in errors, which never contain a value.
pub fn from_dotenv(text: &str, origin: &str) -> Result<SecretValues, SecretsError> {
    let mut out = SecretValues::new(origin);
    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut pos = 0;
    let mut line = 1;
    while pos < text.len() {
        let start_line = line;
        let eol = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let physical = text[pos..eol].trim_end_matches('\r');
        let body = physical.trim_start_matches([' ', '\t']);
        if body.is_empty() || body.starts_with('#') {
            pos = eol + 1;
            line += 1;
            continue;
        }
        let err = |key: Option<&str>, problem| SecretsError::Dotenv {
            origin: origin.to_string(),
            line: start_line,
            key: key.map(str::to_string),
            problem,
        };
        let body = match body.strip_prefix("export") {
            Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start_matches([' ', '\t']),
            _ => body,
        };
        let Some((key, after)) = body.split_once('=') else {
            return Err(err(None, NOT_KEY_VALUE));
        };
        let key = key.trim_end_matches([' ', '\t']);
        if !valid_name(key) {
            return Err(err(None, NOT_KEY_VALUE));
        }
        // Where `after` starts in `text`, to scan quoted values past the end of this line.
        let after_at = after.as_ptr() as usize - text.as_ptr() as usize;
        let value_text = after.trim_start_matches([' ', '\t']);
        let value_at = value_text.as_ptr() as usize - text.as_ptr() as usize;

        let value = match value_text.as_bytes().first() {
            Some(&q @ (b'"' | b'\'')) => {
                let (value, close) = quoted(text, value_at + 1, q, &mut line).ok_or_else(|| {
                    err(
                        Some(key),
                        if q == b'"' {
                            UNTERMINATED_DOUBLE
                        } else {
                            UNTERMINATED_SINGLE
                        },
                    )
                })?;
                // The rest of the line the value closes on: nothing, or a comment.
                let end = text[close..].find('\n').map_or(text.len(), |i| close + i);
                let tail = text[close..end].trim_matches([' ', '\t', '\r']);
                if !tail.is_empty() && !tail.starts_with('#') {
                    return Err(err(Some(key), TEXT_AFTER_QUOTE));
                }
                pos = end + 1;
                value
            }
            _ => {
                let raw = &text[after_at..eol];
                let raw = raw.strip_suffix('\r').unwrap_or(raw);
                let mut cut = raw.len();
                for (i, c) in raw.char_indices() {
                    if c == '#' && i > 0 && matches!(raw.as_bytes()[i - 1], b' ' | b'\t') {
                        cut = i;
                        break;
                    }
                }
                pos = eol + 1;
                Scratch(raw[..cut].trim_matches([' ', '\t']).to_string())
            }
        };
        line += 1;

        if value.0.contains('\0') {
            return Err(SecretsError::NulInValue {
                origin: format!("{origin}:{start_line}"),
                key: key.to_string(),
            });
        }
        if let Some(&first_line) = first_seen.get(key) {
            return Err(SecretsError::DuplicateKey {
                origin: origin.to_string(),
                line: start_line,
                key: key.to_string(),
                first_line,
            });
        }
        first_seen.insert(key.to_string(), start_line);
        out.insert(key.to_string(), value.take());
    }
    Ok(out)
}

/// Read a quoted value starting just after the opening quote at `start`. Returns the value and
/// the offset just past the closing quote; `line` is advanced by the newlines inside.
fn quoted(text: &str, start: usize, quote: u8, line: &mut usize) -> Option<(Scratch, usize)> {
    let mut value = Scratch(String::new());
    let mut chars = text[start..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' if quote == b'"' => return Some((value, start + i + 1)),
            '\'' if quote == b'\'' => return Some((value, start + i + 1)),
            '\\' if quote == b'"' => match chars.next() {
                Some((_, 'n')) => value.0.push('\n'),
                Some((_, 'r')) => value.0.push('\r'),
                Some((_, 't')) => value.0.push('\t'),
                Some((_, '"')) => value.0.push('"'),
                Some((_, '\\')) => value.0.push('\\'),
                Some((_, other)) => {
                    if other == '\n' {
                        *line += 1;
                    }
                    value.0.push('\\');
                    value.0.push(other);
                }
                None => return None,
            },
            '\r' if text[start + i + 1..].starts_with('\n') => {}
            '\n' => {
                *line += 1;
                value.0.push('\n');
            }
            c => value.0.push(c),
        }
    }
    None
}

/// Parse the JSON object `${{ toJSON(secrets) }}` produces: names to string values. A value of
/// any other type is an error naming its key, as is a key written twice.
pub fn from_json(text: &str, origin: &str) -> Result<SecretValues, SecretsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Our own errors travel beside serde's: serde's messages for a wrong type quote the input.
    let problem: RefCell<Option<SecretsError>> = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = (&mut de)
        .deserialize_map(JsonSecrets {
            origin,
            problem: &problem,
        })
        .and_then(|values| de.end().map(|()| values));
    match parsed {
        Ok(values) => Ok(values),
        Err(e) => Err(match problem.into_inner() {
            Some(ours) => ours,
            None if e.is_data() => SecretsError::JsonNotObject {
                origin: origin.to_string(),
                found: json_kind_at_start(text),
            },
            None => {
                let message = e.to_string();
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                SecretsError::Json {
                    origin: origin.to_string(),
                    line: e.line(),
                    column: e.column(),
                    problem: message
                        .strip_suffix(&suffix)
                        .unwrap_or(&message)
                        .to_string(),
                }
            }
        }),
    }
}

/// What a top-level JSON value is, from its first byte, without reading (or quoting) it.
fn json_kind_at_start(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'[') => "a list",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

struct JsonSecrets<'a> {
    origin: &'a str,
    problem: &'a RefCell<Option<SecretsError>>,
}

impl<'de> Visitor<'de> for JsonSecrets<'_> {
    type Value = SecretValues;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretValues, A::Error> {
        let mut out = SecretValues::new(self.origin);
        let fail = |e: SecretsError| {
            *self.problem.borrow_mut() = Some(e);
            de::Error::custom("see the recorded problem")
        };
        while let Some(key) = map.next_key::<String>()? {
            let value: serde_json::Value = map.next_value()?;
            let serde_json::Value::String(value) = value else {
                return Err(fail(SecretsError::JsonNotString {
                    origin: self.origin.to_string(),
                    found: json_kind(&value),
                    key,
                }));
            };
            let value = Scratch(value);
            if out.contains(&key) {
                return Err(fail(SecretsError::JsonDuplicateKey {
                    origin: self.origin.to_string(),
                    key,
                }));
            }
            if value.0.contains('\0') {
                return Err(fail(SecretsError::NulInValue {
                    origin: self.origin.to_string(),
                    key,
                }));
            }
            out.insert(key, value.take());
        }
        Ok(out)
    }
}

/// Read a secrets file, JSON when its first non-blank character is `{`, dotenv otherwise. The
/// file is read once, start to end, so `/dev/fd/N` (a pipe from the runner) works too.
pub fn load_file(path: &Path) -> Result<SecretValues, SecretsError> {
    let file = path.display().to_string();
    let read_err = |source| SecretsError::Read {
        file: file.clone(),
        source,
    };
    let f = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    // One byte past the limit tells an oversized file without reading all of it.
    let read = f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes);
    if let Err(e) = read {
        wipe_vec(&mut bytes);
        return Err(read_err(e));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        wipe_vec(&mut bytes);
        return Err(SecretsError::TooLarge {
            file,
            max: MAX_FILE_BYTES,
        });
    }
    let mut text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            wipe_vec(&mut e.into_bytes());
            return Err(SecretsError::NotUtf8 {
                origin: file,
                offset,
            });
        }
    };
    let parsed = parse_text(&text, &file);
    wipe_string(&mut text);
    parsed
}

/// Parse secrets text: JSON when its first non-blank character is `{`, dotenv otherwise.
pub fn parse_text(text: &str, origin: &str) -> Result<SecretValues, SecretsError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    if body.trim_start().starts_with('{') {
        from_json(text, origin)
    } else {
        from_dotenv(text, origin)
    }
}

/// The value of each declared secret: from `file` when it has a non-empty one, else from the
/// invoking environment `env`. An empty value counts as not provided (GitHub Actions expands an
/// unset secret to an empty string). A missing optional secret is skipped; missing required
/// ones are one error naming all of them.
///
/// Brokered secrets are resolved like the others; the caller decides where the value goes.
pub fn resolve(
    decls: &[SecretDecl],
    file: Option<&SecretValues>,
    env: &[(String, String)],
) -> Result<Vec<(String, String)>, SecretsError> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for d in decls {
        let from_file = file.and_then(|f| f.get(&d.name)).filter(|v| !v.is_empty());
        let from_env = || {
            env.iter()
                .find(|(name, _)| *name == d.name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        match from_file.or_else(from_env) {
            Some(value) => out.push((d.name.clone(), value.to_string())),
            None if d.optional => {}
            None => missing.push(d.name.clone()),
        }
    }
    if !missing.is_empty() {
        for (_, value) in &mut out {
            wipe_string(value);
        }
        return Err(SecretsError::Missing {
            names: missing,
            file: file.map(|f| f.origin().to_string()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::Location;

    fn dotenv(text: &str) -> Vec<(String, String)> {
        let v = from_dotenv(text, "s.env").unwrap();
        v.names()
            .map(|n| (n.to_string(), v.get(n).unwrap().to_string()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn dotenv_err(text: &str) -> String {
        from_dotenv(text, "s.env").unwrap_err().to_string()
    }

    #[test]
    fn dotenv_lines_comments_export_and_whitespace() {
        let text = "# a comment\n\n  A=1\nexport B = two words  \n\texport\tC=3\r\nD=\nE=a=b\n   # indented comment\nF=x # trailing comment\nG=x#not-a-comment\nH= # only a comment\n";
        assert_eq!(
            dotenv(text),
            pairs(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "3"),
                ("D", ""),
                ("E", "a=b"),
                ("F", "x"),
                ("G", "x#not-a-comment"),
                ("H", ""),
            ])
        );
        // `export` alone is a name, not a prefix.
        assert_eq!(dotenv("export=1"), pairs(&[("export", "1")]));
        assert_eq!(dotenv("exportX=1"), pairs(&[("exportX", "1")]));
        assert_eq!(dotenv(""), pairs(&[]));
        assert_eq!(dotenv("\u{feff}A=1"), pairs(&[("A", "1")]));
    }

    #[test]
    fn dotenv_quoted_values() {
        assert_eq!(
            dotenv(r#"A="x \"y\" \\ z\n\t" # c"#),
            pairs(&[("A", "x \"y\" \\ z\n\t")])
        );
        assert_eq!(dotenv(r#"A="a\qb""#), pairs(&[("A", "a\\qb")]));
        assert_eq!(
            dotenv(r"A='no \n escapes # here'"),
            pairs(&[("A", "no \\n escapes # here")])
        );
        assert_eq!(dotenv(r#"A='it"s'"#), pairs(&[("A", "it\"s")]));
        assert_eq!(dotenv(r#"A="it's""#), pairs(&[("A", "it's")]));
        assert_eq!(dotenv("A=\"\"\nB=''"), pairs(&[("A", ""), ("B", "")]));
        assert_eq!(dotenv("A=\"  padded  \""), pairs(&[("A", "  padded  ")]));
    }

    #[test]
    fn dotenv_values_may_span_lines_and_line_numbers_follow() {
        let text =
            "KEY=\"-----BEGIN KEY-----\nMIIEvQ==\n-----END KEY-----\"\nB='x\r\ny'\nC=3\nC=4\n";
        let err = from_dotenv(text, "s.env").unwrap_err().to_string();
        assert_eq!(err, "s.env:7: `C` is defined twice (first at line 6)");
        let ok = from_dotenv(&text.replace("C=4\n", ""), "s.env").unwrap();
        assert_eq!(
            ok.get("KEY"),
            Some("-----BEGIN KEY-----\nMIIEvQ==\n-----END KEY-----")
        );
        assert_eq!(ok.get("B"), Some("x\ny"));
    }

    #[test]
    fn dotenv_errors_name_line_and_key_never_the_value() {
        assert_eq!(
            dotenv_err("A=1\njust-some-text\n"),
            "s.env:2: not a KEY=VALUE line (KEY is a variable name: [A-Za-z_][A-Za-z0-9_]*)"
        );
        // A stray line of a pasted key: the text before `=` may be part of a value.
        let e = dotenv_err("MIIEv+QIB/ADANBgkq=\n");
        assert_eq!(
            e,
            "s.env:1: not a KEY=VALUE line (KEY is a variable name: [A-Za-z_][A-Za-z0-9_]*)"
        );
        assert_eq!(
            dotenv_err("A=1\nB=\"open\n\nC=2\n"),
            "s.env:2: `B`: the double-quoted value has no closing `\"`"
        );
        assert_eq!(
            dotenv_err("B='open"),
            "s.env:1: `B`: the single-quoted value has no closing `'`"
        );
        assert_eq!(
            dotenv_err("B=\"ends in backslash\\"),
            "s.env:1: `B`: the double-quoted value has no closing `\"`"
        );
        assert_eq!(
            dotenv_err("B=\"hunter2\"hunter3\n"),
            "s.env:1: `B`: unexpected text after the closing quote (only a `# comment` may follow)"
        );
        assert_eq!(
            dotenv_err("\n\nB=\"a\\u0000\0\"\n"),
            "s.env:3: `B`: the value contains a NUL byte, which no environment variable can hold"
        );
        assert_eq!(
            dotenv_err("1A=x"),
            "s.env:1: not a KEY=VALUE line (KEY is a variable name: [A-Za-z_][A-Za-z0-9_]*)"
        );
        assert_eq!(
            dotenv_err("A B=x"),
            "s.env:1: not a KEY=VALUE line (KEY is a variable name: [A-Za-z_][A-Za-z0-9_]*)"
        );
    }

    #[test]
    fn json_objects_of_strings() {
        let v = from_json(
            r#"{ "github_token": "ghs_x", "NPM_TOKEN": "n\"p\u00e9m\n" }"#,
            "s.json",
        )
        .unwrap();
        assert_eq!(v.get("github_token"), Some("ghs_x"));
        assert_eq!(v.get("NPM_TOKEN"), Some("n\"pém\n"));
        assert_eq!(v.len(), 2);
        assert!(from_json("{}", "s.json").unwrap().is_empty());
    }

    #[test]
    fn json_errors_name_key_and_kind_never_the_value() {
        let e = |t: &str| from_json(t, "s.json").unwrap_err().to_string();
        assert_eq!(
            e(r#"{"A": "x", "B": 123456}"#),
            "s.json: `B` is a number, not a string (secret values must be strings)"
        );
        assert_eq!(
            e(r#"{"B": {"nested": "hunter2"}}"#),
            "s.json: `B` is an object, not a string (secret values must be strings)"
        );
        assert_eq!(
            e(r#"{"B": null}"#),
            "s.json: `B` is null, not a string (secret values must be strings)"
        );
        assert_eq!(
            e(r#"{"B": "x", "B": "hunter2"}"#),
            "s.json: `B` is defined twice"
        );
        assert_eq!(
            e(r#"{"B": "a\u0000b"}"#),
            "s.json: `B`: the value contains a NUL byte, which no environment variable can hold"
        );
        assert_eq!(
            e(r#""hunter2""#),
            "s.json: expected a JSON object of names to string values (what `${{ toJSON(secrets) }}` produces), found a string"
        );
        assert_eq!(
            e("[\"hunter2\"]"),
            "s.json: expected a JSON object of names to string values (what `${{ toJSON(secrets) }}` produces), found a list"
        );
        assert_eq!(
            e("{\"A\": \"hunter2\",\n}"),
            "s.json:2:1: invalid JSON: trailing comma"
        );
        assert_eq!(
            e("{\"A\": \"hunter2\"} x"),
            "s.json:1:18: invalid JSON: trailing characters"
        );
        assert_eq!(
            e("{\"A\": \"hunter2"),
            "s.json:1:14: invalid JSON: EOF while parsing a string"
        );
    }

    #[test]
    fn debug_prints_names_only() {
        let v = from_dotenv("NPM_TOKEN=npm_SENTINEL\n", "s.env").unwrap();
        let shown = format!("{v:?}");
        assert_eq!(
            shown,
            r#"SecretValues { origin: "s.env", names: ["NPM_TOKEN"], .. }"#
        );
    }

    #[test]
    fn load_file_picks_the_format_and_reads_pipes() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("s.json");
        std::fs::write(&json, "\n  {\"A\": \"1\"}").unwrap();
        assert_eq!(load_file(&json).unwrap().get("A"), Some("1"));
        let env = dir.path().join("s.env");
        std::fs::write(&env, "A=2\n").unwrap();
        assert_eq!(load_file(&env).unwrap().get("A"), Some("2"));
        let big = dir.path().join("big.env");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(
            load_file(&big).unwrap_err().to_string(),
            format!(
                "{}: secrets file is larger than 1048576 bytes",
                big.display()
            )
        );
        let bad = dir.path().join("bad.env");
        std::fs::write(&bad, b"A=\xff\n").unwrap();
        assert_eq!(
            load_file(&bad).unwrap_err().to_string(),
            format!(
                "{}: not UTF-8 text (invalid byte at offset 2)",
                bad.display()
            )
        );
        let missing = dir.path().join("nope.env");
        let e = load_file(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: cannot read secrets: ", missing.display())),
            "{e}"
        );
    }

    fn decl(name: &str, optional: bool) -> SecretDecl {
        SecretDecl {
            name: name.to_string(),
            optional,
            broker: Vec::new(),
            broker_in: Vec::new(),
            at: Location {
                file: "p.yml".into(),
                line: 1,
                column: 1,
            },
            key: format!("secrets.{name}"),
        }
    }

    #[test]
    fn resolve_prefers_the_file_then_the_environment() {
        let file = from_dotenv("A=from-file\nC=\n", "s.env").unwrap();
        let env = pairs(&[
            ("A", "from-env"),
            ("B", "env-b"),
            ("C", "env-c"),
            ("X", "x"),
        ]);
        let decls = [decl("A", false), decl("B", false), decl("C", false)];
        assert_eq!(
            resolve(&decls, Some(&file), &env).unwrap(),
            pairs(&[("A", "from-file"), ("B", "env-b"), ("C", "env-c")])
        );
        // Only what is declared: X is in the environment but not returned.
        assert_eq!(
            resolve(&[decl("A", false)], None, &env).unwrap(),
            pairs(&[("A", "from-env")])
        );
    }

    #[test]
    fn resolve_skips_missing_optional_and_names_all_missing_required() {
        let file = from_dotenv("A=1\nE=\n", "s.env").unwrap();
        let env = pairs(&[("E", "")]);
        let decls = [
            decl("A", false),
            decl("OPT", true),
            decl("M1", false),
            decl("E", false),
        ];
        assert_eq!(
            resolve(&decls, Some(&file), &env).unwrap_err().to_string(),
            "secrets `M1`, `E` are declared by the profile but not provided (looked in s.env, then the invoking environment; an empty value counts as not provided; declare it with `optional: true` to run without it)"
        );
        assert_eq!(
            resolve(&[decl("M1", false)], None, &[])
                .unwrap_err()
                .to_string(),
            "secret `M1` is declared by the profile but not provided (looked in the invoking environment; an empty value counts as not provided; declare it with `optional: true` to run without it)"
        );
        assert_eq!(
            resolve(&decls[..2], Some(&file), &env).unwrap(),
            pairs(&[("A", "1")])
        );
    }
}
