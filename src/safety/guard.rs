//! The split-brain rules for one primary service, as a pure state machine: the health verdict,
//! the server's term and start time, and the routes other hosts announce for the service's
//! prefixes go in; whether to announce (and with which term), why not, and what to do
//! (persist the record, fence the server, write a new term) come out. No clock, no I/O.
//!
//! The rules (docs/safety.md):
//! - A newer promotion deposes us: another primary announces with a term >= ours, or the
//!   term table holds a newer term written by another server. Remembered (`Record::seen`)
//!   until this server's own term is higher, so an old primary that comes back never
//!   announces beside the new one, whatever it sees at that moment.
//! - A competing primary whose term cannot be ordered against ours (no marks, no term, or
//!   we have no term table): if we were announcing, both withdraw and we stay withdrawn until
//!   an operator confirms (`Record::tie`); if we were not, we do not start while it is there.
//! - A server that restarted since this host last announced it is held until an operator
//!   confirms it (or, with `on_restart = "announce-if-newest"`, until every session's initial
//!   routes are in and show no newer primary), unless it has been promoted since (its term
//!   grew).
//! - An operator's confirm clears the tie and the restart hold, and when a newer term was seen
//!   asks for a new term above it: a confirm is a promotion.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnetwork::IpNetwork;

use super::marks::Claim;

/// Uptime has one-second resolution, and start times are derived from it: two readings of
/// the same server's start may differ by this much.
const START_TOLERANCE: Duration = Duration::from_secs(2);

/// What to do when another primary wins or ties.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnConflict {
    /// Withdraw only.
    #[default]
    Withdraw,
    /// Withdraw and set read_only on the local server, so local writers stop too.
    Fence,
}

/// What a server that restarted while withdrawn needs before it is announced again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnRestart {
    /// An operator's `primaryctl confirm`.
    #[default]
    Hold,
    /// Every established session's initial routes, showing no newer primary.
    AnnounceIfNewest,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub on_conflict: OnConflict,
    pub on_restart: OnRestart,
}

/// A route for one of the service's prefixes that another speaker announces, as received on
/// one session. Routes naming our own router id are not sightings (the daemon drops them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub peer: String,
    pub prefix: IpNetwork,
    pub path_id: u32,
    pub next_hop: Option<IpAddr>,
    pub claim: Claim,
}

impl Sighting {
    /// "192.0.2.10/32 also announced by 198.19.0.12 (next hop 198.18.2.1, via tor1)".
    fn describe(&self) -> String {
        let who = match (self.claim.router_id(), self.next_hop) {
            (Some(r), Some(nh)) => format!("{r} (next hop {nh}, via {})", self.peer),
            (Some(r), None) => format!("{r} (via {})", self.peer),
            (None, Some(nh)) => format!("next hop {nh} (via {})", self.peer),
            (None, None) => format!("a route via {}", self.peer),
        };
        format!("{} also announced by {who}", self.prefix)
    }
}

/// This server's promotion term as the checks read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnTerm {
    /// No term table: no term here, none comparable elsewhere.
    NotConfigured,
    /// A term table is configured and could not be read or written.
    Unreadable(String),
    Known {
        /// The newest term this server wrote; None if it never wrote one.
        own: Option<u64>,
        /// The newest row in the table: (term, server_id).
        newest: Option<(u64, u32)>,
        server_id: u32,
    },
}

/// Everything the rules read about one service at one instant.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Ok when the health checks say the service may be announced (a healthy writable
    /// primary, not drained, not damped); else why not.
    pub healthy: Result<(), &'a str>,
    /// None until a check got an answer.
    pub term: Option<&'a OwnTerm>,
    pub server_started_at: Option<SystemTime>,
    /// Routes of other hosts for the service's prefixes, on every session.
    pub sightings: &'a [Sighting],
    /// At least one session is established and every established one has its initial
    /// routes (End-of-RIB, or the bounded wait).
    pub routes_in: bool,
}

/// The highest term another primary was seen with, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub term: u64,
    pub by: String,
}

/// What the rules remember across daemon restarts (persisted by the daemon in `state_dir`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The server's start time when this host last began announcing the service, or when an
    /// operator confirmed it.
    pub server_start: Option<SystemTime>,
    /// Our own term when we last began announcing: a higher one since means a promotion.
    pub announced_term: Option<u64>,
    pub seen: Option<Seen>,
    /// Set when we withdrew beside a primary whose term could not be ordered against ours.
    pub tie: Option<String>,
}

/// Why a primary service is not announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The health checks' reason.
    Unhealthy(String),
    /// No check has answered yet.
    NoFacts,
    TermUnreadable(String),
    /// Our term does not fit the 32 bits of its community.
    TermTooLarge(u64),
    /// A newer promotion exists (on a route, or in the term table).
    Deposed {
        theirs: u64,
        ours: u64,
        by: String,
    },
    /// A competing primary whose term cannot be ordered against ours. `latched`: we were
    /// announcing and withdrew; an operator must confirm.
    Tie {
        by: String,
        latched: bool,
    },
    /// The server restarted since this host last announced it.
    Restarted {
        started: SystemTime,
        last: SystemTime,
    },
    /// Restarted, `on_restart = "announce-if-newest"`: waiting for every session's initial
    /// routes.
    WaitingForRoutes,
}

