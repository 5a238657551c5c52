//! The BGP speaker: message types, wire codec (ours; zettabgp writes what we send), the pure
//! session state machine, and the tokio driver that runs it on a socket.

pub mod codec;
pub mod export;
pub mod fsm;
pub mod import;
pub mod listener;
pub mod message;
pub mod reason;
pub mod rib_in;
pub mod session;
pub mod socket;
pub mod status;
