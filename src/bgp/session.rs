//! The tokio driver of one BGP session: it owns the socket and the timers, turns socket
//! events into FSM inputs and carries out the FSM's outputs. All protocol decisions are in
//! `fsm.rs`; this file only does I/O.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, error, info, warn};

use super::codec::{self, CodecContext};
use super::fsm::{Fsm, FsmConfig, Input, Output, State, Timer};
use super::message::{Family, FsmSubcode, Message, Notification, NotificationKind, Open};
use super::socket;
use super::status::PeerStatus;
use crate::announcer::Exports;
use crate::bfd::engine::BfdLink;
use crate::bfd::status::BfdStatus;
use crate::config::PeerConfig;

/// A write that cannot complete this long means the peer stopped reading: drop the session.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After our last message (a NOTIFICATION, usually) we half-close and wait this long for the
/// peer to close too, so the kernel does not reset the connection under unread data.
const CLOSE_LINGER: Duration = Duration::from_millis(500);
/// How long a peer that connected to us may take to send its OPEN.
const INCOMING_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The Adj-RIB-In in the published status is refreshed at most this often.
const RIB_IN_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;
type IncomingFuture = Pin<Box<dyn Future<Output = (Connection, Result<Open, NoOpen>)> + Send>>;

/// Why a connection the peer opened brought no usable OPEN.
struct NoOpen {
    reason: String,
    /// What to answer with (RFC 4271 §6), when it sent something we can answer.
    notification: Option<Notification>,
    /// The codec rejected it (counted as `malformed_in`).
    malformed: bool,
}

impl NoOpen {
    fn silent(reason: String) -> NoOpen {
        NoOpen {
            reason,
            notification: None,
            malformed: false,
        }
    }
}

struct Connection {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buf: Vec<u8>,
    local: SocketAddr,
}

impl Connection {
    fn new(stream: TcpStream) -> io::Result<Connection> {
        let local = stream.local_addr()?;
        let (reader, writer) = stream.into_split();
        Ok(Connection {
            reader,
            writer,
            buf: Vec::with_capacity(codec::MAX_MESSAGE_LEN),
            local,
        })
    }

