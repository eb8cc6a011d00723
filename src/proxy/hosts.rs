//! The host's `/etc/hosts`, consulted for allowed names before DNS (glibc's default
//! `hosts: files dns` order), so a name only the runner's hosts file knows (`10.1.2.3
//! mirror.corp` on a self-hosted runner) resolves inside the step as it does outside.
//!
//! The file is read once, by the supervisor, before the sandbox exists: it is the host's file,
//! not the sandbox's, and a step cannot change it. Only the lookup order changes; everything
//! else is as for a DNS answer: a name the policy does not allow is never answered from here,
//! and addresses in the special ranges (loopback, private, ...) are removed unless a `cidr` rule
//! names them.
//!
//! A name that has at least one entry is answered from the file alone, for both A and AAAA (a
//! family with no entry gets an empty answer) and DNS is not asked about it: an entry pins the
//! name, as with systemd-resolved, so a hosts entry for a private mirror is never mixed with a
//! public DNS answer for the same name.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::policy::egress::normalize_host;

/// The hosts file read when `STEPJAIL_HOSTS_FILE` is not set.
pub const DEFAULT_PATH: &str = "/etc/hosts";
/// Names another hosts file (tests, special setups); an empty value means no hosts file.
pub const PATH_VAR: &str = "STEPJAIL_HOSTS_FILE";
/// The TTL of answers built from the hosts file (it is read once, so this only bounds how
/// long a client keeps an answer the stub would give again).
pub const TTL: u32 = 60;
/// Entries read at most; a hosts file with more is a blocklist, not a name service.
const MAX_NAMES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
#[error("{}: cannot read the hosts file: {source}", path.display())]
pub struct HostsError {
    path: PathBuf,
    source: std::io::Error,
}

/// Names and their addresses, in file order, deduplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsFile {
    names: HashMap<String, Vec<IpAddr>>,
}

impl HostsFile {
    /// Parses hosts(5) text: `ADDRESS NAME [ALIAS...]`, `#` to the end of a line is a
    /// comment. Lines whose address does not parse (or carries a zone, `fe80::1%eth0`, which
    /// needs an interface this process cannot name for the step) are skipped, and so are names
    /// that are not host names. A name on several lines gets every address, in order.
    pub fn parse(text: &str) -> HostsFile {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for line in text.lines() {
            let line = line.split_once('#').map_or(line, |(l, _)| l);
            let mut words = line.split_whitespace();
            let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for word in words {
                let Ok(name) = normalize_host(word) else {
                    continue;
                };
                if names.len() >= MAX_NAMES && !names.contains_key(&name) {
                    continue;
                }
                let addrs = names.entry(name).or_default();
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
            }
        }
        HostsFile { names }
    }

