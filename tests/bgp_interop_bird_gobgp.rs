//! Interop with BIRD 2.0 (as a ToR that installs routes in its kernel) and GoBGP 3 (as a route
//! collector), each test in its own set of network namespaces (see testkit/src/fixtures/net.rs).
//! BIRD shows what it understood (`birdc show route all`); GoBGP lists the path attributes by
//! type code, so it also shows what was *not* sent. Run as root; the tests fail (never skip)
//! otherwise.

use std::time::Instant;

use testkit::examples;
use testkit::{
    Bird, Checks, Gobgp, MariaDbOpts, Net, PdConfig, PdService, PrimarydOpts, DB_ASN,
    PRIMARY_MARKS, STEP,
};

const V4: &str = "192.0.2.10/32";
const V6: &str = "2001:db8::10/128";
const PLAIN_V4: &str = "192.0.2.11/32";
const PLAIN_V6: &str = "2001:db8::11/128";
const ALL: [&str; 4] = [V4, V6, PLAIN_V4, PLAIN_V6];

fn wait_bird_routes(net: &Net, bird: &Bird, prefixes: &[&str]) {
    for p in prefixes {
        net.wait_for(
            STEP,
            &format!("{} installed {p} in its kernel table", bird.name),
            || bird.bird_kernel_route(p),
        );
    }
}

/// BIRD's `Import updates: received` of the `db1` protocol's channel for `family`.
fn bird_import_updates(bird: &Bird, family: &str) -> u64 {
    let text = bird.birdc("show protocols all db1");
    let mut in_channel = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Channel ") {
            in_channel = t == format!("Channel {family}");
        } else if in_channel && t.starts_with("Import updates:") {
            return t
                .split_whitespace()
                .nth(2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    panic!(
        "{}: no import statistics for channel {family}:\n{text}",
        bird.name
    )
}

#[test]
fn bird_installs_the_routes_with_the_configured_attributes_over_ipv4_and_ipv6_sessions() {
    let mut net = Net::new();
    let l1 = net.add_link();
    let l2 = net.add_link();
    net.start_bird("tor1", &l1, &examples::bird_ebgp(&l1, false).render());
    net.start_bird("tor2", &l2, &examples::bird_ebgp(&l2, true).render());
    let db = net.add_mariadb(MariaDbOpts::primary());
    let mut cfg = PdConfig::new()
        .peer(examples::pd_ebgp_peer(&l1))
        .peer(examples::pd_ipv6_peer(&l2));
    cfg.services = examples::attribute_services();
    let started = Instant::now();
    let pd = net.start_primaryd(&net.primaryd_config(&cfg, &db, PrimarydOpts::default()));
    let (tor1, tor2) = (net.bird("tor1"), net.bird("tor2"));
    wait_bird_routes(&net, tor1, &ALL);
    wait_bird_routes(&net, tor2, &ALL);
    eprintln!(
        "lab {}: 2 BIRD + MariaDB + primaryd, all routes in both kernels {:.3?} after primaryd \
         started ({:.3?} since the lab began)",
        net.prefix,
        started.elapsed(),
        net.age()
    );

    let mut c = Checks::new();
    let check_all = |c: &mut Checks| {
        for (bird, l) in [(tor1, &l1), (tor2, &l2)] {
            c.eq(
                format!("{} BGP state", bird.name),
                bird.bgp_state("db1"),
                "Established".into(),
            );
            for (prefix, hop) in [
                (V4, &l.db_v4),
                (V6, &l.db_v6),
                (PLAIN_V4, &l.db_v4),
                (PLAIN_V6, &l.db_v6),
            ] {
                let at = format!("{} {prefix}", bird.name);
                let Some(r) = bird.route(prefix) else {
                    c.check(false, format!("{at}: not in BIRD's table"));
                    continue;
                };
                let main = prefix == V4 || prefix == V6;
                let prepended = format!("{DB_ASN} {DB_ASN} {DB_ASN}");
                let path = if main { prepended } else { DB_ASN.to_string() };
                c.eq(format!("{at} protocol"), r.protocol.as_str(), "db1");
                c.eq(format!("{at} via"), r.via.as_deref(), Some(hop.as_str()));
                c.eq(
                    format!("{at} BGP.origin"),
                    r.attr("BGP.origin"),
                    Some("IGP"),
                );
                c.eq(
                    format!("{at} BGP.as_path"),
                    r.attr("BGP.as_path"),
                    Some(path.as_str()),
                );
                c.eq(
                    format!("{at} BGP.next_hop"),
                    r.attr("BGP.next_hop"),
                    Some(hop.as_str()),
                );
                c.eq(
                    format!("{at} BGP.med"),
                    r.attr("BGP.med"),
                    main.then_some("50"),
                );
                c.eq(
                    format!("{at} BGP.community"),
                    r.attr("BGP.community"),
                    main.then_some("(65001,100) (65001,200)"),
                );
                c.eq(
                    format!("{at} BGP.large_community"),
                    r.attr("BGP.large_community"),
                    // The service's own, then our marks (docs/safety.md), as sent.
                    Some(if main {
                        "(4200000001, 1, 2) (4200000000, 1, 0) (4200000000, 3, 3323133963)"
                    } else {
                        "(4200000000, 1, 0) (4200000000, 3, 3323133963)"
                    }),
                );
                // BIRD gives eBGP routes without LOCAL_PREF its default 100; the service's
                // 200 showing here would mean primaryd sent the iBGP-only attribute.
                c.eq(
                    format!("{at} BGP.local_pref"),
                    r.attr("BGP.local_pref"),
                    Some("100"),
                );
                match bird.bird_kernel_route(prefix) {
                    Some(k) => c.check(
                        k.contains(&format!(" via {hop} dev eth1 ")),
                        format!("{at}: kernel route not via {hop}: {k}"),
                    ),
                    None => c.check(false, format!("{at}: not in the kernel")),
                }
            }
            // What primaryd's OPEN offered, as BIRD read it.
            let caps = bird.neighbor_capabilities("db1");
            for cap in [
                "AF announced: ipv4 ipv6",
                "Route refresh",
                "4-octet AS numbers",
            ] {
                c.check(
                    caps.iter().any(|l| l == cap),
                    format!("{}: neighbor capabilities {caps:?} lack {cap:?}", bird.name),
                );
            }
            c.eq(
                format!("{} Session", bird.name),
                bird.protocol_field("db1", "Session").as_deref(),
                Some("external AS4"),
            );
        }
    };
    check_all(&mut c);

    // Route refresh from BIRD (`reload in`): primaryd re-sends its Adj-RIB-Out, one UPDATE
    // per attribute set and family, and the routes never leave BIRD's kernel table.
    for family in ["ipv4", "ipv6"] {
        let before = bird_import_updates(tor1, family);
        tor1.birdc("reload in db1");
        testkit::hold_until(
            STEP,
            "tor1 keeps every route in its kernel table",
            || {
                net.assert_alive();
                ALL.iter().all(|p| tor1.bird_kernel_route(p).is_some())
            },
            &format!("tor1 received the {family} routes again"),
            || bird_import_updates(tor1, family) >= before + 2,
        );
    }
    check_all(&mut c);

    db.set_read_only(true);
    let t = Instant::now();
    for bird in [tor1, tor2] {
        for p in ALL {
            net.wait_until(STEP, &format!("{p} is gone from {}", bird.name), || {
                bird.route(p).is_none() && bird.kernel_route(p).is_none()
            });
        }
    }
    eprintln!(
        "read_only=1: routes gone from both BIRDs after {:.3?}",
        t.elapsed()
    );
    db.set_read_only(false);
    wait_bird_routes(&net, tor1, &ALL);
    wait_bird_routes(&net, tor2, &ALL);
    check_all(&mut c);
    pd.assert_running();
    c.finish();
}

/// What GoBGP shows for one prefix: the attribute type codes and their values.
struct Want<'a> {
    types: &'a [u64],
    as_path: Vec<u64>,
    next_hop: &'a str,
    med: Option<u64>,
    communities: &'a [&'a str],
    large: &'a [&'a str],
}

