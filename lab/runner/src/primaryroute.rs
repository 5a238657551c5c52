//! Where a router sends the service as a *primary's* route, with fallbacks in the fabric
//! (issue 12, docs/clients.md): a DB host that is not the primary announces a prepended
//! fallback of the prefix (large community `ASN:2:0`) and refuses connections to it. The
//! kernel route cannot tell the two apart: after a withdraw the old primary's ToR usually keeps
//! the same next hop, now through the old host's fallback. So a route counts as leading to a
//! host only while the router's best BGP path is not a fallback (and names that host where the
//! kernel's next node is a DB host); the drills' route checks and the route timeline use this.
//! With no fallback anywhere (fallback = false, ExaBGP) it is the kernel route, as before.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::bgptable::{BgpPath, Hosts, Mark, Reader, Reading};
use crate::lab::Lab;
use crate::topo::{Role, Topology};

/// One observed state of a router's route to the service: the next node, or None (no route).
#[derive(Debug, Clone)]
pub struct RouteChange {
    pub t_ms: f64,
    pub router: String,
    pub next: Option<String>,
    pub line: String,
}

/// One reader per router (by namespace) across calls: a reading then costs a fraction of a
/// millisecond. A reader that fails is dropped and made again at the next call.
static READERS: Mutex<BTreeMap<String, Reader>> = Mutex::new(BTreeMap::new());

/// The router's best path to `prefix`: Ok(None) when it has none, Err when its table cannot
/// be read.
fn best_path(lab: &Lab, router: &str, prefix: &str) -> anyhow::Result<Option<BgpPath>> {
    let ns = lab.netns(router);
    let mut readers = READERS.lock().unwrap();
    let reader = match readers.remove(&ns) {
        Some(r) => r,
        None => Reader::new(lab, router)?,
    };
    let mut reader = reader;
    let raw = reader.read(&[prefix.to_string()])?;
    readers.insert(ns, reader);
    let hosts = Hosts::of(lab);
    Ok(raw.iter().find(|p| p.best).map(|p| hosts.path(p)))
}

/// Whether the route to `dest` through a router whose best path is `best` is a primary's
/// route to it: not a fallback, and the path's announcer is that host when both are known.
fn primary_route(best: Option<&BgpPath>, dest: &str, dest_is_db: bool) -> bool {
    match best {
        Some(p) if p.mark == Mark::Fallback => false,
        Some(p) => !dest_is_db || p.announcer.as_deref().is_none_or(|a| a == dest),
        None => true,
    }
}

/// The DB host `router`'s route to `prefix` leads to as a primary's route (None: no route, or
/// a fallback's). A table that cannot be read leaves the kernel's answer.
pub fn leads_to(lab: &Lab, router: &str, prefix: &str) -> Option<String> {
    let host = lab.route_leads_to(router, prefix)?;
    match best_path(lab, router, prefix) {
        Ok(best) => primary_route(best.as_ref(), &host, true).then_some(host),
        Err(_) => Some(host),
    }
}

enum Step<'a> {
    Kernel(&'a RouteChange),
    Bgp(&'a Reading),
}

impl Step<'_> {
    fn t(&self) -> f64 {
        match self {
            Step::Kernel(c) => c.t_ms,
            Step::Bgp(r) => r.t_ms,
        }
    }
}

