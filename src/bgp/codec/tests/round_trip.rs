//! Encoding, checked by decoding: messages, OPEN, IPv4 UPDATEs and their splitting.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use super::*;
use crate::bgp::message::{Capabilities, Family, Open, AFI_IPV4, SAFI_UNICAST};

#[test]
fn keepalive_round_trip() {
    let bytes = encode(&Message::Keepalive, FOUR).unwrap();
    assert_eq!(bytes, from_hex("ffffffffffffffffffffffffffffffff 0013 04"));
    assert_eq!(decode(&bytes, FOUR), Ok(Message::Keepalive));
}

#[test]
fn route_refresh_round_trip() {
    let msg = Message::RouteRefresh { afi: 1, safi: 1 };
    let bytes = encode(&msg, FOUR).unwrap();
    assert_eq!(
        bytes,
        from_hex("ffffffffffffffffffffffffffffffff 0017 05 0001 00 01")
    );
    assert_eq!(decode(&bytes, FOUR), Ok(msg));
}

#[test]
fn notification_round_trip_keeps_long_data() {
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let msg = Message::Notification(Notification::new(6, 2, data));
    let bytes = encode(&msg, FOUR).unwrap();
    assert_eq!(bytes.len(), 19 + 2 + 3000);
    assert_eq!(&bytes[19..21], &[6, 2]);
    assert_eq!(decode(&bytes, FOUR), Ok(msg));

    let shutdown = Message::Notification(Notification::admin_shutdown("primaryd stopping"));
    let decoded = decode(&encode(&shutdown, FOUR).unwrap(), FOUR).unwrap();
    let Message::Notification(n) = &decoded else {
        panic!("{decoded:?}")
    };
    assert_eq!(n.shutdown_message().as_deref(), Some("primaryd stopping"));

    let too_long = Message::Notification(Notification::new(6, 2, vec![0; 4076]));
    assert!(matches!(
        encode(&too_long, FOUR),
        Err(CodecError::TooLong { len: 4097 })
    ));
    let longest = Message::Notification(Notification::new(6, 2, vec![7; 4075]));
    assert_eq!(decode(&encode(&longest, FOUR).unwrap(), FOUR), Ok(longest));
}

pub(super) fn open(asn: u32, route_refresh: bool) -> Open {
    Open {
        asn,
        hold_time: 9,
        router_id: Ipv4Addr::new(198, 18, 1, 1),
        capabilities: Capabilities {
            four_octet_asn: Some(asn),
            multiprotocol: vec![(AFI_IPV4, SAFI_UNICAST)],
            route_refresh,
            add_path: Vec::new(),
            graceful_restart: None,
            other: Vec::new(),
        },
    }
}

#[test]
fn open_round_trip_four_octet_asn() {
    let msg = Message::Open(open(ASN4, true));
    let bytes = encode(&msg, FOUR).unwrap();
    // Version 4, My AS = AS_TRANS, hold 9, id 198.18.1.1.
    assert_eq!(&bytes[19..28], &from_hex("04 5ba0 0009 c6120101"));
    let params = &bytes[29..];
    assert_eq!(usize::from(bytes[28]), params.len());
    let has = |cap: &str| {
        let cap = from_hex(cap);
        params.windows(cap.len()).any(|w| w == cap)
    };
    assert!(has("0206 0104 0001 0001"), "MP IPv4 unicast");
    assert!(has("0202 0200"), "route refresh");
    assert!(has("0206 4104 fa56ea01"), "4-octet ASN");
    assert_eq!(decode(&bytes, FOUR), Ok(msg.clone()));
    assert_eq!(decode(&bytes, TWO), Ok(msg));
}

#[test]
fn open_round_trip_two_octet_asn_without_route_refresh() {
    let msg = Message::Open(open(65001, false));
    let bytes = encode(&msg, TWO).unwrap();
    assert_eq!(&bytes[20..22], &65001u16.to_be_bytes());
    let params = &bytes[29..];
    assert!(!params.windows(2).any(|w| w == [2, 0]), "no route refresh");
    assert!(params.windows(6).any(|w| w == from_hex("4104 0000fde9")));
    assert_eq!(decode(&bytes, TWO), Ok(msg));
}