impl Hold {
    /// A conflict with another primary (counted in metrics, fenced when configured).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Hold::Deposed { .. } | Hold::Tie { .. })
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Unhealthy(r) => f.write_str(r),
            Hold::NoFacts => f.write_str("no check has answered yet"),
            Hold::TermUnreadable(r) => write!(f, "term table unreadable: {r}"),
            Hold::TermTooLarge(t) => write!(f, "term {t} does not fit a 32-bit community"),
            Hold::Deposed { theirs, ours, by } => {
                let cmp = if theirs > ours { ">" } else { "=" };
                write!(f, "conflict: {by}, term {theirs} {cmp} our {ours}")
            }
            Hold::Tie { by, latched: true } => write!(
                f,
                "conflict: {by}; withdrawn until an operator runs primaryctl confirm"
            ),
            Hold::Tie { by, latched: false } => write!(f, "conflict: {by}"),
            Hold::Restarted { started, .. } => write!(
                f,
                "server restarted at {} while withdrawn; held until an operator runs \
                 primaryctl confirm",
                humantime::format_rfc3339_seconds(*started)
            ),
            Hold::WaitingForRoutes => f.write_str(
                "server restarted while withdrawn; waiting for every session's initial routes",
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Announce, carrying this term (None without a term table: announced as term 0).
    Announce {
        term: Option<u64>,
    },
    Withdrawn(Hold),
}

impl Verdict {
    pub fn is_announce(&self) -> bool {
        matches!(self, Verdict::Announce { .. })
    }

