use super::env_file::delimiter_for;
use super::path::reader_lines;
use super::*;
use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

fn entry(name: &str, value: &str, line: usize) -> EnvEntry {
    EnvEntry {
        name: name.to_string(),
        value: value.to_string(),
        line,
    }
}

/// The (name, value, line) triples of `text`, which must parse.
fn parsed(text: &str) -> Vec<(String, String, usize)> {
    parse_env_file(text)
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value, e.line))
        .collect()
}

fn triple(name: &str, value: &str, line: usize) -> (String, String, usize) {
    (name.to_string(), value.to_string(), line)
}

fn parse_failure(text: &str) -> (usize, String) {
    match parse_env_file(text) {
        Err(FileCommandError::Parse { line, problem }) => (line, problem),
        other => panic!("{text:?}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn plain_entries() {
    assert_eq!(
        parsed("A=1\n\nB=\nC=x=y\nD=x<<y\n"),
        vec![
            triple("A", "1", 1),
            triple("B", "", 3),
            triple("C", "x=y", 4),
            triple("D", "x<<y", 5),
        ]
    );
    // No final newline; a `\r` stays in the value; a name is taken as written.
    assert_eq!(
        parsed("A=1\r\nb c=2"),
        vec![triple("A", "1\r", 1), triple("b c", "2", 2)]
    );
    assert_eq!(parsed(""), vec![]);
    assert_eq!(parsed("\n\n"), vec![]);
}

#[test]
fn heredoc_entries() {
    assert_eq!(
        parsed("A<<EOF\nline 1\nx=y\n\nEOF\nB=2\n"),
        vec![triple("A", "line 1\nx=y\n", 1), triple("B", "2", 6)]
    );
    // Empty value; `<<` before `=` is a heredoc whose delimiter holds the `=`.
    assert_eq!(
        parsed("A<<EOF\nEOF\nB<<X=Y\nv\nX=Y"),
        vec![triple("A", "", 1), triple("B", "v", 3)]
    );
    // A delimiter line must match exactly: `EOF\r` and ` EOF` do not end `EOF`.
    assert_eq!(
        parsed("A<<EOF\nEOF\r\n EOF\nEOF\n"),
        vec![triple("A", "EOF\r\n EOF", 1)]
    );
    // With CRLF line ends the delimiter itself ends in `\r`, and so do the lines.
    assert_eq!(
        parsed("A<<EOF\r\nx\r\nEOF\r\n"),
        vec![triple("A", "x\r", 1)]
    );
    // `A<<<EOF`: the first `<<` splits.
    assert_eq!(parsed("A<<<E\nv\n<E\n"), vec![triple("A", "v", 1)]);
}

#[test]
fn byte_order_mark_is_dropped_like_the_runner_does() {
    assert_eq!(
        parsed("\u{feff}LD_PRELOAD=x\n"),
        vec![triple("LD_PRELOAD", "x", 1)]
    );
    // Only one, and only at the start.
    assert_eq!(
        parsed("\u{feff}\u{feff}A=x\n\u{feff}B=y"),
        vec![triple("\u{feff}A", "x", 1), triple("\u{feff}B", "y", 2)]
    );
}

#[test]
fn errors_name_the_line_and_never_the_value() {
    let (line, problem) = parse_failure("A=1\nB<<EOF\nsecret\nEOF \n");
    assert_eq!(line, 2);
    assert!(problem.contains("no line \"EOF\" ends"), "{problem}");
    assert!(!problem.contains("secret"), "{problem}");

    let (line, problem) = parse_failure("A=1\n\nsecret-token\n");
    assert_eq!(line, 3);
    assert_eq!(problem, "neither `NAME=value` nor `NAME<<DELIMITER`");

    assert_eq!(parse_failure("=value").0, 1);
    assert!(
        parse_failure("=value")
            .1
            .contains("without a variable name")
    );
    assert!(
        parse_failure("A=1\n<<EOF\nx\nEOF")
            .1
            .contains("without a variable name")
    );
    assert_eq!(parse_failure("A=1\n<<EOF\nx\nEOF").0, 2);
    assert!(parse_failure("A<<\n\n").1.contains("without a delimiter"));
    // A `\r` alone is a line of its own, not an empty one.
    assert_eq!(parse_failure("A=1\n\r\n").0, 2);
}

#[test]
fn render_round_trips_exactly() {
    let entries = vec![
        entry("A", "plain", 1),
        entry("EMPTY", "", 2),
        entry("MULTI", "one\ntwo\n\nthree\n", 3),
        entry("CR", "a\r\nb\r", 4),
        entry(
            "LOOKS",
            "EOF\nghadelimiter_00000000000000000000000000000000\nx=y",
            5,
        ),
        entry("ONLY_NEWLINES", "\n\n", 6),
        entry("LT<", "x<<y=z", 7),
        entry("sp ace", " lead and trail ", 8),
        entry("A", "again", 9),
    ];
    let text = render_env(&entries);
    let back = parse_env_file(&text).unwrap();
    assert_eq!(back.len(), entries.len());
    for (want, got) in entries.iter().zip(&back) {
        assert_eq!((&want.name, &want.value), (&got.name, &got.value));
    }
    // Fresh delimiters, of the documented shape.
    let delimiters: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("<<").map(|(_, d)| d))
        .filter(|d| d.starts_with("ghadelimiter_"))
        .collect();
    assert_eq!(delimiters.len(), entries.len() - 1);
    for d in &delimiters {
        let hex = d.strip_prefix("ghadelimiter_").unwrap();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let mut unique = delimiters.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), delimiters.len());
    assert_eq!(render_env(&[]), "");
}

