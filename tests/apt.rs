//! The built-in `apt` profile with the real apt, as root and as an unprivileged user, against
//! a Debian mirror of the test's own (deb.debian.org inside the fake internet, serving one
//! tiny package built here with dpkg-deb). Nothing leaves the test's network namespace.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Dir;
use common::inet::{Internet, audit_events, egress_users, find, needs_root};

/// The built-in profile, unchanged (a file that only extends it, since the fake internet's
/// runner takes a profile file).
const PROFILE: &str = "name: apt-as-is\ndescription: the built-in apt profile\nextends: apt\n";

/// Points apt at the fake mirror only (the host's own sources name real suites).
const SOURCES: &str = "deb [trusted=yes] http://deb.debian.org/debian stable main\n";
const APT: &str =
    "apt-get -q -o Dir::Etc::SourceList=$PWD/sources.list -o Dir::Etc::SourceParts=/nonexistent";

const DEB: &str = "hello_1.0-1_all.deb";

/// Builds the mirror under `root`: a trusted=yes repository with `hello` 1.0-1 in it.
/// Returns the .deb's path.
fn build_mirror(root: &Path) -> PathBuf {
    let script = r#"set -e
cd "$1"
mkdir -p pkg/DEBIAN pkg/usr/bin debian/pool/main/h/hello
printf 'Package: hello\nVersion: 1.0-1\nArchitecture: all\nMaintainer: stepjail tests <t@example.invalid>\nDescription: a package of the test mirror\n' > pkg/DEBIAN/control
printf '#!/bin/sh\necho hello from the test mirror\n' > pkg/usr/bin/hello
chmod 755 pkg/usr/bin/hello
dpkg-deb -Zgzip --root-owner-group --build pkg debian/pool/main/h/hello/hello_1.0-1_all.deb >/dev/null
arch=$(dpkg --print-architecture)
dists=debian/dists/stable
mkdir -p "$dists/main/binary-$arch"
deb=debian/pool/main/h/hello/hello_1.0-1_all.deb
{
  dpkg-deb -f "$deb"
  echo "Filename: pool/main/h/hello/hello_1.0-1_all.deb"
  echo "Size: $(stat -c %s "$deb")"
  echo "SHA256: $(sha256sum "$deb" | cut -d' ' -f1)"
  echo
} > "$dists/main/binary-$arch/Packages"
cd "$dists"
p="main/binary-$arch/Packages"
{
  echo "Origin: stepjail-test"
  echo "Suite: stable"
  echo "Codename: stable"
  echo "Date: $(date -Ru)"
  echo "Architectures: $arch all"
  echo "Components: main"
  echo "SHA256:"
  echo " $(sha256sum "$p" | cut -d' ' -f1) $(stat -c %s "$p") $p"
} > Release
"#;
    let mirror = root.join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let out = Command::new("sh")
        .args(["-c", script, "sh", mirror.to_str().unwrap()])
        .output()
        .expect("running sh");
    assert!(
        out.status.success(),
        "building the test mirror (needs dpkg-deb, sha256sum): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    mirror.join("debian/pool/main/h/hello").join(DEB)
}

fn same_file(got: &Path, want: &Path) {
    let got_bytes =
        std::fs::read(got).unwrap_or_else(|e| panic!("{} was not downloaded: {e}", got.display()));
    assert_eq!(got_bytes, std::fs::read(want).unwrap(), "{}", got.display());
}

#[test]
fn apt_profile_updates_downloads_and_installs_download_only() {
    if !needs_root() {
        return;
    }
    assert!(
        Path::new("/usr/bin/apt-get").exists(),
        "this test needs apt-get (Debian or Ubuntu)"
    );
    let net = Internet::new();
    let deb = build_mirror(&net.logs);
    let host_lists = std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| d.count())
        .unwrap_or(0);
    for uid in egress_users() {
        let dir = Dir::new(uid);
        dir.write("ws/sources.list", SOURCES);

        // As a CI job would: one step per command.
        let update = net.run(&dir, PROFILE, &[], &format!("{APT} update"));
        update.ok();
        assert!(
            !update.stdout().contains("E:") && !update.stderr().contains("E:"),
            "uid {uid}: {}{}",
            update.stdout(),
            update.stderr()
        );
        let lists = dir.ws.join(".apt/lists");
        assert!(
            lists
                .join("deb.debian.org_debian_dists_stable_Release")
                .exists(),
            "uid {uid}: lists not in the workspace: {:?}",
            std::fs::read_dir(&lists).map(|d| d.count())
        );

        net.run(&dir, PROFILE, &[], &format!("{APT} download hello"))
            .ok();
        same_file(&dir.ws.join(DEB), &deb);

        let install = net.run(
            &dir,
            PROFILE,
            &[],
            &format!("{APT} install -y --download-only hello"),
        );
        install.ok();
        assert!(
            install
                .stdout()
                .contains("Download complete and in download only mode"),
            "uid {uid}: {}",
            install.stdout()
        );
        same_file(&dir.ws.join(".apt/archives").join(DEB), &deb);

        // Every request went through the proxy to the allowed mirror, nothing was denied.
        let ev = audit_events(&dir);
        assert!(
            !find(&ev, "connect", &[("dest_name", "deb.debian.org")]).is_empty(),
            "uid {uid}: {ev:#?}"
        );
        assert!(
            find(&ev, "connect", &[("decision", "deny")]).is_empty(),
            "uid {uid}: {ev:#?}"
        );
    }
    // The .deb was fetched twice per user (download, install --download-only); the host's own
    // lists were never touched.
    let fetched = net
        .log("mirror.log")
        .lines()
        .filter(|l| *l == format!("GET /debian/pool/main/h/hello/{DEB} 200"))
        .count();
    assert_eq!(
        fetched,
        2 * egress_users().len(),
        "{}",
        net.log("mirror.log")
    );
    let after = std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(host_lists, after, "the host's /var/lib/apt/lists changed");
}
