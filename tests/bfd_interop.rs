//! BFD with real routers: FRR 8.4's bfdd (`neighbor X bfd`, a 100 ms x 3 profile) and BIRD 2's
//! BFD (with Meticulous Keyed SHA1), each in its own namespace around the DB host, using the
//! documented configs (docs/tor-examples/). A frozen DB host (every process stopped, link up)
//! or one whose packets are dropped both ways loses its routes at the BFD routers in about
//! 300 ms, while a router with the hold timer alone (3 s) keeps them for seconds; BGP stays
//! down while BFD is down and comes back with it. Run as root; the tests fail (never skip)
//! otherwise. Times are printed; the bounds asserted are generous (CI runs labs side by side),
//! the figures are for docs/benchmarks.md.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::examples::{self, BFD_KEY};
use testkit::{
    run, FrrNeighbor, MariaDbOpts, Net, PacketDrop, PdBfd, PdConfig, PdPeer, PdService, Primaryd,
    PrimarydOpts, STEP,
};

const V4: &str = "192.0.2.10/32";
const V6: &str = "2001:db8::10/128";
const METRICS_PORT: u16 = 9479;
/// Route gone at a BFD router after the fault: 300 ms expected; a bound well under the 3 s
/// hold time, with room for a loaded machine.
const BFD_BOUND: Duration = Duration::from_millis(1500);

fn service() -> PdService {
    PdService::new("main", &[V4, V6])
}

fn with_metrics(config: String) -> String {
    format!("{config}\n[metrics]\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n")
}

