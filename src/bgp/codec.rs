//! BGP wire codec for IPv4 and IPv6 unicast: bytes <-> [`Message`].
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
//! - **UPDATE** decoding walks the whole message first (length fields, attribute headers and
//!   flags, per-type values, AS_PATH segments, MP attributes, prefixes) and decides the RFC 7606
//!   treatment of every error (table below): zettabgp panics on ~0.4 % of malformed UPDATEs and
//!   loops forever on an AS_PATH segment that leaves a trailing byte (defect 2). zettabgp then
//!   decodes a sanitized copy holding only what passed the walk and what it reads correctly
//!   (withdrawn routes, NLRI, ORIGIN, AS_PATH without confederation segments, NEXT_HOP, MED,
//!   LOCAL_PREF, COMMUNITIES, LARGE_COMMUNITY, and IPv4/IPv6 unicast MP_REACH_NLRI with the
//!   global next hop only and MP_UNREACH_NLRI) into a fresh `BgpUpdateMessage` under
//!   `catch_unwind` (a caught panic is a 3/1, an error log and a count in [`zettabgp_panics`]).
//!   Every value it returns must equal the walk's, or the UPDATE is refused with 3/1 (counted in
//!   [`zettabgp_disagreements`]): we act only on bytes two independent readers agree on. The
//!   walk's values are the result, because zettabgp sorts and deduplicates AS_SETs and community
//!   lists and drops the link-local next hop (defect 6).
//! - **UPDATE** encoding: zettabgp writes withdrawn routes, NLRI, ORIGIN, NEXT_HOP, MED and
//!   LOCAL_PREF. We hand it ready-made values for AS_PATH (it writes AS_SET for sequences,
//!   defect 1), COMMUNITIES (it sorts and deduplicates them), LARGE_COMMUNITY (it sets the
//!   Partial bit, defect 9) and MP_REACH_NLRI/MP_UNREACH_NLRI (it cannot write a link-local next
//!   hop, defect 6). [`encode_update`] follows RFC 7606 §5.1: every UPDATE carries exactly one of
//!   IPv4 withdrawals, MP_UNREACH_NLRI, IPv4 NLRI or MP_REACH_NLRI (in that order, so a prefix
//!   in both lists ends up announced), the MP attribute comes first and the others follow in
//!   type-code order, and no frame exceeds 4096 bytes (zettabgp has no limit and panics on a
//!   short buffer, defect 3). IPv4 always travels in the classic fields, IPv6 in MP attributes
//!   (next hop of 16 bytes, or 32 with the link-local address, RFC 2545). We never set the
//!   Partial bit.
//! - **NOTIFICATION** is ours both ways (zettabgp truncates data to 2 bytes, defect 4), and so
//!   are KEEPALIVE and ROUTE-REFRESH (a header, and AFI/reserved/SAFI).
//!
//! MP_REACH_NLRI/MP_UNREACH_NLRI are read for IPv4 unicast (4-byte next hop: we do not
//! negotiate RFC 8950 extended next hop) and IPv6 unicast (16 or 32 bytes) whatever the session
//! negotiated: dropping routes of a family the session did not negotiate is the FSM's job, it
//! knows the capabilities. MP attributes of other AFI/SAFIs are skipped once their header and
//! next hop fit: nothing is installed from them, and a reset would only take our announcement
//! down. An UPDATE's NEXT_HOP is ignored unless it has classic NLRI (RFC 4760 §3).
//!
//! # UPDATE errors (RFC 7606)
//!
//! | Case | Treatment | NOTIFICATION when reset |
//! |---|---|---|
//! | Withdrawn Routes Length or Total Attribute Length past the end of the message (§3.b) | session reset | 3/1 |
//! | Withdrawn routes or NLRI unparseable: prefix length over 32, bytes missing (§3.i, §3.j, §5.3) | session reset | 3/10 |
//! | MP_REACH_NLRI or MP_UNREACH_NLRI twice (§3.g), or running past the Total Attribute Length (§3.j) | session reset | 3/1 |
//! | MP_REACH_NLRI/MP_UNREACH_NLRI malformed: shorter than 5/3 bytes, next hop not fitting, next hop length not 4 (IPv4) or 16/32 (IPv6), NLRI unparseable (§7.11, §5.3; session reset rather than AFI/SAFI disable) | session reset | 3/9, the attribute |
//! | MP_REACH_NLRI/MP_UNREACH_NLRI with wrong Optional/Transitive bits (RFC 4760 §7 governs, §3.c) | session reset | 3/4, the attribute |
//! | Unrecognized well-known attribute (RFC 4271 §6.3, not revised) | session reset | 3/2, the attribute |
//! | An attribute header or value running past the Total Attribute Length (§4; NLRI found through the Total Attribute Length) | treat-as-withdraw | 3/1 |
//! | Wrong Optional/Transitive bits on ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF (iBGP), COMMUNITIES, LARGE_COMMUNITY (§3.c) | treat-as-withdraw | 3/4, the attribute |
//! | ORIGIN length not 1, or value over 2 (§7.1) | treat-as-withdraw | 3/5 or 3/6, the attribute |
//! | AS_PATH malformed: segment type not 1..=4, segment length 0, overrun or trailing byte for the session's ASN width, AS 0 (§7.2, RFC 7607) | treat-as-withdraw | 3/11 |
//! | NEXT_HOP length not 4, with classic NLRI (§7.3) | treat-as-withdraw | 3/5, the attribute |
//! | MULTI_EXIT_DISC length not 4 (§7.4) | treat-as-withdraw | 3/5, the attribute |
//! | LOCAL_PREF length not 4 on iBGP (§7.5) | treat-as-withdraw | 3/5, the attribute |
//! | COMMUNITIES length not a non-zero multiple of 4 (§7.8) | treat-as-withdraw | 3/5, the attribute |
//! | LARGE_COMMUNITY length not a non-zero multiple of 12 (RFC 8092 §6) | treat-as-withdraw | 3/5, the attribute |
//! | ORIGIN or AS_PATH missing with any NLRI, NEXT_HOP missing with classic NLRI (§3.d, RFC 4760 §3) | treat-as-withdraw | 3/3, the type code |
//! | Any treat-as-withdraw case in an UPDATE without reachable NLRI, i.e. no classic NLRI and no NLRI in MP_REACH_NLRI (§5.2) | session reset | that case's |
//! | LOCAL_PREF from an eBGP peer, whatever it holds (§7.5) | attribute discard | |
//! | ATOMIC_AGGREGATE length not 0, or wrong Optional/Transitive bits (§7.6, §3.f) | attribute discard | |
//! | AGGREGATOR length not 6 (2-octet ASN session) or 8 (4-octet), AS 0, or wrong bits (§7.7, §3.f, RFC 7607) | attribute discard | |
//! | AS4_PATH/AS4_AGGREGATOR on a 4-octet ASN session, or with wrong bits (RFC 6793 §3, §6) | attribute discard | |
//! | Any other attribute appearing again: the later copies (§3.g) | attribute discard | |
//! | Unrecognized optional attribute (RFC 4271 §5) | kept in `PathAttributes::other`, never sent | |
//! | Repeated large community (RFC 8092 §5) | removed silently | |
//!
//! With several errors the strongest treatment wins (§3.h). Treat-as-withdraw moves every
//! announced prefix (classic and MP_REACH_NLRI) into `Update::withdrawn`, next to the classic and
//! MP_UNREACH_NLRI withdrawals, and leaves `attributes` empty; every case short of a reset adds
//! a reason to `Update::errors`. The Partial and Extended Length bits are not checked on receipt
//! (§3.c judges only Optional and Transitive).
//!
//! Not done here: merging AS4_PATH on 2-octet ASN sessions (it is kept in `other`, RFC 6793 §6
//! allows ignoring it), and checks needing session knowledge (the peer's AS first in AS_PATH,
//! RFC 7606 §7.2 treat-as-withdraw; negotiated families; hold time; usable next hops): those
//! belong to the FSM.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use zettabgp::prelude::{
    BgpASitem, BgpAddr, BgpAddrV4, BgpAddrs, BgpAttrItem, BgpAttrOrigin, BgpAttrUnknown,
    BgpCapability, BgpLocalpref, BgpMED, BgpMessage, BgpNextHop, BgpOpenMessage, BgpOrigin,
    BgpSessionParams, BgpTransportMode, BgpUpdateMessage,
};

