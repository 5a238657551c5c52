//! `primaryd-lab bench`: every drill scenario N times, a fresh lab per run (`up`, the drill,
//! `down`), for primaryd and for ExaBGP + exabgp-healthcheck in its place; per scenario and
//! metric the p50/p90/p99/max, the ratio ExaBGP/primaryd, the design targets; every sample
//! (with its timeline) in a JSON file, and a plot of the outages. Not a test: it measures.
//! docs/benchmarks.md describes the method and the figures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::drill::{self, Event, Report, Scenario};
use crate::lab::Lab;
use crate::speaker::{CheckSettings, Speaker, SpeakerKind};
use crate::topo::{Role, Topology};
use crate::util::now_ms;

/// The metrics of one run, in ms. Times are from the timeline of the drill (docs/lab.md).
pub const METRICS: &[(&str, &str)] = &[
    ("check_failed", "fault -> first failed check"),
    ("detection", "detection: fault -> withdraw sent"),
    ("routing_tor", "routing: withdraw sent -> gone at ToR"),
    ("routing_spine", "routing: withdraw sent -> gone at spine"),
    ("withdrawn_tor", "fault -> route gone at ToR"),
    ("withdrawn_spine", "fault -> route gone at spine"),
    ("announce_sent", "promotion -> announce sent"),
    ("announce_tor", "announce: promotion -> present at ToR"),
    ("announce_spine", "announce: promotion -> present at spine"),
    ("promotion", "the drill's promotion itself"),
    ("outage", "client write outage"),
    (
        "outage_beyond_promotion",
        "write outage beyond the promotion",
    ),
    ("old_path_gone", "announce -> old path gone, every table"),
    ("old_sees_new", "announce -> the old primary's conflict"),
];

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
];

/// One run of one scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub speaker: SpeakerKind,
    pub scenario: Scenario,
    /// 1-based.
    pub run: usize,
    /// The drill's own checks all passed.
    pub ok: bool,
    /// The run did not produce a report (the lab did not come up, the drill failed to run).
    pub error: Option<String>,
    pub old_primary: String,
    pub new_primary: String,
    /// The old primary's ToR (where the withdraw goes), the new primary's ToR (where the
    /// announce goes) and the spine.
    pub old_tor: String,
    pub new_tor: String,
    pub spine: String,
    /// Measured metrics (see METRICS); a metric that was not observed is absent, with the
    /// reason in `unobserved`.
    pub metrics: BTreeMap<String, f64>,
    pub unobserved: BTreeMap<String, String>,
    pub failed_checks: Vec<String>,
    pub notes: Vec<String>,
    pub lost_acked_writes: usize,
    /// The random phase of the run: each DB host's speaker started this long after its MySQL
    /// server, and the drill began this long after the lab converged (see `one_run`).
    #[serde(default)]
    pub start_delays_ms: BTreeMap<String, u64>,
    #[serde(default)]
    pub pre_fault_delay_ms: u64,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub kernel: String,
    pub os: String,
    /// Debian package versions of the lab's programs.
    pub packages: BTreeMap<String, String>,
    pub bin_dir: String,
}

/// What `bench --json` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchFile {
    pub benchmark: String,
    pub command: String,
    pub machine: Machine,
    pub started_unix_ms: f64,
    pub finished_unix_ms: Option<f64>,
    pub runs_per_scenario: usize,
    pub scenarios: Vec<Scenario>,
    /// The primary each drill started from, when not the lab's own (`--primary`).
    #[serde(default)]
    pub primary: Option<String>,
    pub settings: Vec<CheckSettings>,
    pub samples: Vec<Sample>,
}

pub fn machine(bin_dir: &Path) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024;
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_default();
    let mut packages = BTreeMap::new();
    for p in ["frr", "bird2", "mariadb-server", "exabgp", "python3-exabgp"] {
        if let Ok(o) = std::process::Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", p])
            .output()
        {
            if o.status.success() {
                packages.insert(p.into(), String::from_utf8_lossy(&o.stdout).to_string());
            }
        }
    }
    Machine {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model: model,
        mem_total_mib: mem,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        os,
        packages,
        bin_dir: bin_dir.display().to_string(),
    }
}

/// Nearest-rank percentile of sorted values (q in 0..=1): the smallest value with at least
/// q of the values at or below it. With 20 values p99 is the largest.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

