//! A drill report to a benchmark sample: the metrics from the timeline's events, and the
//! client's waits.

use std::collections::BTreeMap;

use super::Sample;
use crate::clients::Client;
use crate::drill::{Event, Report, Scenario};
use crate::speaker::{CheckSettings, SpeakerKind};
use crate::topo::Topology;

/// Attempts that waited at least this long are kept in the sample (`long_attempts`).
const LONG_ATTEMPT_MS: f64 = 20.0;

/// Routers: (the ToR of a host, the spine).
fn tor_of(topo: &Topology, node: &str) -> String {
    topo.ifaces_of(node)
        .first()
        .and_then(|i| topo.peer_of(node, i))
        .map(|e| e.node.clone())
        .unwrap_or_default()
}

fn spine_of(topo: &Topology) -> String {
    topo.nodes
        .iter()
        .filter(|n| n.role.is_router())
        .find(|n| {
            topo.ifaces_of(&n.name).iter().all(|i| {
                topo.peer_of(&n.name, i)
                    .and_then(|e| topo.node(&e.node))
                    .is_some_and(|p| p.role.is_router())
            })
        })
        .map(|n| n.name.clone())
        .unwrap_or_default()
}

/// The events of a report, looked up by name and node.
struct Timeline<'a> {
    events: &'a [Event],
}

impl Timeline<'_> {
    fn ev(&self, name: &str, node: Option<&str>) -> Option<&Event> {
        self.events
            .iter()
            .find(|e| e.event == name && (node.is_none() || e.node.as_deref() == node))
    }

    fn t(&self, name: &str, node: Option<&str>) -> Option<f64> {
        self.ev(name, node).and_then(|e| e.t_ms)
    }

    /// Why an event has no time.
    fn why(&self, name: &str, node: Option<&str>) -> String {
        self.ev(name, node)
            .map(|e| format!("{name}: {}", e.detail))
            .unwrap_or_else(|| format!("{name}: no such event"))
    }
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).map(|(a, b)| b - a)
}

/// (metric, value, why it is missing) of the routing and the promotion.
fn route_values(
    r: &Report,
    tl: &Timeline,
    tors: (&str, &str),
    spine: &str,
) -> Vec<(&'static str, Option<f64>, String)> {
    let (old_tor, new_tor) = tors;
    let old = Some(r.old_primary.as_str());
    let new = Some(r.new_primary.as_str());
    let withdraw = tl.t("withdraw_sent", old);
    let gone_tor = tl.t("route_gone", Some(old_tor));
    let gone_spine = tl.t("route_gone", Some(spine));
    let p_done = tl.t("promotion_done", None);
    let both = |a: String, b: String| format!("{a}; {b}");
    vec![
        (
            "check_failed",
            tl.t("check_failed", old),
            tl.why("check_failed", old),
        ),
        ("detection", withdraw, tl.why("withdraw_sent", old)),
        (
            "routing_tor",
            diff(withdraw, gone_tor),
            both(
                tl.why("withdraw_sent", old),
                tl.why("route_gone", Some(old_tor)),
            ),
        ),
        (
            "routing_spine",
            diff(withdraw, gone_spine),
            both(
                tl.why("withdraw_sent", old),
                tl.why("route_gone", Some(spine)),
            ),
        ),
        (
            "withdrawn_tor",
            gone_tor,
            tl.why("route_gone", Some(old_tor)),
        ),
        (
            "withdrawn_spine",
            gone_spine,
            tl.why("route_gone", Some(spine)),
        ),
        (
            "announce_sent",
            diff(p_done, tl.t("announce_sent", new)),
            tl.why("announce_sent", new),
        ),
        (
            "announce_tor",
            diff(p_done, tl.t("route_new", Some(new_tor))),
            tl.why("route_new", Some(new_tor)),
        ),
        (
            "announce_spine",
            diff(p_done, tl.t("route_new", Some(spine))),
            tl.why("route_new", Some(spine)),
        ),
    ]
}

