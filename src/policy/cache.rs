//! The profile cache: the validated model of a profile file, kept so that a step under a large
//! profile does not parse and check the same YAML again (10,000 allow rules take ~100 ms of
//! CPU to parse and convert, against a few milliseconds for the rest of a step's start).
//!
//! Only `stepjail run --profile FILE` ([`super::load_cached`]) uses it; `stepjail check` and
//! every other loader always parse. An entry is the exact result of loading the same bytes
//! before, so it can never change a decision:
//!
//! - **Key**: SHA-256 over the cache format, stepjail's version, the identity of the running
//!   binary (device, inode, size and modification time of `/proc/self/exe`, so a rebuilt or
//!   reinstalled binary, whose built-in profiles or rules may differ, never reads an older
//!   binary's entries; not the change time, which a hard link or `chmod` moves), the file's name as given (it is in every error location), and the
//!   SHA-256 of the file's bytes. Loading reads nothing else but `extends` parents: built-in
//!   parents are part of the binary, and every parent file is listed in the entry with its
//!   canonical path and SHA-256, re-read and compared on every use.
//! - **Entry**: `SJPCACHE`, the key, the parents, the model, and a CRC-32 of all of it (a
//!   checksum against damage: the key, in the name and inside, is what binds the entry to the
//!   bytes). The model's allow rules are their table ([`super::allow_list`]) as it is: a hit
//!   maps the entry and the decisions read the table there, checked whole but not decoded, so
//!   a step under 10,000 rules builds no rule and copies no page of them. A truncated,
//!   corrupted or foreign entry fails one of the checks and is ignored: the file is parsed as
//!   if there were no cache (and the entry rewritten).
//! - **Reading the profile**: a regular file is hashed through one 64 KB buffer and read whole
//!   only on a miss (the entry is then written under the key of the bytes parsed); anything
//!   else (a pipe) is read once, whole.
//! - **Where**: `$XDG_CACHE_HOME/stepjail/profiles`, else `$HOME/.cache/stepjail/profiles`
//!   (absolute paths only; no cache otherwise). The directory is created 0700; an entry is read
//!   only from a directory that is ours, not a symlink and closed to group and others, and only
//!   when the entry file is ours and not writable by anyone else. Entries are written to a
//!   temporary file and renamed, so a reader never sees half of one. At most
//!   [`MAX_ENTRIES`] are kept; the oldest go first.
//!
//! The format is written here by hand (the model has no serde derives, and adding them to
//! every model type would be a wider change than this cache): LEB128 integers, strings as length
//! and bytes, and each `Location`'s file name once per entry. The encoder destructures every
//! struct it writes, so a field added to the model does not compile until it is written here;
//! bump [`FORMAT`] whenever the encoding changes.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::allow_list::{AllowList, Backing};
use super::error::PolicyError;
use super::load::{self, Dependency, Source, sha256};
use super::model::{
    BrokerPlace, Enforce, EnvPattern, EnvPolicy, Filesystem, LandlockPolicy, Limits, Location,
    Network, NetworkMode, PathTemplate, ProcessPolicy, Profile, SecretDecl,
};
use super::yaml;

/// The encoding's version; part of the key.
const FORMAT: u32 = 3;
/// Why an entry whose checksum or structure is wrong is not used.
const CORRUPT: &str = "the entry is truncated or corrupted";
/// Why an entry whose key is not the one asked for is not used.
const OTHER_KEY: &str = "the entry is for another key";
const MAGIC: &[u8; 8] = b"SJPCACHE";
/// Entries kept in the directory; writing one more removes the oldest.
pub(crate) const MAX_ENTRIES: usize = 64;
/// An entry larger than this is not read (a profile file is at most 1 MiB).
const MAX_ENTRY_BYTES: u64 = 16 * 1024 * 1024;

/// [`super::load`] for a step: a profile file's validated model may come from the profile
/// cache, which holds only what loading the same bytes produced before. `stepjail check` uses
/// [`super::load_file`], which always parses.
pub fn load_cached(spec: &str) -> Result<Profile, PolicyError> {
    if load::looks_like_name(spec) {
        if super::builtin::text(spec).is_some() {
            return load::load_builtin(spec);
        }
        if !Path::new(spec).exists() {
            return Err(load::unknown_builtin(spec));
        }
    }
    load_file(Path::new(spec))
}

/// The directory under a cache base (`$XDG_CACHE_HOME`, `~/.cache`) that holds stepjail's
/// entries (in `profiles/`): what every step's sandbox hides, whatever its profile grants.
pub const DIR_NAME: &str = "stepjail";

/// Set to anything but empty, `stepjail run` neither reads nor writes the profile cache.
pub const OFF_VARIABLE: &str = "STEPJAIL_NO_PROFILE_CACHE";

