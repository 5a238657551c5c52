//! The session driver against a scripted peer on 127.0.0.1: real sockets, real framing, our
//! codec on both ends. Shows that routes follow the desired set, that a peer's garbage ends
//! the session with the right NOTIFICATION (and the session comes back), and that stopping
//! withdraws and sends Cease before closing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnetwork::Ipv4Network;
use primaryd::announcer::DesiredRoutes;
use primaryd::bgp::codec::{self, CodecContext};
use primaryd::bgp::fsm::FsmConfig;
use primaryd::bgp::message::{Capabilities, Message, Notification, Open, Update};
use primaryd::bgp::session::Session;
use primaryd::config::PeerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;

const LOCAL_ASN: u32 = 4_200_000_001;
const PEER_ASN: u32 = 65001;
const CTX: CodecContext = CodecContext {
    four_octet_asn: true,
};
/// Generous bound for any single step on a loaded CI machine.
const STEP: Duration = Duration::from_secs(10);

fn prefix(s: &str) -> Ipv4Network {
    s.parse().unwrap()
}

struct Harness {
    listener: TcpListener,
    routes: watch::Sender<DesiredRoutes>,
    stop: watch::Sender<Option<String>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(initial: &[&str]) -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = PeerConfig {
        name: "scripted".into(),
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        remote_asn: PEER_ASN,
        local_address: None,
        port,
        hold_time: 9,
    };
    let cfg = FsmConfig {
        local_asn: LOCAL_ASN,
        router_id: "198.19.0.11".parse().unwrap(),
        remote_asn: PEER_ASN,
        hold_time: 9,
        connect_retry_min: Duration::from_millis(50),
        connect_retry_max: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(5),
    };
    let (routes, routes_rx) = watch::channel(initial.iter().map(|p| prefix(p)).collect());
    let (stop, stop_rx) = watch::channel(None);
    let task = tokio::spawn(Session::new(peer, cfg).run(routes_rx, stop_rx));
    Harness {
        listener,
        routes,
        stop,
        task,
    }
}

