//! The one event loop that owns the daemon's state: health events in, desired routes out to
//! every BGP session. Nothing reaches back up the chain.
//!
//! Safety: every way out of this loop ends with routes withdrawn. A signal withdraws and sends
//! Cease to every peer; a task that dies (panic or otherwise) is an unknown state, so the daemon
//! withdraws everything the same way and exits with an error for the supervisor to restart it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::announcer::{desired_routes, DesiredRoutes, PublishedRoutes};
use crate::bgp::fsm::FsmConfig;
use crate::bgp::listener::{self, PeerInbox};
use crate::bgp::session::Session;
use crate::bgp::socket;
use crate::config::{Config, PeerConfig, Secrets};
use crate::health::checker::Health;
use crate::health::control as health_control;
use crate::health::task::HealthEvent;

/// Time sessions get to withdraw, send Cease and close before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
const CONNECT_RETRY_MIN: Duration = Duration::from_secs(1);
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A session up this long has its earlier failures forgotten (the reconnect backoff resets).
const STABLE_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot install signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("{0}")]
    Listen(#[source] std::io::Error),
    #[error("peer {peer}: {source}")]
    Peer {
        peer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}; all routes were withdrawn")]
    TaskFailed(String),
}

pub fn fsm_config(config: &Config, peer: &PeerConfig) -> FsmConfig {
    // Jitter only needs to differ between daemons and peers, not to be unpredictable.
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ peer
            .name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    FsmConfig {
        local_asn: config.bgp.asn,
        router_id: config.bgp.router_id,
        remote_asn: peer.remote_asn,
        hold_time: peer.hold_time,
        passive: peer.passive,
        connect_retry_min: CONNECT_RETRY_MIN,
        connect_retry_max: CONNECT_RETRY_MAX,
        stable_after: STABLE_AFTER,
        connect_timeout: CONNECT_TIMEOUT,
        max_prefixes: peer.max_prefixes,
        max_prefixes_restart: peer.max_prefixes_restart,
        next_hop_ipv4: peer.next_hop_ipv4,
        next_hop_ipv6: peer.next_hop_ipv6,
        jitter_seed: seed,
    }
}

/// Runs until SIGTERM/SIGINT (Ok) or until a task fails (Err).
pub async fn run(config: Config, secrets: Secrets) -> Result<(), DaemonError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;

    let md5: Vec<(&PeerConfig, Option<&str>)> = config
        .bgp
        .peers
        .iter()
        .zip(&secrets.md5)
        .map(|(p, k)| (p, k.as_deref()))
        .collect();
    let listeners = listener::bind(&config.bgp.listen, &md5).map_err(DaemonError::Listen)?;

    let (routes_tx, routes_rx) = watch::channel(PublishedRoutes::default());
    let (stop_tx, stop_rx) = watch::channel(None::<String>);
    let mut sessions = JoinSet::new();
    let mut peer_status = Vec::new();
    let mut inboxes = Vec::new();
    for (peer, key) in config.bgp.peers.iter().zip(&secrets.md5) {
        let scope = match &peer.interface {
            Some(ifname) => {
                Some(
                    socket::interface_index(ifname).map_err(|source| DaemonError::Peer {
                        peer: peer.name.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel(1);
        inboxes.push(PeerInbox {
            name: peer.name.clone(),
            address: peer.address,
            scope,
            tx,
        });
        let (session, status) = Session::new(peer.clone(), fsm_config(&config, peer), key.clone());
        peer_status.push(status);
        let span = tracing::info_span!("peer", name = %peer.name, address = %peer.address);
        let fut = session.run(routes_rx.clone(), stop_rx.clone(), rx);
        sessions.spawn(tracing::Instrument::instrument(fut, span));
    }
    let inboxes = Arc::new(inboxes);
    let mut accepting = JoinSet::new();
    for l in listeners {
        accepting.spawn(listener::run(l, Arc::clone(&inboxes)));
    }

    let (events_tx, mut events_rx) = mpsc::channel::<HealthEvent>(64);
    // Loads persisted drains before any task starts: a drained service is never announced,
    // not even once. `_health_control` is the drain/snapshot API for the control socket.
    let (_health_control, mut checks) =
        health_control::start(&config, secrets.mysql, events_tx.clone());
    drop(events_tx);
    info!(
        asn = config.bgp.asn,
        peers = config.bgp.peers.len(),
        services = config.services.len(),
        "primaryd started; nothing is announced before a service passes its checks"
    );

    let mut health = vec![Health::Unknown; config.services.len()];
    let outcome = loop {
        tokio::select! {
            Some(ev) = events_rx.recv() => {
                if let Some(h) = health.get_mut(ev.service) {
                    *h = ev.health;
                }
                let desired = desired_routes(&config.services, &health);
                publish_routes(&routes_tx, desired);
            }
            _ = sigterm.recv() => break Ok("SIGTERM"),
            _ = sigint.recv() => break Ok("SIGINT"),
            _ = sighup.recv() => {
                warn!("SIGHUP: configuration reload is not implemented in this version; \
                       the running configuration is unchanged");
            }
            Some(res) = checks.join_next() => {
                break Err(task_failure("health check", res));
            }
            Some(res) = sessions.join_next() => {
                break Err(task_failure("BGP session", res));
            }
            Some(res) = accepting.join_next() => {
                break Err(match res {
                    Ok(e) => format!("BGP listener failed: {e}"),
                    Err(e) => format!("BGP listener task failed: {e}"),
                });
            }
        }
    };

    match &outcome {
        Ok(signal) => info!("{signal}: withdrawing all routes and closing sessions"),
        Err(e) => error!("{e}: withdrawing all routes and closing sessions"),
    }
    checks.abort_all();
    accepting.abort_all();
    publish_routes(&routes_tx, DesiredRoutes::new());
    stop_tx.send_replace(Some(match &outcome {
        Ok(_) => "primaryd shutting down".to_string(),
        Err(_) => "primaryd internal failure".to_string(),
    }));
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            "sessions did not close within {} s; exiting anyway (the kernel closes the sockets)",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    outcome.map(|_| ()).map_err(DaemonError::TaskFailed)
}

/// Publishes `desired` to every session if it differs from what they have, under a new
/// generation.
fn publish_routes(tx: &watch::Sender<PublishedRoutes>, desired: DesiredRoutes) {
    tx.send_if_modified(|current| {
        if current.routes == desired {
            return false;
        }
        current.generation += 1;
        current.routes = desired;
        true
    });
}

fn task_failure(what: &str, res: Result<(), tokio::task::JoinError>) -> String {
    match res {
        Ok(()) => format!("{what} task ended unexpectedly"),
        Err(e) if e.is_panic() => format!("{what} task panicked"),
        Err(e) => format!("{what} task failed: {e}"),
    }
}
