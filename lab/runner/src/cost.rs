//! `primaryd-lab cost`: what the announcing daemon costs on the primary's host while all is
//! well: CPU, memory, and the queries it sends to MySQL, for primaryd and for ExaBGP +
//! exabgp-healthcheck, at several check intervals; and for primaryd with many services.
//!
//! Each configuration gets a fresh lab; after it converged and settled, the speaker's
//! processes on the primary (the daemon and everything it started, found through /proc) are
//! measured over a window:
//! - CPU from /proc/PID/stat: utime + stime + cutime + cstime of each process alive at both
//!   ends of the window (a check process that exited was waited for by its parent, so its time
//!   is in the parent's cutime/cstime by then), and, where the cgroup v1 `cpuacct` controller
//!   is mounted, from a cgroup the processes are moved into (their children start in it too),
//!   which counts in nanoseconds, short-lived processes included;
//! - RSS and PSS (/proc/PID/status, smaps_rollup) of those processes, sampled every second;
//! - the MySQL server's `Questions`, `Queries` and `Connections` counters before and after
//!   (`SHOW GLOBAL STATUS`, less the one statement and connection of the reading itself).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::lab::Lab;
use crate::speaker::{Speaker, SpeakerKind};
use crate::topo::Role;
use crate::util;

const CPUACCT: &str = "/sys/fs/cgroup/cpuacct";

/// The cgroup a lab's measured processes are moved into.
pub fn cgroup_dir(lab_id: &str) -> PathBuf {
    Path::new(CPUACCT).join(format!("primaryd-lab-{lab_id}"))
}

/// Removes the lab's cgroup, moving what is left in it back to the root.
pub fn remove_cgroup(lab_id: &str) {
    let dir = cgroup_dir(lab_id);
    if !dir.exists() {
        return;
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for p in procs.split_whitespace() {
            let _ = std::fs::write(Path::new(CPUACCT).join("cgroup.procs"), p);
        }
    }
    let _ = std::fs::remove_dir(&dir);
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostSample {
    pub speaker: SpeakerKind,
    pub interval_ms: u64,
    pub services: usize,
    pub description: String,
    pub window_s: f64,
    /// `comm(pid)` of the processes measured (alive at both ends of the window).
    pub processes: Vec<String>,
    /// CPU time over the window as % of one core, from /proc/PID/stat (10 ms ticks).
    pub cpu_percent_proc: f64,
    /// The same from the cpuacct cgroup (ns), when available.
    pub cpu_percent_cgroup: Option<f64>,
    /// The MySQL server's own CPU over the window (/proc/PID/stat), % of one core: what
    /// serving the checks (and nothing else: the lab is idle) costs the database host.
    pub server_cpu_percent: f64,
    pub rss_kib_mean: f64,
    pub rss_kib_max: u64,
    pub pss_kib_mean: f64,
    /// MySQL server counters per second over the window.
    pub questions_per_s: f64,
    pub queries_per_s: f64,
    pub connections_per_s: f64,
    /// Connections of the check user open at the end.
    pub check_user_connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostFile {
    pub benchmark: String,
    pub command: String,
    pub machine: crate::bench::Machine,
    pub window_s: u64,
    pub samples: Vec<CostSample>,
}

pub struct CostArgs {
    pub speakers: Vec<SpeakerKind>,
    pub intervals: Vec<u64>,
    pub services: usize,
    pub window_s: u64,
    pub settle_s: u64,
    pub json: Option<PathBuf>,
    pub command: String,
}

struct ProcStat {
    comm: String,
    ppid: i32,
    /// utime + stime, cutime + cstime, in ticks.
    own: u64,
    children: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
    // After the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    Some(ProcStat {
        comm,
        ppid: n(1) as i32,
        own: (n(11) + n(12)) as u64,
        children: (n(13) + n(14)) as u64,
    })
}

/// The MySQL server: a child of the daemon in the lab (lab-db-start starts it in the
/// background and then becomes the daemon with `exec`), but not part of the daemon's cost.
const SERVER: &str = "mariadbd";

/// `root` and its descendants, except the MySQL server.
fn tree(root: i32) -> Vec<i32> {
    let mut all: Vec<(i32, i32, String)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                if let Some(st) = proc_stat(pid) {
                    all.push((pid, st.ppid, st.comm));
                }
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(
            all.iter()
                .filter(|(_, pp, comm)| *pp == p && comm != SERVER)
                .map(|(c, _, _)| *c),
        );
        i += 1;
    }
    out
}

fn status_kib(pid: i32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn clock_ticks() -> f64 {
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn mysql_counters(lab: &Lab, node: &str) -> Result<BTreeMap<String, f64>> {
    let rows = crate::sql::query(
        lab,
        node,
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Queries', 'Connections')",
        5,
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some((
                r.get("Variable_name")?.clone(),
                r.get("Value")?.parse::<f64>().ok()?,
            ))
        })
        .collect())
}

