//! The profile loader (`policy::load_file`: YAML, `extends` merging, checks). It reads a file,
//! so each input is written to a per-process file under /dev/shm (or the temp directory).
//!
//! Property: as for `policy_yaml`: no panic, and every error points at `FILE:LINE:COL`.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stepjail_fuzz::check_policy_error;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("stepjail-fuzz-profile-{}.yml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = scratch();
    std::fs::write(path, text).expect("write the scratch profile");
    if let Err(e) = stepjail::policy::load_file(path) {
        check_policy_error(&e, text, &path.display().to_string());
    }
});
