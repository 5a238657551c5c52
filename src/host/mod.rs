//! What the host does to client connections (docs/clients.md): the refusal of a service's
//! addresses while this host is not its announced primary (`refuse`, nftables), the reset of
//! the connections when a service stops being announced (`reset`, sock_diag), the pure
//! per-service machine that orders both around the announcements (`gate`), and the fallback
//! route a refusing host announces (`fallback_attributes`).

pub mod gate;
pub mod refuse;
pub mod reset;

use std::net::{IpAddr, Ipv4Addr};

use crate::bgp::message::Community;
use crate::config::{RouteAttributes, ServiceConfig};
use crate::safety::marks;

/// RFC 8326 GRACEFUL_SHUTDOWN (65535:0): FRR sets LOCAL_PREF 0 on eBGP routes that carry it;
/// elsewhere a filter can (docs/clients.md gives BIRD's).
pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
/// LOCAL_PREF of a fallback on iBGP sessions (where the AS_PATH does not grow): the lowest.
pub const FALLBACK_LOCAL_PREF: u32 = 0;

/// The addresses of a service's prefixes (host routes: one address each).
pub fn addresses(service: &ServiceConfig) -> Vec<IpAddr> {
    service.prefixes.iter().map(|p| p.ip()).collect()
}

/// What a fallback announcement of `service` carries: its own attributes, with the AS_PATH
/// `fallback_prepend` ASNs longer (eBGP), LOCAL_PREF 0 (iBGP), GRACEFUL_SHUTDOWN, and the
/// fallback marks instead of a primary's. It can never beat a primary's route of the same
/// service: longer path, lowest preference, and a community routers that set local-pref can
/// match.
pub fn fallback_attributes(
    service: &ServiceConfig,
    community_asn: u32,
    router_id: Ipv4Addr,
) -> RouteAttributes {
    let mut a = service.attributes.clone();
    a.as_path_prepend = a.as_path_prepend.saturating_add(service.fallback.prepend);
    a.local_pref = Some(FALLBACK_LOCAL_PREF);
    if !a.communities.contains(&GRACEFUL_SHUTDOWN) {
        a.communities.push(GRACEFUL_SHUTDOWN);
    }
    a.large_communities
        .extend(marks::fallback_marks(community_asn, router_id));
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::Claim;

    #[test]
    fn a_fallback_is_longer_least_preferred_and_marked_as_a_fallback() {
        let mut s = crate::config::test_config(
            r#"
[[service]]
name = "a"
prefixes = ["192.0.2.10/32", "2001:db8::10/128"]
as_path_prepend = 2
local_pref = 300
communities = ["65000:1"]
fallback_prepend = 12
[service.mysql]
socket = "/a.sock"
user = "u"
"#,
        )
        .services
        .remove(0);
        let rid: Ipv4Addr = "198.19.0.11".parse().unwrap();
        let a = fallback_attributes(&s, 4_200_000_000, rid);
        assert_eq!(a.as_path_prepend, 14);
        assert_eq!(a.local_pref, Some(0));
        assert_eq!(a.communities.len(), 2);
        assert!(a.communities.contains(&GRACEFUL_SHUTDOWN));
        assert_eq!(GRACEFUL_SHUTDOWN.to_string(), "65535:0");
        let mut p = crate::bgp::message::PathAttributes::new(
            crate::bgp::message::Origin::Igp,
            Default::default(),
            Default::default(),
        );
        p.large_communities = a.large_communities.clone();
        assert_eq!(
            marks::claim(&p, 4_200_000_000),
            Claim::Fallback {
                router_id: Some(rid)
            }
        );
        assert_eq!(
            addresses(&s),
            [
                "192.0.2.10".parse::<IpAddr>().unwrap(),
                "2001:db8::10".parse().unwrap()
            ]
        );
        s.fallback.prepend = 255;
        assert_eq!(fallback_attributes(&s, 1, rid).as_path_prepend, 255);
    }
}
