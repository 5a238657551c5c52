//! Pure exponential backoff for reconnect attempts: no I/O, time is passed in.
//!
//! Every failed login, handshake timeout or killed watch query is a line in the server's
//! error log, so attempts that reach the server are spaced out: `base`, then doubling up to
//! `max`, until one succeeds.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
    not_before: Option<Instant>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            failures: 0,
            not_before: None,
        }
    }

    /// May an attempt be made now?
    pub fn ready(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// Consecutive failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure at `now`; returns how long the next attempt must wait.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let shift = self.failures.min(16);
        let delay = self.base.saturating_mul(1 << shift).min(self.max);
        self.failures = self.failures.saturating_add(1);
        self.not_before = Some(now + delay);
        delay
    }

    /// Records a success: the next failure waits `base` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.not_before = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_up_to_max_and_resets_on_success() {
        let t0 = Instant::now();
        let mut b = Backoff::new(S, 10 * S);
        assert!(b.ready(t0));
        let delays: Vec<u64> = (0..6).map(|_| b.failed(t0).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.failures(), 6);
        assert!(!b.ready(t0 + 9 * S));
        assert!(b.ready(t0 + 10 * S));
        b.succeeded();
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0), S);
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let t0 = Instant::now();
        let mut b = Backoff::new(S, 30 * S);
        for _ in 0..100 {
            assert!(b.failed(t0) <= 30 * S);
        }
    }
}
