//! Path attributes of a received UPDATE: the walk over them and one function per attribute,
//! each deciding its RFC 7606 treatment (the table in `mod.rs`).

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{DecodeError, Treatment, UpdateError};
use super::nlri::{self, Prefixes};
use super::reader::{u32_value, Reader};
use super::CodecContext;
use crate::bgp::message::{
    AsPath, AsPathSegment, Community, Family, LargeCommunity, NextHop, Origin, RawAttribute,
    UpdateSubcode,
};

/// Path attribute type codes we recognize.
pub(super) mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

pub(super) const FLAG_OPTIONAL: u8 = 0x80;
pub(super) const FLAG_TRANSITIVE: u8 = 0x40;
pub(super) const FLAG_EXTENDED_LENGTH: u8 = 0x10;

pub(super) const SEGMENT_AS_SET: u8 = 1;
pub(super) const SEGMENT_AS_SEQUENCE: u8 = 2;
const SEGMENT_AS_CONFED_SET: u8 = 4;

use UpdateSubcode as Sub;

/// MP_REACH_NLRI as read.
#[derive(Debug)]
pub(super) struct MpReach {
    pub(super) next_hop: NextHop,
    pub(super) nlri: Prefixes,
    /// NLRI bytes present, in a family we read or not (RFC 7606 §5.2 "reachable NLRI").
    pub(super) has_nlri: bool,
}

/// MP_UNREACH_NLRI as read.
#[derive(Debug)]
pub(super) struct MpUnreach {
    pub(super) family: Option<Family>,
    pub(super) withdrawn: Prefixes,
}

/// What the walk keeps: the values of the attributes that passed, and the errors found.
pub(super) struct Walk {
    /// Type codes met, valid or not (duplicates, missing attributes).
    seen: [bool; 256],
    /// Attributes in the UPDATE, repeats included.
    pub(super) count: usize,
    pub(super) origin: Option<Origin>,
    pub(super) as_path: Option<AsPath>,
    pub(super) next_hop: Option<Ipv4Addr>,
    pub(super) med: Option<u32>,
    pub(super) local_pref: Option<u32>,
    pub(super) communities: Option<Vec<Community>>,
    pub(super) large_communities: Option<Vec<LargeCommunity>>,
    pub(super) atomic_aggregate: bool,
    pub(super) aggregator: Option<(u32, Ipv4Addr)>,
    pub(super) other: Vec<RawAttribute>,
    pub(super) mp_reach: Option<MpReach>,
    pub(super) mp_unreach: Option<MpUnreach>,
    /// Treat-as-withdraw and attribute-discard errors, in wire order.
    pub(super) findings: Vec<UpdateError>,
}

impl Walk {
    fn new() -> Self {
        Walk {
            seen: [false; 256],
            count: 0,
            origin: None,
            as_path: None,
            next_hop: None,
            med: None,
            local_pref: None,
            communities: None,
            large_communities: None,
            atomic_aggregate: false,
            aggregator: None,
            other: Vec::new(),
            mp_reach: None,
            mp_unreach: None,
            findings: Vec::new(),
        }
    }

    pub(super) fn seen(&self, type_code: u8) -> bool {
        self.seen.get(usize::from(type_code)).is_some_and(|&s| s)
    }

    /// Keeps a finding; a session reset ends the walk.
    pub(super) fn record(&mut self, e: UpdateError) -> Result<(), DecodeError> {
        if e.treatment == Treatment::SessionReset {
            return Err(e.into());
        }
        self.findings.push(e);
        Ok(())
    }
}

/// One attribute as found on the wire; `whole` is header and value, the data of most
/// NOTIFICATIONs about it.
struct Attribute<'a> {
    flags: u8,
    type_code: u8,
    value: &'a [u8],
    whole: &'a [u8],
}

impl Attribute<'_> {
    fn name(&self) -> Cow<'static, str> {
        name(self.type_code)
    }

    /// Treat-as-withdraw with 3/5 for a value of the wrong length.
    fn bad_length(&self, want: &str, section: &str) -> UpdateError {
        let reason = format!(
            "{} of {} bytes, {want} ({section})",
            self.name(),
            self.value.len()
        );
        UpdateError::withdraw(Sub::AttributeLengthError, self.whole, reason)
    }
}

