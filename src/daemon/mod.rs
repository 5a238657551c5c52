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

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::{AbortHandle, Id, JoinSet};
use tracing::{error, info, warn};

mod check;
mod host;
mod observe;
mod reload;
mod requests;
mod safety;
mod systemd;

use crate::announcer::Exports;
use crate::bfd::auth::AuthKey;
use crate::bfd::engine::{BfdControl, Engine as BfdEngine, EngineOptions, SessionSpec};
use crate::bgp::fsm::FsmConfig;
use crate::bgp::listener::{self, PeerInbox};
use crate::bgp::session::Session;
use crate::bgp::socket;
use crate::bgp::status::PeerStatus;
use crate::config::{self, Config, PeerConfig, Secrets, ServiceConfig};
use crate::health::checker::Health;
use crate::health::services::HealthServices;
use crate::health::task::HealthEvent;
use crate::metrics::{self, CheckLatency, ServiceCounts};
use crate::operator::protocol::{Command, Response};
use crate::operator::server;
use crate::rlimit;
use crate::safety::store::GuardStore;
use safety::{Decision, Effect, Identity, SafetyState};

/// Time sessions get to withdraw, send Cease and close before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
const CONNECT_RETRY_MIN: Duration = Duration::from_secs(1);
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(30);
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
        initial_routes_wait: peer.initial_routes_wait,
    }
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

struct PeerHandle {
    config: PeerConfig,
    md5: Option<String>,
    /// Session settings that depend on `[bgp]` (a change restarts the session).
    fsm: FsmKey,
    stop: watch::Sender<Option<String>>,
    status: watch::Receiver<PeerStatus>,
    inbox: mpsc::Sender<TcpStream>,
    scope: Option<u32>,
    task: AbortHandle,
    bfd_key: Option<AuthKey>,
    /// Changes the BFD session's intervals in place (reload).
    bfd: Option<BfdControl>,
}

#[derive(PartialEq)]
struct FsmKey {
    asn: u32,
    router_id: std::net::Ipv4Addr,
}

struct ServiceHandle {
    config: ServiceConfig,
    password: Option<String>,
    task: AbortHandle,
}

