//! The tokio driver of one BGP session: it owns the socket and the timers, turns socket
//! events into FSM inputs and carries out the FSM's outputs. All protocol decisions are in
//! `fsm.rs`; this file only does I/O.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info, warn};

use super::codec::{self, CodecContext};
use super::fsm::{Fsm, FsmConfig, Input, Output, State, Timer};
use super::message::Message;
use crate::announcer::DesiredRoutes;
use crate::config::PeerConfig;

/// A write that cannot complete this long means the peer stopped reading: drop the session.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After our last message (a NOTIFICATION, usually) we half-close and wait this long for the
/// peer to close too, so the kernel does not reset the connection under unread data.
const CLOSE_LINGER: Duration = Duration::from_millis(500);

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

struct Connection {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buf: Vec<u8>,
}

/// What woke the driver up.
enum Event {
    Timer(Timer),
    Connected(io::Result<TcpStream>),
    Read(io::Result<usize>),
    RoutesChanged(Option<DesiredRoutes>),
    StopRequested(String),
}

#[derive(Default)]
struct Timers {
    deadlines: [Option<Instant>; 3],
}

impl Timers {
    fn slot(t: Timer) -> usize {
        match t {
            Timer::ConnectRetry => 0,
            Timer::Hold => 1,
            Timer::Keepalive => 2,
        }
    }
    fn set(&mut self, t: Timer, d: Option<Duration>) {
        self.deadlines[Self::slot(t)] = d.map(|d| Instant::now() + d);
    }
    fn next(&self) -> Option<(Timer, Instant)> {
        [Timer::ConnectRetry, Timer::Hold, Timer::Keepalive]
            .into_iter()
            .filter_map(|t| self.deadlines[Self::slot(t)].map(|d| (t, d)))
            .min_by_key(|(_, d)| *d)
    }
}

pub struct Session {
    peer: PeerConfig,
    fsm: Fsm,
    timers: Timers,
    conn: Option<Connection>,
    connecting: Option<ConnectFuture>,
    /// Inputs produced while carrying out outputs (a failed write), handled next.
    pending: VecDeque<Input>,
}

impl Session {
    pub fn new(peer: PeerConfig, cfg: FsmConfig) -> Self {
        Session {
            peer,
            fsm: Fsm::new(cfg),
            timers: Timers::default(),
            conn: None,
            connecting: None,
            pending: VecDeque::new(),
        }
    }

    /// Runs the session until `stop` carries a shutdown message, then withdraws, sends Cease
    /// (Administrative Shutdown) and returns once the connection is closed.
    pub async fn run(
        mut self,
        mut routes: watch::Receiver<DesiredRoutes>,
        mut stop: watch::Receiver<Option<String>>,
    ) {
        let initial = routes.borrow_and_update().clone();
        self.pending.push_back(Input::Routes(initial));
        self.pending.push_back(Input::Start);
        let mut stopping = false;
        loop {
            while let Some(input) = self.pending.pop_front() {
                let outputs = self.fsm.process(input);
                self.execute(outputs).await;
            }
            if stopping && self.fsm.state() == State::Idle {
                return;
            }
            let event = self.wait(&mut routes, &mut stop, stopping).await;
            match event {
                Event::Timer(t) => {
                    self.timers.set(t, None);
                    self.pending.push_back(Input::TimerExpired(t));
                }
                Event::Connected(Ok(stream)) => {
                    self.connecting = None;
                    match stream.local_addr() {
                        Ok(local) => {
                            let (reader, writer) = stream.into_split();
                            self.conn = Some(Connection {
                                reader,
                                writer,
                                buf: Vec::with_capacity(codec::MAX_MESSAGE_LEN),
                            });
                            let local = local.ip();
                            self.pending.push_back(Input::TcpConnected { local });
                        }
                        Err(e) => {
                            let error = format!("no local address: {e}");
                            self.pending.push_back(Input::TcpFailed { error });
                        }
                    }
                }
                Event::Connected(Err(e)) => {
                    self.connecting = None;
                    let error = e.to_string();
                    self.pending.push_back(Input::TcpFailed { error });
                }
                Event::Read(result) => self.on_read(result),
                Event::RoutesChanged(Some(r)) => self.pending.push_back(Input::Routes(r)),
                Event::RoutesChanged(None) => {
                    // The daemon is gone: nobody can vouch for the routes any more.
                    stopping = true;
                    let message = "primaryd route source gone".to_string();
                    self.pending.push_back(Input::Stop { message });
                }
                Event::StopRequested(message) => {
                    stopping = true;
                    self.pending.push_back(Input::Stop { message });
                }
            }
        }
    }

    async fn wait(
        &mut self,
        routes: &mut watch::Receiver<DesiredRoutes>,
        stop: &mut watch::Receiver<Option<String>>,
        stopping: bool,
    ) -> Event {
        let next_timer = self.timers.next();
        let connecting = &mut self.connecting;
        let conn = &mut self.conn;
        let timer = async {
            match next_timer {
                Some((t, at)) => {
                    sleep_until(at).await;
                    t
                }
                None => std::future::pending().await,
            }
        };
        let connect = async {
            match connecting.as_mut() {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        let read = async {
            match conn.as_mut() {
                Some(c) => {
                    if c.buf.capacity() - c.buf.len() < codec::MAX_MESSAGE_LEN {
                        c.buf.reserve(codec::MAX_MESSAGE_LEN);
                    }
                    c.reader.read_buf(&mut c.buf).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            t = timer => Event::Timer(t),
            r = connect => Event::Connected(r),
            r = read => Event::Read(r),
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
        let conn = match (result, self.conn.as_mut()) {
            (Ok(0), _) => {
                let error = "peer closed the connection".to_string();
                return self.pending.push_back(Input::TcpClosed { error });
            }
            (Err(e), _) => {
                let error = e.to_string();
                return self.pending.push_back(Input::TcpClosed { error });
            }
            (Ok(_), Some(conn)) => conn,
            (Ok(_), None) => return,
        };
        let ctx = CodecContext {
            four_octet_asn: self.fsm.negotiated().is_none_or(|n| n.four_octet_asn),
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
                            self.pending.push_back(Input::Received(msg));
                        }
                        Err(n) => {
                            warn!(peer = %self.peer.name, "malformed {len}-byte message: {n}");
                            self.pending.push_back(Input::Malformed(n));
                            break;
                        }
                    }
                }
                Ok(_) => break,
                Err(n) => {
                    warn!(peer = %self.peer.name, "bad message header: {n}");
                    self.pending.push_back(Input::Malformed(n));
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
                    let addr = SocketAddr::new(self.peer.address, self.peer.port);
                    self.connecting = Some(Box::pin(connect(addr, self.peer.local_address)));
                }
                Output::Send(msg) => self.send(msg).await,
                Output::Close => self.close().await,
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
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let ctx = CodecContext {
            four_octet_asn: self.fsm.negotiated().is_none_or(|n| n.four_octet_asn),
        };
        let frames = match &msg {
            Message::Update(u) => {
                if !u.nlri.is_empty() || !u.withdrawn.is_empty() {
                    info!(
                        peer = %self.peer.name,
                        announce = ?u.nlri.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                        withdraw = ?u.withdrawn.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
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

    async fn close(&mut self) {
        self.connecting = None;
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let _ = timeout(CLOSE_LINGER, async {
            let _ = conn.writer.shutdown().await;
            let mut sink = [0u8; 4096];
            while let Ok(n) = conn.reader.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

async fn connect(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(local) = local {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
