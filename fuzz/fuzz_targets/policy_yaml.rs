//! The policy file parser (`Policy::parse`), which also builds every inline profile with the
//! profile loader's merge and checks.
//!
//! Property: no panic, and every error caused by the text points into it: its message contains
//! `LABEL:LINE:COL` with LINE and COL at least 1 and LINE at most the text's line count + 1.
//! Errors about files the text names (`extends:` a missing file, a cycle) are the exception and
//! must name the policy file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stepjail::policy::{Policy, PolicyError};
use stepjail_fuzz::check_policy_error;

const LABEL: &str = "fuzz-policy.yml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: `extends:` of a relative file fails to read.
    let path = std::path::Path::new("/nonexistent-stepjail-fuzz/policy.yml");
    if let Err(e) = Policy::parse(path, text, LABEL) {
        let _: &PolicyError = &e;
        check_policy_error(&e, text, LABEL);
    }
});
