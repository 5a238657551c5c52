//! Received-route cost: feeds a generated table through the codec's decoder and the session
//! machine (the same path a peer's UPDATEs take, minus the socket) and prints time and
//! memory per route. Run: `cargo bench --bench rib_in -- [PREFIXES] [PER_UPDATE]`
//! (defaults 1000000 and 100). The prefixes are synthetic /32s from 100.64.0.0/10 carried in
//! messages only; nothing is sent anywhere.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use ipnetwork::{IpNetwork, Ipv4Network};
use primaryd::bgp::codec::{self, CodecContext};
use primaryd::bgp::fsm::{Fsm, FsmConfig, Input, InterfaceAddresses, State};
use primaryd::bgp::message::{
    AsPath, Capabilities, Community, Message, NextHop, Open, Origin, PathAttributes, Update,
};

const CTX: CodecContext = CodecContext {
    four_octet_asn: true,
    ibgp: false,
    add_path_ipv4: false,
    add_path_ipv6: false,
};

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn established() -> Fsm {
    let mut f = Fsm::new(FsmConfig {
        local_asn: 4_200_000_001,
        router_id: "198.19.0.11".parse().unwrap(),
        remote_asn: 65001,
        hold_time: 0,
        passive: false,
        connect_retry_min: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(30),
        stable_after: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
        max_prefixes: u32::MAX,
        max_prefixes_restart: Duration::from_secs(60),
        next_hop_ipv4: None,
        next_hop_ipv6: None,
        jitter_seed: 1,
    });
    f.process(Input::Start);
    f.process(Input::TcpConnected {
        local: "198.18.1.1".parse().unwrap(),
        interface: InterfaceAddresses::default(),
    });
    let open = Open {
        asn: 65001,
        hold_time: 0,
        router_id: "198.19.0.1".parse().unwrap(),
        capabilities: Capabilities {
            four_octet_asn: Some(65001),
            multiprotocol: vec![(1, 1)],
            route_refresh: true,
            add_path: Vec::new(),
            graceful_restart: None,
            other: vec![],
        },
    };
    let now = SystemTime::now();
    f.process(Input::Received(Message::Open(open), now));
    f.process(Input::Received(Message::Keepalive, now));
    assert_eq!(f.state(), State::Established);
    f
}

/// One UPDATE's frames: `per_update` consecutive /32s with a path of their own, as a
/// full table groups prefixes by path.
fn frames(first: u32, per_update: u32, origin_as: u32) -> Vec<Vec<u8>> {
    let nlri: Vec<IpNetwork> = (first..first + per_update)
        .map(|i| {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i);
            IpNetwork::V4(Ipv4Network::new(addr, 32).unwrap())
        })
        .collect();
    let mut attrs = PathAttributes::new(
        Origin::Igp,
        AsPath::sequence(vec![65001, 65100, origin_as]),
        NextHop {
            ipv4: Some("198.18.1.0".parse().unwrap()),
            ..NextHop::default()
        },
    );
    attrs.med = Some(origin_as % 100);
    attrs.communities = vec![Community(65001 << 16 | (origin_as & 0xffff))];
    let update = Update {
        attributes: Some(attrs),
        nlri,
        ..Update::default()
    };
    codec::encode_update(&update, CTX).expect("encode")
}

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(1_000_000);
    let per_update = args.get(1).copied().unwrap_or(100).max(1);

    let mut fsm = established();
    let rss_before = status_kib("VmRSS:");
    let mut decode_time = Duration::ZERO;
    let mut import_time = Duration::ZERO;
    let mut messages = 0u64;
    let mut first = 0;
    while first < total {
        let n = per_update.min(total - first);
        // Encoding is the peer's work, not ours: kept out of the timings.
        for frame in frames(first, n, 4_200_000_000 + first / per_update) {
            let t = Instant::now();
            let msg = codec::decode(&frame, CTX).expect("decode");
            decode_time += t.elapsed();
            let t = Instant::now();
            fsm.process(Input::Received(msg, SystemTime::now()));
            import_time += t.elapsed();
            messages += 1;
        }
        first += n;
    }
    let routes = fsm.rib_in().len();
    assert_eq!(
        routes, total as usize,
        "every prefix must be in the Adj-RIB-In"
    );
    assert_eq!(fsm.state(), State::Established);
    let rss_after = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    let per_route = (rss_after.saturating_sub(rss_before) * 1024) as f64 / routes as f64;
    let total_time = decode_time + import_time;
    println!(
        "rib_in: {routes} IPv4 prefixes in {messages} UPDATEs ({per_update} prefixes per path)"
    );
    println!(
        "  time:   decode {:.2} s + import {:.2} s = {:.2} s ({:.0} prefixes/s)",
        decode_time.as_secs_f64(),
        import_time.as_secs_f64(),
        total_time.as_secs_f64(),
        routes as f64 / total_time.as_secs_f64()
    );
    println!(
        "  memory: RSS {} MiB before, {} MiB after (peak {} MiB): {per_route:.0} bytes per route",
        rss_before / 1024,
        rss_after / 1024,
        peak / 1024
    );
}
