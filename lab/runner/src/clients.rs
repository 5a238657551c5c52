//! The benchmark's client profiles beside the drills' retry writer (writer.rs): what real
//! clients wait during a failover (issue 12). `cli` starts a `mariadb` client process per write
//! (`--connect-timeout=1`, cut off after READ_TIMEOUT as the client has no read timeout of its
//! own); `pool` keeps one long-lived connection through mysql_async, as an application's pool
//! does, with a 10 s read timeout, and reconnects on any error. Both record every attempt's
//! start, end and outcome: acknowledged by which server, refused (RST), reset, timed out.

use std::future::Future;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::attempt::{connect, insert_on, insert_sql, Log, Outcome, PACE, RETRY_PAUSE};
use crate::lab::SERVICE_ADDR;
use crate::util::now_ms;

/// The client that writes through the service address during a drill (`bench --client`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Client {
    /// The drills' writer: 100 ms connect timeout, 250 ms query timeout, a retry every 10 ms.
    #[default]
    Retry,
    /// A `mariadb` client process per write: `--connect-timeout=1`, cut off after 10 s.
    Cli,
    /// One long-lived mysql_async connection: 10 s connect and read timeouts, reconnect on error.
    Pool,
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::Retry => "retry",
            Client::Cli => "cli",
            Client::Pool => "pool",
        }
    }
}

/// The pool's connect timeout and its read timeout (PyMySQL's default connect timeout is 10 s
/// as well), and the cli's cut-off.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The cli's connect timeout (`--connect-timeout`, whole seconds).
const CLI_CONNECT_TIMEOUT_S: u32 = 1;

/// Runs `f` until it ends or the run stops (checked every 10 ms): None when stopped first.
async fn until_stopped<T>(log: &Log, f: impl Future<Output = T>) -> Option<T> {
    tokio::pin!(f);
    loop {
        tokio::select! {
            v = &mut f => return Some(v),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {
                if log.stopped() {
                    return None;
                }
            }
        }
    }
}

/// One long-lived connection: connect when there is none, write on it, drop it on any error.
pub(crate) async fn pool_loop(run_id: i64, log: Log) {
    let mut key: u64 = 1;
    let mut conn: Option<(mysql_async::Conn, String)> = None;
    while !log.stopped() {
        let start = now_ms();
        if conn.is_none() {
            match until_stopped(&log, connect(READ_TIMEOUT, READ_TIMEOUT)).await {
                Some(Ok(c)) => conn = Some(c),
                Some(Err(e)) => {
                    log.failed(start, key, e);
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                None => {
                    log.failed(start, key, "connect: stopped while waiting".into());
                    break;
                }
            }
        }
        let (c, server) = conn.as_mut().expect("connected");
        let server = server.clone();
        let write = insert_on(&log, c, &server, start, run_id, key, READ_TIMEOUT);
        match until_stopped(&log, write).await {
            Some(Some(next)) => {
                key = next;
                tokio::time::sleep(PACE).await;
            }
            Some(None) => {
                conn = None;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            None => {
                log.failed(start, key, format!("{server}: stopped while waiting"));
                break;
            }
        }
    }
}

/// A `mariadb` process per write, from this thread (in app1's network namespace).
pub(crate) fn cli_loop(run_id: i64, log: Log) {
    let mut key: u64 = 1;
    while !log.stopped() {
        let start = now_ms();
        let (outcome, pause) = match cli_write(&log, run_id, key) {
            Ok(o @ (Outcome::Ack { .. } | Outcome::Duplicate { .. })) => (o, PACE),
            Ok(o) => (o, RETRY_PAUSE),
            Err(e) => (Outcome::Failed { error: e }, RETRY_PAUSE),
        };
        match outcome {
            Outcome::Failed { error } => log.failed(start, key, error),
            o => {
                log.record(start, key, o, None);
                key += 1;
            }
        }
        std::thread::sleep(pause);
    }
}

fn cli_command(run_id: i64, key: u64) -> Command {
    let mut c = Command::new("mariadb");
    c.args([
        "--no-defaults",
        &format!("--connect-timeout={CLI_CONNECT_TIMEOUT_S}"),
        "-h",
        SERVICE_ADDR,
        "-P",
        "3306",
        "-u",
        "app",
        "-plab-app",
        "-D",
        "lab",
        "-N",
        "-B",
        "-e",
        // Who answers first: its name is printed even when the INSERT then fails.
        &format!("SELECT @@hostname; {}", insert_sql(run_id, key)),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// One write by a `mariadb` process: its outcome from the exit status and output.
fn cli_write(log: &Log, run_id: i64, key: u64) -> Result<Outcome, String> {
    let mut child = cli_command(run_id, key)
        .spawn()
        .map_err(|e| format!("spawn mariadb: {e}"))?;
    let begun = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(format!("wait for mariadb: {e}")),
        }
        if log.stopped() || begun.elapsed() >= READ_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(if log.stopped() {
                "mariadb: stopped while waiting".into()
            } else {
                format!("mariadb: cut off after {READ_TIMEOUT:?}")
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let server = out.lines().next().unwrap_or("").trim().to_string();
    let err = err.trim();
    Ok(if status.success() && !server.is_empty() {
        Outcome::Ack { server }
    } else if err.contains("ERROR 1062") && !server.is_empty() {
        Outcome::Duplicate { server }
    } else {
        let who = if server.is_empty() {
            String::new()
        } else {
            format!("{server}: ")
        };
        Outcome::Failed {
            error: format!("{who}{}", err.lines().last().unwrap_or("mariadb failed")),
        }
    })
}
