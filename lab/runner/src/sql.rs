//! SQL on a DB node, as root over its socket with the `mariadb` client inside the node (as an
//! operator or orchestrator's hooks would), each call bounded in time.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::lab::Lab;

/// Runs SQL on `node`; rows as column -> value maps (NULL reads as "NULL").
pub fn query(
    lab: &Lab,
    node: &str,
    sql: &str,
    timeout_s: u32,
) -> Result<Vec<BTreeMap<String, String>>> {
    let out = lab.node_run(
        node,
        &[
            "timeout",
            &timeout_s.to_string(),
            "mariadb",
            "--connect-timeout=2",
            "--batch",
            "-e",
            sql,
        ],
    )?;
    let mut lines = out.lines();
    let Some(header) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols: Vec<&str> = header.split('\t').collect();
    Ok(lines
        .map(|l| {
            cols.iter()
                .zip(l.split('\t'))
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect()
        })
        .collect())
}

pub fn exec(lab: &Lab, node: &str, sql: &str) -> Result<()> {
    query(lab, node, sql, 10).map(|_| ())
}

/// One value.
pub fn value(lab: &Lab, node: &str, sql: &str) -> Result<String> {
    let rows = query(lab, node, sql, 5)?;
    match rows.first().and_then(|r| r.values().next()) {
        Some(v) => Ok(v.clone()),
        None => bail!("{node}: {sql:?} returned nothing"),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Channel {
    pub source: String,
    pub io_running: String,
    pub sql_running: String,
    pub gtid_io_pos: String,
    pub last_error: String,
}

pub fn replication(lab: &Lab, node: &str) -> Result<Vec<Channel>> {
    Ok(query(lab, node, "SHOW ALL SLAVES STATUS", 5)?
        .into_iter()
        .map(|r| {
            let g = |k: &str| r.get(k).cloned().unwrap_or_default();
            let err = [g("Last_IO_Error"), g("Last_SQL_Error")]
                .into_iter()
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            Channel {
                source: g("Master_Host"),
                io_running: g("Slave_IO_Running"),
                sql_running: g("Slave_SQL_Running"),
                gtid_io_pos: g("Gtid_IO_Pos"),
                last_error: err,
            }
        })
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct DbState {
    pub server_id: u32,
    pub read_only: bool,
    /// "SOURCE io=Yes sql=Yes", or None for a server that replicates from nobody.
    pub replication: Option<String>,
    pub gtid_binlog_pos: String,
}

pub fn db_state(lab: &Lab, node: &str) -> Result<DbState> {
    let rows = query(
        lab,
        node,
        "SELECT @@server_id AS id, @@read_only AS ro, @@gtid_binlog_pos AS pos",
        5,
    )?;
    let r = rows.first().cloned().unwrap_or_default();
    let repl = replication(lab, node)?;
    Ok(DbState {
        server_id: r.get("id").and_then(|v| v.parse().ok()).unwrap_or(0),
        read_only: r.get("ro").map(String::as_str) == Some("1"),
        replication: repl.first().map(|c| {
            format!(
                "{} io={} sql={}{}",
                c.source,
                c.io_running,
                c.sql_running,
                if c.last_error.is_empty() {
                    String::new()
                } else {
                    format!(" error: {}", c.last_error)
                }
            )
        }),
        gtid_binlog_pos: r.get("pos").cloned().unwrap_or_default(),
    })
}

/// The node's replication address: its loopback in 198.19.0.0/24.
pub fn loopback(lab: &Lab, node: &str) -> Result<String> {
    let out = lab.node_run(node, &["ip", "-4", "-o", "addr", "show", "dev", "lo"])?;
    for l in out.lines() {
        if let Some(a) = l.split_whitespace().nth(3) {
            let a = a.split('/').next().unwrap_or("");
            if a.starts_with("198.19.0.") {
                return Ok(a.to_string());
            }
        }
    }
    bail!("{node} has no 198.19.0.0/24 address on lo")
}

/// Points `node` at `source` with GTID (slave_pos) and starts replication.
pub fn replicate_from(lab: &Lab, node: &str, source_addr: &str) -> Result<()> {
    exec(
        lab,
        node,
        &format!(
            "STOP SLAVE; CHANGE MASTER TO MASTER_HOST='{source_addr}', MASTER_USER='repl', \
             MASTER_PASSWORD='lab-repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; \
             START SLAVE"
        ),
    )
}
