//! The one event loop that owns the daemon's state: health events in, desired routes out to
//! every BGP session. Nothing reaches back up the chain.
//!
//! Safety: every way out of this loop ends with routes withdrawn. A signal withdraws and sends
//! Cease to every peer; a task that dies (panic or otherwise) is an unknown state, so the daemon
//! withdraws everything the same way and exits with an error for the supervisor to restart it.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::announcer::{desired_routes, DesiredRoutes};
use crate::bgp::fsm::FsmConfig;
use crate::bgp::session::Session;
use crate::config::{Config, PeerConfig};
use crate::health::checker::Health;
use crate::health::task::{self as health_task, HealthEvent};

/// Time sessions get to withdraw, send Cease and close before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
const CONNECT_RETRY_MIN: Duration = Duration::from_secs(1);
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot install signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("{0}; all routes were withdrawn")]
    TaskFailed(String),
}

pub fn fsm_config(config: &Config, peer: &PeerConfig) -> FsmConfig {
    FsmConfig {
        local_asn: config.bgp.asn,
        router_id: config.bgp.router_id,
        remote_asn: peer.remote_asn,
        hold_time: peer.hold_time,
        connect_retry_min: CONNECT_RETRY_MIN,
        connect_retry_max: CONNECT_RETRY_MAX,
        connect_timeout: CONNECT_TIMEOUT,
    }
}

/// Runs until SIGTERM/SIGINT (Ok) or until a task fails (Err). `passwords` are in service order.
pub async fn run(config: Config, passwords: Vec<Option<String>>) -> Result<(), DaemonError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;

    let (routes_tx, routes_rx) = watch::channel(DesiredRoutes::new());
    let (stop_tx, stop_rx) = watch::channel(None::<String>);
    let mut sessions = JoinSet::new();
    for peer in &config.bgp.peers {
        let session = Session::new(peer.clone(), fsm_config(&config, peer));
        let span = tracing::info_span!("peer", name = %peer.name, address = %peer.address);
        let fut = session.run(routes_rx.clone(), stop_rx.clone());
        sessions.spawn(tracing::Instrument::instrument(fut, span));
    }

    let (events_tx, mut events_rx) = mpsc::channel::<HealthEvent>(64);
    let mut checks = JoinSet::new();
    for (i, (service, password)) in config.services.iter().zip(passwords).enumerate() {
        let fut = health_task::run(
            i,
            service.name.clone(),
            service.mysql.clone(),
            password,
            events_tx.clone(),
        );
        let span = tracing::info_span!("service", name = %service.name);
        checks.spawn(tracing::Instrument::instrument(fut, span));
    }
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
                routes_tx.send_if_modified(|current| {
                    let changed = *current != desired;
                    *current = desired;
                    changed
                });
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
        }
    };

    match &outcome {
        Ok(signal) => info!("{signal}: withdrawing all routes and closing sessions"),
        Err(e) => error!("{e}: withdrawing all routes and closing sessions"),
    }
    checks.abort_all();
    routes_tx.send_replace(DesiredRoutes::new());
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

fn task_failure(what: &str, res: Result<(), tokio::task::JoinError>) -> String {
    match res {
        Ok(()) => format!("{what} task ended unexpectedly"),
        Err(e) if e.is_panic() => format!("{what} task panicked"),
        Err(e) => format!("{what} task failed: {e}"),
    }
}
