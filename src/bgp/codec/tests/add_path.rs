//! RFC 7911 path identifiers in UPDATEs, and End-of-RIB markers (RFC 4724 §2).

use super::*;
use crate::bgp::message::Family;

const ADD_PATH_V4: CodecContext = CodecContext {
    add_path_ipv4: true,
    ..FOUR
};
const ADD_PATH_V6: CodecContext = CodecContext {
    add_path_ipv6: true,
    ..FOUR
};
const ADD_PATH_BOTH: CodecContext = CodecContext {
    add_path_ipv4: true,
    add_path_ipv6: true,
    ..FOUR
};

/// A prefix in wire form after its path identifier.
fn with_id(id: u32, prefix: &[u8]) -> Vec<u8> {
    [&id.to_be_bytes()[..], prefix].concat()
}

/// MP_REACH_NLRI for IPv6 unicast, next hop 2001:db8::1, with the given NLRI bytes.
fn mp_reach_v6_nlri(nlri: &[u8]) -> Vec<u8> {
    let value = [
        &from_hex("0002 01 10 20010db8000000000000000000000001 00")[..],
        nlri,
    ]
    .concat();
    attribute(0x80, 14, &value)
}

fn mp_unreach(afi: u16, withdrawn: &[u8]) -> Vec<u8> {
    let value = [&afi.to_be_bytes()[..], &[1], withdrawn].concat();
    attribute(0x80, 15, &value)
}

/// The ADD-PATH captures of the capture table (none yet).
pub(super) fn captures() -> Vec<(&'static str, CodecContext, Message)> {
    Vec::new()
}

/// Seeds for the mutation proptest: ADD-PATH UPDATEs in the contexts they were made for.
pub(super) fn seeds() -> Vec<(Vec<u8>, CodecContext)> {
    let v4 = [with_id(1, NLRI_ONE), with_id(2, NLRI_ONE)].concat();
    let v6 = with_id(7, &from_hex("30 20010db80001"));
    let announce = [base_attrs(), mp_reach_v6_nlri(&v6)].concat();
    let withdraw = mp_unreach(2, &v6);
    vec![
        (
            update_frame_raw(&with_id(3, &[24, 198, 18, 99]), &announce, &v4),
            ADD_PATH_BOTH,
        ),
        (update_frame_raw(&[], &announce, NLRI_ONE), ADD_PATH_V6),
        (update_frame_raw(&[], &withdraw, &[]), ADD_PATH_V6),
        (
            update_frame_raw(&[], &mp_unreach(2, &[]), &[]),
            ADD_PATH_BOTH,
        ),
    ]
}

#[test]
fn ipv4_path_identifiers_in_the_classic_fields() {
    let withdrawn = [
        with_id(9, &[24, 198, 18, 99]),
        with_id(10, &[24, 198, 18, 99]),
    ]
    .concat();
    let nlri = [with_id(1, NLRI_ONE), with_id(2, NLRI_ONE)].concat();
    let u = decode_update_ok(
        &update_frame_raw(&withdrawn, &base_attrs(), &nlri),
        ADD_PATH_V4,
    );
    assert_eq!(u.withdrawn, nets(&["198.18.99.0/24", "198.18.99.0/24"]));
    assert_eq!(u.withdrawn_path_ids, vec![9, 10]);
    // The same prefix twice: two paths.
    assert_eq!(u.nlri, nets(&["192.0.2.10/32", "192.0.2.10/32"]));
    assert_eq!(u.nlri_path_ids, vec![1, 2]);
    assert!(u.attributes.is_some() && u.errors.is_empty(), "{u:?}");
}

#[test]
fn ipv6_path_identifiers_in_mp_attributes_and_zero_for_ipv4_without() {
    let v6 = with_id(7, &from_hex("30 20010db80001"));
    let attrs = [
        base_attrs(),
        mp_reach_v6_nlri(&v6),
        mp_unreach(2, &with_id(8, &from_hex("40 20010db800000002"))),
    ]
    .concat();
    let u = decode_update_ok(
        &update_frame_raw(&[24, 198, 18, 99], &attrs, NLRI_ONE),
        ADD_PATH_V6,
    );
    assert_eq!(u.withdrawn, nets(&["198.18.99.0/24", "2001:db8:0:2::/64"]));
    assert_eq!(u.withdrawn_path_ids, vec![0, 8]);
    assert_eq!(u.nlri, nets(&["192.0.2.10/32", "2001:db8:1::/48"]));
    assert_eq!(u.nlri_path_ids, vec![0, 7]);
    // IPv4 unicast in MP attributes takes the IPv4 setting.
    let reach = attribute(
        0x80,
        14,
        &[
            &from_hex("0001 01 04 c6120101 00")[..],
            &with_id(5, NLRI_ONE),
        ]
        .concat(),
    );
    let attrs = [origin_attr(0), as_path_attr(2, &[ASN4]), reach].concat();
    let u = decode_update_ok(&update_frame_raw(&[], &attrs, &[]), ADD_PATH_V4);
    assert_eq!(
        (u.nlri, u.nlri_path_ids),
        (nets(&["192.0.2.10/32"]), vec![5])
    );
}

