#!/usr/bin/env bash
# Benchmark (not a test): what the GitHub layer costs a step. On a simulated runner (a
# RUNNER_TEMP with the runner's file-command files, the runner's variables, a frozen policy),
# one hyperfine run compares side by side:
#
#   bwrap               bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev true
#   run                 stepjail run --profile offline -- true
#   step (3 entries)    stepjail step -- true   (a policy of 3 steps, 2 inline profiles)
#   step (20 entries)   stepjail step -- true   (a policy of 20 steps, 5 inline profiles)
#
# as root and as uid 65534 (the runner is not root), each command started the same way
# (`[setpriv ...] env -i VARS... COMMAND`, so all pay the same two extra execs). `step` adds: reading and hashing the
# frozen policy, parsing it, building the step's profile, checking the file-command files,
# reading its audit records back and appending the step summary.
#
# Usage: bench/step.sh [--update] [--runs N]
#   --update   write the tables into BENCHMARKS.md between <!-- step:begin --> and <!-- step:end -->
# Environment: STEPJAIL=path/to/stepjail (default target/release/stepjail, built first)
set -euo pipefail


die() {
    printf 'step.sh: error: %s\n' "$*" >&2
    exit 1
}

main() {
    cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
    local update=0 runs=300
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --update) update=1; shift ;;
            --runs) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--runs needs a number"; runs="$2"; shift 2 ;;
            -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    [[ $(id -u) -eq 0 ]] || die "run as root (it also measures as uid 65534 with setpriv)"
    for tool in hyperfine bwrap setpriv; do
        command -v "$tool" >/dev/null || die "$tool not found"
    done
    local sj="${STEPJAIL:-}"
    if [[ -z "$sj" ]]; then
        cargo build --release --locked >&2
        sj="$(pwd)/target/release/stepjail"
    fi
    [[ -x "$sj" ]] || die "not executable: $sj"

    local work
    work="$(mktemp -d /var/tmp/sjstep.XXXXXX)"
    # shellcheck disable=SC2064 # expand now
    trap "rm -rf -- '$work'" EXIT
    chmod 0755 "$work"
    # A fresh copy is measured (readable by uid 65534 too): the same bytes start slower from
    # the linker's output, whose page cache is in small pages (see BENCHMARKS.md).
    mkdir -p "$work/bin"
    cp -- "$sj" "$work/bin/stepjail"
    chmod 0755 "$work/bin" "$work/bin/stepjail"
    sj="$work/bin/stepjail"
    local out="$work/results.md"
    {
        echo "Machine and tools:"
        echo
        echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
        echo "- kernel: $(uname -r); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //' | cut -c1-40) ($(nproc) logical CPUs); load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "- $(hyperfine --version), $("$sj" --version) (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
        echo "- hyperfine -N --warmup 20 --runs $runs"
    } >"$out"

    local uid label
    for uid in 0 65534; do
        label="as root (uid 0)"
        [[ $uid -ne 0 ]] && label="as an unprivileged user (uid 65534)"
        local root="$work/u$uid"
        mkdir -p "$root/ws/.github" "$root/home" "$root/temp/_runner_file_commands"
        cat >"$root/small.yml" <<'YML'
version: 1
default: offline
profiles:
  a: { description: a, extends: default }
  b: { description: b, extends: cargo }
jobs:
  test:
    steps:
      build: { profile: a }
      deps: { profile: b }
      lint: { profile: offline }
YML
        {
            printf 'version: 1\ndefault: offline\nprofiles:\n'
            local i
            for i in 0 1 2 3 4; do printf '  p%s: { description: p%s, extends: npm }\n' "$i" "$i"; done
            printf 'jobs:\n  test:\n    steps:\n'
            local profs=(npm cargo pip go codecov p0 p1 p2 p3 p4)
            for i in $(seq 0 19); do printf '      s%s: { profile: %s }\n' "$i" "${profs[$((i % 10))]}"; done
            printf '      build: { profile: offline }\n'
        } >"$root/large.yml"
        local f
        for f in set_env set_output add_path save_state step_summary; do : >"$root/temp/_runner_file_commands/$f"; done
        chown -R "$uid:$uid" "$root"
        local -a as=()
        [[ $uid -ne 0 ]] && as=(setpriv --reuid "$uid" --regid "$uid" --clear-groups)
        local -a envs=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$root/home"
            RUNNER_TEMP="$root/temp" GITHUB_WORKSPACE="$root/ws" GITHUB_JOB=test GITHUB_ACTION=build
            GITHUB_ENV="$root/temp/_runner_file_commands/set_env"
            GITHUB_OUTPUT="$root/temp/_runner_file_commands/set_output"
            GITHUB_PATH="$root/temp/_runner_file_commands/add_path"
            GITHUB_STATE="$root/temp/_runner_file_commands/save_state"
            GITHUB_STEP_SUMMARY="$root/temp/_runner_file_commands/step_summary")
        (cd "$root/ws" && "${as[@]}" "${envs[@]}" "$sj" setup --policy "$root/small.yml" --state-dir "$root/small" >/dev/null)
        (cd "$root/ws" && "${as[@]}" "${envs[@]}" "$sj" setup --policy "$root/large.yml" --state-dir "$root/large" >/dev/null)
        local pre="${as[*]} ${envs[*]}"
        (
            cd "$root/ws"
            hyperfine -N --warmup 20 --runs "$runs" --style basic \
                --export-markdown "$work/u$uid.md" \
                -n "bwrap --unshare-all true" "$pre bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev true" \
                -n "stepjail run --profile offline -- true" "$pre $sj run --profile offline -- true" \
                -n "stepjail step -- true (3 entries)" "$pre $sj step --state-dir $root/small -- true" \
                -n "stepjail step -- true (20 entries)" "$pre $sj step --state-dir $root/large -- true" >&2
        )
        {
            echo
            echo "\`stepjail step\` $label:"
            echo
            cat "$work/u$uid.md"
        } >>"$out"
    done
    cat "$out"
    if [[ $update -eq 1 ]]; then
        python3 - "$out" <<'PY'
import sys
res = open(sys.argv[1]).read().strip()
p = "BENCHMARKS.md"
s = open(p).read()
b, e = "<!-- step:begin -->", "<!-- step:end -->"
if b not in s or e not in s:
    sys.exit("BENCHMARKS.md has no step markers")
i, j = s.index(b) + len(b), s.index(e)
open(p, "w").write(s[:i] + "\n" + res + "\n" + s[j:])
PY
        echo "step.sh: BENCHMARKS.md updated" >&2
    fi
}

main "$@"
