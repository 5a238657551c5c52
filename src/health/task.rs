//! The tokio task that checks one service and reports each health transition, and each
//! change of the server facts (term, server_id, start time; see [`super::term`]).
//!
//! It checks every `interval_ms` (a check never overlaps the next; a slow check delays the
//! schedule instead of causing a burst), and at once when the watch connection ends (the
//! server died, shut down, or someone killed the watch). Drain commands are applied at once,
//! even in the middle of a check; so is a fence, on a connection of its own so a hung check
//! never holds it up. After every change the service's [`ServiceStatus`] is
//! published on its watch channel.
//!
//! What a check looks at besides MySQL (the disable file, the local addresses) and what the
//! task does before its first check (load the persisted drain, add addresses to `lo`) runs
//! off the event loop with a deadline (`crate::blocking`); an answer that does not come in
//! time withdraws with a reason that says so (fail closed).

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, info, trace, warn, Instrument};

use super::address;
use super::backoff::Backoff;
use super::checker::{Health, Transition};
use super::drain::{DrainInfo, DrainStore};
use super::fence::{self, FenceError};
use super::mysql::{MysqlProbe, ProbeResult};
use super::on_demand::Asked;
use super::state::{CheckInput, ServiceState, ServiceStatus};
use super::term::ServerFacts;
use super::watch_connection::{Watch, WatchEnd};
use crate::blocking::{self, Lane};
use crate::config::ServiceConfig;

/// A watch that ended is parked again after this, doubling while it keeps ending ...
const WATCH_RETRY_MIN: Duration = Duration::from_secs(1);
/// ... up to this.
const WATCH_RETRY_MAX: Duration = Duration::from_secs(60);
/// A watch that stayed parked this long has its earlier endings forgotten.
const WATCH_STABLE: Duration = Duration::from_secs(60);
/// Bound on loading the drain record and on `ip addr add` before the first check.
const PREPARE_DEADLINE: Duration = Duration::from_secs(5);

/// A service's health changed, or the facts about its server did (sent only then, not on
/// every check).
#[derive(Debug, Clone)]
pub struct HealthEvent {
    /// Index of the service in the configuration it was started with.
    pub service: usize,
    pub name: String,
    pub health: Health,
    pub reason: String,
    /// What the latest check that got an answer learnt; `None` before the first.
    pub facts: Option<ServerFacts>,
}

/// Requests from the control path (see [`super::control::HealthServices`]).
#[derive(Debug)]
pub(crate) enum Command {
    /// Drain (`Some`) or undrain (`None`); answered with the status after the change.
    SetDrain {
        drained: Option<DrainInfo>,
        done: oneshot::Sender<ServiceStatus>,
    },
    /// Make the server read-only; answered when it is, or with why not.
    Fence {
        reason: String,
        done: oneshot::Sender<Result<(), FenceError>>,
    },
    /// An operator confirmed the server: write a term above this at the next healthy check.
    ConfirmTerm { above: u64 },
    /// `primaryctl check`: check now, answer after the result reached the daemon
    /// ([`super::on_demand`]).
    CheckNow {
        done: oneshot::Sender<super::on_demand::CheckOutcome>,
    },
}

/// Everything one service's task needs.
pub(crate) struct TaskSetup {
    pub index: usize,
    pub service: ServiceConfig,
    pub password: Option<String>,
    /// Where the service's drain is persisted; loaded before the first check, so a drained
    /// service is never announced. None: no persisted drains (tests).
    pub drains: Option<DrainStore>,
    pub events: mpsc::Sender<HealthEvent>,
    pub commands: mpsc::Receiver<Command>,
    pub status: watch::Sender<ServiceStatus>,
}

/// Checks one service without a control path (no drain commands; the status is not
/// published anywhere). Returns when the receiver of `events` is gone.
pub async fn run(
    index: usize,
    service: ServiceConfig,
    password: Option<String>,
    events: mpsc::Sender<HealthEvent>,
) {
    let (_keep_open, commands) = mpsc::channel(1);
    let state = ServiceState::new(&service, None, Instant::now());
    let (status, _) = watch::channel(state.status(Instant::now(), SystemTime::now(), false));
    run_task(TaskSetup {
        index,
        service,
        password,
        drains: None,
        events,
        commands,
        status,
    })
    .await
}

