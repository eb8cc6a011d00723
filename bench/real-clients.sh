#!/usr/bin/env bash
# Benchmark (not a test, and not run in CI): the real package-manager clients against the real
# registries this machine reaches, each run without stepjail and under `stepjail run --profile
# NAME`, as root and as uid 65534, from an empty cache each time. It answers the two questions a
# CI user asks first: does the command work unchanged inside, and what does it cost?
#
#   npm ci            npm profile     a lockfile with one dependency (is-number 7.0.0)
#   yarn install      yarn profile    Yarn 1, resolving the same dependency (installed with npm into
#                                     the work dir first)
#   pnpm install      pnpm profile    pnpm 9 (likewise)
#   pip download      pip profile     requests 2.32.3 and its dependencies
#   pip install       pip profile     the same into a fresh venv
#   uv pip install    uv profile      the same with uv (installed with pip into the work dir)
#   cargo fetch       cargo profile   a crate depending on itoa =1.0.11, a fresh CARGO_HOME
#   apt-get download  apt profile     hello (the host's package lists)
#   apt-get update    apt profile     root only without stepjail (apt needs root to update the
#                                     host's lists); under stepjail the profile keeps its lists in
#                                     the workspace, so it also works as uid 65534
#   update + download apt profile     what a step under the apt profile runs: its lists start
#                                     empty, so `apt-get download` alone finds nothing
#
# Runs alternate which side goes first, so a registry's cache warmed by one does not always
# favour the other.
#
# Each cell is the median wall time of --runs runs (default 3) and the exit status; "works
# unchanged" means the same command and arguments exited 0 both ways.
#
# Usage: bench/real-clients.sh [--runs N] [--update]
#   --update   write the table into BENCHMARKS.md between <!-- clients:begin --> and <!-- clients:end -->
# Environment: STEPJAIL=path/to/stepjail (default target/release/stepjail, built first)
set -euo pipefail

die() {
    printf 'real-clients.sh: error: %s\n' "$*" >&2
    exit 1
}

# $1 user (root|65534), $2 workspace, rest: command. Prints "seconds status".
timed() {
    local user="$1" ws="$2"
    shift 2
    local pre=()
    if [[ "$user" != root ]]; then
        pre=(setpriv --reuid="$user" --regid="$user" --clear-groups --)
    fi
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    (cd "$ws" && env -i PATH="$TOOLS_PATH" HOME="$ws/home" LANG=C.UTF-8 "${pre[@]}" "$@") \
        >"$ws.log" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    printf '%.2f %d\n' "$(echo "$t1 - $t0" | bc)" "$rc"
}

# A fresh workspace for one case: $1 user, $2 case. Echoes its path.
fresh() {
    local user="$1" case="$2" ws
    ws="$(mktemp -d "$WORK/ws.XXXXXX")"
    mkdir -p "$ws/home"
    case "$case" in
        npm | yarn | pnpm)
            cp -- "$WORK/fixtures/npm/package.json" "$WORK/fixtures/npm/package-lock.json" "$ws/"
            ;;
        cargo) cp -r -- "$WORK/fixtures/cargo/." "$ws/" ;;
    esac
    [[ "$user" == root ]] || chown -R "$user:$user" "$ws"
    echo "$ws"
}

# $1 case: the command to run (in the workspace, HOME=$ws/home).
command_of() {
    case "$1" in
        npm) echo "npm ci --no-audit --no-fund --cache ./npm-cache" ;;
        yarn) echo "yarn install --cache-folder ./yarn-cache --non-interactive" ;;
        pnpm) echo "pnpm install --store-dir ./pnpm-store" ;;
        pip-download) echo "python3 -m pip download --no-cache-dir --disable-pip-version-check -d ./wheels requests==2.32.3" ;;
        pip-install) echo "sh -c 'python3 -m venv ./venv && ./venv/bin/pip install --no-cache-dir --disable-pip-version-check -q requests==2.32.3'" ;;
        uv) echo "env UV_NATIVE_TLS=1 sh -c 'uv venv -q ./venv && uv pip install -q --no-cache --python ./venv/bin/python requests==2.32.3'" ;;
        cargo) echo "env CARGO_HOME=./cargo-home cargo fetch" ;;
        apt-download) echo "apt-get download hello" ;;
        apt-update-download) echo "sh -c 'apt-get update -qq && apt-get download hello'" ;;
        apt-update) echo "apt-get update -q" ;;
    esac
}

profile_of() {
    case "$1" in
        pip-*) echo pip ;;
        apt-*) echo apt ;;
        *) echo "$1" ;;
    esac
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

