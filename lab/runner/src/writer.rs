//! app1's client: writes through the service address in a tight loop with short timeouts, and
//! records for every key which server acknowledged it. It runs on a thread of the runner that
//! has entered app1's network namespace, so its packets take app1's route through the fabric.
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
use serde::Serialize;

use crate::lab::SERVICE_ADDR;
use crate::util::now_ms;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);
const QUERY_TIMEOUT: Duration = Duration::from_millis(250);
/// Pause after an acknowledged write, and after a failed attempt.
const PACE: Duration = Duration::from_millis(5);
const RETRY_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub t_ms: f64,
    pub key: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

pub struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Writer {
    pub fn start(netns: PathBuf, run_id: i64) -> Result<Writer> {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let (stop2, attempts2) = (stop.clone(), attempts.clone());
        let ns = File::open(&netns).with_context(|| format!("open {}", netns.display()))?;
        let handle = std::thread::Builder::new()
            .name("app1-writer".into())
            .spawn(move || {
                // Only this thread moves: the runner's other threads stay where they are.
                if let Err(e) = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                {
                    attempts2.lock().unwrap().push(Attempt {
                        t_ms: now_ms(),
                        key: 0,
                        outcome: Outcome::Failed {
                            error: format!("setns: {e}"),
                        },
                    });
                    return;
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(write_loop(run_id, stop2, attempts2));
            })?;
        Ok(Writer {
            stop,
            handle: Some(handle),
            attempts,
        })
    }

    pub fn snapshot(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }

    pub fn stop(mut self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.snapshot()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

async fn connect() -> Result<(mysql_async::Conn, String), String> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(SERVICE_ADDR)
        .tcp_port(3306)
        .user(Some("app"))
        .pass(Some("lab-app"))
        .db_name(Some("lab"))
        .prefer_socket(false);
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(opts)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(format!("connect: {e}")),
        Err(_) => return Err(format!("connect: no answer in {CONNECT_TIMEOUT:?}")),
    };
    let who = tokio::time::timeout(
        QUERY_TIMEOUT,
        conn.query_first::<(String, u32), _>("SELECT @@hostname, @@server_id"),
    )
    .await;
    match who {
        Ok(Ok(Some((host, _id)))) => Ok((conn, host)),
        Ok(Ok(None)) => Err("who are you: no row".into()),
        Ok(Err(e)) => Err(format!("who are you: {e}")),
        Err(_) => Err(format!("who are you: no answer in {QUERY_TIMEOUT:?}")),
    }
}

async fn write_loop(run_id: i64, stop: Arc<AtomicBool>, attempts: Arc<Mutex<Vec<Attempt>>>) {
    let mut key: u64 = 1;
    let mut conn: Option<(mysql_async::Conn, String)> = None;
    let record = |key: u64, outcome: Outcome| {
        attempts.lock().unwrap().push(Attempt {
            t_ms: now_ms(),
            key,
            outcome,
        })
    };
    while !stop.load(Ordering::SeqCst) {
        if conn.is_none() {
            match connect().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    record(key, Outcome::Failed { error: e });
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            }
        }
        let (c, server) = conn.as_mut().expect("connected");
        let server = server.clone();
        let sql = format!(
            "INSERT INTO writes (run, k, server_id, host) VALUES ({run_id}, {key}, @@server_id, @@hostname)"
        );
        match tokio::time::timeout(QUERY_TIMEOUT, c.query_drop(sql)).await {
            Ok(Ok(())) => {
                record(key, Outcome::Ack { server });
                key += 1;
                tokio::time::sleep(PACE).await;
            }
            Ok(Err(mysql_async::Error::Server(e))) if e.code == 1062 => {
                record(key, Outcome::Duplicate { server });
                key += 1;
            }
            Ok(Err(e)) => {
                record(
                    key,
                    Outcome::Failed {
                        error: format!("{server}: {e}"),
                    },
                );
                conn = None;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(_) => {
                record(
                    key,
                    Outcome::Failed {
                        error: format!("{server}: no answer in {QUERY_TIMEOUT:?}"),
                    },
                );
                conn = None;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}
