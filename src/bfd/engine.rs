//! The BFD engine: every session on one thread of its own, running its own single-threaded
//! tokio runtime, so nothing on the daemon's runtime (a stuck check, a slow reload, a large
//! table copied for the CLI) can delay a packet or a detection. It only does I/O and timers
//! around the pure machines of `fsm.rs`.
//!
//! The daemon talks to it through commands; each session publishes a [`BfdStatus`] on a watch
//! channel. Sockets are created by the caller, so a port that cannot be bound is an error
//! where the session is configured, not later on the engine's thread.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tracing::{debug, error, info, warn};

use super::auth::AuthKey;
use super::fsm::{Fsm, Input, Intervals, Output, SessionConfig, Timer};
use super::packet::{ControlPacket, SessionState, CONTROL_PORT, SOURCE_PORTS};
use super::socket;
use super::status::BfdStatus;

/// How long a removed session keeps saying AdminDown before it is forgotten.
const ADMIN_DOWN_LINGER: Duration = Duration::from_secs(1);
/// Drops are logged at most this often per session (they are all counted).
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);
/// Datagrams read per wake-up, so timers are not starved by a flood.
const READ_BATCH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Where we listen (RFC 5881: 3784).
    pub port: u16,
    /// Where peers listen (3784; tests run two engines on one host with other ports).
    pub peer_port: u16,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            port: CONTROL_PORT,
            peer_port: CONTROL_PORT,
        }
    }
}

/// One session to set up.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// For logs: the BGP peer's name.
    pub name: String,
    pub peer: IpAddr,
    /// The interface of a link-local peer.
    pub interface: Option<String>,
    /// Source address; the kernel's choice when absent.
    pub local: Option<IpAddr>,
    pub intervals: Intervals,
    pub auth: Option<AuthKey>,
}

enum Command {
    Listen(usize, std::net::UdpSocket),
    Add(Box<NewSession>),
    SetIntervals(u64, Intervals),
    Remove(u64),
}

struct NewSession {
    id: u64,
    spec: SessionSpec,
    dest: SocketAddr,
    socket: std::net::UdpSocket,
    fsm: Fsm,
    status: watch::Sender<BfdStatus>,
}

/// The daemon's handle on the engine thread. Dropping it ends the thread (after telling every
/// peer AdminDown).
pub struct Engine {
    opts: EngineOptions,
    commands: mpsc::UnboundedSender<Command>,
    listening: [bool; 2],
    next_id: u64,
    discr_mask: u32,
    rng: u64,
}

fn family(ip: IpAddr) -> usize {
    usize::from(ip.is_ipv6())
}

impl Engine {
    /// Starts the engine's thread.
    pub fn start(opts: EngineOptions) -> io::Result<Engine> {
        let (commands, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("primaryd-bfd".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => rt.block_on(EngineLoop::default().run(rx)),
                    // Every session's status channel closes with `rx`: their BGP sessions
                    // stop, and the daemon withdraws and exits.
                    Err(e) => error!("BFD engine cannot start its runtime: {e}"),
                }
            })?;
        let rng = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(40);
        Ok(Engine {
            opts,
            commands,
            listening: [false; 2],
            next_id: 0,
            discr_mask: (rng >> 16) as u32,
            rng: rng | 1,
        })
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn send(&self, c: Command) -> io::Result<()> {
        self.commands
            .send(c)
            .map_err(|_| io::Error::other("the BFD engine has stopped"))
    }

    /// Sets a session up: binds the family's receiving socket if needed and the session's
    /// sending socket, then hands both to the engine. The session starts at once, in Down.
    pub fn add(&mut self, spec: SessionSpec) -> io::Result<BfdLink> {
        let dest = crate::bgp::socket::peer_socket_addr(
            spec.peer,
            self.opts.peer_port,
            spec.interface.as_deref(),
        )?;
        let fam = family(spec.peer);
        if !self.listening[fam] {
            let any = match spec.peer {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            let rx = socket::bind_receiver(SocketAddr::new(any, self.opts.port))?;
            self.send(Command::Listen(fam, rx))?;
            self.listening[fam] = true;
        }
        let start = *SOURCE_PORTS.start() + (self.random() % 16384) as u16;
        let sock = socket::bind_sender(spec.peer, spec.local, start)?;
        let source_port = sock.local_addr()?.port();
        // A bijection of the id (odd multiplier, then a random mask): unique among the
        // engine's sessions and not guessable from outside (RFC 5880 §6.3); never 0.
        let (id, discr) = loop {
            let id = self.next_id;
            self.next_id += 1;
            let d = (id as u32).wrapping_mul(0x9e37_79b9) ^ self.discr_mask;
            if d != 0 {
                break (id, d);
            }
        };
        let fsm = Fsm::new(SessionConfig {
            intervals: spec.intervals,
            auth: spec.auth.clone(),
            local_discriminator: discr,
            seed: self.random(),
        });
        let (status, status_rx) = watch::channel(BfdStatus::new(spec.peer, &fsm, source_port));
        self.send(Command::Add(Box::new(NewSession {
            id,
            spec,
            dest,
            socket: sock,
            fsm,
            status,
        })))?;
        Ok(BfdLink {
            id,
            status: status_rx,
            commands: self.commands.clone(),
        })
    }
}

/// One session, owned by its BGP session: dropping it ends the BFD session (AdminDown).
pub struct BfdLink {
    id: u64,
    status: watch::Receiver<BfdStatus>,
    commands: mpsc::UnboundedSender<Command>,
}

impl BfdLink {
    /// A receiver of the session's status (each its own "seen" mark).
    pub fn status(&self) -> watch::Receiver<BfdStatus> {
        self.status.clone()
    }

