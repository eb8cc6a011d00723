#!/usr/bin/env python3
"""Servers for bench/proxy.sh, run inside the benchmark's own network namespace
(`ip netns exec NS python3 bench/proxy_servers.py READY_FILE CERT KEY`). Nothing here talks to any
other machine; every address is a documentation address on the namespace's lo.

  192.0.2.10:9000   echo (asyncio: many idle connections are cheap)
  192.0.2.10:9001   bulk source: reads one line "<bytes>\\n", then sends that many zero bytes
  192.0.2.10:9080   HTTP bulk source: answers `GET /<bytes>` with that many zero bytes
  192.0.2.10:9443   TLS bulk source (certificate CERT, key KEY; CN web.bench): as 9001, inside TLS
  192.0.2.53:53     DNS (UDP): web.bench A -> 192.0.2.10, every other name NXDOMAIN

(The HTTP origin for wrk is nginx, started by proxy.sh.) Writes READY_FILE when all listen.
"""

import asyncio
import socket
import ssl
import struct
import sys
import threading

ZONE = {"web.bench": "192.0.2.10"}
CHUNK = memoryview(bytes(1 << 20))


def dns_answer(msg):
    qid = struct.unpack("!H", msg[:2])[0]
    off, labels = 12, []
    while msg[off] != 0:
        n = msg[off]
        labels.append(msg[off + 1 : off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    off += 1
    qtype = struct.unpack("!H", msg[off : off + 2])[0]
    question = msg[12 : off + 4]
    name = ".".join(labels).lower()
    addr = ZONE.get(name)
    if addr is None:
        return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question
    if qtype != 1:  # known name, no record of that type: NOERROR, no answer
        return struct.pack("!HHHHHH", qid, 0x8180, 1, 0, 0, 0) + question
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(addr)
    return struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + rr


def listen(addr, port, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    if kind == socket.SOCK_STREAM:
        s.listen(256)
    return s


def dns_udp(s):
    while True:
        data, peer = s.recvfrom(2048)
        try:
            s.sendto(dns_answer(data), peer)
        except (IndexError, struct.error):
            pass


def dns_tcp(ls):
    def one(c):
        with c:
            try:
                while True:
                    head = c.recv(2)
                    if len(head) < 2:
                        return
                    n = struct.unpack("!H", head)[0]
                    msg = b""
                    while len(msg) < n:
                        part = c.recv(n - len(msg))
                        if not part:
                            return
                        msg += part
                    resp = dns_answer(msg)
                    c.sendall(struct.pack("!H", len(resp)) + resp)
            except OSError:
                return

    while True:
        c, _ = ls.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def source(ls):
    def one(c):
        with c:
            try:
                line = b""
                while not line.endswith(b"\n"):
                    part = c.recv(64)
                    if not part:
                        return
                    line += part
                left = int(line)
                while left > 0:
                    n = min(left, len(CHUNK))
                    c.sendall(CHUNK[:n])
                    left -= n
                c.shutdown(socket.SHUT_WR)
                c.recv(1)  # wait for the client to close
            except (OSError, ValueError):
                return

    while True:
        c, _ = ls.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def send_zeros(c, left):
    while left > 0:
        n = min(left, len(CHUNK))
        c.sendall(CHUNK[:n])
        left -= n


def http_source(ls):
    def one(c):
        with c:
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    part = c.recv(4096)
                    if not part:
                        return
                    head += part
                left = int(head.split(b" ", 2)[1].lstrip(b"/"))
                c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % left)
                send_zeros(c, left)
                c.shutdown(socket.SHUT_WR)
                c.recv(1)
            except (OSError, ValueError, IndexError):
                return

    while True:
        c, _ = ls.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def tls_source(ls, ctx):
    def one(c):
        try:
            t = ctx.wrap_socket(c, server_side=True)
            with t:
                line = b""
                while not line.endswith(b"\n"):
                    part = t.recv(64)
                    if not part:
                        return
                    line += part
                send_zeros(t, int(line))
                t.recv(1)
        except (OSError, ValueError):
            return

    while True:
        c, _ = ls.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def main(ready, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    for f, args in (
        (dns_udp, (listen("192.0.2.53", 53, socket.SOCK_DGRAM),)),
        (dns_tcp, (listen("192.0.2.53", 53),)),
        (source, (listen("192.0.2.10", 9001),)),
        (http_source, (listen("192.0.2.10", 9080),)),
        (tls_source, (listen("192.0.2.10", 9443), ctx)),
    ):
        threading.Thread(target=f, args=args, daemon=True).start()
    server = await asyncio.start_server(echo, "192.0.2.10", 9000, backlog=4096, reuse_address=True)
    open(ready, "w").close()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
