//! End to end: primaryd peers with a real FRR ToR and checks a real MariaDB, each test in its
//! own pair of network namespaces (see testkit/src/fixtures). What is asserted is what the network
//! sees: the /32 in the ToR's kernel table (installed by zebra, `proto bgp`) and FRR's own
//! record of the session. Run as root; every test fails (never skips) otherwise.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use testkit::{
    ip, signal, tcp_connect, wait_for, wait_until, Lab, MariaDbOpts, PrimarydOpts, DB_ADDR, DB_ASN,
    SERVICE_PREFIX, STEP,
};

/// The route is in the ToR's kernel table as zebra installs BGP routes, via the DB host.
#[track_caller]
fn assert_route_via_db(lab: &Lab) -> String {
    let line = lab.wait_route(SERVICE_PREFIX, STEP);
    assert!(
        line.starts_with("192.0.2.10 ") && line.contains(&format!("via {DB_ADDR} ")),
        "unexpected ToR route: {line}"
    );
    line
}

#[test]
fn route_appears_only_once_mariadb_is_up_and_writable() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts {
        read_only: true,
        start: false,
        ..MariaDbOpts::primary()
    });
    let opts = PrimarydOpts::default();
    let pd = lab.start_primaryd(&db, opts);
    let up = lab.wait_established(STEP);
    eprintln!("session Established {up:.3?} after primaryd started");

    // No server at all: nothing to announce.
    lab.assert_no_route_while_checking(None, opts.interval(), "MariaDB not running");

    // A server that answers but is read-only is not a primary.
    db.start();
    assert!(db.read_only());
    lab.assert_no_route_while_checking(Some(&db), opts.interval(), "MariaDB read_only=1");
    pd.assert_running();

    db.set_read_only(false);
    let line = assert_route_via_db(&lab);
    assert!(line.contains("proto bgp"), "{line}");

    let path = lab
        .bgp_best_path(SERVICE_PREFIX)
        .expect("FRR's BGP table has the route zebra installed");
    // Exactly our ASN, as a sequence: no AS_SET braces, no prepends, nothing else.
    assert_eq!(path.as_path, "4200000001", "{path:?}");
    assert_eq!(
        path.segments,
        [("as-sequence".to_string(), vec![DB_ASN])],
        "{path:?}"
    );
    assert_eq!(path.next_hop.as_deref(), Some(DB_ADDR), "{path:?}");
    assert_eq!(path.peer.as_deref(), Some(DB_ADDR), "{path:?}");
    assert!(path.valid && path.best, "{path:?}");
}

#[test]
fn read_only_withdraws_and_writable_announces_again() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let pd = lab.start_primaryd(&db, PrimarydOpts::default());
    assert_route_via_db(&lab);

    db.set_read_only(true);
    let gone = lab.wait_no_route(SERVICE_PREFIX, STEP);
    eprintln!("read_only=1: route gone from the ToR after {gone:.3?}");
    assert!(lab.bgp_route_json(SERVICE_PREFIX).is_none());

    db.set_read_only(false);
    assert_route_via_db(&lab);

    // The changes travelled as UPDATEs over the one session; it never dropped.
    assert_eq!(lab.bgp_connections_established(), 1);
    pd.assert_running();
}

#[test]
fn kill_9_withdraws_and_the_restarted_server_is_held_until_an_operator_confirms() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let opts = PrimarydOpts::default();
    let pd = lab.start_primaryd(&db, opts);
    assert_route_via_db(&lab);
    db.wait_uptime(3);

    db.kill9();
    let gone = lab.wait_no_route(SERVICE_PREFIX, STEP);
    eprintln!("mariadbd killed: route gone from the ToR after {gone:.3?}");

    // Same data dir: crash recovery, then a writable primary again (MariaDB's default). A
    // promotion may have happened elsewhere meanwhile: held, not announced (docs/safety.md).
    db.start();
    assert!(!db.read_only());
    wait_until(STEP, "the service is held after the restart", || {
        pd.service_state("main").0 == "held"
    });
    let (_, reason) = pd.service_state("main");
    assert!(
        reason.contains("restarted") && reason.contains("primaryctl confirm"),
        "{reason}"
    );
    lab.assert_no_route_while_checking(Some(&db), opts.interval(), "restarted server held");

    let answer = pd.confirm("main");
    assert!(answer.contains("announced"), "{answer}");
    assert_route_via_db(&lab);
    assert_eq!(lab.bgp_connections_established(), 1);
    pd.assert_running();
}

