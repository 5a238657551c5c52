//! Waiting for a condition: poll with a deadline, never a bare sleep.

use std::time::{Duration, Instant};

/// How often `wait_until` and friends look again.
pub const POLL: Duration = Duration::from_millis(20);
/// Bound for one step (a daemon starting, a session coming up, a route changing). Generous on
/// purpose: two cores run several labs at once in CI. Speed is the benchmarks' business; these
/// tests prove behaviour.
pub const STEP: Duration = Duration::from_secs(20);

/// Polls `f` every `every` until it returns `Some` (Ok) or `within` passes (Err with the time
/// waited).
pub fn poll<T>(
    within: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, Duration> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() >= within {
            return Err(start.elapsed());
        }
        std::thread::sleep(every);
    }
}

/// Polls `f` every [`POLL`] until it returns `Some`; panics naming `what` and the time waited
/// when `within` passes first.
#[track_caller]
pub fn wait_for<T>(within: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll(within, POLL, f)
        .unwrap_or_else(|waited| panic!("timed out after {waited:.3?} waiting until {what}"))
}

/// Polls `cond` every [`POLL`] until it holds and returns how long that took; panics naming
/// `what` and the time waited when `within` passes first.
#[track_caller]
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    wait_for(within, what, || cond().then_some(()));
    start.elapsed()
}

/// Polls `cond` every [`POLL`] until it holds (Ok with the time it took) or `within` passes
/// (Err with the time waited), for tests that report a timeout among other findings.
pub fn wait_for_result(
    within: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<Duration, Duration> {
    let start = Instant::now();
    poll(within, POLL, || cond().then_some(())).map(|()| start.elapsed())
}

/// A bounded "never": checks `invariant` at every poll until `done` holds (and at least once
/// after), panicking at the first violation. `done` is the evidence that the window was long
/// enough (time passed, checks observed); `within` bounds the wait for that evidence.
#[track_caller]
pub fn hold_until(
    within: Duration,
    invariant_what: &str,
    mut invariant: impl FnMut() -> bool,
    done_what: &str,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let finished = done();
        if !invariant() {
            panic!(
                "{invariant_what} stopped holding after {:.3?} (while waiting until {done_what})",
                start.elapsed()
            );
        }
        if finished {
            return start.elapsed();
        }
        if start.elapsed() >= within {
            panic!(
                "timed out after {:.3?} waiting until {done_what} (while {invariant_what} held)",
                start.elapsed()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Checks `invariant` at every poll for the whole `window`; panics at the first violation.
#[track_caller]
pub fn hold_for(window: Duration, what: &str, invariant: impl FnMut() -> bool) {
    let start = Instant::now();
    hold_until(
        window + STEP,
        what,
        invariant,
        &format!("{window:?} passed"),
        || start.elapsed() >= window,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_value_or_the_time_waited() {
        let mut n = 0;
        let got = poll(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, Ok(3));
        let waited = poll::<()>(Duration::from_millis(30), Duration::from_millis(5), || None);
        assert!(waited.unwrap_err() >= Duration::from_millis(30));
    }
}
