//! The checks against MySQL/MariaDB, split at the pure/I-O line:
//!
//! - pure: [`flavour`] (which server, from `SELECT VERSION()`), [`answers`] (the variables
//!   and replication streams read from result sets), [`evaluate`] (is it what the role
//!   needs: typed [`Problem`]s), [`classify`] (what a driver or server error means),
//!   [`heartbeat`] (the write probe's SQL), [`result`] (the [`ProbeResult`] of a check);
//! - I/O: [`probe`], the only code that talks to the server: one probe, bounded by a
//!   deadline, over one persistent connection.
//!
//! So the rules are unit-tested on recorded result sets without a server.
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

pub mod answers;
pub mod classify;
pub mod evaluate;
pub mod flavour;
pub mod heartbeat;
pub mod probe;
pub mod result;
#[cfg(test)]
mod test_data;

pub use answers::{AnswerError, ReplicationThreads, ServerVars};
pub use evaluate::{
    evaluate, evaluate_replica, Healthy, Problem, Problems, Stream, Threads, Variable,
};
pub use flavour::Flavour;
pub use heartbeat::HEARTBEAT_TABLE_SQL;
pub use probe::{MysqlProbe, CONNECT_BACKOFF_MAX, CONNECT_BACKOFF_MIN};
pub use result::{FailureKind, ProbeResult};
