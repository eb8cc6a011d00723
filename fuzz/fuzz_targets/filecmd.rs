//! `$GITHUB_ENV` reading, writing and sanitising.
//!
//! Properties:
//! - `render_env(parse_env_file(x))` parses back to the same names and values, in order;
//! - `sanitize_env` keeps no name that `is_dangerous` flags unless `allow` names it exactly,
//!   no `STEPJAIL_*` name, no name with a NUL; it loses no entry (kept + removed = input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stepjail::ci::github::filecmd::{is_dangerous, parse_env_file, render_env, sanitize_env};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(entries) = parse_env_file(text) else {
        return;
    };
    let rendered = render_env(&entries);
    let again = parse_env_file(&rendered).expect("rendered env file does not parse");
    let pairs = |e: &[stepjail::ci::github::filecmd::EnvEntry]| -> Vec<(String, String)> {
        e.iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect()
    };
    assert_eq!(pairs(&again), pairs(&entries), "render/parse round trip");

    // Allow every other entry's name, so both sides of the allow list are exercised.
    let allow: Vec<String> = entries.iter().step_by(2).map(|e| e.name.clone()).collect();
    let total = entries.len();
    let out = sanitize_env(entries, &allow);
    assert_eq!(out.kept.len() + out.removed.len(), total, "entries lost");
    for e in &out.kept {
        assert!(
            !is_dangerous(&e.name) || allow.contains(&e.name),
            "kept dangerous name {:?}",
            e.name
        );
        assert!(!e.name.contains('\0'));
        let core = e
            .name
            .trim_matches(|c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}');
        assert!(
            !core.to_ascii_uppercase().starts_with("STEPJAIL_"),
            "kept reserved name {:?}",
            e.name
        );
    }
});
