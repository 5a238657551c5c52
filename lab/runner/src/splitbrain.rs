//! The split-brain drills (docs/lab.md, docs/safety.md): an old primary that comes back, or
//! never left, beside a newly promoted one.
//!
//! - `restart`: SIGKILL the primary's mariadbd, promote a replica, then start the old server
//!   again: it comes up writable (`read_only=OFF`), replicating from nobody.
//! - `heal`: the primary's uplinks down, promote a replica, the links up again: the old host
//!   never failed a check.
//! - `double-promote`: promote a replica while the old primary stays a healthy writable
//!   primary (the promoter wrongly believed it dead).
//!
//! Each passes only if, once the new primary's route was announced, no router's BGP table
//! (bgptable.rs: every path, not only the best) keeps a path to the old primary for the service
//! prefixes (double-promote: within a generous bound, the figure reported), no write is
//! acknowledged by the old primary after the new one's first, and the old host says why it
//! does not announce (`conflict` or `held` in `primaryctl show routes` and `show services`,
//! the `event=conflict` line in its log). The lab is then left reusable: the old primary
//! rejoins as a replica of the new one, as a DBA would rejoin a deposed primary.

use std::time::Duration;

use anyhow::{bail, Result};
use nix::sys::signal::Signal;

use crate::bgptable::{self, Hosts, Reading, Watch};
use crate::cast::{self, Cast, Steady};
use crate::fault;
use crate::lab::Lab;
use crate::logparse::{self, LogLine};
use crate::oldprimary::{
    act_two, await_refusal, conflict_logged, old_state_checks, old_view, rejoin,
};
use crate::outcome;
use crate::promote;
use crate::scenario::{failed, Check, Ctx, Daemon, Findings, Options, Report, Scenario, POLL};
use crate::sql;
use crate::timeline;
use crate::util::{now_ms, wait_for};

/// How long the old host is watched once it refuses: the old primary announced again
/// 0.6 s after its server came back; three times that, plus a check cycle or two.
const OBSERVE: Duration = Duration::from_millis(2000);
/// The drill's bound on how long any BGP table may keep the old primary's path after the new
/// primary's announce in `double-promote` (generous: CI machines are slow). The figure itself
/// is the benchmark's (docs/benchmarks.md, target 100 ms p99).
const DOUBLE_PROMOTE_BOUND_MS: f64 = 1500.0;
/// The longest a router's table may go unread (failed readings) once the new primary announced:
/// a path to the old primary could come and go unseen in a longer gap (an announce then a
/// withdraw through an FRR router takes more than 100 ms).
const MAX_BLIND_MS: f64 = 50.0;

pub fn run(lab: &Lab, scenario: Scenario, to: Option<&str>, opts: &Options) -> Result<Report> {
    let step = opts.step;
    let c = cast::cast(lab, scenario, to, step)?;
    if c.daemon != Daemon::Primaryd {
        bail!(
            "the {} drill needs primaryd on the DB hosts (terms and conflicts are primaryd's)",
            scenario.name()
        );
    }
    let watch = Watch::start(lab, &c.routers, &c.fabric.prefixes, &Hosts::of(lab))?;
    let marks = marks_check(&watch, &c, step);
    let steady = cast::steady(lab, &c, step, opts.client)?;
    let mut ctx = Ctx::new(lab);
    let mut checks = vec![marks];

    // Act one: the fault (none for double-promote), the promotion, the service moved.
    let detail = inject(&mut ctx, scenario, &c)?;
    ctx.at("fault_injected", Some(ctx.t0), Some(&c.old), detail);
    let branch = act_one(&mut ctx, scenario, &c, &watch, &mut checks, step);
    let settled = branch.is_some() && settle(&mut ctx, &c, &steady, &watch, &mut checks, step);
    // Act two: the old primary comes back (or is simply watched), and must refuse. Once a
    // replica was promoted the fault ends even if the service did not settle in time (its
    // check failed already): a drill that left the old server down or cut off would leave the
    // lab broken for whatever runs next (the soak).
    let mut old_state = None;
    if !settled && branch.is_some() {
        ctx.notes.push(format!(
            "the service did not settle on {}; {} comes back all the same",
            c.new, c.old
        ));
    }
    if branch.is_some() {
        match act_two(&mut ctx, scenario, &c, &mut checks) {
            Ok(s) => old_state = s,
            Err(e) => checks.push(failed("the old primary comes back", e)),
        }
        match await_refusal(&mut ctx, &c.old, step) {
            Some(_) => std::thread::sleep(OBSERVE),
            None => ctx.notes.push(format!(
                "{} never showed conflict or held within {step:?}",
                c.old
            )),
        }
    }
    let Steady {
        monitors,
        writer,
        run_id,
    } = steady;
    let record = Record {
        attempts: writer.stop(),
        changes: monitors.snapshot(),
        readings: watch.snapshot(),
        polls: watch.polls(),
        run_id,
        set_aside: [(run_id, 0), (-run_id, 0)]
            .into_iter()
            .chain(opts.also_set_aside)
            .collect(),
    };
    drop((monitors, watch));
    Ok(conclude(
        ctx, scenario, c, checks, record, branch, old_state,
    ))
}

