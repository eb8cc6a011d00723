#!/usr/bin/env python3
"""Turns the raw results bench/proxy.sh collected in DIR into the markdown tables
(`python3 bench/proxy_report.py DIR`). Layout of DIR:

  latency/<who>.<round>.json   {"samples_us": [...]}   (bench/proxy_client.py latency)
  bulk/<who>.<round>.json      {"seconds": s, "bytes": n}
  wrk/<who>.txt                wrk --latency output
  dns/<who>.json               {"samples_us": [...]}
  mem/<who>.json               {"idle_kib": k | null, "held_kib": k, "tunnels": n, "pid_note": "..."}
  startup-R.json               hyperfine --export-json, one file per round
  params.json                  the run's parameters
"""

import glob
import json
import os
import re
import statistics
import sys

D = sys.argv[1]
PARAMS = json.load(open(os.path.join(D, "params.json")))

LABEL = {
    "direct": "direct (no proxy)",
    "stepjail": "stepjail, explicit proxy (CONNECT 127.0.0.1:3128)",
    "stepjail-name": "stepjail, explicit proxy, CONNECT by name (web.bench, resolved per CONNECT)",
    "stepjail-tun": "stepjail, transparent capture (no proxy variables: nf_tables redirect, kernel sockets)",
    "stepjail-uss": "stepjail, transparent capture, userspace-stack fallback (STEPJAIL_NO_NFTABLES=1)",
    "squid": "squid",
    "tinyproxy": "tinyproxy",
    "direct-http": "direct, plain HTTP (`GET /<bytes>`)",
    "stepjail-http": "stepjail, plain HTTP through the CONNECT tunnel (served request by request)",
    "stepjail-tun-http": "stepjail, captured plain HTTP (nf_tables redirect, decided by Host)",
    "direct-tls": "direct, TLS (Python sender and receiver: the bottleneck)",
    "stepjail-tls": "stepjail, TLS through the CONNECT tunnel (spliced)",
    "stepjail-tun-tls": "stepjail, captured TLS (nf_tables redirect, decided by SNI, spliced)",
}
ORDER = ["direct", "stepjail", "stepjail-name", "stepjail-tun", "stepjail-uss", "squid", "tinyproxy",
         "direct-http", "stepjail-http", "stepjail-tun-http", "direct-tls", "stepjail-tls", "stepjail-tun-tls"]


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def runs(kind):
    out = {}
    for f in sorted(glob.glob(os.path.join(D, kind, "*.json"))):
        who = os.path.basename(f).split(".")[0]
        out.setdefault(who, []).append(json.load(open(f)))
    return out


def ordered(d):
    return [w for w in ORDER if w in d]


results = {}
lines = []
say = lines.append

# 1. Latency
lat = runs("latency")
if lat:
    say(f"CONNECT latency: a fresh TCP connection per sample, CONNECT 192.0.2.10:9000, one byte echoed, "
        f"close; {PARAMS['lat_rounds']} rounds of {PARAMS['lat_n']} connections, proxies interleaved, "
        f"{PARAMS['lat_warmup']} unmeasured warm-up connections per round. Times include the Python "
        f"client's own cost (the same for every row); \"added\" is the row minus direct.")
    say("")
    say("| path | p50 (µs) | p99 (µs) | added p50 (µs) | added p99 (µs) | p50 per round, min–max (µs) |")
    say("|---|---:|---:|---:|---:|---:|")
    pooled = {w: sum((r["samples_us"] for r in rs), []) for w, rs in lat.items()}
    d50, d99 = pct(pooled["direct"], 50), pct(pooled["direct"], 99)
    for w in ordered(pooled):
        s = pooled[w]
        p50, p99 = pct(s, 50), pct(s, 99)
        per = [pct(r["samples_us"], 50) for r in lat[w]]
        add50 = "—" if w == "direct" else f"{p50 - d50:+.0f}"
        add99 = "—" if w == "direct" else f"{p99 - d99:+.0f}"
        say(f"| {LABEL[w]} | {p50:.0f} | {p99:.0f} | {add50} | {add99} | {min(per):.0f}–{max(per):.0f} |")
        results.setdefault("added_p50", {})[w] = p50 - d50
    say("")
    if "stepjail" in lat and "tinyproxy" in lat:
        # The pair the target compares, round by round: within a round the two are measured
        # a few seconds apart, so a change in the machine's load moves both.
        by_round = {}
        for w in ("stepjail", "tinyproxy"):
            for f in sorted(glob.glob(os.path.join(D, "latency", f"{w}.*.json"))):
                r = os.path.basename(f).split(".")[1]
                by_round.setdefault(r, {})[w] = pct(json.load(open(f))["samples_us"], 50)
        diffs = [v["stepjail"] - v["tinyproxy"] for v in by_round.values() if len(v) == 2]
        below = sum(d <= 0 for d in diffs)
        results["rounds_below"] = (below, len(diffs))
        say(f"stepjail's p50 minus tinyproxy's, round by round: median {statistics.median(diffs):+.0f} µs, "
            f"{min(diffs):+.0f} to {max(diffs):+.0f} µs; stepjail at or below tinyproxy in {below} of "
            f"{len(diffs)} rounds.")
        say("")

