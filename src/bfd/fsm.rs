//! The BFD session state machine (RFC 5880 §6.8, asynchronous mode; single hop per RFC 5881),
//! pure like the BGP one: `process(input) -> outputs`. It owns no socket and no clock: packets
//! to send and timers to (re)arm are outputs, received packets and timer expiry are inputs.
//! Jitter and the first authentication sequence number come from a seeded generator, so tests
//! are deterministic.
//!
//! Timer changes follow RFC 5880 §6.8.3: a change of the advertised intervals while Up starts
//! a Poll Sequence; a slower transmission interval or a shorter detection time takes effect
//! only once the peer answered with Final. Going Up is such a change (intervals are at least
//! one second while not Up).

use std::time::Duration;

use super::auth::{self, AuthKey};
use super::packet::{AuthSection, ControlPacket, Diag, SessionState, SHA1_LEN, TTL};

/// RFC 5880 §6.8.3: while the session is not Up, Desired Min TX is at least one second.
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// The intervals a session asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// bfd.DesiredMinTxInterval.
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx: Duration,
    /// bfd.DetectMult.
    pub detect_mult: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub intervals: Intervals,
    pub auth: Option<AuthKey>,
    /// bfd.LocalDiscr: non-zero, unique among the engine's sessions.
    pub local_discriminator: u32,
    /// Seed of the jitter and of the first authentication sequence number.
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The next periodic packet.
    Transmit,
    /// No valid packet from the peer for a Detection Time.
    Detect,
}

impl Timer {
    pub const ALL: [Timer; 2] = [Timer::Transmit, Timer::Detect];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Begin in Down, sending.
    Start,
    /// Going away on purpose: AdminDown with diagnostic 7, which the peer must not take for a
    /// failure (RFC 5882 §3.2). The caller keeps the session a moment so it is heard.
    AdminDown,
    /// A packet demultiplexed to this session: decoded, the raw bytes (for the digest) and
    /// the TTL / hop limit it arrived with.
    Received {
        packet: ControlPacket,
        raw: Vec<u8>,
        ttl: Option<u8>,
    },
    TimerExpired(Timer),
    /// New intervals (a reload); a Poll Sequence carries them to the peer.
    SetIntervals(Intervals),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(Vec<u8>),
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    StateChanged {
        from: SessionState,
        to: SessionState,
        diag: Diag,
    },
    /// A packet this session refused (RFC 5880 §6.8.6, RFC 5881 §5).
    Dropped(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not TTL / hop limit 255: not from a neighbour (RFC 5881 §5).
    Ttl(Option<u8>),
    /// Your Discriminator is not ours.
    Discriminator,
    /// Authentication configured, the packet has none.
    AuthMissing,
    /// The packet is authenticated, this session is not.
    AuthUnexpected,
    /// Another authentication type or key id.
    AuthMismatch,
    /// Sequence number outside the window (a replay).
    AuthSequence,
    AuthDigest,
}

impl DropReason {
    pub fn describe(self) -> String {
        match self {
            DropReason::Ttl(Some(t)) => format!("TTL {t}, not {TTL}"),
            DropReason::Ttl(None) => "TTL unknown".into(),
            DropReason::Discriminator => "Your Discriminator is not this session's".into(),
            DropReason::AuthMissing => "not authenticated".into(),
            DropReason::AuthUnexpected => "authenticated, but no key is configured".into(),
            DropReason::AuthMismatch => "other authentication type or key id".into(),
            DropReason::AuthSequence => "authentication sequence number out of window".into(),
            DropReason::AuthDigest => "wrong authentication digest".into(),
        }
    }

