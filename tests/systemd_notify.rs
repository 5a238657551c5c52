//! primaryd under a fake systemd: the test binds the `$NOTIFY_SOCKET` datagram socket and
//! reads what a `Type=notify` unit would tell systemd. READY=1 comes once the control socket
//! answers; STATUS= follows what is announced; WATCHDOG=1 comes from the event loop at half
//! `$WATCHDOG_USEC`, and not for another process's `$WATCHDOG_PID`; SIGTERM sends STOPPING=1
//! and withdraws before exiting 0. (The suite's machine runs no systemd: the unit itself is
//! checked by `systemd-analyze verify` in tests/packaging.rs.)

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{run, Lab, MariaDbOpts, PrimarydOpts, SERVICE_PREFIX, STEP};

const PRIMARYCTL: &str = env!("CARGO_BIN_EXE_primaryctl");

struct Fake {
    sock: UnixDatagram,
}

impl Fake {
    fn bind(path: &Path) -> Fake {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Fake { sock }
    }

    /// The next message, if one comes within the read timeout.
    fn next(&self) -> Option<String> {
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Messages until one satisfies `want` (returned), within `within`.
    #[track_caller]
    fn until(
        &self,
        within: Duration,
        what: &str,
        want: impl Fn(&str) -> bool,
    ) -> (String, Vec<String>) {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(m) = self.next() {
                if want(&m) {
                    return (m, seen);
                }
                seen.push(m);
            }
        }
        panic!("no notification {what} within {within:?}; got {seen:?}");
    }
}

#[test]
fn ready_status_watchdog_and_stopping() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let notify = lab.dir().join("notify.sock");
    let fake = Fake::bind(&notify);
    let env_notify = format!("NOTIFY_SOCKET={}", notify.display());
    let config = lab.primaryd_config(&db, PrimarydOpts::default());
    let daemon = lab.start_primaryd_wrapped(&config, &["env", &env_notify, "WATCHDOG_USEC=400000"]);
    let socket = daemon.control_socket.clone().expect("harness socket");

    // READY=1, and the control socket answers from that moment on.
    let (ready, _) = fake.until(STEP, "READY=1", |m| m.lines().any(|l| l == "READY=1"));
    let out = run(Command::new(PRIMARYCTL)
        .arg("--socket")
        .arg(&socket)
        .args(["show", "services"]));
    assert!(
        out.status.success(),
        "primaryctl right after READY=1: {out:?}"
    );
    assert!(
        ready.contains("STATUS=announced: none; withdrawn: main ("),
        "{ready}"
    );

    // STATUS= follows the announcement.
    lab.wait_route(SERVICE_PREFIX, STEP);
    fake.until(STEP, "STATUS announced", |m| {
        m == "STATUS=announced: main; withdrawn: none"
    });

    // The loop kicks every 200 ms (half of 400 ms): several kicks within a second.
    let t = Instant::now();
    for _ in 0..4 {
        fake.until(Duration::from_secs(2), "WATCHDOG=1", |m| m == "WATCHDOG=1");
    }
    let four = t.elapsed();
    assert!(four < Duration::from_millis(1500), "4 kicks took {four:?}");

    // Demoted: the status says withdrawn, with the reason.
    db.set_read_only(true);
    fake.until(STEP, "STATUS withdrawn", |m| {
        m.starts_with("STATUS=announced: none; withdrawn: main (") && m.contains("read_only")
    });

    db.set_read_only(false);
    lab.wait_route(SERVICE_PREFIX, STEP);
    daemon.sigterm();
    let (stopping, _) = fake.until(STEP, "STOPPING=1", |m| m.starts_with("STOPPING=1"));
    assert!(stopping.contains("STATUS=stopping (SIGTERM)"), "{stopping}");
    assert!(daemon.wait_exit(STEP).success());
    lab.wait_no_route(SERVICE_PREFIX, STEP);
}

#[test]
fn no_watchdog_kicks_for_another_process() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let notify = lab.dir().join("notify.sock");
    let fake = Fake::bind(&notify);
    let env_notify = format!("NOTIFY_SOCKET={}", notify.display());
    let config = lab.primaryd_config(&db, PrimarydOpts::default());
    let daemon = lab.start_primaryd_wrapped(
        &config,
        &["env", &env_notify, "WATCHDOG_USEC=100000", "WATCHDOG_PID=1"],
    );
    let (_, _) = fake.until(STEP, "READY=1", |m| m.starts_with("READY=1"));
    lab.wait_route(SERVICE_PREFIX, STEP);
    // Anything sent while the route came up and after: never a kick.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        if let Some(m) = fake.next() {
            assert_ne!(m, "WATCHDOG=1");
        }
    }
    daemon.assert_running();
}
