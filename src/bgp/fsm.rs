//! The BGP session state machine (RFC 4271 §8), pure: `process(input) -> outputs`. It owns no
//! socket and no clock: connecting, sending, closing and timers are outputs the driver
//! (`session.rs`) carries out, and timer expiry comes back as an input. Every protocol rule is
//! therefore unit-tested without sockets or sleeps. Randomness (timer jitter) comes from a
//! seeded generator, so tests are deterministic too.
//!
//! One machine per peer. It owns the Adj-RIB-Out (what this session advertised) so that a
//! session that comes up announces exactly the current desired routes and one that goes down
//! forgets them; what is advertised, with which attributes, is `export.rs`. Import (the
//! Adj-RIB-In and the sightings of our own service prefixes) is `import.rs`.
//!
//! Initial routes: a new session announces nothing until the peer's End-of-RIB for every
//! negotiated family has arrived (or `initial_routes_wait` passed) *and* the daemon has
//! released the session, having read the routes received so far: a host must know who else
//! announces its prefixes before it announces them itself.
//!
//! Connection collisions (RFC 4271 §6.8): the driver reads the peer's OPEN on an incoming
//! connection before handing it over as `Input::Incoming`; the machine then adopts it, rejects
//! it, or replaces its own connection with it, by comparing BGP identifiers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use ipnetwork::IpNetwork;

pub use super::export::Export;
use super::export::{AdjRibOut, ExportPolicy};
use super::import::{Import, ImportPolicy};
use super::message::{
    AddPath, Capabilities, CeaseSubcode, Family, GracefulRestart, Message, Notification,
    NotificationKind, Open, PathAttributes, Update,
};
use super::reason::{DownReason, Notified, OpenError, StateReason, Warning};
use super::rib_in::AdjRibIn;
use crate::announcer::DesiredRoutes;

/// Hold timer while waiting for the peer's OPEN. RFC 4271 §8 suggests 4 minutes; a ToR
/// answers in milliseconds, and a connection whose packets are being dropped (a GTSM or MD5
/// mismatch on one side) would otherwise hold the session down that long.
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(10);

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

pub struct Fsm {
    cfg: FsmConfig,
    state: State,
    stopped: bool,
    retry_delay: Duration,
    rng: u64,
    local: Option<(IpAddr, InterfaceAddresses)>,
    negotiated: Option<Negotiated>,
    desired: DesiredRoutes,
    released: Option<u64>,
    rib_out: AdjRibOut,
    import: Import,
    /// Families whose End-of-RIB has not arrived yet in this session.
    initial_pending: BTreeSet<Family>,
    /// The peer's initial routes are in (End-of-RIB for every family, or the wait ended).
    initial_done: bool,
    counters: Counters,
    last_error: Option<DownReason>,
    /// Set when the last session ended on a NOTIFICATION we sent or received, for the CLI.
    last_notification: Option<Notified>,
    /// In Idle after a session failed (not merely a connect attempt): the peer is damped, so
    /// its connections are refused too until the idle hold ends.
    damped: bool,
    /// BFD reports the path down: no session (see `Input::BfdDown`).
    bfd_down: bool,
    /// A connect (or wait for the peer) was held back by BFD: `BfdUp` starts it.
    held_by_bfd: bool,
}

