//! One writable destination (issue 11), end to end: two DB hosts behind one router (FRR with
//! `frr defaults datacenter` multipath, and BIRD), each with MariaDB and primaryd with the
//! promotion term table ([`testkit::Pair`]). What is asserted is the router's **BGP table**:
//! which hosts it holds a *primary* path from (the marks on the routes, docs/safety.md), not
//! only what it installed.
//!
//! - double promotion with ADD-PATH on the router: the replica promoted while the old
//!   primary stays a healthy writable primary gets a higher term; the old primary sees it
//!   (every path, ADD-PATH) and withdraws at once, and stays withdrawn;
//! - an old primary that restarts after the promotion, without ADD-PATH: the router's best
//!   path (the new primary's) is enough for it to see the newer term and stay withdrawn.

use std::time::{Duration, Instant};

use testkit::{Pair, PairOpts, PairRouter, STEP};

const V4: &str = "192.0.2.10/32";
const V6: &str = "2001:db8::10/128";
/// The Global Administrator of the marks (`[bgp] community_asn`, default).
const MARKS_ASN: u32 = 4_200_000_000;

/// What one path of the router says about its announcer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Announcer {
    /// 0 for db1 (router id 198.19.0.11), 1 for db2 (.12).
    host: Option<usize>,
    /// Some(term) for a primary announcement, None for a fallback.
    term: Option<u32>,
}

/// Reads the marks from large communities given as (global, local1, local2).
fn announcer(large: &[(u32, u32, u32)]) -> Announcer {
    let ours: Vec<&(u32, u32, u32)> = large.iter().filter(|c| c.0 == MARKS_ASN).collect();
    let rid = ours.iter().find(|c| c.1 == 3).map(|c| c.2);
    let host = rid.and_then(|r| match std::net::Ipv4Addr::from(r).octets() {
        [198, 19, 0, 11] => Some(0),
        [198, 19, 0, 12] => Some(1),
        _ => None,
    });
    Announcer {
        host,
        term: ours.iter().find(|c| c.1 == 1).map(|c| c.2),
    }
}

fn numbers(text: &str) -> Vec<u32> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn triples(nums: &[u32]) -> Vec<(u32, u32, u32)> {
    nums.chunks_exact(3).map(|c| (c[0], c[1], c[2])).collect()
}

/// Every path the router's BGP table holds for `prefix`, as announcers.
fn paths(pair: &Pair, prefix: &str) -> Vec<Announcer> {
    match pair.opts.router {
        PairRouter::Frr => pair
            .frr()
            .paths(prefix)
            .iter()
            .map(|p| {
                let large: Vec<(u32, u32, u32)> = p
                    .large_communities
                    .iter()
                    .flat_map(|c| triples(&numbers(c)))
                    .collect();
                announcer(&large)
            })
            .collect(),
        PairRouter::Bird => pair
            .bird()
            .routes()
            .iter()
            .filter(|r| r.prefix == prefix && r.attr("BGP.as_path").is_some())
            .map(|r| {
                announcer(&triples(&numbers(
                    r.attr("BGP.large_community").unwrap_or(""),
                )))
            })
            .collect(),
    }
}

/// The hosts the router holds a primary path from, for both prefixes, with their terms.
fn primaries(pair: &Pair) -> Vec<(usize, u32)> {
    let mut out: Vec<(usize, u32)> = Vec::new();
    for prefix in [V4, V6] {
        for a in paths(pair, prefix) {
            if let (Some(h), Some(t)) = (a.host, a.term) {
                if !out.contains(&(h, t)) {
                    out.push((h, t));
                }
            }
        }
    }
    out.sort();
    out
}

/// Both prefixes have a primary path from `host` with `term`.
fn announces(pair: &Pair, host: usize, term: u32) -> bool {
    [V4, V6].iter().all(|p| {
        paths(pair, p)
            .iter()
            .any(|a| a.host == Some(host) && a.term == Some(term))
    })
}

/// Neither prefix has a primary path from `host`.
fn withdrawn(pair: &Pair, host: usize) -> bool {
    [V4, V6].iter().all(|p| {
        !paths(pair, p)
            .iter()
            .any(|a| a.host == Some(host) && a.term.is_some())
    })
}

/// db1 a writable primary with term 1 at the router; db2 read-only beside it.
fn pair_with_primary(router: PairRouter, add_path: bool, fence: bool) -> Pair {
    let mut pair = Pair::with(PairOpts {
        router,
        add_path,
        term_table: true,
        fence,
    });
    let db1 = pair.add_mariadb(0, false);
    let db2 = pair.add_mariadb(1, true);
    pair.start_primaryd(0, &db1);
    pair.start_primaryd(1, &db2);
    pair.wait_for("db1's primary route with term 1 at the router", || {
        announces(&pair, 0, 1).then_some(())
    });
    // The term row db1 wrote, in db2's table as replication would have brought it.
    assert_eq!(db1.term_rows("main"), [(1, 1)]);
    db2.sql(
        "INSERT INTO primaryd.term (service, term, server_id, promoted_at) \
         VALUES ('main', 1, 1, NOW(6))",
    );
    pair
}

