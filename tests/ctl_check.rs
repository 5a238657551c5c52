//! `primaryctl check` against a running daemon (FRR ToR, MariaDB, primaryd) whose regular
//! checks are ten minutes apart, so only the requested check can move the route: a promotion
//! (read_only 1 -> 0) is announced, and the announce written to the ToR, before the answer
//! (exit 0, `rise` checks back to back); a demotion is withdrawn before it (exit 2); an
//! unknown service or a missing daemon is an error (exit 1).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::Value;
use testkit::{run, Lab, MariaDbOpts, Primaryd, PrimarydOpts, SERVICE_PREFIX, STEP};

const PRIMARYCTL: &str = env!("CARGO_BIN_EXE_primaryctl");

fn ctl(socket: &Path, args: &[&str]) -> Output {
    run(Command::new(PRIMARYCTL)
        .arg("--socket")
        .arg(socket)
        .args(args))
}

fn answer(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn socket(d: &Primaryd) -> &Path {
    d.control_socket.as_deref().expect("harness socket")
}

#[test]
fn check_announces_a_promotion_before_answering_and_withdraws_a_demotion() {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    db.set_read_only(true);
    let opts = PrimarydOpts {
        // Only the first scheduled check (at start) runs within the test.
        interval_ms: 600_000,
        rise: 3,
        ..PrimarydOpts::default()
    };
    let daemon = lab.start_primaryd(&db, opts);
    let sock = socket(&daemon);
    testkit::wait_until(STEP, "the control socket listens", || {
        ctl(sock, &["show", "services"]).status.success()
    });
    testkit::wait_until(STEP, "the first check saw read_only=1", || {
        daemon.ctl_json(&["show", "services"])[0]["last_result"] == "read_only=1"
    });
    testkit::wait_until(STEP, "tor1 established", || {
        daemon.ctl_json(&["show", "peers"])[0]["state"] == "Established"
    });
    assert!(lab.route_absent(SERVICE_PREFIX));

    // A check before the promotion: not announced, exit 2, the reason given.
    let out = ctl(sock, &["check", "main", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let a = answer(&out);
    assert_eq!(a[0]["passed"], false);
    assert_eq!(a[0]["result"], "read_only=1");
    assert_eq!(a[0]["announced"], false);

    // The promotion, then the hook's command: announced and sent to tor1 when it answers.
    db.set_read_only(false);
    let t = Instant::now();
    let out = ctl(sock, &["check", "main", "--json"]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let a = answer(&out);
    assert_eq!(a[0]["passed"], true, "{a}");
    assert_eq!(a[0]["result"], "writable primary");
    assert_eq!(a[0]["checks"], 3, "rise 3: three checks back to back: {a}");
    assert_eq!(a[0]["announced"], true);
    assert_eq!(a[0]["peers"][0]["peer"], "tor1");
    assert_eq!(a[0]["peers"][0]["advertised"], true, "{a}");
    eprintln!("check after the promotion answered in {took:.1?}");
    let sent = daemon.peer_log("tor1", "sending UPDATE");
    assert!(
        sent.iter().any(|l| l.contains("192.0.2.10/32")),
        "the UPDATE was written before the answer: {sent:?}"
    );
    lab.wait_route(SERVICE_PREFIX, STEP);

    // Human output: a table, the same exit status.
    let out = ctl(sock, &["check", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("SERVICE  CHECK"), "{text}");
    assert!(text.contains("main     passed  writable primary"), "{text}");
    assert!(
        text.contains("  tor1") && text.contains("advertised"),
        "{text}"
    );

    // A demotion: withdrawn when the answer comes (the regular check is minutes away).
    db.set_read_only(true);
    let out = ctl(sock, &["check", "main", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let a = answer(&out);
    assert_eq!(
        (a[0]["passed"].clone(), a[0]["announced"].clone()),
        (Value::Bool(false), Value::Bool(false))
    );
    lab.wait_no_route(SERVICE_PREFIX, STEP);

    // Errors: exit 1 with the reason on stderr.
    let out = ctl(sock, &["check", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no service named \"nope\""),
        "{out:?}"
    );
    let out = ctl(&lab.dir().join("absent.sock"), &["check", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    daemon.assert_running();
}
