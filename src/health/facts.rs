//! The SQL behind [`super::term`]: the server's identity (`@@global.server_id` rides on the
//! variables query every check runs; the start time is read once per connection, as a
//! restart always breaks the connection), and reading and writing the term table over the
//! probe's connection. What to write is decided by the pure [`PromotionWitness`]; this
//! module only talks.

use std::time::{Duration, SystemTime};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use tracing::{info, warn};

use super::mysql::answers::{row_values, value_as_u64};
use super::mysql::probe::query_rows;
use super::term::{Incarnation, PromotionWitness, TermDecision, TermRows, TermState};
use crate::config::WriteProbeTable;

/// How timeouts and errors name the variables query (the whole text is in docs/health.md).
pub(crate) const VARS_STEP: &str = "SELECT @@global.read_only, ...";
/// Run when a connection is opened. Any user may, on MariaDB and MySQL alike. (Per check,
/// the status tables would cost the server ~0.4 ms each time: it sums every thread's status.)
pub(crate) const UPTIME_QUERY: &str = "SHOW GLOBAL STATUS LIKE 'Uptime'";

/// The term table as docs/health.md gives it; primaryd never creates it. One row per
/// promotion; it replicates with the data.
pub const TERM_TABLE_SQL: &str = "\
CREATE DATABASE IF NOT EXISTS primaryd;
CREATE TABLE IF NOT EXISTS primaryd.term (
  service     VARCHAR(64) NOT NULL,
  term        BIGINT UNSIGNED NOT NULL,
  server_id   INT UNSIGNED NOT NULL,
  promoted_at TIMESTAMP(6) NOT NULL,
  PRIMARY KEY (service, term)
) ENGINE=InnoDB;";

/// The start time from the answer of [`UPTIME_QUERY`] (`Variable_name`, `Value`); `now` is
/// when the answer arrived.
pub(crate) fn started_at(values: &[Value], now: SystemTime) -> Result<SystemTime, String> {
    let uptime = values
        .get(1)
        .and_then(value_as_u64)
        .ok_or_else(|| format!("unexpected answer to {UPTIME_QUERY}: {values:?}"))?;
    now.checked_sub(Duration::from_secs(uptime))
        .filter(|t| *t >= SystemTime::UNIX_EPOCH)
        .ok_or_else(|| format!("status Uptime {uptime} s is before the epoch"))
}

/// Who answered: `server_id` from the last column of the variables query, and the start
/// time of the connection's server.
pub(crate) fn identity(values: &[Value], started_at: SystemTime) -> Result<Incarnation, String> {
    let id = values
        .last()
        .ok_or("the server did not return @@global.server_id")?;
    let server_id = value_as_u64(id)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("unexpected value for @@global.server_id: {id:?}"))?;
    Ok(Incarnation {
        server_id,
        started_at,
    })
}

/// The service name as a SQL string literal's content. Names are validated by the config
/// (letters, digits, `.`, `_`, `-`); anything else is dropped rather than trusted.
pub(crate) fn sql_key(service: &str) -> String {
    service
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect()
}

/// One row: the newest term of the service and its writer, and this server's newest term.
fn read_sql(t: &WriteProbeTable, service: &str) -> String {
    let (table, key) = (format!("`{}`.`{}`", t.database, t.table), sql_key(service));
    let newest = format!("FROM {table} WHERE service = '{key}' ORDER BY term DESC LIMIT 1");
    format!(
        "SELECT (SELECT term {newest}), (SELECT server_id {newest}), \
         (SELECT MAX(term) FROM {table} WHERE service = '{key}' \
         AND server_id = @@global.server_id)"
    )
}

fn insert_sql(t: &WriteProbeTable, service: &str, term: u64) -> String {
    format!(
        "INSERT INTO `{}`.`{}` (service, term, server_id, promoted_at) \
         VALUES ('{}', {term}, @@global.server_id, NOW(6))",
        t.database,
        t.table,
        sql_key(service)
    )
}

/// Reads the answer of [`read_sql`]: NULLs are "no row".
fn parse_rows(values: &[Value]) -> Result<TermRows, String> {
    let get = |i: usize| -> Result<Option<u64>, String> {
        match values.get(i) {
            None => Err("the term query returned too few columns".into()),
            Some(Value::NULL) => Ok(None),
            Some(v) => value_as_u64(v)
                .map(Some)
                .ok_or_else(|| format!("unexpected value in the term table: {v:?}")),
        }
    };
    let newest = match (get(0)?, get(1)?) {
        (Some(term), Some(id)) => Some((
            term,
            u32::try_from(id).map_err(|_| format!("server_id {id} out of range"))?,
        )),
        (None, None) => None,
        _ => return Err("the newest term row has a NULL column".into()),
    };
    Ok(TermRows {
        own: get(2)?,
        newest,
    })
}

