//! The session driver against a scripted peer on 127.0.0.1: real sockets, real framing, our
//! codec on both ends. Shows that routes follow the desired set, that a peer's garbage ends
//! the session with the right NOTIFICATION (and the session comes back), and that stopping
//! withdraws and sends Cease before closing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnetwork::IpNetwork;
use primaryd::announcer::{DesiredRoutes, Exports};
use primaryd::bgp::codec::{self, CodecContext};
use primaryd::bgp::fsm::{FsmConfig, State};
use primaryd::bgp::message::{AsPath, Capabilities, Message, Notification, Open, Update};
use primaryd::bgp::reason::Direction;
use primaryd::bgp::rib_in::RouteKey;
use primaryd::bgp::session::Session;
use primaryd::bgp::status::PeerStatus;
use primaryd::config::{PeerConfig, RouteAttributes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

const LOCAL_ASN: u32 = 4_200_000_001;
const PEER_ASN: u32 = 65001;
const CTX: CodecContext = CodecContext {
    four_octet_asn: true,
    ibgp: false,
    add_path_ipv4: false,
    add_path_ipv6: false,
};
/// Generous bound for any single step on a loaded CI machine.
const STEP: Duration = Duration::from_secs(10);

fn prefix(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn desired(list: &[&str]) -> DesiredRoutes {
    list.iter()
        .map(|p| (prefix(p), RouteAttributes::default()))
        .collect()
}

struct Harness {
    listener: TcpListener,
    routes: Routes,
    status: watch::Receiver<PeerStatus>,
    stop: watch::Sender<Option<String>>,
    /// Hands "accepted" connections to the session, as the daemon's listener does.
    accepted: mpsc::Sender<TcpStream>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(initial: &[&str]) -> Harness {
    start_with(initial, false).await
}

async fn start_with(initial: &[&str], passive: bool) -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = PeerConfig {
        name: "scripted".into(),
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        interface: None,
        remote_asn: PEER_ASN,
        local_address: None,
        port,
        hold_time: 9,
        passive,
        md5_password_file: None,
        ttl_security: false,
        max_prefixes: 10,
        max_prefixes_restart: Duration::from_secs(60),
        next_hop_ipv4: None,
        next_hop_ipv6: None,
        initial_routes_wait: Duration::from_millis(200),
        bfd: None,
    };
    let cfg = FsmConfig {
        local_asn: LOCAL_ASN,
        router_id: "198.19.0.11".parse().unwrap(),
        remote_asn: PEER_ASN,
        hold_time: 9,
        passive,
        connect_retry_min: Duration::from_millis(50),
        connect_retry_max: Duration::from_millis(200),
        stable_after: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
        max_prefixes: 10,
        max_prefixes_restart: Duration::from_secs(60),
        next_hop_ipv4: None,
        next_hop_ipv6: None,
        jitter_seed: 1,
        initial_routes_wait: Duration::from_millis(200),
    };
    let (exports, routes_rx) = watch::channel(Exports {
        routes: desired(initial),
        ..Exports::default()
    });
    let routes = Routes(exports);
    let (stop, stop_rx) = watch::channel(None);
    let (accepted, accepted_rx) = mpsc::channel(1);
    let (session, status) = Session::new(peer, cfg, None);
    let task = tokio::spawn(session.run(routes_rx, stop_rx, accepted_rx));
    tokio::spawn(release_sessions(status.clone(), routes.0.clone()));
    Harness {
        listener,
        routes,
        status,
        stop,
        accepted,
        task,
    }
}

/// The daemon's side of the export, as far as one session is concerned.
struct Routes(watch::Sender<Exports>);

impl Routes {
    fn send_replace(&self, routes: DesiredRoutes) {
        self.0.send_modify(|e| e.routes = routes);
    }
}

/// Releases every session once its initial routes are in, as the daemon does after reading
/// them.
async fn release_sessions(
    mut status: watch::Receiver<PeerStatus>,
    exports: watch::Sender<Exports>,
) {
    loop {
        let (done, n) = {
            let s = status.borrow_and_update();
            (s.initial_routes_done, s.counters.established_transitions)
        };
        if done {
            exports.send_if_modified(|e| {
                let fresh = e.released.get("scripted") != Some(&n);
                if fresh {
                    e.released = std::sync::Arc::new([("scripted".to_string(), n)].into());
                }
                fresh
            });
        }
        if status.changed().await.is_err() {
            return;
        }
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
        self.send(&peer_open("198.19.0.1")).await;
        self.send(&Message::Keepalive).await;
        assert_eq!(self.recv().await, Some(Message::Keepalive));
        self.end_of_rib().await;
        open
    }

    /// IPv4 unicast End-of-RIB: an UPDATE with nothing in it (RFC 4724 §2).
    async fn end_of_rib(&mut self) {
        let mut frame = vec![0xff; 16];
        frame.extend_from_slice(&[0, 23, 2, 0, 0, 0, 0]);
        self.stream.write_all(&frame).await.unwrap();
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

fn peer_open(router_id: &str) -> Message {
    Message::Open(Open {
        asn: PEER_ASN,
        hold_time: 9,
        router_id: router_id.parse().unwrap(),
        capabilities: Capabilities {
            four_octet_asn: Some(PEER_ASN),
            multiprotocol: vec![(1, 1)],
            route_refresh: true,
            add_path: Vec::new(),
            graceful_restart: None,
            other: vec![],
        },
    })
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
    assert_eq!(attrs.as_path, AsPath::sequence(vec![LOCAL_ASN]));
    assert_eq!(attrs.next_hop.ipv4, Some(Ipv4Addr::LOCALHOST));

    let mut status = h.status.clone();
    wait_status(&mut status, |s| {
        s.state == State::Established && s.rib_out.len() == 1
    })
    .await;

    h.routes.send_replace(DesiredRoutes::new());
    let u = peer.update().await;
    assert_eq!(u.withdrawn, [prefix("192.0.2.10/32")]);
    assert!(u.nlri.is_empty());
    // The status shows what was written: nothing advertised any more.
    wait_status(&mut status, |s| s.rib_out.is_empty()).await;

    h.routes
        .send_replace(desired(&["192.0.2.10/32", "192.0.2.11/32"]));
    let u = peer.update().await;
    assert_eq!(u.nlri, [prefix("192.0.2.10/32"), prefix("192.0.2.11/32")]);
    h.task.abort();
}

/// Waits (bounded) until the published session status satisfies `ok`.
async fn wait_status(status: &mut watch::Receiver<PeerStatus>, ok: impl Fn(&PeerStatus) -> bool) {
    timeout(STEP, status.wait_for(|s| ok(s)))
        .await
        .expect("status never reached the expected state")
        .expect("session gone");
}

#[tokio::test]
async fn received_routes_show_in_the_status() {
    let h = start(&[]).await;
    let mut peer = Peer::accept(&h).await;
    peer.handshake().await;
    let mut attrs = primaryd::bgp::message::PathAttributes::new(
        primaryd::bgp::message::Origin::Igp,
        AsPath::sequence(vec![PEER_ASN]),
        primaryd::bgp::message::NextHop {
            ipv4: Some("198.18.1.0".parse().unwrap()),
            ..Default::default()
        },
    );
    attrs.med = Some(7);
    let update = Update {
        attributes: Some(attrs),
        nlri: vec![prefix("0.0.0.0/0"), prefix("198.18.99.0/24")],
        ..Update::default()
    };
    for frame in codec::encode_update(&update, CTX).unwrap() {
        peer.stream.write_all(&frame).await.unwrap();
    }
    let mut status = h.status.clone();
    wait_status(&mut status, |s| {
        s.rib_in.len() == 2 && s.counters.updates_in == 2
    })
    .await;
    let route = status
        .borrow()
        .rib_in
        .get(&RouteKey::new(prefix("198.18.99.0/24"), 0))
        .cloned()
        .unwrap();
    assert_eq!(route.attributes.med, Some(7));
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

/// A raw UPDATE frame with the given path attribute bytes and one /32 of NLRI.
fn raw_update(attrs: &[u8], attrs_len: u16) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&attrs_len.to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(&[32, 198, 18, 99, 1]);
    let mut frame = vec![0xff; 16];
    frame.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    frame.push(2);
    frame.extend_from_slice(&body);
    frame
}

#[tokio::test]
async fn malformed_as_path_is_treated_as_withdraw_and_broken_framing_resets() {
    let h = start(&["192.0.2.10/32"]).await;
    let mut peer = Peer::accept(&h).await;
    peer.handshake().await;
    assert_eq!(peer.update().await.nlri, [prefix("192.0.2.10/32")]);
    // ORIGIN IGP, an AS_PATH sequence that claims two 4-byte ASNs but carries one and a stray
    // byte, NEXT_HOP: RFC 7606 says treat-as-withdraw, and the session stays up.
    let attrs: Vec<u8> = [
        &[0x40, 1, 1, 0][..],
        &[0x40, 2, 7, 2, 2, 0, 0, 0xfd, 0xe9, 0],
        &[0x40, 3, 4, 198, 18, 1, 0],
    ]
    .concat();
    peer.stream
        .write_all(&raw_update(&attrs, attrs.len() as u16))
        .await
        .unwrap();
    // Proof of life: a route refresh is still answered on the same connection.
    peer.send(&Message::RouteRefresh { afi: 1, safi: 1 }).await;
    assert_eq!(peer.update().await.nlri, [prefix("192.0.2.10/32")]);

    // Attribute lengths that overrun the attribute field cannot be parsed at all: reset.
    let attrs = [0x40, 1, 1, 0];
    peer.stream.write_all(&raw_update(&attrs, 9)).await.unwrap();
    let n = peer.notification().await;
    assert_eq!(n.code, 3, "{n}");
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
    let mut bytes = codec::encode(&peer_open("198.19.0.1"), CTX).unwrap();
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
        accepted: _accepted,
        status: _status,
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

/// A connection "accepted" by the daemon's listener, and the peer's end of it.
async fn incoming(h: &Harness) -> Peer {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_end = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (our_end, _) = l.accept().await.unwrap();
    h.accepted.send(our_end).await.unwrap();
    Peer {
        stream: peer_end,
        buf: Vec::new(),
    }
}

#[tokio::test]
async fn passive_session_answers_a_peer_that_connects() {
    let h = start_with(&["192.0.2.10/32"], true).await;
    let mut peer = incoming(&h).await;
    // The peer speaks first; we answer only after reading its OPEN.
    peer.send(&peer_open("198.19.0.1")).await;
    let Some(Message::Open(open)) = peer.recv().await else {
        panic!("expected our OPEN")
    };
    assert_eq!(open.asn, LOCAL_ASN);
    assert_eq!(peer.recv().await, Some(Message::Keepalive));
    peer.send(&Message::Keepalive).await;
    assert_eq!(peer.update().await.nlri, [prefix("192.0.2.10/32")]);
    // A passive session never connects out.
    let nothing = timeout(Duration::from_millis(300), h.listener.accept()).await;
    assert!(nothing.is_err(), "passive session connected out");
    h.task.abort();
}

#[tokio::test]
async fn collision_with_a_higher_peer_id_moves_the_session_to_its_connection() {
    let h = start(&["192.0.2.10/32"]).await;
    // Our outgoing connection reaches OpenSent...
    let mut ours = Peer::accept(&h).await;
    let Some(Message::Open(_)) = ours.recv().await else {
        panic!("expected OPEN")
    };
    // ...then the peer, with a higher BGP identifier, connects to us too.
    let mut theirs = incoming(&h).await;
    theirs.send(&peer_open("198.19.0.200")).await;
    let n = ours.notification().await;
    assert_eq!((n.code, n.subcode), (6, 7), "{n}");
    ours.expect_eof().await;
    let Some(Message::Open(_)) = theirs.recv().await else {
        panic!("expected our OPEN on the incoming connection")
    };
    assert_eq!(theirs.recv().await, Some(Message::Keepalive));
    theirs.send(&Message::Keepalive).await;
    assert_eq!(theirs.update().await.nlri, [prefix("192.0.2.10/32")]);
    h.task.abort();
}

#[tokio::test]
async fn collision_with_a_lower_peer_id_rejects_the_incoming_connection() {
    let h = start(&["192.0.2.10/32"]).await;
    let mut ours = Peer::accept(&h).await;
    let Some(Message::Open(_)) = ours.recv().await else {
        panic!("expected OPEN")
    };
    let mut theirs = incoming(&h).await;
    theirs.send(&peer_open("198.19.0.1")).await;
    let n = theirs.notification().await;
    assert_eq!((n.code, n.subcode), (6, 7), "{n}");
    theirs.expect_eof().await;
    // Our connection carries on.
    ours.send(&peer_open("198.19.0.1")).await;
    ours.send(&Message::Keepalive).await;
    assert_eq!(ours.recv().await, Some(Message::Keepalive));
    assert_eq!(ours.update().await.nlri, [prefix("192.0.2.10/32")]);
    h.task.abort();
}

#[tokio::test]
async fn route_refresh_gets_the_routes_again() {
    let h = start(&["192.0.2.10/32"]).await;
    let mut peer = Peer::accept(&h).await;
    peer.handshake().await;
    assert_eq!(peer.update().await.nlri, [prefix("192.0.2.10/32")]);
    peer.send(&Message::RouteRefresh { afi: 1, safi: 1 }).await;
    let u = peer.update().await;
    assert_eq!(u.nlri, [prefix("192.0.2.10/32")]);
    assert!(u.withdrawn.is_empty());
    h.task.abort();
}

/// An OPEN with the given version and optional parameters, as bytes (AS 65001, hold 9).
fn raw_open(version: u8, params: &[u8]) -> Vec<u8> {
    let mut body = vec![version, 0xfd, 0xe9, 0, 9, 198, 19, 0, 1, params.len() as u8];
    body.extend_from_slice(params);
    let mut frame = vec![0xff; 16];
    frame.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    frame.push(1);
    frame.extend_from_slice(&body);
    frame
}

#[tokio::test]
async fn a_malformed_open_on_a_connection_the_peer_opened_gets_its_notification() {
    let h = start_with(&["192.0.2.10/32"], true).await;
    let four_octet_as = [2, 6, 65, 4, 0, 0, 0xfd, 0xe9];
    let cases: Vec<(&str, Vec<u8>, (u8, u8))> = vec![
        ("version 3", raw_open(3, &four_octet_as), (2, 1)),
        (
            "capability longer than its parameter",
            raw_open(4, &[2, 6, 65, 10, 0, 0, 0xfd, 0xe9]),
            (2, 0),
        ),
        (
            "optional parameter type 3",
            raw_open(4, &[3, 2, 0, 0]),
            (2, 4),
        ),
        (
            "parameter length past the end",
            raw_open(4, &[2, 20, 65, 4]),
            (2, 0),
        ),
        ("random bytes", (0..40).collect(), (1, 1)),
    ];
    for (what, bytes, (code, subcode)) in &cases {
        let mut peer = incoming(&h).await;
        peer.stream.write_all(bytes).await.unwrap();
        let n = peer.notification().await;
        assert_eq!((n.code, n.subcode), (*code, *subcode), "{what}: {n}");
        // The same answer as on a connection we opened: the codec's.
        if let Ok(Some(len)) = codec::frame_len(bytes) {
            let expected: Notification = codec::decode(&bytes[..len], CTX).unwrap_err().into();
            assert_eq!(n, expected, "{what}");
        }
        peer.expect_eof().await;
    }
    let mut status = h.status.clone();
    wait_status(&mut status, |s| {
        s.counters.malformed_in == cases.len() as u64
    })
    .await;
    let s = status.borrow().clone();
    let error = s.last_error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.starts_with("incoming connection: bad message header: "),
        "{error}"
    );
    assert_eq!(
        s.last_notification
            .map(|l| (l.direction == Direction::Sent, l.notification.code)),
        Some((true, 1))
    );

    // The session is still there for a peer that speaks properly.
    let mut peer = incoming(&h).await;
    peer.send(&peer_open("198.19.0.1")).await;
    let Some(Message::Open(_)) = peer.recv().await else {
        panic!("expected our OPEN")
    };
    assert_eq!(peer.recv().await, Some(Message::Keepalive));
    peer.send(&Message::Keepalive).await;
    assert_eq!(peer.update().await.nlri, [prefix("192.0.2.10/32")]);
    h.task.abort();
}

#[tokio::test]
async fn unknown_optional_attributes_are_kept_and_shown_in_received_routes() {
    let h = start(&[]).await;
    let mut peer = Peer::accept(&h).await;
    peer.handshake().await;
    // ORIGIN IGP, AS_PATH 65001, NEXT_HOP, and optional transitive attribute 200.
    let attrs: Vec<u8> = [
        &[0x40, 1, 1, 0][..],
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9],
        &[0x40, 3, 4, 198, 18, 1, 0],
        &[0xc0, 200, 3, 1, 2, 3],
    ]
    .concat();
    peer.stream
        .write_all(&raw_update(&attrs, attrs.len() as u16))
        .await
        .unwrap();
    let mut status = h.status.clone();
    wait_status(&mut status, |s| s.rib_in.len() == 1).await;
    let status = status.borrow().clone();
    let now = std::time::SystemTime::now();
    let view = primaryd::operator::views::received(&[status], None, now).unwrap();
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(
        json[0]["attributes"]["unknown"],
        serde_json::json!([{"type_code": 200, "flags": 0xc0, "value": "010203"}]),
        "{json:#}"
    );
    let table = primaryd::operator::render::received(&view);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .ends_with("UNKNOWN ATTRIBUTES"),
        "{table}"
    );
    assert!(
        table.lines().nth(1).unwrap().ends_with("200=010203"),
        "{table}"
    );
    h.task.abort();
}
