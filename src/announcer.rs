//! Which routes should be announced. Pure: health in, prefixes out; the daemon publishes the
//! result to every session, and each session's export (`bgp/export.rs`) advertises it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use crate::bgp::export::Export;
use crate::config::{RouteAttributes, ServiceConfig};
use crate::health::checker::Health;

/// The routes every session should advertise right now, with what each carries.
pub type DesiredRoutes = BTreeMap<IpNetwork, RouteAttributes>;

/// What the daemon publishes to every session: the desired routes, the prefixes whose
/// received paths each session keeps as sightings, and the sessions it has released (peer
/// name -> session number whose initial routes it read; see `bgp::export`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exports {
    pub routes: DesiredRoutes,
    pub watched: Arc<BTreeSet<IpNetwork>>,
    pub released: Arc<BTreeMap<String, u64>>,
    /// Routes held while their refusal is installed: kept where advertised, not announced.
    pub held: Arc<BTreeSet<IpNetwork>>,
}

impl Exports {
    /// The export one session sees.
    pub fn for_peer(&self, peer: &str) -> Export {
        Export {
            routes: self.routes.clone(),
            watched: Arc::clone(&self.watched),
            released: self.released.get(peer).copied(),
            held: Arc::clone(&self.held),
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
}
