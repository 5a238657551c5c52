//! Which routes should be announced, and what must change on a session to get there. Pure:
//! health in, prefixes out; the daemon publishes the result to every session.

use std::collections::BTreeSet;

use ipnetwork::Ipv4Network;

use crate::config::ServiceConfig;
use crate::health::checker::Health;

/// The prefixes every session should advertise right now.
pub type DesiredRoutes = BTreeSet<Ipv4Network>;

/// A service's prefixes are desired only while its health is `Up`. `Unknown` (no verdict yet)
/// and `Down` both keep them out: we never announce before the first successful check.
pub fn desired_routes(services: &[ServiceConfig], health: &[Health]) -> DesiredRoutes {
    services
        .iter()
        .zip(health)
        .filter(|(_, h)| **h == Health::Up)
        .flat_map(|(s, _)| s.prefixes.iter().copied())
        .collect()
}

/// What a session must send to move its Adj-RIB-Out to `desired`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RibDiff {
    pub announce: Vec<Ipv4Network>,
    pub withdraw: Vec<Ipv4Network>,
}

impl RibDiff {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }
}

pub fn diff(rib_out: &BTreeSet<Ipv4Network>, desired: &DesiredRoutes) -> RibDiff {
    RibDiff {
        announce: desired.difference(rib_out).copied().collect(),
        withdraw: rib_out.difference(desired).copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn services() -> Vec<ServiceConfig> {
        let text = r#"
[bgp]
asn = 4200000001
router_id = "198.19.0.11"
[[bgp.peer]]
name = "tor1"
address = "198.18.1.0"
remote_asn = 65001
[[service]]
name = "a"
prefixes = ["192.0.2.10/32", "192.0.2.11/32"]
[service.mysql]
socket = "/a.sock"
user = "u"
[[service]]
name = "b"
prefixes = ["192.0.2.20/32"]
[service.mysql]
socket = "/b.sock"
user = "u"
"#;
        config::parse(text).unwrap().services
    }

    fn p(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    #[test]
    fn only_up_services_are_desired() {
        let s = services();
        assert!(desired_routes(&s, &[Health::Unknown, Health::Unknown]).is_empty());
        assert!(desired_routes(&s, &[Health::Down, Health::Unknown]).is_empty());
        let d = desired_routes(&s, &[Health::Up, Health::Down]);
        assert_eq!(d, [p("192.0.2.10/32"), p("192.0.2.11/32")].into());
        let d = desired_routes(&s, &[Health::Down, Health::Up]);
        assert_eq!(d, [p("192.0.2.20/32")].into());
    }

    #[test]
    fn diff_announces_missing_and_withdraws_extra() {
        let rib: BTreeSet<_> = [p("192.0.2.10/32"), p("192.0.2.11/32")].into();
        let want: DesiredRoutes = [p("192.0.2.11/32"), p("192.0.2.20/32")].into();
        let d = diff(&rib, &want);
        assert_eq!(d.announce, [p("192.0.2.20/32")]);
        assert_eq!(d.withdraw, [p("192.0.2.10/32")]);
        assert!(diff(&want, &want).is_empty());
    }
}
