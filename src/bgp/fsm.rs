//! The BGP session state machine (RFC 4271 §8), pure: `process(input) -> outputs`. It owns no
//! socket and no clock: connecting, sending, closing and timers are outputs the driver
//! (`session.rs`) carries out, and timer expiry comes back as an input. Every test of the
//! protocol's behaviour therefore runs without sockets or sleeps.
//!
//! Scope of this release: active connections only (no listening, so no collision detection),
//! IPv4 unicast, one attribute set for all our prefixes. The Adj-RIB-Out lives here so that a
//! session that comes up announces exactly the current desired routes, and one that goes down
//! forgets what it had sent.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnetwork::Ipv4Network;

use super::message::{
    code, subcode, Capabilities, Message, Notification, Open, Origin, PathAttributes, Update,
    AFI_IPV4, SAFI_UNICAST,
};
use crate::announcer::{self, DesiredRoutes};

/// Hold timer used while waiting for the peer's OPEN (RFC 4271 §8: "a large value", 4 min).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsmConfig {
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    pub remote_asn: u32,
    /// Hold time we offer, seconds (0 or >= 3).
    pub hold_time: u16,
    /// First reconnect delay; doubles after each failed attempt up to `connect_retry_max`.
    pub connect_retry_min: Duration,
    pub connect_retry_max: Duration,
    /// How long a TCP connect may take before it is abandoned and retried.
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not connected; a ConnectRetry timer may be running (or stopped for good).
    Idle,
    /// TCP connect in progress.
    Connect,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Administrative start: connect now.
    Start,
    /// Administrative stop: withdraw, send Cease/Administrative Shutdown with `message`, close,
    /// and stay down.
    Stop {
        message: String,
    },
    TcpConnected {
        local: IpAddr,
    },
    TcpFailed {
        error: String,
    },
    /// The peer closed the connection, or reading/writing it failed.
    TcpClosed {
        error: String,
    },
    Received(Message),
    /// The codec rejected what the peer sent; the notification says why.
    Malformed(Notification),
    TimerExpired(Timer),
    /// The prefixes we should advertise changed.
    Routes(DesiredRoutes),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer.
    Connect,
    Send(Message),
    /// Flush what was sent, then close the connection (or abandon the connect attempt).
    Close,
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    StateChanged {
        from: State,
        to: State,
        reason: String,
    },
}

/// What the OPEN exchange settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub hold_time: u16,
    pub keepalive: u16,
    pub four_octet_asn: bool,
    pub ipv4_unicast: bool,
    pub peer_router_id: Ipv4Addr,
    pub local_address: IpAddr,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub messages_in: u64,
    pub messages_out: u64,
    pub updates_in: u64,
    pub updates_out: u64,
    /// Malformed messages from the peer (each ended the session with a NOTIFICATION).
    pub malformed_in: u64,
    pub notifications_in: u64,
    pub notifications_out: u64,
    pub established_transitions: u64,
}

pub struct Fsm {
    cfg: FsmConfig,
    state: State,
    stopped: bool,
    retry_delay: Duration,
    local_address: Option<IpAddr>,
    negotiated: Option<Negotiated>,
    desired: DesiredRoutes,
    rib_out: BTreeSet<Ipv4Network>,
    counters: Counters,
    last_error: Option<String>,
}

