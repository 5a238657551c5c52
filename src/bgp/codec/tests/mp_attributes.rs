//! Encoding and decoding of IPv6 (RFC 4760, RFC 2545, MP attributes) and of each path
//! attribute.

use std::net::Ipv4Addr;

use super::round_trip::many_host_routes_v6;
use super::*;
use crate::bgp::message::RawAttribute;

#[test]
fn ipv6_round_trip_with_global_next_hop() {
    let u = announce(&["2001:db8::10/128", "2001:db8:1::/48"], vec![ASN4]);
    let frame = encode(&Message::Update(u.clone()), FOUR).unwrap();
    // No withdrawn routes, no classic NLRI, no NEXT_HOP; MP_REACH_NLRI first (RFC 7606
    // §5.1), optional non-transitive, next hop length 16, reserved 0.
    assert_eq!(
        &frame[19..],
        &from_hex(
            "0000 003d
             800e 2d 0002 01 10 20010db8000000000000000000000001 00
                     80 20010db8000000000000000000000010 30 20010db80001
             40010100 4002 06 02 01 fa56ea01"
        )[..]
    );
    assert_eq!(decode(&frame, FOUR), Ok(Message::Update(u)));
}

#[test]
fn ipv6_round_trip_with_link_local_next_hop() {
    let mut u = announce(&["2001:db8::10/128"], vec![ASN4]);
    u.attributes.as_mut().unwrap().next_hop.ipv6_link_local = Some(LL6);
    let frame = encode(&Message::Update(u.clone()), FOUR).unwrap();
    assert_eq!(
        find_attribute(&frame, 14).unwrap(),
        from_hex(
            "800e 36 0002 01 20 20010db8000000000000000000000001
             fe800000000000000000000000000001 00 80 20010db8000000000000000000000010"
        )
    );
    let d = decode_update_ok(&frame, FOUR);
    assert_eq!(
        d.attributes.as_ref().unwrap().next_hop,
        NextHop {
            ipv4: None,
            ipv6: Some(NH6),
            ipv6_link_local: Some(LL6)
        }
    );
    assert_eq!(d, u);
}

#[test]
fn ipv6_withdraw_round_trip() {
    let u = Update {
        withdrawn: nets(&["2001:db8::10/128", "2001:db8:1::/48"]),
        ..Update::default()
    };
    let frame = encode(&Message::Update(u.clone()), FOUR).unwrap();
    assert_eq!(
        &frame[19..],
        &from_hex("0000 001e 800f 1b 0002 01 80 20010db8000000000000000000000010 30 20010db80001")
            [..]
    );
    assert_eq!(decode(&frame, FOUR), Ok(Message::Update(u)));
}

#[test]
fn ipv6_host_routes_split_over_frames() {
    for link_local in [None, Some(LL6)] {
        let mut u = announce(&[], vec![ASN4]);
        u.nlri = many_host_routes_v6(1000, 1);
        u.withdrawn = many_host_routes_v6(500, 2);
        let a = u.attributes.as_mut().unwrap();
        a.next_hop.ipv6 = Some(NH6);
        a.next_hop.ipv6_link_local = link_local;
        let (back, frames) = round_trip(&u, FOUR);
        assert_eq!(back, u);
        // Withdrawals: (4077 - 4 - 4 - 3) / 17 = 239 a frame. Announcements: ORIGIN and
        // AS_PATH take 13 bytes, MP_REACH_NLRI's fixed part 4 + 4 + 16 (or 32) + 1:
        // 237 (or 236) a frame.
        let per_frame = if link_local.is_some() { 236 } else { 237 };
        assert_eq!(frames.len(), 3 + 1000usize.div_ceil(per_frame));
        assert_eq!(frames[0].len(), 19 + 4 + 4 + 3 + 239 * 17);
        assert_eq!(
            frames[3].len(),
            19 + 4 + 13 + 4 + 5 + 16 * (1 + usize::from(link_local.is_some())) + per_frame * 17
        );
    }
}

#[test]
fn mixed_update_goes_out_one_kind_per_frame() {
    let nlri = nets(&["192.0.2.10/32", "2001:db8::10/128", "198.18.0.0/15"]);
    let u = Update {
        withdrawn: nets(&["2001:db8::11/128", "192.0.2.11/32"]),
        attributes: Some(rich_attrs(&nlri)),
        nlri,
        withdrawn_path_ids: Vec::new(),
        nlri_path_ids: Vec::new(),
        end_of_rib: None,
        errors: Vec::new(),
    };
    let (back, frames) = round_trip(&u, FOUR);
    assert_eq!(frames.len(), 4);
    // IPv4 withdrawals, MP_UNREACH_NLRI, IPv4 NLRI, MP_REACH_NLRI.
    assert_eq!(back.withdrawn, nets(&["192.0.2.11/32", "2001:db8::11/128"]));
    assert_eq!(
        back.nlri,
        nets(&["192.0.2.10/32", "198.18.0.0/15", "2001:db8::10/128"])
    );
    assert_eq!(back.attributes, u.attributes);
    assert_eq!(type_codes(&frames[0]), Vec::<u8>::new());
    assert_eq!(type_codes(&frames[1]), vec![15]);
    assert_eq!(type_codes(&frames[2]), vec![1, 2, 3, 4, 8, 32]);
    assert_eq!(type_codes(&frames[3]), vec![14, 1, 2, 4, 8, 32]);
}

