//! Pure: is the server, as it answered, what the service's role needs? [`evaluate`] for a
//! primary, [`evaluate_replica`] for reader anycast. Every reason it is not is a typed
//! [`Problem`]; [`Problems`] renders them as operators read them ("read_only=1; ...").

use std::fmt;
use std::time::Duration;

use super::answers::{ReplicationThreads, ServerVars};
use super::flavour::Flavour;

/// A server variable the checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variable {
    ReadOnly,
    SuperReadOnly,
    OfflineMode,
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variable::ReadOnly => "read_only",
            Variable::SuperReadOnly => "super_read_only",
            Variable::OfflineMode => "offline_mode",
        })
    }
}

/// Which of a stream's two threads a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    Io,
    Sql,
    Both,
}

impl Threads {
    /// The threads that are not exactly `stopped` ("No" on a primary) or not exactly
    /// `running` ("Yes" on a replica): `None` when neither is.
    fn other_than(r: &ReplicationThreads, state: &str) -> Option<Threads> {
        match (r.io_running != state, r.sql_running != state) {
            (true, true) => Some(Threads::Both),
            (true, false) => Some(Threads::Io),
            (false, true) => Some(Threads::Sql),
            (false, false) => None,
        }
    }
}

impl fmt::Display for Threads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Threads::Io => "IO thread",
            Threads::Sql => "SQL thread",
            Threads::Both => "IO and SQL threads",
        })
    }
}

/// One replication stream as reasons name it: "default connection", "channel 'dc1'".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The server's word: MariaDB's "connection", MySQL's "channel".
    pub word: &'static str,
    /// Empty for the default stream.
    pub name: String,
}

impl Stream {
    fn of(r: &ReplicationThreads, flavour: &Flavour) -> Stream {
        Stream {
            word: flavour.channel_word(),
            name: r.channel.clone(),
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "default {}", self.word)
        } else {
            write!(f, "{} '{}'", self.word, self.name)
        }
    }
}

/// One reason a server that answered is not what its role needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A variable that must be off is on ("read_only=1").
    On(Variable),
    /// A variable the flavour must report was missing: in doubt, not healthy.
    NotReported {
        variable: Variable,
        flavour: Flavour,
    },
    /// A primary with a replication thread running.
    ReplicatingOnPrimary { threads: Threads, stream: Stream },
    /// A replica that is writable.
    WritableReplica,
    /// A replica with no replication configured.
    NotReplicating,
    /// A replica whose threads are not both running, with the states the server reported.
    ReplicationStopped {
        threads: Threads,
        io: String,
        sql: String,
        stream: Stream,
    },
    /// A replica whose lag the server reports as NULL (`column`).
    LagUnknown {
        column: &'static str,
        stream: Stream,
    },
    /// A replica further behind than `max_lag_s`.
    LagAbove { lag: u64, max: u64, stream: Stream },
    /// MySQL refused the connection because it is in offline mode (server error text).
    OfflineModeRefused(String),
    /// The write probe was refused as read-only (server error text).
    WriteRefused(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::On(v) => write!(f, "{v}=1"),
            Problem::NotReported { variable, flavour } => {
                write!(f, "{variable} was not reported by {flavour}")
            }
            Problem::ReplicatingOnPrimary { threads, stream } => {
                write!(f, "replication {threads} running on a primary ({stream})")
            }
            Problem::WritableReplica => f.write_str("read_only=0 (a replica must be read-only)"),
            Problem::NotReplicating => f.write_str("not replicating: no replication configured"),
            Problem::ReplicationStopped {
                threads,
                io,
                sql,
                stream,
            } => {
                let states = match threads {
                    Threads::Io => io.clone(),
                    Threads::Sql => sql.clone(),
                    Threads::Both => format!("{io}/{sql}"),
                };
                write!(f, "replication {threads} not running ({states}) ({stream})")
            }
            Problem::LagUnknown { column, stream } => {
                write!(f, "replication lag unknown ({column} is NULL) ({stream})")
            }
            Problem::LagAbove { lag, max, stream } => {
                write!(f, "replication lag {lag} s > max_lag_s {max} ({stream})")
            }
            Problem::OfflineModeRefused(detail) => write!(f, "offline_mode=1 ({detail})"),
            Problem::WriteRefused(detail) => write!(f, "write probe refused: {detail}"),
        }
    }
}