use super::message::{
    code, subcode, AsPath, AsPathSegment, Capabilities, Community, Family, LargeCommunity, Message,
    NextHop, Notification, Open, Origin, PathAttributes, RawAttribute, Update, AFI_IPV6,
    SAFI_UNICAST,
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
    /// The peer is in our AS: LOCAL_PREF is read (and a malformed one withdraws the routes)
    /// instead of discarded (RFC 7606 §7.5).
    pub ibgp: bool,
    /// The peer sends RFC 7911 path identifiers in this family (negotiated ADD-PATH).
    pub add_path_ipv4: bool,
    pub add_path_ipv6: bool,
}

/// Errors encoding a message we want to send (never caused by the peer).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message would be {len} bytes, over the BGP maximum of {MAX_MESSAGE_LEN}")]
    TooLong { len: usize },
    #[error("the UPDATE takes {frames} messages (RFC 7606 §5.1 allows one kind of route per UPDATE, and each holds 4096 bytes): use encode_update")]
    SeveralFrames { frames: usize },
    #[error("ASN {0} needs 4 octets but the session uses 2-octet ASNs")]
    AsnNeedsFourOctets(u32),
    #[error("UPDATE announces prefixes without path attributes")]
    MissingAttributes,
    #[error("UPDATE announces {0} prefixes without a next hop for them")]
    MissingNextHop(Family),
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
static ZETTABGP_DISAGREEMENTS: AtomicU64 = AtomicU64::new(0);

/// How many zettabgp panics `decode` caught since start. Validation is meant to keep this at
/// zero; anything else is a bug in the validation worth a report.
pub fn zettabgp_panics() -> u64 {
    ZETTABGP_PANICS.load(Ordering::Relaxed)
}

/// How many validated UPDATEs zettabgp rejected or read differently from the validation since
/// start (each refused with 3/1). Also meant to stay at zero.
pub fn zettabgp_disagreements() -> u64 {
    ZETTABGP_DISAGREEMENTS.load(Ordering::Relaxed)
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

fn attr_name(type_code: u8) -> Cow<'static, str> {
    Cow::Borrowed(match type_code {
        attr::ORIGIN => "ORIGIN",
        attr::AS_PATH => "AS_PATH",
        attr::NEXT_HOP => "NEXT_HOP",
        attr::MED => "MULTI_EXIT_DISC",
        attr::LOCAL_PREF => "LOCAL_PREF",
        attr::ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        attr::AGGREGATOR => "AGGREGATOR",
        attr::COMMUNITIES => "COMMUNITIES",
        attr::MP_REACH_NLRI => "MP_REACH_NLRI",
        attr::MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        attr::AS4_PATH => "AS4_PATH",
        attr::AS4_AGGREGATOR => "AS4_AGGREGATOR",
        attr::LARGE_COMMUNITY => "LARGE_COMMUNITY",
        other => return Cow::Owned(format!("attribute {other}")),
    })
}

/// Walks a prefix list (withdrawn routes, NLRI, MP NLRI) of `family`. `None` if a length is
/// over 32/128 or its bytes are missing. Host bits past the length are cleared (RFC 4271 §4.3:
/// they are irrelevant).
fn parse_prefixes(mut buf: &[u8], family: Family) -> Option<Vec<IpNetwork>> {
    let max = match family {
        Family::Ipv4Unicast => 32,
        Family::Ipv6Unicast => 128,
    };
    let mut out = Vec::new();
    while let Some((&len, rest)) = buf.split_first() {
        if len > max {
            return None;
        }
        let nbytes = usize::from(len).div_ceil(8);
        let (bytes, rest) = rest.split_at_checked(nbytes)?;
        let prefix = match family {
            Family::Ipv4Unicast => {
                let mut octets = [0u8; 4];
                octets.get_mut(..nbytes)?.copy_from_slice(bytes);
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                let addr = Ipv4Addr::from(u32::from_be_bytes(octets) & mask);
                IpNetwork::V4(Ipv4Network::new(addr, len).ok()?)
            }
            Family::Ipv6Unicast => {
                let mut octets = [0u8; 16];
                octets.get_mut(..nbytes)?.copy_from_slice(bytes);
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                let addr = Ipv6Addr::from(u128::from_be_bytes(octets) & mask);
                IpNetwork::V6(Ipv6Network::new(addr, len).ok()?)
            }
        };
        out.push(prefix);
        buf = rest;
    }
    Some(out)
}

/// MP_REACH_NLRI as read by the walk.
struct MpReach<'a> {
    /// `None` for an AFI/SAFI we do not handle: skipped.
    family: Option<Family>,
    afi: u16,
    safi: u8,
    next_hop: NextHop,
    prefixes: Vec<IpNetwork>,
    next_hop_raw: &'a [u8],
    nlri_raw: &'a [u8],
}

/// MP_UNREACH_NLRI as read by the walk.
struct MpUnreach<'a> {
    family: Option<Family>,
    prefixes: Vec<IpNetwork>,
    raw: &'a [u8],
}

/// One RFC 7606 finding: the reason `Update::errors` reports and, for treat-as-withdraw, the
/// RFC 4271 NOTIFICATION §5.2 escalates to when the UPDATE has no reachable NLRI.
struct Finding {
    reason: String,
    withdraw: Option<Notification>,
}

/// What the attribute walk keeps: the values of the attributes that passed, what zettabgp gets
/// to read again, and the findings.
struct Walk<'a> {
    /// Type codes met, valid or not (duplicates, missing attributes).
    seen: [bool; 256],
    origin: Option<Origin>,
    as_path: Option<AsPath>,
    next_hop: Option<Ipv4Addr>,
    med: Option<u32>,
    local_pref: Option<u32>,
    communities: Option<Vec<Community>>,
    large_communities: Option<Vec<LargeCommunity>>,
    atomic_aggregate: bool,
    aggregator: Option<(u32, Ipv4Addr)>,
    other: Vec<RawAttribute>,
    mp_reach: Option<MpReach<'a>>,
    mp_unreach: Option<MpUnreach<'a>>,
    /// (flags, type code, value) of the ORIGIN..LARGE_COMMUNITY attributes that passed, for
    /// zettabgp's sanitized copy (AS_PATH without confederation segments).
    for_zettabgp: Vec<(u8, u8, Cow<'a, [u8]>)>,
    findings: Vec<Finding>,
}

impl<'a> Walk<'a> {
    fn new() -> Self {
        Walk {
            seen: [false; 256],
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
            for_zettabgp: Vec::new(),
            findings: Vec::new(),
        }
    }

    fn withdraw(&mut self, reason: String, notification: Notification) {
        self.findings.push(Finding {
            reason: format!("treat-as-withdraw: {reason}"),
            withdraw: Some(notification),
        });
    }

    fn discard(&mut self, reason: String) {
        self.findings.push(Finding {
            reason: format!("attribute discard: {reason}"),
            withdraw: None,
        });
    }

    fn keep(&mut self, flags: u8, type_code: u8, value: impl Into<Cow<'a, [u8]>>) {
        self.for_zettabgp.push((flags, type_code, value.into()));
    }
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

    // RFC 7606 §3.i/§5.3: treat-as-withdraw needs every prefix, so unparseable ones reset.
    let withdrawn =
        parse_prefixes(withdrawn_raw, Family::Ipv4Unicast).ok_or_else(invalid_network_field)?;
    let nlri = parse_prefixes(nlri_raw, Family::Ipv4Unicast).ok_or_else(invalid_network_field)?;
    let mut walk = walk_attributes(attrs_raw, !nlri.is_empty(), ctx)?;

