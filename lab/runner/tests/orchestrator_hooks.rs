//! orchestrator's hooks in the lab: `primaryd-lab bench-hook --runs 1` (a takeover with the
//! post-promotion hook and one without, back and forth) and `primaryd-lab orchestrator-drill`
//! (aborted takeover, graceful takeover, aborted failover, failover), both running the hook
//! script the package ships, on one lab, removed when the test ends (also on panic). The lab
//! is named `pt{pid}x0` like tests/drills.rs's, whose stale-lab cleanup covers it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use testkit::{RunnerLab, LAB_STATE_ROOT};

const RUNNER: &str = env!("CARGO_BIN_EXE_primaryd-lab");

fn ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hooks_follow_takeovers_and_failovers_and_abort_when_they_must() {
    testkit::require_root("the lab needs network namespaces");
    let lab = RunnerLab::new(RUNNER, format!("pt{}x0", std::process::id()));
    ok(lab.command().arg("up"), "primaryd-lab up");
    // The reports go to the lab's folder, which `down` removes.
    let dir = Path::new(LAB_STATE_ROOT).join(&lab.id);

    let bench = dir.join("bench.json");
    let table = ok(
        lab.command()
            .args(["bench-hook", "--runs", "1", "--json"])
            .arg(&bench),
        "bench-hook",
    );
    assert!(table.contains("with primaryctl check hook"), "{table}");
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&bench).unwrap()).unwrap();
    for k in ["with_hook_ms", "without_hook_ms"] {
        let v = b[k].as_array().unwrap();
        assert_eq!(v.len(), 1, "{b}");
        // After the promotion was asked for, never before (announces are looked for from then).
        assert!(v[0].as_f64().unwrap() > -50.0, "{b}");
    }
    assert_eq!(b["interval_ms"], 100, "the lab's check interval: {b}");

    let json = dir.join("drill.json");
    ok(
        lab.command()
            .args(["orchestrator-drill", "--json"])
            .arg(&json),
        "orchestrator-drill",
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["ok"], true, "{r:#}");
    let exits: Vec<(String, i64)> = r["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["args"][0].as_str().unwrap().to_string(),
                h["exit"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = [
        ("pre-graceful-takeover", 1),
        ("pre-graceful-takeover", 0),
        ("post-graceful-takeover", 0),
        ("pre-failover", 1),
        ("pre-failover", 0),
        ("post-promotion", 0),
    ]
    .map(|(a, e)| (a.to_string(), e))
    .to_vec();
    assert_eq!(exits, want, "{r:#}");
    let outputs: Vec<&str> = r["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["output"].as_str().unwrap())
        .collect();
    assert!(
        outputs[0].contains("aborting the takeover"),
        "{}",
        outputs[0]
    );
    assert!(
        outputs[2].contains("announced") && outputs[2].contains("undrained"),
        "{}",
        outputs[2]
    );
    assert!(
        outputs[3].contains("aborting the failover"),
        "{}",
        outputs[3]
    );
    assert!(outputs[4].contains("connect failed"), "{}", outputs[4]);
    assert!(
        outputs[5].contains("announces the service"),
        "{}",
        outputs[5]
    );
    assert!(r["checks"].as_array().unwrap().len() >= 12, "{r:#}");
}
