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
//!   Every value it returns must equal the walk's, or the UPDATE is refused with 3/1: we act only
//!   on bytes two independent readers agree on. The walk's values are the result, because
//!   zettabgp sorts and deduplicates AS_SETs and community lists and drops the link-local next
//!   hop (defect 6).
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
//! | MP_REACH_NLRI or MP_UNREACH_NLRI twice (§3.g) | session reset | 3/1 |
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
        // RFC 7606 §5.2: with nothing to withdraw, an error calling for treat-as-withdraw
        // means the peer and we disagree about more than one attribute.
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
