#!/usr/bin/env bash
# Install stepjail.
#
# Two ways:
#   * from source (the default): builds stepjail from the checkout this script
#     lives in (`cargo build --release --locked`) and installs
#     target/release/stepjail;
#   * from a release (--version X.Y.Z): downloads the release tarball for this
#     machine's architecture and installs it only if its SHA-256 equals the one
#     pinned in checksums.txt next to this script (or --checksums FILE). The
#     checksum is never fetched from the download server.
#
# Usage: ./install.sh [--from-source | --version X.Y.Z] [--prefix DIR] ...
#   (see --help). Installs to DIR/bin (default: ~/.local/bin). Safe to re-run:
#   the binary is replaced atomically (copied to a temp file in the target dir,
#   then renamed), and a failed download or check leaves an installed binary
#   untouched.
set -euo pipefail
# Functions whose output is captured with $(...) must stop on errors too.
shopt -s inherit_errexit

readonly BIN_NAME="stepjail"
readonly DEFAULT_BASE_URL="https://github.com/stepjail/stepjail/releases/download"

usage() {
    cat <<EOF
Usage: install.sh [--from-source] [--prefix DIR]
       install.sh --version X.Y.Z [--prefix DIR] [--base-url URL] [--checksums FILE]

Install ${BIN_NAME} to PREFIX/bin.

Without --version (or with --from-source), build ${BIN_NAME} from this checkout
with 'cargo build --release --locked'; this needs a Rust toolchain.

With --version X.Y.Z, download the release binary for this machine instead
(Linux on x86_64 or aarch64 only):
    BASE_URL/vX.Y.Z/${BIN_NAME}-X.Y.Z-ARCH-unknown-linux-musl.tar.gz
and install it only if its SHA-256 equals the checksum pinned for that file
name in the checksums file. The checksum is never taken from the download
server. Without a pinned line, or on a mismatch, nothing is installed and an
already installed binary is left untouched.

Options:
  --prefix DIR, --prefix=DIR   install to DIR/bin (default: \$HOME/.local, i.e. ~/.local/bin)
  --from-source                build from this checkout (the default without --version)
  --version X.Y.Z              install the release X.Y.Z (a leading 'v' is accepted)
  --base-url URL               download from URL/vX.Y.Z/... instead of
                               ${DEFAULT_BASE_URL}
                               (http:// is accepted only here, e.g. for a local mirror;
                               the pinned checksum still protects the download)
  --checksums FILE             pinned checksums (default: checksums.txt next to this script)
  -h, --help                   show this help and exit

Checksums file: one line per release file, as printed by 'sha256sum':
    <64 hex digits>  ${BIN_NAME}-X.Y.Z-ARCH-unknown-linux-musl.tar.gz
Blank lines and lines starting with '#' are ignored; any other line is an error.

The tarball must hold the file '${BIN_NAME}' at its top level or inside one
directory; archives with absolute paths or '..' components are refused.

Environment (for tests): STEPJAIL_INSTALL_ARCH overrides 'uname -m'.

Re-running replaces the installed binary atomically.
EOF
}

die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

warn() {
    printf 'install.sh: warning: %s\n' "$*" >&2
}

info() {
    printf 'install.sh: %s\n' "$*"
}

# Parse arguments into the globals PREFIX (may stay empty = default),
# FROM_SOURCE, VERSION, BASE_URL and CHECKSUMS (empty = not given).
parse_args() {
    PREFIX=""
    FROM_SOURCE=""
    VERSION=""
    BASE_URL=""
    CHECKSUMS=""
    local opt val
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -h | --help)
                usage
                exit 0
                ;;
            --from-source)
                FROM_SOURCE=1
                shift
                ;;
            --prefix | --version | --base-url | --checksums)
                opt="$1"
                [[ $# -ge 2 && -n "$2" ]] || die "${opt} needs an argument"
                val="$2"
                shift 2
                set_option "$opt" "$val"
                ;;
            --prefix=* | --version=* | --base-url=* | --checksums=*)
                opt="${1%%=*}"
                val="${1#*=}"
                [[ -n "$val" ]] || die "${opt}= needs an argument"
                shift
                set_option "$opt" "$val"
                ;;
            *)
                usage >&2
                die "unknown argument: $1"
                ;;
        esac
    done

    if [[ -n "$FROM_SOURCE" && -n "$VERSION" ]]; then
        die "--from-source and --version exclude each other"
    fi
    if [[ -z "$VERSION" ]]; then
        [[ -z "$BASE_URL" ]] || die "--base-url needs --version X.Y.Z"
        [[ -z "$CHECKSUMS" ]] || die "--checksums needs --version X.Y.Z"
    fi
}

