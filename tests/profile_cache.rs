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

/// `bytes` (a whole entry) with `from` replaced by `to` (same length) and its trailing CRC-32
/// computed again: an entry as a step that knows the format would forge it.
fn forge(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the rule in the entry");
    let mut out = bytes[..bytes.len() - 4].to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    let sum = crc32fast::hash(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Run inside the sandbox: each attack on the cache, printed as `name=ERRNO` (or `name=ok`).
/// An attack that gets through goes on to plant the forged entry where the next run reads it.
const ATTACK: &str = r#"
import errno, os, sys
home, name, forged = sys.argv[1], sys.argv[2], open(sys.argv[3], 'rb').read()
cache = os.path.join(home, '.cache')
g = os.path.join(cache, 'stepjail')
def plant():
    os.makedirs(os.path.join(g, 'profiles'), 0o700, exist_ok=True)
    p = os.path.join(g, 'profiles', name)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, forged)
    os.close(fd)
def attempt(label, f, then=None):
    try:
        f()
    except OSError as e:
        print(label + '=' + errno.errorcode[e.errno])
        return
    print(label + '=ok')
    if then:
        then()
attempt('write', plant)
attempt('rename-dir', lambda: os.rename(g, g + '.old'), plant)
attempt('rmdir', lambda: os.rmdir(g), plant)
attempt('rename-cache', lambda: os.rename(cache, cache + '.old'), plant)
attempt('chmod', lambda: os.chmod(g, 0o777))
"#;

#[test]
fn no_step_can_plant_an_entry_whatever_its_profile_grants() {
    for uid in users() {
        let dir = Dir::new(uid);
        dir.write("ws/secret", "s3cret\n");
        let p = dir.write("p.yml", &profile("secret"));
        let attack = dir.write(
            "attack.yml",
            "name: attack\ndescription: writes $HOME\nextends: default\n\
             filesystem:\n  read_write: [$HOME]\n",
        );
        assert_eq!(cat_secret(&dir, &p), None, "uid {uid}: hidden");
        let entry = entries(&dir).pop().unwrap();
        let genuine = std::fs::read(&entry).unwrap();
        let forged = forge(&genuine, b"$WORKSPACE/secret", b"$WORKSPACE/secreX");

        // The forged entry works when written from outside a sandbox: it is what the step
        // below must not be able to put there.
        overwrite(&dir, &entry, &forged);
        assert_eq!(
            cat_secret(&dir, &p).as_deref(),
            Some("s3cret\n"),
            "uid {uid}: the forged entry is read"
        );
        overwrite(&dir, &entry, &genuine);
        assert_eq!(cat_secret(&dir, &p), None, "uid {uid}: genuine again");

        let forged_file = dir.root.join("ws/forged.bin");
        overwrite(&dir, &forged_file, &forged);
        let name = entry.file_name().unwrap().to_str().unwrap().to_string();
        let out = Sj::run(
            &dir,
            &["--profile", attack.to_str().unwrap()],
            &[
                PYTHON,
                "-c",
                ATTACK,
                dir.home.to_str().unwrap(),
                &name,
                forged_file.to_str().unwrap(),
            ],
        )
        .output();
        // Each attack refused with its errno, the entry untouched, and the next step under the
        // cached profile gets what its YAML says (asserted together, so that a defence
        // removed shows both the attack that got through and what it won).
        assert_eq!(
            (
                out.ok().as_str(),
                std::fs::read(&entry).ok() == Some(genuine.clone()),
                cat_secret(&dir, &p),
            ),
            (
                "write=EACCES\nrename-dir=EBUSY\nrmdir=EBUSY\nrename-cache=EBUSY\nchmod=EROFS\n",
                true,
                None
            ),
            "uid {uid}: {}",
            out.stderr()
        );
    }
}

#[test]
fn the_switch_turns_the_cache_off() {
    for uid in users() {
        let dir = Dir::new(uid);
        dir.write("ws/secret", "s3cret\n");
        let p = dir.write("p.yml", &profile("secret"));
        let out = Sj::run(
            &dir,
            &["--profile", p.to_str().unwrap()],
            &["cat", dir.ws.join("secret").to_str().unwrap()],
        )
        .env("STEPJAIL_NO_PROFILE_CACHE", "1")
        .output();
        assert_ne!(out.code(), 0, "uid {uid}: hidden");
        let cache = dir.home.join(".cache/stepjail/profiles");
        assert!(!cache.exists(), "uid {uid}: {}", cache.display());
        // Without the switch the same run writes its entry.
        assert_eq!(cat_secret(&dir, &p), None, "uid {uid}");
        assert_eq!(entries(&dir).len(), 1, "uid {uid}");
    }
}
