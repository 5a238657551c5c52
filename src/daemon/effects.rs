//! Deciding and carrying it out: the split-brain rules over every service, the routes
//! published to the sessions, the effects the rules ask for (log, persist, fence, a new
//! term), and the status the control socket and metrics read.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::safety::{Decision, Effect, Identity};
use super::{Daemon, Published};
use crate::announcer::Exports;
use crate::bgp::status::PeerStatus;
use crate::config::ServiceConfig;
use crate::operator::protocol::Response;
use crate::safety::store::GuardStore;

impl Daemon {
    /// Applies the split-brain rules to every service and publishes what the sessions must
    /// announce (every health event, session change, reload and confirm ends here).
    pub(super) fn decide(&mut self, confirm: Option<&str>) {
        let peers: Vec<PeerStatus> = self
            .peers
            .values()
            .map(|p| p.status.borrow().clone())
            .collect();
        let services: Vec<&ServiceConfig> = self.services.values().map(|s| &s.config).collect();
        let me = Identity {
            asn: self.config.bgp.asn,
            router_id: self.config.bgp.router_id,
            community_asn: self.config.bgp.community_asn,
        };
        let (mut exports, effects) = self.safety.decide(&services, &peers, me, confirm);
        let resets = self.host.apply(&services, &peers, me, &mut exports);
        publish_routes(&self.routes, exports);
        self.host.reset(resets);
        for effect in effects {
            self.carry_out(effect);
        }
        self.publish();
    }

    pub(super) fn carry_out(&mut self, effect: Effect) {
        match effect {
            Effect::Changed {
                service,
                announced,
                reason,
                conflict,
            } => {
                let prefixes: Vec<String> = self
                    .services
                    .get(&service)
                    .map(|s| s.config.prefixes.iter().map(|p| p.to_string()).collect())
                    .unwrap_or_default();
                let counts = self.counts.entry(service.clone()).or_default();
                if announced {
                    counts.announcements += 1;
                    info!(%service, ?prefixes, event = "announce", "announce");
                } else if conflict {
                    error!(%service, ?prefixes, event = "conflict", %reason, "withdrawn: {reason}");
                } else {
                    warn!(%service, ?prefixes, event = "withdraw", %reason, "withdraw");
                }
                if !announced {
                    counts.withdrawals += 1;
                }
            }
            Effect::Persist { service, record } => {
                let _ = self.persist.send((service, record));
            }
            Effect::Fence { service, reason } => {
                // The health task logs the fence and its outcome; a failed fence leaves the
                // service withdrawn all the same.
                let health = self.health.clone();
                tokio::spawn(async move {
                    let _ = health.fence(&service, &reason).await;
                });
            }
            Effect::NewTerm { service, above } => {
                let health = self.health.clone();
                tokio::spawn(async move {
                    if !health.confirm_term(&service, above).await {
                        warn!(%service, "confirm: the service's check is gone; no term written");
                    }
                });
            }
        }
    }

    /// `primaryctl confirm SERVICE`: the operator vouches for this server as the primary.
    pub(super) fn confirm(&mut self, service: &str) -> Response {
        if !self.services.contains_key(service) {
            return Response::error(format!("no service named {service:?}"));
        }
        self.decide(Some(service));
        let d = self.safety.decisions().remove(service);
        let text = match d {
            Some(d) if d.announced => format!("{service}: confirmed; announced"),
            Some(Decision { hold: Some(h), .. }) => {
                format!("{service}: confirmed; still withdrawn: {h}")
            }
            _ => format!("{service}: confirmed; withdrawn until its checks pass"),
        };
        info!(%service, event = "confirm", "operator confirmed: {text}");
        Response::ok(serde_json::Value::String(text))
    }

    pub(super) fn publish(&mut self) {
        self.published.send_replace(Published {
            config: Arc::clone(&self.config),
            peers: self.peers.values().map(|p| p.status.clone()).collect(),
            counts: self.counts.clone(),
            decisions: self.safety.decisions(),
            clients: self.host.status(),
        });
    }
}

/// Publishes `desired` to every session if it differs from what they have.
pub(super) fn publish_routes(tx: &watch::Sender<Exports>, desired: Exports) {
    tx.send_if_modified(|current| {
        let changed = *current != desired;
        *current = desired;
        changed
    });
}

/// Saves the rules' records in the order they were decided, off the event loop. A record that
/// cannot be saved is logged: the daemon still acts on it, but a restart would forget it.
pub(super) async fn persist_records(
    store: GuardStore,
    mut rx: mpsc::UnboundedReceiver<(String, crate::safety::guard::Record)>,
) -> String {
    while let Some((service, record)) = rx.recv().await {
        let store = store.clone();
        let path = store.path(&service);
        let saved = tokio::task::spawn_blocking(move || store.save(&service, &record)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(
                "cannot save {}: {e}; a restart would forget it",
                path.display()
            ),
            Err(e) => error!("cannot save {}: {e}", path.display()),
        }
    }
    "safety record writer stopped".into()
}
