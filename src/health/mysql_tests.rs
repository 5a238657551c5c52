//! Unit tests of [`super`] (the probe's pure parts on recorded result sets, and the probe
//! against fake servers), kept apart so mysql.rs stays readable.

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
    assert_eq!(
        Flavour::MariaDb.vars_query(),
        "SELECT @@global.read_only, @@global.server_id"
    );
    assert_eq!(
        Flavour::MariaDb.replication_query(),
        "SHOW ALL SLAVES STATUS"
    );
    assert_eq!(
        MYSQL8.vars_query(),
        "SELECT @@global.read_only, @@global.super_read_only, @@global.offline_mode, \
         @@global.server_id"
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
    assert_eq!(m56.vars_query(), Flavour::MariaDb.vars_query());
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
    let r = ReplicationThreads::from_result_set(&cols, &[vec![b(""), b("Yes"), b("No")]]).unwrap();
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
    let e = ReplicationThreads::from_result_set(&columns(&["Foo"]), &[vec![b("x")]]).unwrap_err();
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
        ProbeResult::Unhealthy(r) => assert!(r.starts_with("offline_mode=1 ("), "{r}"),
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

/// The columns of MySQL 8.0's `SHOW REPLICA STATUS`, in order, as the MySQL 8.0
/// reference manual lists them (no MySQL 8 server is available here to record from).
const MYSQL8_REPLICA_COLUMNS: &[&str] = &[
    "Replica_IO_State",
    "Source_Host",
    "Source_User",
    "Source_Port",
    "Connect_Retry",
    "Source_Log_File",
    "Read_Source_Log_Pos",
    "Relay_Log_File",
    "Relay_Log_Pos",
    "Relay_Source_Log_File",
    "Replica_IO_Running",
    "Replica_SQL_Running",
    "Replicate_Do_DB",
    "Replicate_Ignore_DB",
    "Replicate_Do_Table",
    "Replicate_Ignore_Table",
    "Replicate_Wild_Do_Table",
    "Replicate_Wild_Ignore_Table",
    "Last_Errno",
    "Last_Error",
    "Skip_Counter",
    "Exec_Source_Log_Pos",
    "Relay_Log_Space",
    "Until_Condition",
    "Until_Log_File",
    "Until_Log_Pos",
    "Source_SSL_Allowed",
    "Source_SSL_CA_File",
    "Source_SSL_CA_Path",
    "Source_SSL_Cert",
    "Source_SSL_Cipher",
    "Source_SSL_Key",
    "Seconds_Behind_Source",
    "Source_SSL_Verify_Server_Cert",
    "Last_IO_Errno",
    "Last_IO_Error",
    "Last_SQL_Errno",
    "Last_SQL_Error",
    "Replicate_Ignore_Server_Ids",
    "Source_Server_Id",
    "Source_UUID",
    "Source_Info_File",
    "SQL_Delay",
    "SQL_Remaining_Delay",
    "Replica_SQL_Running_State",
    "Source_Retry_Count",
    "Source_Bind",
    "Last_IO_Error_Timestamp",
    "Last_SQL_Error_Timestamp",
    "Source_SSL_Crl",
    "Source_SSL_Crlpath",
    "Retrieved_Gtid_Set",
    "Executed_Gtid_Set",
    "Auto_Position",
    "Replicate_Rewrite_DB",
    "Channel_Name",
    "Source_TLS_Version",
    "Source_public_key_path",
    "Get_Source_public_key",
    "Network_Namespace",
];

/// A MySQL 8.0 `SHOW REPLICA STATUS` row: typical values, with the threads, lag (None:
/// NULL) and channel given. Values go by column name, so the order above is exercised.
fn mysql8_replica_row(io: &str, sql: &str, lag: Option<&str>, channel: &str) -> Vec<Value> {
    MYSQL8_REPLICA_COLUMNS
        .iter()
        .map(|c| match *c {
            "Replica_IO_Running" => b(io),
            "Replica_SQL_Running" => b(sql),
            "Seconds_Behind_Source" => lag.map_or(Value::NULL, b),
            "Channel_Name" => b(channel),
            "Replica_IO_State" => b("Waiting for source to send event"),
            "Source_Host" => b("198.18.1.1"),
            "Source_Port" => b("3306"),
            "Last_Errno" | "Last_IO_Errno" | "Last_SQL_Errno" | "Skip_Counter" => b("0"),
            "Auto_Position" => b("1"),
            "Replica_SQL_Running_State" => {
                b("Replica has read all relay log; waiting for more updates")
            }
            _ => b(""),
        })
        .collect()
}

fn mysql8_replica(
    vars_row: [&str; 3],
    rows: &[Vec<Value>],
    max_lag_s: u64,
) -> Result<String, String> {
    let vars = ServerVars::from_row(&MYSQL8, &vars_row.map(b)).unwrap();
    let r = ReplicationThreads::from_result_set(&columns(MYSQL8_REPLICA_COLUMNS), rows).unwrap();
    evaluate_replica(&MYSQL8, &vars, &r, Duration::from_secs(max_lag_s))
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
    let e = evaluate_replica(&MYSQL8, &vars(true), &r, Duration::from_secs(1)).unwrap_err();
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
        evaluate_replica(&Flavour::MariaDb, &vars(true), &r, Duration::from_secs(30)),
        Err("replication lag 45 s > max_lag_s 30 (connection 'b')".into())
    );
    let r = ReplicationThreads::from_result_set(&columns(&cols), &[row("", Value::NULL)]).unwrap();
    assert_eq!(
        evaluate_replica(&Flavour::MariaDb, &vars(true), &r, Duration::from_secs(30)),
        Err("replication lag unknown (Seconds_Behind_Master is NULL) (default connection)".into())
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

#[test]
fn lag_values_from_either_protocol() {
    assert_eq!(value_as_u64(&Value::Int(5)), Some(5));
    assert_eq!(value_as_u64(&Value::UInt(5)), Some(5));
    assert_eq!(value_as_u64(&b("17")), Some(17));
    assert_eq!(value_as_u64(&Value::NULL), None);
    assert_eq!(value_as_u64(&Value::Int(-1)), None);
    assert_eq!(value_as_u64(&b("x")), None);
}

#[test]
fn heartbeat_sql_and_the_documented_table() {
    let t = WriteProbeTable {
        database: "primaryd".into(),
        table: "heartbeat".into(),
    };
    let (upsert, read) = heartbeat_sql(&t, "main", 42);
    assert_eq!(
        upsert,
        "INSERT INTO `primaryd`.`heartbeat` (server_id, service, seq, ts) \
         VALUES (@@global.server_id, 'main', 42, NOW(6)) \
         ON DUPLICATE KEY UPDATE seq = 42, ts = NOW(6)"
    );
    assert_eq!(
        read,
        "SELECT seq FROM `primaryd`.`heartbeat` WHERE server_id = @@global.server_id \
         AND service = 'main'"
    );
    // Never a quote from a name into the SQL, whatever the caller passes.
    let (upsert, _) = heartbeat_sql(&t, "a'b\\c", 1);
    assert!(upsert.contains("'abc'"), "{upsert}");
    // The docs give exactly the SQL the live tests create the table with.
    let docs = include_str!("../../docs/health.md");
    assert!(
        docs.contains(HEARTBEAT_TABLE_SQL),
        "docs/health.md lacks the heartbeat SQL"
    );
}

#[test]
fn write_probe_failures_say_what_to_do() {
    let t = WriteProbeTable {
        database: "primaryd".into(),
        table: "heartbeat".into(),
    };
    let server = |code| {
        mysql_async::Error::Server(ServerError {
            code,
            message: "m".into(),
            state: "HY000".into(),
        })
    };
    let failed = |r: ProbeResult| match r {
        ProbeResult::Failed { kind, reason } => (kind, reason),
        other => panic!("{other:?}"),
    };
    let (k, r) = failed(write_failure(server(1146), &t));
    assert_eq!(k, FailureKind::Query);
    assert!(
        r.ends_with("(create primaryd.heartbeat with the SQL in docs/health.md)"),
        "{r}"
    );
    let (k, r) = failed(write_failure(server(1142), &t));
    assert_eq!(k, FailureKind::Query);
    assert!(
        r.contains("GRANT SELECT, INSERT, UPDATE ON primaryd.heartbeat"),
        "{r}"
    );
    assert_eq!(
        failed(write_failure(server(1205), &t)).0,
        FailureKind::Timeout
    );
    assert_eq!(failed(write_failure(server(1053), &t)).0, FailureKind::Lost);
    match write_failure(server(1290), &t) {
        ProbeResult::Unhealthy(r) => assert!(r.starts_with("write probe refused: "), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn access_denied_and_tls_failures_are_answers_not_losses() {
    let (k, r) = match classify(
        mysql_async::Error::Server(ServerError {
            code: 1045,
            message: "Access denied for user 'primaryd'@'localhost' (using password: YES)".into(),
            state: "28000".into(),
        }),
        Stage::Connect,
        None,
    ) {
        ProbeResult::Failed { kind, reason } => (kind, reason),
        other => panic!("{other:?}"),
    };
    assert_eq!(k, FailureKind::Query);
    assert!(
        r.starts_with("connect failed: ERROR 1045 (28000): Access denied"),
        "{r}"
    );
    assert!(r.ends_with("(check [service.mysql] user and the password in password_file)"));
    let tls = mysql_async::Error::Io(IoError::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        "invalid peer certificate: UnknownIssuer",
    )));
    match classify(tls, Stage::Connect, None) {
        ProbeResult::Failed { kind, reason } => {
            assert_eq!(kind, FailureKind::Query);
            assert_eq!(
                reason,
                "connect failed: TLS or protocol error: invalid peer certificate: UnknownIssuer"
            );
        }
        other => panic!("{other:?}"),
    }
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