pub struct Stats {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn stats(values: &[f64]) -> Option<Stats> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(Stats {
        n: v.len(),
        p50: percentile(&v, 0.5)?,
        p90: percentile(&v, 0.9)?,
        p99: percentile(&v, 0.99)?,
        max: *v.last()?,
    })
}

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

/// The sample of a drill report.
pub fn sample_of(topo: &Topology, speaker: SpeakerKind, run: usize, r: &Report) -> Sample {
    let old_tor = tor_of(topo, &r.old_primary);
    let new_tor = tor_of(topo, &r.new_primary);
    let spine = spine_of(topo);
    let ev = |name: &str, node: Option<&str>| -> Option<&Event> {
        r.events
            .iter()
            .find(|e| e.event == name && (node.is_none() || e.node.as_deref() == node))
    };
    let t = |name: &str, node: Option<&str>| ev(name, node).and_then(|e| e.t_ms);
    let why = |name: &str, node: Option<&str>| {
        ev(name, node)
            .map(|e| format!("{name}: {}", e.detail))
            .unwrap_or_else(|| format!("{name}: no such event"))
    };
    let old = Some(r.old_primary.as_str());
    let new = Some(r.new_primary.as_str());
    let withdraw = t("withdraw_sent", old);
    let gone_tor = t("route_gone", Some(&old_tor));
    let gone_spine = t("route_gone", Some(&spine));
    let p_start = t("promotion_started", None);
    let p_done = t("promotion_done", None);
    let promotion = p_start.zip(p_done).map(|(a, b)| b - a);
    let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    let values: Vec<(&str, Option<f64>, String)> = vec![
        (
            "check_failed",
            t("check_failed", old),
            why("check_failed", old),
        ),
        ("detection", withdraw, why("withdraw_sent", old)),
        (
            "routing_tor",
            diff(withdraw, gone_tor),
            format!(
                "{}; {}",
                why("withdraw_sent", old),
                why("route_gone", Some(&old_tor))
            ),
        ),
        (
            "routing_spine",
            diff(withdraw, gone_spine),
            format!(
                "{}; {}",
                why("withdraw_sent", old),
                why("route_gone", Some(&spine))
            ),
        ),
        ("withdrawn_tor", gone_tor, why("route_gone", Some(&old_tor))),
        (
            "withdrawn_spine",
            gone_spine,
            why("route_gone", Some(&spine)),
        ),
        (
            "announce_sent",
            diff(p_done, t("announce_sent", new)),
            why("announce_sent", new),
        ),
        (
            "announce_tor",
            diff(p_done, t("route_new", Some(&new_tor))),
            why("route_new", Some(&new_tor)),
        ),
        (
            "announce_spine",
            diff(p_done, t("route_new", Some(&spine))),
            why("route_new", Some(&spine)),
        ),
        ("promotion", promotion, why("promotion_done", None)),
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
    let mut values = values;
    if r.scenario == Scenario::DoublePromote {
        let announce = t("announce_sent", new);
        values.push((
            "old_path_gone",
            diff(announce, t("bgp_old_gone_everywhere", None)),
            format!(
                "{}; {}",
                why("announce_sent", new),
                why("bgp_old_gone_everywhere", None)
            ),
        ));
        values.push((
            "old_sees_new",
            diff(announce, t("conflict", old)),
            format!("{}; {}", why("announce_sent", new), why("conflict", old)),
        ));
    }
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
        events: r.events.clone(),
    }
}

pub struct BenchArgs {
    pub runs: usize,
    pub scenarios: Vec<Scenario>,
    pub speakers: Vec<SpeakerKind>,
    pub interval_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    /// Make this DB host the primary before each drill (an unmeasured switchover drill).
    pub primary: Option<String>,
    pub command: String,
}