#[test]
fn open_always_sends_four_octet_capability() {
    let mut o = open(65001, false);
    o.capabilities.four_octet_asn = None;
    o.capabilities.multiprotocol.clear();
    let decoded = decode(&encode(&Message::Open(o), TWO).unwrap(), TWO).unwrap();
    let Message::Open(d) = decoded else {
        panic!("{decoded:?}")
    };
    assert_eq!(d.capabilities.four_octet_asn, Some(65001));
    assert!(d.capabilities.multiprotocol.is_empty());
}

#[test]
fn open_encode_errors() {
    let mut o = open(ASN4, true);
    o.router_id = Ipv4Addr::UNSPECIFIED;
    assert!(matches!(
        encode(&Message::Open(o), FOUR),
        Err(CodecError::InvalidRouterId)
    ));
    let mut o = open(ASN4, true);
    o.capabilities.four_octet_asn = Some(65001);
    assert!(matches!(
        encode(&Message::Open(o), FOUR),
        Err(CodecError::AsnMismatch { .. })
    ));
    let mut o = open(ASN4, true);
    o.capabilities.multiprotocol.push((99, 9));
    assert!(matches!(
        encode(&Message::Open(o), FOUR),
        Err(CodecError::UnsupportedFamily { afi: 99, safi: 9 })
    ));
    let mut o = open(ASN4, true);
    o.capabilities.multiprotocol = vec![(1, 1); 40];
    assert!(matches!(
        encode(&Message::Open(o), FOUR),
        Err(CodecError::TooManyCapabilities { .. })
    ));
}

#[test]
fn update_announce_round_trip_both_asn_widths() {
    for (ctx, as_path) in [(FOUR, vec![ASN4, 65001]), (TWO, vec![65001, 64512])] {
        let u = announce(&["192.0.2.10/32", "198.18.0.0/15", "0.0.0.0/0"], as_path);
        let frames = encode_update(&u, ctx).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0], encode(&Message::Update(u.clone()), ctx).unwrap());
        assert_eq!(decode(&frames[0], ctx), Ok(Message::Update(u)));
    }
}

#[test]
fn update_withdraw_round_trip() {
    let u = Update {
        withdrawn: nets(&["192.0.2.10/32", "198.18.99.0/24"]),
        ..Update::default()
    };
    let bytes = encode(&Message::Update(u.clone()), FOUR).unwrap();
    assert_eq!(&bytes[19..], &from_hex("0009 20c000020a 18c61263 0000")[..]);
    assert_eq!(decode(&bytes, FOUR), Ok(Message::Update(u)));
}

/// RFC 7606 §5.1: withdrawals and announcements travel in separate UPDATEs.
#[test]
fn withdraw_and_announce_take_two_updates() {
    let mut u = announce(&["192.0.2.10/32"], vec![ASN4]);
    u.withdrawn = nets(&["192.0.2.11/32", "192.0.2.0/25"]);
    let (back, frames) = round_trip(&u, FOUR);
    assert_eq!(back, u);
    assert_eq!(frames.len(), 2);
    assert_eq!(
        &frames[0][19..],
        &from_hex("000a 20c000020b 19c0000200 0000")[..]
    );
    assert!(matches!(
        encode(&Message::Update(u), FOUR),
        Err(CodecError::SeveralFrames { frames: 2 })
    ));
}

#[test]
fn empty_update_is_end_of_rib() {
    let frames = encode_update(&Update::default(), FOUR).unwrap();
    assert_eq!(
        frames,
        vec![from_hex(
            "ffffffffffffffffffffffffffffffff 0017 02 0000 0000"
        )]
    );
    let eor = Update {
        end_of_rib: Some(Family::Ipv4Unicast),
        ..Update::default()
    };
    assert_eq!(decode(&frames[0], FOUR), Ok(Message::Update(eor)));
}

#[test]
fn as_path_is_encoded_as_sequence() {
    let body = |u: &Update, ctx| encode(&Message::Update(u.clone()), ctx).unwrap()[19..].to_vec();
    // withdrawn 0, attrs: ORIGIN, AS_PATH (type 2 = AS_SEQUENCE), NEXT_HOP, then NLRI.
    let u = announce(&["192.0.2.10/32"], vec![ASN4]);
    assert_eq!(
        body(&u, FOUR),
        from_hex("0000 0014 40010100 4002 06 02 01 fa56ea01 400304c6120101 20c000020a")
    );
    let u = announce(&["192.0.2.10/32"], vec![65001, 65002]);
    assert_eq!(
        body(&u, TWO),
        from_hex("0000 0014 40010100 4002 06 02 02 fde9 fdea 400304c6120101 20c000020a")
    );
    // iBGP: zero-length AS_PATH.
    let u = announce(&["192.0.2.10/32"], Vec::new());
    assert_eq!(
        body(&u, FOUR),
        from_hex("0000 000e 40010100 400200 400304c6120101 20c000020a")
    );
    assert_eq!(
        decode(&encode(&Message::Update(u.clone()), FOUR).unwrap(), FOUR),
        Ok(Message::Update(u))
    );
}

