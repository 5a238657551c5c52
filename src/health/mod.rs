//! MySQL/MariaDB health checking, split so the deciding parts are pure and testable:
//!
//! - [`mysql`]: the checks. [`mysql::probe`] is the only code that runs them (one persistent
//!   connection, one probe with a deadline, answered as a [`mysql::ProbeResult`]); the rest
//!   is pure: [`mysql::evaluate()`] (primary) and [`mysql::evaluate_replica`] decide from
//!   what the server answered, as typed [`mysql::Problem`]s.
//! - [`watch_connection`]: a second connection parked in `SELECT SLEEP(...)`, whose end
//!   triggers a check at once (fail fast between checks; `watch_connection` in the config).
//! - [`term`]: pure: the promotion term rule and the [`term::ServerFacts`] a check learns
//!   (server_id, start time, term); [`facts`] is its SQL (identity, term table).
//! - [`fence`]: `SET GLOBAL read_only=1` on a losing server, on the daemon's request.
//! - [`deadline`]: pure: how long a check may take (from the last healthy answer).
//! - [`checker`]: pure rise/fall hysteresis; a lost connection goes down at once.
//! - [`state`]: pure: the checker plus drain, disable file, service addresses and flap
//!   damping, and the [`state::ServiceStatus`] snapshot the CLI shows.
//! - [`address`]: are the service addresses configured on this host (and `manage_addresses`).
//! - [`drain`]: drains persisted in `state_dir`.
//! - [`backoff`]: pure reconnect backoff.
//! - [`task`]: the tokio task per service: checks on a timer and when the watch ends.
//! - [`services`]: starts the tasks and holds them; the drain/undrain/snapshot/fence API for
//!   the control socket and the daemon.
//! - [`on_demand`]: `primaryctl check`: checks run at once on request.

pub mod address;
pub mod backoff;
pub mod checker;
pub mod deadline;
pub mod drain;
pub mod facts;
pub mod fence;
pub mod mysql;
pub mod on_demand;
pub mod services;
pub mod state;
pub mod task;
pub mod term;
#[cfg(test)]
pub(crate) mod test_servers;
pub mod watch_connection;
