//! The only code that talks to MySQL/MariaDB: one probe, bounded by a deadline, over one
//! persistent connection, answered as a [`ProbeResult`].
//!
//! What "healthy writable primary" means is decided by the pure [`evaluate`] from what the
//! server answered, so the rule is unit-tested on recorded result sets without a server.
//!
//! Per check the probe runs two queries. MariaDB: `SELECT @@global.read_only` and
//! `SHOW ALL SLAVES STATUS`. MySQL 5.7+: `SELECT @@global.read_only,
//! @@global.super_read_only, @@global.offline_mode` and `SHOW REPLICA STATUS` (8.0.22+) or
//! `SHOW SLAVE STATUS`. `SELECT VERSION()` runs once per connection to learn the flavour.
//! Privileges: reading the variables needs none; the replication status needs SLAVE MONITOR
//! on MariaDB 10.5+ (REPLICATION CLIENT on older MariaDB and on MySQL).

use std::fmt;
use std::io;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, IoError, Opts, OptsBuilder, Row, ServerError, Value};

use crate::config::{MysqlConfig, MysqlEndpoint};

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
    fn has_super_read_only(&self) -> bool {
        matches!(self, Flavour::MySql { major, minor, .. } if (*major, *minor) >= (5, 7))
    }

    fn vars_query(&self) -> &'static str {
        if self.has_super_read_only() {
            "SELECT @@global.read_only, @@global.super_read_only, @@global.offline_mode"
        } else {
            "SELECT @@global.read_only"
        }
    }

    fn replication_query(&self) -> &'static str {
        match *self {
            Flavour::MariaDb => "SHOW ALL SLAVES STATUS",
            Flavour::MySql {
                major,
                minor,
                patch,
            } if (major, minor, patch) >= (8, 0, 22) => "SHOW REPLICA STATUS",
            Flavour::MySql { .. } => "SHOW SLAVE STATUS",
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

/// One replication stream's threads as the server reported them ("Yes", "No", "Connecting",
/// "Preparing", ...). `channel` is MariaDB's Connection_name or MySQL's Channel_Name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationThreads {
    pub channel: String,
    pub io_running: String,
    pub sql_running: String,
}

