//! The codec's tests by topic, and the helpers they share.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod add_path;
mod captures;
mod header_open;
mod mp_attributes;
mod props;
mod rfc7606;
mod round_trip;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::mpsc;
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::attributes::{code, FLAG_EXTENDED_LENGTH};
use super::*;
use crate::bgp::message::{
    AsPath, AsPathSegment, Community, LargeCommunity, Message, NextHop, Notification, Origin,
    PathAttributes, Update,
};

const fn context(four_octet_asn: bool, ibgp: bool) -> CodecContext {
    CodecContext {
        four_octet_asn,
        ibgp,
        add_path_ipv4: false,
        add_path_ipv6: false,
    }
}

pub(crate) const FOUR: CodecContext = context(true, false);
pub(crate) const TWO: CodecContext = context(false, false);
pub(crate) const IBGP: CodecContext = context(true, true);
pub(crate) const ASN4: u32 = 4_200_000_001;
pub(crate) const NLRI_ONE: &[u8] = &[32, 192, 0, 2, 10];
pub(crate) const NH4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub(crate) const NH6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub(crate) const LL6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

pub(crate) fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

pub(crate) fn nets(list: &[&str]) -> Vec<IpNetwork> {
    list.iter().map(|s| net(s)).collect()
}

pub(crate) fn from_hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|d| u8::from_str_radix(std::str::from_utf8(d).unwrap(), 16).unwrap())
        .collect()
}

/// A capture under tests/data/bgp: `#` lines are comments, the rest is hex.
pub(crate) fn capture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/bgp/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let hex: String = text.lines().filter(|l| !l.starts_with('#')).collect();
    from_hex(&hex)
}

/// A frame with a correct header around any body (no length checks, for malformed input).
pub(crate) fn raw_frame(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
    out.push(msg_type);
    out.extend_from_slice(body);
    out
}

pub(crate) fn attribute(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, type_code];
    if flags & FLAG_EXTENDED_LENGTH != 0 {
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.push(value.len() as u8);
    }
    out.extend_from_slice(value);
    out
}

pub(crate) fn origin_attr(origin: u8) -> Vec<u8> {
    attribute(0x40, 1, &[origin])
}

pub(crate) fn as_path_attr(segment_type: u8, asns: &[u32]) -> Vec<u8> {
    let mut value = vec![segment_type, asns.len() as u8];
    for a in asns {
        value.extend_from_slice(&a.to_be_bytes());
    }
    attribute(0x40, 2, &value)
}

pub(crate) fn next_hop_attr(octets: [u8; 4]) -> Vec<u8> {
    attribute(0x40, 3, &octets)
}

/// ORIGIN IGP, AS_PATH 4200000001 (4-byte), NEXT_HOP 192.0.2.1.
pub(crate) fn base_attrs() -> Vec<u8> {
    [
        origin_attr(0),
        as_path_attr(2, &[ASN4]),
        next_hop_attr([192, 0, 2, 1]),
    ]
    .concat()
}

/// MP_REACH_NLRI for IPv6 unicast, next hop 2001:db8::1, announcing 2001:db8:1::/48.
pub(crate) fn mp_reach_v6() -> Vec<u8> {
    attribute(
        0x80,
        14,
        &from_hex("0002 01 10 20010db8000000000000000000000001 00 30 20010db80001"),
    )
}

pub(crate) fn update_frame_raw(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    raw_frame(2, &body)
}

/// Attributes of an announcement with next hops for the families in `nlri` only, as a
/// decoded UPDATE has them.
pub(crate) fn path_attrs(nlri: &[IpNetwork], as_path: Vec<u32>) -> PathAttributes {
    let has = |f| nlri.iter().any(|p| Family::of(p) == f);
    let next_hop = NextHop {
        ipv4: has(Family::Ipv4Unicast).then_some(NH4),
        ipv6: has(Family::Ipv6Unicast).then_some(NH6),
        ipv6_link_local: None,
    };
    PathAttributes::new(Origin::Igp, AsPath::sequence(as_path), next_hop)
}

pub(crate) fn announce(nlri: &[&str], as_path: Vec<u32>) -> Update {
    let nlri = nets(nlri);
    Update {
        attributes: Some(path_attrs(&nlri, as_path)),
        nlri,
        ..Update::default()
    }
}

/// Decodes on another thread and fails the test if that takes over 10 s: an endless loop
/// (zettabgp has one on some AS_PATHs, which is why it never decodes) cannot be interrupted
/// any other way.
pub(crate) fn decode_guarded(frame: Vec<u8>, ctx: CodecContext) -> Result<Message, DecodeError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(decode(&frame, ctx));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("decode hung or panicked")
}

#[track_caller]
pub(crate) fn assert_notification(frame: &[u8], ctx: CodecContext, code: u8, sub: u8, data: &[u8]) {
    match decode_guarded(frame.to_vec(), ctx) {
        Err(e) => {
            let n = Notification::from(e);
            assert_eq!(
                (n.code, n.subcode, n.data.as_slice()),
                (code, sub, data),
                "for {frame:02x?}"
            )
        }
        Ok(m) => panic!("expected {code}/{sub}, decoded {m:?}"),
    }
}