    let mp_reachable = walk
        .mp_reach
        .as_ref()
        .is_some_and(|m| !m.nlri_raw.is_empty());
    if !nlri.is_empty() || mp_reachable {
        // RFC 7606 §3.d; NEXT_HOP only goes with classic NLRI (RFC 4760 §3).
        for (type_code, needed) in [
            (attr::ORIGIN, true),
            (attr::AS_PATH, true),
            (attr::NEXT_HOP, !nlri.is_empty()),
        ] {
            if needed && !walk.seen.get(usize::from(type_code)).is_some_and(|&s| s) {
                walk.withdraw(
                    format!("{} missing (RFC 7606 §3.d)", attr_name(type_code)),
                    update_error(subcode::MISSING_WELL_KNOWN_ATTRIBUTE, &[type_code]),
                );
            }
        }
    } else if let Some(n) = walk.findings.iter().find_map(|f| f.withdraw.as_ref()) {
        // RFC 7606 §5.2: an UPDATE with attributes but no reachable NLRI has nothing to
        // treat as withdrawn, so its errors fall back to a session reset.
        return Err(n.clone());
    }
    // A next hop that is well-formed but unusable (0/8, 127/8, multicast, our own address) is
    // a semantic error: RFC 4271 §6.3 says to ignore the route, not to reset the session, so
    // that check belongs to route import, not to the codec.

    let sanitized = sanitized_copy(withdrawn_raw, &walk, nlri_raw);
    let zettabgp = zettabgp_decode_update(&sanitized, ctx)?;
    let ours = Reading::from_walk(&withdrawn, &nlri, &walk);
    // A disagreement is a bug in one of us, and we would rather reset the session than
    // announce or withdraw the wrong thing.
    if zettabgp != ours {
        ZETTABGP_DISAGREEMENTS.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            ?ours,
            ?zettabgp,
            "zettabgp and the validator disagree on an UPDATE"
        );
        return Err(malformed_attribute_list());
    }

    let classic_nlri = !nlri.is_empty();
    let mut update = Update {
        withdrawn,
        attributes: None,
        nlri,
        withdrawn_path_ids: Vec::new(),
        nlri_path_ids: Vec::new(),
        end_of_rib: None,
        errors: Vec::new(),
    };
    if let Some(mp) = walk.mp_unreach.take() {
        update.withdrawn.extend(mp.prefixes);
    }
    let mut mp_next_hop = NextHop::default();
    if let Some(mp) = walk.mp_reach.take() {
        if !mp.prefixes.is_empty() {
            mp_next_hop = mp.next_hop;
            update.nlri.extend(mp.prefixes);
        }
    }
    let treat_as_withdraw = walk.findings.iter().any(|f| f.withdraw.is_some());
    update.errors = walk.findings.into_iter().map(|f| f.reason).collect();
    if treat_as_withdraw {
        update.withdrawn.append(&mut update.nlri);
    } else if !update.nlri.is_empty() {
        let (Some(origin), Some(as_path)) = (walk.origin, walk.as_path) else {
            tracing::error!("ORIGIN or AS_PATH passed validation but was not kept");
            return Err(malformed_attribute_list());
        };
        // With both kinds of IPv4 NLRI, the classic NEXT_HOP wins: `Update` has one set.
        let ipv4 = if classic_nlri {
            walk.next_hop
        } else {
            mp_next_hop.ipv4
        };
        update.attributes = Some(PathAttributes {
            origin,
            as_path,
            next_hop: NextHop {
                ipv4,
                ..mp_next_hop
            },
            med: walk.med,
            local_pref: walk.local_pref,
            communities: walk.communities.unwrap_or_default(),
            large_communities: walk.large_communities.unwrap_or_default(),
            atomic_aggregate: walk.atomic_aggregate,
            aggregator: walk.aggregator,
            other: walk.other,
        });
    }
    Ok(update)
}

/// Walks the path attributes, applying RFC 7606 (module docs): `Err` is a session reset,
/// treat-as-withdraw and attribute discard are findings.
fn walk_attributes(
    attrs_raw: &[u8],
    classic_nlri: bool,
    ctx: CodecContext,
) -> Result<Walk<'_>, Notification> {
    let mut walk = Walk::new();
    let mut a = Reader::new(attrs_raw);
    while !a.is_empty() {
        let start = attrs_raw.len() - a.remaining();
        let (Some(flags), Some(type_code)) = (a.u8(), a.u8()) else {
            walk.withdraw(
                "attribute header cut short by the Total Attribute Length (RFC 7606 §4)".into(),
                malformed_attribute_list(),
            );
            break;
        };
        let len = if flags & FLAG_EXTENDED_LENGTH != 0 {
            a.u16()
        } else {
            a.u8().map(u16::from)
        };
        let Some(value) = len.and_then(|len| a.take(usize::from(len))) else {
            if type_code == attr::MP_REACH_NLRI || type_code == attr::MP_UNREACH_NLRI {
                // RFC 7606 §3.j: treat-as-withdraw needs the prefixes this one holds.
                return Err(malformed_attribute_list());
            }
            walk.withdraw(
                format!(
                    "{} runs past the Total Attribute Length (RFC 7606 §4)",
                    attr_name(type_code)
                ),
                malformed_attribute_list(),
            );
            break;
        };
        let whole = attrs_raw
            .get(start..attrs_raw.len() - a.remaining())
            .unwrap_or_default();
        let Some(seen) = walk.seen.get_mut(usize::from(type_code)) else {
            continue; // unreachable: 256 entries
        };
        if std::mem::replace(seen, true) {
            if type_code == attr::MP_REACH_NLRI || type_code == attr::MP_UNREACH_NLRI {
                return Err(malformed_attribute_list());
            }
            walk.discard(format!(
                "{} repeated, later copy dropped (RFC 7606 §3.g)",
                attr_name(type_code)
            ));
            continue;
        }
        check_attribute(flags, type_code, value, whole, classic_nlri, ctx, &mut walk)?;
    }
    Ok(walk)
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
        attr::AGGREGATOR
        | attr::COMMUNITIES
        | attr::AS4_PATH
        | attr::AS4_AGGREGATOR
        | attr::LARGE_COMMUNITY => (true, true),
        _ => return None,
    })
}

/// Reads a value of 4 bytes.
fn u32_value(value: &[u8]) -> Option<u32> {
    value.try_into().ok().map(u32::from_be_bytes)
}