    /// A handle to change the session's intervals, for the daemon's reload.
    pub fn control(&self) -> BfdControl {
        BfdControl {
            id: self.id,
            commands: self.commands.clone(),
        }
    }
}

impl Drop for BfdLink {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Remove(self.id));
    }
}

#[derive(Clone)]
pub struct BfdControl {
    id: u64,
    commands: mpsc::UnboundedSender<Command>,
}

impl BfdControl {
    /// New intervals, carried to the peer by a Poll Sequence.
    pub fn set_intervals(&self, i: Intervals) {
        let _ = self.commands.send(Command::SetIntervals(self.id, i));
    }
}

// ---------- the engine's thread ----------

struct Session {
    name: String,
    peer: IpAddr,
    dest: SocketAddr,
    /// Sending only, non-blocking; used directly (a datagram is handed to the kernel at once,
    /// tokio's readiness would only delay the first one).
    socket: std::net::UdpSocket,
    fsm: Fsm,
    deadlines: [Option<Instant>; 2],
    status: watch::Sender<BfdStatus>,
    malformed_in: u64,
    send_errors: u64,
    error: Option<String>,
    /// Removed by its owner: saying AdminDown until then.
    ends_at: Option<Instant>,
    last_drop_log: Option<Instant>,
}

impl Session {
    fn slot(t: Timer) -> usize {
        match t {
            Timer::Transmit => 0,
            Timer::Detect => 1,
        }
    }

    /// Whether a datagram from `from` is this session's peer's (the scope matters for
    /// link-local peers).
    fn is_from_peer(&self, from: SocketAddr) -> bool {
        match (from, self.dest) {
            (SocketAddr::V6(f), SocketAddr::V6(d)) if d.scope_id() != 0 => {
                f.ip() == d.ip() && f.scope_id() == d.scope_id()
            }
            _ => from.ip() == self.peer,
        }
    }

    fn log_drop(&mut self, what: &str) {
        let now = Instant::now();
        if self
            .last_drop_log
            .is_none_or(|t| now.duration_since(t) >= DROP_LOG_EVERY)
        {
            self.last_drop_log = Some(now);
            debug!(peer = %self.name, "BFD packet dropped: {what} (logged at most every {} s)", DROP_LOG_EVERY.as_secs());
        }
    }

    fn execute(&mut self, outputs: Vec<Output>) {
        let now = Instant::now();
        for o in outputs {
            match o {
                Output::Send(bytes) => match self.socket.send_to(&bytes, self.dest) {
                    Ok(_) => self.error = None,
                    Err(e) => {
                        self.send_errors += 1;
                        if self.error.is_none() {
                            warn!(peer = %self.name, "BFD send to {} failed: {e}", self.dest);
                        }
                        self.error = Some(format!("send to {}: {e}", self.dest));
                    }
                },
                Output::StartTimer(t, d) => self.deadlines[Self::slot(t)] = Some(now + d),
                Output::StopTimer(t) => self.deadlines[Self::slot(t)] = None,
                Output::StateChanged { from, to, diag } => {
                    let peer = &self.name;
                    if to == SessionState::Up {
                        info!(peer = %peer, "BFD session up ({from} -> Up)");
                    } else if to == SessionState::AdminDown {
                        info!(peer = %peer, "BFD session administratively down");
                    } else if from == SessionState::Up {
                        warn!(peer = %peer, "BFD session down: {diag} (Up -> {to})");
                    } else {
                        debug!(peer = %peer, "BFD {from} -> {to} ({diag})");
                    }
                }
                Output::Dropped(why) => self.log_drop(&why.describe()),
            }
        }
        let fsm = &self.fsm;
        let (malformed, send_errors, error) =
            (self.malformed_in, self.send_errors, self.error.clone());
        self.status.send_if_modified(|s| {
            let notify = s.update(fsm);
            s.malformed_in = malformed;
            s.send_errors = send_errors;
            s.error = error;
            notify
        });
    }
}

#[derive(Default)]
struct EngineLoop {
    receivers: [Option<UdpSocket>; 2],
    sessions: BTreeMap<u64, Session>,
}

enum Wake {
    Command(Option<Command>),
    Readable(usize),
    Timers,
}

async fn readable(s: &Option<UdpSocket>) {
    match s {
        Some(s) => {
            let _ = s.readable().await;
        }
        None => std::future::pending().await,
    }
}

