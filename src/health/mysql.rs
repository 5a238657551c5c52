//! The only code that runs the checks against MySQL/MariaDB: one probe, bounded by a deadline,
//! over one persistent connection, answered as a [`ProbeResult`].
//!
//! Whether the server is what the service's role needs is decided by the pure [`evaluate`]
//! (primary) and [`evaluate_replica`] from what the server answered, so the rules are
//! unit-tested on recorded result sets without a server.
//!
//! Per check the probe runs two queries. MariaDB: `SELECT @@global.read_only,
//! @@global.server_id` and `SHOW ALL SLAVES STATUS`. MySQL 5.7+: `SELECT @@global.read_only,
//! @@global.super_read_only, @@global.offline_mode, @@global.server_id` and `SHOW REPLICA
//! STATUS` (8.0.22+) or `SHOW SLAVE STATUS`. `SELECT VERSION()` (the flavour) and `SHOW
//! GLOBAL STATUS LIKE 'Uptime'` (the start time) run once per connection. With a write
//! probe, a primary that passed those also upserts its heartbeat row and reads it back; with
//! a term table, every answered check reads (and may write) the term ([`super::facts`]).
//! Privileges: reading the variables needs none; the replication status needs SLAVE MONITOR
//! on MariaDB 10.5+ (REPLICATION CLIENT on older MariaDB and on MySQL); the write probe needs
//! SELECT, INSERT and UPDATE on its table, the term table SELECT and INSERT.

use std::fmt;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use mysql_async::prelude::Queryable;
use mysql_async::{
    Conn, DriverError, IoError, Opts, OptsBuilder, Row, ServerError, SslOpts, Value,
};

use super::backoff::Backoff;
use super::facts;
use super::term::{Incarnation, PromotionWitness, ServerFacts, TermState};
use crate::config::{MysqlConfig, MysqlEndpoint, Role, ServiceConfig, WriteProbeTable};

/// Which server we talk to; it decides which variables exist and how replication is queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    MariaDb,
    MySql { major: u16, minor: u16, patch: u16 },
}

impl Flavour {
    /// Parses `SELECT VERSION()`: MariaDB versions contain "MariaDB" (e.g.
    /// "10.11.6-MariaDB-0+deb12u1-log"); anything else is MySQL-like ("8.0.36-28-log").
    pub fn from_version(version: &str) -> Result<Flavour, String> {
        if version.to_ascii_lowercase().contains("mariadb") {
            return Ok(Flavour::MariaDb);
        }
        let numeric: String = version
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = numeric.split('.').map(|p| p.parse::<u16>());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor)), patch) => Ok(Flavour::MySql {
                major,
                minor,
                patch: match patch {
                    Some(Ok(p)) => p,
                    _ => 0,
                },
            }),
            _ => Err(format!("cannot parse server version {version:?}")),
        }
    }

    /// MySQL 5.7+ has `super_read_only` and `offline_mode`; MariaDB and older MySQL do not.
    pub(crate) fn has_super_read_only(&self) -> bool {
        matches!(self, Flavour::MySql { major, minor, .. } if (*major, *minor) >= (5, 7))
    }

    /// The variables, then `server_id` (see [`facts`]).
    fn vars_query(&self) -> &'static str {
        if self.has_super_read_only() {
            "SELECT @@global.read_only, @@global.super_read_only, @@global.offline_mode, \
             @@global.server_id"
        } else {
            "SELECT @@global.read_only, @@global.server_id"
        }
    }

    fn is_mysql_8022(&self) -> bool {
        matches!(*self, Flavour::MySql { major, minor, patch } if (major, minor, patch) >= (8, 0, 22))
    }

    fn replication_query(&self) -> &'static str {
        match self {
            Flavour::MariaDb => "SHOW ALL SLAVES STATUS",
            f if f.is_mysql_8022() => "SHOW REPLICA STATUS",
            Flavour::MySql { .. } => "SHOW SLAVE STATUS",
        }
    }

    /// The lag column as this server spells it, for reasons.
    fn lag_column(&self) -> &'static str {
        if self.is_mysql_8022() {
            "Seconds_Behind_Source"
        } else {
            "Seconds_Behind_Master"
        }
    }

    /// Lifts the server-side statement time limit for the parked watch query (MariaDB's
    /// `max_statement_time`, MySQL's `max_execution_time`, which applies to SELECTs).
    pub fn no_statement_limit(&self) -> &'static str {
        match self {
            Flavour::MariaDb => "SET SESSION max_statement_time = 0",
            Flavour::MySql { .. } => "SET SESSION max_execution_time = 0",
        }
    }

    /// How the server names one replication stream in reasons.
    fn channel_word(&self) -> &'static str {
        match self {
            Flavour::MariaDb => "connection",
            Flavour::MySql { .. } => "channel",
        }
    }

    /// Appended to a failed replication query so the operator knows what to grant.
    fn privilege_hint(&self) -> &'static str {
        match self {
            Flavour::MariaDb => {
                "the check user needs the SLAVE MONITOR privilege on MariaDB 10.5+ \
                 (GRANT SLAVE MONITOR ON *.* TO ...), REPLICATION CLIENT before"
            }
            Flavour::MySql { .. } => {
                "the check user needs the REPLICATION CLIENT privilege \
                 (GRANT REPLICATION CLIENT ON *.* TO ...)"
            }
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flavour::MariaDb => write!(f, "MariaDB"),
            Flavour::MySql {
                major,
                minor,
                patch,
            } => write!(f, "MySQL {major}.{minor}.{patch}"),
        }
    }
}

