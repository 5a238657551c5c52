//! `primaryd-lab bench`: every drill scenario N times, a fresh lab per run (`up`, the drill,
//! `down`), for primaryd and for ExaBGP + exabgp-healthcheck in its place, with one or more
//! client profiles (clients.rs); per scenario and metric the p50/p90/p99/max, the ratio
//! ExaBGP/primaryd, the design targets; every sample (with its timeline) in a JSON file, and a
//! plot of the outages. Not a test: it measures. docs/benchmarks.md describes the method and
//! the figures.
//!
//! Files: this one (the types and the runs), sample.rs (a drill report to a sample's metrics),
//! report.rs (the text and Markdown tables), targets.rs (the design targets), machine.rs.

mod machine;
mod report;
mod sample;
mod targets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::clients::Client;
use crate::drill::{self, Event, Scenario};
use crate::lab::Lab;
use crate::speaker::{CheckSettings, Speaker, SpeakerKind};
use crate::topo::Role;
use crate::util::now_ms;

pub use machine::{machine, Machine};
pub use report::{markdown, report};
pub use sample::sample_of;
pub use targets::targets;

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
    ("longest_wait", "longest wait of one attempt"),
    (
        "wait_beyond_detection",
        "an attempt's wait beyond detection",
    ),
    ("old_path_gone", "announce -> old path gone, every table"),
    ("old_sees_new", "announce -> the old primary's conflict"),
];

/// One run of one scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub speaker: SpeakerKind,
    /// The client that wrote during the drill (older files: the retry writer).
    #[serde(default)]
    pub client: Client,
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
    /// The client profiles' attempts in the failover window: (start, end) ms after the fault,
    /// and the outcome, for the attempts that waited 20 ms or more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub long_attempts: Vec<(f64, f64, String)>,
    pub events: Vec<Event>,
}

/// A series of samples: a speaker with a client profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Who {
    pub speaker: SpeakerKind,
    pub client: Client,
}

impl Who {
    /// The speaker's name, with the client's unless it is the drills' retry writer.
    pub fn name(self) -> String {
        match self.client {
            Client::Retry => self.speaker.name().to_string(),
            c => format!("{}/{}", self.speaker.name(), c.name()),
        }
    }
}