impl Fsm {
    pub fn new(cfg: FsmConfig) -> Self {
        let retry_delay = cfg.connect_retry_min;
        Fsm {
            cfg,
            state: State::Idle,
            stopped: true,
            retry_delay,
            local_address: None,
            negotiated: None,
            desired: DesiredRoutes::new(),
            rib_out: BTreeSet::new(),
            counters: Counters::default(),
            last_error: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn rib_out(&self) -> &BTreeSet<Ipv4Network> {
        &self.rib_out
    }
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The OPEN we send: our real ASN (the codec puts AS_TRANS in "My AS" when it needs 4
    /// bytes), always with the 4-octet-ASN capability and IPv4 unicast.
    pub fn our_open(&self) -> Open {
        Open {
            asn: self.cfg.local_asn,
            hold_time: self.cfg.hold_time,
            router_id: self.cfg.router_id,
            capabilities: Capabilities {
                four_octet_asn: Some(self.cfg.local_asn),
                multiprotocol: vec![(AFI_IPV4, SAFI_UNICAST)],
                route_refresh: false,
                other: Vec::new(),
            },
        }
    }

    pub fn process(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.start(&mut out),
            Input::Stop { message } => self.stop(&message, &mut out),
            Input::TcpConnected { local } => self.tcp_connected(local, &mut out),
            Input::TcpFailed { error } => {
                if self.state == State::Connect {
                    self.fail(format!("connect failed: {error}"), None, &mut out);
                }
            }
            Input::TcpClosed { error } => {
                if self.is_connected() {
                    self.fail(format!("connection closed: {error}"), None, &mut out);
                }
            }
            Input::Received(msg) => self.received(msg, &mut out),
            Input::Malformed(n) => {
                if self.is_connected() {
                    self.counters.malformed_in += 1;
                    self.fail(
                        format!("malformed message from peer: {n}"),
                        Some(n),
                        &mut out,
                    );
                }
            }
            Input::TimerExpired(t) => self.timer_expired(t, &mut out),
            Input::Routes(desired) => {
                self.desired = desired;
                if self.state == State::Established {
                    self.sync_routes(&mut out);
                }
            }
        }
        out
    }

    fn is_connected(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    fn transition(&mut self, to: State, reason: impl Into<String>, out: &mut Vec<Output>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        if to == State::Established {
            self.counters.established_transitions += 1;
            // A session that stays up long enough to establish resets the backoff.
            self.retry_delay = self.cfg.connect_retry_min;
        }
        out.push(Output::StateChanged {
            from,
            to,
            reason: reason.into(),
        });
    }

    fn send(&mut self, msg: Message, out: &mut Vec<Output>) {
        self.counters.messages_out += 1;
        match &msg {
            Message::Update(_) => self.counters.updates_out += 1,
            Message::Notification(_) => self.counters.notifications_out += 1,
            _ => {}
        }
        out.push(Output::Send(msg));
    }

    fn start(&mut self, out: &mut Vec<Output>) {
        if !self.stopped {
            return;
        }
        self.stopped = false;
        self.connect(out);
    }

    fn connect(&mut self, out: &mut Vec<Output>) {
        self.transition(State::Connect, "connecting", out);
        out.push(Output::Connect);
        out.push(Output::StartTimer(
            Timer::ConnectRetry,
            self.cfg.connect_timeout,
        ));
    }

    fn stop(&mut self, message: &str, out: &mut Vec<Output>) {
        self.stopped = true;
        match self.state {
            State::Idle => out.push(Output::StopTimer(Timer::ConnectRetry)),
            State::Connect => {
                out.push(Output::Close);
                out.push(Output::StopTimer(Timer::ConnectRetry));
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                if self.state == State::Established && !self.rib_out.is_empty() {
                    // Withdraw explicitly before the Cease: the peer drops the routes either
                    // way, but this way it does not depend on how it handles the close.
                    let withdrawn = std::mem::take(&mut self.rib_out).into_iter().collect();
                    self.send(
                        Message::Update(Update {
                            withdrawn,
                            ..Update::default()
                        }),
                        out,
                    );
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
        self.transition(State::Idle, format!("administrative stop: {message}"), out);
    }

    fn stop_session_timers(&self, out: &mut Vec<Output>) {
        out.push(Output::StopTimer(Timer::Hold));
        out.push(Output::StopTimer(Timer::Keepalive));
    }

    fn reset_session(&mut self) {
        self.negotiated = None;
        self.local_address = None;
        self.rib_out.clear();
    }

    /// Ends the session after an error: optionally tells the peer why, closes, and schedules a
    /// reconnect with capped exponential backoff.
    fn fail(&mut self, reason: String, notify: Option<Notification>, out: &mut Vec<Output>) {
        if let Some(n) = notify {
            self.send(Message::Notification(n), out);
        }
        out.push(Output::Close);
        self.stop_session_timers(out);
        self.reset_session();
        self.last_error = Some(reason.clone());
        let delay = self.retry_delay;
        self.retry_delay = (self.retry_delay * 2).min(self.cfg.connect_retry_max);
        out.push(Output::StartTimer(Timer::ConnectRetry, delay));
        self.transition(
            State::Idle,
            format!("{reason}; retrying in {} ms", delay.as_millis()),
            out,
        );
    }

    fn tcp_connected(&mut self, local: IpAddr, out: &mut Vec<Output>) {
        if self.state != State::Connect {
            // A connect that completed after we gave up on it or were stopped.
            out.push(Output::Close);
            return;
        }
        out.push(Output::StopTimer(Timer::ConnectRetry));
        self.local_address = Some(local);
        let open = self.our_open();
        self.send(Message::Open(open), out);
        out.push(Output::StartTimer(Timer::Hold, OPEN_HOLD_TIME));
        self.transition(State::OpenSent, "TCP connected, OPEN sent", out);
    }

    fn timer_expired(&mut self, timer: Timer, out: &mut Vec<Output>) {
        match (timer, self.state) {
            (Timer::ConnectRetry, State::Idle) if !self.stopped => self.connect(out),
            (Timer::ConnectRetry, State::Connect) => {
                let ms = self.cfg.connect_timeout.as_millis();
                self.fail(format!("connect timed out after {ms} ms"), None, out);
            }
            (Timer::Hold, s) if self.is_connected() => {
                let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new());
                self.fail(format!("hold timer expired in {s}"), Some(n), out);
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                self.send(Message::Keepalive, out);
                if let Some(n) = &self.negotiated {
                    let every = Duration::from_secs(n.keepalive.into());
                    out.push(Output::StartTimer(Timer::Keepalive, every));
                }
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

    fn received(&mut self, msg: Message, out: &mut Vec<Output>) {
        if !self.is_connected() {
            return;
        }
        self.counters.messages_in += 1;
        if let Message::Notification(n) = &msg {
            self.counters.notifications_in += 1;
            self.fail(format!("NOTIFICATION received: {n}"), None, out);
            return;
        }
        match (self.state, msg) {
            (State::OpenSent, Message::Open(open)) => self.open_received(open, out),
            (State::OpenConfirm, Message::Keepalive) => {
                self.restart_hold_timer(out);
                self.transition(State::Established, "KEEPALIVE received", out);
                self.sync_routes(out);
            }
            (State::Established, Message::Keepalive) => self.restart_hold_timer(out),
            (State::Established, Message::Update(_)) => {
                // Received routes are not used in this release; the codec already validated
                // the message, so counting it is all there is to do.
                self.counters.updates_in += 1;
                self.restart_hold_timer(out);
            }
            (State::Established, Message::RouteRefresh { .. }) => {
                // We did not advertise the capability; RFC 2918 §4 says to ignore it.
                self.restart_hold_timer(out);
            }
            (state, msg) => {
                let sub = match state {
                    State::OpenSent => subcode::UNEXPECTED_IN_OPENSENT,
                    State::OpenConfirm => subcode::UNEXPECTED_IN_OPENCONFIRM,
                    _ => subcode::UNEXPECTED_IN_ESTABLISHED,
                };
                let n = Notification::new(code::FSM, sub, Vec::new());
                self.fail(
                    format!("unexpected {} in {state}", msg.kind()),
                    Some(n),
                    out,
                );
            }
        }
    }

    fn open_received(&mut self, open: Open, out: &mut Vec<Output>) {
        let open_error = |sub: u8, data: Vec<u8>| Notification::new(code::OPEN_MESSAGE, sub, data);
        if open.asn != self.cfg.remote_asn {
            let reason = format!(
                "peer sent AS {} but is configured as AS {}",
                open.asn, self.cfg.remote_asn
            );
            return self.fail(reason, Some(open_error(subcode::BAD_PEER_AS, vec![])), out);
        }
        let ibgp = self.cfg.local_asn == self.cfg.remote_asn;
        if ibgp && open.router_id == self.cfg.router_id {
            let reason = format!("iBGP peer uses our router id {}", open.router_id);
            return self.fail(
                reason,
                Some(open_error(subcode::BAD_BGP_IDENTIFIER, vec![])),
                out,
            );
        }
        if open.hold_time == 1 || open.hold_time == 2 {
            let reason = format!("unacceptable hold time {} from peer", open.hold_time);
            let n = open_error(subcode::UNACCEPTABLE_HOLD_TIME, vec![]);
            return self.fail(reason, Some(n), out);
        }
        let four_octet_asn = open.capabilities.four_octet_asn.is_some();
        if !four_octet_asn && self.cfg.local_asn > u32::from(u16::MAX) {
            // RFC 6793's AS_TRANS/AS4_PATH handling for old speakers is not implemented:
            // refuse clearly rather than send a path the peer would misread.
            let mut cap = vec![65, 4];
            cap.extend_from_slice(&self.cfg.local_asn.to_be_bytes());
            let reason = format!(
                "peer does not support 4-byte ASNs, which our AS {} needs",
                self.cfg.local_asn
            );
            let n = open_error(subcode::UNSUPPORTED_CAPABILITY, cap);
            return self.fail(reason, Some(n), out);
        }
        let hold_time = self.cfg.hold_time.min(open.hold_time);
        let keepalive = if hold_time == 0 {
            0
        } else {
            (hold_time / 3).max(1)
        };
        let Some(local_address) = self.local_address else {
            // tcp_connected always sets it before OpenSent; treat a gap as a bug, not a panic.
            return self.fail("internal: no local address".into(), None, out);
        };
        self.negotiated = Some(Negotiated {
            hold_time,
            keepalive,
            four_octet_asn,
            ipv4_unicast: open.capabilities.ipv4_unicast(),
            peer_router_id: open.router_id,
            local_address,
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
            format!("OPEN received, hold time {hold_time} s"),
            out,
        );
    }

    /// Brings the Adj-RIB-Out to the desired routes with at most one withdraw-and-announce
    /// UPDATE (the driver splits it into frames that fit).
    fn sync_routes(&mut self, out: &mut Vec<Output>) {
        let Some(n) = &self.negotiated else { return };
        if !n.ipv4_unicast {
            return;
        }
        let IpAddr::V4(next_hop) = n.local_address else {
            // IPv6 transport is refused by config in this release.
            return;
        };
        let d = announcer::diff(&self.rib_out, &self.desired);
        if d.is_empty() {
            return;
        }
        let ebgp = self.cfg.local_asn != self.cfg.remote_asn;
        let attributes = (!d.announce.is_empty()).then(|| PathAttributes {
            origin: Origin::Igp,
            as_path: if ebgp {
                vec![self.cfg.local_asn]
            } else {
                vec![]
            },
            next_hop,
        });
        for p in &d.withdraw {
            self.rib_out.remove(p);
        }
        self.rib_out.extend(d.announce.iter().copied());
        let update = Update {
            withdrawn: d.withdraw,
            attributes,
            nlri: d.announce,
        };
        self.send(Message::Update(update), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "198.18.1.1";

    fn cfg() -> FsmConfig {
        FsmConfig {
            local_asn: 4_200_000_001,
            router_id: "198.19.0.11".parse().unwrap(),
            remote_asn: 65001,
            hold_time: 9,
            connect_retry_min: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(5),
        }
    }

    fn peer_open(hold: u16) -> Open {
        Open {
            asn: 65001,
            hold_time: hold,
            router_id: "198.19.0.1".parse().unwrap(),
            capabilities: Capabilities {
                four_octet_asn: Some(65001),
                multiprotocol: vec![(1, 1)],
                route_refresh: true,
                other: vec![73],
            },
        }
    }

    fn pfx(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    fn sent(out: &[Output]) -> Vec<Message> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// The single message sent, failing the test if there is not exactly one.
    fn only_sent(out: &[Output]) -> Message {
        let msgs = sent(out);
        assert_eq!(msgs.len(), 1, "expected one message: {out:?}");
        msgs.into_iter().next().unwrap()
    }

    fn notification(out: &[Output]) -> Option<Notification> {
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

    fn connected(f: &mut Fsm) -> Vec<Output> {
        f.process(Input::Start);
        f.process(Input::TcpConnected {
            local: LOCAL.parse().unwrap(),
        })
    }

    fn established(routes: &[&str]) -> Fsm {
        let mut f = Fsm::new(cfg());
        f.process(Input::Routes(routes.iter().map(|r| pfx(r)).collect()));
        connected(&mut f);
        f.process(Input::Received(Message::Open(peer_open(3))));
        f.process(Input::Received(Message::Keepalive));
        assert_eq!(f.state(), State::Established);
        f
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
    fn connect_sends_open_with_four_octet_asn_capability() {
        let mut f = Fsm::new(cfg());
        let out = connected(&mut f);
        assert_eq!(f.state(), State::OpenSent);
        let Message::Open(open) = only_sent(&out) else {
            panic!("expected one OPEN: {out:?}")
        };
        assert_eq!(open.asn, 4_200_000_001);
        assert_eq!(open.capabilities.four_octet_asn, Some(4_200_000_001));
        assert_eq!(open.capabilities.multiprotocol, [(1, 1)]);
        assert_eq!(open.hold_time, 9);
        assert!(out.contains(&Output::StartTimer(Timer::Hold, OPEN_HOLD_TIME)));
    }

    #[test]
    fn failed_connects_back_off_exponentially_up_to_the_cap() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        let mut delays = Vec::new();
        for _ in 0..6 {
            let out = f.process(Input::TcpFailed {
                error: "refused".into(),
            });
            assert_eq!(f.state(), State::Idle);
            delays.push(retry_delay(&out).unwrap().as_secs());
            let out = f.process(Input::TimerExpired(Timer::ConnectRetry));
            assert!(out.contains(&Output::Connect));
        }
        assert_eq!(delays, [1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn backoff_resets_once_established() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        for _ in 0..3 {
            f.process(Input::TcpFailed { error: "x".into() });
            f.process(Input::TimerExpired(Timer::ConnectRetry));
        }
        f.process(Input::TcpConnected {
            local: LOCAL.parse().unwrap(),
        });
        f.process(Input::Received(Message::Open(peer_open(3))));
        f.process(Input::Received(Message::Keepalive));
        let out = f.process(Input::TcpClosed { error: "x".into() });
        assert_eq!(retry_delay(&out), Some(Duration::from_secs(1)));
    }

    #[test]
    fn connect_timeout_abandons_and_retries() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        let out = f.process(Input::TimerExpired(Timer::ConnectRetry));
        assert_eq!(f.state(), State::Idle);
        assert!(out.contains(&Output::Close));
        assert_eq!(retry_delay(&out), Some(Duration::from_secs(1)));
        assert!(f.last_error().unwrap().contains("timed out"));
    }

    #[test]
    fn hold_time_is_the_smaller_one_and_keepalive_a_third() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let out = f.process(Input::Received(Message::Open(peer_open(3))));
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
        f.process(Input::Received(Message::Open(peer_open(180))));
        let n = f.negotiated().unwrap();
        assert_eq!((n.hold_time, n.keepalive), (9, 3));
    }

    #[test]
    fn hold_time_zero_means_no_timers() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let out = f.process(Input::Received(Message::Open(peer_open(0))));
        assert_eq!(f.negotiated().unwrap().hold_time, 0);
        assert!(!out
            .iter()
            .any(|o| matches!(o, Output::StartTimer(Timer::Hold | Timer::Keepalive, _))));
        assert!(out.contains(&Output::StopTimer(Timer::Hold)));
        // Keepalive from the peer still completes the handshake.
        f.process(Input::Received(Message::Keepalive));
        assert_eq!(f.state(), State::Established);
    }

    #[test]
    fn hold_time_one_or_two_is_refused() {
        for hold in [1, 2] {
            let mut f = Fsm::new(cfg());
            connected(&mut f);
            let out = f.process(Input::Received(Message::Open(peer_open(hold))));
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
        let out = f.process(Input::Received(Message::Open(open)));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (2, 2));
        assert!(f.last_error().unwrap().contains("65002"));
    }

    #[test]
    fn peer_without_four_octet_asn_is_refused_when_we_need_it() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let mut open = peer_open(3);
        open.capabilities.four_octet_asn = None;
        let out = f.process(Input::Received(Message::Open(open.clone())));
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
        f.process(Input::Received(Message::Open(open)));
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
        let out = f.process(Input::Received(Message::Open(open)));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (2, 3));
    }

    #[test]
    fn established_session_announces_current_routes_with_our_path() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Routes([pfx("192.0.2.10/32")].into()));
        connected(&mut f);
        f.process(Input::Received(Message::Open(peer_open(3))));
        let out = f.process(Input::Received(Message::Keepalive));
        assert_eq!(f.state(), State::Established);
        let Message::Update(u) = only_sent(&out) else {
            panic!("expected one UPDATE: {out:?}")
        };
        assert_eq!(u.nlri, [pfx("192.0.2.10/32")]);
        assert!(u.withdrawn.is_empty());
        let a = u.attributes.unwrap();
        assert_eq!(a.as_path, [4_200_000_001]);
        assert_eq!(a.origin, Origin::Igp);
        assert_eq!(a.next_hop, LOCAL.parse::<Ipv4Addr>().unwrap());
    }

    #[test]
    fn nothing_is_announced_without_desired_routes() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        f.process(Input::Received(Message::Open(peer_open(3))));
        let out = f.process(Input::Received(Message::Keepalive));
        assert!(sent(&out).is_empty());
    }

    #[test]
    fn route_changes_become_announce_and_withdraw() {
        let mut f = established(&["192.0.2.10/32"]);
        let out = f.process(Input::Routes(DesiredRoutes::new()));
        let Message::Update(u) = only_sent(&out) else {
            panic!("{out:?}")
        };
        assert_eq!(u.withdrawn, [pfx("192.0.2.10/32")]);
        assert!(u.nlri.is_empty() && u.attributes.is_none());
        assert!(f.rib_out().is_empty());
        // The same desired set again sends nothing.
        assert!(sent(&f.process(Input::Routes(DesiredRoutes::new()))).is_empty());
        let out = f.process(Input::Routes([pfx("192.0.2.10/32")].into()));
        let Message::Update(u) = only_sent(&out) else {
            panic!("{out:?}")
        };
        assert_eq!(u.nlri, [pfx("192.0.2.10/32")]);
    }

    #[test]
    fn route_changes_before_established_are_remembered_not_sent() {
        let mut f = Fsm::new(cfg());
        connected(&mut f);
        let out = f.process(Input::Routes([pfx("192.0.2.10/32")].into()));
        assert!(sent(&out).is_empty());
        f.process(Input::Received(Message::Open(peer_open(3))));
        let out = f.process(Input::Received(Message::Keepalive));
        assert_eq!(sent(&out).len(), 1);
    }

    #[test]
    fn ibgp_sends_an_empty_as_path() {
        let mut f = Fsm::new(FsmConfig {
            remote_asn: 4_200_000_001,
            ..cfg()
        });
        f.process(Input::Routes([pfx("192.0.2.10/32")].into()));
        connected(&mut f);
        let mut open = peer_open(3);
        open.asn = 4_200_000_001;
        f.process(Input::Received(Message::Open(open)));
        let out = f.process(Input::Received(Message::Keepalive));
        let Message::Update(u) = only_sent(&out) else {
            panic!("{out:?}")
        };
        assert!(u.attributes.unwrap().as_path.is_empty());
    }

    #[test]
    fn peer_without_ipv4_unicast_gets_no_routes() {
        let mut f = Fsm::new(cfg());
        f.process(Input::Routes([pfx("192.0.2.10/32")].into()));
        connected(&mut f);
        let mut open = peer_open(3);
        open.capabilities.multiprotocol = vec![(2, 1)];
        f.process(Input::Received(Message::Open(open)));
        let out = f.process(Input::Received(Message::Keepalive));
        assert_eq!(f.state(), State::Established);
        assert!(sent(&out).is_empty());
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
        });
        f.process(Input::Received(Message::Open(peer_open(3))));
        let out = f.process(Input::Received(Message::Keepalive));
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
        let out = f.process(Input::Received(Message::Keepalive));
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
        let out = f.process(Input::Received(Message::Keepalive));
        assert_eq!(
            notification(&out).map(|n| (n.code, n.subcode)),
            Some((5, 1))
        );

        let mut f = Fsm::new(cfg());
        connected(&mut f);
        f.process(Input::Received(Message::Open(peer_open(3))));
        let out = f.process(Input::Received(Message::Update(Update::default())));
        assert_eq!(
            notification(&out).map(|n| (n.code, n.subcode)),
            Some((5, 2))
        );

        let mut f = established(&[]);
        let out = f.process(Input::Received(Message::Open(peer_open(3))));
        assert_eq!(
            notification(&out).map(|n| (n.code, n.subcode)),
            Some((5, 3))
        );
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
        let out = f.process(Input::Received(Message::Notification(Notification::new(
            6,
            2,
            vec![],
        ))));
        assert!(notification(&out).is_none());
        assert!(out.contains(&Output::Close));
        assert_eq!(f.state(), State::Idle);
        assert!(retry_delay(&out).is_some());
        assert!(f.last_error().unwrap().contains("Cease"));
    }

    #[test]
    fn updates_from_peer_are_counted_and_restart_hold() {
        let mut f = established(&[]);
        let out = f.process(Input::Received(Message::Update(Update::default())));
        assert_eq!(f.counters().updates_in, 1);
        assert!(sent(&out).is_empty());
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
        assert!(out.last() != Some(&Output::Connect));
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
        });
        assert_eq!(out, [Output::Close]);
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn stale_timers_and_late_tcp_events_are_ignored() {
        let mut f = Fsm::new(cfg());
        assert!(f.process(Input::TimerExpired(Timer::Hold)).is_empty());
        assert!(f.process(Input::TimerExpired(Timer::Keepalive)).is_empty());
        assert!(f.process(Input::TcpClosed { error: "x".into() }).is_empty());
        assert!(f.process(Input::Received(Message::Keepalive)).is_empty());
    }
}
