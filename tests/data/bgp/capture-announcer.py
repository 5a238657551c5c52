#!/usr/bin/env python3
"""A DB host announcing the service prefixes, for tests/data/bgp/capture-*-addpath.sh.

Usage: capture-announcer.py ADDR ADDR6 ASN SECONDS

Listens on ADDR:179, accepts one connection (the ToR's), answers its OPEN with an OPEN (ASN,
MP IPv4 and IPv6 unicast, 4-octet ASN) and a KEEPALIVE, announces 192.0.2.10/32 (next hop ADDR)
and 2001:db8::10/128 (MP_REACH_NLRI, next hop ADDR6), sends KEEPALIVEs every second, and after
SECONDS closes the connection: the ToR then withdraws this announcer's path.
"""
import ipaddress
import socket
import sys
import time

ADDR, ADDR6, ASN, SECONDS = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])


def frame(msg_type, body):
    return b"\xff" * 16 + (19 + len(body)).to_bytes(2, "big") + bytes([msg_type]) + body


def attribute(flags, code, value):
    return bytes([flags, code, len(value)]) + value


def our_open():
    caps = [bytes([1, 4, 0, 1, 0, 1]), bytes([1, 4, 0, 2, 0, 1])]
    caps.append(bytes([65, 4]) + ASN.to_bytes(4, "big"))
    params = b"".join(bytes([2, len(c)]) + c for c in caps)
    my_as = ASN if ASN < 65536 else 23456
    body = bytes([4]) + my_as.to_bytes(2, "big") + (30).to_bytes(2, "big")
    body += socket.inet_aton(ADDR) + bytes([len(params)]) + params
    return frame(1, body)


def update(attrs, nlri=b""):
    return frame(2, b"\x00\x00" + len(attrs).to_bytes(2, "big") + attrs + nlri)


def announcements():
    common = attribute(0x40, 1, b"\x00") + attribute(0x40, 2, bytes([2, 1]) + ASN.to_bytes(4, "big"))
    v4 = update(common + attribute(0x40, 3, socket.inet_aton(ADDR)), bytes([32, 192, 0, 2, 10]))
    nh6 = ipaddress.IPv6Address(ADDR6).packed
    prefix6 = bytes([128]) + ipaddress.IPv6Address("2001:db8::10").packed
    reach = bytes([0, 2, 1, 16]) + nh6 + b"\x00" + prefix6
    v6 = update(attribute(0x80, 14, reach) + common)
    return v4 + v6


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((ADDR, 179))
srv.listen(1)
srv.settimeout(30)
conn, _ = srv.accept()
conn.settimeout(1.0)
deadline = time.time() + SECONDS
announced = False
while time.time() < deadline:
    try:
        head = read_exact(conn, 19)
        msg = head + read_exact(conn, int.from_bytes(head[16:18], "big") - 19)
    except socket.timeout:
        msg = None
    except EOFError:
        break
    if msg and msg[18] == 1:
        conn.sendall(our_open() + frame(4, b""))
    elif msg and msg[18] == 4 and not announced:
        conn.sendall(announcements())
        announced = True
    conn.sendall(frame(4, b""))
conn.close()
