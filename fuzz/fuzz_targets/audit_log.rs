//! The audit log reader (`audit::parse_log`).
//!
//! Properties: no panic; every error names the file; records that parse, written back one
//! JSON line each (as the writer does), parse again to the same records with nothing skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stepjail::audit::parse_log;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz-audit.jsonl");
    match parse_log(data, path) {
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("fuzz-audit.jsonl"),
                "{message:?} does not name the file"
            );
        }
        Ok(log) => {
            let mut out = Vec::new();
            for r in &log.records {
                serde_json::to_writer(&mut out, r).expect("serialize a record");
                out.push(b'\n');
            }
            let again = parse_log(&out, path).expect("re-written records do not parse");
            assert_eq!(again.records, log.records, "round trip");
            assert_eq!(again.truncated_lines, 0);
        }
    }
});
