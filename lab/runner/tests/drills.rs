//! End to end with the runner: the whole lab (FRR spine and ToR, BIRD ToR, three MariaDB hosts
//! with primaryd, a client) built from lab/primaryd.clab.yml as network namespaces, one drill per
//! test. Each drill must end with writes landing on the new primary, no key acknowledged by two
//! servers, and the old primary's route gone from every router (the runner checks these and
//! the test asserts on its JSON report). Run as root; the tests fail (never skip) otherwise.
//!
//! Labs are named `pt{pid}x{n}` (namespaces `pt{pid}x{n}-db1`, ...), so they never collide with
//! a developer's `plab` or with testkit's `pd...` namespaces. One lab at a time (a lock),
//! each removed by `down` when its test ends, also on panic; a lab whose test process was
//! killed is removed by the next run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::LAB_STATE_ROOT as STATE_ROOT;

const RUNNER: &str = env!("CARGO_BIN_EXE_primaryd-lab");

static LOCK: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn require_root() {
    testkit::require_root("the lab tests build network namespaces and start FRR, BIRD and MariaDB");
}

fn runner(id: &str) -> Command {
    testkit::lab_runner(RUNNER, id)
}

fn netns_of(id: &str) -> Vec<String> {
    testkit::netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{id}-")))
        .collect()
}