main() {
    cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
    local update=0 runs=3
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --update) update=1; shift ;;
            --runs) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--runs needs a number"; runs="$2"; shift 2 ;;
            -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    [[ $(id -u) -eq 0 ]] || die "run as root (it also measures as uid 65534 with setpriv)"
    for tool in setpriv npm python3 cargo apt-get bc; do
        command -v "$tool" >/dev/null || die "$tool not found"
    done
    local sj="${STEPJAIL:-}"
    if [[ -z "$sj" ]]; then
        cargo build --release --locked >&2
        sj="$(pwd)/target/release/stepjail"
    fi
    [[ -x "$sj" ]] || die "not executable: $sj"

    # Outside /tmp: a sandboxed step has a private /tmp of its own.
    WORK="$(mktemp -d /var/tmp/sjclients.XXXXXX)"
    # shellcheck disable=SC2064 # expand now
    trap "rm -rf -- '$WORK'" EXIT
    chmod 0755 "$WORK"
    cp -- "$sj" "$WORK/stepjail"
    sj="$WORK/stepjail"

    echo "setting up tools and fixtures in $WORK" >&2
    mkdir -p "$WORK/tools" "$WORK/fixtures/npm" "$WORK/fixtures/cargo/src"
    npm install -g -q --no-audit --no-fund --prefix "$WORK/tools/node" yarn@1.22.22 pnpm@9.15.9 >&2
    python3 -m pip install -q --disable-pip-version-check --target "$WORK/tools/py" uv==0.5.31 >&2
    # uid 65534 cannot read root's rustup; cargo fetch needs cargo and `rustc -vV`, so a copy of
    # those two and their shared libraries (~380 MB) serves both users and leaves rustup alone.
    local sysroot cargo_bin="$WORK/tools/rust/bin"
    sysroot="$(rustc --print sysroot)"
    mkdir -p "$WORK/tools/rust/bin" "$WORK/tools/rust/lib"
    cp -- "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$cargo_bin/"
    cp -a -- "$sysroot"/lib/lib*.so* "$WORK/tools/rust/lib/"
    TOOLS_PATH="$WORK/tools/node/bin:$WORK/tools/py/bin:$cargo_bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    export TOOLS_PATH
    chmod -R a+rX "$WORK/tools"
    printf '{"name":"bench","version":"1.0.0","private":true,"dependencies":{"is-number":"7.0.0"}}\n' \
        >"$WORK/fixtures/npm/package.json"
    (cd "$WORK/fixtures/npm" && npm install -q --package-lock-only --no-audit --no-fund >&2)
    printf '[package]\nname = "bench"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nitoa = "=1.0.11"\n' \
        >"$WORK/fixtures/cargo/Cargo.toml"
    echo 'fn main() {}' >"$WORK/fixtures/cargo/src/main.rs"
    (cd "$WORK/fixtures/cargo" && CARGO_HOME="$WORK/chome" cargo generate-lockfile -q >&2)
    chmod -R a+rX "$WORK/fixtures"

    local out="$WORK/results.md"
    {
        echo "Real clients against the real registries (\`bench/real-clients.sh --runs $runs\`):"
        echo
        echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); kernel $(uname -r); $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "- $("$sj" --version) (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)); npm $(npm --version), yarn $(PATH="$TOOLS_PATH" yarn --version), pnpm $(PATH="$TOOLS_PATH" pnpm --version), $(python3 -m pip --version | cut -d' ' -f1-2), $(PATH="$TOOLS_PATH" uv --version), $(cargo --version | cut -d' ' -f1-2), apt $(apt-get --version | head -1 | cut -d' ' -f2)"
        echo "- median of $runs runs, each from an empty cache; seconds (exit status when not 0)"
        echo
        echo "| command | profile | user | without | with stepjail | works unchanged |"
        echo "|---|---|---|---:|---:|---|"
    } >"$out"

    local case user profile cmd
    for case in npm yarn pnpm pip-download pip-install uv cargo apt-download apt-update apt-update-download; do
        profile="$(profile_of "$case")"
        cmd="$(command_of "$case")"
        for user in root 65534; do
            local without=() with=() rc_without=0 rc_with=0 i r ws
            for ((i = 0; i < runs; i++)); do
                # Odd runs go under stepjail first, so neither side always meets a warm registry.
                local first_with=$((i % 2))
                if ((first_with)); then
                    ws="$(fresh "$user" "$case")"
                    read -r t r < <(eval timed "$user" "$ws" "$sj" run --profile "$profile" --workspace "$ws" -- "$cmd")
                    with+=("$t")
                    [[ "$r" == 0 ]] || rc_with="$r"
                fi
                if [[ "$case" == apt-update* && "$user" != root ]]; then
                    without+=("-")
                else
                    ws="$(fresh "$user" "$case")"
                    read -r t r < <(eval timed "$user" "$ws" "$cmd")
                    without+=("$t")
                    [[ "$r" == 0 ]] || rc_without="$r"
                fi
                ((first_with)) && continue
                ws="$(fresh "$user" "$case")"
                read -r t r < <(eval timed "$user" "$ws" "$sj" run --profile "$profile" --workspace "$ws" -- "$cmd")
                with+=("$t")
                if [[ "$r" != 0 ]]; then
                    rc_with="$r"
                    echo "--- $case as $user under stepjail exited $r:" >&2
                    tail -5 "$ws.log" >&2
                fi
            done
            local w1 w2 ok
            w1="$(printf '%s\n' "${without[@]}" | median)"
            w2="$(printf '%s\n' "${with[@]}" | median)"
            [[ "$rc_without" == 0 ]] || w1="$w1 (exit $rc_without)"
            [[ "$rc_with" == 0 ]] || w2="$w2 (exit $rc_with)"
            if [[ "$rc_with" == 0 && ("$rc_without" == 0 || "$w1" == -) ]]; then ok=yes; else ok=no; fi
            printf '| `%s` | %s | %s | %s | %s | %s |\n' "$cmd" "$profile" "$user" "$w1" "$w2" "$ok" >>"$out"
            echo "$case as $user: without $w1 s, with $w2 s" >&2
        done
    done
    cat "$out"
    if [[ "$update" == 1 ]]; then
        python3 - "$out" <<'EOF'
import sys, re
table = open(sys.argv[1]).read().rstrip("\n")
path = "BENCHMARKS.md"
text = open(path).read()
block = "<!-- clients:begin -->\n" + table + "\n<!-- clients:end -->"
if "<!-- clients:begin -->" in text:
    text = re.sub(r"<!-- clients:begin -->.*?<!-- clients:end -->", lambda m: block, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n## Real package managers against the real registries (`bench/real-clients.sh`)\n\n" + block + "\n"
open(path, "w").write(text)
EOF
        echo "updated BENCHMARKS.md" >&2
    fi
}

main "$@"
