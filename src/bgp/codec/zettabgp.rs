//! zettabgp's one role: it writes the OPEN and UPDATE messages we send. It never reads
//! anything from the network (it panics on some malformed UPDATEs and loops forever on
//! others), and what it would write wrong is prepared by `encode.rs` as raw attributes
//! (AS_PATH, COMMUNITIES, LARGE_COMMUNITY, MP_REACH_NLRI/MP_UNREACH_NLRI) or checked here
//! first (sizes, and the few capability values it cannot express). docs/bgp.md has the list.
//! This is the only file that uses the crate.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use zettabgp::prelude::{
    BgpAddrV4, BgpAddrs, BgpAttrItem, BgpAttrOrigin, BgpAttrUnknown, BgpCapAddPath, BgpCapGR,
    BgpCapability, BgpLocalpref, BgpMED, BgpMessage, BgpNextHop, BgpOpenMessage, BgpOrigin,
    BgpSessionParams, BgpTransportMode, BgpUpdateMessage,
};

use super::encode::OutAttr;
use super::frame::MAX_BODY_LEN;
use super::{CodecContext, CodecError};
use crate::bgp::message::{Capabilities, GracefulRestart, Open, Origin};

fn zettabgp_error(what: &'static str) -> impl Fn(zettabgp::error::BgpError) -> CodecError {
    move |e| CodecError::Zettabgp {
        what,
        detail: e.to_string(),
    }
}

fn params(asn: u32, hold_time: u16, router_id: Ipv4Addr, four_octet_asn: bool) -> BgpSessionParams {
    // IPv4 mode: IPv6 travels only in MP attributes, which we write ourselves.
    let mut params = BgpSessionParams::new(
        asn,
        hold_time,
        BgpTransportMode::IPv4,
        router_id,
        Vec::new(),
    );
    params.has_as32bit = four_octet_asn;
    // We never send path identifiers; guessing them from the bytes misreads ordinary NLRI.
    params.fuzzy_pathid = false;
    params
}

/// The OPEN body (version, My AS with AS_TRANS for a 4-byte ASN, hold time, BGP identifier,
/// one optional parameter per capability). The caller has checked the ASN and identifier.
pub(super) fn open_body(open: &Open) -> Result<Vec<u8>, CodecError> {
    let caps = capabilities(open.asn, &open.capabilities)?;
    // zettabgp sums the parameters into a u8 without checking: 2 bytes of parameter header,
    // 2 of capability header, then the value.
    let len: usize = caps.iter().map(|c| 4 + capability_value_len(c)).sum();
    if len > 255 {
        return Err(CodecError::TooManyCapabilities { len });
    }
    let msg = BgpOpenMessage {
        as_num: open.asn, // zettabgp writes AS_TRANS in "My AS" when this exceeds 65535
        hold_time: open.hold_time,
        router_id: open.router_id,
        caps,
    };
    let mut buf = vec![0u8; MAX_BODY_LEN];
    let n = msg
        .encode_to(
            &params(open.asn, open.hold_time, open.router_id, true),
            &mut buf,
        )
        .map_err(zettabgp_error("OPEN"))?;
    Ok(buf.get(..n).unwrap_or_default().to_vec())
}

fn capability_value_len(cap: &BgpCapability) -> usize {
    match cap {
        BgpCapability::CapRR => 0,
        BgpCapability::CapAddPath(v) => 4 * v.len(),
        BgpCapability::CapGR { afis, .. } => 2 + 4 * afis.len(),
        _ => 4, // multiprotocol, 4-octet ASN
    }
}

