use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use super::*;

const T0: SystemTime = SystemTime::UNIX_EPOCH;

fn at(s: u64) -> SystemTime {
    T0 + Duration::from_secs(1_000_000 + s)
}

fn known(own: Option<u64>, newest: Option<(u64, u32)>) -> OwnTerm {
    OwnTerm::Known {
        own,
        newest,
        server_id: 1,
    }
}

fn primary(term: u32) -> Sighting {
    sighting(Claim::Primary {
        term,
        router_id: Some(Ipv4Addr::new(198, 19, 0, 12)),
    })
}

fn sighting(claim: Claim) -> Sighting {
    Sighting {
        peer: "tor1".into(),
        prefix: "192.0.2.10/32".parse().unwrap(),
        path_id: 1,
        next_hop: Some("198.18.2.1".parse().unwrap()),
        claim,
    }
}

/// One service's world: what the checks say and what the sessions show.
struct World {
    healthy: Result<(), &'static str>,
    term: Option<OwnTerm>,
    started: Option<SystemTime>,
    sightings: Vec<Sighting>,
    routes_in: bool,
}

impl World {
    fn primary(own: u64) -> World {
        World {
            healthy: Ok(()),
            term: Some(known(Some(own), Some((own, 1)))),
            started: Some(at(0)),
            sightings: Vec::new(),
            routes_in: true,
        }
    }

    fn inputs(&self) -> Inputs<'_> {
        Inputs {
            healthy: self.healthy,
            term: self.term.as_ref(),
            server_started_at: self.started,
            sightings: &self.sightings,
            routes_in: self.routes_in,
        }
    }
}

fn eval(g: &mut Guard, w: &World) -> Vec<Action> {
    g.evaluate(&w.inputs(), Policy::default())
}

fn announcing(g: &Guard) -> Option<Option<u64>> {
    match g.verdict() {
        Verdict::Announce { term } => Some(*term),
        Verdict::Withdrawn(_) => None,
    }
}

/// The guard of a daemon that restarted: its record says it announced term 7 of the server
/// that started at `at(0)`.
fn restarted_daemon() -> Guard {
    Guard::new(Record {
        server_start: Some(at(0)),
        announced_term: Some(7),
        ..Record::default()
    })
}

fn hold(g: &Guard) -> Hold {
    g.verdict().hold().cloned().expect("withdrawn")
}

#[test]
fn nothing_is_announced_before_a_check_answered_or_while_unhealthy() {
    let mut g = Guard::new(Record::default());
    assert_eq!(hold(&g), Hold::NoFacts);
    let mut w = World::primary(7);
    w.term = None;
    eval(&mut g, &w);
    assert_eq!(hold(&g), Hold::NoFacts);
    let mut w = World::primary(7);
    w.healthy = Err("read_only=1");
    eval(&mut g, &w);
    assert_eq!(hold(&g), Hold::Unhealthy("read_only=1".into()));
    assert_eq!(hold(&g).to_string(), "read_only=1");
    w.healthy = Ok(());
    eval(&mut g, &w);
    assert_eq!(announcing(&g), Some(Some(7)));
}

#[test]
fn a_higher_term_on_any_route_withdraws_at_once_and_for_good() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(7);
    eval(&mut g, &w);
    assert_eq!(announcing(&g), Some(Some(7)));
    w.sightings = vec![primary(8)];
    let actions = eval(&mut g, &w);
    let h = hold(&g);
    assert!(h.is_conflict());
    assert_eq!(
        h.to_string(),
        "conflict: 192.0.2.10/32 also announced by 198.19.0.12 (next hop 198.18.2.1, via \
         tor1), term 8 > our 7"
    );
    assert!(matches!(&actions[..], [Action::Persist(r)] if r.seen.as_ref().unwrap().term == 8));
    // The new primary's route is gone (its session flapped, it failed): still deposed.
    w.sightings.clear();
    assert!(eval(&mut g, &w).is_empty());
    assert!(hold(&g).is_conflict());
    // A promotion of this server (its term grew past what was seen) ends it.
    w.term = Some(known(Some(9), Some((9, 1))));
    eval(&mut g, &w);
    assert_eq!(announcing(&g), Some(Some(9)));
}

#[test]
fn a_lower_term_does_not_disturb_the_newest_primary() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(8);
    w.sightings = vec![primary(7)];
    eval(&mut g, &w);
    assert_eq!(announcing(&g), Some(Some(8)));
}

