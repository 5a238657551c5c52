//! UPDATE decoding: the fields, the prefixes (with RFC 7911 path identifiers where the session
//! negotiated ADD-PATH), the attribute walk, RFC 7606's treatment of what it found, and
//! End-of-RIB markers (RFC 4724 §2).

use super::attributes::{self, code, MpReach, MpUnreach, Walk};
use super::error::{DecodeError, Treatment, UpdateError};
use super::nlri::{self, Prefixes};
use super::reader::Reader;
use super::CodecContext;
use crate::bgp::message::{Family, NextHop, PathAttributes, Update, UpdateSubcode};

fn malformed_attribute_list(why: &str) -> DecodeError {
    UpdateError::reset(UpdateSubcode::MalformedAttributeList, &[], why).into()
}

fn invalid_network_field(field: &str) -> DecodeError {
    let why = format!("{field} unparseable (RFC 7606 §5.3)");
    UpdateError::reset(UpdateSubcode::InvalidNetworkField, &[], why).into()
}

pub(super) fn decode_update(body: &[u8], ctx: CodecContext) -> Result<Update, DecodeError> {
    let mut r = Reader::new(body);
    let past_end = "a length field runs past the end of the message (RFC 7606 §3.b)";
    let withdrawn_raw = r
        .u16()
        .and_then(|len| r.take(usize::from(len)))
        .ok_or_else(|| malformed_attribute_list(past_end))?;
    let attrs_raw = r
        .u16()
        .and_then(|len| r.take(usize::from(len)))
        .ok_or_else(|| malformed_attribute_list(past_end))?;
    let nlri_raw = r.rest();

    // RFC 7606 §3.i/§5.3: treat-as-withdraw needs every prefix, so unparseable ones reset.
    let withdrawn = nlri::parse(withdrawn_raw, Family::Ipv4Unicast, ctx.add_path_ipv4)
        .ok_or_else(|| invalid_network_field("withdrawn routes"))?;
    let nlri = nlri::parse(nlri_raw, Family::Ipv4Unicast, ctx.add_path_ipv4)
        .ok_or_else(|| invalid_network_field("NLRI"))?;
    let mut walk = attributes::walk(attrs_raw, !nlri.prefixes.is_empty(), ctx)?;
    let end_of_rib = end_of_rib(withdrawn_raw, attrs_raw, nlri_raw, &walk);

    let mp_reachable = walk.mp_reach.as_ref().is_some_and(|m| m.has_nlri);
    if !nlri.prefixes.is_empty() || mp_reachable {
        required_attributes(&mut walk, !nlri.prefixes.is_empty());
    } else if let Some(e) = walk
        .findings
        .iter()
        .find(|f| f.treatment == Treatment::TreatAsWithdraw)
    {
        // RFC 7606 §5.2: an UPDATE with attributes but no reachable NLRI has nothing to
        // treat as withdrawn, so its errors fall back to a session reset.
        return Err(e.escalated());
    }
    // A next hop that is well-formed but unusable (0/8, 127/8, multicast, our own address) is
    // a semantic error: RFC 4271 §6.3 says to ignore the route, not to reset the session, so
    // that check belongs to route import, not to the codec.
    let mut update = assemble(withdrawn, nlri, walk)?;
    update.end_of_rib = end_of_rib;
    Ok(update)
}

/// RFC 4724 §2: an UPDATE with nothing in it is IPv4 unicast's End-of-RIB, and one whose only
/// attribute is an MP_UNREACH_NLRI without withdrawn routes is that family's (unknown
/// families are ignored).
fn end_of_rib(
    withdrawn_raw: &[u8],
    attrs_raw: &[u8],
    nlri_raw: &[u8],
    walk: &Walk,
) -> Option<Family> {
    if !withdrawn_raw.is_empty() || !nlri_raw.is_empty() {
        return None;
    }
    if attrs_raw.is_empty() {
        return Some(Family::Ipv4Unicast);
    }
    match (&walk.mp_unreach, walk.count, &walk.findings[..]) {
        (Some(MpUnreach { family, withdrawn }), 1, []) if withdrawn.prefixes.is_empty() => *family,
        _ => None,
    }
}

/// RFC 7606 §3.d: ORIGIN and AS_PATH with any NLRI, NEXT_HOP with classic NLRI (RFC 4760
/// §3); a missing one is treat-as-withdraw.
fn required_attributes(walk: &mut Walk, classic_nlri: bool) {
    for (type_code, needed) in [
        (code::ORIGIN, true),
        (code::AS_PATH, true),
        (code::NEXT_HOP, classic_nlri),
    ] {
        if needed && !walk.seen(type_code) {
            walk.findings.push(UpdateError::withdraw(
                UpdateSubcode::MissingWellKnownAttribute,
                &[type_code],
                format!("{} missing (RFC 7606 §3.d)", attributes::name(type_code)),
            ));
        }
    }
}

/// The Update from the validated parts: withdrawn routes are the classic ones then
/// MP_UNREACH_NLRI's, NLRI the classic ones then MP_REACH_NLRI's, each with its path
/// identifiers; treat-as-withdraw moves the NLRI to the withdrawn routes.
fn assemble(
    mut withdrawn: Prefixes,
    mut nlri: Prefixes,
    mut walk: Walk,
) -> Result<Update, DecodeError> {
    let classic_nlri = !nlri.prefixes.is_empty();
    let mut with_path_ids = withdrawn.carries_path_ids() || nlri.carries_path_ids();
    if let Some(mut mp) = walk.mp_unreach.take() {
        with_path_ids |= mp.withdrawn.carries_path_ids();
        withdrawn.append(&mut mp.withdrawn);
    }
    let mut mp_next_hop = NextHop::default();
    if let Some(MpReach {
        next_hop,
        nlri: mut reach,
        ..
    }) = walk.mp_reach.take()
    {
        if !reach.prefixes.is_empty() {
            with_path_ids |= reach.carries_path_ids();
            mp_next_hop = next_hop;
            nlri.append(&mut reach);
        }
    }
    let treat_as_withdraw = walk
        .findings
        .iter()
        .any(|f| f.treatment == Treatment::TreatAsWithdraw);
    let errors = std::mem::take(&mut walk.findings)
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut attributes = None;
    if treat_as_withdraw {
        withdrawn.append(&mut nlri);
    } else if !nlri.prefixes.is_empty() {
        attributes = Some(path_attributes(walk, classic_nlri, mp_next_hop)?);
    }
    let keep = |ids: Vec<u32>| if with_path_ids { ids } else { Vec::new() };
    Ok(Update {
        withdrawn: withdrawn.prefixes,
        attributes,
        nlri: nlri.prefixes,
        withdrawn_path_ids: keep(withdrawn.path_ids),
        nlri_path_ids: keep(nlri.path_ids),
        end_of_rib: None,
        errors,
    })
}

/// The attributes of an UPDATE with reachable NLRI that passed.
fn path_attributes(
    walk: Walk,
    classic_nlri: bool,
    mp_next_hop: NextHop,
) -> Result<PathAttributes, DecodeError> {
    let (Some(origin), Some(as_path)) = (walk.origin, walk.as_path) else {
        tracing::error!("ORIGIN or AS_PATH passed validation but was not kept");
        return Err(malformed_attribute_list("ORIGIN or AS_PATH lost"));
    };
    // With both kinds of IPv4 NLRI, the classic NEXT_HOP wins: `Update` has one set.
    let ipv4 = if classic_nlri {
        walk.next_hop
    } else {
        mp_next_hop.ipv4
    };
    Ok(PathAttributes {
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
    })
}
