//! Property tests: arbitrary, structured and mutated input (ADD-PATH contexts included) never
//! panics or hangs, and whatever decodes re-encodes to the same routes; built Updates round
//! trip.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use proptest::prelude::*;

use super::round_trip::open;
use super::*;
use crate::bgp::codec::attributes::{expected_flags, FLAG_OPTIONAL, FLAG_TRANSITIVE};
use crate::bgp::codec::encode::by_family;
use crate::bgp::message::Family;

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    SetU16(usize, u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), any::<u16>()).prop_map(|(i, v)| Mutation::SetU16(i, v)),
    ]
}

/// Mutations stay in the body so that most mutants get past the header checks.
fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    let body = frame.len().saturating_sub(HEADER_LEN).max(1);
    let at = |i: usize| HEADER_LEN + i % body;
    match *m {
        Mutation::Flip(i, mask) if frame.len() > HEADER_LEN => frame[at(i)] ^= mask,
        Mutation::Set(i, b) if frame.len() > HEADER_LEN => frame[at(i)] = b,
        Mutation::Truncate(i) => frame.truncate(at(i)),
        Mutation::Insert(i, b) => frame.insert(at(i).min(frame.len()), b),
        Mutation::Remove(i) if frame.len() > HEADER_LEN => {
            frame.remove(at(i));
        }
        Mutation::SetU16(i, v) if frame.len() > HEADER_LEN + 1 => {
            let p = at(i).min(frame.len() - 2);
            frame[p..p + 2].copy_from_slice(&v.to_be_bytes());
        }
        _ => {}
    }
}

/// Path attributes of every kind we read, some unknown or malformed, for an UPDATE frame.
fn rich_attribute_bytes() -> Vec<u8> {
    [
        origin_attr(0),
        attribute(
            0x50,
            2,
            &from_hex("0201 0000fde9 0301 0000fc00 0102 0000fdeb 0000fdea"),
        ),
        next_hop_attr([192, 0, 2, 1]),
        attribute(0x80, 4, &[0, 0, 0, 10]),
        attribute(0x40, 5, &[0, 0, 0, 100]),
        attribute(0x40, 6, &[]),
        attribute(0xc0, 7, &[0, 0, 0xfd, 0xe9, 192, 0, 2, 1]),
        attribute(0xc0, 8, &[0xfd, 0xe9, 0, 100, 0xfd, 0xe9, 0, 101]),
        attribute(0xc0, 32, &[1; 12]),
        attribute(0xc0, 17, &from_hex("0201 0000fde9")),
        attribute(0xc0, 200, &[1, 2, 3]),
        attribute(
            0x80,
            14,
            &from_hex(
                "0002 01 20 20010db8000000000000000000000001
                 fe800000000000000000000000000001 00 402001 80 20010db8000000000000000000000010",
            ),
        ),
        attribute(0x80, 15, &from_hex("0002 01 402001")),
    ]
    .concat()
}

/// IPv4 unicast carried in MP_REACH/MP_UNREACH.
pub(super) fn ipv4_mp_attribute_bytes() -> Vec<u8> {
    [
        origin_attr(2),
        as_path_attr(2, &[ASN4]),
        attribute(
            0x80,
            14,
            &from_hex("0001 01 04 c6120101 00 20c000020a 18c61263"),
        ),
        attribute(0x80, 15, &from_hex("0001 01 20c000020b")),
    ]
    .concat()
}

fn seeds() -> Vec<(Vec<u8>, CodecContext)> {
    let mut both = announce(&["192.0.2.10/32", "198.18.0.0/16"], vec![65001, 65002]);
    both.withdrawn = nets(&["192.0.2.11/32"]);
    let nlri = nets(&["192.0.2.10/32", "2001:db8::10/128", "2001:db8:1::/48"]);
    let mut attrs = rich_attrs(&nlri);
    attrs.next_hop.ipv6_link_local = Some(LL6);
    attrs.local_pref = Some(100);
    let mixed = Update {
        withdrawn: nets(&["2001:db8::11/128", "192.0.2.11/32"]),
        attributes: Some(attrs),
        nlri,
        withdrawn_path_ids: Vec::new(),
        nlri_path_ids: Vec::new(),
        end_of_rib: None,
        errors: Vec::new(),
    };
    let (rich, ipv4_mp) = (rich_attribute_bytes(), ipv4_mp_attribute_bytes());
    let mut out = vec![
        (capture("frr-8.4-open.hex"), TWO),
        (capture("frr-8.4-update.hex"), FOUR),
        (capture("frr-8.4-withdraw.hex"), FOUR),
        (
            encode(&Message::Open(open(ASN4, true)), FOUR).unwrap(),
            FOUR,
        ),
        (
            encode(
                &Message::Update(announce(&["192.0.2.10/32"], vec![ASN4])),
                FOUR,
            )
            .unwrap(),
            FOUR,
        ),
        (update_frame_raw(&[24, 192, 0, 2], &rich, NLRI_ONE), FOUR),
        (update_frame_raw(&[24, 192, 0, 2], &rich, NLRI_ONE), IBGP),
        (update_frame_raw(&[], &ipv4_mp, &[]), FOUR),
    ];
    out.extend(
        encode_update(&both, TWO)
            .unwrap()
            .into_iter()
            .map(|f| (f, TWO)),
    );
    out.extend(
        encode_update(&mixed, IBGP)
            .unwrap()
            .into_iter()
            .map(|f| (f, IBGP)),
    );
    out.extend(super::add_path::seeds());
    out
}