#[test]
fn two_primaries_with_the_same_term_both_withdraw() {
    let (mut a, mut b) = (Guard::new(Record::default()), Guard::new(Record::default()));
    let w = World::primary(8);
    eval(&mut a, &w);
    eval(&mut b, &w);
    assert!(announcing(&a).is_some() && announcing(&b).is_some());
    let mut seen = World::primary(8);
    seen.sightings = vec![primary(8)];
    eval(&mut a, &seen);
    eval(&mut b, &seen);
    for g in [&a, &b] {
        let h = hold(g);
        assert!(h.is_conflict());
        assert!(h.to_string().ends_with("term 8 = our 8"), "{h}");
    }
    // Neither comes back when the other's route is gone.
    eval(&mut a, &w);
    assert!(hold(&a).is_conflict());
}

#[test]
fn an_unmarked_route_beside_our_announcement_withdraws_until_an_operator_confirms() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(7);
    eval(&mut g, &w);
    w.sightings = vec![sighting(Claim::Unmarked)];
    let actions = eval(&mut g, &w);
    assert!(matches!(hold(&g), Hold::Tie { latched: true, .. }));
    assert!(matches!(&actions[..], [Action::Persist(r)] if r.tie.is_some()));
    assert!(hold(&g)
        .to_string()
        .contains("until an operator runs primaryctl confirm"));
    w.sightings.clear();
    eval(&mut g, &w);
    assert!(matches!(hold(&g), Hold::Tie { latched: true, .. }));
    let actions = g.confirm(&w.inputs(), Policy::default());
    assert_eq!(announcing(&g), Some(Some(7)));
    assert!(matches!(&actions[..], [Action::Persist(r)] if r.tie.is_none()));
}

#[test]
fn a_host_that_was_not_announcing_waits_for_an_unordered_competitor_to_go() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(7);
    w.sightings = vec![sighting(Claim::Primary {
        term: 0,
        router_id: None,
    })];
    eval(&mut g, &w);
    assert!(matches!(hold(&g), Hold::Tie { latched: false, .. }));
    assert!(g.record().tie.is_none());
    w.sightings.clear();
    eval(&mut g, &w);
    assert_eq!(announcing(&g), Some(Some(7)));
}

#[test]
fn without_a_term_table_any_other_primary_is_a_conflict() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(0);
    w.term = Some(OwnTerm::NotConfigured);
    eval(&mut g, &w);
    assert_eq!(announcing(&g), Some(None));
    w.sightings = vec![primary(8)];
    eval(&mut g, &w);
    assert!(matches!(hold(&g), Hold::Tie { latched: true, .. }));
}

#[test]
fn fallback_announcements_are_never_a_second_primary() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(7);
    w.sightings = vec![sighting(Claim::Fallback { router_id: None })];
    eval(&mut g, &w);
    assert_eq!(announcing(&g), Some(Some(7)));
}

#[test]
fn a_newer_promotion_in_the_term_table_deposes_without_any_route() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(7);
    w.term = Some(known(Some(7), Some((8, 2))));
    eval(&mut g, &w);
    let h = hold(&g);
    assert!(h.is_conflict());
    assert!(h.to_string().contains("server_id 2"), "{h}");
    // A server that never wrote a term, in a table that has some, has term 0.
    let mut g = Guard::new(Record::default());
    w.term = Some(known(None, Some((3, 2))));
    eval(&mut g, &w);
    assert!(matches!(
        hold(&g),
        Hold::Deposed {
            theirs: 3,
            ours: 0,
            ..
        }
    ));
}

#[test]
fn an_unreadable_or_unencodable_term_fails_closed() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(7);
    w.term = Some(OwnTerm::Unreadable("SELECT command denied".into()));
    eval(&mut g, &w);
    assert_eq!(
        hold(&g).to_string(),
        "term table unreadable: SELECT command denied"
    );
    w.term = Some(known(Some(1 << 32), Some((1 << 32, 1))));
    eval(&mut g, &w);
    assert_eq!(hold(&g), Hold::TermTooLarge(1 << 32));
}

#[test]
fn a_higher_term_seen_while_unhealthy_still_counts_when_the_server_comes_back() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(7);
    w.healthy = Err("connection refused");
    w.sightings = vec![primary(8)];
    eval(&mut g, &w);
    assert!(matches!(hold(&g), Hold::Unhealthy(_)));
    w.healthy = Ok(());
    w.sightings.clear();
    eval(&mut g, &w);
    assert!(hold(&g).is_conflict());
}

