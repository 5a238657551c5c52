//! The routers' kernel routes to the service: where a route line leads, and monitors that
//! record every change with its time (`ip monitor route` per router, read as it prints).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use crate::lab::{Lab, SERVICE_PREFIX};
use crate::primaryroute::{primary_changes, RouteChange};
use crate::topo::Topology;
use crate::util::now_ms;

/// The node a route line sends packets to, from its `dev` (the link's other end).
pub fn next_node(topo: &Topology, router: &str, line: &str) -> Option<String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let dev = f
        .iter()
        .position(|w| *w == "dev")
        .and_then(|i| f.get(i + 1))?;
    topo.peer_of(router, dev).map(|e| e.node.clone())
}

/// `ip -ts -n NS monitor route nexthop` on each router. Each change is stamped by `ip` itself
/// when the kernel's message arrived, so a slow reader does not skew the times. Routes that use
/// a nexthop object (FRR installs them) also vanish, without a route message of their own, when
/// their nexthop is deleted, and the kernel flushes routes over a link that goes down without
/// any message: nexthop messages are followed, and a link message re-reads the route.
///
/// With fallback routes in the fabric the kernel's next node does not say whether it is a
/// primary's route: the routers' BGP tables are watched too, and `snapshot` gives the changes
/// of the primary's route (primaryroute.rs).
pub struct Monitors {
    children: Vec<Child>,
    pub changes: Arc<Mutex<Vec<RouteChange>>>,
    bgp: Option<crate::bgptable::Watch>,
    topo: Topology,
}

/// `[2026-11-22T06:27:01.123456]` (UTC: `ip` runs with TZ=UTC) to Unix milliseconds.
fn stamp(l: &str) -> Option<(f64, &str)> {
    let rest = l.strip_prefix('[')?;
    let (ts, rest) = rest.split_once(']')?;
    Some((
        crate::logparse::parse_rfc3339_ms(&format!("{ts}Z"))?,
        rest.trim_start(),
    ))
}

fn nhid(line: &str) -> Option<u32> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let i = f.iter().position(|w| *w == "nhid")?;
    f.get(i + 1)?.parse().ok()
}

fn is_service_route(line: &str) -> bool {
    let dst = SERVICE_PREFIX.trim_end_matches("/32");
    line.split_whitespace()
        .next()
        .is_some_and(|w| w == dst || w == SERVICE_PREFIX)
}

/// The service route's line in the namespace's kernel table, if it has one.
fn service_route(ns: &str) -> Option<String> {
    let out = crate::util::ip(&["-n", ns, "route", "show", SERVICE_PREFIX]).unwrap_or_default();
    let line = out.lines().next().unwrap_or("").trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// The service route after one monitor message (`Deleted` or not, and its body), or None
/// when the message does not concern it.
fn route_after(
    current: &Option<String>,
    deleted: bool,
    body: &str,
    ns: &str,
) -> Option<Option<String>> {
    if is_service_route(body) {
        return Some((!deleted).then(|| body.to_string()));
    }
    if let Some(id) = body
        .strip_prefix("id ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|i| i.parse::<u32>().ok())
    {
        // A nexthop object: does the service route use it?
        if current.as_deref().and_then(nhid) != Some(id) {
            return None;
        }
        if deleted {
            return Some(None);
        }
        // Replaced in place: the route now goes where the nexthop says.
        let via = body.splitn(3, ' ').nth(2).unwrap_or("");
        return Some(current.as_ref().map(|cur| {
            format!(
                "{} nhid {id} {via}",
                cur.split_whitespace().next().unwrap_or("")
            )
        }));
    }
    let link = body
        .split(':')
        .next()
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    // A link changed: the kernel flushes routes over a link that goes down (and their nexthop
    // objects) without a message; read the route again.
    link.then(|| service_route(ns))
}

/// One router's service route, followed from its monitor's output from the `first` reading
/// on: each change of the node it leads to is pushed to `changes`.
fn follow(
    out: ChildStdout,
    first: Option<String>,
    topo: Topology,
    router: String,
    ns: String,
    changes: Arc<Mutex<Vec<RouteChange>>>,
) {
    let mut current = first;
    let mut last_next = current
        .as_deref()
        .and_then(|l| next_node(&topo, &router, l));
    let push = |t_ms: f64, next: Option<String>, line: String| {
        changes.lock().unwrap().push(RouteChange {
            t_ms,
            router: router.clone(),
            next,
            line,
        })
    };
    push(
        now_ms(),
        last_next.clone(),
        current.clone().unwrap_or_default(),
    );
    for l in BufReader::new(out).lines() {
        let Ok(l) = l else { break };
        let Some((t, body)) = stamp(&l) else { continue };
        let (deleted, body) = match body.strip_prefix("Deleted ") {
            Some(b) => (true, b.trim_start()),
            None => (false, body),
        };
        let Some(now) = route_after(&current, deleted, body, &ns) else {
            continue;
        };
        current = now;
        let next = current
            .as_deref()
            .and_then(|c| next_node(&topo, &router, c));
        if next != last_next {
            last_next = next.clone();
            push(t, next, current.clone().unwrap_or_default());
        }
    }
}

impl Monitors {
    pub fn start(lab: &Lab, routers: &[String]) -> Result<Monitors> {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let mut children = Vec::new();
        for r in routers {
            let ns = lab.netns(r);
            let mut child = Command::new("ip")
                .args(["-ts", "-n", &ns, "monitor", "route", "nexthop", "link"])
                .env("TZ", "UTC")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("ip monitor route nexthop")?;
            let out = child.stdout.take().context("ip monitor's stdout")?;
            // The state before any change, read after the monitor started listening.
            std::thread::sleep(std::time::Duration::from_millis(20));
            let first = service_route(&ns);
            let (topo, router, changes) = (lab.topo.clone(), r.clone(), changes.clone());
            std::thread::spawn(move || follow(out, first, topo, router, ns, changes));
            children.push(child);
        }
        // A table that cannot be read (a router without a control socket) leaves the kernel's.
        let hosts = crate::bgptable::Hosts::of(lab);
        let prefixes = [SERVICE_PREFIX.to_string()];
        let bgp = crate::bgptable::Watch::start(lab, routers, &prefixes, &hosts).ok();
        Ok(Monitors {
            children,
            changes,
            bgp,
            topo: lab.topo.clone(),
        })
    }

    /// The changes of each router's route to a primary (the kernel's, corrected by the BGP
    /// tables for fallbacks).
    pub fn snapshot(&self) -> Vec<RouteChange> {
        let kernel = self.changes.lock().unwrap().clone();
        match &self.bgp {
            Some(w) => primary_changes(&self.topo, &kernel, &w.snapshot(), SERVICE_PREFIX),
            None => kernel,
        }
    }
}

impl Drop for Monitors {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