fn check_attribute<'a>(
    flags: u8,
    type_code: u8,
    value: &'a [u8],
    whole: &[u8],
    classic_nlri: bool,
    ctx: CodecContext,
    walk: &mut Walk<'a>,
) -> Result<(), Notification> {
    let name = attr_name(type_code);
    let len = value.len();
    let length_error = || update_error(subcode::ATTRIBUTE_LENGTH_ERROR, whole);
    let Some((optional, transitive)) = expected_flags(type_code) else {
        if flags & FLAG_OPTIONAL == 0 {
            return Err(update_error(
                subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                whole,
            ));
        }
        walk.other.push(RawAttribute {
            flags,
            type_code,
            value: value.to_vec(),
        });
        return Ok(());
    };
    // Attributes we ignore whatever they hold.
    if type_code == attr::NEXT_HOP && !classic_nlri {
        return Ok(()); // RFC 4760 §3: it SHOULD be ignored.
    }
    if type_code == attr::LOCAL_PREF && !ctx.ibgp {
        walk.discard(format!("{name} from an external peer (RFC 7606 §7.5)"));
        return Ok(());
    }
    if (type_code == attr::AS4_PATH || type_code == attr::AS4_AGGREGATOR) && ctx.four_octet_asn {
        walk.discard(format!("{name} on a 4-octet ASN session (RFC 6793 §3)"));
        return Ok(());
    }
    // RFC 7606 §3.c: only the Optional and Transitive bits count.
    if (flags & FLAG_OPTIONAL != 0) != optional || (flags & FLAG_TRANSITIVE != 0) != transitive {
        let reason = format!("{name} with flags 0x{flags:02x}");
        match type_code {
            attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI => {
                return Err(update_error(subcode::ATTRIBUTE_FLAGS_ERROR, whole))
            }
            attr::ATOMIC_AGGREGATE | attr::AGGREGATOR => {
                walk.discard(format!("{reason} (RFC 7606 §3.f)"))
            }
            attr::AS4_PATH | attr::AS4_AGGREGATOR => {
                walk.discard(format!("{reason} (RFC 6793 §6)"))
            }
            _ => walk.withdraw(
                format!("{reason} (RFC 7606 §3.c)"),
                update_error(subcode::ATTRIBUTE_FLAGS_ERROR, whole),
            ),
        }
        return Ok(());
    }
    let expected_len =
        |want: &str, section: &str| format!("{name} of {len} bytes, {want} ({section})");
    match type_code {
        attr::ORIGIN => match value {
            [o @ 0..=2] => {
                walk.origin = Some(match o {
                    0 => Origin::Igp,
                    1 => Origin::Egp,
                    _ => Origin::Incomplete,
                });
                walk.keep(flags, type_code, value);
            }
            [o] => walk.withdraw(
                format!("{name} value {o} (RFC 7606 §7.1)"),
                update_error(subcode::INVALID_ORIGIN, whole),
            ),
            _ => walk.withdraw(expected_len("not 1", "RFC 7606 §7.1"), length_error()),
        },
        attr::AS_PATH => match parse_as_path(value, ctx) {
            Ok((path, sanitized)) => {
                walk.as_path = Some(path);
                walk.keep(flags, type_code, sanitized);
            }
            Err(why) => walk.withdraw(
                format!("{name} malformed: {why} (RFC 7606 §7.2)"),
                update_error(subcode::MALFORMED_AS_PATH, &[]),
            ),
        },
        attr::NEXT_HOP | attr::MED | attr::LOCAL_PREF => match u32_value(value) {
            Some(v) => {
                match type_code {
                    attr::NEXT_HOP => walk.next_hop = Some(Ipv4Addr::from(v)),
                    attr::MED => walk.med = Some(v),
                    _ => walk.local_pref = Some(v),
                }
                walk.keep(flags, type_code, value);
            }
            None => {
                let section = match type_code {
                    attr::NEXT_HOP => "RFC 7606 §7.3",
                    attr::MED => "RFC 7606 §7.4",
                    _ => "RFC 7606 §7.5",
                };
                walk.withdraw(expected_len("not 4", section), length_error());
            }
        },
        attr::ATOMIC_AGGREGATE => {
            if len == 0 {
                walk.atomic_aggregate = true;
            } else {
                walk.discard(expected_len("not 0", "RFC 7606 §7.6"));
            }
        }
        attr::AGGREGATOR => {
            let (asn_len, want) = if ctx.four_octet_asn {
                (4, "not 8")
            } else {
                (2, "not 6")
            };
            let parsed = value.split_at_checked(asn_len).and_then(|(asn, id)| {
                let id: [u8; 4] = id.try_into().ok()?;
                let asn = asn.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b));
                Some((asn, Ipv4Addr::from(id)))
            });
            match parsed {
                Some((0, _)) => walk.discard(format!("{name} with AS 0 (RFC 7607)")),
                Some(aggregator) => walk.aggregator = Some(aggregator),
                None => walk.discard(expected_len(want, "RFC 7606 §7.7")),
            }
        }
        attr::COMMUNITIES => {
            if len == 0 || len % 4 != 0 {
                walk.withdraw(
                    expected_len("not a non-zero multiple of 4", "RFC 7606 §7.8"),
                    length_error(),
                );
            } else {
                let list = value
                    .chunks_exact(4)
                    .filter_map(u32_value)
                    .map(Community)
                    .collect();
                walk.communities = Some(list);
                walk.keep(flags, type_code, value);
            }
        }
        attr::LARGE_COMMUNITY => {
            if len == 0 || len % 12 != 0 {
                walk.withdraw(
                    expected_len("not a non-zero multiple of 12", "RFC 8092 §6"),
                    length_error(),
                );
            } else {
                let mut list: Vec<LargeCommunity> = Vec::with_capacity(len / 12);
                for c in value.chunks_exact(12) {
                    let mut r = Reader::new(c);
                    let (Some(global), Some(local1), Some(local2)) = (r.u32(), r.u32(), r.u32())
                    else {
                        continue;
                    };
                    let c = LargeCommunity {
                        global,
                        local1,
                        local2,
                    };
                    // RFC 8092 §5: duplicates MUST be removed silently.
                    if !list.contains(&c) {
                        list.push(c);
                    }
                }
                walk.large_communities = Some(list);
                walk.keep(flags, type_code, value);
            }
        }
        attr::MP_REACH_NLRI => walk.mp_reach = Some(parse_mp_reach(value, whole)?),
        attr::MP_UNREACH_NLRI => walk.mp_unreach = Some(parse_mp_unreach(value, whole)?),
        _ => walk.other.push(RawAttribute {
            flags,
            type_code,
            value: value.to_vec(),
        }), // AS4_PATH, AS4_AGGREGATOR on a 2-octet session: not merged.
    }
    Ok(())
}

/// AS_PATH for the session's ASN width (RFC 7606 §7.2, RFC 7607): the segments without
/// confederation ones (RFC 5065: they do not count outside the confederation), adjacent
/// sequences merged (a sequence over 255 ASNs takes several), and the same segments as bytes
/// for zettabgp (which rejects types 3 and 4); or why it is malformed. Checking that segments
/// consume the attribute exactly is what keeps zettabgp out of its endless loop.
fn parse_as_path(value: &[u8], ctx: CodecContext) -> Result<(AsPath, Vec<u8>), String> {
    let asn_len = if ctx.four_octet_asn { 4 } else { 2 };
    let mut segments: Vec<AsPathSegment> = Vec::new();
    let mut sanitized = Vec::with_capacity(value.len());
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
        let asns: Vec<u32> = raw
            .chunks_exact(asn_len)
            .map(|c| c.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)))
            .collect();
        if asns.contains(&0) {
            return Err("AS 0 (RFC 7607)".into());
        }
        match (segment_type, segments.last_mut()) {
            (SEGMENT_AS_SET, _) => segments.push(AsPathSegment::Set(asns)),
            (SEGMENT_AS_SEQUENCE, Some(AsPathSegment::Sequence(last))) => last.extend(asns),
            (SEGMENT_AS_SEQUENCE, _) => segments.push(AsPathSegment::Sequence(asns)),
            _ => continue, // confederation segment
        }
        sanitized.extend_from_slice(&[segment_type, count]);
        sanitized.extend_from_slice(raw);
    }
    Ok((AsPath(segments), sanitized))
}

/// MP_REACH_NLRI: AFI(2) SAFI(1) next-hop length(1) next hop, reserved(1), NLRI. Anything
/// malformed is a session reset (RFC 7606 §7.11, §5.3) with RFC 4760 §7's Optional Attribute
/// Error.
fn parse_mp_reach<'a>(value: &'a [u8], whole: &[u8]) -> Result<MpReach<'a>, Notification> {
    let error = || update_error(subcode::OPTIONAL_ATTRIBUTE_ERROR, whole);
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi), Some(nh_len)) = (r.u16(), r.u8(), r.u8()) else {
        return Err(error());
    };
    // The reserved byte (once the SNPA count) MUST be ignored (RFC 4760 §3).
    let (Some(next_hop_raw), Some(_reserved)) = (r.take(usize::from(nh_len)), r.u8()) else {
        return Err(error());
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
        _ => return Err(error()),
    };
    let prefixes = match family {
        Some(family) => parse_prefixes(nlri_raw, family).ok_or_else(error)?,
        None => Vec::new(),
    };
    Ok(MpReach {
        family,
        afi,
        safi,
        next_hop,
        prefixes,
        next_hop_raw,
        nlri_raw,
    })
}

/// MP_UNREACH_NLRI: AFI(2) SAFI(1) withdrawn routes.
fn parse_mp_unreach<'a>(value: &'a [u8], whole: &[u8]) -> Result<MpUnreach<'a>, Notification> {
    let error = || update_error(subcode::OPTIONAL_ATTRIBUTE_ERROR, whole);
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
        return Err(error());
    };
    let raw = r.rest();
    let family = Family::from_afi_safi(afi, safi);
    let prefixes = match family {
        Some(family) => parse_prefixes(raw, family).ok_or_else(error)?,
        None => Vec::new(),
    };
    Ok(MpUnreach {
        family,
        prefixes,
        raw,
    })
}