set_option() {
    case "$1" in
        --prefix) PREFIX="$2" ;;
        --version) VERSION="$2" ;;
        --base-url) BASE_URL="$2" ;;
        --checksums) CHECKSUMS="$2" ;;
        *) die "internal error: unexpected option $1" ;;
    esac
}

# Directory the binary goes into.
resolve_bin_dir() {
    if [[ -n "$PREFIX" ]]; then
        printf '%s/bin\n' "${PREFIX%/}"
    else
        [[ -n "${HOME:-}" ]] || die "HOME is not set; pass --prefix DIR"
        printf '%s/.local/bin\n' "$HOME"
    fi
}

# Build from the checkout in the current directory; prints the path of the
# built binary on stdout (cargo's own output goes to stderr).
build_from_source() {
    command -v cargo >/dev/null 2>&1 \
        || die "cargo not found on PATH. Install Rust (https://rustup.rs), e.g.
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
then open a new shell (or 'source \"\$HOME/.cargo/env\"') and re-run this script."
    [[ -f Cargo.toml ]] || die "no Cargo.toml in $(pwd); run install.sh from a stepjail checkout"

    info "building ${BIN_NAME} in $(pwd) (cargo build --release --locked)" >&2
    cargo build --release --locked >&2 || die "cargo build failed"

    # Honour CARGO_TARGET_DIR if the user set one.
    local target_dir="${CARGO_TARGET_DIR:-target}"
    local built="${target_dir}/release/${BIN_NAME}"
    [[ -x "$built" ]] || die "build succeeded but ${built} is missing or not executable"
    printf '%s\n' "$built"
}

# Release target triple's architecture part for this machine.
release_arch() {
    local os machine
    os="$(uname -s)"
    [[ "$os" == "Linux" ]] \
        || die "release binaries exist only for Linux (this is ${os}); build from source instead: ./install.sh --from-source"
    machine="${STEPJAIL_INSTALL_ARCH:-$(uname -m)}"
    case "$machine" in
        x86_64 | amd64) printf 'x86_64\n' ;;
        aarch64 | arm64) printf 'aarch64\n' ;;
        *)
            die "no release binaries for architecture '${machine}' (only x86_64 and aarch64 Linux); build from source instead: ./install.sh --from-source"
            ;;
    esac
}

