//! UPDATE errors and their RFC 7606 treatment (the table in `codec/mod.rs`).

use std::net::Ipv4Addr;

use super::*;

// Session reset.

#[test]
fn reset_3_1_length_fields_inconsistent() {
    // Withdrawn length past the end.
    let mut body = from_hex("0010 20c000020a");
    body.extend_from_slice(&[0, 0]);
    assert_notification(&raw_frame(2, &body), FOUR, 3, 1, &[]);
    // Total path attribute length past the end.
    let mut f = update_frame_raw(&[], &base_attrs(), NLRI_ONE);
    f[22] += 10;
    assert_notification(&f, FOUR, 3, 1, &[]);
    // Withdrawn length eating the attribute length field.
    assert_notification(&raw_frame(2, &from_hex("0002 0000")), FOUR, 3, 1, &[]);
}

#[test]
fn reset_3_1_duplicate_mp_attributes() {
    let unreach = attribute(0x80, 15, &from_hex("0002 01"));
    for twice in [
        [mp_reach_v6(), mp_reach_v6()].concat(),
        [unreach.clone(), unreach].concat(),
    ] {
        let attrs = [base_attrs(), twice].concat();
        assert_notification(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR, 3, 1, &[]);
    }
}

#[test]
fn reset_3_1_mp_attribute_past_total_length() {
    // Treat-as-withdraw cannot find the prefixes it holds (RFC 7606 §3.j).
    for tail in [
        "800e",
        "900e00",
        "800e 20 0002 01 10 20010db8",
        "800f 04 0002 01",
    ] {
        let attrs = [base_attrs(), from_hex(tail)].concat();
        assert_notification(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR, 3, 1, &[]);
    }
}

#[test]
fn reset_3_2_unrecognized_well_known() {
    let unknown = attribute(0x40, 99, &[1, 2, 3]);
    let attrs = [base_attrs(), unknown.clone()].concat();
    assert_notification(
        &update_frame_raw(&[], &attrs, NLRI_ONE),
        FOUR,
        3,
        2,
        &unknown,
    );
}

#[test]
fn reset_3_4_mp_attribute_flags() {
    for bad in [
        attribute(
            0xc0,
            14,
            &from_hex("0002 01 10 20010db8000000000000000000000001 00"),
        ),
        attribute(0x00, 15, &from_hex("0002 01")),
    ] {
        let attrs = [base_attrs(), bad.clone()].concat();
        assert_notification(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR, 3, 4, &bad);
    }
}

#[test]
fn reset_3_9_malformed_mp_attributes() {
    for (type_code, value) in [
        (14, "0001 01 04 c612"),     // MP_REACH too short (zettabgp panics on it)
        (14, "0001"),                // no SAFI
        (14, "0002 01 10 20010db8"), // next hop longer than the attribute
        (14, "0001 01 04 c6120101"), // no reserved byte
        (
            14,
            "0001 01 10 20010db8000000000000000000000001 00 20c000020a",
        ), // IPv4 over an IPv6 next hop (RFC 8950, not negotiated)
        (14, "0001 01 04 c6120101 00 21c000020a00"), // prefix length 33
        (14, "0002 01 04 c6120101 00 402001"), // IPv6 over an IPv4 next hop
        (
            14,
            "0002 01 14 20010db8000000000000000000000001 00000000 00",
        ), // next hop of 20
        (
            14,
            "0002 01 10 20010db8000000000000000000000001 00 81 20010db8",
        ), // /129
        (
            14,
            "0002 01 10 20010db8000000000000000000000001 00 80 20010db8",
        ), // cut short
        (15, "0001"),                // MP_UNREACH too short
        (15, "0001 01 20c00002"),    // withdrawn prefix cut short
        (15, "0002 01 40 20010db8"), // IPv6 withdrawn prefix cut short
    ] {
        let bad = attribute(0x80, type_code, &from_hex(value));
        let attrs = [base_attrs(), bad.clone()].concat();
        assert_notification(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR, 3, 9, &bad);
    }
}