/// The UPDATE body zettabgp gets: the validated withdrawn routes and NLRI verbatim, and the
/// attributes that passed in extended-length form, with MP_REACH_NLRI's next hop cut to the
/// global address and its reserved byte zeroed (zettabgp reads it as an SNPA count).
fn sanitized_copy(withdrawn_raw: &[u8], walk: &Walk<'_>, nlri_raw: &[u8]) -> Vec<u8> {
    let mut attrs: Vec<(u8, u8, Cow<'_, [u8]>)> = walk.for_zettabgp.clone();
    if let Some(mp) = walk.mp_reach.as_ref().filter(|m| m.family.is_some()) {
        let next_hop = mp.next_hop_raw.get(..16).unwrap_or(mp.next_hop_raw);
        let mut value = mp.afi.to_be_bytes().to_vec();
        value.extend_from_slice(&[mp.safi, next_hop.len() as u8]);
        value.extend_from_slice(next_hop);
        value.push(0);
        value.extend_from_slice(mp.nlri_raw);
        attrs.push((FLAG_OPTIONAL, attr::MP_REACH_NLRI, value.into()));
    }
    if let Some(mp) = walk.mp_unreach.as_ref() {
        if let Some(family) = mp.family {
            let (afi, safi) = family.afi_safi();
            let mut value = afi.to_be_bytes().to_vec();
            value.push(safi);
            value.extend_from_slice(mp.raw);
            attrs.push((FLAG_OPTIONAL, attr::MP_UNREACH_NLRI, value.into()));
        }
    }
    let mut out = Vec::with_capacity(withdrawn_raw.len() + nlri_raw.len() + 128);
    out.extend_from_slice(&(withdrawn_raw.len() as u16).to_be_bytes());
    out.extend_from_slice(withdrawn_raw);
    let attrs_at = out.len();
    out.extend_from_slice(&[0, 0]);
    for (flags, type_code, value) in &attrs {
        out.extend_from_slice(&[flags | FLAG_EXTENDED_LENGTH, *type_code]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
    }
    let attrs_len = ((out.len() - attrs_at - 2) as u16).to_be_bytes();
    if let Some(field) = out.get_mut(attrs_at..attrs_at + 2) {
        field.copy_from_slice(&attrs_len);
    }
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

/// What the walk and zettabgp must agree on, in the form both can give: AS_SETs and community
/// lists as sorted sets (zettabgp keeps them in a BTreeSet), adjacent AS_SEQUENCEs merged, the
/// global IPv6 next hop only.
#[derive(Debug, Default, PartialEq)]
struct Reading {
    withdrawn: Vec<IpNetwork>,
    nlri: Vec<IpNetwork>,
    origin: Option<Origin>,
    as_path: Option<AsPath>,
    next_hop: Option<Ipv4Addr>,
    med: Option<u32>,
    local_pref: Option<u32>,
    communities: BTreeSet<u32>,
    large_communities: BTreeSet<LargeCommunity>,
    mp_reach: Option<(Family, Option<IpAddr>, Vec<IpNetwork>)>,
    mp_unreach: Option<(Family, Vec<IpNetwork>)>,
}

impl Reading {
    fn from_walk(withdrawn: &[IpNetwork], nlri: &[IpNetwork], walk: &Walk<'_>) -> Reading {
        Reading {
            withdrawn: withdrawn.to_vec(),
            nlri: nlri.to_vec(),
            origin: walk.origin,
            as_path: walk.as_path.as_ref().map(normalized),
            next_hop: walk.next_hop,
            med: walk.med,
            local_pref: walk.local_pref,
            communities: walk.communities.iter().flatten().map(|c| c.0).collect(),
            large_communities: walk.large_communities.iter().flatten().copied().collect(),
            mp_reach: walk.mp_reach.as_ref().and_then(|mp| {
                let next_hop = match mp.family? {
                    Family::Ipv4Unicast => mp.next_hop.ipv4.map(IpAddr::V4),
                    Family::Ipv6Unicast => mp.next_hop.ipv6.map(IpAddr::V6),
                };
                Some((mp.family?, next_hop, mp.prefixes.clone()))
            }),
            mp_unreach: walk
                .mp_unreach
                .as_ref()
                .and_then(|mp| Some((mp.family?, mp.prefixes.clone()))),
        }
    }
}

fn normalized(path: &AsPath) -> AsPath {
    let mut out: Vec<AsPathSegment> = Vec::with_capacity(path.0.len());
    for segment in &path.0 {
        match (segment, out.last_mut()) {
            (AsPathSegment::Sequence(v), Some(AsPathSegment::Sequence(last))) => last.extend(v),
            (AsPathSegment::Sequence(v), _) => out.push(AsPathSegment::Sequence(v.clone())),
            (AsPathSegment::Set(v), _) => {
                let set: BTreeSet<u32> = v.iter().copied().collect();
                out.push(AsPathSegment::Set(set.into_iter().collect()));
            }
        }
    }
    AsPath(out)
}

/// Runs zettabgp on a sanitized UPDATE body, mapping its result to our types.
fn zettabgp_decode_update(body: &[u8], ctx: CodecContext) -> Result<Reading, Notification> {
    let params = zettabgp_params(ctx);
    // Fresh message every time: decode_from appends to `attrs`.
    let mut msg = BgpUpdateMessage::new();
    match catch_unwind(AssertUnwindSafe(|| msg.decode_from(&params, body))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            ZETTABGP_DISAGREEMENTS.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "zettabgp rejected a validated UPDATE");
            return Err(malformed_attribute_list());
        }
        Err(_) => {
            ZETTABGP_PANICS.fetch_add(1, Ordering::Relaxed);
            tracing::error!("zettabgp panicked on a validated UPDATE; sending 3/1");
            return Err(malformed_attribute_list());
        }
    }
    let unexpected = |what: &dyn std::fmt::Display| {
        ZETTABGP_DISAGREEMENTS.fetch_add(1, Ordering::Relaxed);
        tracing::error!(%what, "zettabgp produced something the sanitized UPDATE did not hold");
        malformed_attribute_list()
    };
    let mut reading = Reading {
        withdrawn: prefixes_from_zettabgp(&msg.withdraws)?.1,
        nlri: prefixes_from_zettabgp(&msg.updates)?.1,
        ..Reading::default()
    };
    for item in &msg.attrs {
        match item {
            BgpAttrItem::Origin(o) => {
                reading.origin = Some(match o.value {
                    BgpAttrOrigin::Igp => Origin::Igp,
                    BgpAttrOrigin::Egp => Origin::Egp,
                    BgpAttrOrigin::Incomplete => Origin::Incomplete,
                })
            }
            BgpAttrItem::ASPath(path) => {
                let segments = path
                    .value
                    .iter()
                    .map(|segment| match segment {
                        BgpASitem::Seq(s) => {
                            AsPathSegment::Sequence(s.value.iter().map(|a| a.value).collect())
                        }
                        BgpASitem::Set(s) => {
                            AsPathSegment::Set(s.value.iter().map(|a| a.value).collect())
                        }
                    })
                    .collect();
                reading.as_path = Some(normalized(&AsPath(segments)));
            }
            BgpAttrItem::NextHop(BgpNextHop {
                value: IpAddr::V4(a),
            }) => reading.next_hop = Some(*a),
            BgpAttrItem::MED(m) => reading.med = Some(m.value),
            BgpAttrItem::LocalPref(l) => reading.local_pref = Some(l.value),
            BgpAttrItem::CommunityList(list) => {
                reading.communities = list.value.iter().map(|c| c.value).collect()
            }
            BgpAttrItem::LargeCommunityList(list) => {
                reading.large_communities = list
                    .value
                    .iter()
                    .map(|c| LargeCommunity {
                        global: c.ga,
                        local1: c.ldp1,
                        local2: c.ldp2,
                    })
                    .collect()
            }
            BgpAttrItem::MPUpdates(mp) => {
                let (Some(family), prefixes) = prefixes_from_zettabgp(&mp.addrs)? else {
                    return Err(unexpected(item));
                };
                let next_hop = match mp.nexthop {
                    BgpAddr::V4(a) => Some(IpAddr::V4(a)),
                    BgpAddr::V6(a) => Some(IpAddr::V6(a)),
                    _ => return Err(unexpected(item)),
                };
                reading.mp_reach = Some((family, next_hop, prefixes));
            }
            BgpAttrItem::MPWithdraws(mp) => {
                let (Some(family), prefixes) = prefixes_from_zettabgp(&mp.addrs)? else {
                    return Err(unexpected(item));
                };
                reading.mp_unreach = Some((family, prefixes));
            }
            other => return Err(unexpected(other)),
        }
    }
    Ok(reading)
}

fn prefixes_from_zettabgp(
    addrs: &BgpAddrs,
) -> Result<(Option<Family>, Vec<IpNetwork>), Notification> {
    Ok(match addrs {
        BgpAddrs::None => (None, Vec::new()),
        BgpAddrs::IPV4U(list) => {
            let prefixes = list
                .iter()
                .map(|p| {
                    let len = p.prefixlen.min(32);
                    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    Ipv4Network::new(Ipv4Addr::from(u32::from(p.addr) & mask), p.prefixlen)
                        .map(IpNetwork::V4)
                        .map_err(|_| invalid_network_field())
                })
                .collect::<Result<_, _>>()?;
            (Some(Family::Ipv4Unicast), prefixes)
        }
        BgpAddrs::IPV6U(list) => {
            let prefixes = list
                .iter()
                .map(|p| {
                    let len = p.prefixlen.min(128);
                    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    Ipv6Network::new(Ipv6Addr::from(u128::from(p.addr) & mask), p.prefixlen)
                        .map(IpNetwork::V6)
                        .map_err(|_| invalid_network_field())
                })
                .collect::<Result<_, _>>()?;
            (Some(Family::Ipv6Unicast), prefixes)
        }
        _ => {
            tracing::error!("zettabgp returned a prefix list of another family");
            return Err(malformed_attribute_list());
        }
    })
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
/// long as [`encode_update`] makes a single frame of it (else `SeveralFrames`).
pub fn encode(msg: &Message, ctx: CodecContext) -> Result<Vec<u8>, CodecError> {
    match msg {
        Message::Open(open) => encode_open(open),
        Message::Update(update) => {
            let mut frames = encode_update(update, ctx)?;
            match (frames.pop(), frames.len()) {
                (Some(frame), 0) => Ok(frame),
                (_, n) => Err(CodecError::SeveralFrames { frames: n + 1 }),
            }
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

/// Encodes an Update into as many UPDATE frames of at most 4096 bytes as needed, each carrying
/// one kind of route (RFC 7606 §5.1), in this order: IPv4 withdrawals, IPv6 withdrawals
/// (MP_UNREACH_NLRI), IPv4 announcements, IPv6 announcements (MP_REACH_NLRI, first among the
/// attributes). Announcement frames repeat the path attributes. An empty Update gives one empty
/// UPDATE, the IPv4 unicast End-of-RIB marker (RFC 4724).
pub fn encode_update(update: &Update, ctx: CodecContext) -> Result<Vec<Vec<u8>>, CodecError> {
    let (withdrawn4, withdrawn6) = by_family(&update.withdrawn);
    let (nlri4, nlri6) = by_family(&update.nlri);
    let mut frames = Vec::new();
    for chunk in chunks(&withdrawn4, MAX_BODY_LEN - 4, v4_len) {
        frames.push(update_frame(chunk, &[], &[], ctx)?);
    }
    // MP_UNREACH_NLRI takes an extended-length header and AFI/SAFI.
    for chunk in chunks(&withdrawn6, MAX_BODY_LEN - 4 - 4 - 3, v6_len) {
        let unreach = opaque(attr::MP_UNREACH_NLRI, FLAG_OPTIONAL, mp_value(None, chunk));
        frames.push(update_frame(&[], &[unreach], &[], ctx)?);
    }
    if !nlri4.is_empty() || !nlri6.is_empty() {
        let attrs = update
            .attributes
            .as_ref()
            .ok_or(CodecError::MissingAttributes)?;
        let common = path_attributes(attrs, ctx)?;
        let common_len: usize = common.iter().map(|a| a.wire_len).sum();
        if !nlri4.is_empty() {
            let next_hop = attrs
                .next_hop
                .ipv4
                .ok_or(CodecError::MissingNextHop(Family::Ipv4Unicast))?;
            let mut items = common.clone();
            items.push(Attr {
                type_code: attr::NEXT_HOP,
                item: BgpAttrItem::NextHop(BgpNextHop::new(IpAddr::V4(next_hop))),
                wire_len: 7,
            });
            items.sort_by_key(|a| a.type_code);
            let budget = (MAX_BODY_LEN - 4).saturating_sub(common_len + 7);
            for chunk in chunks(&nlri4, budget, v4_len) {
                frames.push(update_frame(&[], &items, chunk, ctx)?);
            }
        }
        if !nlri6.is_empty() {
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
            let budget = (MAX_BODY_LEN - 4).saturating_sub(common_len + overhead);
            for chunk in chunks(&nlri6, budget, v6_len) {
                let reach = mp_value(Some(&next_hop), chunk);
                let mut items = vec![opaque(attr::MP_REACH_NLRI, FLAG_OPTIONAL, reach)];
                items.extend(common.iter().cloned());
                frames.push(update_frame(&[], &items, &[], ctx)?);
            }
        }
    }
    if frames.is_empty() {
        frames.push(update_frame(&[], &[], &[], ctx)?);
    }
    Ok(frames)
}

fn by_family(prefixes: &[IpNetwork]) -> (Vec<Ipv4Network>, Vec<Ipv6Network>) {
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

/// Wire length of a prefix: length byte plus the significant octets.
fn v4_len(p: &Ipv4Network) -> usize {
    1 + usize::from(p.prefix()).div_ceil(8)
}

fn v6_len(p: &Ipv6Network) -> usize {
    1 + usize::from(p.prefix()).div_ceil(8)
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

/// A path attribute for zettabgp to write, and its length on the wire.
#[derive(Clone)]
struct Attr {
    type_code: u8,
    item: BgpAttrItem,
    wire_len: usize,
}

/// An attribute we encode ourselves, handed to zettabgp as opaque bytes. Never the Partial
/// bit; extended length only when needed.
fn opaque(type_code: u8, flags: u8, value: Vec<u8>) -> Attr {
    let extended = value.len() > 255;
    let flags = if extended {
        flags | FLAG_EXTENDED_LENGTH
    } else {
        flags
    };
    let wire_len = value.len() + if extended { 4 } else { 3 };
    let mut unknown = BgpAttrUnknown::new(type_code, flags);
    unknown.value = value;
    Attr {
        type_code,
        item: BgpAttrItem::Unknown(unknown),
        wire_len,
    }
}

/// The attributes every announcement carries whatever its family, in type-code order: all but
/// NEXT_HOP and MP_REACH_NLRI. ATOMIC_AGGREGATE, AGGREGATOR and `other` are never sent.
fn path_attributes(attrs: &PathAttributes, ctx: CodecContext) -> Result<Vec<Attr>, CodecError> {
    let origin = match attrs.origin {
        Origin::Igp => BgpAttrOrigin::Igp,
        Origin::Egp => BgpAttrOrigin::Egp,
        Origin::Incomplete => BgpAttrOrigin::Incomplete,
    };
    let mut out = vec![
        Attr {
            type_code: attr::ORIGIN,
            item: BgpAttrItem::Origin(BgpOrigin::new(origin)),
            wire_len: 4,
        },
        opaque(
            attr::AS_PATH,
            FLAG_TRANSITIVE,
            encode_as_path(&attrs.as_path, ctx)?,
        ),
    ];
    if let Some(med) = attrs.med {
        out.push(Attr {
            type_code: attr::MED,
            item: BgpAttrItem::MED(BgpMED::new(med)),
            wire_len: 7,
        });
    }
    if let Some(local_pref) = attrs.local_pref {
        out.push(Attr {
            type_code: attr::LOCAL_PREF,
            item: BgpAttrItem::LocalPref(BgpLocalpref::new(local_pref)),
            wire_len: 7,
        });
    }
    if !attrs.communities.is_empty() {
        let value = attrs
            .communities
            .iter()
            .flat_map(|c| c.0.to_be_bytes())
            .collect();
        out.push(opaque(
            attr::COMMUNITIES,
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
        out.push(opaque(
            attr::LARGE_COMMUNITY,
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
        let octets = p.network().octets();
        out.push(p.prefix());
        let significant = usize::from(p.prefix()).div_ceil(8);
        out.extend_from_slice(octets.get(..significant).unwrap_or_default());
    }
    out
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
    attrs: &[Attr],
    nlri: &[Ipv4Network],
    ctx: CodecContext,
) -> Result<Vec<u8>, CodecError> {
    let attrs_len: usize = attrs.iter().map(|a| a.wire_len).sum();
    let prefixes_len = |list: &[Ipv4Network]| list.iter().map(v4_len).sum::<usize>();
    let body_len = 4 + prefixes_len(withdrawn) + attrs_len + prefixes_len(nlri);
    if HEADER_LEN + body_len > MAX_MESSAGE_LEN {
        return Err(CodecError::TooLong {
            len: HEADER_LEN + body_len,
        });
    }
    let msg = BgpUpdateMessage {
        updates: to_zettabgp_prefixes(nlri),
        withdraws: to_zettabgp_prefixes(withdrawn),
        attrs: attrs.iter().map(|a| a.item.clone()).collect(),
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
    use crate::bgp::message::AFI_IPV4;
    use proptest::prelude::*;
    use std::sync::mpsc;
    use std::time::Duration;

    const FOUR: CodecContext = CodecContext {
        four_octet_asn: true,
        ibgp: false,
        add_path_ipv4: false,
        add_path_ipv6: false,
    };
    const TWO: CodecContext = CodecContext {
        four_octet_asn: false,
        ibgp: false,
        add_path_ipv4: false,
        add_path_ipv6: false,
    };
    const IBGP: CodecContext = CodecContext {
        four_octet_asn: true,
        ibgp: true,
        add_path_ipv4: false,
        add_path_ipv6: false,
    };
    const ASN4: u32 = 4_200_000_001;
    const NLRI_ONE: &[u8] = &[32, 192, 0, 2, 10];
    const NH4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    const NH6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const LL6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|s| net(s)).collect()
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

    /// MP_REACH_NLRI for IPv6 unicast, next hop 2001:db8::1, announcing 2001:db8:1::/48.
    fn mp_reach_v6() -> Vec<u8> {
        attribute(
            0x80,
            14,
            &from_hex("0002 01 10 20010db8000000000000000000000001 00 30 20010db80001"),
        )
    }

    fn update_frame_raw(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
        let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(withdrawn);
        body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        body.extend_from_slice(attrs);
        body.extend_from_slice(nlri);
        raw_frame(2, &body)
    }

    /// Attributes of an announcement with next hops for the families in `nlri` only, as a
    /// decoded UPDATE has them.
    fn path_attrs(nlri: &[IpNetwork], as_path: Vec<u32>) -> PathAttributes {
        let has = |f| nlri.iter().any(|p| Family::of(p) == f);
        let next_hop = NextHop {
            ipv4: has(Family::Ipv4Unicast).then_some(NH4),
            ipv6: has(Family::Ipv6Unicast).then_some(NH6),
            ipv6_link_local: None,
        };
        PathAttributes::new(Origin::Igp, AsPath::sequence(as_path), next_hop)
    }

    fn announce(nlri: &[&str], as_path: Vec<u32>) -> Update {
        let nlri = nets(nlri);
        Update {
            attributes: Some(path_attrs(&nlri, as_path)),
            nlri,
            ..Update::default()
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
        assert_eq!(
            zettabgp_disagreements(),
            0,
            "zettabgp and the validation disagreed"
        );
    }

    #[track_caller]
    fn decode_update_ok(frame: &[u8], ctx: CodecContext) -> Update {
        match decode_guarded(frame.to_vec(), ctx) {
            Ok(Message::Update(u)) => u,
            other => panic!("expected an UPDATE, got {other:?}"),
        }
    }

    /// Asserts treat-as-withdraw: no attributes, `withdrawn` as given, one error naming
    /// `needle`.
    #[track_caller]
    fn assert_withdrawn(u: &Update, withdrawn: &[IpNetwork], needle: &str) {
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
    fn type_codes(frame: &[u8]) -> Vec<u8> {
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
    fn find_attribute(frame: &[u8], type_code: u8) -> Option<Vec<u8>> {
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
    fn round_trip(u: &Update, ctx: CodecContext) -> (Update, Vec<Vec<u8>>) {
        let frames = encode_update(u, ctx).unwrap();
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
                codes.contains(&attr::MP_REACH_NLRI),
                codes.contains(&attr::MP_UNREACH_NLRI),
            ];
            let kinds = fields.iter().filter(|&&k| k).count();
            assert!(kinds <= 1, "RFC 7606 §5.1: {fields:?} in one UPDATE");
            if let Some(a) = d.attributes {
                let m = merged.attributes.get_or_insert_with(|| a.clone());
                m.next_hop.ipv4 = m.next_hop.ipv4.or(a.next_hop.ipv4);
                m.next_hop.ipv6 = m.next_hop.ipv6.or(a.next_hop.ipv6);
                m.next_hop.ipv6_link_local =
                    m.next_hop.ipv6_link_local.or(a.next_hop.ipv6_link_local);
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

    fn rich_attrs(nlri: &[IpNetwork]) -> PathAttributes {
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

    fn many_host_routes_v6(count: u32, base: u16) -> Vec<IpNetwork> {
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

    // ----- IPv6 (RFC 4760, RFC 2545) -----------------------------------------------------

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
            &from_hex(
                "0000 001e 800f 1b 0002 01 80 20010db8000000000000000000000010 30 20010db80001"
            )[..]
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

    // ----- attributes both ways ----------------------------------------------------------

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

    /// Documents defect 9 of the notes: if this starts failing, zettabgp encodes
    /// LARGE_COMMUNITY without the Partial bit and could write it again.
    #[test]
    fn zettabgp_still_sets_partial_bit_on_large_communities() {
        let mut list = zettabgp::prelude::BgpLargeCommunityList {
            value: BTreeSet::new(),
        };
        list.value.insert(zettabgp::prelude::BgpLargeCommunity {
            ga: 1,
            ldp1: 2,
            ldp2: 3,
        });
        let mut buf = [0u8; 64];
        BgpAttrItem::LargeCommunityList(list)
            .encode_to(&zettabgp_params(FOUR), &mut buf)
            .unwrap();
        assert_eq!(buf[0] & 0x20, 0x20, "flags 0x{:02x}", buf[0]);
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
        let nlri = nets(&["198.18.99.0/24"]);
        let mut a = PathAttributes::new(
            Origin::Igp,
            AsPath::sequence(vec![65001]),
            NextHop {
                ipv4: Some(Ipv4Addr::new(198, 18, 1, 2)),
                ..NextHop::default()
            },
        );
        a.med = Some(10);
        a.communities = vec![Community(65001 << 16 | 100)];
        a.large_communities = vec![LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2,
        }];
        assert_eq!(
            u,
            Update {
                attributes: Some(a),
                nlri: nlri.clone(),
                ..Update::default()
            }
        );
        let w = decode_update_ok(&capture("frr-8.4-withdraw.hex"), FOUR);
        assert_eq!(
            w,
            Update {
                withdrawn: nlri.clone(),
                ..Update::default()
            }
        );
        // On a 2-byte session FRR's 4-byte AS_PATH does not parse: the route is withdrawn.
        let u = decode_update_ok(&bytes, TWO);
        assert_withdrawn(&u, &nlri, "AS_PATH");
    }

    #[test]
    fn decodes_frr_ipv6_open_update_and_withdrawal() {
        let Ok(Message::Open(o)) = decode(&capture("frr-8.4-ipv6-open.hex"), FOUR) else {
            panic!()
        };
        assert_eq!(o.capabilities.multiprotocol, vec![(AFI_IPV6, SAFI_UNICAST)]);
        assert!(o.capabilities.supports(Family::Ipv6Unicast));
        assert!(!o.capabilities.ipv4_unicast());

        let bytes = capture("frr-8.4-ipv6-update.hex");
        let u = decode_update_ok(&bytes, FOUR);
        let nlri = nets(&["2001:db8:98::1/128", "2001:db8:99::/48"]);
        let mut a = PathAttributes::new(
            Origin::Igp,
            AsPath::sequence(vec![65001]),
            NextHop {
                ipv4: None,
                ipv6: Some("2001:db8:1::2".parse().unwrap()),
                ipv6_link_local: Some("fe80::2".parse().unwrap()),
            },
        );
        a.med = Some(10);
        a.communities = vec![Community(65001 << 16 | 100)];
        a.large_communities = vec![LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2,
        }];
        assert_eq!(
            u,
            Update {
                attributes: Some(a),
                nlri: nlri.clone(),
                ..Update::default()
            }
        );
        // What we send for it decodes to the same.
        assert_eq!(round_trip(&u, FOUR).0, u);
        let w = decode_update_ok(&capture("frr-8.4-ipv6-withdraw.hex"), FOUR);
        assert_eq!(
            w,
            Update {
                withdrawn: nets(&["2001:db8:99::/48", "2001:db8:98::1/128"]),
                ..Update::default()
            }
        );
    }

    /// Defect 6 of the notes: zettabgp reads FRR's 32-byte next hop as the global address
    /// alone. If this starts failing, it keeps the link-local one.
    #[test]
    fn zettabgp_alone_drops_frr_link_local_next_hop() {
        let bytes = capture("frr-8.4-ipv6-update.hex");
        let mut msg = BgpUpdateMessage::new();
        msg.decode_from(&zettabgp_params(FOUR), &bytes[HEADER_LEN..])
            .unwrap();
        let reach = msg.get_mpupdates().unwrap();
        let global: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        assert_eq!(reach.nexthop, BgpAddr::V6(global));
    }

    #[test]
    fn decodes_bird_open_update_and_withdrawal() {
        let Ok(Message::Open(o)) = decode(&capture("bird-2-open.hex"), FOUR) else {
            panic!()
        };
        assert_eq!(o.asn, 65002);
        assert_eq!(o.router_id, Ipv4Addr::new(198, 19, 0, 2));
        let c = &o.capabilities;
        assert_eq!(c.four_octet_asn, Some(65002));
        assert_eq!(c.multiprotocol, vec![(AFI_IPV4, SAFI_UNICAST)]);
        assert!(c.route_refresh);
        // Graceful restart, enhanced route refresh, long-lived graceful restart.
        assert_eq!(c.other, vec![64, 70, 71]);

        let bytes = capture("bird-2-update.hex");
        // BIRD sends LARGE_COMMUNITY as 0xC0 too: optional transitive, no Partial bit.
        assert_eq!(&find_attribute(&bytes, 32).unwrap()[..3], &[0xc0, 32, 24]);
        let u = decode_update_ok(&bytes, FOUR);
        let nlri = nets(&["198.18.98.0/24"]);
        let mut a = PathAttributes::new(
            Origin::Igp,
            AsPath::sequence(vec![65002]),
            NextHop {
                ipv4: Some(Ipv4Addr::new(198, 18, 1, 2)),
                ..NextHop::default()
            },
        );
        a.med = Some(20);
        a.communities = vec![Community(65002 << 16 | 100)];
        a.large_communities = vec![
            LargeCommunity {
                global: 65002,
                local1: 1,
                local2: 2,
            },
            LargeCommunity {
                global: ASN4,
                local1: 3,
                local2: 4,
            },
        ];
        assert_eq!(
            u,
            Update {
                attributes: Some(a),
                nlri: nlri.clone(),
                ..Update::default()
            }
        );
        assert_eq!(round_trip(&u, FOUR).0, u);
        let w = decode_update_ok(&capture("bird-2-withdraw.hex"), FOUR);
        assert_eq!(
            w,
            Update {
                withdrawn: nlri,
                ..Update::default()
            }
        );
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

    // ----- UPDATE errors: session reset --------------------------------------------------

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
            (14, "0001 01 04 c612"),     // MP_REACH too short (defect 2)
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
        // Length 255 would overflow zettabgp's `(bits + 7) / 8` on u8.
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

    // ----- UPDATE errors: treat-as-withdraw ----------------------------------------------

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
            attribute(0xc0, 8, &[0xfd, 0xe9, 0, 100, 1]), // 5 bytes (defect 2)
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

    // ----- UPDATE errors: attribute discard ----------------------------------------------

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

    // ----- UPDATE errors: combinations and leniency --------------------------------------

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
        let rich = [
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
        .concat();
        let ipv4_mp = [
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
        out
    }

    /// A prefix list: mostly well-formed entries, sometimes a length over `max` (up to 255)
    /// or missing or extra address bytes.
    fn prefix_list(max: u8) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            (
                prop_oneof![8 => 0u8..=max, 1 => any::<u8>()],
                proptest::collection::vec(any::<u8>(), 0..=17),
                prop::bool::weighted(0.9),
            ),
            0..4,
        )
        .prop_map(|entries| {
            let mut out = Vec::new();
            for (len, bytes, exact) in entries {
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
    /// random next-hop lengths.
    fn mp_value() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![4 => prop::sample::select(vec![1u16, 2]), 1 => any::<u16>()],
            prop_oneof![3 => Just(1u8), 1 => any::<u8>()],
            prop_oneof![3 => prop::sample::select(vec![4u8, 16, 32]), 1 => 0u8..=40],
            any::<u8>(),
            prefix_list(128),
            any::<bool>(),
        )
            .prop_map(|(afi, safi, nh_len, reserved, nlri, reach)| {
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

    fn context() -> impl Strategy<Value = CodecContext> {
        (any::<bool>(), any::<bool>()).prop_map(|(four_octet_asn, ibgp)| CodecContext {
            four_octet_asn,
            ibgp,
            add_path_ipv4: false,
            add_path_ipv6: false,
        })
    }

    /// Whatever decodes must encode into frames that decode cleanly back to the same routes
    /// and attributes (less what is never sent, and next hops per family).
    fn check_reencodes(msg: &Message, ctx: CodecContext) {
        let Message::Update(u) = msg else { return };
        if u.attributes.is_some() {
            assert!(!u.nlri.is_empty(), "attributes without NLRI: {u:?}");
        }
        let frames = encode_update(u, ctx).unwrap();
        let (mut withdrawn, mut nlri) = (Vec::new(), Vec::new());
        for f in &frames {
            let d = decode_update_ok(f, ctx);
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
            prop_assert_eq!(zettabgp_panics(), 0, "zettabgp panicked: validation missed it");
            prop_assert_eq!(zettabgp_disagreements(), 0, "zettabgp and the validation disagree");
            if let Ok(msg) = &result {
                check_reencodes(msg, ctx);
            }
        }

        #[test]
        fn structured_updates_never_panic(
            withdrawn in prefix_list(32),
            attrs in proptest::collection::vec(attribute_bytes(), 0..6),
            nlri in prefix_list(32),
            base in any::<bool>(),
            ctx in context(),
        ) {
            let mut attrs = attrs.concat();
            if base {
                attrs.extend(base_attrs());
            }
            let frame = update_frame_raw(&withdrawn, &attrs, &nlri);
            let result = decode(&frame, ctx);
            prop_assert_eq!(zettabgp_panics(), 0, "zettabgp panicked: validation missed it");
            prop_assert_eq!(zettabgp_disagreements(), 0, "zettabgp and the validation disagree");
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
            prop_assert_eq!(zettabgp_disagreements(), 0, "zettabgp and the validation disagree");
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
            prop_assert_eq!(zettabgp_panics(), 0);
            prop_assert_eq!(zettabgp_disagreements(), 0);
        }
    }
}
