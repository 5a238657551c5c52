//! UPDATE encoding. [`encode_update`] follows RFC 7606 §5.1: every UPDATE carries exactly one
//! of IPv4 withdrawals, MP_UNREACH_NLRI, IPv4 NLRI or MP_REACH_NLRI, and no frame exceeds
//! 4096 bytes. The attributes zettabgp would write wrong are built here as raw bytes; the
//! message itself is written by `zettabgp.rs`. We never send path identifiers.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use super::attributes::{
    code, FLAG_EXTENDED_LENGTH, FLAG_OPTIONAL, FLAG_TRANSITIVE, SEGMENT_AS_SEQUENCE, SEGMENT_AS_SET,
};
use super::frame::{frame, HEADER_LEN, MAX_BODY_LEN, MAX_MESSAGE_LEN, MSG_UPDATE};
use super::{nlri, zettabgp, CodecContext, CodecError};
use crate::bgp::message::{
    AsPath, AsPathSegment, Family, Origin, PathAttributes, Update, AFI_IPV6, SAFI_UNICAST,
};

/// A path attribute to send.
#[derive(Debug, Clone)]
pub(super) enum OutAttr {
    Origin(Origin),
    NextHop(Ipv4Addr),
    Med(u32),
    LocalPref(u32),
    /// Encoded here: flags, type code and value go out as given.
    Raw {
        flags: u8,
        type_code: u8,
        value: Vec<u8>,
    },
}

impl OutAttr {
    fn type_code(&self) -> u8 {
        match self {
            OutAttr::Origin(_) => code::ORIGIN,
            OutAttr::NextHop(_) => code::NEXT_HOP,
            OutAttr::Med(_) => code::MED,
            OutAttr::LocalPref(_) => code::LOCAL_PREF,
            OutAttr::Raw { type_code, .. } => *type_code,
        }
    }

    /// Bytes on the wire, header included.
    pub(super) fn wire_len(&self) -> usize {
        match self {
            OutAttr::Origin(_) => 4,
            OutAttr::NextHop(_) | OutAttr::Med(_) | OutAttr::LocalPref(_) => 7,
            OutAttr::Raw { flags, value, .. } if flags & FLAG_EXTENDED_LENGTH != 0 => {
                4 + value.len()
            }
            OutAttr::Raw { value, .. } => 3 + value.len(),
        }
    }
}

/// A raw attribute: never the Partial bit; extended length only when needed.
fn raw(type_code: u8, flags: u8, value: Vec<u8>) -> OutAttr {
    let flags = if value.len() > 255 {
        flags | FLAG_EXTENDED_LENGTH
    } else {
        flags
    };
    OutAttr::Raw {
        flags,
        type_code,
        value,
    }
}

/// Encodes an Update into as many UPDATE frames of at most 4096 bytes as needed, each carrying
/// one kind of route (RFC 7606 §5.1), in this order: IPv4 withdrawals, IPv6 withdrawals
/// (MP_UNREACH_NLRI), IPv4 announcements, IPv6 announcements (MP_REACH_NLRI, first among the
/// attributes, the others in type-code order). A prefix in both lists thus ends up announced.
/// Announcement frames repeat the path attributes. An empty Update gives one empty UPDATE,
/// the IPv4 unicast End-of-RIB marker (RFC 4724). Path identifiers are never sent.
pub fn encode_update(update: &Update, ctx: CodecContext) -> Result<Vec<Vec<u8>>, CodecError> {
    let (withdrawn4, withdrawn6) = by_family(&update.withdrawn);
    let (nlri4, nlri6) = by_family(&update.nlri);
    let mut frames = Vec::new();
    for chunk in chunks(&withdrawn4, MAX_BODY_LEN - 4, |p| {
        nlri::wire_len(p.prefix())
    }) {
        frames.push(update_frame(chunk, &[], &[], ctx)?);
    }
    // MP_UNREACH_NLRI takes an extended-length header and AFI/SAFI.
    for chunk in chunks(&withdrawn6, MAX_BODY_LEN - 4 - 4 - 3, |p| {
        nlri::wire_len(p.prefix())
    }) {
        let unreach = raw(code::MP_UNREACH_NLRI, FLAG_OPTIONAL, mp_value(None, chunk));
        frames.push(update_frame(&[], &[unreach], &[], ctx)?);
    }
    if !nlri4.is_empty() || !nlri6.is_empty() {
        let attrs = update
            .attributes
            .as_ref()
            .ok_or(CodecError::MissingAttributes)?;
        let common = path_attributes(attrs, ctx)?;
        if !nlri4.is_empty() {
            frames.extend(ipv4_announcements(&nlri4, attrs, &common, ctx)?);
        }
        if !nlri6.is_empty() {
            frames.extend(ipv6_announcements(&nlri6, attrs, &common, ctx)?);
        }
    }
    if frames.is_empty() {
        frames.push(update_frame(&[], &[], &[], ctx)?);
    }
    Ok(frames)
}