/// The global variables the check reads. `None`: not queried (the flavour lacks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVars {
    pub read_only: bool,
    pub super_read_only: Option<bool>,
    pub offline_mode: Option<bool>,
}

impl ServerVars {
    /// Reads the one row answered by the flavour's variables query.
    pub fn from_row(flavour: &Flavour, values: &[Value]) -> Result<ServerVars, String> {
        let get = |i: usize, name: &str| -> Result<bool, String> {
            let v = values
                .get(i)
                .ok_or_else(|| format!("the server did not return @@global.{name}"))?;
            value_as_bool(v).ok_or_else(|| format!("unexpected value for @@global.{name}: {v:?}"))
        };
        let read_only = get(0, "read_only")?;
        if flavour.has_super_read_only() {
            Ok(ServerVars {
                read_only,
                super_read_only: Some(get(1, "super_read_only")?),
                offline_mode: Some(get(2, "offline_mode")?),
            })
        } else {
            Ok(ServerVars {
                read_only,
                super_read_only: None,
                offline_mode: None,
            })
        }
    }
}

/// 0/1 as integers (binary protocol) or text (text protocol), and ON/OFF for good measure.
fn value_as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Int(0) | Value::UInt(0) => Some(false),
        Value::Int(1) | Value::UInt(1) => Some(true),
        Value::Bytes(b) => match b.as_slice() {
            b"0" => Some(false),
            b"1" => Some(true),
            b if b.eq_ignore_ascii_case(b"OFF") => Some(false),
            b if b.eq_ignore_ascii_case(b"ON") => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// A non-negative integer as either protocol sends it; NULL and anything else: `None`.
pub(super) fn value_as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::UInt(n) => Some(*n),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// One replication stream as the server reported it: threads ("Yes", "No", "Connecting",
/// "Preparing", ...) and lag. `channel` is MariaDB's Connection_name or MySQL's Channel_Name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationThreads {
    pub channel: String,
    pub io_running: String,
    pub sql_running: String,
    /// Seconds_Behind_Master / Seconds_Behind_Source; `None` when NULL (lag unknown: the SQL
    /// thread is stopped or the IO thread lost its source) or not reported.
    pub lag: Option<u64>,
}

