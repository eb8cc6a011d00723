#!/usr/bin/env bash
# Benchmark (not a test): bench/proxy.sh section 4 alone, for iterating on the DNS stub.
# Sequential UDP queries for an allowed name: direct to the benchmark's DNS server, to the stub
# (127.0.0.53) and to 192.0.2.53 from inside the sandbox (captured: redirected to the stub).
# Usage: bench/dns.sh [N] [ROUNDS]   (root; STEPJAIL=path, default target/release/stepjail;
# BEFORE=path measures a second binary in the same rounds, interleaved, for a side-by-side).
set -euo pipefail
N="${1:-10000}"
ROUNDS="${2:-3}"
BIN="${STEPJAIL:-target/release/stepjail}"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/stepjail-dns-bench.XXXXXX")"
chmod 0755 "$WORK"
NS="sjdns-$$"
cleanup() {
    set +e
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    sleep 0.2
    ip netns del "$NS" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/ws"
cp bench/proxy_client.py "$WORK/ws/"
chmod 0644 "$WORK/ws/proxy_client.py"
cat >"$WORK/bench.yml" <<'YML'
name: bench
description: benchmark allowlist
extends: default
network:
  allow:
    - { host: web.bench, ports: [8080] }
YML
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip addr add 192.0.2.10/32 dev lo
ip netns exec "$NS" ip addr add 192.0.2.53/32 dev lo
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=web.bench \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" >/dev/null 2>&1
ip netns exec "$NS" "$PY" bench/proxy_servers.py "$WORK/ready" "$WORK/tls.crt" "$WORK/tls.key" \
    >"$WORK/servers.log" 2>&1 &
disown
for _ in $(seq 100); do [[ -e "$WORK/ready" ]] && break; sleep 0.1; done
rate() { "$PY" -c 'import json,sys,statistics as s; d=json.load(sys.stdin)["samples_us"]; print(f"{len(d)/sum(d)*1e6:8.0f} q/s  p50 {s.median(d):6.1f} us")'; }
sj() {
    local bin="$1"
    shift
    ip netns exec "$NS" "$bin" run --profile "$WORK/bench.yml" --resolver 192.0.2.53:53 \
        --workspace "$WORK/ws" "$@" </dev/null
}
for r in $(seq "$ROUNDS"); do
    printf 'round %s %-30s direct   ' "$r" upstream; ip netns exec "$NS" "$PY" "$WORK/ws/proxy_client.py" dns 192.0.2.53 web.bench "$N" | rate
    for b in ${BEFORE:+"$BEFORE"} "$BIN"; do
        printf 'round %s %-30s stub     ' "$r" "$b"
        sj "$b" -- "$PY" "$WORK/ws/proxy_client.py" dns 127.0.0.53 web.bench "$N" | rate
        printf 'round %s %-30s captured ' "$r" "$b"
        sj "$b" -- "$PY" "$WORK/ws/proxy_client.py" dns 192.0.2.53 web.bench "$N" | rate
    done
done
