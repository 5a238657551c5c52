//! What must hold after every step of the soak, and what the sampler watches between them:
//!
//! - at most one announcer of the primary route in every router's BGP table (a path marked as a
//!   fallback, `ASN:2:0`, is never an announcer), right after the step and while it settles;
//! - then, within a bound, one consistent state: every router's kernel routes for every service
//!   prefix lead to the same DB host H, every BGP table's only announcer is H, H is the one
//!   writable server replicating from nobody, the others replicate from it, every DB host's
//!   BGP sessions are Established, and the refusal rules hold: every other DB host
//!   refuses the service addresses (primaryd's nftables sets, docs/clients.md), H does not.
//!
//! The sampler reads every router's BGP table every SAMPLE during the whole soak and keeps
//! every reading in which one router had two announcers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use crate::bgptable::{Hosts, Mark, Reader};
use crate::lab::Lab;
use crate::scenario::Check;
use crate::sql;
use crate::topo::Role;
use crate::util::{self, now_ms, wait_for};

use super::{probe, Soak};

const SAMPLE: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_millis(200);

/// The lab's routers, DB hosts and service prefixes.
#[derive(Clone)]
pub(crate) struct Fabric {
    pub routers: Vec<String>,
    pub dbs: Vec<String>,
    pub prefixes: Vec<String>,
    pub hosts: Hosts,
    /// DB host -> its loopback (the replication address).
    pub loopbacks: BTreeMap<String, String>,
}

impl Fabric {
    pub fn of(lab: &Lab) -> Result<Fabric> {
        Ok(Fabric {
            routers: lab
                .topo
                .nodes
                .iter()
                .filter(|n| n.role.is_router())
                .map(|n| n.name.clone())
                .collect(),
            dbs: lab
                .topo
                .with_role(Role::Db)
                .map(|n| n.name.clone())
                .collect(),
            prefixes: lab.service_prefixes(),
            hosts: Hosts::of(lab),
            loopbacks: lab
                .topo
                .with_role(Role::Db)
                .map(|n| Ok((n.name.clone(), sql::loopback(lab, &n.name)?)))
                .collect::<Result<_>>()?,
        })
    }

    /// The service addresses (the prefixes are host routes).
    fn addresses(&self) -> Vec<String> {
        self.prefixes
            .iter()
            .map(|p| p.split('/').next().unwrap_or(p).to_string())
            .collect()
    }
}

/// The non-fallback announcers of the service prefixes in one router's BGP table.
fn announcers(reader: &mut Reader, f: &Fabric) -> Result<BTreeSet<String>> {
    Ok(reader
        .read(&f.prefixes)?
        .iter()
        .filter(|p| p.mark(f.hosts.community_asn) != Mark::Fallback)
        .map(|p| f.hosts.announcer(p).unwrap_or_else(|| "?".into()))
        .collect())
}

/// The state of the fabric and the DB hosts at one moment.
#[derive(Debug, Default)]
pub(crate) struct Observation {
    /// router -> prefix -> the host its kernel route leads to.
    leads: BTreeMap<String, BTreeMap<String, Option<String>>>,
    announcers: BTreeMap<String, BTreeSet<String>>,
    errors: Vec<String>,
    writable: Vec<String>,
    /// DB host -> its replication ("SOURCE io=.. sql=..").
    replication: BTreeMap<String, Option<String>>,
    /// DB hosts whose BGP sessions are not all Established (primaryctl show peers).
    sessions_down: Vec<String>,
    /// DB host -> whether it refuses every service address (None: unknown).
    refusing: BTreeMap<String, Option<bool>>,
}

impl Observation {
    fn take(lab: &Lab, f: &Fabric) -> Observation {
        let mut o = Observation::default();
        for r in &f.routers {
            let leads = f
                .prefixes
                .iter()
                .map(|p| (p.clone(), lab.route_leads_to(r, p)))
                .collect();
            o.leads.insert(r.clone(), leads);
            match Reader::new(lab, r).and_then(|mut rd| announcers(&mut rd, f)) {
                Ok(a) => {
                    o.announcers.insert(r.clone(), a);
                }
                Err(e) => o.errors.push(format!("{e:#}")),
            }
        }
        for d in &f.dbs {
            match sql::db_state(lab, d) {
                Ok(s) => {
                    if !s.read_only && s.replication.is_none() {
                        o.writable.push(d.clone());
                    }
                    o.replication.insert(d.clone(), s.replication);
                }
                Err(e) => o.errors.push(format!("{d}: {e:#}")),
            }
            o.refusing
                .insert(d.clone(), refuses(lab, d, &f.addresses()));
        }
        o
    }

