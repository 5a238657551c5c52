//! The promotion term, the server facts and fencing against real MariaDB servers (issue 11).
//! The servers run in a lab's DB namespace ([`testkit::Net`], no routers); the health tasks
//! run in this process, as the daemon runs them, and reach the servers over their Unix
//! sockets. Every server, namespace and folder goes away with the lab, also on failure.

use std::time::{Duration, Instant, SystemTime};

use primaryd::config::{self, ServiceConfig};
use primaryd::health::checker::Health;
use primaryd::health::fence::FenceError;
use primaryd::health::services::HealthServices;
use primaryd::health::state::ServiceStatus;
use primaryd::health::task::HealthEvent;
use primaryd::health::term::{ServerFacts, TermState};
use testkit::{MariaDb, MariaDbOpts, Net, STEP};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};

const SERVICE: &str = "main";
/// Timeout of a check (and of a fence).
const TIMEOUT_MS: u64 = 1000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A primary-role service checking `db` every 50 ms with `term_table = "primaryd.term"`
/// (rise 1, fall 1), announcing 127.0.0.1/32 (always configured).
fn service(db: &MariaDb) -> ServiceConfig {
    let (user, _) = db.check_credentials();
    let text = format!(
        "[bgp]\nasn = 65000\nrouter_id = \"198.19.0.1\"\n[[bgp.peer]]\nname = \"t\"\n\
         address = \"198.18.1.0\"\nremote_asn = 65001\n[[service]]\nname = \"{SERVICE}\"\n\
         prefixes = [\"127.0.0.1/32\"]\n[service.mysql]\nsocket = {:?}\nuser = \"{user}\"\n\
         interval_ms = 50\ntimeout_ms = {TIMEOUT_MS}\nrise = 1\nfall = 1\n\
         term_table = \"primaryd.term\"\n",
        db.socket.display().to_string()
    );
    config::parse(&text).expect("config").services.remove(0)
}

/// One service's health task, started as the daemon starts it.
struct Checked {
    control: HealthServices,
    task: tokio::task::JoinHandle<()>,
    events: mpsc::Receiver<HealthEvent>,
    status: watch::Receiver<ServiceStatus>,
    state_dir: tempfile::TempDir,
}

impl Checked {
    fn start(rt: &Runtime, db: &MariaDb) -> Checked {
        let _guard = rt.enter();
        let state_dir = tempfile::tempdir().expect("state dir");
        let control = HealthServices::new(state_dir.path());
        // Events come only on changes: a test never fills this.
        let (tx, events) = mpsc::channel(1024);
        let password = Some(db.check_credentials().1.to_string());
        let task = rt.spawn(control.add(0, &service(db), password, tx));
        let status = control.subscribe(SERVICE).expect("service registered");
        Checked {
            control,
            task,
            events,
            status,
            state_dir,
        }
    }

    /// Waits until the published status satisfies `want`; panics with the last status.
    #[track_caller]
    fn wait(
        &mut self,
        rt: &Runtime,
        what: &str,
        want: impl FnMut(&ServiceStatus) -> bool,
    ) -> ServiceStatus {
        let rx = &mut self.status;
        let found = match rt.block_on(async { tokio::time::timeout(STEP, rx.wait_for(want)).await })
        {
            Ok(Ok(s)) => Some(s.clone()),
            Ok(Err(_)) => panic!("the task ended while waiting until {what}"),
            Err(_) => None,
        };
        found.unwrap_or_else(|| {
            panic!(
                "timed out after {STEP:?} waiting until {what}; status: {:#?}",
                *rx.borrow()
            )
        })
    }

    /// Waits until the facts satisfy `want` (and returns them).
    #[track_caller]
    fn wait_facts(
        &mut self,
        rt: &Runtime,
        what: &str,
        mut want: impl FnMut(&ServerFacts) -> bool,
    ) -> ServerFacts {
        let s = self.wait(rt, what, |s| s.facts.as_ref().is_some_and(&mut want));
        s.facts.expect("facts")
    }

