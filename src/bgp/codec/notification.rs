//! NOTIFICATION (RFC 4271 §4.5) both ways, with data of any length (RFC 8203 shutdown
//! messages): zettabgp's keeps 2 data bytes. Also the two bodies too small for a file of
//! their own: KEEPALIVE (none) and ROUTE-REFRESH (RFC 2918).

use super::error::DecodeError;
use super::frame::{frame, MSG_NOTIFICATION, MSG_ROUTE_REFRESH};
use super::reader::Reader;
use super::CodecError;
use crate::bgp::message::{Message, Notification};

pub(super) fn decode_notification(body: &[u8]) -> Result<Notification, DecodeError> {
    let mut r = Reader::new(body);
    let (Some(code), Some(subcode)) = (r.u8(), r.u8()) else {
        return Err(DecodeError::BadLength(body.len() as u16 + 19)); // unreachable: frame_len
    };
    Ok(Notification::new(code, subcode, r.rest().to_vec()))
}

pub(super) fn encode_notification(n: &Notification) -> Result<Vec<u8>, CodecError> {
    let mut body = Vec::with_capacity(2 + n.data.len());
    body.extend_from_slice(&[n.code, n.subcode]);
    body.extend_from_slice(&n.data);
    frame(MSG_NOTIFICATION, &body)
}

/// AFI(2), reserved(1), SAFI(1). The reserved byte is the RFC 7313 subtype; BoRR/EoRR markers
/// read as refreshes.
pub(super) fn decode_route_refresh(body: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::new(body);
    let (Some(afi), Some(_subtype), Some(safi)) = (r.u16(), r.u8(), r.u8()) else {
        return Err(DecodeError::BadLength(body.len() as u16 + 19)); // unreachable: frame_len
    };
    Ok(Message::RouteRefresh { afi, safi })
}

pub(super) fn encode_route_refresh(afi: u16, safi: u8) -> Result<Vec<u8>, CodecError> {
    let [afi_hi, afi_lo] = afi.to_be_bytes();
    frame(MSG_ROUTE_REFRESH, &[afi_hi, afi_lo, 0, safi])
}