/// Every `<base>/stepjail` a later stepjail could read entries from, for a run whose
/// environment is `env` and whose step runs with home `step_home`: `$XDG_CACHE_HOME`'s,
/// `$HOME/.cache`'s, and the step user's `~/.cache`'s (a step run by root as `--user` must
/// not plant entries for that user's own runs). Absolute paths only, without duplicates. No
/// ownership test here, unlike [`dir`]: hiding a directory nobody reads costs one mount.
pub fn guarded_dirs(env: &[(String, String)], step_home: Option<&Path>) -> Vec<PathBuf> {
    let var = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| PathBuf::from(v))
    };
    let bases = [
        var("XDG_CACHE_HOME"),
        var("HOME").map(|h| h.join(".cache")),
        step_home.map(|h| h.join(".cache")),
    ];
    let mut out: Vec<PathBuf> = Vec::new();
    for base in bases.into_iter().flatten() {
        let Ok(p) = super::paths::normalise_absolute(&base.join(DIR_NAME).to_string_lossy()) else {
            continue;
        };
        let p = PathBuf::from(p);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The cache directory: `$XDG_CACHE_HOME/stepjail/profiles`, else
/// `$HOME/.cache/stepjail/profiles`; each only when it is an absolute path to a directory of
/// ours (root under `sudo` with the caller's `HOME` must not leave root's files in it). None
/// when [`OFF_VARIABLE`] is set.
pub fn dir() -> Option<PathBuf> {
    if std::env::var_os(OFF_VARIABLE).is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let ours = |v: std::ffi::OsString| {
        let p = PathBuf::from(v);
        let m = std::fs::metadata(&p).ok()?;
        (p.is_absolute() && m.is_dir() && m.uid() == euid()).then_some(p)
    };
    let base = std::env::var_os("XDG_CACHE_HOME")
        .and_then(ours)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(ours)
                .map(|h| h.join(".cache"))
        })?;
    Some(base.join(DIR_NAME).join("profiles"))
}

/// Load a profile file, from the cache when an entry for exactly these bytes (and parents, and
/// binary) is there; else parse it and write the entry.
pub(crate) fn load_file(path: &Path) -> Result<Profile, PolicyError> {
    load_file_in(path, dir())
}

/// [`load_file`] with the cache in `dir` (`None`: no cache).
fn load_file_in(path: &Path, dir: Option<PathBuf>) -> Result<Profile, PolicyError> {
    let label = path.display().to_string();
    // A regular file is hashed as it is read, through one small buffer, and parsed only when
    // no entry matches (it is then read again, and the entry written under the key of the
    // bytes parsed). Anything else (a pipe) is read once, whole.
    let streamed = dir.as_ref().and_then(|_| streamed_sha256(path));
    let used = |dir: &Path, key: &[u8; 32]| match read(dir, key) {
        Ok(profile) => Some(profile),
        Err(why) => {
            tracing::debug!("profile cache: no entry used for {label}: {why}");
            None
        }
    };
    if let (Some(dir), Some(sum)) = (&dir, &streamed)
        && let Some(profile) = key_for(&label, sum).and_then(|k| used(dir, &k))
    {
        return Ok(profile);
    }
    let bytes = yaml::read_bytes(path, &label)?;
    let place = dir.and_then(|d| Some((key_for(&label, &sha256(&bytes))?, d)));
    if streamed.is_none()
        && let Some((key, dir)) = &place
        && let Some(profile) = used(dir, key)
    {
        return Ok(profile);
    }
    // Checked only here: an entry exists only for bytes that were text and loaded.
    let text = yaml::utf8(bytes, &label)?;
    let mut deps = Vec::new();
    let profile = load::load_text(Source::File(path.to_path_buf()), &text, &mut deps)?;
    if let Some((key, dir)) = &place
        && let Err(why) = write(dir, key, &deps, &profile)
    {
        tracing::debug!("profile cache: entry for {label} not written: {why}");
    }
    Ok(profile)
}

