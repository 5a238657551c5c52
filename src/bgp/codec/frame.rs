//! Framing (RFC 4271 §4.1, §6.1): the 19-byte header both ways. Ours, not zettabgp's: its
//! `decode_message_head` accepts lengths up to 65535 and misbehaves under 19.

use super::error::DecodeError;
use super::CodecError;

pub const HEADER_LEN: usize = 19;
pub const MAX_MESSAGE_LEN: usize = 4096;
pub(super) const MAX_BODY_LEN: usize = MAX_MESSAGE_LEN - HEADER_LEN;

pub(super) const MSG_OPEN: u8 = 1;
pub(super) const MSG_UPDATE: u8 = 2;
pub(super) const MSG_NOTIFICATION: u8 = 3;
pub(super) const MSG_KEEPALIVE: u8 = 4;
pub(super) const MSG_ROUTE_REFRESH: u8 = 5;

/// Checks the 19-byte header at the start of `buf`. `Ok(None)` if fewer than 19 bytes are
/// buffered; `Ok(Some(total_len))` when the header is valid (marker all ones,
/// 19 <= len <= 4096, type 1..=5, OPEN >= 29, UPDATE >= 23, NOTIFICATION >= 21,
/// KEEPALIVE == 19, ROUTE-REFRESH == 23); otherwise the RFC 4271 §6.1 error: 1/1 bad
/// marker, 1/2 bad length (data = the length field), 1/3 bad type (data = the type byte).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let [marker @ .., len_hi, len_lo, msg_type] = header;
    if marker.iter().any(|&b| b != 0xff) {
        return Err(DecodeError::NotSynchronized);
    }
    let field = u16::from_be_bytes([*len_hi, *len_lo]);
    let len = usize::from(field);
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(DecodeError::BadLength(field));
    }
    let len_ok = match *msg_type {
        MSG_OPEN => len >= 29,
        MSG_UPDATE => len >= 23,
        MSG_NOTIFICATION => len >= 21,
        MSG_KEEPALIVE => len == 19,
        MSG_ROUTE_REFRESH => len == 23,
        other => return Err(DecodeError::BadType(other)),
    };
    if len_ok {
        Ok(Some(len))
    } else {
        Err(DecodeError::BadLength(field))
    }
}

/// The type and body of one complete frame (exactly `frame_len` bytes).
pub(super) fn split(frame: &[u8]) -> Result<(u8, &[u8]), DecodeError> {
    match frame_len(frame)? {
        Some(len) if len == frame.len() => {}
        // The caller handed us a partial or over-long frame: report the length as received.
        _ => {
            let field = frame
                .get(16..18)
                .and_then(|f| f.try_into().ok())
                .map(u16::from_be_bytes)
                .unwrap_or(frame.len() as u16);
            return Err(DecodeError::BadLength(field));
        }
    }
    match (frame.get(18), frame.get(HEADER_LEN..)) {
        (Some(&msg_type), Some(body)) => Ok((msg_type, body)),
        _ => Err(DecodeError::BadLength(frame.len() as u16)), // unreachable: frame_len passed
    }
}

/// A frame around `body`, refused past 4096 bytes.
pub(super) fn frame(msg_type: u8, body: &[u8]) -> Result<Vec<u8>, CodecError> {
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