    /// The routers with more than one announcer.
    fn doubles(&self) -> Vec<String> {
        self.announcers
            .iter()
            .filter(|(_, a)| a.len() > 1)
            .map(|(r, a)| format!("{r}: {}", a.iter().cloned().collect::<Vec<_>>().join("+")))
            .collect()
    }

    /// Some(H) when every kernel route leads to H and H is every table's only announcer.
    fn primary(&self) -> Option<String> {
        let dests: BTreeSet<Option<String>> = self
            .leads
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        let dests: Vec<Option<String>> = dests.into_iter().collect();
        let [Some(h)] = dests.as_slice() else {
            return None;
        };
        let one = BTreeSet::from([h.clone()]);
        (self.announcers.len() == self.leads.len() && self.announcers.values().all(|a| *a == one))
            .then(|| h.clone())
    }

    fn settled(&self, f: &Fabric) -> Option<String> {
        let h = self.primary()?;
        // The others replicate from it, ready for the next failover.
        let from = format!("{} io=Yes sql=Yes", f.loopbacks.get(&h)?);
        let replicas_ok = self
            .replication
            .iter()
            .all(|(d, r)| *d == h || r.as_deref() == Some(from.as_str()));
        let refusal_ok = self.refusing.iter().all(|(d, r)| *r == Some(*d != h));
        (self.errors.is_empty()
            && self.writable == [h.clone()]
            && refusal_ok
            && replicas_ok
            && self.sessions_down.is_empty())
        .then_some(h)
    }

    pub fn describe(&self) -> String {
        let leads: Vec<String> = self
            .leads
            .iter()
            .flat_map(|(r, m)| {
                m.iter()
                    .map(move |(p, l)| format!("{r} {p}->{}", l.as_deref().unwrap_or("none")))
            })
            .collect();
        let ann: Vec<String> = self
            .announcers
            .iter()
            .map(|(r, a)| format!("{r}: [{}]", a.iter().cloned().collect::<Vec<_>>().join(",")))
            .collect();
        let refusing: Vec<String> = self
            .refusing
            .iter()
            .map(|(d, r)| {
                format!(
                    "{d} {}",
                    r.map_or("?", |r| if r { "refuses" } else { "open" })
                )
            })
            .collect();
        let repl: Vec<String> = self
            .replication
            .iter()
            .map(|(d, r)| format!("{d} {}", r.as_deref().unwrap_or("none")))
            .collect();
        format!(
            "routes: {}; BGP announcers: {}; writable: [{}]; refusal: {}; replication: {}; \
             sessions not Established: [{}]{}",
            leads.join(", "),
            ann.join(", "),
            self.writable.join(","),
            refusing.join(", "),
            repl.join(", "),
            self.sessions_down.join(","),
            if self.errors.is_empty() {
                String::new()
            } else {
                format!("; errors: {}", self.errors.join("; "))
            }
        )
    }
}