#[track_caller]
pub(crate) fn decode_update_ok(frame: &[u8], ctx: CodecContext) -> Update {
    match decode_guarded(frame.to_vec(), ctx) {
        Ok(Message::Update(u)) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

/// Asserts treat-as-withdraw: no attributes, `withdrawn` as given, one error naming
/// `needle`.
#[track_caller]
pub(crate) fn assert_withdrawn(u: &Update, withdrawn: &[IpNetwork], needle: &str) {
    assert_eq!(u.attributes, None, "{u:?}");
    assert!(u.nlri.is_empty(), "{u:?}");
    assert_eq!(u.withdrawn, withdrawn);
    assert!(
        u.errors
            .iter()
            .any(|e| e.starts_with("treat-as-withdraw") && e.contains(needle)),
        "no treat-as-withdraw error about {needle:?} in {:?}",
        u.errors
    );
}

/// The path attribute type codes of an UPDATE frame, in wire order.
pub(crate) fn type_codes(frame: &[u8]) -> Vec<u8> {
    let body = &frame[HEADER_LEN..];
    let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let alen = usize::from(u16::from_be_bytes([body[2 + wlen], body[3 + wlen]]));
    let mut attrs = &body[4 + wlen..4 + wlen + alen];
    let mut out = Vec::new();
    while let [flags, type_code, rest @ ..] = attrs {
        let (len, rest) = if flags & FLAG_EXTENDED_LENGTH != 0 {
            (
                usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                &rest[2..],
            )
        } else {
            (usize::from(rest[0]), &rest[1..])
        };
        out.push(*type_code);
        attrs = &rest[len..];
    }
    out
}

/// The whole attribute (flags, type, length, value) of `type_code` in an UPDATE frame.
pub(crate) fn find_attribute(frame: &[u8], type_code: u8) -> Option<Vec<u8>> {
    let body = &frame[HEADER_LEN..];
    let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let alen = usize::from(u16::from_be_bytes([body[2 + wlen], body[3 + wlen]]));
    let mut attrs = &body[4 + wlen..4 + wlen + alen];
    while let [flags, t, ..] = attrs {
        let (header, len) = if flags & FLAG_EXTENDED_LENGTH != 0 {
            (4, usize::from(u16::from_be_bytes([attrs[2], attrs[3]])))
        } else {
            (3, usize::from(attrs[2]))
        };
        if *t == type_code {
            return Some(attrs[..header + len].to_vec());
        }
        attrs = &attrs[header + len..];
    }
    None
}

/// Encodes with `encode_update`, checks every frame is valid, at most 4096 bytes, carries
/// one kind of route (RFC 7606 §5.1) and decodes without errors, and merges the frames back
/// into one Update: prefixes in frame order, next hops from the frames of their family.
/// Decoded without ADD-PATH: we never send path identifiers.
pub(crate) fn round_trip(u: &Update, ctx: CodecContext) -> (Update, Vec<Vec<u8>>) {
    let frames = encode_update(u, ctx).unwrap();
    let ctx = CodecContext {
        add_path_ipv4: false,
        add_path_ipv6: false,
        ..ctx
    };
    let mut merged = Update::default();
    for f in &frames {
        assert!(f.len() <= MAX_MESSAGE_LEN, "{} bytes", f.len());
        assert_eq!(frame_len(f), Ok(Some(f.len())));
        let d = decode_update_ok(f, ctx);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let body = &f[HEADER_LEN..];
        let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let alen = usize::from(u16::from_be_bytes([body[2 + wlen], body[3 + wlen]]));
        let codes = type_codes(f);
        let fields = [
            wlen > 0,
            body.len() > 4 + wlen + alen,
            codes.contains(&code::MP_REACH_NLRI),
            codes.contains(&code::MP_UNREACH_NLRI),
        ];
        let kinds = fields.iter().filter(|&&k| k).count();
        assert!(kinds <= 1, "RFC 7606 §5.1: {fields:?} in one UPDATE");
        if let Some(a) = d.attributes {
            let m = merged.attributes.get_or_insert_with(|| a.clone());
            m.next_hop.ipv4 = m.next_hop.ipv4.or(a.next_hop.ipv4);
            m.next_hop.ipv6 = m.next_hop.ipv6.or(a.next_hop.ipv6);
            m.next_hop.ipv6_link_local = m.next_hop.ipv6_link_local.or(a.next_hop.ipv6_link_local);
            let same = PathAttributes {
                next_hop: m.next_hop.clone(),
                ..a
            };
            assert_eq!(&same, m, "frames disagree on attributes");
        }
        merged.withdrawn.extend(d.withdrawn);
        merged.nlri.extend(d.nlri);
    }
    (merged, frames)
}

pub(crate) fn rich_attrs(nlri: &[IpNetwork]) -> PathAttributes {
    let mut a = path_attrs(nlri, vec![65001, ASN4]);
    a.as_path.0.push(AsPathSegment::Set(vec![65011, 65010]));
    a.origin = Origin::Incomplete;
    a.med = Some(10);
    a.communities = vec![Community(65001 << 16 | 100), Community(65001 << 16 | 7)];
    a.large_communities = vec![LargeCommunity {
        global: ASN4,
        local1: 1,
        local2: 2,
    }];
    a
}
