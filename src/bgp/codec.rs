//! BGP wire codec for IPv4 unicast: bytes <-> [`Message`].
//!
//! Built on zettabgp where it is correct, guarded or replaced where it is not (see
//! `shared/ZETTABGP-NOTES.md`; the numbers below are that file's defect items):
//!
//! - **Framing** is ours ([`frame_len`]): zettabgp accepts lengths up to 65535 and misbehaves
//!   under 19 (defect 3). We enforce marker, 19..=4096 and the per-type lengths of RFC 4271 §6.1.
//! - **OPEN** is encoded by zettabgp (`BgpOpenMessage`), which also substitutes AS_TRANS for a
//!   4-byte "My AS". It is decoded here: zettabgp fails the whole OPEN on an FQDN capability
//!   with a domain name (FRR sends one when a domain is configured) and on parameter types other
//!   than 2 (defect 8), and the pre-walk RFC 4271 §6.2 needs for its NOTIFICATIONs already
//!   reads every capability, so handing the bytes on would add nothing.
//! - **UPDATE** decoding validates the whole message first (lengths, attribute headers, flags,
//!   per-type lengths, AS_PATH segments, MP attributes, prefixes): zettabgp panics on ~0.4 % of
//!   malformed UPDATEs and loops forever on an AS_PATH segment that leaves a trailing byte
//!   (defect 2). zettabgp then decodes a sanitized copy holding only what it handles well and
//!   we model (withdrawn routes, ORIGIN, AS_PATH without confederation segments, NEXT_HOP,
//!   NLRI) into a fresh `BgpUpdateMessage` under `catch_unwind` as a last guard (a caught
//!   panic is a 3/1, an error log and a count in [`zettabgp_panics`]). Everything else (MED,
//!   communities, MP_REACH/MP_UNREACH, unknown optional attributes) never reaches it. IPv4
//!   unicast carried in MP_REACH/MP_UNREACH is read by our own prefix walker.
//! - **UPDATE** encoding uses zettabgp for withdrawn routes, ORIGIN, NEXT_HOP and NLRI, but
//!   AS_PATH is hand-encoded as AS_SEQUENCE segments (zettabgp writes AS_SET, defect 1) and
//!   [`encode_update`] splits into frames of at most 4096 bytes (zettabgp has no limit and
//!   panics on a short buffer, defect 3).
//! - **NOTIFICATION** is ours both ways (zettabgp truncates data to 2 bytes, defect 4), and so
//!   are KEEPALIVE and ROUTE-REFRESH (a header, and AFI/reserved/SAFI).
//!
//! MP_REACH/MP_UNREACH policy: we only negotiate IPv4 unicast. An MP attribute that is
//! structurally broken (too short, next hop not fitting) is an Optional Attribute Error (3/9,
//! RFC 4760 §7). A well-formed one for another AFI/SAFI is ignored: nothing is installed from
//! it, and resetting the session would only take our announcement down. IPv4 unicast in MP
//! attributes is accepted (we advertise the MP capability for it) with a 4-byte next hop only,
//! as we do not negotiate extended next hop (RFC 8950).
//!
//! Not done here: RFC 7606 treat-as-withdraw (every UPDATE error resets the session, as in
//! RFC 4271), merging AS4_PATH on 2-byte sessions (AS4_PATH/AS4_AGGREGATOR are discarded,
//! RFC 6793 §6 allows it), checks needing session knowledge (peer AS vs first AS in AS_PATH,
//! hold time): those belong to the FSM.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{IpAddr, Ipv4Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use ipnetwork::Ipv4Network;
use zettabgp::prelude::{
    BgpASitem, BgpAddrV4, BgpAddrs, BgpAttrItem, BgpAttrOrigin, BgpAttrUnknown, BgpCapability,
    BgpMessage, BgpNextHop, BgpOpenMessage, BgpOrigin, BgpSessionParams, BgpTransportMode,
    BgpUpdateMessage,
};

use super::message::{
    code, subcode, Capabilities, Message, Notification, Open, Origin, PathAttributes, Update,
    AFI_IPV4, SAFI_UNICAST,
};

pub const HEADER_LEN: usize = 19;
pub const MAX_MESSAGE_LEN: usize = 4096;
const MAX_BODY_LEN: usize = MAX_MESSAGE_LEN - HEADER_LEN;

const MSG_OPEN: u8 = 1;
const MSG_UPDATE: u8 = 2;
const MSG_NOTIFICATION: u8 = 3;
const MSG_KEEPALIVE: u8 = 4;
const MSG_ROUTE_REFRESH: u8 = 5;

/// Path attribute type codes we recognize.
mod attr {
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

const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_PARTIAL: u8 = 0x20;
const FLAG_EXTENDED_LENGTH: u8 = 0x10;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_FOUR_OCTET_ASN: u8 = 65;
const OPT_PARAM_CAPABILITIES: u8 = 2;

const SEGMENT_AS_SET: u8 = 1;
const SEGMENT_AS_SEQUENCE: u8 = 2;
const SEGMENT_AS_CONFED_SET: u8 = 4;

/// Per-session facts the codec needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecContext {
    /// AS_PATH/AGGREGATOR ASN width: true once both sides sent the 4-octet-ASN capability
    /// (any value works for OPEN itself).
    pub four_octet_asn: bool,
}

/// Errors encoding a message we want to send (never caused by the peer).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message would be {len} bytes, over the BGP maximum of {MAX_MESSAGE_LEN}")]
    TooLong { len: usize },
    #[error("ASN {0} needs 4 octets but the session uses 2-octet ASNs")]
    AsnNeedsFourOctets(u32),
    #[error("UPDATE announces prefixes without path attributes")]
    MissingAttributes,
    #[error("no multiprotocol capability encoding for AFI {afi} SAFI {safi}")]
    UnsupportedFamily { afi: u16, safi: u8 },
    #[error("OPEN asn {asn} differs from its 4-octet-ASN capability {capability}")]
    AsnMismatch { asn: u32, capability: u32 },
    #[error("BGP identifier 0.0.0.0 is not valid")]
    InvalidRouterId,
    #[error("OPEN capabilities take {len} bytes, over the 255 of the optional parameters field")]
    TooManyCapabilities { len: usize },
    #[error("zettabgp failed to encode {what}: {detail}")]
    Zettabgp { what: &'static str, detail: String },
}

static ZETTABGP_PANICS: AtomicU64 = AtomicU64::new(0);

/// How many zettabgp panics `decode` caught since start. Validation is meant to keep this at
/// zero; anything else is a bug in the validation worth a report.
pub fn zettabgp_panics() -> u64 {
    ZETTABGP_PANICS.load(Ordering::Relaxed)
}

fn notification(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
    Notification::new(code, subcode, data)
}

/// Bounds-checked big-endian reader: every read returns `None` instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn remaining(&self) -> usize {
        self.buf.len()
    }
    fn peek(&self) -> Option<u8> {
        self.buf.first().copied()
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.buf.split_at_checked(n)?;
        self.buf = tail;
        Some(head)
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.buf.split_first()?;
        self.buf = tail;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }
}

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

