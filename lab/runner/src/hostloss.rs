//! Host loss in the lab: the `host-freeze` drill's fault (every process of the primary's host
//! stopped, its links up: a hung VM, a host stuck in the kernel, primaryd and MariaDB frozen
//! together) and BFD, which is how the ToRs find such a host in a third of a second instead
//! of at the BGP hold timer: the lab's BFD settings, the primaryd-no-bfd variant of the
//! benchmark, and waiting until the routers' BFD sessions are up.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::Value;

use crate::lab::Lab;
use crate::topo::Role;
use crate::util;

/// Where the DB hosts' primaryd config is bound.
const PRIMARYD_TOML: &str = "/etc/primaryd/primaryd.toml";
/// primaryd's BFD keys of a `[[bgp.peer]]`.
const BFD_KEYS: &[&str] = &[
    "bfd",
    "bfd_min_tx_ms",
    "bfd_min_rx_ms",
    "bfd_multiplier",
    "bfd_auth",
    "bfd_auth_key_id",
    "bfd_auth_key_file",
];

fn peers(cfg: &toml::Table) -> Vec<&toml::Table> {
    cfg.get("bgp")
        .and_then(|b| b.get("peer"))
        .and_then(toml::Value::as_array)
        .map(|a| a.iter().filter_map(toml::Value::as_table).collect())
        .unwrap_or_default()
}

/// Takes BFD off every peer of a primaryd config (the hold timer alone finds a dead host).
pub fn without_bfd(cfg: &mut toml::Table) {
    let Some(peers) = cfg
        .get_mut("bgp")
        .and_then(|b| b.get_mut("peer"))
        .and_then(toml::Value::as_array_mut)
    else {
        return;
    };
    for p in peers.iter_mut().filter_map(toml::Value::as_table_mut) {
        for k in BFD_KEYS {
            p.remove(*k);
        }
    }
}

/// ", BFD 100/100 ms x 3" (the first peer with BFD) or ", BFD off", for reports.
pub fn bfd_note(cfg: &toml::Table) -> String {
    let int =
        |p: &toml::Table, k: &str, d: i64| p.get(k).and_then(toml::Value::as_integer).unwrap_or(d);
    match peers(cfg)
        .into_iter()
        .find(|p| p.get("bfd").and_then(toml::Value::as_bool) == Some(true))
    {
        Some(p) => format!(
            ", BFD {}/{} ms x {}",
            int(p, "bfd_min_tx_ms", 100),
            int(p, "bfd_min_rx_ms", 100),
            int(p, "bfd_multiplier", 3)
        ),
        None => ", BFD off (the hold timer alone)".into(),
    }
}

/// Whether the lab's DB hosts run primaryd with BFD, so the routers' BFD sessions must come
/// up (ExaBGP and primaryd-no-bfd leave them down; the routers' BGP runs regardless).
pub fn bfd_expected(lab: &Lab) -> bool {
    lab.topo.with_role(Role::Db).any(|n| {
        n.env.get("LAB_SPEAKER").map(String::as_str) != Some("exabgp")
            && n.binds
                .iter()
                .find(|b| b.target == Path::new(PRIMARYD_TOML))
                .and_then(|b| std::fs::read_to_string(&b.source).ok())
                .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
                .is_some_and(|c| {
                    peers(&c)
                        .iter()
                        .any(|p| p.get("bfd").and_then(toml::Value::as_bool) == Some(true))
                })
    })
}

/// Every BFD session of `router` is up. FRR's must also have their source address: FRR 8.4
/// re-creates a BGP peer's BFD session once the first BGP session is up (the DB host sees
/// it go down, and BGP restarts once about a second later), and the lab has converged only
/// after that.
pub fn router_bfd_up(lab: &Lab, router: &str) -> bool {
    match lab.topo.node(router).map(|n| n.role) {
        Some(Role::Frr) => {
            let argv = ["timeout", "5", "vtysh", "-c", "show bfd peers json"];
            let Ok(out) = lab.node_run(router, &argv) else {
                return false;
            };
            let Ok(Value::Array(peers)) = serde_json::from_str::<Value>(&out) else {
                return false;
            };
            peers
                .iter()
                .all(|p| p["status"] == "up" && p["local"].as_str().is_some_and(|l| !l.is_empty()))
        }
        Some(Role::Bird) => {
            let Ok(out) = lab.node_run(
                router,
                &["timeout", "5", "birdc", "show", "bfd", "sessions"],
            ) else {
                return false;
            };
            // Session lines start with the neighbour's address: IP, interface, state, ...
            out.lines()
                .filter(|l| {
                    l.split_whitespace()
                        .next()
                        .is_some_and(|w| w.parse::<std::net::IpAddr>().is_ok())
                })
                .all(|l| l.split_whitespace().nth(2) == Some("Up"))
        }
        _ => true,
    }
}

/// SIGSTOPs every process of `node` (its links stay up, its kernel still answers). Returns
/// the drill's description of the fault.
pub fn freeze(lab: &Lab, node: &str) -> Result<String> {
    let pids = util::netns_pids(&lab.netns(node));
    if pids.is_empty() {
        bail!("no process runs in {node}");
    }
    let mut names = Vec::new();
    for pid in &pids {
        let name = util::comm(*pid);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGSTOP,
        )?;
        names.push(format!("{name} {pid}"));
    }
    Ok(format!(
        "SIGSTOP every process of {node} ({}), links up",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_config() -> toml::Table {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../db1/primaryd.toml");
        toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_lab_runs_bfd_and_the_variant_takes_it_off() {
        let mut c = lab_config();
        assert_eq!(bfd_note(&c), ", BFD 100/100 ms x 3");
        without_bfd(&mut c);
        assert_eq!(bfd_note(&c), ", BFD off (the hold timer alone)");
        let text = toml::to_string(&c).unwrap();
        assert!(!text.contains("bfd"), "{text}");
        assert!(text.contains("remote_asn"), "{text}");
    }
}