#[test]
fn reset_3_10_invalid_network_field() {
    // Withdrawn prefix length 33, then bytes missing.
    assert_notification(
        &update_frame_raw(&[33, 1, 2, 3, 4, 5], &[], &[]),
        FOUR,
        3,
        10,
        &[],
    );
    assert_notification(&update_frame_raw(&[24, 192, 0], &[], &[]), FOUR, 3, 10, &[]);
    // NLRI the same way.
    let attrs = base_attrs();
    assert_notification(
        &update_frame_raw(&[], &attrs, &[40, 1, 2, 3, 4, 5]),
        FOUR,
        3,
        10,
        &[],
    );
    assert_notification(
        &update_frame_raw(&[], &attrs, &[32, 192, 0, 2]),
        FOUR,
        3,
        10,
        &[],
    );
    // Length 255 overflows a `(bits + 7) / 8` on u8 (zettabgp's).
    assert_notification(&update_frame_raw(&[], &attrs, &[255, 1]), FOUR, 3, 10, &[]);
}

/// RFC 7606 §5.2: treat-as-withdraw with nothing announced is a session reset; attribute
/// discard is not.
#[test]
fn reset_when_treat_as_withdraw_has_no_reachable_nlri() {
    let withdrawal = [24, 192, 0, 2];
    let bad_origin = origin_attr(3);
    let bad_med = attribute(0x80, 4, &[0, 0, 1]);
    for (attrs, sub, data) in [
        (bad_origin.clone(), 6, bad_origin.clone()),
        (bad_med.clone(), 5, bad_med.clone()),
        (from_hex("4001"), 1, Vec::new()), // attribute header cut short
    ] {
        let f = update_frame_raw(&withdrawal, &attrs, &[]);
        assert_notification(&f, FOUR, 3, sub, &data);
    }
    // An MP_REACH_NLRI without NLRI announces nothing either.
    let empty_reach = attribute(
        0x80,
        14,
        &from_hex("0002 01 10 20010db8000000000000000000000001 00"),
    );
    let attrs = [base_attrs(), empty_reach, bad_med.clone()].concat();
    assert_notification(&update_frame_raw(&[], &attrs, &[]), FOUR, 3, 5, &bad_med);
    // Attribute discard only logs, and the withdrawal stands.
    let u = decode_update_ok(
        &update_frame_raw(&withdrawal, &attribute(0x40, 6, &[1]), &[]),
        FOUR,
    );
    assert_eq!(u.withdrawn, nets(&["192.0.2.0/24"]));
    assert_eq!(u.errors.len(), 1, "{:?}", u.errors);
    assert!(u.errors[0].starts_with("attribute discard"));
    // MP_UNREACH_NLRI alone is a plain withdrawal.
    let unreach = attribute(0x80, 15, &from_hex("0002 01 40 20010db800000002"));
    let u = decode_update_ok(&update_frame_raw(&[], &unreach, &[]), FOUR);
    assert_eq!(u.withdrawn, nets(&["2001:db8:0:2::/64"]));
    assert!(u.errors.is_empty());
}

// Treat-as-withdraw.

/// An UPDATE withdrawing 198.18.99.0/24, with `attrs` and announcing 192.0.2.10/32 and, in
/// MP_REACH_NLRI, 2001:db8:1::/48; decoded, it must withdraw all three.
#[track_caller]
fn assert_treat_as_withdraw(attrs: &[u8], ctx: CodecContext, needle: &str) {
    let attrs = [mp_reach_v6(), attrs.to_vec()].concat();
    let f = update_frame_raw(&[24, 198, 18, 99], &attrs, NLRI_ONE);
    let u = decode_update_ok(&f, ctx);
    let withdrawn = nets(&["198.18.99.0/24", "192.0.2.10/32", "2001:db8:1::/48"]);
    assert_withdrawn(&u, &withdrawn, needle);
}

