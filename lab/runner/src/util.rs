//! Small process and time helpers: the test kit's (shared with primaryd's tests), in the
//! runner's error type, and the runner's own.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

pub use testkit::{alive, comm, is_root, mounts_below, netns_list};

/// Runs a command to completion with stdin closed.
pub fn run(cmd: &mut Command) -> Result<Output> {
    Ok(testkit::try_run(cmd)?)
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = testkit::try_run_ok(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS...` that must succeed.
pub fn ip(args: &[&str]) -> Result<String> {
    run_ok(Command::new("ip").args(args))
}

/// Shell single-quoting.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A pseudo-random number in 0..n (xorshift64*, seeded from the clock and the PID): for the
/// benchmark's random phases, not for anything secret.
pub fn random_below(n: u64) -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            (t ^ ((std::process::id() as u64) << 32)) | 1
        });
    }
    if n == 0 {
        return 0;
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    })
}

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// Polls `f` every `every` until it returns `Some` or `within` passes.
pub fn wait_for<T>(within: Duration, every: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    testkit::poll(within, every, f).ok()
}

/// Processes whose network namespace is `ns` (`ip netns pids`).
pub fn netns_pids(ns: &str) -> Vec<i32> {
    testkit::netns_pids(ns)
}

/// Last `n` lines of a file, without the final newline (callers add their own).
pub fn tail(path: &Path, n: usize) -> String {
    testkit::tail(path, n).trim_end_matches('\n').to_string()
}
