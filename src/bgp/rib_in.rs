//! Adj-RIB-In: what one peer sent us, per prefix and path identifier (RFC 7911; 0 without
//! ADD-PATH), with its attributes and when it arrived. Kept for the operator (`show routes
//! received`); the same structure holds the sightings of our own service prefixes that the
//! split-brain rules read (`import.rs`). Nothing from it is installed anywhere. Attributes are shared between the prefixes of one UPDATE,
//! so a large table costs little more than its keys. Clones are snapshots that cost nothing
//! until the original changes (copy on write), so status can be published without copying.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use ipnetwork::IpNetwork;

use super::message::PathAttributes;

/// One path: a prefix and the path identifier it came with (0 without ADD-PATH). Ordered by
/// prefix first, so the paths of one prefix are adjacent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    pub prefix: IpNetwork,
    pub path_id: u32,
}

impl RouteKey {
    pub fn new(prefix: IpNetwork, path_id: u32) -> Self {
        RouteKey { prefix, path_id }
    }

    /// Pairs prefixes with their path identifiers as an UPDATE carries them (`ids` empty, or
    /// one per prefix).
    pub fn pair(prefixes: &[IpNetwork], ids: &[u32]) -> Vec<RouteKey> {
        prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| RouteKey::new(*p, ids.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRoute {
    pub attributes: Arc<PathAttributes>,
    pub received_at: SystemTime,
}

#[derive(Debug, Default, Clone)]
pub struct AdjRibIn {
    routes: Arc<BTreeMap<RouteKey, ReceivedRoute>>,
}

impl AdjRibIn {
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn get(&self, key: &RouteKey) -> Option<&ReceivedRoute> {
        self.routes.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&RouteKey, &ReceivedRoute)> {
        self.routes.iter()
    }

    /// Every path of `prefix`.
    pub fn paths(&self, prefix: IpNetwork) -> impl Iterator<Item = (&RouteKey, &ReceivedRoute)> {
        self.routes
            .range(RouteKey::new(prefix, 0)..=RouteKey::new(prefix, u32::MAX))
    }

    /// Keeps only the paths whose prefix passes `keep`.
    pub fn retain(&mut self, keep: impl Fn(&IpNetwork) -> bool) {
        if self.routes.keys().any(|k| !keep(&k.prefix)) {
            Arc::make_mut(&mut self.routes).retain(|k, _| keep(&k.prefix));
        }
    }

    pub fn clear(&mut self) {
        // A fresh map rather than make_mut: no point copying what is about to be dropped.
        self.routes = Arc::default();
    }

    /// Removes `keys`; true if any was there.
    pub fn withdraw(&mut self, keys: &[RouteKey]) -> bool {
        if !keys.iter().any(|k| self.routes.contains_key(k)) {
            return false;
        }
        let routes = Arc::make_mut(&mut self.routes);
        for k in keys {
            routes.remove(k);
        }
        true
    }

    /// Replaces (implicit withdraw, RFC 4271 §3.1) or adds `keys` with one shared
    /// attribute set.
    pub fn announce(&mut self, keys: &[RouteKey], attributes: Arc<PathAttributes>, at: SystemTime) {
        if keys.is_empty() {
            return;
        }
        let routes = Arc::make_mut(&mut self.routes);
        for k in keys {
            let route = ReceivedRoute {
                attributes: Arc::clone(&attributes),
                received_at: at,
            };
            routes.insert(*k, route);
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

    fn p(s: &str) -> RouteKey {
        RouteKey::new(s.parse().unwrap(), 0)
    }

    #[test]
    fn announce_replaces_and_withdraw_removes() {
        let mut rib = AdjRibIn::default();
        let t0 = SystemTime::UNIX_EPOCH;
        rib.announce(
            &[p("198.18.99.0/24"), p("0.0.0.0/0")],
            Arc::new(attrs(1)),
            t0,
        );
        assert_eq!(rib.len(), 2);
        let t1 = t0 + std::time::Duration::from_secs(5);
        rib.announce(&[p("0.0.0.0/0")], Arc::new(attrs(2)), t1);
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
        rib.announce(
            &[p("0.0.0.0/0")],
            Arc::new(attrs(1)),
            SystemTime::UNIX_EPOCH,
        );
        let snapshot = rib.clone();
        rib.withdraw(&[p("0.0.0.0/0")]);
        rib.announce(
            &[p("198.18.99.0/24")],
            Arc::new(attrs(1)),
            SystemTime::UNIX_EPOCH,
        );
        assert!(snapshot.get(&p("0.0.0.0/0")).is_some());
        assert_eq!(snapshot.len(), 1);
        assert!(rib.get(&p("0.0.0.0/0")).is_none());
    }

    #[test]
    fn paths_of_one_prefix_are_kept_apart_and_listed_together() {
        let mut rib = AdjRibIn::default();
        let prefix: IpNetwork = "192.0.2.10/32".parse().unwrap();
        let keys = RouteKey::pair(&[prefix, prefix], &[1, 2]);
        rib.announce(&keys, Arc::new(attrs(1)), SystemTime::UNIX_EPOCH);
        rib.announce(
            &[p("192.0.2.11/32")],
            Arc::new(attrs(1)),
            SystemTime::UNIX_EPOCH,
        );
        let ids: Vec<u32> = rib.paths(prefix).map(|(k, _)| k.path_id).collect();
        assert_eq!(ids, [1, 2]);
        assert!(rib.withdraw(&[RouteKey::new(prefix, 1)]));
        assert!(!rib.withdraw(&[RouteKey::new(prefix, 1)]));
        assert_eq!(rib.paths(prefix).count(), 1);
        rib.retain(|p| *p != prefix);
        assert_eq!(rib.len(), 1);
        // Without path identifiers every prefix gets path 0.
        assert_eq!(RouteKey::pair(&[prefix], &[]), [RouteKey::new(prefix, 0)]);
    }

    #[test]
    fn prefixes_of_one_update_share_their_attributes() {
        let mut rib = AdjRibIn::default();
        rib.announce(
            &[p("198.18.99.0/24"), p("198.18.98.0/24")],
            Arc::new(attrs(1)),
            SystemTime::UNIX_EPOCH,
        );
        let a = &rib.get(&p("198.18.99.0/24")).unwrap().attributes;
        let b = &rib.get(&p("198.18.98.0/24")).unwrap().attributes;
        assert!(Arc::ptr_eq(a, b));
    }
}