/// Labs of test processes that no longer exist (killed before their Drop ran).
fn remove_stale_labs() {
    let mut ids = std::collections::BTreeSet::new();
    for n in testkit::netns_list() {
        if let Some(id) = n.split('-').next() {
            ids.insert(id.to_string());
        }
    }
    if let Ok(entries) = std::fs::read_dir(STATE_ROOT) {
        for e in entries.flatten() {
            ids.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    for id in ids {
        let Some(pid) = id
            .strip_prefix("pt")
            .and_then(|r| r.split_once('x'))
            .and_then(|(p, _)| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("removing leftover lab {id} (its test process {pid} is gone)");
            let _ = runner(&id).arg("down").status();
        }
    }
}

/// A lab for one test; `down` when dropped, whatever happened.
struct Lab {
    id: String,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl Lab {
    fn new() -> Lab {
        require_root();
        let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        remove_stale_labs();
        let id = format!(
            "pt{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        Lab { id, _guard: guard }
    }

    fn up(&self) {
        self.up_with(&[]);
    }

    fn up_with(&self, args: &[&str]) {
        let t = Instant::now();
        let out = runner(&self.id).arg("up").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "primaryd-lab up failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("lab {} up in {:.1?}", self.id, t.elapsed());
    }

    fn drill(&self, scenario: &str) -> Value {
        self.drill_with(scenario, &[])
    }

    fn drill_with(&self, scenario: &str, args: &[&str]) -> Value {
        let json = std::env::temp_dir().join(format!("{}-{scenario}.json", self.id));
        let out = runner(&self.id)
            .args(["drill", scenario, "--json"])
            .arg(&json)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_else(|e| {
                panic!(
                    "drill {scenario} wrote no report ({e}); exit {}",
                    out.status
                )
            }))
            .unwrap();
        let _ = std::fs::remove_file(&json);
        if !out.status.success() {
            self.dump();
            panic!(
                "drill {scenario} failed ({}): see the timeline above",
                out.status
            );
        }
        report
    }

    /// The nodes' logs, for a failed drill.
    fn dump(&self) {
        let nodes = Path::new(STATE_ROOT).join(&self.id).join("nodes");
        for n in ["db1", "db2", "tor1", "tor2", "spine1"] {
            let log = nodes.join(n).join("console.log");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.contains("KEEPALIVE")).collect();
            eprintln!(
                "----- {n} console -----\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = runner(&self.id).arg("down").output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("down {}: {}", self.id, String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("down {}: {e}", self.id),
        }
        let left = netns_of(&self.id);
        if !left.is_empty() && !std::thread::panicking() {
            panic!("down left namespaces behind: {left:?}");
        }
    }
}

fn event<'a>(r: &'a Value, name: &str, node: Option<&str>) -> Option<&'a Value> {
    r["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == name && node.is_none_or(|n| e["node"].as_str() == Some(n)))
}

fn t_of(r: &Value, name: &str, node: Option<&str>) -> Option<f64> {
    event(r, name, node).and_then(|e| e["t_ms"].as_f64())
}

/// What every drill must show, whatever broke.
fn assert_failover(r: &Value, scenario: &str) {
    assert_failover_from(r, scenario, "db1");
}

fn assert_failover_from(r: &Value, scenario: &str, want_old: &str) {
    assert_eq!(r["scenario"], scenario);
    assert_eq!(r["ok"], true, "{r:#}");
    let (old, new) = (
        r["old_primary"].as_str().unwrap(),
        r["new_primary"].as_str().unwrap(),
    );
    assert_eq!(old, want_old);
    assert_ne!(new, old);
    let checks = r["checks"].as_array().unwrap();
    for want in [
        format!("{old}'s routes gone from every router"),
        // Both address families: the IPv6 /128 goes over the same sessions.
        format!("every router routes the service (192.0.2.10/32, 2001:db8::10/128) to {new}"),
        format!("writes land on {new}"),
        "no key acknowledged by two different servers".to_string(),
    ] {
        let c = checks
            .iter()
            .find(|c| c["name"] == want.as_str())
            .unwrap_or_else(|| panic!("no check {want:?} in {checks:#?}"));
        assert_eq!(c["ok"], true, "{c}");
    }
    // The client's own record: after the new primary's first acknowledgement, only it acks.
    let attempts = r["attempts"].as_array().unwrap();
    let first_new = attempts
        .iter()
        .position(|a| a["outcome"] == "ack" && a["server"] == new)
        .expect("a write acknowledged by the new primary");
    assert!(attempts[first_new..]
        .iter()
        .all(|a| a["outcome"] != "ack" || a["server"] == new));
    assert!(r["writes"]["acked"][new].as_u64().unwrap() > 0);
    assert!(r["writes"]["acked"][old].as_u64().unwrap() > 0);
    // Each router lost the old route and got the new one, in that order, after the fault.
    for router in ["spine1", "tor1", "tor2"] {
        let gone = t_of(r, "route_gone", Some(router));
        let new_route = t_of(r, "route_new", Some(router))
            .unwrap_or_else(|| panic!("{router}: no new route in {r:#}"));
        if let Some(g) = gone {
            assert!(
                g >= 0.0 && g <= new_route,
                "{router}: gone {g} new {new_route}"
            );
        }
    }
    let outage = r["write_outage_ms"].as_f64().expect("outage measured");
    let fault = t_of(r, "fault_injected", None).unwrap();
    assert_eq!(fault, 0.0);
    let first = t_of(r, "first_ack_new_primary", None).unwrap();
    let promoted = t_of(r, "promotion_done", None).unwrap();
    assert!(
        first >= promoted,
        "first ack {first} before promotion {promoted}"
    );
    eprintln!("{scenario}: write outage {outage:.1} ms");
}

/// The daemon itself reported the failure and withdrew (the scenarios where it can).
fn assert_daemon_withdrew(r: &Value) {
    let old = r["old_primary"].as_str().unwrap();
    let down = t_of(r, "service_down", Some(old)).expect("service down in primaryd's log");
    let withdraw = t_of(r, "withdraw_sent", Some(old)).expect("withdraw in primaryd's log");
    let gone = t_of(r, "route_gone", Some("tor1")).expect("route gone at tor1");
    assert!(
        0.0 <= down && down <= withdraw && withdraw <= gone,
        "{down} {withdraw} {gone}"
    );
    let new = r["new_primary"].as_str().unwrap();
    assert!(
        t_of(r, "announce_sent", Some(new)).is_some(),
        "no announce by {new}"
    );
}

#[test]
fn drill_kill() {
    let lab = Lab::new();
    lab.up();
    let r = lab.drill("kill");
    assert_failover(&r, "kill");
    assert_daemon_withdrew(&r);
}

#[test]
fn drill_demote() {
    let lab = Lab::new();
    lab.up();
    let r = lab.drill("demote");
    assert_failover(&r, "demote");
    assert_daemon_withdrew(&r);
    assert!(r["writes"]["lost_acked_keys"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn drill_switchover() {
    let lab = Lab::new();
    lab.up();
    let r = lab.drill("switchover");
    assert_failover(&r, "switchover");
    assert_daemon_withdrew(&r);
    assert!(r["writes"]["lost_acked_keys"]
        .as_array()
        .unwrap()
        .is_empty());
    let c = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "db1 replicates from db2")
        .expect("the old primary replicates from the new one");
    assert_eq!(c["ok"], true);
}

#[test]
fn drill_hang() {
    let lab = Lab::new();
    lab.up();
    let r = lab.drill("hang");
    assert_failover(&r, "hang");
    assert_daemon_withdrew(&r);
}

#[test]
fn drill_isolate() {
    let lab = Lab::new();
    lab.up();
    let r = lab.drill("isolate");
    assert_failover(&r, "isolate");
}

#[test]
fn drill_daemon_crash() {
    let lab = Lab::new();
    lab.up();
    let r = lab.drill("daemon-crash");
    assert_failover(&r, "daemon-crash");
    // Fenced, so a restarted daemon could not announce it again.
    assert!(event(&r, "old_primary_fenced", Some("db1")).is_some());
}

#[test]
fn drill_host_freeze() {
    let lab = Lab::new();
    lab.up();
    let r = lab.drill("host-freeze");
    assert_failover(&r, "host-freeze");
    // Nobody withdrew: the frozen host's ToR found it silent by BFD (100 ms x 3), well before
    // its 3 s hold timer. The bound is generous (CI runs labs side by side); the figures are
    // the benchmark's (docs/benchmarks.md, "host loss").
    assert!(t_of(&r, "withdraw_sent", Some("db1")).is_none());
    let gone = t_of(&r, "route_gone", Some("tor1")).expect("route gone at tor1");
    assert!(gone < 1500.0, "route gone at tor1 after {gone} ms");
}

/// A split-brain drill (splitbrain.rs): the failover itself, then what the old primary did.
fn assert_split_brain(r: &Value, scenario: &str, old: &str) {
    assert_failover_from(r, scenario, old);
    let new = r["new_primary"].as_str().unwrap();
    let check = |name: String| {
        let c = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no check {name:?} in {:#}", r["checks"]));
        assert_eq!(c["ok"], true, "{c}");
        c["detail"].as_str().unwrap().to_string()
    };
    check(format!(
        "every router's BGP table has {old}'s marked path (term, router id)"
    ));
    let kept = check(format!(
        "no BGP table keeps a path to {old} after {new}'s announce"
    ));
    check(format!(
        "{old} says why it does not announce (conflict or held)"
    ));
    check(format!("{old} logged the conflict (event=conflict)"));
    check(format!("{old} rejoined as a replica of {new}"));
    // The conflict is on the timeline, after the new primary's announce, and the old host's
    // own view says so.
    let announce = t_of(r, "announce_sent", Some(new)).expect("announce sent");
    let conflict = t_of(r, "conflict", Some(old)).expect("the conflict on the timeline");
    assert!(
        conflict > announce,
        "conflict {conflict} before announce {announce}"
    );
    let detail = event(r, "conflict", Some(old)).unwrap()["detail"]
        .as_str()
        .unwrap();
    assert!(
        detail.contains("conflict: 192.0.2.10/32 also announced by"),
        "{detail}"
    );
    let view = r["old_primary_view"]
        .as_str()
        .expect("the old primary's view");
    assert!(view.contains("conflict") || view.contains("held"), "{view}");
    assert!(t_of(r, "old_refuses", Some(old)).is_some());
    // Every router's table was read, both tables of every router lost the old path.
    for router in ["spine1", "tor1", "tor2"] {
        assert!(kept.contains(router), "{kept}");
        assert!(event(r, "bgp_new_path", Some(router)).is_some_and(|e| !e["t_ms"].is_null()));
    }
    eprintln!("{scenario} from {old}: {kept}");
}

/// The BIRD ToR's side: db2 (behind tor2) becomes the primary first, by a switchover drill.
fn from_db2(lab: &Lab) {
    let r = lab.drill_with("switchover", &["--to", "db2"]);
    assert_failover(&r, "switchover");
}

#[test]
fn drill_restart_then_the_lab_drills_again() {
    let lab = Lab::new();
    lab.up();
    let r = lab.drill("restart");
    assert_split_brain(&r, "restart", "db1");
    let up = t_of(&r, "old_server_answers", Some("db1")).expect("db1 came back");
    assert!(up > t_of(&r, "first_ack_new_primary", Some("db2")).unwrap());
    // The lab is left ready for another drill: db1, deposed and rejoined as a replica, is
    // promoted by the next failover and announces again (a new term, above the one that
    // deposed it).
    let r = lab.drill("kill");
    assert_failover_from(&r, "kill", "db2");
    assert_eq!(r["new_primary"], "db1");
}

#[test]
fn drill_restart_bird_tor() {
    let lab = Lab::new();
    lab.up();
    from_db2(&lab);
    let r = lab.drill("restart");
    assert_split_brain(&r, "restart", "db2");
}

#[test]
fn drill_heal() {
    let lab = Lab::new();
    lab.up();
    let r = lab.drill("heal");
    assert_split_brain(&r, "heal", "db1");
    // Its session came back before the conflict: the routes it received said no.
    let session = t_of(&r, "old_session_up", Some("db1")).expect("session back");
    assert!(session < t_of(&r, "conflict", Some("db1")).unwrap());
}

#[test]
fn drill_heal_bird_tor() {
    let lab = Lab::new();
    lab.up();
    from_db2(&lab);
    let r = lab.drill("heal");
    assert_split_brain(&r, "heal", "db2");
}

/// The figure (new announce -> old path gone from every BGP table) is the benchmark's; the
/// drill's bound is generous.
fn assert_double_promote(r: &Value, old: &str) {
    assert_split_brain(r, "double-promote", old);
    let new = r["new_primary"].as_str().unwrap();
    let announce = t_of(r, "announce_sent", Some(new)).unwrap();
    let gone = t_of(r, "bgp_old_gone_everywhere", None).expect("old path gone everywhere");
    assert!(gone > announce, "gone {gone}, announce {announce}");
    // The old primary withdrew by itself, right after it saw the newer term.
    let conflict = t_of(r, "conflict", Some(old)).unwrap();
    let withdraw = t_of(r, "withdraw_sent", Some(old)).expect("withdraw sent");
    assert!(
        conflict <= withdraw && withdraw - conflict < 50.0,
        "{conflict} {withdraw}"
    );
    eprintln!(
        "double-promote from {old}: old path gone {:.1} ms after the announce",
        gone - announce
    );
}

#[test]
fn drill_double_promote() {
    let lab = Lab::new();
    lab.up();
    let r = lab.drill("double-promote");
    assert_double_promote(&r, "db1");
}

#[test]
fn drill_double_promote_bird_tor_json_logs() {
    // primaryd logging JSON: the drill reads the conflict from its structured fields.
    let lab = Lab::new();
    lab.up_with(&["--log-format", "json"]);
    from_db2(&lab);
    let r = lab.drill("double-promote");
    assert_double_promote(&r, "db2");
}

#[test]
fn down_cleans_up_after_a_runner_killed_during_up() {
    let lab = Lab::new();
    let mut up = runner(&lab.id)
        .arg("up")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has built part of the lab: some namespaces and mounts exist.
    let start = Instant::now();
    while netns_of(&lab.id).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "up built no namespaces"
        );
        assert!(
            up.try_wait().unwrap().is_none(),
            "up ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    up.kill().unwrap();
    up.wait().unwrap();
    let dir = format!("{STATE_ROOT}/{}", lab.id);
    assert!(Path::new(&dir).exists());
    assert!(!netns_of(&lab.id).is_empty());

    let out = runner(&lab.id).arg("down").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(netns_of(&lab.id), Vec::<String>::new());
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
    assert_eq!(testkit::mounts_below(Path::new(&dir)), Vec::<String>::new());

    // And once more after a complete `up` whose runner is gone: the daemons are killed too.
    lab.up();
    let pids: Vec<u32> = netns_of(&lab.id)
        .iter()
        .flat_map(|n| testkit::netns_pids(n))
        .collect();
    assert!(pids.len() >= 10, "{pids:?}");
    let out = runner(&lab.id).arg("down").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in pids {
        // Gone, or a zombie its new parent has not reaped yet.
        assert!(
            !testkit::alive(p),
            "process {p} ({}) survived down",
            testkit::comm(p)
        );
    }
    assert!(netns_of(&lab.id).is_empty() && !Path::new(&dir).exists());
    // down of a lab that does not exist is fine.
    assert!(runner(&lab.id).arg("down").status().unwrap().success());
}