const ER_DBACCESS_DENIED: u16 = 1044;
const ER_BAD_DB: u16 = 1049;
const ER_BAD_FIELD: u16 = 1054;
const ER_DUP_ENTRY: u16 = 1062;
const ER_TABLEACCESS_DENIED: u16 = 1142;
const ER_COLUMNACCESS_DENIED: u16 = 1143;
const ER_NO_SUCH_TABLE: u16 = 1146;
const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;

/// Why the table could not be used, with what to do; and whether the connection is still
/// good (a server error leaves it usable, anything else does not).
fn failure(err: mysql_async::Error, t: &WriteProbeTable, doing: &str) -> (String, bool) {
    match err {
        mysql_async::Error::Server(e) => {
            let detail = format!(
                "{doing} {t} failed: ERROR {} ({}): {}",
                e.code, e.state, e.message
            );
            let hint = match e.code {
                ER_NO_SUCH_TABLE | ER_BAD_DB | ER_BAD_FIELD => {
                    format!(" (create {t} with the SQL in docs/health.md)")
                }
                ER_DBACCESS_DENIED | ER_TABLEACCESS_DENIED | ER_COLUMNACCESS_DENIED => {
                    format!(" (GRANT SELECT, INSERT ON {t} TO the check user)")
                }
                ER_DUP_ENTRY => " (another server wrote that term meanwhile)".to_string(),
                ER_OPTION_PREVENTS_STATEMENT => " (the server turned read-only)".to_string(),
                _ => String::new(),
            };
            // The server going away (shutdown, KILL) ends the connection too.
            let usable = !matches!(e.code, 1053 | 1927 | 3169 | 4031);
            (format!("{detail}{hint}"), usable)
        }
        other => (format!("{doing} {t} failed: {other}"), false),
    }
}

/// What [`term_step`] found.
#[derive(Debug)]
pub(crate) struct TermOutcome {
    pub state: TermState,
    /// False when the connection was interrupted mid-statement and must not be reused.
    pub conn_ok: bool,
}

/// Reads the term rows after an answered check and, when `healthy` and the witness says so,
/// writes the next term and reads it back. Bounded by `budget` (the check's remaining time):
/// a table that does not answer in time is [`TermState::Unreadable`].
pub(crate) async fn term_step(
    conn: &mut Conn,
    table: &WriteProbeTable,
    service: &str,
    witness: &mut PromotionWitness,
    who: Incarnation,
    healthy: bool,
    budget: Duration,
) -> TermOutcome {
    let step = read_and_write(conn, table, service, witness, who, healthy);
    match tokio::time::timeout(budget, step).await {
        Ok(Ok(rows)) => TermOutcome {
            state: rows.into(),
            conn_ok: true,
        },
        Ok(Err((reason, conn_ok))) => TermOutcome {
            state: TermState::Unreadable(reason),
            conn_ok,
        },
        Err(_) => TermOutcome {
            state: TermState::Unreadable(format!(
                "{table} did not answer within the check's timeout"
            )),
            conn_ok: false,
        },
    }
}

async fn read(
    conn: &mut Conn,
    t: &WriteProbeTable,
    service: &str,
) -> Result<TermRows, (String, bool)> {
    let rows = query_rows(conn, &read_sql(t, service))
        .await
        .map_err(|e| failure(e, t, "reading"))?;
    let values = rows.into_iter().next().map(row_values).unwrap_or_default();
    parse_rows(&values).map_err(|e| (format!("reading {t}: {e}"), true))
}