pub(super) fn name(type_code: u8) -> Cow<'static, str> {
    Cow::Borrowed(match type_code {
        code::ORIGIN => "ORIGIN",
        code::AS_PATH => "AS_PATH",
        code::NEXT_HOP => "NEXT_HOP",
        code::MED => "MULTI_EXIT_DISC",
        code::LOCAL_PREF => "LOCAL_PREF",
        code::ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        code::AGGREGATOR => "AGGREGATOR",
        code::COMMUNITIES => "COMMUNITIES",
        code::MP_REACH_NLRI => "MP_REACH_NLRI",
        code::MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        code::AS4_PATH => "AS4_PATH",
        code::AS4_AGGREGATOR => "AS4_AGGREGATOR",
        code::LARGE_COMMUNITY => "LARGE_COMMUNITY",
        other => return Cow::Owned(format!("attribute {other}")),
    })
}

fn is_mp(type_code: u8) -> bool {
    type_code == code::MP_REACH_NLRI || type_code == code::MP_UNREACH_NLRI
}

/// Walks the path attributes: `Err` is a session reset, treat-as-withdraw and attribute
/// discard are findings.
pub(super) fn walk(
    attrs_raw: &[u8],
    classic_nlri: bool,
    ctx: CodecContext,
) -> Result<Walk, DecodeError> {
    let mut walk = Walk::new();
    let mut a = Reader::new(attrs_raw);
    while !a.is_empty() {
        let start = attrs_raw.len() - a.remaining();
        let (Some(flags), Some(type_code)) = (a.u8(), a.u8()) else {
            let why = "attribute header cut short by the Total Attribute Length (RFC 7606 §4)";
            walk.record(UpdateError::withdraw(Sub::MalformedAttributeList, &[], why))?;
            break;
        };
        walk.count += 1;
        let len = if flags & FLAG_EXTENDED_LENGTH != 0 {
            a.u16()
        } else {
            a.u8().map(u16::from)
        };
        let Some(value) = len.and_then(|len| a.take(usize::from(len))) else {
            let why = format!("{} runs past the Total Attribute Length", name(type_code));
            // RFC 7606 §3.j: treat-as-withdraw needs the prefixes an MP attribute holds.
            let e = if is_mp(type_code) {
                UpdateError::reset(
                    Sub::MalformedAttributeList,
                    &[],
                    format!("{why} (RFC 7606 §3.j)"),
                )
            } else {
                UpdateError::withdraw(
                    Sub::MalformedAttributeList,
                    &[],
                    format!("{why} (RFC 7606 §4)"),
                )
            };
            walk.record(e)?;
            break;
        };
        let whole = attrs_raw
            .get(start..attrs_raw.len() - a.remaining())
            .unwrap_or_default();
        let Some(seen) = walk.seen.get_mut(usize::from(type_code)) else {
            continue; // unreachable: 256 entries
        };
        if std::mem::replace(seen, true) {
            walk.record(repeated(type_code))?;
            continue;
        }
        let attribute = Attribute {
            flags,
            type_code,
            value,
            whole,
        };
        decode(&attribute, classic_nlri, ctx, &mut walk)?;
    }
    Ok(walk)
}

/// RFC 7606 §3.g: a repeated MP attribute resets, any other repeat is dropped.
fn repeated(type_code: u8) -> UpdateError {
    let why = format!("{} repeated", name(type_code));
    if is_mp(type_code) {
        UpdateError::reset(
            Sub::MalformedAttributeList,
            &[],
            format!("{why} (RFC 7606 §3.g)"),
        )
    } else {
        UpdateError::discard(
            Sub::MalformedAttributeList,
            format!("{why}, later copy dropped (RFC 7606 §3.g)"),
        )
    }
}

/// Expected (optional, transitive) bits of each recognized attribute.
pub(super) fn expected_flags(type_code: u8) -> Option<(bool, bool)> {
    Some(match type_code {
        code::ORIGIN
        | code::AS_PATH
        | code::NEXT_HOP
        | code::LOCAL_PREF
        | code::ATOMIC_AGGREGATE => (false, true),
        code::MED | code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => (true, false),
        code::AGGREGATOR
        | code::COMMUNITIES
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::LARGE_COMMUNITY => (true, true),
        _ => return None,
    })
}