fn ipv4_announcements(
    nlri: &[Ipv4Network],
    attrs: &PathAttributes,
    common: &[OutAttr],
    ctx: CodecContext,
) -> Result<Vec<Vec<u8>>, CodecError> {
    let next_hop = attrs
        .next_hop
        .ipv4
        .ok_or(CodecError::MissingNextHop(Family::Ipv4Unicast))?;
    let mut items = common.to_vec();
    items.push(OutAttr::NextHop(next_hop));
    items.sort_by_key(OutAttr::type_code);
    let attrs_len: usize = items.iter().map(OutAttr::wire_len).sum();
    let budget = (MAX_BODY_LEN - 4).saturating_sub(attrs_len);
    chunks(nlri, budget, |p| nlri::wire_len(p.prefix()))
        .into_iter()
        .map(|chunk| update_frame(&[], &items, chunk, ctx))
        .collect()
}

fn ipv6_announcements(
    nlri: &[Ipv6Network],
    attrs: &PathAttributes,
    common: &[OutAttr],
    ctx: CodecContext,
) -> Result<Vec<Vec<u8>>, CodecError> {
    let global = attrs
        .next_hop
        .ipv6
        .ok_or(CodecError::MissingNextHop(Family::Ipv6Unicast))?;
    // RFC 2545: 16 bytes, or 32 with the link-local address.
    let mut next_hop = global.octets().to_vec();
    if let Some(link_local) = attrs.next_hop.ipv6_link_local {
        next_hop.extend_from_slice(&link_local.octets());
    }
    // Extended-length header, AFI/SAFI, next-hop length, next hop, reserved byte.
    let overhead = 4 + 4 + next_hop.len() + 1;
    let common_len: usize = common.iter().map(OutAttr::wire_len).sum();
    let budget = (MAX_BODY_LEN - 4).saturating_sub(common_len + overhead);
    chunks(nlri, budget, |p| nlri::wire_len(p.prefix()))
        .into_iter()
        .map(|chunk| {
            let reach = mp_value(Some(&next_hop), chunk);
            let mut items = vec![raw(code::MP_REACH_NLRI, FLAG_OPTIONAL, reach)];
            items.extend(common.iter().cloned());
            update_frame(&[], &items, &[], ctx)
        })
        .collect()
}

pub(super) fn by_family(prefixes: &[IpNetwork]) -> (Vec<Ipv4Network>, Vec<Ipv6Network>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for p in prefixes {
        match p {
            IpNetwork::V4(p) => v4.push(*p),
            IpNetwork::V6(p) => v6.push(*p),
        }
    }
    (v4, v6)
}

/// Splits `prefixes` into consecutive runs of at most `budget` wire bytes each (a prefix
/// larger than the budget gets a run of its own, for `update_frame` to refuse).
fn chunks<T>(prefixes: &[T], budget: usize, wire_len: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, p) in prefixes.iter().enumerate() {
        let len = wire_len(p);
        if used + len > budget && i > start {
            out.extend(prefixes.get(start..i));
            (start, used) = (i, 0);
        }
        used += len;
    }
    if start < prefixes.len() {
        out.extend(prefixes.get(start..));
    }
    out
}

