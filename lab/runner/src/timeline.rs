//! The drills' timeline: the events the speakers logged (primaryd's own lines, or ExaBGP's and
//! exabgp-healthcheck's), the routers' kernel routes as the monitors saw them change, and the
//! printed report.

use crate::lab::SERVICE_PREFIX;
use crate::logparse::{self, LogLine};
use crate::primaryroute::RouteChange;
use crate::scenario::{Ctx, Report, Scenario};

pub(crate) const MISSING_PD: &str = "not in primaryd's log";

const MISSING_EX: &str = "not in ExaBGP's or exabgp-healthcheck's log";

/// The withdraw no speaker could send, and why, in the drills whose fault leaves none.
fn unsent_withdraw(scenario: Scenario, exabgp: bool) -> Option<&'static str> {
    const LINK_DOWN: &str = "none reaches the ToR: the link is down; the ToR drops the session on link-down or hold-time expiry";
    match scenario {
        Scenario::DaemonCrash if exabgp => Some("none: ExaBGP is dead; the ToR drops its routes when the kernel closes the TCP session"),
        Scenario::DaemonCrash => Some("none: the daemon is dead; the ToR drops its routes when the kernel closes the TCP session"),
        Scenario::Isolate => Some(LINK_DOWN),
        Scenario::Heal if !exabgp => Some(LINK_DOWN),
        Scenario::HostFreeze if exabgp => Some("none: the host is frozen; the ToR drops the session at its hold timer (ExaBGP has no BFD)"),
        Scenario::HostFreeze => Some("none: the host is frozen; the ToR drops the session when BFD (or the hold timer) finds it silent"),
        _ => None,
    }
}

/// The first UPDATE primaryd logged sending (`event=update_sent`) at or after `from` whose
/// `list` (`announce` or `withdraw`) holds SERVICE_PREFIX.
pub(crate) fn update_sent<'a>(log: &'a [LogLine], from: f64, list: &str) -> Option<&'a LogLine> {
    log.iter().find(|l| {
        l.t_ms >= from
            && logparse::field(l, "event").as_deref() == Some("update_sent")
            && logparse::update_list(l, list).contains(SERVICE_PREFIX)
    })
}

/// The old primary's withdraw. With fallback routes (docs/clients.md) it goes out as the
/// fallback's announce: the first UPDATE with the prefix after the rules' withdraw
/// (`event=withdraw`, or `event=conflict` when a newer primary deposed this one).
fn withdraw_sent(log: &[LogLine], from: f64) -> Option<&LogLine> {
    let rules_withdraw = ["withdraw", "conflict"]
        .into_iter()
        .filter_map(|e| logparse::first_event(log, from, e).map(|l| l.t_ms))
        .min_by(f64::total_cmp);
    log.iter().find(|l| {
        l.t_ms >= from
            && logparse::field(l, "event").as_deref() == Some("update_sent")
            && (logparse::update_list(l, "withdraw").contains(SERVICE_PREFIX)
                || rules_withdraw.is_some_and(|w| l.t_ms >= w)
                    && logparse::update_list(l, "announce").contains(SERVICE_PREFIX))
    })
}

/// An event at a primaryd log line's time, described by the line.
fn logged_pd(ctx: &mut Ctx, event: &str, node: &str, line: Option<&LogLine>) {
    ctx.logged(event, node, line, str::to_string, MISSING_PD);
}

/// The events of primaryd's logs, found by their `event` fields: the old primary's failed
/// check, service down and withdraw; the new primary's service up and announce.
pub(crate) fn daemon_events(
    ctx: &mut Ctx,
    old_log: &[LogLine],
    new_log: &[LogLine],
    old: &str,
    new: &str,
    scenario: Scenario,
) {
    let t0 = ctx.t0;
    let withdraw = withdraw_sent(old_log, t0);
    if let Some(why) = unsent_withdraw(scenario, false) {
        ctx.at("withdraw_sent", None, Some(old), why);
    } else if scenario == Scenario::DoublePromote {
        // Its checks never fail: the withdraw is the rules' (the conflict line before it).
        logged_pd(ctx, "withdraw_sent", old, withdraw);
    } else {
        let down = logparse::first_event(old_log, t0, "service_down");
        let check = logparse::first_event(old_log, t0, "check_failed")
            .into_iter()
            .chain(down)
            .min_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        logged_pd(ctx, "check_failed", old, check);
        logged_pd(ctx, "service_down", old, down);
        logged_pd(ctx, "withdraw_sent", old, withdraw);
    }
    if let Some(p) = ctx.unix_ms_of("promotion_started") {
        let up = logparse::first_event(new_log, p, "service_up");
        logged_pd(ctx, "service_up_new_primary", new, up);
        logged_pd(
            ctx,
            "announce_sent",
            new,
            update_sent(new_log, p, "announce"),
        );
    }
}