/// Checks the 19-byte header at the start of `buf`. `Ok(None)` if fewer than 19 bytes are
/// buffered; `Ok(Some(total_len))` when the header is valid (marker all ones,
/// 19 <= len <= 4096, type 1..=5, OPEN >= 29, UPDATE >= 23, NOTIFICATION >= 21,
/// KEEPALIVE == 19, ROUTE-REFRESH == 23); otherwise the RFC 4271 §6.1 NOTIFICATION: 1/1 bad
/// marker, 1/2 bad length (data = the length field), 1/3 bad type (data = the type byte).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, Notification> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let [marker @ .., len_hi, len_lo, msg_type] = header;
    if marker.iter().any(|&b| b != 0xff) {
        return Err(notification(
            code::MESSAGE_HEADER,
            subcode::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
        ));
    }
    let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
    let bad_length = || {
        notification(
            code::MESSAGE_HEADER,
            subcode::BAD_MESSAGE_LENGTH,
            vec![*len_hi, *len_lo],
        )
    };
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(bad_length());
    }
    let len_ok = match *msg_type {
        MSG_OPEN => len >= 29,
        MSG_UPDATE => len >= 23,
        MSG_NOTIFICATION => len >= 21,
        MSG_KEEPALIVE => len == 19,
        MSG_ROUTE_REFRESH => len == 23,
        other => {
            return Err(notification(
                code::MESSAGE_HEADER,
                subcode::BAD_MESSAGE_TYPE,
                vec![other],
            ))
        }
    };
    if len_ok {
        Ok(Some(len))
    } else {
        Err(bad_length())
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Decodes one complete message (header included, exactly `frame_len` bytes). Never panics
/// and never loops forever, whatever the input; errors are the NOTIFICATION to send.
pub fn decode(frame: &[u8], ctx: CodecContext) -> Result<Message, Notification> {
    let len = match frame_len(frame)? {
        Some(len) if len == frame.len() => len,
        // The caller handed us a partial or over-long frame: report the length as received.
        _ => {
            let field = frame
                .get(16..18)
                .map(<[u8]>::to_vec)
                .unwrap_or_else(|| (frame.len() as u16).to_be_bytes().to_vec());
            return Err(notification(
                code::MESSAGE_HEADER,
                subcode::BAD_MESSAGE_LENGTH,
                field,
            ));
        }
    };
    let body = frame.get(HEADER_LEN..len).unwrap_or_default();
    match frame.get(18).copied() {
        Some(MSG_OPEN) => decode_open(body).map(Message::Open),
        Some(MSG_UPDATE) => decode_update(body, ctx).map(Message::Update),
        Some(MSG_NOTIFICATION) => {
            let mut r = Reader::new(body);
            let (Some(code), Some(subcode)) = (r.u8(), r.u8()) else {
                return Err(length_error(frame));
            };
            Ok(Message::Notification(Notification::new(
                code,
                subcode,
                r.rest().to_vec(),
            )))
        }
        Some(MSG_KEEPALIVE) => Ok(Message::Keepalive),
        Some(MSG_ROUTE_REFRESH) => {
            let mut r = Reader::new(body);
            // The reserved byte is the RFC 7313 subtype; BoRR/EoRR markers read as refreshes.
            let (Some(afi), Some(_subtype), Some(safi)) = (r.u16(), r.u8(), r.u8()) else {
                return Err(length_error(frame));
            };
            Ok(Message::RouteRefresh { afi, safi })
        }
        other => Err(notification(
            code::MESSAGE_HEADER,
            subcode::BAD_MESSAGE_TYPE,
            other.into_iter().collect(),
        )),
    }
}

/// 1/2 for a body that frame_len accepted but is too short for its type (unreachable today).
fn length_error(frame: &[u8]) -> Notification {
    notification(
        code::MESSAGE_HEADER,
        subcode::BAD_MESSAGE_LENGTH,
        frame.get(16..18).map(<[u8]>::to_vec).unwrap_or_default(),
    )
}

fn open_error(subcode: u8) -> Notification {
    notification(code::OPEN_MESSAGE, subcode, Vec::new())
}

/// RFC 4271 §6.2 has no subcode for a malformed optional parameter or capability: 0,
/// "Unspecific" (as FRR and BIRD send).
fn open_malformed() -> Notification {
    open_error(0)
}

fn decode_open(body: &[u8]) -> Result<Open, Notification> {
    let mut r = Reader::new(body);
    let version = r.u8().ok_or_else(open_malformed)?;
    if version != 4 {
        // Data: the largest version we support, as a 2-octet number.
        return Err(notification(
            code::OPEN_MESSAGE,
            subcode::UNSUPPORTED_VERSION,
            vec![0, 4],
        ));
    }
    let (Some(my_as), Some(hold_time), Some(router_id), Some(opt_len)) =
        (r.u16(), r.u16(), r.u32(), r.u8())
    else {
        return Err(open_malformed());
    };
    // RFC 7607: AS 0 is never a valid peer AS.
    if my_as == 0 {
        return Err(open_error(subcode::BAD_PEER_AS));
    }
    let router_id = Ipv4Addr::from(router_id);
    if router_id.is_unspecified() {
        return Err(open_error(subcode::BAD_BGP_IDENTIFIER));
    }
    // RFC 9072 extended optional parameters: length 255 followed by type 255 means a 2-byte
    // length follows and each parameter has a 2-byte length.
    let extended = opt_len == 255 && r.peek() == Some(255);
    let params = if extended {
        r.u8();
        let len = r.u16().ok_or_else(open_malformed)?;
        r.take(usize::from(len))
    } else {
        r.take(usize::from(opt_len))
    };
    let params = params.ok_or_else(open_malformed)?;
    if !r.is_empty() {
        return Err(open_malformed());
    }
    let mut caps = Capabilities::default();
    let mut p = Reader::new(params);
    while !p.is_empty() {
        let param_type = p.u8().ok_or_else(open_malformed)?;
        let len = if extended {
            p.u16()
        } else {
            p.u8().map(u16::from)
        };
        let value = len
            .and_then(|len| p.take(usize::from(len)))
            .ok_or_else(open_malformed)?;
        if param_type != OPT_PARAM_CAPABILITIES {
            return Err(open_error(subcode::UNSUPPORTED_OPTIONAL_PARAMETER));
        }
        decode_capabilities(value, &mut caps)?;
    }
    if caps.four_octet_asn == Some(0) {
        return Err(open_error(subcode::BAD_PEER_AS));
    }
    Ok(Open {
        asn: caps.four_octet_asn.unwrap_or(u32::from(my_as)),
        hold_time,
        router_id,
        capabilities: caps,
    })
}

fn decode_capabilities(value: &[u8], caps: &mut Capabilities) -> Result<(), Notification> {
    let mut c = Reader::new(value);
    while !c.is_empty() {
        let (Some(cap_code), Some(len)) = (c.u8(), c.u8()) else {
            return Err(open_malformed());
        };
        let data = c.take(usize::from(len)).ok_or_else(open_malformed)?;
        let mut d = Reader::new(data);
        match cap_code {
            CAP_MULTIPROTOCOL => {
                let (Some(afi), Some(_reserved), Some(safi), true) =
                    (d.u16(), d.u8(), d.u8(), data.len() == 4)
                else {
                    return Err(open_malformed());
                };
                if !caps.multiprotocol.contains(&(afi, safi)) {
                    caps.multiprotocol.push((afi, safi));
                }
            }
            CAP_ROUTE_REFRESH if data.is_empty() => caps.route_refresh = true,
            CAP_FOUR_OCTET_ASN if data.len() == 4 => caps.four_octet_asn = d.u32(),
            CAP_ROUTE_REFRESH | CAP_FOUR_OCTET_ASN => return Err(open_malformed()),
            other => {
                if !caps.other.contains(&other) {
                    caps.other.push(other);
                }
            }
        }
    }
    Ok(())
}

fn update_error(subcode: u8, data: &[u8]) -> Notification {
    notification(code::UPDATE_MESSAGE, subcode, data.to_vec())
}

fn malformed_attribute_list() -> Notification {
    update_error(subcode::MALFORMED_ATTRIBUTE_LIST, &[])
}

fn invalid_network_field() -> Notification {
    update_error(subcode::INVALID_NETWORK_FIELD, &[])
}

/// Walks an IPv4 prefix list (withdrawn routes, NLRI, MP NLRI). `None` if a length is over 32
/// or its bytes are missing. Host bits past the length are cleared (RFC 4271 §4.3: they are
/// irrelevant).
fn parse_prefixes(mut buf: &[u8]) -> Option<Vec<Ipv4Network>> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = buf.split_first() {
        if len > 32 {
            return None;
        }
        let nbytes = usize::from(len).div_ceil(8);
        let (bytes, rest) = rest.split_at_checked(nbytes)?;
        let mut octets = [0u8; 4];
        octets.get_mut(..nbytes)?.copy_from_slice(bytes);
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        let addr = Ipv4Addr::from(u32::from_be_bytes(octets) & mask);
        out.push(Ipv4Network::new(addr, len).ok()?);
        buf = rest;
    }
    Some(out)
}

/// What the validation pass keeps for the decode that follows.
#[derive(Default)]
struct Validated<'a> {
    /// Raw values of the attributes handed to zettabgp.
    origin: Option<&'a [u8]>,
    /// AS_PATH segments without confederation segments (zettabgp rejects types 3 and 4; RFC
    /// 5065 says they do not count outside the confederation anyway).
    as_path: Option<Vec<u8>>,
    next_hop: Option<(&'a [u8], Ipv4Addr)>,
    /// The whole NEXT_HOP attribute, for a 3/8's data.
    next_hop_attr: &'a [u8],
    /// IPv4 unicast from MP_REACH_NLRI: next hop and prefixes.
    mp_reach: Option<(Ipv4Addr, Vec<Ipv4Network>)>,
    mp_unreach: Vec<Ipv4Network>,
}

fn decode_update(body: &[u8], ctx: CodecContext) -> Result<Update, Notification> {
    let mut r = Reader::new(body);
    let withdrawn_len = r.u16().ok_or_else(malformed_attribute_list)?;
    let withdrawn_raw = r
        .take(usize::from(withdrawn_len))
        .ok_or_else(malformed_attribute_list)?;
    let attrs_len = r.u16().ok_or_else(malformed_attribute_list)?;
    let attrs_raw = r
        .take(usize::from(attrs_len))
        .ok_or_else(malformed_attribute_list)?;
    let nlri_raw = r.rest();

    let withdrawn = parse_prefixes(withdrawn_raw).ok_or_else(invalid_network_field)?;
    let v = validate_attributes(attrs_raw, ctx)?;
    let nlri = parse_prefixes(nlri_raw).ok_or_else(invalid_network_field)?;

    let mp_nlri = v.mp_reach.as_ref().is_some_and(|(_, p)| !p.is_empty());
    if !nlri.is_empty() || mp_nlri {
        // RFC 4271 §6.3 / RFC 4760 §3: data is the missing attribute's type code.
        for (present, type_code) in [
            (v.origin.is_some(), attr::ORIGIN),
            (v.as_path.is_some(), attr::AS_PATH),
            (v.next_hop.is_some() || nlri.is_empty(), attr::NEXT_HOP),
        ] {
            if !present {
                return Err(update_error(
                    subcode::MISSING_WELL_KNOWN_ATTRIBUTE,
                    &[type_code],
                ));
            }
        }
    }
    // A next hop that is well-formed but unusable (0/8, 127/8, multicast, our own address) is
    // a semantic error: RFC 4271 §6.3 says to ignore the route, not to reset the session, so
    // that check belongs to route import, not to the codec.

    let sanitized = sanitized_copy(withdrawn_raw, &v, nlri_raw);
    let (z_withdrawn, z_nlri, z_attrs) = zettabgp_decode_update(&sanitized, ctx)?;
    // zettabgp must read the prefixes exactly as our walker did; a mismatch is a bug in one of
    // us, and we would rather reset the session than announce or withdraw the wrong thing.
    if z_withdrawn != withdrawn || z_nlri != nlri {
        tracing::error!(
            ?withdrawn,
            ?z_withdrawn,
            ?nlri,
            ?z_nlri,
            "zettabgp and the validator disagree on an UPDATE's prefixes"
        );
        return Err(malformed_attribute_list());
    }

    let mut update = Update {
        withdrawn,
        attributes: None,
        nlri,
    };
    update.withdrawn.extend(v.mp_unreach);
    let classic_nlri = !update.nlri.is_empty();
    let mut mp_next_hop = None;
    if let Some((next_hop, prefixes)) = v.mp_reach {
        if !prefixes.is_empty() {
            mp_next_hop = Some(next_hop);
            update.nlri.extend(prefixes);
        }
    }
    if !update.nlri.is_empty() {
        let (origin, as_path, next_hop) = z_attrs;
        // With both, the classic NEXT_HOP wins: `Update` has one attribute set.
        let next_hop = if classic_nlri { next_hop } else { mp_next_hop };
        let (Some(origin), Some(as_path), Some(next_hop)) = (origin, as_path, next_hop) else {
            tracing::error!("zettabgp dropped a validated ORIGIN, AS_PATH or NEXT_HOP");
            return Err(malformed_attribute_list());
        };
        update.attributes = Some(PathAttributes {
            origin,
            as_path,
            next_hop,
        });
    }
    Ok(update)
}

