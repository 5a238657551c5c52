//! The orchestrator drill: the recipes of docs/operations.md run by the very hook script the
//! package ships (`packaging/orchestrator/primaryd-orchestrator-hook`), with
//! `primaryd-lab exec NODE` in place of ssh. orchestrator itself is not packaged or run here:
//! the runner does its database steps (read_only, catch-up, `RESET SLAVE ALL`, repointing)
//! and calls the hooks where orchestrator calls them.
//!
//! `drill`: an aborted takeover (the drain cannot be confirmed), a graceful takeover
//! db1 -> db2 (PreGracefulTakeoverProcesses drains, PostGracefulTakeoverProcesses checks the
//! new primary and undrains the old), an aborted failover (the "failed" primary still
//! announces), and a failover after db2's MariaDB is killed (PreFailoverProcesses, then
//! PostMasterFailoverProcesses on db1). `bench`: promotion -> announce sent, with the
//! post-promotion hook and without it (the regular check), over alternating takeovers.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::fault;
use crate::lab::Lab;
use crate::logparse;
use crate::routers;
use crate::sql;
use crate::timeline;
use crate::util::{now_ms, wait_for};

const SERVICE: &str = "main";
const STEP: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(5);

/// The hook script and how it reaches a node.
pub struct Hooks {
    script: PathBuf,
    remote: String,
}

/// One hook run: its exit status and what it printed.
#[derive(Debug, Clone, Serialize)]
pub struct HookRun {
    pub args: Vec<String>,
    pub exit: i32,
    pub output: String,
    pub started_ms: f64,
    pub took_ms: f64,
}

impl Hooks {
    pub fn new(lab: &Lab) -> Result<Hooks> {
        let script =
            crate::workspace_dir().join("packaging/orchestrator/primaryd-orchestrator-hook");
        if !script.is_file() {
            bail!("{} is missing", script.display());
        }
        let exe = std::env::current_exe().context("the runner's own path")?;
        let state_root = lab.dir.parent().context("the lab's state root")?;
        let remote = format!(
            "{} --lab {} --state-root {} --topology {} exec",
            exe.display(),
            lab.id,
            state_root.display(),
            lab.topo.file.display()
        );
        Ok(Hooks { script, remote })
    }