#[test]
#[should_panic(expected = "cannot be written in GITHUB_ENV format")]
fn render_refuses_an_entry_the_parser_cannot_produce() {
    render_env(&[entry("A=B", "v", 1)]);
}

#[test]
fn delimiter_is_never_a_line_of_the_value() {
    // Force the fallback sequence by predicting it: the value holds the first candidates.
    let value = "ghadelimiter_00000000000000000000000000000001\nghadelimiter_00000000000000000000000000000002";
    let mut fallback = 0;
    for _ in 0..100 {
        let d = delimiter_for(value, &mut fallback);
        assert!(!value.split('\n').any(|l| l == d));
    }
}

#[test]
fn a_leading_feff_in_a_name_survives_rendering() {
    // Parsed from "\u{feff}\u{feff}LD_PRELOAD=..." the name is "\u{feff}LD_PRELOAD"; written
    // at the very start of the file, the runner would drop that character as a byte order
    // mark and read LD_PRELOAD.
    let entries = vec![entry("\u{feff}X", "v", 1)];
    let text = render_env(&entries);
    let back = parse_env_file(&text).unwrap();
    assert_eq!(back[0].name, "\u{feff}X");
    assert!(is_dangerous("\u{feff}LD_PRELOAD"));
}

#[test]
fn render_then_parse_is_the_identity_on_anything_that_parses() {
    // A small deterministic fuzz over the characters that matter to the format.
    let alphabet = ['A', 'E', '=', '<', '\n', '\r', ' ', '\u{feff}', 'x'];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed_ok = 0;
    for _ in 0..20_000 {
        let len = (next() % 24) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let Ok(entries) = parse_env_file(&text) else {
            continue;
        };
        parsed_ok += 1;
        let back = parse_env_file(&render_env(&entries)).unwrap();
        let pairs = |v: &[EnvEntry]| {
            v.iter()
                .map(|e| (e.name.clone(), e.value.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&back), pairs(&entries), "{text:?}");
    }
    assert!(parsed_ok > 1000, "{parsed_ok}");
}

#[test]
fn dangerous_names() {
    for name in [
        "LD_PRELOAD",
        "ld_preload",
        "LD_AUDIT",
        "DYLD_INSERT_LIBRARIES",
        "BASH_ENV",
        "env",
        "BASH_FUNC_foo%%",
        "PATH",
        "path",
        "http_proxy",
        "HTTPS_PROXY",
        "no_proxy",
        "SSL_CERT_FILE",
        "GIT_CONFIG_KEY_0",
        "GIT_CONFIG_VALUE_12",
        "_JAVA_OPTIONS",
        "STEPJAIL_POLICY",
        "stepjail_x",
        " LD_PRELOAD",
        "LD_PRELOAD\r",
    ] {
        assert!(is_dangerous(name), "{name:?}");
    }
    for name in [
        "FOO",
        "LD",
        "LDFLAGS",
        "PATHS",
        "MYPATH",
        "ENVIRONMENT",
        "GIT_CONFIG",
        "GIT_CONFIG_KEY",
        "STEPJAIL",
        "NODE_ENV",
        "PYTHONUNBUFFERED",
        "",
        "ĿD_PRELOAD",
    ] {
        assert!(!is_dangerous(name), "{name:?}");
    }
    assert_eq!(
        dangerous_reason("https_proxy"),
        Some("redirects network traffic")
    );
    assert_eq!(
        dangerous_reason("STEPJAIL_X"),
        Some("reserved for stepjail")
    );
    assert_eq!(
        dangerous_reason("PATH"),
        Some("changes where programs are found")
    );
}

#[test]
fn dangerous_is_every_group_pattern() {
    let all: Vec<&str> = DANGEROUS_GROUPS
        .iter()
        .flat_map(|(_, patterns)| patterns.iter().copied())
        .collect();
    assert_eq!(DANGEROUS, all.as_slice());
    for pattern in DANGEROUS {
        let name = pattern.replace('*', "X");
        assert!(is_dangerous(&name), "{pattern}");
        assert_eq!(pattern.to_ascii_uppercase(), *pattern);
    }
}

#[test]
fn sanitize_removes_dangerous_names_unless_allowed() {
    let entries = vec![
        entry("LD_PRELOAD", "/tmp/evil.so", 1),
        entry("ld_preload", "/tmp/evil.so", 2),
        entry("BASH_FUNC_x%%", "() { evil; }", 3),
        entry("STEPJAIL_X", "1", 4),
        entry("LD_LIBRARY_PATH", "/opt/lib", 5),
        entry("FOO", "bar", 6),
        entry("X\0LD_PRELOAD", "y", 7),
        entry("GIT_SSH_COMMAND", "evil", 8),
    ];
    let allow = vec![
        "LD_LIBRARY_PATH".to_string(),
        "STEPJAIL_X".to_string(),
        // Exact names only: this does not allow `LD_PRELOAD`.
        "ld_preload".to_string(),
        "git_ssh_command".to_string(),
    ];
    let out = sanitize_env(entries, &allow);
    let kept: Vec<&str> = out.kept.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(kept, ["ld_preload", "LD_LIBRARY_PATH", "FOO"]);
    let removed: Vec<(&str, usize, &str)> = out
        .removed
        .iter()
        .map(|r| (r.name.as_str(), r.line, r.reason.as_str()))
        .collect();
    assert_eq!(
        removed,
        [
            ("LD_PRELOAD", 1, "changes how later programs load code"),
            ("BASH_FUNC_x%%", 3, "changes what later shells run"),
            ("STEPJAIL_X", 4, "reserved for stepjail"),
            ("X\0LD_PRELOAD", 7, "the name contains a NUL character"),
            (
                "GIT_SSH_COMMAND",
                8,
                "makes git or ssh run another program or read another configuration"
            ),
        ]
    );
    // Without an allow list the lower-case spelling goes too.
    let out = sanitize_env(vec![entry("ld_preload", "x", 1)], &[]);
    assert!(out.kept.is_empty());
}

#[test]
fn an_innocent_env_file_is_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set_env");
    let text = "\u{feff}A=1\r\n\nB<<EOF\nx\nEOF\nC=\n";
    fs::write(&path, text).unwrap();
    let before = fs::metadata(&path).unwrap().modified().unwrap();
    let out = sanitize_env_file(&path, &[]).unwrap();
    assert_eq!(out.kept.len(), 3);
    assert!(out.removed.is_empty());
    assert_eq!(fs::read(&path).unwrap(), text.as_bytes());
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
}