/// Checks every attribute (RFC 4271 §6.3, with the per-type rules of RFCs 1997, 4760, 6793,
/// 8092), returning the ones we decode.
fn validate_attributes(attrs_raw: &[u8], ctx: CodecContext) -> Result<Validated<'_>, Notification> {
    let mut v = Validated::default();
    let mut seen = [false; 256];
    let mut a = Reader::new(attrs_raw);
    while !a.is_empty() {
        let start = attrs_raw.len() - a.remaining();
        let (Some(flags), Some(type_code)) = (a.u8(), a.u8()) else {
            return Err(malformed_attribute_list());
        };
        let len = if flags & FLAG_EXTENDED_LENGTH != 0 {
            a.u16()
        } else {
            a.u8().map(u16::from)
        };
        let value = len
            .and_then(|len| a.take(usize::from(len)))
            .ok_or_else(malformed_attribute_list)?;
        let whole = attrs_raw
            .get(start..attrs_raw.len() - a.remaining())
            .unwrap_or_default();
        let seen_before = seen.get_mut(usize::from(type_code));
        match seen_before {
            Some(true) => return Err(malformed_attribute_list()),
            Some(s) => *s = true,
            None => {}
        }
        validate_attribute(flags, type_code, value, whole, ctx, &mut v)?;
    }
    Ok(v)
}

/// Expected (optional, transitive) bits of each recognized attribute.
fn expected_flags(type_code: u8) -> Option<(bool, bool)> {
    Some(match type_code {
        attr::ORIGIN
        | attr::AS_PATH
        | attr::NEXT_HOP
        | attr::LOCAL_PREF
        | attr::ATOMIC_AGGREGATE => (false, true),
        attr::MED | attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI => (true, false),
        attr::AGGREGATOR | attr::COMMUNITIES | attr::LARGE_COMMUNITY => (true, true),
        _ => return None,
    })
}

fn validate_attribute<'a>(
    flags: u8,
    type_code: u8,
    value: &'a [u8],
    whole: &'a [u8],
    ctx: CodecContext,
    v: &mut Validated<'a>,
) -> Result<(), Notification> {
    let flags_error = || update_error(subcode::ATTRIBUTE_FLAGS_ERROR, whole);
    let length_error = || update_error(subcode::ATTRIBUTE_LENGTH_ERROR, whole);
    if type_code == attr::AS4_PATH || type_code == attr::AS4_AGGREGATOR {
        // RFC 6793 §6: errors in these lead to discarding them, never to a reset.
        return Ok(());
    }
    let Some((optional, transitive)) = expected_flags(type_code) else {
        if flags & FLAG_OPTIONAL == 0 {
            return Err(update_error(
                subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                whole,
            ));
        }
        return Ok(()); // Unrecognized optional: accepted and dropped.
    };
    let partial_allowed = optional && transitive;
    if (flags & FLAG_OPTIONAL != 0) != optional
        || (flags & FLAG_TRANSITIVE != 0) != transitive
        || (!partial_allowed && flags & FLAG_PARTIAL != 0)
    {
        return Err(flags_error());
    }
    let len = value.len();
    let aggregator_len = if ctx.four_octet_asn { 8 } else { 6 };
    match type_code {
        attr::ORIGIN => {
            let [origin] = value else {
                return Err(length_error());
            };
            if *origin > 2 {
                return Err(update_error(subcode::INVALID_ORIGIN, whole));
            }
            v.origin = Some(value);
        }
        attr::AS_PATH => v.as_path = Some(validate_as_path(value, ctx)?),
        attr::NEXT_HOP => {
            let octets: [u8; 4] = value.try_into().map_err(|_| length_error())?;
            v.next_hop = Some((value, Ipv4Addr::from(octets)));
            v.next_hop_attr = whole;
        }
        attr::MED | attr::LOCAL_PREF if len != 4 => return Err(length_error()),
        attr::ATOMIC_AGGREGATE if len != 0 => return Err(length_error()),
        attr::AGGREGATOR if len != aggregator_len => return Err(length_error()),
        // RFC 7606 §7.8 and RFC 8092 §5: a non-zero multiple.
        attr::COMMUNITIES if len == 0 || len % 4 != 0 => return Err(length_error()),
        attr::LARGE_COMMUNITY if len == 0 || len % 12 != 0 => return Err(length_error()),
        attr::MP_REACH_NLRI => v.mp_reach = validate_mp_reach(value, whole)?,
        attr::MP_UNREACH_NLRI => v.mp_unreach = validate_mp_unreach(value, whole)?,
        _ => {}
    }
    Ok(())
}

/// Checks AS_PATH segments consume the attribute exactly for the session's ASN width (the
/// check that keeps zettabgp out of its endless loop) and returns the non-confederation
/// segments.
fn validate_as_path(value: &[u8], ctx: CodecContext) -> Result<Vec<u8>, Notification> {
    let asn_len = if ctx.four_octet_asn { 4 } else { 2 };
    let malformed = || update_error(subcode::MALFORMED_AS_PATH, &[]);
    let mut out = Vec::with_capacity(value.len());
    let mut r = Reader::new(value);
    while !r.is_empty() {
        let (Some(segment_type), Some(count)) = (r.u8(), r.u8()) else {
            return Err(malformed());
        };
        if !(SEGMENT_AS_SET..=SEGMENT_AS_CONFED_SET).contains(&segment_type) || count == 0 {
            return Err(malformed());
        }
        let asns = r.take(usize::from(count) * asn_len).ok_or_else(malformed)?;
        if segment_type <= SEGMENT_AS_SEQUENCE {
            out.extend_from_slice(&[segment_type, count]);
            out.extend_from_slice(asns);
        }
    }
    Ok(out)
}

/// MP_REACH_NLRI: AFI(2) SAFI(1) next-hop length(1) next hop, reserved(1), NLRI.
fn validate_mp_reach(
    value: &[u8],
    whole: &[u8],
) -> Result<Option<(Ipv4Addr, Vec<Ipv4Network>)>, Notification> {
    let error = || update_error(subcode::OPTIONAL_ATTRIBUTE_ERROR, whole);
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi), Some(nh_len)) = (r.u16(), r.u8(), r.u8()) else {
        return Err(error());
    };
    let (Some(next_hop), Some(_reserved)) = (r.take(usize::from(nh_len)), r.u8()) else {
        return Err(error());
    };
    if (afi, safi) != (AFI_IPV4, SAFI_UNICAST) {
        return Ok(None);
    }
    let octets: [u8; 4] = next_hop.try_into().map_err(|_| error())?;
    let next_hop = Ipv4Addr::from(octets);
    let prefixes = parse_prefixes(r.rest()).ok_or_else(error)?;
    Ok(Some((next_hop, prefixes)))
}

/// MP_UNREACH_NLRI: AFI(2) SAFI(1) withdrawn routes.
fn validate_mp_unreach(value: &[u8], whole: &[u8]) -> Result<Vec<Ipv4Network>, Notification> {
    let error = || update_error(subcode::OPTIONAL_ATTRIBUTE_ERROR, whole);
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
        return Err(error());
    };
    if (afi, safi) != (AFI_IPV4, SAFI_UNICAST) {
        return Ok(Vec::new());
    }
    parse_prefixes(r.rest()).ok_or_else(error)
}

/// The UPDATE body zettabgp gets: the validated withdrawn routes and NLRI verbatim, and only
/// ORIGIN, AS_PATH (confederation segments removed) and NEXT_HOP, in extended-length form.
fn sanitized_copy(withdrawn_raw: &[u8], v: &Validated<'_>, nlri_raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(withdrawn_raw.len() + nlri_raw.len() + 64);
    out.extend_from_slice(&(withdrawn_raw.len() as u16).to_be_bytes());
    out.extend_from_slice(withdrawn_raw);
    let mut attrs = Vec::new();
    let as_path = v.as_path.as_deref();
    let next_hop = v.next_hop.map(|(raw, _)| raw);
    for (type_code, value) in [
        (attr::ORIGIN, v.origin),
        (attr::AS_PATH, as_path),
        (attr::NEXT_HOP, next_hop),
    ] {
        if let Some(value) = value {
            attrs.extend_from_slice(&[FLAG_TRANSITIVE | FLAG_EXTENDED_LENGTH, type_code]);
            attrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
            attrs.extend_from_slice(value);
        }
    }
    out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    out.extend_from_slice(&attrs);
    out.extend_from_slice(nlri_raw);
    out
}

fn zettabgp_params(ctx: CodecContext) -> BgpSessionParams {
    let mut params = BgpSessionParams::new(
        0,
        0,
        BgpTransportMode::IPv4,
        Ipv4Addr::UNSPECIFIED,
        Vec::new(),
    );
    params.has_as32bit = ctx.four_octet_asn;
    // Guessing ADD-PATH from the bytes misreads ordinary NLRI; we never negotiate it.
    params.fuzzy_pathid = false;
    params
}

type ZettabgpAttrs = (Option<Origin>, Option<Vec<u32>>, Option<Ipv4Addr>);