impl ReplicationThreads {
    /// Extracts the threads from a `SHOW ALL SLAVES STATUS` / `SHOW REPLICA STATUS` /
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
        Ok(rows
            .iter()
            .map(|row| ReplicationThreads {
                channel: channel
                    .and_then(|i| row.get(i))
                    .map(value_as_text)
                    .unwrap_or_default(),
                io_running: row.get(io).map(value_as_text).unwrap_or_default(),
                sql_running: row.get(sql).map(value_as_text).unwrap_or_default(),
            })
            .collect())
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
        let word = flavour.channel_word();
        let which = if r.channel.is_empty() {
            format!("default {word}")
        } else {
            format!("{word} '{}'", r.channel)
        };
        problems.push(format!(
            "replication {threads} running on a primary ({which})"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Why a probe failed; the checker treats `Lost` as down at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connection lost, refused, reset, EOF, socket file missing, server shutting down.
    Lost,
    /// No answer within the timeout (a hung server, e.g. under SIGSTOP).
    Timeout,
    /// The server answered with an error (access denied, missing privilege, ...), or
    /// answered something the probe could not understand.
    Query,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Writable,
    NotWritable(String),
    Failed { kind: FailureKind, reason: String },
}

impl ProbeResult {
    pub fn is_writable(&self) -> bool {
        matches!(self, ProbeResult::Writable)
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
            ProbeResult::Writable => write!(f, "writable primary"),
            ProbeResult::NotWritable(reason) => write!(f, "{reason}"),
            ProbeResult::Failed { reason, .. } => write!(f, "{reason}"),
        }
    }
}

/// How long the immediate reconnect after a lost connection may take before the loss is
/// reported. A dead local server refuses within microseconds; a healthy one accepts within a
/// few milliseconds.
const RECONNECT_BUDGET: Duration = Duration::from_millis(100);

/// Probes one server over one persistent connection (no pool: one connection per service,
/// opened again only after a failure).
pub struct MysqlProbe {
    opts: Opts,
    timeout: Duration,
    conn: Option<(Conn, Flavour)>,
}

impl fmt::Debug for MysqlProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not derived: Opts would print the password.
        f.debug_struct("MysqlProbe")
            .field("timeout", &self.timeout)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl MysqlProbe {
    pub fn new(cfg: &MysqlConfig, password: Option<String>) -> Self {
        let builder = OptsBuilder::default()
            .user(Some(cfg.user.clone()))
            .pass(password)
            // Otherwise mysql_async asks a TCP server for @@socket and silently reconnects
            // through it when the host looks local: we check exactly what was configured.
            .prefer_socket(false);
        let builder = match &cfg.endpoint {
            MysqlEndpoint::Socket(path) => {
                builder.socket(Some(path.to_string_lossy().into_owned()))
            }
            MysqlEndpoint::Tcp { host, port } => builder
                .ip_or_hostname(host.clone())
                .tcp_port(*port)
                .tcp_nodelay(true),
        };
        MysqlProbe {
            opts: builder.into(),
            timeout: cfg.timeout,
            conn: None,
        }
    }

    /// True while a connection is held (it is dropped on every failure).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The flavour of the current connection, if any.
    pub fn flavour(&self) -> Option<Flavour> {
        self.conn.as_ref().map(|(_, f)| *f)
    }

    /// One whole check (connect if needed, then the queries), bounded by the timeout. On any
    /// failure the connection is dropped so the next probe reconnects.
    pub async fn probe(&mut self) -> ProbeResult {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.check()).await {
            Ok(result) => {
                if matches!(result, ProbeResult::Failed { .. }) {
                    self.drop_conn();
                }
                result
            }
            Err(_) => {
                self.drop_conn();
                ProbeResult::failed(
                    FailureKind::Timeout,
                    format!("check timed out after {} ms", timeout.as_millis()),
                )
            }
        }
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

    /// One check; if a connection held from an earlier probe turns out to be lost, one
    /// immediate reconnect tells a dead server (refused at once: still `Lost`, as fast) from
    /// a server that only dropped this connection (KILL, wait_timeout), which must not flap
    /// the route. The reconnect gets a short budget so a
    /// lost connection is never reported later than that.
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
            match self.connect().await {
                Ok(c) => self.conn = Some(c),
                Err(failed) => return failed,
            }
        }
        let Some((conn, flavour)) = self.conn.as_mut() else {
            return ProbeResult::failed(FailureKind::Query, "no connection");
        };
        let flavour = *flavour;
        let vars = match query_rows(conn, flavour.vars_query()).await {
            Ok(rows) => {
                let values = rows.into_iter().next().map(row_values).unwrap_or_default();
                match ServerVars::from_row(&flavour, &values) {
                    Ok(v) => v,
                    Err(e) => return ProbeResult::failed(FailureKind::Query, e),
                }
            }
            Err(e) => {
                // Whatever the verdict, a connection that failed a query is not reused.
                self.drop_conn();
                return classify(e, Stage::Query(flavour.vars_query()), None);
            }
        };
        let sql = flavour.replication_query();
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
        match evaluate(&flavour, &vars, &replication) {
            Ok(()) => ProbeResult::Writable,
            Err(reason) => ProbeResult::NotWritable(reason),
        }
    }

    async fn connect(&self) -> Result<(Conn, Flavour), ProbeResult> {
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
        Ok((conn, flavour))
    }
}

async fn query_rows(conn: &mut Conn, sql: &str) -> mysql_async::Result<Vec<Row>> {
    conn.query::<Row, _>(sql).await
}