/// Base attributes with the one of `bad`'s type code replaced by `bad`.
fn with_bad(bad: &[u8], ctx: CodecContext) -> Vec<u8> {
    let path = if ctx.four_octet_asn {
        as_path_attr(2, &[ASN4])
    } else {
        attribute(0x40, 2, &from_hex("0201 fde9"))
    };
    let mut attrs: Vec<Vec<u8>> = [origin_attr(0), path, next_hop_attr([192, 0, 2, 1])]
        .into_iter()
        .filter(|a| a[1] != bad[1])
        .collect();
    attrs.push(bad.to_vec());
    attrs.concat()
}

#[test]
fn treat_as_withdraw_malformed_origin() {
    for bad in [
        attribute(0x40, 1, &[0, 0]),
        attribute(0x40, 1, &[]),
        origin_attr(3),
    ] {
        assert_treat_as_withdraw(&with_bad(&bad, FOUR), FOUR, "ORIGIN");
    }
}

#[test]
fn treat_as_withdraw_malformed_as_path() {
    for (ctx, value) in [
        (FOUR, "0201 fa56ea01 00"), // trailing byte: zettabgp loops forever on it
        (TWO, "0201 fde9 00"),      // the same on a 2-byte session
        (FOUR, "0201 fa56ea01 02"), // trailing byte that looks like a segment type
        (FOUR, "0202 fa56ea01"),    // count larger than the data
        (FOUR, "0200"),             // empty segment
        (FOUR, "0001 fa56ea01"),    // segment type 0
        (FOUR, "0501 fa56ea01"),    // segment type 5
        (FOUR, "0201 fde9"),        // 2-byte ASNs on a 4-byte session
        (TWO, "0201 fa56ea01"),     // 4-byte ASNs on a 2-byte session
        (FOUR, "02"),               // segment header cut short
        (FOUR, "0202 fa56ea01 00000000"), // AS 0 (RFC 7607)
        (TWO, "0101 0000"),         // AS 0 in a set
    ] {
        let bad = attribute(0x40, 2, &from_hex(value));
        assert_treat_as_withdraw(&with_bad(&bad, ctx), ctx, "AS_PATH");
    }
}

#[test]
fn treat_as_withdraw_malformed_next_hop() {
    for bad in [
        attribute(0x40, 3, &[192, 0, 2, 1, 0]),
        attribute(0x40, 3, &[]),
    ] {
        assert_treat_as_withdraw(&with_bad(&bad, FOUR), FOUR, "NEXT_HOP");
    }
}

#[test]
fn treat_as_withdraw_malformed_med() {
    for bad in [attribute(0x80, 4, &[0, 0, 1]), attribute(0x80, 4, &[0; 5])] {
        assert_treat_as_withdraw(&with_bad(&bad, FOUR), FOUR, "MULTI_EXIT_DISC");
    }
}

#[test]
fn treat_as_withdraw_malformed_local_pref_on_ibgp() {
    let bad = attribute(0x40, 5, &[0, 100]);
    assert_treat_as_withdraw(&with_bad(&bad, IBGP), IBGP, "LOCAL_PREF");
}

#[test]
fn treat_as_withdraw_malformed_communities() {
    for bad in [
        attribute(0xc0, 8, &[0xfd, 0xe9, 0, 100, 1]), // 5 bytes (zettabgp panics on it)
        attribute(0xc0, 8, &[]),
    ] {
        assert_treat_as_withdraw(&with_bad(&bad, FOUR), FOUR, "COMMUNITIES");
    }
}

#[test]
fn treat_as_withdraw_malformed_large_communities() {
    for bad in [
        attribute(0xc0, 32, &[0; 13]),
        attribute(0xc0, 32, &[0; 8]),
        attribute(0xc0, 32, &[]),
    ] {
        assert_treat_as_withdraw(&with_bad(&bad, FOUR), FOUR, "LARGE_COMMUNITY");
    }
}