    /// Lets `n` more checks complete (each publishes a new last check time).
    #[track_caller]
    fn checks(&mut self, rt: &Runtime, n: usize) {
        for _ in 0..n {
            let before = self.status.borrow().last_check.as_ref().map(|c| c.at);
            self.wait(rt, "one more check", |s| {
                s.last_check.as_ref().map(|c| c.at) != before
            });
        }
    }

    /// The next event, waiting up to [`STEP`].
    #[track_caller]
    fn next_event(&mut self, rt: &Runtime) -> HealthEvent {
        rt.block_on(async { tokio::time::timeout(STEP, self.events.recv()).await })
            .expect("an event in time")
            .expect("task alive")
    }

    /// Events sent so far and not yet read.
    fn pending_events(&mut self) -> Vec<HealthEvent> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }

    /// Stops the task, as a daemon that exits (the next `start` is a fresh daemon).
    fn stop(self, rt: &Runtime) {
        self.task.abort();
        let _ = rt.block_on(self.task);
        drop(self.state_dir);
    }
}

fn known(own: Option<u64>, newest: Option<(u64, u32)>) -> TermState {
    TermState::Known { own, newest }
}

fn up(s: &ServiceStatus) -> bool {
    s.health == Health::Up
}

/// A fresh table gets term 1 once. A daemon restart and a server restart (its start time
/// moves, seen in the facts) leave it alone: neither saw the server as a non-primary. Facts
/// are sent with the health events, and not again while nothing changes.
#[test]
fn term_written_once_then_kept_over_daemon_and_server_restarts() {
    let rt = runtime();
    let mut net = Net::new();
    let db = net.add_mariadb(MariaDbOpts::primary());
    db.create_term_table();

    let mut a = Checked::start(&rt, &db);
    let first = a.next_event(&rt);
    assert_eq!(first.health, Health::Up, "{first:?}");
    let facts = first
        .facts
        .expect("the first answer's facts come with the event");
    assert_eq!(facts.server_id, 1);
    assert_eq!(facts.term, known(Some(1), Some((1, 1))));
    assert_eq!(db.term_rows(SERVICE), [(1, 1)]);
    // The start time is the server's: now minus Uptime, within the 2 s tolerance.
    let uptime = Duration::from_secs(db.uptime());
    let age = SystemTime::now().duration_since(facts.started_at).unwrap();
    assert!(
        age.abs_diff(uptime) <= Duration::from_secs(3),
        "{age:?} vs {uptime:?}"
    );
    // Nothing changes: no more events, however many checks run.
    a.checks(&rt, 10);
    assert!(a.pending_events().is_empty());
    assert_eq!(a.status.borrow().facts.as_ref(), Some(&facts));

    // Daemon restart: a new task reads term 1 and writes nothing.
    a.stop(&rt);
    let mut b = Checked::start(&rt, &db);
    let ev = b.next_event(&rt);
    assert_eq!(ev.health, Health::Up);
    assert_eq!(ev.facts.as_ref().map(|f| &f.term), Some(&facts.term));
    b.checks(&rt, 5);
    assert_eq!(db.term_rows(SERVICE), [(1, 1)]);

    // Server restart, at least 3 s after it started so the start time visibly moves.
    testkit::wait_until(STEP, "Uptime >= 3 s", || db.uptime() >= 3);
    db.kill9();
    let down = b.next_event(&rt);
    assert_eq!(down.health, Health::Down, "{down:?}");
    db.start();
    let back = b.next_event(&rt);
    assert_eq!(back.health, Health::Up, "{back:?}");
    let after = back.facts.expect("facts");
    assert!(
        after.started_at > facts.started_at + Duration::from_secs(2),
        "started_at {:?} -> {:?}",
        facts.started_at,
        after.started_at
    );
    assert!(after.differs(&facts));
    assert_eq!(after.term, known(Some(1), Some((1, 1))), "not rewritten");
    b.checks(&rt, 5);
    assert_eq!(db.term_rows(SERVICE), [(1, 1)]);
    assert!(b.pending_events().is_empty());
    b.stop(&rt);
}