    pub fn is_auth(self) -> bool {
        !matches!(self, DropReason::Ttl(_) | DropReason::Discriminator)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Valid packets accepted.
    pub packets_in: u64,
    pub packets_out: u64,
    /// Packets refused by this session (TTL, discriminator, authentication).
    pub dropped: u64,
    pub dropped_auth: u64,
    /// Times the session went Up, and left Up.
    pub up_transitions: u64,
    pub down_transitions: u64,
    pub polls: u64,
}

/// A Poll Sequence in progress: the values it carries (they take effect at its Final).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Poll {
    desired_min_tx: Duration,
    required_min_rx: Duration,
    /// The values changed again meanwhile: poll once more after this one.
    again: bool,
}

pub struct Fsm {
    cfg: SessionConfig,
    state: SessionState,
    local_diag: Diag,
    remote_state: SessionState,
    remote_diag: Diag,
    remote_discriminator: u32,
    /// bfd.RemoteMinRxInterval: the fastest the peer wants our packets (RFC: initially 1 µs).
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_detect_mult: u8,
    /// The Desired Min TX our own transmission uses now.
    tx_in_use: Duration,
    /// The Required Min RX our detection time uses now.
    rx_in_use: Duration,
    poll: Option<Poll>,
    /// The interval the transmit timer was last armed with.
    armed_tx: Option<Duration>,
    rng: u64,
    xmit_seq: u32,
    /// bfd.RcvAuthSeq when bfd.AuthSeqKnown.
    rcv_seq: Option<u32>,
    /// Detection times passed without a valid packet (AuthSeqKnown resets after two).
    silent_detects: u8,
    counters: Counters,
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn from_us(v: u32) -> Duration {
    Duration::from_micros(u64::from(v))
}

impl Fsm {
    pub fn new(cfg: SessionConfig) -> Fsm {
        let mut rng = cfg.seed | 1;
        let xmit_seq = {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u32
        };
        let i = cfg.intervals;
        Fsm {
            state: SessionState::Down,
            local_diag: Diag::None,
            remote_state: SessionState::Down,
            remote_diag: Diag::None,
            remote_discriminator: 0,
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: Duration::ZERO,
            remote_detect_mult: 0,
            tx_in_use: i.desired_min_tx.max(SLOW_TX),
            rx_in_use: i.required_min_rx,
            poll: None,
            armed_tx: None,
            rng,
            xmit_seq,
            rcv_seq: None,
            silent_detects: 0,
            counters: Counters::default(),
            cfg,
        }
    }

    pub fn state(&self) -> SessionState {
        self.state
    }
    pub fn remote_state(&self) -> SessionState {
        self.remote_state
    }
    pub fn local_diag(&self) -> Diag {
        self.local_diag
    }
    pub fn remote_diag(&self) -> Diag {
        self.remote_diag
    }
    pub fn local_discriminator(&self) -> u32 {
        self.cfg.local_discriminator
    }
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discriminator
    }
    pub fn intervals(&self) -> Intervals {
        self.cfg.intervals
    }
    pub fn auth(&self) -> Option<&AuthKey> {
        self.cfg.auth.as_ref()
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn remote_min_rx(&self) -> Duration {
        self.remote_min_rx
    }
    pub fn remote_desired_tx(&self) -> Duration {
        self.remote_desired_tx
    }
    pub fn remote_detect_mult(&self) -> u8 {
        self.remote_detect_mult
    }
    pub fn poll_in_progress(&self) -> bool {
        self.poll.is_some()
    }

    /// The peer took the session down on purpose (RFC 5882 §3.2): not a path failure, so a
    /// client must not act on it.
    pub fn remote_admin_down(&self) -> bool {
        self.state == SessionState::Down && self.remote_state == SessionState::AdminDown
    }

    /// The interval between our periodic packets before jitter: the slower of ours and the
    /// peer's wish (RFC 5880 §6.8.7); None when the peer wants none (Required Min RX 0).
    pub fn tx_interval(&self) -> Option<Duration> {
        (!self.remote_min_rx.is_zero()).then(|| self.tx_in_use.max(self.remote_min_rx))
    }

    /// RFC 5880 §6.8.4, asynchronous mode: the peer's Detect Mult times the slower of our
    /// Required Min RX and its Desired Min TX; None before the peer was heard.
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_detect_mult > 0).then(|| {
            self.rx_in_use.max(self.remote_desired_tx) * u32::from(self.remote_detect_mult)
        })
    }

    /// What we advertise now: at least one second while not Up.
    fn advertised(&self) -> (Duration, Duration) {
        let i = self.cfg.intervals;
        let tx = if self.state == SessionState::Up {
            i.desired_min_tx
        } else {
            i.desired_min_tx.max(SLOW_TX)
        };
        (tx, i.required_min_rx)
    }

