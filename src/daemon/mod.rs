//! The one event loop that owns the daemon's state: health events in, desired routes out to
//! every BGP session; configuration reloads; the control socket and metrics endpoint read
//! published status and never wait on this loop except for `reload`.
//!
//! Safety: every way out of this loop ends with routes withdrawn. A signal withdraws and sends
//! Cease to every peer; a task that dies (panic or otherwise) is an unknown state, so the daemon
//! withdraws everything the same way and exits with an error for the supervisor to restart it.
//!
//! Nothing here waits on a file: a reload's read runs on a thread of its own (`reload.rs`)
//! while the loop goes on handling health events and sessions.
//!
//! The files: this one starts the daemon; `event_loop.rs` is the loop and the shutdown;
//! `peers.rs` and `services.rs` start and stop sessions and checks; `effects.rs` decides and
//! carries it out; `reload.rs` reads and applies a new configuration.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::{AbortHandle, Id, JoinSet};
use tracing::{info, warn};

mod check;
mod effects;
mod event_loop;
mod host;
mod observe;
mod peers;
mod reload;
mod requests;
mod safety;
mod services;
mod systemd;

pub use peers::fsm_config;

use crate::announcer::Exports;
use crate::bfd::engine::Engine as BfdEngine;
use crate::bgp::listener::PeerInbox;
use crate::bgp::status::PeerStatus;
use crate::config::{Config, Secrets};
use crate::health::checker::Health;
use crate::health::services::HealthServices;
use crate::health::task::HealthEvent;
use crate::metrics::{self, CheckLatency, ServiceCounts};
use crate::operator::protocol::{Command, Response};
use crate::operator::server;
use crate::rlimit;
use crate::safety::store::GuardStore;
use peers::PeerHandle;
use safety::{Decision, SafetyState};
use services::ServiceHandle;

/// Time sessions get to withdraw, send Cease and close before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
const CONNECT_RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest idle hold. A host whose session failed a few times in the last minute may be
/// the new primary the moment its path is back: every second held is a second the service is
/// refused. 5 s is BIRD's `error wait time 1, 5` of the ToR examples (the chaos soak found
/// new primaries unannounced for 25-29 s with 30 s here).
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A session up this long has its earlier failures forgotten (the reconnect backoff resets).
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How long `drain` waits for every established peer to have been sent the withdraw.
const DRAIN_ACK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot install signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("{0}")]
    Listen(#[source] std::io::Error),
    #[error("control socket {path}: {source}")]
    Control {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("peer {peer}: {source}")]
    Peer {
        peer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}; all routes were withdrawn")]
    TaskFailed(String),
}

/// What the control socket and the metrics endpoint read; replaced on every change the
/// daemon loop makes (not on session or check changes: those are read live from the
/// watch receivers inside).
#[derive(Clone)]
struct Published {
    config: Arc<Config>,
    peers: Vec<watch::Receiver<PeerStatus>>,
    counts: BTreeMap<String, ServiceCounts>,
    /// What the split-brain rules decided for each service.
    decisions: BTreeMap<String, Decision>,
    /// What each service's clients meet on this host (refusal, fallback, resets).
    clients: BTreeMap<String, host::ClientsStatus>,
}

impl Published {
    fn new(config: &Arc<Config>) -> Published {
        Published {
            config: Arc::clone(config),
            peers: Vec::new(),
            counts: BTreeMap::new(),
            decisions: BTreeMap::new(),
            clients: BTreeMap::new(),
        }
    }
}

type Reply = oneshot::Sender<Response>;
/// The safety records to save, in order.
type PersistRx = mpsc::UnboundedReceiver<(String, crate::safety::guard::Record)>;

/// Everything the loop owns.
struct Daemon {
    path: PathBuf,
    config: Arc<Config>,
    routes: watch::Sender<Exports>,
    /// Sessions wake the loop through this when their sightings or initial routes change.
    sessions_changed: Arc<Notify>,
    safety: SafetyState,
    guard_store: GuardStore,
    /// Records to save, in order, off the event loop.
    persist: mpsc::UnboundedSender<(String, crate::safety::guard::Record)>,
    peers: BTreeMap<String, PeerHandle>,
    sessions: JoinSet<()>,
    inboxes: watch::Sender<Arc<Vec<PeerInbox>>>,
    listeners: Vec<AbortHandle>,
    accepting: JoinSet<std::io::Error>,
    health: HealthServices,
    services: BTreeMap<String, ServiceHandle>,
    checks: JoinSet<()>,
    events: mpsc::Sender<HealthEvent>,
    /// The health tasks' last verdicts.
    up: BTreeMap<String, Health>,
    counts: BTreeMap<String, ServiceCounts>,
    /// Tasks stopped on purpose (reload): their end is not a failure.
    retired: HashSet<Id>,
    published: watch::Sender<Published>,
    next_index: usize,
    /// The BFD thread, started with the first peer that has `bfd = true`.
    bfd: Option<BfdEngine>,
    /// Refusal, fallback and resets of the service addresses (docs/clients.md).
    host: host::HostState,
}

