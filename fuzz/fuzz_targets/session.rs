//! Fuzzes the session machine with what a peer could send: the input is a byte stream from
//! the peer, cut into frames and decoded as the session driver does, interleaved with timer
//! expiries and route changes chosen by control bytes. A panic anywhere is a crash; so is a
//! broken invariant (routes kept outside Established, Established without negotiation).
#![no_main]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use primaryd::announcer::DesiredRoutes;
use primaryd::bgp::codec::{decode, frame_len, CodecContext};
use primaryd::bgp::fsm::{Export, Fsm, FsmConfig, Input, InterfaceAddresses, State, Timer};
use primaryd::bgp::message::Family;
use primaryd::config::RouteAttributes;

fn fsm() -> Fsm {
    let mut f = Fsm::new(FsmConfig {
        local_asn: 4_200_000_001,
        router_id: "198.19.0.11".parse().unwrap(),
        remote_asn: 65001,
        hold_time: 9,
        passive: false,
        connect_retry_min: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(30),
        stable_after: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
        max_prefixes: 100,
        max_prefixes_restart: Duration::from_secs(60),
        next_hop_ipv4: None,
        next_hop_ipv6: None,
        jitter_seed: 1,
        initial_routes_wait: Duration::from_secs(1),
    });
    f.process(Input::Start);
    f
}

fn connected() -> Input {
    Input::TcpConnected {
        local: "198.18.1.1".parse().unwrap(),
        interface: InterfaceAddresses {
            ipv4: Some("198.18.1.1".parse().unwrap()),
            ipv6_global: Some("2001:db8:1::1".parse().unwrap()),
        },
    }
}

fn check(f: &Fsm) {
    let s = f.state();
    if matches!(s, State::Established | State::OpenConfirm) {
        assert!(f.negotiated().is_some());
    }
    if s != State::Established {
        assert!(f.rib_out().is_empty() && f.rib_in().is_empty() && f.sightings().is_empty());
    }
    if !f.initial_routes_done() {
        assert!(
            f.rib_out().is_empty(),
            "announced before the initial routes"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // Control bytes first (until a 0xff), then the peer's byte stream.
    let split = data
        .iter()
        .position(|b| *b == 0xff)
        .unwrap_or(data.len().min(4));
    let (control, stream) = data.split_at(split);
    let mut f = fsm();
    f.process(connected());
    check(&f);
    let mut rest = stream;
    let mut step = 0usize;
    loop {
        if let Some(c) = control.get(step) {
            let input = match c % 6 {
                0 => Input::TimerExpired(Timer::ALL[usize::from(c / 6) % Timer::ALL.len()]),
                1 => {
                    let mut r = DesiredRoutes::new();
                    if c & 0x40 != 0 {
                        r.insert("192.0.2.10/32".parse().unwrap(), RouteAttributes::default());
                    }
                    if c & 0x80 != 0 {
                        r.insert(
                            "2001:db8::10/128".parse().unwrap(),
                            RouteAttributes::default(),
                        );
                    }
                    // Watch both prefixes; release the current session unless bit 5 says no.
                    let watched = ["192.0.2.10/32", "2001:db8::10/128"]
                        .iter()
                        .map(|p| p.parse().unwrap())
                        .collect();
                    let released = (c & 0x20 == 0).then(|| f.counters().established_transitions);
                    Input::Routes(Export {
                        routes: r,
                        watched: Arc::new(watched),
                        released,
                        held: Arc::default(),
                    })
                }
                2 => Input::TcpClosed { error: "x".into() },
                3 => connected(),
                _ => Input::TimerExpired(Timer::Keepalive),
            };
            f.process(input);
            check(&f);
        }
        step += 1;
        let len = match frame_len(rest) {
            Ok(Some(len)) if rest.len() >= len => len,
            Ok(_) => break,
            Err(n) => {
                f.process(Input::Malformed(n.into()));
                check(&f);
                break;
            }
        };
        // The codec reads path identifiers where the session negotiated them, as the driver
        // does.
        let add_path = |fam| f.negotiated().is_some_and(|n| n.add_path_rx.contains(&fam));
        let ctx = CodecContext {
            four_octet_asn: true,
            ibgp: false,
            add_path_ipv4: add_path(Family::Ipv4Unicast),
            add_path_ipv6: add_path(Family::Ipv6Unicast),
        };
        let (frame, tail) = rest.split_at(len);
        rest = tail;
        let input = match decode(frame, ctx) {
            Ok(m) => Input::Received(m, SystemTime::UNIX_EPOCH),
            Err(n) => Input::Malformed(n.into()),
        };
        f.process(input);
        check(&f);
    }
});