    pub fn process(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                self.send_now(false, &mut out);
            }
            Input::AdminDown => {
                if self.state != SessionState::AdminDown {
                    self.transition(
                        SessionState::AdminDown,
                        Diag::AdministrativelyDown,
                        &mut out,
                    );
                    out.push(Output::StopTimer(Timer::Detect));
                }
            }
            Input::Received { packet, raw, ttl } => self.received(packet, &raw, ttl, &mut out),
            Input::TimerExpired(Timer::Transmit) => {
                self.armed_tx = None;
                let p = self.packet(false);
                self.emit(p, &mut out);
                self.arm_tx(&mut out);
            }
            Input::TimerExpired(Timer::Detect) => self.detect_expired(&mut out),
            Input::SetIntervals(i) => self.set_intervals(i, &mut out),
        }
        out
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// RFC 5880 §6.8.7: each interval is reduced by 0 to 25 %; with Detect Mult 1 it is 75 to
    /// 90 % of the interval.
    fn jittered(&mut self, d: Duration) -> Duration {
        let unit = (self.next_random() >> 11) as f64 / (1u64 << 53) as f64;
        let top = if self.cfg.intervals.detect_mult == 1 {
            0.90
        } else {
            1.0
        };
        d.mul_f64(0.75 + (top - 0.75) * unit)
    }

    /// Arms the transmit timer for the current interval (or stops it when the peer wants no
    /// periodic packets).
    fn arm_tx(&mut self, out: &mut Vec<Output>) {
        match self.tx_interval() {
            Some(d) => {
                self.armed_tx = Some(d);
                let j = self.jittered(d);
                out.push(Output::StartTimer(Timer::Transmit, j));
            }
            None => {
                self.armed_tx = None;
                out.push(Output::StopTimer(Timer::Transmit));
            }
        }
    }

    /// Re-arms the transmit timer when the interval changed (a peer asking for faster packets
    /// must not wait out the old, slower timer).
    fn rearm_tx_if_changed(&mut self, out: &mut Vec<Output>) {
        if self.tx_interval() != self.armed_tx {
            self.arm_tx(out);
        }
    }

    fn arm_detect(&mut self, out: &mut Vec<Output>) {
        if let Some(d) = self.detection_time() {
            out.push(Output::StartTimer(Timer::Detect, d));
        }
    }

    fn packet(&mut self, final_: bool) -> Vec<u8> {
        let (tx, rx) = self.advertised();
        let auth = self.cfg.auth.as_ref().map(|k| AuthSection::Keyed {
            auth_type: k.auth_type,
            key_id: k.key_id,
            sequence: self.xmit_seq,
            digest: vec![0; SHA1_LEN],
        });
        self.xmit_seq = self.xmit_seq.wrapping_add(1);
        let p = ControlPacket {
            diag: self.local_diag,
            state: self.state,
            // P and F are never both set (RFC 5880 §6.5).
            poll: self.poll.is_some() && !final_,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.cfg.intervals.detect_mult,
            my_discriminator: self.cfg.local_discriminator,
            your_discriminator: self.remote_discriminator,
            desired_min_tx_us: us(tx),
            required_min_rx_us: us(rx),
            required_min_echo_rx_us: 0,
            auth,
        };
        let mut bytes = p.encode();
        if let Some(k) = &self.cfg.auth {
            k.sign(&mut bytes);
        }
        bytes
    }

    fn emit(&mut self, bytes: Vec<u8>, out: &mut Vec<Output>) {
        self.counters.packets_out += 1;
        out.push(Output::Send(bytes));
    }

    /// Sends at once (state change, Final, new intervals) and restarts the periodic timer.
    fn send_now(&mut self, final_: bool, out: &mut Vec<Output>) {
        let p = self.packet(final_);
        self.emit(p, out);
        self.arm_tx(out);
    }

    fn transition(&mut self, to: SessionState, diag: Diag, out: &mut Vec<Output>) {
        let from = self.state;
        if from == to {
            return;
        }
        if to != SessionState::Up {
            self.local_diag = diag;
        }
        self.state = to;
        if to == SessionState::Up {
            self.counters.up_transitions += 1;
        } else if from == SessionState::Up {
            self.counters.down_transitions += 1;
            // Back to the slow rate at once: not Up, so no Poll Sequence (RFC 5880 §6.8.3).
            self.poll = None;
        }
        let (tx, rx) = self.advertised();
        if to == SessionState::Up {
            self.start_poll_if(tx, rx);
            // Faster transmission may start at once; a shorter detection time waits for Final.
            self.tx_in_use = self.tx_in_use.min(tx);
        } else {
            self.tx_in_use = tx;
            self.rx_in_use = rx;
        }
        out.push(Output::StateChanged {
            from,
            to,
            diag: self.local_diag,
        });
        self.send_now(false, out);
    }

    /// Starts a Poll Sequence if the advertised values differ from those in use.
    fn start_poll_if(&mut self, tx: Duration, rx: Duration) {
        if tx == self.tx_in_use && rx == self.rx_in_use && self.poll.is_none() {
            return;
        }
        match &mut self.poll {
            Some(p) => p.again = true,
            None => {
                self.counters.polls += 1;
                self.poll = Some(Poll {
                    desired_min_tx: tx,
                    required_min_rx: rx,
                    again: false,
                })
            }
        }
    }

    fn poll_answered(&mut self) {
        let Some(p) = self.poll.take() else {
            return;
        };
        self.tx_in_use = p.desired_min_tx;
        self.rx_in_use = p.required_min_rx;
        if p.again {
            let (tx, rx) = self.advertised();
            self.counters.polls += 1;
            self.poll = Some(Poll {
                desired_min_tx: tx,
                required_min_rx: rx,
                again: false,
            });
        }
    }

    fn set_intervals(&mut self, i: Intervals, out: &mut Vec<Output>) {
        self.cfg.intervals = i;
        let (tx, rx) = self.advertised();
        if self.state == SessionState::Up {
            self.start_poll_if(tx, rx);
            // Faster transmission and a longer detection time are safe at once; the rest
            // waits for the peer's Final.
            self.tx_in_use = self.tx_in_use.min(tx);
            self.rx_in_use = self.rx_in_use.max(rx);
        } else {
            self.tx_in_use = tx;
            self.rx_in_use = rx;
        }
        if self.state != SessionState::AdminDown {
            self.send_now(false, out);
            self.arm_detect(out);
        }
    }

    fn detect_expired(&mut self, out: &mut Vec<Output>) {
        // RFC 5880 §6.8.1: nothing heard for a Detection Time: forget the peer's
        // discriminator; after twice that, its authentication sequence too.
        self.remote_discriminator = 0;
        if self.remote_state != SessionState::AdminDown {
            // An AdminDown peer may fall silent; that stays "down on purpose" (RFC 5882).
            self.remote_state = SessionState::Down;
        }
        if matches!(self.state, SessionState::Init | SessionState::Up) {
            self.transition(SessionState::Down, Diag::ControlDetectionTimeExpired, out);
        }
        self.silent_detects = self.silent_detects.saturating_add(1);
        if self.silent_detects >= 2 {
            self.rcv_seq = None;
        } else if self.state != SessionState::AdminDown {
            self.arm_detect(out);
        }
    }

    fn drop_packet(&mut self, why: DropReason, out: &mut Vec<Output>) {
        self.counters.dropped += 1;
        if why.is_auth() {
            self.counters.dropped_auth += 1;
        }
        out.push(Output::Dropped(why));
    }

    /// RFC 5880 §6.7.4 for this session's key; Ok(sequence) when the packet passes.
    fn check_auth(&self, p: &ControlPacket, raw: &[u8]) -> Result<Option<u32>, DropReason> {
        match (&self.cfg.auth, &p.auth) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(DropReason::AuthUnexpected),
            (Some(_), None) => Err(DropReason::AuthMissing),
            (
                Some(k),
                Some(AuthSection::Keyed {
                    auth_type,
                    key_id,
                    sequence,
                    ..
                }),
            ) if *auth_type == k.auth_type && *key_id == k.key_id => {
                let meticulous = k.auth_type.meticulous();
                if !auth::sequence_acceptable(meticulous, self.rcv_seq, *sequence, p.detect_mult) {
                    return Err(DropReason::AuthSequence);
                }
                let len = raw.get(3).map_or(0, |l| usize::from(*l)).min(raw.len());
                if !k.verify(&raw[..len]) {
                    return Err(DropReason::AuthDigest);
                }
                Ok(Some(*sequence))
            }
            (Some(_), Some(_)) => Err(DropReason::AuthMismatch),
        }
    }

    fn received(&mut self, p: ControlPacket, raw: &[u8], ttl: Option<u8>, out: &mut Vec<Output>) {
        if ttl != Some(TTL) {
            return self.drop_packet(DropReason::Ttl(ttl), out);
        }
        if p.your_discriminator != 0 && p.your_discriminator != self.cfg.local_discriminator {
            return self.drop_packet(DropReason::Discriminator, out);
        }
        match self.check_auth(&p, raw) {
            Ok(Some(seq)) => self.rcv_seq = Some(seq),
            Ok(None) => {}
            Err(why) => return self.drop_packet(why, out),
        }
        self.counters.packets_in += 1;
        self.silent_detects = 0;
        self.remote_discriminator = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_min_rx = from_us(p.required_min_rx_us);
        self.remote_desired_tx = from_us(p.desired_min_tx_us);
        self.remote_detect_mult = p.detect_mult;
        if p.final_ {
            self.poll_answered();
        }
        if self.state == SessionState::AdminDown {
            return;
        }
        use SessionState::*;
        match (self.state, p.state) {
            (Down | Init | Up, AdminDown) => {
                self.transition(Down, Diag::NeighborSignaledSessionDown, out)
            }
            (Down, Down) => self.transition(Init, Diag::None, out),
            (Down, Init) | (Init, Init | Up) => self.transition(Up, Diag::None, out),
            (Up, Down) => self.transition(Down, Diag::NeighborSignaledSessionDown, out),
            _ => {}
        }
        if p.poll {
            self.send_now(true, out);
        } else {
            self.rearm_tx_if_changed(out);
        }
        self.arm_detect(out);
    }
}

#[cfg(test)]
#[path = "fsm_tests.rs"]
mod tests;
