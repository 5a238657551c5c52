//! The promotion term and the server facts the conflict rules need, pure: no I/O, no clocks
//! (times are passed in). The SQL that reads and writes them is in [`super::facts`].
//!
//! The term lives in a replicated table (`term_table`): one row per promotion, `(service,
//! term, server_id, promoted_at)`. Because it replicates with the data, a promoted replica
//! holds every row its old primary wrote, so the term it writes (newest + 1) is higher than
//! anything the old primary can know.
//!
//! A new term is written only when this task **witnessed a promotion**: an earlier check got
//! an answer in which the server was not a healthy writable primary (read_only=1, a
//! replication thread running, ...), and this check finds the same server (same `server_id`,
//! same start time) a healthy writable primary. Or when the table has no row at all for the
//! service (the first primary ever). Never after a daemon restart, a lost connection or a
//! server restart: none of those saw the server as a non-primary, and an old primary that
//! comes back writable must keep its old, lower term.

use std::fmt;
use std::time::{Duration, SystemTime};

/// Two start times closer than this are the same start: `Uptime` has 1 s resolution and the
/// answer takes some time to arrive.
pub const STARTED_AT_TOLERANCE: Duration = Duration::from_secs(2);

/// What a check learnt about the server besides its health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// `@@global.server_id`.
    pub server_id: u32,
    /// When the server started: the check's time minus status `Uptime` (±2 s).
    pub started_at: SystemTime,
    pub term: TermState,
}

/// The promotion term as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermState {
    /// No `term_table` configured (or a replica-role service).
    NotConfigured,
    /// Configured, but it could not be read or written (missing table, no privilege, a
    /// timeout, ...): never to be taken as "no term".
    Unreadable(String),
    Known {
        /// The newest row written by this server's `server_id`: its own term.
        own: Option<u64>,
        /// The newest row of the service: `(term, server_id)`.
        newest: Option<(u64, u32)>,
    },
}

impl TermState {
    /// The newest row was written by another server and is newer than our own term: a
    /// promotion happened elsewhere after ours (or we never had one).
    pub fn newer_elsewhere(&self, server_id: u32) -> Option<(u64, u32)> {
        match self {
            TermState::Known {
                own,
                newest: Some((term, by)),
            } if *by != server_id && own.is_none_or(|o| *term > o) => Some((*term, *by)),
            _ => None,
        }
    }
}

impl fmt::Display for TermState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TermState::NotConfigured => write!(f, "no term table"),
            TermState::Unreadable(reason) => write!(f, "term unreadable: {reason}"),
            TermState::Known { own, newest } => {
                match own {
                    Some(t) => write!(f, "term {t}")?,
                    None => write!(f, "no own term")?,
                }
                match newest {
                    Some((t, by)) if Some(*t) != *own => {
                        write!(f, " (newest {t} by server_id {by})")
                    }
                    None => write!(f, " (table empty for the service)"),
                    _ => Ok(()),
                }
            }
        }
    }
}

impl ServerFacts {
    /// Whether `self` differs from `before` enough to tell the daemon: another term or
    /// server, or a start time more than [`STARTED_AT_TOLERANCE`] apart.
    pub fn differs(&self, before: &ServerFacts) -> bool {
        self.server_id != before.server_id
            || self.term != before.term
            || !same_start(self.started_at, before.started_at)
    }

    /// `self` with `before`'s start time when both are the same start, so the value shown
    /// and compared does not wander with `Uptime`'s resolution.
    pub fn steadied(mut self, before: Option<&ServerFacts>) -> ServerFacts {
        if let Some(b) = before {
            if b.server_id == self.server_id && same_start(b.started_at, self.started_at) {
                self.started_at = b.started_at;
            }
        }
        self
    }
}

impl ServerFacts {
    /// What changed since `before`, for the log: "term 7 -> term 8", "server restarted".
    pub fn change_from(&self, before: Option<&ServerFacts>) -> String {
        let Some(b) = before else {
            return format!("server_id {}, {}", self.server_id, self.term);
        };
        let mut parts = Vec::new();
        if b.server_id != self.server_id {
            parts.push(format!("server_id {} -> {}", b.server_id, self.server_id));
        } else if !same_start(b.started_at, self.started_at) {
            parts.push("server restarted".to_string());
        }
        if b.term != self.term {
            parts.push(format!("{} -> {}", b.term, self.term));
        }
        parts.join("; ")
    }
}

