//! What keeps the profile cache out of every step's reach. `stepjail run --profile FILE` trusts
//! an entry there as the validated model of that file, so a step that could write one would
//! choose the policy of every later step. Whatever a profile grants:
//!
//! - each cache directory (`<base>/stepjail`, see `policy::profile_cache_dirs`) is hidden in
//!   the sandbox (an empty, read-only tmpfs with mode 000): nothing in it can be read, created,
//!   changed or removed, and being a mountpoint it cannot be renamed or removed itself (EBUSY);
//! - each directory between a writable path and a cache directory is bound onto itself, so it
//!   is a mountpoint the step cannot rename or remove either (EBUSY): no `mv ~/.cache x; mkdir
//!   -p ~/.cache/stepjail/profiles` with planted entries;
//! - a cache directory that does not exist yet but that the step could create (its nearest
//!   existing ancestor is writable in the sandbox) is created by launch, mode 0700, before the
//!   sandbox exists, and then hidden like the others;
//! - a symbolic link on the way to a cache directory inside a writable path is refused: the
//!   step could replace the link, and the next run would read a directory of its making.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a run does to keep the profile cache out of its step's reach.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheGuard {
    /// Cache directories to hide, as real paths (each exists when the sandbox is set up).
    pub hidden: Vec<PathBuf>,
    /// Directories between a writable path and a cache directory, shallowest first, to bind
    /// onto themselves.
    pub pinned: Vec<PathBuf>,
    /// Directories launch creates before the sandbox, parents first, with the uid and gid to
    /// give them (the owner of the directory they are created in).
    pub create: Vec<(PathBuf, u32, u32)>,
}

/// The guard for the cache directories `dirs` (absolute, normalised) against the step's
/// writable paths `writable`.
pub(crate) fn cache_guard(dirs: &[PathBuf], writable: &[PathBuf]) -> Result<CacheGuard, String> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let writable: Vec<PathBuf> = writable.iter().map(|w| real(w)).collect();
    let in_writable = |p: &Path| writable.iter().find(|w| p.starts_with(w)).cloned();
    let mut guard = CacheGuard::default();
    for dir in dirs {
        // The deepest part of `dir` that exists, checking each link on the way to it.
        let mut existing = PathBuf::new();
        let mut missing = Vec::new();
        for part in dir.components() {
            if !missing.is_empty() {
                missing.push(part.as_os_str().to_owned());
                continue;
            }
            let next = existing.join(part);
            match std::fs::symlink_metadata(&next) {
                Err(_) => missing.push(part.as_os_str().to_owned()),
                Ok(m) => {
                    if m.is_symlink()
                        && let Some(w) = in_writable(&real(&existing))
                    {
                        return Err(format!(
                            "the profile cache {}: {} is a symbolic link inside {}, which the \
                             step can write, so the step could replace it; set XDG_CACHE_HOME \
                             (or HOME) to a path without it, like {}",
                            dir.display(),
                            next.display(),
                            w.display(),
                            real(&next).display()
                        ));
                    }
                    existing = next;
                }
            }
        }
        let base = real(&existing);
        let mut target = base.clone();
        if !missing.is_empty() {
            // Nothing to hide where the step cannot create the directory either: neither its
            // nearest existing ancestor is writable, nor is a writable path (which launch
            // would create) at or below it.
            let full: PathBuf = missing.iter().fold(base.clone(), |p, part| p.join(part));
            if in_writable(&base).is_none() && !writable.iter().any(|w| w.starts_with(&full)) {
                continue;
            }
            let m = std::fs::metadata(&base).map_err(|e| format!("{}: {e}", base.display()))?;
            for part in &missing {
                target.push(part);
                guard.create.push((target.clone(), m.uid(), m.gid()));
            }
        }
        let pinned = match target.parent() {
            Some(parent) => super::log_guard::dirs_to_pin(parent, &writable),
            None => Vec::new(),
        };
        for p in pinned {
            if !guard.pinned.contains(&p) {
                guard.pinned.push(p);
            }
        }
        if !guard.hidden.contains(&target) {
            guard.hidden.push(target);
        }
    }
    Ok(guard)
}

