//! BFD (RFC 5880), single hop over UDP (RFC 5881), one session per BGP peer with `bfd = true`:
//! the packet format, SHA1 authentication, the pure session state machine, and the engine
//! that runs every session on a thread of its own.

pub mod auth;
pub mod config;
pub mod engine;
pub mod fsm;
pub mod metrics;
pub mod packet;
pub mod socket;
pub mod status;
pub mod view;