#[test]
fn a_poisoned_env_file_is_rewritten_to_the_kept_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set_env");
    fs::write(
        &path,
        "A=1\nLD_PRELOAD=/tmp/evil.so\nB<<EOF\nline\nghadelimiter_x\nEOF\nhttps_proxy=http://evil\nC=3",
    )
    .unwrap();
    let out = sanitize_env_file(&path, &[]).unwrap();
    let removed: Vec<(&str, usize)> = out
        .removed
        .iter()
        .map(|r| (r.name.as_str(), r.line))
        .collect();
    assert_eq!(removed, [("LD_PRELOAD", 2), ("https_proxy", 7)]);
    let reread = parse_env_file(&fs::read_to_string(&path).unwrap()).unwrap();
    let pairs = |v: &[EnvEntry]| {
        v.iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(pairs(&reread), pairs(&out.kept));
    assert_eq!(
        pairs(&out.kept),
        [
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "line\nghadelimiter_x".to_string()),
            ("C".to_string(), "3".to_string()),
        ]
    );
}

#[test]
fn an_env_file_that_does_not_parse_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set_env");
    fs::write(&path, "A=1\nLD_PRELOAD<<EOF\n/tmp/evil.so\n").unwrap();
    match sanitize_env_file(&path, &[]) {
        Err(FileCommandError::ParseFile { line, .. }) => assert_eq!(line, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), b"");

    fs::write(&path, b"A=\xff\n").unwrap();
    assert!(matches!(
        sanitize_env_file(&path, &[]),
        Err(FileCommandError::NotUtf8 { offset: 2, .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), b"");

    // UTF-16 (which the runner would decode) is not UTF-8.
    fs::write(&path, b"\xff\xfeA\0=\x001\0").unwrap();
    assert!(matches!(
        sanitize_env_file(&path, &[]),
        Err(FileCommandError::NotUtf8 { offset: 0, .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), b"");
}

#[test]
fn an_oversized_env_file_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set_env");
    let file = File::create(&path).unwrap();
    file.set_len(MAX_FILE_BYTES + 1).unwrap();
    drop(file);
    assert!(matches!(
        sanitize_env_file(&path, &[]),
        Err(FileCommandError::TooLarge { .. })
    ));
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
}

#[test]
fn links_and_other_file_types_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    fs::write(&target, "not an env file\n").unwrap();

    let link = dir.path().join("set_env");
    symlink(&target, &link).unwrap();
    match sanitize_env_file(&link, &[]) {
        Err(FileCommandError::NotRegular { what, .. }) => assert_eq!(what, "a symbolic link"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        sanitize_path_file(&link, &[], &[]),
        Err(FileCommandError::NotRegular { .. })
    ));
    assert_eq!(fs::read(&target).unwrap(), b"not an env file\n");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let hard = dir.path().join("hard");
    fs::hard_link(&target, &hard).unwrap();
    assert!(matches!(
        sanitize_env_file(&hard, &[]),
        Err(FileCommandError::NotRegular { .. })
    ));
    assert_eq!(fs::read(&target).unwrap(), b"not an env file\n");

    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    assert!(matches!(
        sanitize_env_file(&sub, &[]),
        Err(FileCommandError::NotRegular { .. })
    ));
}

#[test]
fn a_missing_file_is_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none");
    assert_eq!(sanitize_env_file(&path, &[]).unwrap(), Sanitized::default());
    assert_eq!(
        sanitize_path_file(&path, &[], &[]).unwrap(),
        (vec![], vec![])
    );
    assert!(!path.exists());
}

