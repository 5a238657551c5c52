//! The loop: one `select!` over signals, health events, the host's refusal work, session
//! changes, operator commands, reloads and every task's end; then the shutdown that every
//! way out of it goes through (withdraw, Cease, close).

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};
use tracing::{error, info, warn};

use super::effects::publish_routes;
use super::{host, reload, systemd, Daemon, DaemonError, Reply, SHUTDOWN_GRACE};
use crate::announcer::Exports;
use crate::health::task::HealthEvent;
use crate::operator::protocol::{Command, Response};

/// The signals the daemon acts on.
pub(super) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    pub(super) fn install() -> Result<Signals, DaemonError> {
        let install = |kind| signal(kind).map_err(DaemonError::Signal);
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            hup: install(SignalKind::hangup())?,
        })
    }
}

/// What the loop listens to besides the daemon's own task sets.
pub(super) struct Inputs {
    pub(super) signals: Signals,
    pub(super) events: mpsc::Receiver<HealthEvent>,
    pub(super) host_done: mpsc::UnboundedReceiver<host::HostDone>,
    pub(super) commands: mpsc::Receiver<(Command, Reply)>,
    /// The control socket, the metrics endpoint, the record writer, the latency observer:
    /// none of them ends while the daemon runs.
    pub(super) aux: JoinSet<String>,
}

/// Runs the loop, then shuts down. `Ok`: the signal that stopped it; `Err`: the failure.
pub(super) async fn run(d: &mut Daemon, mut inputs: Inputs) -> Result<&'static str, String> {
    let outcome = run_loop(d, &mut inputs).await;
    shutdown(d, &outcome, &mut inputs.aux).await;
    outcome
}

async fn run_loop(d: &mut Daemon, inputs: &mut Inputs) -> Result<&'static str, String> {
    let sessions_changed = Arc::clone(&d.sessions_changed);
    let mut reading = reload::Reading::default();
    let mut host_retry = tokio::time::interval(Duration::from_secs(1));
    // systemd (Type=notify): ready now; the watchdog is kicked by this loop only.
    let mut sd = systemd::Notifier::from_env();
    let mut watchdog = systemd::Ticker::new(sd.watchdog_tick());
    sd.ready(systemd::status_of(d));
    let Inputs {
        signals,
        events,
        host_done,
        commands,
        aux,
    } = inputs;
    let outcome = loop {
        tokio::select! {
            () = watchdog.tick() => sd.kick(systemd::stale_of(d)),
            Some(ev) = events.recv() => d.health_event(ev),
            Some(done) = host_done.recv() => {
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
            Some((command, reply)) = commands.recv() => {
                d.command(command, reply, &mut reading, events);
            }
            _ = signals.term.recv() => break Ok("SIGTERM"),
            _ = signals.int.recv() => break Ok("SIGINT"),
            _ = signals.hup.recv() => {
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
        sd.status(|| systemd::status_of(d));
    };
    let why = match &outcome {
        Ok(signal) => signal,
        Err(e) => e.as_str(),
    };
    sd.stopping(why);
    outcome
}

/// Withdraws everything, refuses the service addresses, resets what was announced, sends
/// Cease to every peer and waits (briefly) for the sessions to close.
async fn shutdown(
    d: &mut Daemon,
    outcome: &Result<&'static str, String>,
    aux: &mut JoinSet<String>,
) {
    match outcome {
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
    let message = match outcome {
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
}

impl Daemon {
    /// An operator's command that the loop itself answers.
    fn command(
        &mut self,
        command: Command,
        reply: Reply,
        reading: &mut reload::Reading,
        events: &mut mpsc::Receiver<HealthEvent>,
    ) {
        match command {
            Command::Reload => reading.start(&self.path, Some(reply)),
            Command::Confirm { service } => {
                let _ = reply.send(self.confirm(&service));
            }
            // `primaryctl check`: the checks' events are queued; decide on them first.
            Command::Check { .. } => {
                while let Ok(ev) = events.try_recv() {
                    self.health_event(ev);
                }
                let _ = reply.send(Response::ok(serde_json::Value::Null));
            }
            other => {
                let error = format!("{other:?} is not handled by the daemon loop");
                let _ = reply.send(Response::error(error));
            }
        }
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
}
