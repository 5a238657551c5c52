//! How long the client's attempts waited during a failover (issue 12 point 5): no attempt in
//! the failover window may wait more than WAIT_BOUND_MS beyond the detection (for a hang:
//! beyond `timeout_ms`). The drills check it on a `pool` probe that writes beside the retry
//! writer (whose short timeouts would hide a black hole), or on the drill's own client when it
//! is a `cli` or `pool` one; the benchmark reports it per client profile.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::attempt::{acks_by, first_ack, Attempt};
use crate::clients::Client;
use crate::lab::Lab;
use crate::scenario::{Check, Event, Scenario, POLL};
use crate::util::wait_for;
use crate::writer::Writer;

/// The bound beyond the detection.
pub const WAIT_BOUND_MS: f64 = 100.0;
/// Writes the probe gets acknowledged by the primary before the fault.
const PROBE_WARM_ACKS: usize = 5;

/// The waits of the attempts in the failover window: from the fault to the first write the new
/// primary acknowledged (to the last attempt if none did).
#[derive(Debug, Clone, PartialEq)]
pub struct Waits {
    /// Attempts in the window.
    pub attempts: usize,
    /// The longest wait of one attempt, ms.
    pub longest_ms: f64,
    /// The most an attempt waited beyond `base`: its end minus the later of its start and the
    /// base (None without a base).
    pub beyond_ms: Option<f64>,
    /// The attempt that waited longest beyond the base (or longest, without one), described.
    pub worst: String,
}

/// `t0`: the fault (Unix ms); `base`: the detection, ms after the fault.
pub fn waits(attempts: &[Attempt], t0: f64, new: &str, base: Option<f64>) -> Option<Waits> {
    let end = first_ack(attempts, new)
        .map(|a| a.t_ms)
        .or_else(|| attempts.last().map(|a| a.t_ms))?;
    let window: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.t_ms >= t0 && a.start_ms <= end)
        .collect();
    let beyond = |a: &Attempt| base.map(|b| a.t_ms - a.start_ms.max(t0 + b));
    let worst = window.iter().copied().max_by(|a, b| match base {
        Some(_) => beyond(a)
            .unwrap_or(0.0)
            .total_cmp(&beyond(b).unwrap_or(0.0)),
        None => a.wait_ms().total_cmp(&b.wait_ms()),
    })?;
    let outcome = serde_json::to_value(&worst.outcome)
        .map(|v| v.to_string())
        .unwrap_or_default();
    Some(Waits {
        attempts: window.len(),
        longest_ms: window.iter().map(|a| a.wait_ms()).fold(0.0, f64::max),
        beyond_ms: base.map(|_| {
            window
                .iter()
                .filter_map(|a| beyond(a))
                .fold(f64::MIN, f64::max)
        }),
        worst: format!(
            "key {} from {:.1} to {:.1} ms: {outcome}",
            worst.key,
            worst.start_ms - t0,
            worst.t_ms - t0
        ),
    })
}

/// The detection the bound counts from, ms after the fault, and what it is: the old primary's
/// withdraw; for a hang the speaker's `timeout_ms` when known. None where the old host's speaker
/// cannot withdraw (isolate, daemon-crash, host-freeze: no RST is possible from a host that is
/// cut off or frozen, or whose daemon is dead).
pub fn detection(
    scenario: Scenario,
    events: &[Event],
    old: &str,
    timeout_ms: Option<f64>,
) -> Option<(f64, String)> {
    let withdraw = events
        .iter()
        .find(|e| e.event == "withdraw_sent" && e.node.as_deref() == Some(old))
        .and_then(|e| e.t_ms);
    match scenario {
        Scenario::Hang => timeout_ms
            .map(|t| (t, format!("timeout_ms {t:.0}")))
            .or_else(|| withdraw.map(|w| (w, "the withdraw".into()))),
        Scenario::Kill | Scenario::Demote | Scenario::Switchover => {
            withdraw.map(|w| (w, "the withdraw".into()))
        }
        _ => None,
    }
}

/// `[service.mysql] timeout_ms` of the node's bound primaryd.toml.
pub fn timeout_of(lab: &Lab, node: &str) -> Option<f64> {
    let n = lab.topo.node(node)?;
    let b = n
        .binds
        .iter()
        .find(|b| b.target == Path::new("/etc/primaryd/primaryd.toml"))?;
    let cfg: toml::Table = toml::from_str(&std::fs::read_to_string(&b.source).ok()?).ok()?;
    cfg.get("service")?
        .as_array()?
        .first()?
        .get("mysql")?
        .get("timeout_ms")?
        .as_integer()
        .map(|t| t as f64)
}

