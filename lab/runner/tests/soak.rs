//! A short chaos soak (issue 17): `primaryd-lab soak --minutes 3 --seed 17` on one lab, a
//! random fault (every drill, router and daemon faults) every few seconds with its recovery,
//! while app1 writes. The runner checks the invariants after every step and the writes at the
//! end; the test asserts on its JSON summary. The lab is named `pt{pid}x0` like
//! tests/drills.rs's (whose stale-lab cleanup covers it) and removed when the test ends, also
//! on panic. Run as root; the test fails (never skips) otherwise.

use serde_json::Value;
use testkit::RunnerLab;

const RUNNER: &str = env!("CARGO_BIN_EXE_primaryd-lab");

#[test]
fn three_minutes_of_faults_lose_nothing_they_must_not() {
    testkit::require_root("the soak builds the lab's network namespaces");
    let lab = RunnerLab::new(RUNNER, format!("pt{}x0", std::process::id()));
    let json = std::env::temp_dir().join(format!("{}-soak.json", lab.id));
    let out = lab
        .command()
        .args(["soak", "--minutes", "3", "--seed", "17", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let s: Value = serde_json::from_str(
        &std::fs::read_to_string(&json)
            .unwrap_or_else(|e| panic!("the soak wrote no summary ({e}): {}", out.status)),
    )
    .unwrap();
    let _ = std::fs::remove_file(&json);
    assert!(out.status.success(), "the soak failed: see above");
    assert_eq!(s["ok"], true, "{}", s["violations"]);
    assert_eq!(s["seed"], 17);
    let steps = s["steps"].as_array().unwrap();
    assert!(steps.len() >= 8, "only {} steps in 3 minutes", steps.len());
    assert!(steps.iter().all(|st| st["ok"] == true));
    let kinds = s["faults"].as_object().unwrap();
    assert!(kinds.len() >= 6, "too few kinds of fault: {kinds:?}");
    let w = &s["writes"];
    assert!(w["acknowledged"].as_u64().unwrap() > 1000, "{w}");
    assert_eq!(w["lost"].as_array().unwrap().len(), 0, "{w}");
    assert_eq!(w["two_servers"].as_array().unwrap().len(), 0, "{w}");
    assert!(text.contains("soak: PASSED"), "{text}");
}
