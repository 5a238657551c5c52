#!/bin/sh
# Captures FRR 8.4's OPEN and IPv6 unicast UPDATEs (MP_REACH_NLRI with a global + link-local
# next hop, then MP_UNREACH_NLRI) into frr-8.4-ipv6-*.hex (run as root).
# FRR (AS 65001, router-id 198.19.0.1) runs in one network namespace and peers over IPv6
# (2001:db8:1::2 -> 2001:db8:1::1) with capture-frr.py (AS 4200000001, IPv6 unicast only)
# listening in another. The peer is on the shared link, so FRR's next hop is its global address
# plus its link-local one fe80::2 (RFC 2545, 32 bytes). A session over link-local addresses
# ('neighbor fe80::1 interface ...') never left Active: FRR 8.4 waits for next-hop tracking to
# resolve the link-local peer, which it did not here.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
p="cd6$$"
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
# Fixed link-local addresses instead of EUI-64 ones, so the capture is reproducible.
ip netns exec "$spk_ns" sysctl -qw "net.ipv6.conf.${p}a.addr_gen_mode=1"
ip netns exec "$frr_ns" sysctl -qw "net.ipv6.conf.${p}b.addr_gen_mode=1"
ip -n "$spk_ns" addr add fe80::1/64 dev "${p}a" nodad
ip -n "$spk_ns" addr add 2001:db8:1::1/64 dev "${p}a" nodad
ip -n "$frr_ns" addr add fe80::2/64 dev "${p}b" nodad
ip -n "$frr_ns" addr add 2001:db8:1::2/64 dev "${p}b" nodad
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
router bgp 65001
 bgp router-id 198.19.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor 2001:db8:1::1 remote-as 4200000001
 neighbor 2001:db8:1::1 update-source 2001:db8:1::2
 neighbor 2001:db8:1::1 timers 1 3
 address-family ipv6 unicast
  network 2001:db8:99::/48
  network 2001:db8:98::1/128
  neighbor 2001:db8:1::1 activate
  neighbor 2001:db8:1::1 route-map SET-ATTRIBUTES out
 exit-address-family
route-map SET-ATTRIBUTES permit 10
 set community 65001:100
 set large-community 65001:1:2
 set metric 10
CONF
chmod 755 "$work"
chmod 644 "$work/frr.conf"

ip netns exec "$spk_ns" python3 "$here/capture-frr.py" 2001:db8:1::1 "$work/out.txt" 12 ipv6 &
listener=$!
sleep 0.5
ip netns exec "$frr_ns" /usr/lib/frr/zebra -d -N "$frr_ns" -f "$work/frr.conf" -i "$work/run/zebra.pid"
ip netns exec "$frr_ns" /usr/lib/frr/bgpd -d -N "$frr_ns" -f "$work/frr.conf" -i "$work/run/bgpd.pid"
# Withdraw the networks while the listener still records, to capture MP_UNREACH_NLRI.
sleep 9
vtysh -N "$frr_ns" -c 'configure terminal' -c 'router bgp 65001' \
    -c 'address-family ipv6 unicast' -c 'no network 2001:db8:99::/48' \
    -c 'no network 2001:db8:98::1/128' >/dev/null 2>&1 || true
wait "$listener"
cat "$work/out.txt"
version=$(/usr/lib/frr/bgpd --version | head -n 1)
write_hex() { # name type occurrence description
    hex=$(awk -v t="$2" -v n="$3" '$1 == t { if (++c == n) print $2 }' "$work/out.txt")
    [ -n "$hex" ] || { echo "no $2 #$3 captured" >&2; exit 1; }
    {
        echo "# $4"
        echo "# Captured from $version by tests/data/bgp/capture-frr-ipv6.sh on $(date -u +%Y-%m-%d):"
        echo "# FRR AS 65001 router-id 198.19.0.1 (2001:db8:1::2, fe80::2) peering with capture-frr.py"
        echo "# (AS 4200000001, 2001:db8:1::1, IPv6 unicast only) across two network namespaces."
        echo "$hex"
    } > "$here/$1"
}
write_hex frr-8.4-ipv6-open.hex OPEN 1 "FRR's OPEN on an IPv6-only session (MP IPv6 unicast, no IPv4 unicast)."
write_hex frr-8.4-ipv6-update.hex UPDATE 1 "FRR's UPDATE announcing 2001:db8:99::/48 and 2001:db8:98::1/128 in MP_REACH_NLRI (next hop 2001:db8:1::2 + fe80::2) with ORIGIN, AS_PATH, MED, COMMUNITIES, LARGE_COMMUNITY."
write_hex frr-8.4-ipv6-withdraw.hex UPDATE 2 "FRR's UPDATE withdrawing the IPv6 networks in MP_UNREACH_NLRI after 'no network'."
