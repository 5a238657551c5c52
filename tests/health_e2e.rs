//! End to end, health side: the primaryd binary with a real FRR ToR and a real MariaDB (see
//! testkit/src/fixtures). What is asserted is what the network sees: the service /32 in the ToR's
//! kernel table. Run as root; every test fails (never skips) otherwise.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use primaryd::health::drain::{DrainInfo, DrainStore};
use testkit::{run_ok, wait_until, Lab, MariaDbOpts, PrimarydOpts, SERVICE_PREFIX, STEP};

/// The lab config plus a `[control]` state dir and socket in the lab's folder and extra
/// `[[service]]` keys.
fn config(lab: &Lab, db: &testkit::MariaDb, opts: PrimarydOpts, service_extra: &str) -> String {
    let text = lab.primaryd_config(db, opts);
    let state_dir = lab.dir().join("state");
    let text = text.replacen(
        "[service.mysql]",
        &format!("{service_extra}\n[service.mysql]"),
        1,
    );
    format!(
        "{text}\n[control]\nstate_dir = {:?}\nsocket = {:?}\n",
        state_dir.display().to_string(),
        lab.dir().join("primaryd.sock").display().to_string()
    )
}

/// mysqld killed -> route gone at the ToR, with a 5 s check interval: the watch connection
/// sees the server die and the check runs at once. Also shows the route is back after the
/// restart, and that the log tells what happened.
#[test]
fn killed_mariadb_is_withdrawn_long_before_the_next_check() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let opts = PrimarydOpts {
        interval_ms: 5000,
        ..PrimarydOpts::default()
    };
    let pd = lab.start_primaryd_with_config(&config(&lab, &db, opts, ""));
    lab.wait_route(SERVICE_PREFIX, STEP);
    // The watch is parked once the first check connected; wait until the server shows it.
    wait_until(STEP, "the watch connection is parked", || {
        db.query(
            "SELECT id FROM information_schema.processlist \
             WHERE user = 'primaryd' AND info LIKE 'SELECT SLEEP%'",
        )
        .len()
            == 1
    });

    db.wait_uptime(3);
    let killed = Instant::now();
    db.kill9();
    let gone = lab.wait_no_route(SERVICE_PREFIX, STEP);
    let total = killed.elapsed();
    eprintln!("mariadbd killed: route gone from the ToR after {gone:.3?} (interval 5 s)");
    // Polling the ToR's table takes one `ip route` every 20 ms, so the measurement itself
    // has tens of ms of slack; a fifth of the interval proves the timer played no part.
    assert!(
        total < Duration::from_millis(1000),
        "route gone after {total:?}"
    );
    assert!(
        pd.log().contains("watch ended; checking now"),
        "the withdraw came from the watch:\n{}",
        pd.log()
    );

    // A restarted server is held until an operator confirms it (docs/safety.md).
    db.start();
    wait_until(STEP, "the restarted server is held", || {
        pd.service_state("main").0 == "held"
    });
    pd.confirm("main");
    lab.wait_route(SERVICE_PREFIX, STEP);
    pd.assert_running();
}

/// A drain persisted in state_dir holds the service down from the daemon's first moment:
/// a healthy server, checks passing, and the route never appears.
#[test]
fn persisted_drain_is_loaded_before_the_first_announce() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let store = DrainStore::new(lab.dir().join("state"));
    store
        .save(
            "main",
            &DrainInfo::new(SystemTime::now(), Some("kernel upgrade".into())),
        )
        .unwrap();
    let opts = PrimarydOpts::default();
    let pd = lab.start_primaryd_with_config(&config(&lab, &db, opts, ""));
    lab.wait_established(STEP);
    lab.assert_no_route_while_checking(Some(&db), opts.interval(), "drained before start");
    let log = pd.log();
    assert!(
        log.contains("drained (persisted)") && log.contains("drained by operator: kernel upgrade"),
        "{log}"
    );
}

/// The disable file and the service address: each withdraws the route while it says so,
/// and the route comes back when it no longer does.
#[test]
fn disable_file_and_missing_address_withdraw() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let disable = lab.dir().join("main.disabled");
    let extra = format!("disable_file = {:?}", disable.display().to_string());
    let pd = lab.start_primaryd_with_config(&config(&lab, &db, PrimarydOpts::default(), &extra));
    lab.wait_route(SERVICE_PREFIX, STEP);

    std::fs::write(&disable, "").unwrap();
    lab.wait_no_route(SERVICE_PREFIX, STEP);
    std::fs::remove_file(&disable).unwrap();
    lab.wait_route(SERVICE_PREFIX, STEP);

    let ip = |verb: &str| {
        run_ok(Command::new("ip").args([
            "-n",
            &lab.db_ns,
            "addr",
            verb,
            SERVICE_PREFIX,
            "dev",
            "lo",
        ]))
    };
    ip("del");
    lab.wait_no_route(SERVICE_PREFIX, STEP);
    ip("add");
    lab.wait_route(SERVICE_PREFIX, STEP);

    let log = pd.log();
    for reason in [
        format!("disabled by file {}", disable.display()),
        "address 192.0.2.10 not configured on any local interface".to_string(),
    ] {
        assert!(log.contains(&reason), "the log names {reason:?}:\n{log}");
    }
    pd.assert_running();
}