type Reply = oneshot::Sender<Response>;

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
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    let config = Arc::new(config);
    let max_clients = control_clients(&config);

    let control_listener = server::bind(
        &config.control.socket,
        config.control.socket_group.as_deref(),
    )
    .map_err(|source| DaemonError::Control {
        path: config.control.socket.clone(),
        source,
    })?;
    let metrics_listener = match config.metrics.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Metrics { addr, source })?,
        ),
        None => None,
    };

    let (events_tx, mut events_rx) = mpsc::channel::<HealthEvent>(64);
    let (published, published_rx) = watch::channel(Published {
        config: Arc::clone(&config),
        peers: Vec::new(),
        counts: BTreeMap::new(),
        decisions: BTreeMap::new(),
        clients: BTreeMap::new(),
    });
    // Every service address refused before any session can start.
    let (host_done, mut host_done_rx) = mpsc::unbounded_channel();
    let host = host::HostState::start(&config, host_done).await;
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
    let sessions_changed = Arc::clone(&d.sessions_changed);
    d.bind_listeners(&config, &secrets)
        .map_err(DaemonError::Listen)?;
    // Services first: persisted drains are loaded before any session can come up.
    for (service, password) in config.services.iter().zip(&secrets.mysql) {
        d.start_service(service, password.clone());
    }
    for ((peer, key), bfd_key) in config
        .bgp
        .peers
        .iter()
        .zip(&secrets.md5)
        .zip(&secrets.bfd_keys)
    {
        d.start_peer(&config, peer, key.clone(), bfd_key.clone())?;
    }
    d.publish();

    let latency = CheckLatency::default();
    let (commands_tx, mut commands_rx) = mpsc::channel::<(Command, Reply)>(8);
    let handler = Arc::new(requests::RequestHandler {
        published: published_rx.clone(),
        health: d.health.clone(),
        commands: commands_tx,
    });
    let mut aux = JoinSet::new();
    aux.spawn(persist_records(guard_store, persist_rx));
    aux.spawn(async move {
        let e = server::serve(control_listener, handler, max_clients).await;
        format!("control socket failed: {e}")
    });
    if let Some(l) = metrics_listener {
        let scrape = observe::scraper(published_rx.clone(), d.health.clone(), latency.clone());
        aux.spawn(async move {
            let e = metrics::serve(l, scrape).await;
            format!("metrics endpoint failed: {e}")
        });
    }
    aux.spawn(observe::observe_latency(
        d.health.clone(),
        published_rx,
        latency,
    ));
    info!(
        asn = config.bgp.asn,
        peers = config.bgp.peers.len(),
        services = config.services.len(),
        "primaryd started; nothing is announced before a service passes its checks"
    );

    let mut reading = reload::Reading::default();
    let mut host_retry = tokio::time::interval(Duration::from_secs(1));
    // systemd (Type=notify): ready now; the watchdog is kicked by this loop only.
    let mut sd = systemd::Notifier::from_env();
    let mut watchdog = systemd::Ticker::new(sd.watchdog_tick());
    sd.ready(systemd::status_of(&d));
    let outcome = loop {
        tokio::select! {
            () = watchdog.tick() => sd.kick(systemd::stale_of(&d)),
            Some(ev) = events_rx.recv() => d.health_event(ev),
            Some(done) = host_done_rx.recv() => {
                if d.host.done(done) {
                    d.decide(None);
                } else {
                    d.publish();
                }
            }
            _ = host_retry.tick() => {
                if d.host.retry_due() {
                    d.decide(None);
                }
            }
            () = sessions_changed.notified() => d.decide(None),
            Some((command, reply)) = commands_rx.recv() => match command {
                Command::Reload => reading.start(&d.path, Some(reply)),
                Command::Confirm { service } => {
                    let _ = reply.send(d.confirm(&service));
                }
                // `primaryctl check`: the checks' events are queued; decide on them first.
                Command::Check { .. } => {
                    while let Ok(ev) = events_rx.try_recv() {
                        d.health_event(ev);
                    }
                    let _ = reply.send(Response::ok(serde_json::Value::Null));
                }
                other => {
                    let error = format!("{other:?} is not handled by the daemon loop");
                    let _ = reply.send(Response::error(error));
                }
            },
            _ = sigterm.recv() => break Ok("SIGTERM"),
            _ = sigint.recv() => break Ok("SIGINT"),
            _ = sighup.recv() => {
                info!("SIGHUP: reloading {}", d.path.display());
                reading.start(&d.path, None);
            }
            (read, replies) = reading.done() => {
                let r = d.reload(read);
                reload::answer(r, replies);
            }
            Some(res) = d.checks.join_next_with_id() => {
                if let Some(e) = d.unexpected("health check", res) {
                    break Err(e);
                }
            }
            Some(res) = d.sessions.join_next_with_id() => {
                if let Some(e) = d.unexpected("BGP session", res) {
                    break Err(e);
                }
            }
            Some(res) = d.accepting.join_next_with_id() => {
                match res {
                    Ok((_, e)) => break Err(format!("BGP listener failed: {e}")),
                    Err(e) if e.is_cancelled() && d.retired.remove(&e.id()) => {}
                    Err(e) => break Err(format!("BGP listener task failed: {e}")),
                }
            }
            Some(res) = aux.join_next() => {
                break Err(res.unwrap_or_else(|e| format!("task failed: {e}")));
            }
        }
        sd.status(|| systemd::status_of(&d));
    };

    let why = match &outcome {
        Ok(signal) => signal,
        Err(e) => e.as_str(),
    };
    sd.stopping(why);
    match &outcome {
        Ok(signal) => info!("{signal}: withdrawing all routes and closing sessions"),
        Err(e) => error!("{e}: withdrawing all routes and closing sessions"),
    }
    d.checks.abort_all();
    d.accepting.abort_all();
    aux.abort_all();
    // Refused before the withdraw goes out; what was announced is reset once it has.
    let resets = d.host.shutdown().await;
    publish_routes(&d.routes, Exports::default());
    host::reset_now(resets).await;
    let message = match &outcome {
        Ok(_) => "primaryd shutting down",
        Err(_) => "primaryd internal failure",
    };
    for p in d.peers.values() {
        p.stop.send_replace(Some(message.to_string()));
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while d.sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            "sessions did not close within {} s; exiting anyway (the kernel closes the sockets)",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    let _ = std::fs::remove_file(&config.control.socket);
    outcome.map(|_| ()).map_err(DaemonError::TaskFailed)
}

