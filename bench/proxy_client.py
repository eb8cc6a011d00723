#!/usr/bin/env python3
"""Load clients for bench/proxy.sh. Each prints one JSON object on stdout.

  latency PROXY HOST:PORT N WARMUP   N fresh connections, one after another: TCP connect (to the
                                     proxy, or to HOST:PORT when PROXY is "direct"), CONNECT
                                     HOST:PORT and wait for 200, send one byte, read its echo,
                                     close. Prints each connection's time in microseconds.
  bulk PROXY HOST:PORT BYTES [KIND]  one connection (tunnelled unless direct) to the bulk source:
                                     ask for BYTES, read them all. Prints seconds. KIND: raw
                                     (default: a line "<bytes>"), http (`GET /<bytes>` with
                                     Host web.bench:PORT), tls (TLS with server name web.bench,
                                     certificate not checked, then as raw).
  dns SERVER NAME N                  N sequential UDP A queries for NAME to SERVER:53; prints
                                     each query's time in microseconds.
  hold PROXY HOST:PORT N DIR         writes DIR/idle, waits for DIR/go, opens N tunnels (each
                                     carrying one echoed byte), writes DIR/ready, waits for
                                     DIR/release, closes them.

PROXY is "direct" or ADDR:PORT of an HTTP proxy (CONNECT).
"""

import json
import os
import resource
import socket
import ssl
import struct
import sys
import time


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        part = s.recv(4096)
        if not part:
            raise OSError(f"proxy closed the connection after {buf!r}")
        buf += part
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def open_conn(proxy, target):
    """A connected socket to target, through proxy's CONNECT unless proxy is direct."""
    if proxy == "direct":
        s = socket.create_connection(addr(target))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s, b""
    s = socket.create_connection(addr(proxy))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head, rest = read_head(s)
    status = head.split(b"\r\n", 1)[0]
    if b" 200" not in status:
        raise OSError(f"CONNECT {target} via {proxy}: {status.decode(errors='replace')}")
    return s, rest


def echo_once(s, rest):
    # Not 0x16: a proxy that peeks for a TLS ClientHello sees at once that this is not TLS.
    s.sendall(b"x")
    got = rest
    while not got:
        got = s.recv(16)
        if not got:
            raise OSError("echo server closed the connection")


def latency(proxy, target, n, warmup):
    out = []
    for i in range(n + warmup):
        t0 = time.perf_counter_ns()
        s, rest = open_conn(proxy, target)
        echo_once(s, rest)
        t1 = time.perf_counter_ns()
        s.close()
        if i >= warmup:
            out.append((t1 - t0) / 1000)
    return {"samples_us": out}


def bulk(proxy, target, nbytes, kind="raw"):
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    t0 = time.perf_counter()
    s, rest = open_conn(proxy, target)
    if kind == "tls":
        assert not rest
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="web.bench")
    if kind == "http":
        port = addr(target)[1]
        host = "web.bench" if port == 80 else f"web.bench:{port}"
        s.sendall(f"GET /{nbytes} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head, rest = read_head_from(s, rest)
        status = head.split(b"\r\n", 1)[0]
        if b" 200" not in status:
            raise OSError(f"bulk http: {status!r}")
    else:
        s.sendall(f"{nbytes}\n".encode())
    got = len(rest)
    while got < nbytes:
        k = s.recv_into(view)
        if k == 0:
            break
        got += k
    t1 = time.perf_counter()
    s.close()
    if got != nbytes:
        raise OSError(f"bulk: got {got} of {nbytes} bytes")
    return {"seconds": t1 - t0, "bytes": got}


def read_head_from(s, buf):
    while b"\r\n\r\n" not in buf:
        part = s.recv(4096)
        if not part:
            raise OSError("closed before the end of the head")
        buf += part
    return buf.split(b"\r\n\r\n", 1)


def dns(server, name, n):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((server, 53))
    s.settimeout(2)
    out = []
    for i in range(n + 50):
        qid = i & 0xFFFF
        msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)
        t0 = time.perf_counter_ns()
        s.send(msg)
        while True:
            resp = s.recv(2048)
            if struct.unpack("!H", resp[:2])[0] == qid:
                break
        t1 = time.perf_counter_ns()
        rcode = resp[3] & 0xF
        ancount = struct.unpack("!H", resp[6:8])[0]
        if rcode != 0 or ancount == 0:
            raise OSError(f"dns: {name} answered rcode {rcode}, {ancount} answers")
        if i >= 50:
            out.append((t1 - t0) / 1000)
    return {"samples_us": out}


def wait_for(path, timeout=120):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise OSError(f"timed out waiting for {path}")
        time.sleep(0.02)


def hold(proxy, target, n, d):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
    open(os.path.join(d, "idle"), "w").close()
    wait_for(os.path.join(d, "go"))
    conns = []
    t0 = time.perf_counter()
    for _ in range(n):
        s, rest = open_conn(proxy, target)
        echo_once(s, rest)
        conns.append(s)
    t1 = time.perf_counter()
    open(os.path.join(d, "ready"), "w").close()
    wait_for(os.path.join(d, "release"))
    for s in conns:
        s.close()
    return {"open": len(conns), "seconds_to_open": t1 - t0}


def main(argv):
    cmd = argv[1]
    if cmd == "latency":
        r = latency(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif cmd == "bulk":
        r = bulk(argv[2], argv[3], int(argv[4]), argv[5] if len(argv) > 5 else "raw")
    elif cmd == "dns":
        r = dns(argv[2], argv[3], int(argv[4]))
    elif cmd == "hold":
        r = hold(argv[2], argv[3], int(argv[4]), argv[5])
    else:
        sys.exit(f"unknown command {cmd}")
    json.dump(r, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