#[test]
fn treat_as_withdraw_attribute_flags() {
    for (ctx, bad, name) in [
        (FOUR, attribute(0xc0, 1, &[0]), "ORIGIN"), // marked optional
        (FOUR, attribute(0x00, 1, &[0]), "ORIGIN"), // not transitive
        (FOUR, attribute(0x80, 2, &[]), "AS_PATH"),
        (FOUR, attribute(0xc0, 3, &[192, 0, 2, 1]), "NEXT_HOP"),
        (FOUR, attribute(0xc0, 4, &[0, 0, 0, 1]), "MULTI_EXIT_DISC"), // transitive
        (IBGP, attribute(0x80, 5, &[0, 0, 0, 1]), "LOCAL_PREF"),
        (FOUR, attribute(0x40, 8, &[0, 0, 0, 1]), "COMMUNITIES"), // well-known
        (FOUR, attribute(0x80, 32, &[0; 12]), "LARGE_COMMUNITY"), // non-transitive
    ] {
        assert_treat_as_withdraw(&with_bad(&bad, ctx), ctx, name);
        // RFC 4271's NOTIFICATION, should §5.2 escalate it (NEXT_HOP without classic
        // NLRI is ignored instead).
        if bad[1] != 3 {
            let f = update_frame_raw(&[24, 198, 18, 99], &with_bad(&bad, ctx), &[]);
            assert_notification(&f, ctx, 3, 4, &bad);
        }
    }
}

#[test]
fn treat_as_withdraw_missing_well_known() {
    let [origin, as_path, next_hop] = [
        origin_attr(0),
        as_path_attr(2, &[ASN4]),
        next_hop_attr([192, 0, 2, 1]),
    ];
    for (attrs, missing) in [
        ([as_path.clone(), next_hop.clone()].concat(), "ORIGIN"),
        ([origin.clone(), next_hop.clone()].concat(), "AS_PATH"),
        ([origin.clone(), as_path.clone()].concat(), "NEXT_HOP"),
    ] {
        assert_treat_as_withdraw(&attrs, FOUR, missing);
        // Without NLRI nothing is required.
        let u = decode_update_ok(&update_frame_raw(&[], &attrs, &[]), FOUR);
        assert!(u.errors.is_empty(), "{:?}", u.errors);
    }
    // MP_REACH_NLRI needs ORIGIN and AS_PATH, not NEXT_HOP.
    let f = update_frame_raw(&[], &[as_path.clone(), mp_reach_v6()].concat(), &[]);
    assert_withdrawn(
        &decode_update_ok(&f, FOUR),
        &nets(&["2001:db8:1::/48"]),
        "ORIGIN missing",
    );
    let f = update_frame_raw(&[], &[origin, as_path, mp_reach_v6()].concat(), &[]);
    assert!(decode_update_ok(&f, FOUR).attributes.is_some());
}

/// RFC 7606 §4: the NLRI are found through the Total Attribute Length.
#[test]
fn treat_as_withdraw_attribute_past_total_length() {
    for tail in ["40", "4001", "5001", "500100", "c00808 fde90064"] {
        let attrs = [base_attrs(), from_hex(tail)].concat();
        assert_treat_as_withdraw(&attrs, FOUR, "Total Attribute Length");
    }
}

// Attribute discard.

/// Decodes base attributes plus `extra` announcing 192.0.2.10/32: the route must stand and
/// one attribute-discard reason mention `needle`.
#[track_caller]
fn assert_discarded(extra: &[u8], ctx: CodecContext, needle: &str) -> PathAttributes {
    let attrs = [with_bad(&origin_attr(0), ctx), extra.to_vec()].concat();
    let u = decode_update_ok(&update_frame_raw(&[], &attrs, NLRI_ONE), ctx);
    assert_eq!(u.nlri, nets(&["192.0.2.10/32"]));
    assert_eq!(u.errors.len(), 1, "{:?}", u.errors);
    assert!(
        u.errors[0].starts_with("attribute discard") && u.errors[0].contains(needle),
        "{:?}",
        u.errors
    );
    u.attributes.unwrap()
}