#[test]
fn reader_lines_end_like_dotnet() {
    assert_eq!(
        reader_lines("a\nb\r\nc\rd\n\ne"),
        vec![(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, ""), (6, "e")]
    );
    assert_eq!(reader_lines("a\n"), vec![(1, "a")]);
    assert_eq!(reader_lines(""), vec![]);
    assert_eq!(reader_lines("\r\r\n"), vec![(1, ""), (2, "")]);
}

const SHADOWED: &[&str] = &["stepjail", "bash", "sh", "sudo", "env"];

/// A directory with exactly `mode`, whatever the umask.
fn mkdir(path: &Path, mode: u32) {
    fs::create_dir(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn reasons(removed: &[PathRemoved]) -> Vec<(usize, &str)> {
    removed
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect()
}

#[test]
fn path_entries_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    mkdir(&good, 0o755);
    fs::write(good.join("tool"), "").unwrap();
    let fake = dir.path().join("fake");
    mkdir(&fake, 0o755);
    fs::write(fake.join("stepjail"), "#!/bin/sh\n").unwrap();
    let dangling = dir.path().join("dangling");
    mkdir(&dangling, 0o755);
    symlink("/nonexistent/bash", dangling.join("bash")).unwrap();
    let open = dir.path().join("open");
    mkdir(&open, 0o777);
    let sticky = dir.path().join("sticky");
    mkdir(&sticky, 0o1777);
    let below_open = open.join("bin");
    mkdir(&below_open, 0o755);
    let below_sticky = sticky.join("bin");
    mkdir(&below_sticky, 0o755);
    let a_file = good.join("tool");
    let later = dir.path().join("later");

    let d = |p: &Path| p.display().to_string();
    let lines = [
        d(&good),
        "relative/bin".to_string(),
        format!("{}/../fake", d(&good)),
        d(&fake),
        d(&dangling),
        d(&open),
        d(&sticky),
        d(&below_open),
        d(&below_sticky),
        format!("{}:{}", d(&good), d(&fake)),
        format!("{} ", d(&good)),
        d(&a_file),
        d(&later),
        format!("{}/later", d(&open)),
        String::new(),
        d(&good),
    ];
    let path = dir.path().join("add_path");
    fs::write(&path, lines.join("\n")).unwrap();
    let (kept, removed) = sanitize_path_file(&path, SHADOWED, &[]).unwrap();
    assert_eq!(kept, [d(&good), d(&below_sticky), d(&later), d(&good)]);
    let above_open = format!("{:?} above it is writable by other users", d(&open));
    let creatable = format!(
        "does not exist, and other users may create it in {:?}",
        d(&open)
    );
    assert_eq!(
        reasons(&removed),
        [
            (2, "is not an absolute path"),
            (3, "contains a `..` component"),
            (
                4,
                "contains `stepjail`, which would be run instead of the real one"
            ),
            (
                5,
                "contains `bash`, which would be run instead of the real one"
            ),
            (6, "is writable by other users"),
            (7, "is writable by other users"),
            (8, above_open.as_str()),
            (10, "contains `:`, which separates PATH entries"),
            (11, "has leading or trailing whitespace"),
            (12, "is not a directory"),
            (14, creatable.as_str()),
        ]
    );
    assert_eq!(removed[0].entry, "relative/bin");
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!(
            "{}\n{}\n{}\n{}\n",
            d(&good),
            d(&below_sticky),
            d(&later),
            d(&good)
        )
    );
}

