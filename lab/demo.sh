#!/usr/bin/env bash
# The primaryd lab in one command. As root, on a fresh Debian 12 or Ubuntu machine:
#
#     sudo lab/demo.sh [kill|hang|demote|switchover|isolate|daemon-crash]
#
# Installs the lab's packages if missing (FRR, BIRD 2, MariaDB; Rust with rustup if there is
# no cargo), builds primaryd and the lab runner, brings up lab/primaryd.clab.yml as network
# namespaces (spine1, tor1 on FRR, tor2 on BIRD, db1-db3 with MariaDB and primaryd, app1),
# runs one failover drill (default: kill), prints its timeline and `primaryctl show routes`
# from db1 and db2, and tears the lab down. docs/lab.md explains the output.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:-kill}"

if [ "$(id -u)" -ne 0 ]; then
    echo "lab/demo.sh: the lab builds network namespaces: run it as root (sudo lab/demo.sh)" >&2
    exit 1
fi

# Packages: only what is missing, so a second run starts at once.
need=()
have() { [ -e "$1" ]; }
have /usr/lib/frr/bgpd || need+=(frr)
have /usr/sbin/bird || need+=(bird2)
have /usr/sbin/mariadbd || need+=(mariadb-server)
have /usr/bin/mariadb || need+=(mariadb-client)
have /usr/bin/nsenter || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v ps >/dev/null || need+=(procps)
# The DB hosts refuse the service address with nftables where they are not the primary.
command -v nft >/dev/null || need+=(nftables)
command -v cc >/dev/null || need+=(build-essential)
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
    command -v curl >/dev/null || need+=(curl ca-certificates)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "lab/demo.sh: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Installing mariadb-server does not need its service: the lab starts its own servers.
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "lab/demo.sh: installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi

echo "lab/demo.sh: building (cargo build --release)"
cargo build --release --quiet -p primaryd -p primaryd-lab
target="${CARGO_TARGET_DIR:-target}/release"

# A lab left by an interrupted earlier run goes first; then up, drill, timeline, down.
"$target/primaryd-lab" down >/dev/null 2>&1 || true
exec "$target/primaryd-lab" --bin-dir "$target" demo "$scenario"