/// Every reason a server is not what its role needs, in the order they were found; never
/// empty when it comes from [`evaluate`] or [`evaluate_replica`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl From<Problem> for Problems {
    fn from(p: Problem) -> Problems {
        Problems(vec![p])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// What a healthy server is, as a check says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Healthy {
    /// "writable primary".
    WritablePrimary,
    /// "replica, lag N s": the largest lag of its streams.
    Replica { lag_s: u64 },
}

impl fmt::Display for Healthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Healthy::WritablePrimary => f.write_str("writable primary"),
            Healthy::Replica { lag_s } => write!(f, "replica, lag {lag_s} s"),
        }
    }
}

fn verdict<T>(ok: T, problems: Vec<Problem>) -> Result<T, Problems> {
    if problems.is_empty() {
        Ok(ok)
    } else {
        Err(Problems(problems))
    }
}

/// Pure: is this server, as it answered, a healthy writable primary? `Err` lists every reason
/// it is not. When in doubt (a variable the flavour must report is missing, a thread state
/// that is not exactly "No") the answer is no.
pub fn evaluate(
    flavour: &Flavour,
    vars: &ServerVars,
    replication: &[ReplicationThreads],
) -> Result<(), Problems> {
    let mut problems = Vec::new();
    if vars.read_only {
        problems.push(Problem::On(Variable::ReadOnly));
    }
    for (variable, value) in [
        (Variable::SuperReadOnly, vars.super_read_only),
        (Variable::OfflineMode, vars.offline_mode),
    ] {
        match value {
            Some(true) => problems.push(Problem::On(variable)),
            None if flavour.has_super_read_only() => problems.push(Problem::NotReported {
                variable,
                flavour: *flavour,
            }),
            _ => {}
        }
    }
    for r in replication {
        if let Some(threads) = Threads::other_than(r, "No") {
            let stream = Stream::of(r, flavour);
            problems.push(Problem::ReplicatingOnPrimary { threads, stream });
        }
    }
    verdict((), problems)
}

/// Pure: is this server a healthy replica for reader anycast? It must be read-only, not in
/// offline mode, have at least one replication stream, and every stream must have both
/// threads exactly "Yes" and a known lag of at most `max_lag`. `Ok` says its largest lag;
/// `Err` lists every reason it is not.
pub fn evaluate_replica(
    flavour: &Flavour,
    vars: &ServerVars,
    replication: &[ReplicationThreads],
    max_lag: Duration,
) -> Result<Healthy, Problems> {
    let mut problems = Vec::new();
    if !vars.read_only {
        problems.push(Problem::WritableReplica);
    }
    match vars.offline_mode {
        Some(true) => problems.push(Problem::On(Variable::OfflineMode)),
        None if flavour.has_super_read_only() => problems.push(Problem::NotReported {
            variable: Variable::OfflineMode,
            flavour: *flavour,
        }),
        _ => {}
    }
    if replication.is_empty() {
        problems.push(Problem::NotReplicating);
    }
    let max = max_lag.as_secs();
    let mut worst = 0;
    for r in replication {
        let stream = Stream::of(r, flavour);
        if let Some(threads) = Threads::other_than(r, "Yes") {
            problems.push(Problem::ReplicationStopped {
                threads,
                io: r.io_running.clone(),
                sql: r.sql_running.clone(),
                stream,
            });
            continue;
        }
        match r.lag {
            None => problems.push(Problem::LagUnknown {
                column: flavour.lag_column(),
                stream,
            }),
            Some(lag) if lag > max => problems.push(Problem::LagAbove { lag, max, stream }),
            Some(lag) => worst = worst.max(lag),
        }
    }
    verdict(Healthy::Replica { lag_s: worst }, problems)
}

#[cfg(test)]
mod tests {
    use mysql_async::Value;

    use super::super::test_data::*;
    use super::*;