/// Our capabilities as zettabgp's, in the order sent. The 4-octet-ASN capability is always
/// sent: it is how a peer learns our real ASN when "My AS" says AS_TRANS.
fn capabilities(asn: u32, c: &Capabilities) -> Result<Vec<BgpCapability>, CodecError> {
    let mut caps = Vec::with_capacity(c.multiprotocol.len() + 4);
    for &(afi, safi) in &c.multiprotocol {
        caps.push(
            BgpCapability::from_afi_safi(afi, safi)
                .ok_or(CodecError::UnsupportedFamily { afi, safi })?,
        );
    }
    if c.route_refresh {
        caps.push(BgpCapability::CapRR);
    }
    caps.push(BgpCapability::CapASN32(asn));
    if !c.add_path.is_empty() {
        let mut entries = Vec::with_capacity(c.add_path.len());
        for a in &c.add_path {
            if !(1..=3).contains(&a.send_receive) {
                let what = format!("ADD-PATH Send/Receive {} (1, 2 or 3)", a.send_receive);
                return Err(CodecError::UnencodableCapability(what));
            }
            entries.push(BgpCapAddPath {
                afi: a.afi,
                safi: a.safi,
                send: a.send_receive & 2 != 0,
                receive: a.send_receive & 1 != 0,
            });
        }
        caps.push(BgpCapability::CapAddPath(entries));
    }
    if let Some(gr) = &c.graceful_restart {
        caps.push(graceful_restart(gr)?);
    }
    Ok(caps)
}

/// zettabgp writes the Restart State flag and each family's Forwarding State flag only (not
/// RFC 8538's N bit), and refuses restart times over 12 bits: checked here, with our error.
fn graceful_restart(gr: &GracefulRestart) -> Result<BgpCapability, CodecError> {
    let unencodable = |what: String| Err(CodecError::UnencodableCapability(what));
    if gr.flags & !GracefulRestart::RESTART_STATE != 0 {
        return unencodable(format!("graceful restart flags 0x{:x} (only R)", gr.flags));
    }
    if gr.restart_time > 0x0fff {
        return unencodable(format!(
            "graceful restart time {} (12 bits)",
            gr.restart_time
        ));
    }
    let mut afis = Vec::with_capacity(gr.families.len());
    for &(afi, safi, flags) in &gr.families {
        if flags & !GracefulRestart::FORWARDING_STATE != 0 {
            return unencodable(format!(
                "graceful restart family flags 0x{flags:02x} (only F)"
            ));
        }
        afis.push(BgpCapGR {
            afi,
            safi,
            forwarding_state: flags != 0,
        });
    }
    Ok(BgpCapability::CapGR {
        restart_time: gr.restart_time,
        restart_state: gr.flags & GracefulRestart::RESTART_STATE != 0,
        afis,
    })
}

fn prefixes(list: &[Ipv4Network]) -> BgpAddrs {
    // network(): zettabgp copies the address bytes as they are, host bits included.
    BgpAddrs::IPV4U(
        list.iter()
            .map(|p| BgpAddrV4::new(p.network(), p.prefix()))
            .collect(),
    )
}

fn attribute(a: &OutAttr) -> BgpAttrItem {
    match a {
        OutAttr::Origin(o) => BgpAttrItem::Origin(BgpOrigin::new(match o {
            Origin::Igp => BgpAttrOrigin::Igp,
            Origin::Egp => BgpAttrOrigin::Egp,
            Origin::Incomplete => BgpAttrOrigin::Incomplete,
        })),
        OutAttr::NextHop(a) => BgpAttrItem::NextHop(BgpNextHop::new((*a).into())),
        OutAttr::Med(v) => BgpAttrItem::MED(BgpMED::new(*v)),
        OutAttr::LocalPref(v) => BgpAttrItem::LocalPref(BgpLocalpref::new(*v)),
        OutAttr::Raw {
            flags,
            type_code,
            value,
        } => {
            let mut unknown = BgpAttrUnknown::new(*type_code, *flags);
            unknown.value.clone_from(value);
            BgpAttrItem::Unknown(unknown)
        }
    }
}

/// An UPDATE body of `body_len` bytes (the caller checked it fits in a message: zettabgp has
/// no limit and panics on a short buffer): IPv4 withdrawals, the attributes in the order
/// given, IPv4 NLRI.
pub(super) fn update_body(
    withdrawn: &[Ipv4Network],
    attrs: &[OutAttr],
    nlri: &[Ipv4Network],
    ctx: CodecContext,
    body_len: usize,
) -> Result<Vec<u8>, CodecError> {
    let msg = BgpUpdateMessage {
        updates: prefixes(nlri),
        withdraws: prefixes(withdrawn),
        attrs: attrs.iter().map(attribute).collect(),
    };
    let mut buf = vec![0u8; MAX_BODY_LEN];
    let params = params(0, 0, Ipv4Addr::UNSPECIFIED, ctx.four_octet_asn);
    let n = msg
        .encode_to(&params, &mut buf)
        .map_err(zettabgp_error("UPDATE"))?;
    if n != body_len {
        return Err(CodecError::Zettabgp {
            what: "UPDATE",
            detail: format!("wrote {n} bytes, expected {body_len}"),
        });
    }
    Ok(buf.get(..n).unwrap_or_default().to_vec())
}