#[test]
fn a_server_restarted_while_withdrawn_is_held_until_confirmed() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(7);
    eval(&mut g, &w);
    w.healthy = Err("connection refused");
    eval(&mut g, &w);
    // Back with a new start time, and nobody else announcing.
    w.healthy = Ok(());
    w.started = Some(at(60));
    eval(&mut g, &w);
    assert!(matches!(hold(&g), Hold::Restarted { .. }));
    assert!(hold(&g).to_string().contains("primaryctl confirm"));
    let actions = g.confirm(&w.inputs(), Policy::default());
    assert_eq!(announcing(&g), Some(Some(7)));
    assert!(matches!(&actions[..], [Action::Persist(r)] if r.server_start == Some(at(60))));
}

#[test]
fn a_daemon_restart_or_a_start_time_read_a_second_apart_is_not_a_server_restart() {
    let mut g = restarted_daemon();
    let mut w = World::primary(7);
    w.started = Some(at(1));
    eval(&mut g, &w);
    assert_eq!(announcing(&g), Some(Some(7)));
}

#[test]
fn a_restarted_server_promoted_since_needs_no_confirm() {
    let mut g = restarted_daemon();
    let mut w = World::primary(8);
    w.started = Some(at(600));
    eval(&mut g, &w);
    assert_eq!(announcing(&g), Some(Some(8)));
}

#[test]
fn announce_if_newest_waits_for_every_sessions_initial_routes() {
    let policy = Policy {
        on_restart: OnRestart::AnnounceIfNewest,
        ..Policy::default()
    };
    let mut g = restarted_daemon();
    let mut w = World::primary(7);
    w.started = Some(at(60));
    w.routes_in = false;
    g.evaluate(&w.inputs(), policy);
    assert_eq!(hold(&g), Hold::WaitingForRoutes);
    // The routes show the new primary: deposed, not announced.
    let mut seen = World::primary(7);
    seen.started = Some(at(60));
    seen.sightings = vec![primary(8)];
    let mut deposed = g.clone();
    deposed.evaluate(&seen.inputs(), policy);
    assert!(hold(&deposed).is_conflict());
    // They show nobody: announced.
    w.routes_in = true;
    g.evaluate(&w.inputs(), policy);
    assert_eq!(announcing(&g), Some(Some(7)));
}

#[test]
fn fence_is_asked_once_on_entering_a_conflict() {
    let policy = Policy {
        on_conflict: OnConflict::Fence,
        ..Policy::default()
    };
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(7);
    g.evaluate(&w.inputs(), policy);
    w.sightings = vec![primary(8)];
    let actions = g.evaluate(&w.inputs(), policy);
    let fences: Vec<_> = actions
        .iter()
        .filter(|a| matches!(a, Action::Fence(r) if r.contains("term 8 > our 7")))
        .collect();
    assert_eq!(fences.len(), 1, "{actions:?}");
    assert!(g.evaluate(&w.inputs(), policy).is_empty());
    // The fence made the server read-only: the conflict is still what shows, no new fence.
    w.healthy = Err("read_only=1");
    assert!(g.evaluate(&w.inputs(), policy).is_empty());
    assert!(hold(&g).is_conflict(), "{:?}", hold(&g));
    // Made writable again while the newer primary is still there: fenced again.
    w.healthy = Ok(());
    let again = g.evaluate(&w.inputs(), policy);
    assert!(
        again.iter().any(|a| matches!(a, Action::Fence(_))),
        "{again:?}"
    );
    // Without the policy: no fence.
    let mut g = Guard::new(Record::default());
    let actions = eval(&mut g, &w);
    assert!(!actions.iter().any(|a| matches!(a, Action::Fence(_))));
}

#[test]
fn confirm_on_a_deposed_server_asks_for_a_term_above_everything_seen() {
    let mut g = Guard::new(Record::default());
    let mut w = World::primary(7);
    w.sightings = vec![primary(8)];
    eval(&mut g, &w);
    w.sightings.clear();
    let actions = g.confirm(&w.inputs(), Policy::default());
    assert!(
        actions.contains(&Action::NewTerm { above: 8 }),
        "{actions:?}"
    );
    assert!(hold(&g).is_conflict());
    // The new term arrives with the next check.
    w.term = Some(known(Some(9), Some((9, 1))));
    eval(&mut g, &w);
    assert_eq!(announcing(&g), Some(Some(9)));
    // A confirm on the newest primary writes nothing.
    let actions = g.confirm(&w.inputs(), Policy::default());
    assert!(!actions.iter().any(|a| matches!(a, Action::NewTerm { .. })));
}

#[test]
fn the_record_is_persisted_only_when_it_changes() {
    let mut g = Guard::new(Record::default());
    let w = World::primary(7);
    let actions = eval(&mut g, &w);
    assert!(matches!(&actions[..], [Action::Persist(r)] if r.announced_term == Some(7)));
    assert!(eval(&mut g, &w).is_empty());
}