impl Fsm {
    pub fn new(cfg: FsmConfig) -> Self {
        let retry_delay = cfg.connect_retry_min;
        // xorshift needs a non-zero state.
        let rng = cfg.jitter_seed | 1;
        Fsm {
            cfg,
            state: State::Idle,
            stopped: true,
            retry_delay,
            rng,
            local: None,
            negotiated: None,
            desired: DesiredRoutes::new(),
            released: None,
            rib_out: AdjRibOut::default(),
            import: Import::default(),
            initial_pending: BTreeSet::new(),
            initial_done: false,
            counters: Counters::default(),
            last_error: None,
            last_notification: None,
            damped: false,
            bfd_down: false,
            held_by_bfd: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn config(&self) -> &FsmConfig {
        &self.cfg
    }
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn rib_out(&self) -> &BTreeMap<IpNetwork, PathAttributes> {
        self.rib_out.routes()
    }
    pub fn rib_in(&self) -> &AdjRibIn {
        self.import.rib_in()
    }

    /// Every path the peer sent for a watched prefix, loops included.
    pub fn sightings(&self) -> &AdjRibIn {
        self.import.sightings()
    }

    pub fn sightings_version(&self) -> u64 {
        self.import.sightings_version()
    }

    /// Established, and the peer's initial routes are in.
    pub fn initial_routes_done(&self) -> bool {
        self.state == State::Established && self.initial_done
    }
    /// Why the last session ended (or the last attempt failed).
    pub fn last_error(&self) -> Option<&DownReason> {
        self.last_error.as_ref()
    }
    /// The NOTIFICATION that ended the last session, and who sent it.
    pub fn last_notification(&self) -> Option<&Notified> {
        self.last_notification.as_ref()
    }

    /// The OPEN we send: our real ASN (the codec puts AS_TRANS in "My AS" when it needs 4
    /// bytes), the 4-octet-ASN capability, both unicast families and route refresh.
    pub fn our_open(&self) -> Open {
        Open {
            asn: self.cfg.local_asn,
            hold_time: self.cfg.hold_time,
            router_id: self.cfg.router_id,
            capabilities: Capabilities {
                four_octet_asn: Some(self.cfg.local_asn),
                multiprotocol: Family::ALL.iter().map(|f| f.afi_safi()).collect(),
                route_refresh: true,
                // Receive every path a router has for our prefixes (RFC 7911), not only its
                // best one: how a host sees every other announcer of its service prefixes.
                add_path: Family::ALL
                    .iter()
                    .map(|f| {
                        let (afi, safi) = f.afi_safi();
                        AddPath {
                            afi,
                            safi,
                            send_receive: AddPath::RECEIVE,
                        }
                    })
                    .collect(),
                // Graceful restart with no families and restart time 0: we understand
                // End-of-RIB (so the peer sends it), and the peer keeps none of our routes
                // when the session drops.
                graceful_restart: Some(GracefulRestart::default()),
                other: Vec::new(),
            },
        }
    }

    fn ibgp(&self) -> bool {
        self.cfg.local_asn == self.cfg.remote_asn
    }

    pub fn process(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.start(&mut out),
            Input::Stop { message } => self.stop(&message, &mut out),
            Input::TcpConnected { local, interface } => {
                self.tcp_connected(local, interface, &mut out)
            }
            Input::TcpFailed { error } => {
                if self.state == State::Connect {
                    self.fail(DownReason::ConnectFailed(error), &mut out);
                }
            }
            Input::TcpClosed { error } => {
                if self.is_connected() {
                    self.fail(DownReason::Closed(error), &mut out);
                }
            }
            Input::Incoming {
                local,
                interface,
                open,
            } => self.incoming(local, interface, open, &mut out),
            Input::Received(msg, at) => self.received(msg, at, &mut out),
            Input::Malformed(n) => {
                if self.is_connected() {
                    self.counters.malformed_in += 1;
                    self.fail(DownReason::Malformed(n), &mut out);
                }
            }
            Input::IncomingInvalid {
                notification,
                reason,
                malformed,
            } => {
                if malformed {
                    self.counters.malformed_in += 1;
                }
                self.last_error = Some(DownReason::Incoming(reason));
                if self.state != State::Established {
                    // A passive peer's session attempt ended on it: show it like one.
                    self.last_notification = Some(Notified::sent(notification.clone()));
                }
                out.push(Output::RejectIncoming(notification));
            }
            Input::TimerExpired(t) => self.timer_expired(t, &mut out),
            Input::Routes(export) => self.export_changed(export, &mut out),
            Input::BfdDown { reason } => self.bfd_down(reason, &mut out),
            Input::BfdUp => self.bfd_up(&mut out),
        }
        out
    }

    fn is_connected(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    fn transition(&mut self, to: State, reason: StateReason, out: &mut Vec<Output>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        if to == State::Established {
            self.counters.established_transitions += 1;
            out.push(Output::StartTimer(Timer::Stable, self.cfg.stable_after));
        } else if from == State::Established {
            out.push(Output::StopTimer(Timer::Stable));
        }
        out.push(Output::StateChanged { from, to, reason });
    }

    fn send(&mut self, msg: Message, out: &mut Vec<Output>) {
        self.counters.messages_out += 1;
        match &msg {
            Message::Update(_) => self.counters.updates_out += 1,
            Message::Notification(n) => {
                self.counters.notifications_out += 1;
                self.last_notification = Some(Notified::sent(n.clone()));
            }
            _ => {}
        }
        out.push(Output::Send(msg));
    }

    /// A uniformly random factor in [0.75, 1.0] (RFC 4271 §10 jitter), from xorshift64.
    fn jitter(&mut self, d: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.75 + 0.25 * unit)
    }

    fn start(&mut self, out: &mut Vec<Output>) {
        if !self.stopped {
            return;
        }
        self.stopped = false;
        self.connect_or_wait(out);
    }

    fn connect_or_wait(&mut self, out: &mut Vec<Output>) {
        self.damped = false;
        if self.bfd_down {
            self.held_by_bfd = true;
            return;
        }
        if self.cfg.passive {
            self.transition(State::Active, StateReason::WaitingForPeer, out);
            return;
        }
        self.transition(State::Connect, StateReason::Connecting, out);
        out.push(Output::Connect);
        out.push(Output::StartTimer(
            Timer::ConnectRetry,
            self.cfg.connect_timeout,
        ));
    }

    fn stop(&mut self, message: &str, out: &mut Vec<Output>) {
        self.stopped = true;
        match self.state {
            State::Idle | State::Active => out.push(Output::StopTimer(Timer::ConnectRetry)),
            State::Connect => {
                out.push(Output::Close);
                out.push(Output::StopTimer(Timer::ConnectRetry));
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                // Withdraw explicitly before the Cease: the peer drops the routes either way,
                // but this way it does not depend on how it handles the close.
                let withdraw = self.rib_out.withdraw_all();
                if let Some(update) = withdraw.filter(|_| self.state == State::Established) {
                    self.send(Message::Update(update), out);
                }
                self.send(
                    Message::Notification(Notification::admin_shutdown(message)),
                    out,
                );
                out.push(Output::Close);
                self.stop_session_timers(out);
            }
        }
        self.reset_session();
        let reason = StateReason::AdminStop(message.to_string());
        self.transition(State::Idle, reason, out);
    }

    fn stop_session_timers(&self, out: &mut Vec<Output>) {
        out.push(Output::StopTimer(Timer::Hold));
        out.push(Output::StopTimer(Timer::Keepalive));
    }

    fn reset_session(&mut self) {
        self.negotiated = None;
        self.local = None;
        self.rib_out.clear();
        self.import.clear();
        self.initial_pending.clear();
        self.initial_done = false;
    }

    fn export_changed(&mut self, export: Export, out: &mut Vec<Output>) {
        self.desired = export.routes;
        self.released = export.released;
        let added = self.import.set_watched(export.watched);
        if self.state != State::Established {
            return;
        }
        if added {
            // Paths of newly watched prefixes that carry our ASN were dropped as loops: ask
            // for them again.
            let families = self.negotiated.as_ref().filter(|n| n.route_refresh);
            for f in families.map(|n| n.families.clone()).unwrap_or_default() {
                let (afi, safi) = f.afi_safi();
                self.send(Message::RouteRefresh { afi, safi }, out);
            }
        }
        self.sync_routes(out);
    }

    /// Starts waiting for the peer's initial routes (entering Established).
    fn await_initial_routes(&mut self, out: &mut Vec<Output>) {
        self.initial_pending = self
            .negotiated
            .as_ref()
            .map(|n| n.families.iter().copied().collect())
            .unwrap_or_default();
        self.initial_done = self.initial_pending.is_empty();
        if !self.initial_done {
            out.push(Output::StartTimer(
                Timer::InitialRoutes,
                self.cfg.initial_routes_wait,
            ));
        }
    }

    /// The peer's End-of-RIB for `family` arrived.
    fn end_of_rib(&mut self, family: Family, out: &mut Vec<Output>) {
        if self.initial_pending.remove(&family) && self.initial_pending.is_empty() {
            self.initial_done = true;
            out.push(Output::StopTimer(Timer::InitialRoutes));
            self.sync_routes(out);
        }
    }

    /// Announcing is allowed once the peer's initial routes are in and the daemon released
    /// this session.
    fn may_announce(&self) -> bool {
        self.initial_done && self.released == Some(self.counters.established_transitions)
    }

    /// Ends the session after an error: tells the peer why when the reason calls for a
    /// NOTIFICATION, closes, and holds before the next attempt, the hold doubling on each
    /// consecutive failure (jittered).
    fn fail(&mut self, reason: DownReason, out: &mut Vec<Output>) {
        let delay = self.jitter(self.retry_delay);
        self.retry_delay = (self.retry_delay * 2).min(self.cfg.connect_retry_max);
        self.end_session(reason, delay, true, out);
    }

    /// Ends the session and holds for exactly `idle_hold` (already jittered if it should be).
    fn end_session(
        &mut self,
        reason: DownReason,
        idle_hold: Duration,
        damp: bool,
        out: &mut Vec<Output>,
    ) {
        // A failed session (not a failed connect) damps the peer: its own connections are
        // refused during the hold too, or a flapping peer would just come back in.
        self.damped = damp && self.is_connected();
        if let Some(n) = reason.notification() {
            self.send(Message::Notification(n), out);
        }
        out.push(Output::Close);
        self.stop_session_timers(out);
        self.reset_session();
        self.last_error = Some(reason.clone());
        out.push(Output::StartTimer(Timer::ConnectRetry, idle_hold));
        let reason = StateReason::Down {
            reason,
            next_attempt: Some(idle_hold),
        };
        self.transition(State::Idle, reason, out);
    }

    fn tcp_connected(&mut self, local: IpAddr, iface: InterfaceAddresses, out: &mut Vec<Output>) {
        if self.state != State::Connect {
            // A connect that completed after we gave up on it or were stopped.
            out.push(Output::Close);
            return;
        }
        out.push(Output::StopTimer(Timer::ConnectRetry));
        self.open_sent(local, iface, StateReason::OpenSent, out);
    }

    fn open_sent(
        &mut self,
        local: IpAddr,
        iface: InterfaceAddresses,
        reason: StateReason,
        out: &mut Vec<Output>,
    ) {
        self.local = Some((local, iface));
        let open = self.our_open();
        self.send(Message::Open(open), out);
        out.push(Output::StartTimer(Timer::Hold, OPEN_HOLD_TIME));
        self.transition(State::OpenSent, reason, out);
    }

    /// The peer connected to us (RFC 4271 §6.8 when we have a connection of our own).
    fn incoming(
        &mut self,
        local: IpAddr,
        iface: InterfaceAddresses,
        open: Open,
        out: &mut Vec<Output>,
    ) {
        let cease = |sub| Notification::of(NotificationKind::Cease(sub), Vec::new());
        let collision = || cease(CeaseSubcode::ConnectionCollisionResolution);
        match self.state {
            _ if self.stopped || self.bfd_down => {
                out.push(Output::RejectIncoming(cease(
                    CeaseSubcode::ConnectionRejected,
                )));
                return;
            }
            State::Idle if self.damped => {
                // No new session before the idle hold after a failed session ends (RFC 4271
                // §8.2.2: Idle refuses connections). After a mere failed connect the peer's
                // own connection is welcome: it is how a restarted router comes back fastest.
                out.push(Output::RejectIncoming(cease(
                    CeaseSubcode::ConnectionRejected,
                )));
                return;
            }
            State::Established => {
                out.push(Output::RejectIncoming(collision()));
                return;
            }
            State::OpenSent | State::OpenConfirm => {
                // The connection opened by the speaker with the higher BGP identifier stays.
                if u32::from(self.cfg.router_id) > u32::from(open.router_id) {
                    out.push(Output::RejectIncoming(collision()));
                    return;
                }
                self.send(Message::Notification(collision()), out);
                out.push(Output::Close);
                self.stop_session_timers(out);
                self.reset_session();
            }
            State::Idle | State::Connect | State::Active => {
                if self.state == State::Connect {
                    out.push(Output::Close);
                }
            }
        }
        out.push(Output::StopTimer(Timer::ConnectRetry));
        out.push(Output::AdoptIncoming);
        self.open_sent(local, iface, StateReason::PeerConnected, out);
        self.open_received(open, out);
    }

    /// BFD declared the path down: the session ends now, whatever it was doing.
    fn bfd_down(&mut self, reason: String, out: &mut Vec<Output>) {
        self.bfd_down = true;
        if self.stopped {
            return;
        }
        let reason = DownReason::Bfd(reason);
        match self.state {
            State::OpenSent | State::OpenConfirm | State::Established => {
                if let Some(n) = reason.notification() {
                    self.send(Message::Notification(n), out);
                }
                out.push(Output::Close);
                self.stop_session_timers(out);
                self.reset_session();
                self.last_error = Some(reason.clone());
            }
            State::Connect => {
                out.push(Output::Close);
                out.push(Output::StopTimer(Timer::ConnectRetry));
            }
            // An idle hold still running ends in `connect_or_wait`, which holds.
            State::Idle => return,
            State::Active => {}
        }
        self.held_by_bfd = true;
        let reason = StateReason::Down {
            reason,
            next_attempt: None,
        };
        self.transition(State::Idle, reason, out);
    }

    fn bfd_up(&mut self, out: &mut Vec<Output>) {
        self.bfd_down = false;
        if self.held_by_bfd && !self.stopped && self.state == State::Idle {
            self.held_by_bfd = false;
            self.connect_or_wait(out);
        }
    }

    fn timer_expired(&mut self, timer: Timer, out: &mut Vec<Output>) {
        match (timer, self.state) {
            (Timer::ConnectRetry, State::Idle) if !self.stopped => self.connect_or_wait(out),
            (Timer::ConnectRetry, State::Connect) => {
                let timeout = self.cfg.connect_timeout;
                self.fail(DownReason::ConnectTimedOut(timeout), out);
            }
            (Timer::Hold, s) if self.is_connected() => {
                self.fail(DownReason::HoldTimerExpired(s), out);
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                self.send(Message::Keepalive, out);
                if let Some(n) = &self.negotiated {
                    let every = Duration::from_secs(n.keepalive.into());
                    out.push(Output::StartTimer(Timer::Keepalive, every));
                }
            }
            (Timer::Stable, State::Established) => {
                self.retry_delay = self.cfg.connect_retry_min;
            }
            (Timer::InitialRoutes, State::Established) if !self.initial_done => {
                out.push(Output::Warn(Warning::NoEndOfRib {
                    missing: std::mem::take(&mut self.initial_pending)
                        .into_iter()
                        .collect(),
                    waited: self.cfg.initial_routes_wait,
                }));
                self.initial_done = true;
                self.sync_routes(out);
            }
            // A timer the driver fired after the state moved on: nothing to do.
            _ => {}
        }
    }

    fn restart_hold_timer(&self, out: &mut Vec<Output>) {
        if let Some(n) = &self.negotiated {
            if n.hold_time > 0 {
                let hold = Duration::from_secs(n.hold_time.into());
                out.push(Output::StartTimer(Timer::Hold, hold));
            }
        }
    }

    fn received(&mut self, msg: Message, at: SystemTime, out: &mut Vec<Output>) {
        if !self.is_connected() {
            return;
        }
        self.counters.messages_in += 1;
        if let Message::Notification(n) = &msg {
            self.counters.notifications_in += 1;
            self.last_notification = Some(Notified::received(n.clone()));
            let collision = NotificationKind::Cease(CeaseSubcode::ConnectionCollisionResolution);
            let reason = DownReason::NotificationReceived(n.clone());
            if n.kind() == Some(collision) {
                // The peer kept its other connection (RFC 4271 §6.8): nothing failed, so no
                // damping; its connection is taken when it arrives.
                let delay = self.jitter(self.cfg.connect_retry_min);
                self.end_session(reason, delay, false, out);
            } else {
                self.fail(reason, out);
            }
            return;
        }
        match (self.state, msg) {
            (State::OpenSent, Message::Open(open)) => self.open_received(open, out),
            (State::OpenConfirm, Message::Keepalive) => {
                self.restart_hold_timer(out);
                self.transition(State::Established, StateReason::KeepaliveReceived, out);
                self.await_initial_routes(out);
                self.sync_routes(out);
            }
            (State::Established, Message::Keepalive) => self.restart_hold_timer(out),
            (State::Established, Message::Update(u)) => {
                self.counters.updates_in += 1;
                self.restart_hold_timer(out);
                self.update_received(u, at, out);
            }
            (State::Established, Message::RouteRefresh { afi, safi }) => {
                self.restart_hold_timer(out);
                self.route_refresh_received(afi, safi, out);
            }
            (state, msg) => {
                let message = msg.kind();
                self.fail(DownReason::Unexpected { message, state }, out);
            }
        }
    }

    /// The peer's OPEN (RFC 4271 §6.2 checks), then what both sides settled.
    fn open_received(&mut self, open: Open, out: &mut Vec<Output>) {
        if let Err(e) = self.check_open(&open) {
            return self.fail(e.into(), out);
        }
        let Some((local_address, interface)) = self.local.clone() else {
            // open_sent always sets it first; treat a gap as a bug, not a panic.
            return self.fail(DownReason::NoLocalAddress, out);
        };
        let four_octet_asn = open.capabilities.four_octet_asn.is_some();
        let hold_time = self.cfg.hold_time.min(open.hold_time);
        let keepalive = if hold_time == 0 {
            0
        } else {
            (hold_time / 3).max(1)
        };
        let ours = self.our_open().capabilities;
        let families: Vec<Family> = Family::ALL
            .into_iter()
            .filter(|f| ours.supports(*f) && open.capabilities.supports(*f))
            .collect();
        if families.is_empty() {
            out.push(Output::Warn(Warning::NoFamilies));
        }
        let add_path_rx = families
            .iter()
            .copied()
            .filter(|f| open.capabilities.add_path(*f, AddPath::SEND))
            .collect();
        self.negotiated = Some(Negotiated {
            hold_time,
            keepalive,
            four_octet_asn,
            families,
            route_refresh: open.capabilities.route_refresh,
            add_path_rx,
            peer_router_id: open.router_id,
            peer_capabilities: open.capabilities,
            local_address,
            interface,
        });
        self.send(Message::Keepalive, out);
        if hold_time > 0 {
            out.push(Output::StartTimer(
                Timer::Keepalive,
                Duration::from_secs(keepalive.into()),
            ));
            self.restart_hold_timer(out);
        } else {
            // Hold time 0: no keepalives and no hold timer (RFC 4271 §4.4).
            self.stop_session_timers(out);
        }
        self.transition(
            State::OpenConfirm,
            StateReason::OpenReceived { hold_time },
            out,
        );
    }

    fn check_open(&self, open: &Open) -> Result<(), OpenError> {
        if open.asn != self.cfg.remote_asn {
            return Err(OpenError::BadPeerAs {
                sent: open.asn,
                configured: self.cfg.remote_asn,
            });
        }
        if self.ibgp() && open.router_id == self.cfg.router_id {
            return Err(OpenError::OurRouterId(open.router_id));
        }
        if open.hold_time == 1 || open.hold_time == 2 {
            return Err(OpenError::HoldTime(open.hold_time));
        }
        let four_octet_asn = open.capabilities.four_octet_asn.is_some();
        if !four_octet_asn && self.cfg.local_asn > u32::from(u16::MAX) {
            // RFC 6793's AS_TRANS/AS4_PATH handling for old speakers is not implemented:
            // refuse clearly rather than send a path the peer would misread.
            return Err(OpenError::NoFourOctetAsn(self.cfg.local_asn));
        }
        Ok(())
    }

    /// Import into the Adj-RIB-In and the sightings (`import.rs`); End-of-RIB markers.
    fn update_received(&mut self, u: Update, at: SystemTime, out: &mut Vec<Output>) {
        let policy = ImportPolicy {
            local_asn: self.cfg.local_asn,
            remote_asn: self.cfg.remote_asn,
            max_prefixes: self.cfg.max_prefixes,
        };
        let done = self.import.update(&u, at, policy);
        self.counters.update_errors_in += done.errors;
        out.extend(done.warnings.into_iter().map(Output::Warn));
        if let Some((count, family)) = done.over_limit {
            let reason = DownReason::MaxPrefixes {
                count,
                limit: self.cfg.max_prefixes,
                family,
            };
            let hold = self.cfg.max_prefixes_restart;
            return self.end_session(reason, hold, true, out);
        }
        if let Some(family) = u.end_of_rib {
            self.end_of_rib(family, out);
        }
    }

    fn route_refresh_received(&mut self, afi: u16, safi: u8, out: &mut Vec<Output>) {
        self.counters.route_refresh_in += 1;
        let negotiated = self.negotiated.as_ref();
        let family = Family::from_afi_safi(afi, safi)
            .filter(|f| negotiated.is_some_and(|n| n.families.contains(f)));
        let Some(family) = family else {
            // RFC 2918 §4: ignore a family that was not negotiated.
            out.push(Output::Warn(Warning::RefreshNotNegotiated { afi, safi }));
            return;
        };
        for update in self.rib_out.refresh(family) {
            self.send(Message::Update(update), out);
        }
    }

    /// Brings the Adj-RIB-Out to the desired routes (none until the session may announce).
    fn sync_routes(&mut self, out: &mut Vec<Output>) {
        let Some(negotiated) = &self.negotiated else {
            return;
        };
        let none = DesiredRoutes::new();
        let desired = if self.may_announce() {
            &self.desired
        } else {
            &none
        };
        let policy = ExportPolicy {
            local_asn: self.cfg.local_asn,
            ibgp: self.ibgp(),
            next_hop_ipv4: self.cfg.next_hop_ipv4,
            next_hop_ipv6: self.cfg.next_hop_ipv6,
            negotiated,
        };
        let synced = self.rib_out.sync(desired, &policy);
        out.extend(synced.warning.map(Output::Warn));
        for update in synced.updates {
            self.send(Message::Update(update), out);
        }
    }
}

#[cfg(test)]
mod bfd_tests;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bgp::message::{
        code, subcode, AsPath, Community, NextHop, Origin, AFI_IPV4, AFI_IPV6, SAFI_UNICAST,
    };
    use crate::bgp::rib_in::RouteKey;
    use crate::config::RouteAttributes;
    use std::sync::Arc;

