//! The daemon's side of what the host does to client connections (docs/clients.md): one
//! [`Gate`] per service between the rules' verdict and what the sessions export, the nft jobs
//! run one after the other off the event loop (each with a deadline), the resets counted.
//!
//! Start-up installs the refusal of every service address before any session exists;
//! shutdown installs it again before the final withdraw and resets what was announced.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::safety::Identity;
use crate::announcer::Exports;
use crate::bgp::fsm::State;
use crate::bgp::status::PeerStatus;
use crate::blocking;
use crate::config::{Config, RouteAttributes, ServiceConfig};
use crate::host::gate::{Export, Gate, Inputs, Job, JobKind, Refusal};
use crate::host::refuse::Refuser;
use crate::host::{self, reset};
use crate::safety::{marks, Claim};

/// Bound on one nft change. A withdraw waits for its refusal at most this long.
const JOB_DEADLINE: Duration = Duration::from_millis(500);
/// Bound on the start-up install (nothing is announced before it anyway).
const INSTALL_DEADLINE: Duration = Duration::from_secs(5);
/// Bound on one reset (a dump of the host's TCP sockets and one destroy per match).
const RESET_DEADLINE: Duration = Duration::from_secs(2);

/// A job's or a reset's outcome, back to the event loop.
#[derive(Debug)]
pub(super) enum HostDone {
    Job {
        service: String,
        seq: u64,
        kind: JobKind,
        result: Result<(), String>,
    },
    Reset {
        service: String,
        result: Result<reset::Outcome, String>,
    },
}

/// What `show services` and `/metrics` show of one service's clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientsStatus {
    /// "refused", "open", "refusal failed: …", "not installed yet".
    pub refusal: String,
    pub refused: bool,
    pub export: Export,
    pub connections_reset: u64,
    /// Why no fallback, or why connections cannot be reset, when that is so.
    pub note: Option<String>,
}

struct Entry {
    gate: Gate,
    /// The primary routes last exported, kept while a withdraw waits for its refusal.
    primary: BTreeMap<IpNetwork, RouteAttributes>,
}

pub(super) struct HostState {
    entries: BTreeMap<String, Entry>,
    jobs: mpsc::UnboundedSender<(String, Job)>,
    done: mpsc::UnboundedSender<HostDone>,
    /// Whether sockets can be reset here (Err: why not).
    pub facility: Result<(), String>,
    resets: BTreeMap<String, u64>,
    /// The last refusal error logged per service (each new one is logged once).
    logged: BTreeMap<String, String>,
}

