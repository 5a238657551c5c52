//! Route export: what a session advertises. Pure; the FSM calls it when the desired routes,
//! the release or the session change.
//!
//! - [`Export`]: what the daemon asks of every session (desired routes, watched prefixes,
//!   released sessions).
//! - [`AdjRibOut`]: what this session advertised, with the attributes it sent; moved to the
//!   desired routes by a [`diff`], whose changes are grouped into UPDATEs.
//! - [`path_attributes`]: the attributes a session gives a route (AS_PATH, next hop, MED,
//!   LOCAL_PREF on iBGP, communities), or none when it cannot carry it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use super::fsm::Negotiated;
use super::message::{AsPath, Family, NextHop, Origin, PathAttributes, Update};
use super::reason::Warning;
use crate::announcer::DesiredRoutes;
use crate::config::RouteAttributes;

/// RFC 4271 requires LOCAL_PREF on iBGP; this is what routers assume when it is missing.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What the daemon asks of every session; one value shared by all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    pub routes: DesiredRoutes,
    /// Prefixes whose every received path is kept as a sighting (primary service prefixes).
    pub watched: Arc<BTreeSet<IpNetwork>>,
    /// The session (by its `established_transitions` number) the daemon has released: it read
    /// that session's initial routes. Routes are announced only on a released session.
    pub released: Option<u64>,
    /// Prefixes withdrawn by the rules whose route is held until this host refuses their
    /// addresses (docs/clients.md): kept where already advertised, never newly announced.
    pub held: Arc<BTreeSet<IpNetwork>>,
}

/// The session's facts the attributes depend on.
#[derive(Debug, Clone, Copy)]
pub struct ExportPolicy<'a> {
    pub local_asn: u32,
    pub ibgp: bool,
    /// Per-peer next hops (else the session's own addresses are used).
    pub next_hop_ipv4: Option<Ipv4Addr>,
    pub next_hop_ipv6: Option<Ipv6Addr>,
    pub negotiated: &'a Negotiated,
}

/// What a session advertised, with the attributes it sent.
#[derive(Debug, Clone, Default)]
pub struct AdjRibOut {
    routes: BTreeMap<IpNetwork, PathAttributes>,
    /// Desired prefixes this session cannot carry, already reported.
    warned_unroutable: BTreeSet<IpNetwork>,
}

/// What one sync sends and reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub updates: Vec<Update>,
    /// Desired prefixes this session cannot carry, said once per session.
    pub warning: Option<Warning>,
}

impl AdjRibOut {
    pub fn routes(&self) -> &BTreeMap<IpNetwork, PathAttributes> {
        &self.routes
    }

    /// The session ended: the peer dropped what we advertised.
    pub fn clear(&mut self) {
        self.routes.clear();
        self.warned_unroutable.clear();
    }

    /// Brings the Adj-RIB-Out to `desired`: one UPDATE for the withdrawals and one per
    /// distinct attribute set (the driver splits them into frames that fit). A `held` prefix
    /// keeps the route this session advertised, unchanged, and is not announced where it was
    /// not: a session that comes up while a withdraw waits for its refusal gets nothing.
    pub fn sync(
        &mut self,
        desired: &DesiredRoutes,
        held: &BTreeSet<IpNetwork>,
        policy: &ExportPolicy,
    ) -> Synced {
        let mut want = BTreeMap::new();
        let mut unroutable = Vec::new();
        for (prefix, attrs) in desired {
            if held.contains(prefix) {
                if let Some(sent) = self.routes.get(prefix) {
                    want.insert(*prefix, sent.clone());
                }
                continue;
            }
            match path_attributes(prefix, attrs, policy) {
                Some(a) => {
                    want.insert(*prefix, a);
                }
                None => unroutable.push(*prefix),
            }
        }
        let d = diff(&self.routes, &want);
        for p in &d.withdraw {
            self.routes.remove(p);
        }
        for (p, a) in &d.announce {
            self.routes.insert(*p, a.clone());
        }
        // Say once per session which routes this peer cannot get, not on every change.
        let new_unroutable: Vec<IpNetwork> = unroutable
            .into_iter()
            .filter(|p| self.warned_unroutable.insert(*p))
            .collect();
        Synced {
            updates: group_updates(d.withdraw, d.announce.into_iter().collect()),
            warning: (!new_unroutable.is_empty()).then_some(Warning::Unroutable(new_unroutable)),
        }
    }

    /// Everything advertised in `family` again (a ROUTE-REFRESH from the peer).
    pub fn refresh(&self, family: Family) -> Vec<Update> {
        let routes = self
            .routes
            .iter()
            .filter(|(p, _)| Family::of(p) == family)
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        group_updates(Vec::new(), routes)
    }

    /// Forgets every route and returns the UPDATE that withdraws them, if there were any.
    pub fn withdraw_all(&mut self) -> Option<Update> {
        if self.routes.is_empty() {
            return None;
        }
        let withdrawn = std::mem::take(&mut self.routes).into_keys().collect();
        Some(Update {
            withdrawn,
            ..Update::default()
        })
    }
}

