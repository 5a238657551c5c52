//! The control socket's handler: `show` answered from published status, `drain` through the
//! health tasks (then confirmed on the sessions' published Adj-RIB-Out), `reload` through the
//! daemon loop.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot, watch};

use super::{Published, Reply, DRAIN_ACK_TIMEOUT};
use crate::bgp::fsm::State;
use crate::bgp::status::PeerStatus;
use crate::config::Config;
use crate::health::checker::Health;
use crate::health::services::{DrainError, HealthServices, Target};
use crate::health::state::ServiceStatus;
use crate::operator::protocol::{Command, Response};
use crate::operator::server::Handler;
use crate::operator::views;
use crate::safety::marks::{claim, Claim};

/// Answers `primaryctl`: `show` from published status, drain through the health tasks,
/// reload through the daemon loop.
pub(super) struct RequestHandler {
    pub(super) published: watch::Receiver<Published>,
    pub(super) health: HealthServices,
    pub(super) commands: mpsc::Sender<(Command, Reply)>,
}

impl Handler for RequestHandler {
    fn handle(&self, command: Command) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(async move {
            let published = self.published.borrow().clone();
            let peers: Vec<PeerStatus> =
                published.peers.iter().map(|p| p.borrow().clone()).collect();
            let services = self.health.statuses();
            let now = SystemTime::now();
            let json = |v: Result<serde_json::Value, serde_json::Error>| match v {
                Ok(v) => Response::ok(v),
                Err(e) => Response::error(format!("cannot encode the answer: {e}")),
            };
            match command {
                Command::ShowRoutes => {
                    let routes = service_routes(&published, &services);
                    let me = views::MarkReader {
                        community_asn: published.config.bgp.community_asn,
                        router_id: published.config.bgp.router_id,
                    };
                    json(serde_json::to_value(views::routes(&routes, &peers, me)))
                }
                Command::ShowReceived { peer } => {
                    match views::received(&peers, peer.as_deref(), now) {
                        Ok(v) => json(serde_json::to_value(v)),
                        Err(e) => Response::error(e),
                    }
                }
                Command::ShowPeers => json(serde_json::to_value(views::peers(&peers, now))),
                Command::ShowServices => {
                    let v: Vec<views::ServiceView> = services
                        .iter()
                        .map(|s| service_view(&published, s))
                        .collect();
                    json(serde_json::to_value(v))
                }
                Command::Drain { service } => self.drain(service, &published).await,
                Command::Undrain { service } => match self.health.undrain(&target(service)).await {
                    Ok(done) => Response::ok(serde_json::Value::String(format!(
                        "undrained: {} (announced again once healthy)",
                        names(&done)
                    ))),
                    Err(e) => Response::error(e.to_string()),
                },
                Command::Check { service } => super::check::run(self, service).await,
                Command::Reload | Command::Confirm { .. } => {
                    let (tx, rx) = oneshot::channel();
                    if self.commands.send((command, tx)).await.is_err() {
                        return Response::error("the daemon is shutting down");
                    }
                    rx.await
                        .unwrap_or_else(|_| Response::error("the daemon is shutting down"))
                }
            }
        })
    }
}

impl RequestHandler {
    /// Drains, then answers only once every established peer was sent the withdraw (its
    /// published Adj-RIB-Out no longer has the prefixes).
    async fn drain(&self, service: Option<String>, published: &Published) -> Response {
        let done = match self.health.drain(&target(service), None).await {
            Ok(done) => done,
            Err(e @ DrainError::NotPersisted { .. }) => {
                // Withdrawn anyway; say that it will not survive a restart.
                return Response::error(e.to_string());
            }
            Err(e) => return Response::error(e.to_string()),
        };
        let prefixes: Vec<ipnetwork::IpNetwork> = published
            .config
            .services
            .iter()
            .filter(|s| done.iter().any(|d| d.name == s.name))
            .flat_map(|s| s.prefixes.iter().copied())
            .collect();
        let mut pending = Vec::new();
        let asn = published.config.bgp.community_asn;
        // A prefix still advertised as this host's fallback (docs/clients.md) is withdrawn as a
        // primary's route: the fallback replaced it.
        let gone = |s: &PeerStatus, x: &ipnetwork::IpNetwork| {
            s.rib_out
                .get(x)
                .is_none_or(|a| matches!(claim(a, asn), Claim::Fallback { .. }))
        };
        for p in &published.peers {
            let mut rx = p.clone();
            let withdrawn = |s: &PeerStatus| {
                s.state != State::Established || prefixes.iter().all(|x| gone(s, x))
            };
            let ok = tokio::time::timeout(DRAIN_ACK_TIMEOUT, rx.wait_for(withdrawn)).await;
            if !matches!(ok, Ok(Ok(_))) {
                pending.push(p.borrow().name.clone());
            }
        }
        if pending.is_empty() {
            Response::ok(serde_json::Value::String(format!(
                "drained: {} (withdrawn from every established peer)",
                names(&done)
            )))
        } else {
            Response::error(format!(
                "drained: {}, but the withdraw was not confirmed within {} s for: {}",
                names(&done),
                DRAIN_ACK_TIMEOUT.as_secs(),
                pending.join(", ")
            ))
        }
    }
}