/// Decodes one attribute into `walk`, or records why it cannot be used.
fn decode(
    a: &Attribute<'_>,
    classic_nlri: bool,
    ctx: CodecContext,
    walk: &mut Walk,
) -> Result<(), DecodeError> {
    let Some((optional, transitive)) = expected_flags(a.type_code) else {
        return unrecognized(a, walk);
    };
    let name = a.name();
    // Attributes we ignore whatever they hold.
    match a.type_code {
        code::NEXT_HOP if !classic_nlri => return Ok(()), // RFC 4760 §3: it SHOULD be ignored.
        code::LOCAL_PREF if !ctx.ibgp => {
            let why = format!("{name} from an external peer (RFC 7606 §7.5)");
            return walk.record(UpdateError::discard(Sub::MalformedAttributeList, why));
        }
        code::AS4_PATH | code::AS4_AGGREGATOR if ctx.four_octet_asn => {
            let why = format!("{name} on a 4-octet ASN session (RFC 6793 §3)");
            return walk.record(UpdateError::discard(Sub::MalformedAttributeList, why));
        }
        _ => {}
    }
    // RFC 7606 §3.c: only the Optional and Transitive bits count.
    if (a.flags & FLAG_OPTIONAL != 0) != optional || (a.flags & FLAG_TRANSITIVE != 0) != transitive
    {
        return walk.record(flags_error(a));
    }
    let result = match a.type_code {
        code::ORIGIN => origin(a).map(|o| walk.origin = Some(o)),
        code::AS_PATH => as_path(a, ctx).map(|p| walk.as_path = Some(p)),
        code::NEXT_HOP => four_octets(a, "RFC 7606 §7.3").map(|v| walk.next_hop = Some(v.into())),
        code::MED => four_octets(a, "RFC 7606 §7.4").map(|v| walk.med = Some(v)),
        code::LOCAL_PREF => four_octets(a, "RFC 7606 §7.5").map(|v| walk.local_pref = Some(v)),
        code::ATOMIC_AGGREGATE => atomic_aggregate(a).map(|()| walk.atomic_aggregate = true),
        code::AGGREGATOR => aggregator(a, ctx).map(|g| walk.aggregator = Some(g)),
        code::COMMUNITIES => communities(a).map(|c| walk.communities = Some(c)),
        code::LARGE_COMMUNITY => large_communities(a).map(|c| walk.large_communities = Some(c)),
        code::MP_REACH_NLRI => mp_reach(a, ctx).map(|m| walk.mp_reach = Some(m)),
        code::MP_UNREACH_NLRI => mp_unreach(a, ctx).map(|m| walk.mp_unreach = Some(m)),
        // AS4_PATH, AS4_AGGREGATOR on a 2-octet session: kept, not merged.
        _ => {
            walk.other.push(raw(a));
            Ok(())
        }
    };
    result.or_else(|e| walk.record(e))
}

fn raw(a: &Attribute<'_>) -> RawAttribute {
    RawAttribute {
        flags: a.flags,
        type_code: a.type_code,
        value: a.value.to_vec(),
    }
}

/// An unrecognized well-known attribute resets (RFC 4271 §6.3, not revised); an optional one
/// is kept as received (RFC 4271 §5).
fn unrecognized(a: &Attribute<'_>, walk: &mut Walk) -> Result<(), DecodeError> {
    if a.flags & FLAG_OPTIONAL == 0 {
        let why = format!("unrecognized well-known {} (RFC 4271 §6.3)", a.name());
        return walk.record(UpdateError::reset(
            Sub::UnrecognizedWellKnownAttribute,
            a.whole,
            why,
        ));
    }
    walk.other.push(raw(a));
    Ok(())
}

/// Wrong Optional/Transitive bits (RFC 7606 §3.c, §3.f; RFC 4760 §7; RFC 6793 §6).
fn flags_error(a: &Attribute<'_>) -> UpdateError {
    let why = format!("{} with flags 0x{:02x}", a.name(), a.flags);
    match a.type_code {
        code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => UpdateError::reset(
            Sub::AttributeFlagsError,
            a.whole,
            format!("{why} (RFC 4760 §7)"),
        ),
        code::ATOMIC_AGGREGATE | code::AGGREGATOR => {
            UpdateError::discard(Sub::AttributeFlagsError, format!("{why} (RFC 7606 §3.f)"))
        }
        code::AS4_PATH | code::AS4_AGGREGATOR => {
            UpdateError::discard(Sub::AttributeFlagsError, format!("{why} (RFC 6793 §6)"))
        }
        _ => UpdateError::withdraw(
            Sub::AttributeFlagsError,
            a.whole,
            format!("{why} (RFC 7606 §3.c)"),
        ),
    }
}