/// The kernel's route changes, corrected by the BGP tables' readings of the same routers: a
/// change to the next node a primary's route uses, None while the best path is a fallback (or
/// names another host than the DB host the kernel still sends to). Times are the later of the
/// two sources' for each change.
pub fn primary_changes(
    topo: &Topology,
    kernel: &[RouteChange],
    bgp: &[Reading],
    prefix: &str,
) -> Vec<RouteChange> {
    let mut out = Vec::new();
    let routers: Vec<&String> = kernel
        .iter()
        .map(|c| &c.router)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for r in routers {
        let mut steps: Vec<Step> = kernel
            .iter()
            .filter(|c| &c.router == r)
            .map(Step::Kernel)
            .chain(bgp.iter().filter(|x| &x.router == r).map(Step::Bgp))
            .collect();
        steps.sort_by(|a, b| a.t().total_cmp(&b.t()));
        let (mut next, mut line): (Option<String>, String) = (None, String::new());
        let mut best: Option<Option<BgpPath>> = None;
        let mut last: Option<Option<String>> = None;
        for s in steps {
            match s {
                Step::Kernel(c) => (next, line) = (c.next.clone(), c.line.clone()),
                Step::Bgp(x) if x.error.is_none() => {
                    best = Some(
                        x.paths
                            .iter()
                            .find(|p| p.best && p.prefix == prefix)
                            .cloned(),
                    )
                }
                Step::Bgp(_) => continue,
            }
            let eff = next.clone().filter(|n| {
                let is_db = topo.node(n).is_some_and(|x| x.role == Role::Db);
                best.as_ref()
                    .is_none_or(|b| primary_route(b.as_ref(), n, is_db))
            });
            if last.as_ref() != Some(&eff) {
                out.push(RouteChange {
                    t_ms: s.t(),
                    router: r.clone(),
                    next: eff.clone(),
                    line: line.clone(),
                });
                last = Some(eff);
            }
        }
    }
    out.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(to: &str, mark: Mark) -> BgpPath {
        BgpPath {
            prefix: "192.0.2.10/32".into(),
            announcer: Some(to.into()),
            mark,
            from: "x".into(),
            best: true,
        }
    }

    #[test]
    fn a_fallback_or_another_hosts_path_is_no_primary_route() {
        let primary = Mark::Primary { term: 3 };
        assert!(primary_route(Some(&path("db1", primary)), "db1", true));
        assert!(!primary_route(
            Some(&path("db1", Mark::Fallback)),
            "db1",
            true
        ));
        // The BGP table moved to db2, the kernel still sends to db1.
        assert!(!primary_route(Some(&path("db2", primary)), "db1", true));
        // Through a router the kernel's next node says nothing about the host.
        assert!(primary_route(Some(&path("db2", primary)), "spine1", false));
        // Unmarked paths (ExaBGP) and no BGP reading: the kernel decides.
        assert!(primary_route(
            Some(&path("db1", Mark::Unmarked)),
            "db1",
            true
        ));
        assert!(primary_route(None, "db1", true));
    }

    fn kernel(t: f64, router: &str, next: Option<&str>) -> RouteChange {
        RouteChange {
            t_ms: t,
            router: router.into(),
            next: next.map(str::to_string),
            line: String::new(),
        }
    }

    fn table(t: f64, router: &str, best: BgpPath) -> Reading {
        Reading {
            t_ms: t,
            router: router.into(),
            paths: vec![best],
            error: None,
        }
    }

    #[test]
    fn a_tor_that_keeps_its_next_hop_through_a_fallback_loses_the_route_at_the_table() {
        let topo = crate::topo::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../primaryd.clab.yml"),
        )
        .unwrap();
        let primary = |to: &str| path(to, Mark::Primary { term: 1 });
        // tor1: db1's primary route, then db1's fallback (same next hop), then db2's primary
        // through the spine: the table moves 10 ms before the kernel.
        let k = vec![
            kernel(0.0, "tor1", Some("db1")),
            kernel(310.0, "tor1", Some("spine1")),
        ];
        let b = vec![
            table(1.0, "tor1", primary("db1")),
            table(60.0, "tor1", path("db1", Mark::Fallback)),
            table(300.0, "tor1", primary("db2")),
        ];
        let c = primary_changes(&topo, &k, &b, "192.0.2.10/32");
        let seen: Vec<(f64, Option<&str>)> =
            c.iter().map(|c| (c.t_ms, c.next.as_deref())).collect();
        assert_eq!(
            seen,
            [(0.0, Some("db1")), (60.0, None), (310.0, Some("spine1"))]
        );
    }
}