impl Sample {
    pub fn who(&self) -> Who {
        Who {
            speaker: self.speaker,
            client: self.client,
        }
    }
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

pub struct BenchArgs {
    pub runs: usize,
    pub scenarios: Vec<Scenario>,
    pub speakers: Vec<SpeakerKind>,
    /// Client profiles, one after the other in each run's scenario (`cli` and `pool` are
    /// promoted at the fault instant, `retry` once the old route is gone, as the drills do).
    pub clients: Vec<Client>,
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
    let mut extra = String::new();
    for (k, label) in [
        ("old_path_gone", "old path gone"),
        ("longest_wait", "longest wait"),
    ] {
        if s.metrics.contains_key(k) {
            extra.push_str(&format!("  {label} {:>8}", m(k)));
        }
    }
    println!(
        "{:<20} {:<14} {:>2}/{of}  detection {:>8}  gone@{} {:>8}  announce@{} {:>8}  outage {:>8}{extra}  {status}",
        s.who().name(),
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
        speaker_series(topo_file, lab_id, state_root, bins, a, kind, &mut file)?;
    }
    file.finished_unix_ms = Some(now_ms());
    if let Some(j) = &a.json {
        write_json(j, &file)?;
    }
    Ok(file)
}

/// Every run of one speaker: runs, then scenarios, then clients, so that slow drifts of the
/// machine spread over all of them.
fn speaker_series(
    topo_file: &Path,
    lab_id: &str,
    state_root: &Path,
    bins: &Path,
    a: &BenchArgs,
    kind: SpeakerKind,
    file: &mut BenchFile,
) -> Result<()> {
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
    let mut opts = drill::Options {
        step: if kind == SpeakerKind::Primaryd {
            drill::Options::default().step
        } else {
            // exabgp-default and a hung server: three 5 s timeouts, 1 s apart, after up to
            // a 5 s interval.
            Duration::from_secs(60)
        },
        ..Default::default()
    };
    for run in 1..=a.runs {
        for &sc in &a.scenarios {
            for &client in &a.clients {
                opts.client = client;
                opts.promote_at_fault = client != Client::Retry;
                let s = one_run(
                    &mut lab,
                    bins,
                    run,
                    sc,
                    &settings,
                    a.primary.as_deref(),
                    &opts,
                );
                progress(&s, a.runs);
                file.samples.push(s);
                if let Some(j) = &a.json {
                    write_json(j, file)?;
                }
            }
        }
    }
    let _ = lab.remove_generated();
    Ok(())
}

/// A sample for a run that produced no report.
fn failed_sample(kind: SpeakerKind, client: Client, sc: Scenario, run: usize, e: String) -> Sample {
    Sample {
        speaker: kind,
        client,
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
        start_delays_ms: BTreeMap::new(),
        pre_fault_delay_ms: 0,
        long_attempts: Vec::new(),
        events: Vec::new(),
    }
}

/// The drill of a run on a lab that is up: from `primary` first when asked (a graceful
/// switchover, whose promotion waits until the old primary's writes reached the new one).
fn drill_from(
    lab: &Lab,
    sc: Scenario,
    primary: Option<&str>,
    opts: &drill::Options,
) -> Result<drill::Report> {
    let Some(p) = primary else {
        return drill::run_with(lab, sc, None, opts);
    };
    let first = drill::Options {
        client: Client::Retry,
        promote_at_fault: false,
        ..opts.clone()
    };
    match drill::run_with(lab, Scenario::Switchover, Some(p), &first) {
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
    }
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
fn one_run(
    lab: &mut Lab,
    bins: &Path,
    run: usize,
    sc: Scenario,
    settings: &CheckSettings,
    primary: Option<&str>,
    opts: &drill::Options,
) -> Sample {
    // One check cycle of the speaker: the range of the random phases.
    let cycle_ms = settings.interval_ms.round().max(1.0) as u64;
    let mut start_delays_ms = BTreeMap::new();
    for n in lab.topo.nodes.iter_mut().filter(|n| n.role == Role::Db) {
        let d = crate::util::random_below(cycle_ms);
        n.env.insert("LAB_START_DELAY_MS".into(), d.to_string());
        start_delays_ms.insert(n.name.clone(), d);
    }
    let pre_fault_delay_ms = crate::util::random_below(cycle_ms);
    let lab: &Lab = lab;
    let kind = settings.speaker;
    // A lab that fails to come up is removed and tried once more.
    let mut up = Err(anyhow::anyhow!("not tried"));
    for _ in 0..2 {
        up = lab.up(bins);
        if up.is_ok() {
            break;
        }
        let _ = lab.down();
    }
    let mut s = match up {
        Err(e) => failed_sample(kind, opts.client, sc, run, format!("up: {e:#}")),
        Ok(()) => {
            std::thread::sleep(Duration::from_millis(pre_fault_delay_ms));
            let report = drill_from(lab, sc, primary, opts);
            let down = lab.down();
            let mut s = match report {
                Ok(r) => sample_of(&lab.topo, kind, opts.client, run, &r, settings),
                Err(e) => failed_sample(kind, opts.client, sc, run, format!("drill: {e:#}")),
            };
            if let Err(e) = down {
                s.error.get_or_insert(format!("down: {e:#}"));
            }
            s
        }
    };
    s.start_delays_ms = start_delays_ms;
    s.pre_fault_delay_ms = pre_fault_delay_ms;
    s
}

pub fn load(path: &Path) -> Result<BenchFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a bench JSON file", path.display()))
}

/// The plot of one metric (the outage; the longest wait) of the samples of `files`.
pub fn plot(files: &[BenchFile], png: &Path, metric: &str) -> Result<()> {
    let all = || files.iter().flat_map(|f| f.samples.iter());
    let scenarios: Vec<&str> = report::scenarios_of(files)
        .iter()
        .map(|s| s.name())
        .collect();
    let whos: Vec<String> = report::whos_of(files).iter().map(|w| w.name()).collect();
    let names: Vec<(&str, String, Option<f64>)> = all()
        .filter(|s| s.error.is_none())
        .map(|s| {
            (
                s.scenario.name(),
                s.who().name(),
                s.metrics.get(metric).copied(),
            )
        })
        .collect();
    let m = crate::plot::outage_series(names.iter().map(|(sc, w, v)| (*sc, w.as_str(), *v)));
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
    let what = METRICS
        .iter()
        .find(|(k, _)| *k == metric)
        .map_or(metric, |(_, l)| *l);
    crate::plot::values_png(
        png,
        &format!(
            "{what} per failover drill: up to {runs} runs per scenario and series (lab, {cpus} \
             vCPUs); lower is better"
        ),
        what,
        &scenarios,
        &whos.iter().map(String::as_str).collect::<Vec<_>>(),
        &series,
    )
}

/// The outage plot at `png`; with client profiles, their longest waits beside it
/// (`NAME-wait.png`).
pub fn plots(files: &[BenchFile], png: &Path) -> Result<()> {
    plot(files, png, "outage")?;
    if report::samples(files).any(|s| s.client != Client::Retry) {
        let stem = png
            .file_stem()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default();
        let wait = png.with_file_name(format!("{stem}-wait.png"));
        plot(files, &wait, "longest_wait")?;
        eprintln!("bench: longest waits drawn in {}", wait.display());
    }
    Ok(())
}
