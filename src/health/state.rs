//! A service's whole health state, pure (time is passed in): the checks' rise/fall verdict
//! ([`Checker`]) plus everything else that keeps the routes out, and the snapshot the CLI
//! shows.
//!
//! A service is announced (`Health::Up`) only when all of these hold:
//! 1. it is not drained by an operator;
//! 2. its disable file (if configured) does not exist;
//! 3. every prefix address is configured on a local interface;
//! 4. the checker is `Up` (rise consecutive healthy checks, not yet fall failures);
//! 5. flap damping allows it: at least `min_up_interval` since the previous announcement.
//!
//! The first failing condition, in that order, is the reason. 1–3 act at once, without
//! hysteresis: they are facts about this host, not samples of a server. With none of them
//! failing and no check completed yet the state is `Unknown`; otherwise not announced is
//! `Down`.

use std::time::{Duration, Instant, SystemTime};

use super::checker::{Checker, Health, Transition};
use super::drain::DrainInfo;
use super::mysql::ProbeResult;
use super::term::ServerFacts;
use crate::config::{Role, ServiceConfig};

/// One completed check, as the task saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInput {
    pub result: ProbeResult,
    /// How long the probe took.
    pub latency: Duration,
    /// Why the disable file takes the service out (it exists, or cannot be checked).
    pub disabled: Option<String>,
    /// Why the service addresses take it out (one is not configured locally).
    pub address: Option<String>,
}

/// The last check, for `show services`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub at: SystemTime,
    pub latency: Duration,
    pub result: ProbeResult,
}

/// Everything `primaryctl show services` shows about one service: a snapshot, published by
/// the service's task on a `tokio::sync::watch` channel after every change.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    pub name: String,
    pub role: Role,
    /// `Up` exactly when the service's prefixes are desired (announced).
    pub health: Health,
    /// Why the state is what it is (human-readable, also logged on transitions).
    pub reason: String,
    /// When `health` last changed (start-up for a state never changed).
    pub since: SystemTime,
    /// Number of health changes since start-up.
    pub transitions: u64,
    /// What the checks alone say (rise/fall), before drain, disable file, addresses and
    /// damping.
    pub check_health: Health,
    pub check_reason: String,
    pub last_check: Option<CheckReport>,
    /// Consecutive healthy / failed checks, and the thresholds.
    pub successes: u32,
    pub failures: u32,
    pub rise: u32,
    pub fall: u32,
    pub drained: Option<DrainInfo>,
    /// Why the disable file takes the service out, if it does.
    pub disabled: Option<String>,
    /// Why the addresses take the service out, if they do.
    pub address_problem: Option<String>,
    /// Flap damping: healthy, but not announced again before this time.
    pub damped_until: Option<SystemTime>,
    pub min_up_interval: Duration,
    /// Whether the watch connection (fail-fast) is parked on the server.
    pub watching: bool,
    /// What the latest check that got an answer learnt about the server: server_id, start
    /// time, promotion term. `None` before the first answer.
    pub facts: Option<ServerFacts>,
}

#[derive(Debug, Clone)]
pub struct ServiceState {
    name: String,
    role: Role,
    checker: Checker,
    min_up_interval: Duration,
    drained: Option<DrainInfo>,
    disabled: Option<String>,
    address: Option<String>,
    health: Health,
    reason: String,
    since: Instant,
    transitions: u64,
    /// When the service was last announced (went `Up`).
    last_up: Option<Instant>,
    damped_until: Option<Instant>,
    last_check: Option<(Instant, Duration, ProbeResult)>,
    facts: Option<ServerFacts>,
}

impl ServiceState {
    /// The state at start-up: `Unknown`, or `Down` when a persisted drain says so.
    pub fn new(service: &ServiceConfig, drained: Option<DrainInfo>, now: Instant) -> Self {
        let m = &service.mysql;
        let mut s = ServiceState {
            name: service.name.clone(),
            role: service.role,
            checker: Checker::new(m.rise, m.fall),
            min_up_interval: m.min_up_interval,
            drained,
            disabled: None,
            address: None,
            health: Health::Unknown,
            reason: String::new(),
            since: now,
            transitions: 0,
            last_up: None,
            damped_until: None,
            last_check: None,
            facts: None,
        };
        let _ = s.evaluate(now);
        s.transitions = 0;
        s
    }

