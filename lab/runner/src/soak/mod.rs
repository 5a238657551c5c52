//! The chaos soak (issue 17, docs/lab.md): on one lab, a random fault every few seconds, each
//! followed by the recovery an orchestrator (or the fault's end) brings, while app1 writes
//! through the service address the whole time. After every step the invariants are checked
//! (invariants.rs); at the end, every acknowledged write is looked for on the final primary
//! (report.rs). Every choice comes from one seeded RNG, so a seed replays the same sequence of
//! faults and parameters (the timings are the machine's).

mod delay;
mod faults;
mod invariants;
mod probe;
mod recover;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::clients::Client;
use crate::lab::Lab;
use crate::scenario::Check;
use crate::util::{self, now_ms};
use crate::writer::Writer;

pub use faults::Fault;

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub minutes: f64,
    pub seed: u64,
    /// Go on after a step whose invariants failed (default: stop, and report it).
    pub keep_going: bool,
    pub json: Option<PathBuf>,
    /// The faults to pick from (empty: every one; the same seed then gives the same run).
    pub faults: Vec<Fault>,
}

/// xorshift64*: small, seeded, the same sequence everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed: seeds 0, 1, 2 ... start far apart, and never at 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In lo..hi (hi excluded; lo when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64) as usize]
    }

    /// True with probability pct/100.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.range(0, 100) < pct
    }
}

/// One fault and its recovery.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub n: usize,
    pub fault: Fault,
    /// What was done (target, parameters, the drill's old and new primary).
    pub detail: String,
    pub start_unix_ms: f64,
    pub end_unix_ms: f64,
    /// The primary announced everywhere once the step had settled.
    pub primary_after: Option<String>,
    /// Whether the fault may lose acknowledged writes (asynchronous replication, or a split
    /// brain's writes taken beside the new primary): those are counted, not failed.
    pub may_lose_writes: bool,
    /// The longest time without an acknowledged write of the soak's writer within the step.
    pub outage_ms: Option<f64>,
    /// Acknowledged writes that a drill's own report counted as lost.
    pub drill_lost: usize,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    /// A drill's timeline (the lab's logs go with the lab).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<crate::scenario::Event>,
    pub ok: bool,
}

/// The soak under way: the lab, the RNG, app1's writer for the whole soak.
pub(crate) struct Soak<'a> {
    pub lab: &'a Lab,
    pub rng: Rng,
    pub writer: Writer,
    pub run_id: i64,
    pub fabric: invariants::Fabric,
    pub sampler: invariants::Sampler,
}

impl Soak<'_> {
    /// The writer's current key (the next it writes).
    pub fn key(&self) -> u64 {
        self.writer.last_key().unwrap_or(1)
    }
}

/// `primaryd-lab soak`: up the lab when it is not (and down it at the end, also on failure),
/// run the soak, print the report.
pub fn cli(lab: &Lab, bins: &std::path::Path, opts: &Options) -> Result<ExitCode> {
    let started = if util::netns_list().contains(&lab.netns("db1")) {
        eprintln!("soak: using lab {} (already up)", lab.id);
        false
    } else {
        eprintln!("soak: bringing lab {} up", lab.id);
        if let Err(e) = lab.up(bins) {
            let _ = lab.down();
            return Err(e);
        }
        true
    };
    let result = run(lab, opts);
    if let Some(f) = &opts.json {
        save_logs(lab, &f.with_extension("logs"));
    }
    if started {
        match lab.down() {
            Ok(_) => eprintln!("soak: lab {} removed", lab.id),
            Err(e) => eprintln!("soak: removing lab {}: {e:#}", lab.id),
        }
    }
    let summary = result?;
    println!("{}", report::print(&summary));
    if let Some(f) = &opts.json {
        std::fs::write(f, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every node's console log (primaryd's, with its timestamps) beside the JSON summary: the
/// lab's own go with it.
fn save_logs(lab: &Lab, dir: &std::path::Path) {
    let _ = std::fs::create_dir_all(dir);
    for n in &lab.topo.nodes {
        let _ = std::fs::copy(
            lab.console_log(&n.name),
            dir.join(format!("{}.log", n.name)),
        );
    }
    eprintln!("soak: the nodes' console logs are in {}", dir.display());
}

pub fn run(lab: &Lab, opts: &Options) -> Result<report::Summary> {
    let fabric = invariants::Fabric::of(lab)?;
    // A run id of milliseconds: never one of the drills' (seconds).
    let run_id = now_ms() as i64;
    let app = format!("/run/netns/{}", lab.netns("app1"));
    let mut soak = Soak {
        lab,
        rng: Rng::new(opts.seed),
        writer: Writer::start(app.into(), run_id, Client::Retry)?,
        run_id,
        sampler: invariants::Sampler::start(lab, &fabric)?,
        fabric,
    };
    eprintln!(
        "soak: seed {}, {} minutes, lab {}; app1 writes through 192.0.2.10 (run {run_id})",
        opts.seed, opts.minutes, lab.id
    );
    let t0 = now_ms();
    let first = invariants::settle(&soak, Duration::from_secs(30));
    let mut steps: Vec<Step> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(opts.minutes * 60.0);
    let mut stopped = None;
    if let Some(c) = first.checks.last() {
        eprintln!("soak: before the first fault: {}: {}", c.name, c.detail);
    }
    if !first.ok {
        stopped = Some(format!(
            "the lab was not settled before the first fault: {first:?}"
        ));
    }
    while stopped.is_none() && Instant::now() < deadline {
        let fault = *soak.rng.pick(if opts.faults.is_empty() {
            Fault::ALL
        } else {
            &opts.faults
        });
        let step = faults::step(&mut soak, steps.len() + 1, fault);
        eprintln!("{}", report::step_line(&step));
        let ok = step.ok;
        steps.push(step);
        if !ok && !opts.keep_going {
            stopped = Some(format!("step {} failed", steps.len()));
        }
        // "Every few seconds": a pause of 1 to 4 s between the steps.
        std::thread::sleep(Duration::from_millis(soak.rng.range(1000, 4000)));
    }
    let Soak {
        writer, sampler, ..
    } = soak;
    let attempts = writer.stop();
    let doubles = sampler.stop();
    Ok(report::summarize(
        lab,
        &invariants::Fabric::of(lab)?,
        opts,
        run_id,
        t0,
        steps,
        attempts,
        doubles,
        stopped,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let seq = |seed| {
            let mut r = Rng::new(seed);
            (0..50).map(|_| *r.pick(Fault::ALL)).collect::<Vec<_>>()
        };
        assert_eq!(seq(7), seq(7));
        assert_ne!(seq(7), seq(8));
    }

    #[test]
    fn every_fault_comes_up_and_ranges_hold() {
        let mut r = Rng::new(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5000 {
            seen.insert(r.pick(Fault::ALL).name());
            let x = r.range(10, 20);
            assert!((10..20).contains(&x), "{x}");
        }
        assert_eq!(seen.len(), Fault::ALL.len());
        assert_eq!(r.range(5, 5), 5);
    }
}