impl EngineLoop {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            match self.wait(&mut commands).await {
                Wake::Command(Some(c)) => self.command(c),
                Wake::Command(None) => {
                    // The daemon is gone or exiting: say goodbye on purpose.
                    for s in self.sessions.values_mut() {
                        let out = s.fsm.process(Input::AdminDown);
                        s.execute(out);
                    }
                    return;
                }
                Wake::Readable(fam) => self.receive(fam),
                Wake::Timers => self.fire_timers(),
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .flat_map(|s| s.deadlines.iter().copied().chain([s.ends_at]))
            .flatten()
            .min()
    }

    async fn wait(&self, commands: &mut mpsc::UnboundedReceiver<Command>) -> Wake {
        let next = self.next_deadline();
        let timers = async {
            match next {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Timers first: a burst of packets or commands must not delay a detection.
            biased;
            () = timers => Wake::Timers,
            c = commands.recv() => Wake::Command(c),
            () = readable(&self.receivers[0]) => Wake::Readable(0),
            () = readable(&self.receivers[1]) => Wake::Readable(1),
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Listen(fam, sock) => match UdpSocket::from_std(sock) {
                Ok(s) => self.receivers[fam] = Some(s),
                Err(e) => error!("BFD: cannot use the receiving socket: {e}"),
            },
            Command::Add(n) => {
                let NewSession {
                    id,
                    spec,
                    dest,
                    socket,
                    fsm,
                    status,
                } = *n;
                info!(peer = %spec.name, "BFD session to {dest} starting ({:?} x {})", spec.intervals.desired_min_tx, spec.intervals.detect_mult);
                let mut s = Session {
                    name: spec.name,
                    peer: spec.peer,
                    dest,
                    socket,
                    fsm,
                    deadlines: [None; 2],
                    status,
                    malformed_in: 0,
                    send_errors: 0,
                    error: None,
                    ends_at: None,
                    last_drop_log: None,
                };
                let out = s.fsm.process(Input::Start);
                s.execute(out);
                self.sessions.insert(id, s);
            }
            Command::SetIntervals(id, i) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    info!(peer = %s.name, "BFD intervals now {:?}/{:?} x {} (Poll Sequence)", i.desired_min_tx, i.required_min_rx, i.detect_mult);
                    let out = s.fsm.process(Input::SetIntervals(i));
                    s.execute(out);
                }
            }
            Command::Remove(id) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    let out = s.fsm.process(Input::AdminDown);
                    s.execute(out);
                    s.ends_at = Some(Instant::now() + ADMIN_DOWN_LINGER);
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        self.sessions
            .retain(|_, s| s.ends_at.is_none_or(|t| t > now));
        for s in self.sessions.values_mut() {
            for t in Timer::ALL {
                let slot = Session::slot(t);
                if s.deadlines[slot].is_some_and(|d| d <= now) {
                    s.deadlines[slot] = None;
                    let out = s.fsm.process(Input::TimerExpired(t));
                    s.execute(out);
                }
            }
        }
    }

    fn receive(&mut self, fam: usize) {
        let mut buf = [0u8; 512];
        for _ in 0..READ_BATCH {
            let Some(sock) = &self.receivers[fam] else {
                return;
            };
            let got = sock.try_io(Interest::READABLE, || socket::receive(sock, &mut buf));
            match got {
                Ok(d) => {
                    let len = d.len.min(buf.len());
                    self.datagram(&buf[..len], d.from, d.ttl);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!("BFD receive failed: {e}");
                    return;
                }
            }
        }
    }

    /// RFC 5880 §6.8.6 demultiplexing: by Your Discriminator when the peer knows ours, else
    /// by the source address; either way only from the session's peer.
    fn datagram(&mut self, bytes: &[u8], from: SocketAddr, ttl: Option<u8>) {
        let packet = match ControlPacket::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                match self.sessions.values_mut().find(|s| s.is_from_peer(from)) {
                    Some(s) => {
                        s.malformed_in += 1;
                        s.log_drop(&format!("malformed ({}): {e}", e.kind()));
                        s.execute(Vec::new());
                    }
                    None => debug!("BFD: malformed packet from {from}, no session: {e}"),
                }
                return;
            }
        };
        let session = if packet.your_discriminator != 0 {
            self.sessions
                .values_mut()
                .find(|s| s.fsm.local_discriminator() == packet.your_discriminator)
        } else {
            self.sessions
                .values_mut()
                .find(|s| s.is_from_peer(from) && s.ends_at.is_none())
        };
        let Some(s) = session else {
            debug!(
                "BFD: packet from {from} for no session (Your Discriminator {})",
                packet.your_discriminator
            );
            return;
        };
        if !s.is_from_peer(from) {
            s.log_drop(&format!("from {from}, not the session's peer"));
            return;
        }
        let out = s.fsm.process(Input::Received {
            packet,
            raw: bytes.to_vec(),
            ttl,
        });
        s.execute(out);
    }
}
