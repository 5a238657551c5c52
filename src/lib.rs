//! primaryd: announce a MySQL service address over BGP only while the local server is a
//! healthy, writable primary. See docs/architecture.md for the data flow.

pub mod announcer;
pub mod bfd;
pub mod bgp;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod health;
pub mod host;
pub mod metrics;
pub mod operator;
pub mod rlimit;
pub mod safety;
pub mod statefile;
