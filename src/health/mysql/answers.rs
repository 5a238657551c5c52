//! What the server answered, read from its result sets: the global variables and the
//! replication streams. Pure (values in, typed answers out); columns are found by name.

use mysql_async::{Row, Value};

use super::flavour::Flavour;

/// An answer the probe cannot read (reported as a failed check, never as healthy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("cannot parse server version {0:?}")]
    Version(String),
    #[error("the server did not return @@global.{0}")]
    MissingVariable(&'static str),
    #[error("unexpected value for @@global.{name}: {value}")]
    BadVariable { name: &'static str, value: String },
    #[error("replication status has no {0} column")]
    MissingColumn(&'static str),
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
    pub fn from_row(flavour: &Flavour, values: &[Value]) -> Result<ServerVars, AnswerError> {
        let get = |i: usize, name: &'static str| -> Result<bool, AnswerError> {
            let v = values.get(i).ok_or(AnswerError::MissingVariable(name))?;
            value_as_bool(v).ok_or_else(|| AnswerError::BadVariable {
                name,
                value: format!("{v:?}"),
            })
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
pub(crate) fn value_as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::UInt(n) => Some(*n),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn value_as_text(v: &Value) -> String {
    match v {
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::NULL => "NULL".to_string(),
        other => format!("{other:?}"),
    }
}

/// A row's values without panicking (a value already taken reads as NULL).
pub(crate) fn row_values(row: Row) -> Vec<Value> {
    row.unwrap_raw()
        .into_iter()
        .map(|v| v.unwrap_or(Value::NULL))
        .collect()
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
    ) -> Result<Vec<ReplicationThreads>, AnswerError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let find = |names: &[&str]| {
            columns
                .iter()
                .position(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
        };
        let io = find(&["Slave_IO_Running", "Replica_IO_Running"]).ok_or(
            AnswerError::MissingColumn("Slave_IO_Running/Replica_IO_Running"),
        )?;
        let sql = find(&["Slave_SQL_Running", "Replica_SQL_Running"]).ok_or(
            AnswerError::MissingColumn("Slave_SQL_Running/Replica_SQL_Running"),
        )?;
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
}

#[cfg(test)]
mod tests {
    use super::super::test_data::*;
    use super::*;

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
        let e = ServerVars::from_row(&MYSQL8, &[b("0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("super_read_only"), "{e}");
    }

    #[test]
    fn result_set_without_thread_columns_is_an_error() {
        let e = ReplicationThreads::from_result_set(&columns(&["Foo"]), &[vec![b("x")]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("Slave_IO_Running"), "{e}");
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
}