#[test]
fn as_sets_round_trip_in_wire_order() {
    for ctx in [FOUR, TWO] {
        let mut u = announce(&["192.0.2.10/32"], vec![65001, 65002]);
        let path = &mut u.attributes.as_mut().unwrap().as_path;
        path.0.push(AsPathSegment::Set(vec![65011, 65010, 65011]));
        path.0.push(AsPathSegment::Sequence(vec![65003]));
        let frame = encode(&Message::Update(u.clone()), ctx).unwrap();
        let w = if ctx.four_octet_asn { 4 } else { 2 };
        let asns = |list: &[u32]| -> Vec<u8> {
            list.iter()
                .flat_map(|a| a.to_be_bytes()[4 - w..].to_vec())
                .collect()
        };
        let value = [
            vec![2, 2],
            asns(&[65001, 65002]),
            vec![1, 3],
            asns(&[65011, 65010, 65011]),
            vec![2, 1],
            asns(&[65003]),
        ]
        .concat();
        assert_eq!(
            find_attribute(&frame, 2).unwrap(),
            attribute(0x40, 2, &value)
        );
        assert_eq!(decode(&frame, ctx), Ok(Message::Update(u)));
    }
}

#[test]
fn segments_over_255_asns_are_split() {
    let mut u = announce(&["192.0.2.10/32"], vec![]);
    let set: Vec<u32> = (1..=300).collect();
    u.attributes.as_mut().unwrap().as_path = AsPath(vec![AsPathSegment::Set(set.clone())]);
    let frame = encode(&Message::Update(u), FOUR).unwrap();
    let a = find_attribute(&frame, 2).unwrap();
    assert_eq!(&a[..6], &from_hex("5002 04b4 01ff")[..]);
    assert_eq!(&a[4 + 2 + 255 * 4..][..2], &[1, 45]);
    let d = decode_update_ok(&frame, FOUR);
    let (first, second) = set.split_at(255);
    assert_eq!(
        d.attributes.unwrap().as_path,
        AsPath(vec![
            AsPathSegment::Set(first.to_vec()),
            AsPathSegment::Set(second.to_vec())
        ])
    );
}

#[test]
fn long_as_path_uses_several_segments_and_extended_length() {
    let as_path: Vec<u32> = (1..=300).map(|i| 4_200_000_000 + i).collect();
    let u = announce(&["192.0.2.10/32"], as_path);
    let bytes = encode(&Message::Update(u.clone()), FOUR).unwrap();
    // AS_PATH: flags 0x50, length 2 + 255*4 + 2 + 45*4 = 1204.
    assert_eq!(&bytes[27..33], &from_hex("5002 04b4 02ff")[..]);
    assert_eq!(&bytes[33 + 255 * 4..][..2], &[2, 45]);
    // The two segments read back as the one sequence they were.
    assert_eq!(decode(&bytes, FOUR), Ok(Message::Update(u)));
}

#[test]
fn host_bits_are_cleared_both_ways() {
    let mut u = announce(&[], vec![ASN4]);
    u.attributes.as_mut().unwrap().next_hop.ipv4 = Some(NH4);
    u.nlri = vec![IpNetwork::V4(
        Ipv4Network::new(Ipv4Addr::new(192, 0, 2, 255), 25).unwrap(),
    )];
    let bytes = encode(&Message::Update(u), FOUR).unwrap();
    assert_eq!(&bytes[bytes.len() - 5..], &[25, 192, 0, 2, 128]);
    let received = update_frame_raw(&[], &base_attrs(), &[25, 192, 0, 2, 0xff]);
    assert_eq!(
        decode_update_ok(&received, FOUR).nlri,
        vec![net("192.0.2.128/25")]
    );
    let mut u = announce(&[], vec![ASN4]);
    u.attributes.as_mut().unwrap().next_hop.ipv6 = Some(NH6);
    u.nlri = vec![net("2001:db8:ffff::/33")];
    let bytes = encode(&Message::Update(u), FOUR).unwrap();
    assert_eq!(
        find_attribute(&bytes, 14).unwrap()[23..],
        from_hex("00 21 20010db880")
    );
    let reach = attribute(
        0x80,
        14,
        &from_hex("0002 01 10 20010db8000000000000000000000001 00 21 20010db8ff"),
    );
    let attrs = [origin_attr(0), as_path_attr(2, &[ASN4]), reach].concat();
    assert_eq!(
        decode_update_ok(&update_frame_raw(&[], &attrs, &[]), FOUR).nlri,
        vec![net("2001:db8:8000::/33")]
    );
}

