//! `primaryctl check SERVICE|--all`: check now, and answer only once what follows from the
//! result was done: the daemon decided (the split-brain rules, [`super::safety`]), and when
//! the service may be announced, every established peer whose initial routes are in was sent
//! the announce. An orchestrator hook on the promoted host makes the route follow the
//! promotion within milliseconds instead of up to one check interval.
//!
//! Order: the health tasks answer after their transition is queued to the daemon; the daemon
//! loop, asked next, takes in every queued health event before it replies (`intake`), so the
//! decision published by then includes the check.

use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::requests::{shown, RequestHandler};
use super::Published;
use crate::bgp::fsm::State;
use crate::bgp::status::PeerStatus;
use crate::health::on_demand::CheckOutcome;
use crate::health::services::{HealthServices, Target};
use crate::operator::check::{CheckPeer, CheckView};
use crate::operator::protocol::{Command, Response};

/// How long the answer waits for the announce to be written to every ready peer.
const ANNOUNCE_ACK_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn run(h: &RequestHandler, service: Option<String>) -> Response {
    let target = service.clone().map_or(Target::All, Target::Service);
    let outcomes = match h.health.check_now(&target).await {
        Ok(o) => o,
        Err(e) => return Response::error(e.to_string()),
    };
    let (tx, rx) = oneshot::channel();
    if h.commands
        .send((Command::Check { service }, tx))
        .await
        .is_err()
    {
        return Response::error("the daemon is shutting down");
    }
    match rx.await {
        Ok(r) if r.ok => {}
        Ok(r) => return r,
        Err(_) => return Response::error("the daemon is shutting down"),
    }
    let mut views = Vec::new();
    let mut pending = Vec::new();
    for o in outcomes {
        let (view, late) = sent(&h.published, &h.health, o).await;
        pending.extend(late.into_iter().map(|p| format!("{}: {p}", view.service)));
        views.push(view);
    }
    if !pending.is_empty() {
        return Response::error(format!(
            "announced, but not confirmed within {} s for: {}",
            ANNOUNCE_ACK_TIMEOUT.as_secs(),
            pending.join(", ")
        ));
    }
    match serde_json::to_value(views) {
        Ok(v) => Response::ok(v),
        Err(e) => Response::error(format!("cannot encode the answer: {e}")),
    }
}

/// The service's view once its announce (if decided) was written to every established
/// peer; also the peers it did not reach in time. A session whose initial routes are not in
/// yet is released (and announces) when they are (docs/safety.md rule 4): that is waited
/// for too, unless the rules withdraw the service meanwhile.
async fn sent(
    published: &watch::Receiver<Published>,
    health: &HealthServices,
    o: CheckOutcome,
) -> (CheckView, Vec<String>) {
    let name = o.service.clone();
    let decided = || {
        let p = published.borrow();
        let prefixes = super::requests::prefixes_of(&p.config, &name);
        let v = health.status(&name).map(|s| shown(&p, &s));
        (v, prefixes, p.peers.clone())
    };
    let (_, prefixes, peer_rxs) = decided();
    let advertised = |s: &PeerStatus| prefixes.iter().all(|p| s.rib_out.contains_key(p));
    let mut late = Vec::new();
    for rx in &peer_rxs {
        let mut rx = rx.clone();
        let done = |s: &PeerStatus| {
            let announced = decided().0.is_some_and(|v| v.announced);
            !announced || s.state != State::Established || advertised(s)
        };
        let ok = tokio::time::timeout(ANNOUNCE_ACK_TIMEOUT, rx.wait_for(done))
            .await
            .is_ok_and(|r| r.is_ok());
        if !ok {
            late.push(rx.borrow().name.clone());
        }
    }
    let (shown, _, _) = decided();
    let (state, announced, reason) = match shown {
        Some(v) => (v.state, v.announced, v.reason),
        None => ("unknown".into(), false, "service removed".into()),
    };
    let peers = peer_rxs
        .iter()
        .map(|rx| {
            let s = rx.borrow();
            CheckPeer {
                peer: s.name.clone(),
                peer_state: s.state.to_string(),
                advertised: advertised(&s),
            }
        })
        .collect();
    let view = CheckView {
        service: o.service,
        passed: o.passed,
        result: o.result,
        checks: o.checks,
        state,
        announced,
        reason,
        peers,
    };
    (view, late)
}
