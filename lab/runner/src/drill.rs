//! Failover drills: break the primary one way or another, promote a replica as orchestrator
//! would, while app1 writes through the service address; then put the evidence in one
//! timeline (fault, check failed, withdraw sent, routes gone and back at every router,
//! promotion, first write acknowledged by the new primary) and check the outcome.
//!
//! Times are wall-clock milliseconds relative to the fault. Sources: primaryd's own log lines
//! (their timestamps), the routers' kernel tables (`ip monitor route`, stamped when read), the
//! runner's clock for what it did, and the writer's clock for each answer.

//!
//! The drill's parts: scenario.rs (what a drill is and reports), cast.rs (who is who, the
//! instruments), fault.rs, promote.rs, timeline.rs (the events) and outcome.rs (the checks);
//! the split-brain drills are splitbrain.rs and oldprimary.rs.

use std::time::Duration;

use anyhow::Result;

use crate::attempt::first_ack;
use crate::attempt::Attempt;
use crate::cast::{cast, steady, Cast, Steady};
use crate::clients::Client;
use crate::fault;
use crate::lab::Lab;
use crate::logparse;
use crate::outcome::{client_events, outcome_checks};
use crate::primaryroute::RouteChange;
use crate::promote::promote;
use crate::timeline::{daemon_events, exabgp_events, route_events};
use crate::util::{now_ms, wait_for};
use crate::writer::Writer;

// The drill's vocabulary, where the rest of the runner has always found it.
use crate::scenario::Findings;
pub use crate::scenario::{Check, Event, Options, Report, Scenario};
pub(crate) use crate::scenario::{Ctx, Daemon, AFTER, POLL};

pub fn run(lab: &Lab, scenario: Scenario, to: Option<&str>) -> Result<Report> {
    run_with(lab, scenario, to, &Options::default())
}

pub fn run_with(lab: &Lab, scenario: Scenario, to: Option<&str>, opts: &Options) -> Result<Report> {
    if scenario.split_brain() {
        return crate::splitbrain::run(lab, scenario, to, opts);
    }
    let step = opts.step;
    let c = cast(lab, scenario, to, step)?;
    let steady = steady(lab, &c, step, opts.client)?;
    // The retry writer's short timeouts hide what a client waits: a pool probe beside it.
    let probe = match opts.client {
        Client::Retry => Some(crate::waits::start_probe(
            lab,
            &c.app,
            &c.old,
            steady.run_id,
            step,
        )?),
        _ => None,
    };
    let mut ctx = Ctx::new(lab);
    let detail = fault::inject(&mut ctx, scenario, &c.old, c.daemon)?;
    ctx.at("fault_injected", Some(ctx.t0), Some(&c.old), detail);
    let mut checks = Vec::new();
    let withdrawn = if opts.promote_at_fault {
        ctx.notes
            .push("promoted at the fault instant, not once the old route was gone".into());
        true
    } else {
        checks.push(wait_withdrawn(&ctx, &c, step));
        checks[0].ok
    };
    if withdrawn {
        if let Err(e) = promote(&mut ctx, scenario, &c) {
            checks.push(crate::scenario::failed("promotion", e));
        } else {
            wait_new_primary(lab, &c, &steady, step);
        }
    }
    let rec = stop(steady, probe);
    let write_outage_ms = timeline(&mut ctx, scenario, &c, &rec);
    Ok(conclude(ctx, scenario, c, checks, rec, write_outage_ms))
}

/// Waits until no router's route leads to the old primary: the check that it was withdrawn
/// before the promotion (which only follows if it was).
fn wait_withdrawn(ctx: &Ctx, c: &Cast, step: Duration) -> Check {
    let (lab, old) = (ctx.lab, &c.old);
    let gone = wait_for(step, POLL, || {
        c.fabric.none_leads_to(lab, old).then_some(now_ms())
    });
    Check {
        name: "old route withdrawn before the promotion".into(),
        ok: gone.is_some(),
        detail: match gone {
            Some(t) => format!("no router leads to {old} after {:.1} ms", t - ctx.t0),
            None => format!("some router still leads to {old} after {step:?}"),
        },
    }
}

/// Waits for the new route at every router and the new primary's first acknowledged write,
/// then lets the writer go on for AFTER.
fn wait_new_primary(lab: &Lab, c: &Cast, steady: &Steady, step: Duration) {
    let converged = wait_for(step, POLL, || {
        c.fabric.all_lead_to(lab, &c.new).then_some(())
    });
    let first = wait_for(step, POLL, || {
        first_ack(&steady.writer.snapshot(), &c.new).map(|a| a.t_ms)
    });
    if converged.is_some() && first.is_some() {
        std::thread::sleep(AFTER);
    }
}

/// What the drill's instruments recorded.
struct Record {
    attempts: Vec<Attempt>,
    /// The pool probe's attempts, when it wrote beside the retry writer.
    probe: Option<Vec<Attempt>>,
    changes: Vec<RouteChange>,
    run_id: i64,
}

/// Stops the instruments.
fn stop(steady: Steady, probe: Option<Writer>) -> Record {
    let Steady {
        monitors,
        writer,
        run_id,
    } = steady;
    let attempts = writer.stop();
    let probe = probe.map(Writer::stop);
    let changes = monitors.snapshot();
    drop(monitors);
    Record {
        attempts,
        probe,
        changes,
        run_id,
    }
}

/// The events of the speakers' logs, the routers' routes and the client. The write outage.
fn timeline(ctx: &mut Ctx, scenario: Scenario, c: &Cast, rec: &Record) -> Option<f64> {
    let parse = match c.daemon {
        Daemon::Primaryd => logparse::parse,
        Daemon::Exabgp => logparse::parse_stamped,
    };
    let read =
        |n: &str| parse(&std::fs::read_to_string(ctx.lab.console_log(n)).unwrap_or_default());
    let (old_log, new_log) = (read(&c.old), read(&c.new));
    let (old, new) = (c.old.as_str(), c.new.as_str());
    match c.daemon {
        Daemon::Primaryd => daemon_events(ctx, &old_log, &new_log, old, new, scenario),
        Daemon::Exabgp => exabgp_events(ctx, &old_log, &new_log, old, new, scenario),
    }
    route_events(ctx, &rec.changes, &c.routers, old, new);
    client_events(ctx, &rec.attempts, &c.app, old, new)
}

/// The outcome's checks, and the report.
fn conclude(
    ctx: Ctx,
    scenario: Scenario,
    c: Cast,
    mut checks: Vec<Check>,
    rec: Record,
    write_outage_ms: Option<f64>,
) -> Report {
    let (lab, run_id, attempts) = (ctx.lab, rec.run_id, rec.attempts);
    let (outcome, writes) = outcome_checks(lab, scenario, &c, &attempts, run_id);
    checks.extend(outcome);
    let t0 = ctx.t0;
    checks.push(crate::waits::check(
        scenario,
        &ctx.events,
        rec.probe.as_deref().unwrap_or(&attempts),
        t0,
        &c.old,
        &c.new,
        crate::waits::timeout_of(lab, &c.old).filter(|_| c.daemon == Daemon::Primaryd),
    ));
    let findings = Findings {
        checks,
        writes,
        write_outage_ms,
        attempts,
        old_primary_view: None,
    };
    ctx.report(scenario, c.old, c.new, findings)
}