impl Daemon {
    fn bind_listeners(&mut self, config: &Config, secrets: &Secrets) -> std::io::Result<()> {
        let md5: Vec<(&PeerConfig, Option<&str>)> = config
            .bgp
            .peers
            .iter()
            .zip(&secrets.md5)
            .map(|(p, k)| (p, k.as_deref()))
            .collect();
        let listeners = listener::bind(&config.bgp.listen, &md5)?;
        for old in self.listeners.drain(..) {
            self.retired.insert(old.id());
            old.abort();
        }
        for l in listeners {
            let handle = self
                .accepting
                .spawn(listener::run(l, self.inboxes.subscribe()));
            self.listeners.push(handle);
        }
        Ok(())
    }

    fn start_peer(
        &mut self,
        config: &Config,
        peer: &PeerConfig,
        md5: Option<String>,
        bfd_key: Option<AuthKey>,
    ) -> Result<(), DaemonError> {
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
        let (inbox, accepted) = mpsc::channel(1);
        let (stop, stop_rx) = watch::channel(None);
        let (mut session, status) =
            Session::new(peer.clone(), fsm_config(config, peer), md5.clone());
        let mut bfd = None;
        if let Some(b) = &peer.bfd {
            let link = self
                .bfd_session(peer, b.intervals(), bfd_key.clone())
                .map_err(|source| DaemonError::Peer {
                    peer: peer.name.clone(),
                    source,
                })?;
            bfd = Some(link.control());
            session = session.with_bfd(link);
        }
        let session = session.notify(Arc::clone(&self.sessions_changed));
        let span = tracing::info_span!("peer", name = %peer.name, address = %peer.address);
        let fut = session.run(self.routes.subscribe(), stop_rx, accepted);
        let task = self
            .sessions
            .spawn(tracing::Instrument::instrument(fut, span));
        self.peers.insert(
            peer.name.clone(),
            PeerHandle {
                config: peer.clone(),
                md5,
                fsm: FsmKey {
                    asn: config.bgp.asn,
                    router_id: config.bgp.router_id,
                },
                stop,
                status,
                inbox,
                scope,
                task,
                bfd_key,
                bfd,
            },
        );
        self.update_inboxes();
        Ok(())
    }

    /// A BFD session to `peer`, on the BFD thread (started on first use).
    fn bfd_session(
        &mut self,
        peer: &PeerConfig,
        intervals: crate::bfd::fsm::Intervals,
        auth: Option<AuthKey>,
    ) -> std::io::Result<crate::bfd::engine::BfdLink> {
        let engine = match &mut self.bfd {
            Some(e) => e,
            None => self.bfd.insert(BfdEngine::start(EngineOptions::default())?),
        };
        engine.add(SessionSpec {
            name: peer.name.clone(),
            peer: peer.address,
            interface: peer.interface.clone(),
            local: peer.local_address,
            intervals,
            auth,
        })
    }

    /// Ends a session gracefully: withdraw, Cease with `message`, close. Its task then ends
    /// on its own; that end is expected.
    fn stop_peer(&mut self, name: &str, message: &str) {
        if let Some(p) = self.peers.remove(name) {
            self.retired.insert(p.task.id());
            p.stop.send_replace(Some(message.to_string()));
        }
        self.update_inboxes();
    }

    fn update_inboxes(&mut self) {
        let inboxes = self
            .peers
            .values()
            .map(|p| PeerInbox {
                name: p.config.name.clone(),
                address: p.config.address,
                scope: p.scope,
                tx: p.inbox.clone(),
            })
            .collect();
        self.inboxes.send_replace(Arc::new(inboxes));
    }