/// The first `>> N UPDATE(s)` ExaBGP logged after the healthcheck's first `VERB route PREFIX`
/// command at or after `from`: the UPDATE that carried it.
fn exabgp_update_after<'a>(log: &'a [LogLine], from: f64, verb: &str) -> Option<&'a LogLine> {
    let cmd = log.iter().find(|l| {
        l.t_ms >= from
            && l.message.starts_with("command from process")
            && l.message
                .contains(&format!(": {verb} route {SERVICE_PREFIX}"))
    })?;
    log.iter().find(|l| {
        l.t_ms >= cmd.t_ms && l.message.starts_with(">> ") && l.message.ends_with("UPDATE(s)")
    })
}

/// The same events as `daemon_events`, from the ExaBGP variant's stamped log: exabgp-healthcheck's
/// failed checks (`Check command was unsuccessful`, `Timeout ... while running check command`)
/// and state changes (`send announces for DOWN|UP state`), ExaBGP's API commands and the UPDATE
/// that followed.
pub(crate) fn exabgp_events(
    ctx: &mut Ctx,
    old_log: &[LogLine],
    new_log: &[LogLine],
    old: &str,
    new: &str,
    scenario: Scenario,
) {
    let t0 = ctx.t0;
    match unsent_withdraw(scenario, true) {
        Some(why) => ctx.at("withdraw_sent", None, Some(old), why),
        None => {
            let check = old_log
                .iter()
                .find(|l| {
                    l.t_ms >= t0
                        && (l.message.starts_with("Check command was unsuccessful")
                            || (l.message.starts_with("Timeout")
                                && l.message.contains("while running check command")))
                })
                .cloned();
            ctx.logged(
                "check_failed",
                old,
                check.as_ref(),
                str::to_string,
                MISSING_EX,
            );
            let down =
                logparse::first_after(old_log, t0, "send announces for DOWN state", "").cloned();
            ctx.logged(
                "service_down",
                old,
                down.as_ref(),
                |m| format!("exabgp-healthcheck: {m}"),
                MISSING_EX,
            );
            let w = exabgp_update_after(old_log, t0, "withdraw").cloned();
            ctx.logged(
                "withdraw_sent",
                old,
                w.as_ref(),
                |m| format!("ExaBGP: {m} (withdraw {SERVICE_PREFIX})"),
                MISSING_EX,
            );
        }
    }
    let promoted_at = ctx.unix_ms_of("promotion_started");
    if let Some(p) = promoted_at {
        let up = logparse::first_after(new_log, p, "send announces for UP state", "").cloned();
        ctx.logged(
            "service_up_new_primary",
            new,
            up.as_ref(),
            |m| format!("exabgp-healthcheck: {m}"),
            MISSING_EX,
        );
        let a = exabgp_update_after(new_log, p, "announce").cloned();
        ctx.logged(
            "announce_sent",
            new,
            a.as_ref(),
            |m| format!("ExaBGP: {m} (announce {SERVICE_PREFIX})"),
            MISSING_EX,
        );
    }
}

