//! The tokio task that checks one service on a timer and reports each health transition.

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, trace, warn};

use super::checker::{Checker, Health};
use super::mysql::{MysqlProbe, ProbeResult};
use crate::config::MysqlConfig;

/// A service's health changed.
#[derive(Debug, Clone)]
pub struct HealthEvent {
    /// Index of the service in the configuration.
    pub service: usize,
    pub health: Health,
    pub reason: String,
}

/// Runs checks for one service forever: one probe per `cfg.interval` (a check never overlaps
/// the next; a slow check delays the schedule instead of causing a burst), feeds the checker,
/// and sends a [`HealthEvent`] on each transition. Returns when the receiver is gone.
pub async fn run(
    service: usize,
    name: String,
    cfg: MysqlConfig,
    password: Option<String>,
    events: mpsc::Sender<HealthEvent>,
) {
    let mut probe = MysqlProbe::new(&cfg, password);
    let mut checker = Checker::new(cfg.rise, cfg.fall);
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The previous failed probe's text: repeats of the same failure are logged at trace only.
    let mut last_failure: Option<String> = None;
    debug!(service = %name, endpoint = %cfg.endpoint, "health checks starting");
    loop {
        // Stop promptly when the daemon is gone, even while waiting or mid-probe.
        tokio::select! {
            _ = ticker.tick() => {}
            _ = events.closed() => break,
        }
        let result = tokio::select! {
            r = probe.probe() => r,
            _ = events.closed() => break,
        };
        match &result {
            ProbeResult::Writable => last_failure = None,
            failed => {
                let text = failed.to_string();
                if last_failure.as_deref() != Some(text.as_str()) {
                    debug!(service = %name, result = ?failed, "check failed");
                    last_failure = Some(text);
                } else {
                    trace!(service = %name, result = ?failed, "check failed again");
                }
            }
        }
        let Some(t) = checker.observe(&result) else {
            continue;
        };
        if t.to == Health::Up {
            info!(service = %name, from = %t.from, reason = %t.reason, "service up");
        } else {
            warn!(service = %name, from = %t.from, to = %t.to, reason = %t.reason, "service down");
        }
        let event = HealthEvent {
            service,
            health: t.to,
            reason: t.reason,
        };
        if events.send(event).await.is_err() {
            break;
        }
    }
    debug!(service = %name, "health checks stopped: event receiver gone");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MysqlEndpoint;
    use std::time::Duration;

    /// Against a missing socket the first check fails: one Down event, then silence
    /// (failures while down are not transitions), and the task ends with the receiver.
    #[tokio::test]
    async fn reports_down_once_and_stops_with_receiver() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = MysqlConfig {
            endpoint: MysqlEndpoint::Socket(dir.path().join("none.sock")),
            user: "primaryd".into(),
            password_file: None,
            interval: Duration::from_millis(10),
            timeout: Duration::from_millis(500),
            rise: 1,
            fall: 3,
        };
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(run(7, "main".into(), cfg, None, tx));
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
