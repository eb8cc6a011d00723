//! The stage scripts GitLab Runner hands to `run_exec`, reduced to what a stage may see.
//!
//! Every stage script the runner generates exports *all* the job's variables first, the job
//! token among them (`CI_JOB_TOKEN`, and inside `CI_REPOSITORY_URL`, `CI_REGISTRY_PASSWORD`,
//! ...). Upstream, `shells/bash.go` (gitlabhq/gitlab-runner): `BashWriter.Variable` writes
//! `export KEY=<escaped value>` (a file variable: `printf '%s' <escaped value> > "<path>"`
//! then `export KEY="<path>"`), and `BashWriter.Finish` wraps the whole body in one
//! `eval <escaped body>` line (`(trap ...; eval $'...') < /dev/null`, or `: | eval $'...'`
//! under FF_USE_LEGACY_BASH_EVAL). Escaping is `helpers.ShellEscape` (`$'...'` ANSI-C quoting,
//! `helpers/shell_escape.go`) or `helpers.PosixShellEscape` (double quotes) under
//! FF_POSIXLY_CORRECT_ESCAPES. Running that file as it is would put the token in the
//! sandbox, so [`rewrite`] decodes the body, drops the lines that carry withheld variables,
//! re-encodes it, and checks that no withheld value (raw or escaped) is left anywhere.
//! Anything it cannot parse is refused: the stage fails as a system failure.

/// Values shorter than this are not searched for as text (GitLab's own minimum for a masked
/// value is 8 characters); withheld variables are still dropped by name whatever their length.
pub const MIN_SEARCHED: usize = 8;

#[derive(Debug, PartialEq, Eq)]
pub struct ScriptError(pub String);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One variable the stage must not see.
pub struct Withheld<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub file: bool,
}

fn err(msg: impl Into<String>) -> ScriptError {
    ScriptError(msg.into())
}