# 2. Bulk
bulk = runs("bulk")
if bulk:
    mb = PARAMS["bulk_bytes"] / 1e6
    say(f"Tunnel throughput: one connection downloads {PARAMS['bulk_bytes'] / (1 << 20):.0f} MiB from a "
        f"source server (Python sender, 1 MiB writes; Python receiver, 4 MiB reads), through CONNECT "
        f"unless direct; {PARAMS['bulk_rounds']} rounds, proxies interleaved; median and range.")
    say("")
    say("Rows after tinyproxy carry plain HTTP (192.0.2.10:9080) and TLS (192.0.2.10:9443, server name "
        "`web.bench`) instead of raw bytes; their \"vs direct\" is against the direct row of the same kind.")
    say("")
    say("| path | MB/s (median) | min–max MB/s | Gbit/s | vs direct |")
    say("|---|---:|---:|---:|---:|")
    med = {}
    for w in ordered(bulk):
        rates = [r["bytes"] / r["seconds"] / 1e6 for r in bulk[w]]
        med[w] = statistics.median(rates)
    for w in ordered(bulk):
        rates = [r["bytes"] / r["seconds"] / 1e6 for r in bulk[w]]
        base = med.get("direct-" + w.rsplit("-", 1)[1], med["direct"]) if w.endswith(("-http", "-tls")) else med["direct"]
        say(f"| {LABEL[w]} | {med[w]:.0f} | {min(rates):.0f}–{max(rates):.0f} | {med[w] * 8 / 1000:.1f} "
            f"| {med[w] / base:.2f}x |")
    results["bulk"] = med
    say("")

# 3. wrk
wrk = {}
for f in sorted(glob.glob(os.path.join(D, "wrk", "*.txt"))):
    who = os.path.basename(f).split(".")[0]
    t = open(f).read()
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", t, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", t, re.M)
    non2 = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    wrk[who] = {
        "rps": float(m.group(1)) if m else float("nan"),
        "p50": float(p50.group(1)) * unit[p50.group(2)] if p50 else float("nan"),
        "p99": float(p99.group(1)) * unit[p99.group(2)] if p99 else float("nan"),
        "non2xx": int(non2.group(1)) if non2 else 0,
        "sockerr": sum(int(x) for x in sock.groups()) if sock else 0,
    }
if wrk:
    say(f"Plain-HTTP forwarding: `wrk -t1 -c{PARAMS['wrk_conns']} -d{PARAMS['wrk_secs']}s --latency`, keep-alive, "
        f"1 KiB static file from nginx at 192.0.2.10:8080; through a proxy wrk sends absolute-form requests "
        f"(`bench/proxy_wrk.lua`). Socket errors are mostly the proxy closing the connection after a "
        f"response (wrk then reconnects).")
    say("")
    say("| path | requests/s | latency p50 (ms) | p99 (ms) | non-2xx | socket errors | vs direct |")
    say("|---|---:|---:|---:|---:|---:|---:|")
    for w in ordered(wrk):
        r = wrk[w]
        say(f"| {LABEL[w]} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['non2xx']} | {r['sockerr']} "
            f"| {r['rps'] / wrk['direct']['rps']:.2f}x |")
    results["rps"] = {w: r["rps"] for w, r in wrk.items()}
    say("")

