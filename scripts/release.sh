#!/usr/bin/env bash
# Build the release tarballs that `install.sh --version` downloads, and the checksum lines to
# pin for them.
#
# Usage: scripts/release.sh VERSION [--out DIR] [--arch ARCH]... [--pin]
#
#   VERSION   must equal the version in Cargo.toml (X.Y.Z)
#   --out     where the tarballs go (default: target/release-artifacts)
#   --arch    x86_64 and/or aarch64 (default: this machine's); each needs the Rust target
#             ARCH-unknown-linux-musl (`rustup target add ...`) and, for ring's C and assembly,
#             a C compiler for it (musl-gcc from musl-tools on x86_64; a cross compiler for
#             aarch64 on an x86_64 host)
#   --pin     append the lines to checksums.txt (refused if a different checksum is already
#             pinned for the same file); without it they are only printed
#
# Each tarball holds one file, `stepjail` (mode 0755, owner 0:0, mtime from the last commit),
# statically linked against musl. Upload the tarballs to the GitHub release vVERSION and commit
# checksums.txt in the commit the tag points at: the action at that tag then verifies downloads
# against checksums it carries itself, never against anything on the download server.
set -euo pipefail

die() {
    printf 'release.sh: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
}

main() {
    cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
    local version="" out="target/release-artifacts" pin=false
    local -a arches=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --out) [[ $# -ge 2 ]] || die "--out needs a directory"; out="$2"; shift 2 ;;
            --arch) [[ $# -ge 2 ]] || die "--arch needs x86_64 or aarch64"; arches+=("$2"); shift 2 ;;
            --pin) pin=true; shift ;;
            -*) die "unknown option: $1" ;;
            *) [[ -z "$version" ]] || die "one VERSION only"; version="$1"; shift ;;
        esac
    done
    [[ -n "$version" ]] || { usage >&2; die "VERSION is required"; }
    local crate_version
    crate_version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
    [[ "$version" == "$crate_version" ]] \
        || die "VERSION $version is not Cargo.toml's version ($crate_version)"
    if [[ ${#arches[@]} -eq 0 ]]; then
        case "$(uname -m)" in
            x86_64 | amd64) arches=(x86_64) ;;
            aarch64 | arm64) arches=(aarch64) ;;
            *) die "no default --arch for $(uname -m)" ;;
        esac
    fi
    mkdir -p -- "$out"
    local mtime
    mtime="$(git log -1 --format=%ct 2>/dev/null || echo 0)"
    local -a lines=()
    local arch target name stage sum
    for arch in "${arches[@]}"; do
        case "$arch" in
            x86_64 | aarch64) ;;
            *) die "unsupported --arch $arch (x86_64 or aarch64)" ;;
        esac
        target="${arch}-unknown-linux-musl"
        rustup target list --installed 2>/dev/null | grep -qx "$target" \
            || die "Rust target $target is not installed: rustup target add $target"
        echo "release.sh: building $target" >&2
        cargo build --release --locked --target "$target"
        name="stepjail-${version}-${target}.tar.gz"
        stage="$(mktemp -d)"
        install -m 0755 "target/${target}/release/stepjail" "${stage}/stepjail"
        tar -C "$stage" --owner=0 --group=0 --numeric-owner --mtime="@${mtime}" \
            -czf "${out}/${name}" stepjail
        rm -rf -- "$stage"
        sum="$(sha256sum "${out}/${name}" | cut -d' ' -f1)"
        lines+=("${sum}  ${name}")
    done
    local line file existing
    for line in "${lines[@]}"; do
        echo "$line"
        $pin || continue
        file="${line#*  }"
        existing="$(awk -v f="$file" '!/^[[:space:]]*#/ && $2 == f { print $1 }' checksums.txt)"
        if [[ -n "$existing" ]]; then
            [[ "$existing" == "${line%%  *}" ]] \
                || die "checksums.txt already pins $file to $existing; refusing to change a published checksum"
            continue
        fi
        printf '%s\n' "$line" >>checksums.txt
    done
    $pin && echo "release.sh: pinned in checksums.txt; commit it with the tag" >&2
    return 0
}

main "$@"
