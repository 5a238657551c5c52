//! Pure rise/fall hysteresis over probe results: no I/O, no clocks.
//!
//! - `Unknown` (no verdict yet) and `Down` go `Up` only after `rise` consecutive healthy
//!   results, never earlier.
//! - `Up` goes `Down` after `fall` consecutive unhealthy or failed results, except a lost
//!   connection, which goes down at once whatever `fall` is.
//! - `Unknown` goes `Down` on the first unhealthy result, so the state carries a reason.
//!
//! What else keeps a service's routes out (drain, disable file, missing address, flap
//! damping) is layered on top by [`super::state`].

use std::fmt;

use super::mysql::{FailureKind, ProbeResult};

/// A service's health verdict. `Unknown` is treated as down by everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        })
    }
}

/// A change of health, with the reason for the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Checker {
    rise: u32,
    fall: u32,
    health: Health,
    reason: String,
    /// Consecutive healthy results (reset by any other result).
    successes: u32,
    /// Consecutive unhealthy or failed results (reset by a healthy one).
    failures: u32,
}

impl Checker {
    /// `rise` and `fall` below 1 are taken as 1: nothing goes up without a healthy result.
    pub fn new(rise: u32, fall: u32) -> Self {
        Checker {
            rise: rise.max(1),
            fall: fall.max(1),
            health: Health::Unknown,
            reason: "no check completed yet".to_string(),
            successes: 0,
            failures: 0,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Consecutive healthy results so far (progress towards `rise`).
    pub fn successes(&self) -> u32 {
        self.successes
    }

    /// Consecutive unhealthy or failed results so far (progress towards `fall`).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn rise(&self) -> u32 {
        self.rise
    }

    pub fn fall(&self) -> u32 {
        self.fall
    }

    /// Why the state is what it is. While not up it follows the latest result, so an
    /// operator sees the current cause (or the progress towards up).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Feeds one probe result; `Some` only when the health changes.
    pub fn observe(&mut self, result: &ProbeResult) -> Option<Transition> {
        let from = self.health;
        match result {
            ProbeResult::Healthy(what) => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if from == Health::Up {
                    return None;
                }
                if self.successes >= self.rise {
                    self.health = Health::Up;
                    self.reason = format!(
                        "{what} ({} consecutive check{})",
                        self.successes,
                        if self.successes == 1 { "" } else { "s" }
                    );
                } else {
                    self.reason = format!(
                        "{what}, {} of {} consecutive checks needed to go up",
                        self.successes, self.rise
                    );
                }
            }
            ProbeResult::Unhealthy(_) | ProbeResult::Failed { .. } => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                let lost = matches!(
                    result,
                    ProbeResult::Failed {
                        kind: FailureKind::Lost,
                        ..
                    }
                );
                match from {
                    Health::Up if !lost && self.failures < self.fall => return None,
                    _ => {
                        self.health = Health::Down;
                        self.reason = result.to_string();
                    }
                }
            }
        }
        (self.health != from).then(|| Transition {
            from,
            to: self.health,
            reason: self.reason.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::mysql::{Problem, Variable};
    use proptest::prelude::*;

    fn w() -> ProbeResult {
        ProbeResult::writable()
    }

    fn ro() -> ProbeResult {
        ProbeResult::Unhealthy(Problem::On(Variable::ReadOnly).into())
    }

    fn failed(kind: FailureKind) -> ProbeResult {
        ProbeResult::Failed {
            kind,
            reason: format!("{kind:?}"),
        }
    }

    /// Feeds results and returns the health after each.
    fn run(c: &mut Checker, results: &[ProbeResult]) -> Vec<Health> {
        results
            .iter()
            .map(|r| {
                c.observe(r);
                c.health()
            })
            .collect()
    }

    use Health::{Down, Unknown, Up};

    #[test]
    fn starts_unknown() {
        let c = Checker::new(2, 1);
        assert_eq!(c.health(), Unknown);
        assert_eq!(c.reason(), "no check completed yet");
    }

    #[test]
    fn rise1_fall1() {
        let mut c = Checker::new(1, 1);
        let t = c.observe(&w()).unwrap();
        assert_eq!((t.from, t.to), (Unknown, Up));
        assert_eq!(t.reason, "writable primary (1 consecutive check)");
        assert_eq!(c.observe(&w()), None);
        let t = c.observe(&ro()).unwrap();
        assert_eq!(
            t,
            Transition {
                from: Up,
                to: Down,
                reason: "read_only=1".into()
            }
        );
        let t = c.observe(&w()).unwrap();
        assert_eq!((t.from, t.to), (Down, Up));
    }

    #[test]
    fn unknown_goes_up_only_after_rise_writable() {
        let mut c = Checker::new(3, 2);
        assert_eq!(c.observe(&w()), None);
        assert_eq!(c.observe(&w()), None);
        assert_eq!(c.health(), Unknown);
        assert_eq!(
            c.reason(),
            "writable primary, 2 of 3 consecutive checks needed to go up"
        );
        let t = c.observe(&w()).unwrap();
        assert_eq!((t.from, t.to), (Unknown, Up));
        assert_eq!(t.reason, "writable primary (3 consecutive checks)");
    }

    #[test]
    fn unknown_goes_down_on_first_failure() {
        let mut c = Checker::new(3, 2);
        let t = c.observe(&failed(FailureKind::Timeout)).unwrap();
        assert_eq!((t.from, t.to), (Unknown, Down));
        assert_eq!(t.reason, "Timeout");
        // Already down: later failures change the reason, not the state.
        assert_eq!(c.observe(&ro()), None);
        assert_eq!(c.reason(), "read_only=1");
    }

    #[test]
    fn rise3_fall2() {
        let mut c = Checker::new(3, 2);
        let h = run(
            &mut c,
            &[w(), w(), w(), ro(), w(), ro(), ro(), w(), w(), w()],
        );
        assert_eq!(h, [Unknown, Unknown, Up, Up, Up, Up, Down, Down, Down, Up]);
    }

    #[test]
    fn failure_resets_rise_count() {
        let mut c = Checker::new(3, 2);
        let h = run(&mut c, &[w(), w(), ro(), w(), w(), w()]);
        assert_eq!(h, [Unknown, Unknown, Down, Down, Down, Up]);
    }

    #[test]
    fn success_resets_fall_count() {
        let mut c = Checker::new(1, 3);
        let t = failed(FailureKind::Timeout);
        let h = run(
            &mut c,
            &[w(), t.clone(), t.clone(), w(), t.clone(), t.clone(), t],
        );
        assert_eq!(h, [Up, Up, Up, Up, Up, Up, Down]);
    }

    #[test]
    fn lost_connection_goes_down_at_once() {
        let mut c = Checker::new(1, 5);
        c.observe(&w());
        let t = c.observe(&failed(FailureKind::Lost)).unwrap();
        assert_eq!((t.from, t.to), (Up, Down));
        // Timeout and query errors wait for `fall`.
        for kind in [FailureKind::Timeout, FailureKind::Query] {
            let mut c = Checker::new(1, 2);
            c.observe(&w());
            assert_eq!(c.observe(&failed(kind)), None);
            assert_eq!(c.observe(&failed(kind)).map(|t| t.to), Some(Down));
        }
    }

    #[test]
    fn zero_rise_and_fall_act_as_one() {
        let mut c = Checker::new(0, 0);
        assert_eq!(c.observe(&ro()).map(|t| t.to), Some(Down));
        assert_eq!(c.observe(&w()).map(|t| t.to), Some(Up));
        assert_eq!(c.observe(&ro()).map(|t| t.to), Some(Down));
    }

    fn any_result() -> impl Strategy<Value = ProbeResult> {
        prop_oneof![
            4 => Just(ProbeResult::writable()),
            1 => Just(ProbeResult::Unhealthy(Problem::On(Variable::ReadOnly).into())),
            1 => Just(failed(FailureKind::Lost)),
            1 => Just(failed(FailureKind::Timeout)),
            1 => Just(failed(FailureKind::Query)),
        ]
    }

    proptest! {
        #[test]
        fn never_up_without_rise_writable(
            rise in 1u32..5,
            fall in 1u32..5,
            results in proptest::collection::vec(any_result(), 0..60),
        ) {
            let mut c = Checker::new(rise, fall);
            let mut prev = c.health();
            for (i, r) in results.iter().enumerate() {
                let t = c.observe(r);
                let seen = &results[..=i];
                // Some exactly when the state changed, and it says so.
                prop_assert_eq!(t.is_some(), c.health() != prev);
                if let Some(t) = &t {
                    prop_assert_eq!((t.from, t.to), (prev, c.health()));
                    prop_assert_eq!(t.reason.as_str(), c.reason());
                }
                if c.health() == Health::Up && prev != Health::Up {
                    // Going up: the last `rise` results were all writable.
                    prop_assert!(seen.len() >= rise as usize);
                    prop_assert!(seen[seen.len() - rise as usize..].iter().all(|r| r.is_healthy()));
                }
                if c.health() == Health::Up {
                    // Staying up: fewer than `fall` trailing failures, none of them lost.
                    let trailing: Vec<_> =
                        seen.iter().rev().take_while(|r| !r.is_healthy()).collect();
                    prop_assert!(trailing.len() < fall as usize);
                    let lost = trailing.iter().any(|r| {
                        matches!(r, ProbeResult::Failed { kind: FailureKind::Lost, .. })
                    });
                    prop_assert!(!lost, "up despite a lost connection");
                    prop_assert!(seen.iter().filter(|r| r.is_healthy()).count() >= rise as usize);
                } else if !r.is_healthy() {
                    // Any failure leaves a non-up state down, with that failure's reason.
                    prop_assert_eq!(c.health(), Health::Down);
                    prop_assert_eq!(c.reason(), r.to_string());
                }
                if c.health() == Health::Unknown {
                    prop_assert!(seen.iter().all(|r| r.is_healthy()));
                }
                prev = c.health();
            }
        }
    }
}