impl HostState {
    /// Refuses every service address (replacing what an earlier run left), checks the reset
    /// facility and starts the job runner. Runs before any session exists.
    pub async fn start(config: &Config, done: mpsc::UnboundedSender<HostDone>) -> HostState {
        let refuser = Refuser::default();
        let addrs: Vec<IpAddr> = config.services.iter().flat_map(host::addresses).collect();
        let r = refuser.clone();
        let installed = {
            let addrs = addrs.clone();
            blocking::run(INSTALL_DEADLINE, move || r.install(&addrs)).await
        };
        let kernel = match installed {
            Ok(Ok(())) => {
                info!(
                    table = %format!("inet {}", refuser.table()),
                    ?addrs,
                    "service addresses refused until this host is their announced primary"
                );
                Refusal::Installed
            }
            Ok(Err(e)) => failed(e.to_string()),
            Err(e) => failed(format!("nft: {e}")),
        };
        if let Refusal::Failed { reason, .. } = &kernel {
            error!(
                %reason,
                "cannot refuse the service addresses: no fallback is announced, and a host \
                 that is not the primary answers clients with silence"
            );
        }
        let facility = blocking::run(INSTALL_DEADLINE, reset::facility)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match &facility {
            Ok(()) => info!("connections to a withdrawn service address are reset (sock_diag)"),
            Err(e) => warn!(
                "connections to a withdrawn service address cannot be reset: {e}; pooled \
                 clients wait for their own timeouts"
            ),
        }
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_jobs(refuser, rx, done.clone()));
        let entries = config
            .services
            .iter()
            .map(|s| {
                let gate = Gate::new(host::addresses(s), kernel.clone());
                let e = Entry {
                    gate,
                    primary: BTreeMap::new(),
                };
                (s.name.clone(), e)
            })
            .collect();
        HostState {
            entries,
            jobs,
            done,
            facility,
            resets: BTreeMap::new(),
            logged: BTreeMap::new(),
        }
    }

    /// Turns the rules' routes into what is exported: the primary route held while its
    /// refusal is installed, fallbacks where the refusal stands, nothing elsewhere. Returns
    /// the services whose connections must be reset once `exports` is published.
    pub fn apply(
        &mut self,
        services: &[&ServiceConfig],
        peers: &[PeerStatus],
        me: Identity,
        exports: &mut Exports,
    ) -> Vec<(String, Vec<IpAddr>)> {
        let now = Instant::now();
        let mut resets = self.forget_removed(services);
        let mut held = BTreeSet::new();
        for service in services {
            let name = &service.name;
            let entry = self.entries.entry(name.clone()).or_insert_with(|| Entry {
                gate: Gate::new(host::addresses(service), Refusal::Unknown),
                primary: BTreeMap::new(),
            });
            if let Some(job) = entry.gate.set_addrs(host::addresses(service)) {
                let _ = self.jobs.send((name.clone(), job));
            }
            let primary = !service.prefixes.is_empty()
                && service
                    .prefixes
                    .iter()
                    .all(|p| exports.routes.contains_key(p));
            if primary {
                entry.primary = service
                    .prefixes
                    .iter()
                    .filter_map(|p| exports.routes.get(p).map(|a| (*p, a.clone())))
                    .collect();
            }
            let inputs = Inputs {
                primary,
                advertised: advertised(peers, &service.prefixes, me),
                fallback: service.fallback.enabled,
                now,
            };
            let (export, step) = entry.gate.step(inputs);
            if let Some(job) = step.job {
                let _ = self.jobs.send((name.clone(), job));
            }
            match export {
                Export::Primary => {
                    exports.routes.extend(entry.primary.clone());
                    if !primary {
                        // The rules withdrew it: kept only where it is advertised already.
                        held.extend(entry.primary.keys().copied());
                    }
                }
                Export::Fallback => {
                    let attrs = host::fallback_attributes(service, me.community_asn, me.router_id);
                    for p in &service.prefixes {
                        exports.routes.insert(*p, attrs.clone());
                    }
                }
                Export::Nothing => {
                    for p in &service.prefixes {
                        exports.routes.remove(p);
                    }
                }
            }
            if step.reset {
                resets.push((name.clone(), host::addresses(service)));
            }
        }
        exports.held = Arc::new(held);
        resets
    }

    /// Services gone from the configuration: refused again and reset, then forgotten.
    fn forget_removed(&mut self, services: &[&ServiceConfig]) -> Vec<(String, Vec<IpAddr>)> {
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|n| !services.iter().any(|s| &s.name == *n))
            .cloned()
            .collect();
        let mut resets = Vec::new();
        for name in gone {
            if let Some(mut e) = self.entries.remove(&name) {
                let addrs = e.gate.addrs().to_vec();
                if e.gate.refusal() != &Refusal::Installed {
                    let job = Job {
                        seq: 0,
                        kind: JobKind::Refuse,
                        addrs: addrs.clone(),
                    };
                    let _ = self.jobs.send((name.clone(), job));
                }
                if e.gate.exported() == Export::Primary {
                    resets.push((name.clone(), addrs));
                }
                e.primary.clear();
            }
        }
        resets
    }

    /// Starts the resets `apply` asked for (after the exports were published).
    pub fn reset(&self, resets: Vec<(String, Vec<IpAddr>)>) {
        for (service, addrs) in resets {
            let done = self.done.clone();
            tokio::spawn(async move {
                let result = run_reset(addrs).await;
                let _ = done.send(HostDone::Reset { service, result });
            });
        }
    }

    /// A job's or a reset's outcome; true when the rules should run again.
    pub fn done(&mut self, d: HostDone) -> bool {
        match d {
            HostDone::Job {
                service,
                seq,
                kind,
                result,
            } => {
                match &result {
                    Err(e) if self.logged.get(&service) != Some(e) => {
                        error!(%service, action = ?kind, error = %e,
                               "cannot change the refusal of the service addresses; no fallback is announced");
                        self.logged.insert(service.clone(), e.clone());
                    }
                    Ok(()) => {
                        if self.logged.remove(&service).is_some() {
                            info!(%service, action = ?kind, "the refusal works again");
                        }
                    }
                    Err(_) => {}
                }
                if let Some(e) = self.entries.get_mut(&service) {
                    e.gate.done(seq, kind, result, Instant::now());
                }
                true
            }
            HostDone::Reset { service, result } => {
                match result {
                    Ok(o) => {
                        *self.resets.entry(service.clone()).or_default() += o.reset;
                        info!(%service, reset = o.reset, event = "reset",
                              "withdrawn: {} connection{} reset", o.reset,
                              if o.reset == 1 { "" } else { "s" });
                    }
                    Err(e) => warn!(%service, error = %e, event = "reset",
                                    "withdrawn: connections not reset: {e}"),
                }
                false
            }
        }
    }

    /// A failed refusal is due for another try.
    pub fn retry_due(&self) -> bool {
        let now = Instant::now();
        self.entries.values().any(|e| e.gate.retry_due(now))
    }

    pub fn status(&self) -> BTreeMap<String, ClientsStatus> {
        self.entries
            .iter()
            .map(|(name, e)| {
                let refusal = e.gate.refusal();
                let note = match (refusal, &self.facility) {
                    (Refusal::Failed { reason, .. }, _) => {
                        Some(format!("no fallback: the refusal failed: {reason}"))
                    }
                    (_, Err(f)) => Some(format!("connections are not reset: {f}")),
                    _ => None,
                };
                let s = ClientsStatus {
                    refusal: refusal.to_string(),
                    refused: refusal == &Refusal::Installed,
                    export: e.gate.exported(),
                    connections_reset: self.resets.get(name).copied().unwrap_or(0),
                    note,
                };
                (name.clone(), s)
            })
            .collect()
    }

    /// Shutdown: every service address refused (bounded) before the final withdraw is
    /// published. Returns the addresses of the services exported as primary, to reset once it is.
    pub async fn shutdown(&mut self) -> Vec<(String, Vec<IpAddr>)> {
        let all: Vec<IpAddr> = self
            .entries
            .values()
            .flat_map(|e| e.gate.addrs().to_vec())
            .collect();
        let refuser = Refuser::default();
        match blocking::run(JOB_DEADLINE, move || refuser.refuse(&all)).await {
            Ok(Ok(())) => info!("service addresses refused"),
            Ok(Err(e)) => error!("cannot refuse the service addresses at exit: {e}"),
            Err(e) => error!("cannot refuse the service addresses at exit: nft: {e}"),
        }
        self.entries
            .iter()
            .filter(|(_, e)| e.gate.exported() == Export::Primary)
            .map(|(n, e)| (n.clone(), e.gate.addrs().to_vec()))
            .collect()
    }
}

