#!/usr/bin/env python3
"""Writes the messages capture-frr.py recorded into one .hex file each, named by kind.

Usage: capture-split.py OUT DIR PREFIX VERSION SCRIPT SETUP

OUT is capture-frr.py's output. Writes DIR/PREFIX-open.hex (the first OPEN) and, for each
UPDATE, DIR/PREFIX-KIND-N.hex with KIND one of ipv4-update, ipv6-update, ipv4-withdraw,
ipv6-withdraw, eor-ipv4, eor-ipv6 and N its arrival order among that kind (End-of-RIB without
N). Each file starts with `#` lines: what it holds, where it comes from (VERSION, SCRIPT,
today's date) and the SETUP text.
"""
import datetime
import sys

OUT, DIR, PREFIX, VERSION, SCRIPT, SETUP = sys.argv[1:7]


def attributes(body):
    wlen = int.from_bytes(body[0:2], "big")
    alen = int.from_bytes(body[2 + wlen:4 + wlen], "big")
    attrs = body[4 + wlen:4 + wlen + alen]
    out = []
    while attrs:
        flags, code = attrs[0], attrs[1]
        if flags & 0x10:
            length, head = int.from_bytes(attrs[2:4], "big"), 4
        else:
            length, head = attrs[2], 3
        out.append((code, attrs[head:head + length]))
        attrs = attrs[head + length:]
    return wlen, out


def kind(body):
    wlen, attrs = attributes(body)
    codes = [c for c, _ in attrs]
    if not body[4 + wlen:] and not attrs and not wlen:
        return "eor-ipv4", "End-of-RIB for IPv4 unicast: an empty UPDATE"
    if wlen:
        return "ipv4-withdraw", "IPv4 withdrawal with path identifiers"
    if codes == [15] and len(attrs[0][1]) == 3:
        return "eor-ipv6", "End-of-RIB for IPv6 unicast: only an empty MP_UNREACH_NLRI"
    if 15 in codes:
        return "ipv6-withdraw", "IPv6 withdrawal (MP_UNREACH_NLRI) with path identifiers"
    if 14 in codes:
        return "ipv6-update", "IPv6 announcement (MP_REACH_NLRI) with path identifiers"
    return "ipv4-update", "IPv4 announcement with path identifiers"


counts = {}
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
opened = False
for line in open(OUT):
    name, hexed = line.split()
    if name == "OPEN" and not opened:
        opened = True
        file, what = f"{PREFIX}-open.hex", "The OPEN"
    elif name == "UPDATE":
        k, what = kind(bytes.fromhex(hexed)[19:])
        counts[k] = counts.get(k, 0) + 1
        suffix = "" if k.startswith("eor") else f"-{counts[k]}"
        file, what = f"{PREFIX}-{k}{suffix}.hex", f"UPDATE: {what} (#{counts[k]} of its kind)"
    else:
        continue
    with open(f"{DIR}/{file}", "w") as f:
        f.write(f"# {what}.\n")
        f.write(f"# Captured from {VERSION} by tests/data/bgp/{SCRIPT} on {date}:\n")
        for setup_line in SETUP.splitlines():
            f.write(f"# {setup_line}\n")
        f.write(hexed + "\n")
    print(file)