fn check_gobgp_path(c: &mut Checks, g: &Gobgp, prefix: &str, want: &Want) {
    let Some(p) = g.path(prefix) else {
        c.check(false, format!("{}: no path for {prefix}", g.name));
        return;
    };
    let at = format!("{} {prefix}", g.name);
    c.eq(
        format!("{at} attribute types"),
        p.attr_types(),
        want.types.to_vec(),
    );
    c.eq(format!("{at} ORIGIN"), p.origin(), Some(0));
    c.eq(
        format!("{at} AS_PATH"),
        p.as_path(),
        vec![(2, want.as_path.clone())],
    );
    c.eq(
        format!("{at} next hop"),
        p.next_hop().as_deref(),
        Some(want.next_hop),
    );
    c.eq(format!("{at} MED"), p.med(), want.med);
    c.eq(format!("{at} LOCAL_PREF"), p.local_pref(), None);
    c.eq(
        format!("{at} COMMUNITIES"),
        p.communities(),
        want.communities.iter().map(|s| s.to_string()).collect(),
    );
    c.eq(
        format!("{at} LARGE_COMMUNITY"),
        p.large_communities(),
        want.large.iter().map(|s| s.to_string()).collect(),
    );
}

#[test]
fn gobgp_collects_the_routes_with_exactly_the_configured_attributes_and_next_hops() {
    let mut net = Net::new();
    let l1 = net.add_link();
    net.start_gobgp("tor1", &l1, &examples::gobgp_collector(&l1).render());
    let db = net.add_mariadb(MariaDbOpts::primary());
    // Next hop overrides: the peer's for IPv6 (an address of the DB host that is not the
    // link's), and a service's own for both families, which wins over the peer's.
    let mut peer = examples::pd_ebgp_peer(&l1);
    peer.next_hop_ipv6 = Some("2001:db8:ff::11".into());
    let mut cfg = PdConfig::new().peer(peer);
    cfg.services = examples::attribute_services();
    cfg.services.push(PdService {
        next_hop_ipv4: Some("198.19.0.12".into()),
        next_hop_ipv6: Some("2001:db8:ff::12".into()),
        ..PdService::new("nh", &["192.0.2.12/32", "2001:db8::12/128"])
    });
    let started = Instant::now();
    let pd = net.start_primaryd(&net.primaryd_config(&cfg, &db, PrimarydOpts::default()));
    let g = net.gobgp("tor1");
    let prefixes = [
        V4,
        V6,
        PLAIN_V4,
        PLAIN_V6,
        "192.0.2.12/32",
        "2001:db8::12/128",
    ];
    for p in prefixes {
        net.wait_for(STEP, &format!("GoBGP has {p}"), || g.path(p));
    }
    eprintln!(
        "lab {}: GoBGP + MariaDB + primaryd, all routes collected {:.3?} after primaryd started \
         ({:.3?} since the lab began)",
        net.prefix,
        started.elapsed(),
        net.age()
    );
    let addr = &l1.db_v4;
    let mut c = Checks::new();
    c.eq("session state", g.session_state(addr), "established".into());
    // What GoBGP received in our OPEN.
    let caps: Vec<String> = g.neighbor(addr)["state"]["remote_cap"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|c| c["type_url"].as_str())
                .map(|u| u.rsplit('.').next().unwrap_or(u).to_string())
                .collect()
        })
        .unwrap_or_default();
    for cap in [
        "FourOctetASNCapability",
        "RouteRefreshCapability",
        "MultiProtocolCapability",
    ] {
        c.check(
            caps.iter().any(|x| x == cap),
            format!("primaryd's OPEN lacks {cap}: {caps:?}"),
        );
    }
    c.eq(
        "MultiProtocolCapability count (IPv4 and IPv6 unicast)",
        caps.iter()
            .filter(|x| *x == "MultiProtocolCapability")
            .count(),
        2,
    );
    let comms = ["65001:100", "65001:200"];
    // The service's own, then our marks (docs/safety.md), as sent.
    let large = ["4200000001:1:2", PRIMARY_MARKS[0], PRIMARY_MARKS[1]];
    let check_all = |c: &mut Checks| {
        // eBGP: ORIGIN, AS_PATH, NEXT_HOP or MP_REACH, and only what the service sets; never
        // LOCAL_PREF (5).
        check_gobgp_path(
            c,
            g,
            V4,
            &Want {
                types: &[1, 2, 3, 4, 8, 32],
                as_path: vec![u64::from(DB_ASN); 3],
                next_hop: addr,
                med: Some(50),
                communities: &comms,
                large: &large,
            },
        );
        check_gobgp_path(
            c,
            g,
            V6,
            &Want {
                types: &[1, 2, 4, 8, 14, 32],
                as_path: vec![u64::from(DB_ASN); 3],
                next_hop: "2001:db8:ff::11",
                med: Some(50),
                communities: &comms,
                large: &large,
            },
        );
        check_gobgp_path(
            c,
            g,
            PLAIN_V4,
            &Want {
                types: &[1, 2, 3, 32],
                as_path: vec![u64::from(DB_ASN)],
                next_hop: addr,
                med: None,
                communities: &[],
                large: &PRIMARY_MARKS,
            },
        );
        check_gobgp_path(
            c,
            g,
            PLAIN_V6,
            &Want {
                types: &[1, 2, 14, 32],
                as_path: vec![u64::from(DB_ASN)],
                next_hop: "2001:db8:ff::11",
                med: None,
                communities: &[],
                large: &PRIMARY_MARKS,
            },
        );
        check_gobgp_path(
            c,
            g,
            "192.0.2.12/32",
            &Want {
                types: &[1, 2, 3, 32],
                as_path: vec![u64::from(DB_ASN)],
                next_hop: "198.19.0.12",
                med: None,
                communities: &[],
                large: &PRIMARY_MARKS,
            },
        );
        check_gobgp_path(
            c,
            g,
            "2001:db8::12/128",
            &Want {
                types: &[1, 2, 14, 32],
                as_path: vec![u64::from(DB_ASN)],
                next_hop: "2001:db8:ff::12",
                med: None,
                communities: &[],
                large: &PRIMARY_MARKS,
            },
        );
    };
    check_all(&mut c);

    db.set_read_only(true);
    let t = Instant::now();
    for p in prefixes {
        net.wait_until(STEP, &format!("{p} is gone from GoBGP"), || {
            g.path(p).is_none()
        });
    }
    eprintln!(
        "read_only=1: routes gone from GoBGP after {:.3?}",
        t.elapsed()
    );
    db.set_read_only(false);
    for p in prefixes {
        net.wait_for(STEP, &format!("GoBGP has {p} again"), || g.path(p));
    }
    check_all(&mut c);
    c.eq("session state", g.session_state(addr), "established".into());
    pd.assert_running();
    c.finish();
}