#[test]
fn writable_server_with_running_replication_never_gets_the_route() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let source = lab.add_mariadb(MariaDbOpts::source());
    // A misconfigured writable replica: read_only=0 but replicating.
    db.replicate_from(&source);
    assert!(!db.read_only());

    let opts = PrimarydOpts::default();
    let pd = lab.start_primaryd(&db, opts);
    lab.wait_established(STEP);
    lab.assert_no_route_while_checking(Some(&db), opts.interval(), "replication threads running");
    // The condition held for the whole window.
    assert_eq!(
        db.replication_threads(),
        [("Yes".to_string(), "Yes".to_string())]
    );
    pd.assert_running();

    // Promotion: replication stopped and forgotten. Now it is a primary.
    db.stop_replication();
    assert_route_via_db(&lab);
}

#[test]
fn sigterm_withdraws_sends_cease_and_exits_0() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let pd = lab.start_primaryd(&db, PrimarydOpts::default());
    assert_route_via_db(&lab);
    let notifications_before = lab.last_notification().notifications_received;

    pd.sigterm();
    let gone = lab.wait_no_route(SERVICE_PREFIX, STEP);
    eprintln!("SIGTERM: route gone from the ToR after {gone:.3?}");
    let status = pd.wait_exit(STEP);
    assert_eq!(status.code(), Some(0), "primaryd exit status: {status}");

    // FRR records the NOTIFICATION when it processes it; the route may vanish a moment before.
    let n = wait_for(STEP, "FRR records a NOTIFICATION from 198.18.1.1", || {
        let n = lab.last_notification();
        (n.notifications_received > notifications_before).then_some(n)
    });
    assert_eq!(
        n.reason.as_deref(),
        Some("Cease/Administrative Shutdown"),
        "{n:?}"
    );
    assert_eq!(n.code_subcode.as_deref(), Some("0602"), "{n:?}");
    assert_eq!(
        n.reset_due_to.as_deref(),
        Some("BGP Notification received"),
        "{n:?}"
    );
    // RFC 8203: the shutdown communication says why.
    let message = n.shutdown_message.clone().unwrap_or_default();
    assert!(!message.is_empty(), "no shutdown communication: {n:?}");

    let cease = wait_for(STEP, "bgpd logs the NOTIFICATION", || {
        lab.frr_log_notification_received()
    });
    assert!(
        cease.contains("6/2 (Cease/Administrative Shutdown)")
            && cease.contains(&format!("\"{message}\"")),
        "{cease}"
    );

    // Withdraw first, then the NOTIFICATION.
    if let Err(e) = lab.withdrawn_before_notification(SERVICE_PREFIX) {
        panic!("{e}");
    }
}

/// A TCP connect to the service address from the ToR: accepted, or how it failed.
fn connect_from_tor(lab: &Lab) -> (Result<(), ErrorKind>, Duration) {
    let addr: SocketAddr = "192.0.2.10:3306".parse().expect("address");
    let (r, took) = tcp_connect(&lab.tor_ns, addr, Duration::from_secs(2));
    (r.map(drop), took)
}

#[test]
fn a_refused_host_stays_refused_after_primaryd_is_killed() {
    // Fail closed (docs/clients.md): the refusal is an nftables table in the kernel, which
    // nothing removes when primaryd dies; not even a server made writable afterwards opens it.
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let opts = PrimarydOpts {
        fallback: true,
        ..PrimarydOpts::default()
    };
    let pd = lab.start_primaryd(&db, opts);
    assert_route_via_db(&lab);
    // A route to the DB host that outlives the BGP session (zebra's has a lower metric).
    ip(&format!(
        "-n {} route add 192.0.2.10/32 via {DB_ADDR} metric 5000",
        lab.tor_ns
    ));
    // The primary accepts: the path and the server are there.
    wait_until(STEP, "the primary accepts on 192.0.2.10:3306", || {
        connect_from_tor(&lab).0.is_ok()
    });

    db.set_read_only(true);
    wait_until(STEP, "the read-only host refuses 192.0.2.10:3306", || {
        connect_from_tor(&lab).0 == Err(ErrorKind::ConnectionRefused)
    });
    assert!(signal(pd.pid(), "KILL"), "SIGKILL primaryd");
    pd.wait_exit(STEP);
    db.set_read_only(false);
    for _ in 0..5 {
        let (r, took) = connect_from_tor(&lab);
        assert_eq!(r, Err(ErrorKind::ConnectionRefused), "after primaryd died");
        assert!(
            took < Duration::from_millis(500),
            "refused only after {took:?}"
        );
    }
}