#[test]
fn classic_nlri_and_mp_reach_in_one_update_share_the_attributes() {
    let attrs = [
        origin_attr(0),
        as_path_attr(2, &[ASN4]),
        next_hop_attr([192, 0, 2, 1]),
        mp_reach_v6(),
        attribute(0x80, 15, &from_hex("0002 01 40 20010db800000002")),
    ]
    .concat();
    let u = decode_update_ok(&update_frame_raw(&[24, 192, 0, 2], &attrs, NLRI_ONE), FOUR);
    assert_eq!(u.withdrawn, nets(&["192.0.2.0/24", "2001:db8:0:2::/64"]));
    assert_eq!(u.nlri, nets(&["192.0.2.10/32", "2001:db8:1::/48"]));
    assert_eq!(
        u.attributes.unwrap().next_hop,
        NextHop {
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ipv6: Some(NH6),
            ipv6_link_local: None
        }
    );
}

#[test]
fn ipv4_unicast_in_mp_attributes_is_decoded() {
    let attrs = super::props::ipv4_mp_attribute_bytes();
    let u = decode_update_ok(&update_frame_raw(&[], &attrs, &[]), FOUR);
    let nlri = nets(&["192.0.2.10/32", "198.18.99.0/24"]);
    let mut a = path_attrs(&nlri, vec![ASN4]);
    a.origin = Origin::Incomplete;
    assert_eq!(
        u,
        Update {
            withdrawn: nets(&["192.0.2.11/32"]),
            attributes: Some(a),
            nlri,
            withdrawn_path_ids: Vec::new(),
            nlri_path_ids: Vec::new(),
            end_of_rib: None,
            errors: Vec::new(),
        }
    );
}

#[test]
fn next_hop_without_classic_nlri_is_ignored() {
    // RFC 4760 §3: even a malformed one.
    let attrs = [
        origin_attr(0),
        as_path_attr(2, &[ASN4]),
        attribute(0x40, 3, &[1, 2, 3]),
        mp_reach_v6(),
    ]
    .concat();
    let u = decode_update_ok(&update_frame_raw(&[], &attrs, &[]), FOUR);
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(u.attributes.unwrap().next_hop.ipv4, None);
}

#[test]
fn mp_attributes_of_other_families_are_skipped() {
    let attrs = [
        base_attrs(),
        // IPv6 labeled unicast and VPNv4: well-formed enough, nothing read from them.
        attribute(
            0x80,
            14,
            &from_hex("0002 04 10 20010db8000000000000000000000001 00 ff"),
        ),
        attribute(0x80, 15, &from_hex("0001 80 ffff")),
    ]
    .concat();
    let u = decode_update_ok(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR);
    assert_eq!(u.nlri, nets(&["192.0.2.10/32"]));
    assert!(u.withdrawn.is_empty() && u.errors.is_empty(), "{u:?}");
}

// Attributes both ways.

#[test]
fn med_round_trip_is_optional_non_transitive() {
    let mut u = announce(&["192.0.2.10/32"], vec![ASN4]);
    u.attributes.as_mut().unwrap().med = Some(10);
    let frame = encode(&Message::Update(u.clone()), FOUR).unwrap();
    assert_eq!(
        find_attribute(&frame, 4).unwrap(),
        from_hex("80 04 04 0000000a")
    );
    assert_eq!(decode(&frame, FOUR), Ok(Message::Update(u)));
}

#[test]
fn local_pref_round_trip_is_well_known() {
    let mut u = announce(&["192.0.2.10/32"], vec![]);
    u.attributes.as_mut().unwrap().local_pref = Some(200);
    let frame = encode(&Message::Update(u.clone()), IBGP).unwrap();
    assert_eq!(
        find_attribute(&frame, 5).unwrap(),
        from_hex("40 05 04 000000c8")
    );
    assert_eq!(decode(&frame, IBGP), Ok(Message::Update(u)));
    // Only sent when set.
    let u = announce(&["192.0.2.10/32"], vec![]);
    let frame = encode(&Message::Update(u), IBGP).unwrap();
    assert_eq!(find_attribute(&frame, 5), None);
}

