#!/usr/bin/env bash
# Rerun the fault, load and resource-limit tests with the numbers RELIABILITY.md records, and keep their
# figures (the `LOAD ...` lines the tests print: served/failed, duration, the supervisor's
# VmHWM and peak descriptors).
#
# Usage (as root: the tests build network namespaces): scripts/reliability.sh [OUT]
#
#   OUT   where the results go (default: target/reliability/results-<UTC date>.txt)
#
# Knobs (environment; the defaults are the bigger figures, `cargo test` alone uses smaller ones):
#   STEPJAIL_LOAD_CONNS=10000      concurrent connections of one step, via the proxy and captured
#   STEPJAIL_LOAD_STEPS=50         steps at once ...
#   STEPJAIL_LOAD_REQUESTS=1000    ... each making this many requests
#   STEPJAIL_LOAD_DNS_SECS=30      seconds of DNS flood beside ordinary requests
#   STEPJAIL_LOAD_AS_ROOT=1        the many-connections case as root too (not only uid 65534)
#   STEPJAIL_LOAD_WAIT=90          seconds each of those connections may take to be answered
#   STEPJAIL_LOAD_VIA="proxy capture"  which paths the many-connections case takes
#   STEPJAIL_LOAD_CAP=1000         network.max_connections of the connection-cap case ...
#   STEPJAIL_LOAD_CAP_CONNS=10000  ... and how many connections it opens at once
#   NOFILE_SOFT=1024               also run the many-connections case with this soft descriptor
#                                  limit (a common default), to see how the proxy meets EMFILE;
#                                  empty to skip
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "reliability.sh: run as root (network namespaces)" >&2; exit 2; }
out=${1:-target/reliability/results-$(date -u +%Y%m%dT%H%M%SZ).txt}
mkdir -p "$(dirname "$out")"
export STEPJAIL_LOAD_CONNS=${STEPJAIL_LOAD_CONNS:-10000}
export STEPJAIL_LOAD_STEPS=${STEPJAIL_LOAD_STEPS:-50}
export STEPJAIL_LOAD_REQUESTS=${STEPJAIL_LOAD_REQUESTS:-1000}
export STEPJAIL_LOAD_DNS_SECS=${STEPJAIL_LOAD_DNS_SECS:-30}
export STEPJAIL_LOAD_AS_ROOT=${STEPJAIL_LOAD_AS_ROOT:-1}
export STEPJAIL_LOAD_WAIT=${STEPJAIL_LOAD_WAIT:-90}
export STEPJAIL_LOAD_CAP=${STEPJAIL_LOAD_CAP:-1000}
export STEPJAIL_LOAD_CAP_CONNS=${STEPJAIL_LOAD_CAP_CONNS:-10000}
NOFILE_SOFT=${NOFILE_SOFT-1024}

status=0
run() {
    local name=$1
    shift
    echo "== $name ($(date -u +%FT%TZ), conns=$STEPJAIL_LOAD_CONNS steps=$STEPJAIL_LOAD_STEPS requests=$STEPJAIL_LOAD_REQUESTS dns=${STEPJAIL_LOAD_DNS_SECS}s)" | tee -a "$out"
    local start=$SECONDS
    if "$@" > "$out.tmp" 2>&1; then r=ok; else r=FAILED; status=1; fi
    # The figures and the verdicts; not the thousands of per-request stderr lines.
    grep -E '^(LOAD|LIMITS|SLOWLORIS|test |test result|thread .* panicked|assertion|  left|  right)' "$out.tmp" | tee -a "$out"
    echo "-- $name: $r in $((SECONDS - start))s" | tee -a "$out"
    rm -f "$out.tmp"
}

cargo build --locked --test faults --test load --test limits
run faults cargo test --locked --test faults -- --nocapture --test-threads=1 --include-ignored
run load cargo test --locked --test load -- --nocapture --test-threads=1
run limits cargo test --locked --test limits -- --nocapture --test-threads=1
if [ -n "$NOFILE_SOFT" ]; then
    run "load, soft NOFILE $NOFILE_SOFT" prlimit --nofile="$NOFILE_SOFT:$(ulimit -Hn)" \
        cargo test --locked --test load one_step -- --nocapture
fi
echo "results: $out"
exit $status
