//! Real bytes from FRR 8.4 and BIRD 2 (tests/data/bgp/*.hex, with the scripts that captured
//! them): a table of (file, session context, the message it must decode to).

use std::net::Ipv4Addr;

use super::*;
use crate::bgp::message::{
    AddPath, Capabilities, Family, GracefulRestart, Open, AFI_IPV4, AFI_IPV6, SAFI_UNICAST,
};

/// FRR's and BIRD's OPENs differ in these only.
pub(super) fn open(
    asn: u32,
    router_id: [u8; 4],
    families: &[(u16, u8)],
    add_path: &[AddPath],
    gr_flags: u8,
    other: &[u8],
) -> Message {
    Message::Open(Open {
        asn,
        hold_time: 3,
        router_id: Ipv4Addr::from(router_id),
        capabilities: Capabilities {
            four_octet_asn: Some(asn),
            multiprotocol: families.to_vec(),
            route_refresh: true,
            add_path: add_path.to_vec(),
            graceful_restart: Some(GracefulRestart {
                flags: gr_flags,
                restart_time: 120,
                families: Vec::new(),
            }),
            other: other.to_vec(),
        },
    })
}

/// FRR's capabilities beyond the ones we act on: old route refresh, enhanced route refresh,
/// extended message, FQDN, long-lived graceful restart.
const FRR_OTHER: &[u8] = &[128, 70, 6, 73, 71];

/// ADD-PATH receive (1) for one family, as FRR sends by default.
fn receive(afi: u16) -> AddPath {
    AddPath {
        afi,
        safi: SAFI_UNICAST,
        send_receive: AddPath::RECEIVE,
    }
}

/// The attributes FRR's capture scripts set (route-map: MED 10, 65001:100, 65001:1:2).
fn frr_attrs(next_hop: NextHop) -> PathAttributes {
    let mut a = PathAttributes::new(Origin::Igp, AsPath::sequence(vec![65001]), next_hop);
    a.med = Some(10);
    a.communities = vec![Community(65001 << 16 | 100)];
    a.large_communities = vec![LargeCommunity {
        global: 65001,
        local1: 1,
        local2: 2,
    }];
    a
}

fn bird_attrs() -> PathAttributes {
    let next_hop = NextHop {
        ipv4: Some(Ipv4Addr::new(198, 18, 1, 2)),
        ..NextHop::default()
    };
    let mut a = PathAttributes::new(Origin::Igp, AsPath::sequence(vec![65002]), next_hop);
    a.med = Some(20);
    a.communities = vec![Community(65002 << 16 | 100)];
    a.large_communities = vec![
        LargeCommunity {
            global: 65002,
            local1: 1,
            local2: 2,
        },
        LargeCommunity {
            global: ASN4,
            local1: 3,
            local2: 4,
        },
    ];
    a
}

fn announcement(nlri: &[&str], attributes: PathAttributes) -> Message {
    Message::Update(Update {
        attributes: Some(attributes),
        nlri: nets(nlri),
        ..Update::default()
    })
}

fn withdrawal(withdrawn: &[&str]) -> Message {
    Message::Update(Update {
        withdrawn: nets(withdrawn),
        ..Update::default()
    })
}

pub(super) fn table() -> Vec<(&'static str, CodecContext, Message)> {
    let v4 = [(AFI_IPV4, SAFI_UNICAST)];
    let v6 = [(AFI_IPV6, SAFI_UNICAST)];
    let frr_v4 = NextHop {
        ipv4: Some(Ipv4Addr::new(198, 18, 1, 2)),
        ..NextHop::default()
    };
    let frr_v6 = NextHop {
        ipv4: None,
        ipv6: Some("2001:db8:1::2".parse().unwrap()),
        ipv6_link_local: Some("fe80::2".parse().unwrap()),
    };
    let mut out = vec![
        // An FQDN capability with a domain name (zettabgp rejects it), decoded on a session
        // not yet known to be 4-octet.
        (
            "frr-8.4-open.hex",
            TWO,
            open(
                65001,
                [198, 19, 0, 1],
                &v4,
                &[receive(AFI_IPV4)],
                0xc,
                FRR_OTHER,
            ),
        ),
        (
            "frr-8.4-update.hex",
            FOUR,
            announcement(&["198.18.99.0/24"], frr_attrs(frr_v4)),
        ),
        (
            "frr-8.4-withdraw.hex",
            FOUR,
            withdrawal(&["198.18.99.0/24"]),
        ),
        (
            "frr-8.4-ipv6-open.hex",
            FOUR,
            open(
                65001,
                [198, 19, 0, 1],
                &v6,
                &[receive(AFI_IPV6)],
                0xc,
                FRR_OTHER,
            ),
        ),
        // A 32-byte next hop: global and link-local.
        (
            "frr-8.4-ipv6-update.hex",
            FOUR,
            announcement(
                &["2001:db8:98::1/128", "2001:db8:99::/48"],
                frr_attrs(frr_v6),
            ),
        ),
        (
            "frr-8.4-ipv6-withdraw.hex",
            FOUR,
            withdrawal(&["2001:db8:99::/48", "2001:db8:98::1/128"]),
        ),
        (
            "bird-2-open.hex",
            FOUR,
            open(65002, [198, 19, 0, 2], &v4, &[], 0, &[70, 71]),
        ),
        (
            "bird-2-update.hex",
            FOUR,
            announcement(&["198.18.98.0/24"], bird_attrs()),
        ),
        ("bird-2-withdraw.hex", FOUR, withdrawal(&["198.18.98.0/24"])),
    ];
    out.extend(super::add_path::captures());
    out
}

#[test]
fn captures_decode_to_the_expected_messages() {
    for (file, ctx, want) in table() {
        let bytes = capture(file);
        assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())), "{file}");
        assert_eq!(decode_guarded(bytes, ctx), Ok(want), "{file}");
    }
}

#[test]
fn every_capture_is_in_the_table() {
    let dir = format!("{}/tests/data/bgp", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".hex"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = table().into_iter().map(|(f, ..)| f.to_string()).collect();
    listed.sort();
    listed.dedup();
    assert_eq!(files, listed);
}

#[test]
fn what_we_send_for_captured_announcements_decodes_the_same() {
    for (file, ctx, want) in table() {
        let Message::Update(u) = want else { continue };
        if u.nlri.is_empty() || !u.nlri_path_ids.is_empty() {
            continue;
        }
        assert_eq!(round_trip(&u, ctx).0, u, "{file}");
    }
}

#[test]
fn frr_four_octet_as_path_on_a_two_octet_session_is_withdrawn() {
    let u = decode_update_ok(&capture("frr-8.4-update.hex"), TWO);
    assert_withdrawn(&u, &nets(&["198.18.99.0/24"]), "AS_PATH");
}

#[test]
fn frr_ipv6_only_open_does_not_imply_ipv4() {
    let Ok(Message::Open(o)) = decode(&capture("frr-8.4-ipv6-open.hex"), FOUR) else {
        panic!()
    };
    assert!(o.capabilities.supports(Family::Ipv6Unicast));
    assert!(!o.capabilities.ipv4_unicast());
    assert!(o
        .capabilities
        .add_path(Family::Ipv6Unicast, AddPath::RECEIVE));
    assert!(!o.capabilities.add_path(Family::Ipv6Unicast, AddPath::SEND));
}

#[test]
fn bird_sends_large_communities_without_the_partial_bit() {
    // 0xC0: optional transitive, as we send them.
    let bytes = capture("bird-2-update.hex");
    assert_eq!(&find_attribute(&bytes, 32).unwrap()[..3], &[0xc0, 32, 24]);
}
