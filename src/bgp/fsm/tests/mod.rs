//! The session machine's tests, driven through `process` with plain inputs: the kit below
//! (configuration, the peer's OPEN, inputs, what was sent), and one file per concern.

use super::*;
use crate::bgp::message::{
    code, subcode, AsPath, Capabilities, Community, NextHop, Open, Origin, AFI_IPV4, AFI_IPV6,
    SAFI_UNICAST,
};
use crate::bgp::rib_in::RouteKey;
use crate::config::RouteAttributes;
use std::net::Ipv4Addr;
use std::sync::Arc;

mod arbitrary;
mod bfd;
mod export;
mod import;
mod initial;
mod open;
mod session;

pub(super) const LOCAL: &str = "198.18.1.1";

pub(super) const T0: SystemTime = SystemTime::UNIX_EPOCH;

pub(super) fn cfg() -> FsmConfig {
    FsmConfig {
        local_asn: 4_200_000_001,
        router_id: "198.19.0.11".parse().unwrap(),
        remote_asn: 65001,
        hold_time: 9,
        passive: false,
        connect_retry_min: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(8),
        stable_after: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        max_prefixes: 3,
        max_prefixes_restart: Duration::from_secs(60),
        next_hop_ipv4: None,
        next_hop_ipv6: None,
        jitter_seed: 7,
        initial_routes_wait: Duration::from_secs(2),
    }
}

pub(super) fn peer_open(hold: u16) -> Open {
    Open {
        asn: 65001,
        hold_time: hold,
        router_id: "198.19.0.1".parse().unwrap(),
        capabilities: Capabilities {
            four_octet_asn: Some(65001),
            multiprotocol: vec![(AFI_IPV4, SAFI_UNICAST), (AFI_IPV6, SAFI_UNICAST)],
            route_refresh: true,
            add_path: Vec::new(),
            graceful_restart: None,
            other: vec![73],
        },
    }
}

pub(super) fn pfx(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

pub(super) fn routes(list: &[&str]) -> DesiredRoutes {
    list.iter()
        .map(|r| (pfx(r), RouteAttributes::default()))
        .collect()
}

pub(super) fn recv(msg: Message) -> Input {
    Input::Received(msg, T0)
}

pub(super) fn iface() -> InterfaceAddresses {
    InterfaceAddresses {
        ipv4: Some(LOCAL.parse().unwrap()),
        ipv6_global: Some("2001:db8:1::1".parse().unwrap()),
    }
}

pub(super) fn sent(out: &[Output]) -> Vec<Message> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// The single message sent, failing the test if there is not exactly one.
pub(super) fn only_sent(out: &[Output]) -> Message {
    let msgs = sent(out);
    assert_eq!(msgs.len(), 1, "expected one message: {out:?}");
    msgs.into_iter().next().unwrap()
}

pub(super) fn updates(out: &[Output]) -> Vec<Update> {
    sent(out)
        .into_iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

pub(super) fn notification(out: &[Output]) -> Option<Notification> {
    sent(out).into_iter().find_map(|m| match m {
        Message::Notification(n) => Some(n),
        _ => None,
    })
}

fn retry_delay(out: &[Output]) -> Option<Duration> {
    out.iter().find_map(|o| match o {
        Output::StartTimer(Timer::ConnectRetry, d) => Some(*d),
        _ => None,
    })
}

pub(super) fn connected_with(f: &mut Fsm, local: &str) -> Vec<Output> {
    f.process(Input::Start);
    f.process(Input::TcpConnected {
        local: local.parse().unwrap(),
        interface: iface(),
    })
}

pub(super) fn connected(f: &mut Fsm) -> Vec<Output> {
    connected_with(f, LOCAL)
}

/// The daemon's export: `desired`, released for the session `f` is in (or will be in
/// once established).
pub(super) fn export(f: &Fsm, desired: DesiredRoutes) -> Input {
    let n = f.counters().established_transitions;
    let session = if f.state() == State::Established {
        n
    } else {
        n + 1
    };
    Input::Routes(Export {
        routes: desired,
        released: Some(session),
        ..Export::default()
    })
}

pub(super) fn end_of_rib(family: Family) -> Input {
    recv(Message::Update(Update {
        end_of_rib: Some(family),
        ..Update::default()
    }))
}

/// The peer's End-of-RIB for every family negotiated.
pub(super) fn initial_routes(f: &mut Fsm) -> Vec<Output> {
    let families = f
        .negotiated()
        .map(|n| n.families.clone())
        .unwrap_or_default();
    families
        .into_iter()
        .flat_map(|family| f.process(end_of_rib(family)))
        .collect()
}

/// Up to Established, then the peer's End-of-RIB for each family it negotiated: what a
/// session does until it may announce.
pub(super) fn establish(f: &mut Fsm, open: Open) -> Vec<Output> {
    connected(f);
    f.process(recv(Message::Open(open)));
    let mut out = f.process(recv(Message::Keepalive));
    assert_eq!(f.state(), State::Established, "{out:?}");
    out.extend(initial_routes(f));
    out
}

pub(super) fn established_with(c: FsmConfig, desired: DesiredRoutes) -> Fsm {
    let mut f = Fsm::new(c);
    let input = export(&f, desired);
    f.process(input);
    establish(&mut f, peer_open(3));
    f
}

pub(super) fn established(list: &[&str]) -> Fsm {
    established_with(cfg(), routes(list))
}

pub(super) fn peer_route(prefixes: &[&str], first_as: u32) -> Update {
    Update {
        withdrawn: vec![],
        attributes: Some(PathAttributes::new(
            Origin::Igp,
            AsPath::sequence(vec![first_as, 65100]),
            NextHop {
                ipv4: Some("198.18.1.0".parse().unwrap()),
                ..NextHop::default()
            },
        )),
        nlri: prefixes.iter().map(|p| pfx(p)).collect(),
        ..Update::default()
    }
}