# Prints the SHA-256 pinned for file name $2 in checksums file $1, or nothing
# if there is no line for it. Refuses malformed files and conflicting lines.
pinned_checksum() {
    local file="$1" name="$2" line n=0 hash entry found=""
    [[ -f "$file" && -r "$file" ]] || die "checksums file ${file} does not exist or is not readable"
    while IFS= read -r line || [[ -n "$line" ]]; do
        n=$((n + 1))
        line="${line%$'\r'}"
        [[ "$line" =~ ^[[:space:]]*(#.*)?$ ]] && continue
        if [[ "$line" =~ ^([0-9a-fA-F]{64})\ [\ *]([^[:space:]/]+)$ ]]; then
            hash="${BASH_REMATCH[1],,}"
            entry="${BASH_REMATCH[2]}"
        else
            die "${file}:${n}: not a checksum line ('<64 hex digits>  <file name>') or a '#' comment: ${line}"
        fi
        [[ "$entry" == "$name" ]] || continue
        if [[ -n "$found" && "$found" != "$hash" ]]; then
            die "${file}: conflicting checksums for ${name}"
        fi
        found="$hash"
    done <"$file"
    if [[ -n "$found" ]]; then
        printf '%s\n' "$found"
    fi
}

# Checks the member list of tarball $1 and prints the one member that is the
# binary: BIN_NAME at the top level, or DIR/BIN_NAME for one directory DIR.
find_member() {
    local archive="$1" entry found="" listing
    listing="$(tar -tzf "$archive")" || die "${archive##*/} is not a readable gzip-compressed tar archive"
    while IFS= read -r entry; do
        [[ -n "$entry" ]] || continue
        if [[ "$entry" == /* ]]; then
            die "refusing archive with an absolute path: ${entry}"
        fi
        if [[ "/${entry}/" == */../* ]]; then
            die "refusing archive with a '..' path component: ${entry}"
        fi
        if [[ "$entry" == "${BIN_NAME}" || "$entry" =~ ^(\./)?([^/]+/)?${BIN_NAME}$ ]]; then
            [[ -z "$found" ]] || die "archive holds more than one ${BIN_NAME} (${found}, ${entry})"
            found="$entry"
        fi
    done <<<"$listing"
    [[ -n "$found" ]] || die "archive has no '${BIN_NAME}' at its top level or in a top-level directory"
    printf '%s\n' "$found"
}

# Download the release, verify it against the pinned checksum and extract it
# into $1 (a private temp dir). Prints the path of the verified binary.
install_from_release() {
    local work="$1" arch asset url expected actual member proto base
    command -v curl >/dev/null 2>&1 || die "curl not found on PATH (needed to download a release)"
    command -v sha256sum >/dev/null 2>&1 || die "sha256sum (coreutils) not found on PATH"
    command -v tar >/dev/null 2>&1 || die "tar not found on PATH"

    arch="$(release_arch)"
    asset="${BIN_NAME}-${VERSION}-${arch}-unknown-linux-musl.tar.gz"

    # Look up the pin before downloading anything.
    expected="$(pinned_checksum "$CHECKSUMS" "$asset")"
    [[ -n "$expected" ]] \
        || die "no pinned checksum for version ${VERSION} on ${arch} (no line for ${asset} in ${CHECKSUMS}); refusing to install an unverified download. Use a version listed there, or build from source: ./install.sh --from-source"

    if [[ -n "$BASE_URL" ]]; then
        base="${BASE_URL%/}"
        case "$base" in
            https://*) proto="=https" ;;
            http://*)
                proto="=https,http"
                warn "downloading over plain http from ${base}; the pinned checksum still guards the file"
                ;;
            *) die "--base-url must start with https:// or http://: ${BASE_URL}" ;;
        esac
    else
        base="$DEFAULT_BASE_URL"
        proto="=https"
    fi
    url="${base}/v${VERSION}/${asset}"

    info "downloading ${url}" >&2
    curl --fail --silent --show-error --location \
        --proto "$proto" --proto-redir "$proto" \
        --retry 3 --connect-timeout 20 \
        --output "${work}/${asset}" -- "$url" \
        || die "download of ${url} failed"

    actual="$(sha256sum -- "${work}/${asset}")"
    actual="${actual%% *}"
    if [[ "$actual" != "$expected" ]]; then
        die "checksum mismatch for ${asset}:
    expected (pinned in ${CHECKSUMS}): ${expected}
    actual   (downloaded from ${url}): ${actual}
refusing to install; nothing was changed"
    fi
    info "checksum ok: ${asset} sha256 ${actual}" >&2

    member="$(find_member "${work}/${asset}")"
    mkdir -- "${work}/x"
    tar -xzf "${work}/${asset}" -C "${work}/x" --no-same-owner --no-wildcards -- "$member" \
        || die "cannot extract ${member} from ${asset}"
    local bin="${work}/x/${member}"
    [[ ! -L "$bin" ]] || die "${member} in ${asset} is a symbolic link, not a program"
    [[ -f "$bin" ]] || die "${member} in ${asset} is not a regular file"
    [[ -s "$bin" ]] || die "${member} in ${asset} is empty"
    [[ -x "$bin" ]] || die "${member} in ${asset} is not executable"
    printf '%s\n' "$bin"
}

# Temp file and directory to remove if the script exits early.
TMP_FILE=""
TMP_DIR=""
cleanup() {
    if [[ -n "$TMP_FILE" ]]; then
        rm -f -- "$TMP_FILE"
    fi
    if [[ -n "$TMP_DIR" ]]; then
        rm -rf -- "$TMP_DIR"
    fi
}

# Copy $1 to $2/BIN_NAME atomically: temp file in the same directory, then mv.
install_binary() {
    local src="$1" bin_dir="$2"
    mkdir -p -- "$bin_dir" || die "cannot create ${bin_dir}"
    TMP_FILE="$(mktemp "${bin_dir}/.${BIN_NAME}.XXXXXX")" || die "cannot create a temp file in ${bin_dir}"
    cp -- "$src" "$TMP_FILE"
    chmod 0755 -- "$TMP_FILE"
    mv -f -- "$TMP_FILE" "${bin_dir}/${BIN_NAME}"
    TMP_FILE=""
}

# Warn if $1 is not one of the directories on PATH.
check_path() {
    local bin_dir="$1" dir
    local -a path_dirs
    IFS=: read -r -a path_dirs <<<"${PATH:-}"
    for dir in "${path_dirs[@]}"; do
        [[ "${dir%/}" == "${bin_dir%/}" ]] && return 0
    done
    warn "${bin_dir} is not on your PATH; add it, e.g.:"
    # shellcheck disable=SC2016 # $PATH is meant literally here
    printf '    export PATH="%s:$PATH"\n' "$bin_dir" >&2
}

# Print the installed binary's --version; warn if it does not mention $2.
report_version() {
    local dest="$1" want="${2:-}" version
    if version="$("$dest" --version 2>&1)" && [[ -n "$version" ]]; then
        info "version: ${version}"
        if [[ -n "$want" && "$version" != *"$want"* ]]; then
            warn "'${dest} --version' does not mention ${want}"
        fi
    else
        warn "'${dest} --version' failed or printed nothing${version:+: ${version}}"
    fi
}

install_from_source() {
    local bin_dir="$1" built
    built="$(build_from_source)"
    info "built $(pwd)/${built}"
    install_binary "$built" "$bin_dir"
    local dest="${bin_dir}/${BIN_NAME}"
    info "installed to ${dest}"
    report_version "$dest"
}

install_release() {
    local bin_dir="$1" bin
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/${BIN_NAME}-install.XXXXXX")" || die "cannot create a temp directory"
    bin="$(install_from_release "$TMP_DIR")"
    install_binary "$bin" "$bin_dir"
    local dest="${bin_dir}/${BIN_NAME}"
    info "installed ${BIN_NAME} ${VERSION} to ${dest}"
    report_version "$dest" "$VERSION"
}

main() {
    trap cleanup EXIT
    parse_args "$@"
    # Work from the checkout this script lives in, whatever the caller's cwd.
    # Resolve a relative --prefix and --checksums against the caller's cwd first.
    local bin_dir
    bin_dir="$(resolve_bin_dir)"
    [[ "$bin_dir" == /* ]] || bin_dir="$(pwd)/${bin_dir}"
    if [[ -n "$CHECKSUMS" && "$CHECKSUMS" != /* ]]; then
        CHECKSUMS="$(pwd)/${CHECKSUMS}"
    fi
    cd -- "$(dirname -- "${BASH_SOURCE[0]}")" || die "cannot cd to the script's directory"

    if [[ -n "$VERSION" ]]; then
        VERSION="${VERSION#v}"
        [[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] \
            || die "--version wants a release version like 1.2.3, got: ${VERSION}"
        [[ -n "$CHECKSUMS" ]] || CHECKSUMS="$(pwd)/checksums.txt"
        install_release "$bin_dir"
    else
        install_from_source "$bin_dir"
    fi
    check_path "$bin_dir"
}

main "$@"