/// Runs until SIGTERM/SIGINT (Ok) or until a task fails (Err). `path` is re-read on reload.
pub async fn run(path: PathBuf, config: Config, secrets: Secrets) -> Result<(), DaemonError> {
    let signals = event_loop::Signals::install()?;
    let config = Arc::new(config);
    let endpoints = bind_endpoints(&config).await?;

    let (events_tx, events) = mpsc::channel::<HealthEvent>(64);
    let (published, published_rx) = watch::channel(Published::new(&config));
    // Every service address refused before any session can start.
    let (host_done_tx, host_done) = mpsc::unbounded_channel();
    let host = host::HostState::start(&config, host_done_tx).await;
    let guard_store = GuardStore::new(&config.control.state_dir);
    let (persist, persist_rx) = mpsc::unbounded_channel();
    let mut d = Daemon {
        path,
        config: Arc::clone(&config),
        routes: watch::channel(Exports::default()).0,
        sessions_changed: Arc::new(Notify::new()),
        safety: SafetyState::default(),
        guard_store: guard_store.clone(),
        persist,
        peers: BTreeMap::new(),
        sessions: JoinSet::new(),
        inboxes: watch::channel(Arc::new(Vec::new())).0,
        listeners: Vec::new(),
        accepting: JoinSet::new(),
        health: HealthServices::new(&config.control.state_dir),
        services: BTreeMap::new(),
        checks: JoinSet::new(),
        events: events_tx,
        up: BTreeMap::new(),
        counts: BTreeMap::new(),
        retired: HashSet::new(),
        published,
        next_index: 0,
        bfd: None,
        host,
    };
    d.start_all(&config, &secrets)?;

    let (commands_tx, commands) = mpsc::channel::<(Command, Reply)>(8);
    let aux = d.spawn_aux(
        published_rx,
        commands_tx,
        endpoints,
        (guard_store, persist_rx),
    );
    info!(
        asn = config.bgp.asn,
        peers = config.bgp.peers.len(),
        services = config.services.len(),
        "primaryd started; nothing is announced before a service passes its checks"
    );

    let inputs = event_loop::Inputs {
        signals,
        events,
        host_done,
        commands,
        aux,
    };
    let outcome = event_loop::run(&mut d, inputs).await;
    let _ = std::fs::remove_file(&config.control.socket);
    outcome.map(|_| ()).map_err(DaemonError::TaskFailed)
}

/// The control socket (and how many clients it may serve), the metrics endpoint if
/// configured.
struct Endpoints {
    control: UnixListener,
    max_clients: usize,
    metrics: Option<TcpListener>,
}

async fn bind_endpoints(config: &Config) -> Result<Endpoints, DaemonError> {
    let max_clients = control_clients(config);
    let control = server::bind(
        &config.control.socket,
        config.control.socket_group.as_deref(),
    )
    .map_err(|source| DaemonError::Control {
        path: config.control.socket.clone(),
        source,
    })?;
    let metrics = match config.metrics.listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Metrics { addr, source })?,
        ),
        None => None,
    };
    Ok(Endpoints {
        control,
        max_clients,
        metrics,
    })
}

impl Daemon {
    /// The tasks beside the loop: the record writer, the control socket, the metrics
    /// endpoint and the latency observer. None of them ends while the daemon runs.
    fn spawn_aux(
        &self,
        published_rx: watch::Receiver<Published>,
        commands_tx: mpsc::Sender<(Command, Reply)>,
        endpoints: Endpoints,
        (guard_store, persist_rx): (GuardStore, PersistRx),
    ) -> JoinSet<String> {
        let handler = Arc::new(requests::RequestHandler {
            published: published_rx.clone(),
            health: self.health.clone(),
            commands: commands_tx,
        });
        let mut aux = JoinSet::new();
        aux.spawn(effects::persist_records(guard_store, persist_rx));
        aux.spawn(async move {
            let e = server::serve(endpoints.control, handler, endpoints.max_clients).await;
            format!("control socket failed: {e}")
        });
        let latency = CheckLatency::default();
        if let Some(l) = endpoints.metrics {
            let scrape =
                observe::scraper(published_rx.clone(), self.health.clone(), latency.clone());
            aux.spawn(async move {
                let e = metrics::serve(l, scrape).await;
                format!("metrics endpoint failed: {e}")
            });
        }
        aux.spawn(observe::observe_latency(
            self.health.clone(),
            published_rx,
            latency,
        ));
        aux
    }

    /// The listeners, every service's checks, then every session, and the first publish.
    fn start_all(&mut self, config: &Config, secrets: &Secrets) -> Result<(), DaemonError> {
        self.bind_listeners(config, secrets)
            .map_err(DaemonError::Listen)?;
        // Services first: persisted drains are loaded before any session can come up.
        for (service, password) in config.services.iter().zip(&secrets.mysql) {
            self.start_service(service, password.clone());
        }
        for ((peer, key), bfd_key) in config
            .bgp
            .peers
            .iter()
            .zip(&secrets.md5)
            .zip(&secrets.bfd_keys)
        {
            self.start_peer(config, peer, key.clone(), bfd_key.clone())?;
        }
        self.publish();
        Ok(())
    }
}

/// Raises the open-file limit, and says how many control clients fit beside the reserve the
/// checks and sessions need.
fn control_clients(config: &Config) -> usize {
    let wanted = config.control.max_clients;
    let (peers, services) = (config.bgp.peers.len(), config.services.len());
    match rlimit::raise_nofile() {
        Ok(n) => {
            let budget = rlimit::control_client_budget(n.soft, wanted, peers, services);
            if n.soft > n.before {
                info!("open-file limit raised from {} to {}", n.before, n.soft);
            }
            if budget < wanted {
                warn!(
                    "open-file limit {} leaves room for {budget} control clients, not {wanted} \
                     ([control] max_clients)",
                    n.soft
                );
            }
            budget
        }
        Err(e) => {
            warn!("cannot read or raise the open-file limit: {e}");
            rlimit::control_client_budget(1024, wanted, peers, services)
        }
    }
}