/// What the task tells the outside world; borrowed by the helpers.
struct Outlet<'a> {
    index: usize,
    name: &'a str,
    events: &'a mpsc::Sender<HealthEvent>,
    status: &'a watch::Sender<ServiceStatus>,
}

impl Outlet<'_> {
    fn publish(&self, state: &ServiceState, watching: bool) {
        self.status
            .send_replace(state.status(Instant::now(), SystemTime::now(), watching));
    }

    /// Logs a transition and sends it to the daemon; false when the daemon is gone.
    async fn report(&self, t: Transition, facts: Option<&ServerFacts>) -> bool {
        let name = self.name;
        if t.to == Health::Up {
            info!(service = %name, from = %t.from, reason = %t.reason, event = "service_up", "service up");
        } else {
            warn!(service = %name, from = %t.from, to = %t.to, reason = %t.reason, event = "service_down", "service down");
        }
        let event = HealthEvent {
            service: self.index,
            name: name.to_string(),
            health: t.to,
            reason: t.reason,
            facts: facts.cloned(),
        };
        self.events.send(event).await.is_ok()
    }

    /// After a check: sends the transition, if any, or else the facts when they changed
    /// since they were last sent (`sent`, updated); false when the daemon is gone.
    async fn after_check(
        &self,
        state: &ServiceState,
        transition: Option<Transition>,
        sent: &mut Option<ServerFacts>,
    ) -> bool {
        let facts = state.facts();
        let changed = match (facts, sent.as_ref()) {
            (Some(now), Some(before)) => now.differs(before),
            (now, before) => now.is_some() != before.is_some(),
        };
        if let (true, Some(f)) = (changed, facts) {
            info!(service = %self.name, change = %f.change_from(sent.as_ref()), "server facts");
        }
        let alive = match transition {
            Some(t) => self.report(t, facts).await,
            None if changed => {
                let event = HealthEvent {
                    service: self.index,
                    name: self.name.to_string(),
                    health: state.health(),
                    reason: state.reason().to_string(),
                    facts: facts.cloned(),
                };
                self.events.send(event).await.is_ok()
            }
            None => return true,
        };
        *sent = facts.cloned();
        alive
    }

    /// Applies a control command; false when the daemon is gone.
    async fn apply(
        &self,
        cmd: Command,
        state: &mut ServiceState,
        watching: bool,
        fencer: &mut Fencer,
        confirm: &mut Option<u64>,
        asked: &mut Asked,
    ) -> bool {
        match cmd {
            Command::CheckNow { done } => {
                asked.push(done);
                true
            }
            Command::Fence { reason, done } => {
                fencer.start(self.name, reason, done);
                true
            }
            Command::ConfirmTerm { above } => {
                info!(service = %self.name, above, "confirmed: the next healthy check writes a new term");
                *confirm = Some(confirm.map_or(above, |a| a.max(above)));
                true
            }
            Command::SetDrain { drained, done } => {
                match &drained {
                    Some(d) => info!(service = %self.name, reason = %d.reason(), "drained"),
                    None => info!(service = %self.name, "undrained"),
                }
                let t = state.set_drained(drained, Instant::now());
                self.publish(state, watching);
                let alive = match t {
                    Some(t) => self.report(t, state.facts()).await,
                    None => true,
                };
                let _ = done.send(state.status(Instant::now(), SystemTime::now(), watching));
                alive
            }
        }
    }
}

/// Runs fences, each in a task of its own bounded by the check timeout.
struct Fencer {
    opts: mysql_async::Opts,
    timeout: Duration,
    /// The reason of the last fence: a repeat that succeeds again is logged at debug only.
    last_reason: Option<String>,
}

