//! Fail fast between checks: a second connection parked in `SELECT SLEEP(...)`.
//!
//! When the server dies the kernel closes its sockets and the parked query ends with EOF at
//! once; when it shuts down cleanly it kills client connections first (long before the
//! process exits). Either way the watch ends, and the service's task runs a check at once
//! instead of at the next interval: a dead server refuses the reconnect, so the route is
//! withdrawn within milliseconds whatever `interval_ms` is.
//!
//! An administrator's `KILL` of the watch (or `KILL QUERY`) ends it too: the check that
//! follows finds the server healthy and the watch is parked again after a backoff, so a tool
//! that keeps killing long queries costs a check, not an outage and not a reconnect storm.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};
use tokio::task::JoinHandle;

use super::mysql::Flavour;

/// The parked query's length. The watch re-parks when it completes; a short sleep bounds
/// how long a server thread outlives a watch that primaryd dropped (the server only sees the
/// closed socket when the sleep returns).
const PARK_SECONDS: u32 = 60;

/// How a watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEnd {
    /// Whether the watch had been parked on the server (false: it never got that far).
    pub parked: bool,
    pub reason: String,
}

/// A running watch; dropping it closes its connection.
#[derive(Debug)]
pub struct Watch {
    task: JoinHandle<WatchEnd>,
}

impl Watch {
    /// Connects (within `timeout`) and parks. Never blocks the caller: the watch runs as
    /// its own task.
    pub fn start(opts: Opts, flavour: Flavour, timeout: Duration) -> Watch {
        Watch {
            task: tokio::spawn(park(opts, flavour, timeout)),
        }
    }

    /// Resolves when the watch ends (cancel-safe: can be awaited again after a `select!`).
    pub async fn ended(&mut self) -> WatchEnd {
        match (&mut self.task).await {
            Ok(end) => end,
            Err(e) => WatchEnd {
                parked: false,
                reason: format!("watch task failed: {e}"),
            },
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn park(opts: Opts, flavour: Flavour, timeout: Duration) -> WatchEnd {
    let not_parked = |reason: String| WatchEnd {
        parked: false,
        reason,
    };
    let mut conn = match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return not_parked(format!("watch connection failed: {e}")),
        Err(_) => {
            return not_parked(format!(
                "watch connection timed out after {} ms",
                timeout.as_millis()
            ))
        }
    };
    match tokio::time::timeout(timeout, conn.query_drop(flavour.no_statement_limit())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return not_parked(format!("watch connection failed: {e}")),
        Err(_) => {
            return not_parked(format!(
                "watch setup timed out after {} ms",
                timeout.as_millis()
            ))
        }
    }
    let sql = format!("SELECT SLEEP({PARK_SECONDS})");
    loop {
        match conn.query_first::<Row, _>(&sql).await {
            // SLEEP returns 0 after the full time and 1 when interrupted (KILL QUERY).
            Ok(Some(row)) if matches!(row.get_opt::<i64, _>(0), Some(Ok(0))) => continue,
            Ok(_) => {
                return WatchEnd {
                    parked: true,
                    reason: "watch query interrupted (KILL QUERY?)".into(),
                }
            }
            Err(e) => {
                return WatchEnd {
                    parked: true,
                    reason: format!("watch connection ended: {e}"),
                }
            }
        }
    }
}
