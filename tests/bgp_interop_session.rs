//! Session hygiene against FRR 8.4, each test in its own set of network namespaces (see
//! testkit/src/fixtures/net.rs): hold time 0, a ToR whose bgpd crashes and comes back, passive
//! mode, connection collisions (RFC 4271 §6.8) forced deterministically, and routes received from
//! the ToR with the max_prefixes limit (RFC 4486). Run as root; the tests fail (never skip)
//! otherwise.

use std::time::{Duration, Instant};

use testkit::examples;
use testkit::{
    log_time, tcp_connections, Checks, Frr, Link, MariaDbOpts, Net, PdConfig, PdService,
    PrimarydOpts, STEP,
};

const V4: &str = "192.0.2.10/32";
const V6: &str = "2001:db8::10/128";

fn main_service() -> PdService {
    PdService::new("main", &[V4, V6])
}

fn wait_routes(net: &Net, frr: &Frr, what: &str) -> Duration {
    let t = Instant::now();
    for p in [V4, V6] {
        net.wait_for(
            STEP,
            &format!("{p} is in {}'s kernel table from BGP ({what})", frr.name),
            || frr.bgp_kernel_route(p),
        );
    }
    t.elapsed()
}

/// With hold time 0 nobody sends KEEPALIVEs and nobody runs a hold timer. A side that
/// ignored the negotiated 0 and used a default (9 s for both FRR's datacenter profile and
/// primaryd) would drop the session within it, so it is watched for a little longer.
const HOLD_ZERO_WATCH: Duration = Duration::from_secs(10);

#[test]
fn hold_time_zero_stays_up_and_a_restarted_bgpd_is_repeered_and_gets_the_routes() {
    let mut net = Net::new();
    let l1 = net.add_link();
    let mut frr = examples::frr_ebgp(&l1);
    frr.neighbors[0].timers = Some((0, 0));
    net.start_frr("tor1", &l1, &frr.render());
    let db = net.add_mariadb(MariaDbOpts::primary());
    let mut peer = examples::pd_ebgp_peer(&l1);
    peer.hold_time = Some(0);
    let cfg = PdConfig::new().peer(peer).service(main_service());
    let pd = net.start_primaryd(&net.primaryd_config(&cfg, &db, PrimarydOpts::default()));
    let tor1 = net.frr("tor1");
    let addr = &l1.db_v4;
    let up = wait_routes(&net, tor1, "first session");
    eprintln!(
        "lab {}: routes at tor1 {up:.3?} after primaryd started",
        net.prefix
    );

    let mut c = Checks::new();
    let n = tor1.neighbor(addr);
    c.eq(
        "negotiated hold time (ms)",
        n["bgpTimerHoldTimeMsecs"].as_u64(),
        Some(0),
    );
    c.eq(
        "negotiated keepalive (ms)",
        n["bgpTimerKeepAliveIntervalMsecs"].as_u64(),
        Some(0),
    );
    let keepalives = n["messageStats"]["keepalivesRecv"].as_u64();
    net.hold_for(
        HOLD_ZERO_WATCH,
        "tor1's session stays Established, once",
        || {
            let n = tor1.neighbor(addr);
            n["bgpState"] == "Established" && n["connectionsEstablished"] == 1
        },
    );
    // RFC 4271 §4.4: with hold time 0, periodic KEEPALIVEs MUST NOT be sent.
    c.eq(
        "KEEPALIVEs from primaryd while hold time is 0",
        tor1.neighbor(addr)["messageStats"]["keepalivesRecv"].as_u64(),
        keepalives,
    );
    c.check(
        pd.peer_log("tor1", "session down").is_empty(),
        "primaryd logged the session going down",
    );

    // The ToR's routing daemon crashes. With hold time 0 only the TCP connection tells
    // primaryd: the kernel closes the dead bgpd's sockets.
    tor1.kill_bgpd();
    let killed = Instant::now();
    net.wait_until(STEP, "primaryd notices that tor1's session is down", || {
        !pd.peer_log("tor1", "session down").is_empty()
    });
    let noticed = killed.elapsed();
    // zebra removes the dead client's routes: the ToR forgets ours until bgpd is back.
    for p in [V4, V6] {
        net.wait_until(STEP, &format!("zebra removed {p} of the dead bgpd"), || {
            tor1.kernel_route(p).is_none()
        });
    }
    // Down for a while: primaryd's reconnects are refused meanwhile (backoff grows).
    std::thread::sleep(Duration::from_secs(2));
    let restarted = Instant::now();
    tor1.start_bgpd();
    wait_routes(&net, tor1, "after bgpd restarted");
    eprintln!(
        "bgpd killed: primaryd noticed after {noticed:.3?}; bgpd restarted after 2 s: routes \
         back {:.3?} later",
        restarted.elapsed()
    );
    c.eq(
        "bgpState after restart",
        tor1.neighbor_state(addr),
        "Established".into(),
    );
    c.eq(
        "hold time after restart (ms)",
        tor1.neighbor(addr)["bgpTimerHoldTimeMsecs"].as_u64(),
        Some(0),
    );
    c.eq(
        "established sessions logged by primaryd",
        pd.peer_log("tor1", "session established").len(),
        2,
    );
    pd.assert_running();
    c.finish();
}

