//! primaryd's dev-only test kit: the helpers the integration tests (`tests/`) and the lab
//! runner (`lab/runner`) share, in one place. Commands ([`cmd`]), waiting with a deadline
//! ([`poll`]), the host's namespaces, processes and files ([`host`]), log timestamps
//! ([`time`]) and the lab runner's labs ([`labrunner`]); with the `fixtures` feature (primaryd's tests), the network-namespace labs that
//! run FRR, BIRD, GoBGP, MariaDB and primaryd ([`fixtures`], re-exported here).
//!
//! A library crate on purpose: each test binary uses its own subset, and unused public items of
//! a library do not warn, so no `allow(dead_code)` is needed anywhere.

pub mod cmd;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod host;
pub mod labrunner;
pub mod poll;
pub mod time;

pub use cmd::{ip, kill_child, run, run_checked, run_ok, signal, try_run, try_run_ok, CmdError};
#[cfg(feature = "fixtures")]
pub use fixtures::*;
pub use host::{
    alive, comm, is_root, mounts_below, netns_list, netns_pids, require_root, start_time, tail,
};
pub use labrunner::{lab_runner, RunnerLab, LAB_STATE_ROOT};
pub use poll::{hold_for, hold_until, poll, wait_for, wait_for_result, wait_until, POLL, STEP};
pub use time::{log_time, parse_rfc3339_ms};
