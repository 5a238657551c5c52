//! systemd's notify protocol (`Type=notify`, sd_notify(3)), written here in a few lines: one
//! datagram per message to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
//!
//! - `READY=1` once the configuration is loaded, the control socket listens and every task
//!   is started (`systemctl start` returns then, and `primaryctl` works from that moment);
//! - `STATUS=` what is announced and what is withdrawn, sent when it changes;
//! - `WATCHDOG=1` from the daemon's event loop itself, on a tick of that loop, and only while
//!   every health task still completes checks ([`stale_checks`]): a loop that is stuck, or
//!   a check task that hangs, stops the kicks, and systemd kills and restarts primaryd (the
//!   kernel closes the BGP sessions; the routers drop the routes);
//! - `STOPPING=1` when withdrawing to exit.
//!
//! Without `$NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tracing::{debug, error, warn};

use super::safety::Decision;
use crate::config::ServiceConfig;
use crate::health::state::ServiceStatus;

/// Where systemd listens, and the watchdog period it asked for.
pub struct Notifier {
    socket: Option<Target>,
    watchdog: Option<Duration>,
    last_status: String,
    /// The last staleness complaint, logged once per change.
    last_stale: Vec<String>,
}

enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` (the watchdog is ours only
    /// when the PID is absent or is ours).
    pub fn from_env() -> Notifier {
        Self::from_vars(|k| std::env::var(k).ok(), std::process::id())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>, pid: u32) -> Notifier {
        let socket =
            var("NOTIFY_SOCKET")
                .filter(|s| !s.is_empty())
                .map(|s| match s.strip_prefix('@') {
                    Some(name) => Target::Abstract(name.as_bytes().to_vec()),
                    None => Target::Path(PathBuf::from(s)),
                });
        let ours = var("WATCHDOG_PID").is_none_or(|p| p.trim() == pid.to_string());
        let watchdog = var("WATCHDOG_USEC")
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && ours && socket.is_some())
            .map(Duration::from_micros);
        Notifier {
            socket,
            watchdog,
            last_status: String::new(),
            last_stale: Vec::new(),
        }
    }

    /// How often the loop must kick: half the period systemd allows.
    pub fn watchdog_tick(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    fn send(&self, message: &str) {
        let Some(target) = &self.socket else { return };
        let sent = UnixDatagram::unbound().and_then(|s| match target {
            Target::Path(p) => s.send_to(message.as_bytes(), p),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                s.send_to_addr(message.as_bytes(), &addr)
            }
        });
        if let Err(e) = sent {
            warn!(
                "cannot notify systemd ({}): {e}",
                message.lines().next().unwrap_or("")
            );
        }
    }

    pub fn ready(&mut self, status: String) {
        self.send(&format!("READY=1\nSTATUS={status}"));
        self.last_status = status;
    }

    pub fn stopping(&self, why: &str) {
        self.send(&format!(
            "STOPPING=1\nSTATUS=stopping ({why}): withdrawing every route"
        ));
    }

    /// Sends `STATUS=` when it changed (computed only under systemd).
    pub fn status(&mut self, status: impl FnOnce() -> String) {
        if self.socket.is_none() {
            return;
        }
        let status = status();
        if status != self.last_status {
            self.send(&format!("STATUS={status}"));
            self.last_status = status;
        }
    }

    /// One tick of the event loop: kicks the watchdog unless a check task is stuck.
    pub fn kick(&mut self, stale: Vec<String>) {
        if stale.is_empty() {
            self.last_stale.clear();
            debug!("watchdog kick");
            self.send("WATCHDOG=1");
            return;
        }
        if stale != self.last_stale {
            error!(
                "health checks stuck: {}; not kicking the watchdog (systemd restarts primaryd)",
                stale.join("; ")
            );
            self.last_stale = stale;
        }
    }
}

/// The loop's watchdog tick: every half period, or never without a watchdog.
pub struct Ticker(Option<tokio::time::Interval>);

impl Ticker {
    pub fn new(period: Option<Duration>) -> Ticker {
        Ticker(period.map(|p| {
            let mut i = tokio::time::interval(p);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        }))
    }

    pub async fn tick(&mut self) {
        match &mut self.0 {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// The daemon's `STATUS=` line now.
pub(super) fn status_of(d: &super::Daemon) -> String {
    status_line(&d.safety.decisions(), &d.health.statuses())
}

/// The daemon's stuck check tasks now (see [`stale_checks`]).
pub(super) fn stale_of(d: &super::Daemon) -> Vec<String> {
    let services: Vec<&ServiceConfig> = d.services.values().map(|s| &s.config).collect();
    stale_checks(&services, &d.health.statuses(), SystemTime::now())
}

/// `STATUS=` text: what is announced, and what is not and why.
pub fn status_line(decisions: &BTreeMap<String, Decision>, statuses: &[ServiceStatus]) -> String {
    let mut up = Vec::new();
    let mut down = Vec::new();
    for s in statuses {
        match decisions.get(&s.name) {
            Some(d) if d.announced => up.push(s.name.clone()),
            Some(d) => down.push(format!(
                "{} ({})",
                s.name,
                d.hold.clone().unwrap_or_else(|| s.reason.clone())
            )),
            None => down.push(format!("{} ({})", s.name, s.reason)),
        }
    }
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    format!("announced: {}; withdrawn: {}", list(up), list(down))
}

/// The services whose task has not completed a check for far longer than its interval and
/// timeout allow (the check itself, the host facts beside it, and the reconnect backoff all
/// answer within `timeout`): `2 x (interval + timeout) + 10 s` after the last one, or after
/// the task's start (or its last change of state) before the first: a task a reload just
/// started is not stale for the daemon's age.
pub fn stale_checks(
    services: &[&ServiceConfig],
    statuses: &[ServiceStatus],
    now: SystemTime,
) -> Vec<String> {
    let mut out = Vec::new();
    for s in statuses {
        let Some(cfg) = services.iter().find(|c| c.name == s.name) else {
            continue;
        };
        let bound = 2 * (cfg.mysql.interval + cfg.mysql.timeout) + Duration::from_secs(10);
        let last = s.last_check.as_ref().map_or(s.since, |c| c.at);
        let age = now.duration_since(last).unwrap_or_default();
        if age > bound {
            out.push(format!(
                "{}: no check completed for {} s (at most {} s expected)",
                s.name,
                age.as_secs(),
                bound.as_secs()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MysqlConfig, MysqlEndpoint};
    use crate::health::mysql::ProbeResult;
    use crate::health::state::{CheckInput, ServiceState};
    use std::time::Instant;

    fn service() -> ServiceConfig {
        let mut mysql = MysqlConfig::new(MysqlEndpoint::Socket("/none".into()), "primaryd");
        mysql.interval = Duration::from_millis(200);
        mysql.timeout = Duration::from_millis(1000);
        crate::config::test_service("192.0.2.10/32", mysql)
    }

    fn status(checked: bool) -> ServiceStatus {
        let mut st = ServiceState::new(&service(), None, Instant::now());
        if checked {
            let input = CheckInput {
                result: ProbeResult::writable(),
                latency: Duration::from_millis(1),
                disabled: None,
                address: None,
            };
            st.observe(input, Instant::now());
        }
        st.status(Instant::now(), SystemTime::now(), false)
    }

    #[test]
    fn a_check_task_is_stale_only_past_its_bound() {
        let svc = service();
        let checked = status(true);
        // Bound: 2 x (0.2 + 1) + 10 = 12.4 s after the last check.
        let at = checked.last_check.as_ref().unwrap().at;
        let one = std::slice::from_ref(&checked);
        assert!(stale_checks(&[&svc], one, at + Duration::from_secs(12)).is_empty());
        let stale = stale_checks(&[&svc], one, at + Duration::from_secs(13));
        assert_eq!(
            stale,
            vec!["main: no check completed for 13 s (at most 12 s expected)"]
        );
        // Before the first check, the task's start counts.
        let fresh = status(false);
        let one = std::slice::from_ref(&fresh);
        assert!(stale_checks(&[&svc], one, fresh.since + Duration::from_secs(5)).is_empty());
        assert_eq!(
            stale_checks(&[&svc], one, fresh.since + Duration::from_secs(20)).len(),
            1
        );
    }

    #[test]
    fn status_line_names_announced_and_withdrawn_services() {
        let s = status(true);
        let mut d = BTreeMap::new();
        let decision = |announced, hold: Option<&str>| Decision {
            announced,
            hold: hold.map(str::to_string),
            conflict: false,
            term: None,
            since: SystemTime::now(),
        };
        d.insert("main".to_string(), decision(true, None));
        assert_eq!(
            status_line(&d, std::slice::from_ref(&s)),
            "announced: main; withdrawn: none"
        );
        d.insert(
            "main".to_string(),
            decision(false, Some("held: server restarted")),
        );
        assert_eq!(
            status_line(&d, &[s]),
            "announced: none; withdrawn: main (held: server restarted)"
        );
    }

    #[test]
    fn watchdog_only_with_a_socket_and_for_our_pid() {
        let vars = |pid: Option<&'static str>| {
            move |k: &str| match k {
                "NOTIFY_SOCKET" => Some("@sd".to_string()),
                "WATCHDOG_USEC" => Some("4000000".to_string()),
                "WATCHDOG_PID" => pid.map(str::to_string),
                _ => None,
            }
        };
        let n = Notifier::from_vars(vars(None), 42);
        assert_eq!(n.watchdog_tick(), Some(Duration::from_secs(2)));
        assert_eq!(
            Notifier::from_vars(vars(Some("42")), 42).watchdog_tick(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            Notifier::from_vars(vars(Some("7")), 42).watchdog_tick(),
            None
        );
        let no_socket = |k: &str| (k == "WATCHDOG_USEC").then(|| "4000000".to_string());
        assert_eq!(Notifier::from_vars(no_socket, 42).watchdog_tick(), None);
    }
}
