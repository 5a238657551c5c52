//! Interop with FRR 8.4 as the ToR, each test in its own set of network namespaces (see
//! testkit/src/fixtures/net.rs): what primaryd sends is asserted as FRR shows it (`show bgp …
//! json`, `show bgp neighbors … json`) and as zebra installs it (`ip route` in the ToR's
//! namespace). The FRR configs are the documented examples (docs/tor-examples/, checked by the last
//! test). Run as root; every lab test fails (never skips) otherwise.

use std::fs;
use std::time::Instant;

use testkit::examples::{self, tor_asn};
use testkit::{
    withdrawn_before_notification, Checks, Frr, Link, MariaDbOpts, Net, PdConfig, PdService,
    PrimarydOpts, DB_ASN, PRIMARY_MARKS, STEP,
};

const V4: &str = "192.0.2.10/32";
const V6: &str = "2001:db8::10/128";
const PLAIN_V4: &str = "192.0.2.11/32";
const PLAIN_V6: &str = "2001:db8::11/128";

/// What one path must look like in FRR's JSON.
struct Want<'a> {
    /// Our ASN repeated (1 + prepends) on eBGP; empty on iBGP.
    as_path: Vec<u32>,
    med: Option<u64>,
    local_pref: Option<u64>,
    communities: &'a [&'a str],
    large_communities: &'a [&'a str],
    /// (ip, scope) as FRR lists `nexthops[]`; scope None for IPv4.
    next_hops: Vec<(&'a str, Option<&'a str>)>,
    peer_type: &'a str,
}