fn write_json(path: &Path, f: &BenchFile) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(f)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// One line per run on stdout while the benchmark goes.
fn progress(s: &Sample, of: usize) {
    let m = |k: &str| {
        s.metrics
            .get(k)
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    let status = match (&s.error, s.ok) {
        (Some(e), _) => format!("ERROR {e}"),
        (None, true) => "ok".into(),
        (None, false) => format!("checks failed: {}", s.failed_checks.join("; ")),
    };
    let old_path = if s.metrics.contains_key("old_path_gone") {
        format!("  old path gone {:>8}", m("old_path_gone"))
    } else {
        String::new()
    };
    println!(
        "{:<14} {:<14} {:>2}/{of}  detection {:>8}  gone@{} {:>8}  announce@{} {:>8}  outage {:>8}{old_path}  {status}",
        s.speaker.name(),
        s.scenario.name(),
        s.run,
        m("detection"),
        s.old_tor,
        m("withdrawn_tor"),
        s.new_tor,
        m("announce_tor"),
        m("outage"),
    );
}

pub fn run(
    topo_file: &Path,
    lab_id: &str,
    state_root: &Path,
    bins: &Path,
    a: &BenchArgs,
) -> Result<BenchFile> {
    crate::lab::require_root()?;
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut file = BenchFile {
        benchmark: "failover".into(),
        command: a.command.clone(),
        machine: machine(bins),
        started_unix_ms: now_ms(),
        finished_unix_ms: None,
        runs_per_scenario: a.runs,
        scenarios: a.scenarios.clone(),
        primary: a.primary.clone(),
        settings: Vec::new(),
        samples: Vec::new(),
    };
    for &kind in &a.speakers {
        let mut sp = Speaker::new(kind);
        if kind != SpeakerKind::ExabgpDefault {
            sp.interval_ms = a.interval_ms;
            sp.timeout_ms = a.timeout_ms;
        }
        // The benchmark builds its own labs.
        let mut lab = Lab::new(lab_id, state_root, crate::topo::load(topo_file)?)?;
        let settings = lab.set_speaker(&sp)?;
        eprintln!("bench: {} ({})", kind.name(), settings.description);
        file.settings.push(settings.clone());
        // One check cycle of the speaker: the range of the random phases.
        let cycle_ms = settings.interval_ms.round().max(1.0) as u64;
        let opts = drill::Options {
            step: if kind == SpeakerKind::Primaryd {
                drill::Options::default().step
            } else {
                // exabgp-default and a hung server: three 5 s timeouts, 1 s apart, after up to
                // a 5 s interval.
                Duration::from_secs(60)
            },
        };
        for run in 1..=a.runs {
            for &sc in &a.scenarios {
                let s = one_run(
                    &mut lab,
                    bins,
                    kind,
                    sc,
                    run,
                    a.primary.as_deref(),
                    cycle_ms,
                    &opts,
                );
                progress(&s, a.runs);
                file.samples.push(s);
                if let Some(j) = &a.json {
                    write_json(j, &file)?;
                }
            }
        }
        let _ = lab.remove_generated();
    }
    file.finished_unix_ms = Some(now_ms());
    if let Some(j) = &a.json {
        write_json(j, &file)?;
    }
    Ok(file)
}

/// One run: a fresh lab, the drill, `down`.
///
/// A fault must come at a random point of the speakers' check cycles, as in production, where
/// nothing ties a failure to a daemon's timer. In a lab that is built, converged and drilled by
/// a script, it would not: `up` returns right after the primary's first announce, that is at a
/// fixed point of its check cycle, and all hosts start their speakers together. So each DB
/// host's speaker starts a random 0..cycle after its MySQL server (lab-db-start sleeps
/// LAB_START_DELAY_MS), which makes the hosts' cycles independent, and the drill begins a
/// random 0..cycle after the lab converged. Both delays are in the sample.
#[allow(clippy::too_many_arguments)]
fn one_run(
    lab: &mut Lab,
    bins: &Path,
    kind: SpeakerKind,
    sc: Scenario,
    run: usize,
    primary: Option<&str>,
    cycle_ms: u64,
    opts: &drill::Options,
) -> Sample {
    let mut start_delays_ms = BTreeMap::new();
    for n in lab.topo.nodes.iter_mut().filter(|n| n.role == Role::Db) {
        let d = crate::util::random_below(cycle_ms);
        n.env.insert("LAB_START_DELAY_MS".into(), d.to_string());
        start_delays_ms.insert(n.name.clone(), d);
    }
    let pre_fault_delay_ms = crate::util::random_below(cycle_ms);
    let lab: &Lab = lab;
    let failed = |e: String| Sample {
        speaker: kind,
        scenario: sc,
        run,
        ok: false,
        error: Some(e),
        old_primary: String::new(),
        new_primary: String::new(),
        old_tor: String::new(),
        new_tor: String::new(),
        spine: String::new(),
        metrics: BTreeMap::new(),
        unobserved: BTreeMap::new(),
        failed_checks: Vec::new(),
        notes: Vec::new(),
        lost_acked_writes: 0,
        start_delays_ms: start_delays_ms.clone(),
        pre_fault_delay_ms,
        events: Vec::new(),
    };
    // A lab that fails to come up is removed and tried once more.
    let mut up = Err(anyhow::anyhow!("not tried"));
    for _ in 0..2 {
        up = lab.up(bins);
        if up.is_ok() {
            break;
        }
        let _ = lab.down();
    }
    if let Err(e) = up {
        return failed(format!("up: {e:#}"));
    }
    std::thread::sleep(Duration::from_millis(pre_fault_delay_ms));
    let report = match primary {
        // A graceful switchover first (its promotion waits until the old primary's writes
        // reached the new one), then the measured drill from there.
        Some(p) => match drill::run_with(lab, Scenario::Switchover, Some(p), opts) {
            Ok(r) if r.ok => drill::run_with(lab, sc, None, opts),
            Ok(r) => Err(anyhow::anyhow!(
                "the switchover to {p} failed its checks: {}",
                r.checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            Err(e) => Err(e.context(format!("the switchover to {p}"))),
        },
        None => drill::run_with(lab, sc, None, opts),
    };
    let down = lab.down();
    let mut s = match report {
        Ok(r) => sample_of(&lab.topo, kind, run, &r),
        Err(e) => failed(format!("drill: {e:#}")),
    };
    if let Err(e) = down {
        s.error.get_or_insert(format!("down: {e:#}"));
    }
    s.start_delays_ms = start_delays_ms;
    s.pre_fault_delay_ms = pre_fault_delay_ms;
    s
}

// ---------- the report ----------

fn fmt_ms(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn speakers_of(files: &[BenchFile]) -> Vec<SpeakerKind> {
    files
        .iter()
        .flat_map(|f| f.samples.iter().map(|s| s.speaker))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn scenarios_of(files: &[BenchFile]) -> Vec<Scenario> {
    let mut v: Vec<Scenario> = Vec::new();
    for f in files {
        for s in &f.samples {
            if !v.contains(&s.scenario) {
                v.push(s.scenario);
            }
        }
    }
    v
}

fn settings_of(files: &[BenchFile], kind: SpeakerKind) -> Option<&CheckSettings> {
    files
        .iter()
        .flat_map(|f| f.settings.iter())
        .find(|s| s.speaker == kind)
}

/// The runs of a speaker and scenario that produced a report. A run whose drill checks failed
/// still counts (the report lists it): its times are as valid as the others'.
fn reported<'a>(
    samples: impl Iterator<Item = &'a Sample>,
    speaker: SpeakerKind,
    scenario: Scenario,
) -> impl Iterator<Item = &'a Sample> {
    samples.filter(move |s| s.speaker == speaker && s.scenario == scenario && s.error.is_none())
}

/// The values of a metric over the reported runs.
fn values<'a>(
    samples: impl Iterator<Item = &'a Sample>,
    speaker: SpeakerKind,
    scenario: Scenario,
    metric: &str,
) -> Vec<f64> {
    reported(samples, speaker, scenario)
        .filter_map(|s| s.metrics.get(metric).copied())
        .collect()
}

/// Why a metric is missing in a scenario (the first reason found).
fn missing_reason<'a>(
    samples: impl Iterator<Item = &'a Sample>,
    speaker: SpeakerKind,
    scenario: Scenario,
    metric: &str,
) -> Option<String> {
    reported(samples, speaker, scenario)
        .next()
        .and_then(|s| s.unobserved.get(metric).cloned())
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

/// The tables, as text (stdout and docs/benchmarks.md).
pub fn report(files: &[BenchFile]) -> String {
    let mut o = String::new();
    let all = || files.iter().flat_map(|f| f.samples.iter());
    let speakers = speakers_of(files);
    let scenarios = scenarios_of(files);
    o.push_str("speakers:\n");
    for sp in &speakers {
        let runs = all().filter(|s| s.speaker == *sp).count();
        let passed = all().filter(|s| s.speaker == *sp && s.ok).count();
        o.push_str(&format!(
            "  {:<15} {}\n  {:<15} {runs} runs, {passed} passed all the drill's checks\n",
            sp.name(),
            settings_of(files, *sp)
                .map(|s| s.description.as_str())
                .unwrap_or("?"),
            ""
        ));
        for s in all().filter(|s| s.speaker == *sp && !s.ok) {
            match &s.error {
                Some(e) => o.push_str(&format!(
                    "      not counted: {} run {}: {e}\n",
                    s.scenario.name(),
                    s.run
                )),
                None => o.push_str(&format!(
                    "      counted, though a drill check failed: {} run {}: {}\n",
                    s.scenario.name(),
                    s.run,
                    s.failed_checks.join("; ")
                )),
            }
        }
    }
    for sc in &scenarios {
        o.push_str(&format!("\n{}\n", scenario_title(*sc)));
        o.push_str(&format!(
            "  {:<40} {:<15} {:>3} {:>9} {:>9} {:>9} {:>9}\n",
            "metric (ms)", "speaker", "n", "p50", "p90", "p99", "max"
        ));
        let some_routers = all().find(|s| s.scenario == *sc && s.error.is_none());
        for (key, label) in METRICS {
            if DOUBLE_PROMOTE_METRICS.contains(key) && *sc != Scenario::DoublePromote {
                continue;
            }
            let label = match some_routers {
                Some(s) => label
                    .replace(
                        "at ToR",
                        &format!(
                            "at {}",
                            if key.starts_with("announce") {
                                &s.new_tor
                            } else {
                                &s.old_tor
                            }
                        ),
                    )
                    .replace("at spine", &format!("at {}", s.spine)),
                None => label.to_string(),
            };
            let mut first = true;
            for sp in &speakers {
                let v = values(all(), *sp, *sc, key);
                let name = if first { label.as_str() } else { "" };
                match stats(&v) {
                    Some(st) => o.push_str(&format!(
                        "  {:<40} {:<15} {:>3} {:>9} {:>9} {:>9} {:>9}\n",
                        name,
                        sp.name(),
                        st.n,
                        fmt_ms(st.p50),
                        fmt_ms(st.p90),
                        fmt_ms(st.p99),
                        fmt_ms(st.max)
                    )),
                    None => {
                        let why = missing_reason(all(), *sp, *sc, key)
                            .map(|w| shorten(&w, 60))
                            .unwrap_or_else(|| "no runs".into());
                        o.push_str(&format!(
                            "  {:<40} {:<15} {:>3} not observed ({why})\n",
                            name,
                            sp.name(),
                            0
                        ));
                    }
                }
                first = false;
            }
        }
    }
    o.push_str(&ratios(files));
    o
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

/// ExaBGP / primaryd, per scenario and metric, of p50 and p99.
pub fn ratios(files: &[BenchFile]) -> String {
    let mut o = String::new();
    let all = || files.iter().flat_map(|f| f.samples.iter());
    let others: Vec<SpeakerKind> = speakers_of(files)
        .into_iter()
        .filter(|s| *s != SpeakerKind::Primaryd)
        .collect();
    if others.is_empty() || !all().any(|s| s.speaker == SpeakerKind::Primaryd) {
        return o;
    }
    o.push_str(
        "\nratio ExaBGP / primaryd (p50 ratio / p99 ratio; - where either was not observed)\n",
    );
    o.push_str(&format!("  {:<13} {:<40}", "scenario", "metric"));
    for s in &others {
        o.push_str(&format!(" {:>21}", s.name()));
    }
    o.push('\n');
    for sc in scenarios_of(files) {
        let mut first = true;
        for &key in COMPARED {
            let label = METRICS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, l)| *l)
                .unwrap_or(key);
            let base = stats(&values(all(), SpeakerKind::Primaryd, sc, key));
            let mut cells = Vec::new();
            for s in &others {
                let st = stats(&values(all(), *s, sc, key));
                let cell = match (&base, &st) {
                    (Some(b), Some(x)) if b.p50 > 0.0 && b.p99 > 0.0 => {
                        format!(
                            "{} / {}",
                            fmt_ratio(x.p50 / b.p50),
                            fmt_ratio(x.p99 / b.p99)
                        )
                    }
                    _ => "-".into(),
                };
                cells.push(cell);
            }
            if cells.iter().all(|c| c == "-") {
                continue;
            }
            o.push_str(&format!(
                "  {:<13} {:<40}",
                if first { sc.name() } else { "" },
                label
            ));
            for c in cells {
                o.push_str(&format!(" {c:>21}"));
            }
            o.push('\n');
            first = false;
        }
    }
    o
}

/// The key figures as Markdown tables (docs/benchmarks.md): per metric, a row per scenario,
/// p50 / p99 per speaker, and the ratios ExaBGP/primaryd.
pub fn markdown(files: &[BenchFile]) -> String {
    let mut o = String::new();
    let all = || files.iter().flat_map(|f| f.samples.iter());
    let speakers = speakers_of(files);
    let others: Vec<SpeakerKind> = speakers
        .iter()
        .copied()
        .filter(|s| *s != SpeakerKind::Primaryd)
        .collect();
    let has_base = speakers.contains(&SpeakerKind::Primaryd);
    for &key in COMPARED {
        let label = METRICS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, l)| *l)
            .unwrap_or(key);
        o.push_str(&format!("\n**{label}** (ms, p50 / p99)\n\n| scenario |"));
        for s in &speakers {
            o.push_str(&format!(" {} |", s.name()));
        }
        if has_base {
            for s in &others {
                o.push_str(&format!(" {} / primaryd |", s.name()));
            }
        }
        o.push_str("\n|---|");
        for _ in 0..speakers.len() + if has_base { others.len() } else { 0 } {
            o.push_str("---:|");
        }
        o.push('\n');
        for sc in scenarios_of(files) {
            let st: Vec<Option<Stats>> = speakers
                .iter()
                .map(|s| stats(&values(all(), *s, sc, key)))
                .collect();
            if st.iter().all(Option::is_none) {
                continue;
            }
            o.push_str(&format!("| {} |", sc.name()));
            for x in &st {
                match x {
                    Some(x) => o.push_str(&format!(" {} / {} |", fmt_ms(x.p50), fmt_ms(x.p99))),
                    None => o.push_str(" n/a |"),
                }
            }
            if has_base {
                let base = &st[0];
                for (i, _) in others.iter().enumerate() {
                    let x = &st[i + 1];
                    match (base, x) {
                        (Some(b), Some(x)) if b.p50 > 0.0 && b.p99 > 0.0 => o.push_str(&format!(
                            " {} / {} |",
                            fmt_ratio(x.p50 / b.p50),
                            fmt_ratio(x.p99 / b.p99)
                        )),
                        _ => o.push_str(" n/a |"),
                    }
                }
            }
            o.push('\n');
        }
    }
    o
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

