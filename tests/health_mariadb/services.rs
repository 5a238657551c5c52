//! Several services on one host; write probe, damping, watch, kill, drain, disable file.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use primaryd::config::{self};
use primaryd::health::checker::Health;
use primaryd::health::services::{self, Target};

use testkit::ip;

use crate::server::*;
use crate::setup::*;

/// One daemon, three MariaDB instances (one per port), one service each: independent
/// checks and states. Killing one server is noticed through its watch connection at once,
/// with a 10 s check interval, and the other two never change; removing one service's
/// address withdraws only that service. The third address is added by primaryd itself
/// (`manage_addresses`).
#[test]
fn three_services_on_one_host_fail_independently() {
    in_private_netns(|| async {
        let (a, b, c) = tokio::join!(Server::start(1), Server::start(2), Server::start(3));
        ip("addr add 192.0.2.21/32 dev lo");
        ip("addr add 192.0.2.22/32 dev lo");
        let state = tempfile::tempdir().unwrap();
        let text = config_text(
            state.path(),
            &[
                service_toml("a", "192.0.2.21/32", &a, 10_000, "", ""),
                service_toml("b", "192.0.2.22/32", &b, 100, "", ""),
                service_toml("c", "192.0.2.23/32", &c, 100, "manage_addresses = true", ""),
            ],
        );
        let config = config::parse(&text).unwrap();
        let (control, tasks, events) = start_health(&config);
        // c's task adds it (off the event loop) before its first check: c then comes up in
        // one transition below, never first down for a missing address.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ip("addr show dev lo").contains("inet 192.0.2.23/32") {
            assert!(
                Instant::now() < deadline,
                "manage_addresses never added 192.0.2.23"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut rx: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| control.subscribe(n).unwrap())
            .collect();
        for (r, name) in rx.iter_mut().zip(["a", "b", "c"]) {
            let (s, _) = wait_status(r, Duration::from_secs(20), &format!("{name} up"), up).await;
            assert_eq!(s.reason, "writable primary (1 consecutive check)");
            assert_eq!(s.transitions, 1);
        }

        // a's watch is parked on its server.
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.check_connections(Some("SELECT SLEEP")).await.is_empty() {
            assert!(Instant::now() < deadline, "the watch never parked on a");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let last_regular = rx[0].borrow().last_check.clone().unwrap().at;
        let since_last = last_regular.elapsed().unwrap_or_default();
        assert!(
            since_last < Duration::from_secs(5),
            "a's next regular check is at least 5 s away ({since_last:?} since the last)"
        );

        // Fail fast: kill -9 a; its status goes down long before the next check is due.
        let killed = Instant::now();
        signal(a.pid(), libc::SIGKILL);
        let (s, took) = wait_status(&mut rx[0], Duration::from_secs(5), "a down", down).await;
        eprintln!("mariadbd killed: service down after {took:?} (interval 10 s)");
        assert!(
            s.reason.starts_with("connection lost: ")
                && s.reason.contains("; then connect failed: "),
            "{}",
            s.reason
        );
        assert!(
            s.last_check.unwrap().at > last_regular,
            "a check ran after the kill"
        );
        // The whole path (EOF on the watch, the task wakes, the check's refused reconnect)
        // takes milliseconds; 300 ms leaves room for a loaded CI machine and is still a
        // thirtieth of the interval that would otherwise have been waited.
        assert!(took < Duration::from_millis(300), "a down after {took:?}");
        assert!(killed.elapsed() < Duration::from_secs(5));

        // The others did not notice.
        for r in &rx[1..] {
            let s = r.borrow().clone();
            assert_eq!((s.health, s.transitions), (Health::Up, 1), "{s:#?}");
        }

        // b hangs (SIGSTOP): its check times out and it is withdrawn; c, checked by its own
        // task, is not held up for a moment.
        let c_before = rx[2].borrow().successes;
        signal(b.pid(), libc::SIGSTOP);
        let (s, took) = wait_status(&mut rx[1], Duration::from_secs(5), "b down", down).await;
        eprintln!("mariadbd stopped: service down after {took:?} (timeout 500 ms)");
        assert!(
            s.reason.starts_with("check timed out after 500 ms during "),
            "{}",
            s.reason
        );
        // c kept checking every 100 ms while b's check hung.
        let c_now = rx[2].borrow().clone();
        assert_eq!((c_now.health, c_now.transitions), (Health::Up, 1));
        // Every 100 ms over b's hang (about timeout_ms): at least two passing checks of c,
        // which a shared task stuck behind b's check could not have made.
        let c_during = c_now.successes.saturating_sub(c_before);
        assert!(
            c_during >= 2,
            "c passed {c_during} checks during b's {took:?} hang"
        );
        signal(b.pid(), libc::SIGCONT);
        wait_status(
            &mut rx[1],
            Duration::from_secs(20),
            "b up after SIGCONT",
            up,
        )
        .await;

        // c's address goes away: only c is withdrawn, at its next check.
        ip("addr del 192.0.2.23/32 dev lo");
        let (s, _) = wait_status(&mut rx[2], Duration::from_secs(5), "c down", down).await;
        assert_eq!(
            s.reason,
            "address 192.0.2.23 not configured on any local interface"
        );
        assert_eq!(s.check_health, Health::Up, "the server itself is fine");
        assert_eq!(rx[1].borrow().health, Health::Up);
        ip("addr add 192.0.2.23/32 dev lo");
        wait_status(&mut rx[2], Duration::from_secs(5), "c up again", up).await;

        let all = control.statuses();
        let health: Vec<_> = all.iter().map(|s| (s.name.as_str(), s.health)).collect();
        assert_eq!(
            health,
            [("a", Health::Down), ("b", Health::Up), ("c", Health::Up)]
        );
        drop(tasks);
        events.abort();
    });
}

/// The write probe against a stuck commit (a held table lock, then a row lock in an open
/// transaction), flap damping, a killed watch, drain persisted across a restart, the
/// disable file, and drain --all. Two services check the same server: "main" with the write
/// probe and a disable file, "damped" with min_up_interval_ms = 3000.
#[test]
fn write_probe_damping_watch_kill_drain_and_disable_file() {
    in_private_netns(|| async {
        let server = Server::start(1).await;
        ip("addr add 192.0.2.31/32 dev lo");
        ip("addr add 192.0.2.32/32 dev lo");
        let state = tempfile::tempdir().unwrap();
        let disable = state.path().join("main.disabled");
        let text = config_text(
            state.path(),
            &[
                service_toml(
                    "main",
                    "192.0.2.31/32",
                    &server,
                    100,
                    &format!("disable_file = {:?}", disable.display().to_string()),
                    "write_probe_table = \"primaryd.heartbeat\"",
                ),
                service_toml(
                    "damped",
                    "192.0.2.32/32",
                    &server,
                    100,
                    "",
                    "min_up_interval_ms = 3000",
                ),
            ],
        );
        let config = config::parse(&text).unwrap();
        let (control, tasks, events) = start_health(&config);
        let mut main = control.subscribe("main").unwrap();
        let mut damped = control.subscribe("damped").unwrap();
        let within = Duration::from_secs(10);
        wait_status(&mut main, within, "main up", up).await;
        wait_status(&mut damped, within, "damped up", up).await;

        // The heartbeat row is written at every check.
        let seq = "SELECT seq FROM primaryd.heartbeat WHERE server_id = 1 AND service = 'main'";
        let first = server.query_u64(seq).await;
        let deadline = Instant::now() + within;
        while server.query_u64(seq).await == first {
            assert!(Instant::now() < deadline, "the heartbeat does not advance");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A stuck commit: another session holds a write lock on the heartbeat table.
        let mut locker = server.admin().await;
        locker
            .query_drop("LOCK TABLES primaryd.heartbeat WRITE")
            .await
            .unwrap();
        let (s, took) = wait_status(&mut main, within, "main down (table lock)", down).await;
        eprintln!("held table lock: main withdrawn after {took:?} (timeout 500 ms)");
        assert_eq!(
            s.reason,
            "check timed out after 500 ms during the write probe"
        );
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert_eq!(damped.borrow().health, Health::Up, "no write probe there");
        locker.query_drop("UNLOCK TABLES").await.unwrap();
        wait_status(&mut main, within, "main up (unlocked)", up).await;

        // A row lock held by an open transaction.
        let mut trx = server.admin().await;
        trx.query_drop("BEGIN").await.unwrap();
        trx.query_drop(format!("{seq} FOR UPDATE")).await.unwrap();
        let (s, _) = wait_status(&mut main, within, "main down (row lock)", down).await;
        assert_eq!(
            s.reason,
            "check timed out after 500 ms during the write probe"
        );
        trx.query_drop("ROLLBACK").await.unwrap();
        wait_status(&mut main, within, "main up (rolled back)", up).await;

        // Flap damping: two read_only flaps. "damped" may come back once, then it is held
        // until 3 s after that announcement; "main" comes back each time at once.
        let mut ups = Vec::new();
        for flap in 0..2 {
            server.sql("SET GLOBAL read_only = 1").await;
            wait_status(&mut damped, within, "damped down (read_only)", down).await;
            wait_status(&mut main, within, "main down (read_only)", down).await;
            server.sql("SET GLOBAL read_only = 0").await;
            wait_status(&mut main, within, "main up (writable)", up).await;
            if flap == 1 {
                let (s, _) = wait_status(&mut damped, within, "damped held", |s| {
                    s.damped_until.is_some()
                })
                .await;
                assert_eq!(s.health, Health::Down);
                assert_eq!(s.check_health, Health::Up);
                assert!(
                    s.reason.starts_with("flap damping: healthy again"),
                    "{}",
                    s.reason
                );
            }
            let (s, _) = wait_status(&mut damped, within, "damped up", up).await;
            ups.push(s.since);
        }
        let gap = ups[1].duration_since(ups[0]).unwrap();
        assert!(gap >= Duration::from_secs(3), "re-announced after {gap:?}");

        // Someone kills the watch connections: a check, no flap, and they come back.
        let watches = server.check_connections(Some("SELECT SLEEP")).await;
        assert_eq!(watches.len(), 2, "one watch per service");
        let transitions: Vec<u64> = [&main, &damped]
            .iter()
            .map(|r| r.borrow().transitions)
            .collect();
        let mut admin = server.admin().await;
        for id in &watches {
            admin
                .query_drop(format!("KILL CONNECTION {id}"))
                .await
                .unwrap();
        }
        let deadline = Instant::now() + within;
        loop {
            let now = server.check_connections(Some("SELECT SLEEP")).await;
            if now.len() == 2 && now.iter().all(|id| !watches.contains(id)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "watches not parked again: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let after: Vec<u64> = [&main, &damped]
            .iter()
            .map(|r| r.borrow().transitions)
            .collect();
        assert_eq!(
            after, transitions,
            "killing the watch did not flap the routes"
        );

        // Drain: withdrawn at once, persisted, and still drained after a restart.
        let target = Target::Service("main".into());
        let st = control
            .drain(&target, Some("test drain".into()))
            .await
            .unwrap();
        assert_eq!(st[0].health, Health::Down);
        assert_eq!(st[0].reason, "drained by operator: test drain");
        assert_eq!(main.borrow().health, Health::Down);
        assert!(state.path().join("main.drained").exists());
        assert!(matches!(
            control.drain(&Target::Service("nope".into()), None).await,
            Err(services::DrainError::UnknownService(_))
        ));
        drop((control, tasks));
        events.abort();

        let (control, tasks, events) = start_health(&config);
        let mut main = control.subscribe("main").unwrap();
        // The task loads the record (off the event loop) before its first check: the state
        // is born drained, so it never made a transition (an announce would have been one).
        let (s, _) = wait_status(&mut main, within, "main shows the drain", |s| {
            s.drained.is_some()
        })
        .await;
        assert_eq!(
            (s.health, s.reason.as_str(), s.transitions),
            (Health::Down, "drained by operator: test drain", 0),
            "drained before the first check"
        );
        let (s, _) = wait_status(&mut main, within, "main's checks pass", |s| {
            s.check_health == Health::Up
        })
        .await;
        assert_eq!(s.health, Health::Down, "a drained service stays withdrawn");
        let st = control.undrain(&target).await.unwrap();
        assert_eq!(st[0].health, Health::Up, "{:#?}", st[0]);
        assert!(!state.path().join("main.drained").exists());

        // The disable file.
        std::fs::write(&disable, "").unwrap();
        let (s, _) = wait_status(&mut main, within, "main disabled", down).await;
        assert_eq!(s.reason, format!("disabled by file {}", disable.display()));
        assert_eq!(control.status("damped").unwrap().health, Health::Up);
        std::fs::remove_file(&disable).unwrap();
        wait_status(&mut main, within, "main enabled", up).await;

        // drain --all and undrain --all.
        let st = control.drain(&Target::All, None).await.unwrap();
        assert!(st
            .iter()
            .all(|s| s.health == Health::Down && s.reason == "drained by operator"));
        for name in ["main", "damped"] {
            assert!(state.path().join(format!("{name}.drained")).exists());
        }
        control.undrain(&Target::All).await.unwrap();
        for name in ["main", "damped"] {
            let mut r = control.subscribe(name).unwrap();
            wait_status(&mut r, within, &format!("{name} undrained and up"), up).await;
        }
        drop(tasks);
        events.abort();
    });
}
