//! The daemon's side of the split-brain rules (docs/safety.md): one [`Guard`] per primary
//! service, fed by the health events and by the sightings every session publishes, and the
//! [`Exports`] every session reads, built from the verdicts. No I/O here: what must be written
//! or sent comes back as [`Effect`]s the event loop carries out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::SystemTime;

use ipnetwork::IpNetwork;

use crate::announcer::{DesiredRoutes, Exports};
use crate::bgp::fsm::State;
use crate::bgp::message::{AsPathSegment, PathAttributes};
use crate::bgp::status::PeerStatus;
use crate::config::{Role, ServiceConfig};
use crate::health::checker::Health;
use crate::health::term::{ServerFacts, TermState};
use crate::safety::guard::{Action, Inputs, Record};
use crate::safety::{marks, Claim, Guard, OwnTerm, Sighting, Verdict};

/// What the checks last said about a service's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub term: OwnTerm,
    pub started_at: SystemTime,
}

impl From<&ServerFacts> for Facts {
    fn from(f: &ServerFacts) -> Facts {
        let term = match &f.term {
            TermState::NotConfigured => OwnTerm::NotConfigured,
            TermState::Unreadable(r) => OwnTerm::Unreadable(r.clone()),
            TermState::Known { own, newest } => OwnTerm::Known {
                own: *own,
                newest: *newest,
                server_id: f.server_id,
            },
        };
        Facts {
            term,
            started_at: f.started_at,
        }
    }
}

/// The decision for one service, as `show` and `/metrics` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub announced: bool,
    /// Why not announced, when the rules (not the checks) hold it back.
    pub hold: Option<String>,
    pub conflict: bool,
    /// The term the announcement carries (or would carry), when known.
    pub term: Option<u64>,
    pub since: SystemTime,
}

/// Something the event loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Persist {
        service: String,
        record: Record,
    },
    Fence {
        service: String,
        reason: String,
    },
    NewTerm {
        service: String,
        above: u64,
    },
    /// The service's announcement changed: log it.
    Changed {
        service: String,
        announced: bool,
        reason: String,
        conflict: bool,
    },
}

/// One service's inputs and rules state.
struct Entry {
    health: Health,
    reason: String,
    facts: Option<Facts>,
    /// None for a replica-role service: no split-brain rules there (every healthy replica
    /// announces the reader address).
    guard: Option<Guard>,
    decision: Decision,
}

/// The identity marks are read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub community_asn: u32,
}

#[derive(Default)]
pub struct SafetyState {
    entries: BTreeMap<String, Entry>,
}

impl SafetyState {
    /// Starts tracking a service, with what the rules remember about it.
    pub fn add(&mut self, service: &ServiceConfig, record: Record) {
        let guard = (service.role == Role::Primary).then(|| Guard::new(record));
        let entry = Entry {
            health: Health::Unknown,
            reason: "no check yet".into(),
            facts: None,
            guard,
            decision: Decision {
                announced: false,
                hold: None,
                conflict: false,
                term: None,
                since: SystemTime::now(),
            },
        };
        self.entries.insert(service.name.clone(), entry);
    }

    pub fn remove(&mut self, name: &str) {
        self.entries.remove(name);
    }

    pub fn set_health(&mut self, name: &str, health: Health, reason: &str) {
        if let Some(e) = self.entries.get_mut(name) {
            e.health = health;
            e.reason = reason.to_string();
        }
    }

    pub fn set_facts(&mut self, name: &str, facts: Option<Facts>) {
        if let Some(e) = self.entries.get_mut(name) {
            e.facts = facts;
        }
    }

    pub fn decisions(&self) -> BTreeMap<String, Decision> {
        self.entries
            .iter()
            .map(|(n, e)| (n.clone(), e.decision.clone()))
            .collect()
    }

    /// Applies the rules to every service and builds what the sessions should do.
    /// `confirm` names a service an operator just confirmed.
    pub fn decide(
        &mut self,
        services: &[&ServiceConfig],
        peers: &[PeerStatus],
        me: Identity,
        confirm: Option<&str>,
    ) -> (Exports, Vec<Effect>) {
        let routes_in = routes_in(peers);
        let mut effects = Vec::new();
        let mut routes = DesiredRoutes::new();
        let mut watched = BTreeSet::new();
        for service in services {
            let Some(entry) = self.entries.get_mut(&service.name) else {
                continue;
            };
            if service.role == Role::Primary {
                watched.extend(service.prefixes.iter().copied());
            }
            let sightings = sightings(peers, &service.prefixes, me);
            let confirmed = confirm == Some(service.name.as_str());
            let decision = entry.decide(service, &sightings, routes_in, confirmed, &mut effects);
            if let Some(term) = decision {
                let mut attrs = service.attributes.clone();
                if service.role == Role::Primary {
                    let term = u32::try_from(term.unwrap_or(0)).unwrap_or(0);
                    attrs.large_communities.extend(marks::primary_marks(
                        me.community_asn,
                        term,
                        me.router_id,
                    ));
                }
                for p in &service.prefixes {
                    routes.insert(*p, attrs.clone());
                }
            }
        }
        let released = peers
            .iter()
            .filter(|p| p.state == State::Established && p.initial_routes_done)
            .map(|p| (p.name.clone(), p.counters.established_transitions))
            .collect();
        let exports = Exports {
            routes,
            watched: Arc::new(watched),
            released: Arc::new(released),
            held: Arc::default(),
        };
        (exports, effects)
    }
}