/// The failover targets of DESIGN.md against primaryd's figures.
pub fn targets(files: &[BenchFile]) -> String {
    let mut o = String::new();
    let all = || files.iter().flat_map(|f| f.samples.iter());
    let Some(set) = settings_of(files, SpeakerKind::Primaryd) else {
        return o;
    };
    let (interval, timeout) = (set.interval_ms, set.timeout_ms);
    o.push_str(&format!(
        "\ndesign targets (DESIGN.md), primaryd at interval_ms {interval}, timeout_ms {timeout}: p99 against the bar\n"
    ));
    o.push_str(&format!(
        "  {:<54} {:>8} {:>9}  {}\n",
        "target", "bar", "p99", "met"
    ));
    let p99 = |sc: Scenario, key: &str| stats(&values(all(), SpeakerKind::Primaryd, sc, key));
    let mut row = |name: String, bar: f64, st: Option<Stats>, extra: String| {
        let (val, met) = match &st {
            Some(s) => (fmt_ms(s.p99), if s.p99 <= bar { "yes" } else { "NO" }),
            None => ("-".into(), "not measured"),
        };
        o.push_str(&format!(
            "  {:<54} {:>8} {:>9}  {met}{extra}\n",
            name,
            fmt_ms(bar),
            val
        ));
    };
    let part = |sc: Scenario| {
        let d = p99(sc, "detection")
            .map(|s| fmt_ms(s.p99))
            .unwrap_or("-".into());
        let r = p99(sc, "routing_tor")
            .map(|s| fmt_ms(s.p99))
            .unwrap_or("-".into());
        format!(" (primaryd's part, fault -> withdraw sent: p99 {d}; the ToR's, withdraw -> gone: p99 {r})")
    };
    // The withdrawal targets: (scenario, what, bar, metric, with primaryd's and the ToR's parts).
    let withdrawal = [
        (
            Scenario::Kill,
            "fault -> route gone at the ToR",
            50.0,
            "withdrawn_tor",
            true,
        ),
        (
            Scenario::Hang,
            "fault -> withdraw sent (timeout + 50)",
            timeout + 50.0,
            "detection",
            false,
        ),
        (
            Scenario::Hang,
            "fault -> route gone at the ToR (timeout + 50)",
            timeout + 50.0,
            "withdrawn_tor",
            true,
        ),
        (
            Scenario::Demote,
            "fault -> withdraw sent (interval + 50)",
            interval + 50.0,
            "detection",
            false,
        ),
        (
            Scenario::Demote,
            "fault -> route gone at the ToR (interval + 50)",
            interval + 50.0,
            "withdrawn_tor",
            true,
        ),
        (
            Scenario::HostFreeze,
            "fault -> route gone at the ToR (BFD 3 x 100 + 50)",
            350.0,
            "withdrawn_tor",
            false,
        ),
    ];
    if all().any(|s| s.speaker == SpeakerKind::Primaryd && s.scenario == Scenario::DoublePromote) {
        let sees = p99(Scenario::DoublePromote, "old_sees_new")
            .map(|s| fmt_ms(s.p99))
            .unwrap_or("-".into());
        row(
            "double-promote: new announce -> old path gone from every BGP table".into(),
            100.0,
            p99(Scenario::DoublePromote, "old_path_gone"),
            format!(" (the old primary saw the new one: p99 {sees})"),
        );
    }
    for (sc, what, bar, metric, parts) in withdrawal {
        if all().any(|s| s.speaker == SpeakerKind::Primaryd && s.scenario == sc) {
            let extra = if parts { part(sc) } else { String::new() };
            row(
                format!("{}: {what}", sc.name()),
                bar,
                p99(sc, metric),
                extra,
            );
        }
    }
    // The failover targets; the split-brain drills have their own row above.
    for sc in scenarios_of(files).into_iter().filter(|s| !s.split_brain()) {
        if !all().any(|s| s.speaker == SpeakerKind::Primaryd && s.scenario == sc) {
            continue;
        }
        let sent = p99(sc, "announce_sent")
            .map(|s| fmt_ms(s.p99))
            .unwrap_or("-".into());
        let tor = all()
            .find(|s| s.scenario == sc && s.error.is_none())
            .map(|s| s.new_tor.clone())
            .unwrap_or_default();
        row(
            format!(
                "{}: promotion -> present at {tor} (interval + 50)",
                sc.name()
            ),
            interval + 50.0,
            p99(sc, "announce_tor"),
            format!(" (announce sent: p99 {sent})"),
        );
    }
    // The failover targets; the split-brain drills have their own row above.
    for sc in scenarios_of(files).into_iter().filter(|s| !s.split_brain()) {
        if !all().any(|s| s.speaker == SpeakerKind::Primaryd && s.scenario == sc) {
            continue;
        }
        row(
            format!("{}: write outage beyond the promotion", sc.name()),
            500.0,
            p99(sc, "outage_beyond_promotion"),
            String::new(),
        );
    }
    o
}