    /// The verdict as operators read it.
    fn shown<T>(r: Result<T, Problems>) -> Result<T, String> {
        r.map_err(|p| p.to_string())
    }

    #[test]
    fn mariadb_fresh_primary_is_writable() {
        let r = ReplicationThreads::from_result_set(&[], &[]).unwrap();
        assert_eq!(shown(evaluate(&Flavour::MariaDb, &vars(false), &r)), Ok(()));
    }

    #[test]
    fn mariadb_read_only() {
        assert_eq!(
            shown(evaluate(&Flavour::MariaDb, &vars(true), &[])),
            Err("read_only=1".to_string())
        );
    }

    #[test]
    fn mariadb_stopped_replication_is_writable() {
        // A promoted replica keeps its (stopped) connection config: both threads "No".
        let r = mariadb_threads(&[mariadb_row("", "No", "No")]);
        assert_eq!(shown(evaluate(&Flavour::MariaDb, &vars(false), &r)), Ok(()));
    }

    #[test]
    fn mariadb_multi_source_with_one_connection_running() {
        let r = mariadb_threads(&[
            mariadb_row("dc1", "No", "No"),
            mariadb_row("x", "No", "Yes"),
            mariadb_row("dc3", "No", "No"),
        ]);
        assert_eq!(r.len(), 3);
        assert_eq!(
            shown(evaluate(&Flavour::MariaDb, &vars(false), &r)),
            Err("replication SQL thread running on a primary (connection 'x')".to_string())
        );
    }

    #[test]
    fn mariadb_connecting_io_thread_counts_as_running() {
        let r = mariadb_threads(&[mariadb_row("", "Connecting", "No")]);
        assert_eq!(
            shown(evaluate(&Flavour::MariaDb, &vars(false), &r)),
            Err("replication IO thread running on a primary (default connection)".to_string())
        );
        // Only exactly "No" is stopped: anything else, NULL included, is running.
        for state in ["Preparing", "no", "", "NULL"] {
            let r = vec![ReplicationThreads {
                channel: "a".into(),
                io_running: "No".into(),
                sql_running: state.into(),
                lag: None,
            }];
            assert!(
                evaluate(&Flavour::MariaDb, &vars(false), &r).is_err(),
                "{state}"
            );
        }
    }

    #[test]
    fn mariadb_replica_lists_every_reason() {
        let r = mariadb_threads(&[mariadb_row("", "Yes", "Yes")]);
        assert_eq!(
            shown(evaluate(&Flavour::MariaDb, &vars(true), &r)),
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
        shown(evaluate(&MYSQL8, &vars, &r))
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
        let e = evaluate(&MYSQL8, &v, &[]).unwrap_err().to_string();
        assert!(e.contains("super_read_only was not reported"), "{e}");
        // MariaDB has neither variable: not asked, not required.
        assert_eq!(shown(evaluate(&Flavour::MariaDb, &v, &[])), Ok(()));
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
            shown(evaluate(&m56, &vars(false), &r)),
            Err("replication IO thread running on a primary (default channel)".into())
        );
    }

    fn mysql8_replica(
        vars_row: [&str; 3],
        rows: &[Vec<Value>],
        max_lag_s: u64,
    ) -> Result<String, String> {
        let vars = ServerVars::from_row(&MYSQL8, &vars_row.map(b)).unwrap();
        let r =
            ReplicationThreads::from_result_set(&columns(MYSQL8_REPLICA_COLUMNS), rows).unwrap();
        shown(evaluate_replica(
            &MYSQL8,
            &vars,
            &r,
            Duration::from_secs(max_lag_s),
        ))
        .map(|h| h.to_string())
    }

    #[test]
    fn mysql8_healthy_replica() {
        // A MySQL replica usually runs with super_read_only=1 too: fine for a reader.
        let row = mysql8_replica_row("Yes", "Yes", Some("3"), "");
        assert_eq!(
            mysql8_replica(["1", "1", "0"], &[row], 30),
            Ok("replica, lag 3 s".to_string())
        );
        let rows = [
            mysql8_replica_row("Yes", "Yes", Some("0"), "a"),
            mysql8_replica_row("Yes", "Yes", Some("7"), "b"),
        ];
        assert_eq!(
            mysql8_replica(["1", "0", "0"], &rows, 7),
            Ok("replica, lag 7 s".to_string())
        );
    }

