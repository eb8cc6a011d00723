#!/usr/bin/env bash
# Benchmark (not a test): stepjail's egress proxy side by side with a direct connection, squid
# and tinyproxy, in one run on one machine. Everything happens inside a network namespace this
# script creates (documentation addresses 192.0.2.0/24 on its lo) holding:
#
#   192.0.2.10:9000  echo server          (bench/proxy_servers.py)
#   192.0.2.10:9001  bulk source          (bench/proxy_servers.py)
#   192.0.2.10:9080  HTTP bulk source     (bench/proxy_servers.py)
#   192.0.2.10:9443  TLS bulk source      (bench/proxy_servers.py, a throwaway self-signed cert)
#   192.0.2.10:8080  nginx, 1 KiB file    (our own config, our own instance)
#   192.0.2.53:53    DNS: web.bench -> 192.0.2.10 (bench/proxy_servers.py)
#   127.0.0.1:3130   squid                (our own config, our own instance)
#   127.0.0.1:3131   tinyproxy            (our own config, our own instance)
#
# stepjail runs inside that namespace too (`ip netns exec`), so its supervisor dials "upstream"
# there; the load clients for stepjail run inside its sandbox against 127.0.0.1:3128 / 127.0.0.53,
# those for the anchors run in the namespace itself. Nothing is ever sent outside the namespace.
#
# Measures: 1. added latency of a fresh CONNECT (p50, p99), and of a captured connection (no proxy
# variables: nf_tables redirect, and the userspace-stack fallback); 2. throughput (1 GiB) of raw
# bytes, plain HTTP and TLS, through the CONNECT tunnel and captured;
# 3. plain-HTTP forward requests/s with keep-alive (wrk); 4. DNS stub queries/s against a
# captured query, in alternating rounds (and both ends on one CPU); 5. supervisor RSS idle and with 1,000 open tunnels;
# 6. `stepjail run -- true` start-up with a network profile vs the default profile vs bwrap
# (hyperfine in rounds, the three commands in a rotated order each round, so a drift of the
# machine over a minute lands on all three; run first, before the other sections). Prints markdown tables and the issue's
# targets, met or not. --update writes them into BENCHMARKS.md between <!-- proxy:begin --> and
# <!-- proxy:end -->.
#
# Environment:
#   STEPJAIL   binary to measure. Default: target/release/stepjail, built
#              (cargo build --release --locked) before measuring. When set, used as is.
set -euo pipefail

readonly MARK_BEGIN="<!-- proxy:begin -->"
readonly MARK_END="<!-- proxy:end -->"

usage() {
    cat <<'EOF'
Usage: bench/proxy.sh [--update] [--quick] [--only LIST] [--rounds N] [--bulk-mb N] [--keep]

Measure stepjail's egress proxy against direct, squid and tinyproxy. Needs root (ip netns).

Options:
  --update       rewrite the proxy block of BENCHMARKS.md with the results (full runs only)
  --quick        a short trial run: 128 MiB transfers, fewer samples, 3 s wrk runs
  --only LIST    run only these sections, comma-separated, of: latency, bulk, wrk, dns,
                 memory, startup (e.g. --only latency: the CONNECT latency comparison alone,
                 about a minute)
  --rounds N     rounds of the latency section (default 5; 3 with --quick)
  --bulk-mb N    size of each tunnel transfer in MiB (default 1024)
  --keep         keep the temp dir with the raw results
  -h, --help     show this help

Environment: STEPJAIL=path/to/stepjail (default target/release/stepjail, built first)
EOF
}

die() {
    printf 'proxy.sh: error: %s\n' "$*" >&2
    exit 1
}

warn() {
    printf 'proxy.sh: warning: %s\n' "$*" >&2
}

note() {
    printf '%s\n' "$*" >&2
}