# 4. DNS
dns = runs("dns")
if dns:
    nr = PARAMS.get("dns_rounds", 1)
    say(f"DNS: {nr} rounds of {PARAMS['dns_n']} sequential UDP A queries for `web.bench` (one outstanding "
        f"at a time, after 50 unmeasured ones), the stub and the captured path swapping places every other "
        f"round; the upstream is a Python DNS server on 192.0.2.53. queries/s is the median of the rounds' "
        f"rates; p50 and p99 pool every round.")
    say("")
    say("| path | queries/s (median of rounds) | per round, min–max | p50 (µs) | p99 (µs) |")
    say("|---|---:|---:|---:|---:|")
    dl = {
        "direct": "direct to the upstream (192.0.2.53)",
        "stepjail": "stepjail DNS stub (127.0.0.53, inside the sandbox)",
        "stepjail-tun": "stepjail, query sent to 192.0.2.53 from inside the sandbox (captured: nf_tables DNAT to the stub)",
        "direct-1cpu": "direct, client and upstream both on CPU 0 (not a target)",
        "stepjail-1cpu": "stepjail DNS stub, client and stepjail both on CPU 0 (not a target)",
    }
    qps = {}
    for w in [x for x in ("direct", "stepjail", "stepjail-tun", "direct-1cpu", "stepjail-1cpu") if x in dns]:
        rates = [len(r["samples_us"]) / (sum(r["samples_us"]) / 1e6) for r in dns[w]]
        pooled = [x for r in dns[w] for x in r["samples_us"]]
        qps[w] = statistics.median(rates)
        say(f"| {dl[w]} | {qps[w]:.0f} | {min(rates):.0f}–{max(rates):.0f} | {pct(pooled, 50):.0f} "
            f"| {pct(pooled, 99):.0f} |")
    if "stepjail" in dns and "stepjail-tun" in dns:
        per = [len(a["samples_us"]) / sum(a["samples_us"]) >= len(b["samples_us"]) / sum(b["samples_us"])
               for a, b in zip(dns["stepjail"], dns["stepjail-tun"])]
        results["dns"] = (qps["stepjail"], qps["stepjail-tun"], sum(per), len(per))
        say("")
        say(f"The stub at or above the captured path in {sum(per)} of {len(per)} rounds.")
    if "direct-1cpu" in dns:
        say("")
        say("The last two rows pin every process of the query to CPU 0 (`taskset`), after the rounds "
            "above: a sequential query is two wake-ups, and across two CPUs each can be an idle CPU's "
            "wake-up, which on a VM is an exit to the hypervisor; on one CPU it is a context switch. "
            "They show what each end costs without that. Across CPUs the stub keeps polling its socket "
            "for 50 µs after each answer while queries come back to back, so only the client's wake-up "
            "is left; pinned to one CPU it does not poll (docs/network.md).")
    say("")

# 5. Memory
mem = runs("mem")
if mem:
    n = PARAMS["hold_n"]
    say(f"Memory: VmRSS from /proc/PID/status, idle (sandbox up, no connection) and holding {n} open "
        f"CONNECT tunnels to the echo server (each carried one echoed byte).")
    say("")
    say(f"| process | idle (MiB) | {n} tunnels (MiB) | per tunnel (KiB) | time to open {n} (s) |")
    say("|---|---:|---:|---:|---:|")
    ml = {
        "stepjail": "stepjail supervisor (proxy)",
        "squid": "squid (-N)",
        "tinyproxy": "tinyproxy (threads)",
    }
    for w in [x for x in ("stepjail", "squid", "tinyproxy") if x in mem]:
        m = mem[w][0]
        idle = m["idle_kib"]
        per = (m["held_kib"] - idle) / m["tunnels"] if idle is not None and m["tunnels"] else float("nan")
        procs = m.get("processes", 1)
        name = ml[w] + (f", {procs} processes summed" if procs > 1 else "")
        say(f"| {name} | {idle / 1024:.1f} | {m['held_kib'] / 1024:.1f} | {per:.1f} | {m['seconds_to_open']:.2f} |")
    say("")