pub(crate) fn route_events(
    ctx: &mut Ctx,
    changes: &[RouteChange],
    routers: &[String],
    old: &str,
    new: &str,
) {
    let t0 = ctx.t0;
    for r in routers {
        let mine: Vec<&RouteChange> = changes.iter().filter(|c| &c.router == r).collect();
        let before = mine.iter().rfind(|c| c.t_ms < t0).map(|c| c.next.clone());
        let Some(before) = before else {
            ctx.at("route_gone", None, Some(r), "no reading before the fault");
            continue;
        };
        let after: Vec<&&RouteChange> = mine.iter().filter(|c| c.t_ms >= t0).collect();
        let fin = after
            .last()
            .map(|c| c.next.clone())
            .unwrap_or(before.clone());
        let show = |n: &Option<String>| {
            n.clone()
                .map(|n| format!("via {n}"))
                .unwrap_or("no route".into())
        };
        if fin == before {
            let detail = format!(
                "unchanged ({}): on the path to both {old} and {new}",
                show(&before)
            );
            ctx.at("route_gone", None, Some(r), detail.clone());
            ctx.at("route_new", None, Some(r), detail);
            continue;
        }
        match after.iter().find(|c| c.next != before) {
            Some(c) => ctx.at(
                "route_gone",
                Some(c.t_ms),
                Some(r),
                format!("{} -> {}", show(&before), show(&c.next)),
            ),
            None => ctx.at("route_gone", None, Some(r), "not observed"),
        }
        match after.iter().find(|c| c.next == fin) {
            Some(c) => ctx.at(
                "route_new",
                Some(c.t_ms),
                Some(r),
                format!("{}: {}", show(&fin), c.line),
            ),
            None => ctx.at("route_new", None, Some(r), "not observed"),
        }
    }
}

pub fn print_timeline(r: &Report) {
    println!();
    println!(
        "drill {} in lab {}: {} -> {}   (t = ms after the fault)",
        r.scenario.name(),
        r.lab,
        r.old_primary,
        r.new_primary
    );
    for e in &r.events {
        let t = e
            .t_ms
            .map(|t| format!("{t:9.1}"))
            .unwrap_or_else(|| "        -".into());
        let label = label(&e.event);
        let node = e.node.as_deref().unwrap_or("");
        println!("  {t}  {label:<33} {node:<7} {}", e.detail);
    }
    print_writes(r);
    for c in &r.checks {
        println!(
            "  [{}] {}: {}",
            if c.ok { " ok " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    if let Some(v) = &r.old_primary_view {
        println!("  on {}:", r.old_primary);
        for l in v.lines() {
            println!("    {l}");
        }
    }
    println!(
        "  drill {}: {}",
        r.scenario.name(),
        if r.ok { "PASSED" } else { "FAILED" }
    );
}

/// The timeline's name for an event.
fn label(event: &str) -> String {
    match event {
        "fault_injected" => "fault injected".to_string(),
        "check_failed" => "check failed".into(),
        "service_down" => "service down".into(),
        "withdraw_sent" => "withdraw sent".into(),
        "route_gone" => "route gone".into(),
        "route_new" => "new route".into(),
        "promotion_started" => "promotion started".into(),
        "promotion_done" => "promotion done".into(),
        "service_up_new_primary" => "service up".into(),
        "announce_sent" => "announce sent".into(),
        "first_ack_new_primary" => "first write acked by new primary".into(),
        "last_ack_old_primary" => "last write acked by old primary".into(),
        "first_write_failed" => "first write failed".into(),
        "conflict" => "conflict (event=conflict)".into(),
        "old_refuses" => "old primary refuses".into(),
        "bgp_old_gone" => "old path gone (BGP table)".into(),
        "bgp_old_gone_everywhere" => "old path gone from every table".into(),
        "bgp_new_path" => "new path (BGP table)".into(),
        "term_written" => "new term written".into(),
        other => other.replace('_', " "),
    }
}

/// The write outage and the writes' tally.
fn print_writes(r: &Report) {
    match r.write_outage_ms {
        Some(o) => println!(
            "  total write outage: {o:.1} ms (last ack by {} to first ack by {})",
            r.old_primary, r.new_primary
        ),
        None => println!(
            "  total write outage: not measured (no write acknowledged by {})",
            r.new_primary
        ),
    }
    let acked: Vec<String> = r
        .writes
        .acked
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    println!(
        "  writes: {} attempts, acknowledged: {}, failed attempts: {}, acked by {} but lost: {}",
        r.writes.attempts,
        if acked.is_empty() {
            "none".into()
        } else {
            acked.join(", ")
        },
        r.writes.failed_attempts,
        r.old_primary,
        r.writes.lost_acked_keys.len()
    );
}