/// The path attributes a session gives a route, or None when the session has no next hop
/// for its family, or did not negotiate the family (the route is then not sent to this peer).
pub fn path_attributes(
    prefix: &IpNetwork,
    a: &RouteAttributes,
    policy: &ExportPolicy,
) -> Option<PathAttributes> {
    let family = Family::of(prefix);
    if !policy.negotiated.families.contains(&family) {
        return None;
    }
    let next_hop = next_hop(family, a, policy)?;
    let as_path = if policy.ibgp {
        AsPath::default()
    } else {
        let count = 1 + usize::from(a.as_path_prepend);
        AsPath::sequence(vec![policy.local_asn; count])
    };
    let mut attrs = PathAttributes::new(Origin::Igp, as_path, next_hop);
    attrs.med = a.med;
    attrs.local_pref = policy
        .ibgp
        .then(|| a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
    attrs.communities = a.communities.clone();
    attrs.large_communities = a.large_communities.clone();
    Some(attrs)
}

/// The service's next hop, else the peer's, else the session's own address (of the
/// interface for the other family; for IPv6 over a link-local session, the interface's
/// global address plus the link-local one).
fn next_hop(family: Family, a: &RouteAttributes, policy: &ExportPolicy) -> Option<NextHop> {
    let n = policy.negotiated;
    Some(match family {
        Family::Ipv4Unicast => {
            let local = match n.local_address {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => n.interface.ipv4,
            };
            let ipv4 = a.next_hop_ipv4.or(policy.next_hop_ipv4).or(local)?;
            NextHop {
                ipv4: Some(ipv4),
                ..NextHop::default()
            }
        }
        Family::Ipv6Unicast => {
            let (local_global, link_local) = match n.local_address {
                IpAddr::V6(l) if l.is_unicast_link_local() => (None, Some(l)),
                IpAddr::V6(l) => (Some(l), None),
                IpAddr::V4(_) => (None, None),
            };
            let global = a
                .next_hop_ipv6
                .or(policy.next_hop_ipv6)
                .or(local_global)
                .or(n.interface.ipv6_global)?;
            NextHop {
                ipv6: Some(global),
                ipv6_link_local: link_local,
                ..NextHop::default()
            }
        }
    })
}

/// What a session must send to move its Adj-RIB-Out (what it advertised, with the
/// attributes it sent) to `desired`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RibDiff<A> {
    /// New prefixes, and prefixes whose attributes changed (re-announced, RFC 4271 §9.1.4).
    pub announce: Vec<(IpNetwork, A)>,
    pub withdraw: Vec<IpNetwork>,
}

impl<A> RibDiff<A> {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }
}

/// `desired` maps prefixes to what we want them to carry, already in the session's own terms
/// (the session turns service attributes into path attributes before diffing).
pub fn diff<A: Clone + PartialEq>(
    rib_out: &BTreeMap<IpNetwork, A>,
    desired: &BTreeMap<IpNetwork, A>,
) -> RibDiff<A> {
    RibDiff {
        announce: desired
            .iter()
            .filter(|(p, a)| rib_out.get(p) != Some(a))
            .map(|(p, a)| (*p, a.clone()))
            .collect(),
        withdraw: rib_out
            .keys()
            .filter(|p| !desired.contains_key(p))
            .copied()
            .collect(),
    }
}

/// Withdrawals in one UPDATE, announcements grouped by identical attributes.
fn group_updates(
    withdraw: Vec<IpNetwork>,
    announce: BTreeMap<IpNetwork, PathAttributes>,
) -> Vec<Update> {
    let mut updates = Vec::new();
    if !withdraw.is_empty() {
        updates.push(Update {
            withdrawn: withdraw,
            ..Update::default()
        });
    }
    let mut groups: Vec<(PathAttributes, Vec<IpNetwork>)> = Vec::new();
    for (prefix, attrs) in announce {
        match groups.iter_mut().find(|(a, _)| *a == attrs) {
            Some((_, prefixes)) => prefixes.push(prefix),
            None => groups.push((attrs, vec![prefix])),
        }
    }
    for (attrs, nlri) in groups {
        updates.push(Update {
            attributes: Some(attrs),
            nlri,
            ..Update::default()
        });
    }
    updates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn diff_announces_missing_and_changed_and_withdraws_extra() {
        let rib: BTreeMap<_, _> = [(p("192.0.2.10/32"), 1), (p("192.0.2.11/32"), 1)].into();
        let want: BTreeMap<_, _> = [(p("192.0.2.11/32"), 2), (p("192.0.2.20/32"), 1)].into();
        let d = diff(&rib, &want);
        assert_eq!(
            d.announce,
            [(p("192.0.2.11/32"), 2), (p("192.0.2.20/32"), 1)]
        );
        assert_eq!(d.withdraw, [p("192.0.2.10/32")]);
        assert!(diff(&want, &want).is_empty());
    }
}