/// Whether `node` refuses every address (primaryd's nftables sets `refused_v4`/`refused_v6`
/// in the table `inet primaryd`); None when the table cannot be read.
fn refuses(lab: &Lab, node: &str, addrs: &[String]) -> Option<bool> {
    let out = util::ip(&[
        "netns",
        "exec",
        &lab.netns(node),
        "nft",
        "-j",
        "list",
        "table",
        "inet",
        "primaryd",
    ])
    .ok()?;
    let v: Value = serde_json::from_str(&out).ok()?;
    let mut elems = BTreeSet::new();
    for o in v["nftables"].as_array()? {
        let set = &o["set"];
        if set["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("refused"))
        {
            for e in set["elem"].as_array().into_iter().flatten() {
                if let Some(s) = e.as_str() {
                    elems.insert(s.to_string());
                }
            }
        }
    }
    Some(addrs.iter().all(|a| elems.contains(a)))
}

/// What settling found.
#[derive(Debug)]
pub(crate) struct Settled {
    pub ok: bool,
    pub primary: Option<String>,
    pub checks: Vec<Check>,
}

/// Checks at once that no router has two announcers, then waits (up to `within`) for the
/// consistent state with one primary.
pub(crate) fn settle(s: &Soak, within: Duration) -> Settled {
    let (lab, f) = (s.lab, &s.fabric);
    let first = Observation::take(lab, f);
    let doubles = first.doubles();
    let mut checks = vec![Check {
        name: "at most one announcer in every BGP table".into(),
        ok: doubles.is_empty(),
        detail: if doubles.is_empty() {
            first.describe()
        } else {
            format!("two announcers: {}", doubles.join("; "))
        },
    }];
    let t = now_ms();
    let mut last = first;
    let primary = wait_for(within, POLL, || {
        if last.settled(f).is_none() {
            last = Observation::take(lab, f);
        }
        last.settled(f)
    });
    checks.push(Check {
        name: "one primary: routes consistent, announced alone, the others refuse".into(),
        ok: primary.is_some(),
        detail: match &primary {
            Some(h) => format!("{h} after {:.0} ms", now_ms() - t),
            None => format!("not within {within:?}: {}", last.describe()),
        },
    });
    if let Some(h) = &primary {
        checks.push(probe_check(lab, f, h));
    }
    Settled {
        ok: checks.iter().all(|c| c.ok),
        primary,
        checks,
    }
}

/// The refusal rule with packets (probe.rs): from each DB host's ToR, out of the interface
/// towards it, a TCP connection to the service's IPv4 address is refused by every host but
/// the primary, which accepts it.
fn probe_check(lab: &Lab, f: &Fabric, primary: &str) -> Check {
    let addr = f
        .addresses()
        .iter()
        .find_map(|a| a.parse::<std::net::Ipv4Addr>().ok());
    let mut parts = Vec::new();
    let mut ok = addr.is_some();
    for d in &f.dbs {
        let tor = lab
            .topo
            .ifaces_of(d)
            .first()
            .and_then(|i| lab.topo.peer_of(d, i))
            .cloned();
        let (Some(tor), Some(addr)) = (tor, addr) else {
            ok = false;
            continue;
        };
        let got = probe::connect_from(lab, &tor.node, &tor.iface, addr, 3306);
        let want = if d == primary {
            probe::Answer::Accepted
        } else {
            probe::Answer::Refused
        };
        ok &= got == want;
        parts.push(format!("{d} (from {} {}): {got:?}", tor.node, tor.iface));
    }
    Check {
        name: "with packets: the primary accepts, every other host refuses (TCP reset)".into(),
        ok,
        detail: parts.join(", "),
    }
}

/// One router with two announcers at one sampling.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Double {
    pub t_ms: f64,
    pub router: String,
    pub announcers: Vec<String>,
}

/// Reads every router's BGP table every SAMPLE in the background.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    doubles: Arc<Mutex<Vec<Double>>>,
}

impl Sampler {
    pub fn start(lab: &Lab, f: &Fabric) -> Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let doubles = Arc::new(Mutex::new(Vec::new()));
        let lab = Lab {
            id: lab.id.clone(),
            dir: lab.dir.clone(),
            topo: lab.topo.clone(),
        };
        let (f, stop2, doubles2) = (f.clone(), stop.clone(), doubles.clone());
        let handle = std::thread::Builder::new()
            .name("soak-sampler".into())
            .spawn(move || {
                let mut readers: BTreeMap<String, Reader> = BTreeMap::new();
                while !stop2.load(Ordering::Relaxed) {
                    for r in &f.routers {
                        sample(&lab, &f, r, &mut readers, &doubles2);
                    }
                    std::thread::sleep(SAMPLE);
                }
            })?;
        Ok(Sampler {
            stop,
            handle: Some(handle),
            doubles,
        })
    }

    /// The readings with two announcers so far.
    pub fn snapshot(&self) -> Vec<Double> {
        self.doubles.lock().unwrap().clone()
    }

    pub fn stop(mut self) -> Vec<Double> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.snapshot()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One router's reading; a reader whose daemon restarted (a new PID) is made again.
fn sample(
    lab: &Lab,
    f: &Fabric,
    router: &str,
    readers: &mut BTreeMap<String, Reader>,
    doubles: &Mutex<Vec<Double>>,
) {
    if !readers.contains_key(router) {
        match Reader::new(lab, router) {
            Ok(r) => {
                readers.insert(router.to_string(), r);
            }
            Err(_) => return,
        }
    }
    let t = now_ms();
    let reader = readers.get_mut(router).expect("inserted");
    match announcers(reader, f) {
        Ok(a) if a.len() > 1 => doubles.lock().unwrap().push(Double {
            t_ms: t,
            router: router.to_string(),
            announcers: a.into_iter().collect(),
        }),
        Ok(_) => {}
        Err(_) => {
            readers.remove(router);
        }
    }
}
