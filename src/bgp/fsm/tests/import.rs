//! What a session does with the peer's routes: the Adj-RIB-In, loops, treat-as-withdraw,
//! RFC 7606 findings, max-prefix.

use super::*;

#[test]
fn received_routes_are_kept_per_prefix_and_withdrawn() {
    let mut f = established(&[]);
    let at = T0 + Duration::from_secs(9);
    f.process(Input::Received(
        Message::Update(peer_route(&["0.0.0.0/0", "198.18.99.0/24"], 65001)),
        at,
    ));
    assert_eq!(f.rib_in().len(), 2);
    let r = f.rib_in().get(&RouteKey::new(pfx("0.0.0.0/0"), 0)).unwrap();
    assert_eq!(r.received_at, at);
    assert_eq!(r.attributes.as_path.to_string(), "65001 65100");
    let w = Update {
        withdrawn: vec![pfx("198.18.99.0/24")],
        ..Update::default()
    };
    f.process(recv(Message::Update(w)));
    assert_eq!(f.rib_in().len(), 1);
    // Session loss clears it.
    f.process(Input::TcpClosed { error: "x".into() });
    assert!(f.rib_in().is_empty());
}

#[test]
fn ebgp_route_not_starting_with_peer_as_is_treated_as_withdraw() {
    let mut f = established(&[]);
    f.process(recv(Message::Update(peer_route(
        &["198.18.99.0/24"],
        65001,
    ))));
    let out = f.process(recv(Message::Update(peer_route(
        &["198.18.99.0/24"],
        65002,
    ))));
    assert!(f.rib_in().is_empty());
    assert_eq!(f.state(), State::Established);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Warn(w) if w.to_string().contains("65001"))));
    assert_eq!(f.counters().update_errors_in, 1);
}

#[test]
fn rfc7606_errors_from_the_codec_are_counted_and_logged() {
    let mut f = established(&[]);
    let mut u = peer_route(&[], 65001);
    u.attributes = None;
    u.withdrawn = vec![pfx("198.18.99.0/24")];
    u.errors = vec!["malformed MED: treat-as-withdraw".into()];
    let out = f.process(recv(Message::Update(u)));
    assert_eq!(f.counters().update_errors_in, 1);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Warn(w) if w.to_string().contains("MED"))));
    assert_eq!(f.state(), State::Established);
}

#[test]
fn exceeding_max_prefixes_ends_the_session_with_cease_and_a_long_hold() {
    let mut f = established(&["192.0.2.10/32"]);
    let ok = f.process(recv(Message::Update(peer_route(
        &["198.18.96.0/24", "198.18.97.0/24", "198.18.98.0/24"],
        65001,
    ))));
    assert!(sent(&ok).is_empty());
    let out = f.process(recv(Message::Update(peer_route(
        &["198.18.99.0/24"],
        65001,
    ))));
    let n = notification(&out).unwrap();
    assert_eq!((n.code, n.subcode), (6, 1));
    assert_eq!(n.data, [0, 1, 1, 0, 0, 0, 3]);
    assert_eq!(f.state(), State::Idle);
    // The configured restart delay, exactly: jitter would only ever shorten it.
    assert_eq!(retry_delay(&out), Some(Duration::from_secs(60)));
    assert!(f.last_error().unwrap().to_string().contains("max_prefixes"));
}

#[test]
fn our_own_routes_reflected_back_are_neither_kept_nor_counted() {
    let mut f = established(&["192.0.2.10/32"]);
    let mut echo = peer_route(&["192.0.2.10/32", "192.0.2.11/32"], 65001);
    if let Some(a) = echo.attributes.as_mut() {
        a.as_path = AsPath::sequence(vec![65001, 4_200_000_001]);
    }
    f.process(recv(Message::Update(echo)));
    assert!(f.rib_in().is_empty());
    // Three real routes still fit under max_prefixes = 3: the echoes did not count.
    let out = f.process(recv(Message::Update(peer_route(
        &["198.18.96.0/24", "198.18.97.0/24", "198.18.98.0/24"],
        65001,
    ))));
    assert!(notification(&out).is_none());
    assert_eq!(f.rib_in().len(), 3);
}