impl Fencer {
    fn start(&mut self, name: &str, reason: String, done: oneshot::Sender<Result<(), FenceError>>) {
        let repeat = self.last_reason.as_deref() == Some(reason.as_str());
        self.last_reason = Some(reason.clone());
        let (opts, timeout, name) = (self.opts.clone(), self.timeout, name.to_string());
        let job = async move {
            let r = fence::set_read_only(opts, timeout).await;
            match &r {
                Ok(_) if repeat => debug!(service = %name, %reason, "fenced again"),
                Ok(flavour) => {
                    warn!(service = %name, %reason, sql = fence::fence_sql(flavour).0, "fenced")
                }
                Err(e) => error!(service = %name, %reason, error = %e, "fencing failed"),
            }
            let _ = done.send(r.map(|_| ()));
        };
        tokio::spawn(job.in_current_span());
    }
}

/// The disable file gate: `Some(reason)` while the file exists (or cannot be checked in
/// time).
async fn disabled(service: &ServiceConfig, lane: &Lane, deadline: Duration) -> Option<String> {
    let path = service.disable_file.clone()?;
    let looked = path.clone();
    match lane.run(deadline, move || looked.try_exists()).await {
        Ok(Ok(false)) => None,
        Ok(Ok(true)) => Some(format!("disabled by file {}", path.display())),
        Ok(Err(e)) => Some(format!(
            "disable file {} cannot be checked: {e}",
            path.display()
        )),
        Err(e) => Some(format!(
            "disable file {} cannot be checked: {e} (hung file system?)",
            path.display()
        )),
    }
}

/// The address gate: `Some(reason)` while a prefix address is not configured locally (or
/// the addresses cannot be listed in time).
async fn addresses(service: &ServiceConfig, lane: &Lane, deadline: Duration) -> Option<String> {
    let prefixes = service.prefixes.clone();
    lane.run(deadline, move || address::check(&prefixes))
        .await
        .unwrap_or_else(|e| Some(format!("cannot list local addresses: {e}")))
}

/// The lanes a check's host facts run on: one stuck job holds up only its own kind.
#[derive(Default)]
struct HostLanes {
    disable_file: Lane,
    addresses: Lane,
}

/// Before the first check: `manage_addresses`, then the persisted drain. A drain record that
/// cannot be read in time drains (as an unreadable one does).
async fn prepare(
    service: &ServiceConfig,
    drains: Option<DrainStore>,
    deadline: Duration,
) -> Option<DrainInfo> {
    let name = service.name.as_str();
    if service.manage_addresses {
        let prefixes = service.prefixes.clone();
        match blocking::run(deadline, move || address::add_to_lo(&prefixes)).await {
            Ok(Ok(added)) if added.is_empty() => {}
            Ok(Ok(added)) => info!(service = %name, ?added, "added service addresses to lo"),
            // Not fatal: the address check withdraws the service and says why.
            Ok(Err(e)) => tracing::error!(service = %name, "manage_addresses: {e}"),
            Err(e) => tracing::error!(service = %name, "manage_addresses: `ip addr add`: {e}"),
        }
    }
    let store = drains?;
    let file = store.path(name);
    let owned = (store.clone(), name.to_string());
    let drained = blocking::run(deadline, move || owned.0.load(&owned.1))
        .await
        .unwrap_or_else(|e| {
            let note = format!(
                "drain record {} unreadable ({e}); treated as drained",
                file.display()
            );
            Some(DrainInfo::new(SystemTime::now(), Some(note)))
        });
    if let Some(d) = &drained {
        warn!(service = %name, reason = %d.reason(), file = %file.display(),
              "drained (persisted): not announced until undrained");
    }
    drained
}

/// The watch connection of one service and when it may be parked again.
struct WatchSlot {
    watch: Option<Watch>,
    started: Instant,
    backoff: Backoff,
}

impl WatchSlot {
    fn new() -> WatchSlot {
        WatchSlot {
            watch: None,
            started: Instant::now(),
            backoff: Backoff::new(WATCH_RETRY_MIN, WATCH_RETRY_MAX),
        }
    }

