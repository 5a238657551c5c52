//! The soak's end: every write app1 had acknowledged is looked for on the final primary (a
//! missing one is allowed only in a step whose fault may lose writes, and counted), no key was
//! committed by a server other than the one that acknowledged it, no router had two
//! announcers outside a double promotion; the count of each fault and the outage percentiles.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::attempt::{Attempt, Outcome};
use crate::lab::Lab;
use crate::sql;

use super::invariants::{Double, Fabric};
use super::{Options, Step};

/// How long a router may show two announcers in a double promotion (splitbrain.rs' bound).
const DOUBLE_PROMOTE_BOUND_MS: f64 = 1500.0;
/// The sampler's period: a reading stands for this long.
const SAMPLE_MS: f64 = 100.0;

#[derive(Debug, Serialize)]
pub struct Writes {
    pub attempts: usize,
    pub acknowledged: usize,
    pub failed_attempts: usize,
    pub final_primary: Option<String>,
    /// Acknowledged, missing on the final primary, in a step whose fault may lose writes:
    /// (key, step).
    pub lost_allowed: Vec<(u64, usize)>,
    /// Acknowledged and missing where nothing may be lost.
    pub lost: Vec<String>,
    /// Keys the final primary holds from another server than the one that acknowledged them.
    pub two_servers: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FaultFigures {
    pub count: usize,
    pub failed: usize,
    pub outage_p50_ms: Option<f64>,
    pub outage_p90_ms: Option<f64>,
    pub outage_max_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub minutes: f64,
    pub lab: String,
    pub run_id: i64,
    pub elapsed_s: f64,
    pub faults: BTreeMap<String, FaultFigures>,
    /// Outage percentiles over every step: p50, p90, p99, max (ms).
    pub outage_ms: [Option<f64>; 4],
    pub writes: Writes,
    pub doubles: Vec<Double>,
    pub violations: Vec<String>,
    pub stopped: Option<String>,
    pub steps: Vec<Step>,
    pub ok: bool,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The longest time without an acknowledgement that overlaps [from, to] (sorted ack times).
pub fn longest_gap(acks: &[f64], from: f64, to: f64) -> Option<f64> {
    acks.windows(2)
        .filter(|w| w[1] >= from && w[0] <= to)
        .map(|w| w[1] - w[0])
        .reduce(f64::max)
}

fn step_at(steps: &[Step], t: f64) -> Option<&Step> {
    steps
        .iter()
        .find(|s| s.start_unix_ms <= t && t <= s.end_unix_ms)
}

#[allow(clippy::too_many_arguments)]
pub fn summarize(
    lab: &Lab,
    fabric: &Fabric,
    opts: &Options,
    run_id: i64,
    t0: f64,
    mut steps: Vec<Step>,
    attempts: Vec<Attempt>,
    doubles: Vec<Double>,
    stopped: Option<String>,
) -> Summary {
    let mut acks: Vec<f64> = attempts
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Ack { .. }))
        .map(|a| a.t_ms)
        .collect();
    acks.sort_by(f64::total_cmp);
    for s in &mut steps {
        s.outage_ms = longest_gap(&acks, s.start_unix_ms, s.end_unix_ms);
    }
    let mut violations = Vec::new();
    let writes = check_writes(lab, fabric, run_id, &steps, &attempts, &mut violations);
    check_doubles(&steps, &doubles, &mut violations);
    for s in steps.iter().filter(|s| !s.ok) {
        violations.push(format!("step {} ({}) failed", s.n, s.fault.name()));
    }
    let mut faults: BTreeMap<String, FaultFigures> = BTreeMap::new();
    for name in steps
        .iter()
        .map(|s| s.fault.name())
        .collect::<BTreeSet<_>>()
    {
        let of: Vec<&Step> = steps.iter().filter(|s| s.fault.name() == name).collect();
        let mut o: Vec<f64> = of.iter().filter_map(|s| s.outage_ms).collect();
        o.sort_by(f64::total_cmp);
        faults.insert(
            name.to_string(),
            FaultFigures {
                count: of.len(),
                failed: of.iter().filter(|s| !s.ok).count(),
                outage_p50_ms: percentile(&o, 50.0),
                outage_p90_ms: percentile(&o, 90.0),
                outage_max_ms: o.last().copied(),
            },
        );
    }
    let mut all: Vec<f64> = steps.iter().filter_map(|s| s.outage_ms).collect();
    all.sort_by(f64::total_cmp);
    let ok = stopped.is_none() && violations.is_empty() && !steps.is_empty();
    Summary {
        seed: opts.seed,
        minutes: opts.minutes,
        lab: lab.id.clone(),
        run_id,
        elapsed_s: (crate::util::now_ms() - t0) / 1000.0,
        faults,
        outage_ms: [
            percentile(&all, 50.0),
            percentile(&all, 90.0),
            percentile(&all, 99.0),
            all.last().copied(),
        ],
        writes,
        doubles,
        violations,
        stopped,
        steps,
        ok,
    }
}

