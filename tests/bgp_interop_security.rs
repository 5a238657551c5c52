//! TCP MD5 signatures (RFC 2385) and GTSM (RFC 5082) against FRR 8.4 configured the same way,
//! each test in its own set of network namespaces (see testkit/src/fixtures/net.rs). Both run in
//! the kernel, so a "never established" is backed by the kernel's own drop counters
//! (`nstat`: TcpExtTCPMD5Failure, TcpExtTCPMinTTLDrop) and by primaryd's failed attempts.
//! Run as root; the tests fail (never skip) otherwise.

use std::time::{Duration, Instant};

use testkit::examples;
use testkit::{
    hold_until, kernel_counter, Checks, Frr, Link, MariaDbOpts, Net, PdConfig, PdService,
    PrimarydOpts, STEP,
};

const V4: &str = "192.0.2.10/32";
const V6: &str = "2001:db8::10/128";

/// How long a session that must not establish is watched: longer than primaryd's first
/// complete connect attempt (5 s connect timeout, then a 1 s idle hold before the next) and
/// seven of FRR's attempts (`timers connect 1`), so both directions were tried more than once.
const NEVER_WINDOW: Duration = Duration::from_secs(7);
/// And the kernel must have dropped at least this many of the segments involved: the attempts
/// reached the other side and were refused for the reason under test.
const MIN_DROPS: u64 = 3;

fn wait_routes(net: &Net, frr: &Frr) {
    for p in [V4, V6] {
        net.wait_for(
            STEP,
            &format!("{p} is in {}'s kernel table from BGP", frr.name),
            || frr.bgp_kernel_route(p),
        );
    }
}

/// Watches that `tor`'s session with primaryd is never Established (in either side's view)
/// for [`NEVER_WINDOW`] and until `counter` in `counter_ns` grew by [`MIN_DROPS`].
fn assert_never_established(
    net: &Net,
    pd: &testkit::Primaryd,
    tor: &Frr,
    peer: &str,
    addr: &str,
    (counter_ns, counter): (&str, &str),
) -> Duration {
    let base = kernel_counter(counter_ns, counter);
    let start = Instant::now();
    let took = hold_until(
        NEVER_WINDOW + STEP,
        &format!("{}'s session with primaryd is not Established", tor.name),
        || {
            net.assert_alive();
            tor.neighbor_state(addr) != "Established"
                && pd.peer_log(peer, "session established").is_empty()
        },
        &format!(
            "{NEVER_WINDOW:?} passed and the kernel counted {MIN_DROPS} {counter} in {counter_ns}"
        ),
        || {
            start.elapsed() >= NEVER_WINDOW
                && kernel_counter(counter_ns, counter) >= base + MIN_DROPS
        },
    );
    eprintln!(
        "{}: never established for {took:.3?} ({counter} in {counter_ns}: +{}; primaryd: {} \
         connects started, {} incoming connections)",
        tor.name,
        kernel_counter(counter_ns, counter) - base,
        pd.peer_log(peer, "-> Connect").len(),
        pd.peer_log(peer, "incoming connection").len(),
    );
    took
}

#[test]
fn tcp_md5_sessions_establish_only_with_the_same_key() {
    let mut net = Net::new();
    let links: Vec<Link> = (0..3).map(|_| net.add_link()).collect();
    let (l1, l2, l3) = (&links[0], &links[1], &links[2]);
    // tor1: primaryd passive, so FRR's signed SYN meets primaryd's keyed listener.
    let mut f1 = examples::frr_ebgp(l1);
    f1.neighbors[0].password = Some("pd-lab-md5-one".into());
    f1.neighbors[0].connect_timer = Some(1);
    // tor2: a different key on each side.
    let mut f2 = examples::frr_ebgp(l2);
    f2.neighbors[0].password = Some("frr-side-key".into());
    f2.neighbors[0].connect_timer = Some(1);
    // tor3: the documented hardened ToR (MD5 and GTSM), passive: primaryd's signed connect.
    let mut f3 = examples::frr_ebgp_md5_gtsm(l3, "example-md5-key");
    f3.neighbors[0].passive = true;
    net.start_frr("tor1", l1, &f1.render());
    net.start_frr("tor2", l2, &f2.render());
    net.start_frr("tor3", l3, &f3.render());
    let db = net.add_mariadb(MariaDbOpts::primary());
    let mut p1 = examples::pd_ebgp_peer(l1);
    p1.passive = true;
    p1.md5_password_file = Some(net.write_secret("tor1.md5", "pd-lab-md5-one"));
    let mut p2 = examples::pd_ebgp_peer(l2);
    p2.md5_password_file = Some(net.write_secret("tor2.md5", "pd-side-key"));
    let mut p3 = examples::pd_ebgp_peer(l3);
    p3.md5_password_file = Some(net.write_secret("tor3.md5", "example-md5-key"));
    p3.ttl_security = true;
    let mut cfg = PdConfig::new()
        .peer(p1)
        .peer(p2)
        .peer(p3)
        .service(PdService::new("main", &[V4, V6]));
    cfg.listen = vec!["0.0.0.0:179".into()];
    let started = Instant::now();
    let pd = net.start_primaryd(&net.primaryd_config(&cfg, &db, PrimarydOpts::default()));
    let (tor1, tor2, tor3) = (net.frr("tor1"), net.frr("tor2"), net.frr("tor3"));
    wait_routes(&net, tor1);
    wait_routes(&net, tor3);
    eprintln!(
        "lab {}: MD5 sessions up, routes at tor1 and tor3 {:.3?} after primaryd started",
        net.prefix,
        started.elapsed()
    );
    let mut c = Checks::new();
    c.eq(
        "tor1 (passive primaryd) portForeign",
        tor1.neighbor(&l1.db_v4)["portForeign"].as_u64(),
        Some(179),
    );
    c.eq(
        "tor3 (passive FRR) portLocal",
        tor3.neighbor(&l3.db_v4)["portLocal"].as_u64(),
        Some(179),
    );

    // Wrong key: both kernels drop the other side's segments (FRR's SYNs at primaryd's
    // listener, primaryd's SYNs at FRR's).
    assert_never_established(
        &net,
        &pd,
        tor2,
        "tor2",
        &l2.db_v4,
        (&l2.router_ns, "TcpExtTCPMD5Failure"),
    );
    c.check(
        kernel_counter(&net.db_ns, "TcpExtTCPMD5Failure") > 0,
        "primaryd's kernel dropped none of FRR's wrongly signed segments",
    );
    // The same key on both sides now: FRR takes primaryd's.
    tor2.configure(&[
        &format!("router bgp {}", examples::tor_asn(l2)),
        &format!("neighbor {} password pd-side-key", l2.db_v4),
    ]);
    let t = Instant::now();
    wait_routes(&net, tor2);
    eprintln!("tor2: key fixed, routes {:.3?} later", t.elapsed());
    pd.assert_running();
    c.finish();
}

