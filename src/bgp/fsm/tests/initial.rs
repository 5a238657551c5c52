//! The session machine's part in the split-brain rules: initial routes before announcing,
//! ADD-PATH and graceful-restart capabilities, sightings of watched prefixes.

use super::*;
use crate::bgp::message::{AddPath, GracefulRestart};

fn open_sent(f: &mut Fsm) -> Open {
    let out = connected(f);
    match only_sent(&out) {
        Message::Open(o) => o,
        m => panic!("{m:?}"),
    }
}

#[test]
fn our_open_asks_for_every_path_and_for_end_of_rib_without_route_retention() {
    let mut f = Fsm::new(cfg());
    let caps = open_sent(&mut f).capabilities;
    for family in Family::ALL {
        assert!(caps.add_path(family, AddPath::RECEIVE), "{family}");
        assert!(!caps.add_path(family, AddPath::SEND), "{family}");
    }
    // No families and restart time 0: the peer keeps none of our routes.
    assert_eq!(caps.graceful_restart, Some(GracefulRestart::default()));
}

#[test]
fn path_identifiers_are_read_only_in_families_where_the_peer_sends_them() {
    let mut f = Fsm::new(cfg());
    connected(&mut f);
    let mut open = peer_open(3);
    let (afi, safi) = Family::Ipv6Unicast.afi_safi();
    open.capabilities.add_path = vec![AddPath {
        afi,
        safi,
        send_receive: AddPath::SEND | AddPath::RECEIVE,
    }];
    f.process(recv(Message::Open(open)));
    assert_eq!(f.negotiated().unwrap().add_path_rx, [Family::Ipv6Unicast]);
}

#[test]
fn nothing_is_announced_before_every_end_of_rib_and_the_daemons_release() {
    let mut f = Fsm::new(cfg());
    let input = export(&f, routes(&["192.0.2.10/32"]));
    f.process(input);
    connected(&mut f);
    f.process(recv(Message::Open(peer_open(3))));
    let out = f.process(recv(Message::Keepalive));
    assert_eq!(f.state(), State::Established);
    assert!(updates(&out).is_empty());
    assert!(out.contains(&Output::StartTimer(
        Timer::InitialRoutes,
        Duration::from_secs(2)
    )));
    // IPv4's End-of-RIB alone is not enough: IPv6 was negotiated too.
    assert!(updates(&f.process(end_of_rib(Family::Ipv4Unicast))).is_empty());
    assert!(!f.initial_routes_done());
    let out = f.process(end_of_rib(Family::Ipv6Unicast));
    assert!(f.initial_routes_done());
    assert!(out.contains(&Output::StopTimer(Timer::InitialRoutes)));
    assert_eq!(updates(&out)[0].nlri, [pfx("192.0.2.10/32")]);
}

#[test]
fn without_the_daemons_release_for_this_session_nothing_is_announced() {
    let mut f = Fsm::new(cfg());
    f.process(Input::Routes(Export {
        routes: routes(&["192.0.2.10/32"]),
        released: None,
        ..Export::default()
    }));
    let out = establish(&mut f, peer_open(3));
    assert!(f.initial_routes_done());
    assert!(updates(&out).is_empty());
    // A release of another session number does not count.
    let out = f.process(Input::Routes(Export {
        routes: routes(&["192.0.2.10/32"]),
        released: Some(7),
        ..Export::default()
    }));
    assert!(updates(&out).is_empty());
    let out = f.process(export(&f, routes(&["192.0.2.10/32"])));
    assert_eq!(updates(&out)[0].nlri, [pfx("192.0.2.10/32")]);
}

#[test]
fn a_peer_that_sends_no_end_of_rib_is_waited_for_only_so_long() {
    let mut f = Fsm::new(cfg());
    let input = export(&f, routes(&["192.0.2.10/32"]));
    f.process(input);
    connected(&mut f);
    f.process(recv(Message::Open(peer_open(3))));
    f.process(recv(Message::Keepalive));
    let out = f.process(Input::TimerExpired(Timer::InitialRoutes));
    assert!(f.initial_routes_done());
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Warn(w) if w.to_string().contains("no End-of-RIB"))));
    assert_eq!(updates(&out)[0].nlri, [pfx("192.0.2.10/32")]);
    // A late End-of-RIB changes nothing.
    assert!(sent(&f.process(end_of_rib(Family::Ipv6Unicast))).is_empty());
}

/// A session exporting 192.0.2.10/32 that has received the OPEN of a peer advertising graceful
/// restart (and so promising End-of-RIB).
fn opened_by_a_graceful_restart_peer() -> Fsm {
    let mut f = Fsm::new(cfg());
    let input = export(&f, routes(&["192.0.2.10/32"]));
    f.process(input);
    connected(&mut f);
    let mut open = peer_open(3);
    open.capabilities.graceful_restart = Some(GracefulRestart::default());
    f.process(recv(Message::Open(open)));
    f
}