/// Every acknowledged write on the final primary, from the server that acknowledged it.
fn check_writes(
    lab: &Lab,
    fabric: &Fabric,
    run_id: i64,
    steps: &[Step],
    attempts: &[Attempt],
    violations: &mut Vec<String>,
) -> Writes {
    let final_primary = steps
        .last()
        .and_then(|s| s.primary_after.clone())
        .or_else(|| {
            let (r, p) = (fabric.routers.first()?, fabric.prefixes.first()?);
            crate::primaryroute::leads_to(lab, r, p)
        });
    let mut w = Writes {
        attempts: attempts.len(),
        acknowledged: 0,
        failed_attempts: attempts
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Failed { .. }))
            .count(),
        final_primary: final_primary.clone(),
        lost_allowed: Vec::new(),
        lost: Vec::new(),
        two_servers: Vec::new(),
    };
    let Some(p) = final_primary else {
        violations.push("no final primary to look for the writes on".into());
        return w;
    };
    let q = format!("SELECT k, host FROM lab.writes WHERE run = {run_id}");
    let held: BTreeMap<u64, String> = match sql::query(lab, &p, &q, 120) {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|r| Some((r.get("k")?.parse().ok()?, r.get("host")?.clone())))
            .collect(),
        Err(e) => {
            violations.push(format!("reading the writes on {p}: {e:#}"));
            return w;
        }
    };
    for a in attempts {
        let Outcome::Ack { server } = &a.outcome else {
            continue;
        };
        w.acknowledged += 1;
        match held.get(&a.key) {
            Some(h) if h == server => {}
            Some(h) => w.two_servers.push(format!(
                "key {}: acknowledged by {server}, {p} holds {h}'s",
                a.key
            )),
            None => match step_at(steps, a.t_ms) {
                Some(s) if s.may_lose_writes => w.lost_allowed.push((a.key, s.n)),
                s => w.lost.push(format!(
                    "key {} acknowledged by {server} at {:.0} (step {})",
                    a.key,
                    a.t_ms,
                    s.map_or("none".into(), |s| format!("{} {}", s.n, s.fault.name()))
                )),
            },
        }
    }
    for (what, list) in [
        (
            "acknowledged writes lost where nothing may be lost",
            &w.lost,
        ),
        ("keys committed by two servers", &w.two_servers),
    ] {
        if !list.is_empty() {
            let first: Vec<&str> = list.iter().take(5).map(String::as_str).collect();
            violations.push(format!("{} {what}: {}", list.len(), first.join("; ")));
        }
    }
    w
}

