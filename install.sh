#!/usr/bin/env bash
# Install stepjail.
#
# Today: builds stepjail from the checkout this script lives in
# (`cargo build --release --locked`) and installs target/release/stepjail.
# Planned: downloading a release binary and checking it against a pinned
# checksum (see install_from_release below; not implemented yet).
#
# Usage: ./install.sh [--prefix DIR]
#   Installs to DIR/bin (default: ~/.local/bin). Safe to re-run: the binary is
#   replaced atomically (copied to a temp file in the target dir, then renamed).
set -euo pipefail

readonly BIN_NAME="stepjail"

usage() {
    cat <<EOF
Usage: install.sh [--prefix DIR] [-h|--help]

Build ${BIN_NAME} from this checkout with 'cargo build --release --locked'
and install the binary to PREFIX/bin.

Options:
  --prefix DIR, --prefix=DIR   install to DIR/bin (default: \$HOME/.local, i.e. ~/.local/bin)
  -h, --help                   show this help and exit

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

# Parse arguments into the globals PREFIX (may stay empty = default).
parse_args() {
    PREFIX=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -h | --help)
                usage
                exit 0
                ;;
            --prefix)
                [[ $# -ge 2 && -n "$2" ]] || die "--prefix needs a directory argument"
                PREFIX="$2"
                shift 2
                ;;
            --prefix=*)
                PREFIX="${1#--prefix=}"
                [[ -n "$PREFIX" ]] || die "--prefix= needs a directory argument"
                shift
                ;;
            *)
                usage >&2
                die "unknown argument: $1"
                ;;
        esac
    done
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

# Placeholder for the release-download path (pinned checksums). Must print the
# path of a verified binary on stdout, like build_from_source.
install_from_release() {
    die "installing from a release download is not implemented yet"
}

# Temp file to remove if the script exits before renaming it into place.
TMP_FILE=""
cleanup() {
    if [[ -n "$TMP_FILE" ]]; then
        rm -f -- "$TMP_FILE"
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

install_from_source() {
    local bin_dir="$1" built
    built="$(build_from_source)"
    info "built $(pwd)/${built}"
    install_binary "$built" "$bin_dir"
    local dest="${bin_dir}/${BIN_NAME}"
    info "installed to ${dest}"

    local version
    if version="$("$dest" --version 2>&1)" && [[ -n "$version" ]]; then
        info "version: ${version}"
    else
        warn "'${dest} --version' failed or printed nothing${version:+: ${version}}"
    fi
}

main() {
    trap cleanup EXIT
    parse_args "$@"
    # Work from the checkout this script lives in, whatever the caller's cwd.
    # Resolve a relative --prefix against the caller's cwd first.
    local bin_dir
    bin_dir="$(resolve_bin_dir)"
    [[ "$bin_dir" == /* ]] || bin_dir="$(pwd)/${bin_dir}"
    cd -- "$(dirname -- "${BASH_SOURCE[0]}")" || die "cannot cd to the script's directory"

    install_from_source "$bin_dir"
    check_path "$bin_dir"
}

main "$@"