/// The attributes every announcement carries whatever its family, in type-code order: all but
/// NEXT_HOP and MP_REACH_NLRI. ATOMIC_AGGREGATE, AGGREGATOR and `other` are never sent.
fn path_attributes(attrs: &PathAttributes, ctx: CodecContext) -> Result<Vec<OutAttr>, CodecError> {
    let as_path = encode_as_path(&attrs.as_path, ctx)?;
    let mut out = vec![
        OutAttr::Origin(attrs.origin),
        raw(code::AS_PATH, FLAG_TRANSITIVE, as_path),
    ];
    out.extend(attrs.med.map(OutAttr::Med));
    out.extend(attrs.local_pref.map(OutAttr::LocalPref));
    if !attrs.communities.is_empty() {
        // In the order given, repeats included: zettabgp would sort and deduplicate them.
        let value = attrs
            .communities
            .iter()
            .flat_map(|c| c.0.to_be_bytes())
            .collect();
        out.push(raw(
            code::COMMUNITIES,
            FLAG_OPTIONAL | FLAG_TRANSITIVE,
            value,
        ));
    }
    if !attrs.large_communities.is_empty() {
        // RFC 8092 §5: no duplicates on the wire.
        let mut sent = BTreeSet::new();
        let mut value = Vec::with_capacity(attrs.large_communities.len() * 12);
        for c in attrs.large_communities.iter().filter(|c| sent.insert(**c)) {
            for word in [c.global, c.local1, c.local2] {
                value.extend_from_slice(&word.to_be_bytes());
            }
        }
        out.push(raw(
            code::LARGE_COMMUNITY,
            FLAG_OPTIONAL | FLAG_TRANSITIVE,
            value,
        ));
    }
    Ok(out)
}

/// AS_PATH value: each segment as AS_SEQUENCE or AS_SET segments of at most 255 ASNs (empty
/// for iBGP), 2- or 4-byte ASNs as negotiated.
fn encode_as_path(as_path: &AsPath, ctx: CodecContext) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    for segment in &as_path.0 {
        let (segment_type, asns) = match segment {
            AsPathSegment::Sequence(asns) => (SEGMENT_AS_SEQUENCE, asns),
            AsPathSegment::Set(asns) => (SEGMENT_AS_SET, asns),
        };
        for run in asns.chunks(255) {
            out.extend_from_slice(&[segment_type, run.len() as u8]);
            for &asn in run {
                if ctx.four_octet_asn {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let asn16 =
                        u16::try_from(asn).map_err(|_| CodecError::AsnNeedsFourOctets(asn))?;
                    out.extend_from_slice(&asn16.to_be_bytes());
                }
            }
        }
    }
    Ok(out)
}

/// IPv6 unicast MP_REACH_NLRI value (with `next_hop`) or MP_UNREACH_NLRI value (without).
fn mp_value(next_hop: Option<&[u8]>, prefixes: &[Ipv6Network]) -> Vec<u8> {
    let mut out = AFI_IPV6.to_be_bytes().to_vec();
    out.push(SAFI_UNICAST);
    if let Some(next_hop) = next_hop {
        out.push(next_hop.len() as u8);
        out.extend_from_slice(next_hop);
        out.push(0); // reserved
    }
    for p in prefixes {
        nlri::put(&mut out, p);
    }
    out
}

/// One UPDATE frame, after checking it fits (zettabgp does not, and panics on a short buffer).
fn update_frame(
    withdrawn: &[Ipv4Network],
    attrs: &[OutAttr],
    nlri: &[Ipv4Network],
    ctx: CodecContext,
) -> Result<Vec<u8>, CodecError> {
    let prefixes_len = |list: &[Ipv4Network]| {
        list.iter()
            .map(|p| nlri::wire_len(p.prefix()))
            .sum::<usize>()
    };
    let attrs_len: usize = attrs.iter().map(OutAttr::wire_len).sum();
    let body_len = 4 + prefixes_len(withdrawn) + attrs_len + prefixes_len(nlri);
    if HEADER_LEN + body_len > MAX_MESSAGE_LEN {
        return Err(CodecError::TooLong {
            len: HEADER_LEN + body_len,
        });
    }
    let body = zettabgp::update_body(withdrawn, attrs, nlri, ctx, body_len)?;
    frame(MSG_UPDATE, &body)
}