#[test]
fn communities_round_trip_in_order_as_optional_transitive() {
    let mut u = announce(&["192.0.2.10/32"], vec![ASN4]);
    let list = vec![
        Community(65001 << 16 | 200),
        Community(65001 << 16 | 100),
        Community(65001 << 16 | 200),
    ];
    u.attributes.as_mut().unwrap().communities = list;
    let frame = encode(&Message::Update(u.clone()), FOUR).unwrap();
    assert_eq!(
        find_attribute(&frame, 8).unwrap(),
        from_hex("c0 08 0c fde900c8 fde90064 fde900c8")
    );
    assert_eq!(decode(&frame, FOUR), Ok(Message::Update(u.clone())));
    // Over 255 bytes: extended length, still no Partial bit.
    u.attributes.as_mut().unwrap().communities = (0..100).map(Community).collect();
    let frame = encode(&Message::Update(u.clone()), FOUR).unwrap();
    assert_eq!(
        &find_attribute(&frame, 8).unwrap()[..4],
        &from_hex("d0 08 0190")[..]
    );
    assert_eq!(decode(&frame, FOUR), Ok(Message::Update(u)));
}

#[test]
fn large_communities_round_trip_without_partial_bit() {
    let mut u = announce(&["2001:db8::10/128"], vec![ASN4]);
    let c = |global, local1, local2| LargeCommunity {
        global,
        local1,
        local2,
    };
    u.attributes.as_mut().unwrap().large_communities =
        vec![c(ASN4, 1, 2), c(65001, 0, 0), c(ASN4, 1, 2)];
    let frame = encode(&Message::Update(u.clone()), FOUR).unwrap();
    // 0xC0: optional transitive, Partial bit (0x20) clear; the duplicate is not sent
    // (RFC 8092 §5).
    assert_eq!(
        find_attribute(&frame, 32).unwrap(),
        from_hex("c0 20 18 fa56ea01 00000001 00000002 0000fde9 00000000 00000000")
    );
    u.attributes.as_mut().unwrap().large_communities.pop();
    assert_eq!(decode(&frame, FOUR), Ok(Message::Update(u)));
}

#[test]
fn received_only_attributes_are_decoded_and_never_sent() {
    for (ctx, aggregator) in [
        (FOUR, attribute(0xc0, 7, &from_hex("fa56ea01 c0000201"))),
        (TWO, attribute(0xc0, 7, &from_hex("fde9 c0000201"))),
    ] {
        let path = if ctx == FOUR {
            as_path_attr(2, &[ASN4])
        } else {
            attribute(0x40, 2, &from_hex("0201 fde9"))
        };
        let attrs = [
            origin_attr(0),
            path,
            next_hop_attr([192, 0, 2, 1]),
            attribute(0x40, 6, &[]),
            aggregator,
            attribute(0xc0, 16, &[0; 8]),      // EXT_COMMUNITIES
            attribute(0x80, 9, &[1, 2, 3, 4]), // ORIGINATOR_ID
            attribute(0xe0, 200, &[1, 2, 3]),  // unknown, Partial bit set
        ]
        .concat();
        let u = decode_update_ok(&update_frame_raw(&[], &attrs, NLRI_ONE), ctx);
        let a = u.attributes.clone().unwrap();
        assert!(a.atomic_aggregate);
        let asn = if ctx == FOUR { ASN4 } else { 65001 };
        assert_eq!(a.aggregator, Some((asn, Ipv4Addr::new(192, 0, 2, 1))));
        assert_eq!(
            a.other,
            vec![
                RawAttribute {
                    flags: 0xc0,
                    type_code: 16,
                    value: vec![0; 8]
                },
                RawAttribute {
                    flags: 0x80,
                    type_code: 9,
                    value: vec![1, 2, 3, 4]
                },
                RawAttribute {
                    flags: 0xe0,
                    type_code: 200,
                    value: vec![1, 2, 3]
                },
            ]
        );
        let frame = encode(&Message::Update(u), ctx).unwrap();
        assert_eq!(type_codes(&frame), vec![1, 2, 3]);
    }
}

#[test]
fn attributes_go_out_in_type_code_order() {
    let mut u = announce(&["192.0.2.10/32"], vec![]);
    let nlri = u.nlri.clone();
    let mut a = rich_attrs(&nlri);
    a.local_pref = Some(100);
    u.attributes = Some(a.clone());
    let frame = encode(&Message::Update(u.clone()), IBGP).unwrap();
    assert_eq!(type_codes(&frame), vec![1, 2, 3, 4, 5, 8, 32]);
    assert_eq!(decode(&frame, IBGP), Ok(Message::Update(u)));
    let nlri = nets(&["2001:db8::10/128"]);
    let u = Update {
        attributes: Some(PathAttributes {
            next_hop: path_attrs(&nlri, vec![]).next_hop,
            ..a
        }),
        nlri,
        ..Update::default()
    };
    let frame = encode(&Message::Update(u.clone()), IBGP).unwrap();
    assert_eq!(type_codes(&frame), vec![14, 1, 2, 4, 5, 8, 32]);
    assert_eq!(decode(&frame, IBGP), Ok(Message::Update(u)));
}
