//! The BGP session state machine (RFC 4271 §8), pure: `process(input) -> outputs`. It owns no
//! socket and no clock: connecting, sending, closing and timers are outputs the driver
//! (`session.rs`) carries out, and timer expiry comes back as an input. Every protocol rule is
//! therefore unit-tested without sockets or sleeps. Randomness (timer jitter) comes from a
//! seeded generator, so tests are deterministic too.
//!
//! One machine per peer. It owns the Adj-RIB-Out (what this session advertised) so that a
//! session that comes up announces exactly the current desired routes and one that goes down
//! forgets them; what is advertised, with which attributes, is `export.rs`. Import (the
//! Adj-RIB-In and the sightings of our own service prefixes) is `import.rs`. Inputs, outputs
//! and the machine's other types are in `types.rs`; why a session went down, and what it
//! warns about, are types of `reason.rs`, rendered to text only by the driver and the CLI.
//!
//! Initial routes: a new session announces nothing until the peer's End-of-RIB for every
//! negotiated family has arrived (or `initial_routes_wait` passed, for a peer that sends none)
//! *and* the daemon has
//! released the session, having read the routes received so far: a host must know who else
//! announces its prefixes before it announces them itself.
//!
//! Connection collisions (RFC 4271 §6.8, in `open.rs` with the OPEN exchange): the driver
//! reads the peer's OPEN on an incoming connection before handing it over as
//! `Input::Incoming`; the machine then adopts it, rejects it, or replaces its own connection
//! with it, by comparing BGP identifiers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnetwork::IpNetwork;

pub use super::export::Export;
use super::export::{AdjRibOut, ExportPolicy};
use super::import::{Import, ImportPolicy};
use super::message::{
    CeaseSubcode, Family, Message, Notification, NotificationKind, PathAttributes, Update,
};
use super::reason::{DownReason, Notified, StateReason, Warning};
use super::rib_in::AdjRibIn;
use crate::announcer::DesiredRoutes;

mod open;
mod types;
pub use types::{Counters, FsmConfig, Input, InterfaceAddresses, Negotiated, Output, State, Timer};

/// Hold timer while waiting for the peer's OPEN. RFC 4271 §8 suggests 4 minutes; a ToR
/// answers in milliseconds, and a connection whose packets are being dropped (a GTSM or MD5
/// mismatch on one side) would otherwise hold the session down that long.
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(10);
/// How long a peer that advertised graceful restart, and so promised an End-of-RIB after its
/// initial routes (RFC 4724), is waited for when `initial_routes_wait` is shorter. Routers
/// send their initial routes later than one might think: FRR holds them for its update
/// group's coalesce time, 1 s plus 50 ms per peer by default. Giving up earlier announces
/// before the other announcers are known (the lab's `heal` drill did, beside the new primary).
pub const END_OF_RIB_PROMISED_WAIT: Duration = Duration::from_secs(30);

pub struct Fsm {
    cfg: FsmConfig,
    state: State,
    stopped: bool,
    retry_delay: Duration,
    rng: u64,
    local: Option<(IpAddr, InterfaceAddresses)>,
    negotiated: Option<Negotiated>,
    desired: DesiredRoutes,
    held: Arc<BTreeSet<IpNetwork>>,
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
            held: Arc::default(),
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
        self.held = export.held;
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
                self.initial_wait(),
            ));
        }
    }

    /// The bound on the wait for the peer's End-of-RIB: `initial_routes_wait`, or longer for a
    /// peer that promised one (it advertised graceful restart).
    fn initial_wait(&self) -> Duration {
        let promised = self
            .negotiated
            .as_ref()
            .is_some_and(|n| n.peer_capabilities.graceful_restart.is_some());
        if promised {
            self.cfg.initial_routes_wait.max(END_OF_RIB_PROMISED_WAIT)
        } else {
            self.cfg.initial_routes_wait
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
        self.close_session(&reason, out);
        out.push(Output::StartTimer(Timer::ConnectRetry, idle_hold));
        let reason = StateReason::Down {
            reason,
            next_attempt: Some(idle_hold),
        };
        self.transition(State::Idle, reason, out);
    }

    /// Tells the peer why when `reason` calls for a NOTIFICATION, closes, and forgets the
    /// session.
    fn close_session(&mut self, reason: &DownReason, out: &mut Vec<Output>) {
        if let Some(n) = reason.notification() {
            self.send(Message::Notification(n), out);
        }
        out.push(Output::Close);
        self.stop_session_timers(out);
        self.reset_session();
        self.last_error = Some(reason.clone());
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
                self.close_session(&reason, out);
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
                    waited: self.initial_wait(),
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
        let synced = self.rib_out.sync(desired, &self.held, &policy);
        out.extend(synced.warning.map(Output::Warn));
        for update in synced.updates {
            self.send(Message::Update(update), out);
        }
    }
}

#[cfg(test)]
mod tests;
