#!/usr/bin/env bash
# Builds the coverage-guided fuzz targets in fuzz/ and runs each for a bounded time.
#
#   scripts/fuzz.sh [--seconds N] [--runs N] [--ci] [--build-only] [TARGET...]
#
# --seconds N   run each target for N seconds (default 60)
# --runs N      stop a target after N executions if that comes before --seconds (the issue's
#               bar is `--seconds 1800 --runs 10000000`: 10 million or 30 minutes)
# --ci          every target, 8 s each, 1 job: with the build this stays within ~5 minutes on
#               a 2-core machine (the build is ~2-3 min from cold, seconds when cached)
# --build-only  build and stop
# TARGET...     run only these (default: every target in fuzz/Cargo.toml)
#
# Exits non-zero when the build fails or a target finds a crash or a property failure; the
# failing input is kept in target/fuzz/artifacts/TARGET/ and the command to reproduce it is
# printed.
#
# Needs no nightly and no cargo-fuzz: the targets are built with stable rustc and the flags
# `cargo fuzz build --sanitizer none` passes (SanitizerCoverage for libFuzzer, `--cfg fuzzing`).
# No RUSTC_BOOTSTRAP is needed for these flags. libfuzzer-sys compiles libFuzzer itself, so a
# C++ compiler (g++ or clang++; Debian: build-essential) must be installed.
#
# Corpora: fuzz/corpus/TARGET/ holds the small committed seeds; inputs the fuzzer finds go to
# target/fuzz/corpus/TARGET/ (not committed), which is read back on the next run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=60
runs=-1
ci=0
build_only=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --ci) ci=1; seconds=8; shift ;;
        --build-only) build_only=1; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

all_targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$root/fuzz/Cargo.toml" | grep -v '^stepjail-fuzz$')
if [ ${#targets[@]} -eq 0 ]; then
    # shellcheck disable=SC2206
    targets=($all_targets)
fi
for t in "${targets[@]}"; do
    if ! grep -qx "$t" <<<"$all_targets"; then
        echo "fuzz.sh: no target $t (have: $(echo $all_targets))" >&2
        exit 2
    fi
done

# The flags of `cargo fuzz build --sanitizer none` (cargo-fuzz 0.12, src/project.rs).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="$root/target/fuzz/build"
out="$root/target/fuzz"
echo "fuzz.sh: building ${#targets[@]} target(s)"
start=$(date +%s)
bin_args=()
for t in "${targets[@]}"; do bin_args+=(--bin "$t"); done
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (as cargo-fuzz does):
# they must not be instrumented, or they fail to link without libFuzzer.
host=$(rustc -vV | sed -n 's/^host: //p')
(cd "$root/fuzz" && cargo build --release --locked --target "$host" "${bin_args[@]}")
bin="$CARGO_TARGET_DIR/$host/release"
echo "fuzz.sh: built in $(( $(date +%s) - start )) s"
[ "$build_only" = 1 ] && exit 0

failed=()
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t" "$out/logs"
    seeds="$root/fuzz/corpus/$t"
    [ -d "$seeds" ] || seeds=""
    log="$out/logs/$t.log"
    echo "fuzz.sh: $t for ${seconds}s"
    set +e
    # -rss_limit_mb: the parsers keep inputs small; 2 GB is libFuzzer's default, kept explicit.
    t0=$(date +%s)
    "$bin/$t" -max_total_time="$seconds" -runs="$runs" -rss_limit_mb=2048 \
        -max_len=65536 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$t/" "$out/corpus/$t" ${seeds:+"$seeds"} >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz.sh: $t: exit $rc, ${execs:-?} executions in $(( $(date +%s) - t0 )) s"
    if [ $rc -ne 0 ]; then
        failed+=("$t")
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -20 >&2 || true
        echo "fuzz.sh: reproduce: $bin/$t <artifact from $out/artifacts/$t/>" >&2
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: all ${#targets[@]} target(s) ran without a crash in $(( $(date +%s) - start )) s"
