//! The I/O: one persistent connection per service, one probe bounded by a deadline, the
//! queries whose answers [`super::answers`] reads and [`super::evaluate`] judges, the write
//! probe and the term step ([`crate::health::facts`]). A lost connection is retried once at
//! once; connects that reached the server and failed back off.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, SslOpts, Value};

use super::answers::{row_values, value_as_text, value_as_u64, ReplicationThreads, ServerVars};
use super::classify::{classify, write_failure, Stage};
use super::evaluate::{evaluate, evaluate_replica};
use super::flavour::Flavour;
use super::heartbeat::heartbeat_sql;
use super::result::{FailureKind, ProbeResult};
use crate::config::{MysqlConfig, MysqlEndpoint, Role, ServiceConfig, WriteProbeTable};
use crate::health::backoff::Backoff;
use crate::health::facts;
use crate::health::term::{Incarnation, PromotionWitness, ServerFacts, TermState};

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
                    (Err(e), _) => return ProbeResult::failed(FailureKind::Query, e.to_string()),
                    (_, Err(e)) => return ProbeResult::failed(FailureKind::Query, e),
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
                    Err(e) => return ProbeResult::failed(FailureKind::Query, e.to_string()),
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
            .map_err(|e| ProbeResult::failed(FailureKind::Query, e.to_string()))?;
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

pub(crate) async fn query_rows(conn: &mut Conn, sql: &str) -> mysql_async::Result<Vec<Row>> {
    conn.query::<Row, _>(sql).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::test_servers;

    fn assert_lost(r: &ProbeResult) {
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

    fn tcp_config(port: u16, timeout_ms: u64) -> MysqlConfig {
        let mut c = MysqlConfig::new(
            MysqlEndpoint::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            "primaryd",
        );
        c.interval = Duration::from_millis(100);
        c.timeout = Duration::from_millis(timeout_ms);
        (c.rise, c.fall) = (1, 1);
        c
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
        assert_lost(&r);
    }

    #[tokio::test]
    async fn silent_server_times_out_on_time() {
        let (port, hold) = test_servers::silent().await;
        let mut p = MysqlProbe::new(&tcp_config(port, 200), None);
        let start = std::time::Instant::now();
        let r = p.probe().await;
        let took = start.elapsed();
        assert_eq!(
            r,
            ProbeResult::Failed {
                kind: FailureKind::Timeout,
                reason: "check timed out after 200 ms during connect".into()
            }
        );
        assert!(took < Duration::from_millis(400), "{took:?}");
        // The next checks repeat the failure from backoff without connecting again (each
        // abandoned handshake is an "aborted connection" in a real server's log).
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let r = p.probe().await;
            assert_eq!(
                r,
                ProbeResult::Failed {
                    kind: FailureKind::Timeout,
                    reason: "check timed out after 200 ms during connect \
                             (connect backoff after 1 failed attempts)"
                        .into()
                }
            );
            assert!(start.elapsed() < Duration::from_millis(50));
        }
        hold.abort();
    }

    #[tokio::test]
    async fn server_closing_at_once_is_lost() {
        let (port, close) = test_servers::closing().await;
        let mut p = MysqlProbe::new(&tcp_config(port, 1000), None);
        let r = p.probe().await;
        assert_lost(&r);
        close.abort();
    }
}