/// With `fence`, the deposed server is also made read-only, and still shown in conflict.
fn double_promotion_deposes_the_old_primary(router: PairRouter, fence: bool) {
    let pair = pair_with_primary(router, true, fence);
    let (pd1, pd2) = (pair.daemons[0].clone(), pair.daemons[1].clone());
    // ADD-PATH negotiated: db1 receives every path.
    let peers = pd1.ctl_json(&["show", "peers"]);
    assert!(
        peers.to_string().contains("add-path-rx ipv4-unicast"),
        "ADD-PATH not negotiated: {peers}"
    );

    // The mistake: db2 promoted while db1 is still a healthy writable primary.
    pair.dbs[1].set_read_only(false);
    let new_at = pair.wait_for("db2's primary route with term 2", || {
        announces(&pair, 1, 2).then(Instant::now)
    });
    let gone_at = pair.wait_for(
        "db1's primary route gone from the router's BGP table",
        || withdrawn(&pair, 0).then(Instant::now),
    );
    eprintln!(
        "{router:?}: db1's primary path gone {:.1} ms after db2's was seen",
        gone_at.saturating_duration_since(new_at).as_secs_f64() * 1000.0
    );
    let (state, reason) = pd1.service_state("main");
    assert_eq!(state, "conflict", "{reason}");
    assert!(reason.contains("term 2 > our 1"), "{reason}");
    assert_eq!(pd2.service_state("main").0, "up");
    assert_eq!(pair.dbs[1].term_rows("main"), [(1, 1), (2, 2)]);
    if fence {
        pair.wait_for("db1 fenced (read_only=1)", || {
            pair.dbs[0].read_only().then_some(())
        });
        // Its checks now fail on read_only=1; what it shows is still why.
        let (state, reason) = pd1.service_state("main");
        assert_eq!(state, "conflict", "{reason}");
        assert!(pd1.log().contains("fenced"), "no fence logged");
    }

    // And it stays so: one primary at the router, db2's, for a while of 100 ms checks.
    let start = Instant::now();
    testkit::hold_until(
        STEP,
        "only db2 announces as primary",
        || primaries(&pair) == [(1, 2)],
        "2 s passed",
        || start.elapsed() >= Duration::from_secs(2),
    );

    // An operator's confirm on the old primary is a promotion: a term above 2, and db2,
    // seeing it, withdraws. (Only an operator who checked should do this; docs/safety.md.)
    pd1.confirm("main");
    if fence {
        // A fenced server is made writable by the operator after the confirm (before it, the
        // daemon would fence it again: the conflict still holds).
        pair.dbs[0].set_read_only(false);
    }
    pair.wait_for("db1's primary route with term 3", || {
        announces(&pair, 0, 3).then_some(())
    });
    pair.wait_for("db2 withdrawn", || withdrawn(&pair, 1).then_some(()));
    assert_eq!(pd2.service_state("main").0, "conflict");
}

#[test]
fn frr_double_promotion_with_add_path_deposes_and_fences_the_old_primary() {
    double_promotion_deposes_the_old_primary(PairRouter::Frr, true);
}

#[test]
fn bird_double_promotion_with_add_path_deposes_the_old_primary() {
    double_promotion_deposes_the_old_primary(PairRouter::Bird, false);
}

fn restarted_old_primary_stays_withdrawn(router: PairRouter) {
    let pair = pair_with_primary(router, false, false);
    let pd1 = pair.daemons[0].clone();
    let (db1, db2) = (pair.dbs[0].clone(), pair.dbs[1].clone());
    db1.wait_uptime(3);
    db1.kill9();
    pair.wait_for("db1's primary route gone", || {
        withdrawn(&pair, 0).then_some(())
    });
    db2.set_read_only(false);
    pair.wait_for("db2's primary route with term 2", || {
        announces(&pair, 1, 2).then_some(())
    });
    // db1 comes back writable (MariaDB's default), knowing only its own term 1.
    db1.start();
    pair.wait_for("db1 sees the newer term", || {
        (pd1.service_state("main").0 == "conflict").then_some(())
    });
    let (_, reason) = pd1.service_state("main");
    assert!(reason.contains("term 2 > our 1"), "{reason}");
    let start = Instant::now();
    testkit::hold_until(
        STEP,
        "only db2 announces as primary",
        || primaries(&pair) == [(1, 2)],
        "2 s passed",
        || start.elapsed() >= Duration::from_secs(2),
    );
}

#[test]
fn frr_without_add_path_a_restarted_old_primary_stays_withdrawn() {
    restarted_old_primary_stays_withdrawn(PairRouter::Frr);
}

#[test]
fn bird_without_add_path_a_restarted_old_primary_stays_withdrawn() {
    restarted_old_primary_stays_withdrawn(PairRouter::Bird);
}
