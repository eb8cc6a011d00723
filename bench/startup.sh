#!/usr/bin/env bash
# Benchmark (not a test): how long does it take to start a sandbox and run
# `true` in it? One hyperfine invocation compares, side by side:
#
#   bare      /bin/true
#   unshare   unshare -Urnmpf true
#   bwrap     bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev true
#   stepjail  $STEPJAIL run --workspace <fresh temp dir> -- true
#
# and prints a markdown table (mean, stddev, median, ratio vs bwrap, ratio vs
# bare true). When run as root it measures twice: as root, and as an
# unprivileged user (uid/gid 65534 via setpriv, HOME in a temp dir), which is
# what a GitHub-hosted runner is. --update writes the tables into
# BENCHMARKS.md between <!-- startup:begin --> and <!-- startup:end -->.
#
# Environment:
#   STEPJAIL   binary to measure. Default: target/release/stepjail, built
#              (cargo build --release --locked) before measuring. When set,
#              used as is, never built.
set -euo pipefail

readonly MARK_BEGIN="<!-- startup:begin -->"
readonly MARK_END="<!-- startup:end -->"
readonly NOBODY_ID=65534

usage() {
    cat <<'EOF'
Usage: bench/startup.sh [--update] [--root-only] [--warmup N] [--runs N] [--keep]

Measure sandbox start-up: bare /bin/true, unshare -Urnmpf, bwrap, stepjail run.

Options:
  --update      rewrite the startup block of BENCHMARKS.md with the results
  --root-only   when run as root, skip the second pass as an unprivileged user
  --warmup N    hyperfine warm-up runs per command (default 20)
  --runs N      hyperfine measured runs per command (default 300)
  --keep        keep the temp dir with hyperfine's JSON exports
  -h, --help    show this help

Environment: STEPJAIL=path/to/stepjail (default target/release/stepjail, built first)
EOF
}

die() {
    printf 'startup.sh: error: %s\n' "$*" >&2
    exit 1
}

warn() {
    printf 'startup.sh: warning: %s\n' "$*" >&2
}

WORK=""
KEEP=0
cleanup() {
    if [[ -n "$WORK" ]]; then
        if [[ "$KEEP" -eq 1 ]]; then
            echo "kept hyperfine exports in $WORK" >&2
        else
            rm -rf -- "$WORK"
        fi
    fi
}

parse_args() {
    UPDATE=0
    ROOT_ONLY=0
    WARMUP=20
    RUNS=300
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --update) UPDATE=1; shift ;;
            --root-only) ROOT_ONLY=1; shift ;;
            --keep) KEEP=1; shift ;;
            --warmup | --runs)
                [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "$1 needs a number"
                if [[ "$1" == --warmup ]]; then WARMUP="$2"; else RUNS="$2"; fi
                shift 2
                ;;
            --warmup=* | --runs=*)
                local v="${1#*=}"
                [[ "$v" =~ ^[0-9]+$ ]] || die "${1%%=*} needs a number"
                if [[ "$1" == --warmup=* ]]; then WARMUP="$v"; else RUNS="$v"; fi
                shift
                ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    done
}

ensure_tools() {
    if ! command -v hyperfine >/dev/null 2>&1; then
        [[ $(id -u) -eq 0 ]] || die "hyperfine not found; install it (apt-get install hyperfine, or cargo install hyperfine)"
        echo "installing hyperfine with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends hyperfine
    fi
    local tool
    for tool in unshare bwrap python3; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian: apt-get install util-linux bubblewrap python3)"
    done
}

