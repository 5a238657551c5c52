//! Which routes should be announced, and what must change on a session to get there. Pure:
//! health in, prefixes out; the daemon publishes the result to every session.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use crate::config::{RouteAttributes, ServiceConfig};
use crate::health::checker::Health;

/// The routes every session should advertise right now, with what each carries.
pub type DesiredRoutes = BTreeMap<IpNetwork, RouteAttributes>;

/// What the daemon publishes to every session: the desired routes, the prefixes whose
/// received paths each session keeps as sightings, and the sessions it has released (peer
/// name -> session number whose initial routes it read; see `bgp::fsm`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exports {
    pub routes: DesiredRoutes,
    pub watched: Arc<BTreeSet<IpNetwork>>,
    pub released: Arc<BTreeMap<String, u64>>,
}

impl Exports {
    /// The export one session sees.
    pub fn for_peer(&self, peer: &str) -> crate::bgp::fsm::Export {
        crate::bgp::fsm::Export {
            routes: self.routes.clone(),
            watched: Arc::clone(&self.watched),
            released: self.released.get(peer).copied(),
        }
    }
}

/// A service's prefixes are desired only while its health is `Up`. `Unknown` (no verdict yet)
/// and `Down` both keep them out: we never announce before the first successful check.
pub fn desired_routes(services: &[ServiceConfig], health: &[Health]) -> DesiredRoutes {
    services
        .iter()
        .zip(health)
        .filter(|(_, h)| **h == Health::Up)
        .flat_map(|(s, _)| s.prefixes.iter().map(|p| (*p, s.attributes.clone())))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn services() -> Vec<ServiceConfig> {
        config::test_config(
            r#"
[[service]]
name = "a"
prefixes = ["192.0.2.10/32", "2001:db8::10/128"]
med = 10
[service.mysql]
socket = "/a.sock"
user = "u"
[[service]]
name = "b"
prefixes = ["192.0.2.20/32"]
[service.mysql]
socket = "/b.sock"
user = "u"
"#,
        )
        .services
    }

    fn p(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn only_up_services_are_desired_with_their_attributes() {
        let s = services();
        assert!(desired_routes(&s, &[Health::Unknown, Health::Unknown]).is_empty());
        assert!(desired_routes(&s, &[Health::Down, Health::Unknown]).is_empty());
        let d = desired_routes(&s, &[Health::Up, Health::Down]);
        assert_eq!(
            d.keys().copied().collect::<Vec<_>>(),
            [p("192.0.2.10/32"), p("2001:db8::10/128")]
        );
        assert!(d.values().all(|a| a.med == Some(10)));
        let d = desired_routes(&s, &[Health::Down, Health::Up]);
        assert_eq!(d.keys().copied().collect::<Vec<_>>(), [p("192.0.2.20/32")]);
        assert_eq!(d[&p("192.0.2.20/32")].med, None);
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