/// A prefix list: mostly well-formed entries, sometimes a length over `max` (up to 255)
/// or missing or extra address bytes; each entry after a 4-byte path identifier if `ids`.
fn prefix_list(max: u8, ids: bool) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        (
            prop_oneof![8 => 0u8..=max, 1 => any::<u8>()],
            proptest::collection::vec(any::<u8>(), 0..=17),
            prop::bool::weighted(0.9),
            prop_oneof![3 => 0u32..4, 1 => any::<u32>()],
        ),
        0..4,
    )
    .prop_map(move |entries| {
        let mut out = Vec::new();
        for (len, bytes, exact, path_id) in entries {
            if ids {
                out.extend_from_slice(&path_id.to_be_bytes());
            }
            out.push(len);
            if exact {
                let n = usize::from(len).div_ceil(8).min(16);
                out.extend((0..n).map(|i| bytes.get(i).copied().unwrap_or(0)));
            } else {
                out.extend_from_slice(&bytes[..bytes.len().min(6)]);
            }
        }
        out
    })
}

/// Whether a prefix list of `afi` carries path identifiers: as `ctx` says, 9 times in 10.
fn ids_for(ctx: CodecContext, afi: u16) -> impl Strategy<Value = bool> {
    let negotiated = (afi == 1 && ctx.add_path_ipv4) || (afi == 2 && ctx.add_path_ipv6);
    prop::bool::weighted(0.9).prop_map(move |agree| negotiated == agree)
}

/// AS_PATH values: segments of any type 0..=5, count 0..=3 and either ASN width, and
/// sometimes stray trailing bytes (the endless-loop shape).
fn as_path_value() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec((0u8..=5, 0u8..=3, any::<bool>(), any::<u32>()), 0..3),
        prop_oneof![4 => Just(0usize), 1 => 1usize..=2],
        any::<u8>(),
    )
        .prop_map(|(segments, trailing, byte)| {
            let mut out = Vec::new();
            for (segment_type, count, wide, asn) in segments {
                out.extend_from_slice(&[segment_type, count]);
                for _ in 0..count {
                    if wide {
                        out.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        out.extend_from_slice(&(asn as u16).to_be_bytes());
                    }
                }
            }
            out.extend(std::iter::repeat_n(byte, trailing));
            out
        })
}

/// MP_REACH/MP_UNREACH-shaped values for IPv4 or IPv6 (or another AFI) with plausible or
/// random next-hop lengths, and path identifiers mostly as `ctx` negotiated them.
fn mp_value(ctx: CodecContext) -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![4 => prop::sample::select(vec![1u16, 2]), 1 => any::<u16>()],
        prop_oneof![3 => Just(1u8), 1 => any::<u8>()],
        prop_oneof![3 => prop::sample::select(vec![4u8, 16, 32]), 1 => 0u8..=40],
        any::<u8>(),
        any::<bool>(),
    )
        .prop_flat_map(move |head| {
            let afi = head.0;
            (
                Just(head),
                ids_for(ctx, afi).prop_flat_map(|ids| prefix_list(128, ids)),
            )
        })
        .prop_map(|((afi, safi, nh_len, reserved, reach), nlri)| {
            let mut v = afi.to_be_bytes().to_vec();
            v.push(safi);
            if reach {
                v.push(nh_len);
                v.extend(std::iter::repeat_n(0xfe, usize::from(nh_len)));
                v.push(reserved);
            }
            v.extend_from_slice(&nlri);
            v
        })
}

