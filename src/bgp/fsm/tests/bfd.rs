//! The BGP session under BFD (RFC 5882 §4.3): a BFD Down ends the session at once with
//! Cease/BFD Down (RFC 9384), and no session is started or accepted until BFD is up.

use super::*;
use crate::bgp::reason::Direction;

/// The kit's configuration, passive or not, with room for the routes these tests send.
fn cfg(passive: bool) -> FsmConfig {
    FsmConfig {
        passive,
        max_prefixes: 10,
        ..super::cfg()
    }
}

fn open() -> Open {
    peer_open(3)
}

fn down() -> Input {
    Input::BfdDown {
        reason: "BFD Down: control detection time expired".into(),
    }
}

fn connects(out: &[Output]) -> bool {
    out.contains(&Output::Connect)
}

fn establish(f: &mut Fsm) {
    let routes: DesiredRoutes = [("192.0.2.10/32".parse().unwrap(), Default::default())]
        .into_iter()
        .collect();
    // Released for the session about to come up.
    let released = Some(f.counters().established_transitions + 1);
    f.process(Input::Routes(Export {
        routes,
        released,
        ..Export::default()
    }));
    let out = f.process(Input::Start);
    assert!(connects(&out), "{out:?}");
    f.process(Input::TcpConnected {
        local: "198.18.1.1".parse().unwrap(),
        interface: InterfaceAddresses::default(),
    });
    f.process(Input::Received(Message::Open(open()), T0));
    f.process(Input::Received(Message::Keepalive, T0));
    assert_eq!(f.state(), State::Established);
    initial_routes(f);
    assert_eq!(f.rib_out().len(), 1);
}

/// The router's End-of-RIBs and the daemon's release of this session, with the same routes.
fn initial_routes(f: &mut Fsm) -> Vec<Output> {
    let mut out = Vec::new();
    for family in Family::ALL {
        let eor = Update {
            end_of_rib: Some(family),
            ..Update::default()
        };
        out.extend(f.process(Input::Received(Message::Update(eor), T0)));
    }
    let routes: DesiredRoutes = [("192.0.2.10/32".parse().unwrap(), Default::default())]
        .into_iter()
        .collect();
    out.extend(f.process(Input::Routes(Export {
        routes,
        released: Some(f.counters().established_transitions),
        ..Export::default()
    })));
    out
}

fn incoming(f: &mut Fsm) -> Vec<Output> {
    f.process(Input::Incoming {
        local: "198.18.1.1".parse().unwrap(),
        interface: InterfaceAddresses::default(),
        open: open(),
    })
}

fn rejected_with(out: &[Output]) -> Option<(u8, u8)> {
    out.iter().find_map(|o| match o {
        Output::RejectIncoming(n) => Some((n.code, n.subcode)),
        _ => None,
    })
}

#[test]
fn nothing_starts_before_bfd_is_up() {
    let mut f = Fsm::new(cfg(false));
    f.process(Input::BfdDown {
        reason: "BFD not up yet".into(),
    });
    let out = f.process(Input::Start);
    assert!(!connects(&out), "{out:?}");
    assert_eq!(f.state(), State::Idle);
    assert_eq!(rejected_with(&incoming(&mut f)), Some((6, 5)));
    let out = f.process(Input::BfdUp);
    assert!(connects(&out), "{out:?}");
    assert_eq!(f.state(), State::Connect);
}

#[test]
fn bfd_down_ends_an_established_session_with_cease_bfd_down() {
    let mut f = Fsm::new(cfg(false));
    establish(&mut f);
    let out = f.process(down());
    let notes: Vec<&Notification> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send(Message::Notification(n)) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(notes.len(), 1, "{out:?}");
    assert_eq!((notes[0].code, notes[0].subcode), (6, 10));
    assert!(out.contains(&Output::Close));
    assert!(out.contains(&Output::StopTimer(Timer::Hold)));
    assert_eq!(f.state(), State::Idle);
    assert!(
        f.rib_out().is_empty(),
        "the peer drops our routes with the session"
    );
    assert_eq!(
        f.last_error().map(ToString::to_string).as_deref(),
        Some("BFD Down: control detection time expired")
    );
    assert_eq!(
        f.last_notification()
            .map(|l| (l.direction == Direction::Sent, l.notification.subcode)),
        Some((true, 10))
    );
    // No idle-hold timer to come back on: only BFD brings the session back.
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::StartTimer(Timer::ConnectRetry, _))));
}

#[test]
fn the_session_stays_down_while_bfd_is_down() {
    let mut f = Fsm::new(cfg(false));
    establish(&mut f);
    f.process(down());
    // A stale idle-hold timer, the peer connecting: neither brings it back.
    assert!(!connects(
        &f.process(Input::TimerExpired(Timer::ConnectRetry))
    ));
    assert_eq!(rejected_with(&incoming(&mut f)), Some((6, 5)));
    assert_eq!(f.state(), State::Idle);
    // BFD up: reconnect at once, and the routes go out again on the new session.
    assert!(connects(&f.process(Input::BfdUp)));
    f.process(Input::TcpConnected {
        local: "198.18.1.1".parse().unwrap(),
        interface: InterfaceAddresses::default(),
    });
    f.process(Input::Received(Message::Open(open()), T0));
    let mut out = f.process(Input::Received(Message::Keepalive, T0));
    out.extend(initial_routes(&mut f));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send(Message::Update(u)) if !u.nlri.is_empty())));
}

#[test]
fn bfd_down_abandons_a_connect_and_stops_waiting_for_a_passive_peer() {
    let mut f = Fsm::new(cfg(false));
    f.process(Input::Start);
    assert_eq!(f.state(), State::Connect);
    let out = f.process(down());
    assert!(out.contains(&Output::Close));
    assert!(out.contains(&Output::StopTimer(Timer::ConnectRetry)));
    assert_eq!(f.state(), State::Idle);

    let mut p = Fsm::new(cfg(true));
    p.process(Input::Start);
    assert_eq!(p.state(), State::Active);
    p.process(down());
    assert_eq!(p.state(), State::Idle);
    assert_eq!(rejected_with(&incoming(&mut p)), Some((6, 5)));
    p.process(Input::BfdUp);
    assert_eq!(p.state(), State::Active);
    assert!(rejected_with(&incoming(&mut p)).is_none());
}

#[test]
fn an_idle_hold_running_when_bfd_goes_down_is_held_at_its_end() {
    let mut f = Fsm::new(cfg(false));
    f.process(Input::Start);
    f.process(Input::TcpFailed {
        error: "refused".into(),
    });
    assert_eq!(f.state(), State::Idle);
    assert!(f.process(down()).is_empty(), "nothing to end");
    assert!(!connects(
        &f.process(Input::TimerExpired(Timer::ConnectRetry))
    ));
    assert!(connects(&f.process(Input::BfdUp)));
}

#[test]
fn bfd_up_during_an_idle_hold_leaves_the_hold_alone() {
    let mut f = Fsm::new(cfg(false));
    f.process(Input::Start);
    f.process(Input::TcpFailed {
        error: "refused".into(),
    });
    f.process(down());
    assert!(!connects(&f.process(Input::BfdUp)), "the hold still runs");
    assert!(connects(
        &f.process(Input::TimerExpired(Timer::ConnectRetry))
    ));
}

#[test]
fn an_administrative_stop_is_not_undone_by_bfd() {
    let mut f = Fsm::new(cfg(false));
    establish(&mut f);
    f.process(down());
    f.process(Input::Stop {
        message: "bye".into(),
    });
    assert!(!connects(&f.process(Input::BfdUp)));
    assert_eq!(f.state(), State::Idle);
}