/// What the drill's instruments recorded.
struct Record {
    attempts: Vec<crate::attempt::Attempt>,
    changes: Vec<crate::primaryroute::RouteChange>,
    readings: Vec<Reading>,
    polls: std::collections::BTreeMap<String, usize>,
    run_id: i64,
    /// The writers' runs whose rows a rejoin sets aside, each from its first key that may
    /// differ: the drill's writer, its pool probe, and another writer beside (the soak's).
    set_aside: Vec<(i64, u64)>,
}

/// Waits until every router routes the service to the new primary, the new primary has
/// acknowledged a write and no BGP table has a path to the old one.
fn settle(
    ctx: &mut Ctx,
    c: &Cast,
    steady: &Steady,
    watch: &Watch,
    checks: &mut Vec<Check>,
    step: Duration,
) -> bool {
    let lab = ctx.lab;
    let settled = wait_for(step, POLL, || {
        (c.fabric.all_lead_to(lab, &c.new)
            && crate::attempt::first_ack(&steady.writer.snapshot(), &c.new).is_some()
            && no_path_to(watch, &c.old))
        .then_some(())
    })
    .is_some();
    if !settled {
        checks.push(Check {
            name: format!("the service moved to {}", c.new),
            ok: false,
            detail: format!(
                "within {step:?}: not every router leads to {}, no write acknowledged by it, \
                 or a BGP table still has a path to {}",
                c.new, c.old
            ),
        });
    }
    settled
}

/// The timeline, the checks, the rejoin; the report.
fn conclude(
    mut ctx: Ctx,
    scenario: Scenario,
    c: Cast,
    mut checks: Vec<Check>,
    rec: Record,
    branch: Option<String>,
    old_state: Option<crate::oldprimary::OldState>,
) -> Report {
    let lab = ctx.lab;
    let (view, view_check) = old_view(lab, &c.old);
    timeline(&mut ctx, scenario, &c, &rec.changes, &rec.readings);
    let write_outage_ms = outcome::client_events(&mut ctx, &rec.attempts, &c.app, &c.old, &c.new);
    checks.push(bgp_check(&ctx, scenario, &c, &rec.readings, &rec.polls));
    checks.push(view_check);
    checks.push(conflict_logged(&ctx, &c.old));
    checks.extend(old_state_checks(lab, scenario, &c, &ctx, old_state));
    let (outcome, writes) = outcome::outcome_checks(lab, scenario, &c, &rec.attempts, rec.run_id);
    checks.extend(outcome);
    if !writes.lost_acked_keys.is_empty() {
        ctx.notes.push(format!(
            "{} writes acknowledged by {} never reached {} (asynchronous replication, or taken \
             beside the new primary before {} withdrew): the split brain's damage, set aside \
             by the rejoin",
            writes.lost_acked_keys.len(),
            c.old,
            c.new,
            c.old
        ));
    }
    if let Some(branch) = &branch {
        ctx.notes.push(format!(
            "{} branched from {} at GTID {branch}",
            c.new, c.old
        ));
        // Leave the lab ready for another drill.
        checks.push(match rejoin(&mut ctx, &c, branch, &rec.set_aside) {
            Ok(c) => c,
            Err(e) => failed(&format!("{} rejoins as a replica", c.old), e),
        });
    }
    let findings = Findings {
        checks,
        writes,
        write_outage_ms,
        attempts: rec.attempts,
        old_primary_view: Some(view),
    };
    ctx.report(scenario, c.old, c.new, findings)
}

