//! What goes into the session machine and what comes out of it: its configuration, states,
//! timers, inputs and outputs, and what a session settled and counted.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use crate::bgp::export::Export;
use crate::bgp::message::{Capabilities, Family, Message, Notification, Open};
use crate::bgp::reason::{StateReason, Warning};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsmConfig {
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    pub remote_asn: u32,
    /// Hold time we offer, seconds (0 or >= 3).
    pub hold_time: u16,
    /// Never connect; wait for the peer.
    pub passive: bool,
    /// First reconnect delay (the idle hold after an error); doubles after each failure up to
    /// `connect_retry_max`, and returns to the minimum once a session stayed up `stable_after`.
    pub connect_retry_min: Duration,
    pub connect_retry_max: Duration,
    pub stable_after: Duration,
    /// How long a TCP connect may take before it is abandoned and retried.
    pub connect_timeout: Duration,
    pub max_prefixes: u32,
    pub max_prefixes_restart: Duration,
    /// Per-peer next hops (else the session's own addresses are used).
    pub next_hop_ipv4: Option<Ipv4Addr>,
    pub next_hop_ipv6: Option<Ipv6Addr>,
    /// Seed of the timer jitter (RFC 4271 §10); any value, fixed in tests.
    pub jitter_seed: u64,
    /// How long a new session waits for the peer's End-of-RIB before it may announce anyway.
    pub initial_routes_wait: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not connected; an idle-hold (ConnectRetry) timer may be running, or stopped for good.
    Idle,
    /// TCP connect in progress.
    Connect,
    /// Passive: waiting for the peer to connect.
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Connect timeout in Connect; idle hold before the next attempt in Idle.
    ConnectRetry,
    Hold,
    Keepalive,
    /// Established long enough to forget earlier failures (resets the backoff).
    Stable,
    /// The wait for the peer's End-of-RIB.
    InitialRoutes,
}

impl Timer {
    pub const ALL: [Timer; 5] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::Stable,
        Timer::InitialRoutes,
    ];
}

/// Addresses of the interface a session runs over, for next hops of the other family and the
/// IPv6 global next hop of a link-local session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceAddresses {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6_global: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Administrative start: connect now (or wait for the peer if passive).
    Start,
    /// Administrative stop: withdraw, send Cease/Administrative Shutdown with `message`, close,
    /// and stay down.
    Stop {
        message: String,
    },
    TcpConnected {
        local: IpAddr,
        interface: InterfaceAddresses,
    },
    TcpFailed {
        error: String,
    },
    /// The peer closed the connection, or reading/writing it failed.
    TcpClosed {
        error: String,
    },
    /// The peer connected to us and sent this OPEN (not answered yet).
    Incoming {
        local: IpAddr,
        interface: InterfaceAddresses,
        open: Open,
    },
    Received(Message, SystemTime),
    /// The codec rejected what the peer sent; the notification says why.
    Malformed(Notification),
    /// The peer connected to us, but its first message was not a usable OPEN: that
    /// connection is answered with `notification` and closed; the session is not affected.
    /// `malformed`: the codec rejected the message (counted like `Malformed`).
    IncomingInvalid {
        notification: Notification,
        reason: String,
        malformed: bool,
    },
    TimerExpired(Timer),
    /// What the daemon asks of the session changed.
    Routes(Export),
    /// BFD says the path to the peer is down (or not up yet): end the session at once with
    /// Cease/BFD Down (RFC 9384), and start none until `BfdUp` (RFC 5882 §4.3).
    BfdDown {
        reason: String,
    },
    /// BFD says the path is usable again.
    BfdUp,
}

// Outputs live for one `process` call; boxing the messages would cost more than it saves.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer.
    Connect,
    /// Send on the session's connection.
    Send(Message),
    /// Flush what was sent, then close the session's connection (or abandon the connect).
    Close,
    /// Make the pending incoming connection the session's connection (after `Close` of the
    /// old one, if any).
    AdoptIncoming,
    /// Send this NOTIFICATION on the pending incoming connection and close it.
    RejectIncoming(Notification),
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    StateChanged {
        from: State,
        to: State,
        reason: StateReason,
    },
    /// Something the operator should see in the log (received-route problems).
    Warn(Warning),
}

/// What the OPEN exchange settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub hold_time: u16,
    pub keepalive: u16,
    pub four_octet_asn: bool,
    /// Families both sides advertised, in which routes flow.
    pub families: Vec<Family>,
    pub route_refresh: bool,
    /// Families in which the peer sends path identifiers (RFC 7911: it can send, we receive).
    pub add_path_rx: Vec<Family>,
    pub peer_router_id: Ipv4Addr,
    pub peer_capabilities: Capabilities,
    pub local_address: IpAddr,
    pub interface: InterfaceAddresses,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub messages_in: u64,
    pub messages_out: u64,
    pub updates_in: u64,
    pub updates_out: u64,
    /// Malformed messages from the peer (each ended the session with a NOTIFICATION).
    pub malformed_in: u64,
    /// UPDATE errors handled without a reset (RFC 7606) and routes ignored on import.
    pub update_errors_in: u64,
    pub notifications_in: u64,
    pub notifications_out: u64,
    pub established_transitions: u64,
    pub route_refresh_in: u64,
}