    fn is_parked(&self) -> bool {
        self.watch.is_some()
    }

    async fn end(&mut self) -> WatchEnd {
        match &mut self.watch {
            Some(w) => w.ended().await,
            None => std::future::pending().await,
        }
    }

    /// After the watch ended: true when a check is due now (it had been parked).
    fn ended(&mut self, name: &str, end: WatchEnd) -> bool {
        self.watch = None;
        if end.parked && self.started.elapsed() >= WATCH_STABLE {
            self.backoff.succeeded();
        }
        let retry = self.backoff.failed(Instant::now());
        if end.parked {
            info!(service = %name, reason = %end.reason, "watch ended; checking now");
        } else {
            debug!(service = %name, reason = %end.reason, retry_ms = retry.as_millis() as u64, "watch not parked");
        }
        end.parked
    }

    /// Parks the watch once there is a healthy connection to watch.
    fn park(&mut self, name: &str, probe: &MysqlProbe) {
        let now = Instant::now();
        if self.watch.is_some() || !self.backoff.ready(now) {
            return;
        }
        if let Some(flavour) = probe.flavour() {
            debug!(service = %name, "parking the watch connection");
            self.watch = Some(Watch::start(probe.opts(), flavour, probe.timeout()));
            self.started = now;
        }
    }
}

/// What the loop does next.
enum Next {
    /// Check now (`true`: because the watch ended).
    Check(bool),
    /// Stop: the daemon is gone.
    Stop,
}

/// One service's checks: everything the task's loop keeps between checks.
struct Checks<'a> {
    service: &'a ServiceConfig,
    out: Outlet<'a>,
    commands: mpsc::Receiver<Command>,
    probe: MysqlProbe,
    fencer: Fencer,
    state: ServiceState,
    /// The facts last sent to the daemon.
    sent_facts: Option<ServerFacts>,
    lanes: HostLanes,
    ticker: tokio::time::Interval,
    watch: WatchSlot,
    /// The previous failed probe's text: repeats of the same failure are logged at trace only.
    last_failure: Option<String>,
    /// An operator's confirm waiting for the probe (which a running check borrows).
    confirm: Option<u64>,
    /// When the previous check answered healthy: the next one must answer within timeout_ms
    /// of it (super::deadline).
    last_healthy: Option<Instant>,
    /// `primaryctl check` requests waiting for a check of their own.
    asked: Asked,
}

