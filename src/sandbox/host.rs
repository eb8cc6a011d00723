//! Facts about the host, read once before the sandbox is cloned: who runs the step, which
//! paths exist, which unix sockets host services listen on, where a GitHub runner lives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::plan::{HiddenKind, HostFacts, Identity, RUNNER_CREDENTIAL_FILES};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("--user {0}: no such user (give a name from /etc/passwd or uid[:gid])")]
    UnknownUser(String),
    #[error("--user is only meaningful when stepjail runs as root (the step always runs as you)")]
    UserNeedsRoot,
    #[error("reading the current directory: {0}")]
    Cwd(std::io::Error),
}

/// Decides who the step runs as. Unprivileged: the caller. Root: `--user`, else the user who
/// ran `sudo` (`SUDO_UID`/`SUDO_GID`), else root itself (still without any capability).
pub fn identity(user: Option<&str>, env: &[(String, String)]) -> Result<Identity, HostError> {
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let privileged = euid == 0;
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (uid, gid) = match (privileged, user) {
        (false, Some(_)) => return Err(HostError::UserNeedsRoot),
        (false, None) => (euid, egid),
        (true, Some(spec)) => {
            parse_user(spec).ok_or_else(|| HostError::UnknownUser(spec.into()))?
        }
        (true, None) => match (
            get("SUDO_UID").and_then(|s| s.parse().ok()),
            get("SUDO_GID"),
        ) {
            (Some(uid), gid) => (uid, gid.and_then(|g| g.parse().ok()).unwrap_or(uid)),
            (None, _) => (0, 0),
        },
    };
    let user = nix::unistd::User::from_uid(uid.into()).ok().flatten();
    let from_env = get("HOME").map(PathBuf::from);
    // The caller's $HOME when the step runs as the caller; else the step user's passwd entry.
    let home = match (&user, euid == uid) {
        (_, true) if from_env.is_some() => from_env,
        (Some(u), _) => Some(u.dir.clone()),
        (None, _) => from_env,
    };
    Ok(Identity {
        uid,
        gid,
        name: user.map(|u| u.name),
        home,
        privileged,
    })
}

fn parse_user(spec: &str) -> Option<(u32, u32)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => (
            uid,
            nix::unistd::User::from_uid(uid.into())
                .ok()
                .flatten()
                .map(|p| p.gid.as_raw()),
        ),
        Err(_) => {
            let pw = nix::unistd::User::from_name(u).ok().flatten()?;
            (pw.uid.as_raw(), Some(pw.gid.as_raw()))
        }
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => nix::unistd::Group::from_name(g)
                .ok()
                .flatten()?
                .gid
                .as_raw(),
        },
        None => primary.unwrap_or(uid),
    };
    Some((uid, gid))
}

/// Gathers the facts the plan needs for these candidate paths.
pub fn facts<'a>(
    paths: impl IntoIterator<Item = &'a PathBuf>,
    env: Vec<(String, String)>,
) -> Result<HostFacts, HostError> {
    let cwd = std::env::current_dir().map_err(HostError::Cwd)?;
    let host_sockets =
        bound_unix_sockets(&std::fs::read_to_string("/proc/net/unix").unwrap_or_default());
    let runner_root = runner_root();
    let mut kinds = BTreeMap::new();
    let runner_files = runner_root
        .iter()
        .flat_map(|r| RUNNER_CREDENTIAL_FILES.iter().map(move |f| r.join(f)));
    let all: Vec<PathBuf> = paths
        .into_iter()
        .cloned()
        .chain(runner_files)
        .chain(host_sockets.iter().cloned())
        .collect();
    for p in all {
        if let Ok(m) = std::fs::metadata(&p) {
            kinds.insert(
                p,
                if m.is_dir() {
                    HiddenKind::Dir
                } else {
                    HiddenKind::File
                },
            );
        }
    }
    Ok(HostFacts {
        env,
        cwd,
        kinds,
        host_sockets,
        runner_root,
    })
}

/// Paths of every pathname socket bound in `/proc/net/unix`: listening stream sockets and
/// datagram sockets (the journal, sd_notify) alike. Abstract sockets, shown with a leading `@`,
/// belong to the network namespace and are out of reach already.
pub fn bound_unix_sockets(table: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let path = line.split_whitespace().nth(7)?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The GitHub runner's root directory: the parent of the `bin/` holding the `Runner.Worker`
/// among our ancestors, or the standard locations on hosted runners.
fn runner_root() -> Option<PathBuf> {
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..32 {
        if pid <= 1 {
            break;
        }
        if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe"))
            && matches!(
                exe.file_name().and_then(|n| n.to_str()),
                Some("Runner.Worker" | "Runner.Listener")
            )
        {
            return exe.parent()?.parent().map(Path::to_path_buf);
        }
        pid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bound_pathname_sockets_only() {
        let table = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 20000 /run/docker.sock
0000000000000000: 00000002 00000000 00010000 0001 01 20001 @/tmp/.X11-unix/X0
0000000000000000: 00000003 00000000 00000000 0001 03 20002 /run/systemd/journal/stdout
0000000000000000: 00000002 00000000 00010000 0001 01 20003
0000000000000000: 00000002 00000000 00010000 0005 01 20004 /run/dbus/system_bus_socket
";
        assert_eq!(
            bound_unix_sockets(table),
            vec![
                PathBuf::from("/run/dbus/system_bus_socket"),
                PathBuf::from("/run/docker.sock"),
                // A datagram socket (the journal): sending to it is reaching a host service too.
                PathBuf::from("/run/systemd/journal/stdout"),
            ]
        );
    }

    #[test]
    fn user_spec_accepts_numbers() {
        assert_eq!(parse_user("1234:5678"), Some((1234, 5678)));
        assert_eq!(parse_user("0"), Some((0, 0)));
        assert_eq!(parse_user("no-such-user-stepjail"), None);
    }
}
