//! Adj-RIB-In: what one peer sent us, per prefix, with its attributes and when it arrived.
//! Kept for the operator (`show routes received`) and for split-brain detection; nothing
//! from it is installed anywhere. Attributes are shared between the prefixes of one UPDATE,
//! so a large table costs little more than its keys. Clones are snapshots that cost nothing
//! until the original changes (copy on write), so status can be published without copying.

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
    routes: Arc<BTreeMap<IpNetwork, ReceivedRoute>>,
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
        // A fresh map rather than make_mut: no point copying what is about to be dropped.
        self.routes = Arc::default();
    }

    pub fn withdraw(&mut self, prefixes: &[IpNetwork]) {
        if prefixes.iter().any(|p| self.routes.contains_key(p)) {
            let routes = Arc::make_mut(&mut self.routes);
            for p in prefixes {
                routes.remove(p);
            }
        }
    }

    /// Replaces (implicit withdraw, RFC 4271 §3.1) or adds `prefixes` with one shared
    /// attribute set.
    pub fn announce(&mut self, prefixes: &[IpNetwork], attributes: PathAttributes, at: SystemTime) {
        let attributes = Arc::new(attributes);
        let routes = Arc::make_mut(&mut self.routes);
        for p in prefixes {
            let route = ReceivedRoute {
                attributes: Arc::clone(&attributes),
                received_at: at,
            };
            routes.insert(*p, route);
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
    fn a_clone_is_a_snapshot_unaffected_by_later_changes() {
        let mut rib = AdjRibIn::default();
        rib.announce(&[p("0.0.0.0/0")], attrs(1), SystemTime::UNIX_EPOCH);
        let snapshot = rib.clone();
        rib.withdraw(&[p("0.0.0.0/0")]);
        rib.announce(&[p("198.18.99.0/24")], attrs(1), SystemTime::UNIX_EPOCH);
        assert!(snapshot.get(&p("0.0.0.0/0")).is_some());
        assert_eq!(snapshot.len(), 1);
        assert!(rib.get(&p("0.0.0.0/0")).is_none());
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
