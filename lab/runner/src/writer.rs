//! app1's client: writes through the service address, and records for every key which server
//! acknowledged it. It runs on a thread of the runner that has entered app1's network
//! namespace, so its packets (and the processes it starts) take app1's route through the fabric.
//!
//! Three profiles (clients.rs has the other two): `retry`, the drills' writer here (a 100 ms
//! connect timeout, a retry every 10 ms: it measures the routing and hides what a real client
//! waits); `cli`, a `mariadb` process per write; `pool`, one long-lived connection as an
//! application keeps it. Every attempt records when it started and when its answer came.
//!
//! Each connection asks the server who it is (`@@hostname`, `@@server_id`) right after
//! connecting; an INSERT acknowledged on that connection was committed by that server. A key
//! is retried until one server acknowledges it (or reports it already exists), then the next.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use crate::clients::{Client, Failure};
use crate::lab::SERVICE_ADDR;
use crate::util::now_ms;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);
const QUERY_TIMEOUT: Duration = Duration::from_millis(250);
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

pub struct Writer {
    log: Log,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// `run_id` is the `run` column of the client's rows (a probe beside the drill's writer
    /// uses another).
    pub fn start(netns: PathBuf, run_id: i64, client: Client) -> Result<Writer> {
        let log = Log {
            stop: Arc::new(AtomicBool::new(false)),
            attempts: Arc::new(Mutex::new(Vec::new())),
        };
        let log2 = log.clone();
        let ns = File::open(&netns).with_context(|| format!("open {}", netns.display()))?;
        let handle = std::thread::Builder::new()
            .name(format!("app1-{}", client.name()))
            .spawn(move || {
                // Only this thread moves: the runner's other threads stay where they are. The
                // `mariadb` processes of the cli profile start from it, in app1's namespace.
                if let Err(e) = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                {
                    log2.failed(now_ms(), 0, format!("setns: {e}"));
                    return;
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                match client {
                    Client::Retry => rt.block_on(write_loop(run_id, log2)),
                    Client::Pool => rt.block_on(crate::clients::pool_loop(run_id, log2)),
                    Client::Cli => crate::clients::cli_loop(run_id, log2),
                }
            })?;
        Ok(Writer {
            log,
            handle: Some(handle),
        })
    }

    /// The key of the last attempt recorded, without copying the log.
    pub fn last_key(&self) -> Option<u64> {
        self.log.attempts.lock().unwrap().last().map(|a| a.key)
    }

    pub fn snapshot(&self) -> Vec<Attempt> {
        self.log.attempts.lock().unwrap().clone()
    }

    pub fn stop(mut self) -> Vec<Attempt> {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        self.log.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.halt();
    }
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

async fn write_loop(run_id: i64, log: Log) {
    let mut key: u64 = 1;
    let mut conn: Option<(mysql_async::Conn, String)> = None;
    while !log.stopped() {
        let start = now_ms();
        if conn.is_none() {
            match connect(CONNECT_TIMEOUT, QUERY_TIMEOUT).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    log.failed(start, key, e);
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            }
        }
        let (c, server) = conn.as_mut().expect("connected");
        let server = server.clone();
        match insert_on(&log, c, &server, start, run_id, key, QUERY_TIMEOUT).await {
            Some(next) => {
                key = next;
                tokio::time::sleep(PACE).await;
            }
            None => {
                conn = None;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}
