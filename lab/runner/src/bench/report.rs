//! The benchmark's tables, as text (stdout) and as Markdown (docs/benchmarks.md): per scenario
//! and metric the p50/p90/p99/max of each series (a speaker with a client profile), and the
//! ratios ExaBGP / primaryd with the same client.

use std::collections::BTreeSet;

use super::{BenchFile, Sample, Who, METRICS};
use crate::drill::Scenario;
use crate::speaker::{CheckSettings, SpeakerKind};
use crate::stats::{stats, Stats};

/// Metrics of the double-promote drill alone (splitbrain.rs): the other scenarios leave them
/// out of the tables.
const DOUBLE_PROMOTE_METRICS: &[&str] = &["old_path_gone", "old_sees_new"];

/// The metrics compared between speakers (ratios, Markdown tables).
const COMPARED: &[&str] = &[
    "detection",
    "routing_tor",
    "routing_spine",
    "withdrawn_tor",
    "withdrawn_spine",
    "announce_tor",
    "announce_spine",
    "outage",
    "outage_beyond_promotion",
    "longest_wait",
    "wait_beyond_detection",
];

pub(super) fn fmt_ms(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

fn label_of(key: &str) -> &str {
    METRICS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, l)| *l)
}

pub(super) fn samples(files: &[BenchFile]) -> impl Iterator<Item = &Sample> {
    files.iter().flat_map(|f| f.samples.iter())
}

pub(super) fn whos_of(files: &[BenchFile]) -> Vec<Who> {
    samples(files)
        .map(Sample::who)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

pub(super) fn scenarios_of(files: &[BenchFile]) -> Vec<Scenario> {
    let mut v: Vec<Scenario> = Vec::new();
    for s in samples(files) {
        if !v.contains(&s.scenario) {
            v.push(s.scenario);
        }
    }
    v
}

pub(super) fn settings_of(files: &[BenchFile], kind: SpeakerKind) -> Option<&CheckSettings> {
    files
        .iter()
        .flat_map(|f| f.settings.iter())
        .find(|s| s.speaker == kind)
}

/// The values of a metric over the runs of a series and scenario that produced a report. A
/// run whose drill checks failed still counts (the report lists it): its times are as valid
/// as the others'.
pub(super) fn values(files: &[BenchFile], who: Who, scenario: Scenario, metric: &str) -> Vec<f64> {
    samples(files)
        .filter(|s| s.who() == who && s.scenario == scenario && s.error.is_none())
        .filter_map(|s| s.metrics.get(metric).copied())
        .collect()
}

pub(super) fn stats_of(files: &[BenchFile], who: Who, sc: Scenario, metric: &str) -> Option<Stats> {
    stats(&values(files, who, sc, metric))
}

/// Why a metric is missing in a scenario (the first reason found).
fn missing_reason(
    files: &[BenchFile],
    who: Who,
    scenario: Scenario,
    metric: &str,
) -> Option<String> {
    samples(files)
        .find(|s| s.who() == who && s.scenario == scenario && s.error.is_none())
        .and_then(|s| s.unobserved.get(metric).cloned())
}

/// The series compared with primaryd: (series, primaryd with the same client).
fn compared(files: &[BenchFile]) -> Vec<(Who, Who)> {
    let whos = whos_of(files);
    whos.iter()
        .filter(|w| w.speaker != SpeakerKind::Primaryd)
        .map(|w| {
            let base = Who {
                speaker: SpeakerKind::Primaryd,
                client: w.client,
            };
            (*w, base)
        })
        .filter(|(_, b)| whos.contains(b))
        .collect()
}

fn ratio_cell(x: Option<&Stats>, base: Option<&Stats>) -> Option<String> {
    match (base, x) {
        (Some(b), Some(x)) if b.p50 > 0.0 && b.p99 > 0.0 => Some(format!(
            "{} / {}",
            fmt_ratio(x.p50 / b.p50),
            fmt_ratio(x.p99 / b.p99)
        )),
        _ => None,
    }
}

pub fn scenario_title(s: Scenario) -> &'static str {
    match s {
        Scenario::Kill => "kill: SIGKILL mariadbd on the primary",
        Scenario::Hang => "hang: SIGSTOP mariadbd on the primary",
        Scenario::Demote => "demote: SET GLOBAL read_only=1 on the primary",
        Scenario::Switchover => {
            "switchover: drain (primaryd only) + read_only=1, old primary replicates"
        }
        Scenario::Isolate => "isolate: the primary's uplink down",
        Scenario::DaemonCrash => "daemon-crash: SIGKILL the speaker (primaryd or ExaBGP)",
        Scenario::HostFreeze => {
            "host-freeze: every process of the primary's host stopped, links up"
        }
        Scenario::Restart => {
            "restart: SIGKILL mariadbd, promote, start the old server again (writable)"
        }
        Scenario::Heal => "heal: the primary's uplinks down, promote, links up again",
        Scenario::DoublePromote => {
            "double-promote: a replica promoted beside a healthy writable primary"
        }
    }
}

/// Each series: its settings, its runs, the runs that failed.
fn series_summary(files: &[BenchFile]) -> String {
    let mut o = String::from("series:\n");
    for w in whos_of(files) {
        let mine: Vec<&Sample> = samples(files).filter(|s| s.who() == w).collect();
        let passed = mine.iter().filter(|s| s.ok).count();
        o.push_str(&format!(
            "  {:<20} {}\n  {:<20} {} runs, {passed} passed all the drill's checks\n",
            w.name(),
            settings_of(files, w.speaker).map_or("?", |s| s.description.as_str()),
            "",
            mine.len()
        ));
        for s in mine.iter().filter(|s| !s.ok) {
            let (sc, run) = (s.scenario.name(), s.run);
            o.push_str(&match &s.error {
                Some(e) => format!("      not counted: {sc} run {run}: {e}\n"),
                None => format!(
                    "      counted, though a drill check failed: {sc} run {run}: {}\n",
                    s.failed_checks.join("; ")
                ),
            });
        }
    }
    o
}