fn same_start(a: SystemTime, b: SystemTime) -> bool {
    let diff = a.duration_since(b).unwrap_or_else(|e| e.duration());
    diff <= STARTED_AT_TOLERANCE
}

/// One run of a server: its `server_id` and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incarnation {
    pub server_id: u32,
    pub started_at: SystemTime,
}

impl Incarnation {
    fn same(&self, other: &Incarnation) -> bool {
        self.server_id == other.server_id && same_start(self.started_at, other.started_at)
    }
}

/// The term rows as read: newest of the service, and newest of this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermRows {
    pub own: Option<u64>,
    pub newest: Option<(u64, u32)>,
}

impl From<TermRows> for TermState {
    fn from(r: TermRows) -> TermState {
        TermState::Known {
            own: r.own,
            newest: r.newest,
        }
    }
}

/// Why a term is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReason {
    /// The table has no row for the service: the first primary.
    FirstTerm,
    /// This task saw the server as a non-primary, and now as a healthy writable primary.
    Promotion,
    /// An operator confirmed this server as the primary (`primaryctl confirm`) while a
    /// newer term was known elsewhere.
    Confirmed,
}

impl fmt::Display for WriteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteReason::FirstTerm => "no term for the service yet",
            WriteReason::Promotion => "promotion witnessed",
            WriteReason::Confirmed => "confirmed by an operator",
        })
    }
}

/// What to do after reading the term rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermDecision {
    Keep,
    Write {
        term: u64,
        reason: WriteReason,
    },
    /// A write is due but impossible (the newest term is already the largest value).
    Refuse(String),
}

/// Remembers, for one task's lifetime only, that the server was seen as a non-primary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromotionWitness {
    seen_non_primary: Option<Incarnation>,
    /// An operator's confirm: write a term above this at the next healthy check.
    confirmed_above: Option<u64>,
}

impl PromotionWitness {
    /// A check got an answer in which the server is not a healthy writable primary.
    pub fn saw_non_primary(&mut self, who: Incarnation) {
        self.seen_non_primary = Some(who);
    }

    /// An operator confirmed this server: the next healthy check writes a term above
    /// `above` (and above the table's newest).
    pub fn confirm_above(&mut self, above: u64) {
        self.confirmed_above = Some(self.confirmed_above.map_or(above, |a| a.max(above)));
    }

    /// Whether a promotion of `who` would be witnessed by a healthy answer now.
    pub fn armed_for(&self, who: &Incarnation) -> bool {
        self.seen_non_primary.is_some_and(|s| s.same(who))
    }

    /// A check found `who` a healthy writable primary and read `rows`: write a new term or
    /// keep the one there is. A witness of another server or another start is forgotten
    /// (the server restarted in between: not a promotion we saw).
    pub fn decide(&mut self, who: Incarnation, rows: &TermRows) -> TermDecision {
        if self.seen_non_primary.is_some() && !self.armed_for(&who) {
            self.seen_non_primary = None;
        }
        let newest = rows.newest.map_or(0, |(t, _)| t);
        let (reason, base) = if let Some(above) = self.confirmed_above {
            (WriteReason::Confirmed, newest.max(above))
        } else if self.seen_non_primary.is_some() {
            (WriteReason::Promotion, newest)
        } else if rows.newest.is_none() {
            (WriteReason::FirstTerm, 0)
        } else {
            return TermDecision::Keep;
        };
        match base.checked_add(1) {
            Some(term) => TermDecision::Write { term, reason },
            None => TermDecision::Refuse(format!(
                "cannot write a term above {}: the largest BIGINT UNSIGNED",
                u64::MAX
            )),
        }
    }

