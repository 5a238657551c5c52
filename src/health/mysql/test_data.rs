//! Recorded answers and fixtures shared by the probe's unit tests.

use mysql_async::Value;

use super::answers::{ReplicationThreads, ServerVars};
use super::flavour::Flavour;

pub(super) fn b(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

pub(super) const MYSQL8: Flavour = Flavour::MySql {
    major: 8,
    minor: 0,
    patch: 36,
};

pub(super) fn vars(read_only: bool) -> ServerVars {
    ServerVars {
        read_only,
        super_read_only: None,
        offline_mode: None,
    }
}

/// The columns of `SHOW ALL SLAVES STATUS` on MariaDB 10.11, recorded from a server.
pub(super) const MARIADB_ALL_SLAVES_COLUMNS: &[&str] = &[
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

pub(super) fn mariadb_row(conn: &str, io: &str, sql: &str) -> Vec<Value> {
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

pub(super) fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The columns of MySQL 8.0's `SHOW REPLICA STATUS`, in order, as the MySQL 8.0
/// reference manual lists them (no MySQL 8 server is available here to record from).
pub(super) const MYSQL8_REPLICA_COLUMNS: &[&str] = &[
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
pub(super) fn mysql8_replica_row(
    io: &str,
    sql: &str,
    lag: Option<&str>,
    channel: &str,
) -> Vec<Value> {
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

/// What `SHOW ALL SLAVES STATUS` with these rows reads as.
pub(super) fn mariadb_threads(rows: &[Vec<Value>]) -> Vec<ReplicationThreads> {
    ReplicationThreads::from_result_set(&columns(MARIADB_ALL_SLAVES_COLUMNS), rows)
        .expect("MariaDB's columns")
}
