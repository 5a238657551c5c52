//! What a BFD session shows: published by the engine on a watch channel after every packet
//! (receivers are woken only when the state changes), read by the BGP session, `show peers`
//! and `/metrics`.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::fsm::{Counters, Fsm};
use super::packet::{Diag, SessionState};

#[derive(Debug, Clone, PartialEq)]
pub struct BfdStatus {
    pub peer: IpAddr,
    pub state: SessionState,
    pub remote_state: SessionState,
    pub local_diag: Diag,
    pub remote_diag: Diag,
    /// When the session entered `state`.
    pub since: SystemTime,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// Configured: Desired Min TX, Required Min RX, Detect Mult.
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub detect_mult: u8,
    /// The peer's, from its last packet.
    pub remote_min_tx: Duration,
    pub remote_min_rx: Duration,
    pub remote_detect_mult: u8,
    /// Negotiated: our transmission interval (before jitter) and the detection time.
    pub tx_interval: Option<Duration>,
    pub detection_time: Option<Duration>,
    pub counters: Counters,
    /// Packets from the peer's address that did not decode.
    pub malformed_in: u64,
    pub send_errors: u64,
    /// `keyed-sha1`, `meticulous-keyed-sha1`, or None.
    pub auth: Option<String>,
    pub source_port: u16,
    /// When and why the session last left Up.
    pub last_down: Option<(SystemTime, String)>,
    /// A socket problem, if any.
    pub error: Option<String>,
}

impl BfdStatus {
    pub fn new(peer: IpAddr, fsm: &Fsm, source_port: u16) -> BfdStatus {
        let i = fsm.intervals();
        let mut s = BfdStatus {
            peer,
            state: fsm.state(),
            remote_state: fsm.remote_state(),
            local_diag: fsm.local_diag(),
            remote_diag: fsm.remote_diag(),
            since: SystemTime::now(),
            local_discriminator: fsm.local_discriminator(),
            remote_discriminator: 0,
            desired_min_tx: i.desired_min_tx,
            required_min_rx: i.required_min_rx,
            detect_mult: i.detect_mult,
            remote_min_tx: Duration::ZERO,
            remote_min_rx: Duration::ZERO,
            remote_detect_mult: 0,
            tx_interval: None,
            detection_time: None,
            counters: Counters::default(),
            malformed_in: 0,
            send_errors: 0,
            auth: fsm.auth().map(|k| k.auth_type.name().to_string()),
            source_port,
            last_down: None,
            error: None,
        };
        s.update(fsm);
        s
    }

    /// Refreshes from the machine; true when what clients act on changed (the state, or
    /// whether the peer is down on purpose).
    pub fn update(&mut self, fsm: &Fsm) -> bool {
        let before = (self.state, self.verdict());
        if self.state != fsm.state() {
            if self.state == SessionState::Up {
                self.last_down = Some((SystemTime::now(), fsm.local_diag().to_string()));
            }
            self.state = fsm.state();
            self.since = SystemTime::now();
        }
        let i = fsm.intervals();
        self.remote_state = fsm.remote_state();
        self.local_diag = fsm.local_diag();
        self.remote_diag = fsm.remote_diag();
        self.remote_discriminator = fsm.remote_discriminator();
        self.desired_min_tx = i.desired_min_tx;
        self.required_min_rx = i.required_min_rx;
        self.detect_mult = i.detect_mult;
        self.remote_min_tx = fsm.remote_desired_tx();
        self.remote_min_rx = fsm.remote_min_rx();
        self.remote_detect_mult = fsm.remote_detect_mult();
        self.tx_interval = fsm.tx_interval();
        self.detection_time = fsm.detection_time();
        self.counters = fsm.counters().clone();
        before != (self.state, self.verdict())
    }

    /// What the BGP session makes of it (RFC 5882): up, down on purpose (not a failure), or
    /// down.
    pub fn verdict(&self) -> Verdict {
        match self.state {
            SessionState::Up => Verdict::Up,
            SessionState::Down if self.remote_state == SessionState::AdminDown => {
                Verdict::PeerAdminDown
            }
            _ => Verdict::Down,
        }
    }

    /// Why the path is not usable, for the BGP session's log and last error.
    pub fn down_reason(&self) -> String {
        if let Some(e) = &self.error {
            return format!("BFD {}: {e}", self.state);
        }
        match (self.state, self.local_diag) {
            (SessionState::Down, Diag::None) if self.counters.up_transitions == 0 => {
                "BFD not up yet".to_string()
            }
            (s, d) => format!("BFD {s}: {d}"),
        }
    }
}

/// The BFD session's meaning for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Up,
    /// The peer signalled AdminDown: it stopped BFD on purpose, which RFC 5882 §3.2 says is not
    /// a failure of the path.
    PeerAdminDown,
    Down,
}

impl Verdict {
    /// Whether the BGP session may run.
    pub fn allows_session(self) -> bool {
        self != Verdict::Down
    }
}