/// A row's values without panicking (a value already taken reads as NULL).
fn row_values(row: Row) -> Vec<Value> {
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
        mysql_async::Error::Io(IoError::Io(e)) => lost(io_detail(&e)),
        #[allow(unreachable_patterns)] // IoError::Tls exists only with a TLS feature
        mysql_async::Error::Io(e) => lost(e.to_string()),
        mysql_async::Error::Driver(DriverError::ConnectionClosed) => {
            lost("connection closed by the server".to_string())
        }
        mysql_async::Error::Server(e) if is_going_away(&e) => lost(server_detail(&e)),
        // MySQL refuses (and disconnects) ordinary users in offline mode: that is an answer.
        mysql_async::Error::Server(e) if e.code == ER_SERVER_OFFLINE_MODE => {
            ProbeResult::NotWritable(format!("offline_mode=1 ({})", server_detail(&e)))
        }
        mysql_async::Error::Server(e) => {
            let hint = hint.filter(|_| is_privilege_error(&e));
            query(server_detail(&e), hint)
        }
        other => query(other.to_string(), None),
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
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    const MYSQL8: Flavour = Flavour::MySql {
        major: 8,
        minor: 0,
        patch: 36,
    };

    fn vars(read_only: bool) -> ServerVars {
        ServerVars {
            read_only,
            super_read_only: None,
            offline_mode: None,
        }
    }

    /// The columns of `SHOW ALL SLAVES STATUS` on MariaDB 10.11, recorded from a server.
    const MARIADB_ALL_SLAVES_COLUMNS: &[&str] = &[
        "Connection_name",
        "Slave_SQL_State",
        "Slave_IO_State",
        "Master_Host",
        "Master_User",
        "Master_Port",
        "Connect_Retry",
        "Master_Log_File",
        "Read_Master_Log_Pos",
        "Relay_Log_File",
        "Relay_Log_Pos",
        "Relay_Master_Log_File",
        "Slave_IO_Running",
        "Slave_SQL_Running",
    ];

    fn mariadb_row(conn: &str, io: &str, sql: &str) -> Vec<Value> {
        vec![
            b(conn),
            b("Slave has read all relay log; waiting for more updates"),
            b("Waiting for master to send event"),
            b("198.18.1.1"),
            b("repl"),
            b("3306"),
            b("60"),
            b("mysql-bin.000001"),
            b("1234"),
            b("relay.000002"),
            b("555"),
            b("mysql-bin.000001"),
            b(io),
            b(sql),
        ]
    }

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flavour_from_version_strings() {
        assert_eq!(
            Flavour::from_version("10.11.6-MariaDB-0+deb12u1-log"),
            Ok(Flavour::MariaDb)
        );
        assert_eq!(
            Flavour::from_version("5.5.5-10.4.32-MariaDB"),
            Ok(Flavour::MariaDb)
        );
        assert_eq!(Flavour::from_version("8.0.36"), Ok(MYSQL8));
        assert_eq!(
            Flavour::from_version("5.7.44-48-log"),
            Ok(Flavour::MySql {
                major: 5,
                minor: 7,
                patch: 44
            })
        );
        assert_eq!(
            Flavour::from_version("8.4"),
            Ok(Flavour::MySql {
                major: 8,
                minor: 4,
                patch: 0
            })
        );
        assert!(Flavour::from_version("").is_err());
        assert!(Flavour::from_version("garbage").is_err());
    }

    #[test]
    fn queries_per_flavour() {
        assert_eq!(Flavour::MariaDb.vars_query(), "SELECT @@global.read_only");
        assert_eq!(
            Flavour::MariaDb.replication_query(),
            "SHOW ALL SLAVES STATUS"
        );
        assert_eq!(
            MYSQL8.vars_query(),
            "SELECT @@global.read_only, @@global.super_read_only, @@global.offline_mode"
        );
        assert_eq!(MYSQL8.replication_query(), "SHOW REPLICA STATUS");
        let m8021 = Flavour::MySql {
            major: 8,
            minor: 0,
            patch: 21,
        };
        assert_eq!(m8021.replication_query(), "SHOW SLAVE STATUS");
        let m56 = Flavour::MySql {
            major: 5,
            minor: 6,
            patch: 51,
        };
        assert_eq!(m56.vars_query(), "SELECT @@global.read_only");
        assert_eq!(m56.replication_query(), "SHOW SLAVE STATUS");
    }

    #[test]
    fn server_vars_from_text_and_binary_values() {
        let v = ServerVars::from_row(&Flavour::MariaDb, &[b("0")]).unwrap();
        assert_eq!(v, vars(false));
        let v = ServerVars::from_row(&MYSQL8, &[Value::Int(1), b("1"), Value::UInt(0)]).unwrap();
        assert_eq!(
            v,
            ServerVars {
                read_only: true,
                super_read_only: Some(true),
                offline_mode: Some(false)
            }
        );
        assert!(ServerVars::from_row(&Flavour::MariaDb, &[]).is_err());
        assert!(ServerVars::from_row(&Flavour::MariaDb, &[Value::NULL]).is_err());
        assert!(ServerVars::from_row(&Flavour::MariaDb, &[b("2")]).is_err());
        let e = ServerVars::from_row(&MYSQL8, &[b("0")]).unwrap_err();
        assert!(e.contains("super_read_only"), "{e}");
    }

    #[test]
    fn mariadb_fresh_primary_is_writable() {
        let r = ReplicationThreads::from_result_set(&[], &[]).unwrap();
        assert_eq!(evaluate(&Flavour::MariaDb, &vars(false), &r), Ok(()));
    }

    #[test]
    fn mariadb_read_only() {
        assert_eq!(
            evaluate(&Flavour::MariaDb, &vars(true), &[]),
            Err("read_only=1".to_string())
        );
    }

    #[test]
    fn mariadb_stopped_replication_is_writable() {
        // A promoted replica keeps its (stopped) connection config: both threads "No".
        let r = ReplicationThreads::from_result_set(
            &columns(MARIADB_ALL_SLAVES_COLUMNS),
            &[mariadb_row("", "No", "No")],
        )
        .unwrap();
        assert_eq!(evaluate(&Flavour::MariaDb, &vars(false), &r), Ok(()));
    }

    #[test]
    fn mariadb_multi_source_with_one_connection_running() {
        let r = ReplicationThreads::from_result_set(
            &columns(MARIADB_ALL_SLAVES_COLUMNS),
            &[
                mariadb_row("dc1", "No", "No"),
                mariadb_row("x", "No", "Yes"),
                mariadb_row("dc3", "No", "No"),
            ],
        )
        .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            evaluate(&Flavour::MariaDb, &vars(false), &r),
            Err("replication SQL thread running on a primary (connection 'x')".to_string())
        );
    }

    #[test]
    fn mariadb_connecting_io_thread_counts_as_running() {
        let r = ReplicationThreads::from_result_set(
            &columns(MARIADB_ALL_SLAVES_COLUMNS),
            &[mariadb_row("", "Connecting", "No")],
        )
        .unwrap();
        assert_eq!(
            evaluate(&Flavour::MariaDb, &vars(false), &r),
            Err("replication IO thread running on a primary (default connection)".to_string())
        );
        // Only exactly "No" is stopped: anything else, NULL included, is running.
        for state in ["Preparing", "no", "", "NULL"] {
            let r = vec![ReplicationThreads {
                channel: "a".into(),
                io_running: "No".into(),
                sql_running: state.into(),
            }];
            assert!(
                evaluate(&Flavour::MariaDb, &vars(false), &r).is_err(),
                "{state}"
            );
        }
    }

    #[test]
    fn mariadb_replica_lists_every_reason() {
        let r = ReplicationThreads::from_result_set(
            &columns(MARIADB_ALL_SLAVES_COLUMNS),
            &[mariadb_row("", "Yes", "Yes")],
        )
        .unwrap();
        assert_eq!(
            evaluate(&Flavour::MariaDb, &vars(true), &r),
            Err(
                "read_only=1; replication IO and SQL threads running on a primary \
                 (default connection)"
                    .to_string()
            )
        );
    }

    /// Recorded `SELECT @@global.read_only, @@global.super_read_only, @@global.offline_mode`
    /// and `SHOW REPLICA STATUS` answers of MySQL 8.0.
    fn mysql8(vars_row: [&str; 3], replica_rows: &[[&str; 3]]) -> Result<(), String> {
        let vars = ServerVars::from_row(&MYSQL8, &vars_row.map(b)).unwrap();
        let cols = columns(&[
            "Replica_IO_State",
            "Source_Host",
            "Replica_IO_Running",
            "Replica_SQL_Running",
            "Seconds_Behind_Source",
            "Channel_Name",
        ]);
        let rows: Vec<Vec<Value>> = replica_rows
            .iter()
            .map(|[io, sql, ch]| vec![b(""), b("198.18.1.1"), b(io), b(sql), Value::NULL, b(ch)])
            .collect();
        let r = ReplicationThreads::from_result_set(&cols, &rows).unwrap();
        evaluate(&MYSQL8, &vars, &r)
    }

    #[test]
    fn mysql8_writable_primary() {
        assert_eq!(mysql8(["0", "0", "0"], &[]), Ok(()));
        assert_eq!(mysql8(["0", "0", "0"], &[["No", "No", ""]]), Ok(()));
    }

    #[test]
    fn mysql8_super_read_only_and_offline_mode() {
        // super_read_only=1 forces read_only=1 on MySQL: both are named.
        assert_eq!(
            mysql8(["1", "1", "0"], &[]),
            Err("read_only=1; super_read_only=1".to_string())
        );
        assert_eq!(
            mysql8(["0", "0", "1"], &[]),
            Err("offline_mode=1".to_string())
        );
    }

    #[test]
    fn mysql8_replica_channel_running() {
        assert_eq!(
            mysql8(
                ["0", "0", "0"],
                &[["No", "No", ""], ["Connecting", "Yes", "group_b"]]
            ),
            Err("replication IO and SQL threads running on a primary (channel 'group_b')".into())
        );
    }

    #[test]
    fn mysql_missing_super_read_only_is_not_writable() {
        let v = vars(false);
        let e = evaluate(&MYSQL8, &v, &[]).unwrap_err();
        assert!(e.contains("super_read_only was not reported"), "{e}");
        // MariaDB has neither variable: not asked, not required.
        assert_eq!(evaluate(&Flavour::MariaDb, &v, &[]), Ok(()));
    }

    #[test]
    fn mysql56_slave_status_without_channel_column() {
        let cols = columns(&["Slave_IO_State", "Slave_IO_Running", "Slave_SQL_Running"]);
        let r =
            ReplicationThreads::from_result_set(&cols, &[vec![b(""), b("Yes"), b("No")]]).unwrap();
        let m56 = Flavour::MySql {
            major: 5,
            minor: 6,
            patch: 51,
        };
        assert_eq!(
            evaluate(&m56, &vars(false), &r),
            Err("replication IO thread running on a primary (default channel)".into())
        );
    }

    #[test]
    fn result_set_without_thread_columns_is_an_error() {
        let e =
            ReplicationThreads::from_result_set(&columns(&["Foo"]), &[vec![b("x")]]).unwrap_err();
        assert!(e.contains("Slave_IO_Running"), "{e}");
    }

    #[test]
    fn classify_errors() {
        let io = |k: io::ErrorKind| mysql_async::Error::Io(IoError::Io(io::Error::from(k)));
        let kind = |r: ProbeResult| match r {
            ProbeResult::Failed { kind, reason } => (kind, reason),
            other => panic!("{other:?}"),
        };
        let (k, r) = kind(classify(
            io(io::ErrorKind::ConnectionRefused),
            Stage::Connect,
            None,
        ));
        assert_eq!(k, FailureKind::Lost);
        assert!(r.starts_with("connect failed: "), "{r}");
        let (k, r) = kind(classify(
            io(io::ErrorKind::UnexpectedEof),
            Stage::Query("SHOW ALL SLAVES STATUS"),
            None,
        ));
        assert_eq!(k, FailureKind::Lost);
        assert!(r.starts_with("connection lost: "), "{r}");
        let (k, _) = kind(classify(
            mysql_async::Error::Driver(DriverError::ConnectionClosed),
            Stage::Query("x"),
            None,
        ));
        assert_eq!(k, FailureKind::Lost);
        let server = |code| {
            mysql_async::Error::Server(ServerError {
                code,
                message: "m".into(),
                state: "HY000".into(),
            })
        };
        assert_eq!(
            kind(classify(server(1053), Stage::Query("x"), None)).0,
            FailureKind::Lost
        );
        let (k, r) = kind(classify(
            server(1227),
            Stage::Query("SHOW ALL SLAVES STATUS"),
            Some(Flavour::MariaDb.privilege_hint()),
        ));
        assert_eq!(k, FailureKind::Query);
        assert!(
            r.starts_with("SHOW ALL SLAVES STATUS failed: ERROR 1227"),
            "{r}"
        );
        assert!(r.contains("SLAVE MONITOR"), "{r}");
        match classify(server(3032), Stage::Connect, None) {
            ProbeResult::NotWritable(r) => assert!(r.starts_with("offline_mode=1 ("), "{r}"),
            other => panic!("{other:?}"),
        }
        // The hint is only for privilege errors.
        let (_, r) = kind(classify(
            server(1064),
            Stage::Query("x"),
            Some(Flavour::MariaDb.privilege_hint()),
        ));
        assert!(!r.contains("SLAVE MONITOR"), "{r}");
    }

    fn tcp_config(port: u16, timeout_ms: u64) -> MysqlConfig {
        MysqlConfig {
            endpoint: MysqlEndpoint::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            user: "primaryd".into(),
            password_file: None,
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(timeout_ms),
            rise: 1,
            fall: 1,
        }
    }

    #[tokio::test]
    async fn missing_socket_file_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = tcp_config(1, 1000);
        cfg.endpoint = MysqlEndpoint::Socket(dir.path().join("no.sock"));
        let mut p = MysqlProbe::new(&cfg, None);
        match p.probe().await {
            ProbeResult::Failed {
                kind: FailureKind::Lost,
                reason,
            } => assert!(reason.starts_with("connect failed: "), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(!p.is_connected());
    }

    #[tokio::test]
    async fn refused_port_is_lost() {
        // Bind then drop: the port is very likely free and refuses connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut p = MysqlProbe::new(&tcp_config(port, 1000), None);
        let r = p.probe().await;
        assert!(
            matches!(
                r,
                ProbeResult::Failed {
                    kind: FailureKind::Lost,
                    ..
                }
            ),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn silent_server_times_out_on_time() {
        // Accepts TCP but never sends the greeting, like a SIGSTOPped server.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let mut p = MysqlProbe::new(&tcp_config(port, 200), None);
        let start = std::time::Instant::now();
        let r = p.probe().await;
        let took = start.elapsed();
        assert_eq!(
            r,
            ProbeResult::Failed {
                kind: FailureKind::Timeout,
                reason: "check timed out after 200 ms".into()
            }
        );
        assert!(took < Duration::from_millis(400), "{took:?}");
        hold.abort();
    }

    #[tokio::test]
    async fn server_closing_at_once_is_lost() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let close = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        let mut p = MysqlProbe::new(&tcp_config(port, 1000), None);
        let r = p.probe().await;
        assert!(
            matches!(
                r,
                ProbeResult::Failed {
                    kind: FailureKind::Lost,
                    ..
                }
            ),
            "{r:?}"
        );
        close.abort();
    }
}