/// Two announcers at one router: only in a step with a double promotion, and not for longer
/// than the drill's bound.
fn check_doubles(steps: &[Step], doubles: &[Double], violations: &mut Vec<String>) {
    let mut by_step: BTreeMap<Option<usize>, Vec<&Double>> = BTreeMap::new();
    for d in doubles {
        by_step
            .entry(step_at(steps, d.t_ms).map(|s| s.n))
            .or_default()
            .push(d);
    }
    for (n, ds) in by_step {
        let step = n.and_then(|n| steps.iter().find(|s| s.n == n));
        let first = ds.iter().map(|d| d.t_ms).fold(f64::INFINITY, f64::min);
        let last = ds.iter().map(|d| d.t_ms).fold(0.0, f64::max);
        let span = last - first + SAMPLE_MS;
        let allowed = step.is_some_and(|s| s.detail.contains("double-promote"));
        let who = format!("{} ({})", ds[0].router, ds[0].announcers.join("+"));
        if !allowed || span > DOUBLE_PROMOTE_BOUND_MS {
            violations.push(format!(
                "two announcers at a router for up to {span:.0} ms in {}: {who}, {} readings",
                step.map_or("no step (between steps)".into(), |s| format!(
                    "step {} {}",
                    s.n,
                    s.fault.name()
                )),
                ds.len()
            ));
        }
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// One line per step, as the soak goes.
pub fn step_line(s: &Step) -> String {
    let verdict = if s.ok {
        "ok".to_string()
    } else {
        let bad: Vec<String> = s
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        format!("FAILED: {}", bad.join(" | "))
    };
    format!(
        "step {:>4} {:<22} {:<60} -> {} in {:.1} s: {verdict}{}",
        s.n,
        s.fault.name(),
        s.detail,
        s.primary_after.as_deref().unwrap_or("?"),
        (s.end_unix_ms - s.start_unix_ms) / 1000.0,
        if s.notes.is_empty() {
            String::new()
        } else {
            format!("\n           notes: {}", s.notes.join("; "))
        }
    )
}

pub fn print(s: &Summary) -> String {
    let mut out = format!(
        "chaos soak: seed {}, {} steps in {:.1} min (asked {} min), lab {}\n",
        s.seed,
        s.steps.len(),
        s.elapsed_s / 60.0,
        s.minutes,
        s.lab
    );
    out.push_str(&format!(
        "  {:<24}{:>6}{:>8}{:>12}{:>12}{:>12}\n",
        "fault", "count", "failed", "outage p50", "p90", "max (ms)"
    ));
    for (name, f) in &s.faults {
        out.push_str(&format!(
            "  {:<24}{:>6}{:>8}{:>12}{:>12}{:>12}\n",
            name,
            f.count,
            f.failed,
            ms(f.outage_p50_ms),
            ms(f.outage_p90_ms),
            ms(f.outage_max_ms)
        ));
    }
    let [p50, p90, p99, max] = s.outage_ms;
    out.push_str(&format!(
        "  write outage per step (longest time without an acknowledged write): p50 {} ms, \
         p90 {} ms, p99 {} ms, max {} ms\n",
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max)
    ));
    let w = &s.writes;
    out.push_str(&format!(
        "  writes: {} attempts, {} acknowledged, {} failed attempts; final primary {}; \
         acknowledged but lost: {} in faults that may lose writes (asynchronous replication, \
         double promotion), {} elsewhere; keys from two servers: {}\n",
        w.attempts,
        w.acknowledged,
        w.failed_attempts,
        w.final_primary.as_deref().unwrap_or("none"),
        w.lost_allowed.len(),
        w.lost.len(),
        w.two_servers.len()
    ));
    out.push_str(&format!(
        "  readings with two announcers at one router: {}\n",
        s.doubles.len()
    ));
    if let Some(why) = &s.stopped {
        out.push_str(&format!("  stopped early: {why}\n"));
    }
    for v in &s.violations {
        out.push_str(&format!("  VIOLATION: {v}\n"));
    }
    out.push_str(&format!("soak: {}", if s.ok { "PASSED" } else { "FAILED" }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_gaps() {
        let v = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(percentile(&v, 50.0), Some(3.0));
        assert_eq!(percentile(&v, 99.0), Some(10.0));
        assert_eq!(percentile(&[], 50.0), None);
        let acks = [0.0, 10.0, 20.0, 120.0, 130.0];
        assert_eq!(longest_gap(&acks, 15.0, 25.0), Some(100.0));
        assert_eq!(longest_gap(&acks, 0.0, 5.0), Some(10.0));
        assert_eq!(longest_gap(&acks, 200.0, 300.0), None);
    }
}