    pub(crate) const LOCAL: &str = "198.18.1.1";
    pub(crate) const T0: SystemTime = SystemTime::UNIX_EPOCH;

    pub(crate) fn cfg() -> FsmConfig {
        FsmConfig {
            local_asn: 4_200_000_001,
            router_id: "198.19.0.11".parse().unwrap(),
            remote_asn: 65001,
            hold_time: 9,
            passive: false,
            connect_retry_min: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(8),
            stable_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_prefixes: 3,
            max_prefixes_restart: Duration::from_secs(60),
            next_hop_ipv4: None,
            next_hop_ipv6: None,
            jitter_seed: 7,
            initial_routes_wait: Duration::from_secs(2),
        }
    }

    pub(crate) fn peer_open(hold: u16) -> Open {
        Open {
            asn: 65001,
            hold_time: hold,
            router_id: "198.19.0.1".parse().unwrap(),
            capabilities: Capabilities {
                four_octet_asn: Some(65001),
                multiprotocol: vec![(AFI_IPV4, SAFI_UNICAST), (AFI_IPV6, SAFI_UNICAST)],
                route_refresh: true,
                add_path: Vec::new(),
                graceful_restart: None,
                other: vec![73],
            },
        }
    }

    pub(crate) fn pfx(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    pub(crate) fn routes(list: &[&str]) -> DesiredRoutes {
        list.iter()
            .map(|r| (pfx(r), RouteAttributes::default()))
            .collect()
    }

    pub(crate) fn recv(msg: Message) -> Input {
        Input::Received(msg, T0)
    }

    pub(crate) fn iface() -> InterfaceAddresses {
        InterfaceAddresses {
            ipv4: Some(LOCAL.parse().unwrap()),
            ipv6_global: Some("2001:db8:1::1".parse().unwrap()),
        }
    }

    pub(crate) fn sent(out: &[Output]) -> Vec<Message> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// The single message sent, failing the test if there is not exactly one.
    pub(crate) fn only_sent(out: &[Output]) -> Message {
        let msgs = sent(out);
        assert_eq!(msgs.len(), 1, "expected one message: {out:?}");
        msgs.into_iter().next().unwrap()
    }

    pub(crate) fn updates(out: &[Output]) -> Vec<Update> {
        sent(out)
            .into_iter()
            .filter_map(|m| match m {
                Message::Update(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn notification(out: &[Output]) -> Option<Notification> {
        sent(out).into_iter().find_map(|m| match m {
            Message::Notification(n) => Some(n),
            _ => None,
        })
    }

    fn retry_delay(out: &[Output]) -> Option<Duration> {
        out.iter().find_map(|o| match o {
            Output::StartTimer(Timer::ConnectRetry, d) => Some(*d),
            _ => None,
        })
    }

    pub(crate) fn connected_with(f: &mut Fsm, local: &str) -> Vec<Output> {
        f.process(Input::Start);
        f.process(Input::TcpConnected {
            local: local.parse().unwrap(),
            interface: iface(),
        })
    }

    pub(crate) fn connected(f: &mut Fsm) -> Vec<Output> {
        connected_with(f, LOCAL)
    }

    /// The daemon's export: `desired`, released for the session `f` is in (or will be in
    /// once established).
    pub(crate) fn export(f: &Fsm, desired: DesiredRoutes) -> Input {
        let n = f.counters().established_transitions;
        let session = if f.state() == State::Established {
            n
        } else {
            n + 1
        };
        Input::Routes(Export {
            routes: desired,
            released: Some(session),
            ..Export::default()
        })
    }

    pub(crate) fn end_of_rib(family: Family) -> Input {
        recv(Message::Update(Update {
            end_of_rib: Some(family),
            ..Update::default()
        }))
    }

    /// The peer's End-of-RIB for every family negotiated.
    pub(crate) fn initial_routes(f: &mut Fsm) -> Vec<Output> {
        let families = f
            .negotiated()
            .map(|n| n.families.clone())
            .unwrap_or_default();
        families
            .into_iter()
            .flat_map(|family| f.process(end_of_rib(family)))
            .collect()
    }

    /// Up to Established, then the peer's End-of-RIB for each family it negotiated: what a
    /// session does until it may announce.
    pub(crate) fn establish(f: &mut Fsm, open: Open) -> Vec<Output> {
        connected(f);
        f.process(recv(Message::Open(open)));
        let mut out = f.process(recv(Message::Keepalive));
        assert_eq!(f.state(), State::Established, "{out:?}");
        out.extend(initial_routes(f));
        out
    }

    pub(crate) fn established_with(c: FsmConfig, desired: DesiredRoutes) -> Fsm {
        let mut f = Fsm::new(c);
        let input = export(&f, desired);
        f.process(input);
        establish(&mut f, peer_open(3));
        f
    }

    pub(crate) fn established(list: &[&str]) -> Fsm {
        established_with(cfg(), routes(list))
    }

    pub(crate) fn peer_route(prefixes: &[&str], first_as: u32) -> Update {
        Update {
            withdrawn: vec![],
            attributes: Some(PathAttributes::new(
                Origin::Igp,
                AsPath::sequence(vec![first_as, 65100]),
                NextHop {
                    ipv4: Some("198.18.1.0".parse().unwrap()),
                    ..NextHop::default()
                },
            )),
            nlri: prefixes.iter().map(|p| pfx(p)).collect(),
            ..Update::default()
        }
    }

    #[test]
    fn start_connects_with_a_connect_timeout() {
        let mut f = Fsm::new(cfg());
        let out = f.process(Input::Start);
        assert_eq!(f.state(), State::Connect);
        assert!(out.contains(&Output::Connect));
        assert_eq!(retry_delay(&out), Some(Duration::from_secs(5)));
    }

    #[test]
    fn connect_sends_open_with_capabilities() {
        let mut f = Fsm::new(cfg());
        let out = connected(&mut f);
        assert_eq!(f.state(), State::OpenSent);
        let Message::Open(open) = only_sent(&out) else {
            panic!("expected one OPEN: {out:?}")
        };
        assert_eq!(open.asn, 4_200_000_001);
        assert_eq!(open.capabilities.four_octet_asn, Some(4_200_000_001));
        assert_eq!(open.capabilities.multiprotocol, [(1, 1), (2, 1)]);
        assert!(open.capabilities.route_refresh);
        assert_eq!(open.hold_time, 9);
        assert!(out.contains(&Output::StartTimer(Timer::Hold, OPEN_HOLD_TIME)));
    }

    #[test]
    fn failed_connects_back_off_exponentially_with_jitter_up_to_the_cap() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        let mut delays = Vec::new();
        for _ in 0..6 {
            let out = f.process(Input::TcpFailed {
                error: "refused".into(),
            });
            assert_eq!(f.state(), State::Idle);
            delays.push(retry_delay(&out).unwrap());
            let out = f.process(Input::TimerExpired(Timer::ConnectRetry));
            assert!(out.contains(&Output::Connect));
        }
        for (d, base) in delays.iter().zip([1, 2, 4, 8, 8, 8]) {
            let base = Duration::from_secs(base);
            assert!(*d <= base && *d >= base.mul_f64(0.75), "{d:?} vs {base:?}");
        }
        // Jittered: not all equal to their base.
        assert!(delays.iter().any(|d| d.subsec_nanos() != 0));
    }

    #[test]
    fn backoff_resets_only_after_a_stable_session() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        for _ in 0..3 {
            f.process(Input::TcpFailed { error: "x".into() });
            f.process(Input::TimerExpired(Timer::ConnectRetry));
        }
        f.process(Input::TcpConnected {
            local: LOCAL.parse().unwrap(),
            interface: iface(),
        });
        f.process(recv(Message::Open(peer_open(3))));
        let out = f.process(recv(Message::Keepalive));
        assert!(out.contains(&Output::StartTimer(Timer::Stable, Duration::from_secs(30))));
        // Flapping right after establishment keeps the long hold (damping).
        let out = f.process(Input::TcpClosed { error: "x".into() });
        assert!(retry_delay(&out).unwrap() >= Duration::from_secs(6));
        assert!(out.contains(&Output::StopTimer(Timer::Stable)));

        f.process(Input::TimerExpired(Timer::ConnectRetry));
        establish_again(&mut f);
        f.process(Input::TimerExpired(Timer::Stable));
        let out = f.process(Input::TcpClosed { error: "x".into() });
        assert!(retry_delay(&out).unwrap() <= Duration::from_secs(1));
    }

    fn establish_again(f: &mut Fsm) {
        f.process(Input::TcpConnected {
            local: LOCAL.parse().unwrap(),
            interface: iface(),
        });
        f.process(recv(Message::Open(peer_open(3))));
        f.process(recv(Message::Keepalive));
        assert_eq!(f.state(), State::Established);
    }

    #[test]
    fn connect_timeout_abandons_and_retries() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        let out = f.process(Input::TimerExpired(Timer::ConnectRetry));
        assert_eq!(f.state(), State::Idle);
        assert!(out.contains(&Output::Close));
        assert!(retry_delay(&out).unwrap() <= Duration::from_secs(1));
        assert!(f.last_error().unwrap().to_string().contains("timed out"));
    }

    #[test]
    fn hold_time_is_the_smaller_one_and_keepalive_a_third() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let out = f.process(recv(Message::Open(peer_open(3))));
        assert_eq!(f.state(), State::OpenConfirm);
        assert_eq!(sent(&out), [Message::Keepalive]);
        let n = f.negotiated().unwrap();
        assert_eq!((n.hold_time, n.keepalive), (3, 1));
        assert!(out.contains(&Output::StartTimer(Timer::Hold, Duration::from_secs(3))));
        assert!(out.contains(&Output::StartTimer(
            Timer::Keepalive,
            Duration::from_secs(1)
        )));

        let mut f = Fsm::new(cfg());
        connected(&mut f);
        f.process(recv(Message::Open(peer_open(180))));
        let n = f.negotiated().unwrap();
        assert_eq!((n.hold_time, n.keepalive), (9, 3));
    }

    #[test]
    fn hold_time_zero_means_no_timers() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let out = f.process(recv(Message::Open(peer_open(0))));
        assert_eq!(f.negotiated().unwrap().hold_time, 0);
        assert!(!out
            .iter()
            .any(|o| matches!(o, Output::StartTimer(Timer::Hold | Timer::Keepalive, _))));
        assert!(out.contains(&Output::StopTimer(Timer::Hold)));
        // Keepalive from the peer still completes the handshake.
        f.process(recv(Message::Keepalive));
        assert_eq!(f.state(), State::Established);
    }

