#!/bin/sh
# A lab DB host's main process: MariaDB with /etc/mysql/lab.cnf, the lab's users and schema on
# first start, GTID replication from $LAB_SOURCE when set (a replica), then primaryd in the
# foreground. The same script runs in a containerlab container (lab/Dockerfile's image) and in
# a node of the namespace runner.
set -eu
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
mkdir -p /run/mysqld /var/log/mysql /etc/primaryd
chown mysql:mysql /run/mysqld /var/log/mysql /var/lib/mysql
# primaryd refuses a password file others can read; the bound one has the repository's mode.
install -m 600 /etc/primaryd-lab/mysql.pass /etc/primaryd/mysql.pass

if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --defaults-file=/etc/mysql/lab.cnf --user=mysql \
        --auth-root-authentication-method=socket --skip-test-db >/var/log/mysql/install.log 2>&1
fi
mariadbd --defaults-file=/etc/mysql/lab.cnf &
i=0
until mariadb -e 'SELECT 1' >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 600 ]; then
        echo "lab-db-start: MariaDB did not answer within 60 s" >&2
        tail -n 30 /var/log/mysql/error.log >&2 || true
        exit 1
    fi
    sleep 0.1
done

if [ ! -e /var/lib/mysql/lab-initialized ]; then
    pass=$(head -n 1 /etc/primaryd/mysql.pass)
    # Users are local to each server (not binlogged); the schema is created on the primary
    # only and reaches the replicas through replication.
    mariadb <<SQL
SET sql_log_bin = 0;
CREATE USER 'primaryd'@'localhost' IDENTIFIED BY '$pass';
GRANT SLAVE MONITOR ON *.* TO 'primaryd'@'localhost';
CREATE USER 'repl'@'%' IDENTIFIED BY 'lab-repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE USER 'app'@'%' IDENTIFIED BY 'lab-app';
GRANT SELECT, INSERT, UPDATE, DELETE ON lab.* TO 'app'@'%';
SET sql_log_bin = 1;
SQL
    if [ -z "${LAB_SOURCE:-}" ]; then
        # Binlogged, so it all reaches the replicas: the drills' table, and primaryd's term
        # table (docs/health.md, "the promotion term") with the check user's grant on it (the
        # user exists on every server, so the GRANT applies there too). The term's rows must
        # replicate with the data: a promoted replica's next term is above the old primary's.
        mariadb <<'SQL'
CREATE DATABASE lab;
CREATE TABLE lab.writes (
    run BIGINT NOT NULL,
    k BIGINT NOT NULL,
    server_id INT UNSIGNED NOT NULL,
    host VARCHAR(64) NOT NULL,
    at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (run, k)
);
CREATE DATABASE primaryd;
CREATE TABLE primaryd.term (
    service     VARCHAR(64) NOT NULL,
    term        BIGINT UNSIGNED NOT NULL,
    server_id   INT UNSIGNED NOT NULL,
    promoted_at TIMESTAMP(6) NOT NULL,
    PRIMARY KEY (service, term)
) ENGINE=InnoDB;
GRANT SELECT, INSERT ON primaryd.term TO 'primaryd'@'localhost';
SQL
    else
        mariadb <<SQL
CHANGE MASTER TO MASTER_HOST='$LAB_SOURCE', MASTER_USER='repl', MASTER_PASSWORD='lab-repl',
    MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
START SLAVE;
SQL
    fi
    touch /var/lib/mysql/lab-initialized
fi
# The benchmark runs ExaBGP + exabgp-healthcheck here instead (lab/exabgp/start.sh), and
# starts each host's speaker after a random delay, so that the hosts' check cycles are
# independent of each other (docs/benchmarks.md).
speaker="${LAB_SPEAKER:-primaryd}"
if [ -n "${LAB_START_DELAY_MS:-}" ]; then
    sleep "$(echo "$LAB_START_DELAY_MS" | awk '{ printf "%.3f", $1 / 1000 }')"
fi
echo "lab-db-start: MariaDB up$( [ -n "${LAB_SOURCE:-}" ] && echo ", replicating from $LAB_SOURCE"); starting $speaker"
if [ "$speaker" = exabgp ]; then
    exec /usr/local/sbin/lab-exabgp-start
fi
# LAB_PRIMARYD_LOG_FORMAT: `primaryd-lab up --log-format json` (the drills read both formats).
exec primaryd --config /etc/primaryd/primaryd.toml ${LAB_PRIMARYD_LOG_FORMAT:+--log-format "$LAB_PRIMARYD_LOG_FORMAT"}
