//! Arbitrary bytes from the peer, cut into frames and decoded as the driver does, mixed
//! with timer expiries, route changes and connection events: the machine never panics,
//! and its invariants hold after every input.

use super::*;
use crate::bgp::codec::{self, CodecContext};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Bytes(Vec<u8>),
    Timer(u8),
    Routes(u8),
    Closed,
    Connected,
    Incoming(u32),
    Valid(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..120).prop_map(Step::Bytes),
        2 => any::<u8>().prop_map(Step::Timer),
        1 => any::<u8>().prop_map(Step::Routes),
        1 => Just(Step::Closed),
        1 => Just(Step::Connected),
        1 => any::<u32>().prop_map(Step::Incoming),
        4 => any::<u8>().prop_map(Step::Valid),
    ]
}

/// Valid messages a peer might send, so the machine gets past OpenSent.
fn valid(i: u8) -> Message {
    match i % 5 {
        0 | 1 => Message::Open(peer_open(3)),
        2 => Message::Keepalive,
        3 => Message::Update(peer_route(&["198.18.99.0/24"], 65001)),
        _ => Message::RouteRefresh { afi: 1, safi: 1 },
    }
}

fn check_invariants(f: &Fsm) {
    let s = f.state();
    if s == State::Established || s == State::OpenConfirm {
        assert!(f.negotiated().is_some(), "{s} without negotiation");
    }
    if s != State::Established {
        assert!(f.rib_out().is_empty(), "Adj-RIB-Out kept in {s}");
        assert!(f.rib_in().is_empty(), "Adj-RIB-In kept in {s}");
        assert!(f.sightings().is_empty(), "sightings kept in {s}");
    }
    if !f.initial_routes_done() {
        assert!(
            f.rib_out().is_empty(),
            "announced before the initial routes"
        );
    }
    assert!(f.rib_in().len() <= f.config().max_prefixes as usize);
    assert!(f.sightings().len() <= f.config().max_prefixes as usize);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn never_panics_and_keeps_invariants(steps in proptest::collection::vec(step(), 1..60)) {
        let mut f = Fsm::new(cfg());
        f.process(Input::Start);
        let mut buf = Vec::new();
        for s in steps {
            let inputs: Vec<Input> = match s {
                Step::Bytes(b) => {
                    buf.extend_from_slice(&b);
                    let ctx = CodecContext { four_octet_asn: true, ibgp: false, add_path_ipv4: false, add_path_ipv6: false };
                    let mut inputs = Vec::new();
                    loop {
                        match codec::frame_len(&buf) {
                            Ok(Some(len)) if buf.len() >= len => {
                                let frame: Vec<u8> = buf.drain(..len).collect();
                                inputs.push(match codec::decode(&frame, ctx) {
                                    Ok(m) => recv(m),
                                    Err(n) => Input::Malformed(n.into()),
                                });
                            }
                            Ok(_) => break,
                            Err(n) => {
                                buf.clear();
                                inputs.push(Input::Malformed(n.into()));
                                break;
                            }
                        }
                    }
                    inputs
                }
                Step::Timer(t) => {
                    vec![Input::TimerExpired(Timer::ALL[t as usize % Timer::ALL.len()])]
                }
                Step::Routes(r) => {
                    let all = ["192.0.2.10/32", "2001:db8::10/128", "192.0.2.11/32"];
                    let pick: Vec<&str> = all
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| r & (1 << i) != 0)
                        .map(|(_, p)| *p)
                        .collect();
                    let Input::Routes(mut e) = export(&f, routes(&pick)) else {
                        unreachable!()
                    };
                    // Watch some, release some: every combination gets exercised.
                    e.watched = Arc::new(pick.iter().skip(1).map(|p| pfx(p)).collect());
                    if r & 8 != 0 {
                        e.released = None;
                    }
                    vec![Input::Routes(e)]
                }
                Step::Closed => {
                    buf.clear();
                    vec![Input::TcpClosed { error: "x".into() }]
                }
                Step::Connected => vec![Input::TcpConnected {
                    local: LOCAL.parse().unwrap(),
                    interface: iface(),
                }],
                Step::Incoming(id) => {
                    let mut open = peer_open(3);
                    open.router_id = Ipv4Addr::from(id);
                    vec![Input::Incoming { local: LOCAL.parse().unwrap(), interface: iface(), open }]
                }
                Step::Valid(i) => vec![recv(valid(i))],
            };
            for input in inputs {
                f.process(input);
                check_invariants(&f);
            }
        }
    }
}
