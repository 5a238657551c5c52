//! The OPEN exchange (hold time, peer AS, 4-octet ASNs, router id, families) and the peer's
//! own connections: passive sessions, collisions, damping.

use super::*;

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
