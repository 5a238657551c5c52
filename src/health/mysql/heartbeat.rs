//! The write probe's SQL: the heartbeat table docs/health.md gives, and the upsert and
//! read-back a check runs. Pure.

use crate::config::WriteProbeTable;

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
pub(super) fn heartbeat_sql(t: &WriteProbeTable, service: &str, seq: u64) -> (String, String) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let docs = include_str!("../../../docs/health.md");
        assert!(
            docs.contains(HEARTBEAT_TABLE_SQL),
            "docs/health.md lacks the heartbeat SQL"
        );
    }
}