/// Runs zettabgp on a sanitized UPDATE body, mapping its result to our types.
fn zettabgp_decode_update(
    body: &[u8],
    ctx: CodecContext,
) -> Result<(Vec<Ipv4Network>, Vec<Ipv4Network>, ZettabgpAttrs), Notification> {
    let params = zettabgp_params(ctx);
    // Fresh message every time: decode_from appends to `attrs`.
    let mut msg = BgpUpdateMessage::new();
    match catch_unwind(AssertUnwindSafe(|| msg.decode_from(&params, body))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "zettabgp rejected a validated UPDATE");
            return Err(malformed_attribute_list());
        }
        Err(_) => {
            ZETTABGP_PANICS.fetch_add(1, Ordering::Relaxed);
            tracing::error!("zettabgp panicked on a validated UPDATE; sending 3/1");
            return Err(malformed_attribute_list());
        }
    }
    let withdrawn = prefixes_from_zettabgp(&msg.withdraws)?;
    let nlri = prefixes_from_zettabgp(&msg.updates)?;
    let mut attrs: ZettabgpAttrs = (None, None, None);
    for item in &msg.attrs {
        match item {
            BgpAttrItem::Origin(o) => {
                attrs.0 = Some(match o.value {
                    BgpAttrOrigin::Igp => Origin::Igp,
                    BgpAttrOrigin::Egp => Origin::Egp,
                    BgpAttrOrigin::Incomplete => Origin::Incomplete,
                })
            }
            // Sets flatten in zettabgp's (sorted) order; their order carries no meaning.
            BgpAttrItem::ASPath(path) => {
                attrs.1 = Some(
                    path.value
                        .iter()
                        .flat_map(|segment| -> Vec<u32> {
                            match segment {
                                BgpASitem::Seq(s) => s.value.iter().map(|a| a.value).collect(),
                                BgpASitem::Set(s) => s.value.iter().map(|a| a.value).collect(),
                            }
                        })
                        .collect(),
                )
            }
            BgpAttrItem::NextHop(BgpNextHop {
                value: IpAddr::V4(a),
            }) => attrs.2 = Some(*a),
            other => {
                tracing::error!(attribute = %other, "zettabgp produced an unexpected attribute");
                return Err(malformed_attribute_list());
            }
        }
    }
    Ok((withdrawn, nlri, attrs))
}