pub fn load(path: &Path) -> Result<BenchFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a bench JSON file", path.display()))
}

/// The outage plot of the samples of `files`.
pub fn plot(files: &[BenchFile], png: &Path) -> Result<()> {
    let all = || files.iter().flat_map(|f| f.samples.iter());
    let scenarios: Vec<Scenario> = scenarios_of(files);
    let speakers = speakers_of(files);
    let m = crate::plot::outage_series(all().filter(|s| s.error.is_none()).map(|s| {
        (
            s.scenario.name(),
            s.speaker.name(),
            s.metrics.get("outage").copied(),
        )
    }));
    let series: Vec<crate::plot::Series> = m
        .iter()
        .map(|((sc, sp), v)| crate::plot::Series {
            scenario: sc,
            speaker: sp,
            values: v.clone(),
        })
        .collect();
    let runs = files.iter().map(|f| f.runs_per_scenario).max().unwrap_or(0);
    let cpus = files.first().map(|f| f.machine.cpus).unwrap_or(0);
    crate::plot::outage_png(
        png,
        &format!(
            "Client write outage per failover drill: up to {runs} runs per scenario and speaker \
             (lab, {cpus} vCPUs); lower is better"
        ),
        &scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
        &speakers.iter().map(|s| s.name()).collect::<Vec<_>>(),
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(10.0));
        assert_eq!(percentile(&v, 0.9), Some(18.0));
        assert_eq!(percentile(&v, 0.99), Some(20.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
