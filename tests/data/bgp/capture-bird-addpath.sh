#!/bin/sh
# Captures BIRD 2's UPDATEs to a peer with 'add paths tx' for IPv4 and IPv6 unicast into
# bird-2-addpath-*.hex (run as root): two paths for the same prefixes, their withdrawals, and
# BIRD's End-of-RIB markers. The same setup as capture-frr-addpath.sh with BIRD as the ToR:
# BIRD (AS 65002, router-id 198.19.0.2, 198.18.1.2, 2001:db8:1::2) in one network namespace;
# in another, on the same link, capture-frr.py (AS 4200000001, 198.18.1.1, ADD-PATH receive,
# graceful restart) records what BIRD sends it, and two capture-announcer.py DB hosts (AS
# 4200000011 at 198.18.1.3, AS 4200000012 at 198.18.1.4) announce 192.0.2.10/32 and
# 2001:db8::10/128, then hang up one after the other (8 s, 12 s).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
p="cdB$$"
bird_ns="${p}b" spk_ns="${p}s"
work=$(mktemp -d)
cleanup() {
    [ -s "$work/bird.pid" ] && kill "$(cat "$work/bird.pid")" 2>/dev/null || true
    ip netns del "$bird_ns" 2>/dev/null || true
    ip netns del "$spk_ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$bird_ns"
ip netns add "$spk_ns"
ip link add "${p}a" type veth peer name "${p}c"
ip link set "${p}a" netns "$spk_ns"
ip link set "${p}c" netns "$bird_ns"
# Fixed link-local addresses instead of EUI-64 ones, so the capture is reproducible.
ip netns exec "$spk_ns" sysctl -qw "net.ipv6.conf.${p}a.addr_gen_mode=1"
ip netns exec "$bird_ns" sysctl -qw "net.ipv6.conf.${p}c.addr_gen_mode=1"
ip -n "$spk_ns" addr add fe80::1/64 dev "${p}a" nodad
ip -n "$bird_ns" addr add fe80::2/64 dev "${p}c" nodad
for a in 1 3 4; do
    ip -n "$spk_ns" addr add "198.18.1.$a/29" dev "${p}a"
    ip -n "$spk_ns" addr add "2001:db8:1::$a/64" dev "${p}a" nodad
done
ip -n "$bird_ns" addr add 198.18.1.2/29 dev "${p}c"
ip -n "$bird_ns" addr add 2001:db8:1::2/64 dev "${p}c" nodad
for ns in "$spk_ns" "$bird_ns"; do
    ip -n "$ns" link set lo up
done
ip -n "$spk_ns" link set "${p}a" up
ip -n "$bird_ns" link set "${p}c" up

cat > "$work/bird.conf" <<CONF
router id 198.19.0.2;
protocol device {}
protocol direct { ipv4; ipv6; interface "${p}c"; }
template bgp host {
    local 198.18.1.2 as 65002;
    connect retry time 1;
    ipv4 { import all; export none; };
    ipv6 { import all; export none; };
}
protocol bgp db1 from host { neighbor 198.18.1.3 as 4200000011; }
protocol bgp db2 from host { neighbor 198.18.1.4 as 4200000012; }
protocol bgp listener {
    local 198.18.1.2 as 65002;
    neighbor 198.18.1.1 as 4200000001;
    hold time 3;
    connect retry time 1;
    ipv4 { import none; export where proto = "db1" || proto = "db2"; add paths tx; };
    ipv6 { import none; export where proto = "db1" || proto = "db2"; add paths tx; };
}
CONF

ip netns exec "$spk_ns" python3 "$here/capture-frr.py" 198.18.1.1 "$work/out.txt" 20 ipv4,ipv6 addpath,gr &
listener=$!
ip netns exec "$spk_ns" python3 "$here/capture-announcer.py" 198.18.1.3 2001:db8:1::3 4200000011 8 &
ip netns exec "$spk_ns" python3 "$here/capture-announcer.py" 198.18.1.4 2001:db8:1::4 4200000012 12 &
sleep 0.5
ip netns exec "$bird_ns" bird -c "$work/bird.conf" -s "$work/bird.ctl" -P "$work/bird.pid"
sleep 6
birdc -s "$work/bird.ctl" show route all 2>/dev/null | head -40 || true
wait "$listener"
cat "$work/out.txt"
python3 "$here/capture-split.py" "$work/out.txt" "$here" bird-2-addpath \
    "$(bird --version 2>&1 | head -n 1)" capture-bird-addpath.sh \
    "BIRD AS 65002 (198.18.1.2, 2001:db8:1::2, fe80::2) with 'add paths tx' towards
capture-frr.py (AS 4200000001, 198.18.1.1, ADD-PATH receive, graceful restart), two DB hosts
(AS 4200000011 at 198.18.1.3, AS 4200000012 at 198.18.1.4) announcing 192.0.2.10/32 and
2001:db8::10/128, then hanging up after 8 s and 12 s."