/// One scenario's table: a row per metric and series.
fn scenario_table(files: &[BenchFile], sc: Scenario) -> String {
    let mut o = format!("\n{}\n", scenario_title(sc));
    o.push_str(&format!(
        "  {:<40} {:<20} {:>3} {:>9} {:>9} {:>9} {:>9}\n",
        "metric (ms)", "series", "n", "p50", "p90", "p99", "max"
    ));
    let routers = samples(files).find(|s| s.scenario == sc && s.error.is_none());
    for (key, label) in METRICS {
        if DOUBLE_PROMOTE_METRICS.contains(key) && sc != Scenario::DoublePromote {
            continue;
        }
        let label = match routers {
            Some(s) => {
                let tor = if key.starts_with("announce") {
                    &s.new_tor
                } else {
                    &s.old_tor
                };
                label
                    .replace("at ToR", &format!("at {tor}"))
                    .replace("at spine", &format!("at {}", s.spine))
            }
            None => label.to_string(),
        };
        for (i, w) in whos_of(files).into_iter().enumerate() {
            let name = if i == 0 { label.as_str() } else { "" };
            o.push_str(&match stats_of(files, w, sc, key) {
                Some(st) => format!(
                    "  {:<40} {:<20} {:>3} {:>9} {:>9} {:>9} {:>9}\n",
                    name,
                    w.name(),
                    st.n,
                    fmt_ms(st.p50),
                    fmt_ms(st.p90),
                    fmt_ms(st.p99),
                    fmt_ms(st.max)
                ),
                None => {
                    let why = missing_reason(files, w, sc, key)
                        .map_or_else(|| "no runs".into(), |w| shorten(&w, 60));
                    format!(
                        "  {:<40} {:<20} {:>3} not observed ({why})\n",
                        name,
                        w.name(),
                        0
                    )
                }
            });
        }
    }
    o
}

/// The tables, as text (stdout and docs/benchmarks.md).
pub fn report(files: &[BenchFile]) -> String {
    let mut o = series_summary(files);
    for sc in scenarios_of(files) {
        o.push_str(&scenario_table(files, sc));
    }
    o.push_str(&ratios(files));
    o
}

/// ExaBGP / primaryd (same client), per scenario and metric, of p50 and p99.
pub fn ratios(files: &[BenchFile]) -> String {
    let pairs = compared(files);
    if pairs.is_empty() {
        return String::new();
    }
    let mut o = String::from(
        "\nratio ExaBGP / primaryd with the same client (p50 ratio / p99 ratio; - where either \
         was not observed)\n",
    );
    o.push_str(&format!("  {:<13} {:<40}", "scenario", "metric"));
    for (w, _) in &pairs {
        o.push_str(&format!(" {:>21}", w.name()));
    }
    o.push('\n');
    for sc in scenarios_of(files) {
        let mut first = true;
        for &key in COMPARED {
            let cells: Vec<Option<String>> = pairs
                .iter()
                .map(|(w, b)| {
                    let (x, base) = (stats_of(files, *w, sc, key), stats_of(files, *b, sc, key));
                    ratio_cell(x.as_ref(), base.as_ref())
                })
                .collect();
            if cells.iter().all(Option::is_none) {
                continue;
            }
            let name = if first { sc.name() } else { "" };
            o.push_str(&format!("  {:<13} {:<40}", name, label_of(key)));
            for c in cells {
                o.push_str(&format!(" {:>21}", c.unwrap_or_else(|| "-".into())));
            }
            o.push('\n');
            first = false;
        }
    }
    o
}

/// One metric's Markdown table: a row per scenario, p50 / p99 per series, then the ratios.
fn markdown_table(files: &[BenchFile], key: &str) -> String {
    let whos = whos_of(files);
    let pairs = compared(files);
    let mut o = format!("\n**{}** (ms, p50 / p99)\n\n| scenario |", label_of(key));
    for w in &whos {
        o.push_str(&format!(" {} |", w.name()));
    }
    for (w, b) in &pairs {
        o.push_str(&format!(" {} / {} |", w.name(), b.name()));
    }
    o.push_str("\n|---|");
    o.push_str(&"---:|".repeat(whos.len() + pairs.len()));
    o.push('\n');
    let mut rows = 0;
    for sc in scenarios_of(files) {
        let st: Vec<Option<Stats>> = whos.iter().map(|w| stats_of(files, *w, sc, key)).collect();
        if st.iter().all(Option::is_none) {
            continue;
        }
        rows += 1;
        o.push_str(&format!("| {} |", sc.name()));
        for x in &st {
            o.push_str(&match x {
                Some(x) => format!(" {} / {} |", fmt_ms(x.p50), fmt_ms(x.p99)),
                None => " n/a |".into(),
            });
        }
        for (w, b) in &pairs {
            let (x, base) = (stats_of(files, *w, sc, key), stats_of(files, *b, sc, key));
            let cell = ratio_cell(x.as_ref(), base.as_ref()).unwrap_or_else(|| "n/a".into());
            o.push_str(&format!(" {cell} |"));
        }
        o.push('\n');
    }
    if rows == 0 {
        return String::new();
    }
    o
}

/// The key figures as Markdown tables (docs/benchmarks.md): per metric, a row per scenario,
/// p50 / p99 per series, and the ratios ExaBGP/primaryd.
pub fn markdown(files: &[BenchFile]) -> String {
    COMPARED.iter().map(|k| markdown_table(files, k)).collect()
}