/// Compares every attribute of FRR's path for `prefix` with `want`.
fn check_path(c: &mut Checks, frr: &Frr, prefix: &str, want: &Want) {
    let Some(p) = frr.best_path(prefix) else {
        c.check(false, format!("{}: no path for {prefix}", frr.name));
        return;
    };
    let at = format!("{} {prefix}", frr.name);
    let string: Vec<String> = want.as_path.iter().map(u32::to_string).collect();
    // FRR renders an empty AS_PATH as "Local".
    let string = if string.is_empty() {
        "Local".to_string()
    } else {
        string.join(" ")
    };
    c.eq(format!("{at} aspath.string"), p.as_path.clone(), string);
    let segments = if want.as_path.is_empty() {
        vec![]
    } else {
        vec![("as-sequence".to_string(), want.as_path.clone())]
    };
    c.eq(
        format!("{at} aspath.segments"),
        p.segments.clone(),
        segments,
    );
    c.eq(format!("{at} origin"), p.origin.as_str(), "IGP");
    c.eq(format!("{at} metric (MED)"), p.med, want.med);
    c.eq(format!("{at} locPrf"), p.local_pref, want.local_pref);
    c.eq(
        format!("{at} community.list"),
        p.communities.clone(),
        want.communities.iter().map(|s| s.to_string()).collect(),
    );
    c.eq(
        format!("{at} largeCommunity.list"),
        p.large_communities.clone(),
        want.large_communities
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    let hops: Vec<(String, Option<String>)> = want
        .next_hops
        .iter()
        .map(|(ip, scope)| (ip.to_string(), scope.map(str::to_string)))
        .collect();
    c.eq(format!("{at} nexthops"), p.next_hops.clone(), hops);
    c.eq(
        format!("{at} peer.type"),
        p.peer_type.as_deref(),
        Some(want.peer_type),
    );
    c.check(
        p.valid && p.best,
        format!("{at}: path not valid and best: {p:?}"),
    );
}

/// The kernel route zebra installed for `prefix` goes via `via` on the link.
fn check_kernel(c: &mut Checks, frr: &Frr, prefix: &str, via: &[&str]) {
    match frr.bgp_kernel_route(prefix) {
        Some(r) => c.check(
            via.iter()
                .any(|v| r.contains(&format!(" via {v} dev eth1 "))),
            format!(
                "{}: kernel route for {prefix} not via one of {via:?}: {r}",
                frr.name
            ),
        ),
        None => c.check(
            false,
            format!(
                "{}: no BGP route for {prefix} in the kernel ({:?})",
                frr.name,
                frr.kernel_route(prefix)
            ),
        ),
    }
}

/// `neighborCapabilities` as FRR shows them for the session with `addr`.
fn check_capabilities(c: &mut Checks, frr: &Frr, addr: &str, ipv6: bool) {
    let caps = frr.neighbor(addr)["neighborCapabilities"].clone();
    let at = format!("{} neighbour {addr}", frr.name);
    c.eq(
        format!("{at} 4byteAs"),
        caps["4byteAs"].as_str(),
        Some("advertisedAndReceived"),
    );
    // "advertisedAndReceivedNew": both sides sent the RFC 2918 capability (code 2).
    let rr = caps["routeRefresh"].as_str().unwrap_or("");
    c.check(
        rr.starts_with("advertisedAndReceived"),
        format!("{at} routeRefresh is {rr:?}, not advertised and received"),
    );
    let mp = &caps["multiprotocolExtensions"];
    c.eq(
        format!("{at} ipv4Unicast"),
        mp["ipv4Unicast"]["advertisedAndReceived"].as_bool(),
        Some(true),
    );
    if ipv6 {
        c.eq(
            format!("{at} ipv6Unicast"),
            mp["ipv6Unicast"]["advertisedAndReceived"].as_bool(),
            Some(true),
        );
    } else {
        // FRR did not activate IPv6 for this neighbour, so only primaryd offered it.
        c.eq(
            format!("{at} ipv6Unicast"),
            mp["ipv6Unicast"]["received"].as_bool(),
            Some(true),
        );
    }
}

fn wait_prefixes(net: &Net, frr: &Frr, prefixes: &[&str]) {
    for p in prefixes {
        net.wait_for(
            STEP,
            &format!("{} has {p} from BGP in its kernel table", frr.name),
            || frr.bgp_kernel_route(p),
        );
    }
}

fn wait_gone(net: &Net, frr: &Frr, prefixes: &[&str]) {
    for p in prefixes {
        net.wait_until(
            STEP,
            &format!("{p} is gone from {}'s BGP and kernel tables", frr.name),
            || frr.kernel_route(p).is_none() && frr.route_json(p).is_none(),
        );
    }
}

/// Asks FRR for a refresh of `family` from `addr` (`clear bgp … soft in`: FRR sends
/// ROUTE-REFRESH because primaryd advertised the capability and FRR keeps no copy without
/// `soft-reconfiguration inbound`) and checks that primaryd answered with its Adj-RIB-Out,
/// one UPDATE per attribute set, while the routes never left the ToR.
fn check_route_refresh(
    c: &mut Checks,
    net: &Net,
    frr: &Frr,
    addr: &str,
    family: &str,
    prefixes: &[&str],
) {
    let stats = |frr: &Frr| frr.neighbor(addr)["messageStats"].clone();
    let before = stats(frr);
    let sent0 = before["routeRefreshSent"].as_u64().unwrap_or(0);
    let updates0 = before["updatesRecv"].as_u64().unwrap_or(0);
    let log_len = frr.log().len();
    frr.vtysh(&format!("clear bgp {family} unicast {addr} soft in"));
    let t = Instant::now();
    let mut after = before.clone();
    // Every poll until the answer is complete: the routes stay in both tables.
    testkit::hold_until(
        STEP,
        &format!("{prefixes:?} stay in {}'s BGP and kernel tables", frr.name),
        || {
            net.assert_alive();
            prefixes
                .iter()
                .all(|p| frr.route_json(p).is_some() && frr.bgp_kernel_route(p).is_some())
        },
        &format!(
            "{} sent ROUTE-REFRESH and received the routes again",
            frr.name
        ),
        || {
            after = stats(frr);
            let log = frr.log();
            let resent = prefixes.iter().all(|p| {
                log[log_len..]
                    .lines()
                    .any(|l| l.contains(&format!("{addr}(")) && l.contains(&format!("rcvd {p} ")))
            });
            after["routeRefreshSent"].as_u64() == Some(sent0 + 1) && resent
        },
    );
    eprintln!(
        "{} {family}: refresh answered in {:.3?}",
        frr.name,
        t.elapsed()
    );
    let updates = after["updatesRecv"].as_u64().unwrap_or(0) - updates0;
    c.check(
        updates as usize == prefixes.len(),
        format!(
            "{} {family} refresh: {updates} UPDATEs received, want {} (one per attribute set)",
            frr.name,
            prefixes.len()
        ),
    );
}

#[test]
fn frr_shows_the_configured_attributes_on_ebgp_and_ibgp_and_gets_them_again_on_route_refresh() {
    let mut net = Net::new();
    let l1 = net.add_link();
    let l2 = net.add_link();
    net.start_frr("tor1", &l1, &examples::frr_ebgp(&l1).render());
    net.start_frr("tor2", &l2, &examples::frr_ibgp(&l2).render());
    let db = net.add_mariadb(MariaDbOpts::primary());
    let config = net.primaryd_config(
        &examples::primaryd_attributes(&l1, &l2),
        &db,
        PrimarydOpts::default(),
    );
    let started = Instant::now();
    let pd = net.start_primaryd(&config);
    let (tor1, tor2) = (net.frr("tor1"), net.frr("tor2"));
    let all = [V4, V6, PLAIN_V4, PLAIN_V6];
    wait_prefixes(&net, tor1, &all);
    wait_prefixes(&net, tor2, &all);
    eprintln!(
        "lab {}: 2 FRR + MariaDB + primaryd, all routes at both ToRs {:.3?} after primaryd \
         started ({:.3?} since the lab began)",
        net.prefix,
        started.elapsed(),
        net.age()
    );

    let mut c = Checks::new();
    let comms = ["65001:100", "65001:200"];
    // FRR lists large communities sorted: our marks, then the service's own.
    let large = [PRIMARY_MARKS[0], PRIMARY_MARKS[1], "4200000001:1:2"];
    let check_all = |c: &mut Checks| {
        // eBGP: our ASN once plus two prepends, as one AS_SEQUENCE; no LOCAL_PREF.
        for (prefix, hop, scope) in [
            (V4, l1.db_v4.as_str(), None),
            (V6, &l1.db_v6, Some("global")),
        ] {
            let want = Want {
                as_path: vec![DB_ASN; 3],
                med: Some(50),
                local_pref: None,
                communities: &comms,
                large_communities: &large,
                next_hops: vec![(hop, scope)],
                peer_type: "external",
            };
            check_path(c, tor1, prefix, &want);
        }
        for (prefix, hop, scope) in [
            (PLAIN_V4, l1.db_v4.as_str(), None),
            (PLAIN_V6, &l1.db_v6, Some("global")),
        ] {
            let want = Want {
                as_path: vec![DB_ASN],
                med: None,
                local_pref: None,
                communities: &[],
                large_communities: &PRIMARY_MARKS,
                next_hops: vec![(hop, scope)],
                peer_type: "external",
            };
            check_path(c, tor1, prefix, &want);
        }
        // iBGP: empty AS_PATH, the service's LOCAL_PREF (100 when it sets none).
        for (prefix, hop, scope) in [
            (V4, l2.db_v4.as_str(), None),
            (V6, &l2.db_v6, Some("global")),
        ] {
            let want = Want {
                as_path: vec![],
                med: Some(50),
                local_pref: Some(200),
                communities: &comms,
                large_communities: &large,
                next_hops: vec![(hop, scope)],
                peer_type: "internal",
            };
            check_path(c, tor2, prefix, &want);
        }
        for (prefix, hop, scope) in [
            (PLAIN_V4, l2.db_v4.as_str(), None),
            (PLAIN_V6, &l2.db_v6, Some("global")),
        ] {
            let want = Want {
                as_path: vec![],
                med: None,
                local_pref: Some(100),
                communities: &[],
                large_communities: &PRIMARY_MARKS,
                next_hops: vec![(hop, scope)],
                peer_type: "internal",
            };
            check_path(c, tor2, prefix, &want);
        }
    };
    check_all(&mut c);
    for (frr, l) in [(tor1, &l1), (tor2, &l2)] {
        for p in [V4, PLAIN_V4] {
            check_kernel(&mut c, frr, p, &[&l.db_v4]);
        }
        for p in [V6, PLAIN_V6] {
            check_kernel(&mut c, frr, p, &[&l.db_v6]);
        }
        check_capabilities(&mut c, frr, &l.db_v4, true);
    }

    // Route refresh, per family, on the eBGP and the iBGP session.
    for (frr, l) in [(tor1, &l1), (tor2, &l2)] {
        check_route_refresh(&mut c, &net, frr, &l.db_v4, "ipv4", &[V4, PLAIN_V4]);
        check_route_refresh(&mut c, &net, frr, &l.db_v4, "ipv6", &[V6, PLAIN_V6]);
        c.eq(
            format!("{} messageStats.routeRefreshSent", frr.name),
            frr.neighbor(&l.db_v4)["messageStats"]["routeRefreshSent"].as_u64(),
            Some(2),
        );
        // Answered in place: the session never reset.
        c.eq(
            format!("{} connectionsEstablished", frr.name),
            frr.connections_established(&l.db_v4),
            1,
        );
    }
    // The refreshed routes are the same routes.
    check_all(&mut c);

    // A demoted server withdraws everything from both, a writable one brings it back.
    db.set_read_only(true);
    let t = Instant::now();
    wait_gone(&net, tor1, &all);
    wait_gone(&net, tor2, &all);
    eprintln!(
        "read_only=1: all routes gone from both ToRs after {:.3?}",
        t.elapsed()
    );
    db.set_read_only(false);
    wait_prefixes(&net, tor1, &all);
    wait_prefixes(&net, tor2, &all);
    check_all(&mut c);
    pd.assert_running();
    c.finish();
}

/// A link's four sessions: over IPv4, over IPv6 (global), over link-local IPv6, and over IPv4
/// to a ToR that takes only IPv4.
#[test]
fn ipv4_and_ipv6_routes_over_ipv4_ipv6_and_link_local_sessions_and_only_negotiated_families() {
    let mut net = Net::new();
    let links: Vec<Link> = (0..4).map(|_| net.add_link()).collect();
    let (l1, l2, l3, l4) = (&links[0], &links[1], &links[2], &links[3]);
    net.start_frr("tor1", l1, &examples::frr_ebgp(l1).render());
    net.start_frr("tor2", l2, &examples::frr_ebgp_ipv6_session(l2).render());
    net.start_frr("tor3", l3, &examples::frr_ebgp_link_local(l3).render());
    net.start_frr("tor4", l4, &examples::frr_ebgp_ipv4_only(l4).render());
    let db = net.add_mariadb(MariaDbOpts::primary());
    let cfg = PdConfig::new()
        .peer(examples::pd_ebgp_peer(l1))
        .peer(examples::pd_ipv6_peer(l2))
        .peer(examples::pd_link_local_peer(l3))
        .peer(examples::pd_ebgp_peer(l4))
        .service(PdService::new("main", &[V4, V6]));
    let started = Instant::now();
    let pd = net.start_primaryd(&net.primaryd_config(&cfg, &db, PrimarydOpts::default()));
    let tors: Vec<&Frr> = ["tor1", "tor2", "tor3", "tor4"]
        .iter()
        .map(|n| net.frr(n))
        .collect();
    for t in &tors[..3] {
        wait_prefixes(&net, t, &[V4, V6]);
    }
    wait_prefixes(&net, tors[3], &[V4]);
    eprintln!(
        "lab {}: 4 FRR + MariaDB + primaryd, all routes at all ToRs {:.3?} after primaryd \
         started ({:.3?} since the lab began)",
        net.prefix,
        started.elapsed(),
        net.age()
    );

    let mut c = Checks::new();
    // How each ToR knows the DB host: the session's neighbour address.
    let neighbours = [&l1.db_v4, &l2.db_v6, &l3.db_ll, &l4.db_v4];
    for (t, (addr, l)) in tors.iter().zip(neighbours.iter().zip(&links)) {
        c.eq(
            format!("{} bgpState", t.name),
            t.neighbor_state(addr),
            "Established".into(),
        );
        check_capabilities(&mut c, t, addr, l.n != 4);
        c.eq(
            format!("{} {V4} nexthops", t.name),
            t.best_path(V4).map(|p| p.next_hops),
            Some(vec![(l.db_v4.clone(), None)]),
        );
        c.eq(
            format!("{} {V4} peerId", t.name),
            t.best_path(V4).and_then(|p| p.peer),
            Some(addr.to_string()),
        );
        c.eq(
            format!("{} {V4} aspath", t.name),
            t.best_path(V4).map(|p| p.as_path),
            Some(DB_ASN.to_string()),
        );
        check_kernel(&mut c, t, V4, &[&l.db_v4]);
    }
    // IPv6 next hops: the DB host's global address on the link, and over link-local the
    // link-local address as the second next hop.
    let global = |l: &Link| (l.db_v6.clone(), Some("global".to_string()));
    for (t, l) in tors[..2].iter().zip(&links) {
        c.eq(
            format!("{} {V6} nexthops", t.name),
            t.best_path(V6).map(|p| p.next_hops),
            Some(vec![global(l)]),
        );
        check_kernel(&mut c, t, V6, &[&l.db_v6]);
    }
    c.eq(
        format!("tor3 {V6} nexthops"),
        tors[2].best_path(V6).map(|p| p.next_hops),
        Some(vec![
            global(l3),
            (l3.db_ll.clone(), Some("link-local".to_string())),
        ]),
    );
    check_kernel(&mut c, tors[2], V6, &[&l3.db_v6, &l3.db_ll]);

    // tor4 did not activate IPv6: nothing of it may arrive there, while the IPv4 route did and
    // the other ToRs have the IPv6 route (so primaryd has sent what it was going to send).
    let tor4 = tors[3];
    net.hold_for(
        std::time::Duration::from_secs(1),
        "tor4 has no IPv6 route and its session stays up",
        || {
            tor4.route_json(V6).is_none()
                && tor4.kernel_route(V6).is_none()
                && tor4.neighbor_state(&l4.db_v4) == "Established"
        },
    );
    c.eq(
        "tor4 connectionsEstablished",
        tor4.connections_established(&l4.db_v4),
        1,
    );
    let log = pd.log();
    let tor4_lines: Vec<&str> = log.lines().filter(|l| l.contains("peer=tor4")).collect();
    c.check(
        !tor4_lines
            .iter()
            .any(|l| l.contains("sending UPDATE") && l.contains("2001:db8::10/128")),
        format!(
            "primaryd sent {V6} to tor4, which did not negotiate IPv6:\n{}",
            tor4_lines.join("\n")
        ),
    );
    c.check(
        tor4_lines
            .iter()
            .any(|l| l.contains("not sent to this peer") && l.contains("2001:db8::10/128")),
        "primaryd's log does not say that tor4 does not get 2001:db8::10/128",
    );

    // Withdraw and announce again over every kind of session.
    db.set_read_only(true);
    let t = Instant::now();
    for tor in &tors {
        wait_gone(&net, tor, &[V4, V6]);
    }
    eprintln!(
        "read_only=1: routes gone from 4 ToRs after {:.3?}",
        t.elapsed()
    );
    db.set_read_only(false);
    for tor in &tors[..3] {
        wait_prefixes(&net, tor, &[V4, V6]);
    }
    wait_prefixes(&net, tor4, &[V4]);

    // RFC 8203 over every transport: withdraw, then Cease/Administrative Shutdown with the
    // shutdown communication.
    let before: Vec<u64> = tors
        .iter()
        .zip(neighbours)
        .map(|(t, a)| t.last_notification(a).notifications_received)
        .collect();
    pd.sigterm();
    let status = pd.wait_exit(STEP);
    c.eq("primaryd exit status", status.code(), Some(0));
    for ((t, addr), n0) in tors.iter().zip(neighbours).zip(before) {
        let n = net.wait_for(
            STEP,
            &format!("{} records a NOTIFICATION from {addr}", t.name),
            || {
                let n = t.last_notification(addr);
                (n.notifications_received > n0).then_some(n)
            },
        );
        c.eq(
            format!("{} lastNotificationReason", t.name),
            n.reason.as_deref(),
            Some("Cease/Administrative Shutdown"),
        );
        c.eq(
            format!("{} lastShutdownDescription", t.name),
            n.shutdown_message.as_deref(),
            Some("primaryd shutting down"),
        );
        let prefixes: &[&str] = if t.name == "tor4" { &[V4] } else { &[V4, V6] };
        for p in prefixes {
            if let Err(e) = withdrawn_before_notification(&t.log(), addr, p) {
                c.check(false, format!("{}: {e}", t.name));
            }
        }
    }
    c.finish();
}

/// docs/tor-examples/ holds exactly the configs the tests run (no root needed).
/// `PRIMARYD_BLESS=1` writes them instead of comparing.
#[test]
fn docs_tor_examples_are_the_tested_configs() {
    let dir = examples::docs_dir();
    let bless = std::env::var_os("PRIMARYD_BLESS").is_some();
    let mut stale = Vec::new();
    for (file, text) in examples::documented() {
        let path = dir.join(file);
        if bless {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, &text).unwrap();
        } else if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(format!("{}:\n{text}", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "docs/tor-examples differ from the configs the tests use; run \
         `PRIMARYD_BLESS=1 cargo test --test bgp_interop_frr docs` and review the diff:\n{}",
        stale.join("\n")
    );
    // The ASNs the examples use are the ones the docs name.
    assert_eq!(tor_asn(&Link::new("x", 1)), 65001);
}