impl Entry {
    /// Runs the rules; Some(term) when the service's prefixes are to be announced.
    fn decide(
        &mut self,
        service: &ServiceConfig,
        sightings: &[Sighting],
        routes_in: bool,
        confirmed: bool,
        effects: &mut Vec<Effect>,
    ) -> Option<Option<u64>> {
        let name = &service.name;
        let (announce, term, hold, conflict) = match &mut self.guard {
            None => (self.health == Health::Up, None, None, false),
            Some(guard) => {
                let reason = self.reason.as_str();
                let inputs = Inputs {
                    healthy: if self.health == Health::Up {
                        Ok(())
                    } else {
                        Err(reason)
                    },
                    term: self.facts.as_ref().map(|f| &f.term),
                    server_started_at: self.facts.as_ref().map(|f| f.started_at),
                    sightings,
                    routes_in,
                };
                let actions = if confirmed {
                    guard.confirm(&inputs, service.policy)
                } else {
                    guard.evaluate(&inputs, service.policy)
                };
                effects.extend(actions.into_iter().map(|a| effect_of(name, a)));
                let term = match self.facts.as_ref().map(|f| &f.term) {
                    Some(OwnTerm::Known { own, .. }) => *own,
                    _ => None,
                };
                match guard.verdict() {
                    Verdict::Announce { term } => (true, *term, None, false),
                    Verdict::Withdrawn(h) => {
                        // The checks' own reason is shown as it is; the rules' reasons are
                        // holds of their own.
                        let own = matches!(h, crate::safety::Hold::Unhealthy(_));
                        (false, term, (!own).then(|| h.to_string()), h.is_conflict())
                    }
                }
            }
        };
        let changed = announce != self.decision.announced
            || hold != self.decision.hold
            || conflict != self.decision.conflict;
        if changed {
            let reason = hold.clone().unwrap_or_else(|| self.reason.clone());
            effects.push(Effect::Changed {
                service: name.clone(),
                announced: announce,
                reason,
                conflict,
            });
        }
        let since = if announce != self.decision.announced {
            SystemTime::now()
        } else {
            self.decision.since
        };
        self.decision = Decision {
            announced: announce,
            hold,
            conflict,
            term,
            since,
        };
        announce.then_some(term)
    }
}

/// What the daemon carries out for a guard's action.
fn effect_of(service: &str, action: Action) -> Effect {
    let service = service.to_string();
    match action {
        Action::Persist(record) => Effect::Persist { service, record },
        Action::Fence(reason) => Effect::Fence { service, reason },
        Action::NewTerm { above } => Effect::NewTerm { service, above },
    }
}

/// At least one session is established and every established one has its initial routes.
fn routes_in(peers: &[PeerStatus]) -> bool {
    let established: Vec<_> = peers
        .iter()
        .filter(|p| p.state == State::Established)
        .collect();
    !established.is_empty() && established.iter().all(|p| p.initial_routes_done)
}

/// Other hosts' paths for `prefixes`, on every session. Our own routes (naming our router id)
/// are not sightings, nor is an unmarked echo of a route we advertise on that session with our
/// own AS as origin: a router that strips large communities would otherwise make us fight
/// our own shadow (docs/safety.md says why such a router must not be used).
fn sightings(peers: &[PeerStatus], prefixes: &[IpNetwork], me: Identity) -> Vec<Sighting> {
    let mut out = Vec::new();
    for peer in peers {
        for prefix in prefixes {
            for (key, route) in peer.sightings.paths(*prefix) {
                let attrs = &route.attributes;
                let claim = marks::claim(attrs, me.community_asn);
                if claim.router_id() == Some(me.router_id) {
                    continue;
                }
                let echo = claim == Claim::Unmarked
                    && origin_asn(attrs) == Some(me.asn)
                    && peer.rib_out.contains_key(prefix);
                if echo {
                    continue;
                }
                out.push(Sighting {
                    peer: peer.name.clone(),
                    prefix: key.prefix,
                    path_id: key.path_id,
                    next_hop: next_hop(attrs),
                    claim,
                });
            }
        }
    }
    out
}

fn origin_asn(attrs: &PathAttributes) -> Option<u32> {
    match attrs.as_path.0.last()? {
        AsPathSegment::Sequence(v) => v.last().copied(),
        AsPathSegment::Set(_) => None,
    }
}

fn next_hop(attrs: &PathAttributes) -> Option<IpAddr> {
    let nh = &attrs.next_hop;
    nh.ipv4
        .map(IpAddr::V4)
        .or(nh.ipv6.map(IpAddr::V6))
        .or(nh.ipv6_link_local.map(IpAddr::V6))
}
