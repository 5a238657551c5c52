#!/bin/sh
# Captures FRR 8.4's real OPEN and UPDATE bytes into frr-8.4-*.hex (run as root).
# FRR (AS 65001, router-id 198.19.0.1) runs in one network namespace and peers with
# capture-frr.py (AS 4200000001) listening on 198.18.1.1:179 in another.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
p="cdc$$"
frr_ns="${p}f" spk_ns="${p}s"
work=$(mktemp -d)
cleanup() {
    for f in "$work"/run/bgpd.pid "$work"/run/zebra.pid; do
        [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    ip netns del "$frr_ns" 2>/dev/null || true
    ip netns del "$spk_ns" 2>/dev/null || true
    rm -rf "/var/run/frr/$frr_ns" "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$frr_ns"
ip netns add "$spk_ns"
ip link add "${p}a" type veth peer name "${p}b"
ip link set "${p}a" netns "$spk_ns"
ip link set "${p}b" netns "$frr_ns"
ip -n "$spk_ns" addr add 198.18.1.1/30 dev "${p}a"
ip -n "$frr_ns" addr add 198.18.1.2/30 dev "${p}b"
for ns in "$spk_ns" "$frr_ns"; do
    ip -n "$ns" link set lo up
done
ip -n "$spk_ns" link set "${p}a" up
ip -n "$frr_ns" link set "${p}b" up

mkdir -p "$work/run" "/var/run/frr/$frr_ns"
chown frr:frr "$work/run" "/var/run/frr/$frr_ns"
cat > "$work/frr.conf" <<CONF
frr defaults datacenter
hostname tor1
domainname lab.example
router bgp 65001
 bgp router-id 198.19.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 198.18.1.1 remote-as 4200000001
 neighbor 198.18.1.1 timers 1 3
 address-family ipv4 unicast
  network 198.18.99.0/24
  neighbor 198.18.1.1 activate
  neighbor 198.18.1.1 route-map SET-COMMUNITIES out
 exit-address-family
route-map SET-COMMUNITIES permit 10
 set community 65001:100
 set large-community 65001:1:2
 set metric 10
CONF
chmod 755 "$work"
chmod 644 "$work/frr.conf"

ip netns exec "$spk_ns" python3 "$here/capture-frr.py" 198.18.1.1 "$work/out.txt" 12 &
listener=$!
sleep 0.5
ip netns exec "$frr_ns" /usr/lib/frr/zebra -d -N "$frr_ns" -f "$work/frr.conf" -i "$work/run/zebra.pid"
ip netns exec "$frr_ns" /usr/lib/frr/bgpd -d -N "$frr_ns" -f "$work/frr.conf" -i "$work/run/bgpd.pid"
# Withdraw the network while the listener still records, to capture a withdrawal UPDATE.
sleep 9
vtysh -N "$frr_ns" -c 'configure terminal' -c 'router bgp 65001' \
    -c 'address-family ipv4 unicast' -c 'no network 198.18.99.0/24' >/dev/null 2>&1 || true
wait "$listener"
cat "$work/out.txt"
vtysh -N "$frr_ns" -c 'show bgp neighbors 198.18.1.1' 2>/dev/null | sed -n '1,40p' || true
# One file per interesting message: the first OPEN, the first UPDATE (announcement) and
# the second UPDATE (the withdrawal).
version=$(/usr/lib/frr/bgpd --version | head -n 1)
write_hex() { # name type occurrence description
    hex=$(awk -v t="$2" -v n="$3" '$1 == t { if (++c == n) print $2 }' "$work/out.txt")
    [ -n "$hex" ] || { echo "no $2 #$3 captured" >&2; exit 1; }
    {
        echo "# $4"
        echo "# Captured from $version by tests/data/bgp/capture-frr.sh on $(date -u +%Y-%m-%d):"
        echo "# FRR AS 65001 router-id 198.19.0.1 (hostname tor1, domainname lab.example) peering"
        echo "# with capture-frr.py (AS 4200000001, 198.18.1.1) across two network namespaces."
        echo "$hex"
    } > "$here/$1"
}
write_hex frr-8.4-open.hex OPEN 1 "FRR's OPEN (hold 3, MP IPv4 unicast, route refresh old+new, enhanced RR, 4-octet ASN, extended message, add-path, FQDN, graceful restart, LLGR)."
write_hex frr-8.4-update.hex UPDATE 1 "FRR's UPDATE announcing 198.18.99.0/24 with ORIGIN, AS_PATH (extended length), NEXT_HOP, MED, COMMUNITIES, LARGE_COMMUNITY."
write_hex frr-8.4-withdraw.hex UPDATE 2 "FRR's UPDATE withdrawing 198.18.99.0/24 after 'no network 198.18.99.0/24'."