/// SHA-256 of a regular file of at most [`yaml::MAX_FILE_BYTES`], read through one buffer;
/// `None` for anything else (the caller then reads it whole, with the loader's errors).
fn streamed_sha256(path: &Path) -> Option<[u8; 32]> {
    // Not even opened unless it is a regular file: opening a named pipe would wait for its
    // writer, and closing it would break that writer. Non-blocking in case the path changed
    // in between.
    if !std::fs::metadata(path).ok()?.file_type().is_file() {
        return None;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.file_type().is_file() {
        return None;
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                if total > yaml::MAX_FILE_BYTES {
                    return None;
                }
                ctx.update(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    ctx.finish().as_ref().try_into().ok()
}

/// The entry key for the file named `label` whose bytes have SHA-256 `sum`, for this binary.
fn key_for(label: &str, sum: &[u8; 32]) -> Option<[u8; 32]> {
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    let mut w = Writer::default();
    w.buf.extend_from_slice(MAGIC);
    w.uint(FORMAT.into());
    w.str(env!("CARGO_PKG_VERSION"));
    for n in [
        exe.dev(),
        exe.ino(),
        exe.size(),
        exe.mtime() as u64,
        exe.mtime_nsec() as u64,
    ] {
        w.uint(n);
    }
    w.str(label);
    w.buf.extend_from_slice(sum);
    Some(sha256(&w.buf))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn entry_name(key: &[u8; 32]) -> String {
    format!("{}.bin", hex(key))
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The directory is ours, a real directory, closed to group and others.
fn check_dir(dir: &Path) -> Result<(), String> {
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !m.file_type().is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if m.uid() != euid() {
        return Err(format!("{} is owned by uid {}", dir.display(), m.uid()));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!(
            "{} has mode {:o}",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The entry for `key`, checked from end to end; `Err` says why it was not used.
pub(crate) fn read(dir: &Path, key: &[u8; 32]) -> Result<Profile, String> {
    check_dir(dir)?;
    let path = dir.join(entry_name(key));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| e.to_string())?;
    let m = f.metadata().map_err(|e| e.to_string())?;
    if !m.file_type().is_file() || m.uid() != euid() || m.mode() & 0o022 != 0 {
        return Err("the entry is not a regular file of ours closed to writers".into());
    }
    if m.len() > MAX_ENTRY_BYTES {
        return Err("the entry is too large".into());
    }
    // Mapped, not read: the allow table is used where it lies (no copy, no page of ours to
    // fault in, and the sandbox's clone copies no page tables for it). Entries are written
    // once and renamed into place, never changed in place or truncated.
    let map = crate::sys::map_file(&f, m.len() as usize).map_err(|e| e.to_string())?;
    decode_entry(Arc::new(Backing::Mapped(map)), key)
}

/// The entry's bytes as an entry for `key`: checksum, magic and key first, then parents, then
/// the model (whose allow table stays in `backing`, checked whole).
fn decode_entry(backing: Arc<Backing>, key: &[u8; 32]) -> Result<Profile, String> {
    let corrupt = || CORRUPT.to_string();
    let bytes = backing.bytes();
    let split = bytes.len().checked_sub(4).ok_or_else(corrupt)?;
    let (body, sum) = bytes.split_at(split);
    if crc32fast::hash(body).to_le_bytes() != sum {
        return Err(corrupt());
    }
    let mut r = Reader::new(body, backing.clone());
    if r.bytes(MAGIC.len()).ok_or_else(corrupt)? != MAGIC || r.bytes(32).ok_or_else(corrupt)? != key
    {
        return Err(OTHER_KEY.into());
    }
    let deps = r.deps().ok_or_else(corrupt)?;
    for d in &deps {
        let now =
            std::fs::canonicalize(&d.path).map_err(|e| format!("{}: {e}", d.path.display()))?;
        let label = d.path.display().to_string();
        let text = yaml::read_file(&d.path, &label).map_err(|e| e.to_string())?;
        if now.display().to_string() != d.identity || sha256(text.as_bytes()) != d.sha256 {
            return Err(format!("{label} (extended) changed"));
        }
    }
    let profile = r.profile().ok_or_else(corrupt)?;
    if !r.at_end() {
        return Err(corrupt());
    }
    Ok(profile)
}

/// Profiles the cache holds: all but those naming an upstream proxy (whose model keeps fields
/// this encoding cannot see; they are rare and small).
fn cacheable(p: &Profile) -> bool {
    p.network.upstream_proxy.is_none()
}

fn write(dir: &Path, key: &[u8; 32], deps: &[Dependency], p: &Profile) -> Result<(), String> {
    if !cacheable(p) {
        return Err("a profile with network.upstream_proxy is not cached".into());
    }
    let bytes = encode_entry(key, deps, p);
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?,
        Err(e) => return Err(format!("{}: {e}", dir.display())),
        Ok(m) if m.file_type().is_dir() && m.uid() == euid() => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", dir.display()))?
        }
        Ok(_) => {}
    }
    check_dir(dir)?;
    prune(dir);
    let name = entry_name(key);
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&bytes))
        .and_then(|()| std::fs::rename(&tmp, dir.join(&name)));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", tmp.display()));
    }
    Ok(())
}

/// Keep at most [`MAX_ENTRIES`] - 1 entries before a new one is written: the oldest go.
fn prune(dir: &Path) {
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = list
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bin"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if entries.len() < MAX_ENTRIES {
        return;
    }
    entries.sort();
    for (_, p) in &entries[..entries.len() + 1 - MAX_ENTRIES] {
        let _ = std::fs::remove_file(p);
    }
}

pub(crate) fn encode_entry(key: &[u8; 32], deps: &[Dependency], p: &Profile) -> Vec<u8> {
    let mut w = Writer::default();
    w.buf.extend_from_slice(MAGIC);
    w.buf.extend_from_slice(key);
    w.uint(deps.len() as u64);
    for d in deps {
        w.str(&d.path.display().to_string());
        w.str(&d.identity);
        w.buf.extend_from_slice(&d.sha256);
    }
    w.profile(p);
    let sum = crc32fast::hash(&w.buf);
    w.buf.extend_from_slice(&sum.to_le_bytes());
    w.buf
}

#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
    /// `Location::file` values already written, by their index.
    files: HashMap<String, u64>,
}

