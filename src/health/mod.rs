//! MySQL/MariaDB health checking, split so the deciding parts are pure and testable:
//!
//! - [`mysql`]: the only code that talks to the server. One persistent connection, one probe
//!   with a deadline, answered as a [`mysql::ProbeResult`]; [`mysql::evaluate`] decides
//!   "writable primary" from what the server answered, without I/O.
//! - [`checker`]: pure rise/fall hysteresis; a lost connection goes down at once.
//! - [`task`]: the tokio task that probes on a timer and reports each transition.

pub mod checker;
pub mod mysql;
pub mod task;