/// The scripted router: reads whole frames with the codec under test.
struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    async fn accept(h: &Harness) -> Peer {
        let (stream, from) = timeout(STEP, h.listener.accept()).await.unwrap().unwrap();
        assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        Peer {
            stream,
            buf: Vec::new(),
        }
    }

    /// Next message, or None on EOF.
    async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some(len) = codec::frame_len(&self.buf).expect("valid header from primaryd") {
                if self.buf.len() >= len {
                    let frame: Vec<u8> = self.buf.drain(..len).collect();
                    return Some(codec::decode(&frame, CTX).expect("valid message from primaryd"));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = timeout(STEP, self.stream.read(&mut chunk))
                .await
                .expect("primaryd went silent")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, msg: &Message) {
        let frame = codec::encode(msg, CTX).unwrap();
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Accepts our OPEN, answers OPEN + KEEPALIVE, and waits for our KEEPALIVE.
    async fn handshake(&mut self) -> Open {
        let Some(Message::Open(open)) = self.recv().await else {
            panic!("expected OPEN first")
        };
        self.send(&Message::Open(Open {
            asn: PEER_ASN,
            hold_time: 9,
            router_id: "198.19.0.1".parse().unwrap(),
            capabilities: Capabilities {
                four_octet_asn: Some(PEER_ASN),
                multiprotocol: vec![(1, 1)],
                route_refresh: false,
                other: vec![],
            },
        }))
        .await;
        self.send(&Message::Keepalive).await;
        assert_eq!(self.recv().await, Some(Message::Keepalive));
        open
    }

    /// Next UPDATE, skipping keepalives.
    async fn update(&mut self) -> Update {
        loop {
            match self.recv().await {
                Some(Message::Update(u)) => return u,
                Some(Message::Keepalive) => continue,
                other => panic!("expected UPDATE, got {other:?}"),
            }
        }
    }

    async fn notification(&mut self) -> Notification {
        loop {
            match self.recv().await {
                Some(Message::Notification(n)) => return n,
                Some(Message::Keepalive) => continue,
                other => panic!("expected NOTIFICATION, got {other:?}"),
            }
        }
    }

    async fn expect_eof(&mut self) {
        loop {
            match self.recv().await {
                None => return,
                Some(Message::Keepalive) => continue,
                Some(other) => panic!("expected close, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn announces_desired_routes_and_follows_changes() {
    let h = start(&["192.0.2.10/32"]).await;
    let mut peer = Peer::accept(&h).await;
    let open = peer.handshake().await;
    assert_eq!(open.asn, LOCAL_ASN);
    assert_eq!(open.capabilities.four_octet_asn, Some(LOCAL_ASN));

    let u = peer.update().await;
    assert_eq!(u.nlri, [prefix("192.0.2.10/32")]);
    let attrs = u.attributes.expect("attributes with NLRI");
    assert_eq!(attrs.as_path, [LOCAL_ASN]);
    assert_eq!(attrs.next_hop, Ipv4Addr::LOCALHOST);

    h.routes.send_replace(DesiredRoutes::new());
    let u = peer.update().await;
    assert_eq!(u.withdrawn, [prefix("192.0.2.10/32")]);
    assert!(u.nlri.is_empty());

    h.routes
        .send_replace([prefix("192.0.2.10/32"), prefix("192.0.2.11/32")].into());
    let u = peer.update().await;
    assert_eq!(u.nlri, [prefix("192.0.2.10/32"), prefix("192.0.2.11/32")]);
    h.task.abort();
}

#[tokio::test]
async fn stop_withdraws_then_sends_cease_then_closes() {
    let h = start(&["192.0.2.10/32"]).await;
    let mut peer = Peer::accept(&h).await;
    peer.handshake().await;
    assert_eq!(peer.update().await.nlri, [prefix("192.0.2.10/32")]);

    h.stop.send_replace(Some("maintenance".into()));
    let u = peer.update().await;
    assert_eq!(u.withdrawn, [prefix("192.0.2.10/32")]);
    let n = peer.notification().await;
    assert_eq!((n.code, n.subcode), (6, 2));
    assert_eq!(n.shutdown_message().as_deref(), Some("maintenance"));
    peer.expect_eof().await;
    timeout(STEP, h.task).await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_marker_gets_header_error_and_session_reconnects() {
    let h = start(&["192.0.2.10/32"]).await;
    let mut peer = Peer::accept(&h).await;
    peer.handshake().await;
    peer.update().await;
    let mut garbage = vec![0u8; 19];
    garbage[16] = 0;
    garbage[17] = 19;
    garbage[18] = 4;
    peer.stream.write_all(&garbage).await.unwrap();
    let n = peer.notification().await;
    assert_eq!((n.code, n.subcode), (1, 1));
    peer.expect_eof().await;

    // The session comes back and announces the current routes again.
    let mut peer = Peer::accept(&h).await;
    peer.handshake().await;
    assert_eq!(peer.update().await.nlri, [prefix("192.0.2.10/32")]);
    h.task.abort();
}

#[tokio::test]
async fn malformed_as_path_gets_update_error() {
    let h = start(&[]).await;
    let mut peer = Peer::accept(&h).await;
    peer.handshake().await;
    // UPDATE: no withdrawals; attributes ORIGIN IGP, AS_PATH with a sequence that claims two
    // 4-byte ASNs but carries one and a stray byte; NEXT_HOP; one /32 of NLRI.
    let attrs: Vec<u8> = [
        &[0x40, 1, 1, 0][..],
        &[0x40, 2, 7, 2, 2, 0, 0, 0xfd, 0xe9, 0],
        &[0x40, 3, 4, 198, 18, 1, 0],
    ]
    .concat();
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(&[32, 198, 18, 99, 1]);
    let mut frame = vec![0xff; 16];
    frame.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    frame.push(2);
    frame.extend_from_slice(&body);
    peer.stream.write_all(&frame).await.unwrap();
    let n = peer.notification().await;
    assert_eq!((n.code, n.subcode), (3, 11), "{n}");
    peer.expect_eof().await;
    h.task.abort();
}

#[tokio::test]
async fn messages_split_across_reads_are_reassembled() {
    let h = start(&["192.0.2.10/32"]).await;
    let mut peer = Peer::accept(&h).await;
    let Some(Message::Open(_)) = peer.recv().await else {
        panic!("expected OPEN")
    };
    let mut bytes = codec::encode(
        &Message::Open(Open {
            asn: PEER_ASN,
            hold_time: 9,
            router_id: "198.19.0.1".parse().unwrap(),
            capabilities: Capabilities {
                four_octet_asn: Some(PEER_ASN),
                ..Capabilities::default()
            },
        }),
        CTX,
    )
    .unwrap();
    bytes.extend(codec::encode(&Message::Keepalive, CTX).unwrap());
    for b in bytes {
        peer.stream.write_all(&[b]).await.unwrap();
        peer.stream.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(peer.recv().await, Some(Message::Keepalive));
    assert_eq!(peer.update().await.nlri, [prefix("192.0.2.10/32")]);
    h.task.abort();
}

#[tokio::test]
async fn dropped_and_refused_connections_are_retried() {
    // Nobody listens at first: bind a port, then close the listener.
    let h = start(&["192.0.2.10/32"]).await;
    let addr: SocketAddr = h.listener.local_addr().unwrap();
    let Harness {
        listener,
        task,
        routes: _routes,
        stop: _stop,
    } = h;
    // Accept and immediately drop a few connections: each is a failed session.
    for _ in 0..3 {
        let (s, _) = timeout(STEP, listener.accept()).await.unwrap().unwrap();
        drop(s);
    }
    drop(listener);
    let listener = TcpListener::bind(addr).await.unwrap();
    let (stream, _) = timeout(STEP, listener.accept()).await.unwrap().unwrap();
    let mut peer = Peer {
        stream,
        buf: Vec::new(),
    };
    peer.handshake().await;
    assert_eq!(peer.update().await.nlri, [prefix("192.0.2.10/32")]);
    task.abort();
}