#[test]
fn a_clean_path_file_is_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    mkdir(&good, 0o755);
    let path = dir.path().join("add_path");
    let text = format!("\u{feff}{0}\r\n\n{0}\r{0}", good.display());
    fs::write(&path, &text).unwrap();
    let (kept, removed) = sanitize_path_file(&path, SHADOWED, &[]).unwrap();
    assert_eq!(kept.len(), 3);
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn a_path_file_that_is_not_utf8_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("add_path");
    fs::write(&path, b"/usr/bin\n/tmp/\xc3\n").unwrap();
    assert!(matches!(
        sanitize_path_file(&path, SHADOWED, &[]),
        Err(FileCommandError::NotUtf8 { offset: 14, .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), b"");
}

#[test]
fn path_entries_in_writable_roots_are_removed_through_symlinks_too() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let outside = dir.path().join("tools");
    fs::create_dir_all(ws.join("bin")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let link = dir.path().join("link");
    symlink(ws.join("bin"), &link).unwrap();
    let file = dir.path().join("add_path");
    let text = format!(
        "{}\n{}\n{}\n{}\n",
        ws.join("bin").display(),
        ws.join("later/bin").display(),
        link.display(),
        outside.display()
    );
    fs::write(&file, text).unwrap();
    let (kept, removed) = sanitize_path_file(&file, &[], std::slice::from_ref(&ws)).unwrap();
    assert_eq!(kept, vec![outside.display().to_string()]);
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(
        removed
            .iter()
            .all(|r| r.reason.contains("sandboxed steps may write"))
    );
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("{}\n", outside.display())
    );
}