    /// Reads the hosts file the supervisor consults: `STEPJAIL_HOSTS_FILE` when set (empty:
    /// none) and `honour_var`, else `/etc/hosts`. A missing `/etc/hosts` is an empty one; a
    /// file named by the variable must be readable. CI steps pass `honour_var: false`: a
    /// workflow's `env:` reaches `stepjail step`, and must not re-point allowed names.
    pub fn load_for_run(honour_var: bool) -> Result<HostsFile, HostsError> {
        match std::env::var_os(PATH_VAR).filter(|_| honour_var) {
            Some(p) if p.is_empty() => Ok(HostsFile::default()),
            Some(p) => HostsFile::load(Path::new(&p)),
            None => match HostsFile::load(Path::new(DEFAULT_PATH)) {
                Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
                    Ok(HostsFile::default())
                }
                r => r,
            },
        }
    }

    pub fn load(path: &Path) -> Result<HostsFile, HostsError> {
        std::fs::read(path)
            .map(|bytes| HostsFile::parse(&String::from_utf8_lossy(&bytes)))
            .map_err(|source| HostsError {
                path: path.to_path_buf(),
                source,
            })
    }

    /// The file's answer for `name` (normalised: lower case, no trailing dot) and `qtype`
    /// (1 = A, 28 = AAAA): `None` when the file does not know the name (ask DNS), else its
    /// addresses of that family, possibly none. Special ranges are the caller's to check.
    pub fn lookup(&self, name: &str, qtype: u16) -> Option<Vec<IpAddr>> {
        let addrs = self.names.get(name)?;
        Some(
            addrs
                .iter()
                .copied()
                .filter(|ip| match qtype {
                    super::dns::TYPE_A => ip.is_ipv4(),
                    super::dns::TYPE_AAAA => ip.is_ipv6(),
                    _ => false,
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u16 = 1;
    const AAAA: u16 = 28;

    fn ips(list: &[&str]) -> Option<Vec<IpAddr>> {
        Some(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    const SAMPLE: &str = "\
# /etc/hosts of a self-hosted runner
127.0.0.1\tlocalhost
::1     localhost ip6-localhost ip6-loopback
10.1.2.3   mirror.corp   mirror  # the package mirror
192.0.2.7 Registry.Example.  registry-alias.example
2001:db8::7 registry.example
192.0.2.7 registry.example
fe80::1%eth0 zoned.example
not-an-address bad.example
300.1.2.3 bad2.example
10.9.9.9
  # indented comment 10.0.0.1 commented.example
192.0.2.8 under_score.example good.example
198.51.100.1 foo.example#glued-comment
";

    #[test]
    fn parses_names_aliases_comments_and_families() {
        let h = HostsFile::parse(SAMPLE);
        assert_eq!(h.lookup("mirror.corp", A), ips(&["10.1.2.3"]));
        assert_eq!(h.lookup("mirror", A), ips(&["10.1.2.3"]));
        // Case and the trailing dot are normalised; both lines' addresses, deduplicated.
        assert_eq!(h.lookup("registry.example", A), ips(&["192.0.2.7"]));
        assert_eq!(h.lookup("registry.example", AAAA), ips(&["2001:db8::7"]));
        assert_eq!(h.lookup("registry-alias.example", A), ips(&["192.0.2.7"]));
        assert_eq!(h.lookup("localhost", A), ips(&["127.0.0.1"]));
        assert_eq!(h.lookup("localhost", AAAA), ips(&["::1"]));
        assert_eq!(h.lookup("ip6-loopback", AAAA), ips(&["::1"]));
        assert_eq!(h.lookup("foo.example", A), ips(&["198.51.100.1"]));
        assert_eq!(h.lookup("good.example", A), ips(&["192.0.2.8"]));
    }

    #[test]
    fn bad_lines_and_names_are_ignored() {
        let h = HostsFile::parse(SAMPLE);
        for name in [
            "zoned.example",
            "bad.example",
            "bad2.example",
            "commented.example",
            "under_score.example",
            "glued-comment",
            "10.9.9.9",
        ] {
            assert_eq!(h.lookup(name, A), None, "{name}");
            assert_eq!(h.lookup(name, AAAA), None, "{name}");
        }
        assert!(HostsFile::parse("").is_empty());
        assert!(HostsFile::parse("\u{0}\u{ff}garbage\n#\n\n   \n").is_empty());
    }

    /// A known name is answered from the file for both families (an empty answer for a family
    /// it has no entry for), so DNS is never mixed in; other types get nothing.
    #[test]
    fn a_known_name_pins_both_families() {
        let h = HostsFile::parse(SAMPLE);
        assert_eq!(h.lookup("mirror.corp", AAAA), Some(vec![]));
        assert_eq!(h.lookup("mirror.corp", 16), Some(vec![]));
        assert_eq!(h.lookup("unknown.example", A), None);
    }

    #[test]
    fn load_names_the_path_on_error() {
        let e = HostsFile::load(Path::new("/nonexistent/stepjail-hosts")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/stepjail-hosts: cannot read the hosts file"),
            "{e}"
        );
    }
}
