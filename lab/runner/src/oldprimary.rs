//! The old primary in the split-brain drills (splitbrain.rs): bringing it back (its server
//! restarted, its links up again), what it says about itself (`primaryctl show routes` and
//! `show services`, its log), and rejoining it as a replica of the new primary afterwards.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cast::Cast;
use crate::lab::Lab;
use crate::logparse;
use crate::scenario::{failed, shown, Check, Ctx, Scenario, POLL, SERVICE};
use crate::sql;
use crate::util::{self, now_ms, wait_for};

/// How long a restarted MariaDB may take to answer (InnoDB crash recovery).
const RESTART_WAIT: Duration = Duration::from_secs(60);

/// What the old server looked like when it came back (or at the end of double-promote).
pub(crate) struct OldState {
    pub read_only: bool,
    pub replication: Option<String>,
}

/// restart: the old server starts again; heal: its links come back. Returns the old
/// server's state for restart.
pub(crate) fn act_two(
    ctx: &mut Ctx,
    scenario: Scenario,
    c: &Cast,
    checks: &mut Vec<Check>,
) -> Result<Option<OldState>> {
    match scenario {
        Scenario::Restart => restart_server(ctx, &c.old).map(Some),
        Scenario::Heal => {
            heal_links(ctx, &c.old)?;
            checks.push(session_back(ctx, &c.old));
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Starts the old server again, in the background as lab-db-start runs it (its log is
/// MariaDB's error log), with read_only=OFF: MariaDB's default and db1's my.cnf (db2's and
/// db3's files say ON only because they start as replicas). Waits until it answers.
fn restart_server(ctx: &mut Ctx, old: &str) -> Result<OldState> {
    let lab = ctx.lab;
    let t = now_ms();
    let cmd = crate::fault::start_mariadbd(lab, old, false)?;
    ctx.at("old_server_started", Some(t), Some(old), cmd);
    wait_for(RESTART_WAIT, Duration::from_millis(50), || {
        lab.db_answers(old).then_some(())
    })
    .with_context(|| format!("{old}'s MariaDB did not answer within {RESTART_WAIT:?}"))?;
    let s = sql::db_state(lab, old)?;
    ctx.at(
        "old_server_answers",
        Some(now_ms()),
        Some(old),
        format!(
            "read_only={}, replication: {}",
            if s.read_only { "ON" } else { "OFF" },
            s.replication.as_deref().unwrap_or("none")
        ),
    );
    Ok(OldState {
        read_only: s.read_only,
        replication: s.replication,
    })
}

/// Waits until the healed host's BGP sessions are Established again (its own view).
fn session_back(ctx: &mut Ctx, old: &str) -> Check {
    let lab = ctx.lab;
    let up = wait_for(Duration::from_secs(20), POLL, || {
        sessions_established(lab, old).then_some(now_ms())
    });
    ctx.at(
        "old_session_up",
        up,
        Some(old),
        if up.is_some() {
            "every BGP session of the old host is Established again"
        } else {
            "its BGP sessions did not come back within 20 s"
        },
    );
    Check {
        name: format!("{old}'s BGP sessions came back"),
        ok: up.is_some(),
        detail: match up {
            Some(t) => format!("{:.1} ms after the fault", t - ctx.t0),
            None => "not within 20 s".into(),
        },
    }
}

/// Links up, and the node's `exec` lines again: an interface that went down lost its IPv6
/// addresses and its routes (an address still there is refused as existing: fine).
pub(crate) fn heal_links(ctx: &mut Ctx, old: &str) -> Result<()> {
    let lab = ctx.lab;
    let ifaces = lab.topo.ifaces_of(old);
    let t = now_ms();
    for i in &ifaces {
        util::ip(&["-n", &lab.netns(old), "link", "set", i, "up"])?;
    }
    let node = lab.topo.node(old).context("no such node")?;
    for line in &node.exec {
        let argv: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let out = util::run(&mut lab.node_command(old, &argv))?;
        let err = String::from_utf8_lossy(&out.stderr);
        let exists = err.contains("File exists") || err.contains("already assigned");
        if !out.status.success() && !exists {
            bail!("{old}: {line}: {}", err.trim());
        }
    }
    ctx.at(
        "links_restored",
        Some(t),
        Some(old),
        format!(
            "uplinks up: {}; addresses and routes restored",
            ifaces.join(", ")
        ),
    );
    Ok(())
}

pub(crate) fn primaryctl_json(lab: &Lab, node: &str, what: &str) -> Result<Value> {
    let out = lab.node_run(
        node,
        &["timeout", "5", "primaryctl", "show", what, "--json"],
    )?;
    Ok(serde_json::from_str(&out)?)
}

pub(crate) fn sessions_established(lab: &Lab, node: &str) -> bool {
    primaryctl_json(lab, node, "peers")
        .ok()
        .and_then(|v| v.as_array().cloned())
        .is_some_and(|a| !a.is_empty() && a.iter().all(|p| p["state"] == "Established"))
}

/// Waits until the old host's service shows `conflict` or `held`; the time it first did.
pub(crate) fn await_refusal(ctx: &mut Ctx, old: &str, step: Duration) -> Option<f64> {
    let lab = ctx.lab;
    let seen = wait_for(step, Duration::from_millis(50), || {
        let v = primaryctl_json(lab, old, "services").ok()?;
        let s = v.as_array()?.iter().find(|s| s["name"] == SERVICE)?;
        let state = s["state"].as_str()?;
        matches!(state, "conflict" | "held").then(|| {
            (
                now_ms(),
                format!("state {state} ({})", s["reason"].as_str().unwrap_or("")),
            )
        })
    });
    let (t, detail) = seen?;
    ctx.at(
        "old_refuses",
        Some(t),
        Some(old),
        format!("primaryctl show services: {detail}"),
    );
    Some(t)
}

/// `primaryctl show routes` and `show services` on the old host (text, for the report), and
/// the check that every prefix says why it is not announced.
pub(crate) fn old_view(lab: &Lab, old: &str) -> (String, Check) {
    let mut text = String::new();
    for what in ["routes", "services"] {
        text.push_str(&format!("$ primaryctl show {what}\n"));
        match lab.node_run(old, &["timeout", "5", "primaryctl", "show", what]) {
            Ok(o) => text.push_str(&o),
            Err(e) => text.push_str(&format!("{e:#}\n")),
        }
    }
    let name = format!("{old} says why it does not announce (conflict or held)");
    let check = match (
        primaryctl_json(lab, old, "routes"),
        primaryctl_json(lab, old, "services"),
    ) {
        (Ok(routes), Ok(services)) => {
            let rows: Vec<&Value> = routes.as_array().into_iter().flatten().collect();
            let svc: Vec<&Value> = services.as_array().into_iter().flatten().collect();
            let refusing = |v: &&Value| matches!(v["state"].as_str(), Some("conflict" | "held"));
            let ok = !rows.is_empty()
                && rows.iter().all(|r| refusing(r) && r["announced"] == false)
                && svc.iter().filter(|s| s["role"] == "primary").all(refusing);
            let detail = rows
                .iter()
                .map(|r| {
                    format!(
                        "{} {} {}: {}",
                        r["prefix"].as_str().unwrap_or("?"),
                        r["state"].as_str().unwrap_or("?"),
                        if r["announced"] == true {
                            "announced"
                        } else {
                            "withdrawn"
                        },
                        r["reason"].as_str().unwrap_or("")
                    )
                })
                .chain(svc.iter().map(|s| {
                    format!(
                        "service {} {} (term {})",
                        s["name"].as_str().unwrap_or("?"),
                        s["state"].as_str().unwrap_or("?"),
                        s["term"]
                    )
                }))
                .collect::<Vec<_>>()
                .join("; ");
            Check { name, ok, detail }
        }
        (Err(e), _) | (_, Err(e)) => failed(&name, e),
    };
    (text, check)
}

pub(crate) fn conflict_logged(ctx: &Ctx, old: &str) -> Check {
    let e = ctx
        .events
        .iter()
        .find(|e| e.event == "conflict" && e.t_ms.is_some());
    Check {
        name: format!("{old} logged the conflict (event=conflict)"),
        ok: e.is_some(),
        detail: e.map_or("no such line".into(), |e| e.detail.clone()),
    }
}

/// What each scenario promises about the old server: restart brings it back writable and
/// replicating from nobody; heal and double-promote never fail its checks (the rules withdraw
/// it, not its health).
pub(crate) fn old_state_checks(
    lab: &Lab,
    scenario: Scenario,
    c: &Cast,
    ctx: &Ctx,
    restarted: Option<OldState>,
) -> Vec<Check> {
    let old = c.old.as_str();
    let mut v = Vec::new();
    if scenario == Scenario::Restart {
        v.push(Check {
            name: format!("{old} came back writable (read_only=OFF), replicating from nobody"),
            ok: restarted
                .as_ref()
                .is_some_and(|s| !s.read_only && s.replication.is_none()),
            detail: restarted.map_or("it did not come back".into(), |s| {
                format!("read_only={}, replication {:?}", s.read_only, s.replication)
            }),
        });
        return v;
    }
    let log = logparse::parse(&std::fs::read_to_string(lab.console_log(old)).unwrap_or_default());
    let bad = log.iter().find(|l| {
        l.t_ms >= ctx.t0
            && matches!(
                logparse::field(l, "event").as_deref(),
                Some("check_failed" | "service_down")
            )
    });
    v.push(Check {
        name: format!("{old} never failed a check"),
        ok: bad.is_none(),
        detail: bad.map_or("no check failed after the fault".into(), shown),
    });
    if scenario == Scenario::DoublePromote {
        let s = sql::db_state(lab, old);
        v.push(Check {
            name: format!("{old} is still a writable primary"),
            ok: s
                .as_ref()
                .is_ok_and(|s| !s.read_only && s.replication.is_none()),
            detail: match s {
                Ok(s) => format!("read_only={}, replication {:?}", s.read_only, s.replication),
                Err(e) => format!("{e:#}"),
            },
        });
    }
    v
}

/// The keys of `run` from `from` on that `old` holds and `new` does not (with their host: a key
/// written again on the new primary after the old one committed it unanswered differs in its
/// host).
fn errant_keys(lab: &Lab, old: &str, new: &str, run: i64, from: u64) -> Result<Vec<String>> {
    let keys = |n: &str| -> Result<std::collections::BTreeSet<(String, String)>> {
        Ok(sql::query(
            lab,
            n,
            &format!("SELECT k, host FROM lab.writes WHERE run = {run} AND k >= {from}"),
            10,
        )?
        .into_iter()
        .map(|r| (r["k"].clone(), r["host"].clone()))
        .collect())
    };
    let on_new = keys(new)?;
    Ok(keys(old)?
        .into_iter()
        .filter(|r| !on_new.contains(r))
        .map(|(k, _)| k)
        .collect())
}

/// The old primary rejoins as a replica of the new one, so the lab is ready for another drill:
/// fenced (read_only=1); its rows of `runs` (each a writer's run and the first key to look at:
/// the drill's writer, its pool probe, a soak's writer) that the new primary does not hold (the
/// writes it took after the branch, and keys it committed without answering) set aside by
/// deleting them outside the binlog; its binlog reset to the branch; then GTID replication from the new
/// primary. A DBA rejoins a deposed primary the same way (orchestrator refuses errant GTIDs).
pub(crate) fn rejoin(ctx: &mut Ctx, c: &Cast, branch: &str, runs: &[(i64, u64)]) -> Result<Check> {
    let lab = ctx.lab;
    let (old, new) = (c.old.as_str(), c.new.as_str());
    sql::exec(lab, old, "SET GLOBAL read_only=1")?;
    let mut statements = String::from("SET sql_log_bin=0; ");
    let mut set_aside = 0;
    for &(run, from) in runs {
        let errant = errant_keys(lab, old, new, run, from)?;
        if !errant.is_empty() {
            statements.push_str(&format!(
                "DELETE FROM lab.writes WHERE run = {run} AND k IN ({}); ",
                errant.join(",")
            ));
        }
        set_aside += errant.len();
    }
    statements.push_str(&format!(
        "STOP SLAVE; RESET SLAVE ALL; RESET MASTER; SET GLOBAL gtid_slave_pos = '{branch}'"
    ));
    sql::exec(lab, old, &statements)?;
    sql::replicate_from(lab, old, &c.new_addr)?;
    let running = wait_for(Duration::from_secs(10), POLL, || {
        let r = sql::replication(lab, old).ok()?;
        (r.len() == 1 && r[0].io_running == "Yes" && r[0].sql_running == "Yes").then_some(())
    });
    let detail = format!(
        "read_only=1; {set_aside} rows of runs {:?} only on {old} set aside; RESET MASTER; \
         gtid_slave_pos={branch}; replicates from {new}",
        runs.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    ctx.at(
        "old_primary_rejoined",
        Some(now_ms()),
        Some(old),
        detail.clone(),
    );
    let r = sql::replication(lab, old).unwrap_or_default();
    Ok(Check {
        name: format!("{old} rejoined as a replica of {new}"),
        ok: running.is_some(),
        detail: format!("{detail}: {r:?}"),
    })
}
