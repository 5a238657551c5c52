#!/bin/sh
# Starts BIRD 2 on a lab router in the foreground (a container's main process), logging to
# stderr, with its control socket where birdc looks by default.
set -eu
mkdir -p /run/bird
exec bird -f -c /etc/bird/bird.conf -s /run/bird/bird.ctl
