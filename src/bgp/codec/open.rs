//! OPEN (RFC 4271 §4.2, §6.2), with the capabilities of RFC 4760, 2918, 6793, 7911 (ADD-PATH)
//! and 4724 (graceful restart), and RFC 9072 extended optional parameters. Decoded here:
//! zettabgp fails the whole OPEN on an FQDN capability with a domain name (FRR sends one)
//! and on parameter types other than 2. Encoded by `zettabgp.rs`.

use std::net::Ipv4Addr;

use super::error::DecodeError;
use super::frame::{frame, MSG_OPEN};
use super::reader::Reader;
use super::{zettabgp, CodecError};
use crate::bgp::message::{AddPath, Capabilities, GracefulRestart, Open};

const OPT_PARAM_CAPABILITIES: u8 = 2;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_GRACEFUL_RESTART: u8 = 64;
const CAP_FOUR_OCTET_ASN: u8 = 65;
const CAP_ADD_PATH: u8 = 69;

fn malformed(why: &'static str) -> impl Fn() -> DecodeError {
    move || DecodeError::MalformedOpen(why)
}

pub(super) fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
    let mut r = Reader::new(body);
    let version = r.u8().ok_or_else(malformed("empty"))?;
    if version != 4 {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let (Some(my_as), Some(hold_time), Some(router_id), Some(opt_len)) =
        (r.u16(), r.u16(), r.u32(), r.u8())
    else {
        return Err(malformed("fixed fields cut short")());
    };
    // RFC 7607: AS 0 is never a valid peer AS.
    if my_as == 0 {
        return Err(DecodeError::BadPeerAs);
    }
    let router_id = Ipv4Addr::from(router_id);
    if router_id.is_unspecified() {
        return Err(DecodeError::BadBgpIdentifier);
    }
    // RFC 9072 extended optional parameters: length 255 followed by type 255 means a 2-byte
    // length follows and each parameter has a 2-byte length.
    let extended = opt_len == 255 && r.peek() == Some(255);
    let params = if extended {
        r.u8();
        r.u16().and_then(|len| r.take(usize::from(len)))
    } else {
        r.take(usize::from(opt_len))
    };
    let params = params.ok_or_else(malformed("optional parameters past the end"))?;
    if !r.is_empty() {
        return Err(malformed("bytes after the optional parameters")());
    }
    let caps = decode_parameters(params, extended)?;
    if caps.four_octet_asn == Some(0) {
        return Err(DecodeError::BadPeerAs);
    }
    Ok(Open {
        asn: caps.four_octet_asn.unwrap_or(u32::from(my_as)),
        hold_time,
        router_id,
        capabilities: caps,
    })
}

fn decode_parameters(params: &[u8], extended: bool) -> Result<Capabilities, DecodeError> {
    let mut caps = Capabilities::default();
    let mut p = Reader::new(params);
    while !p.is_empty() {
        let param_type = p.u8().ok_or_else(malformed("parameter header cut short"))?;
        let len = if extended {
            p.u16()
        } else {
            p.u8().map(u16::from)
        };
        let value = len
            .and_then(|len| p.take(usize::from(len)))
            .ok_or_else(malformed("parameter past the end"))?;
        if param_type != OPT_PARAM_CAPABILITIES {
            return Err(DecodeError::UnsupportedOptionalParameter(param_type));
        }
        decode_capabilities(value, &mut caps)?;
    }
    Ok(caps)
}

