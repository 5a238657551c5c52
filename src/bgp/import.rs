//! Route import: what a peer's UPDATEs do to the Adj-RIB-In and to the sightings of our own
//! service prefixes. Pure; the FSM calls it for every UPDATE received in Established.
//!
//! Two tables, kept apart:
//! - the Adj-RIB-In, with the usual checks: a route whose AS_PATH holds our ASN is a loop and
//!   not kept, an eBGP route must start with the peer's AS, and the count is held to
//!   `max_prefixes`;
//! - the sightings: every path for a *watched* prefix (the daemon's primary service prefixes),
//!   whatever its AS_PATH. When every DB host uses the same ASN, another primary's route for
//!   our prefix carries our ASN and would be dropped as a loop; the split-brain rules must
//!   still see it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use ipnetwork::IpNetwork;

use super::message::{AsPath, AsPathSegment, Family, PathAttributes, Update};
use super::reason::Warning;
use super::rib_in::{AdjRibIn, RouteKey};

/// The session's facts the checks need.
#[derive(Debug, Clone, Copy)]
pub struct ImportPolicy {
    pub local_asn: u32,
    pub remote_asn: u32,
    pub max_prefixes: u32,
}

impl ImportPolicy {
    fn ibgp(&self) -> bool {
        self.local_asn == self.remote_asn
    }
}

/// What one UPDATE did, for the FSM to log, count and act on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Problems to log (RFC 7606 errors, treat-as-withdraw, sightings over the limit).
    pub warnings: Vec<Warning>,
    /// Each one counts as an UPDATE error handled without a reset.
    pub errors: u64,
    /// The Adj-RIB-In holds more than `max_prefixes` routes: (count, family of the UPDATE).
    pub over_limit: Option<(usize, Family)>,
}

#[derive(Debug, Clone, Default)]
pub struct Import {
    rib_in: AdjRibIn,
    sightings: AdjRibIn,
    watched: Arc<BTreeSet<IpNetwork>>,
    /// Bumped whenever `sightings` changes, so the driver knows when to publish.
    sightings_version: u64,
}

impl Import {
    pub fn rib_in(&self) -> &AdjRibIn {
        &self.rib_in
    }

    pub fn sightings(&self) -> &AdjRibIn {
        &self.sightings
    }

    pub fn sightings_version(&self) -> u64 {
        self.sightings_version
    }

    /// The session ended: the peer's routes are gone.
    pub fn clear(&mut self) {
        self.rib_in.clear();
        if !self.sightings.is_empty() {
            self.sightings.clear();
            self.sightings_version += 1;
        }
    }

    /// Sets the watched prefixes. Paths of prefixes no longer watched are forgotten; those of
    /// newly watched ones are taken from the Adj-RIB-In (looped paths were not kept there: the
    /// return value says whether any prefix was added, so a ROUTE-REFRESH can fetch them).
    pub fn set_watched(&mut self, watched: Arc<BTreeSet<IpNetwork>>) -> bool {
        if watched == self.watched {
            return false;
        }
        let added: Vec<IpNetwork> = watched.difference(&self.watched).copied().collect();
        let before = self.sightings.len();
        self.sightings.retain(|p| watched.contains(p));
        let mut changed = self.sightings.len() != before;
        for prefix in &added {
            let paths: Vec<_> = self
                .rib_in
                .paths(*prefix)
                .map(|(k, r)| (*k, r.clone()))
                .collect();
            for (key, route) in paths {
                self.sightings
                    .announce(&[key], route.attributes, route.received_at);
                changed = true;
            }
        }
        if changed {
            self.sightings_version += 1;
        }
        self.watched = watched;
        !added.is_empty()
    }

    pub fn update(&mut self, u: &Update, at: SystemTime, policy: ImportPolicy) -> Imported {
        let mut done = Imported::default();
        for e in &u.errors {
            done.errors += 1;
            done.warnings.push(Warning::UpdateError(e.clone()));
        }
        let withdrawn = RouteKey::pair(&u.withdrawn, &u.withdrawn_path_ids);
        self.rib_in.withdraw(&withdrawn);
        if self.sightings.withdraw(&withdrawn) {
            self.sightings_version += 1;
        }
        let Some(attrs) = &u.attributes else {
            return done;
        };
        if u.nlri.is_empty() {
            return done;
        }
        let keys = RouteKey::pair(&u.nlri, &u.nlri_path_ids);
        let attrs = Arc::new(attrs.clone());
        self.sight(&keys, &attrs, at, policy, &mut done);
        if path_contains(&attrs.as_path, policy.local_asn) {
            // Our own routes reflected back, or another DB host of our AS (RFC 4271 §9.1.2
            // loop): not kept, not counted toward max_prefixes, or a ToR near the limit would
            // flap because of us.
            self.rib_in.withdraw(&keys);
            return done;
        }
        let first = attrs.as_path.first_asn();
        if !policy.ibgp() && first != Some(policy.remote_asn) {
            // RFC 4271 §6.3 with RFC 7606 §7.2: treat-as-withdraw.
            done.errors += 1;
            self.rib_in.withdraw(&keys);
            done.warnings.push(Warning::FirstAsNotPeer {
                prefixes: u.nlri.len(),
                peer_as: policy.remote_asn,
                as_path: attrs.as_path.clone(),
            });
            return done;
        }
        self.rib_in.announce(&keys, attrs, at);
        let count = self.rib_in.len();
        if count > policy.max_prefixes as usize {
            done.over_limit = Some((count, Family::of(&u.nlri[0])));
        }
        done
    }

    /// Keeps the paths of watched prefixes, up to `max_prefixes` of them.
    fn sight(
        &mut self,
        keys: &[RouteKey],
        attrs: &Arc<PathAttributes>,
        at: SystemTime,
        policy: ImportPolicy,
        done: &mut Imported,
    ) {
        let watched: Vec<RouteKey> = keys
            .iter()
            .filter(|k| self.watched.contains(&k.prefix))
            .copied()
            .collect();
        if watched.is_empty() {
            return;
        }
        let mut room = (policy.max_prefixes as usize).saturating_sub(self.sightings.len());
        let (mut fits, mut over) = (Vec::new(), 0usize);
        for k in watched {
            if self.sightings.get(&k).is_some() {
                fits.push(k);
            } else if room > 0 {
                room -= 1;
                fits.push(k);
            } else {
                over += 1;
            }
        }
        self.sightings.announce(&fits, Arc::clone(attrs), at);
        if !fits.is_empty() {
            self.sightings_version += 1;
        }
        if over > 0 {
            done.errors += 1;
            done.warnings.push(Warning::SightingsOverLimit {
                paths: over,
                limit: policy.max_prefixes,
            });
        }
    }
}

fn path_contains(path: &AsPath, asn: u32) -> bool {
    path.0.iter().any(|segment| match segment {
        AsPathSegment::Sequence(v) | AsPathSegment::Set(v) => v.contains(&asn),
    })
}