/// `helpers.ShellEscape`, byte for byte.
pub fn shell_escape(input: &str) -> String {
    if input.is_empty() {
        return "''".into();
    }
    let mut out = String::new();
    let mut quote = false;
    for &c in input.as_bytes() {
        match c {
            b'\x07' => out.push_str("\\a"),
            b'\x08' => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\x0b' => out.push_str("\\v"),
            b'\x0c' => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            b',' | b'-' | b'.' | b'/' | b'@' | b'_' => {
                out.push(c as char);
                continue;
            }
            c if c.is_ascii_alphanumeric() => {
                out.push(c as char);
                continue;
            }
            b' ' | b'!' | b'"' | b'#' | b'$' | b'%' | b'&' | b'(' | b')' | b'*' | b'+' | b':'
            | b';' | b'<' | b'=' | b'>' | b'?' | b'[' | b']' | b'^' | b'`' | b'{' | b'|' | b'}'
            | b'~' => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
        quote = true;
    }
    if quote { format!("$'{out}'") } else { out }
}

/// `helpers.PosixShellEscape`, byte for byte.
pub fn posix_escape(input: &str) -> String {
    if input.is_empty() {
        return "''".into();
    }
    let mut out = String::new();
    let mut quote = false;
    for c in input.chars() {
        match c {
            '`' | '"' | '\\' | '$' => {
                out.push('\\');
                out.push(c);
                quote = true;
            }
            ' ' | '!' | '#' | '%' | '&' | '(' | ')' | '*' | '<' | '=' | '>' | '?' | '[' | '|' => {
                out.push(c);
                quote = true;
            }
            c => out.push(c),
        }
    }
    if quote { format!("\"{out}\"") } else { out }
}

/// Decodes one shell word as the two escapers write it; returns (value, bytes used, posix?).
fn unescape_word(s: &str) -> Result<(String, usize, bool), ScriptError> {
    let b = s.as_bytes();
    if let Some(rest) = s.strip_prefix("$'") {
        let mut out: Vec<u8> = Vec::new();
        let rb = rest.as_bytes();
        let mut i = 0;
        while i < rb.len() {
            match rb[i] {
                b'\'' => return Ok((bytes_to_string(out)?, 2 + i + 1, false)),
                b'\\' => {
                    let e = *rb.get(i + 1).ok_or_else(|| err("escape at the end"))?;
                    i += 2;
                    out.push(match e {
                        b'a' => 7,
                        b'b' => 8,
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'v' => 11,
                        b'f' => 12,
                        b'r' => b'\r',
                        b'\'' => b'\'',
                        b'\\' => b'\\',
                        b'x' => {
                            let h = rest
                                .get(i..i + 2)
                                .and_then(|h| u8::from_str_radix(h, 16).ok())
                                .ok_or_else(|| err("bad \\x escape"))?;
                            i += 2;
                            h
                        }
                        other => {
                            return Err(err(format!(
                                "an escape GitLab Runner does not write: \\{}",
                                other as char
                            )));
                        }
                    });
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        Err(err("unterminated $'...'"))
    } else if s.starts_with("''") {
        Ok((String::new(), 2, false))
    } else if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Ok((out, 1 + i + 1, true)),
                '\\' => match chars.next() {
                    Some((_, e @ ('`' | '"' | '\\' | '$'))) => out.push(e),
                    _ => return Err(err("a backslash GitLab Runner does not write")),
                },
                c => out.push(c),
            }
        }
        Err(err("unterminated \"...\""))
    } else {
        // A bare word: up to white space or the end.
        let end = b
            .iter()
            .position(|c| c.is_ascii_whitespace() || *c == b')' || *c == b';')
            .unwrap_or(b.len());
        if end == 0 {
            return Err(err("an empty word"));
        }
        Ok((s[..end].to_string(), end, false))
    }
}

fn bytes_to_string(b: Vec<u8>) -> Result<String, ScriptError> {
    String::from_utf8(b).map_err(|_| err("the script body is not UTF-8"))
}

/// The stage script with every withheld variable removed. `script` is the runner's file.
pub fn rewrite(script: &str, withheld: &[Withheld]) -> Result<String, ScriptError> {
    let mut lines: Vec<String> = Vec::new();
    let mut found = false;
    for line in script.split_inclusive('\n') {
        let Some(at) = line.find("eval ").filter(|_| !found) else {
            lines.push(line.to_string());
            continue;
        };
        found = true;
        let word_at = at + "eval ".len();
        let (body, used, posix) = unescape_word(&line[word_at..])?;
        let reduced = reduce_body(&body, withheld)?;
        let escaped = if posix {
            posix_escape(&reduced)
        } else {
            shell_escape(&reduced)
        };
        lines.push(format!(
            "{}{}{}",
            &line[..word_at],
            escaped,
            &line[word_at + used..]
        ));
    }
    if !found {
        return Err(err(
            "no `eval` line: not a script GitLab Runner's bash shell wrote (only bash and sh are supported)",
        ));
    }
    let out = lines.concat();
    // Nothing withheld may be left in the file, in any of the forms it could take there.
    for w in withheld.iter().filter(|w| w.value.len() >= MIN_SEARCHED) {
        let forms = [
            w.value.to_string(),
            shell_escape(w.value),
            posix_escape(w.value),
            shell_escape(&shell_escape(w.value)),
            posix_escape(&posix_escape(w.value)),
        ];
        if forms.iter().any(|f| out.contains(f.as_str())) {
            return Err(err(format!(
                "the value of {} is still in the script after it was reduced",
                w.key
            )));
        }
    }
    Ok(out)
}

fn reduce_body(body: &str, withheld: &[Withheld]) -> Result<String, ScriptError> {
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        let t = line.trim_start();
        let drop = withheld.iter().any(|w| {
            let by_name = t
                .strip_prefix("export ")
                .and_then(|r| r.strip_prefix(w.key))
                .is_some_and(|r| r.starts_with('='));
            let file_line = w.file
                && (t.starts_with(&format!("printf '%s' {} > ", shell_escape(w.value)))
                    || t.starts_with(&format!("printf '%s' {} > ", posix_escape(w.value))));
            let by_value = w.value.len() >= MIN_SEARCHED
                && (line.contains(w.value)
                    || line.contains(&shell_escape(w.value))
                    || line.contains(&posix_escape(w.value)));
            by_name || file_line || by_value
        });
        if !drop {
            out.push_str(line);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage script shaped as `BashWriter.Finish` writes it.
    fn generated(body: &str) -> String {
        format!(
            "#!/usr/bin/env bash\n\ntrap exit 1 TERM\n\nset +o noclobber\n(trap exit 1 TERM; eval {}) < /dev/null\nexit 0\n",
            shell_escape(body)
        )
    }

    #[test]
    fn escapers_match_the_runner() {
        assert_eq!(shell_escape(""), "''");
        assert_eq!(shell_escape("abc-1.2/x@y_z,"), "abc-1.2/x@y_z,");
        assert_eq!(shell_escape("a b"), "$'a b'");
        assert_eq!(shell_escape("it's\n"), "$'it\\'s\\n'");
        assert_eq!(shell_escape("é"), "$'\\xc3\\xa9'");
        assert_eq!(posix_escape("a$b"), "\"a\\$b\"");
        assert_eq!(posix_escape("plain"), "plain");
        for s in ["a b", "x'y\\z\n\t", "é$`\"", ""] {
            assert_eq!(unescape_word(&shell_escape(s)).unwrap().0, s);
            assert_eq!(unescape_word(&posix_escape(s)).unwrap().0, s);
        }
    }

    #[test]
    fn withheld_exports_and_file_variables_are_removed() {
        let token = "glcbt-64_abcdefgh1234567890";
        let body = format!(
            "export CI_JOB_TOKEN={t}\nexport CI_REPOSITORY_URL=$'https://gitlab-ci-token:{t}@gitlab.test/g/p.git'\nexport CI_PROJECT_PATH=g/p\nmkdir -p \"/b/.tmp\"\nprintf '%s' $'s3cr3t value!' > \"/b/.tmp/KEYFILE\"\nexport KEYFILE=\"/b/.tmp/KEYFILE\"\necho hi\n",
            t = token
        );
        let script = generated(&body);
        let w = [
            Withheld {
                key: "CI_JOB_TOKEN",
                value: token,
                file: false,
            },
            Withheld {
                key: "KEYFILE",
                value: "s3cr3t value!",
                file: true,
            },
        ];
        let out = rewrite(&script, &w).unwrap();
        assert!(!out.contains(token), "{out}");
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(out.contains("CI_PROJECT_PATH=g/p"), "{out}");
        assert!(out.contains("echo hi"), "{out}");
        assert!(out.starts_with("#!/usr/bin/env bash\n"));
        // Nothing withheld: the script is unchanged.
        assert_eq!(rewrite(&script, &[]).unwrap(), script);
    }

    #[test]
    fn unknown_shapes_are_refused() {
        for (script, why) in [
            ("#!/bin/sh\necho $CI_JOB_TOKEN\n", "no `eval` line"),
            (
                "eval $'\\q'\n",
                "an escape GitLab Runner does not write: \\q",
            ),
            ("eval $'unterminated\n", "unterminated $'...'"),
        ] {
            let e = rewrite(script, &[]).unwrap_err().to_string();
            assert!(e.contains(why), "{script:?}: {e}");
        }
    }
}
