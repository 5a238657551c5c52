#!/bin/sh
# Captures BIRD 2's OPEN and IPv4 UPDATEs (with MED, COMMUNITIES and LARGE_COMMUNITY) into
# bird-2-*.hex (run as root).
# BIRD (AS 65002, router-id 198.19.0.2, 198.18.1.2) runs in one network namespace and peers
# with capture-frr.py (AS 4200000001, 198.18.1.1) listening in another.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
p="cdb$$"
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
ip -n "$spk_ns" addr add 198.18.1.1/30 dev "${p}a"
ip -n "$bird_ns" addr add 198.18.1.2/30 dev "${p}c"
for ns in "$spk_ns" "$bird_ns"; do
    ip -n "$ns" link set lo up
done
ip -n "$spk_ns" link set "${p}a" up
ip -n "$bird_ns" link set "${p}c" up

cat > "$work/bird.conf" <<CONF
router id 198.19.0.2;
protocol device {}
protocol static s4 {
    ipv4;
    route 198.18.98.0/24 blackhole;
}
filter set_attributes {
    bgp_med = 20;
    bgp_community.add((65002, 100));
    bgp_large_community.add((65002, 1, 2));
    bgp_large_community.add((4200000001, 3, 4));
    accept;
}
protocol bgp tor {
    local 198.18.1.2 as 65002;
    neighbor 198.18.1.1 as 4200000001;
    hold time 3;
    connect retry time 1;
    ipv4 {
        import none;
        export filter set_attributes;
    };
}
CONF

ip netns exec "$spk_ns" python3 "$here/capture-frr.py" 198.18.1.1 "$work/out.txt" 8 &
listener=$!
sleep 0.5
ip netns exec "$bird_ns" bird -c "$work/bird.conf" -s "$work/bird.ctl" -P "$work/bird.pid"
# Withdraw the route while the listener still records.
sleep 5
birdc -s "$work/bird.ctl" disable s4 >/dev/null 2>&1 || true
wait "$listener"
cat "$work/out.txt"
version=$(bird --version 2>&1 | head -n 1)
write_hex() { # name type occurrence description
    hex=$(awk -v t="$2" -v n="$3" '$1 == t { if (++c == n) print $2 }' "$work/out.txt")
    [ -n "$hex" ] || { echo "no $2 #$3 captured" >&2; exit 1; }
    {
        echo "# $4"
        echo "# Captured from $version by tests/data/bgp/capture-bird.sh on $(date -u +%Y-%m-%d):"
        echo "# BIRD AS 65002 router-id 198.19.0.2 peering with capture-frr.py (AS 4200000001,"
        echo "# 198.18.1.1) across two network namespaces."
        echo "$hex"
    } > "$here/$1"
}
write_hex bird-2-open.hex OPEN 1 "BIRD's OPEN."
write_hex bird-2-update.hex UPDATE 1 "BIRD's UPDATE announcing 198.18.98.0/24 with ORIGIN, AS_PATH, NEXT_HOP, MED 20, COMMUNITIES 65002:100, LARGE_COMMUNITY 65002:1:2 and 4200000001:3:4."
write_hex bird-2-withdraw.hex UPDATE 3 "BIRD's UPDATE withdrawing 198.18.98.0/24 after 'disable s4' (UPDATE 2 is its End-of-RIB)."