fn prefixes_from_zettabgp(addrs: &BgpAddrs) -> Result<Vec<Ipv4Network>, Notification> {
    match addrs {
        BgpAddrs::None => Ok(Vec::new()),
        BgpAddrs::IPV4U(list) => list
            .iter()
            .map(|p| {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(p.prefixlen.min(32)))
                    .unwrap_or(0);
                Ipv4Network::new(Ipv4Addr::from(u32::from(p.addr) & mask), p.prefixlen)
                    .map_err(|_| invalid_network_field())
            })
            .collect(),
        _ => {
            tracing::error!("zettabgp returned a non-IPv4-unicast prefix list");
            Err(malformed_attribute_list())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

fn frame(msg_type: u8, body: &[u8]) -> Result<Vec<u8>, CodecError> {
    let len = HEADER_LEN + body.len();
    if len > MAX_MESSAGE_LEN {
        return Err(CodecError::TooLong { len });
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.push(msg_type);
    out.extend_from_slice(body);
    Ok(out)
}

/// Encodes OPEN, KEEPALIVE, NOTIFICATION and ROUTE-REFRESH into one frame; an UPDATE too, as
/// long as it fits in 4096 bytes (else `TooLong`; use [`encode_update`] to split).
pub fn encode(msg: &Message, ctx: CodecContext) -> Result<Vec<u8>, CodecError> {
    match msg {
        Message::Open(open) => encode_open(open),
        Message::Update(update) => {
            let attrs = encoded_attributes(update, ctx)?;
            update_frame(&update.withdrawn, attrs.as_ref(), &update.nlri, ctx)
        }
        Message::Notification(n) => {
            let mut body = Vec::with_capacity(2 + n.data.len());
            body.extend_from_slice(&[n.code, n.subcode]);
            body.extend_from_slice(&n.data);
            frame(MSG_NOTIFICATION, &body)
        }
        Message::Keepalive => frame(MSG_KEEPALIVE, &[]),
        Message::RouteRefresh { afi, safi } => {
            let [afi_hi, afi_lo] = afi.to_be_bytes();
            frame(MSG_ROUTE_REFRESH, &[afi_hi, afi_lo, 0, *safi])
        }
    }
}

fn encode_open(open: &Open) -> Result<Vec<u8>, CodecError> {
    if open.router_id.is_unspecified() {
        return Err(CodecError::InvalidRouterId);
    }
    let c = &open.capabilities;
    if let Some(capability) = c.four_octet_asn.filter(|&a| a != open.asn) {
        return Err(CodecError::AsnMismatch {
            asn: open.asn,
            capability,
        });
    }
    let mut caps = Vec::with_capacity(c.multiprotocol.len() + 2);
    for &(afi, safi) in &c.multiprotocol {
        caps.push(
            BgpCapability::from_afi_safi(afi, safi)
                .ok_or(CodecError::UnsupportedFamily { afi, safi })?,
        );
    }
    if c.route_refresh {
        caps.push(BgpCapability::CapRR);
    }
    // Always sent: it is how a peer learns our real ASN when "My AS" says AS_TRANS.
    caps.push(BgpCapability::CapASN32(open.asn));
    // zettabgp puts each capability in its own parameter: 2 + 2 + data bytes each, and sums
    // them into a u8 without checking.
    let len: usize = 8 * c.multiprotocol.len() + if c.route_refresh { 4 } else { 0 } + 8;
    if len > 255 {
        return Err(CodecError::TooManyCapabilities { len });
    }
    let msg = BgpOpenMessage {
        as_num: open.asn, // zettabgp writes AS_TRANS in "My AS" when this exceeds 65535
        hold_time: open.hold_time,
        router_id: open.router_id,
        caps,
    };
    let params = BgpSessionParams::new(
        open.asn,
        open.hold_time,
        BgpTransportMode::IPv4,
        open.router_id,
        Vec::new(),
    );
    let mut buf = vec![0u8; MAX_BODY_LEN];
    let n = msg
        .encode_to(&params, &mut buf)
        .map_err(|e| CodecError::Zettabgp {
            what: "OPEN",
            detail: e.to_string(),
        })?;
    frame(MSG_OPEN, buf.get(..n).unwrap_or_default())
}

/// Encodes an Update, split into as many <= 4096-byte UPDATE frames as needed: withdrawals
/// first, then announcements, each frame of those repeating the path attributes. An empty
/// Update gives one empty UPDATE, the IPv4 unicast End-of-RIB marker (RFC 4724).
pub fn encode_update(update: &Update, ctx: CodecContext) -> Result<Vec<Vec<u8>>, CodecError> {
    let attrs = encoded_attributes(update, ctx)?;
    let withdrawn_len = prefixes_len(&update.withdrawn);
    let nlri_len = prefixes_len(&update.nlri);
    let attrs_len = attrs.as_ref().map_or(0, |a| a.len);
    if HEADER_LEN + 4 + withdrawn_len + attrs_len + nlri_len <= MAX_MESSAGE_LEN {
        return Ok(vec![update_frame(
            &update.withdrawn,
            attrs.as_ref(),
            &update.nlri,
            ctx,
        )?]);
    }
    let mut frames = Vec::new();
    for chunk in chunks(&update.withdrawn, MAX_BODY_LEN - 4) {
        frames.push(update_frame(chunk, None, &[], ctx)?);
    }
    if let Some(attrs) = attrs.as_ref() {
        let budget = MAX_BODY_LEN - 4;
        if attrs.len + 5 > budget {
            return Err(CodecError::TooLong {
                len: HEADER_LEN + 4 + attrs.len + 5,
            });
        }
        for chunk in chunks(&update.nlri, budget - attrs.len) {
            frames.push(update_frame(&[], Some(attrs), chunk, ctx)?);
        }
    }
    Ok(frames)
}

/// Wire length of a prefix: length byte plus the significant octets.
fn prefix_len(p: &Ipv4Network) -> usize {
    1 + usize::from(p.prefix()).div_ceil(8)
}

fn prefixes_len(prefixes: &[Ipv4Network]) -> usize {
    prefixes.iter().map(prefix_len).sum()
}

/// Splits `prefixes` into consecutive runs of at most `budget` wire bytes each.
fn chunks(prefixes: &[Ipv4Network], budget: usize) -> Vec<&[Ipv4Network]> {
    let mut out = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, p) in prefixes.iter().enumerate() {
        let len = prefix_len(p);
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

/// Path attributes ready for zettabgp, and their encoded length.
struct EncodedAttrs {
    items: Vec<BgpAttrItem>,
    len: usize,
}

/// The attributes to send with `update`'s NLRI (none when it only withdraws).
fn encoded_attributes(
    update: &Update,
    ctx: CodecContext,
) -> Result<Option<EncodedAttrs>, CodecError> {
    if update.nlri.is_empty() {
        return Ok(None);
    }
    let attrs = update
        .attributes
        .as_ref()
        .ok_or(CodecError::MissingAttributes)?;
    let as_path = encode_as_path(&attrs.as_path, ctx)?;
    let as_path_flags = if as_path.len() > 255 {
        FLAG_TRANSITIVE | FLAG_EXTENDED_LENGTH
    } else {
        FLAG_TRANSITIVE
    };
    let as_path_header = if as_path.len() > 255 { 4 } else { 3 };
    // ORIGIN 3+1, AS_PATH header+value, NEXT_HOP 3+4.
    let len = 4 + as_path_header + as_path.len() + 7;
    let mut as_path_attr = BgpAttrUnknown::new(attr::AS_PATH, as_path_flags);
    as_path_attr.value = as_path;
    let origin = match attrs.origin {
        Origin::Igp => BgpAttrOrigin::Igp,
        Origin::Egp => BgpAttrOrigin::Egp,
        Origin::Incomplete => BgpAttrOrigin::Incomplete,
    };
    Ok(Some(EncodedAttrs {
        // In type code order.
        items: vec![
            BgpAttrItem::Origin(BgpOrigin::new(origin)),
            BgpAttrItem::Unknown(as_path_attr),
            BgpAttrItem::NextHop(BgpNextHop::new(IpAddr::V4(attrs.next_hop))),
        ],
        len,
    }))
}

/// AS_PATH value as AS_SEQUENCE segments of at most 255 ASNs (empty for iBGP).
fn encode_as_path(as_path: &[u32], ctx: CodecContext) -> Result<Vec<u8>, CodecError> {
    let asn_len = if ctx.four_octet_asn { 4 } else { 2 };
    let mut out = Vec::with_capacity(as_path.len() * asn_len + 2 * as_path.len().div_ceil(255));
    for segment in as_path.chunks(255) {
        out.extend_from_slice(&[SEGMENT_AS_SEQUENCE, segment.len() as u8]);
        for &asn in segment {
            if ctx.four_octet_asn {
                out.extend_from_slice(&asn.to_be_bytes());
            } else {
                let asn16 = u16::try_from(asn).map_err(|_| CodecError::AsnNeedsFourOctets(asn))?;
                out.extend_from_slice(&asn16.to_be_bytes());
            }
        }
    }
    Ok(out)
}

fn to_zettabgp_prefixes(prefixes: &[Ipv4Network]) -> BgpAddrs {
    BgpAddrs::IPV4U(
        prefixes
            .iter()
            // network(): zettabgp copies the address bytes as they are, host bits included.
            .map(|p| BgpAddrV4::new(p.network(), p.prefix()))
            .collect(),
    )
}

/// One UPDATE frame via zettabgp, after checking it fits (zettabgp does not, and panics on a
/// short buffer).
fn update_frame(
    withdrawn: &[Ipv4Network],
    attrs: Option<&EncodedAttrs>,
    nlri: &[Ipv4Network],
    ctx: CodecContext,
) -> Result<Vec<u8>, CodecError> {
    let attrs_len = attrs.map_or(0, |a| a.len);
    let body_len = 4 + prefixes_len(withdrawn) + attrs_len + prefixes_len(nlri);
    if HEADER_LEN + body_len > MAX_MESSAGE_LEN {
        return Err(CodecError::TooLong {
            len: HEADER_LEN + body_len,
        });
    }
    let msg = BgpUpdateMessage {
        updates: to_zettabgp_prefixes(nlri),
        withdraws: to_zettabgp_prefixes(withdrawn),
        attrs: attrs.map(|a| a.items.clone()).unwrap_or_default(),
    };
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let n = msg
        .encode_to(&zettabgp_params(ctx), &mut buf)
        .map_err(|e| CodecError::Zettabgp {
            what: "UPDATE",
            detail: e.to_string(),
        })?;
    if n != body_len {
        return Err(CodecError::Zettabgp {
            what: "UPDATE",
            detail: format!("wrote {n} bytes, expected {body_len}"),
        });
    }
    frame(MSG_UPDATE, buf.get(..n).unwrap_or_default())
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::mpsc;
    use std::time::Duration;

    const FOUR: CodecContext = CodecContext {
        four_octet_asn: true,
    };
    const TWO: CodecContext = CodecContext {
        four_octet_asn: false,
    };
    const ASN4: u32 = 4_200_000_001;
    const NLRI_ONE: &[u8] = &[32, 192, 0, 2, 10];

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    fn from_hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
        digits
            .chunks(2)
            .map(|d| u8::from_str_radix(std::str::from_utf8(d).unwrap(), 16).unwrap())
            .collect()
    }

    /// A capture under tests/data/bgp: `#` lines are comments, the rest is hex.
    fn capture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/bgp/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let hex: String = text.lines().filter(|l| !l.starts_with('#')).collect();
        from_hex(&hex)
    }

    /// A frame with a correct header around any body (no length checks, for malformed input).
    fn raw_frame(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![0xff; 16];
        out.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
        out.push(msg_type);
        out.extend_from_slice(body);
        out
    }

    fn attribute(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![flags, type_code];
        if flags & FLAG_EXTENDED_LENGTH != 0 {
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        } else {
            out.push(value.len() as u8);
        }
        out.extend_from_slice(value);
        out
    }

    fn origin_attr(origin: u8) -> Vec<u8> {
        attribute(0x40, 1, &[origin])
    }

    fn as_path_attr(segment_type: u8, asns: &[u32]) -> Vec<u8> {
        let mut value = vec![segment_type, asns.len() as u8];
        for a in asns {
            value.extend_from_slice(&a.to_be_bytes());
        }
        attribute(0x40, 2, &value)
    }

    fn next_hop_attr(octets: [u8; 4]) -> Vec<u8> {
        attribute(0x40, 3, &octets)
    }

    /// ORIGIN IGP, AS_PATH 4200000001 (4-byte), NEXT_HOP 192.0.2.1.
    fn base_attrs() -> Vec<u8> {
        [
            origin_attr(0),
            as_path_attr(2, &[ASN4]),
            next_hop_attr([192, 0, 2, 1]),
        ]
        .concat()
    }

    fn update_frame_raw(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
        let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(withdrawn);
        body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        body.extend_from_slice(attrs);
        body.extend_from_slice(nlri);
        raw_frame(2, &body)
    }

    fn announce(nlri: &[&str], as_path: Vec<u32>) -> Update {
        Update {
            withdrawn: Vec::new(),
            attributes: Some(PathAttributes {
                origin: Origin::Igp,
                as_path,
                next_hop: Ipv4Addr::new(198, 18, 1, 1),
            }),
            nlri: nlri.iter().map(|s| net(s)).collect(),
        }
    }

    /// Decodes on another thread and fails the test if that takes over 10 s: the endless
    /// loop zettabgp has on some AS_PATHs cannot be interrupted any other way.
    fn decode_guarded(frame: Vec<u8>, ctx: CodecContext) -> Result<Message, Notification> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(decode(&frame, ctx));
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("decode hung or panicked")
    }

    #[track_caller]
    fn assert_notification(frame: &[u8], ctx: CodecContext, code: u8, sub: u8, data: &[u8]) {
        let before = zettabgp_panics();
        match decode_guarded(frame.to_vec(), ctx) {
            Err(n) => assert_eq!(
                (n.code, n.subcode, n.data.as_slice()),
                (code, sub, data),
                "for {frame:02x?}"
            ),
            Ok(m) => panic!("expected {code}/{sub}, decoded {m:?}"),
        }
        assert_eq!(zettabgp_panics(), before, "a zettabgp panic was caught");
    }

    fn decode_update_ok(frame: &[u8], ctx: CodecContext) -> Update {
        match decode(frame, ctx) {
            Ok(Message::Update(u)) => u,
            other => panic!("expected an UPDATE, got {other:?}"),
        }
    }

    // ----- round trips -------------------------------------------------------------------

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

    fn open(asn: u32, route_refresh: bool) -> Open {
        Open {
            asn,
            hold_time: 9,
            router_id: Ipv4Addr::new(198, 18, 1, 1),
            capabilities: Capabilities {
                four_octet_asn: Some(asn),
                multiprotocol: vec![(AFI_IPV4, SAFI_UNICAST)],
                route_refresh,
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
            withdrawn: vec![net("192.0.2.10/32"), net("198.18.99.0/24")],
            attributes: None,
            nlri: Vec::new(),
        };
        let bytes = encode(&Message::Update(u.clone()), FOUR).unwrap();
        assert_eq!(&bytes[19..], &from_hex("0009 20c000020a 18c61263 0000")[..]);
        assert_eq!(decode(&bytes, FOUR), Ok(Message::Update(u)));
    }

    #[test]
    fn update_withdraw_and_announce_round_trip() {
        let mut u = announce(&["192.0.2.10/32"], vec![ASN4]);
        u.withdrawn = vec![net("192.0.2.11/32"), net("192.0.2.0/25")];
        let bytes = encode(&Message::Update(u.clone()), FOUR).unwrap();
        assert_eq!(decode(&bytes, FOUR), Ok(Message::Update(u)));
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
        assert_eq!(
            decode(&frames[0], FOUR),
            Ok(Message::Update(Update::default()))
        );
    }

    #[test]
    fn as_path_is_encoded_as_sequence() {
        let body =
            |u: &Update, ctx| encode(&Message::Update(u.clone()), ctx).unwrap()[19..].to_vec();
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

    /// Documents defect 1 of the notes: if this starts failing, zettabgp encodes AS_PATH
    /// correctly and the hand-encoding could go.
    #[test]
    fn zettabgp_still_encodes_as_path_as_as_set() {
        let path: zettabgp::prelude::BgpASpath = vec![ASN4].into();
        let mut buf = [0u8; 64];
        let n = BgpAttrItem::ASPath(path)
            .encode_to(&zettabgp_params(FOUR), &mut buf)
            .unwrap();
        // Segment type 1 (AS_SET) where 2 (AS_SEQUENCE) is meant.
        assert_eq!(&buf[..n], &from_hex("5002 0006 01 01 fa56ea01")[..]);
    }

    #[test]
    fn long_as_path_uses_several_segments_and_extended_length() {
        let as_path: Vec<u32> = (1..=300).map(|i| 4_200_000_000 + i).collect();
        let u = announce(&["192.0.2.10/32"], as_path);
        let bytes = encode(&Message::Update(u.clone()), FOUR).unwrap();
        // AS_PATH: flags 0x50, length 2 + 255*4 + 2 + 45*4 = 1204.
        assert_eq!(&bytes[27..33], &from_hex("5002 04b4 02ff")[..]);
        assert_eq!(&bytes[33 + 255 * 4..][..2], &[2, 45]);
        assert_eq!(decode(&bytes, FOUR), Ok(Message::Update(u)));
    }

    #[test]
    fn host_bits_are_cleared_both_ways() {
        let mut u = announce(&[], vec![ASN4]);
        u.nlri = vec![Ipv4Network::new(Ipv4Addr::new(192, 0, 2, 255), 25).unwrap()];
        let bytes = encode(&Message::Update(u), FOUR).unwrap();
        assert_eq!(&bytes[bytes.len() - 5..], &[25, 192, 0, 2, 128]);
        let received = update_frame_raw(&[], &base_attrs(), &[25, 192, 0, 2, 0xff]);
        assert_eq!(
            decode_update_ok(&received, FOUR).nlri,
            vec![net("192.0.2.128/25")]
        );
    }

    fn many_prefixes(count: u32, third_octet_base: u8) -> Vec<Ipv4Network> {
        (0..count)
            .map(|i| {
                let addr = Ipv4Addr::new(198, 18, third_octet_base + (i / 256) as u8, i as u8);
                Ipv4Network::new(addr, 32).unwrap()
            })
            .collect()
    }

    #[test]
    fn large_update_splits_into_frames_that_decode_back() {
        for ctx in [FOUR, TWO] {
            let mut u = announce(&[], vec![65001]);
            u.nlri = many_prefixes(2000, 0);
            u.withdrawn = many_prefixes(2000, 100);
            let frames = encode_update(&u, ctx).unwrap();
            // 2000 * 5 bytes each way: at least 3 frames of each kind.
            assert!(frames.len() >= 6, "{} frames", frames.len());
            let (mut withdrawn, mut nlri) = (Vec::new(), Vec::new());
            for f in &frames {
                assert!(f.len() <= MAX_MESSAGE_LEN);
                assert_eq!(frame_len(f), Ok(Some(f.len())));
                let d = decode_update_ok(f, ctx);
                if d.nlri.is_empty() {
                    assert_eq!(d.attributes, None);
                } else {
                    assert_eq!(d.attributes, u.attributes);
                }
                withdrawn.extend(d.withdrawn);
                nlri.extend(d.nlri);
            }
            assert_eq!(withdrawn, u.withdrawn);
            assert_eq!(nlri, u.nlri);
            assert!(matches!(
                encode(&Message::Update(u), ctx),
                Err(CodecError::TooLong { .. })
            ));
        }
    }

    #[test]
    fn split_fills_frames_to_the_limit() {
        let mut u = announce(&[], vec![ASN4]);
        u.nlri = many_prefixes(2000, 0);
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
        // An AS_PATH too long for any frame.
        let u = announce(&["192.0.2.10/32"], vec![65001; 1100]);
        assert!(matches!(
            encode_update(&u, FOUR),
            Err(CodecError::TooLong { .. })
        ));
    }

    // ----- real bytes from FRR 8.4 -------------------------------------------------------

    #[test]
    fn decodes_frr_open_with_fqdn_capability() {
        let bytes = capture("frr-8.4-open.hex");
        assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
        let Ok(Message::Open(o)) = decode(&bytes, TWO) else {
            panic!("{:?}", decode(&bytes, TWO))
        };
        assert_eq!(o.asn, 65001);
        assert_eq!(o.hold_time, 3);
        assert_eq!(o.router_id, Ipv4Addr::new(198, 19, 0, 1));
        let c = &o.capabilities;
        assert_eq!(c.four_octet_asn, Some(65001));
        assert_eq!(c.multiprotocol, vec![(AFI_IPV4, SAFI_UNICAST)]);
        assert!(c.ipv4_unicast());
        assert!(c.route_refresh);
        // Old route refresh, enhanced RR, extended message, add-path, FQDN, GR, LLGR.
        assert_eq!(c.other, vec![128, 70, 6, 69, 73, 64, 71]);
    }

    /// Defect 8: zettabgp alone rejects this OPEN because of the FQDN capability's domain.
    #[test]
    fn zettabgp_alone_rejects_frr_open() {
        let bytes = capture("frr-8.4-open.hex");
        let mut msg = BgpOpenMessage::new();
        assert!(msg
            .decode_from(&zettabgp_params(FOUR), &bytes[HEADER_LEN..])
            .is_err());
    }

    #[test]
    fn decodes_frr_update_and_withdrawal() {
        let bytes = capture("frr-8.4-update.hex");
        let u = decode_update_ok(&bytes, FOUR);
        assert_eq!(
            u,
            Update {
                withdrawn: Vec::new(),
                attributes: Some(PathAttributes {
                    origin: Origin::Igp,
                    as_path: vec![65001],
                    next_hop: Ipv4Addr::new(198, 18, 1, 2),
                }),
                nlri: vec![net("198.18.99.0/24")],
            }
        );
        let w = decode_update_ok(&capture("frr-8.4-withdraw.hex"), FOUR);
        assert_eq!(
            w,
            Update {
                withdrawn: vec![net("198.18.99.0/24")],
                attributes: None,
                nlri: Vec::new(),
            }
        );
        // On a 2-byte session FRR's 4-byte AS_PATH does not parse.
        assert_notification(&bytes, TWO, 3, 11, &[]);
    }

    // ----- header errors -----------------------------------------------------------------

    #[test]
    fn frame_len_needs_a_whole_header() {
        let k = encode(&Message::Keepalive, FOUR).unwrap();
        assert_eq!(frame_len(&k[..18]), Ok(None));
        assert_eq!(frame_len(&[]), Ok(None));
        let mut two = k.clone();
        two.extend_from_slice(&k[..10]);
        assert_eq!(frame_len(&two), Ok(Some(19)));
    }

    #[test]
    fn header_1_1_bad_marker() {
        let mut k = encode(&Message::Keepalive, FOUR).unwrap();
        k[3] = 0xfe;
        assert_eq!(frame_len(&k), Err(Notification::new(1, 1, Vec::new())));
        assert_notification(&k, FOUR, 1, 1, &[]);
    }

    #[test]
    fn header_1_2_bad_length() {
        let with_len = |msg_type: u8, len: u16| {
            let mut f = vec![0xff; 16];
            f.extend_from_slice(&len.to_be_bytes());
            f.push(msg_type);
            f.resize(usize::from(len).max(19), 0);
            f
        };
        for (msg_type, len) in [
            (4, 18),
            (4, 4097),
            (2, 0xffff),
            (4, 20),
            (1, 28),
            (2, 22),
            (3, 20),
            (5, 22),
            (5, 24),
        ] {
            let f = with_len(msg_type, len);
            let want = Notification::new(1, 2, len.to_be_bytes().to_vec());
            assert_eq!(frame_len(&f), Err(want), "type {msg_type} len {len}");
        }
        // decode() given fewer or more bytes than the header says.
        let rr = encode(&Message::RouteRefresh { afi: 1, safi: 1 }, FOUR).unwrap();
        assert_notification(&rr[..22], FOUR, 1, 2, &[0, 23]);
        let mut long = rr.clone();
        long.push(0);
        assert_notification(&long, FOUR, 1, 2, &[0, 23]);
        assert_notification(&with_len(1, 28), FOUR, 1, 2, &[0, 28]);
    }

    #[test]
    fn header_1_3_bad_type() {
        for msg_type in [0u8, 6, 255] {
            let f = raw_frame(msg_type, &[0; 10]);
            assert_eq!(frame_len(&f), Err(Notification::new(1, 3, vec![msg_type])));
            assert_notification(&f, FOUR, 1, 3, &[msg_type]);
        }
    }

    // ----- OPEN errors -------------------------------------------------------------------

    /// OPEN body: version, My AS, hold, id, then the given optional parameters.
    fn open_frame(version: u8, my_as: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
        let mut body = vec![version];
        body.extend_from_slice(&my_as.to_be_bytes());
        body.extend_from_slice(&90u16.to_be_bytes());
        body.extend_from_slice(&id);
        body.push(params.len() as u8);
        body.extend_from_slice(params);
        raw_frame(1, &body)
    }

    const ID: [u8; 4] = [198, 18, 1, 2];

    #[test]
    fn open_2_1_unsupported_version() {
        assert_notification(&open_frame(3, 65001, ID, &[]), FOUR, 2, 1, &[0, 4]);
    }

    #[test]
    fn open_2_2_bad_peer_as_zero() {
        assert_notification(&open_frame(4, 0, ID, &[]), FOUR, 2, 2, &[]);
        let as4_zero = from_hex("0206 4104 00000000");
        assert_notification(&open_frame(4, 23456, ID, &as4_zero), FOUR, 2, 2, &[]);
    }

    #[test]
    fn open_2_3_bad_bgp_identifier() {
        assert_notification(&open_frame(4, 65001, [0; 4], &[]), FOUR, 2, 3, &[]);
    }

    #[test]
    fn open_2_4_unsupported_optional_parameter() {
        // Type 1 (authentication, deprecated) before a valid capability parameter.
        let params = from_hex("0102 abcd 0206 0104 00010001");
        assert_notification(&open_frame(4, 65001, ID, &params), FOUR, 2, 4, &[]);
    }

    #[test]
    fn open_2_0_malformed_parameters() {
        let frame_with_opt_len = |opt_len: u8, params: &[u8]| {
            let mut f = open_frame(4, 65001, ID, params);
            f[28] = opt_len;
            f
        };
        let caps = from_hex("0206 0104 00010001");
        // Optional parameters length past the end, and short of it.
        assert_notification(&frame_with_opt_len(9, &caps), FOUR, 2, 0, &[]);
        assert_notification(&frame_with_opt_len(7, &caps), FOUR, 2, 0, &[]);
        for params in [
            "0207 0104 00010001", // parameter length past the end
            "0206 0105 00010001", // capability length past its parameter
            "0205 0103 000101",   // MP capability of 3 bytes
            "0203 0201 00",       // route refresh with data
            "0205 4103 000001",   // 4-octet ASN capability of 3 bytes
            "0201 41",            // capability header cut short
            "02",                 // parameter header cut short
        ] {
            let params = from_hex(params);
            assert_notification(&open_frame(4, 65001, ID, &params), FOUR, 2, 0, &[]);
        }
    }

    #[test]
    fn open_without_four_octet_capability_uses_my_as() {
        let params = from_hex("0206 0104 00020001 0202 4600");
        let Ok(Message::Open(o)) = decode(&open_frame(4, 65001, ID, &params), TWO) else {
            panic!()
        };
        assert_eq!(o.asn, 65001);
        assert_eq!(o.capabilities.four_octet_asn, None);
        assert_eq!(o.capabilities.multiprotocol, vec![(2, 1)]);
        assert!(!o.capabilities.ipv4_unicast());
        assert_eq!(o.capabilities.other, vec![70]);
    }

    #[test]
    fn open_with_rfc9072_extended_parameters() {
        // Non-ext length 255, type 255, 2-byte length; parameters with 2-byte lengths.
        let caps = from_hex("0104 00010001 4104 fa56ea01");
        let mut params = vec![2];
        params.extend_from_slice(&(caps.len() as u16).to_be_bytes());
        params.extend_from_slice(&caps);
        let mut body = from_hex("04 5ba0 005a c6120102 ff ff");
        body.extend_from_slice(&(params.len() as u16).to_be_bytes());
        body.extend_from_slice(&params);
        let Ok(Message::Open(o)) = decode(&raw_frame(1, &body), FOUR) else {
            panic!()
        };
        assert_eq!(o.asn, ASN4);
        assert_eq!(o.capabilities.multiprotocol, vec![(1, 1)]);
    }

    // ----- UPDATE errors -----------------------------------------------------------------

    #[test]
    fn update_3_1_length_fields_inconsistent() {
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

    /// Notes defect 2: truncated attribute headers panic zettabgp.
    #[test]
    fn update_3_1_truncated_attribute_header() {
        for tail in ["40", "4001", "5001", "500100"] {
            let attrs = [base_attrs(), from_hex(tail)].concat();
            let f = update_frame_raw(&[], &attrs, NLRI_ONE);
            assert_notification(&f, FOUR, 3, 1, &[]);
        }
        // Attribute value running past the attribute section.
        let attrs = [base_attrs(), from_hex("c00808 fde90064")].concat();
        assert_notification(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR, 3, 1, &[]);
    }

    #[test]
    fn update_3_1_duplicate_attribute() {
        let attrs = [base_attrs(), origin_attr(1)].concat();
        assert_notification(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR, 3, 1, &[]);
    }

    #[test]
    fn update_3_2_unrecognized_well_known() {
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
    fn update_3_3_missing_well_known() {
        let [origin, as_path, next_hop] = [
            origin_attr(0),
            as_path_attr(2, &[ASN4]),
            next_hop_attr([192, 0, 2, 1]),
        ];
        for (attrs, missing) in [
            ([as_path.clone(), next_hop.clone()].concat(), 1),
            ([origin.clone(), next_hop.clone()].concat(), 2),
            ([origin.clone(), as_path.clone()].concat(), 3),
        ] {
            let f = update_frame_raw(&[], &attrs, NLRI_ONE);
            assert_notification(&f, FOUR, 3, 3, &[missing]);
            // Without NLRI nothing is required.
            assert!(decode(&update_frame_raw(&[], &attrs, &[]), FOUR).is_ok());
        }
        // MP_REACH_NLRI IPv4 unicast also needs ORIGIN and AS_PATH, not NEXT_HOP.
        let mp = attribute(0x80, 14, &from_hex("0001 01 04 c6120101 00 20c000020a"));
        let f = update_frame_raw(&[], &[as_path.clone(), mp.clone()].concat(), &[]);
        assert_notification(&f, FOUR, 3, 3, &[1]);
        assert!(decode(
            &update_frame_raw(&[], &[origin, as_path, mp].concat(), &[]),
            FOUR
        )
        .is_ok());
    }

    #[test]
    fn update_3_4_attribute_flags_error() {
        for bad in [
            attribute(0xc0, 1, &[0]),          // ORIGIN marked optional
            attribute(0x00, 1, &[0]),          // ORIGIN not transitive
            attribute(0x60, 1, &[0]),          // well-known with the partial bit
            attribute(0xc0, 4, &[0, 0, 0, 1]), // MED marked transitive
            attribute(0x40, 8, &[0, 0, 0, 1]), // COMMUNITIES not optional
            attribute(0xa0, 14, &[0, 1, 1]),   // MP_REACH with the partial bit
        ] {
            let attrs = [bad.clone(), base_attrs()].concat();
            let attrs = if bad[1] == 1 {
                [
                    bad.clone(),
                    as_path_attr(2, &[ASN4]),
                    next_hop_attr([192, 0, 2, 1]),
                ]
                .concat()
            } else {
                attrs
            };
            let f = update_frame_raw(&[], &attrs, NLRI_ONE);
            assert_notification(&f, FOUR, 3, 4, &bad);
        }
        // The partial bit is fine on an optional transitive attribute, and so is the
        // extended-length bit anywhere.
        let attrs = [
            base_attrs(),
            attribute(0xe0, 8, &[0, 0, 0, 1]),
            attribute(0x50, 5, &[0, 0, 0, 100]),
        ]
        .concat();
        assert!(decode(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR).is_ok());
    }

    #[test]
    fn update_3_5_attribute_length_error() {
        let cases = [
            (FOUR, attribute(0x40, 1, &[0, 0])),                     // ORIGIN
            (FOUR, attribute(0x40, 3, &[192, 0, 2, 1, 0])),          // NEXT_HOP
            (FOUR, attribute(0x80, 4, &[0, 0, 1])),                  // MED
            (FOUR, attribute(0x40, 5, &[0, 100])),                   // LOCAL_PREF
            (FOUR, attribute(0x40, 6, &[0])),                        // ATOMIC_AGGREGATE
            (FOUR, attribute(0xc0, 7, &[0xfd, 0xe9, 192, 0, 2, 1])), // AGGREGATOR 6 on 4-byte
            (TWO, attribute(0xc0, 7, &[0, 0, 0xfd, 0xe9, 192, 0, 2, 1])), // and 8 on 2-byte
            (FOUR, attribute(0xc0, 8, &[0xfd, 0xe9, 0, 100, 1])),    // COMMUNITIES 5 (defect 2)
            (FOUR, attribute(0xc0, 8, &[])),                         // COMMUNITIES empty
            (FOUR, attribute(0xc0, 32, &[0; 13])),                   // LARGE_COMMUNITY 13
            (FOUR, attribute(0xc0, 32, &[0; 8])),                    // LARGE_COMMUNITY 8
        ];
        for (ctx, bad) in cases {
            let others: Vec<u8> = [
                origin_attr(0),
                if ctx == FOUR {
                    as_path_attr(2, &[ASN4])
                } else {
                    attribute(0x40, 2, &[2, 1, 0xfd, 0xe9])
                },
                next_hop_attr([192, 0, 2, 1]),
            ]
            .into_iter()
            .filter(|a| a[1] != bad[1])
            .collect::<Vec<_>>()
            .concat();
            let f = update_frame_raw(&[], &[others, bad.clone()].concat(), NLRI_ONE);
            assert_notification(&f, ctx, 3, 5, &bad);
        }
    }

    #[test]
    fn update_3_6_invalid_origin() {
        let bad = origin_attr(3);
        let attrs = [
            bad.clone(),
            as_path_attr(2, &[ASN4]),
            next_hop_attr([192, 0, 2, 1]),
        ]
        .concat();
        assert_notification(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR, 3, 6, &bad);
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
            let Ok(Message::Update(u)) = decode(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR)
            else {
                panic!("next hop {octets:?} should decode")
            };
            assert_eq!(
                u.attributes.map(|a| a.next_hop),
                Some(Ipv4Addr::from(octets))
            );
        }
    }

    #[test]
    fn update_3_9_malformed_mp_attributes() {
        for (type_code, value) in [
            (14, "0001 01 04 c612"),     // MP_REACH too short (defect 2)
            (14, "0001"),                // no SAFI
            (14, "0002 01 10 20010db8"), // next hop longer than the attribute
            (14, "0001 01 04 c6120101"), // no reserved byte
            (
                14,
                "0001 01 10 20010db8000000000000000000000001 00 20c000020a",
            ), // IPv4 over v6 nh
            (14, "0001 01 04 c6120101 00 21c000020a00"), // prefix length 33
            (15, "0001"),                // MP_UNREACH too short
            (15, "0001 01 20c00002"),    // withdrawn prefix cut short
        ] {
            let bad = attribute(0x80, type_code, &from_hex(value));
            let attrs = [base_attrs(), bad.clone()].concat();
            assert_notification(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR, 3, 9, &bad);
        }
    }

    #[test]
    fn update_3_10_invalid_network_field() {
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
        // Length 255 would overflow zettabgp's `(bits + 7) / 8` on u8.
        assert_notification(&update_frame_raw(&[], &attrs, &[255, 1]), FOUR, 3, 10, &[]);
    }

    #[test]
    fn update_3_11_malformed_as_path() {
        let with_path = |value: &str| {
            let attrs = [
                origin_attr(0),
                attribute(0x40, 2, &from_hex(value)),
                next_hop_attr([192, 0, 2, 1]),
            ]
            .concat();
            update_frame_raw(&[], &attrs, NLRI_ONE)
        };
        for (ctx, value) in [
            (FOUR, "0201 fa56ea01 00"), // trailing byte: zettabgp's endless loop (defect 2)
            (TWO, "0201 fde9 00"),      // the same on a 2-byte session
            (FOUR, "0201 fa56ea01 02"), // trailing byte that looks like a segment type
            (FOUR, "0202 fa56ea01"),    // count larger than the data
            (FOUR, "0200"),             // empty segment
            (FOUR, "0001 fa56ea01"),    // segment type 0
            (FOUR, "0501 fa56ea01"),    // segment type 5
            (FOUR, "0201 fde9"),        // 2-byte ASNs on a 4-byte session
            (TWO, "0201 fa56ea01"),     // 4-byte ASNs on a 2-byte session
            (FOUR, "02"),               // segment header cut short
        ] {
            assert_notification(&with_path(value), ctx, 3, 11, &[]);
        }
    }

    // ----- accepted inputs ---------------------------------------------------------------

    #[test]
    fn unmodeled_attributes_are_accepted_and_dropped() {
        let attrs = [
            base_attrs(),
            attribute(0x80, 4, &[0, 0, 0, 10]),  // MED
            attribute(0x40, 5, &[0, 0, 0, 100]), // LOCAL_PREF
            attribute(0x40, 6, &[]),             // ATOMIC_AGGREGATE
            attribute(0xc0, 7, &[0, 0, 0xfd, 0xe9, 192, 0, 2, 1]), // AGGREGATOR
            attribute(0xc0, 8, &[0xfd, 0xe9, 0, 100]), // COMMUNITIES
            attribute(0xc0, 16, &[0; 8]),        // EXT_COMMUNITIES
            attribute(0xc0, 17, &[0xff]),        // broken AS4_PATH
            attribute(0xc0, 32, &[0; 12]),       // LARGE_COMMUNITY
            attribute(0xc0, 200, &[1, 2, 3]),    // unknown optional
            attribute(
                0x80,
                14,
                &from_hex("0002 01 10 20010db8000000000000000000000001 00 402001"),
            ), // IPv6
            attribute(0x80, 15, &from_hex("0002 01 402001")), // IPv6 withdrawn
        ]
        .concat();
        let u = decode_update_ok(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR);
        assert_eq!(u.nlri, vec![net("192.0.2.10/32")]);
        assert!(u.withdrawn.is_empty());
        assert_eq!(u.attributes.unwrap().as_path, vec![ASN4]);
    }

    #[test]
    fn ipv4_unicast_in_mp_attributes_is_decoded() {
        let attrs = [
            origin_attr(2),
            as_path_attr(2, &[ASN4]),
            attribute(
                0x80,
                14,
                &from_hex("0001 01 04 c6120101 00 20c000020a 18c61263"),
            ),
            attribute(0x80, 15, &from_hex("0001 01 20c000020b")),
        ]
        .concat();
        let u = decode_update_ok(&update_frame_raw(&[], &attrs, &[]), FOUR);
        assert_eq!(
            u,
            Update {
                withdrawn: vec![net("192.0.2.11/32")],
                attributes: Some(PathAttributes {
                    origin: Origin::Incomplete,
                    as_path: vec![ASN4],
                    next_hop: Ipv4Addr::new(198, 18, 1, 1),
                }),
                nlri: vec![net("192.0.2.10/32"), net("198.18.99.0/24")],
            }
        );
    }

    #[test]
    fn as_path_sets_and_confederations_flatten() {
        // SEQUENCE 65001, CONFED_SEQUENCE 64512, SET {65003, 65002}, SEQUENCE 65004.
        let value = from_hex("0201 0000fde9 0301 0000fc00 0102 0000fdeb 0000fdea 0201 0000fdec");
        let attrs = [
            origin_attr(1),
            attribute(0x50, 2, &value),
            next_hop_attr([192, 0, 2, 1]),
        ]
        .concat();
        let u = decode_update_ok(&update_frame_raw(&[], &attrs, NLRI_ONE), FOUR);
        let a = u.attributes.unwrap();
        assert_eq!(a.origin, Origin::Egp);
        assert_eq!(a.as_path, vec![65001, 65002, 65003, 65004]);
    }

    #[test]
    fn other_message_types_never_reach_zettabgp_limits() {
        // The shortest legal bodies decode.
        assert_eq!(
            decode(&raw_frame(3, &[6, 0]), FOUR),
            Ok(Message::Notification(Notification::new(6, 0, Vec::new())))
        );
        assert_eq!(
            decode(&raw_frame(2, &[0, 0, 0, 0]), FOUR),
            Ok(Message::Update(Update::default()))
        );
    }

    // ----- property tests ----------------------------------------------------------------

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

    fn seeds() -> Vec<(Vec<u8>, CodecContext)> {
        let mut both = announce(&["192.0.2.10/32", "198.18.0.0/16"], vec![65001, 65002]);
        both.withdrawn = vec![net("192.0.2.11/32")];
        let rich = [
            origin_attr(0),
            attribute(
                0x50,
                2,
                &from_hex("0201 0000fde9 0301 0000fc00 0102 0000fdeb 0000fdea"),
            ),
            next_hop_attr([192, 0, 2, 1]),
            attribute(0x80, 4, &[0, 0, 0, 10]),
            attribute(0xc0, 7, &[0, 0, 0xfd, 0xe9, 192, 0, 2, 1]),
            attribute(0xc0, 8, &[0xfd, 0xe9, 0, 100, 0xfd, 0xe9, 0, 101]),
            attribute(0xc0, 32, &[1; 12]),
            attribute(
                0x80,
                14,
                &from_hex("0001 01 04 c6120101 00 20c000020a 18c61263"),
            ),
            attribute(0x80, 15, &from_hex("0001 01 20c000020b")),
            attribute(
                0x80,
                14,
                &from_hex("0002 01 10 20010db8000000000000000000000001 00 402001"),
            ),
        ]
        .concat();
        vec![
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
            (encode(&Message::Update(both), TWO).unwrap(), TWO),
            (update_frame_raw(&[24, 192, 0, 2], &rich, NLRI_ONE), FOUR),
        ]
    }

    /// A prefix list: mostly well-formed entries, sometimes a length over 32 (up to 255) or
    /// missing or extra address bytes.
    fn prefix_list() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            (
                prop_oneof![8 => 0u8..=32, 1 => any::<u8>()],
                proptest::collection::vec(any::<u8>(), 0..=5),
                prop::bool::weighted(0.9),
            ),
            0..4,
        )
        .prop_map(|entries| {
            let mut out = Vec::new();
            for (len, bytes, exact) in entries {
                out.push(len);
                if exact {
                    let n = usize::from(len).div_ceil(8).min(4);
                    out.extend((0..n).map(|i| bytes.get(i).copied().unwrap_or(0)));
                } else {
                    out.extend_from_slice(&bytes);
                }
            }
            out
        })
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

    /// MP_REACH/MP_UNREACH-shaped values for IPv4 or IPv6 with random next-hop lengths.
    fn mp_value() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(vec![1u16, 2]),
            prop_oneof![3 => Just(1u8), 1 => any::<u8>()],
            prop_oneof![3 => Just(4u8), 1 => 0u8..=40],
            prefix_list(),
            any::<bool>(),
        )
            .prop_map(|(afi, safi, nh_len, nlri, reach)| {
                let mut v = afi.to_be_bytes().to_vec();
                v.push(safi);
                if reach {
                    v.push(nh_len);
                    v.extend(std::iter::repeat_n(198u8, usize::from(nh_len)));
                    v.push(0);
                }
                v.extend_from_slice(&nlri);
                v
            })
    }

    /// One path attribute: usually a recognized type code with its proper flags, the value
    /// of a plausible length; sometimes anything.
    fn attribute_bytes() -> impl Strategy<Value = Vec<u8>> {
        let type_code = prop_oneof![
            6 => prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16, 17, 18, 32]),
            1 => any::<u8>(),
        ];
        let value = prop_oneof![
            prop::sample::select(vec![0usize, 1, 4, 6, 8, 12, 24])
                .prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
            proptest::collection::vec(any::<u8>(), 0..=13),
            as_path_value(),
            mp_value(),
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

    /// Whatever decodes must encode and decode back to the same routes.
    fn check_reencodes(msg: &Message, ctx: CodecContext) {
        let Message::Update(u) = msg else { return };
        let frames = encode_update(u, ctx).unwrap();
        let (mut withdrawn, mut nlri) = (Vec::new(), Vec::new());
        for f in &frames {
            let d = decode_update_ok(f, ctx);
            if !d.nlri.is_empty() {
                assert_eq!(d.attributes, u.attributes);
            }
            withdrawn.extend(d.withdrawn);
            nlri.extend(d.nlri);
        }
        assert_eq!((&withdrawn, &nlri), (&u.withdrawn, &u.nlri));
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
            four in any::<bool>(),
        ) {
            let ctx = CodecContext { four_octet_asn: four };
            let result = decode(&raw_frame(msg_type, &body), ctx);
            prop_assert_eq!(zettabgp_panics(), 0, "zettabgp panicked: validation missed it");
            if let Ok(msg) = &result {
                check_reencodes(msg, ctx);
            }
        }

        #[test]
        fn structured_updates_never_panic(
            withdrawn in prefix_list(),
            attrs in proptest::collection::vec(attribute_bytes(), 0..6),
            nlri in prefix_list(),
            base in any::<bool>(),
            four in any::<bool>(),
        ) {
            let ctx = CodecContext { four_octet_asn: four };
            let mut attrs = attrs.concat();
            if base {
                attrs.extend(base_attrs());
            }
            let frame = update_frame_raw(&withdrawn, &attrs, &nlri);
            let result = decode(&frame, ctx);
            prop_assert_eq!(zettabgp_panics(), 0, "zettabgp panicked: validation missed it");
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
        ) {
            let seeds = seeds();
            let (mut frame, mut ctx) = seed.get(&seeds).clone();
            if flip_ctx {
                ctx.four_octet_asn = !ctx.four_octet_asn;
            }
            for m in &mutations {
                apply(&mut frame, m);
            }
            if fix_length && frame.len() >= HEADER_LEN && frame.len() <= 0xffff {
                let len = (frame.len() as u16).to_be_bytes();
                frame[16..18].copy_from_slice(&len);
            }
            let result = decode(&frame, ctx);
            prop_assert_eq!(zettabgp_panics(), 0, "zettabgp panicked: validation missed it");
            if let Ok(msg) = &result {
                check_reencodes(msg, ctx);
            }
        }
    }
}