impl Checks<'_> {
    /// Applies a control command; false when the daemon is gone.
    async fn apply(&mut self, cmd: Command) -> bool {
        let watching = self.watch.is_parked();
        self.out
            .apply(
                cmd,
                &mut self.state,
                watching,
                &mut self.fencer,
                &mut self.confirm,
                &mut self.asked,
            )
            .await
    }

    /// Waits for a reason to check, applying commands and damping's end meanwhile.
    async fn next(&mut self) -> Next {
        loop {
            let damped = self.state.damped_until();
            tokio::select! {
                biased;
                _ = self.out.events.closed() => return Next::Stop,
                Some(cmd) = self.commands.recv() => {
                    if !self.apply(cmd).await {
                        return Next::Stop;
                    }
                }
                // A requested check starts at once (and resets the schedule, like the watch's).
                () = std::future::ready(()), if self.asked.pending() => return Next::Check(true),
                end = self.watch.end() => {
                    let now = self.watch.ended(self.out.name, end);
                    self.out.publish(&self.state, false);
                    if now {
                        return Next::Check(true);
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(
                    damped.unwrap_or_else(Instant::now),
                )), if damped.is_some() => {
                    if let Some(t) = self.state.tick(Instant::now()) {
                        self.out.publish(&self.state, self.watch.is_parked());
                        if !self.out.report(t, self.state.facts()).await {
                            return Next::Stop;
                        }
                    }
                }
                _ = self.ticker.tick() => return Next::Check(false),
            }
        }
    }

    /// The check, with the host facts beside it. Commands are applied while it runs; it is
    /// never cancelled except when the daemon is gone (`None`).
    async fn probe(&mut self) -> Option<(ProbeResult, (Option<String>, Option<String>))> {
        let (service, cfg) = (self.service, &self.service.mysql);
        let facts = async {
            tokio::join!(
                disabled(service, &self.lanes.disable_file, cfg.timeout),
                addresses(service, &self.lanes.addresses, cfg.timeout)
            )
        };
        let budget = super::deadline::check_budget(
            cfg.interval,
            cfg.timeout,
            self.last_healthy,
            Instant::now(),
        );
        let check = async { tokio::join!(self.probe.probe_within(budget), facts) };
        tokio::pin!(check);
        loop {
            tokio::select! {
                biased;
                _ = self.out.events.closed() => return None,
                Some(cmd) = self.commands.recv() => {
                    let watching = self.watch.is_parked();
                    let alive = self
                        .out
                        .apply(cmd, &mut self.state, watching, &mut self.fencer, &mut self.confirm, &mut self.asked)
                        .await;
                    if !alive {
                        return None;
                    }
                }
                r = &mut check => return Some(r),
            }
        }
    }

    /// One check and what follows from it; `None` when the daemon is gone (during the
    /// check), `Some(false)` when it went away after it.
    async fn check(&mut self, from_watch: bool) -> Option<bool> {
        let started = Instant::now();
        self.asked.starting();
        if let Some(above) = self.confirm.take() {
            self.probe.confirm_term_above(above);
        }
        let (result, (disabled, address)) = self.probe().await?;
        let latency = started.elapsed();
        if from_watch {
            // The next regular check is a full interval after this one.
            self.ticker.reset();
        }
        self.last_healthy = result.is_healthy().then(Instant::now);
        self.log_failure(&result, latency);
        let check = CheckInput {
            result,
            latency,
            disabled,
            address,
        };
        let transition = self.state.observe(check, Instant::now());
        self.state.set_facts(self.probe.facts().cloned());
        if self.service.mysql.watch_connection {
            self.watch.park(self.out.name, &self.probe);
        }
        let watching = self.watch.is_parked();
        self.out.publish(&self.state, watching);
        if !self
            .out
            .after_check(&self.state, transition, &mut self.sent_facts)
            .await
        {
            return Some(false);
        }
        let now = self
            .state
            .status(Instant::now(), SystemTime::now(), watching);
        self.asked.finished(&now);
        Some(true)
    }

    /// A failure is logged at debug the first time, at trace while it repeats.
    fn log_failure(&mut self, result: &ProbeResult, latency: Duration) {
        let name = self.out.name;
        match result {
            ProbeResult::Healthy(_) => self.last_failure = None,
            failed => {
                let text = failed.to_string();
                if self.last_failure.as_deref() != Some(text.as_str()) {
                    debug!(service = %name, result = ?failed, latency_ms = latency.as_millis() as u64, event = "check_failed", "check failed");
                    self.last_failure = Some(text);
                } else {
                    trace!(service = %name, result = ?failed, event = "check_failed", "check failed again");
                }
            }
        }
    }
}