/// A GTID replica holds the primary's term row. While it replicates its facts say a newer
/// promotion exists elsewhere; promoted as orchestrator does it while its task runs, it
/// writes newest + 1 under its own server_id. A newer row by another server then shows in
/// the old primary's facts, with an event although its health does not change.
#[test]
fn promoted_replica_writes_newest_plus_one() {
    let rt = runtime();
    let mut net = Net::new();
    let db1 = net.add_mariadb(MariaDbOpts::primary());
    let db2 = net.add_mariadb(MariaDbOpts {
        port: 3307,
        server_id: 2,
        ..MariaDbOpts::primary()
    });
    db1.create_term_table();
    let mut old = Checked::start(&rt, &db1);
    old.wait_facts(&rt, "db1 wrote term 1", |f| {
        f.term == known(Some(1), Some((1, 1)))
    });
    db2.replicate_from(&db1);
    testkit::wait_until(STEP, "the term row replicated to db2", || {
        db2.query("SHOW TABLES FROM primaryd LIKE 'term'").len() == 1
            && db2.term_rows(SERVICE) == [(1, 1)]
    });

    let mut new = Checked::start(&rt, &db2);
    let s = new.wait(&rt, "db2 down as a replica, its facts read", |s| {
        s.health == Health::Down && s.facts.is_some()
    });
    assert!(s.reason.contains("replication"), "{}", s.reason);
    let facts = s.facts.expect("facts");
    assert_eq!(facts.server_id, 2);
    assert_eq!(facts.term, known(None, Some((1, 1))));
    assert_eq!(facts.term.newer_elsewhere(2), Some((1, 1)));
    new.checks(&rt, 3);
    assert_eq!(db2.term_rows(SERVICE), [(1, 1)], "a replica writes nothing");

    db2.sql("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0");
    let s = new.wait(&rt, "db2 promoted, up with term 2", |s| {
        up(s)
            && s.facts
                .as_ref()
                .is_some_and(|f| f.term == known(Some(2), Some((2, 2))))
    });
    assert_eq!(s.facts.unwrap().term.newer_elsewhere(2), None);
    assert_eq!(db2.term_rows(SERVICE), [(1, 1), (2, 2)]);
    new.checks(&rt, 5);
    assert_eq!(db2.term_rows(SERVICE), [(1, 1), (2, 2)], "written once");

    // db1 does not replicate from db2, so it still believes term 1 is the newest ...
    assert_eq!(
        old.status.borrow().facts.as_ref().map(|f| f.term.clone()),
        Some(known(Some(1), Some((1, 1))))
    );
    let _ = old.pending_events();
    // ... until a newer row by another server arrives (here by hand).
    db1.sql(
        "INSERT INTO primaryd.term (service, term, server_id, promoted_at) \
         VALUES ('main', 5, 42, NOW(6))",
    );
    let ev = old.next_event(&rt);
    assert_eq!(ev.health, Health::Up, "the health did not change: {ev:?}");
    let f = ev.facts.expect("facts");
    assert_eq!(f.term, known(Some(1), Some((5, 42))));
    assert_eq!(f.term.newer_elsewhere(1), Some((5, 42)));
    old.checks(&rt, 3);
    assert_eq!(
        db1.term_rows(SERVICE),
        [(1, 1), (5, 42)],
        "db1 writes nothing"
    );
    old.stop(&rt);
    new.stop(&rt);
}