#[test]
fn a_peer_that_promised_end_of_rib_is_waited_for_longer() {
    // FRR advertises graceful restart and sends its initial routes and End-of-RIB only after
    // its update group's coalesce time (1.2 s with three peers), later than the 1 s default
    // wait: announcing at 1 s would not know the other announcers yet.
    let mut f = opened_by_a_graceful_restart_peer();
    let out = f.process(recv(Message::Keepalive));
    assert_eq!(f.state(), State::Established);
    assert!(out.contains(&Output::StartTimer(
        Timer::InitialRoutes,
        crate::bgp::fsm::END_OF_RIB_PROMISED_WAIT
    )));
    assert!(updates(&f.process(end_of_rib(Family::Ipv4Unicast))).is_empty());
    let out = f.process(end_of_rib(Family::Ipv6Unicast));
    assert!(f.initial_routes_done());
    assert_eq!(updates(&out)[0].nlri, [pfx("192.0.2.10/32")]);
    // Should it never come, the longer bound ends the wait all the same, and says so.
    let mut f = opened_by_a_graceful_restart_peer();
    f.process(recv(Message::Keepalive));
    let out = f.process(Input::TimerExpired(Timer::InitialRoutes));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Warn(Warning::NoEndOfRib { waited, .. }) if *waited == crate::bgp::fsm::END_OF_RIB_PROMISED_WAIT)));
    assert_eq!(updates(&out)[0].nlri, [pfx("192.0.2.10/32")]);
}

fn watching(f: &mut Fsm, prefixes: &[&str]) -> Vec<Output> {
    let Input::Routes(mut e) = export(f, routes(&[])) else {
        unreachable!()
    };
    e.watched = Arc::new(prefixes.iter().map(|p| pfx(p)).collect());
    f.process(Input::Routes(e))
}

fn path(prefix: &str, id: u32, first_as: u32, origin_as: u32) -> Update {
    let mut u = peer_route(&[prefix], first_as);
    if let Some(a) = u.attributes.as_mut() {
        a.as_path = AsPath::sequence(vec![first_as, origin_as]);
    }
    u.nlri_path_ids = vec![id];
    u
}

#[test]
fn every_path_of_a_watched_prefix_is_sighted_loops_included() {
    let mut f = established(&[]);
    let before = f.sightings_version();
    watching(&mut f, &["192.0.2.10/32"]);
    // Two hosts of our own AS behind the ToR, and an unwatched prefix.
    for id in [1, 2] {
        f.process(recv(Message::Update(path(
            "192.0.2.10/32",
            id,
            65001,
            4_200_000_001,
        ))));
    }
    f.process(recv(Message::Update(path(
        "192.0.2.99/32",
        1,
        65001,
        65100,
    ))));
    let ids: Vec<u32> = f
        .sightings()
        .paths(pfx("192.0.2.10/32"))
        .map(|(k, _)| k.path_id)
        .collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(f.sightings().len(), 2);
    assert!(f.sightings_version() > before);
    // Loops are sighted, not kept in the Adj-RIB-In.
    assert!(f.rib_in().paths(pfx("192.0.2.10/32")).next().is_none());
    assert!(f
        .rib_in()
        .get(&RouteKey::new(pfx("192.0.2.99/32"), 1))
        .is_some());
    // Withdrawn by path identifier.
    let w = Update {
        withdrawn: vec![pfx("192.0.2.10/32")],
        withdrawn_path_ids: vec![1],
        ..Update::default()
    };
    f.process(recv(Message::Update(w)));
    assert_eq!(f.sightings().len(), 1);
    // Gone with the session.
    f.process(Input::TcpClosed { error: "x".into() });
    assert!(f.sightings().is_empty());
}

#[test]
fn a_newly_watched_prefix_is_sighted_from_the_rib_and_refreshed_from_the_peer() {
    let mut f = established(&[]);
    f.process(recv(Message::Update(path(
        "192.0.2.10/32",
        0,
        65001,
        65100,
    ))));
    assert!(f.sightings().is_empty());
    let out = watching(&mut f, &["192.0.2.10/32"]);
    assert_eq!(f.sightings().len(), 1);
    let refreshes: Vec<_> = sent(&out)
        .into_iter()
        .filter(|m| matches!(m, Message::RouteRefresh { .. }))
        .collect();
    assert_eq!(refreshes.len(), 2, "{out:?}");
    // The same set again asks for nothing.
    assert!(sent(&watching(&mut f, &["192.0.2.10/32"])).is_empty());
    // No longer watched: forgotten.
    watching(&mut f, &[]);
    assert!(f.sightings().is_empty());
}