    /// The term was written and read back: the witness is used up.
    pub fn written(&mut self) {
        self.seen_non_primary = None;
        self.confirmed_above = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn me(started: u64) -> Incarnation {
        Incarnation {
            server_id: 2,
            started_at: at(started),
        }
    }

    fn rows(own: Option<u64>, newest: Option<(u64, u32)>) -> TermRows {
        TermRows { own, newest }
    }

    fn write(term: u64, reason: WriteReason) -> TermDecision {
        TermDecision::Write { term, reason }
    }

    #[test]
    fn first_term_on_an_empty_table_only() {
        let mut w = PromotionWitness::default();
        assert_eq!(
            w.decide(me(0), &rows(None, None)),
            write(1, WriteReason::FirstTerm)
        );
        // Rows there, nothing witnessed: keep, whoever wrote them.
        assert_eq!(
            w.decide(me(0), &rows(Some(3), Some((3, 2)))),
            TermDecision::Keep
        );
        assert_eq!(
            w.decide(me(0), &rows(None, Some((3, 1)))),
            TermDecision::Keep
        );
    }

    #[test]
    fn witnessed_promotion_writes_newest_plus_one_once() {
        let mut w = PromotionWitness::default();
        // A replica: the old primary's rows replicated, none of ours.
        w.saw_non_primary(me(0));
        w.saw_non_primary(me(1)); // later answers of the same run
        let read = rows(None, Some((7, 1)));
        assert_eq!(w.decide(me(0), &read), write(8, WriteReason::Promotion));
        // Until the write is confirmed the witness stays (a failed write is retried) ...
        assert_eq!(w.decide(me(1), &read), write(8, WriteReason::Promotion));
        // ... and once confirmed, it is used up.
        w.written();
        assert_eq!(
            w.decide(me(1), &rows(Some(8), Some((8, 2)))),
            TermDecision::Keep
        );
        // Demoted and promoted again (an operator toggling read_only): a new term.
        w.saw_non_primary(me(1));
        assert_eq!(
            w.decide(me(1), &rows(Some(8), Some((8, 2)))),
            write(9, WriteReason::Promotion)
        );
    }

    #[test]
    fn an_operators_confirm_writes_above_everything_known_once() {
        let mut w = PromotionWitness::default();
        w.confirm_above(9);
        // Above the term seen elsewhere (9), even when the table's newest is lower ...
        assert_eq!(
            w.decide(me(0), &rows(Some(7), Some((7, 2)))),
            write(10, WriteReason::Confirmed)
        );
        // ... and above the table's newest when that is higher; a restart in between does
        // not cancel it.
        assert_eq!(
            w.decide(me(5), &rows(Some(7), Some((12, 1)))),
            write(13, WriteReason::Confirmed)
        );
        w.written();
        assert_eq!(
            w.decide(me(5), &rows(Some(13), Some((13, 2)))),
            TermDecision::Keep
        );
    }

    #[test]
    fn restart_between_is_not_a_witnessed_promotion() {
        // Seen read-only, then the server restarted (new start time) and came back
        // writable, as an old primary with read_only=OFF in my.cnf does: no new term.
        let mut w = PromotionWitness::default();
        w.saw_non_primary(me(0));
        assert_eq!(
            w.decide(me(600), &rows(Some(4), Some((5, 3)))),
            TermDecision::Keep
        );
        // Forgotten for good, not only for that check.
        assert!(!w.armed_for(&me(0)));
        // Another server behind the same endpoint is not the one we saw either.
        let mut w = PromotionWitness::default();
        w.saw_non_primary(me(0));
        let other = Incarnation {
            server_id: 9,
            started_at: at(0),
        };
        assert_eq!(
            w.decide(other, &rows(None, Some((5, 3)))),
            TermDecision::Keep
        );
        // Uptime's resolution is not a restart.
        let mut w = PromotionWitness::default();
        w.saw_non_primary(me(10));
        assert!(w.armed_for(&me(12)) && w.armed_for(&me(8)) && !w.armed_for(&me(13)));
    }

    #[test]
    fn a_fresh_task_never_writes_over_existing_rows() {
        // Daemon restart: a new witness, whatever the server did before.
        for read in [
            rows(Some(3), Some((3, 2))),
            rows(Some(3), Some((4, 1))),
            rows(None, Some((4, 1))),
        ] {
            assert_eq!(
                PromotionWitness::default().decide(me(0), &read),
                TermDecision::Keep
            );
        }
    }

    #[test]
    fn no_term_above_the_largest_value() {
        let mut w = PromotionWitness::default();
        w.saw_non_primary(me(0));
        match w.decide(me(0), &rows(None, Some((u64::MAX, 1)))) {
            TermDecision::Refuse(r) => assert!(r.contains("largest"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn newer_promotion_elsewhere() {
        let known = |own, newest| TermState::Known { own, newest };
        assert_eq!(
            known(Some(7), Some((8, 1))).newer_elsewhere(2),
            Some((8, 1))
        );
        assert_eq!(known(None, Some((1, 1))).newer_elsewhere(2), Some((1, 1)));
        assert_eq!(known(Some(8), Some((8, 2))).newer_elsewhere(2), None);
        // An older row by another server is history, not a newer promotion.
        assert_eq!(known(Some(8), Some((7, 1))).newer_elsewhere(2), None);
        assert_eq!(known(None, None).newer_elsewhere(2), None);
        assert_eq!(TermState::NotConfigured.newer_elsewhere(2), None);
        assert_eq!(TermState::Unreadable("x".into()).newer_elsewhere(2), None);
    }

    #[test]
    fn facts_differ_on_term_server_or_a_real_restart() {
        let f = |id, started, own| ServerFacts {
            server_id: id,
            started_at: at(started),
            term: TermState::Known {
                own,
                newest: own.map(|t| (t, id)),
            },
        };
        let base = f(2, 100, Some(3));
        assert!(!f(2, 102, Some(3)).differs(&base));
        assert!(!f(2, 98, Some(3)).differs(&base));
        assert!(f(2, 103, Some(3)).differs(&base));
        assert!(f(2, 100, Some(4)).differs(&base));
        assert!(f(9, 100, Some(3)).differs(&base));
        let unreadable = ServerFacts {
            term: TermState::Unreadable("no table".into()),
            ..base.clone()
        };
        assert!(unreadable.differs(&base));

        // Steadied: within the tolerance the earlier start time is kept.
        assert_eq!(f(2, 101, Some(3)).steadied(Some(&base)).started_at, at(100));
        assert_eq!(f(2, 110, Some(3)).steadied(Some(&base)).started_at, at(110));
        assert_eq!(f(9, 101, Some(3)).steadied(Some(&base)).started_at, at(101));
        assert_eq!(f(2, 101, Some(3)).steadied(None).started_at, at(101));
    }

    #[test]
    fn change_text() {
        let f = |id, started, own: u64| ServerFacts {
            server_id: id,
            started_at: at(started),
            term: TermState::Known {
                own: Some(own),
                newest: Some((own, id)),
            },
        };
        assert_eq!(f(2, 0, 7).change_from(None), "server_id 2, term 7");
        assert_eq!(
            f(2, 0, 8).change_from(Some(&f(2, 0, 7))),
            "term 7 -> term 8"
        );
        assert_eq!(
            f(2, 60, 7).change_from(Some(&f(2, 0, 7))),
            "server restarted"
        );
        assert_eq!(
            f(3, 60, 8).change_from(Some(&f(2, 0, 7))),
            "server_id 2 -> 3; term 7 -> term 8"
        );
    }

    #[test]
    fn term_state_text() {
        let known = |own, newest| TermState::Known { own, newest }.to_string();
        assert_eq!(known(Some(7), Some((7, 2))), "term 7");
        assert_eq!(
            known(Some(7), Some((8, 1))),
            "term 7 (newest 8 by server_id 1)"
        );
        assert_eq!(
            known(None, Some((8, 1))),
            "no own term (newest 8 by server_id 1)"
        );
        assert_eq!(
            known(None, None),
            "no own term (table empty for the service)"
        );
        assert_eq!(
            TermState::Unreadable("ERROR 1146".into()).to_string(),
            "term unreadable: ERROR 1146"
        );
    }
}