/// Blocks, in the DB namespace, every TCP segment that carries data to or from `peer`
/// (≥ 70 bytes: a KEEPALIVE alone makes 71; SYN, ACK, FIN and RST are smaller), so both
/// sides can complete their TCP handshakes while every OPEN waits. `undo` removes the rules.
fn hold_bgp_messages(net: &Net, peer: &str, undo: bool) {
    let op = if undo { "-D" } else { "-A" };
    for (chain, dir) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
        testkit::run_ok(std::process::Command::new("ip").args([
            "netns", "exec", &net.db_ns, "iptables", op, chain, "-p", "tcp", dir, peer, "-m",
            "length", "--length", "70:65535", "-j", "DROP",
        ]));
    }
}

/// A passive primaryd accepts FRR's connection; when both sides connect at once, the
/// connection of the speaker with the higher BGP identifier survives (RFC 4271 §6.8) and
/// exactly one session remains. The collisions are forced: both TCP connections complete
/// while every OPEN is held back, then the OPENs cross.
#[test]
fn passive_peer_and_connection_collisions_end_with_one_session() {
    let mut net = Net::new();
    let links: Vec<Link> = (0..3).map(|_| net.add_link()).collect();
    let (l1, l2, l3) = (&links[0], &links[1], &links[2]);
    for l in [l1, l2, l3] {
        let mut frr = examples::frr_ebgp(l);
        // FRR must connect to primaryd (passive) or race it (collisions): retry every second.
        frr.neighbors[0].connect_timer = Some(1);
        if l.n == 3 {
            // Higher than primaryd's 198.19.0.11: FRR's connection must win on tor3.
            frr.router_id = "198.19.0.200".into();
        }
        net.start_frr(&format!("tor{}", l.n), l, &frr.render());
    }
    let db = net.add_mariadb(MariaDbOpts::primary());
    let mut passive = examples::pd_ebgp_peer(l1);
    passive.passive = true;
    let mut cfg = PdConfig::new()
        .peer(passive)
        .peer(examples::pd_ebgp_peer(l2))
        .peer(examples::pd_ebgp_peer(l3))
        .service(main_service());
    cfg.listen = vec!["0.0.0.0:179".into()];
    for l in [l2, l3] {
        hold_bgp_messages(&net, &l.router_v4, false);
    }
    let started = Instant::now();
    let pd = net.start_primaryd(&net.primaryd_config(&cfg, &db, PrimarydOpts::default()));
    // Both directions connected: one connection to FRR's port 179, one to primaryd's.
    for l in [l2, l3] {
        net.wait_until(
            STEP,
            &format!(
                "both TCP connections with {} are up (OPENs held)",
                l.router_v4
            ),
            || {
                let conns = tcp_connections(&net.db_ns, &l.router_v4);
                conns.iter().any(|(_, r)| *r == 179) && conns.iter().any(|(lp, _)| *lp == 179)
            },
        );
    }
    eprintln!(
        "lab {}: crossing connections up {:.3?} after primaryd started",
        net.prefix,
        started.elapsed()
    );
    for l in [l2, l3] {
        hold_bgp_messages(&net, &l.router_v4, true);
    }
    let released = Instant::now();

    let mut c = Checks::new();
    for l in [l1, l2, l3] {
        let tor = net.frr(&format!("tor{}", l.n));
        let addr = &l.db_v4;
        wait_routes(&net, tor, "after the collision");
        eprintln!(
            "{}: routes at most {:.3?} after the OPENs were released",
            tor.name,
            released.elapsed()
        );
        // Stable: one session, one TCP connection left. FRR 8.4 sometimes also tears down
        // the surviving session when the loser's Cease 6/7 crosses its own (seen in its log:
        // "Deleting stub connection" then BGP_Stop of the Established peer); the session then
        // comes back at once on the next attempt. So: at most one such re-establishment, and
        // none from then on.
        let settled = tor.connections_established(addr);
        c.check(
            settled <= 2,
            format!(
                "{}: {settled} sessions established after the collision",
                tor.name
            ),
        );
        net.hold_for(
            Duration::from_secs(2),
            &format!("{} has one Established session", tor.name),
            || {
                let n = tor.neighbor(addr);
                n["bgpState"] == "Established" && n["connectionsEstablished"] == settled
            },
        );
        let conns = tcp_connections(&net.db_ns, &l.router_v4);
        c.eq(format!("{} TCP connections", tor.name), conns.len(), 1);
        let n = tor.neighbor(addr);
        let (local, foreign) = (n["portLocal"].as_u64(), n["portForeign"].as_u64());
        // Which connection survived the collision, by primaryd's decision (its log) and, if
        // FRR did not re-establish afterwards, by the surviving connection's ports.
        let (decision, kept_ours) = match l.n {
            1 => ("", false),
            // primaryd's identifier is higher than tor2's: its connection survives.
            2 => ("incoming connection rejected: Cease (6/7)", true),
            // tor3's identifier is higher: FRR's connection survives.
            _ => ("session continues on the connection the peer opened", false),
        };
        if l.n == 1 {
            // Passive: FRR opened the connection, primaryd never did.
            c.eq("tor1 (passive) portForeign", foreign, Some(179));
        } else {
            c.check(
                !pd.peer_log(&tor.name, decision).is_empty(),
                format!("{}: primaryd did not log {decision:?}", tor.name),
            );
            if settled == 1 {
                let port = if kept_ours { local } else { foreign };
                c.eq(
                    format!("{} surviving connection's port 179 side", tor.name),
                    port,
                    Some(179),
                );
            }
        }
        if l.n != 1 {
            // The collision really happened: one side ended a connection with Cease 6/7.
            let log = tor.log();
            c.check(
                log.lines()
                    .any(|line| line.contains("%NOTIFICATION") && line.contains(" 6/7 ")),
                format!(
                    "{}: bgpd logged no Cease/Connection Collision Resolution (6/7)",
                    tor.name
                ),
            );
        }
    }
    c.check(
        pd.peer_log("tor1", "Connect -> ").is_empty()
            && pd.peer_log("tor1", "Idle -> Connect").is_empty(),
        "primaryd connected to tor1, which is passive",
    );
    pd.assert_running();
    c.finish();
}

