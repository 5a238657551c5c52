//! What a client's write is and what it leaves, for every profile (the retry writer in
//! writer.rs, `cli` and `pool` in clients.rs): the INSERT whose row names the server that
//! committed it, the connect that asks who answered, and the record of every attempt (when it
//! began, when its answer came, acknowledged by which server or what it met).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use crate::lab::SERVICE_ADDR;
use crate::util::now_ms;

/// Pause after an acknowledged write, and after a failed attempt.
pub(crate) const PACE: Duration = Duration::from_millis(5);
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The INSERT was acknowledged by this server.
    Ack {
        server: String,
    },
    /// The server said the key exists: an earlier attempt whose answer was lost committed it.
    Duplicate {
        server: String,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// When the answer (or the error) came, Unix ms.
    pub t_ms: f64,
    /// When the attempt began (its connect, when it needed one), Unix ms.
    #[serde(default)]
    pub start_ms: f64,
    pub key: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// What a failed attempt met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl Attempt {
    /// How long the attempt waited for its answer.
    pub fn wait_ms(&self) -> f64 {
        self.t_ms - self.start_ms
    }
}

/// Where a client loop records its attempts.
#[derive(Clone)]
pub(crate) struct Log {
    pub stop: Arc<AtomicBool>,
    pub attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Log {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn record(&self, start_ms: f64, key: u64, outcome: Outcome, failure: Option<Failure>) {
        self.attempts.lock().unwrap().push(Attempt {
            t_ms: now_ms(),
            start_ms,
            key,
            outcome,
            failure,
        });
    }

    /// A failed attempt, classified from its error text.
    pub fn failed(&self, start_ms: f64, key: u64, error: String) {
        let f = Failure::of(&error);
        self.record(start_ms, key, Outcome::Failed { error }, Some(f));
    }
}

/// What a failed attempt met, from its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The connect was answered by an RST.
    Refused,
    /// An established connection was reset or closed under the client.
    Reset,
    /// No answer within the client's timeout.
    Timeout,
    /// The server answered with an error (e.g. read-only).
    Server,
    /// The run ended while the attempt waited.
    Stopped,
    Other,
}

impl Failure {
    /// Classifies an error text of mysql_async, the `mariadb` client or the runner.
    pub fn of(error: &str) -> Failure {
        let e = error.to_ascii_lowercase();
        let any = |w: &[&str]| w.iter().any(|x| e.contains(x));
        if any(&["stopped while"]) {
            Failure::Stopped
        } else if any(&["refused", "(111)", "os error 111"]) {
            Failure::Refused
        } else if any(&[
            "no answer in",
            "timed out",
            "(110)",
            "(115)",
            "cut off after",
        ]) {
            Failure::Timeout
        } else if any(&[
            "reset",
            "(104)",
            "broken pipe",
            "lost connection",
            "gone away",
            "end of file",
            "eof",
        ]) {
            Failure::Reset
        } else if any(&["error 1", "server error", "read-only", "read_only"]) {
            Failure::Server
        } else {
            Failure::Other
        }
    }
}

pub(crate) fn acks_by(attempts: &[Attempt], server: &str) -> usize {
    attempts
        .iter()
        .filter(|a| matches!(&a.outcome, Outcome::Ack { server: s } if s == server))
        .count()
}

pub(crate) fn first_ack<'a>(attempts: &'a [Attempt], server: &str) -> Option<&'a Attempt> {
    attempts
        .iter()
        .find(|a| matches!(&a.outcome, Outcome::Ack { server: s } if s == server))
}

/// The INSERT of one key: the row names the server that committed it.
pub(crate) fn insert_sql(run_id: i64, key: u64) -> String {
    format!(
        "INSERT INTO writes (run, k, server_id, host) VALUES ({run_id}, {key}, @@server_id, @@hostname)"
    )
}

pub(crate) fn opts() -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(SERVICE_ADDR)
        .tcp_port(3306)
        .user(Some("app"))
        .pass(Some("lab-app"))
        .db_name(Some("lab"))
        .prefer_socket(false)
}

/// Connects and asks who answered, each step bounded by its timeout.
pub(crate) async fn connect(
    connect_timeout: Duration,
    query_timeout: Duration,
) -> Result<(mysql_async::Conn, String), String> {
    let mut conn = match tokio::time::timeout(connect_timeout, mysql_async::Conn::new(opts())).await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(format!("connect: {e}")),
        Err(_) => return Err(format!("connect: no answer in {connect_timeout:?}")),
    };
    let who = tokio::time::timeout(
        query_timeout,
        conn.query_first::<(String, u32), _>("SELECT @@hostname, @@server_id"),
    )
    .await;
    match who {
        Ok(Ok(Some((host, _id)))) => Ok((conn, host)),
        Ok(Ok(None)) => Err("who are you: no row".into()),
        Ok(Err(e)) => Err(format!("who are you: {e}")),
        Err(_) => Err(format!("who are you: no answer in {query_timeout:?}")),
    }
}

/// What one INSERT on a connection came to: the next key (None: the same key again, on a
/// new connection).
pub(crate) async fn insert_on(
    log: &Log,
    conn: &mut mysql_async::Conn,
    server: &str,
    start: f64,
    run_id: i64,
    key: u64,
    timeout: Duration,
) -> Option<u64> {
    match tokio::time::timeout(timeout, conn.query_drop(insert_sql(run_id, key))).await {
        Ok(Ok(())) => {
            log.record(
                start,
                key,
                Outcome::Ack {
                    server: server.into(),
                },
                None,
            );
            Some(key + 1)
        }
        Ok(Err(mysql_async::Error::Server(e))) if e.code == 1062 => {
            log.record(
                start,
                key,
                Outcome::Duplicate {
                    server: server.into(),
                },
                None,
            );
            Some(key + 1)
        }
        Ok(Err(e)) => {
            log.failed(start, key, format!("{server}: {e}"));
            None
        }
        Err(_) => {
            log.failed(start, key, format!("{server}: no answer in {timeout:?}"));
            None
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_from_the_error_text() {
        let cases = [
            (
                "ERROR 2002 (HY000): Can't connect to server on '192.0.2.10' (111)",
                Failure::Refused,
            ),
            (
                "ERROR 2002 (HY000): Can't connect to server on '192.0.2.10' (115)",
                Failure::Timeout,
            ),
            (
                "connect: Input/output error: Connection refused (os error 111)",
                Failure::Refused,
            ),
            (
                "db1: Input/output error: Connection reset by peer (os error 104)",
                Failure::Reset,
            ),
            (
                "ERROR 2013 (HY000) at line 1: Lost connection to server during query",
                Failure::Reset,
            ),
            ("db1: no answer in 10s", Failure::Timeout),
            ("mariadb: cut off after 10s", Failure::Timeout),
            (
                "db1: ERROR 1290 (HY000) at line 1: The MariaDB server is running with the \
                 --read-only option",
                Failure::Server,
            ),
            ("db1: stopped while waiting", Failure::Stopped),
            ("spawn mariadb: No such file", Failure::Other),
        ];
        for (text, want) in cases {
            assert_eq!(Failure::of(text), want, "{text}");
        }
    }
}