impl Writer {
    fn uint(&mut self, mut n: u64) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }
    fn bool(&mut self, b: bool) {
        self.buf.push(b as u8);
    }
    fn str(&mut self, s: &str) {
        self.uint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }
    fn strs(&mut self, list: &[String]) {
        self.uint(list.len() as u64);
        for s in list {
            self.str(s);
        }
    }
    fn opt(&mut self, n: Option<u64>) {
        match n {
            None => self.bool(false),
            Some(n) => {
                self.bool(true);
                self.uint(n);
            }
        }
    }
    /// A file name is written once: later uses write its index.
    fn location(&mut self, l: &Location) {
        let Location { file, line, column } = l;
        match self.files.get(file) {
            Some(&i) => self.uint(i),
            None => {
                let i = self.files.len() as u64;
                self.uint(i);
                self.str(file);
                self.files.insert(file.clone(), i);
            }
        }
        self.uint(*line as u64);
        self.uint(*column as u64);
    }
    fn templates(&mut self, list: &[PathTemplate]) {
        self.uint(list.len() as u64);
        for t in list {
            let PathTemplate { raw, at, key } = t;
            self.str(raw);
            self.location(at);
            self.str(key);
        }
    }
    fn mode(&mut self, m: NetworkMode) {
        self.buf.push(match m {
            NetworkMode::None => 0,
            NetworkMode::Enforce => 1,
            NetworkMode::Audit => 2,
        });
    }
    fn profile(&mut self, p: &Profile) {
        let Profile {
            name,
            description,
            source,
            filesystem,
            network,
            env,
            process,
            landlock,
            secrets,
        } = p;
        self.str(name);
        self.str(description);
        self.str(source);

        let Filesystem {
            read_write,
            read_only,
            hidden,
            files,
        } = filesystem;
        self.templates(read_write);
        self.templates(read_only);
        self.templates(hidden);
        self.uint(files.len() as u64);
        for (path, (content, at)) in files {
            self.str(path);
            self.str(content);
            self.location(at);
        }

        let Network {
            mode,
            allow,
            upstream_proxy: _,
            max_connections,
        } = network;
        self.mode(*mode);
        let table = allow.table_bytes();
        self.uint(table.len() as u64);
        self.buf.extend_from_slice(table);
        self.opt(max_connections.map(u64::from));

        let EnvPolicy {
            pass,
            set,
            set_at,
            scrub,
        } = env;
        self.uint(pass.len() as u64);
        for pat in pass {
            match pat {
                EnvPattern::Exact(s) => {
                    self.buf.push(0);
                    self.str(s);
                }
                EnvPattern::Prefix(s) => {
                    self.buf.push(1);
                    self.str(s);
                }
            }
        }
        self.uint(set.len() as u64);
        for (k, v) in set {
            self.str(k);
            self.str(v);
        }
        self.uint(set_at.len() as u64);
        for (k, at) in set_at {
            self.str(k);
            self.location(at);
        }
        self.strs(scrub);

        let ProcessPolicy { timeout, limits } = process;
        match timeout {
            None => self.bool(false),
            Some(d) => {
                self.bool(true);
                self.uint(d.as_secs());
                self.uint(d.subsec_nanos().into());
            }
        }
        let Limits {
            open_files,
            file_size,
            processes,
            cpu_seconds,
            address_space,
            core_size,
            memory,
            pids,
            cpu_millis,
            enforce,
        } = limits;
        for n in [
            open_files,
            file_size,
            processes,
            cpu_seconds,
            address_space,
            core_size,
            memory,
            pids,
            cpu_millis,
        ] {
            self.opt(*n);
        }
        self.buf.push(match enforce {
            None => 0,
            Some(Enforce::Required) => 1,
            Some(Enforce::BestEffort) => 2,
        });
        let LandlockPolicy { min_abi } = landlock;
        self.opt(min_abi.map(u64::from));

        self.uint(secrets.len() as u64);
        for s in secrets {
            let SecretDecl {
                name,
                optional,
                broker,
                broker_in,
                at,
                key,
            } = s;
            self.str(name);
            self.bool(*optional);
            self.strs(broker);
            self.uint(broker_in.len() as u64);
            for place in broker_in {
                match place {
                    BrokerPlace::Header(h) => {
                        self.buf.push(0);
                        self.str(h);
                    }
                    BrokerPlace::Query(q) => {
                        self.buf.push(1);
                        self.str(q);
                    }
                    BrokerPlace::Body => self.buf.push(2),
                }
            }
            self.location(at);
            self.str(key);
        }
    }
}

