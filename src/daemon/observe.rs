//! What `/metrics` shows: rendered from the published status at scrape time, plus the
//! check-latency histogram fed from every service's published checks.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::requests::service_view;
use super::Published;
use crate::bgp::status::PeerStatus;
use crate::health::services::HealthServices;
use crate::metrics::{self, CheckLatency, ServiceCounts};
use crate::operator::views;

pub(super) fn scraper(
    published: watch::Receiver<Published>,
    health: HealthServices,
    latency: CheckLatency,
) -> Arc<dyn Fn() -> String + Send + Sync> {
    Arc::new(move || {
        let p = published.borrow().clone();
        let peers: Vec<PeerStatus> = p.peers.iter().map(|r| r.borrow().clone()).collect();
        let services: Vec<(views::ServiceView, ServiceCounts)> = health
            .statuses()
            .iter()
            .map(|s| {
                let counts = p.counts.get(&s.name).cloned().unwrap_or_default();
                (service_view(&p, s), counts)
            })
            .collect();
        metrics::render(&metrics::Snapshot {
            peers: &peers,
            services: &services,
            latency: &latency,
        })
    })
}

/// Feeds the check-latency histogram from every service's published checks.
pub(super) async fn observe_latency(
    health: HealthServices,
    mut published: watch::Receiver<Published>,
    latency: CheckLatency,
) -> String {
    let mut watched: Vec<String> = Vec::new();
    let mut watchers = JoinSet::new();
    loop {
        let names: Vec<String> = published
            .borrow_and_update()
            .config
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect();
        // Re-subscribe only when a reload changed the set of services.
        if names != watched {
            watchers.abort_all();
            for name in &names {
                let Some(mut rx) = health.subscribe(name) else {
                    continue;
                };
                let (latency, name) = (latency.clone(), name.clone());
                watchers.spawn(async move {
                    let mut last = None;
                    while rx.changed().await.is_ok() {
                        let check = rx.borrow_and_update().last_check.clone();
                        if let Some(c) = check.filter(|c| last != Some(c.at)) {
                            last = Some(c.at);
                            latency.observe(&name, c.latency);
                        }
                    }
                });
            }
            watched = names;
        }
        if published.changed().await.is_err() {
            return "status publisher gone".into();
        }
    }
}