WORK=""
NS=""
KEEP=0
cleanup() {
    set +e
    if [[ -n "$NS" ]] && ip netns list 2>/dev/null | grep -qw -- "$NS"; then
        # Every process of ours runs inside the namespace (servers, proxies, stepjail).
        local pid
        for pid in $(ip netns pids "$NS" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null
        done
        sleep 0.2
        ip netns del "$NS"
    fi
    if [[ -n "$WORK" ]]; then
        if [[ "$KEEP" -eq 1 ]]; then
            note "kept raw results in $WORK"
        else
            rm -rf -- "$WORK"
        fi
    fi
}

parse_args() {
    UPDATE=0
    QUICK=0
    BULK_MB=""
    ONLY="latency,bulk,wrk,dns,memory,startup"
    ROUNDS=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --update) UPDATE=1; shift ;;
            --quick) QUICK=1; shift ;;
            --keep) KEEP=1; shift ;;
            --bulk-mb)
                [[ $# -ge 2 && "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || die "$1 needs a positive number"
                BULK_MB="$2"; shift 2 ;;
            --only)
                [[ $# -ge 2 ]] || die "$1 needs a list of sections"
                ONLY="$2"; shift 2 ;;
            --only=*) ONLY="${1#*=}"; shift ;;
            --rounds)
                [[ $# -ge 2 && "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || die "$1 needs a positive number"
                ROUNDS="$2"; shift 2 ;;
            --rounds=*)
                ROUNDS="${1#*=}"
                [[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -gt 0 ]] || die "--rounds needs a positive number"
                shift ;;
            --bulk-mb=*)
                BULK_MB="${1#*=}"
                [[ "$BULK_MB" =~ ^[0-9]+$ && "$BULK_MB" -gt 0 ]] || die "--bulk-mb needs a positive number"
                shift ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    done
    if [[ "$QUICK" -eq 1 ]]; then
        LAT_ROUNDS=3 LAT_N=100 LAT_WARMUP=10 BULK_ROUNDS=1 WRK_SECS=3 DNS_ROUNDS=3 DNS_N=2000 HOLD_N=1000
        HF_WARMUP=5 HF_RUNS=30 HF_ROUNDS=3
        BULK_MB="${BULK_MB:-128}"
    else
        LAT_ROUNDS=5 LAT_N=100 LAT_WARMUP=200 BULK_ROUNDS=3 WRK_SECS=10 DNS_ROUNDS=5 DNS_N=5000 HOLD_N=1000
        HF_WARMUP=10 HF_RUNS=200 HF_ROUNDS=5
        BULK_MB="${BULK_MB:-1024}"
    fi
    LAT_ROUNDS="${ROUNDS:-$LAT_ROUNDS}"
    WRK_CONNS=32
    BULK_BYTES=$((BULK_MB * 1024 * 1024))
    local section
    local -a sections
    IFS=, read -r -a sections <<<"$ONLY"
    [[ ${#sections[@]} -gt 0 ]] || die "--only needs at least one section"
    for section in "${sections[@]}"; do
        case "$section" in
            latency | bulk | wrk | dns | memory | startup) ;;
            *) die "--only: unknown section '$section' (latency, bulk, wrk, dns, memory, startup)" ;;
        esac
    done
    ONLY=",$ONLY,"
    if [[ "$UPDATE" -eq 1 && "$ONLY" != ",latency,bulk,wrk,dns,memory,startup," ]]; then
        die "--update rewrites the whole results block: run every section (no --only)"
    fi
}

# wanted SECTION: whether --only (or its default, every section) includes SECTION.
wanted() {
    [[ "$ONLY" == *",$1,"* ]]
}

# Installs what is missing (as root, with apt-get). A package whose install starts a system
# service (squid, tinyproxy, nginx) gets that service stopped and disabled: we run our own
# instances, with our own configuration, inside our namespace.
ensure_tools() {
    [[ $(id -u) -eq 0 ]] || die "run as root: the benchmark builds its own network namespace (ip netns)"
    local -a missing=()
    command -v squid >/dev/null 2>&1 || missing+=(squid)
    command -v tinyproxy >/dev/null 2>&1 || missing+=(tinyproxy)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
    command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
    command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
    if [[ ${#missing[@]} -gt 0 ]]; then
        note "installing with apt-get: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
        local svc
        for svc in squid tinyproxy nginx; do
            [[ " ${missing[*]} " == *" $svc"* ]] || continue
            if command -v systemctl >/dev/null 2>&1 && systemctl disable --now "$svc" >/dev/null 2>&1; then
                note "stopped and disabled the $svc service the package started"
            elif command -v service >/dev/null 2>&1; then
                service "$svc" stop >/dev/null 2>&1 || true
            fi
        done
    fi
    local tool
    for tool in ip python3 squid tinyproxy wrk hyperfine nginx bwrap openssl; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
    done
    PY=/usr/bin/python3
    [[ -x "$PY" ]] || PY="$(command -v python3)"
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
        note "building: cargo build --release --locked"
        cargo build --release --locked >&2 || die "cargo build failed (set STEPJAIL=path to measure an existing binary)"
        STEPJAIL_BIN="${CARGO_TARGET_DIR:-target}/release/stepjail"
    fi
    [[ "$STEPJAIL_BIN" == /* ]] || STEPJAIL_BIN="$(pwd)/${STEPJAIL_BIN}"
    [[ -x "$STEPJAIL_BIN" ]] || die "stepjail binary not found or not executable: $STEPJAIL_BIN"
}

wait_file() {
    local f="$1" what="$2" i
    for ((i = 0; i < 1000; i++)); do
        [[ -e "$f" ]] && return 0
        sleep 0.02
    done
    die "timed out waiting for $what"
}

wait_port() {
    local hostport="$1" what="$2" i
    for ((i = 0; i < 500; i++)); do
        if ip netns exec "$NS" "$PY" -c "import socket,sys; socket.create_connection(('${hostport%:*}', ${hostport##*:}), 0.2).close()" 2>/dev/null; then
            return 0
        fi
        sleep 0.02
    done
    die "$what did not start listening on $hostport (logs in $WORK)"
}

in_ns() {
    ip netns exec "$NS" "$@"
}

# sj [stepjail run options...] -- CMD...: stepjail with the bench profile inside the namespace.
sj() {
    in_ns "$STEPJAIL_BIN" run --profile "$WORK/bench.yml" --resolver 192.0.2.53:53 \
        --workspace "$WORK/ws" "$@" </dev/null
}

setup() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/stepjail-proxy-bench.XXXXXX")"
    # squid and tinyproxy drop to their own users and must reach their config and log dirs.
    chmod 0755 "$WORK"
    mkdir -p "$WORK"/{ws,www,nginx,squid,tinyproxy,res/latency,res/bulk,res/wrk,res/dns,res/mem}
    chown proxy:proxy "$WORK/squid" 2>/dev/null || chown nobody "$WORK/squid"
    chown nobody "$WORK/tinyproxy"
    # The binary measured is a copy, as install.sh installs it (cp, then rename): the linker
    # writes its output through a shared mapping, which leaves the file's page cache in small
    # pages, and every start of that very file then takes more page faults mapping its code.
    # Side by side (the same bytes, 200 interleaved starts each, `run -- true`):
    # target/release/stepjail 9.42 ms, a cp of it 7.93 ms, bwrap 8.03 ms (perf stat: 396
    # page faults a start against 354).
    cp -- "$STEPJAIL_BIN" "$WORK/stepjail"
    STEPJAIL_BIN="$WORK/stepjail"
    # The clients run inside the sandbox too: put them in its workspace, which it can read.
    cp bench/proxy_client.py bench/proxy_wrk.lua "$WORK/ws/"
    chmod 0644 "$WORK/ws/proxy_client.py" "$WORK/ws/proxy_wrk.lua"
    CLIENT="$WORK/ws/proxy_client.py"
    LUA="$WORK/ws/proxy_wrk.lua"

    NS="sjbench-$$"
    ip netns add "$NS"
    in_ns ip link set lo up
    # Every proxy's upstream connections, and the direct client's, go to 192.0.2.10 from this
    # namespace, ~10,500 in the latency section alone, and each leaves a TIME_WAIT socket for
    # 60 s. Once they cover the ephemeral ports, every connect(2) searches for a free port: a
    # profile of stepjail's proxy thread after ~15,000 tunnels had 70% of its time in that
    # search (__inet_hash_connect, __inet_check_established, tcp_twsk_unique), tinyproxy's
    # threads the same. A CI step makes a few hundred connections to a handful of hosts, so
    # TIME_WAIT ports are reused here (this namespace only; every row alike).
    in_ns sysctl -qw net.ipv4.tcp_tw_reuse=1
    in_ns ip addr add 192.0.2.10/32 dev lo
    in_ns ip addr add 192.0.2.53/32 dev lo

    cat >"$WORK/bench.yml" <<'EOF'
name: bench
description: benchmark allowlist
extends: default
network:
  allow:
    - { host: web.bench, ports: [80, 8080, 9080, 9443] }
    - { host: web.bench, ports: [9000, 9001], raw_tcp: true }
    - { cidr: 192.0.2.0/24, ports: [80, 8080, 9000, 9001, 9080, 9443] }
EOF

    head -c 1024 /dev/zero | tr '\0' 'a' >"$WORK/www/index.html"
    cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 192.0.2.10:8080;
        root $WORK/www;
        location / { }
    }
}
EOF
    cat >"$WORK/squid.conf" <<EOF
http_port 127.0.0.1:3130
acl bench_dst dst 192.0.2.0/24
acl bench_ports port 80 8080 9000 9001
http_access deny !bench_ports
http_access allow bench_dst
http_access deny all
cache deny all
access_log none
cache_store_log none
logfile_rotate 0
cache_log $WORK/squid/cache.log
pid_filename $WORK/squid/squid.pid
coredump_dir $WORK/squid
cache_effective_user proxy
dns_nameservers 192.0.2.53
pinger_enable off
shutdown_lifetime 0 seconds
max_filedescriptors 8192
forwarded_for delete
via off
EOF
    cat >"$WORK/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port 3131
Listen 127.0.0.1
Timeout 600
MaxClients 4096
Allow 127.0.0.1
ConnectPort 9000
ConnectPort 9001
LogFile "$WORK/tinyproxy/tinyproxy.log"
LogLevel Error
PidFile "$WORK/tinyproxy/tinyproxy.pid"
DisableViaHeader Yes
EOF

    # Descriptors for 1,000 tunnels (two sockets each in a proxy) in every process started here.
    ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=web.bench -addext subjectAltName=DNS:web.bench \
        -keyout "$WORK/tls.key" -out "$WORK/tls.crt" >/dev/null 2>&1 || die "openssl req failed"

    # Started in the background and disowned: cleanup() ends them with the namespace.
    in_ns "$PY" bench/proxy_servers.py "$WORK/servers.ready" "$WORK/tls.crt" "$WORK/tls.key" \
        >"$WORK/servers.log" 2>&1 &
    disown
    in_ns nginx -c "$WORK/nginx.conf" -e "$WORK/nginx/error.log" >"$WORK/nginx.log" 2>&1 &
    disown
    in_ns squid -N -f "$WORK/squid.conf" >"$WORK/squid.log" 2>&1 &
    disown
    in_ns tinyproxy -d -c "$WORK/tinyproxy.conf" >"$WORK/tinyproxy.log" 2>&1 &
    disown
    wait_file "$WORK/servers.ready" "the benchmark servers (log: $WORK/servers.log)"
    wait_port 192.0.2.10:8080 nginx
    wait_port 127.0.0.1:3130 squid
    wait_port 127.0.0.1:3131 tinyproxy

    # Preflight: every path works, or the benchmark stops (never time an error path).
    local out who
    for who in direct 127.0.0.1:3130 127.0.0.1:3131; do
        in_ns "$PY" "$CLIENT" latency "$who" 192.0.2.10:9000 1 0 >/dev/null ||
            die "preflight: CONNECT/echo via $who failed"
    done
    out="$(sj -- "$PY" "$CLIENT" latency 127.0.0.1:3128 192.0.2.10:9000 1 0 2>&1)" ||
        die "preflight: stepjail CONNECT failed: $out"
    out="$(sj -- "$PY" "$CLIENT" latency 127.0.0.1:3128 web.bench:9000 1 0 2>&1)" ||
        die "preflight: stepjail CONNECT by name failed: $out"
    out="$(sj -- "$PY" "$CLIENT" latency direct 192.0.2.10:9000 1 0 2>&1)" ||
        die "preflight: stepjail transparent capture failed: $out"
    out="$(sj -- "$PY" "$CLIENT" bulk direct 192.0.2.10:9443 1000 tls 2>&1)" ||
        die "preflight: captured TLS failed: $out"
    out="$(sj -- "$PY" "$CLIENT" bulk direct 192.0.2.10:9080 1000 http 2>&1)" ||
        die "preflight: captured plain HTTP failed: $out"
    out="$(sj -- "$PY" "$CLIENT" bulk 127.0.0.1:3128 web.bench:9443 1000 tls 2>&1)" ||
        die "preflight: TLS through CONNECT failed: $out"
    # The status from stdout only: stepjail's warnings (a variable the profile does not pass)
    # go to stderr and are not a failure.
    out="$(sj -- curl -sS -o /dev/null -w '%{http_code}' http://192.0.2.10:8080/ 2>"$WORK/preflight.err")"
    [[ "$out" == 200 ]] || die "preflight: plain HTTP through stepjail gave: $out $(cat "$WORK/preflight.err")"
}

measure_latency() {
    # 200 warm-up connections for every path (20 before): the first ~150 connections through a
    # fresh sandbox ran at ~500-700 us and the rest at ~300 on this machine (50-connection
    # medians of one 600-connection run), a transient of the new sandbox and not the cost of a
    # connection; the start-up section measures a sandbox's start.
    local r who
    note "== 1. CONNECT latency: $LAT_ROUNDS rounds x $LAT_N connections"
    for ((r = 1; r <= LAT_ROUNDS; r++)); do
        in_ns "$PY" "$CLIENT" latency direct 192.0.2.10:9000 "$LAT_N" "$LAT_WARMUP" \
            >"$WORK/res/latency/direct.$r.json"
        # stepjail and tinyproxy, the pair the target compares, swap places every other round
        # (a trend in the machine's load then favours neither).
        if ((r % 2 == 0)); then
            in_ns "$PY" "$CLIENT" latency 127.0.0.1:3131 192.0.2.10:9000 "$LAT_N" "$LAT_WARMUP" \
                >"$WORK/res/latency/tinyproxy.$r.json"
        fi
        sj -- "$PY" "$CLIENT" latency 127.0.0.1:3128 192.0.2.10:9000 "$LAT_N" "$LAT_WARMUP" \
            >"$WORK/res/latency/stepjail.$r.json"
        in_ns "$PY" "$CLIENT" latency 127.0.0.1:3130 192.0.2.10:9000 "$LAT_N" "$LAT_WARMUP" \
            >"$WORK/res/latency/squid.$r.json"
        if ((r % 2 == 1)); then
            in_ns "$PY" "$CLIENT" latency 127.0.0.1:3131 192.0.2.10:9000 "$LAT_N" "$LAT_WARMUP" \
                >"$WORK/res/latency/tinyproxy.$r.json"
        fi
        sj -- "$PY" "$CLIENT" latency 127.0.0.1:3128 web.bench:9000 "$LAT_N" "$LAT_WARMUP" \
            >"$WORK/res/latency/stepjail-name.$r.json"
        sj -- "$PY" "$CLIENT" latency direct 192.0.2.10:9000 "$LAT_N" "$LAT_WARMUP" \
            >"$WORK/res/latency/stepjail-tun.$r.json"
        STEPJAIL_NO_NFTABLES=1 sj -- "$PY" "$CLIENT" latency direct 192.0.2.10:9000 "$LAT_N" "$LAT_WARMUP" \
            >"$WORK/res/latency/stepjail-uss.$r.json"
    done
}

measure_bulk() {
    local r
    note "== 2. throughput (raw, plain HTTP, TLS): $BULK_ROUNDS rounds x $BULK_MB MiB"
    for ((r = 1; r <= BULK_ROUNDS; r++)); do
        in_ns "$PY" "$CLIENT" bulk direct 192.0.2.10:9001 "$BULK_BYTES" >"$WORK/res/bulk/direct.$r.json"
        sj -- "$PY" "$CLIENT" bulk 127.0.0.1:3128 192.0.2.10:9001 "$BULK_BYTES" >"$WORK/res/bulk/stepjail.$r.json"
        in_ns "$PY" "$CLIENT" bulk 127.0.0.1:3130 192.0.2.10:9001 "$BULK_BYTES" >"$WORK/res/bulk/squid.$r.json"
        in_ns "$PY" "$CLIENT" bulk 127.0.0.1:3131 192.0.2.10:9001 "$BULK_BYTES" >"$WORK/res/bulk/tinyproxy.$r.json"
        # Captured (no proxy variables: nf_tables redirect, spliced), raw bytes, plain HTTP, TLS;
        # and the same plain HTTP and TLS through the CONNECT tunnel.
        sj -- "$PY" "$CLIENT" bulk direct 192.0.2.10:9001 "$BULK_BYTES" >"$WORK/res/bulk/stepjail-tun.$r.json"
        in_ns "$PY" "$CLIENT" bulk direct 192.0.2.10:9080 "$BULK_BYTES" http >"$WORK/res/bulk/direct-http.$r.json"
        sj -- "$PY" "$CLIENT" bulk 127.0.0.1:3128 web.bench:9080 "$BULK_BYTES" http >"$WORK/res/bulk/stepjail-http.$r.json"
        sj -- "$PY" "$CLIENT" bulk direct 192.0.2.10:9080 "$BULK_BYTES" http >"$WORK/res/bulk/stepjail-tun-http.$r.json"
        in_ns "$PY" "$CLIENT" bulk direct 192.0.2.10:9443 "$BULK_BYTES" tls >"$WORK/res/bulk/direct-tls.$r.json"
        sj -- "$PY" "$CLIENT" bulk 127.0.0.1:3128 web.bench:9443 "$BULK_BYTES" tls >"$WORK/res/bulk/stepjail-tls.$r.json"
        sj -- "$PY" "$CLIENT" bulk direct 192.0.2.10:9443 "$BULK_BYTES" tls >"$WORK/res/bulk/stepjail-tun-tls.$r.json"
    done
    # The userspace-stack fallback once (where nf_tables is unavailable; much slower).
    STEPJAIL_NO_NFTABLES=1 sj -- "$PY" "$CLIENT" bulk direct 192.0.2.10:9001 "$BULK_BYTES" \
        >"$WORK/res/bulk/stepjail-uss.1.json"
}

measure_wrk() {
    local -a w=(wrk -t1 -c"$WRK_CONNS" -d"${WRK_SECS}s" --latency)
    note "== 3. plain-HTTP forwarding: wrk ${w[*]:1}"
    in_ns "${w[@]}" http://192.0.2.10:8080/ >"$WORK/res/wrk/direct.txt"
    sj -- "${w[@]}" -s "$LUA" http://127.0.0.1:3128/ -- http://192.0.2.10:8080/ >"$WORK/res/wrk/stepjail.txt"
    in_ns "${w[@]}" -s "$LUA" http://127.0.0.1:3130/ -- http://192.0.2.10:8080/ >"$WORK/res/wrk/squid.txt"
    in_ns "${w[@]}" -s "$LUA" http://127.0.0.1:3131/ -- http://192.0.2.10:8080/ >"$WORK/res/wrk/tinyproxy.txt"
}

measure_dns() {
    local r
    note "== 4. DNS: $DNS_ROUNDS rounds x $DNS_N queries"
    # The stub and the captured path, the pair one target compares, swap places every other
    # round (a single run of each moved +-20% between runs on this machine).
    for ((r = 1; r <= DNS_ROUNDS; r++)); do
        in_ns "$PY" "$CLIENT" dns 192.0.2.53 web.bench "$DNS_N" >"$WORK/res/dns/direct.$r.json"
        if ((r % 2 == 0)); then
            sj -- "$PY" "$CLIENT" dns 192.0.2.53 web.bench "$DNS_N" >"$WORK/res/dns/stepjail-tun.$r.json"
        fi
        sj -- "$PY" "$CLIENT" dns 127.0.0.53 web.bench "$DNS_N" >"$WORK/res/dns/stepjail.$r.json"
        if ((r % 2 == 1)); then
            sj -- "$PY" "$CLIENT" dns 192.0.2.53 web.bench "$DNS_N" >"$WORK/res/dns/stepjail-tun.$r.json"
        fi
    done
    # The same queries with every process on CPU 0 (not a target row): one query is two
    # wake-ups, and on a VM where a halted vCPU costs a VM exit to wake, a sequential rate
    # across two CPUs measures that exit more than either end. Pinned, a wake-up is a context
    # switch on a CPU that is awake, so these rows show what the stub itself costs.
    local server cpus
    server="$(pgrep -f "proxy_servers.py $WORK/servers.ready" | head -n 1)"
    [[ -n "$server" ]] || die "the benchmark servers are not running (log: $WORK/servers.log)"
    cpus="$(taskset -p -c "$server" | sed 's/.*: //')"
    taskset -a -p -c 0 "$server" >/dev/null
    for ((r = 1; r <= DNS_ROUNDS; r++)); do
        in_ns taskset -c 0 "$PY" "$CLIENT" dns 192.0.2.53 web.bench "$DNS_N" \
            >"$WORK/res/dns/direct-1cpu.$r.json"
        in_ns taskset -c 0 "$STEPJAIL_BIN" run --profile "$WORK/bench.yml" --resolver 192.0.2.53:53 \
            --workspace "$WORK/ws" -- "$PY" "$CLIENT" dns 127.0.0.53 web.bench "$DNS_N" \
            </dev/null >"$WORK/res/dns/stepjail-1cpu.$r.json"
    done
    taskset -a -p -c "$cpus" "$server" >/dev/null
}

# ns_pids COMM: the pids of the processes named COMM in the benchmark namespace. (The sandboxed
# step has a network namespace of its own, so the only stepjail process here is the supervisor.)
ns_pids() {
    local p
    for p in $(ip netns pids "$NS"); do
        [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == "$1" ]] && echo "$p"
    done
    return 0
}

# rss_kib PID...: the summed VmRSS of the processes, in KiB.
rss_kib() {
    local p total=0 v
    for p in "$@"; do
        v="$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")"
        total=$((total + v))
    done
    echo "$total"
}

# hold_run WHO COMM CLIENT_CMD...: runs the hold client, reads the summed RSS of the processes
# named COMM in the namespace when the client is idle and when it holds its tunnels.
hold_run() {
    local who="$1" comm="$2"
    shift 2
    local d="$WORK/ws/hold-$who"
    rm -rf -- "$d"
    mkdir -p "$d"
    "$@" >"$WORK/hold-$who.json" &
    local cpid=$!
    wait_file "$d/idle" "the $who hold client"
    local -a pids
    mapfile -t pids < <(ns_pids "$comm")
    [[ ${#pids[@]} -gt 0 ]] || die "no $comm process found in $NS"
    if [[ "$comm" == stepjail && ${#pids[@]} -ne 1 ]]; then
        die "expected one stepjail supervisor in $NS, found ${#pids[@]}"
    fi
    sleep 0.5
    local idle held
    idle="$(rss_kib "${pids[@]}")"
    touch "$d/go"
    wait_file "$d/ready" "the $who client to open $HOLD_N tunnels"
    sleep 0.5
    held="$(rss_kib "${pids[@]}")"
    touch "$d/release"
    wait "$cpid" || die "the $who hold client failed"
    "$PY" - "$WORK/hold-$who.json" "$idle" "$held" "$HOLD_N" "${#pids[@]}" >"$WORK/res/mem/$who.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if r["open"] != int(sys.argv[4]):
    sys.exit(f"opened {r['open']} tunnels, wanted {sys.argv[4]}")
print(json.dumps({"idle_kib": int(sys.argv[2]), "held_kib": int(sys.argv[3]),
                  "tunnels": r["open"], "seconds_to_open": r["seconds_to_open"],
                  "processes": int(sys.argv[5])}))
PY
}

measure_memory() {
    note "== 5. memory: idle and $HOLD_N open tunnels"
    hold_run stepjail stepjail sj -- "$PY" "$CLIENT" hold 127.0.0.1:3128 192.0.2.10:9000 "$HOLD_N" "$WORK/ws/hold-stepjail"
    hold_run squid squid in_ns "$PY" "$CLIENT" hold 127.0.0.1:3130 192.0.2.10:9000 "$HOLD_N" "$WORK/ws/hold-squid"
    hold_run tinyproxy tinyproxy in_ns "$PY" "$CLIENT" hold 127.0.0.1:3131 192.0.2.10:9000 "$HOLD_N" "$WORK/ws/hold-tinyproxy"
}

measure_startup() {
    note "== 6. start-up: $HF_ROUNDS rounds of hyperfine --warmup $HF_WARMUP --runs $((HF_RUNS / HF_ROUNDS))"
    local sjq r i k
    sjq="$(printf '%q' "$STEPJAIL_BIN")"
    local names=("bwrap --unshare-all true" "stepjail run -- true" "stepjail run --profile bench -- true")
    local cmds=("bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev true"
        "$sjq run --workspace $WORK/ws -- true"
        "$sjq run --profile $WORK/bench.yml --resolver 192.0.2.53:53 --workspace $WORK/ws -- true")
    for ((r = 1; r <= HF_ROUNDS; r++)); do
        local args=()
        for ((i = 0; i < 3; i++)); do
            k=$(((i + r - 1) % 3))
            args+=(--command-name "${names[$k]}" "${cmds[$k]}")
        done
        in_ns hyperfine -N --warmup "$HF_WARMUP" --runs "$((HF_RUNS / HF_ROUNDS))" \
            --export-json "$WORK/res/startup-$r.json" "${args[@]}" </dev/null >&2
    done
}

# How an idle CPU waits, which sets what waking a process on it costs. In a VM guest with
# the haltpoll cpuidle driver, guest_halt_poll_ns=0 (as this VM boots) makes every idle CPU
# halt, and every wake-up of one is a VM exit: on the same machine and code, the DNS
# section's rates were 11,000-17,000 queries/s with it and 45,000-53,000 with 200 us of
# polling (BENCHMARKS.md). Every result that is a chain of wake-ups (latency, DNS, start-up)
# moves with it.
idle_info() {
    local d=/sys/devices/system/cpu/cpuidle hp=/sys/module/haltpoll/parameters/guest_halt_poll_ns
    local driver governor
    driver="$(cat "$d/current_driver" 2>/dev/null || echo none)"
    governor="$(cat "$d/current_governor" 2>/dev/null || cat "$d/current_governor_ro" 2>/dev/null || echo '?')"
    if [[ -r "$hp" ]]; then
        printf 'cpuidle %s (governor %s), haltpoll guest_halt_poll_ns=%s' "$driver" "$governor" "$(cat "$hp")"
    else
        printf 'cpuidle %s (governor %s)' "$driver" "$governor"
    fi
}

machine_info() {
    local cpu
    cpu="$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)"
    printf -- '- date: %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf -- '- kernel: %s\n' "$(uname -r)"
    printf -- '- CPU: %s (%s logical CPUs)\n' "${cpu:-unknown}" "$(nproc)"
    printf -- '- idle CPUs: %s\n' "$(idle_info)"
    printf -- '- load average (1, 5, 15 min) before the runs: %s; after: %s (other work shares this machine)\n' \
        "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf -- '- %s; tinyproxy %s; %s; %s; nginx %s; %s; %s; Python %s\n' \
        "$(squid -v | head -n1)" "$(tinyproxy -v 2>&1 | awk '{print $2}')" \
        "$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')" "$(hyperfine --version)" \
        "$(nginx -v 2>&1 | sed 's|.*nginx/||')" "$(bwrap --version 2>/dev/null || echo 'bwrap ?')" \
        "$(ip -V 2>&1 | head -n1)" "$("$PY" -c 'import platform; print(platform.python_version())')"
    printf -- '- stepjail: %s (commit %s%s), run as root\n' \
        "$("$STEPJAIL_BIN" --version 2>/dev/null | head -n1 || true)" \
        "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
        "$(git diff --quiet HEAD 2>/dev/null || echo ', dirty tree')"
    printf -- '- wall time of the whole benchmark: %s s%s%s\n' "$SECONDS" \
        "$([[ "$QUICK" -eq 1 ]] && echo ' (--quick: small samples, not for comparison)')" \
        "$([[ "$ONLY" != ",latency,bulk,wrk,dns,memory,startup," ]] && echo "; sections run: ${ONLY:1:-1}")"
}

update_benchmarks_md() {
    "$PY" - "$1" "$2" "$MARK_BEGIN" "$MARK_END" <<'PY'
import os, sys

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
    if [[ "$UPDATE" -eq 1 ]]; then
        grep -qF -- "$MARK_BEGIN" BENCHMARKS.md || die "BENCHMARKS.md has no $MARK_BEGIN marker"
    fi

    ensure_tools
    resolve_stepjail
    LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
    SECONDS=0
    setup

    "$PY" - "$WORK/res/params.json" <<PY
import json, sys
json.dump({"lat_rounds": $LAT_ROUNDS, "lat_n": $LAT_N, "lat_warmup": $LAT_WARMUP,
           "bulk_rounds": $BULK_ROUNDS, "bulk_bytes": $BULK_BYTES, "wrk_secs": $WRK_SECS,
           "wrk_conns": $WRK_CONNS, "dns_n": $DNS_N, "dns_rounds": $DNS_ROUNDS, "hold_n": $HOLD_N,
           "hf_warmup": $HF_WARMUP, "hf_runs": $HF_RUNS, "hf_rounds": $HF_ROUNDS}, open(sys.argv[1], "w"))
PY
    # Start-up first: every networked run leaves a namespace (TUN device, nf_tables tables) that
    # the kernel tears down in the background holding its network configuration lock, so after
    # the other sections (1,000 tunnels, hundreds of runs) the last command hyperfine times paid
    # for their teardown too. A pause lets the preflight's own runs finish theirs.
    if wanted startup; then
        sleep 3
        measure_startup
    fi
    wanted latency && measure_latency
    wanted bulk && measure_bulk
    wanted wrk && measure_wrk
    wanted dns && measure_dns
    wanted memory && measure_memory

    local block="$WORK/block.md"
    {
        echo "Machine and tools:"
        echo
        machine_info
        echo
        "$PY" bench/proxy_report.py "$WORK/res"
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
