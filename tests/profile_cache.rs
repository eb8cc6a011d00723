//! `stepjail run --profile FILE` keeps the loaded profile in a cache (docs/profiles.md): a
//! profile changed by one rule is read again, and an entry that is not the one for these bytes
//! is ignored; either way the step gets what the YAML says.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A profile hiding `$WORKSPACE/<hidden>` (the one rule the test changes).
fn profile(hidden: &str) -> String {
    format!(
        "name: cached\ndescription: the cache test\nextends: default\n\
         filesystem:\n  hidden: [$WORKSPACE/{hidden}]\n"
    )
}

/// What `cat secret` printed in the step, or None when it failed.
fn cat_secret(dir: &Dir, profile: &Path) -> Option<String> {
    let secret = dir.ws.join("secret");
    let out = Sj::run(
        dir,
        &["--profile", profile.to_str().unwrap()],
        &["cat", secret.to_str().unwrap()],
    )
    .output();
    match out.code() {
        0 => Some(out.stdout()),
        _ => {
            assert!(out.stderr().contains("secret"), "{}", out.stderr());
            None
        }
    }
}

fn entries(dir: &Dir) -> Vec<PathBuf> {
    let cache = dir.home.join(".cache/stepjail/profiles");
    let mut list: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{}: {e}", cache.display()))
        .map(|e| e.unwrap().path())
        .collect();
    list.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    list
}

/// Replaces `path`'s content, keeping it the step user's file with mode 0600.
fn overwrite(dir: &Dir, path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    chown(path, dir.owner);
}

#[test]
fn a_changed_profile_is_read_again_and_a_wrong_entry_is_ignored() {
    for uid in users() {
        let dir = Dir::new(uid);
        dir.write("ws/secret", "s3cret\n");
        dir.write("ws/other", "x\n");
        let p = dir.write("p.yml", &profile("secret"));

        assert_eq!(cat_secret(&dir, &p), None, "uid {uid}: hidden");
        let hidden_entry = entries(&dir).pop().unwrap();
        assert_eq!(
            cat_secret(&dir, &p),
            None,
            "uid {uid}: hidden, from the cache"
        );

        // One rule changed: the step sees the file, from a new entry.
        dir.write("p.yml", &profile("other"));
        assert_eq!(
            cat_secret(&dir, &p).as_deref(),
            Some("s3cret\n"),
            "uid {uid}"
        );
        assert_eq!(entries(&dir).len(), 2, "uid {uid}");
        let open_entry = entries(&dir).pop().unwrap();

        // Back to the first text: its entry says hidden.
        dir.write("p.yml", &profile("secret"));
        assert_eq!(cat_secret(&dir, &p), None, "uid {uid}");

        // The entry of the other text (whole, with a valid checksum) in place of this one's,
        // then a truncated one: both ignored, the file parsed, the path hidden.
        let open = std::fs::read(&open_entry).unwrap();
        overwrite(&dir, &hidden_entry, &open);
        assert_eq!(cat_secret(&dir, &p), None, "uid {uid}: swapped entry");
        overwrite(&dir, &hidden_entry, &open[..open.len() / 2]);
        assert_eq!(cat_secret(&dir, &p), None, "uid {uid}: truncated entry");
    }
}