/// The route the ToR originates towards primaryd (`network` with no import check).
fn announce(frr: &Frr, asn: u32, prefix: &str, on: bool) {
    let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let no = if on { "" } else { "no " };
    frr.configure(&[
        &format!("router bgp {asn}"),
        &format!("address-family {family} unicast"),
        &format!("{no}network {prefix}"),
    ]);
}

/// Polls `cond` for `window`; Err with the time it first failed.
fn holds(net: &Net, window: Duration, mut cond: impl FnMut() -> bool) -> Result<(), Duration> {
    let t = Instant::now();
    while t.elapsed() < window {
        net.assert_alive();
        if !cond() {
            return Err(t.elapsed());
        }
        std::thread::sleep(testkit::POLL);
    }
    Ok(())
}

const RESTART_S: u32 = 5;

/// `primaryctl show routes received --peer NAME --json`: prefix → attributes.
fn received(
    pd: &testkit::Primaryd,
    peer: &str,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    pd.ctl_json(&["show", "routes", "received", "--peer", peer])
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|r| Some((r["prefix"].as_str()?.to_string(), r["attributes"].clone())))
                .collect()
        })
        .unwrap_or_default()
}

/// primaryd's Adj-RIB-In for tor2 holds tor2's routes as tor2 sent them (FRR's `network`
/// routes: ORIGIN IGP, MED 0, AS_PATH 65002; the IPv6 one with FRR's global and link-local
/// next hop), keeps them, and drops one that tor2 withdraws.
fn check_received(c: &mut Checks, net: &Net, pd: &testkit::Primaryd, tor2: &Frr, l2: &Link) {
    let (v4, v6) = ("198.18.97.0/24", "2001:db8:97::/48");
    let rib = net.wait_for(STEP, "primaryd shows tor2's two routes as received", || {
        let r = received(pd, "tor2");
        (r.contains_key(v4) && r.contains_key(v6)).then_some(r)
    });
    eprintln!("primaryd's Adj-RIB-In for tor2: {rib:?}");
    let asn = examples::tor_asn(l2).to_string();
    for (p, hops) in [
        (v4, vec![l2.router_v4.clone()]),
        (v6, vec![l2.router_v6.clone(), l2.router_ll.clone()]),
    ] {
        let a = &rib[p];
        c.eq(
            format!("received {p} origin"),
            a["origin"].as_str(),
            Some("IGP"),
        );
        c.eq(
            format!("received {p} as_path"),
            a["as_path"].as_str(),
            Some(asn.as_str()),
        );
        c.eq(
            format!("received {p} next_hop"),
            a["next_hop"].as_array().map(|l| {
                l.iter()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            }),
            Some(hops),
        );
        c.eq(format!("received {p} med"), a["med"].as_u64(), Some(0));
        c.eq(
            format!("received {p} local_pref"),
            a["local_pref"].as_u64(),
            None,
        );
    }
    // Kept: still there a while later, on the same session.
    std::thread::sleep(Duration::from_secs(2));
    let later = received(pd, "tor2");
    c.check(
        later.contains_key(v4) && later.contains_key(v6),
        format!("tor2's routes left primaryd's Adj-RIB-In: {later:?}"),
    );
    // A withdraw from the ToR removes just that route.
    announce(tor2, examples::tor_asn(l2), v4, false);
    let gone = testkit::wait_for_result(STEP, || !received(pd, "tor2").contains_key(v4));
    c.check(
        gone.is_ok(),
        format!("{v4}, withdrawn by tor2, is still in primaryd's Adj-RIB-In after {gone:?}"),
    );
    c.check(
        received(pd, "tor2").contains_key(v6),
        format!("{v6} left primaryd's Adj-RIB-In with the withdraw of {v4}"),
    );
}

