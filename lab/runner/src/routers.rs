//! The routers as the lab sees them: their BGP sessions, where their kernel routes to the
//! service lead, and the drills' `Fabric` (every router, every service prefix).

use anyhow::{bail, Result};
use serde_json::Value;

use crate::lab::{Lab, SERVICE_PREFIX};
use crate::routes;
use crate::speaker;
use crate::topo::Role;
use crate::util::ip;

impl Lab {
    /// The prefixes of the service the DB hosts announce: as `up` recorded them for a lab
    /// that is up, else as the topology's node files set them up.
    pub fn service_prefixes(&self) -> Vec<String> {
        self.state()
            .map(|s| s.service_prefixes)
            .filter(|p| !p.is_empty())
            .or_else(|| speaker::announced_prefixes(&self.topo).ok())
            .unwrap_or_else(|| vec![SERVICE_PREFIX.to_string()])
    }

    /// The kernel's route to a service prefix at a router: (next node, the route line).
    pub fn service_route(&self, router: &str, prefix: &str) -> Option<(String, String)> {
        // `ip route show` lists IPv4 unless told otherwise, even for an IPv6 prefix.
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        let out = ip(&["-n", &self.netns(router), family, "route", "show", prefix]).ok()?;
        let line = out.lines().next()?.trim().to_string();
        let next = routes::next_node(&self.topo, router, &line)?;
        Some((next, line))
    }

    /// Follows the routers' kernel routes to `prefix` from `router` to the host that gets the
    /// packets.
    pub fn route_leads_to(&self, router: &str, prefix: &str) -> Option<String> {
        let mut at = router.to_string();
        for _ in 0..8 {
            let (next, _) = self.service_route(&at, prefix)?;
            match self.topo.node(&next)?.role {
                Role::Frr | Role::Bird => at = next,
                _ => return Some(next),
            }
        }
        None
    }

    /// (peer, state) of every BGP session of a router.
    pub fn bgp_sessions(&self, router: &str) -> Result<Vec<(String, String)>> {
        match self.topo.node(router).map(|n| n.role) {
            Some(Role::Frr) => {
                let out = self.node_run(
                    router,
                    &["timeout", "5", "vtysh", "-c", "show bgp summary json"],
                )?;
                let v: Value = serde_json::from_str(&out)?;
                let peers = v["ipv4Unicast"]["peers"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                Ok(peers
                    .into_iter()
                    .map(|(p, o)| (p, o["state"].as_str().unwrap_or("?").to_string()))
                    .collect())
            }
            Some(Role::Bird) => {
                let out = self.node_run(router, &["timeout", "5", "birdc", "show", "protocols"])?;
                Ok(out
                    .lines()
                    .filter(|l| l.split_whitespace().nth(1) == Some("BGP"))
                    .map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        let state = if f.get(3) == Some(&"up") {
                            f.get(5).unwrap_or(&"up").to_string()
                        } else {
                            f.get(5..).map(|x| x.join(" ")).unwrap_or_default()
                        };
                        (f[0].to_string(), state)
                    })
                    .collect())
            }
            _ => bail!("{router} is not a router"),
        }
    }
}

/// The routers and the service prefixes the DB hosts announce: where the drill looks for the
/// route (every prefix; the timeline follows SERVICE_PREFIX alone).
pub(crate) struct Fabric {
    pub routers: Vec<String>,
    pub prefixes: Vec<String>,
}

impl Fabric {
    /// The lab's routers and the service prefixes its DB hosts announce.
    pub fn of(lab: &Lab) -> Fabric {
        Fabric {
            routers: router_names(lab),
            prefixes: lab.service_prefixes(),
        }
    }

    /// (router, prefix, the host the route leads to) for every router and prefix.
    pub fn leads(&self, lab: &Lab) -> Vec<(String, String, Option<String>)> {
        let mut v = Vec::new();
        for r in &self.routers {
            for p in &self.prefixes {
                v.push((
                    r.clone(),
                    p.clone(),
                    crate::primaryroute::leads_to(lab, r, p),
                ));
            }
        }
        v
    }

    pub fn all_lead_to(&self, lab: &Lab, node: &str) -> bool {
        self.routers.iter().all(|r| {
            self.prefixes
                .iter()
                .all(|p| crate::primaryroute::leads_to(lab, r, p).as_deref() == Some(node))
        })
    }

    pub fn none_leads_to(&self, lab: &Lab, node: &str) -> bool {
        self.routers.iter().all(|r| {
            self.prefixes
                .iter()
                .all(|p| crate::primaryroute::leads_to(lab, r, p).as_deref() != Some(node))
        })
    }
}

pub(crate) fn db_names(lab: &Lab) -> Vec<String> {
    lab.topo
        .with_role(Role::Db)
        .map(|n| n.name.clone())
        .collect()
}

pub(crate) fn router_names(lab: &Lab) -> Vec<String> {
    lab.topo
        .nodes
        .iter()
        .filter(|n| n.role.is_router())
        .map(|n| n.name.clone())
        .collect()
}
