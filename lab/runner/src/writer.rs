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
//! The record and the SQL every profile shares are in attempt.rs.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::attempt::{connect, insert_on, Attempt, Log, PACE, RETRY_PAUSE};
use crate::clients::Client;
use crate::util::now_ms;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);
const QUERY_TIMEOUT: Duration = Duration::from_millis(250);

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