/// FRR's own routes towards primaryd: `network` statements, one per family first.
const TOR_ROUTES: [&str; 3] = ["198.18.99.0/24", "2001:db8:99::/48", "198.18.98.0/24"];

/// primaryd keeps what a ToR announces (shown by `primaryctl show routes received`), and counts
/// it against max_prefixes = 2: the ToR's
/// two routes are accepted, a third ends the session with Cease/Maximum Number of Prefixes
/// Reached (RFC 4486, with AFI/SAFI and the limit as data), and the session stays down for
/// max_prefixes_restart_s, whichever side would reconnect (FRR retries every second and
/// primaryd listens). FRR, like most routers, also sends primaryd's own routes back (AS_PATH
/// "65001 4200000001"); those are AS-path loops (RFC 4271 §9.1.2) and are not the ToR's
/// routes, so they must not count. Soft checks: one run reports every deviation.
#[test]
fn received_routes_are_kept_and_count_against_max_prefixes_which_ends_the_session_for_the_restart_delay(
) {
    let mut net = Net::new();
    let l1 = net.add_link();
    let mut frr = examples::frr_ebgp(&l1);
    frr.networks = TOR_ROUTES[..2].iter().map(|p| p.to_string()).collect();
    frr.neighbors[0].connect_timer = Some(1);
    net.start_frr("tor1", &l1, &frr.render());
    let db = net.add_mariadb(MariaDbOpts::primary());
    let mut peer = examples::pd_ebgp_peer(&l1);
    peer.max_prefixes = Some(2);
    peer.max_prefixes_restart_s = Some(RESTART_S);
    let mut cfg = PdConfig::new().peer(peer).service(main_service());
    cfg.listen = vec![format!("{}:179", l1.db_v4)];
    // tor2 announces two routes under the default limit: what primaryd keeps of them.
    let l2 = net.add_link();
    let mut frr2 = examples::frr_ebgp(&l2);
    frr2.networks = vec!["198.18.97.0/24".into(), "2001:db8:97::/48".into()];
    net.start_frr("tor2", &l2, &frr2.render());
    let cfg = cfg.peer(examples::pd_ebgp_peer(&l2));
    let pd = net.start_primaryd(&net.primaryd_config(&cfg, &db, PrimarydOpts::default()));
    let (tor1, tor2) = (net.frr("tor1"), net.frr("tor2"));
    let addr = l1.db_v4.clone();
    let asn = examples::tor_asn(&l1);
    wait_routes(&net, tor1, "first session");
    wait_routes(&net, tor2, "first session");

    let mut c = Checks::new();
    check_received(&mut c, &net, &pd, tor2, &l2);
    // FRR sends its routes about a second after the session is up.
    net.wait_until(STEP, "primaryd received UPDATEs from tor1", || {
        !pd.peer_log("tor1", "received UPDATE").is_empty()
    });
    // Two of the ToR's routes: at the limit, accepted.
    let stays = holds(&net, Duration::from_secs(2), || {
        let n = tor1.neighbor(&addr);
        n["bgpState"] == "Established" && n["connectionsEstablished"] == 1
    });
    c.check(
        stays.is_ok(),
        format!(
            "with the ToR's 2 routes (max_prefixes = 2) the session ended after {stays:?}: \
             {:?}; FRR also sends primaryd's own routes back (AS_PATH 65001 {}), which are \
             AS-path loops and must not count: {:?}",
            tor1.last_notification(&addr).reason,
            testkit::DB_ASN,
            pd.peer_log("tor1", "max_prefixes")
        ),
    );
    c.check(
        pd.peer_log("tor1", "treated as withdraw").is_empty(),
        "primaryd treated tor1's routes as withdrawn",
    );

    // A third route of the ToR's: over the limit.
    net.wait_until(STEP, "tor1's session is Established", || {
        tor1.neighbor_state(&addr) == "Established"
    });
    let before = tor1.last_notification(&addr).notifications_received;
    announce(tor1, asn, TOR_ROUTES[2], true);
    let n = net.wait_for(STEP, "tor1 records a Cease from primaryd", || {
        let n = tor1.last_notification(&addr);
        (n.notifications_received > before).then_some(n)
    });
    // Gone before primaryd may come back, so the next session is at the limit again.
    announce(tor1, asn, TOR_ROUTES[2], false);
    c.eq(
        "lastNotificationReason",
        n.reason.as_deref(),
        Some("Cease/Maximum Number of Prefixes Reached"),
    );
    c.eq(
        "lastErrorCodeSubcode",
        n.code_subcode.as_deref(),
        Some("0601"),
    );
    c.eq(
        "lastResetDueTo",
        n.reset_due_to.as_deref(),
        Some("BGP Notification received"),
    );
    let cease = tor1.log_notification_received(&addr).unwrap_or_default();
    // RFC 4486 data: AFI 1 (the third route is IPv4), SAFI 1, the limit 2.
    c.check(
        cease.contains(" 6/1 ") && cease.contains("7 bytes 00 01 01 00 00 00 02"),
        format!("bgpd's record of the Cease: {cease:?}"),
    );

    // Not back before max_prefixes_restart_s, by FRR's own clock: from the NOTIFICATION it
    // received to the session's next Up.
    let (cease_line, up_line) = net.wait_for(
        Duration::from_secs(u64::from(RESTART_S)) + STEP,
        "tor1's session is Established again",
        || {
            let log = tor1.log();
            let lines: Vec<&str> = log.lines().collect();
            // The 6/1 itself: connections refused during the hold (6/5) come later.
            let cease_at = lines.iter().rposition(|l| {
                l.contains("%NOTIFICATION: received from neighbor") && l.contains(" 6/1 ")
            })?;
            lines[cease_at..]
                .iter()
                .find(|l| l.contains("%ADJCHANGE") && l.contains(" Up"))
                .map(|l| (lines[cease_at].to_string(), l.to_string()))
        },
    );
    let delay = log_time(&up_line)
        .zip(log_time(&cease_line))
        .map_or(-1.0, |(b, a)| b - a);
    let n = tor1.neighbor(&addr);
    eprintln!(
        "max_prefixes: session back {delay:.3} s after the Cease (restart delay {RESTART_S} s); \
         FRR portLocal {} portForeign {}",
        n["portLocal"], n["portForeign"]
    );
    c.check(
        delay >= f64::from(RESTART_S),
        format!(
            "session re-established {delay:.3} s after the Cease, before max_prefixes_restart_s \
             = {RESTART_S} (FRR portLocal {}, portForeign {}: 179 on FRR's side means primaryd \
             connected, else FRR did and primaryd accepted); primaryd: {:?}\n{cease_line}\n\
             {up_line}",
            n["portLocal"],
            n["portForeign"],
            pd.peer_log("tor1", "max_prefixes")
                .iter()
                .chain(&pd.peer_log("tor1", "peer connected"))
                .collect::<Vec<_>>()
        ),
    );
    // primaryd's own plan, as it logs it: "…more than max_prefixes 2; next attempt in N ms".
    for line in pd.peer_log("tor1", "more than max_prefixes") {
        let ms: Option<u64> = line
            .split("next attempt in ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        c.check(
            ms.is_some_and(|ms| ms >= u64::from(RESTART_S) * 1000),
            format!("primaryd plans to reconnect sooner than max_prefixes_restart_s: {line}"),
        );
    }
    wait_routes(&net, tor1, "after the restart delay");
    // Back at the limit, not over it: the session stays.
    let established = tor1.connections_established(&addr);
    let stays = holds(&net, Duration::from_secs(2), || {
        tor1.neighbor(&addr)["connectionsEstablished"].as_u64() == Some(established)
            && tor1.neighbor_state(&addr) == "Established"
    });
    c.check(
        stays.is_ok(),
        format!("the session after the restart ended after {stays:?} with the ToR's 2 routes"),
    );
    pd.assert_running();
    c.finish();
}