#[test]
fn no_path_identifiers_when_no_family_of_the_update_carries_them() {
    for ctx in [FOUR, ADD_PATH_V6] {
        let f = update_frame_raw(&[24, 198, 18, 99], &base_attrs(), NLRI_ONE);
        let u = decode_update_ok(&f, ctx);
        assert_eq!(u.nlri, nets(&["192.0.2.10/32"]));
        assert!(
            u.withdrawn_path_ids.is_empty() && u.nlri_path_ids.is_empty(),
            "{u:?}"
        );
    }
    // A withdrawal-only UPDATE with ADD-PATH fills the (empty) NLRI side with nothing.
    let f = update_frame_raw(&with_id(4, &[24, 198, 18, 99]), &[], &[]);
    let u = decode_update_ok(&f, ADD_PATH_V4);
    assert_eq!((u.withdrawn_path_ids, u.nlri_path_ids), (vec![4], vec![]));
}

#[test]
fn treat_as_withdraw_keeps_each_path_identifier() {
    let v6 = with_id(7, &from_hex("30 20010db80001"));
    let attrs = [
        origin_attr(3), // invalid ORIGIN: treat-as-withdraw
        as_path_attr(2, &[ASN4]),
        next_hop_attr([192, 0, 2, 1]),
        mp_reach_v6_nlri(&v6),
    ]
    .concat();
    let f = update_frame_raw(
        &with_id(3, &[24, 198, 18, 99]),
        &attrs,
        &with_id(1, NLRI_ONE),
    );
    let u = decode_update_ok(&f, ADD_PATH_BOTH);
    assert_withdrawn(
        &u,
        &nets(&["198.18.99.0/24", "192.0.2.10/32", "2001:db8:1::/48"]),
        "ORIGIN",
    );
    assert_eq!(u.withdrawn_path_ids, vec![3, 1, 7]);
    assert!(u.nlri_path_ids.is_empty());
}

/// RFC 7606 §5.3: NLRI that cannot be parsed (a path identifier cut short included) cannot
/// be treated as withdrawn: session reset.
#[test]
fn malformed_path_identifiers_reset_the_session() {
    let attrs = base_attrs();
    for (withdrawn, nlri) in [
        (&[0, 0, 1][..], &[][..]),
        (&[][..], &[0, 0, 0, 1][..]),
        (&[][..], &[0, 0, 0, 1, 32, 192][..]),
    ] {
        assert_notification(
            &update_frame_raw(withdrawn, &attrs, nlri),
            ADD_PATH_V4,
            3,
            10,
            &[],
        );
    }
    for bad in [
        mp_reach_v6_nlri(&[0, 0, 7]),
        mp_unreach(2, &[0, 0, 0, 8, 64, 0x20]),
    ] {
        let attrs = [base_attrs(), bad.clone()].concat();
        assert_notification(
            &update_frame_raw(&[], &attrs, NLRI_ONE),
            ADD_PATH_V6,
            3,
            9,
            &bad,
        );
    }
    // An ADD-PATH UPDATE read without ADD-PATH: path identifier 1 reads as a /0, then a /0,
    // a /0 and a /1 wanting a byte that is the /32's length... here, bytes missing.
    let f = update_frame_raw(&[], &attrs, &with_id(1, &[32, 192, 0, 2]));
    assert_notification(&f, FOUR, 3, 10, &[]);
}

#[test]
fn we_never_send_path_identifiers() {
    let mut u = announce(&["192.0.2.10/32", "2001:db8::10/128"], vec![ASN4]);
    u.withdrawn = nets(&["198.18.99.0/24", "2001:db8::11/128"]);
    let plain = encode_update(&u, FOUR).unwrap();
    u.nlri_path_ids = vec![1, 2];
    u.withdrawn_path_ids = vec![3, 4];
    assert_eq!(encode_update(&u, ADD_PATH_BOTH).unwrap(), plain);
}

#[test]
fn end_of_rib_markers() {
    let eor = |family| Update {
        end_of_rib: Some(family),
        ..Update::default()
    };
    for ctx in [FOUR, ADD_PATH_BOTH] {
        let empty = update_frame_raw(&[], &[], &[]);
        assert_eq!(decode_update_ok(&empty, ctx), eor(Family::Ipv4Unicast));
        let v6 = update_frame_raw(&[], &mp_unreach(2, &[]), &[]);
        assert_eq!(decode_update_ok(&v6, ctx), eor(Family::Ipv6Unicast));
        let v4 = update_frame_raw(&[], &mp_unreach(1, &[]), &[]);
        assert_eq!(decode_update_ok(&v4, ctx), eor(Family::Ipv4Unicast));
    }
    // Not markers: an unknown family, withdrawn prefixes, another attribute, classic fields.
    let unknown = update_frame_raw(&[], &attribute(0x80, 15, &from_hex("0001 80")), &[]);
    let with_prefix = update_frame_raw(&[], &mp_unreach(2, &from_hex("40 20010db800000002")), &[]);
    let with_attr = update_frame_raw(
        &[],
        &[mp_unreach(2, &[]), attribute(0xc0, 200, &[1])].concat(),
        &[],
    );
    let with_withdrawn = update_frame_raw(&[24, 198, 18, 99], &mp_unreach(2, &[]), &[]);
    let discarded = update_frame_raw(
        &[],
        &[mp_unreach(2, &[]), attribute(0x40, 6, &[1])].concat(),
        &[],
    );
    for f in [unknown, with_prefix, with_attr, with_withdrawn, discarded] {
        assert_eq!(decode_update_ok(&f, FOUR).end_of_rib, None, "{f:02x?}");
    }
}
