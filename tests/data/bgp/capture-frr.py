#!/usr/bin/env python3
"""Passive BGP peer used to capture FRR's wire bytes (see capture-frr.sh).

Usage: capture-frr.py ADDR OUT [SECONDS [FAMILIES [EXTRAS]]]

Listens on ADDR:179 (IPv4, IPv6, or link-local with a scope such as fe80::1%eth0), accepts
one connection, records the peer's OPEN, answers with an OPEN (AS 4200000001 via AS_TRANS +
4-octet capability, MP capabilities for FAMILIES, a comma-separated list of ipv4 and ipv6,
default ipv4; route refresh; EXTRAS, a comma-separated list: addpath = ADD-PATH receive for
FAMILIES, gr = graceful restart with no families and restart time 0, which asks for End-of-RIB
markers and nothing else) and a KEEPALIVE, then records every message the peer sends for
SECONDS. Each message is written as one hex line, prefixed by its type name, to OUT. Used for
FRR (capture-frr.sh, capture-frr-ipv6.sh) and BIRD (capture-bird.sh).
"""
import socket
import sys
import time

ADDR, OUT = sys.argv[1], sys.argv[2]
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 6.0
FAMILIES = sys.argv[4].split(",") if len(sys.argv) > 4 else ["ipv4"]
EXTRAS = sys.argv[5].split(",") if len(sys.argv) > 5 else []
AFI = {"ipv4": 1, "ipv6": 2}
TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}


def frame(msg_type, body):
    return b"\xff" * 16 + (19 + len(body)).to_bytes(2, "big") + bytes([msg_type]) + body


def our_open():
    caps = [bytes([1, 4, 0, AFI[f], 0, 1]) for f in FAMILIES]
    caps += [bytes([2, 0]), bytes([65, 4]) + (4200000001).to_bytes(4, "big")]
    if "addpath" in EXTRAS:
        tuples = b"".join(bytes([0, AFI[f], 1, 1]) for f in FAMILIES)
        caps.append(bytes([69, len(tuples)]) + tuples)
    if "gr" in EXTRAS:
        caps.append(bytes([64, 2, 0, 0]))
    params = b"".join(bytes([2, len(c)]) + c for c in caps)
    body = bytes([4]) + (23456).to_bytes(2, "big") + (9).to_bytes(2, "big")
    body += socket.inet_aton("198.18.1.1") + bytes([len(params)]) + params
    return frame(1, body)


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


family, _, _, _, sockaddr = socket.getaddrinfo(ADDR, 179, type=socket.SOCK_STREAM)[0]
srv = socket.socket(family, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(sockaddr)
srv.listen(1)
srv.settimeout(30)
conn, peer = srv.accept()
print(f"connection from {peer}", file=sys.stderr)
messages = []
conn.settimeout(1.0)
deadline = None
sent_open = False
while deadline is None or time.time() < deadline:
    try:
        head = read_exact(conn, 19)
    except socket.timeout:
        continue
    except EOFError:
        break
    length = int.from_bytes(head[16:18], "big")
    msg = head + read_exact(conn, length - 19)
    messages.append(msg)
    print(f"got {TYPES.get(msg[18], msg[18])} ({length} bytes)", file=sys.stderr)
    if msg[18] == 1 and not sent_open:
        conn.sendall(our_open() + frame(4, b""))
        sent_open = True
        deadline = time.time() + SECONDS
    elif msg[18] == 4:
        conn.sendall(frame(4, b""))
conn.close()
with open(OUT, "w") as f:
    for msg in messages:
        f.write(f"{TYPES.get(msg[18], msg[18])} {msg.hex()}\n")
