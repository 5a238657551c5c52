#!/bin/sh
# Captures FRR 8.4's UPDATEs to a peer with 'addpath-tx-all-paths' for IPv4 and IPv6 unicast
# into frr-8.4-addpath-*.hex (run as root): two paths for the same prefixes, their withdrawals,
# and FRR's End-of-RIB markers.
# FRR (AS 65001, router-id 198.19.0.1, 198.18.1.2, 2001:db8:1::2) runs in one network
# namespace. In another, on the same link: capture-frr.py (AS 4200000001, 198.18.1.1; IPv4 and
# IPv6 unicast, ADD-PATH receive for both, graceful restart with restart time 0 so that FRR
# sends End-of-RIB) records what FRR sends it, and two capture-announcer.py DB hosts (AS
# 4200000011 at 198.18.1.3, AS 4200000012 at 198.18.1.4) announce 192.0.2.10/32 and
# 2001:db8::10/128, then hang up one after the other (8 s, 12 s).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
p="cda$$"
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
ip -n "$frr_ns" addr add fe80::2/64 dev "${p}b" nodad
for a in 1 3 4; do
    ip -n "$spk_ns" addr add "198.18.1.$a/29" dev "${p}a"
    ip -n "$spk_ns" addr add "2001:db8:1::$a/64" dev "${p}a" nodad
done
ip -n "$frr_ns" addr add 198.18.1.2/29 dev "${p}b"
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
 neighbor 198.18.1.1 remote-as 4200000001
 neighbor 198.18.1.1 timers 1 3
 neighbor 198.18.1.3 remote-as 4200000011
 neighbor 198.18.1.4 remote-as 4200000012
 address-family ipv4 unicast
  neighbor 198.18.1.1 activate
  neighbor 198.18.1.1 addpath-tx-all-paths
  neighbor 198.18.1.3 activate
  neighbor 198.18.1.4 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor 198.18.1.1 activate
  neighbor 198.18.1.1 addpath-tx-all-paths
  neighbor 198.18.1.3 activate
  neighbor 198.18.1.4 activate
 exit-address-family
CONF
chmod 755 "$work"
chmod 644 "$work/frr.conf"

ip netns exec "$spk_ns" python3 "$here/capture-frr.py" 198.18.1.1 "$work/out.txt" 20 ipv4,ipv6 addpath,gr &
listener=$!
ip netns exec "$spk_ns" python3 "$here/capture-announcer.py" 198.18.1.3 2001:db8:1::3 4200000011 8 &
ip netns exec "$spk_ns" python3 "$here/capture-announcer.py" 198.18.1.4 2001:db8:1::4 4200000012 12 &
sleep 0.5
ip netns exec "$frr_ns" /usr/lib/frr/zebra -d -N "$frr_ns" -f "$work/frr.conf" -i "$work/run/zebra.pid"
ip netns exec "$frr_ns" /usr/lib/frr/bgpd -d -N "$frr_ns" -f "$work/frr.conf" -i "$work/run/bgpd.pid"
sleep 6
vtysh -N "$frr_ns" -c 'show bgp ipv4 unicast 192.0.2.10/32' -c 'show bgp ipv6 unicast 2001:db8::10/128' 2>/dev/null || true
wait "$listener"
cat "$work/out.txt"
# One file per message: the OPEN, then each UPDATE by kind, numbered in arrival order
# (the two announcements of a family may come in either order; the withdrawals follow the
# hang-ups).
python3 "$here/capture-split.py" "$work/out.txt" "$here" frr-8.4-addpath \
    "$(/usr/lib/frr/bgpd --version | head -n 1)" capture-frr-addpath.sh \
    "FRR AS 65001 (198.18.1.2, 2001:db8:1::2, fe80::2) with 'addpath-tx-all-paths' towards
capture-frr.py (AS 4200000001, 198.18.1.1, ADD-PATH receive, graceful restart), two DB hosts
(AS 4200000011 at 198.18.1.3, AS 4200000012 at 198.18.1.4) announcing 192.0.2.10/32 and
2001:db8::10/128, then hanging up after 8 s and 12 s."
