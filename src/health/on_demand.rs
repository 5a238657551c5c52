//! `primaryctl check`: checks run at once on request, beside the regular schedule.
//!
//! A request is answered only by checks that *started after it arrived*: a check already
//! running when it comes may have asked the server before the change the caller wants seen
//! (orchestrator's promotion). The task then checks again at once, and keeps checking back
//! to back while the checks pass and the checker has not reached `rise` yet, so a passing
//! server goes up within a few milliseconds, still after `rise` consecutive passing checks.
//! The answer goes out after the task has handed any transition to the daemon, so the
//! daemon's decision that follows includes it.

use tokio::sync::oneshot;

use super::checker::Health;
use super::state::ServiceStatus;

/// What `primaryctl check` learns from the service's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub service: String,
    /// The last check's probe passed (the server is what the role needs).
    pub passed: bool,
    /// The last check's result as text ("writable primary", "read_only=1", ...).
    pub result: String,
    /// Checks run for this request (more than one while climbing to `rise`).
    pub checks: u32,
    /// The task's verdict after them (before the daemon's split-brain rules).
    pub health: Health,
    pub reason: String,
}

/// The requests a task holds.
#[derive(Debug, Default)]
pub(crate) struct Asked {
    /// Arrived since the running check (if any) started: need a check of their own.
    fresh: Vec<oneshot::Sender<CheckOutcome>>,
    /// Covered by the running check.
    covered: Vec<oneshot::Sender<CheckOutcome>>,
    /// Checks run since `covered` was filled.
    checks: u32,
}

impl Asked {
    pub(crate) fn push(&mut self, done: oneshot::Sender<CheckOutcome>) {
        self.fresh.push(done);
    }

    /// Whether a check must start now.
    pub(crate) fn pending(&self) -> bool {
        !self.fresh.is_empty() || !self.covered.is_empty()
    }

    /// A check is starting: every request so far is covered by it.
    pub(crate) fn starting(&mut self) {
        if !self.fresh.is_empty() {
            self.covered.append(&mut self.fresh);
        }
        if !self.covered.is_empty() {
            self.checks += 1;
        }
    }

    /// A check ended (its transition, if any, already handed to the daemon). Answers the
    /// covered requests, unless the check passed and the checker still climbs to `rise`:
    /// then they stay pending and the next check starts at once.
    pub(crate) fn finished(&mut self, status: &ServiceStatus) {
        if self.covered.is_empty() {
            return;
        }
        let passed = status
            .last_check
            .as_ref()
            .is_some_and(|c| c.result.is_healthy());
        if passed && status.check_health != Health::Up {
            return;
        }
        let outcome = CheckOutcome {
            service: status.name.clone(),
            passed,
            result: status.last_check.as_ref().map_or_else(
                || "no check completed".to_string(),
                |c| c.result.to_string(),
            ),
            checks: self.checks,
            health: status.health,
            reason: status.reason.clone(),
        };
        for done in self.covered.drain(..) {
            let _ = done.send(outcome.clone());
        }
        self.checks = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MysqlConfig, MysqlEndpoint};
    use crate::health::mysql::{ProbeResult, Problem, Variable};
    use crate::health::state::{CheckInput, ServiceState};
    use std::time::{Duration, Instant, SystemTime};

    fn check(st: &mut ServiceState, result: ProbeResult) -> ServiceStatus {
        let input = CheckInput {
            result,
            latency: Duration::from_millis(1),
            disabled: None,
            address: None,
        };
        st.observe(input, Instant::now());
        st.status(Instant::now(), SystemTime::now(), false)
    }

    fn state(rise: u32) -> ServiceState {
        let mut mysql = MysqlConfig::new(MysqlEndpoint::Socket("/none".into()), "primaryd");
        (mysql.rise, mysql.fall) = (rise, 1);
        let svc = crate::config::test_service("192.0.2.10/32", mysql);
        ServiceState::new(&svc, None, Instant::now())
    }

    /// A request that arrives while a check runs is not answered by that check; passing
    /// checks go on back to back until rise is reached, and the answer says how many ran.
    #[test]
    fn answered_by_a_later_check_after_rise_passes() {
        let mut st = state(3);
        let mut asked = Asked::default();
        // A check is running (started before the request): not pending for it.
        let (tx, mut rx) = oneshot::channel();
        asked.push(tx);
        let s = check(
            &mut st,
            ProbeResult::Unhealthy(Problem::On(Variable::ReadOnly).into()),
        );
        asked.finished(&s);
        assert!(rx.try_recv().is_err(), "the older check does not answer");
        assert!(asked.pending());
        for n in 1..=3 {
            asked.starting();
            let s = check(&mut st, ProbeResult::writable());
            asked.finished(&s);
            if n < 3 {
                assert!(rx.try_recv().is_err(), "still climbing after {n}");
                assert!(asked.pending());
            }
        }
        let o = rx.try_recv().expect("answered once up");
        assert!(!asked.pending());
        assert_eq!((o.passed, o.checks, o.health), (true, 3, Health::Up));
        assert_eq!(o.result, "writable primary");
    }

    /// A failing check answers at once, with the failure.
    #[test]
    fn a_failing_check_answers_at_once() {
        let mut st = state(2);
        let mut asked = Asked::default();
        let (tx, mut rx) = oneshot::channel();
        asked.push(tx);
        asked.starting();
        let s = check(
            &mut st,
            ProbeResult::Unhealthy(Problem::On(Variable::ReadOnly).into()),
        );
        asked.finished(&s);
        let o = rx.try_recv().expect("answered");
        assert_eq!((o.passed, o.checks, o.health), (false, 1, Health::Down));
        assert_eq!(o.result, "read_only=1");
        assert!(!asked.pending());
    }
}
