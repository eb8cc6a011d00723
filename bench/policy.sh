#!/usr/bin/env bash
# Benchmark (not a test): does a profile's size cost linear time? For profiles of 10, 1,000 and
# 10,000 `network.allow` rules, one hyperfine invocation measures side by side:
#
#   check N    $STEPJAIL check <profile with N rules>
#   run N      $STEPJAIL run --profile <profile with N rules> --workspace <temp dir> -- true
#   first N    the same run with the profile cache emptied before each (the first step after
#              the profile changed: it parses the file and writes the cache entry)
#
# and prints a markdown table (wall-clock mean and user+system CPU per size, each as a ratio of
# the 10-rule one; CPU time is the steadier figure on a loaded machine). The profile cache
# (docs/profiles.md) lives in the temp dir (XDG_CACHE_HOME), so nothing outside it is touched.
# The target: a step under the 10,000-rule profile starts within 1.2x the time of the
# 10-rule one. --update writes the table into BENCHMARKS.md between <!-- policy:begin --> and
# <!-- policy:end -->.
#
# Environment:
#   STEPJAIL   binary to measure. Default: target/release/stepjail, built
#              (cargo build --release --locked) before measuring. When set, used as is.
set -euo pipefail

readonly MARK_BEGIN="<!-- policy:begin -->"
readonly MARK_END="<!-- policy:end -->"
readonly SIZES=(10 1000 10000)

usage() {
    cat <<'EOF2'
Usage: bench/policy.sh [--update] [--warmup N] [--runs N] [--keep]

Measure `stepjail check` and `stepjail run -- true` under profiles of 10, 1,000 and 10,000
allow rules.

Options:
  --update      rewrite the policy block of BENCHMARKS.md with the results
  --warmup N    hyperfine warm-up runs per command (default 5)
  --runs N      hyperfine measured runs per command (default 50)
  --keep        keep the temp dir with the profiles and hyperfine's JSON export
  -h, --help    show this help

Environment: STEPJAIL=path/to/stepjail (default target/release/stepjail, built first)
EOF2
}

die() {
    printf 'policy.sh: error: %s\n' "$*" >&2
    exit 1
}

WORK=""
KEEP=0
cleanup() {
    if [[ -n "$WORK" ]]; then
        if [[ "$KEEP" -eq 1 ]]; then
            echo "kept profiles and hyperfine export in $WORK" >&2
        else
            rm -rf -- "$WORK"
        fi
    fi
}

parse_args() {
    UPDATE=0
    WARMUP=5
    RUNS=50
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --update) UPDATE=1; shift ;;
            --keep) KEEP=1; shift ;;
            --warmup | --runs)
                [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "$1 needs a number"
                if [[ "$1" == --warmup ]]; then WARMUP="$2"; else RUNS="$2"; fi
                shift 2
                ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    done
}

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

# profile N FILE: a profile of N distinct allow rules, in the shapes organisations write (exact
# names, wildcards, several ports), all on documentation names that are never dialled.
profile() {
    python3 - "$1" "$2" <<'PY'
import sys

n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write(f"name: allow-{n}\ndescription: {n} allow rules\nextends: default\nnetwork:\n  allow:\n")
    for i in range(n):
        if i % 3 == 0:
            f.write(f"    - host{i}.example.com\n")
        elif i % 3 == 1:
            f.write(f"    - '*.team{i}.example.org:443'\n")
        else:
            f.write(f"    - {{ host: mirror{i}.example.net, ports: [80, 443, 8443] }}\n")
PY
}