/// Creates the directories of [`CacheGuard::create`] (mode 0700, given to their owner when
/// stepjail runs as root); one that exists already is left as it is.
pub(crate) fn create(dirs: &[(PathBuf, u32, u32)]) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    let root = nix::unistd::geteuid().is_root();
    for (d, uid, gid) in dirs {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {
                if root {
                    std::os::unix::fs::lchown(d, Some(*uid), Some(*gid))
                        .map_err(|e| format!("{}: {e}", d.display()))?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("creating {}: {e}", d.display())),
        }
        let m = std::fs::symlink_metadata(d).map_err(|e| format!("{}: {e}", d.display()))?;
        if !m.is_dir() {
            return Err(format!("{} is not a directory", d.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dirs_are_hidden_their_ancestors_in_writable_paths_pinned_and_links_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let t = std::fs::canonicalize(tmp.path()).unwrap();
        let home = t.join("home");
        std::fs::create_dir_all(home.join(".cache/stepjail")).unwrap();
        let g = home.join(".cache/stepjail");

        // $HOME writable: .cache pinned (the grant itself is a mountpoint already).
        let guard = cache_guard(std::slice::from_ref(&g), std::slice::from_ref(&home)).unwrap();
        assert_eq!(guard.hidden, vec![g.clone()]);
        assert_eq!(guard.pinned, vec![home.join(".cache")]);
        assert!(guard.create.is_empty());

        // The parent of $HOME writable: $HOME pinned too.
        let guard = cache_guard(std::slice::from_ref(&g), std::slice::from_ref(&t)).unwrap();
        assert_eq!(guard.pinned, vec![home.clone(), home.join(".cache")]);

        // Nothing writable on the way: hidden, nothing pinned.
        let guard = cache_guard(std::slice::from_ref(&g), &[t.join("ws")]).unwrap();
        assert_eq!((guard.hidden, guard.pinned), (vec![g.clone()], vec![]));

        // Missing and creatable by the step: created (parents first), hidden, pinned.
        let other = t.join("other");
        std::fs::create_dir(&other).unwrap();
        let g2 = other.join(".cache/stepjail");
        let guard = cache_guard(std::slice::from_ref(&g2), std::slice::from_ref(&other)).unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        assert_eq!(
            guard.create,
            vec![(other.join(".cache"), uid, gid), (g2.clone(), uid, gid)]
        );
        assert_eq!(guard.hidden, vec![g2.clone()]);
        assert_eq!(guard.pinned, vec![other.join(".cache")]);
        create(&guard.create).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&g2).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);

        // Missing and not creatable by the step: nothing to do.
        let g3 = t.join("ro/.cache/stepjail");
        let guard = cache_guard(std::slice::from_ref(&g3), std::slice::from_ref(&home)).unwrap();
        assert_eq!(guard, CacheGuard::default());
        // Unless a writable path (which launch creates) lies at or below it.
        for w in [g3.clone(), g3.join("profiles")] {
            let guard = cache_guard(std::slice::from_ref(&g3), &[w]).unwrap();
            assert_eq!(guard.hidden, vec![g3.clone()]);
            assert_eq!(guard.create.len(), 3, "{:?}", guard.create);
        }

        // A link inside a writable path on the way: refused. Outside one: followed.
        let real_cache = t.join("big");
        std::fs::create_dir_all(real_cache.join("stepjail")).unwrap();
        let linked = t.join("linked");
        std::fs::create_dir(&linked).unwrap();
        std::os::unix::fs::symlink(&real_cache, linked.join(".cache")).unwrap();
        let g4 = linked.join(".cache/stepjail");
        let e = cache_guard(std::slice::from_ref(&g4), std::slice::from_ref(&linked)).unwrap_err();
        assert!(e.contains("is a symbolic link inside"), "{e}");
        let guard = cache_guard(&[g4], &[t.join("ws")]).unwrap();
        assert_eq!(guard.hidden, vec![real_cache.join("stepjail")]);
    }
}