/// A missing privilege and a missing table are unreadable, with what to do; never "no
/// term". Once fixed, the empty table gets its first term.
#[test]
fn unreadable_term_table_says_why() {
    let rt = runtime();
    let mut net = Net::new();
    let db = net.add_mariadb(MariaDbOpts::primary());
    let mut c = Checked::start(&rt, &db);
    let unreadable = |f: &ServerFacts, what: &str| match &f.term {
        TermState::Unreadable(r) => r.contains(what),
        _ => false,
    };
    // Without any privilege on it the server does not say whether the table exists.
    let f = c.wait_facts(&rt, "no privilege: unreadable", |f| {
        unreadable(f, "GRANT SELECT, INSERT ON primaryd.term TO the check user")
    });
    assert_eq!(f.server_id, 1);
    match &f.term {
        TermState::Unreadable(r) => assert!(r.contains("ERROR 1142"), "{r}"),
        other => panic!("{other:?}"),
    }
    // The health check itself still decides health; the rules read the term.
    assert_eq!(c.status.borrow().health, Health::Up);

    db.grant_check_user("SELECT ON primaryd.*");
    c.wait_facts(&rt, "no table: unreadable", |f| {
        unreadable(f, "(create primaryd.term with the SQL in docs/health.md)")
    });

    db.sql(primaryd::health::facts::TERM_TABLE_SQL);
    let f = c.wait_facts(&rt, "SELECT only: the first term is refused", |f| {
        unreadable(f, "writing term 1 to primaryd.term failed")
    });
    assert!(matches!(&f.term, TermState::Unreadable(r) if r.contains("GRANT SELECT, INSERT")));
    assert!(db.term_rows(SERVICE).is_empty());

    db.grant_check_user("INSERT ON primaryd.term");
    c.wait_facts(&rt, "readable: the first term", |f| {
        f.term == known(Some(1), Some((1, 1)))
    });
    assert_eq!(db.term_rows(SERVICE), [(1, 1)]);
    c.stop(&rt);
}

/// Fencing: refused without the privilege (saying which), then read_only=1 and the next
/// check is down. An operator who makes the server writable again is, for the term, a
/// promotion this task witnessed. A hung server answers the fence with a timeout, on time.
#[test]
fn fence_sets_read_only_and_the_next_check_is_down() {
    let rt = runtime();
    let mut net = Net::new();
    let db = net.add_mariadb(MariaDbOpts::primary());
    db.create_term_table();
    let mut c = Checked::start(&rt, &db);
    c.wait_facts(&rt, "term 1", |f| f.term == known(Some(1), Some((1, 1))));
    assert!(up(&c.status.borrow()));

    let control = c.control.clone();
    let r = rt.block_on(control.fence(SERVICE, "test: no privilege yet"));
    match r {
        Err(FenceError::Failed(e)) => assert!(e.contains("READ_ONLY ADMIN"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(!db.read_only());
    assert_eq!(
        rt.block_on(control.fence("nope", "x")),
        Err(FenceError::UnknownService("nope".into()))
    );

    db.grant_check_user("READ_ONLY ADMIN ON *.*");
    rt.block_on(control.fence(SERVICE, "conflict: test"))
        .expect("fenced");
    assert!(db.read_only());
    let s = c.wait(&rt, "down after the fence", |s| s.health == Health::Down);
    assert_eq!(s.reason, "read_only=1");

    // Writable again by hand: a promotion of the same server run, so a new term.
    db.set_read_only(false);
    c.wait_facts(&rt, "term 2 after the witnessed promotion", |f| {
        f.term == known(Some(2), Some((2, 1)))
    });
    assert_eq!(db.term_rows(SERVICE), [(1, 1), (2, 1)]);

    // A hung server: the fence does not wait for the hung check, only for its own timeout.
    let pid = db.pid().expect("running") as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let start = Instant::now();
    let r = rt.block_on(control.fence(SERVICE, "conflict: hung"));
    let took = start.elapsed();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    assert_eq!(r, Err(FenceError::Timeout { ms: TIMEOUT_MS }));
    assert!(
        took < Duration::from_millis(TIMEOUT_MS * 3 / 2),
        "answered after {took:?}"
    );
    c.stop(&rt);
}