async fn read_and_write(
    conn: &mut Conn,
    t: &WriteProbeTable,
    service: &str,
    witness: &mut PromotionWitness,
    who: Incarnation,
    healthy: bool,
) -> Result<TermRows, (String, bool)> {
    let rows = read(conn, t, service).await?;
    if !healthy {
        return Ok(rows);
    }
    let (term, reason) = match witness.decide(who, &rows) {
        TermDecision::Keep => return Ok(rows),
        TermDecision::Refuse(why) => return Err((why, true)),
        TermDecision::Write { term, reason } => (term, reason),
    };
    conn.query_drop(insert_sql(t, service, term))
        .await
        .map_err(|e| failure(e, t, &format!("writing term {term} to")))?;
    let after = read(conn, t, service).await?;
    if after.own != Some(term) {
        let why = format!("wrote term {term} to {t} but read back {after:?}");
        warn!(%why, "term not confirmed");
        return Err((why, true));
    }
    witness.written();
    info!(term, server_id = who.server_id, %reason, table = %t, event = "term_written", "new promotion term written");
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::ServerError;

    fn b(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    fn table() -> WriteProbeTable {
        WriteProbeTable {
            database: "primaryd".into(),
            table: "term".into(),
        }
    }

    #[test]
    fn identity_and_start_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // SHOW GLOBAL STATUS answers text.
        let started = started_at(&[b("Uptime"), b("600")], now).unwrap();
        assert_eq!(started, now - Duration::from_secs(600));
        for bad in [
            vec![],
            vec![b("Uptime")],
            vec![b("Uptime"), b("x")],
            vec![b("Uptime"), b("-1")],
        ] {
            assert!(started_at(&bad, now).is_err(), "{bad:?}");
        }
        assert!(started_at(&[b("Uptime"), b("2000000")], now).is_err());
        // server_id is the last column: MariaDB (read_only, server_id), MySQL 8 (three
        // variables, then server_id); the binary protocol's integers too.
        let who = identity(&[b("0"), Value::UInt(7)], started).unwrap();
        assert_eq!((who.server_id, who.started_at), (7, started));
        let who = identity(&[b("0"), b("0"), b("0"), Value::Int(42)], started).unwrap();
        assert_eq!(who.server_id, 42);
        for bad in [
            vec![],
            vec![b("0"), b("x")],
            vec![b("0"), Value::NULL],
            vec![b("0"), b("4294967296")],
        ] {
            assert!(identity(&bad, started).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn term_sql_and_the_documented_table() {
        assert_eq!(
            read_sql(&table(), "main"),
            "SELECT (SELECT term FROM `primaryd`.`term` WHERE service = 'main' ORDER BY term \
             DESC LIMIT 1), (SELECT server_id FROM `primaryd`.`term` WHERE service = 'main' \
             ORDER BY term DESC LIMIT 1), (SELECT MAX(term) FROM `primaryd`.`term` WHERE \
             service = 'main' AND server_id = @@global.server_id)"
        );
        assert_eq!(
            insert_sql(&table(), "main", 8),
            "INSERT INTO `primaryd`.`term` (service, term, server_id, promoted_at) \
             VALUES ('main', 8, @@global.server_id, NOW(6))"
        );
        assert!(insert_sql(&table(), "a'b\\c", 1).contains("'abc'"));
        let docs = include_str!("../../docs/health.md");
        assert!(
            docs.contains(TERM_TABLE_SQL),
            "docs/health.md lacks the term SQL"
        );
    }

    #[test]
    fn term_rows_from_the_answer() {
        assert_eq!(
            parse_rows(&[Value::NULL, Value::NULL, Value::NULL]),
            Ok(TermRows {
                own: None,
                newest: None
            })
        );
        assert_eq!(
            parse_rows(&[b("8"), b("1"), b("7")]),
            Ok(TermRows {
                own: Some(7),
                newest: Some((8, 1))
            })
        );
        assert_eq!(
            parse_rows(&[Value::UInt(3), Value::UInt(2), Value::NULL]),
            Ok(TermRows {
                own: None,
                newest: Some((3, 2))
            })
        );
        assert!(parse_rows(&[b("8"), Value::NULL, b("7")]).is_err());
        assert!(parse_rows(&[b("8"), b("x"), b("7")]).is_err());
        assert!(parse_rows(&[b("8"), b("1")]).is_err());
        assert!(parse_rows(&[]).is_err());
    }

    #[test]
    fn failures_say_what_to_do() {
        let server = |code| {
            mysql_async::Error::Server(ServerError {
                code,
                message: "m".into(),
                state: "42S02".into(),
            })
        };
        let (r, ok) = failure(server(1146), &table(), "reading");
        assert_eq!(
            r,
            "reading primaryd.term failed: ERROR 1146 (42S02): m \
             (create primaryd.term with the SQL in docs/health.md)"
        );
        assert!(ok, "a server error leaves the connection usable");
        let (r, _) = failure(server(1142), &table(), "reading");
        assert!(
            r.ends_with("(GRANT SELECT, INSERT ON primaryd.term TO the check user)"),
            "{r}"
        );
        let (r, _) = failure(server(1062), &table(), "writing term 8 to");
        assert!(
            r.starts_with("writing term 8 to primaryd.term failed: ERROR 1062"),
            "{r}"
        );
        let (_, ok) = failure(
            mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed),
            &table(),
            "reading",
        );
        assert!(!ok);
    }
}