    #[test]
    fn hold_time_one_or_two_is_refused() {
        for hold in [1, 2] {
            let mut f = Fsm::new(cfg());
            connected(&mut f);
            let out = f.process(recv(Message::Open(peer_open(hold))));
            let n = notification(&out).unwrap();
            assert_eq!((n.code, n.subcode), (2, 6));
            assert!(out.contains(&Output::Close));
            assert_eq!(f.state(), State::Idle);
        }
    }

    #[test]
    fn wrong_peer_as_is_refused() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let mut open = peer_open(3);
        open.asn = 65002;
        let out = f.process(recv(Message::Open(open)));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (2, 2));
        assert!(f.last_error().unwrap().to_string().contains("65002"));
        assert_eq!(f.last_notification(), Some(&Notified::sent(n)));
    }

    #[test]
    fn peer_without_four_octet_asn_is_refused_when_we_need_it() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let mut open = peer_open(3);
        open.capabilities.four_octet_asn = None;
        let out = f.process(recv(Message::Open(open.clone())));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (2, 7));
        assert_eq!(n.data[..2], [65, 4]);
        assert_eq!(n.data[2..], 4_200_000_001u32.to_be_bytes());

        // A 2-byte local ASN works with such a peer.
        let mut f = Fsm::new(FsmConfig {
            local_asn: 65011,
            ..cfg()
        });
        connected(&mut f);
        f.process(recv(Message::Open(open)));
        assert_eq!(f.state(), State::OpenConfirm);
        assert!(!f.negotiated().unwrap().four_octet_asn);
    }

    #[test]
    fn ibgp_peer_with_our_router_id_is_refused() {
        let mut f = Fsm::new(FsmConfig {
            remote_asn: 4_200_000_001,
            ..cfg()
        });
        connected(&mut f);
        let mut open = peer_open(3);
        open.asn = 4_200_000_001;
        open.router_id = "198.19.0.11".parse().unwrap();
        let out = f.process(recv(Message::Open(open)));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (2, 3));
    }

    #[test]
    fn families_are_those_both_sides_advertise() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let mut open = peer_open(3);
        open.capabilities.multiprotocol = vec![(AFI_IPV6, SAFI_UNICAST)];
        f.process(recv(Message::Open(open)));
        assert_eq!(f.negotiated().unwrap().families, [Family::Ipv6Unicast]);

        // No MP capability at all: IPv4 unicast only (RFC 4760 §8).
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let mut open = peer_open(3);
        open.capabilities.multiprotocol.clear();
        f.process(recv(Message::Open(open)));
        assert_eq!(f.negotiated().unwrap().families, [Family::Ipv4Unicast]);
    }

    #[test]
    fn established_session_announces_current_routes_with_our_path() {
        let mut f = Fsm::new(cfg());
        f.process(export(&f, routes(&["192.0.2.10/32"])));
        let out = establish(&mut f, peer_open(3));
        let Message::Update(u) = only_sent(&out) else {
            panic!("expected one UPDATE: {out:?}")
        };
        assert_eq!(u.nlri, [pfx("192.0.2.10/32")]);
        assert!(u.withdrawn.is_empty());
        let a = u.attributes.unwrap();
        assert_eq!(a.as_path, AsPath::sequence(vec![4_200_000_001]));
        assert_eq!(a.origin, Origin::Igp);
        assert_eq!(a.next_hop.ipv4, Some(LOCAL.parse().unwrap()));
        assert_eq!(a.local_pref, None, "LOCAL_PREF is for iBGP only");
        assert_eq!(a.med, None);
    }

    #[test]
    fn service_attributes_are_sent_as_configured() {
        let attrs = RouteAttributes {
            communities: vec![Community(65001 << 16 | 100)],
            med: Some(50),
            local_pref: Some(300),
            as_path_prepend: 2,
            ..RouteAttributes::default()
        };
        let desired = [(pfx("192.0.2.10/32"), attrs.clone())].into();
        let f = established_with(cfg(), desired);
        let a = &f.rib_out()[&pfx("192.0.2.10/32")];
        assert_eq!(a.as_path, AsPath::sequence(vec![4_200_000_001; 3]));
        assert_eq!(a.med, Some(50));
        assert_eq!(a.communities, attrs.communities);
        assert_eq!(a.local_pref, None);
    }

    #[test]
    fn ibgp_sends_an_empty_as_path_and_local_pref() {
        let c = FsmConfig {
            remote_asn: 4_200_000_001,
            ..cfg()
        };
        let mut with_pref = RouteAttributes {
            as_path_prepend: 3,
            ..RouteAttributes::default()
        };
        for (pref, expected) in [(None, 100), (Some(300), 300)] {
            with_pref.local_pref = pref;
            let mut f = Fsm::new(c.clone());
            f.process(export(
                &f,
                [(pfx("192.0.2.10/32"), with_pref.clone())].into(),
            ));
            connected(&mut f);
            let mut open = peer_open(3);
            open.asn = 4_200_000_001;
            f.process(recv(Message::Open(open)));
            f.process(recv(Message::Keepalive));
            let out = initial_routes(&mut f);
            let a = updates(&out)[0].attributes.clone().unwrap();
            assert!(a.as_path.0.is_empty());
            assert_eq!(a.local_pref, Some(expected));
        }
    }

    #[test]
    fn ipv6_routes_get_an_ipv6_next_hop() {
        // Over IPv4 transport: the interface's global IPv6 address.
        let f = established(&["192.0.2.10/32", "2001:db8::10/128"]);
        let v6 = &f.rib_out()[&pfx("2001:db8::10/128")];
        assert_eq!(v6.next_hop.ipv6, Some("2001:db8:1::1".parse().unwrap()));
        assert_eq!(v6.next_hop.ipv6_link_local, None);
        assert_eq!(v6.next_hop.ipv4, None);

        // Over a link-local IPv6 session: global plus link-local, and IPv4 from the interface.
        let mut f = Fsm::new(cfg());
        f.process(export(&f, routes(&["192.0.2.10/32", "2001:db8::10/128"])));
        connected_with(&mut f, "fe80::1");
        f.process(recv(Message::Open(peer_open(3))));
        f.process(recv(Message::Keepalive));
        initial_routes(&mut f);
        let v6 = &f.rib_out()[&pfx("2001:db8::10/128")];
        assert_eq!(v6.next_hop.ipv6, Some("2001:db8:1::1".parse().unwrap()));
        assert_eq!(
            v6.next_hop.ipv6_link_local,
            Some("fe80::1".parse().unwrap())
        );
        let v4 = &f.rib_out()[&pfx("192.0.2.10/32")];
        assert_eq!(v4.next_hop.ipv4, Some(LOCAL.parse().unwrap()));
    }

    #[test]
    fn next_hop_overrides_win_service_over_peer_over_session() {
        let c = FsmConfig {
            next_hop_ipv4: Some("198.18.7.7".parse().unwrap()),
            ..cfg()
        };
        let f = established_with(c.clone(), routes(&["192.0.2.10/32"]));
        let nh = f.rib_out()[&pfx("192.0.2.10/32")].next_hop.ipv4;
        assert_eq!(nh, Some("198.18.7.7".parse().unwrap()));
        let attrs = RouteAttributes {
            next_hop_ipv4: Some("198.18.8.8".parse().unwrap()),
            ..RouteAttributes::default()
        };
        let f = established_with(c, [(pfx("192.0.2.10/32"), attrs)].into());
        let nh = f.rib_out()[&pfx("192.0.2.10/32")].next_hop.ipv4;
        assert_eq!(nh, Some("198.18.8.8".parse().unwrap()));
    }

    #[test]
    fn a_family_the_peer_did_not_accept_is_not_sent() {
        let mut f = Fsm::new(cfg());
        f.process(export(&f, routes(&["192.0.2.10/32", "2001:db8::10/128"])));
        connected(&mut f);
        let mut open = peer_open(3);
        open.capabilities.multiprotocol = vec![(AFI_IPV4, SAFI_UNICAST)];
        f.process(recv(Message::Open(open)));
        f.process(recv(Message::Keepalive));
        let out = initial_routes(&mut f);
        let u = updates(&out);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].nlri, [pfx("192.0.2.10/32")]);
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::Warn(w) if w.to_string().contains("2001:db8::10/128"))));
    }

    #[test]
    fn nothing_is_announced_without_desired_routes() {
        let mut f = Fsm::new(cfg());
        let out = establish(&mut f, peer_open(3));
        assert!(sent(&out).is_empty());
    }

    #[test]
    fn route_changes_become_announce_and_withdraw() {
        let mut f = established(&["192.0.2.10/32"]);
        let out = f.process(export(&f, DesiredRoutes::new()));
        let Message::Update(u) = only_sent(&out) else {
            panic!("{out:?}")
        };
        assert_eq!(u.withdrawn, [pfx("192.0.2.10/32")]);
        assert!(u.nlri.is_empty() && u.attributes.is_none());
        assert!(f.rib_out().is_empty());
        // The same desired set again sends nothing.
        assert!(sent(&f.process(export(&f, DesiredRoutes::new()))).is_empty());
        let out = f.process(export(&f, routes(&["192.0.2.10/32"])));
        let Message::Update(u) = only_sent(&out) else {
            panic!("{out:?}")
        };
        assert_eq!(u.nlri, [pfx("192.0.2.10/32")]);
    }

    #[test]
    fn changed_attributes_are_re_announced_and_groups_share_an_update() {
        let mut f = established(&["192.0.2.10/32", "192.0.2.11/32"]);
        let mut desired = routes(&["192.0.2.10/32", "192.0.2.11/32", "192.0.2.12/32"]);
        desired.get_mut(&pfx("192.0.2.11/32")).unwrap().med = Some(5);
        let out = f.process(export(&f, desired));
        let u = updates(&out);
        assert_eq!(u.len(), 2, "{u:?}");
        let nlri: Vec<_> = u.iter().map(|u| u.nlri.clone()).collect();
        assert!(nlri.contains(&vec![pfx("192.0.2.11/32")]));
        assert!(nlri.contains(&vec![pfx("192.0.2.12/32")]));
    }

    #[test]
    fn route_changes_before_established_are_remembered_not_sent() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let out = f.process(export(&f, routes(&["192.0.2.10/32"])));
        assert!(sent(&out).is_empty());
        f.process(recv(Message::Open(peer_open(3))));
        f.process(recv(Message::Keepalive));
        let out = initial_routes(&mut f);
        assert_eq!(sent(&out).len(), 1);
    }

    #[test]
    fn route_refresh_resends_the_family_from_the_rib_out() {
        let mut f = established(&["192.0.2.10/32", "2001:db8::10/128"]);
        let out = f.process(recv(Message::RouteRefresh { afi: 1, safi: 1 }));
        let u = updates(&out);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].nlri, [pfx("192.0.2.10/32")]);
        assert!(u[0].withdrawn.is_empty());
        let out = f.process(recv(Message::RouteRefresh { afi: 2, safi: 1 }));
        assert_eq!(updates(&out)[0].nlri, [pfx("2001:db8::10/128")]);
        let out = f.process(recv(Message::RouteRefresh { afi: 1, safi: 128 }));
        assert!(sent(&out).is_empty());
        assert_eq!(f.counters().route_refresh_in, 3);
        assert_eq!(f.state(), State::Established);
    }

    #[test]
    fn received_routes_are_kept_per_prefix_and_withdrawn() {
        let mut f = established(&[]);
        let at = T0 + Duration::from_secs(9);
        f.process(Input::Received(
            Message::Update(peer_route(&["0.0.0.0/0", "198.18.99.0/24"], 65001)),
            at,
        ));
        assert_eq!(f.rib_in().len(), 2);
        let r = f.rib_in().get(&RouteKey::new(pfx("0.0.0.0/0"), 0)).unwrap();
        assert_eq!(r.received_at, at);
        assert_eq!(r.attributes.as_path.to_string(), "65001 65100");
        let w = Update {
            withdrawn: vec![pfx("198.18.99.0/24")],
            ..Update::default()
        };
        f.process(recv(Message::Update(w)));
        assert_eq!(f.rib_in().len(), 1);
        // Session loss clears it.
        f.process(Input::TcpClosed { error: "x".into() });
        assert!(f.rib_in().is_empty());
    }

    #[test]
    fn ebgp_route_not_starting_with_peer_as_is_treated_as_withdraw() {
        let mut f = established(&[]);
        f.process(recv(Message::Update(peer_route(
            &["198.18.99.0/24"],
            65001,
        ))));
        let out = f.process(recv(Message::Update(peer_route(
            &["198.18.99.0/24"],
            65002,
        ))));
        assert!(f.rib_in().is_empty());
        assert_eq!(f.state(), State::Established);
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::Warn(w) if w.to_string().contains("65001"))));
        assert_eq!(f.counters().update_errors_in, 1);
    }

    #[test]
    fn rfc7606_errors_from_the_codec_are_counted_and_logged() {
        let mut f = established(&[]);
        let mut u = peer_route(&[], 65001);
        u.attributes = None;
        u.withdrawn = vec![pfx("198.18.99.0/24")];
        u.errors = vec!["malformed MED: treat-as-withdraw".into()];
        let out = f.process(recv(Message::Update(u)));
        assert_eq!(f.counters().update_errors_in, 1);
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::Warn(w) if w.to_string().contains("MED"))));
        assert_eq!(f.state(), State::Established);
    }

    #[test]
    fn exceeding_max_prefixes_ends_the_session_with_cease_and_a_long_hold() {
        let mut f = established(&["192.0.2.10/32"]);
        let ok = f.process(recv(Message::Update(peer_route(
            &["198.18.96.0/24", "198.18.97.0/24", "198.18.98.0/24"],
            65001,
        ))));
        assert!(sent(&ok).is_empty());
        let out = f.process(recv(Message::Update(peer_route(
            &["198.18.99.0/24"],
            65001,
        ))));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (6, 1));
        assert_eq!(n.data, [0, 1, 1, 0, 0, 0, 3]);
        assert_eq!(f.state(), State::Idle);
        // The configured restart delay, exactly: jitter would only ever shorten it.
        assert_eq!(retry_delay(&out), Some(Duration::from_secs(60)));
        assert!(f.last_error().unwrap().to_string().contains("max_prefixes"));
    }

    #[test]
    fn our_own_routes_reflected_back_are_neither_kept_nor_counted() {
        let mut f = established(&["192.0.2.10/32"]);
        let mut echo = peer_route(&["192.0.2.10/32", "192.0.2.11/32"], 65001);
        if let Some(a) = echo.attributes.as_mut() {
            a.as_path = AsPath::sequence(vec![65001, 4_200_000_001]);
        }
        f.process(recv(Message::Update(echo)));
        assert!(f.rib_in().is_empty());
        // Three real routes still fit under max_prefixes = 3: the echoes did not count.
        let out = f.process(recv(Message::Update(peer_route(
            &["198.18.96.0/24", "198.18.97.0/24", "198.18.98.0/24"],
            65001,
        ))));
        assert!(notification(&out).is_none());
        assert_eq!(f.rib_in().len(), 3);
    }

    #[test]
    fn a_failed_session_refuses_the_peers_connections_during_the_idle_hold() {
        let mut f = established(&[]);
        f.process(recv(Message::Notification(Notification::new(6, 4, vec![]))));
        assert_eq!(f.state(), State::Idle);
        let out = incoming(&mut f, "198.19.0.200");
        assert!(
            matches!(&out[..], [Output::RejectIncoming(n)] if n.subcode == 5),
            "{out:?}"
        );
        // Once the hold is over, connections are taken again.
        f.process(Input::TimerExpired(Timer::ConnectRetry));
        let out = incoming(&mut f, "198.19.0.200");
        assert!(out.contains(&Output::AdoptIncoming), "{out:?}");
    }

    #[test]
    fn losing_a_collision_on_the_peers_side_leaves_its_connection_welcome() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        f.process(recv(Message::Open(peer_open(3))));
        // The peer resolved the collision first and closed our connection.
        let cease = Notification::new(6, 7, vec![]);
        let out = f.process(recv(Message::Notification(cease)));
        assert!(retry_delay(&out).unwrap() <= Duration::from_secs(1));
        let out = incoming(&mut f, "198.19.0.200");
        assert!(out.contains(&Output::AdoptIncoming), "{out:?}");
        assert_eq!(f.state(), State::OpenConfirm);
    }

    #[test]
    fn after_a_failed_connect_the_peers_own_connection_is_taken_at_once() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        f.process(Input::TcpFailed {
            error: "refused".into(),
        });
        assert_eq!(f.state(), State::Idle);
        let out = incoming(&mut f, "198.19.0.1");
        assert!(out.contains(&Output::AdoptIncoming), "{out:?}");
        assert_eq!(f.state(), State::OpenConfirm);
    }

    #[test]
    fn session_loss_forgets_rib_out_and_reannounces_on_return() {
        let mut f = established(&["192.0.2.10/32"]);
        f.process(Input::TcpClosed {
            error: "reset".into(),
        });
        assert!(f.rib_out().is_empty());
        f.process(Input::TimerExpired(Timer::ConnectRetry));
        f.process(Input::TcpConnected {
            local: LOCAL.parse().unwrap(),
            interface: iface(),
        });
        f.process(recv(Message::Open(peer_open(3))));
        f.process(recv(Message::Keepalive));
        // The release was for the first session: the new one waits for its own.
        assert!(sent(&initial_routes(&mut f)).is_empty());
        let out = f.process(export(&f, routes(&["192.0.2.10/32"])));
        assert_eq!(sent(&out).len(), 1, "{out:?}");
    }

    #[test]
    fn keepalives_are_sent_and_received_ones_restart_hold() {
        let mut f = established(&[]);
        let out = f.process(Input::TimerExpired(Timer::Keepalive));
        assert_eq!(sent(&out), [Message::Keepalive]);
        assert!(out.contains(&Output::StartTimer(
            Timer::Keepalive,
            Duration::from_secs(1)
        )));
        let out = f.process(recv(Message::Keepalive));
        assert_eq!(
            out,
            [Output::StartTimer(Timer::Hold, Duration::from_secs(3))]
        );
    }

    #[test]
    fn hold_timer_expiry_sends_notification_and_retries() {
        let mut f = established(&["192.0.2.10/32"]);
        let out = f.process(Input::TimerExpired(Timer::Hold));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (4, 0));
        assert!(out.contains(&Output::Close));
        assert_eq!(f.state(), State::Idle);
        assert!(retry_delay(&out).is_some());
    }

    #[test]
    fn unexpected_messages_are_fsm_errors_with_rfc6608_subcodes() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let out = f.process(recv(Message::Keepalive));
        assert_eq!(
            notification(&out).map(|n| (n.code, n.subcode)),
            Some((5, 1))
        );

        let mut f = Fsm::new(cfg());
        connected(&mut f);
        f.process(recv(Message::Open(peer_open(3))));
        let out = f.process(recv(Message::Update(Update::default())));
        assert_eq!(
            notification(&out).map(|n| (n.code, n.subcode)),
            Some((5, 2))
        );

        let mut f = established(&[]);
        let out = f.process(recv(Message::Open(peer_open(3))));
        assert_eq!(
            notification(&out).map(|n| (n.code, n.subcode)),
            Some((5, 3))
        );
    }

    #[test]
    fn an_invalid_first_message_on_an_incoming_connection_is_answered_and_counted() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        let state = f.state();
        let bad = Notification::new(code::OPEN_MESSAGE, subcode::UNSUPPORTED_VERSION, vec![0, 4]);
        let out = f.process(Input::IncomingInvalid {
            notification: bad.clone(),
            reason: "malformed first message".into(),
            malformed: true,
        });
        assert_eq!(out, [Output::RejectIncoming(bad.clone())]);
        assert_eq!(f.state(), state, "our own attempt goes on");
        assert_eq!(f.counters().malformed_in, 1);
        assert_eq!(
            f.last_error().map(ToString::to_string).as_deref(),
            Some("incoming connection: malformed first message")
        );
        assert_eq!(f.last_notification(), Some(&Notified::sent(bad)));
    }

    #[test]
    fn malformed_input_sends_the_codec_notification_and_counts_it() {
        let mut f = established(&["192.0.2.10/32"]);
        let bad = Notification::new(3, 11, vec![]);
        let out = f.process(Input::Malformed(bad.clone()));
        assert_eq!(notification(&out), Some(bad));
        assert_eq!(f.counters().malformed_in, 1);
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn received_notification_closes_without_answering() {
        let mut f = established(&[]);
        let cease = Notification::new(6, 2, vec![]);
        let out = f.process(recv(Message::Notification(cease.clone())));
        assert!(notification(&out).is_none());
        assert!(out.contains(&Output::Close));
        assert_eq!(f.state(), State::Idle);
        assert!(retry_delay(&out).is_some());
        assert!(f.last_error().unwrap().to_string().contains("Cease"));
        assert_eq!(f.last_notification(), Some(&Notified::received(cease)));
    }

    #[test]
    fn stop_withdraws_then_sends_cease_and_stays_down() {
        let mut f = established(&["192.0.2.10/32"]);
        let out = f.process(Input::Stop {
            message: "primaryd shutting down".into(),
        });
        let msgs = sent(&out);
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        let Message::Update(u) = &msgs[0] else {
            panic!("{msgs:?}")
        };
        assert_eq!(u.withdrawn, [pfx("192.0.2.10/32")]);
        let Message::Notification(n) = &msgs[1] else {
            panic!("{msgs:?}")
        };
        assert_eq!((n.code, n.subcode), (6, 2));
        assert_eq!(
            n.shutdown_message().as_deref(),
            Some("primaryd shutting down")
        );
        assert!(out.contains(&Output::Close));
        assert_eq!(f.state(), State::Idle);
        assert!(retry_delay(&out).is_none());
        // Stays down: a late retry timer does nothing.
        assert!(f
            .process(Input::TimerExpired(Timer::ConnectRetry))
            .is_empty());
    }

    #[test]
    fn stop_while_connecting_abandons_the_connect() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        let out = f.process(Input::Stop {
            message: "bye".into(),
        });
        assert!(sent(&out).is_empty());
        assert!(out.contains(&Output::Close));
        let out = f.process(Input::TcpConnected {
            local: LOCAL.parse().unwrap(),
            interface: iface(),
        });
        assert_eq!(out, [Output::Close]);
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn stale_timers_and_late_tcp_events_are_ignored() {
        let mut f = Fsm::new(cfg());
        assert!(f.process(Input::TimerExpired(Timer::Hold)).is_empty());
        assert!(f.process(Input::TimerExpired(Timer::Keepalive)).is_empty());
        assert!(f.process(Input::TimerExpired(Timer::Stable)).is_empty());
        assert!(f.process(Input::TcpClosed { error: "x".into() }).is_empty());
        assert!(f.process(recv(Message::Keepalive)).is_empty());
    }

    fn incoming(f: &mut Fsm, router_id: &str) -> Vec<Output> {
        let mut open = peer_open(3);
        open.router_id = router_id.parse().unwrap();
        f.process(Input::Incoming {
            local: LOCAL.parse().unwrap(),
            interface: iface(),
            open,
        })
    }

    #[test]
    fn passive_peer_waits_and_adopts_the_incoming_connection() {
        let mut f = Fsm::new(FsmConfig {
            passive: true,
            ..cfg()
        });
        let out = f.process(Input::Start);
        assert_eq!(f.state(), State::Active);
        assert!(!out.contains(&Output::Connect));
        let out = incoming(&mut f, "198.19.0.1");
        let adopt = out
            .iter()
            .position(|o| *o == Output::AdoptIncoming)
            .unwrap();
        let open = out
            .iter()
            .position(|o| matches!(o, Output::Send(Message::Open(_))))
            .unwrap();
        assert!(adopt < open, "adopt before sending on it: {out:?}");
        assert_eq!(f.state(), State::OpenConfirm);
        f.process(recv(Message::Keepalive));
        assert_eq!(f.state(), State::Established);

        // After an error a passive peer is damped: connections are refused until the hold ends.
        f.process(Input::TcpClosed { error: "x".into() });
        let out = incoming(&mut f, "198.19.0.1");
        assert!(matches!(&out[..], [Output::RejectIncoming(n)] if n.subcode == 5));
        f.process(Input::TimerExpired(Timer::ConnectRetry));
        assert_eq!(f.state(), State::Active);
    }

    #[test]
    fn incoming_while_connecting_replaces_the_connect() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        let out = incoming(&mut f, "198.19.0.1");
        assert_eq!(out[0], Output::Close);
        assert!(out.contains(&Output::AdoptIncoming));
        assert_eq!(f.state(), State::OpenConfirm);
    }

    #[test]
    fn collision_keeps_the_connection_of_the_higher_router_id() {
        // Ours (198.19.0.11) is higher than the peer's: our connection stays.
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let out = incoming(&mut f, "198.19.0.1");
        let [Output::RejectIncoming(n)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!((n.code, n.subcode), (6, 7));
        assert_eq!(f.state(), State::OpenSent);

        // The peer's is higher: ours gets Cease/collision and the incoming one takes over.
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let out = incoming(&mut f, "198.19.0.200");
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (6, 7));
        let close = out.iter().position(|o| *o == Output::Close).unwrap();
        let adopt = out
            .iter()
            .position(|o| *o == Output::AdoptIncoming)
            .unwrap();
        assert!(close < adopt);
        assert_eq!(f.state(), State::OpenConfirm);
    }

    #[test]
    fn incoming_is_rejected_when_established_or_stopped() {
        let mut f = established(&[]);
        let out = incoming(&mut f, "198.19.0.200");
        assert!(matches!(&out[..], [Output::RejectIncoming(n)] if n.subcode == 7));
        assert_eq!(f.state(), State::Established);

        let mut f = Fsm::new(cfg());
        let out = incoming(&mut f, "198.19.0.1");
        assert!(matches!(&out[..], [Output::RejectIncoming(n)] if n.subcode == 5));
    }

    /// Arbitrary bytes from the peer, cut into frames and decoded as the driver does, mixed
    /// with timer expiries, route changes and connection events: the machine never panics,
    /// and its invariants hold after every input.
    mod arbitrary_input {
        use super::*;
        use crate::bgp::codec::{self, CodecContext};
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Bytes(Vec<u8>),
            Timer(u8),
            Routes(u8),
            Closed,
            Connected,
            Incoming(u32),
            Valid(u8),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                4 => proptest::collection::vec(any::<u8>(), 0..120).prop_map(Step::Bytes),
                2 => any::<u8>().prop_map(Step::Timer),
                1 => any::<u8>().prop_map(Step::Routes),
                1 => Just(Step::Closed),
                1 => Just(Step::Connected),
                1 => any::<u32>().prop_map(Step::Incoming),
                4 => any::<u8>().prop_map(Step::Valid),
            ]
        }

        /// Valid messages a peer might send, so the machine gets past OpenSent.
        fn valid(i: u8) -> Message {
            match i % 5 {
                0 | 1 => Message::Open(peer_open(3)),
                2 => Message::Keepalive,
                3 => Message::Update(peer_route(&["198.18.99.0/24"], 65001)),
                _ => Message::RouteRefresh { afi: 1, safi: 1 },
            }
        }

        fn check_invariants(f: &Fsm) {
            let s = f.state();
            if s == State::Established || s == State::OpenConfirm {
                assert!(f.negotiated().is_some(), "{s} without negotiation");
            }
            if s != State::Established {
                assert!(f.rib_out().is_empty(), "Adj-RIB-Out kept in {s}");
                assert!(f.rib_in().is_empty(), "Adj-RIB-In kept in {s}");
                assert!(f.sightings().is_empty(), "sightings kept in {s}");
            }
            if !f.initial_routes_done() {
                assert!(
                    f.rib_out().is_empty(),
                    "announced before the initial routes"
                );
            }
            assert!(f.rib_in().len() <= f.config().max_prefixes as usize);
            assert!(f.sightings().len() <= f.config().max_prefixes as usize);
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
            #[test]
            fn never_panics_and_keeps_invariants(steps in proptest::collection::vec(step(), 1..60)) {
                let mut f = Fsm::new(cfg());
                f.process(Input::Start);
                let mut buf = Vec::new();
                for s in steps {
                    let inputs: Vec<Input> = match s {
                        Step::Bytes(b) => {
                            buf.extend_from_slice(&b);
                            let ctx = CodecContext { four_octet_asn: true, ibgp: false, add_path_ipv4: false, add_path_ipv6: false };
                            let mut inputs = Vec::new();
                            loop {
                                match codec::frame_len(&buf) {
                                    Ok(Some(len)) if buf.len() >= len => {
                                        let frame: Vec<u8> = buf.drain(..len).collect();
                                        inputs.push(match codec::decode(&frame, ctx) {
                                            Ok(m) => recv(m),
                                            Err(n) => Input::Malformed(n.into()),
                                        });
                                    }
                                    Ok(_) => break,
                                    Err(n) => {
                                        buf.clear();
                                        inputs.push(Input::Malformed(n.into()));
                                        break;
                                    }
                                }
                            }
                            inputs
                        }
                        Step::Timer(t) => {
                            vec![Input::TimerExpired(Timer::ALL[t as usize % Timer::ALL.len()])]
                        }
                        Step::Routes(r) => {
                            let all = ["192.0.2.10/32", "2001:db8::10/128", "192.0.2.11/32"];
                            let pick: Vec<&str> = all
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| r & (1 << i) != 0)
                                .map(|(_, p)| *p)
                                .collect();
                            let Input::Routes(mut e) = export(&f, routes(&pick)) else {
                                unreachable!()
                            };
                            // Watch some, release some: every combination gets exercised.
                            e.watched = Arc::new(pick.iter().skip(1).map(|p| pfx(p)).collect());
                            if r & 8 != 0 {
                                e.released = None;
                            }
                            vec![Input::Routes(e)]
                        }
                        Step::Closed => {
                            buf.clear();
                            vec![Input::TcpClosed { error: "x".into() }]
                        }
                        Step::Connected => vec![Input::TcpConnected {
                            local: LOCAL.parse().unwrap(),
                            interface: iface(),
                        }],
                        Step::Incoming(id) => {
                            let mut open = peer_open(3);
                            open.router_id = Ipv4Addr::from(id);
                            vec![Input::Incoming { local: LOCAL.parse().unwrap(), interface: iface(), open }]
                        }
                        Step::Valid(i) => vec![recv(valid(i))],
                    };
                    for input in inputs {
                        f.process(input);
                        check_invariants(&f);
                    }
                }
            }
        }
    }
}
