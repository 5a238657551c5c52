//! Adj-RIB-In: what one peer sent us, per prefix, with its attributes and when it arrived.
//! Kept for the operator (`show routes received`) and for split-brain detection; nothing
//! from it is installed anywhere. Attributes are shared between the prefixes of one UPDATE,
//! so a large table costs little more than its keys.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use ipnetwork::IpNetwork;

use super::message::PathAttributes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRoute {
    pub attributes: Arc<PathAttributes>,
    pub received_at: SystemTime,
}

#[derive(Debug, Default, Clone)]
pub struct AdjRibIn {
    routes: BTreeMap<IpNetwork, ReceivedRoute>,
}

impl AdjRibIn {
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn get(&self, prefix: &IpNetwork) -> Option<&ReceivedRoute> {
        self.routes.get(prefix)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&IpNetwork, &ReceivedRoute)> {
        self.routes.iter()
    }

    pub fn clear(&mut self) {
        self.routes.clear();
    }

    pub fn withdraw(&mut self, prefixes: &[IpNetwork]) {
        for p in prefixes {
            self.routes.remove(p);
        }
    }

    /// Replaces (implicit withdraw, RFC 4271 §3.1) or adds `prefixes` with one shared
    /// attribute set.
    pub fn announce(&mut self, prefixes: &[IpNetwork], attributes: PathAttributes, at: SystemTime) {
        let attributes = Arc::new(attributes);
        for p in prefixes {
            let route = ReceivedRoute {
                attributes: Arc::clone(&attributes),
                received_at: at,
            };
            self.routes.insert(*p, route);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::message::{AsPath, NextHop, Origin};

    fn attrs(med: u32) -> PathAttributes {
        let mut a = PathAttributes::new(
            Origin::Igp,
            AsPath::sequence(vec![65001]),
            NextHop {
                ipv4: Some("198.18.1.0".parse().unwrap()),
                ..NextHop::default()
            },
        );
        a.med = Some(med);
        a
    }

    fn p(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn announce_replaces_and_withdraw_removes() {
        let mut rib = AdjRibIn::default();
        let t0 = SystemTime::UNIX_EPOCH;
        rib.announce(&[p("198.18.99.0/24"), p("0.0.0.0/0")], attrs(1), t0);
        assert_eq!(rib.len(), 2);
        let t1 = t0 + std::time::Duration::from_secs(5);
        rib.announce(&[p("0.0.0.0/0")], attrs(2), t1);
        assert_eq!(rib.len(), 2);
        let r = rib.get(&p("0.0.0.0/0")).unwrap();
        assert_eq!((r.attributes.med, r.received_at), (Some(2), t1));
        rib.withdraw(&[p("198.18.99.0/24"), p("2001:db8::/32")]);
        assert_eq!(rib.len(), 1);
        rib.clear();
        assert!(rib.is_empty());
    }

    #[test]
    fn prefixes_of_one_update_share_their_attributes() {
        let mut rib = AdjRibIn::default();
        rib.announce(
            &[p("198.18.99.0/24"), p("198.18.98.0/24")],
            attrs(1),
            SystemTime::UNIX_EPOCH,
        );
        let a = &rib.get(&p("198.18.99.0/24")).unwrap().attributes;
        let b = &rib.get(&p("198.18.98.0/24")).unwrap().attributes;
        assert!(Arc::ptr_eq(a, b));
    }
}
