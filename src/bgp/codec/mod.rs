//! BGP wire codec for IPv4 and IPv6 unicast: bytes <-> [`Message`]. Decoding is ours
//! throughout; zettabgp writes the OPEN and UPDATE messages we send (`zettabgp.rs`, the only
//! file that uses it; docs/bgp.md says why).
//!
//! | file | what |
//! |---|---|
//! | `frame.rs` | the 19-byte header: [`frame_len`] (marker, 19..=4096, type, per-type length) |
//! | `open.rs` | OPEN decode and its checks; capabilities incl. ADD-PATH and graceful restart |
//! | `update.rs` | UPDATE decode: fields, RFC 7606 outcome, path identifiers, End-of-RIB |
//! | `attributes.rs` | the attribute walk, one function per path attribute |
//! | `nlri.rs` | prefix lists, with RFC 7911 path identifiers where negotiated |
//! | `encode.rs` | UPDATE encode: RFC 7606 §5.1 split, attributes zettabgp writes wrong |
//! | `notification.rs` | NOTIFICATION, KEEPALIVE, ROUTE-REFRESH |
//! | `zettabgp.rs` | OPEN and UPDATE bodies written by zettabgp |
//! | `error.rs` | [`DecodeError`] (into the NOTIFICATION it causes), [`UpdateError`], [`Treatment`] |
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
//! | Withdrawn routes or NLRI unparseable: prefix length over 32, bytes or an ADD-PATH path identifier missing (§3.i, §3.j, §5.3) | session reset | 3/10 |
//! | MP_REACH_NLRI or MP_UNREACH_NLRI twice (§3.g), or running past the Total Attribute Length (§3.j) | session reset | 3/1 |
//! | MP_REACH_NLRI/MP_UNREACH_NLRI malformed: shorter than 5/3 bytes, next hop not fitting, next hop length not 4 (IPv4) or 16/32 (IPv6), NLRI unparseable, path identifiers included (§7.11, §5.3; session reset rather than AFI/SAFI disable) | session reset | 3/9, the attribute |
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
//! announced prefix (classic and MP_REACH_NLRI) into `Update::withdrawn`, with its path
//! identifier, next to the classic and MP_UNREACH_NLRI withdrawals, and leaves `attributes`
//! empty; every case short of a reset adds its [`UpdateError`] text to `Update::errors`. The
//! Partial and Extended Length bits are not checked on receipt (§3.c judges only Optional and
//! Transitive).
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

mod attributes;
mod encode;
mod error;
mod frame;
mod nlri;
mod notification;
mod open;
mod reader;
mod update;
mod zettabgp;

#[cfg(test)]
mod tests;

pub use encode::encode_update;
pub use error::{DecodeError, Treatment, UpdateError};
pub use frame::{frame_len, HEADER_LEN, MAX_MESSAGE_LEN};

use frame::{MSG_KEEPALIVE, MSG_NOTIFICATION, MSG_OPEN, MSG_ROUTE_REFRESH, MSG_UPDATE};

use super::message::{Family, Message};

/// Per-session facts the codec needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecContext {
    /// AS_PATH/AGGREGATOR ASN width: true once both sides sent the 4-octet-ASN capability
    /// (any value works for OPEN itself).
    pub four_octet_asn: bool,
    /// The peer is in our AS: LOCAL_PREF is read (and a malformed one withdraws the routes)
    /// instead of discarded (RFC 7606 §7.5).
    pub ibgp: bool,
    /// The peer sends RFC 7911 path identifiers for IPv4 unicast (it may send, we said we can
    /// receive): in the classic withdrawn routes and NLRI, and in MP attributes of AFI 1.
    pub add_path_ipv4: bool,
    /// The same for IPv6 unicast (MP_REACH_NLRI/MP_UNREACH_NLRI).
    pub add_path_ipv6: bool,
}

impl CodecContext {
    /// Whether prefixes of `family` arrive with path identifiers.
    pub fn add_path(&self, family: Family) -> bool {
        match family {
            Family::Ipv4Unicast => self.add_path_ipv4,
            Family::Ipv6Unicast => self.add_path_ipv6,
        }
    }
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
    #[error("cannot encode {0}")]
    UnencodableCapability(String),
    #[error("zettabgp failed to encode {what}: {detail}")]
    Zettabgp { what: &'static str, detail: String },
}

/// Decodes one complete message (header included, exactly `frame_len` bytes). Never panics
/// and never loops forever, whatever the input; an error converts into the NOTIFICATION to
/// send (`Notification::from`).
pub fn decode(frame: &[u8], ctx: CodecContext) -> Result<Message, DecodeError> {
    let (msg_type, body) = frame::split(frame)?;
    match msg_type {
        MSG_OPEN => open::decode_open(body).map(Message::Open),
        MSG_UPDATE => update::decode_update(body, ctx).map(Message::Update),
        MSG_NOTIFICATION => notification::decode_notification(body).map(Message::Notification),
        MSG_KEEPALIVE => Ok(Message::Keepalive),
        MSG_ROUTE_REFRESH => notification::decode_route_refresh(body),
        other => Err(DecodeError::BadType(other)), // unreachable: frame_len
    }
}

/// Encodes OPEN, KEEPALIVE, NOTIFICATION and ROUTE-REFRESH into one frame; an UPDATE too, as
/// long as [`encode_update`] makes a single frame of it (else `SeveralFrames`).
pub fn encode(msg: &Message, ctx: CodecContext) -> Result<Vec<u8>, CodecError> {
    match msg {
        Message::Open(open) => open::encode_open(open),
        Message::Update(update) => {
            let mut frames = encode_update(update, ctx)?;
            match (frames.pop(), frames.len()) {
                (Some(frame), 0) => Ok(frame),
                (_, n) => Err(CodecError::SeveralFrames { frames: n + 1 }),
            }
        }
        Message::Notification(n) => notification::encode_notification(n),
        Message::Keepalive => frame::frame(MSG_KEEPALIVE, &[]),
        Message::RouteRefresh { afi, safi } => notification::encode_route_refresh(*afi, *safi),
    }
}