/// One capabilities parameter. A capability we act on with an impossible length is
/// malformed (RFC 4271 §6.2: 2/0); one we do not know is listed in `other`.
fn decode_capabilities(value: &[u8], caps: &mut Capabilities) -> Result<(), DecodeError> {
    let mut c = Reader::new(value);
    while !c.is_empty() {
        let (Some(cap_code), Some(len)) = (c.u8(), c.u8()) else {
            return Err(malformed("capability header cut short")());
        };
        let data = c
            .take(usize::from(len))
            .ok_or_else(malformed("capability past its parameter"))?;
        let mut d = Reader::new(data);
        match cap_code {
            CAP_MULTIPROTOCOL => {
                let (Some(afi), Some(_reserved), Some(safi), true) =
                    (d.u16(), d.u8(), d.u8(), data.len() == 4)
                else {
                    return Err(malformed("multiprotocol capability not of 4 bytes")());
                };
                if !caps.multiprotocol.contains(&(afi, safi)) {
                    caps.multiprotocol.push((afi, safi));
                }
            }
            CAP_ROUTE_REFRESH if data.is_empty() => caps.route_refresh = true,
            CAP_ROUTE_REFRESH => return Err(malformed("route refresh capability with data")()),
            CAP_FOUR_OCTET_ASN if data.len() == 4 => caps.four_octet_asn = d.u32(),
            CAP_FOUR_OCTET_ASN => return Err(malformed("4-octet ASN capability not of 4 bytes")()),
            CAP_ADD_PATH => add_path(data, caps)?,
            CAP_GRACEFUL_RESTART => graceful_restart(data, caps)?,
            other => note_other(caps, other),
        }
    }
    Ok(())
}

fn note_other(caps: &mut Capabilities, code: u8) {
    if !caps.other.contains(&code) {
        caps.other.push(code);
    }
}

/// ADD-PATH (RFC 7911 §4): (AFI, SAFI, Send/Receive) tuples of 4 bytes, at least one. A
/// Send/Receive other than 1..=3 makes the whole capability "not understood and ignored"
/// (listed in `other`). A family listed again keeps its first entry.
fn add_path(data: &[u8], caps: &mut Capabilities) -> Result<(), DecodeError> {
    if data.is_empty() || data.len() % 4 != 0 {
        return Err(malformed(
            "ADD-PATH capability not a non-zero multiple of 4 bytes",
        )());
    }
    let mut entries = Vec::with_capacity(data.len() / 4);
    for tuple in data.chunks_exact(4) {
        let mut t = Reader::new(tuple);
        let (Some(afi), Some(safi), Some(send_receive)) = (t.u16(), t.u8(), t.u8()) else {
            continue; // unreachable: 4 bytes
        };
        if !(1..=3).contains(&send_receive) {
            note_other(caps, CAP_ADD_PATH);
            return Ok(());
        }
        entries.push(AddPath {
            afi,
            safi,
            send_receive,
        });
    }
    for entry in entries {
        if !caps
            .add_path
            .iter()
            .any(|a| (a.afi, a.safi) == (entry.afi, entry.safi))
        {
            caps.add_path.push(entry);
        }
    }
    Ok(())
}

/// Graceful restart (RFC 4724 §3): flags (4 bits) and restart time (12 bits), then (AFI,
/// SAFI, flags) tuples of 4 bytes. A second instance is ignored.
fn graceful_restart(data: &[u8], caps: &mut Capabilities) -> Result<(), DecodeError> {
    let mut d = Reader::new(data);
    let Some(head) = d.u16() else {
        return Err(malformed(
            "graceful restart capability shorter than 2 bytes",
        )());
    };
    if d.remaining() % 4 != 0 {
        return Err(malformed("graceful restart families not of 4 bytes each")());
    }
    let mut families = Vec::with_capacity(d.remaining() / 4);
    while let (Some(afi), Some(safi), Some(flags)) = (d.u16(), d.u8(), d.u8()) {
        families.push((afi, safi, flags));
    }
    caps.graceful_restart.get_or_insert(GracefulRestart {
        flags: (head >> 12) as u8,
        restart_time: head & 0x0fff,
        families,
    });
    Ok(())
}

pub(super) fn encode_open(open: &Open) -> Result<Vec<u8>, CodecError> {
    if open.router_id.is_unspecified() {
        return Err(CodecError::InvalidRouterId);
    }
    if let Some(capability) = open.capabilities.four_octet_asn.filter(|&a| a != open.asn) {
        return Err(CodecError::AsnMismatch {
            asn: open.asn,
            capability,
        });
    }
    frame(MSG_OPEN, &zettabgp::open_body(open)?)
}
