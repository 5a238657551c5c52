//! The marks primaryd puts on the routes it announces, and reads on the routes it receives:
//! RFC 8092 large communities whose Global Administrator is `[bgp] community_asn` (the same on
//! every DB host):
//!
//! | community | meaning |
//! |---|---|
//! | `ASN:1:TERM` | a primary's announcement, with its promotion term (0: no term table) |
//! | `ASN:2:0` | a fallback announcement, never a primary |
//! | `ASN:3:ROUTER_ID` | the announcing host's BGP router id, as a 32-bit number |
//!
//! Pure: attributes in, a [`Claim`] out.

use std::fmt;
use std::net::Ipv4Addr;

use crate::bgp::message::{LargeCommunity, PathAttributes};

/// `ASN:1:TERM`.
pub const KIND_PRIMARY: u32 = 1;
/// `ASN:2:0`.
pub const KIND_FALLBACK: u32 = 2;
/// `ASN:3:ROUTER_ID`.
pub const KIND_ANNOUNCER: u32 = 3;

/// What a received route for one of our primary prefixes says about whoever announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Another primaryd's primary announcement. `term` 0: that host has no term table.
    Primary {
        term: u32,
        router_id: Option<Ipv4Addr>,
    },
    /// A fallback announcement: never counts as a second primary.
    Fallback { router_id: Option<Ipv4Addr> },
    /// A route with no primaryd marks (a static route, another speaker): its term cannot be
    /// read.
    Unmarked,
}

impl Claim {
    /// The announcing host's router id, when the route names it.
    pub fn router_id(&self) -> Option<Ipv4Addr> {
        match self {
            Claim::Primary { router_id, .. } | Claim::Fallback { router_id } => *router_id,
            Claim::Unmarked => None,
        }
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claim::Primary { term: 0, .. } => f.write_str("primary, no term"),
            Claim::Primary { term, .. } => write!(f, "primary, term {term}"),
            Claim::Fallback { .. } => f.write_str("fallback"),
            Claim::Unmarked => f.write_str("no primaryd marks"),
        }
    }
}

/// The large communities that mark our primary announcement of a service.
pub fn primary_marks(asn: u32, term: u32, router_id: Ipv4Addr) -> [LargeCommunity; 2] {
    [
        mark(asn, KIND_PRIMARY, term),
        mark(asn, KIND_ANNOUNCER, u32::from(router_id)),
    ]
}

/// The large communities that mark a fallback announcement.
pub fn fallback_marks(asn: u32, router_id: Ipv4Addr) -> [LargeCommunity; 2] {
    [
        mark(asn, KIND_FALLBACK, 0),
        mark(asn, KIND_ANNOUNCER, u32::from(router_id)),
    ]
}

fn mark(global: u32, local1: u32, local2: u32) -> LargeCommunity {
    LargeCommunity {
        global,
        local1,
        local2,
    }
}

/// Reads the marks of a received route. A route that carries both a primary and a fallback
/// mark is read as a primary (the stronger claim: when in doubt, assume a competitor). With
/// several primary marks, the highest term counts.
pub fn claim(attrs: &PathAttributes, asn: u32) -> Claim {
    let ours = attrs.large_communities.iter().filter(|c| c.global == asn);
    let (mut term, mut fallback, mut router_id) = (None::<u32>, false, None);
    for c in ours {
        match c.local1 {
            KIND_PRIMARY => term = Some(term.map_or(c.local2, |t| t.max(c.local2))),
            KIND_FALLBACK => fallback = true,
            KIND_ANNOUNCER => router_id = Some(Ipv4Addr::from(c.local2)),
            _ => {}
        }
    }
    match (term, fallback) {
        (Some(term), _) => Claim::Primary { term, router_id },
        (None, true) => Claim::Fallback { router_id },
        (None, false) => Claim::Unmarked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::message::{AsPath, NextHop, Origin};

    const ASN: u32 = 4_200_000_000;

    fn attrs(marks: &[LargeCommunity]) -> PathAttributes {
        let mut a = PathAttributes::new(Origin::Igp, AsPath::default(), NextHop::default());
        a.large_communities = marks.to_vec();
        a
    }

    #[test]
    fn primary_marks_read_back_as_the_same_claim() {
        let rid: Ipv4Addr = "198.19.0.12".parse().unwrap();
        let c = claim(&attrs(&primary_marks(ASN, 8, rid)), ASN);
        assert_eq!(
            c,
            Claim::Primary {
                term: 8,
                router_id: Some(rid)
            }
        );
        assert_eq!(c.to_string(), "primary, term 8");
        let c = claim(&attrs(&fallback_marks(ASN, rid)), ASN);
        assert_eq!(
            c,
            Claim::Fallback {
                router_id: Some(rid)
            }
        );
    }

    #[test]
    fn marks_of_another_administrator_are_not_ours() {
        let rid: Ipv4Addr = "198.19.0.12".parse().unwrap();
        assert_eq!(
            claim(&attrs(&primary_marks(ASN + 1, 8, rid)), ASN),
            Claim::Unmarked
        );
        assert_eq!(claim(&attrs(&[]), ASN), Claim::Unmarked);
    }

    #[test]
    fn a_primary_mark_beats_a_fallback_mark_and_the_highest_term_counts() {
        let marks = [
            mark(ASN, KIND_FALLBACK, 0),
            mark(ASN, KIND_PRIMARY, 3),
            mark(ASN, KIND_PRIMARY, 9),
            mark(ASN, 77, 1),
        ];
        assert_eq!(
            claim(&attrs(&marks), ASN),
            Claim::Primary {
                term: 9,
                router_id: None
            }
        );
    }
}