impl ReplicationThreads {
    /// Extracts the streams from a `SHOW ALL SLAVES STATUS` / `SHOW REPLICA STATUS` /
    /// `SHOW SLAVE STATUS` result set, finding columns by name (both spellings accepted, as
    /// servers renamed them). A missing channel column (MySQL 5.6) means the default channel.
    pub fn from_result_set(
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<Vec<ReplicationThreads>, String> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let find = |names: &[&str]| {
            columns
                .iter()
                .position(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
        };
        let io = find(&["Slave_IO_Running", "Replica_IO_Running"])
            .ok_or("replication status has no Slave_IO_Running/Replica_IO_Running column")?;
        let sql = find(&["Slave_SQL_Running", "Replica_SQL_Running"])
            .ok_or("replication status has no Slave_SQL_Running/Replica_SQL_Running column")?;
        let channel = find(&["Connection_name", "Channel_Name"]);
        let lag = find(&["Seconds_Behind_Master", "Seconds_Behind_Source"]);
        Ok(rows
            .iter()
            .map(|row| ReplicationThreads {
                channel: channel
                    .and_then(|i| row.get(i))
                    .map(value_as_text)
                    .unwrap_or_default(),
                io_running: row.get(io).map(value_as_text).unwrap_or_default(),
                sql_running: row.get(sql).map(value_as_text).unwrap_or_default(),
                lag: lag.and_then(|i| row.get(i)).and_then(value_as_u64),
            })
            .collect())
    }

    fn describe(&self, flavour: &Flavour) -> String {
        let word = flavour.channel_word();
        if self.channel.is_empty() {
            format!("default {word}")
        } else {
            format!("{word} '{}'", self.channel)
        }
    }
}

fn value_as_text(v: &Value) -> String {
    match v {
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::NULL => "NULL".to_string(),
        other => format!("{other:?}"),
    }
}

/// Pure: is this server, as it answered, a healthy writable primary? `Err` lists every reason
/// it is not, separated by "; ". When in doubt (a variable the flavour must report is
/// missing, a thread state that is not exactly "No") the answer is no.
pub fn evaluate(
    flavour: &Flavour,
    vars: &ServerVars,
    replication: &[ReplicationThreads],
) -> Result<(), String> {
    let mut problems = Vec::new();
    if vars.read_only {
        problems.push("read_only=1".to_string());
    }
    for (name, value) in [
        ("super_read_only", vars.super_read_only),
        ("offline_mode", vars.offline_mode),
    ] {
        match value {
            Some(true) => problems.push(format!("{name}=1")),
            None if flavour.has_super_read_only() => {
                problems.push(format!("{name} was not reported by {flavour}"))
            }
            _ => {}
        }
    }
    for r in replication {
        let threads = match (r.io_running != "No", r.sql_running != "No") {
            (true, true) => "IO and SQL threads",
            (true, false) => "IO thread",
            (false, true) => "SQL thread",
            (false, false) => continue,
        };
        problems.push(format!(
            "replication {threads} running on a primary ({})",
            r.describe(flavour)
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Pure: is this server a healthy replica for reader anycast? It must be read-only, not in
/// offline mode, have at least one replication stream, and every stream must have both
/// threads exactly "Yes" and a known lag of at most `max_lag`. `Ok` describes it (with the
/// largest lag); `Err` lists every reason it is not.
pub fn evaluate_replica(
    flavour: &Flavour,
    vars: &ServerVars,
    replication: &[ReplicationThreads],
    max_lag: Duration,
) -> Result<String, String> {
    let mut problems = Vec::new();
    if !vars.read_only {
        problems.push("read_only=0 (a replica must be read-only)".to_string());
    }
    match vars.offline_mode {
        Some(true) => problems.push("offline_mode=1".to_string()),
        None if flavour.has_super_read_only() => {
            problems.push(format!("offline_mode was not reported by {flavour}"))
        }
        _ => {}
    }
    if replication.is_empty() {
        problems.push("not replicating: no replication configured".to_string());
    }
    let max_lag_s = max_lag.as_secs();
    let mut worst = 0;
    for r in replication {
        let which = r.describe(flavour);
        let stopped = match (r.io_running == "Yes", r.sql_running == "Yes") {
            (true, true) => None,
            (false, true) => Some(format!("IO thread not running ({})", r.io_running)),
            (true, false) => Some(format!("SQL thread not running ({})", r.sql_running)),
            (false, false) => Some(format!(
                "IO and SQL threads not running ({}/{})",
                r.io_running, r.sql_running
            )),
        };
        if let Some(s) = stopped {
            problems.push(format!("replication {s} ({which})"));
            continue;
        }
        match r.lag {
            None => problems.push(format!(
                "replication lag unknown ({} is NULL) ({which})",
                flavour.lag_column()
            )),
            Some(lag) if lag > max_lag_s => problems.push(format!(
                "replication lag {lag} s > max_lag_s {max_lag_s} ({which})"
            )),
            Some(lag) => worst = worst.max(lag),
        }
    }
    if problems.is_empty() {
        Ok(format!("replica, lag {worst} s"))
    } else {
        Err(problems.join("; "))
    }
}

/// Why a probe failed; the checker treats `Lost` as down at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connection lost, refused, reset, EOF, socket file missing, server shutting down.
    Lost,
    /// No answer within the timeout (a hung server, e.g. under SIGSTOP, or a stuck commit).
    Timeout,
    /// The server answered with an error (access denied, missing privilege, ...), or
    /// answered something the probe could not understand.
    Query,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The server is what the role needs; the text says what was seen ("writable primary",
    /// "replica, lag 0 s").
    Healthy(String),
    /// The server answered, and it is not what the role needs ("read_only=1").
    Unhealthy(String),
    Failed {
        kind: FailureKind,
        reason: String,
    },
}

/// What a healthy primary reports.
pub const WRITABLE_PRIMARY: &str = "writable primary";

impl ProbeResult {
    pub fn is_healthy(&self) -> bool {
        matches!(self, ProbeResult::Healthy(_))
    }

    /// `Healthy("writable primary")`.
    pub fn writable() -> Self {
        ProbeResult::Healthy(WRITABLE_PRIMARY.to_string())
    }

    fn failed(kind: FailureKind, reason: impl Into<String>) -> Self {
        ProbeResult::Failed {
            kind,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeResult::Healthy(text) | ProbeResult::Unhealthy(text) => write!(f, "{text}"),
            ProbeResult::Failed { reason, .. } => write!(f, "{reason}"),
        }
    }
}

/// How long the immediate reconnect after a lost connection may take before the loss is
/// reported. A dead local server refuses within microseconds; a healthy one accepts within a
/// few milliseconds.
const RECONNECT_BUDGET: Duration = Duration::from_millis(100);
/// Connect attempts that reached the server and failed (wrong password, too many
/// connections, a handshake that timed out) are spaced out from this ...
pub const CONNECT_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// ... doubling up to this, so a wrong password is a few lines a minute in the server's
/// error log, not five a second. Refused connects (no server) cost the server nothing and
/// are retried at every check.
pub const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The table a write probe needs, as docs/health.md gives it; primaryd never creates it.
/// One row per (server, service): the server_id keeps a promoted replica's row apart from
/// the old primary's when the table replicates.
pub const HEARTBEAT_TABLE_SQL: &str = "\
CREATE DATABASE IF NOT EXISTS primaryd;
CREATE TABLE IF NOT EXISTS primaryd.heartbeat (
  server_id INT UNSIGNED NOT NULL,
  service   VARCHAR(64) NOT NULL,
  seq       BIGINT UNSIGNED NOT NULL,
  ts        TIMESTAMP(6) NOT NULL,
  PRIMARY KEY (server_id, service)
) ENGINE=InnoDB;";

/// The heartbeat upsert and read-back. Identifiers are validated by the config (letters,
/// digits, `_`, `$`), the service name too (letters, digits, `.`, `_`, `-`), so both can be
/// inlined; quotes are dropped anyway rather than trusted.
fn heartbeat_sql(t: &WriteProbeTable, service: &str, seq: u64) -> (String, String) {
    let table = format!("`{}`.`{}`", t.database, t.table);
    let key: String = service
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    let upsert = format!(
        "INSERT INTO {table} (server_id, service, seq, ts) \
         VALUES (@@global.server_id, '{key}', {seq}, NOW(6)) \
         ON DUPLICATE KEY UPDATE seq = {seq}, ts = NOW(6)"
    );
    let read = format!(
        "SELECT seq FROM {table} WHERE server_id = @@global.server_id AND service = '{key}'"
    );
    (upsert, read)
}

/// What the probe is doing, so a timeout can say where it was stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connect,
    Query(&'static str),
    WriteProbe,
    Term,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Connect => write!(f, "connect"),
            Step::Query(sql) => write!(f, "{sql}"),
            Step::WriteProbe => write!(f, "the write probe"),
            Step::Term => write!(f, "the term table"),
        }
    }
}

/// Probes one server over one persistent connection (no pool: one connection per service,
/// opened again only after a failure).
pub struct MysqlProbe {
    opts: Opts,
    timeout: Duration,
    role: Role,
    max_lag: Duration,
    service: String,
    write_probe: Option<WriteProbeTable>,
    /// The promotion term's table (primary role only), the witness of promotions this probe
    /// saw, and the facts of the last check that got an answer.
    term_table: Option<WriteProbeTable>,
    witness: PromotionWitness,
    facts: Option<ServerFacts>,
    /// When the current probe's timeout ends.
    deadline: Instant,
    /// When the server of the current connection started (read when it was opened: a
    /// restart always breaks the connection).
    started_at: SystemTime,
    /// The heartbeat's sequence number: starts at the wall clock in microseconds so a
    /// restarted daemon never writes a value it wrote before.
    seq: u64,
    conn: Option<(Conn, Flavour)>,
    step: Step,
    backoff: Backoff,
    /// The connect failure that started the current backoff, repeated while it lasts.
    backoff_failure: Option<(FailureKind, String)>,
}

impl fmt::Debug for MysqlProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not derived: Opts would print the password.
        f.debug_struct("MysqlProbe")
            .field("role", &self.role)
            .field("timeout", &self.timeout)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl MysqlProbe {
    /// A primary-role probe of `cfg` (no service name: the heartbeat row, if any, is keyed
    /// by the empty name).
    pub fn new(cfg: &MysqlConfig, password: Option<String>) -> Self {
        Self::build(cfg, Role::Primary, String::new(), password)
    }

    /// The probe a service's checks use: its role, and its name as the heartbeat key.
    pub fn for_service(service: &ServiceConfig, password: Option<String>) -> Self {
        Self::build(&service.mysql, service.role, service.name.clone(), password)
    }

    fn build(cfg: &MysqlConfig, role: Role, service: String, password: Option<String>) -> Self {
        let builder = OptsBuilder::default()
            .user(Some(cfg.user.clone()))
            .pass(password)
            // Otherwise mysql_async asks a TCP server for @@socket and silently reconnects
            // through it when the host looks local: we check exactly what was configured.
            .prefer_socket(false)
            // The probe's own statements are text queries; nothing to cache.
            .stmt_cache_size(0);
        let builder = match &cfg.endpoint {
            MysqlEndpoint::Socket(path) => {
                builder.socket(Some(path.to_string_lossy().into_owned()))
            }
            MysqlEndpoint::Tcp { host, port } => builder
                .ip_or_hostname(host.clone())
                .tcp_port(*port)
                .tcp_nodelay(true),
        };
        let builder = match &cfg.tls {
            None => builder,
            Some(tls) => {
                let mut ssl =
                    SslOpts::default().with_danger_skip_domain_validation(tls.skip_hostname_check);
                if let Some(ca) = &tls.ca_file {
                    // A private CA replaces the web PKI roots rather than adding to them.
                    ssl = ssl
                        .with_root_certs(vec![ca.clone().into()])
                        .with_disable_built_in_roots(true);
                }
                builder.ssl_opts(Some(ssl))
            }
        };
        let seq = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        MysqlProbe {
            opts: builder.into(),
            timeout: cfg.timeout,
            role,
            max_lag: cfg.max_lag,
            service,
            write_probe: cfg.write_probe_table.clone(),
            term_table: cfg.term_table.clone().filter(|_| role == Role::Primary),
            witness: PromotionWitness::default(),
            facts: None,
            deadline: Instant::now(),
            started_at: SystemTime::UNIX_EPOCH,
            seq,
            conn: None,
            step: Step::Connect,
            backoff: Backoff::new(CONNECT_BACKOFF_MIN, CONNECT_BACKOFF_MAX),
            backoff_failure: None,
        }
    }

    /// Connection options (with the password) for a second connection to the same server.
    pub fn opts(&self) -> Opts {
        self.opts.clone()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True while a connection is held (it is dropped on every failure).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// An operator's confirm: the next healthy check writes a term above `above` (and above
    /// the table's newest). Without a term table there is nothing to write.
    pub fn confirm_term_above(&mut self, above: u64) {
        self.witness.confirm_above(above);
    }

    /// What the last check that got an answer learnt about the server (`None` before one).
    pub fn facts(&self) -> Option<&ServerFacts> {
        self.facts.as_ref()
    }

    /// The flavour of the current connection, if any.
    pub fn flavour(&self) -> Option<Flavour> {
        self.conn.as_ref().map(|(_, f)| *f)
    }

    /// One whole check (connect if needed, then the queries), bounded by the timeout. On any
    /// failure the connection is dropped so the next probe reconnects; a connect that
    /// reached the server and failed puts further connects into backoff, during which the
    /// probe answers that failure again without contacting the server.
    pub async fn probe(&mut self) -> ProbeResult {
        self.probe_within(self.timeout).await
    }

    /// [`MysqlProbe::probe`] bounded by `budget` instead of `timeout_ms` (see
    /// [`super::deadline`]): a budget shorter than the timeout is what is left of it since the
    /// last healthy answer.
    pub async fn probe_within(&mut self, budget: Duration) -> ProbeResult {
        if self.conn.is_none() && !self.backoff.ready(Instant::now()) {
            if let Some((kind, reason)) = &self.backoff_failure {
                let n = self.backoff.failures();
                return ProbeResult::failed(
                    *kind,
                    format!("{reason} (connect backoff after {n} failed attempts)"),
                );
            }
        }
        let timeout = self.timeout;
        self.deadline = Instant::now() + budget;
        let result = match tokio::time::timeout(budget, self.check()).await {
            Ok(result) => result,
            Err(_) => {
                let step = self.step;
                self.drop_conn();
                // With a shorter budget the timeout counts from the last healthy answer: the
                // server has still not answered for timeout_ms.
                let r = ProbeResult::failed(
                    FailureKind::Timeout,
                    format!(
                        "check timed out after {} ms during {step}",
                        timeout.as_millis()
                    ),
                );
                if step == Step::Connect {
                    self.connect_failed(&r);
                }
                r
            }
        };
        if matches!(result, ProbeResult::Failed { .. }) {
            self.drop_conn();
        }
        result
    }

    /// Drops the connection without waiting on the server. mysql_async's `Drop for Conn`
    /// never blocks the caller: a connection interrupted inside a command (the usual case on
    /// timeout) is marked disconnected, so its socket is just closed; otherwise (idle, or cut
    /// during the handshake or while reading rows) it spawns a detached task that drains any
    /// pending result and sends COM_QUIT, which nobody waits for. `disconnect().await` here
    /// would instead hang on a stopped server.
    fn drop_conn(&mut self) {
        self.conn = None;
    }

    /// Backoff bookkeeping for a failed connect: only failures that reached the server
    /// count (a refused connect or a missing socket costs it nothing).
    fn connect_failed(&mut self, r: &ProbeResult) {
        if let ProbeResult::Failed { kind, reason } = r {
            if *kind != FailureKind::Lost {
                self.backoff.failed(Instant::now());
                self.backoff_failure = Some((*kind, reason.clone()));
            }
        }
    }

    /// One check; if a connection held from an earlier probe turns out to be lost, one
    /// immediate reconnect tells a dead server (refused at once: still `Lost`, as fast) from
    /// a server that only dropped this connection (KILL, wait_timeout), which must not flap
    /// the route. The reconnect gets a short budget so a lost connection is never reported
    /// later than that.
    async fn check(&mut self) -> ProbeResult {
        let reused = self.conn.is_some();
        let first = self.check_once().await;
        let lost = match &first {
            ProbeResult::Failed {
                kind: FailureKind::Lost,
                reason,
            } if reused => reason.clone(),
            _ => return first,
        };
        self.drop_conn();
        let again = match tokio::time::timeout(RECONNECT_BUDGET, self.check_once()).await {
            Ok(ProbeResult::Failed { reason, .. }) => reason,
            Ok(answer) => return answer,
            Err(_) => format!(
                "reconnect did not answer within {} ms",
                RECONNECT_BUDGET.as_millis()
            ),
        };
        ProbeResult::failed(FailureKind::Lost, format!("{lost}; then {again}"))
    }

    async fn check_once(&mut self) -> ProbeResult {
        if self.conn.is_none() {
            self.step = Step::Connect;
            match self.connect().await {
                Ok((conn, flavour, started_at)) => {
                    self.backoff.succeeded();
                    self.backoff_failure = None;
                    self.conn = Some((conn, flavour));
                    self.started_at = started_at;
                }
                Err(failed) => {
                    self.connect_failed(&failed);
                    return failed;
                }
            }
        }
        let Some((conn, flavour)) = self.conn.as_mut() else {
            return ProbeResult::failed(FailureKind::Query, "no connection");
        };
        let flavour = *flavour;
        self.step = Step::Query(facts::VARS_STEP);
        let (vars, who) = match query_rows(conn, flavour.vars_query()).await {
            Ok(rows) => {
                let values = rows.into_iter().next().map(row_values).unwrap_or_default();
                let who = facts::identity(&values, self.started_at);
                match (ServerVars::from_row(&flavour, &values), who) {
                    (Ok(v), Ok(who)) => (v, who),
                    (Err(e), _) | (_, Err(e)) => return ProbeResult::failed(FailureKind::Query, e),
                }
            }
            Err(e) => {
                // Whatever the verdict, a connection that failed a query is not reused.
                self.drop_conn();
                return classify(e, Stage::Query(facts::VARS_STEP), None);
            }
        };
        let sql = flavour.replication_query();
        self.step = Step::Query(sql);
        let replication = match query_rows(conn, sql).await {
            Ok(rows) => {
                let columns: Vec<String> = rows
                    .first()
                    .map(|r| {
                        r.columns_ref()
                            .iter()
                            .map(|c| c.name_str().into())
                            .collect()
                    })
                    .unwrap_or_default();
                let rows: Vec<Vec<Value>> = rows.into_iter().map(row_values).collect();
                match ReplicationThreads::from_result_set(&columns, &rows) {
                    Ok(r) => r,
                    Err(e) => return ProbeResult::failed(FailureKind::Query, e),
                }
            }
            Err(e) => {
                self.drop_conn();
                return classify(e, Stage::Query(sql), Some(flavour.privilege_hint()));
            }
        };
        let result = match self.role {
            Role::Replica => match evaluate_replica(&flavour, &vars, &replication, self.max_lag) {
                Ok(text) => ProbeResult::Healthy(text),
                Err(reason) => ProbeResult::Unhealthy(reason),
            },
            Role::Primary => match (evaluate(&flavour, &vars, &replication), &self.write_probe) {
                (Err(reason), _) => ProbeResult::Unhealthy(reason),
                (Ok(()), None) => ProbeResult::writable(),
                (Ok(()), Some(table)) => self.write_heartbeat(&table.clone()).await,
            },
        };
        self.learn(who, &result).await;
        result
    }

    /// After a check that got an answer: the server facts, with the term read (and written
    /// when [`PromotionWitness`] says so) within what is left of the timeout.
    async fn learn(&mut self, who: Incarnation, result: &ProbeResult) {
        let term = match (result, self.term_table.clone(), self.conn.as_mut()) {
            (ProbeResult::Failed { .. }, _, _) | (_, Some(_), None) => return,
            (_, None, _) => TermState::NotConfigured,
            (result, Some(table), Some((conn, _))) => {
                if !result.is_healthy() {
                    self.witness.saw_non_primary(who);
                }
                self.step = Step::Term;
                let budget = self.deadline.saturating_duration_since(Instant::now());
                let (witness, healthy) = (&mut self.witness, result.is_healthy());
                let out =
                    facts::term_step(conn, &table, &self.service, witness, who, healthy, budget)
                        .await;
                if !out.conn_ok {
                    self.drop_conn();
                }
                out.state
            }
        };
        let facts = ServerFacts {
            server_id: who.server_id,
            started_at: who.started_at,
            term,
        };
        self.facts = Some(facts.steadied(self.facts.as_ref()));
    }

    /// Upserts the heartbeat row in autocommit mode and reads it back. The OK packet of an
    /// autocommit statement comes after the commit, so a commit that cannot finish (held
    /// table or row lock, full disk, semi-sync waiting for an ack) keeps the probe waiting
    /// until the timeout.
    async fn write_heartbeat(&mut self, table: &WriteProbeTable) -> ProbeResult {
        self.step = Step::WriteProbe;
        self.seq += 1;
        let seq = self.seq;
        let (upsert, read) = heartbeat_sql(table, &self.service, seq);
        let Some((conn, _)) = self.conn.as_mut() else {
            return ProbeResult::failed(FailureKind::Query, "no connection");
        };
        if let Err(e) = conn.query_drop(&upsert).await {
            self.drop_conn();
            return write_failure(e, table);
        }
        // 1: inserted, 2: updated. The value always changes, so 0 means it was not written.
        let affected = conn.affected_rows();
        if !(1..=2).contains(&affected) {
            return ProbeResult::failed(
                FailureKind::Query,
                format!("write probe: upsert into {table} changed {affected} rows"),
            );
        }
        match conn.query_first::<Row, _>(&read).await {
            Ok(row) => {
                let got = row.and_then(|r| row_values(r).into_iter().next());
                match got.as_ref().and_then(value_as_u64) {
                    Some(n) if n == seq => ProbeResult::writable(),
                    _ => ProbeResult::failed(
                        FailureKind::Query,
                        format!("write probe: wrote seq {seq} to {table} but read back {got:?}"),
                    ),
                }
            }
            Err(e) => {
                self.drop_conn();
                write_failure(e, table)
            }
        }
    }

    /// A new connection, its server's flavour and start time.
    async fn connect(&self) -> Result<(Conn, Flavour, SystemTime), ProbeResult> {
        let mut conn = Conn::new(self.opts.clone())
            .await
            .map_err(|e| classify(e, Stage::Connect, None))?;
        let rows = query_rows(&mut conn, "SELECT VERSION()")
            .await
            .map_err(|e| classify(e, Stage::Query("SELECT VERSION()"), None))?;
        let version = rows
            .into_iter()
            .next()
            .and_then(|r| row_values(r).into_iter().next())
            .map(|v| value_as_text(&v))
            .unwrap_or_default();
        let flavour = Flavour::from_version(&version)
            .map_err(|e| ProbeResult::failed(FailureKind::Query, e))?;
        let rows = query_rows(&mut conn, facts::UPTIME_QUERY)
            .await
            .map_err(|e| classify(e, Stage::Query(facts::UPTIME_QUERY), None))?;
        let values = rows.into_iter().next().map(row_values).unwrap_or_default();
        let started_at = facts::started_at(&values, SystemTime::now())
            .map_err(|e| ProbeResult::failed(FailureKind::Query, e))?;
        if self.write_probe.is_some() || self.term_table.is_some() {
            // A heartbeat or term write stuck behind a lock gives up on the server side too, soon after
            // we do, instead of piling up one waiting statement per check.
            let secs = self.timeout.as_millis().div_ceil(1000).max(1);
            let sql = format!(
                "SET SESSION innodb_lock_wait_timeout = {secs}, lock_wait_timeout = {secs}"
            );
            conn.query_drop(&sql)
                .await
                .map_err(|e| classify(e, Stage::Query("SET SESSION lock_wait_timeout"), None))?;
        }
        Ok((conn, flavour, started_at))
    }
}

pub(super) async fn query_rows(conn: &mut Conn, sql: &str) -> mysql_async::Result<Vec<Row>> {
    conn.query::<Row, _>(sql).await
}

/// A row's values without panicking (a value already taken reads as NULL).
pub(super) fn row_values(row: Row) -> Vec<Value> {
    row.unwrap_raw()
        .into_iter()
        .map(|v| v.unwrap_or(Value::NULL))
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    Connect,
    Query(&'static str),
}

/// Server errors that mean the connection is going away, not that the query was wrong.
const ER_SERVER_SHUTDOWN: u16 = 1053;
const ER_CONNECTION_KILLED: u16 = 1927; // MariaDB
const ER_SESSION_WAS_KILLED: u16 = 3169; // MySQL
const ER_CLIENT_INTERACTION_TIMEOUT: u16 = 4031; // MySQL 8.0.24+
/// MySQL 5.7+: "The server is currently in offline mode".
const ER_SERVER_OFFLINE_MODE: u16 = 3032;
const ER_ACCESS_DENIED: u16 = 1045;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// "The MariaDB server is running with the --read-only option": a write refused.
const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;
const ER_NO_SUCH_TABLE: u16 = 1146;
const ER_BAD_DB: u16 = 1049;
const ER_BAD_FIELD: u16 = 1054;

fn classify(err: mysql_async::Error, stage: Stage, hint: Option<&str>) -> ProbeResult {
    let lost = |detail: String| {
        let reason = match stage {
            Stage::Connect => format!("connect failed: {detail}"),
            Stage::Query(_) => format!("connection lost: {detail}"),
        };
        ProbeResult::failed(FailureKind::Lost, reason)
    };
    let query = |detail: String, hint: Option<&str>| {
        let mut reason = match stage {
            Stage::Connect => format!("connect failed: {detail}"),
            Stage::Query(sql) => format!("{sql} failed: {detail}"),
        };
        if let Some(h) = hint {
            reason.push_str(&format!(" ({h})"));
        }
        ProbeResult::failed(FailureKind::Query, reason)
    };
    match err {
        // rustls reports a refused certificate or handshake as InvalidData: an answer about
        // the server, not a loss (and retried with backoff, not at every check).
        mysql_async::Error::Io(IoError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
            query(format!("TLS or protocol error: {e}"), None)
        }
        mysql_async::Error::Io(IoError::Io(e)) => lost(io_detail(&e)),
        // A TLS failure (certificate, protocol) is an answer about the server, not a loss.
        #[allow(unreachable_patterns)]
        mysql_async::Error::Io(e) => query(format!("TLS: {e}"), None),
        mysql_async::Error::Driver(DriverError::ConnectionClosed) => {
            lost("connection closed by the server".to_string())
        }
        mysql_async::Error::Server(e) if is_going_away(&e) => lost(server_detail(&e)),
        // MySQL refuses (and disconnects) ordinary users in offline mode: that is an answer.
        mysql_async::Error::Server(e) if e.code == ER_SERVER_OFFLINE_MODE => {
            ProbeResult::Unhealthy(format!("offline_mode=1 ({})", server_detail(&e)))
        }
        mysql_async::Error::Server(e) if e.code == ER_ACCESS_DENIED => query(
            server_detail(&e),
            Some("check [service.mysql] user and the password in password_file"),
        ),
        mysql_async::Error::Server(e) => {
            let hint = hint.filter(|_| is_privilege_error(&e));
            query(server_detail(&e), hint)
        }
        other => query(other.to_string(), None),
    }
}

/// A failed heartbeat write or read-back, with what to do about it.
fn write_failure(err: mysql_async::Error, table: &WriteProbeTable) -> ProbeResult {
    let stage = Stage::Query("write probe");
    match &err {
        mysql_async::Error::Server(e) => match e.code {
            ER_OPTION_PREVENTS_STATEMENT => {
                ProbeResult::Unhealthy(format!("write probe refused: {}", server_detail(e)))
            }
            ER_LOCK_WAIT_TIMEOUT => ProbeResult::failed(
                FailureKind::Timeout,
                format!("write probe failed: {}", server_detail(e)),
            ),
            ER_NO_SUCH_TABLE | ER_BAD_DB | ER_BAD_FIELD => ProbeResult::failed(
                FailureKind::Query,
                format!(
                    "write probe failed: {} (create {table} with the SQL in docs/health.md)",
                    server_detail(e)
                ),
            ),
            code if is_privilege_error(e) => ProbeResult::failed(
                FailureKind::Query,
                format!(
                    "write probe failed: {} (ERROR {code}: GRANT SELECT, INSERT, UPDATE ON \
                     {table} TO the check user)",
                    server_detail(e)
                ),
            ),
            _ => classify(err, stage, None),
        },
        _ => classify(err, stage, None),
    }
}

fn is_going_away(e: &ServerError) -> bool {
    matches!(
        e.code,
        ER_SERVER_SHUTDOWN
            | ER_CONNECTION_KILLED
            | ER_SESSION_WAS_KILLED
            | ER_CLIENT_INTERACTION_TIMEOUT
    )
}

/// Access denied (1045), specific privilege missing (1227), command denied (1142/1143).
fn is_privilege_error(e: &ServerError) -> bool {
    matches!(e.code, 1045 | 1142 | 1143 | 1227)
}

fn server_detail(e: &ServerError) -> String {
    format!("ERROR {} ({}): {}", e.code, e.state, e.message)
}

fn io_detail(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "server closed the connection (EOF)".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
#[path = "mysql_tests.rs"]
mod tests;