/// Moves every process of the tree into a fresh cpuacct cgroup (what they start from then on is
/// in it too): the file of its usage, None without cgroup v1's cpuacct.
fn cgroup_of(lab: &Lab, root: i32) -> Result<Option<PathBuf>> {
    if !Path::new(CPUACCT).join("cgroup.procs").exists() {
        return Ok(None);
    }
    let cg = cgroup_dir(&lab.id);
    remove_cgroup(&lab.id);
    std::fs::create_dir(&cg).with_context(|| format!("mkdir {}", cg.display()))?;
    for p in tree(root) {
        let _ = std::fs::write(cg.join("cgroup.procs"), p.to_string());
    }
    Ok(Some(cg.join("cpuacct.usage")))
}

fn usage(cgroup: Option<&PathBuf>) -> Option<u64> {
    cgroup.and_then(|f| {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    })
}

/// RSS and PSS (KiB) of `pids`, every second over the window: (RSS samples, PSS samples).
fn sample_memory(pids: &[i32], window: Duration) -> (Vec<f64>, Vec<f64>) {
    let t0 = Instant::now();
    let (mut rss, mut pss) = (Vec::new(), Vec::new());
    while t0.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed())));
        let sum =
            |file: &str, key: &str| -> u64 { pids.iter().map(|p| status_kib(*p, file, key)).sum() };
        rss.push(sum("status", "VmRSS:") as f64);
        pss.push(sum("smaps_rollup", "Pss:") as f64);
    }
    (rss, pss)
}

/// CPU ticks of the processes alive at both ends (with their waited-for children's), and their
/// names; an error when none lived through the window.
fn ticks_between(
    start: &BTreeMap<i32, ProcStat>,
    comm: &str,
    node: &str,
) -> Result<(u64, Vec<String>)> {
    let mut ticks = 0u64;
    let mut processes = Vec::new();
    for (pid, s) in start {
        let Some(e) = proc_stat(*pid) else { continue };
        if s.comm != e.comm {
            continue;
        }
        ticks += (e.own + e.children).saturating_sub(s.own + s.children);
        processes.push(format!("{}({pid})", e.comm));
    }
    if processes.is_empty() {
        bail!("the {comm} processes on {node} did not live through the window");
    }
    Ok((ticks, processes))
}

fn check_user_connections(lab: &Lab, node: &str) -> Result<usize> {
    Ok(crate::sql::query(
        lab,
        node,
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'primaryd'",
        5,
    )?
    .first()
    .and_then(|r| r.get("n"))
    .and_then(|n| n.parse().ok())
    .unwrap_or(0))
}

fn pid_in(lab: &Lab, node: &str, comm: &str) -> Result<i32> {
    util::netns_pids(&lab.netns(node))
        .into_iter()
        .find(|p| util::comm(*p) == comm)
        .with_context(|| format!("no {comm} process on {node}"))
}

fn measure(lab: &Lab, node: &str, kind: SpeakerKind, window: Duration) -> Result<CostSample> {
    let comm = if kind.is_exabgp() {
        "exabgp"
    } else {
        "primaryd"
    };
    let root = pid_in(lab, node, comm)?;
    let cgroup = cgroup_of(lab, root)?;
    std::thread::sleep(Duration::from_secs(1));
    let start: BTreeMap<i32, ProcStat> = tree(root)
        .into_iter()
        .filter_map(|p| proc_stat(p).map(|s| (p, s)))
        .collect();
    let server = pid_in(lab, node, SERVER)?;
    let server0 = proc_stat(server).map(|s| s.own).unwrap_or(0);
    let my0 = mysql_counters(lab, node)?;
    let u0 = usage(cgroup.as_ref());
    let t0 = Instant::now();
    let pids: Vec<i32> = start.keys().copied().collect();
    let (rss, pss) = sample_memory(&pids, window);
    let u1 = usage(cgroup.as_ref());
    let elapsed = t0.elapsed().as_secs_f64();
    let my1 = mysql_counters(lab, node)?;
    let server1 = proc_stat(server).map(|s| s.own).unwrap_or(0);
    let alive = ticks_between(&start, comm, node);
    let connections = check_user_connections(lab, node);
    remove_cgroup(&lab.id);
    let (ticks, processes) = alive?;
    let d = |k: &str, own: f64| {
        (my1.get(k).copied().unwrap_or(0.0) - my0.get(k).copied().unwrap_or(0.0) - own).max(0.0)
            / elapsed
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let per_cent = |ticks: u64| ticks as f64 / clock_ticks() / elapsed * 100.0;
    Ok(CostSample {
        speaker: kind,
        interval_ms: 0,
        services: 1,
        description: String::new(),
        window_s: elapsed,
        processes,
        cpu_percent_proc: per_cent(ticks),
        server_cpu_percent: per_cent(server1.saturating_sub(server0)),
        cpu_percent_cgroup: u0
            .zip(u1)
            .map(|(a, b)| b.saturating_sub(a) as f64 / 1e9 / elapsed * 100.0),
        rss_kib_mean: mean(&rss),
        rss_kib_max: rss.iter().copied().fold(0.0, f64::max) as u64,
        pss_kib_mean: mean(&pss),
        // The closing reading is one statement on one new connection.
        questions_per_s: d("Questions", 1.0),
        queries_per_s: d("Queries", 1.0),
        connections_per_s: d("Connections", 1.0),
        check_user_connections: connections?,
    })
}

pub fn run(
    topo_file: &Path,
    lab_id: &str,
    state_root: &Path,
    bins: &Path,
    a: &CostArgs,
) -> Result<CostFile> {
    crate::lab::require_root()?;
    let mut file = CostFile {
        benchmark: "cost".into(),
        command: a.command.clone(),
        machine: crate::bench::machine(bins),
        window_s: a.window_s,
        samples: Vec::new(),
    };
    let mut configs: Vec<(SpeakerKind, u64, usize)> = Vec::new();
    for &i in &a.intervals {
        for &k in &a.speakers {
            configs.push((k, i, 1));
            if k == SpeakerKind::Primaryd && a.services > 1 {
                configs.push((k, i, a.services));
            }
        }
    }
    for (kind, interval, services) in configs {
        let mut sp = Speaker::new(kind);
        sp.interval_ms = Some(interval);
        sp.services = services;
        sp.instrumented = false;
        sp.rust_log = Some("info".into());
        let mut lab = Lab::new(lab_id, state_root, crate::topo::load(topo_file)?)?;
        let settings = lab.set_speaker(&sp)?;
        let primary = lab
            .topo
            .with_role(Role::Db)
            .find(|n| !n.env.contains_key("LAB_SOURCE"))
            .map(|n| n.name.clone())
            .context("no primary in the topology")?;
        eprintln!(
            "cost: {} ({}); settling {} s, measuring {} s on {primary}",
            kind.name(),
            settings.description,
            a.settle_s,
            a.window_s
        );
        let result = lab.up(bins).and_then(|()| {
            std::thread::sleep(Duration::from_secs(a.settle_s));
            measure(&lab, &primary, kind, Duration::from_secs(a.window_s))
        });
        let down = lab.down();
        let _ = lab.remove_generated();
        let mut s = result?;
        down?;
        s.interval_ms = interval;
        s.services = services;
        s.description = settings.description.clone();
        println!("{}", row(&s));
        file.samples.push(s);
        if let Some(j) = &a.json {
            std::fs::write(j, serde_json::to_string_pretty(&file)?)?;
        }
    }
    Ok(file)
}

pub fn load(path: &Path) -> Result<CostFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a cost JSON file", path.display()))
}