#[test]
fn discard_malformed_atomic_aggregate() {
    for bad in [attribute(0x40, 6, &[0]), attribute(0xc0, 6, &[])] {
        let a = assert_discarded(&bad, FOUR, "ATOMIC_AGGREGATE");
        assert!(!a.atomic_aggregate);
    }
}

#[test]
fn discard_malformed_aggregator() {
    for (ctx, bad) in [
        (FOUR, attribute(0xc0, 7, &from_hex("fde9 c0000201"))), // 6 bytes on 4-octet
        (TWO, attribute(0xc0, 7, &from_hex("0000fde9 c0000201"))), // 8 bytes on 2-octet
        (FOUR, attribute(0xc0, 7, &from_hex("00000000 c0000201"))), // AS 0
        (FOUR, attribute(0x40, 7, &from_hex("0000fde9 c0000201"))), // well-known
    ] {
        let a = assert_discarded(&bad, ctx, "AGGREGATOR");
        assert_eq!(a.aggregator, None);
    }
}

#[test]
fn discard_local_pref_from_ebgp() {
    for bad in [
        attribute(0x40, 5, &[0, 0, 0, 100]),
        attribute(0x40, 5, &[1]),
    ] {
        let a = assert_discarded(&bad, FOUR, "LOCAL_PREF from an external peer");
        assert_eq!(a.local_pref, None);
    }
    let a = assert_discarded(
        &[
            attribute(0x40, 5, &[0, 0, 0, 100]),
            attribute(0x40, 6, &[0]),
        ]
        .concat(),
        IBGP,
        "ATOMIC_AGGREGATE",
    );
    assert_eq!(a.local_pref, Some(100));
}

#[test]
fn discard_as4_attributes_on_four_octet_sessions() {
    let as4_path = attribute(0xc0, 17, &from_hex("0201 fa56ea01"));
    let a = assert_discarded(&as4_path, FOUR, "AS4_PATH");
    assert!(a.other.is_empty());
    // On a 2-octet session they are kept as received (not merged), unless their flags are
    // wrong.
    let attrs = [with_bad(&origin_attr(0), TWO), as4_path.clone()].concat();
    let u = decode_update_ok(&update_frame_raw(&[], &attrs, NLRI_ONE), TWO);
    assert!(u.errors.is_empty());
    assert_eq!(u.attributes.unwrap().other[0].type_code, 17);
    assert_discarded(&attribute(0x80, 18, &[0; 8]), TWO, "AS4_AGGREGATOR");
}

#[test]
fn duplicates_keep_the_first() {
    let a = assert_discarded(&origin_attr(2), FOUR, "ORIGIN repeated");
    assert_eq!(a.origin, Origin::Igp);
    let unknown = |v| attribute(0xc0, 200, &[v]);
    let a = assert_discarded(&[unknown(1), unknown(2)].concat(), FOUR, "attribute 200");
    assert_eq!(a.other.len(), 1);
    assert_eq!(a.other[0].value, vec![1]);
    // A malformed first copy is the one that counts.
    let meds = [attribute(0x80, 4, &[1]), attribute(0x80, 4, &[0, 0, 0, 1])].concat();
    assert_treat_as_withdraw(&[base_attrs(), meds].concat(), FOUR, "MULTI_EXIT_DISC");
}

// Combinations and leniency.