fn many_prefixes(count: u32, third_octet_base: u8) -> Vec<IpNetwork> {
    (0..count)
        .map(|i| {
            let addr = Ipv4Addr::new(198, 18, third_octet_base + (i / 256) as u8, i as u8);
            IpNetwork::V4(Ipv4Network::new(addr, 32).unwrap())
        })
        .collect()
}

pub(super) fn many_host_routes_v6(count: u32, base: u16) -> Vec<IpNetwork> {
    (0..count)
        .map(|i| {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, base, 0, 0, 0, (i >> 16) as u16, i as u16);
            IpNetwork::V6(Ipv6Network::new(addr, 128).unwrap())
        })
        .collect()
}

#[test]
fn large_update_splits_into_frames_that_decode_back() {
    for ctx in [FOUR, TWO] {
        let mut u = announce(&[], vec![65001]);
        u.nlri = many_prefixes(2000, 0);
        u.withdrawn = many_prefixes(2000, 100);
        u.attributes = Some(path_attrs(&u.nlri, vec![65001]));
        let (back, frames) = round_trip(&u, ctx);
        // 2000 * 5 bytes each way: at least 3 frames of each kind.
        assert!(frames.len() >= 6, "{} frames", frames.len());
        assert_eq!(back, u);
        assert!(matches!(
            encode(&Message::Update(u), ctx),
            Err(CodecError::SeveralFrames { .. })
        ));
    }
}

#[test]
fn split_fills_frames_to_the_limit() {
    let mut u = announce(&[], vec![ASN4]);
    u.nlri = many_prefixes(2000, 0);
    u.attributes = Some(path_attrs(&u.nlri, vec![ASN4]));
    let frames = encode_update(&u, FOUR).unwrap();
    // Attributes take 25 bytes: (4077 - 4 - 25) / 5 = 809 prefixes per frame.
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].len(), 19 + 4 + 25 + 809 * 5);
}

#[test]
fn update_encode_errors() {
    let u = announce(&["192.0.2.10/32"], vec![ASN4]);
    assert!(matches!(
        encode_update(&u, TWO),
        Err(CodecError::AsnNeedsFourOctets(ASN4))
    ));
    let mut u = announce(&["192.0.2.10/32"], vec![65001]);
    u.attributes = None;
    assert!(matches!(
        encode(&Message::Update(u.clone()), FOUR),
        Err(CodecError::MissingAttributes)
    ));
    assert!(matches!(
        encode_update(&u, FOUR),
        Err(CodecError::MissingAttributes)
    ));
    // Next hops: IPv4 NLRI need one, IPv6 NLRI theirs.
    let mut u = announce(&["192.0.2.10/32"], vec![65001]);
    u.attributes.as_mut().unwrap().next_hop = NextHop {
        ipv6: Some(NH6),
        ..NextHop::default()
    };
    assert!(matches!(
        encode_update(&u, FOUR),
        Err(CodecError::MissingNextHop(Family::Ipv4Unicast))
    ));
    let mut u = announce(&["2001:db8::/32"], vec![65001]);
    u.attributes.as_mut().unwrap().next_hop = NextHop {
        ipv4: Some(NH4),
        ipv6_link_local: Some(LL6),
        ..NextHop::default()
    };
    assert!(matches!(
        encode_update(&u, FOUR),
        Err(CodecError::MissingNextHop(Family::Ipv6Unicast))
    ));
    // An AS_PATH too long for any frame, either family.
    for prefix in ["192.0.2.10/32", "2001:db8::1/128"] {
        let u = announce(&[prefix], vec![65001; 1100]);
        assert!(matches!(
            encode_update(&u, FOUR),
            Err(CodecError::TooLong { .. })
        ));
    }
}