fn target(service: Option<String>) -> Target {
    service.map_or(Target::All, Target::Service)
}

fn names(statuses: &[ServiceStatus]) -> String {
    statuses
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn state_name(h: Health) -> &'static str {
    match h {
        Health::Up => "up",
        Health::Down => "down",
        Health::Unknown => "unknown",
    }
}

/// What `show` says of a service: the checks' state and reason, unless the split-brain rules
/// hold it back ("conflict", "held") with a reason of their own.
pub(super) struct Shown {
    pub(super) state: String,
    pub(super) announced: bool,
    pub(super) reason: String,
    since: SystemTime,
    term: Option<u64>,
    conflict: bool,
}

pub(super) fn shown(p: &Published, s: &ServiceStatus) -> Shown {
    let d = p.decisions.get(&s.name);
    let (state, reason) = match d.and_then(|d| d.hold.as_ref().map(|h| (d.conflict, h))) {
        Some((true, hold)) => ("conflict".to_string(), hold.clone()),
        Some((false, hold)) => ("held".to_string(), hold.clone()),
        None => (state_name(s.health).to_string(), s.reason.clone()),
    };
    Shown {
        state,
        announced: d.is_some_and(|d| d.announced),
        reason,
        since: d.map_or(s.since, |d| d.since.max(s.since)),
        term: d.and_then(|d| d.term),
        conflict: d.is_some_and(|d| d.conflict),
    }
}

fn service_routes(p: &Published, services: &[ServiceStatus]) -> Vec<views::ServiceRoutes> {
    services
        .iter()
        .map(|s| {
            let v = shown(p, s);
            views::ServiceRoutes {
                name: s.name.clone(),
                prefixes: prefixes_of(&p.config, &s.name),
                state: v.state,
                announced: v.announced,
                reason: v.reason,
                since: v.since,
                term: v.term,
                conflict: v.conflict,
            }
        })
        .collect()
}

pub(super) fn prefixes_of(config: &Config, service: &str) -> Vec<ipnetwork::IpNetwork> {
    config
        .services
        .iter()
        .find(|c| c.name == service)
        .map(|c| c.prefixes.clone())
        .unwrap_or_default()
}

pub(super) fn service_view(p: &Published, s: &ServiceStatus) -> views::ServiceView {
    let v = shown(p, s);
    views::ServiceView {
        name: s.name.clone(),
        role: s.role.to_string(),
        prefixes: prefixes_of(&p.config, &s.name),
        state: v.state,
        announced: v.announced,
        reason: v.reason,
        since: views::timestamp(v.since),
        drained: s.drained.is_some(),
        last_result: s.last_check.as_ref().map(|c| c.result.to_string()),
        last_latency_ms: s
            .last_check
            .as_ref()
            .map(|c| c.latency.as_secs_f64() * 1000.0),
        last_check_at: s.last_check.as_ref().map(|c| views::timestamp(c.at)),
        successes: s.successes,
        failures: s.failures,
        rise: s.rise,
        fall: s.fall,
        term: v.term,
        conflict: v.conflict,
        clients: p.clients.get(&s.name).map(|c| views::ClientsView {
            refusal: c.refusal.clone(),
            export: c.export.to_string(),
            connections_reset: c.connections_reset,
            note: c.note.clone(),
        }),
    }
}