/// The outage, the promotion, the client's waits and the double-promote's own metrics.
fn client_values(
    r: &Report,
    tl: &Timeline,
    timeout_ms: f64,
) -> Vec<(&'static str, Option<f64>, String)> {
    let promotion = diff(
        tl.t("promotion_started", None),
        tl.t("promotion_done", None),
    );
    let mut v = vec![
        ("promotion", promotion, tl.why("promotion_done", None)),
        (
            "outage",
            r.write_outage_ms,
            "no write acknowledged by the new primary".into(),
        ),
        (
            "outage_beyond_promotion",
            r.write_outage_ms.zip(promotion).map(|(o, p)| o - p),
            "outage or promotion not measured".into(),
        ),
    ];
    let base = crate::waits::detection(r.scenario, &r.events, &r.old_primary, Some(timeout_ms));
    let w = crate::waits::waits(
        &r.attempts,
        r.fault_unix_ms,
        &r.new_primary,
        base.map(|b| b.0),
    );
    v.push((
        "longest_wait",
        w.as_ref().map(|w| w.longest_ms),
        "no attempt in the failover window".into(),
    ));
    v.push((
        "wait_beyond_detection",
        w.and_then(|w| w.beyond_ms),
        "no detection by the old host's speaker (or no attempt)".into(),
    ));
    if r.scenario == Scenario::DoublePromote {
        let (old, new) = (Some(r.old_primary.as_str()), Some(r.new_primary.as_str()));
        let announce = tl.t("announce_sent", new);
        v.push((
            "old_path_gone",
            diff(announce, tl.t("bgp_old_gone_everywhere", None)),
            format!(
                "{}; {}",
                tl.why("announce_sent", new),
                tl.why("bgp_old_gone_everywhere", None)
            ),
        ));
        v.push((
            "old_sees_new",
            diff(announce, tl.t("conflict", old)),
            format!(
                "{}; {}",
                tl.why("announce_sent", new),
                tl.why("conflict", old)
            ),
        ));
    }
    v
}

/// The attempts in the failover window that waited LONG_ATTEMPT_MS or more.
fn long_attempts(r: &Report) -> Vec<(f64, f64, String)> {
    let t0 = r.fault_unix_ms;
    r.attempts
        .iter()
        .filter(|a| a.t_ms >= t0 && a.wait_ms() >= LONG_ATTEMPT_MS)
        .map(|a| {
            let what = match (&a.failure, &a.outcome) {
                (Some(f), _) => format!("{f:?}").to_lowercase(),
                (None, o) => serde_json::to_value(o)
                    .ok()
                    .and_then(|v| v["outcome"].as_str().map(str::to_string))
                    .unwrap_or_default(),
            };
            (a.start_ms - t0, a.t_ms - t0, what)
        })
        .collect()
}

/// The sample of a drill report.
pub fn sample_of(
    topo: &Topology,
    speaker: SpeakerKind,
    client: Client,
    run: usize,
    r: &Report,
    settings: &CheckSettings,
) -> Sample {
    let old_tor = tor_of(topo, &r.old_primary);
    let new_tor = tor_of(topo, &r.new_primary);
    let spine = spine_of(topo);
    let tl = Timeline { events: &r.events };
    let mut values = route_values(r, &tl, (&old_tor, &new_tor), &spine);
    values.extend(client_values(r, &tl, settings.timeout_ms));
    let mut metrics = BTreeMap::new();
    let mut unobserved = BTreeMap::new();
    for (k, v, w) in values {
        match v {
            Some(v) => {
                metrics.insert(k.to_string(), v);
            }
            None => {
                unobserved.insert(k.to_string(), w);
            }
        }
    }
    Sample {
        speaker,
        client,
        scenario: r.scenario,
        run,
        ok: r.ok,
        error: None,
        old_primary: r.old_primary.clone(),
        new_primary: r.new_primary.clone(),
        old_tor,
        new_tor,
        spine,
        metrics,
        unobserved,
        failed_checks: r
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect(),
        notes: r.notes.clone(),
        lost_acked_writes: r.writes.lost_acked_keys.len(),
        start_delays_ms: BTreeMap::new(),
        pre_fault_delay_ms: 0,
        long_attempts: if client == Client::Retry {
            Vec::new()
        } else {
            long_attempts(r)
        },
        events: r.events.clone(),
    }
}