# Sets STEPJAIL_BIN to an absolute path of the binary to measure.
resolve_stepjail() {
    if [[ -n "${STEPJAIL:-}" ]]; then
        STEPJAIL_BIN="$STEPJAIL"
        if [[ "$STEPJAIL_BIN" != */* ]]; then
            STEPJAIL_BIN="$(command -v -- "$STEPJAIL_BIN")" || die "STEPJAIL=$STEPJAIL not found on PATH"
        fi
    else
        command -v cargo >/dev/null 2>&1 || die "cargo not found; build stepjail or set STEPJAIL=path/to/stepjail"
        echo "building: cargo build --release --locked" >&2
        cargo build --release --locked >&2 || die "cargo build failed (set STEPJAIL=path to measure an existing binary)"
        STEPJAIL_BIN="${CARGO_TARGET_DIR:-target}/release/stepjail"
    fi
    [[ "$STEPJAIL_BIN" == /* ]] || STEPJAIL_BIN="$(pwd)/${STEPJAIL_BIN}"
    [[ -x "$STEPJAIL_BIN" ]] || die "stepjail binary not found or not executable: $STEPJAIL_BIN"
}

hyperfine_shell_args() {
    # -N (no intermediate shell) appeared in hyperfine 1.13.
    if hyperfine --help 2>&1 | grep -qE '^[[:space:]]+-N\b'; then
        printf '%s\n' -N
    else
        warn "this hyperfine has no -N; measuring through a shell (hyperfine subtracts its cost)"
    fi
}

# run_section LABEL WORKSPACE JSON STEPJAIL_PATH [PREFIX...]
# Measures the four commands with one hyperfine run, run under PREFIX (e.g.
# setpriv ...; empty: as ourselves), with cwd and stepjail's workspace the
# fresh directory WORKSPACE. Writes hyperfine's JSON export to JSON.
# Returns 77 if the anchor commands cannot run here (section impossible).
run_section() {
    local label="$1" ws="$2" json="$3" sj="$4"
    shift 4
    local -a prefix=("$@")

    local -a names=(
        "true (bare)"
        "unshare -Urnmpf true"
        "bwrap --unshare-all true"
        "stepjail run -- true"
    )
    local -a cmds=(
        "/bin/true"
        "unshare -Urnmpf true"
        "bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev true"
        "$(printf '%q run --workspace %q -- true' "$sj" "$ws")"
    )

    echo >&2
    echo "== $label" >&2

    # Preflight each command once so a failure shows its own error message,
    # not just hyperfine's "non-zero exit code". The anchors failing (e.g.
    # unprivileged user namespaces disabled) makes the section impossible;
    # stepjail failing is an error.
    local i out
    for i in 0 1 2; do
        # shellcheck disable=SC2086 # the command strings are meant to be split
        if ! out="$(cd "$ws" && "${prefix[@]}" ${cmds[$i]} 2>&1 </dev/null)"; then
            printf '%s\n' "$out" >&2
            warn "$label: '${cmds[$i]}' fails here; skipping this section"
            return 77
        fi
    done
    # stepjail must really run the step: a binary that exits 0 without
    # running anything (e.g. while `run` is unimplemented) would time nothing.
    local marker="stepjail-bench-$$"
    if ! out="$(cd "$ws" && "${prefix[@]}" "$sj" run --workspace "$ws" -- /bin/echo "$marker" 2>&1 </dev/null)"; then
        printf '%s\n' "$out" >&2
        die "$label: '$sj run --workspace $ws -- /bin/echo $marker' failed (output above)"
    fi
    if ! grep -qx -- "$marker" <<<"$out"; then
        printf '%s\n' "$out" >&2
        die "$label: '$sj run -- /bin/echo $marker' exited 0 but did not print $marker; is 'run' implemented?"
    fi

    local -a hf=(hyperfine --warmup "$WARMUP" --runs "$RUNS" --export-json "$json")
    local arg
    while IFS= read -r arg; do
        [[ -n "$arg" ]] && hf+=("$arg")
    done < <(hyperfine_shell_args)
    for i in "${!cmds[@]}"; do
        hf+=(--command-name "${names[$i]}" "${cmds[$i]}")
    done
    # No -i: a failing run of any command fails the benchmark.
    (cd "$ws" && "${prefix[@]}" "${hf[@]}" </dev/null)
}

# table JSON_FILE: markdown table from a hyperfine JSON export.
table() {
    python3 - "$1" <<'PY'
import json, sys

results = json.load(open(sys.argv[1]))["results"]
by_name = {r["command"]: r for r in results}
bwrap = by_name["bwrap --unshare-all true"]["mean"]
bare = by_name["true (bare)"]["mean"]
ms = lambda s: f"{s * 1000:.2f}"
print("| command | mean (ms) | stddev (ms) | median (ms) | vs bwrap | vs bare true |")
print("|---|---:|---:|---:|---:|---:|")
for r in results:
    print(f"| `{r['command']}` | {ms(r['mean'])} | {ms(r['stddev'])} | {ms(r['median'])} "
          f"| {r['mean'] / bwrap:.2f}x | {r['mean'] / bare:.2f}x |")
PY
}

# update_benchmarks_md FILE BLOCK_FILE: replace the text between the markers.
update_benchmarks_md() {
    python3 - "$1" "$2" "$MARK_BEGIN" "$MARK_END" <<'PY'
import sys

path, block_path, begin, end = sys.argv[1:]
text = open(path).read()
block = open(block_path).read().strip("\n")
b = text.find(begin)
e = text.find(end)
if b < 0 or e < 0 or e < b:
    sys.exit(f"{path}: markers {begin} ... {end} not found (or out of order)")
new = text[: b + len(begin)] + "\n" + block + "\n" + text[e:]
with open(path + ".tmp", "w") as f:
    f.write(new)
import os
os.replace(path + ".tmp", path)
PY
}

machine_info() {
    local cpu
    cpu="$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)"
    printf -- '- date: %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf -- '- kernel: %s\n' "$(uname -r)"
    printf -- '- CPU: %s (%s logical CPUs); load average before the runs: %s\n' \
        "${cpu:-unknown}" "$(nproc)" "$LOAD_BEFORE"
    printf -- '- %s, %s\n' "$(hyperfine --version)" "$(bwrap --version 2>/dev/null || echo 'bwrap ?')"
    printf -- '- stepjail: %s (commit %s%s)\n' \
        "$("$STEPJAIL_BIN" --version 2>/dev/null | head -n1 || true)" \
        "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
        "$(git diff --quiet HEAD 2>/dev/null || echo ', dirty tree')"
    printf -- '- hyperfine --warmup %s --runs %s %s\n' "$WARMUP" "$RUNS" "$(hyperfine_shell_args 2>/dev/null)"
}

main() {
    trap cleanup EXIT
    parse_args "$@"
    # A relative STEPJAIL is relative to the caller's cwd, not the repo root.
    if [[ -n "${STEPJAIL:-}" && "$STEPJAIL" == */* && "$STEPJAIL" != /* ]]; then
        STEPJAIL="$(pwd)/$STEPJAIL"
    fi
    cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

    ensure_tools
    resolve_stepjail
    LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

    WORK="$(mktemp -d "${TMPDIR:-/tmp}/stepjail-bench.XXXXXX")"
    chmod 0755 "$WORK"
    local -a labels=() jsons=()

    # Section 1: as whoever runs the script.
    local me
    me="$(id -un 2>/dev/null || id -u)"
    mkdir -p "$WORK/self/ws" "$WORK/self/bin"
    # A copy, as install.sh installs it and as the unprivileged section below uses: the same
    # bytes start slower from the linker's output (written through a shared mapping, its page
    # cache in small pages) and from a file that has sat in the page cache for a while. Side
    # by side on the benchmark VM: a copy an hour old 700-800 us slower per `run -- true` than
    # a fresh copy (see BENCHMARKS.md).
    cp -- "$STEPJAIL_BIN" "$WORK/self/bin/stepjail"
    local rc=0
    run_section "as $me (uid $(id -u))" "$WORK/self/ws" "$WORK/self/result.json" "$WORK/self/bin/stepjail" \
        || rc=$?
    if [[ $rc -eq 77 ]]; then
        die "the anchor commands fail as $me; cannot measure"
    elif [[ $rc -ne 0 ]]; then
        die "hyperfine failed as $me (exit $rc, output above); a command failed during the runs"
    fi
    labels+=("as $me (uid $(id -u))")
    jsons+=("$WORK/self/result.json")

    # Section 2: as an unprivileged user, when we are root.
    if [[ $(id -u) -eq 0 && "$ROOT_ONLY" -eq 0 ]]; then
        if command -v setpriv >/dev/null 2>&1; then
            local u="$WORK/user"
            mkdir -p "$u/ws" "$u/home" "$u/bin"
            # The user may not be able to reach the build dir: give it a copy.
            cp -- "$STEPJAIL_BIN" "$u/bin/stepjail"
            chmod 0755 "$u" "$u/bin" "$u/bin/stepjail"
            chown -R "$NOBODY_ID:$NOBODY_ID" "$u/ws" "$u/home"
            # hyperfine writes its JSON export into $u/out as the user.
            mkdir -p "$u/out"
            chown "$NOBODY_ID:$NOBODY_ID" "$u/out"
            local label="as an unprivileged user (uid $NOBODY_ID)"
            rc=0
            run_section "$label" "$u/ws" "$u/out/result.json" "$u/bin/stepjail" \
                setpriv --reuid="$NOBODY_ID" --regid="$NOBODY_ID" --clear-groups \
                env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$u/home" LANG=C.UTF-8 \
                || rc=$?
            if [[ $rc -eq 0 ]]; then
                labels+=("$label")
                jsons+=("$u/out/result.json")
            elif [[ $rc -ne 77 ]]; then
                die "hyperfine failed $label (exit $rc, output above); a command failed during the runs"
            fi
        else
            warn "setpriv not found; skipping the unprivileged-user pass"
        fi
    fi

    local block="$WORK/block.md" i
    {
        echo "Machine and tools:"
        echo
        machine_info
        for i in "${!labels[@]}"; do
            echo
            echo "Start-up, ${labels[$i]}:"
            echo
            table "${jsons[$i]}"
        done
    } >"$block"

    echo
    cat "$block"

    if [[ "$UPDATE" -eq 1 ]]; then
        [[ -f BENCHMARKS.md ]] || die "BENCHMARKS.md not found in $(pwd)"
        update_benchmarks_md BENCHMARKS.md "$block"
        echo
        echo "updated $(pwd)/BENCHMARKS.md"
    fi
}

main "$@"
