//! How long one check may take. A hung server (SIGSTOP, a stuck commit) answers nothing, and
//! what matters to clients is how long ago it last answered, not when the current check began:
//! with `interval_ms < timeout_ms` a check may run only until `timeout_ms` after the previous
//! healthy answer, so a server that hangs is withdrawn `timeout_ms` after its last answer
//! whatever the phase of the check cycle (before: up to `interval_ms + timeout_ms`). A check
//! after a failure, the first one, and every check with `interval_ms >= timeout_ms` (there is
//! then no check running for part of each cycle) get `timeout_ms` from their own start. Pure.

use std::time::{Duration, Instant};

/// The time the check starting at `now` may take; `last_healthy` is when the previous check
/// answered healthy (None if it did not).
pub fn check_budget(
    interval: Duration,
    timeout: Duration,
    last_healthy: Option<Instant>,
    now: Instant,
) -> Duration {
    match last_healthy {
        Some(t) if interval < timeout => (t + timeout).saturating_duration_since(now),
        _ => timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_check_ends_timeout_after_the_last_healthy_answer() {
        let t = Instant::now();
        let (interval, timeout) = (100 * MS, 300 * MS);
        // The previous check answered at t; this one starts a cycle later: 200 ms are left,
        // so a server that hung right after t is failed at t + 300 ms, not t + 400 ms.
        assert_eq!(
            check_budget(interval, timeout, Some(t), t + 100 * MS),
            200 * MS
        );
        // Whatever the phase: a check that starts late gets what is left, down to nothing.
        assert_eq!(
            check_budget(interval, timeout, Some(t), t + 250 * MS),
            50 * MS
        );
        assert_eq!(
            check_budget(interval, timeout, Some(t), t + 400 * MS),
            Duration::ZERO
        );
    }

    #[test]
    fn after_a_failure_or_with_long_intervals_each_check_gets_the_whole_timeout() {
        let t = Instant::now();
        assert_eq!(check_budget(100 * MS, 300 * MS, None, t), 300 * MS);
        assert_eq!(
            check_budget(1000 * MS, 300 * MS, Some(t), t + 1000 * MS),
            300 * MS
        );
        assert_eq!(
            check_budget(300 * MS, 300 * MS, Some(t), t + 300 * MS),
            300 * MS
        );
    }
}