/// A `pool` client beside the drill's retry writer, its rows under `run = -run_id`, once it
/// has had PROBE_WARM_ACKS writes acknowledged by the old primary.
pub fn start_probe(lab: &Lab, app: &str, old: &str, run_id: i64, step: Duration) -> Result<Writer> {
    let ns = format!("/run/netns/{}", lab.netns(app));
    let probe = Writer::start(ns.into(), -run_id, Client::Pool)?;
    let warm = wait_for(step, POLL, || {
        (acks_by(&probe.snapshot(), old) >= PROBE_WARM_ACKS).then_some(())
    });
    if warm.is_none() {
        bail!("the pool probe cannot write through 192.0.2.10 to {old}");
    }
    Ok(probe)
}

/// The drill's check of the bound, on `attempts` (the probe's or the drill's own client's).
pub fn check(
    scenario: Scenario,
    events: &[Event],
    attempts: &[Attempt],
    t0: f64,
    old: &str,
    new: &str,
    timeout_ms: Option<f64>,
) -> Check {
    let name =
        format!("no client attempt waited more than {WAIT_BOUND_MS:.0} ms beyond the detection");
    let base = detection(scenario, events, old, timeout_ms);
    let w = waits(attempts, t0, new, base.as_ref().map(|b| b.0));
    let (ok, detail) = match (&base, &w) {
        (_, None) => (false, "no attempt in the failover window".to_string()),
        (None, Some(w)) => (
            true,
            format!(
                "not bounded in {} (no withdraw from the old host); longest wait {:.1} ms ({})",
                scenario.name(),
                w.longest_ms,
                w.worst
            ),
        ),
        (Some((b, what)), Some(w)) => {
            let beyond = w.beyond_ms.unwrap_or(0.0);
            (
                beyond <= WAIT_BOUND_MS,
                format!(
                    "{} attempts; detection ({what}) at {b:.1} ms; at most {beyond:.1} ms beyond \
                     it, longest wait {:.1} ms ({})",
                    w.attempts, w.longest_ms, w.worst
                ),
            )
        }
    };
    Check { name, ok, detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::Outcome;

    fn a(start: f64, end: f64, key: u64, outcome: Outcome) -> Attempt {
        Attempt {
            t_ms: end,
            start_ms: start,
            key,
            outcome,
            failure: None,
        }
    }

    fn ack(s: &str) -> Outcome {
        Outcome::Ack { server: s.into() }
    }

    fn failed() -> Outcome {
        Outcome::Failed { error: "x".into() }
    }

    #[test]
    fn the_wait_beyond_the_detection_counts_from_the_later_of_start_and_detection() {
        let t0 = 1000.0;
        let v = vec![
            a(900.0, 950.0, 1, ack("db1")),
            // In flight at the fault, answered 20 ms after the detection (at +80).
            a(990.0, 1100.0, 2, failed()),
            // Started after the detection, waited 150 ms: 150 beyond.
            a(1110.0, 1260.0, 2, failed()),
            a(1270.0, 1275.0, 2, ack("db2")),
            // After the window.
            a(1280.0, 5000.0, 3, failed()),
        ];
        let w = waits(&v, t0, "db2", Some(80.0)).unwrap();
        assert_eq!(w.attempts, 3);
        assert_eq!(w.longest_ms, 150.0);
        assert_eq!(w.beyond_ms, Some(150.0));
        assert!(w.worst.starts_with("key 2 from 110.0"), "{}", w.worst);
        // A later detection: the in-flight attempt is within it, the later one still 150.
        let w = waits(&v[..4], t0, "db2", Some(200.0)).unwrap();
        assert_eq!(w.beyond_ms, Some(60.0));
        assert_eq!(waits(&v, t0, "db2", None).unwrap().beyond_ms, None);
        assert!(waits(&[], t0, "db2", None).is_none());
    }

    #[test]
    fn a_hang_counts_from_the_timeout_the_others_from_the_withdraw() {
        let ev = vec![Event {
            event: "withdraw_sent".into(),
            t_ms: Some(42.0),
            node: Some("db1".into()),
            detail: String::new(),
        }];
        assert_eq!(
            detection(Scenario::Kill, &ev, "db1", Some(300.0))
                .unwrap()
                .0,
            42.0
        );
        assert_eq!(
            detection(Scenario::Hang, &ev, "db1", Some(300.0))
                .unwrap()
                .0,
            300.0
        );
        assert_eq!(detection(Scenario::Hang, &ev, "db1", None).unwrap().0, 42.0);
        assert!(detection(Scenario::Isolate, &ev, "db1", Some(300.0)).is_none());
        assert!(detection(Scenario::Kill, &ev, "db2", None).is_none());
    }
}