    fn start_service(&mut self, service: &ServiceConfig, password: Option<String>) {
        let task = self.health.add(
            self.next_index,
            service,
            password.clone(),
            self.events.clone(),
        );
        self.next_index += 1;
        let task = self.checks.spawn(task);
        self.up.insert(service.name.clone(), Health::Unknown);
        self.safety
            .add(service, self.guard_store.load(&service.name));
        self.counts.entry(service.name.clone()).or_default();
        self.services.insert(
            service.name.clone(),
            ServiceHandle {
                config: service.clone(),
                password,
                task,
            },
        );
    }

    fn stop_service(&mut self, name: &str) {
        if let Some(s) = self.services.remove(name) {
            self.retired.insert(s.task.id());
            s.task.abort();
        }
        self.health.remove(name);
        self.safety.remove(name);
        self.up.remove(name);
        self.counts.remove(name);
    }

    fn health_event(&mut self, ev: HealthEvent) {
        // Events of a task retired by a reload may still be queued: only current ones count.
        if !self.services.contains_key(&ev.name) {
            return;
        }
        let before = self.up.insert(ev.name.clone(), ev.health);
        if before != Some(ev.health) {
            self.counts.entry(ev.name.clone()).or_default().transitions += 1;
        }
        self.safety.set_health(&ev.name, ev.health, &ev.reason);
        self.safety
            .set_facts(&ev.name, ev.facts.as_ref().map(safety::Facts::from));
        self.decide(None);
    }