    #[test]
    fn mysql8_replica_lag_null_lag_and_stopped_threads() {
        let lagging = mysql8_replica_row("Yes", "Yes", Some("120"), "");
        assert_eq!(
            mysql8_replica(["1", "1", "0"], &[lagging], 30),
            Err("replication lag 120 s > max_lag_s 30 (default channel)".into())
        );
        let unknown = mysql8_replica_row("Yes", "Yes", None, "");
        assert_eq!(
            mysql8_replica(["1", "1", "0"], &[unknown], 30),
            Err("replication lag unknown (Seconds_Behind_Source is NULL) (default channel)".into())
        );
        let rows = [
            mysql8_replica_row("Connecting", "Yes", None, "dc1"),
            mysql8_replica_row("Yes", "No", None, "dc2"),
            mysql8_replica_row("No", "No", None, "dc3"),
        ];
        assert_eq!(
            mysql8_replica(["1", "1", "0"], &rows, 30),
            Err(
                "replication IO thread not running (Connecting) (channel 'dc1'); \
                 replication SQL thread not running (No) (channel 'dc2'); \
                 replication IO and SQL threads not running (No/No) (channel 'dc3')"
                    .into()
            )
        );
    }

    #[test]
    fn mysql8_replica_must_be_read_only_online_and_replicating() {
        let row = mysql8_replica_row("Yes", "Yes", Some("0"), "");
        assert_eq!(
            mysql8_replica(["0", "0", "0"], std::slice::from_ref(&row), 30),
            Err("read_only=0 (a replica must be read-only)".into())
        );
        assert_eq!(
            mysql8_replica(["1", "1", "1"], &[row], 30),
            Err("offline_mode=1".into())
        );
        assert_eq!(
            mysql8_replica(["1", "1", "0"], &[], 30),
            Err("not replicating: no replication configured".into())
        );
        // A server that does not report offline_mode fails (when in doubt, withdraw).
        let r = vec![ReplicationThreads {
            channel: String::new(),
            io_running: "Yes".into(),
            sql_running: "Yes".into(),
            lag: Some(0),
        }];
        let e = evaluate_replica(&MYSQL8, &vars(true), &r, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("offline_mode was not reported"), "{e}");
    }

    #[test]
    fn mariadb_replica_lag_and_spelling() {
        let mut cols = MARIADB_ALL_SLAVES_COLUMNS.to_vec();
        cols.push("Seconds_Behind_Master");
        let row = |conn: &str, lag: Value| {
            let mut r = mariadb_row(conn, "Yes", "Yes");
            r.push(lag);
            r
        };
        let r = ReplicationThreads::from_result_set(
            &columns(&cols),
            &[row("a", Value::Int(2)), row("b", b("45"))],
        )
        .unwrap();
        assert_eq!(r[0].lag, Some(2));
        assert_eq!(
            shown(evaluate_replica(
                &Flavour::MariaDb,
                &vars(true),
                &r,
                Duration::from_secs(30)
            )),
            Err("replication lag 45 s > max_lag_s 30 (connection 'b')".into())
        );
        let r =
            ReplicationThreads::from_result_set(&columns(&cols), &[row("", Value::NULL)]).unwrap();
        assert_eq!(
            shown(evaluate_replica(
                &Flavour::MariaDb,
                &vars(true),
                &r,
                Duration::from_secs(30)
            )),
            Err(
                "replication lag unknown (Seconds_Behind_Master is NULL) (default connection)"
                    .into()
            )
        );
        // MySQL before 8.0.22 spells it the MariaDB way.
        let m57 = Flavour::MySql {
            major: 5,
            minor: 7,
            patch: 44,
        };
        assert_eq!(m57.lag_column(), "Seconds_Behind_Master");
        assert_eq!(MYSQL8.lag_column(), "Seconds_Behind_Source");
    }
}