    pub fn hold(&self) -> Option<&Hold> {
        match self {
            Verdict::Announce { .. } => None,
            Verdict::Withdrawn(h) => Some(h),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The record changed: save it.
    Persist(Record),
    /// Set read_only on the local server.
    Fence(String),
    /// Write a term greater than this one (an operator's confirm).
    NewTerm { above: u64 },
}

/// One primary service's rules state.
#[derive(Debug, Clone)]
pub struct Guard {
    record: Record,
    verdict: Verdict,
    /// The conflict this server was fenced for: while the fence keeps it read-only (unhealthy),
    /// the conflict is still what is shown, not the read-only it caused.
    fenced: Option<Hold>,
    /// The checks' verdict at the previous evaluation: a fenced server made writable again
    /// while the conflict lasts is fenced again.
    healthy_before: bool,
}

impl Guard {
    pub fn new(record: Record) -> Guard {
        Guard {
            record,
            verdict: Verdict::Withdrawn(Hold::NoFacts),
            fenced: None,
            healthy_before: false,
        }
    }

    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    pub fn record(&self) -> &Record {
        &self.record
    }

    /// Applies the rules to `inp`; the verdict is then [`Guard::verdict`].
    pub fn evaluate(&mut self, inp: &Inputs, policy: Policy) -> Vec<Action> {
        let before = self.record.clone();
        self.apply(before, inp, policy)
    }

    /// An operator confirms this server as the primary: the tie and the restart hold are
    /// cleared, and a new term is asked for when this server has none or a newer one was
    /// seen. The rules are then applied to `inp` as usual.
    pub fn confirm(&mut self, inp: &Inputs, policy: Policy) -> Vec<Action> {
        let before = self.record.clone();
        self.record.tie = None;
        self.fenced = None;
        if inp.server_started_at.is_some() {
            self.record.server_start = inp.server_started_at;
        }
        let new_term = match inp.term {
            Some(OwnTerm::Known {
                own,
                newest,
                server_id,
            }) => {
                let foreign = newest
                    .filter(|(_, id)| id != server_id)
                    .map_or(0, |(t, _)| t);
                let above = self.record.seen.as_ref().map_or(0, |s| s.term).max(foreign);
                let needed = match own {
                    None => true,
                    Some(ours) => above > 0 && above >= *ours,
                };
                needed.then(|| above.max(newest.map_or(0, |(t, _)| t)))
            }
            _ => None,
        };
        let mut actions = self.apply(before, inp, policy);
        if let Some(above) = new_term {
            actions.push(Action::NewTerm { above });
        }
        actions
    }

    fn apply(&mut self, before: Record, inp: &Inputs, policy: Policy) -> Vec<Action> {
        self.note_seen(inp);
        let verdict = self.judge(inp, policy);
        let mut actions = Vec::new();
        if let Verdict::Announce { term } = &verdict {
            if !self.verdict.is_announce() {
                self.record.server_start = inp.server_started_at;
                self.record.announced_term = *term;
            }
        }
        // Fence when a writable server enters a conflict, or is made writable again while it
        // lasts; never a server the checks already find not writable.
        let healthy = inp.healthy.is_ok();
        let conflict = verdict.hold().filter(|h| h.is_conflict());
        let entered = !self.verdict.hold().is_some_and(Hold::is_conflict);
        if let Some(h) = conflict {
            let due = healthy && (entered || !self.healthy_before);
            if due && policy.on_conflict == OnConflict::Fence {
                actions.push(Action::Fence(h.to_string()));
                self.fenced = Some(h.clone());
            }
        } else if verdict.is_announce() {
            self.fenced = None;
        }
        self.healthy_before = healthy;
        self.verdict = verdict;
        if self.record != before {
            actions.insert(0, Action::Persist(self.record.clone()));
        }
        actions
    }

    /// Remembers the highest foreign term on any route or in the term table, whatever our
    /// health: an old primary that comes back must still know it was replaced.
    fn note_seen(&mut self, inp: &Inputs) {
        let mut candidates: Vec<(u64, String)> = inp
            .sightings
            .iter()
            .filter_map(|s| match s.claim {
                Claim::Primary { term, .. } if term > 0 => Some((u64::from(term), s.describe())),
                _ => None,
            })
            .collect();
        if let Some(OwnTerm::Known {
            own,
            newest: Some((term, server_id)),
            server_id: ours,
        }) = inp.term
        {
            if server_id != ours && Some(*term) > *own {
                let by = format!("the term table holds a promotion of server_id {server_id}");
                candidates.push((*term, by));
            }
        }
        for (term, by) in candidates {
            if self.record.seen.as_ref().is_none_or(|s| term > s.term) {
                self.record.seen = Some(Seen { term, by });
            }
        }
    }

    fn judge(&mut self, inp: &Inputs, policy: Policy) -> Verdict {
        let hold = |h| Verdict::Withdrawn(h);
        if let Err(reason) = inp.healthy {
            if let Some(conflict) = &self.fenced {
                return hold(conflict.clone());
            }
            return hold(Hold::Unhealthy(reason.to_string()));
        }
        let (Some(term), Some(started)) = (inp.term, inp.server_started_at) else {
            return hold(Hold::NoFacts);
        };
        let ours = match term {
            OwnTerm::NotConfigured => None,
            OwnTerm::Unreadable(r) => return hold(Hold::TermUnreadable(r.clone())),
            OwnTerm::Known { own, .. } => Some(own.unwrap_or(0)),
        };
        if let Some(t) = ours.filter(|t| *t > u64::from(u32::MAX)) {
            return hold(Hold::TermTooLarge(t));
        }
        if let (Some(ours), Some(seen)) = (ours, &self.record.seen) {
            if seen.term >= ours {
                return hold(Hold::Deposed {
                    theirs: seen.term,
                    ours,
                    by: seen.by.clone(),
                });
            }
        }
        // Competing primaries we cannot order (with a known term of ours, every marked term
        // above 0 was handled by `seen`; lower ones withdraw on their side).
        let unordered = inp.sightings.iter().find(|s| match s.claim {
            Claim::Fallback { .. } => false,
            Claim::Unmarked => true,
            Claim::Primary { term, .. } => ours.is_none() || term == 0,
        });
        if let Some(s) = unordered {
            let why = match (s.claim, ours) {
                (Claim::Primary { term, .. }, None) if term > 0 => {
                    format!("term {term}, and this host has no term table")
                }
                (Claim::Primary { .. }, _) => "with no term".to_string(),
                _ => "with no primaryd marks".to_string(),
            };
            let by = format!("{}, {why}", s.describe());
            if self.verdict.is_announce() || self.record.tie.is_some() {
                self.record.tie.get_or_insert_with(|| by.clone());
                return hold(Hold::Tie { by, latched: true });
            }
            return hold(Hold::Tie { by, latched: false });
        }
        if let Some(by) = &self.record.tie {
            return hold(Hold::Tie {
                by: by.clone(),
                latched: true,
            });
        }
        if let Some(h) = self.restart_hold(ours, started, inp.routes_in, policy) {
            return hold(h);
        }
        Verdict::Announce { term: ours }
    }

    fn restart_hold(
        &mut self,
        ours: Option<u64>,
        started: SystemTime,
        routes_in: bool,
        policy: Policy,
    ) -> Option<Hold> {
        if self.verdict.is_announce() {
            return None;
        }
        let last = self.record.server_start?;
        let restarted = started
            .duration_since(last)
            .is_ok_and(|d| d > START_TOLERANCE);
        // A term that grew since we last announced is a promotion after the restart.
        let promoted = ours.is_some_and(|t| self.record.announced_term.is_none_or(|a| t > a));
        if !restarted || promoted {
            return None;
        }
        match policy.on_restart {
            OnRestart::Hold => Some(Hold::Restarted { started, last }),
            OnRestart::AnnounceIfNewest if !routes_in => Some(Hold::WaitingForRoutes),
            OnRestart::AnnounceIfNewest => None,
        }
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