# table JSON: one row per size, check and run side by side.
table() {
    python3 - "$1" "${SIZES[@]}" <<'PY'
import json, sys

results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
sizes = sys.argv[2:]
ms = lambda s: f"{s * 1000:.2f}"
base_run = results[f"run {sizes[0]}"]["mean"]
cpu = lambda r: r["user"] + r["system"]
med = lambda r: sorted(r["times"])[len(r["times"]) // 2]
base_med = med(results[f"run {sizes[0]}"])
print("| allow rules | `check` mean (ms) | `check` CPU (ms) | vs 10 rules (CPU) "
      "| `run -- true` median / mean (ms) | stddev (ms) | `run` CPU (ms) "
      "| vs 10 rules (median / mean / CPU) | first `run` after a change, mean / CPU (ms) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
base_check_cpu = cpu(results[f"check {sizes[0]}"])
base_run_cpu = cpu(results[f"run {sizes[0]}"])
for n in sizes:
    c, r, f = results[f"check {n}"], results[f"run {n}"], results[f"first {n}"]
    print(f"| {int(n):,} | {ms(c['mean'])} | {ms(cpu(c))} | {cpu(c) / base_check_cpu:.2f}x "
          f"| {ms(med(r))} / {ms(r['mean'])} | {ms(r['stddev'])} | {ms(cpu(r))} "
          f"| {med(r) / base_med:.2f}x / {r['mean'] / base_run:.2f}x / {cpu(r) / base_run_cpu:.2f}x "
          f"| {ms(f['mean'])} / {ms(cpu(f))} |")
PY
}

update_benchmarks_md() {
    python3 - "$1" "$2" "$MARK_BEGIN" "$MARK_END" <<'PY'
import os, sys

path, block_path, begin, end = sys.argv[1:]
text = open(path).read()
block = open(block_path).read().strip("\n")
b, e = text.find(begin), text.find(end)
if b < 0 or e < 0 or e < b:
    sys.exit(f"{path}: markers {begin} ... {end} not found (or out of order)")
with open(path + ".tmp", "w") as f:
    f.write(text[: b + len(begin)] + "\n" + block + "\n" + text[e:])
os.replace(path + ".tmp", path)
PY
}

main() {
    trap cleanup EXIT
    parse_args "$@"
    if [[ -n "${STEPJAIL:-}" && "$STEPJAIL" == */* && "$STEPJAIL" != /* ]]; then
        STEPJAIL="$(pwd)/$STEPJAIL"
    fi
    cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
    command -v hyperfine >/dev/null 2>&1 || die "hyperfine not found (apt-get install hyperfine)"
    resolve_stepjail
    local load_before
    load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

    WORK="$(mktemp -d "${TMPDIR:-/tmp}/stepjail-policy.XXXXXX")"
    chmod 0755 "$WORK"
    mkdir -p "$WORK/ws"
    mkdir -m 0700 "$WORK/cache"
    export XDG_CACHE_HOME="$WORK/cache"
    local -a hf=(hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/result.json")
    local n
    local -a prepare=()
    for n in "${SIZES[@]}"; do
        profile "$n" "$WORK/allow-$n.yml"
        # Fail here, with the tool's own message, rather than time an error path.
        "$STEPJAIL_BIN" check "$WORK/allow-$n.yml" >/dev/null \
            || die "stepjail check $WORK/allow-$n.yml failed"
        (cd "$WORK/ws" && "$STEPJAIL_BIN" run --profile "$WORK/allow-$n.yml" --workspace "$WORK/ws" -- true) \
            || die "stepjail run under $WORK/allow-$n.yml failed"
        local run_cmd
        run_cmd="$(printf '%q run --profile %q --workspace %q -- true' "$STEPJAIL_BIN" "$WORK/allow-$n.yml" "$WORK/ws")"
        hf+=(--command-name "check $n" "$(printf '%q check %q' "$STEPJAIL_BIN" "$WORK/allow-$n.yml")")
        hf+=(--command-name "run $n" "$run_cmd")
        # Commands run one after the other (all runs of one, then the next), so the warm-up
        # of each `run N` fills the cache again after the `first` before it emptied it.
        hf+=(--command-name "first $n" "$run_cmd")
        prepare+=(--prepare true --prepare true --prepare "rm -rf $WORK/cache/stepjail")
    done
    hf+=("${prepare[@]}")
    (cd "$WORK/ws" && "${hf[@]}" </dev/null)

    local block="$WORK/block.md"
    {
        printf -- '- date: %s; kernel %s; %s logical CPUs; load average before: %s\n' \
            "$(date -u +%Y-%m-%dT%H:%MZ)" "$(uname -r)" "$(nproc)" "$load_before"
        printf -- '- stepjail commit %s%s; %s, --warmup %s --runs %s -N\n' \
            "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
            "$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')" \
            "$(hyperfine --version)" "$WARMUP" "$RUNS"
        echo
        table "$WORK/result.json"
    } >"$block"
    echo
    cat "$block"
    if [[ "$UPDATE" -eq 1 ]]; then
        update_benchmarks_md BENCHMARKS.md "$block"
        echo
        echo "updated $(pwd)/BENCHMARKS.md"
    fi
}

main "$@"