/// One path attribute: usually a recognized type code with its proper flags, the value
/// of a plausible length; sometimes anything.
fn attribute_bytes(ctx: CodecContext) -> impl Strategy<Value = Vec<u8>> {
    let type_code = prop_oneof![
        6 => prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16, 17, 18, 32]),
        1 => any::<u8>(),
    ];
    let value = prop_oneof![
        prop::sample::select(vec![0usize, 1, 4, 6, 8, 12, 24])
            .prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
        proptest::collection::vec(any::<u8>(), 0..=13),
        as_path_value(),
        mp_value(ctx),
    ];
    let flags = prop_oneof![3 => Just(None), 1 => any::<u8>().prop_map(Some)];
    (type_code, value, flags, any::<bool>()).prop_map(|(type_code, value, flags, ext)| {
        let flags = flags.unwrap_or_else(|| {
            let (optional, transitive) = expected_flags(type_code).unwrap_or((true, true));
            let mut f = if optional { FLAG_OPTIONAL } else { 0 };
            if transitive {
                f |= FLAG_TRANSITIVE;
            }
            if ext {
                f |= FLAG_EXTENDED_LENGTH;
            }
            f
        });
        attribute(flags, type_code, &value)
    })
}

fn context() -> impl Strategy<Value = CodecContext> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(four_octet_asn, ibgp, add_path_ipv4, add_path_ipv6)| CodecContext {
            four_octet_asn,
            ibgp,
            add_path_ipv4,
            add_path_ipv6,
        },
    )
}