    /// Half-closes and waits briefly for the peer's close, so what we sent last (usually a
    /// NOTIFICATION) is read by the peer rather than lost to a reset.
    async fn close(mut self) {
        let _ = timeout(CLOSE_LINGER, async {
            let _ = self.writer.shutdown().await;
            let mut sink = [0u8; 4096];
            while let Ok(n) = self.reader.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

/// What woke the driver up.
enum Event {
    Timer(Timer),
    Connected(io::Result<TcpStream>),
    Read(io::Result<usize>),
    Accepted(TcpStream),
    IncomingOpen(Connection, Result<Open, NoOpen>),
    RoutesChanged(Option<Exports>),
    PublishRibIn,
    StopRequested(String),
    /// The BFD session's state changed; None: its engine is gone.
    Bfd(Option<BfdStatus>),
}

#[derive(Default)]
struct Timers {
    deadlines: [Option<Instant>; Timer::ALL.len()],
}

impl Timers {
    fn slot(t: Timer) -> usize {
        Timer::ALL.iter().position(|x| *x == t).unwrap_or(0)
    }
    fn set(&mut self, t: Timer, d: Option<Duration>) {
        self.deadlines[Self::slot(t)] = d.map(|d| Instant::now() + d);
    }
    fn next(&self) -> Option<(Timer, Instant)> {
        Timer::ALL
            .into_iter()
            .filter_map(|t| self.deadlines[Self::slot(t)].map(|d| (t, d)))
            .min_by_key(|(_, d)| *d)
    }
}

pub struct Session {
    peer: PeerConfig,
    md5_key: Option<String>,
    fsm: Fsm,
    timers: Timers,
    conn: Option<Connection>,
    connecting: Option<ConnectFuture>,
    /// A connection the peer opened, while we wait for its OPEN.
    incoming_open: Option<IncomingFuture>,
    /// A connection the peer opened whose OPEN the FSM is deciding about.
    incoming: Option<Connection>,
    /// Inputs produced while carrying out outputs (a failed write), handled next.
    pending: VecDeque<Input>,
    status: watch::Sender<PeerStatus>,
    /// What the Adj-RIB-In in the status reflects (UPDATEs received, sessions established).
    rib_in_published: (u64, u64),
    rib_in_published_at: Instant,
    /// Woken when what the split-brain rules read changes: the sightings, whether the
    /// initial routes are in, the session number.
    daemon: Option<Arc<Notify>>,
    notified: (u64, bool, u64, u64),
    /// BFD on the path to the peer: the session lives as long as this one.
    bfd: Option<BfdLink>,
    bfd_rx: Option<watch::Receiver<BfdStatus>>,
    /// Whether BFD lets the session run, as last told to the machine.
    bfd_allows: bool,
    /// Stopped for good: the run ends once the machine is Idle.
    stopping: bool,
}

impl Session {
    pub fn new(
        peer: PeerConfig,
        cfg: FsmConfig,
        md5_key: Option<String>,
    ) -> (Self, watch::Receiver<PeerStatus>) {
        let (status, status_rx) = watch::channel(PeerStatus::new(&peer, cfg.local_asn));
        let session = Session {
            peer,
            md5_key,
            fsm: Fsm::new(cfg),
            timers: Timers::default(),
            conn: None,
            connecting: None,
            incoming_open: None,
            incoming: None,
            pending: VecDeque::new(),
            status,
            rib_in_published: (0, 0),
            rib_in_published_at: Instant::now(),
            daemon: None,
            notified: (0, false, 0, 0),
            bfd: None,
            bfd_rx: None,
            bfd_allows: true,
            stopping: false,
        };
        (session, status_rx)
    }

    /// Wakes `daemon` whenever the sightings or the initial-routes state change (after the
    /// status that shows them is published).
    pub fn notify(mut self, daemon: Arc<Notify>) -> Self {
        self.daemon = Some(daemon);
        self
    }

    /// Runs the session under BFD: it starts only once BFD is up and ends the moment BFD
    /// goes down (RFC 5882 §4.3). The BFD session ends with this one.
    pub fn with_bfd(mut self, link: BfdLink) -> Self {
        let status = link.status();
        self.status.send_modify(|s| s.bfd = Some(status.clone()));
        self.bfd_rx = Some(status);
        self.bfd = Some(link);
        self
    }

    /// Tells the machine when BFD's verdict changes.
    fn bfd_changed(&mut self, status: &BfdStatus) {
        let allows = status.verdict().allows_session();
        if allows == self.bfd_allows {
            return;
        }
        self.bfd_allows = allows;
        let peer = &self.peer.name;
        if allows {
            info!(peer = %peer, "BFD: path up ({:?}), BGP may run", status.verdict());
            self.pending.push_back(Input::BfdUp);
        } else {
            let reason = status.down_reason();
            if self.fsm.state() != State::Idle {
                warn!(peer = %peer, "{reason}: closing the BGP session");
            }
            self.pending.push_back(Input::BfdDown { reason });
        }
    }

    fn rib_in_version(&self) -> (u64, u64) {
        let c = self.fsm.counters();
        (c.updates_in, c.established_transitions)
    }

    /// When the published Adj-RIB-In is stale, the time it may next be refreshed.
    fn rib_in_publish_due(&self) -> Option<Instant> {
        (self.rib_in_version() != self.rib_in_published)
            .then_some(self.rib_in_published_at + RIB_IN_PUBLISH_INTERVAL)
    }

    fn publish(&mut self) {
        let now = Instant::now();
        let with_rib_in = self.rib_in_publish_due().is_some_and(|due| now >= due);
        if with_rib_in {
            self.rib_in_published = self.rib_in_version();
            self.rib_in_published_at = now;
        }
        let fsm = &self.fsm;
        self.status.send_modify(|s| s.update_from(fsm, with_rib_in));
        // UPDATEs sent too: the daemon opens a service's refusal once its route is out.
        let seen = (
            fsm.sightings_version(),
            fsm.initial_routes_done(),
            fsm.counters().established_transitions,
            fsm.counters().updates_out,
        );
        if seen != self.notified {
            self.notified = seen;
            if let Some(d) = &self.daemon {
                d.notify_one();
            }
        }
    }

    fn codec_context(&self) -> CodecContext {
        let n = self.fsm.negotiated();
        let add_path = |f| n.is_some_and(|n| n.add_path_rx.contains(&f));
        CodecContext {
            four_octet_asn: n.is_none_or(|n| n.four_octet_asn),
            ibgp: self.peer.remote_asn == self.fsm.config().local_asn,
            add_path_ipv4: add_path(Family::Ipv4Unicast),
            add_path_ipv6: add_path(Family::Ipv6Unicast),
        }
    }

    /// Runs the session until `stop` carries a shutdown message, then withdraws, sends Cease
    /// (Administrative Shutdown) and returns once the connection is closed.
    pub async fn run(
        mut self,
        mut routes: watch::Receiver<Exports>,
        mut stop: watch::Receiver<Option<String>>,
        mut accepted: mpsc::Receiver<TcpStream>,
    ) {
        let initial = routes.borrow_and_update().for_peer(&self.peer.name);
        self.pending.push_back(Input::Routes(initial));
        if let Some(rx) = self.bfd_rx.as_mut() {
            let status = rx.borrow_and_update().clone();
            // Held until BFD is up: the machine starts without BFD's consent otherwise.
            self.bfd_allows = true;
            if !status.verdict().allows_session() {
                info!(peer = %self.peer.name, "waiting for BFD before connecting");
            }
            self.bfd_changed(&status);
        }
        self.pending.push_back(Input::Start);
        loop {
            while let Some(input) = self.pending.pop_front() {
                let outputs = self.fsm.process(input);
                self.execute(outputs).await;
            }
            self.publish();
            if self.stopping && self.fsm.state() == State::Idle {
                return;
            }
            let event = self.wait(&mut routes, &mut stop, &mut accepted).await;
            self.handle(event).await;
        }
    }

    /// Turns what woke the driver into inputs for the machine.
    async fn handle(&mut self, event: Event) {
        match event {
            Event::Timer(t) => {
                self.timers.set(t, None);
                self.pending.push_back(Input::TimerExpired(t));
            }
            Event::Connected(result) => self.connected(result),
            Event::Accepted(stream) => self.accepted(stream),
            Event::IncomingOpen(conn, result) => self.incoming_open(conn, result).await,
            Event::Read(result) => self.on_read(result),
            Event::RoutesChanged(Some(r)) => {
                let export = r.for_peer(&self.peer.name);
                self.pending.push_back(Input::Routes(export));
            }
            Event::PublishRibIn => {}
            // The daemon is gone: nobody can vouch for the routes any more.
            Event::RoutesChanged(None) => self.stop("primaryd route source gone".to_string()),
            Event::StopRequested(message) => self.stop(message),
            Event::Bfd(Some(status)) => self.bfd_changed(&status),
            Event::Bfd(None) => {
                // BFD's engine died: its verdict is unknown, so the session goes (and the
                // daemon, seeing this task end, withdraws everything and exits).
                self.bfd_rx = None;
                let message = "primaryd BFD engine stopped".to_string();
                error!(peer = %self.peer.name, "{message}");
                self.stop(message);
            }
        }
    }

    /// Stops the session for good: the run ends once the machine is Idle.
    fn stop(&mut self, message: String) {
        self.stopping = true;
        self.pending.push_back(Input::Stop { message });
    }

    /// Our connect completed, or failed.
    fn connected(&mut self, result: io::Result<TcpStream>) {
        self.connecting = None;
        let error = match result.map(Connection::new) {
            Ok(Ok(conn)) => {
                let local = conn.local.ip();
                self.conn = Some(conn);
                let interface = socket::interface_addresses(local);
                self.pending
                    .push_back(Input::TcpConnected { local, interface });
                return;
            }
            Ok(Err(e)) => format!("no local address: {e}"),
            Err(e) => e.to_string(),
        };
        self.pending.push_back(Input::TcpFailed { error });
    }

    /// The OPEN of a connection the peer opened, or why there is none.
    async fn incoming_open(&mut self, conn: Connection, result: Result<Open, NoOpen>) {
        self.incoming_open = None;
        let e = match result {
            Ok(open) => {
                let local = conn.local.ip();
                self.incoming = Some(conn);
                let interface = socket::interface_addresses(local);
                self.pending.push_back(Input::Incoming {
                    local,
                    interface,
                    open,
                });
                return;
            }
            Err(e) => e,
        };
        match e.notification {
            // Answered like on a connection we opened: the FSM counts it and sends the
            // NOTIFICATION on that connection (RejectIncoming).
            Some(notification) if self.incoming.is_none() => {
                warn!(peer = %self.peer.name, "incoming connection: {}", e.reason);
                self.incoming = Some(conn);
                self.pending.push_back(Input::IncomingInvalid {
                    notification,
                    reason: e.reason,
                    malformed: e.malformed,
                });
            }
            _ => {
                info!(peer = %self.peer.name, "incoming connection dropped: {}", e.reason);
                conn.close().await;
            }
        }
    }

    async fn wait(
        &mut self,
        routes: &mut watch::Receiver<Exports>,
        stop: &mut watch::Receiver<Option<String>>,
        accepted: &mut mpsc::Receiver<TcpStream>,
    ) -> Event {
        let stopping = self.stopping;
        let next_timer = self.timers.next();
        let rib_in_due = self.rib_in_publish_due();
        let (bfd_rx, conn) = (&mut self.bfd_rx, &mut self.conn);
        let (connecting, incoming_open) = (&mut self.connecting, &mut self.incoming_open);
        let bfd = async {
            let rx = some_or_pending(bfd_rx.as_mut()).await;
            match rx.changed().await {
                Ok(()) => Some(rx.borrow_and_update().clone()),
                Err(_) => None,
            }
        };
        let timer = async {
            let (t, at) = some_or_pending(next_timer).await;
            sleep_until(at).await;
            t
        };
        let read = async {
            let c = some_or_pending(conn.as_mut()).await;
            if c.buf.capacity() - c.buf.len() < codec::MAX_MESSAGE_LEN {
                c.buf.reserve(codec::MAX_MESSAGE_LEN);
            }
            c.reader.read_buf(&mut c.buf).await
        };
        let publish = async { sleep_until(some_or_pending(rib_in_due).await).await };
        let connect = async { some_or_pending(connecting.as_mut()).await.await };
        let incoming = async { some_or_pending(incoming_open.as_mut()).await.await };
        tokio::select! {
            b = bfd, if !stopping => Event::Bfd(b),
            t = timer => Event::Timer(t),
            () = publish => Event::PublishRibIn,
            r = connect => Event::Connected(r),
            r = read => Event::Read(r),
            (c, open) = incoming => Event::IncomingOpen(c, open),
            Some(stream) = accepted.recv() => Event::Accepted(stream),
            changed = routes.changed(), if !stopping => match changed {
                Ok(()) => Event::RoutesChanged(Some(routes.borrow_and_update().clone())),
                Err(_) => Event::RoutesChanged(None),
            },
            changed = stop.changed(), if !stopping => {
                let message = match changed {
                    Ok(()) => stop.borrow_and_update().clone(),
                    Err(_) => None,
                };
                Event::StopRequested(message.unwrap_or_else(|| "primaryd stopping".into()))
            },
        }
    }

    /// Splits what was read into frames and queues one input per message. A framing error
    /// ends the session, so nothing after it is looked at.
    fn on_read(&mut self, result: io::Result<usize>) {
        match result {
            Ok(0) => {
                let error = "peer closed the connection".to_string();
                return self.pending.push_back(Input::TcpClosed { error });
            }
            Err(e) => {
                let error = e.to_string();
                return self.pending.push_back(Input::TcpClosed { error });
            }
            Ok(_) => {}
        }
        let ctx = self.codec_context();
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => return,
        };
        let mut used = 0;
        loop {
            let rest = &conn.buf[used..];
            match codec::frame_len(rest) {
                Ok(Some(len)) if rest.len() >= len => {
                    let frame = &rest[..len];
                    used += len;
                    match codec::decode(frame, ctx) {
                        Ok(msg) => {
                            debug!(peer = %self.peer.name, "received {}", msg.kind());
                            let at = std::time::SystemTime::now();
                            self.pending.push_back(Input::Received(msg, at));
                        }
                        Err(n) => {
                            warn!(peer = %self.peer.name, "malformed {len}-byte message: {n}");
                            self.pending.push_back(Input::Malformed(n.into()));
                            break;
                        }
                    }
                }
                Ok(_) => break,
                Err(n) => {
                    warn!(peer = %self.peer.name, "bad message header: {n}");
                    self.pending.push_back(Input::Malformed(n.into()));
                    break;
                }
            }
        }
        conn.buf.drain(..used);
    }

    async fn execute(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Connect => {
                    let peer = self.peer.clone();
                    let md5 = self.md5_key.clone();
                    self.connecting = Some(Box::pin(async move { connect(&peer, md5).await }));
                }
                Output::Send(msg) => self.send(msg).await,
                Output::Close => {
                    self.connecting = None;
                    if let Some(conn) = self.conn.take() {
                        conn.close().await;
                    }
                }
                Output::AdoptIncoming => {
                    info!(peer = %self.peer.name, "session continues on the connection the peer opened");
                    self.conn = self.incoming.take();
                }
                Output::RejectIncoming(n) => {
                    if let Some(mut conn) = self.incoming.take() {
                        info!(peer = %self.peer.name, "incoming connection rejected: {n}");
                        let ctx = self.codec_context();
                        if let Ok(frame) = codec::encode(&Message::Notification(n), ctx) {
                            let _ = timeout(WRITE_TIMEOUT, conn.writer.write_all(&frame)).await;
                        }
                        conn.close().await;
                    }
                }
                Output::Warn(w) => warn!(peer = %self.peer.name, "{w}"),
                Output::StartTimer(t, d) => self.timers.set(t, Some(d)),
                Output::StopTimer(t) => self.timers.set(t, None),
                Output::StateChanged { from, to, reason } => {
                    let peer = &self.peer.name;
                    if to == State::Established {
                        info!(peer = %peer, "session established ({reason})");
                    } else if from == State::Established {
                        warn!(peer = %peer, "session down: {reason}");
                    } else if to == State::Idle {
                        info!(peer = %peer, "{from} -> {to}: {reason}");
                    } else {
                        debug!(peer = %peer, "{from} -> {to}: {reason}");
                    }
                }
            }
        }
    }

    async fn send(&mut self, msg: Message) {
        let ctx = self.codec_context();
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let frames = match &msg {
            Message::Update(u) => {
                if !u.nlri.is_empty() || !u.withdrawn.is_empty() {
                    // Which peer was sent what, when (the lab's timelines read this line).
                    info!(
                        peer = %self.peer.name,
                        announce = ?u.nlri.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                        withdraw = ?u.withdrawn.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                        event = "update_sent",
                        "sending UPDATE"
                    );
                }
                codec::encode_update(u, ctx)
            }
            other => codec::encode(other, ctx).map(|f| vec![f]),
        };
        let frames = match frames {
            Ok(f) => f,
            Err(e) => {
                // Our own message cannot be encoded: a bug. End the session rather than
                // leave the peer with routes we can no longer update.
                let error = format!("cannot encode {}: {e}", msg.kind());
                warn!(peer = %self.peer.name, "{error}");
                self.pending.push_back(Input::TcpClosed { error });
                return;
            }
        };
        for frame in frames {
            let write = timeout(WRITE_TIMEOUT, conn.writer.write_all(&frame)).await;
            let error = match write {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => format!("write failed: {e}"),
                Err(_) => format!("write blocked for {} s", WRITE_TIMEOUT.as_secs()),
            };
            self.pending.push_back(Input::TcpClosed { error });
            return;
        }
    }

    /// A connection the listener accepted from this peer: read its OPEN before the FSM
    /// decides (RFC 4271 §6.8 needs the peer's BGP identifier).
    fn accepted(&mut self, stream: TcpStream) {
        if self.incoming.is_some() {
            info!(peer = %self.peer.name, "incoming connection dropped: one is being decided on");
            return;
        }
        if self.peer.ttl_security {
            // RFC 5082: the SYN itself must have come from one hop away; checked before a
            // byte of the connection is read.
            match socket::syn_ttl(&stream) {
                Some(ttl) if ttl >= 254 => {}
                ttl => {
                    let ttl = ttl.map_or_else(|| "unknown".to_string(), |t| t.to_string());
                    warn!(peer = %self.peer.name, "incoming connection dropped: GTSM: SYN TTL {ttl} < 254");
                    return;
                }
            }
            if let Err(e) = socket::set_ttl_security(&stream, self.peer.address) {
                warn!(peer = %self.peer.name, "incoming connection dropped: GTSM: {e}");
                return;
            }
        }
        if self.incoming_open.is_some() {
            // The newer connection replaces one that has not sent its OPEN yet: a peer
            // retrying is more likely alive than the connection it gave up on.
            info!(peer = %self.peer.name, "incoming connection replaces one still waiting for its OPEN");
        }
        let _ = stream.set_nodelay(true);
        let conn = match Connection::new(stream) {
            Ok(c) => c,
            Err(e) => {
                warn!(peer = %self.peer.name, "incoming connection dropped: {e}");
                return;
            }
        };
        let ctx = self.codec_context();
        self.incoming_open = Some(Box::pin(read_open(conn, ctx)));
    }
}

/// The value, or never: a `select!` branch for something the session does not have now.
async fn some_or_pending<T>(value: Option<T>) -> T {
    match value {
        Some(v) => v,
        None => std::future::pending().await,
    }
}

/// Reads until the first message is complete; it must be an OPEN. What is malformed gets
/// the codec's NOTIFICATION, another message an FSM error (RFC 6608, subcode 0: we have not
/// sent our OPEN on this connection yet).
async fn read_open(mut conn: Connection, ctx: CodecContext) -> (Connection, Result<Open, NoOpen>) {
    let malformed = |reason: String, n: Notification| NoOpen {
        reason: format!("{reason}: {n}"),
        notification: Some(n),
        malformed: true,
    };
    let result = timeout(INCOMING_OPEN_TIMEOUT, async {
        loop {
            match codec::frame_len(&conn.buf) {
                Ok(Some(len)) if conn.buf.len() >= len => {
                    let frame: Vec<u8> = conn.buf.drain(..len).collect();
                    return match codec::decode(&frame, ctx) {
                        Ok(Message::Open(open)) => Ok(open),
                        Ok(other) => Err(NoOpen {
                            reason: format!("first message was {}, not OPEN", other.kind()),
                            notification: Some(Notification::of(
                                NotificationKind::Fsm(FsmSubcode::Unspecified),
                                Vec::new(),
                            )),
                            malformed: false,
                        }),
                        Err(n) => Err(malformed("malformed first message".into(), n.into())),
                    };
                }
                Ok(_) => {}
                Err(n) => return Err(malformed("bad message header".into(), n.into())),
            }
            conn.buf.reserve(codec::MAX_MESSAGE_LEN);
            match conn.reader.read_buf(&mut conn.buf).await {
                Ok(0) => return Err(NoOpen::silent("closed before sending OPEN".into())),
                Ok(_) => {}
                Err(e) => return Err(NoOpen::silent(e.to_string())),
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        let secs = INCOMING_OPEN_TIMEOUT.as_secs();
        Err(NoOpen::silent(format!("no OPEN within {secs} s")))
    });
    (conn, result)
}

async fn connect(peer: &PeerConfig, md5_key: Option<String>) -> io::Result<TcpStream> {
    let addr = socket::peer_socket_addr(peer.address, peer.port, peer.interface.as_deref())?;
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(key) = &md5_key {
        socket::set_md5_key(&sock, peer.address, key)?;
    }
    if peer.ttl_security {
        socket::set_ttl_security(&sock, peer.address)?;
    }
    if let Some(local) = peer.local_address {
        sock.bind(SocketAddr::new(local, 0))?;
    }
    let stream = sock.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
