//! Fencing: on the daemon's request (a service that lost a conflict, `on_conflict =
//! "fence"`), `SET GLOBAL read_only = 1` (and `super_read_only = 1` on MySQL 5.7+) on the
//! service's server, so that local writers stop too, not only clients that come through the
//! route. Over a connection of its own, so a check hung on the probe's connection never holds
//! it up; the whole fence is bounded by the check timeout. The next check then finds the
//! server read-only (unhealthy).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use super::mysql::Flavour;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    #[error("no service named {0:?}")]
    UnknownService(String),
    #[error("service {0}: its health task is not running")]
    TaskGone(String),
    #[error("fencing did not finish within {ms} ms")]
    Timeout { ms: u64 },
    #[error("fencing failed: {0}")]
    Failed(String),
}

/// What to grant when the server refuses.
const PRIVILEGE_HINT: &str = "the check user needs READ_ONLY ADMIN on MariaDB 10.11 \
     (GRANT READ_ONLY ADMIN ON *.* TO ...), SYSTEM_VARIABLES_ADMIN or SUPER on MySQL";
/// "Access denied; you need (at least one of) the ... privilege(s)".
const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;

/// The statement that fences a server of this flavour, and the query that must answer 1
/// afterwards.
pub fn fence_sql(flavour: &Flavour) -> (&'static str, &'static str) {
    if flavour.has_super_read_only() {
        (
            "SET GLOBAL read_only = 1, super_read_only = 1",
            "SELECT @@global.read_only AND @@global.super_read_only",
        )
    } else {
        ("SET GLOBAL read_only = 1", "SELECT @@global.read_only")
    }
}

/// Connects with `opts` and makes the server read-only, within `timeout`; `Ok` once the
/// server says it is.
pub async fn set_read_only(opts: Opts, timeout: Duration) -> Result<Flavour, FenceError> {
    match tokio::time::timeout(timeout, run(opts, timeout)).await {
        Ok(r) => r,
        Err(_) => Err(FenceError::Timeout {
            ms: timeout.as_millis() as u64,
        }),
    }
}

async fn run(opts: Opts, timeout: Duration) -> Result<Flavour, FenceError> {
    let failed = |what: &str, e: mysql_async::Error| {
        let hint = match &e {
            mysql_async::Error::Server(s) if s.code == ER_SPECIFIC_ACCESS_DENIED => {
                format!(" ({PRIVILEGE_HINT})")
            }
            _ => String::new(),
        };
        FenceError::Failed(format!("{what}: {e}{hint}"))
    };
    let mut conn = Conn::new(opts).await.map_err(|e| failed("connect", e))?;
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| failed("SELECT VERSION()", e))?;
    let flavour = Flavour::from_version(&version.unwrap_or_default())
        .map_err(|e| FenceError::Failed(e.to_string()))?;
    // read_only=1 waits for the global read lock: give up on the server side too.
    let secs = timeout.as_millis().div_ceil(1000).max(1);
    conn.query_drop(format!("SET SESSION lock_wait_timeout = {secs}"))
        .await
        .map_err(|e| failed("SET SESSION lock_wait_timeout", e))?;
    let (set, check) = fence_sql(&flavour);
    conn.query_drop(set).await.map_err(|e| failed(set, e))?;
    let now: Option<u64> = conn
        .query_first(check)
        .await
        .map_err(|e| failed(check, e))?;
    if now != Some(1) {
        return Err(FenceError::Failed(format!(
            "{set} succeeded but {check} answered {now:?}"
        )));
    }
    Ok(flavour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_per_flavour() {
        assert_eq!(
            fence_sql(&Flavour::MariaDb),
            ("SET GLOBAL read_only = 1", "SELECT @@global.read_only")
        );
        let mysql8 = Flavour::MySql {
            major: 8,
            minor: 0,
            patch: 36,
        };
        assert_eq!(
            fence_sql(&mysql8).0,
            "SET GLOBAL read_only = 1, super_read_only = 1"
        );
        let mysql56 = Flavour::MySql {
            major: 5,
            minor: 6,
            patch: 51,
        };
        assert_eq!(fence_sql(&mysql56).0, "SET GLOBAL read_only = 1");
    }

    #[tokio::test]
    async fn a_silent_server_times_out_on_time() {
        let (port, hold) = crate::health::test_servers::silent().await;
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(port)
            .prefer_socket(false);
        let r = set_read_only(opts.into(), Duration::from_millis(200)).await;
        assert_eq!(r, Err(FenceError::Timeout { ms: 200 }));
        hold.abort();
    }
}