pub(crate) async fn run_task(setup: TaskSetup) {
    let TaskSetup {
        index,
        service,
        password,
        drains,
        events,
        commands,
        status,
    } = setup;
    let drained = tokio::select! {
        biased;
        _ = events.closed() => return,
        d = prepare(&service, drains, PREPARE_DEADLINE) => d,
    };
    let name = service.name.as_str();
    let probe = MysqlProbe::for_service(&service, password);
    let mut ticker = tokio::time::interval(service.mysql.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut checks = Checks {
        service: &service,
        out: Outlet {
            index,
            name,
            events: &events,
            status: &status,
        },
        commands,
        fencer: Fencer {
            opts: probe.opts(),
            timeout: probe.timeout(),
            last_reason: None,
        },
        probe,
        state: ServiceState::new(&service, drained, Instant::now()),
        sent_facts: None,
        lanes: HostLanes::default(),
        ticker,
        watch: WatchSlot::new(),
        last_failure: None,
        confirm: None,
        last_healthy: None,
        asked: Asked::default(),
    };
    debug!(service = %name, endpoint = %service.mysql.endpoint, role = %service.role, "health checks starting");
    if !checks.start().await {
        return;
    }
    while let Next::Check(from_watch) = checks.next().await {
        match checks.check(from_watch).await {
            Some(true) => {}
            Some(false) => break,
            None => return,
        }
    }
    debug!(service = %name, "health checks stopped: event receiver gone");
}

impl Checks<'_> {
    /// The first status, and a persisted drain told to the daemon at once (it starts
    /// everything as Unknown); false when the daemon is gone.
    async fn start(&mut self) -> bool {
        self.out.publish(&self.state, false);
        if self.state.health() != Health::Down {
            return true;
        }
        let t = Transition {
            from: Health::Unknown,
            to: Health::Down,
            reason: self.state.reason().to_string(),
        };
        self.out.report(t, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MysqlConfig, MysqlEndpoint};

    pub(crate) fn service(endpoint: MysqlEndpoint) -> ServiceConfig {
        let mut mysql = MysqlConfig::new(endpoint, "primaryd");
        mysql.interval = Duration::from_millis(10);
        mysql.timeout = Duration::from_millis(500);
        (mysql.rise, mysql.fall) = (1, 3);
        crate::config::test_service("127.0.0.1/32", mysql)
    }

    /// A drain record that cannot be read in time (a FIFO without a writer here; a hung
    /// state dir in life) drains, and says why; a busy disable-file lane withdraws.
    #[tokio::test]
    async fn host_facts_that_do_not_answer_in_time_withdraw() {
        let dir = tempfile::tempdir().unwrap();
        let store = DrainStore::new(dir.path());
        let svc = service(MysqlEndpoint::Socket(dir.path().join("none.sock")));
        nix::unistd::mkfifo(
            &store.path("main"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let d = prepare(&svc, Some(store.clone()), Duration::from_millis(50))
            .await
            .expect("an unreadable drain record drains");
        assert_eq!(
            d.reason(),
            format!(
                "drained by operator: drain record {} unreadable (no answer within 50 ms); \
                 treated as drained",
                store.path("main").display()
            )
        );
        // Let the stuck read go (open for writing, close).
        drop(
            std::fs::OpenOptions::new()
                .write(true)
                .open(store.path("main")),
        );

        let mut svc = svc;
        svc.disable_file = Some(dir.path().join("disabled"));
        let lane = Lane::new();
        let deadline = Duration::from_secs(5);
        assert_eq!(disabled(&svc, &lane, deadline).await, None);
        std::fs::write(dir.path().join("disabled"), "").unwrap();
        assert_eq!(
            disabled(&svc, &lane, deadline).await,
            Some(format!(
                "disabled by file {}",
                dir.path().join("disabled").display()
            ))
        );
        // The previous look at the file has not returned: fail closed, saying so.
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let blocked = lane.run(Duration::from_millis(10), move || stuck.recv().is_ok());
        assert!(blocked.await.is_err());
        let reason = disabled(&svc, &lane, deadline).await.unwrap();
        assert!(
            reason.ends_with(
                "cannot be checked: the previous attempt has not returned yet (hung file system?)"
            ),
            "{reason}"
        );
        release.send(()).unwrap();
    }

    /// Against a missing socket the first check fails: one Down event, then silence
    /// (failures while down are not transitions), and the task ends with the receiver.
    #[tokio::test]
    async fn reports_down_once_and_stops_with_receiver() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(MysqlEndpoint::Socket(dir.path().join("none.sock")));
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(run(7, svc, None, tx));
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event in time")
            .expect("channel open");
        assert_eq!(ev.service, 7);
        assert_eq!(ev.health, Health::Down);
        assert!(ev.reason.starts_with("connect failed: "), "{}", ev.reason);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), rx.recv())
                .await
                .is_err(),
            "no second event while the state does not change"
        );
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("task ends once the receiver is gone")
            .unwrap();
    }
}