    /// Applies the split-brain rules to every service and publishes what the sessions must
    /// announce (every health event, session change, reload and confirm ends here).
    fn decide(&mut self, confirm: Option<&str>) {
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

    fn carry_out(&mut self, effect: Effect) {
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
    fn confirm(&mut self, service: &str) -> Response {
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

    fn publish(&mut self) {
        self.published.send_replace(Published {
            config: Arc::clone(&self.config),
            peers: self.peers.values().map(|p| p.status.clone()).collect(),
            counts: self.counts.clone(),
            decisions: self.safety.decisions(),
            clients: self.host.status(),
        });
    }

    /// Classifies a task's end: None if it was retired on purpose.
    fn unexpected(
        &mut self,
        what: &str,
        res: Result<(Id, ()), tokio::task::JoinError>,
    ) -> Option<String> {
        match res {
            Ok((id, ())) if self.retired.remove(&id) => None,
            Err(e) if self.retired.remove(&e.id()) => None,
            Ok(_) => Some(format!("{what} task ended unexpectedly")),
            Err(e) if e.is_panic() => Some(format!("{what} task panicked")),
            Err(e) => Some(format!("{what} task failed: {e}")),
        }
    }

    /// Applies a re-read configuration. An invalid or unreadable one changes nothing; a valid
    /// one is applied with the least disruption: unchanged sessions and checks keep running.
    fn reload(&mut self, read: Result<(Config, Secrets), config::ConfigError>) -> Response {
        let (new, secrets) = match read {
            Ok(v) => v,
            Err(e) => return Response::error(format!("configuration not reloaded:\n{e}")),
        };
        if new.control != self.config.control || new.metrics != self.config.metrics {
            return Response::error(
                "configuration not reloaded: [control] and [metrics] changes need a restart",
            );
        }
        let mut changes = Vec::new();

        // Services: a changed check restarts the task (state back to unknown: withdrawn until
        // it passes again); changed prefixes or attributes only change what is announced.
        let wanted: BTreeMap<&str, (&ServiceConfig, &Option<String>)> = new
            .services
            .iter()
            .zip(&secrets.mysql)
            .map(|(s, p)| (s.name.as_str(), (s, p)))
            .collect();
        let current: Vec<String> = self.services.keys().cloned().collect();
        for name in current {
            match wanted.get(name.as_str()) {
                None => {
                    self.stop_service(&name);
                    changes.push(format!("service {name} removed"));
                }
                Some((cfg, password)) => {
                    let old = &self.services[&name];
                    let same_check = old.config.mysql == cfg.mysql
                        && old.config.role == cfg.role
                        && old.config.prefixes == cfg.prefixes
                        && old.config.disable_file == cfg.disable_file
                        && old.config.manage_addresses == cfg.manage_addresses
                        && old.password == **password;
                    if !same_check {
                        self.stop_service(&name);
                        self.start_service(cfg, (*password).clone());
                        changes.push(format!("service {name} restarted (check changed)"));
                    } else if old.config != **cfg {
                        if let Some(s) = self.services.get_mut(&name) {
                            s.config = (*cfg).clone();
                        }
                        changes.push(format!("service {name} attributes changed"));
                    }
                }
            }
        }
        for (name, (cfg, password)) in &wanted {
            if !self.services.contains_key(*name) {
                self.start_service(cfg, (*password).clone());
                changes.push(format!("service {name} added"));
            }
        }

        // Peers: any change to a peer or to [bgp] identity restarts its session.
        let key = FsmKey {
            asn: new.bgp.asn,
            router_id: new.bgp.router_id,
        };
        type Wanted<'a> = (&'a PeerConfig, &'a Option<String>, &'a Option<AuthKey>);
        let wanted: BTreeMap<&str, Wanted> = new
            .bgp
            .peers
            .iter()
            .zip(&secrets.md5)
            .zip(&secrets.bfd_keys)
            .map(|((p, k), b)| (p.name.as_str(), (p, k, b)))
            .collect();
        let current: Vec<String> = self.peers.keys().cloned().collect();
        for name in current {
            // New BFD intervals alone keep the session: a Poll Sequence carries them.
            let mut retime = None;
            let keep = wanted
                .get(name.as_str())
                .is_some_and(|(cfg, md5, bfd_key)| {
                    let p = &self.peers[&name];
                    retime = crate::bfd::config::intervals_only_change(&p.config, cfg);
                    (p.config == **cfg || retime.is_some())
                        && p.md5 == **md5
                        && p.bfd_key == **bfd_key
                        && p.fsm == key
                });
            if let (true, Some(i), Some(p)) = (keep, retime, self.peers.get_mut(&name)) {
                if let (Some(c), Some((cfg, ..))) = (&p.bfd, wanted.get(name.as_str())) {
                    c.set_intervals(i);
                    p.config = (*cfg).clone();
                    changes.push(format!("peer {name}: BFD intervals changed"));
                }
            }
            if !keep {
                let why = if wanted.contains_key(name.as_str()) {
                    "peer configuration changed"
                } else {
                    "peer removed from the configuration"
                };
                self.stop_peer(&name, why);
                changes.push(format!("peer {name}: session closed ({why})"));
            }
        }
        if new.bgp.listen != self.config.bgp.listen
            || new
                .bgp
                .peers
                .iter()
                .zip(&secrets.md5)
                .any(|(p, k)| k.is_some() && !self.peers.contains_key(&p.name) || p.ttl_security)
        {
            // New MD5 keys or TTLs must be on the listening sockets before the peer's SYN.
            if let Err(e) = self.bind_listeners(&new, &secrets) {
                error!("reload: listeners: {e}");
                changes.push(format!("listeners not rebound: {e}"));
            }
        }
        for (name, (cfg, md5, bfd_key)) in &wanted {
            if !self.peers.contains_key(*name) {
                if let Err(e) = self.start_peer(&new, cfg, (*md5).clone(), (*bfd_key).clone()) {
                    error!("reload: {e}");
                    changes.push(format!("peer {name} not started: {e}"));
                } else {
                    changes.push(format!("peer {name} started"));
                }
            }
        }

        self.config = Arc::new(new);
        self.decide(None);
        let summary = if changes.is_empty() {
            "configuration reloaded: no changes".to_string()
        } else {
            format!("configuration reloaded: {}", changes.join("; "))
        };
        info!("{summary}");
        Response::ok(serde_json::Value::String(summary))
    }
}

/// Saves the rules' records in the order they were decided, off the event loop. A record that
/// cannot be saved is logged: the daemon still acts on it, but a restart would forget it.
async fn persist_records(
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

/// Publishes `desired` to every session if it differs from what they have.
fn publish_routes(tx: &watch::Sender<Exports>, desired: Exports) {
    tx.send_if_modified(|current| {
        let changed = *current != desired;
        *current = desired;
        changed
    });
}
