//! RFC 7911 path identifiers in UPDATEs, and End-of-RIB markers (RFC 4724 §2).

use std::net::Ipv4Addr;

use super::*;
use crate::bgp::message::{AddPath, Family};

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

/// An ADD-PATH capture's OPEN: the ToR's, as FRR (AS 65001) or BIRD (AS 65002) sends it.
fn tor_open(asn: u32, router_id: [u8; 4], send_receive: u8, gr_flags: u8, other: &[u8]) -> Message {
    let add_path = |afi| AddPath {
        afi,
        safi: 1,
        send_receive,
    };
    super::captures::open(
        asn,
        router_id,
        &[(1, 1), (2, 1)],
        &[add_path(1), add_path(2)],
        gr_flags,
        other,
    )
}

/// One path to `prefix` learnt from DB host `host` (1 or 2, AS 420000001x), as the ToR of AS
/// `tor_asn` sends it with path identifier `id`.
fn path(prefix: &str, tor_asn: u32, host: u32, id: u32, next_hop: NextHop) -> Message {
    let as_path = AsPath::sequence(vec![tor_asn, 4_200_000_010 + host]);
    Message::Update(Update {
        attributes: Some(PathAttributes::new(Origin::Igp, as_path, next_hop)),
        nlri: nets(&[prefix]),
        nlri_path_ids: vec![id],
        ..Update::default()
    })
}

fn withdrawal(prefix: &str, id: u32) -> Message {
    Message::Update(Update {
        withdrawn: nets(&[prefix]),
        withdrawn_path_ids: vec![id],
        ..Update::default()
    })
}

fn end_of_rib(family: Family) -> Message {
    Message::Update(Update {
        end_of_rib: Some(family),
        ..Update::default()
    })
}

/// DB host `host`'s IPv4 address, its next hop.
fn v4(host: u8) -> NextHop {
    NextHop {
        ipv4: Some(Ipv4Addr::new(198, 18, 1, 2 + host)),
        ..NextHop::default()
    }
}

fn v6(global: &str, link_local: Option<&str>) -> NextHop {
    NextHop {
        ipv6: Some(global.parse().unwrap()),
        ipv6_link_local: link_local.map(|l| l.parse().unwrap()),
        ..NextHop::default()
    }
}

/// The ADD-PATH captures of the capture table: FRR 8.4 ('addpath-tx-all-paths') and BIRD 2
/// ('add paths tx') each send two paths for 192.0.2.10/32 and 2001:db8::10/128 (one per DB
/// host), End-of-RIB for both families, then withdraw the paths one host after the other.
/// FRR keeps the DB hosts' IPv4 next hops (same link) and puts its own IPv6 ones; BIRD keeps
/// both.
pub(super) fn captures() -> Vec<(&'static str, CodecContext, Message)> {
    let mut all = frr_captures();
    all.extend(bird_captures());
    all
}

const V4P: &str = "192.0.2.10/32";
const V6P: &str = "2001:db8::10/128";

/// FRR's: its own IPv6 next hops, the DB hosts' IPv4 ones.
fn frr_captures() -> Vec<(&'static str, CodecContext, Message)> {
    let (v4p, v6p) = (V4P, V6P);
    let frr6 = v6("2001:db8:1::2", Some("fe80::2"));
    let frr_other = [128, 70, 6, 73, 71];
    let c = ADD_PATH_BOTH;
    vec![
        (
            "frr-8.4-addpath-open.hex",
            FOUR,
            tor_open(65001, [198, 19, 0, 1], 3, 0xc, &frr_other),
        ),
        (
            "frr-8.4-addpath-ipv4-update-1.hex",
            c,
            path(v4p, 65001, 1, 2, v4(1)),
        ),
        (
            "frr-8.4-addpath-ipv4-update-2.hex",
            c,
            path(v4p, 65001, 2, 3, v4(2)),
        ),
        (
            "frr-8.4-addpath-ipv6-update-1.hex",
            c,
            path(v6p, 65001, 1, 2, frr6.clone()),
        ),
        (
            "frr-8.4-addpath-ipv6-update-2.hex",
            c,
            path(v6p, 65001, 2, 3, frr6),
        ),
        (
            "frr-8.4-addpath-eor-ipv4.hex",
            c,
            end_of_rib(Family::Ipv4Unicast),
        ),
        (
            "frr-8.4-addpath-eor-ipv6.hex",
            c,
            end_of_rib(Family::Ipv6Unicast),
        ),
        ("frr-8.4-addpath-ipv4-withdraw-1.hex", c, withdrawal(v4p, 2)),
        ("frr-8.4-addpath-ipv4-withdraw-2.hex", c, withdrawal(v4p, 3)),
        ("frr-8.4-addpath-ipv6-withdraw-1.hex", c, withdrawal(v6p, 2)),
        ("frr-8.4-addpath-ipv6-withdraw-2.hex", c, withdrawal(v6p, 3)),
    ]
}

/// BIRD's: the DB hosts' next hops in both families.
fn bird_captures() -> Vec<(&'static str, CodecContext, Message)> {
    let (v4p, v6p) = (V4P, V6P);
    let c = ADD_PATH_BOTH;
    vec![
        (
            "bird-2-addpath-open.hex",
            FOUR,
            tor_open(65002, [198, 19, 0, 2], 2, 0, &[70, 71]),
        ),
        (
            "bird-2-addpath-ipv4-update-1.hex",
            c,
            path(v4p, 65002, 1, 4, v4(1)),
        ),
        (
            "bird-2-addpath-ipv4-update-2.hex",
            c,
            path(v4p, 65002, 2, 5, v4(2)),
        ),
        (
            "bird-2-addpath-ipv6-update-1.hex",
            c,
            path(v6p, 65002, 1, 4, v6("2001:db8:1::3", None)),
        ),
        (
            "bird-2-addpath-ipv6-update-2.hex",
            c,
            path(v6p, 65002, 2, 5, v6("2001:db8:1::4", None)),
        ),
        (
            "bird-2-addpath-eor-ipv4.hex",
            c,
            end_of_rib(Family::Ipv4Unicast),
        ),
        (
            "bird-2-addpath-eor-ipv6.hex",
            c,
            end_of_rib(Family::Ipv6Unicast),
        ),
        ("bird-2-addpath-ipv4-withdraw-1.hex", c, withdrawal(v4p, 4)),
        ("bird-2-addpath-ipv4-withdraw-2.hex", c, withdrawal(v4p, 5)),
        ("bird-2-addpath-ipv6-withdraw-1.hex", c, withdrawal(v6p, 4)),
        ("bird-2-addpath-ipv6-withdraw-2.hex", c, withdrawal(v6p, 5)),
    ]
}

/// Without the negotiated ADD-PATH context the same bytes are unusable: the session resets
/// rather than reading path identifiers as prefixes.
#[test]
fn addpath_captures_need_the_addpath_context() {
    for file in [
        "frr-8.4-addpath-ipv4-update-1.hex",
        "bird-2-addpath-ipv4-withdraw-1.hex",
    ] {
        assert_notification(&capture(file), FOUR, 3, 10, &[]);
    }
    for file in [
        "frr-8.4-addpath-ipv6-update-1.hex",
        "bird-2-addpath-ipv6-withdraw-1.hex",
    ] {
        let bytes = capture(file);
        assert!(decode_guarded(bytes, FOUR).is_err(), "{file}");
    }
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
    .into_iter()
    .chain(
        captures()
            .into_iter()
            .map(|(file, ctx, _)| (capture(file), ctx)),
    )
    .collect()
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