    pub fn health(&self) -> Health {
        self.health
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// When damping will allow the announcement it is holding back.
    pub fn damped_until(&self) -> Option<Instant> {
        self.damped_until
    }

    /// Feeds one completed check; `Some` when the health changes.
    pub fn observe(&mut self, check: CheckInput, now: Instant) -> Option<Transition> {
        self.checker.observe(&check.result);
        self.disabled = check.disabled;
        self.address = check.address;
        self.last_check = Some((now, check.latency, check.result));
        self.evaluate(now)
    }

    /// The server facts of the latest answered check (they do not change the health here:
    /// the daemon's conflict rules read them).
    pub fn set_facts(&mut self, facts: Option<ServerFacts>) {
        self.facts = facts;
    }

    pub fn facts(&self) -> Option<&ServerFacts> {
        self.facts.as_ref()
    }

    /// Drains (`Some`) or undrains (`None`) the service; takes effect at once.
    pub fn set_drained(&mut self, drained: Option<DrainInfo>, now: Instant) -> Option<Transition> {
        self.drained = drained;
        self.evaluate(now)
    }

    /// Re-evaluates without a new check (the damping hold may have ended).
    pub fn tick(&mut self, now: Instant) -> Option<Transition> {
        self.evaluate(now)
    }

    fn evaluate(&mut self, now: Instant) -> Option<Transition> {
        let from = self.health;
        self.damped_until = None;
        let (health, reason) = if let Some(d) = &self.drained {
            (Health::Down, d.reason())
        } else if let Some(r) = &self.disabled {
            (Health::Down, r.clone())
        } else if let Some(r) = &self.address {
            (Health::Down, r.clone())
        } else {
            match self.checker.health() {
                Health::Unknown => (Health::Unknown, self.checker.reason().to_string()),
                Health::Down => (Health::Down, self.checker.reason().to_string()),
                Health::Up if from == Health::Up => (Health::Up, self.reason.clone()),
                Health::Up => match self.last_up.map(|t| t + self.min_up_interval) {
                    Some(until) if until > now => {
                        self.damped_until = Some(until);
                        (
                            Health::Down,
                            format!(
                                "flap damping: healthy again, announced {} ms ago; held \
                                 {} ms more (min_up_interval_ms = {})",
                                (now - self.last_up.unwrap_or(now)).as_millis(),
                                (until - now).as_millis(),
                                self.min_up_interval.as_millis()
                            ),
                        )
                    }
                    _ => (Health::Up, self.checker.reason().to_string()),
                },
            }
        };
        self.reason = reason;
        if health == from {
            return None;
        }
        if health == Health::Up {
            self.last_up = Some(now);
        }
        self.health = health;
        self.since = now;
        self.transitions += 1;
        Some(Transition {
            from,
            to: health,
            reason: self.reason.clone(),
        })
    }

    /// The snapshot; `now` and `wall_now` are the same moment on both clocks.
    pub fn status(&self, now: Instant, wall_now: SystemTime, watching: bool) -> ServiceStatus {
        let wall = |t: Instant| {
            wall_now - now.saturating_duration_since(t) + t.saturating_duration_since(now)
        };
        ServiceStatus {
            name: self.name.clone(),
            role: self.role,
            health: self.health,
            reason: self.reason.clone(),
            since: wall(self.since),
            transitions: self.transitions,
            check_health: self.checker.health(),
            check_reason: self.checker.reason().to_string(),
            last_check: self
                .last_check
                .as_ref()
                .map(|(at, latency, result)| CheckReport {
                    at: wall(*at),
                    latency: *latency,
                    result: result.clone(),
                }),
            successes: self.checker.successes(),
            failures: self.checker.failures(),
            rise: self.checker.rise(),
            fall: self.checker.fall(),
            drained: self.drained.clone(),
            disabled: self.disabled.clone(),
            address_problem: self.address.clone(),
            damped_until: self.damped_until.map(wall),
            min_up_interval: self.min_up_interval,
            watching,
            facts: self.facts.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MysqlConfig, MysqlEndpoint};
    use crate::health::mysql::{FailureKind, Problem, Variable};

    fn service(rise: u32, fall: u32, min_up_ms: u64) -> ServiceConfig {
        let mut mysql = MysqlConfig::new(MysqlEndpoint::Socket("/x.sock".into()), "u");
        (mysql.rise, mysql.fall) = (rise, fall);
        mysql.min_up_interval = Duration::from_millis(min_up_ms);
        crate::config::test_service("192.0.2.10/32", mysql)
    }

    fn ok() -> CheckInput {
        CheckInput {
            result: ProbeResult::writable(),
            latency: Duration::from_millis(1),
            disabled: None,
            address: None,
        }
    }

    fn ro() -> CheckInput {
        CheckInput {
            result: ProbeResult::Unhealthy(Problem::On(Variable::ReadOnly).into()),
            ..ok()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn unknown_until_first_check_then_up_after_rise() {
        let t0 = Instant::now();
        let mut s = ServiceState::new(&service(2, 1, 0), None, t0);
        assert_eq!(s.health(), Health::Unknown);
        assert_eq!(s.reason(), "no check completed yet");
        assert_eq!(s.observe(ok(), t0), None);
        let t = s.observe(ok(), t0 + ms(200)).unwrap();
        assert_eq!((t.from, t.to), (Health::Unknown, Health::Up));
        assert_eq!(t.reason, "writable primary (2 consecutive checks)");
        let st = s.status(t0 + ms(300), SystemTime::UNIX_EPOCH + ms(10_000), true);
        assert_eq!(st.since, SystemTime::UNIX_EPOCH + ms(9_900));
        assert_eq!((st.successes, st.rise, st.transitions), (2, 2, 1));
        assert_eq!(st.last_check.unwrap().latency, ms(1));
        assert!(st.watching);
    }

    #[test]
    fn persisted_drain_holds_down_from_the_start() {
        let t0 = Instant::now();
        let d = DrainInfo::new(SystemTime::now(), None);
        let mut s = ServiceState::new(&service(1, 1, 0), Some(d), t0);
        assert_eq!(s.health(), Health::Down);
        assert_eq!(s.reason(), "drained by operator");
        // Healthy checks do not announce a drained service.
        for i in 0..5 {
            assert_eq!(s.observe(ok(), t0 + ms(i * 100)), None);
        }
        let st = s.status(t0, SystemTime::now(), false);
        assert_eq!((st.health, st.check_health), (Health::Down, Health::Up));
        // Undrain: up at once, the checks already passed.
        let t = s.set_drained(None, t0 + ms(600)).unwrap();
        assert_eq!((t.from, t.to), (Health::Down, Health::Up));
        assert_eq!(t.reason, "writable primary (1 consecutive check)");
    }

    #[test]
    fn drain_while_up_withdraws_at_once_with_reason() {
        let t0 = Instant::now();
        let mut s = ServiceState::new(&service(1, 3, 0), None, t0);
        s.observe(ok(), t0);
        assert_eq!(s.health(), Health::Up);
        let d = DrainInfo::new(SystemTime::now(), Some("maintenance".into()));
        let t = s.set_drained(Some(d), t0 + ms(10)).unwrap();
        assert_eq!((t.from, t.to), (Health::Up, Health::Down));
        assert_eq!(t.reason, "drained by operator: maintenance");
    }

    #[test]
    fn gates_act_at_once_in_order_and_lift_without_rise() {
        let t0 = Instant::now();
        let mut s = ServiceState::new(&service(3, 3, 0), None, t0);
        for i in 0..3 {
            s.observe(ok(), t0 + ms(i));
        }
        assert_eq!(s.health(), Health::Up);
        let both = CheckInput {
            disabled: Some("disabled by file /etc/primaryd/main.disabled".into()),
            address: Some("address 192.0.2.10 not configured on any local interface".into()),
            ..ok()
        };
        // Despite fall = 3: a gate is a fact about the host, not a sample.
        let t = s.observe(both.clone(), t0 + ms(10)).unwrap();
        assert_eq!(t.to, Health::Down);
        assert_eq!(t.reason, "disabled by file /etc/primaryd/main.disabled");
        let d = DrainInfo::new(SystemTime::now(), None);
        assert_eq!(s.set_drained(Some(d), t0 + ms(11)), None);
        assert_eq!(s.reason(), "drained by operator");
        s.set_drained(None, t0 + ms(12));
        assert_eq!(s.reason(), "disabled by file /etc/primaryd/main.disabled");
        let addr_only = CheckInput {
            disabled: None,
            ..both
        };
        s.observe(addr_only, t0 + ms(13));
        assert_eq!(
            s.reason(),
            "address 192.0.2.10 not configured on any local interface"
        );
        // All clear: up at the next check (the checks never stopped passing).
        let t = s.observe(ok(), t0 + ms(14)).unwrap();
        assert_eq!(t.to, Health::Up);
    }

    #[test]
    fn gate_before_first_check_is_down_not_unknown() {
        let t0 = Instant::now();
        let mut s = ServiceState::new(&service(2, 1, 0), None, t0);
        let c = CheckInput {
            address: Some("address 192.0.2.10 not configured on any local interface".into()),
            ..ok()
        };
        let t = s.observe(c, t0).unwrap();
        assert_eq!((t.from, t.to), (Health::Unknown, Health::Down));
    }

    #[test]
    fn flap_damping_holds_reannouncement_until_min_up_interval() {
        let t0 = Instant::now();
        let mut s = ServiceState::new(&service(1, 1, 5000), None, t0);
        // The first announcement is never damped.
        assert_eq!(s.observe(ok(), t0).map(|t| t.to), Some(Health::Up));
        assert_eq!(
            s.observe(ro(), t0 + ms(1000)).map(|t| t.to),
            Some(Health::Down)
        );
        // Healthy again 1.5 s after the announcement: held until 5 s after it.
        assert_eq!(s.observe(ok(), t0 + ms(1500)), None);
        assert_eq!(s.health(), Health::Down);
        assert_eq!(s.damped_until(), Some(t0 + ms(5000)));
        assert!(
            s.reason().starts_with(
                "flap damping: healthy again, announced 1500 ms ago; held 3500 ms more"
            ),
            "{}",
            s.reason()
        );
        let st = s.status(t0 + ms(1500), SystemTime::UNIX_EPOCH + ms(1_000_000), false);
        assert_eq!(
            st.damped_until,
            Some(SystemTime::UNIX_EPOCH + ms(1_003_500))
        );
        assert_eq!(st.check_health, Health::Up);
        assert_eq!(s.tick(t0 + ms(4999)), None);
        let t = s.tick(t0 + ms(5000)).unwrap();
        assert_eq!((t.from, t.to), (Health::Down, Health::Up));
        assert_eq!(s.damped_until(), None);
        // A failure during the hold clears it: down for the failure's reason.
        s.observe(ro(), t0 + ms(5100));
        s.observe(ok(), t0 + ms(5200));
        assert!(s.damped_until().is_some());
        s.observe(
            CheckInput {
                result: ProbeResult::Failed {
                    kind: FailureKind::Lost,
                    reason: "connection lost".into(),
                },
                ..ok()
            },
            t0 + ms(5300),
        );
        assert_eq!((s.health(), s.damped_until()), (Health::Down, None));
        assert_eq!(s.reason(), "connection lost");
        // Long after the last announcement a single flap is not damped.
        assert_eq!(
            s.observe(ok(), t0 + ms(20_000)).map(|t| t.to),
            Some(Health::Up)
        );
    }

    #[test]
    fn zero_min_up_interval_never_damps() {
        let t0 = Instant::now();
        let mut s = ServiceState::new(&service(1, 1, 0), None, t0);
        for i in 0..10u64 {
            let want = if i % 2 == 0 { Health::Up } else { Health::Down };
            let c = if i % 2 == 0 { ok() } else { ro() };
            assert_eq!(s.observe(c, t0 + ms(i)).map(|t| t.to), Some(want));
        }
        assert_eq!(s.status(t0, SystemTime::now(), false).transitions, 10);
    }
}