#[test]
fn gtsm_sessions_establish_only_when_the_peer_sends_ttl_255() {
    let mut net = Net::new();
    let l1 = net.add_link();
    let l2 = net.add_link();
    // tor1: GTSM on both, primaryd passive (its listener answers with TTL 255).
    let mut f1 = examples::frr_ebgp(&l1);
    f1.neighbors[0].ttl_security = true;
    f1.neighbors[0].connect_timer = Some(1);
    // tor2: FRR without GTSM sends with TTL 1 (its eBGP default), below the 254 required.
    let mut f2 = examples::frr_ebgp(&l2);
    f2.neighbors[0].connect_timer = Some(1);
    net.start_frr("tor1", &l1, &f1.render());
    net.start_frr("tor2", &l2, &f2.render());
    let db = net.add_mariadb(MariaDbOpts::primary());
    let mut p1 = examples::pd_ebgp_peer(&l1);
    p1.passive = true;
    p1.ttl_security = true;
    let mut p2 = examples::pd_ebgp_peer(&l2);
    p2.ttl_security = true;
    let mut cfg = PdConfig::new()
        .peer(p1)
        .peer(p2)
        .service(PdService::new("main", &[V4, V6]));
    cfg.listen = vec!["0.0.0.0:179".into()];
    let started = Instant::now();
    let pd = net.start_primaryd(&net.primaryd_config(&cfg, &db, PrimarydOpts::default()));
    let (tor1, tor2) = (net.frr("tor1"), net.frr("tor2"));
    wait_routes(&net, tor1);
    eprintln!(
        "lab {}: GTSM session up, routes at tor1 {:.3?} after primaryd started",
        net.prefix,
        started.elapsed()
    );
    let mut c = Checks::new();
    c.eq(
        "tor1 (passive primaryd) portForeign",
        tor1.neighbor(&l1.db_v4)["portForeign"].as_u64(),
        Some(179),
    );
    // FRR's record of the hop limit it enforces.
    c.eq(
        "tor1 externalBgpNbrMaxHopsAway",
        tor1.neighbor(&l1.db_v4)["externalBgpNbrMaxHopsAway"].as_u64(),
        Some(1),
    );

    // TTL 1 from FRR: primaryd's kernel drops it (IP_MINTTL 254). FRR's listener answers
    // SYNs with TTL 255 (so primaryd's own connects complete and then starve in OpenSent);
    // its connections to primaryd's listener carry TTL 1 from the first segment.
    assert_never_established(
        &net,
        &pd,
        tor2,
        "tor2",
        &l2.db_v4,
        (&net.db_ns, "TcpExtTCPMinTTLDrop"),
    );
    // RFC 5082: nothing that arrived below TTL 254 may be processed. An OPEN read from
    // FRR's TTL-1 connection (adopted, or rejected as a collision after decoding it) means
    // the minimum TTL came too late, after the segment was queued.
    let processed: Vec<String> = [
        "incoming connection rejected",
        "peer connected",
        "received OPEN",
    ]
    .iter()
    .flat_map(|n| pd.peer_log("tor2", n))
    .collect();
    c.check(
        processed.is_empty(),
        format!(
            "primaryd processed an OPEN that tor2 sent with TTL 1 (GTSM peer):\n{}",
            processed.join("\n")
        ),
    );
    // The router is fixed: a session must follow within primaryd's reconnect backoff (a few
    // seconds here), well inside STEP.
    tor2.configure(&[
        &format!("router bgp {}", examples::tor_asn(&l2)),
        &format!("neighbor {} ttl-security hops 1", l2.db_v4),
    ]);
    let back = testkit::wait_for_result(STEP, || {
        net.assert_alive();
        [V4, V6].iter().all(|p| tor2.bgp_kernel_route(p).is_some())
    });
    match back {
        Ok(took) => eprintln!("tor2: GTSM on FRR too, routes {took:.3?} later"),
        Err(waited) => c.check(
            false,
            format!(
                "tor2 fixed (ttl-security hops 1) but no session after {waited:.3?}: FRR {}, \
                 TCP connections with 198.18.2.0 in the DB namespace (local port, remote port): \
                 {:?}; primaryd about tor2:\n{}",
                tor2.neighbor_state(&l2.db_v4),
                testkit::tcp_connections(&net.db_ns, &l2.router_v4),
                pd.peer_log("tor2", "")
                    .iter()
                    .filter(|l| !l.contains("second incoming connection"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        ),
    }
    pd.assert_running();
    c.finish();
}
