#!/bin/sh
# ExaBGP in place of primaryd on a lab DB host, for the benchmark's side-by-side runs
# (`primaryd-lab bench --speaker exabgp-default|exabgp-fast`; docs/benchmarks.md). lab-db-start
# execs this when LAB_SPEAKER=exabgp, after MariaDB answers. The runner binds the generated
# /etc/exabgp/exabgp.conf (the host's BGP session to its ToR, one `process` running
# exabgp-healthcheck) and /etc/exabgp/healthcheck.conf (its options and the check command).
set -eu
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The check command runs as ExaBGP's user (ExaBGP drops to `exabgp`, and so do the processes it
# starts) with the same check user and password as primaryd, from a client option file only
# that user's group can read.
umask 027
printf '[client]\nuser=primaryd\npassword=%s\nsocket=/run/mysqld/mysqld.sock\n' \
    "$(head -n 1 /etc/primaryd/mysql.pass)" >/etc/exabgp/check.cnf
chgrp exabgp /etc/exabgp/check.cnf
umask 022
echo "lab-exabgp-start: starting $(command -v exabgp) /etc/exabgp/exabgp.conf"
exec exabgp /etc/exabgp/exabgp.conf