pub fn header() -> String {
    format!(
        "{:<14} {:>8} {:>9} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8}",
        "speaker",
        "services",
        "interval",
        "CPU % cg",
        "CPU % proc",
        "mysqld %",
        "RSS MiB",
        "PSS MiB",
        "MySQL q/s",
        "conn/s",
        "conns"
    )
}

pub fn row(s: &CostSample) -> String {
    format!(
        "{:<14} {:>8} {:>7}ms {:>10} {:>10.2} {:>8.2} {:>8.1} {:>8.1} {:>9.1} {:>9.2} {:>8}",
        s.speaker.name(),
        s.services,
        s.interval_ms,
        s.cpu_percent_cgroup
            .map(|c| format!("{c:.3}"))
            .unwrap_or("-".into()),
        s.cpu_percent_proc,
        s.server_cpu_percent,
        s.rss_kib_mean / 1024.0,
        s.pss_kib_mean / 1024.0,
        s.questions_per_s,
        s.connections_per_s,
        s.check_user_connections
    )
}

/// The table and the cost targets of DESIGN.md.
pub fn report(f: &CostFile) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "cost on the primary's host over {} s windows (CPU % of one core; cg = cpuacct cgroup, \
         proc = /proc/PID/stat ticks; mysqld % = the MySQL server's CPU; RSS and PSS summed over \
         the daemon's processes; MySQL questions and new connections per second; conns = the \
         check user's open connections)\n",
        f.window_s
    ));
    o.push_str(&format!("  {}\n", header()));
    for s in &f.samples {
        o.push_str(&format!("  {}\n", row(s)));
    }
    let cpu = |s: &CostSample| s.cpu_percent_cgroup.unwrap_or(s.cpu_percent_proc);
    let find = |k: SpeakerKind, i: u64| {
        f.samples
            .iter()
            .find(|s| s.speaker == k && s.interval_ms == i && s.services == 1)
    };
    if let Some(p) = find(SpeakerKind::Primaryd, 100) {
        let rss = p.rss_kib_mean / 1024.0;
        o.push_str(&format!(
            "\n  target at interval 100 ms: RSS <= 10 MiB: {rss:.1} MiB ({})\n",
            if rss <= 10.0 { "met" } else { "MISSED" }
        ));
        if let Some(e) = find(SpeakerKind::ExabgpFast, 100) {
            let ratio = cpu(e) / cpu(p).max(1e-9);
            o.push_str(&format!(
                "  target at interval 100 ms: CPU <= 1/20 of ExaBGP's: primaryd {:.3} %, ExaBGP \
                 {:.2} %: 1/{ratio:.0} ({})\n",
                cpu(p),
                cpu(e),
                if ratio >= 20.0 { "met" } else { "MISSED" }
            ));
        }
    }
    o
}
