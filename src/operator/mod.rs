//! The operator's view into a running daemon: a JSON-lines protocol over a Unix socket,
//! answered from published status (never by waiting on a BGP session or a health check).

pub mod check;
pub mod protocol;
pub mod render;
pub mod server;
pub mod views;