/// What any decoded Update must satisfy: path identifiers index-aligned (or absent when no
/// family carries them) and 0 for a family without ADD-PATH; End-of-RIB only on an empty
/// UPDATE; attributes only with NLRI. Then it must encode into frames that decode cleanly
/// back to the same routes and attributes (less what is never sent, next hops per family,
/// and path identifiers, which we never send).
fn check_reencodes(msg: &Message, ctx: CodecContext) {
    let Message::Update(u) = msg else { return };
    let carried = !u.withdrawn_path_ids.is_empty() || !u.nlri_path_ids.is_empty();
    if carried {
        assert_eq!(u.withdrawn_path_ids.len(), u.withdrawn.len(), "{u:?}");
        assert_eq!(u.nlri_path_ids.len(), u.nlri.len(), "{u:?}");
    }
    let withdrawn_ids = u.withdrawn.iter().zip(&u.withdrawn_path_ids);
    for (prefix, &id) in withdrawn_ids.chain(u.nlri.iter().zip(&u.nlri_path_ids)) {
        assert!(ctx.add_path(Family::of(prefix)) || id == 0, "{u:?}");
    }
    let negotiated = u
        .withdrawn
        .iter()
        .chain(&u.nlri)
        .any(|p| ctx.add_path(Family::of(p)));
    assert_eq!(carried, negotiated, "{u:?}");
    if u.end_of_rib.is_some() {
        assert!(
            u.withdrawn.is_empty() && u.nlri.is_empty() && u.errors.is_empty(),
            "{u:?}"
        );
    }
    if u.attributes.is_some() {
        assert!(!u.nlri.is_empty(), "attributes without NLRI: {u:?}");
    }
    let plain = CodecContext {
        add_path_ipv4: false,
        add_path_ipv6: false,
        ..ctx
    };
    let frames = encode_update(u, ctx).unwrap();
    let (mut withdrawn, mut nlri) = (Vec::new(), Vec::new());
    for f in &frames {
        let d = decode_update_ok(f, plain);
        assert!(d.errors.is_empty(), "{:?} from {u:?}", d.errors);
        if let Some(got) = &d.attributes {
            let mut want = u.attributes.clone().unwrap();
            want.atomic_aggregate = false;
            want.aggregator = None;
            want.other.clear();
            if Family::of(&d.nlri[0]) == Family::Ipv4Unicast {
                want.next_hop.ipv6 = None;
                want.next_hop.ipv6_link_local = None;
            } else {
                want.next_hop.ipv4 = None;
            }
            assert_eq!(got, &want);
        }
        withdrawn.extend(d.withdrawn);
        nlri.extend(d.nlri);
    }
    assert_eq!(by_family(&withdrawn), by_family(&u.withdrawn));
    assert_eq!(by_family(&nlri), by_family(&u.nlri));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bodies_never_panic(
        msg_type in 1u8..=5,
        body in proptest::collection::vec(any::<u8>(), 0..300),
        ctx in context(),
    ) {
        let result = decode(&raw_frame(msg_type, &body), ctx);
        if let Ok(msg) = &result {
            check_reencodes(msg, ctx);
        }
    }

    #[test]
    fn structured_updates_never_panic(
        (ctx, withdrawn, attrs, nlri) in context().prop_flat_map(|ctx| (
            Just(ctx),
            ids_for(ctx, 1).prop_flat_map(|ids| prefix_list(32, ids)),
            proptest::collection::vec(attribute_bytes(ctx), 0..6),
            ids_for(ctx, 1).prop_flat_map(|ids| prefix_list(32, ids)),
        )),
        base in any::<bool>(),
    ) {
        let mut attrs = attrs.concat();
        if base {
            attrs.extend(base_attrs());
        }
        let frame = update_frame_raw(&withdrawn, &attrs, &nlri);
        let result = decode(&frame, ctx);
        if let Ok(msg) = &result {
            check_reencodes(msg, ctx);
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        seed in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
        fix_length in any::<bool>(),
        flip_ctx in any::<bool>(),
        flip_add_path in prop::bool::weighted(0.2),
    ) {
        let seeds = seeds();
        let (mut frame, mut ctx) = seed.get(&seeds).clone();
        if flip_ctx {
            ctx.four_octet_asn = !ctx.four_octet_asn;
        }
        if flip_add_path {
            ctx.add_path_ipv4 = !ctx.add_path_ipv4;
            ctx.add_path_ipv6 = !ctx.add_path_ipv6;
        }
        for m in &mutations {
            apply(&mut frame, m);
        }
        if fix_length && frame.len() >= HEADER_LEN && frame.len() <= 0xffff {
            let len = (frame.len() as u16).to_be_bytes();
            frame[16..18].copy_from_slice(&len);
        }
        let result = decode(&frame, ctx);
        if let Ok(msg) = &result {
            check_reencodes(msg, ctx);
        }
    }

    /// Any Update we can build encodes into valid frames that decode back to it.
    #[test]
    fn built_updates_round_trip(
        v4 in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..40),
        v6 in proptest::collection::vec((any::<u128>(), 0u8..=128), 0..300),
        withdraw_v4 in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..20),
        withdraw_v6 in proptest::collection::vec((any::<u128>(), 0u8..=128), 0..300),
        sets in proptest::collection::vec(proptest::collection::vec(1u32..=65535, 1..4), 0..3),
        communities in proptest::collection::vec(any::<u32>(), 0..80),
        med in proptest::option::of(any::<u32>()),
        link_local in any::<bool>(),
        ctx in context(),
    ) {
        let v4net = |(a, l): (u32, u8)| {
            let n = Ipv4Network::new(Ipv4Addr::from(a), l).unwrap();
            IpNetwork::V4(Ipv4Network::new(n.network(), l).unwrap())
        };
        let v6net = |(a, l): (u128, u8)| {
            let n = Ipv6Network::new(Ipv6Addr::from(a), l).unwrap();
            IpNetwork::V6(Ipv6Network::new(n.network(), l).unwrap())
        };
        let nlri: Vec<IpNetwork> =
            v4.into_iter().map(v4net).chain(v6.into_iter().map(v6net)).collect();
        let withdrawn: Vec<IpNetwork> = withdraw_v4
            .into_iter()
            .map(v4net)
            .chain(withdraw_v6.into_iter().map(v6net))
            .collect();
        let mut a = path_attrs(&nlri, vec![65001, 65002]);
        a.as_path.0.extend(sets.into_iter().map(AsPathSegment::Set));
        a.communities = communities.into_iter().map(Community).collect();
        a.med = med;
        if link_local && a.next_hop.ipv6.is_some() {
            a.next_hop.ipv6_link_local = Some(LL6);
        }
        if ctx.ibgp {
            a.local_pref = Some(100);
        }
        let u = Update {
            withdrawn,
            attributes: (!nlri.is_empty()).then_some(a),
            nlri,
            withdrawn_path_ids: Vec::new(),
            nlri_path_ids: Vec::new(),
            end_of_rib: None,
            errors: Vec::new(),
        };
        let (back, _) = round_trip(&u, ctx);
        prop_assert_eq!(by_family(&back.withdrawn), by_family(&u.withdrawn));
        prop_assert_eq!(by_family(&back.nlri), by_family(&u.nlri));
        prop_assert_eq!(back.attributes, u.attributes);
    }
}