/// Reads what [`Writer`] wrote; `None` on anything else. `buf` starts `backing`.
struct Reader<'a> {
    buf: &'a [u8],
    backing: Arc<Backing>,
    pos: usize,
    files: Vec<String>,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], backing: Arc<Backing>) -> Reader<'a> {
        Reader {
            buf,
            backing,
            pos: 0,
            files: Vec::new(),
        }
    }
    fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn byte(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }
    fn uint(&mut self) -> Option<u64> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }
    fn usize(&mut self) -> Option<usize> {
        usize::try_from(self.uint()?).ok()
    }
    /// A count of items each at least one byte long: never more than the bytes left, so a
    /// corrupted count cannot make a huge allocation.
    fn count(&mut self) -> Option<usize> {
        let n = self.usize()?;
        (n <= self.buf.len() - self.pos).then_some(n)
    }
    fn bool(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn str(&mut self) -> Option<String> {
        let n = self.usize()?;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).ok().map(str::to_owned)
    }
    fn strs(&mut self) -> Option<Vec<String>> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.str()?);
        }
        Some(out)
    }
    fn opt(&mut self) -> Option<Option<u64>> {
        Some(if self.bool()? {
            Some(self.uint()?)
        } else {
            None
        })
    }
    fn location(&mut self) -> Option<Location> {
        let i = self.usize()?;
        let file = match i.cmp(&self.files.len()) {
            std::cmp::Ordering::Less => self.files[i].clone(),
            std::cmp::Ordering::Equal => {
                let f = self.str()?;
                self.files.push(f.clone());
                f
            }
            std::cmp::Ordering::Greater => return None,
        };
        Some(Location {
            file,
            line: self.usize()?,
            column: self.usize()?,
        })
    }
    fn templates(&mut self) -> Option<Vec<PathTemplate>> {
        let n = self.count()?;
        (0..n)
            .map(|_| {
                Some(PathTemplate {
                    raw: self.str()?,
                    at: self.location()?,
                    key: self.str()?,
                })
            })
            .collect()
    }
    fn deps(&mut self) -> Option<Vec<Dependency>> {
        let n = self.count()?;
        (0..n)
            .map(|_| {
                Some(Dependency {
                    path: PathBuf::from(self.str()?),
                    identity: self.str()?,
                    sha256: self.bytes(32)?.try_into().ok()?,
                })
            })
            .collect()
    }
    fn profile(&mut self) -> Option<Profile> {
        let name = self.str()?;
        let description = self.str()?;
        let source = self.str()?;
        let read_write = self.templates()?;
        let read_only = self.templates()?;
        let hidden = self.templates()?;
        let mut files = BTreeMap::new();
        for _ in 0..self.count()? {
            let path = self.str()?;
            let content = self.str()?;
            let at = self.location()?;
            files.insert(path, (content, at));
        }
        let mode = match self.byte()? {
            0 => NetworkMode::None,
            1 => NetworkMode::Enforce,
            2 => NetworkMode::Audit,
            _ => return None,
        };
        // The table as it is, in place: checked whole, not decoded.
        let n = self.usize()?;
        let at = self.pos;
        self.bytes(n)?;
        let allow = AllowList::from_table(self.backing.clone(), at, n)?;
        let max_connections = match self.opt()? {
            None => None,
            Some(n) => Some(u32::try_from(n).ok()?),
        };
        let n = self.count()?;
        let pass = (0..n)
            .map(|_| match self.byte()? {
                0 => Some(EnvPattern::Exact(self.str()?)),
                1 => Some(EnvPattern::Prefix(self.str()?)),
                _ => None,
            })
            .collect::<Option<Vec<EnvPattern>>>()?;
        let mut set = BTreeMap::new();
        for _ in 0..self.count()? {
            let k = self.str()?;
            set.insert(k, self.str()?);
        }
        let mut set_at = BTreeMap::new();
        for _ in 0..self.count()? {
            let k = self.str()?;
            set_at.insert(k, self.location()?);
        }
        let scrub = self.strs()?;
        let timeout = if self.bool()? {
            let secs = self.uint()?;
            let nanos = u32::try_from(self.uint()?)
                .ok()
                .filter(|n| *n < 1_000_000_000)?;
            Some(Duration::new(secs, nanos))
        } else {
            None
        };
        let limits = Limits {
            open_files: self.opt()?,
            file_size: self.opt()?,
            processes: self.opt()?,
            cpu_seconds: self.opt()?,
            address_space: self.opt()?,
            core_size: self.opt()?,
            memory: self.opt()?,
            pids: self.opt()?,
            cpu_millis: self.opt()?,
            enforce: match self.byte()? {
                0 => None,
                1 => Some(Enforce::Required),
                2 => Some(Enforce::BestEffort),
                _ => return None,
            },
        };
        let min_abi = match self.opt()? {
            None => None,
            Some(n) => Some(u32::try_from(n).ok()?),
        };
        let n = self.count()?;
        let secrets = (0..n)
            .map(|_| {
                let name = self.str()?;
                let optional = self.bool()?;
                let broker = self.strs()?;
                let n = self.count()?;
                let broker_in = (0..n)
                    .map(|_| match self.byte()? {
                        0 => Some(BrokerPlace::Header(self.str()?)),
                        1 => Some(BrokerPlace::Query(self.str()?)),
                        2 => Some(BrokerPlace::Body),
                        _ => None,
                    })
                    .collect::<Option<Vec<BrokerPlace>>>()?;
                Some(SecretDecl {
                    name,
                    optional,
                    broker,
                    broker_in,
                    at: self.location()?,
                    key: self.str()?,
                })
            })
            .collect::<Option<Vec<SecretDecl>>>()?;
        Some(Profile {
            name,
            description,
            source,
            filesystem: Filesystem {
                read_write,
                read_only,
                hidden,
                files,
            },
            network: Network {
                mode,
                allow,
                upstream_proxy: None,
                max_connections,
            },
            env: EnvPolicy {
                pass,
                set,
                set_at,
                scrub,
            },
            process: ProcessPolicy { timeout, limits },
            landlock: LandlockPolicy { min_abi },
            secrets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::RuleTarget;
    use super::*;

    const PARENT: &str = "name: parent\ndescription: p\nextends: default\nnetwork:\n  allow:\n    - parent.example.com:443\n";

    fn child(rule: &str) -> String {
        format!(
            "name: child\ndescription: c\nextends: ./parent.yml\n\
             filesystem:\n  read_write: [$WORKSPACE/out]\n  hidden: [$HOME/.secret]\n  \
             files:\n    /tmp/stepjail/x.conf: \"ws=$WORKSPACE\"\n\
             network:\n  mode: enforce\n  allow:\n    - {rule}\n    - '*.wild.example.org:80'\n    \
             - {{ cidr: 203.0.113.0/24, ports: [8443] }}\n    \
             - {{ host: api.example.com, ports: [443], methods: [GET], paths: [/v1] }}\n    - codecov.io:443\n\
             env:\n  pass: [FOO, BAR_*]\n  set:\n    A: \"1\"\n  scrub: [\"*_TOKEN\"]\n\
             secrets:\n  NPM_TOKEN: {{}}\n  CODECOV: {{ broker: {{ hosts: [codecov.io], in: [header:Authorization, query:token, body] }} }}\n\
             process:\n  timeout: 90s\n  limits:\n    open_files: 1024\n\
             landlock:\n  min_abi: 1\n"
        )
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        file: PathBuf,
        parent: PathBuf,
        cache: PathBuf,
    }

    fn fixture(rule: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("parent.yml"), PARENT).unwrap();
        std::fs::write(dir.join("child.yml"), child(rule)).unwrap();
        Fixture {
            file: dir.join("child.yml"),
            parent: dir.join("parent.yml"),
            cache: dir.join("cache/stepjail/profiles"),
            dir,
            _tmp: tmp,
        }
    }

    impl Fixture {
        fn load(&self) -> Profile {
            load_file_in(&self.file, Some(self.cache.clone())).unwrap()
        }
        /// The one entry in the cache.
        fn entry(&self) -> PathBuf {
            let list: Vec<PathBuf> = std::fs::read_dir(&self.cache)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(list.len(), 1, "{list:?}");
            list[0].clone()
        }
    }

    /// An entry's bytes decoded (not mapped).
    fn decode(bytes: &[u8], key: &[u8; 32]) -> Result<Profile, String> {
        decode_entry(Arc::new(Backing::Owned(bytes.to_vec())), key)
    }

    fn allowed(p: &Profile, host: &str, port: u16) -> bool {
        p.network.decide_name(host, port).is_allowed()
    }

    #[test]
    fn an_entry_holds_exactly_what_parsing_gives() {
        let f = fixture("first.example.com:443");
        let parsed = load::load_file(&f.file).unwrap();
        assert!(!f.cache.exists());
        // First use parses and writes the entry; the second is read from it.
        assert_eq!(f.load(), parsed);
        let entry = f.entry();
        assert_eq!(f.load(), parsed);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&f.cache), mode(&entry)), (0o700, 0o600));
        // Every built-in survives the encoding too.
        for name in super::super::builtin::names() {
            let p = load::load_builtin(name).unwrap();
            let bytes = encode_entry(&[7; 32], &[], &p);
            assert_eq!(decode(&bytes, &[7; 32]).unwrap(), p, "{name}");
            assert_eq!(decode(&bytes, &[8; 32]).unwrap_err(), OTHER_KEY, "{name}");
        }
    }

    #[test]
    fn the_entry_is_what_a_step_gets() {
        // Proof that a second load reads the entry: an entry rewritten (with a valid checksum)
        // to allow another host is what comes back. Nothing but stepjail writes there.
        let f = fixture("first.example.com:443");
        f.load();
        let entry = f.entry();
        let bytes = std::fs::read(&entry).unwrap();
        let key: [u8; 32] = bytes[8..40].try_into().unwrap();
        let mut p = decode(&bytes, &key).unwrap();
        let mut rules = p.network.allow.rules().to_vec();
        rules[1].target = RuleTarget::Exact("other.example.com".into());
        p.network.allow = rules.into();
        std::fs::write(&entry, encode_entry(&key, &[], &p)).unwrap();
        assert!(allowed(&f.load(), "other.example.com", 443));
    }

    #[test]
    fn a_hit_decides_from_the_mapped_entry_without_building_rules() {
        let f = fixture("first.example.com:443");
        let parsed = f.load();
        assert!(!parsed.network.allow.is_mapped());
        let hit = f.load();
        // The allow table is the entry's own bytes, read in place: no rule is built to decide.
        assert!(hit.network.allow.is_mapped());
        assert!(allowed(&hit, "first.example.com", 443));
        assert!(allowed(&hit, "x.wild.example.org", 80));
        assert!(!allowed(&hit, "x.wild.example.org", 443));
        assert!(hit.network.allow.any_restricted());
        assert!(!hit.network.allow.is_built());
        assert_eq!(hit, parsed);
    }

    #[test]
    fn a_profile_from_a_pipe_is_read_once() {
        // A pipe is not hashed as it is read (that would consume it): read whole, then looked
        // up like any file.
        let f = fixture("first.example.com:443");
        let fifo = f.dir.join("fifo.yml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let text = std::fs::read(&f.file).unwrap();
        for _ in 0..2 {
            let (path, text) = (fifo.clone(), text.clone());
            let writer = std::thread::spawn(move || std::fs::write(path, text));
            // In a thread of its own, so that a loader waiting on the pipe fails the test.
            let (tx, rx) = std::sync::mpsc::channel();
            let (path, cache) = (fifo.clone(), f.cache.clone());
            std::thread::spawn(move || tx.send(Box::new(load_file_in(&path, Some(cache)))));
            let p = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the loader waited on the pipe")
                .unwrap();
            writer.join().unwrap().unwrap();
            assert!(allowed(&p, "first.example.com", 443));
        }
    }

    #[test]
    fn connection_cap_and_every_limit_round_trip_exactly() {
        // Every field of `network` and `process.limits` set to a value that is not its
        // default, so a field the encoder forgets (or the decoder reads in the wrong order)
        // comes back different.
        let f = fixture("first.example.com:443");
        std::fs::write(
            &f.file,
            "name: limits\ndescription: l\nextends: default\n\
             network:\n  mode: audit\n  max_connections: 77\n  allow: [a.example.com:443]\n\
             process:\n  timeout: 1h30m\n  limits:\n    open_files: 11\n    file_size: 12M\n    \
             processes: 13\n    cpu_seconds: 14\n    address_space: 15G\n    core_size: 16K\n    \
             memory: 17M\n    pids: 18\n    cpu: 1.5\n    enforce: best-effort\n",
        )
        .unwrap();
        let parsed = load::load_file(&f.file).unwrap();
        let l = &parsed.process.limits;
        assert_eq!(parsed.network.max_connections, Some(77));
        assert_eq!(
            (l.memory, l.pids, l.cpu_millis, l.enforce),
            (
                Some(17 << 20),
                Some(18),
                Some(1500),
                Some(Enforce::BestEffort)
            )
        );
        assert_eq!(f.load(), parsed, "first load: parsed, entry written");
        let entry = f.entry();
        assert_eq!(f.load(), parsed, "second load: from the entry");
        let bytes = std::fs::read(&entry).unwrap();
        let key: [u8; 32] = bytes[8..40].try_into().unwrap();
        assert_eq!(read(&f.cache, &key).unwrap(), parsed);
        // `enforce: required` written out is not the same as no `enforce` at all.
        let mut p = parsed.clone();
        for e in [None, Some(Enforce::Required)] {
            p.process.limits.enforce = e;
            p.network.max_connections = None;
            let back = decode(&encode_entry(&key, &[], &p), &key).unwrap();
            assert_eq!(back, p);
        }
    }

    #[test]
    fn a_changed_profile_is_parsed_again() {
        let f = fixture("first.example.com:443");
        let before = f.load();
        assert!(allowed(&before, "first.example.com", 443));
        assert!(allowed(&f.load(), "first.example.com", 443));
        // One rule changed: the new bytes have a new key, so the old entry is never read.
        std::fs::write(&f.file, child("second.example.com:443")).unwrap();
        let after = f.load();
        assert!(!allowed(&after, "first.example.com", 443));
        assert!(allowed(&after, "second.example.com", 443));
        assert_eq!(after, load::load_file(&f.file).unwrap());
        // A changed `extends` parent is noticed too, although the child's bytes are the same.
        std::fs::write(&f.file, child("first.example.com:443")).unwrap();
        assert!(allowed(&f.load(), "parent.example.com", 443));
        std::fs::write(
            &f.parent,
            PARENT.replace("parent.example.com", "p2.example.com"),
        )
        .unwrap();
        let p = f.load();
        assert!(!allowed(&p, "parent.example.com", 443));
        assert!(allowed(&p, "p2.example.com", 443));
        assert_eq!(p, load::load_file(&f.file).unwrap());
    }

    #[test]
    fn a_corrupted_or_truncated_entry_is_ignored() {
        let f = fixture("first.example.com:443");
        let parsed = f.load();
        let entry = f.entry();
        let good = std::fs::read(&entry).unwrap();
        // A byte inside a rule's host name, so a decoder that skipped the checksum would
        // return a profile allowing another name.
        let at = good
            .windows(b"first.example.com".len())
            .position(|w| w == b"first.example.com")
            .unwrap();
        let mut flipped = good.clone();
        flipped[at] = b'x';
        for bad in [flipped, good[..good.len() / 2].to_vec(), Vec::new()] {
            std::fs::write(&entry, &bad).unwrap();
            let p = f.load();
            assert_eq!(p, parsed);
            assert!(allowed(&p, "first.example.com", 443));
            assert!(!allowed(&p, "xirst.example.com", 443));
            // And the entry was written again, whole.
            assert_eq!(std::fs::read(&entry).unwrap(), good);
        }
    }

    #[test]
    fn an_entry_others_could_write_is_not_read() {
        use std::os::unix::fs::PermissionsExt;
        let f = fixture("first.example.com:443");
        f.load();
        let entry = f.entry();
        let bytes = std::fs::read(&entry).unwrap();
        let key: [u8; 32] = bytes[8..40].try_into().unwrap();
        assert!(read(&f.cache, &key).is_ok());
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            read(&f.cache, &key)
                .unwrap_err()
                .contains("closed to writers")
        );
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&f.cache, std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(read(&f.cache, &key).unwrap_err().contains("mode"));
        std::fs::set_permissions(&f.cache, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A symlink in place of the entry is not followed.
        std::fs::rename(&entry, f.dir.join("moved")).unwrap();
        std::os::unix::fs::symlink(f.dir.join("moved"), &entry).unwrap();
        assert_eq!(
            read(&f.cache, &key).unwrap_err(),
            std::io::Error::from_raw_os_error(libc::ELOOP).to_string()
        );
    }

    #[test]
    fn errors_are_the_parsers_and_nothing_is_cached_for_them() {
        let f = fixture("first.example.com:443");
        std::fs::write(
            &f.file,
            "name: x\ndescription: d\nnetwork:\n  allow:\n    - 'a b'\n",
        )
        .unwrap();
        let e = load_file_in(&f.file, Some(f.cache.clone())).unwrap_err();
        assert_eq!(
            e.to_string(),
            load::load_file(&f.file).unwrap_err().to_string()
        );
        assert!(
            e.to_string()
                .starts_with(&format!("{}:5:7:", f.file.display())),
            "{e}"
        );
        assert!(!f.cache.exists());
    }

    #[test]
    fn the_cache_keeps_a_bounded_number_of_entries() {
        let f = fixture("first.example.com:443");
        for i in 0..MAX_ENTRIES + 3 {
            std::fs::write(&f.file, child(&format!("h{i}.example.com:443"))).unwrap();
            f.load();
        }
        assert_eq!(std::fs::read_dir(&f.cache).unwrap().count(), MAX_ENTRIES);
    }
}