/// /metrics from inside the DB namespace (the endpoint is on its loopback).
fn scrape(net: &Net) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{METRICS_PORT}; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
    );
    let out = run(Command::new("ip").args(["netns", "exec", &net.db_ns, "bash", "-c", &script]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn peer_json(pd: &Primaryd, name: &str) -> Value {
    let peers = pd.ctl_json(&["show", "peers"]);
    peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no peer {name}: {peers}"))
}

/// The table `primaryctl show peers` prints.
fn peers_table(net: &Net) -> String {
    let socket = Primaryd::control_socket_path(net.dir(), 0);
    let out = run(Command::new(env!("CARGO_BIN_EXE_primaryctl"))
        .arg("--socket")
        .arg(&socket)
        .args(["show", "peers"]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls every 10 ms until each named condition holds once; returns when each did (None:
/// not within `within`).
fn times_until(
    within: Duration,
    conds: &mut [(&str, &mut dyn FnMut() -> bool)],
) -> Vec<Option<Duration>> {
    let start = Instant::now();
    let mut seen: Vec<Option<Duration>> = vec![None; conds.len()];
    while start.elapsed() < within && seen.iter().any(Option::is_none) {
        for (i, (_, c)) in conds.iter_mut().enumerate() {
            if seen[i].is_none() && c() {
                seen[i] = Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    seen
}

/// FRR 8.4 re-creates its BFD session once the first BGP session is up (it then knows the
/// session's source address and interface), which the DB host sees as the peer going Down:
/// BGP restarts once, a second later. Waits until that is over.
fn settled(net: &Net, tor: &testkit::Frr, peer: &str, local: &str) {
    net.wait_until(
        STEP,
        "FRR's BFD session has its final source and is up",
        || {
            tor.bfd_peer(peer)
                .is_some_and(|p| p["local"] == local && p["status"] == "up")
                && tor.neighbor_state(peer) == "Established"
                && tor.bgp_kernel_route(V4).is_some()
        },
    );
}

#[test]
fn a_frozen_host_loses_its_routes_at_frr_bfd_routers_long_before_the_hold_timer() {
    let mut net = Net::new();
    let (l1, l2, l3) = (net.add_link(), net.add_link(), net.add_link());
    // tor1: the documented FRR + BFD example over IPv4. tor2: the same over an IPv6 session.
    // tor3: no BFD, hold time 3 s (the lowest ToRs accept).
    net.start_frr("tor1", &l1, &examples::frr_ebgp_bfd(&l1).render());
    let mut tor2 = examples::frr_ebgp_ipv6_session(&l2);
    tor2.bfd_profiles = vec![examples::frr_bfd_profile()];
    tor2.neighbors[0].bfd_profile = Some("primaryd".into());
    net.start_frr("tor2", &l2, &tor2.render());
    let tor3 = examples::frr_ebgp(&l3);
    let n = tor3.neighbors[0].clone();
    let mut tor3 = testkit::FrrConfig {
        neighbors: vec![FrrNeighbor {
            timers: Some((1, 3)),
            ..n
        }],
        ..tor3
    };
    tor3.comment.clear();
    net.start_frr("tor3", &l3, &tor3.render());
    let db = net.add_mariadb(MariaDbOpts::primary());
    let mut cfg = PdConfig::new()
        .peer(examples::pd_bfd_peer(&l1, None))
        .peer(PdPeer {
            bfd: Some(PdBfd::default()),
            ..examples::pd_ipv6_peer(&l2)
        })
        .peer(examples::pd_ebgp_peer(&l3))
        .service(service());
    cfg.hold_time = Some(3);
    let pd = net.start_primaryd(&with_metrics(net.primaryd_config(
        &cfg,
        &db,
        PrimarydOpts::default(),
    )));
    let (t1, t2, t3) = (net.frr("tor1"), net.frr("tor2"), net.frr("tor3"));
    for (t, prefix) in [(t1, V4), (t1, V6), (t2, V4), (t3, V4)] {
        net.wait_for(STEP, &format!("{} has {prefix}", t.name), || {
            t.bgp_kernel_route(prefix)
        });
    }
    settled(&net, t1, &l1.db_v4, &l1.router_v4);
    settled(&net, t2, &l2.db_v6, &l2.router_v6);
    // FRR's view of our session: our intervals after the Poll Sequences of going Up.
    net.wait_until(STEP, "FRR sees our 100 ms x 3", || {
        t1.bfd_peer(&l1.db_v4).is_some_and(|p| {
            p["remote-transmit-interval"] == 100 && p["remote-detect-multiplier"] == 3
        })
    });
    eprintln!("tor1 bfd peer: {}", t1.bfd_peer(&l1.db_v4).unwrap());

    // show peers (JSON and table) and /metrics show BFD.
    net.wait_until(STEP, "primaryd's detection time is 300 ms", || {
        peer_json(&pd, "tor1")["bfd"]["detection_time_ms"] == 300.0
    });
    let p1 = peer_json(&pd, "tor1");
    let b = &p1["bfd"];
    assert_eq!(p1["state"], "Established", "{p1}");
    assert_eq!(b["state"], "Up", "{b}");
    assert_eq!(b["bgp_allowed"], true);
    assert_eq!(b["remote_state"], "Up");
    assert_eq!(b["desired_min_tx_ms"], 100.0);
    assert_eq!(b["remote_min_rx_ms"], 100.0);
    assert_eq!(b["remote_detect_mult"], 3);
    assert_eq!(b["tx_interval_ms"], 100.0);
    assert!(b["packets_in"].as_u64().unwrap() > 0 && b["packets_out"].as_u64().unwrap() > 0);
    assert_eq!(b["dropped"], 0);
    assert_eq!(peer_json(&pd, "tor2")["bfd"]["state"], "Up");
    assert!(peer_json(&pd, "tor3")["bfd"].is_null());
    let table = peers_table(&net);
    assert!(
        table.contains("BFD PEER")
            && table
                .lines()
                .any(|l| l.starts_with("tor1") && l.contains("Up") && l.contains("300 ms")),
        "{table}"
    );
    let page = scrape(&net);
    for line in [
        format!(
            "primaryd_bfd_session_up{{peer=\"tor1\",address=\"{}\"}} 1",
            l1.router_v4
        ),
        format!(
            "primaryd_bfd_session_up{{peer=\"tor2\",address=\"{}\"}} 1",
            l2.router_v6
        ),
        format!(
            "primaryd_bfd_detection_time_seconds{{peer=\"tor1\",address=\"{}\"}} 0.3",
            l1.router_v4
        ),
    ] {
        assert!(page.contains(&line), "missing {line:?} in\n{page}");
    }

    // Freeze the whole host, link up.
    let stopped = net.freeze_db();
    let frozen_at = Instant::now();
    let gone = times_until(
        Duration::from_secs(4) + STEP,
        &mut [
            ("tor1", &mut || t1.kernel_route(V4).is_none()),
            ("tor2", &mut || t2.kernel_route(V4).is_none()),
            ("tor3", &mut || t3.kernel_route(V4).is_none()),
        ],
    );
    eprintln!(
        "froze {stopped} processes; route {V4} gone: tor1 (BFD, IPv4) {:?}, tor2 (BFD, IPv6 \
         session) {:?}, tor3 (hold timer 3 s) {:?}",
        gone[0], gone[1], gone[2]
    );
    for (i, name) in ["tor1", "tor2"].iter().enumerate() {
        let t = gone[i].unwrap_or_else(|| panic!("{name} kept the route of the frozen host"));
        assert!(t <= BFD_BOUND, "{name}: gone after {t:?}");
    }
    let t = gone[2].expect("tor3 drops the route at its hold timer");
    // The hold timer restarts at each keepalive (every second): it expires 2 to 3 s after
    // the freeze, never within BFD's time.
    assert!(t >= Duration::from_millis(1900), "tor3 (hold timer): {t:?}");
    assert_eq!(t1.kernel_route(V6), None, "the /128 goes with the session");
    let n = t1.neighbor(&l1.db_v4);
    eprintln!(
        "tor1 lastResetDueTo: {} lastNotificationReason {}",
        n["lastResetDueTo"], n["lastNotificationReason"]
    );
    let reason = n["lastNotificationReason"].clone();
    assert!(
        reason.as_str().is_some_and(|r| r.contains("BFD")),
        "FRR reset the session for BFD: {reason}"
    );
    assert!(frozen_at.elapsed() < STEP * 2);

    // Thawed, everything comes back: BFD first, then BGP, then the routes.
    net.thaw_db();
    for (t, prefix) in [(t1, V4), (t2, V4), (t3, V4)] {
        net.wait_for(STEP, &format!("{} has {prefix} again", t.name), || {
            t.bgp_kernel_route(prefix)
        });
    }
    assert_eq!(t1.bfd_status(&l1.db_v4).as_deref(), Some("up"));
    assert!(
        peer_json(&pd, "tor1")["bfd"]["down_transitions"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn bird_with_sha1_bfd_drops_the_routes_of_a_host_whose_packets_are_lost() {
    let mut net = Net::new();
    let l1 = net.add_link();
    net.start_bird("tor1", &l1, &examples::bird_ebgp_bfd(&l1).render());
    let key = net.write_secret("tor-bfd.key", BFD_KEY);
    let db = net.add_mariadb(MariaDbOpts::primary());
    let cfg = PdConfig::new()
        .peer(examples::pd_bfd_peer(&l1, Some(key)))
        .service(service());
    let pd = net.start_primaryd(&net.primaryd_config(&cfg, &db, PrimarydOpts::default()));
    let bird = net.bird("tor1");
    net.wait_for(STEP, "BIRD installed the route", || {
        bird.bird_kernel_route(V4)
    });
    net.wait_until(STEP, "BIRD's BFD session is Up", || {
        bird.bfd_state(&l1.db_v4).as_deref() == Some("Up")
    });
    let b = peer_json(&pd, "tor1")["bfd"].clone();
    assert_eq!(b["state"], "Up", "{b}");
    assert_eq!(b["auth"], "meticulous-keyed-sha1");
    assert_eq!(b["dropped_auth"], 0, "{b}");

    net.drop_db_packets(&l1, PacketDrop::All);
    let start = Instant::now();
    let took = net.wait_until(STEP, "BIRD dropped the route", || {
        bird.kernel_route(V4).is_none()
    });
    eprintln!("packets dropped both ways: BIRD's route gone after {took:?} (BFD 100 ms x 3; BIRD's hold time 240 s)");
    assert!(took <= BFD_BOUND, "{took:?}");
    assert_eq!(bird.bfd_state(&l1.db_v4).as_deref(), Some("Down"));
    net.wait_until(STEP, "primaryd's BFD session is down too", || {
        peer_json(&pd, "tor1")["bfd"]["state"] == "Down"
    });
    assert!(start.elapsed() < STEP);

    net.pass_db_packets(&l1, PacketDrop::All);
    net.wait_for(STEP, "BIRD has the route again", || {
        bird.bird_kernel_route(V4)
    });
    assert_eq!(peer_json(&pd, "tor1")["bfd"]["dropped_auth"], 0);
}

#[test]
fn bgp_stays_down_while_bfd_is_down_and_returns_with_it() {
    let mut net = Net::new();
    let l1 = net.add_link();
    net.start_frr("tor1", &l1, &examples::frr_ebgp_bfd(&l1).render());
    let db = net.add_mariadb(MariaDbOpts::primary());
    let cfg = PdConfig::new()
        .peer(examples::pd_bfd_peer(&l1, None))
        .service(service());
    let config = net.primaryd_config(&cfg, &db, PrimarydOpts::default());
    let pd = net.start_primaryd(&config);
    let tor = net.frr("tor1");
    net.wait_for(STEP, "the ToR has the route", || tor.bgp_kernel_route(V4));
    settled(&net, tor, &l1.db_v4, &l1.router_v4);
    let before = tor.connections_established(&l1.db_v4);

    // BFD lost, BGP's TCP intact: BFD alone ends the session.
    net.drop_db_packets(&l1, PacketDrop::Bfd);
    let took = net.wait_until(STEP, "the ToR dropped the route", || {
        tor.kernel_route(V4).is_none()
    });
    eprintln!("BFD packets dropped: route gone after {took:?}");
    net.wait_until(STEP, "primaryd closed the session for BFD", || {
        let p = peer_json(&pd, "tor1");
        // Whichever side saw BFD down first sent the Cease/BFD Down.
        p["state"] != "Established"
            && p["bfd"]["state"] == "Down"
            && p["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("BFD") || e.contains("(6/10)"))
    });
    let log = tor.log();
    assert!(
        log.lines()
            .any(|l| l.contains("%NOTIFICATION") && l.contains(" 6/10 ")),
        "a Cease/BFD Down (6/10) in bgpd's log:\n{log}"
    );
    // TCP still works and primaryd's idle hold after a failure is about a second: a session
    // held by nothing but BFD would be back within this window.
    net.hold_for(
        Duration::from_secs(4),
        "no session and no route while BFD is down",
        || tor.neighbor_state(&l1.db_v4) != "Established" && tor.kernel_route(V4).is_none(),
    );
    assert_eq!(peer_json(&pd, "tor1")["bfd"]["bgp_allowed"], false);

    net.pass_db_packets(&l1, PacketDrop::Bfd);
    net.wait_for(STEP, "the route is back with BFD", || {
        tor.bgp_kernel_route(V4)
    });
    assert_eq!(tor.connections_established(&l1.db_v4), before + 1);

    // New intervals on reload: a Poll Sequence, not a new session.
    let slower = config.replace("bfd = true", "bfd = true\nbfd_min_tx_ms = 200");
    std::fs::write(net.dir().join("primaryd0.toml"), {
        let text = std::fs::read_to_string(net.dir().join("primaryd0.toml")).unwrap();
        text.replace(&config, &slower)
    })
    .unwrap();
    assert!(
        run(Command::new("kill").args(["-HUP", &pd.pid().to_string()]))
            .status
            .success()
    );
    net.wait_until(STEP, "FRR sees our 200 ms", || {
        tor.bfd_peer(&l1.db_v4)
            .is_some_and(|p| p["remote-transmit-interval"] == 200)
    });
    net.hold_for(Duration::from_secs(1), "the session stays up", || {
        tor.neighbor_state(&l1.db_v4) == "Established"
    });
    assert_eq!(tor.connections_established(&l1.db_v4), before + 1);
    let p = peer_json(&pd, "tor1");
    assert_eq!(p["bfd"]["tx_interval_ms"], 200.0, "{p}");
}