/// Every router's table has the old primary's path with its marks (term and router id): the
/// routers pass large communities, so every host can read every other's term.
fn marks_check(watch: &Watch, c: &Cast, step: Duration) -> Check {
    let want = c.routers.len() * c.fabric.prefixes.len();
    let marked = |r: &Reading| {
        r.paths
            .iter()
            .filter(|p| {
                p.announcer.as_deref() == Some(c.old.as_str())
                    && matches!(p.mark, bgptable::Mark::Primary { term } if term > 0)
            })
            .map(|p| p.prefix.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let all = wait_for(step, POLL, || {
        let l = watch.latest();
        (l.len() == c.routers.len() && l.values().map(marked).sum::<usize>() == want).then_some(l)
    });
    let ok = all.is_some();
    let latest = all.unwrap_or_else(|| watch.latest());
    let detail = c
        .routers
        .iter()
        .map(|r| {
            let paths: Vec<String> = latest
                .get(r)
                .map(|x| x.paths.iter().map(|p| p.describe()).collect())
                .unwrap_or_default();
            format!("{r}: {}", paths.join("; "))
        })
        .collect::<Vec<_>>()
        .join(" | ");
    Check {
        name: format!(
            "every router's BGP table has {}'s marked path (term, router id)",
            c.old
        ),
        ok,
        detail,
    }
}

fn no_path_to(watch: &Watch, host: &str) -> bool {
    watch
        .latest()
        .values()
        .all(|r| r.error.is_none() && !r.paths.iter().any(|p| p.is_primary_path_to(host)))
}

/// Injects the fault and sets t0; double-promote has none (t0 is the promotion's start).
fn inject(ctx: &mut Ctx, scenario: Scenario, c: &Cast) -> Result<String> {
    match scenario {
        Scenario::Restart => fault::signal_mariadbd(ctx, &c.old, Signal::SIGKILL),
        Scenario::Heal => fault::uplinks_down(ctx, &c.old),
        _ => {
            ctx.t0 = now_ms();
            Ok(format!(
                "none: {} stays a healthy writable primary; {} is promoted beside it",
                c.old, c.new
            ))
        }
    }
}

/// Waits until the old route is gone (restart, heal): from every router's kernel table and
/// from every BGP table, so that a path to the old primary after the new one's announce can
/// only be one that came back. Then promotes. Some(the GTID position the new primary branched
/// at) once promoted.
fn act_one(
    ctx: &mut Ctx,
    scenario: Scenario,
    c: &Cast,
    watch: &Watch,
    checks: &mut Vec<Check>,
    step: Duration,
) -> Option<String> {
    let lab = ctx.lab;
    if scenario != Scenario::DoublePromote {
        let gone = wait_for(step, POLL, || {
            (c.fabric.none_leads_to(lab, &c.old) && no_path_to(watch, &c.old)).then_some(now_ms())
        });
        checks.push(Check {
            name: "old route withdrawn before the promotion".into(),
            ok: gone.is_some(),
            detail: match gone {
                Some(t) => format!(
                    "no router leads to {}, and no BGP table has a path to it, after {:.1} ms",
                    c.old,
                    t - ctx.t0
                ),
                None => format!(
                    "some router still leads to {} or has a path to it after {step:?}",
                    c.old
                ),
            },
        });
        gone?;
    }
    match promote(ctx, scenario, c) {
        Ok(b) => Some(b),
        Err(e) => {
            checks.push(failed("promotion", e));
            None
        }
    }
}

/// Promotes the new primary as orchestrator would. With the old primary dead or cut off, the
/// replica first applies what it received. With the old primary alive (double-promote) the
/// other replicas are stopped first and the new primary catches up to them, so they can
/// replicate from it afterwards. Returns the new primary's binlog position at the branch.
fn promote(ctx: &mut Ctx, scenario: Scenario, c: &Cast) -> Result<String> {
    let lab = ctx.lab;
    let (new, others) = (c.new.as_str(), &c.others);
    let t = now_ms();
    let mut targets = Vec::new();
    if scenario == Scenario::DoublePromote {
        for o in others {
            sql::exec(lab, o, "STOP SLAVE")?;
            targets.push(sql::value(lab, o, "SELECT @@gtid_slave_pos")?);
        }
    } else {
        let io = sql::replication(lab, new)?
            .first()
            .map(|ch| ch.gtid_io_pos.clone())
            .unwrap_or_default();
        targets.push(io);
    }
    for pos in targets.iter().filter(|p| !p.is_empty()) {
        let r = sql::value(lab, new, &format!("SELECT MASTER_GTID_WAIT('{pos}', 10)"))?;
        if r != "0" {
            bail!("{new} did not reach GTID {pos} within 10 s");
        }
    }
    if scenario != Scenario::DoublePromote {
        if let Some(from) = promote::catch_up_from_siblings(lab, new, others)? {
            ctx.notes.push(from);
        }
    }
    let stopped = if scenario == Scenario::DoublePromote && !others.is_empty() {
        format!("{} stopped; ", others.join(", "))
    } else {
        String::new()
    };
    ctx.at(
        "promotion_started",
        Some(t),
        Some(new),
        format!("{stopped}{new} caught up to {}", targets.join(", ")),
    );
    sql::exec(lab, new, "STOP SLAVE")?;
    let branch = sql::value(lab, new, "SELECT @@gtid_binlog_pos")?;
    sql::exec(lab, new, "RESET SLAVE ALL; SET GLOBAL read_only=0")?;
    ctx.at(
        "promotion_done",
        Some(now_ms()),
        Some(new),
        "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0",
    );
    for o in others {
        sql::replicate_from(lab, o, &c.new_addr)?;
    }
    if !others.is_empty() {
        ctx.at(
            "replicas_repointed",
            Some(now_ms()),
            None,
            format!(
                "{} now replicate from {new} (MASTER_USE_GTID=slave_pos)",
                others.join(", ")
            ),
        );
    }
    Ok(branch)
}

/// The daemons' events (drill.rs), the conflict line, the term the new primary wrote, the
/// kernel routes and every router's BGP table.
fn timeline(
    ctx: &mut Ctx,
    scenario: Scenario,
    c: &Cast,
    changes: &[crate::primaryroute::RouteChange],
    readings: &[Reading],
) {
    let lab = ctx.lab;
    let log =
        |n: &str| logparse::parse(&std::fs::read_to_string(lab.console_log(n)).unwrap_or_default());
    let (old_log, new_log) = (log(&c.old), log(&c.new));
    let as_drill = if scenario == Scenario::Restart {
        Scenario::Kill
    } else {
        scenario
    };
    timeline::daemon_events(ctx, &old_log, &new_log, &c.old, &c.new, as_drill);
    let t0 = ctx.t0;
    let conflict = logparse::first_event(&old_log, t0, "conflict").cloned();
    ctx.logged(
        "conflict",
        &c.old,
        conflict.as_ref(),
        |m| {
            // The message, without the fields the text format appends to it.
            let reason = conflict.as_ref().and_then(|l| logparse::field(l, "reason"));
            reason.map_or(m.to_string(), |r| format!("withdrawn: {r}"))
        },
        "no event=conflict line in primaryd's log",
    );
    let term = logparse::first_event(&new_log, t0, "term_written").cloned();
    ctx.logged(
        "term_written",
        &c.new,
        term.as_ref(),
        |_| term_detail(term.as_ref()),
        timeline::MISSING_PD,
    );
    timeline::route_events(ctx, changes, &c.routers, &c.old, &c.new);
    bgp_events(ctx, c, readings);
}

fn term_detail(l: Option<&LogLine>) -> String {
    let Some(l) = l else { return String::new() };
    let f = |k: &str| logparse::field(l, k).unwrap_or_default();
    format!("term {} ({})", f("term"), f("reason"))
}

/// Per router: when the old primary's path left its BGP table for the last time, when the new
/// primary's first appeared; and when it had left every table.
fn bgp_events(ctx: &mut Ctx, c: &Cast, readings: &[Reading]) {
    let t0 = ctx.t0;
    let kept = bgptable::kept(readings, &c.routers, &c.old, t0);
    for k in &kept {
        let detail = match (k.gone_at, k.still) {
            (_, true) => format!("still has a path to {}", c.old),
            (Some(_), _) => format!("no path to {} left", c.old),
            (None, _) => format!("no path to {} since before the fault", c.old),
        };
        ctx.at("bgp_old_gone", k.gone_at, Some(&k.router), detail);
        let new = readings.iter().find(|r| {
            r.router == k.router
                && r.t_ms >= t0
                && r.paths.iter().any(|p| p.is_primary_path_to(&c.new))
        });
        match new {
            Some(r) => {
                let p = r.paths.iter().find(|p| p.is_primary_path_to(&c.new));
                ctx.at(
                    "bgp_new_path",
                    Some(r.t_ms),
                    Some(&k.router),
                    p.map(|p| p.describe()).unwrap_or_default(),
                );
            }
            None => ctx.at("bgp_new_path", None, Some(&k.router), "not observed"),
        }
    }
    if kept.iter().all(|k| !k.still) {
        let last = kept
            .iter()
            .filter_map(|k| k.gone_at)
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
        if let Some(t) = last {
            ctx.at(
                "bgp_old_gone_everywhere",
                Some(t),
                None,
                format!("no router's BGP table has a path to {}", c.old),
            );
        }
    }
}

/// No router's BGP table keeps a path to the old primary once the new one announced (for
/// double-promote: not longer than the bound, the figure reported).
fn bgp_check(
    ctx: &Ctx,
    scenario: Scenario,
    c: &Cast,
    readings: &[Reading],
    polls: &std::collections::BTreeMap<String, usize>,
) -> Check {
    let name = format!(
        "no BGP table keeps a path to {} after {}'s announce",
        c.old, c.new
    );
    let announce = ctx.unix_ms_of("announce_sent").or_else(|| {
        ctx.events
            .iter()
            .filter(|e| e.event == "bgp_new_path")
            .filter_map(|e| e.t_ms)
            .reduce(f64::min)
            .map(|t| t + ctx.t0)
    });
    let Some(announce) = announce else {
        return Check {
            name,
            ok: false,
            detail: format!("{}'s announce was not observed", c.new),
        };
    };
    let kept = bgptable::kept(readings, &c.routers, &c.old, announce);
    let mut worst: f64 = 0.0;
    let mut parts = Vec::new();
    for k in &kept {
        let ms = k.gone_at.map_or(0.0, |g| (g - announce).max(0.0));
        worst = worst.max(ms);
        let blind = match &k.error {
            Some(e) => format!(" (blind {:.0} ms after a failed reading: {e})", k.blind_ms),
            None => String::new(),
        };
        parts.push(if k.still {
            format!("{} still has it{blind}", k.router)
        } else {
            format!("{} {ms:.1} ms{blind}", k.router)
        });
    }
    let bound = if scenario == Scenario::DoublePromote {
        DOUBLE_PROMOTE_BOUND_MS
    } else {
        0.0
    };
    // A table not read for longer than this could have hidden a path that came and went.
    let ok = kept.iter().all(|k| !k.still && k.blind_ms <= MAX_BLIND_MS) && worst <= bound;
    let polled: Vec<String> = polls.iter().map(|(r, n)| format!("{r} {n}")).collect();
    Check {
        name,
        ok,
        detail: format!(
            "kept after the announce: {} (at most {bound:.0} ms allowed); every {} ms, readings: {}",
            parts.join(", "),
            bgptable::POLL.as_millis(),
            polled.join(", ")
        ),
    }
}