    /// Runs the hook with `args`; `primaryctl` replaces the command the hook runs on a node.
    pub fn run(&self, args: &[&str], primaryctl: Option<&str>) -> Result<HookRun> {
        let mut c = Command::new("sh");
        c.arg(&self.script)
            .args(args)
            .env("PRIMARYD_HOOK_REMOTE", &self.remote);
        if let Some(p) = primaryctl {
            c.env("PRIMARYD_HOOK_PRIMARYCTL", p);
        }
        let started_ms = now_ms();
        let out = c.output().context("running the hook")?;
        Ok(HookRun {
            args: args.iter().map(|a| a.to_string()).collect(),
            exit: out.status.code().unwrap_or(-1),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            started_ms,
            took_ms: now_ms() - started_ms,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    pub what: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub hooks: Vec<HookRun>,
    pub checks: Vec<Check>,
    /// Promotion done -> the new primary's `sending UPDATE` with the service prefix.
    pub promotion_to_announce_ms: Vec<(String, f64)>,
    pub ok: bool,
}

impl Report {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        eprintln!("  [{}] {what}", if ok { " ok " } else { "FAIL" });
        self.checks.push(Check { ok, what });
    }

    /// Runs a hook, records it, checks its exit status.
    fn hook(
        &mut self,
        hooks: &Hooks,
        args: &[&str],
        ctl: Option<&str>,
        want: i32,
        why: &str,
    ) -> Result<HookRun> {
        let r = hooks.run(args, ctl)?;
        let ok = r.exit == want;
        self.check(
            ok,
            format!(
                "{why}: `{}` exits {} ({:.0} ms)",
                args.join(" "),
                r.exit,
                r.took_ms
            ),
        );
        if !ok {
            eprintln!("{}", r.output);
        }
        self.hooks.push(r.clone());
        Ok(r)
    }
}

/// The lab's DB hosts, and where the routers' routes to the service lead.
pub struct Fabric {
    dbs: Vec<String>,
    routes: routers::Fabric,
}

impl Fabric {
    pub fn of(lab: &Lab) -> Fabric {
        Fabric {
            dbs: routers::db_names(lab),
            routes: routers::Fabric::of(lab),
        }
    }

    /// The one writable, non-replicating server.
    pub fn primary(&self, lab: &Lab) -> Result<String> {
        let mut found = Vec::new();
        for d in &self.dbs {
            let s = sql::db_state(lab, d).with_context(|| format!("{d} does not answer"))?;
            if !s.read_only && s.replication.is_none() {
                found.push(d.clone());
            }
        }
        match found.as_slice() {
            [one] => Ok(one.clone()),
            _ => bail!("expected one writable, non-replicating server, found {found:?}"),
        }
    }

    fn others(&self, but: &[&str]) -> Vec<String> {
        self.dbs
            .iter()
            .filter(|d| !but.contains(&d.as_str()))
            .cloned()
            .collect()
    }
}

/// The first UPDATE (`event=update_sent`) announcing the service prefix in `node`'s log at or
/// after `from_ms`, waited for (the log is written as it happens).
fn announce_sent(lab: &Lab, node: &str, from_ms: f64, within: Duration) -> Option<f64> {
    wait_for(within, Duration::from_millis(20), || {
        let text = std::fs::read_to_string(lab.console_log(node)).ok()?;
        timeline::update_sent(&logparse::parse(&text), from_ms, "announce").map(|l| l.t_ms)
    })
}

/// orchestrator's promotion of `new`: `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0`
/// once it has `pos` (when given). Returns when the statement was sent and when it was done
/// (Unix ms): an announce can only follow the first; "promotion" is the second.
fn promote(lab: &Lab, new: &str, pos: Option<&str>) -> Result<(f64, f64)> {
    if let Some(pos) = pos.filter(|p| !p.is_empty()) {
        let r = sql::value(lab, new, &format!("SELECT MASTER_GTID_WAIT('{pos}', 10)"))?;
        if r != "0" {
            bail!("{new} did not reach GTID {pos} within 10 s");
        }
    }
    let sent = now_ms();
    sql::exec(
        lab,
        new,
        "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0",
    )?;
    Ok((sent, now_ms()))
}

/// A graceful takeover `old` -> `new` as orchestrator does it, with its hooks; `post_hook`
/// false leaves the announce to the new primary's regular check (the benchmark's baseline).
/// Returns promotion done -> announce sent, in ms.
fn graceful_takeover(
    lab: &Lab,
    f: &Fabric,
    hooks: &Hooks,
    r: &mut Report,
    (old, new): (&str, &str),
    post_hook: bool,
) -> Result<f64> {
    r.hook(
        hooks,
        &["pre-graceful-takeover", old, SERVICE],
        None,
        0,
        "PreGracefulTakeoverProcesses drains the old primary",
    )?;
    let gone = wait_for(STEP, POLL, || {
        f.routes.none_leads_to(lab, old).then_some(())
    });
    r.check(
        gone.is_some(),
        format!("no router leads to {old} once it is drained"),
    );
    // The siblings move under the new primary first; the old one goes read-only.
    let new_addr = sql::loopback(lab, new)?;
    for o in f.others(&[old, new]) {
        sql::replicate_from(lab, &o, &new_addr)?;
    }
    sql::exec(lab, old, "SET GLOBAL read_only=1")?;
    let pos = sql::value(lab, old, "SELECT @@gtid_binlog_pos")?;
    let (asked, promoted) = promote(lab, new, Some(&pos))?;
    if post_hook {
        r.hook(
            hooks,
            &["post-graceful-takeover", new, old, SERVICE],
            None,
            0,
            "PostGracefulTakeoverProcesses: check on the new primary, undrain the old",
        )?;
    }
    let sent = announce_sent(lab, new, asked, STEP)
        .with_context(|| format!("{new} never sent the announce"))?;
    sql::replicate_from(lab, old, &new_addr)?;
    if !post_hook {
        lab.node_run(old, &["timeout", "10", "primaryctl", "undrain", SERVICE])?;
    }
    let routed = wait_for(STEP, POLL, || f.routes.all_lead_to(lab, new).then_some(()));
    r.check(routed.is_some(), format!("every router leads to {new}"));
    Ok(sent - promoted)
}

/// The drill. Needs a freshly `up` lab (db1 primary, db2 and db3 its replicas).
pub fn drill(lab: &Lab) -> Result<Report> {
    let f = Fabric::of(lab);
    let hooks = Hooks::new(lab)?;
    let mut r = Report::default();
    let old = f.primary(lab)?;
    let new = f
        .dbs
        .iter()
        .find(|d| **d != old)
        .cloned()
        .context("no replica")?;

    eprintln!(
        "orchestrator drill in lab {}: {old} -> {new} -> {old}",
        lab.id
    );
    // 1. A takeover whose drain cannot be confirmed is aborted: nothing moves.
    let broken = "primaryctl --socket /run/primaryd/absent.sock";
    r.hook(
        &hooks,
        &["pre-graceful-takeover", &old, SERVICE],
        Some(broken),
        1,
        "a drain that cannot be confirmed aborts the takeover",
    )?;
    r.check(
        f.routes.all_lead_to(lab, &old),
        format!("every router still leads to {old}"),
    );
    // 2. The graceful takeover.
    let ms = graceful_takeover(lab, &f, &hooks, &mut r, (&old, &new), true)?;
    r.promotion_to_announce_ms
        .push(("graceful takeover, post hook".into(), ms));
    let services = lab.node_run(&old, &["primaryctl", "show", "services", "--json"])?;
    r.check(
        services.contains("\"drained\": false"),
        format!("{old} is undrained after the takeover"),
    );

    failover(lab, &f, &hooks, &mut r, (&new, &old))?;
    r.ok = r.checks.iter().all(|c| c.ok);
    for (what, ms) in &r.promotion_to_announce_ms {
        eprintln!("  promotion -> announce sent ({what}): {ms:.1} ms");
    }
    Ok(r)
}

/// Steps 3 and 4 of the drill: a failover away from `new` (the primary since the takeover)
/// back to `old`, aborted while `new` still announces, gone ahead once its MariaDB died.
fn failover(
    lab: &Lab,
    f: &Fabric,
    hooks: &Hooks,
    r: &mut Report,
    (new, old): (&str, &str),
) -> Result<()> {
    // 3. A failover for a primary that still announces is aborted.
    r.hook(
        hooks,
        &["pre-failover", new, SERVICE],
        None,
        1,
        "PreFailoverProcesses aborts while the primary still announces",
    )?;

    // 4. The primary's MariaDB dies; the failover goes ahead.
    let pid = fault::pid_of(lab, new, "mariadbd")?;
    fault::signal(pid, nix::sys::signal::Signal::SIGKILL)?;
    let gone = wait_for(STEP, POLL, || {
        f.routes.none_leads_to(lab, new).then_some(())
    });
    r.check(
        gone.is_some(),
        format!("{new}'s routes are gone after its MariaDB was killed"),
    );
    r.hook(
        hooks,
        &["pre-failover", new, SERVICE],
        None,
        0,
        "PreFailoverProcesses lets the failover go on once the dead primary does not announce",
    )?;
    let pos = sql::replication(lab, old)?
        .first()
        .map(|c| c.gtid_io_pos.clone())
        .unwrap_or_default();
    let (asked, promoted) = promote(lab, old, Some(&pos))?;
    r.hook(
        hooks,
        &["post-promotion", old, SERVICE],
        None,
        0,
        "PostMasterFailoverProcesses: check on the promoted replica",
    )?;
    let sent = announce_sent(lab, old, asked, STEP).context("no announce")?;
    r.promotion_to_announce_ms
        .push(("failover, post hook".into(), sent - promoted));
    let old_addr = sql::loopback(lab, old)?;
    for o in f.others(&[old, new]) {
        sql::replicate_from(lab, &o, &old_addr)?;
    }
    let routed = wait_for(STEP, POLL, || f.routes.all_lead_to(lab, old).then_some(()));
    r.check(routed.is_some(), format!("every router leads to {old}"));
    Ok(())
}

#[derive(Debug, Default, Serialize)]
pub struct BenchReport {
    pub command: String,
    pub interval_ms: Option<u64>,
    pub with_hook_ms: Vec<f64>,
    pub without_hook_ms: Vec<f64>,
}

/// `runs` graceful takeovers back and forth per variant, alternating with and without the
/// post-promotion hook.
pub fn bench(lab: &Lab, runs: usize, command: String) -> Result<BenchReport> {
    let f = Fabric::of(lab);
    let hooks = Hooks::new(lab)?;
    let mut out = BenchReport {
        command,
        ..BenchReport::default()
    };
    let mut primary = f.primary(lab)?;
    for i in 0..2 * runs {
        let with = i % 2 == 0;
        let next = f
            .dbs
            .iter()
            .find(|d| **d != primary)
            .cloned()
            .context("no replica")?;
        let mut r = Report::default();
        let t = Instant::now();
        let ms = graceful_takeover(lab, &f, &hooks, &mut r, (&primary, &next), with)?;
        if let Some(c) = r.checks.iter().find(|c| !c.ok) {
            bail!("run {i}: {}", c.what);
        }
        eprintln!(
            "run {:>2} {}: {primary} -> {next}: promotion -> announce sent {ms:.1} ms ({:.1?} in all)",
            i / 2 + 1,
            if with { "with hook   " } else { "without hook" },
            t.elapsed()
        );
        if with {
            &mut out.with_hook_ms
        } else {
            &mut out.without_hook_ms
        }
        .push(ms);
        primary = next;
    }
    Ok(out)
}

/// p50/p90/p99/max of each variant, as text.
pub fn bench_table(b: &BenchReport) -> String {
    let mut s =
        String::from("promotion -> announce sent (ms)   runs   p50     p90     p99     max\n");
    for (name, v) in [
        ("with primaryctl check hook", &b.with_hook_ms),
        ("without (regular check)", &b.without_hook_ms),
    ] {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        let p = |q: f64| crate::stats::percentile(&v, q).map_or("-".into(), |x| format!("{x:.1}"));
        s.push_str(&format!(
            "{name:<34} {:<6} {:<7} {:<7} {:<7} {}\n",
            v.len(),
            p(0.5),
            p(0.9),
            p(0.99),
            v.last().map_or("-".into(), |x| format!("{x:.1}"))
        ));
    }
    s
}

/// `primaryd-lab orchestrator-drill [--json FILE]`: exit 1 when a check fails.
pub fn cli_drill(lab: &Lab, json: Option<&std::path::Path>) -> Result<std::process::ExitCode> {
    crate::lab::require_root()?;
    let r = drill(lab)?;
    if let Some(f) = json {
        std::fs::write(f, serde_json::to_string_pretty(&r)?)?;
    }
    println!(
        "orchestrator drill: {}",
        if r.ok { "PASSED" } else { "FAILED" }
    );
    Ok(if r.ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// `primaryd-lab bench-hook [--runs N] [--json FILE]`, on an up lab.
pub fn cli_bench(
    lab: &Lab,
    runs: usize,
    json: Option<&std::path::Path>,
    command: String,
) -> Result<std::process::ExitCode> {
    crate::lab::require_root()?;
    let mut b = bench(lab, runs, command)?;
    // The check interval the DB hosts run with (`up --interval-ms`, else the lab's file).
    b.interval_ms = lab
        .node_run("db1", &["cat", "/etc/primaryd/primaryd.toml"])
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t["service"].as_array()?.first()?["mysql"]["interval_ms"].as_integer())
        .map(|i| i as u64);
    if let Some(f) = json {
        std::fs::write(f, serde_json::to_string_pretty(&b)?)?;
    }
    print!("{}", bench_table(&b));
    Ok(std::process::ExitCode::SUCCESS)
}