/// ORIGIN: one byte, 0..=2 (RFC 7606 §7.1).
fn origin(a: &Attribute<'_>) -> Result<Origin, UpdateError> {
    match a.value {
        [0] => Ok(Origin::Igp),
        [1] => Ok(Origin::Egp),
        [2] => Ok(Origin::Incomplete),
        [o] => Err(UpdateError::withdraw(
            Sub::InvalidOrigin,
            a.whole,
            format!("{} value {o} (RFC 7606 §7.1)", a.name()),
        )),
        _ => Err(a.bad_length("not 1", "RFC 7606 §7.1")),
    }
}

/// NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF: 4 bytes.
fn four_octets(a: &Attribute<'_>, section: &str) -> Result<u32, UpdateError> {
    u32_value(a.value).ok_or_else(|| a.bad_length("not 4", section))
}

/// ATOMIC_AGGREGATE: empty, else discarded (RFC 7606 §7.6).
fn atomic_aggregate(a: &Attribute<'_>) -> Result<(), UpdateError> {
    if a.value.is_empty() {
        return Ok(());
    }
    let why = format!(
        "{} of {} bytes, not 0 (RFC 7606 §7.6)",
        a.name(),
        a.value.len()
    );
    Err(UpdateError::discard(Sub::AttributeLengthError, why))
}

/// AGGREGATOR: ASN of the session's width and a router id; a bad one is discarded (RFC 7606
/// §7.7, RFC 7607).
fn aggregator(a: &Attribute<'_>, ctx: CodecContext) -> Result<(u32, Ipv4Addr), UpdateError> {
    let (asn_len, want) = if ctx.four_octet_asn {
        (4, "not 8")
    } else {
        (2, "not 6")
    };
    let parsed = a.value.split_at_checked(asn_len).and_then(|(asn, id)| {
        let id: [u8; 4] = id.try_into().ok()?;
        Some((asn_number(asn), Ipv4Addr::from(id)))
    });
    match parsed {
        Some((0, _)) => Err(UpdateError::discard(
            Sub::OptionalAttributeError,
            format!("{} with AS 0 (RFC 7607)", a.name()),
        )),
        Some(aggregator) => Ok(aggregator),
        None => {
            let why = format!(
                "{} of {} bytes, {want} (RFC 7606 §7.7)",
                a.name(),
                a.value.len()
            );
            Err(UpdateError::discard(Sub::AttributeLengthError, why))
        }
    }
}

fn asn_number(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b))
}

/// COMMUNITIES: a non-zero multiple of 4 bytes, in wire order (RFC 7606 §7.8).
fn communities(a: &Attribute<'_>) -> Result<Vec<Community>, UpdateError> {
    let len = a.value.len();
    if len == 0 || len % 4 != 0 {
        return Err(a.bad_length("not a non-zero multiple of 4", "RFC 7606 §7.8"));
    }
    Ok(a.value
        .chunks_exact(4)
        .filter_map(u32_value)
        .map(Community)
        .collect())
}

/// LARGE_COMMUNITY: a non-zero multiple of 12 bytes (RFC 8092 §6), repeats removed silently
/// (§5).
fn large_communities(a: &Attribute<'_>) -> Result<Vec<LargeCommunity>, UpdateError> {
    let len = a.value.len();
    if len == 0 || len % 12 != 0 {
        return Err(a.bad_length("not a non-zero multiple of 12", "RFC 8092 §6"));
    }
    let mut list: Vec<LargeCommunity> = Vec::with_capacity(len / 12);
    for c in a.value.chunks_exact(12) {
        let mut r = Reader::new(c);
        let (Some(global), Some(local1), Some(local2)) = (r.u32(), r.u32(), r.u32()) else {
            continue;
        };
        let c = LargeCommunity {
            global,
            local1,
            local2,
        };
        if !list.contains(&c) {
            list.push(c);
        }
    }
    Ok(list)
}

/// AS_PATH for the session's ASN width (RFC 7606 §7.2, RFC 7607): the segments without
/// confederation ones (RFC 5065: they do not count outside the confederation), adjacent
/// sequences merged (a sequence over 255 ASNs takes several).
fn as_path(a: &Attribute<'_>, ctx: CodecContext) -> Result<AsPath, UpdateError> {
    as_path_segments(a.value, ctx).map_err(|why| {
        let why = format!("{} malformed: {why} (RFC 7606 §7.2)", a.name());
        UpdateError::withdraw(Sub::MalformedAsPath, &[], why)
    })
}

