#!/bin/sh
# Starts FRR on a lab router: zebra and the daemons enabled in /etc/frr/daemons, then loads
# /etc/frr/frr.conf into them with `vtysh -b` (as FRR's own init does), and stays in the
# foreground while bgpd runs, as a container's main process must. The same script runs in a
# containerlab container (FRR image) and in a node of the namespace runner.
set -eu
mkdir -p /var/run/frr /var/log/frr
chown frr:frr /var/run/frr /var/log/frr
daemons=zebra
for d in staticd bgpd bfdd; do
    if grep -q "^$d=yes" /etc/frr/daemons; then daemons="$daemons $d"; fi
done
for d in $daemons; do
    /usr/lib/frr/$d -d -F datacenter -A 127.0.0.1 -f /dev/null -i /var/run/frr/$d.pid
    i=0
    until [ -S /var/run/frr/$d.vty ]; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then echo "lab-frr-start: $d did not start" >&2; exit 1; fi
        sleep 0.1
    done
done
vtysh -b
echo "lab-frr-start: $daemons running, /etc/frr/frr.conf loaded"
while kill -0 "$(cat /var/run/frr/bgpd.pid)" 2>/dev/null; do sleep 1; done
echo "lab-frr-start: bgpd exited" >&2
exit 1