/// Resets now and waits (shutdown), logging as a withdraw does.
pub(super) async fn reset_now(resets: Vec<(String, Vec<IpAddr>)>) {
    for (service, addrs) in resets {
        match run_reset(addrs).await {
            Ok(o) => info!(%service, reset = o.reset, event = "reset",
                           "withdrawn: {} connections reset", o.reset),
            Err(e) => warn!(%service, error = %e, event = "reset",
                            "withdrawn: connections not reset: {e}"),
        }
    }
}

async fn run_reset(addrs: Vec<IpAddr>) -> Result<reset::Outcome, String> {
    blocking::run(RESET_DEADLINE, move || reset::reset(&addrs))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
}

fn failed(reason: String) -> Refusal {
    Refusal::Failed {
        reason,
        at: Instant::now(),
    }
}

/// Runs the nft jobs one after the other, in the order the gates asked for them.
async fn run_jobs(
    refuser: Refuser,
    mut rx: mpsc::UnboundedReceiver<(String, Job)>,
    done: mpsc::UnboundedSender<HostDone>,
) {
    while let Some((service, job)) = rx.recv().await {
        let r = refuser.clone();
        let (kind, addrs) = (job.kind, job.addrs);
        let result = blocking::run(JOB_DEADLINE, move || match kind {
            JobKind::Refuse => r.refuse(&addrs),
            JobKind::Open => r.open(&addrs),
        })
        .await;
        let result = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("nft: {e}")),
        };
        let msg = HostDone::Job {
            service,
            seq: job.seq,
            kind,
            result,
        };
        if done.send(msg).is_err() {
            return;
        }
    }
}

/// At least one established session advertises every prefix with a route that is not a
/// fallback (ours: the sessions carry only our routes).
fn advertised(peers: &[PeerStatus], prefixes: &[IpNetwork], me: Identity) -> bool {
    peers.iter().any(|p| {
        p.state == State::Established
            && prefixes.iter().all(|prefix| {
                p.rib_out.get(prefix).is_some_and(|a| {
                    !matches!(marks::claim(a, me.community_asn), Claim::Fallback { .. })
                })
            })
    })
}
