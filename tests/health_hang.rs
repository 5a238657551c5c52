//! A hung server (SIGSTOP) is withdrawn `timeout_ms` after its last healthy answer, whatever
//! the phase of the check cycle (issue 12, point 3): the check that runs when it hangs ends at
//! the deadline counted from that answer, not `timeout_ms` after its own start. The server runs
//! in a lab's DB namespace ([`testkit::Net`], no routers); the health task runs in this process
//! and reaches it over its Unix socket. Everything goes away with the lab, also on failure.

use std::time::{Duration, SystemTime};

use primaryd::config::{self, ServiceConfig};
use primaryd::health::checker::Health;
use primaryd::health::services::HealthServices;
use primaryd::health::state::ServiceStatus;
use testkit::{MariaDb, MariaDbOpts, Net, STEP};
use tokio::sync::{mpsc, watch};

const INTERVAL_MS: u64 = 290;
const TIMEOUT_MS: u64 = 300;
/// Room for a loaded two-core machine between the deadline and the published Down. Before
/// this rule the Down came up to INTERVAL_MS + TIMEOUT_MS (590 ms) after the last answer.
const SLACK_MS: u64 = 150;
/// Hangs per run, each at its own phase of the cycle.
const ROUNDS: u64 = 8;

/// When the last healthy answer the status shows came.
fn healthy_at(s: &ServiceStatus) -> Option<SystemTime> {
    s.last_check
        .as_ref()
        .filter(|c| c.result.is_healthy())
        .map(|c| c.at)
}

fn service(db: &MariaDb) -> ServiceConfig {
    let (user, _) = db.check_credentials();
    let text = format!(
        "[bgp]\nasn = 65000\nrouter_id = \"198.19.0.1\"\n[[bgp.peer]]\nname = \"t\"\n\
         address = \"198.18.1.0\"\nremote_asn = 65001\n[[service]]\nname = \"main\"\n\
         prefixes = [\"127.0.0.1/32\"]\n[service.mysql]\nsocket = {:?}\nuser = \"{user}\"\n\
         interval_ms = {INTERVAL_MS}\ntimeout_ms = {TIMEOUT_MS}\nrise = 1\nfall = 1\n",
        db.socket.display().to_string()
    );
    config::parse(&text).expect("config").services.remove(0)
}

async fn wait(
    rx: &mut watch::Receiver<ServiceStatus>,
    what: &str,
    want: impl FnMut(&ServiceStatus) -> bool,
) -> ServiceStatus {
    let found = match tokio::time::timeout(STEP, rx.wait_for(want)).await {
        Ok(Ok(s)) => Some(s.clone()),
        Ok(Err(_)) => panic!("the task ended while waiting until {what}"),
        Err(_) => None,
    };
    found.unwrap_or_else(|| {
        panic!(
            "timed out waiting until {what}; status: {:#?}",
            *rx.borrow()
        )
    })
}

fn signal(db: &MariaDb, sig: libc::c_int) {
    let pid = db.pid().expect("mariadbd runs") as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid}");
}

#[test]
fn a_hung_server_is_withdrawn_timeout_after_its_last_healthy_answer() {
    let mut net = Net::new();
    let db = net.add_mariadb(MariaDbOpts::primary());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let state_dir = tempfile::tempdir().expect("state dir");
    let control = HealthServices::new(state_dir.path());
    let (tx, mut events) = mpsc::channel(1024);
    let password = Some(db.check_credentials().1.to_string());
    let task = {
        let _guard = rt.enter();
        rt.spawn(control.add(0, &service(&db), password, tx))
    };
    rt.spawn(async move { while events.recv().await.is_some() {} });
    let mut rx = control.subscribe("main").expect("service registered");

    // The hang lands at a different point of the check cycle each round, from right after a
    // healthy answer (where the old rule, the next check's own start + timeout, waited
    // longest) to just before the next check starts.
    let mut took_ms = Vec::new();
    for round in 0..ROUNDS {
        rt.block_on(wait(&mut rx, "up", |s| s.health == Health::Up));
        let before = rx.borrow().last_check.as_ref().map(|c| c.at);
        rt.block_on(wait(&mut rx, "a fresh healthy check", |s| {
            s.last_check
                .as_ref()
                .is_some_and(|c| Some(c.at) != before && c.result.is_healthy())
        }));
        // Not a wait for a condition: it places the fault in the cycle.
        std::thread::sleep(Duration::from_millis(INTERVAL_MS * round / ROUNDS));
        let mut answered = healthy_at(&rx.borrow());
        signal(&db, libc::SIGSTOP);
        // A check that answered between the reading above and the signal is the last answer.
        let s = rt.block_on(wait(&mut rx, "down", |s| {
            answered = answered.max(healthy_at(s));
            s.health == Health::Down
        }));
        signal(&db, libc::SIGCONT);
        let answered = answered.expect("a healthy answer before the hang");
        let took = s.since.duration_since(answered).unwrap_or_default();
        eprintln!(
            "round {round}: hung {} ms into the cycle: down {took:?} after the last healthy \
             answer ({}), timeout {TIMEOUT_MS} ms, interval {INTERVAL_MS} ms",
            INTERVAL_MS * round / ROUNDS,
            s.reason
        );
        assert!(
            s.reason
                .starts_with(&format!("check timed out after {TIMEOUT_MS} ms during ")),
            "{}",
            s.reason
        );
        took_ms.push(took.as_secs_f64() * 1000.0);
    }
    took_ms.sort_by(f64::total_cmp);
    let worst = took_ms[took_ms.len() - 1];
    eprintln!(
        "last healthy answer -> down over {ROUNDS} rounds: min {:.1} ms, p50 {:.1} ms, max \
         {worst:.1} ms (timeout {TIMEOUT_MS} ms)",
        took_ms[0],
        took_ms[took_ms.len() / 2]
    );
    assert!(
        worst < (TIMEOUT_MS + SLACK_MS) as f64,
        "withdrawn {worst:.1} ms after the last healthy answer (timeout {TIMEOUT_MS} ms)"
    );
    task.abort();
}