# 6. Start-up: rounds of hyperfine (startup-R.json), the commands in a rotated order each round.
rounds = sorted(glob.glob(os.path.join(D, "startup-*.json")),
                key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
if rounds:
    per = [{r["command"]: r for r in json.load(open(f))["results"]} for f in rounds]
    names = ["bwrap --unshare-all true", "stepjail run -- true", "stepjail run --profile bench -- true"]
    pooled = {n: [t for rd in per for t in rd[n]["times"]] for n in names}
    ratio = {n: [rd[n]["median"] / rd[names[0]]["median"] for rd in per] for n in names}
    say(f"Start-up: {len(rounds)} rounds of `hyperfine -N --warmup {PARAMS['hf_warmup']} --runs "
        f"{PARAMS['hf_runs'] // PARAMS['hf_rounds']}`, the three commands in a rotated order each round, "
        f"run inside the benchmark namespace, as root. vs bwrap: the median of the rounds' ratios of medians.")
    say("")
    say("| command | mean (ms) | stddev (ms) | median (ms) | vs bwrap | ratio in each round |")
    say("|---|---:|---:|---:|---:|---|")
    for n in names:
        ts = pooled[n]
        say(f"| `{n}` | {statistics.mean(ts) * 1000:.2f} | {statistics.stdev(ts) * 1000:.2f} "
            f"| {statistics.median(ts) * 1000:.2f} | {statistics.median(ratio[n]):.2f}x "
            f"| {', '.join(f'{x:.2f}' for x in ratio[n])} |")
    results["startup_ratio"] = statistics.median(ratio[names[2]])
    say("")

# Targets (from the proxy issue), stepjail's explicit proxy against the anchors of this run.
targets_at = len(lines)
say("Targets (stepjail's explicit proxy; ratios from this run only):")
say("")
say("| target | measured | met? |")
say("|---|---|---|")


def row(name, value, ok):
    say(f"| {name} | {value} | {'**yes**' if ok else '**no**'} |")


if "bulk" in results:
    b = results["bulk"]
    row("tunnel throughput ≥ 0.8× direct", f"{b['stepjail'] / b['direct']:.2f}× direct "
        f"({b['stepjail']:.0f} vs {b['direct']:.0f} MB/s)", b["stepjail"] >= 0.8 * b["direct"])
    row("tunnel throughput ≥ squid", f"{b['stepjail'] / b['squid']:.2f}× squid "
        f"({b['stepjail']:.0f} vs {b['squid']:.0f} MB/s)", b["stepjail"] >= b["squid"])
if "added_p50" in results:
    a = results["added_p50"]
    below, n = results.get("rounds_below", (0, 0))
    row("added CONNECT p50 ≤ tinyproxy's", f"{a['stepjail']:+.0f} µs vs tinyproxy {a['tinyproxy']:+.0f} µs "
        f"(at or below in {below} of {n} rounds)", a["stepjail"] <= a["tinyproxy"])
if "rps" in results:
    r = results["rps"]
    row("forward requests/s ≥ 1.5× squid", f"{r['stepjail'] / r['squid']:.2f}× squid "
        f"({r['stepjail']:.0f} vs {r['squid']:.0f} rps)", r["stepjail"] >= 1.5 * r["squid"])
if "bulk" in results and "stepjail-tun-tls" in results["bulk"]:
    b = results["bulk"]
    row("captured TLS ≥ 0.8× the CONNECT tunnel carrying TLS", f"{b['stepjail-tun-tls'] / b['stepjail-tls']:.2f}× "
        f"({b['stepjail-tun-tls']:.0f} vs {b['stepjail-tls']:.0f} MB/s)", b["stepjail-tun-tls"] >= 0.8 * b["stepjail-tls"])
    row("captured plain HTTP ≥ 0.8× the CONNECT tunnel (raw bytes)", f"{b['stepjail-tun-http'] / b['stepjail']:.2f}× "
        f"({b['stepjail-tun-http']:.0f} vs {b['stepjail']:.0f} MB/s)", b["stepjail-tun-http"] >= 0.8 * b["stepjail"])
    row("captured plain HTTP ≥ 0.8× plain HTTP through the CONNECT tunnel",
        f"{b['stepjail-tun-http'] / b['stepjail-http']:.2f}× ({b['stepjail-tun-http']:.0f} vs "
        f"{b['stepjail-http']:.0f} MB/s)", b["stepjail-tun-http"] >= 0.8 * b["stepjail-http"])
if "added_p50" in results and "stepjail-tun" in results["added_p50"]:
    a = results["added_p50"]
    row("captured set-up p50 ≤ CONNECT p50 + 50 µs", f"captured {a['stepjail-tun']:+.0f} µs vs CONNECT "
        f"{a['stepjail']:+.0f} µs over direct", a["stepjail-tun"] <= a["stepjail"] + 50)
if "dns" in results:
    stub, captured, above, n = results["dns"]
    row("DNS stub ≥ 20,000 queries/s", f"{stub:.0f} queries/s", stub >= 20000)
    row("DNS stub ≥ the captured-query rate", f"{stub:.0f} vs {captured:.0f} queries/s "
        f"(at or above in {above} of {n} rounds)", stub >= captured)
if "startup_ratio" in results:
    row("start-up with networking ≤ 1.3× bwrap --unshare-all", f"{results['startup_ratio']:.2f}× bwrap",
        results["startup_ratio"] <= 1.3)

if len(lines) == targets_at + 4:
    # No section with a target ran (bench/proxy.sh --only dns, say): no empty table.
    del lines[targets_at:]
print("\n".join(lines).rstrip("\n"))