/// What zettabgp gets wrong, each pinned by a test that fails once upstream fixes it (then a
/// workaround may go). The numbers are those of docs/bgp.md's table.
#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::Ipv6Addr;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use zettabgp::prelude::{BgpASpath, BgpAddr, BgpLargeCommunity, BgpLargeCommunityList};

    use super::*;
    use crate::bgp::codec::frame::HEADER_LEN;
    use crate::bgp::codec::tests::{capture, from_hex};

    fn four() -> BgpSessionParams {
        params(0, 0, Ipv4Addr::UNSPECIFIED, true)
    }

    /// AS_PATH is written as an AS_SET: we write it ourselves.
    #[test]
    fn still_encodes_as_path_as_as_set() {
        let path: BgpASpath = vec![4_200_000_001].into();
        let mut buf = [0u8; 64];
        let n = BgpAttrItem::ASPath(path)
            .encode_to(&four(), &mut buf)
            .unwrap();
        // Segment type 1 (AS_SET) where 2 (AS_SEQUENCE) is meant.
        assert_eq!(&buf[..n], &from_hex("5002 0006 01 01 fa56ea01")[..]);
    }

    /// LARGE_COMMUNITY goes out with the Partial bit: we write it ourselves.
    #[test]
    fn still_sets_partial_bit_on_large_communities() {
        let mut list = BgpLargeCommunityList {
            value: BTreeSet::new(),
        };
        list.value.insert(BgpLargeCommunity {
            ga: 1,
            ldp1: 2,
            ldp2: 3,
        });
        let mut buf = [0u8; 64];
        BgpAttrItem::LargeCommunityList(list)
            .encode_to(&four(), &mut buf)
            .unwrap();
        assert_eq!(buf[0] & 0x20, 0x20, "flags 0x{:02x}", buf[0]);
    }

    /// Decoding FRR's OPEN fails on its FQDN capability with a domain name: we decode OPEN.
    #[test]
    fn alone_rejects_frr_open() {
        let bytes = capture("frr-8.4-open.hex");
        let mut msg = BgpOpenMessage::new();
        assert!(msg.decode_from(&four(), &bytes[HEADER_LEN..]).is_err());
    }

    /// FRR's 32-byte IPv6 next hop decodes to the global address alone: we decode UPDATEs.
    #[test]
    fn alone_drops_frr_link_local_next_hop() {
        let bytes = capture("frr-8.4-ipv6-update.hex");
        let mut msg = BgpUpdateMessage::new();
        msg.decode_from(&four(), &bytes[HEADER_LEN..]).unwrap();
        let global: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        assert_eq!(msg.get_mpupdates().unwrap().nexthop, BgpAddr::V6(global));
    }

    /// A short MP_REACH_NLRI makes the decoder panic (the reason it never reads network input;
    /// an AS_PATH segment leaving one trailing byte even loops forever, not tried here).
    #[test]
    fn decoder_panics_on_a_short_mp_reach_nlri() {
        let body = from_hex("0000 0008 800e 05 0001 01 04 c6");
        let result = catch_unwind(AssertUnwindSafe(|| {
            BgpUpdateMessage::new().decode_from(&four(), &body)
        }));
        assert!(result.is_err(), "no panic: {result:?}");
    }

    #[test]
    fn graceful_restart_values_it_cannot_write_are_refused() {
        let gr = |flags, restart_time, families| GracefulRestart {
            flags,
            restart_time,
            families,
        };
        for bad in [
            gr(GracefulRestart::NOTIFICATION, 0, vec![]),
            gr(0, 4096, vec![]),
            gr(0, 0, vec![(1, 1, 0x40)]),
        ] {
            assert!(
                matches!(
                    graceful_restart(&bad),
                    Err(CodecError::UnencodableCapability(_))
                ),
                "{bad:?}"
            );
        }
        let ok = gr(GracefulRestart::RESTART_STATE, 4095, vec![(2, 1, 0x80)]);
        assert!(graceful_restart(&ok).is_ok());
    }
}