#[test]
fn strongest_treatment_wins() {
    // Discard + treat-as-withdraw: withdrawn, both reasons kept.
    let attrs = [
        base_attrs(),
        attribute(0x40, 6, &[1]),
        attribute(0x80, 4, &[1]),
    ]
    .concat();
    let f = update_frame_raw(&[], &attrs, NLRI_ONE);
    let u = decode_update_ok(&f, FOUR);
    assert_withdrawn(&u, &nets(&["192.0.2.10/32"]), "MULTI_EXIT_DISC");
    assert!(
        u.errors[0].starts_with("attribute discard"),
        "{:?}",
        u.errors
    );
    // Treat-as-withdraw + a reset case after it: reset.
    let attrs = [
        base_attrs(),
        attribute(0x80, 4, &[1]),
        mp_reach_v6(),
        mp_reach_v6(),
    ]
    .concat();
    assert_notification(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR, 3, 1, &[]);
}

#[test]
fn partial_and_extended_length_bits_are_not_checked() {
    // RFC 7606 §3.c judges the Optional and Transitive bits only.
    let attrs = [
        attribute(0x60, 1, &[0]),                       // Partial on a well-known
        attribute(0x50, 2, &from_hex("0201 fa56ea01")), // Extended Length
        next_hop_attr([192, 0, 2, 1]),
        attribute(0xb0, 4, &[0, 0, 0, 7]), // Partial + Extended Length on MED
        attribute(0xe0, 8, &[0, 0, 0, 1]),
    ]
    .concat();
    let f = update_frame_raw(&[], &[attrs, mp_reach_v6()].concat(), NLRI_ONE);
    let u = decode_update_ok(&f, FOUR);
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(u.nlri.len(), 2);
    assert_eq!(u.attributes.unwrap().med, Some(7));
}

#[test]
fn unusable_next_hops_decode_and_are_left_to_route_import() {
    // RFC 4271 §6.3: a semantically incorrect NEXT_HOP means "ignore the route", never a
    // session reset, so the codec hands such routes on unchanged.
    for octets in [
        [0, 0, 0, 0],
        [127, 0, 0, 1],
        [224, 0, 0, 5],
        [255, 255, 255, 255],
    ] {
        let attrs = [
            origin_attr(0),
            as_path_attr(2, &[ASN4]),
            next_hop_attr(octets),
        ]
        .concat();
        let u = decode_update_ok(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR);
        assert_eq!(
            u.attributes.map(|a| a.next_hop.ipv4),
            Some(Some(Ipv4Addr::from(octets)))
        );
    }
}

#[test]
fn shortest_legal_bodies_decode() {
    assert_eq!(
        decode(&raw_frame(3, &[6, 0]), FOUR),
        Ok(Message::Notification(Notification::new(6, 0, Vec::new())))
    );
    let eor = Update {
        end_of_rib: Some(crate::bgp::message::Family::Ipv4Unicast),
        ..Update::default()
    };
    assert_eq!(
        decode(&raw_frame(2, &[0, 0, 0, 0]), FOUR),
        Ok(Message::Update(eor))
    );
}

#[test]
fn as_path_confederation_segments_are_dropped() {
    // SEQUENCE 65001, CONFED_SEQUENCE 64512, SET {65003, 65002}, SEQUENCE 65004, then
    // SEQUENCE 65005 after a CONFED_SET: sequences either side of a confederation segment
    // join.
    let value = from_hex(
        "0201 0000fde9 0301 0000fc00 0102 0000fdeb 0000fdea 0201 0000fdec
         0401 0000fc01 0201 0000fded",
    );
    let attrs = [
        origin_attr(1),
        attribute(0x50, 2, &value),
        next_hop_attr([192, 0, 2, 1]),
    ]
    .concat();
    let u = decode_update_ok(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR);
    let a = u.attributes.unwrap();
    assert_eq!(a.origin, Origin::Egp);
    assert_eq!(
        a.as_path,
        AsPath(vec![
            AsPathSegment::Sequence(vec![65001]),
            AsPathSegment::Set(vec![65003, 65002]),
            AsPathSegment::Sequence(vec![65004, 65005]),
        ])
    );
}