fn as_path_segments(value: &[u8], ctx: CodecContext) -> Result<AsPath, String> {
    let asn_len = if ctx.four_octet_asn { 4 } else { 2 };
    let mut segments: Vec<AsPathSegment> = Vec::new();
    let mut r = Reader::new(value);
    while !r.is_empty() {
        let (Some(segment_type), Some(count)) = (r.u8(), r.u8()) else {
            return Err("a single byte after the last segment".into());
        };
        if !(SEGMENT_AS_SET..=SEGMENT_AS_CONFED_SET).contains(&segment_type) {
            return Err(format!("segment type {segment_type}"));
        }
        if count == 0 {
            return Err("a segment of length 0".into());
        }
        let Some(raw) = r.take(usize::from(count) * asn_len) else {
            return Err(format!(
                "a segment of {count} {asn_len}-octet ASNs overruns the attribute"
            ));
        };
        let asns: Vec<u32> = raw.chunks_exact(asn_len).map(asn_number).collect();
        if asns.contains(&0) {
            return Err("AS 0 (RFC 7607)".into());
        }
        match (segment_type, segments.last_mut()) {
            (SEGMENT_AS_SET, _) => segments.push(AsPathSegment::Set(asns)),
            (SEGMENT_AS_SEQUENCE, Some(AsPathSegment::Sequence(last))) => last.extend(asns),
            (SEGMENT_AS_SEQUENCE, _) => segments.push(AsPathSegment::Sequence(asns)),
            _ => {} // confederation segment
        }
    }
    Ok(AsPath(segments))
}

/// RFC 4760 §7's Optional Attribute Error for a malformed MP attribute: a session reset
/// (RFC 7606 §7.11, §5.3; we do not implement AFI/SAFI disable).
fn mp_error(a: &Attribute<'_>, why: &str) -> UpdateError {
    let why = format!("{} malformed: {why} (RFC 7606 §7.11)", a.name());
    UpdateError::reset(Sub::OptionalAttributeError, a.whole, why)
}

/// MP_REACH_NLRI: AFI(2) SAFI(1) next-hop length(1) next hop, reserved(1), NLRI (with path
/// identifiers where the family has ADD-PATH). IPv4 unicast takes a 4-byte next hop (no RFC
/// 8950), IPv6 unicast 16 or 32 (global and link-local, RFC 2545).
fn mp_reach(a: &Attribute<'_>, ctx: CodecContext) -> Result<MpReach, UpdateError> {
    let mut r = Reader::new(a.value);
    let (Some(afi), Some(safi), Some(nh_len)) = (r.u16(), r.u8(), r.u8()) else {
        return Err(mp_error(a, "shorter than 5 bytes"));
    };
    // The reserved byte (once the SNPA count) MUST be ignored (RFC 4760 §3).
    let (Some(next_hop_raw), Some(_reserved)) = (r.take(usize::from(nh_len)), r.u8()) else {
        return Err(mp_error(a, "next hop runs past the attribute"));
    };
    let nlri_raw = r.rest();
    let family = Family::from_afi_safi(afi, safi);
    let v6 = |b: &[u8]| <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from);
    let next_hop = match (family, next_hop_raw.len()) {
        (None, _) => NextHop::default(),
        (Some(Family::Ipv4Unicast), 4) => NextHop {
            ipv4: u32_value(next_hop_raw).map(Ipv4Addr::from),
            ..NextHop::default()
        },
        (Some(Family::Ipv6Unicast), 16 | 32) => {
            let (global, link_local) = next_hop_raw.split_at(16);
            NextHop {
                ipv6: v6(global),
                ipv6_link_local: v6(link_local),
                ..NextHop::default()
            }
        }
        (Some(f), n) => return Err(mp_error(a, &format!("{f} next hop of {n} bytes"))),
    };
    let nlri = match family {
        Some(f) => nlri::parse(nlri_raw, f, ctx.add_path(f)).ok_or_else(|| mp_error(a, "NLRI"))?,
        None => Prefixes::default(),
    };
    Ok(MpReach {
        next_hop,
        nlri,
        has_nlri: !nlri_raw.is_empty(),
    })
}

/// MP_UNREACH_NLRI: AFI(2) SAFI(1) withdrawn routes.
fn mp_unreach(a: &Attribute<'_>, ctx: CodecContext) -> Result<MpUnreach, UpdateError> {
    let mut r = Reader::new(a.value);
    let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
        return Err(mp_error(a, "shorter than 3 bytes"));
    };
    let family = Family::from_afi_safi(afi, safi);
    let withdrawn = match family {
        Some(f) => nlri::parse(r.rest(), f, ctx.add_path(f))
            .ok_or_else(|| mp_error(a, "withdrawn routes"))?,
        None => Prefixes::default(),
    };
    Ok(MpUnreach { family, withdrawn })
}
