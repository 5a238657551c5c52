//! What a drill's outcome is checked against: the client's record of every write (who
//! acknowledged what, and when), the servers' tables, and every router's route.

use std::collections::{BTreeMap, BTreeSet};

use crate::attempt::{first_ack, Attempt, Outcome};
use crate::cast::Cast;
use crate::lab::Lab;
use crate::scenario::{Check, Ctx, Scenario, Writes};
use crate::sql;

/// The client's events (last acknowledgement by the old primary, first failed attempt after
/// the fault, first acknowledgement by the new primary); the write outage between the first
/// and the last.
pub(crate) fn client_events(
    ctx: &mut Ctx,
    attempts: &[Attempt],
    app: &str,
    old: &str,
    new: &str,
) -> Option<f64> {
    let t0 = ctx.t0;
    let last_old = attempts
        .iter()
        .rfind(|a| matches!(&a.outcome, Outcome::Ack { server } if server == old))
        .cloned();
    if let Some(a) = &last_old {
        ctx.at(
            "last_ack_old_primary",
            Some(a.t_ms),
            Some(old),
            format!("key {}", a.key),
        );
    }
    if let Some(a) = attempts
        .iter()
        .find(|a| a.t_ms >= t0 && matches!(a.outcome, Outcome::Failed { .. }))
    {
        if let Outcome::Failed { error } = &a.outcome {
            ctx.at("first_write_failed", Some(a.t_ms), Some(app), error.clone());
        }
    }
    let first_new = first_ack(attempts, new).cloned();
    if let Some(a) = &first_new {
        ctx.at(
            "first_ack_new_primary",
            Some(a.t_ms),
            Some(new),
            format!("key {}", a.key),
        );
    } else {
        ctx.at(
            "first_ack_new_primary",
            None,
            Some(new),
            "no write acknowledged by the new primary",
        );
    }
    match (&last_old, &first_new) {
        (Some(a), Some(b)) => Some(b.t_ms - a.t_ms),
        _ => None,
    }
}

/// The writes per outcome and server.
pub(crate) fn tally(attempts: &[Attempt], run_id: i64) -> Writes {
    let mut writes = Writes {
        run_id,
        attempts: attempts.len(),
        ..Default::default()
    };
    for a in attempts {
        match &a.outcome {
            Outcome::Ack { server } => *writes.acked.entry(server.clone()).or_default() += 1,
            Outcome::Duplicate { .. } => writes.duplicates += 1,
            Outcome::Failed { .. } => writes.failed_attempts += 1,
        }
    }
    writes
}

/// Keys whose rows on the servers were written by two different servers, as (conflicts,
/// explained). `holders`: key -> (server asked -> the `host` its row names). With `cut_off`
/// (the fault can drop the old primary's answers), a key the old primary committed without the
/// client ever seeing its acknowledgement, and that the client then wrote on the new primary,
/// is explained: nobody acknowledged it twice. Every other such key is a conflict.
fn divergent_keys(
    holders: &BTreeMap<u64, BTreeMap<String, String>>,
    acked_by_old: &BTreeSet<u64>,
    old: &str,
    cut_off: bool,
) -> (Vec<u64>, Vec<u64>) {
    let mut conflicts = Vec::new();
    let mut explained = Vec::new();
    for (k, rows) in holders {
        let hosts: BTreeSet<&String> = rows.values().collect();
        if hosts.len() < 2 {
            continue;
        }
        if cut_off
            && hosts.len() == 2
            && hosts.iter().any(|h| *h == old)
            && !acked_by_old.contains(k)
        {
            explained.push(*k);
        } else {
            conflicts.push(*k);
        }
    }
    (conflicts, explained)
}

/// The outcome's checks of a drill that ran in `c`'s lab, from the client's `attempts` (of
/// `run_id`), and the tally of its writes.
pub(crate) fn outcome_checks(
    lab: &Lab,
    scenario: Scenario,
    c: &Cast,
    attempts: &[Attempt],
    run_id: i64,
) -> (Vec<Check>, Writes) {
    let (old, new) = (c.old.as_str(), c.new.as_str());
    let mut checks = route_checks(lab, c);
    let mut writes = tally(attempts, run_id);
    let acks = Acks::of(attempts, old, new);
    let (holders, asked) = holders(lab, scenario, c, run_id, &mut checks);
    let (conflicting, cut_off) = divergent_keys(
        &holders,
        &acks.by_old,
        old,
        scenario.answers_can_be_cut_off(),
    );
    let on_new: BTreeSet<u64> = holders
        .iter()
        .filter(|(_, m)| m.contains_key(new))
        .map(|(k, _)| *k)
        .collect();
    let missing_new = acks.by_new.iter().filter(|k| !on_new.contains(k)).count();
    writes.lost_acked_keys = acks
        .by_old
        .iter()
        .filter(|k| !on_new.contains(k))
        .copied()
        .collect();
    checks.push(Check {
        name: format!("writes land on {new}"),
        ok: !acks.by_new.is_empty() && missing_new == 0,
        detail: format!(
            "{} acknowledged by {new}; {missing_new} of them missing from its table",
            acks.by_new.len(),
        ),
    });
    checks.push(Check {
        name: "no key acknowledged by two different servers".into(),
        ok: acks.twice.is_empty() && conflicting.is_empty() && acks.late_old == 0,
        detail: format!(
            "client: {} keys acked by two servers, {} acks by another server after {new}'s first; \
             tables of {}: {} keys written by two servers{}",
            acks.twice.len(),
            acks.late_old,
            asked.join(", "),
            conflicting.len(),
            if cut_off.is_empty() {
                String::new()
            } else {
                format!(
                    " (and {} committed by {old} but never acknowledged, its answer cut off by \
                     the partition, then written on {new}: keys {cut_off:?})",
                    cut_off.len()
                )
            }
        ),
    });
    checks.extend(scenario_checks(lab, scenario, &writes, old, new));
    (checks, writes)
}

/// Every router, now: the old primary's routes gone, every route leading to the new one.
fn route_checks(lab: &Lab, c: &Cast) -> Vec<Check> {
    let (old, new, fabric) = (&c.old, &c.new, &c.fabric);
    let leads = fabric.leads(lab);
    let show = leads
        .iter()
        .map(|(r, p, l)| format!("{r}: {p}->{}", l.as_deref().unwrap_or("none")))
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        Check {
            name: format!("{old}'s routes gone from every router"),
            ok: leads
                .iter()
                .all(|(_, _, l)| l.as_deref() != Some(old.as_str())),
            detail: show.clone(),
        },
        Check {
            name: format!(
                "every router routes the service ({}) to {new}",
                fabric.prefixes.join(", ")
            ),
            ok: leads
                .iter()
                .all(|(_, _, l)| l.as_deref() == Some(new.as_str())),
            detail: show,
        },
    ]
}

/// Acknowledgements as the client saw them.
struct Acks {
    /// Keys acknowledged by two servers.
    twice: Vec<u64>,
    /// Acknowledgements by another server after the new primary's first.
    late_old: usize,
    /// Keys the new primary acknowledged.
    by_new: Vec<u64>,
    /// Keys the old primary acknowledged.
    by_old: BTreeSet<u64>,
}

impl Acks {
    fn of(attempts: &[Attempt], old: &str, new: &str) -> Acks {
        let mut by_key: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for a in attempts {
            if let Outcome::Ack { server } | Outcome::Duplicate { server } = &a.outcome {
                by_key.entry(a.key).or_default().insert(server.clone());
            }
        }
        let acked_by = |who: &str| -> Vec<u64> {
            attempts
                .iter()
                .filter(|a| matches!(&a.outcome, Outcome::Ack { server } if server == who))
                .map(|a| a.key)
                .collect()
        };
        let first_new = first_ack(attempts, new).map(|a| a.t_ms);
        Acks {
            twice: by_key
                .iter()
                .filter(|(_, s)| s.len() > 1)
                .map(|(k, _)| *k)
                .collect(),
            late_old: first_new.map_or(0, |t| {
                attempts
                    .iter()
                    .filter(|a| {
                        a.t_ms > t && matches!(&a.outcome, Outcome::Ack { server } if server != new)
                    })
                    .count()
            }),
            by_new: acked_by(new),
            by_old: acked_by(old).into_iter().collect(),
        }
    }
}

/// What the servers hold of the run: key -> (server -> the host that wrote it), and the
/// servers asked. The old primary is asked only when it still answers; a server that does not
/// answer is a failed check (the old primary's is not).
fn holders(
    lab: &Lab,
    scenario: Scenario,
    c: &Cast,
    run_id: i64,
    checks: &mut Vec<Check>,
) -> (BTreeMap<u64, BTreeMap<String, String>>, Vec<String>) {
    let mut holders: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
    let mut asked = Vec::new();
    for d in &c.dbs {
        if *d == c.old && !scenario.old_primary_answers() {
            continue;
        }
        let q = format!("SELECT k, host FROM lab.writes WHERE run = {run_id}");
        match sql::query(lab, d, &q, 5) {
            Ok(rows) => {
                asked.push(d.clone());
                for r in rows {
                    if let (Some(k), Some(h)) =
                        (r.get("k").and_then(|k| k.parse().ok()), r.get("host"))
                    {
                        holders.entry(k).or_default().insert(d.clone(), h.clone());
                    }
                }
            }
            Err(e) => checks.push(Check {
                name: format!("{d} answers"),
                ok: *d == c.old,
                detail: format!("{e:#}"),
            }),
        }
    }
    (holders, asked)
}

/// The checks only some drills have: nothing acknowledged lost where the old primary was
/// fenced alive, and a switchover's old primary replicating from the new one.
fn scenario_checks(
    lab: &Lab,
    scenario: Scenario,
    writes: &Writes,
    old: &str,
    new: &str,
) -> Vec<Check> {
    let mut checks = Vec::new();
    if matches!(
        scenario,
        Scenario::Demote | Scenario::Switchover | Scenario::DaemonCrash
    ) {
        checks.push(Check {
            name: "no acknowledged write lost".into(),
            ok: writes.lost_acked_keys.is_empty(),
            detail: format!(
                "{} keys acked by {old} missing on {new}",
                writes.lost_acked_keys.len()
            ),
        });
    }
    if scenario == Scenario::Switchover {
        let r = sql::replication(lab, old).unwrap_or_default();
        checks.push(Check {
            name: format!("{old} replicates from {new}"),
            ok: r.len() == 1 && r[0].io_running == "Yes" && r[0].sql_running == "Yes",
            detail: format!("{r:?}"),
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[(u64, &[(&str, &str)])]) -> BTreeMap<u64, BTreeMap<String, String>> {
        v.iter()
            .map(|(k, r)| {
                let m = r
                    .iter()
                    .map(|(s, h)| (s.to_string(), h.to_string()))
                    .collect();
                (*k, m)
            })
            .collect()
    }

    #[test]
    fn a_write_cut_off_by_the_partition_is_not_a_double_acknowledgement() {
        // Key 7: committed by db1 (never acknowledged), then written on db2 and replicated to
        // db3. Key 8: replicated everywhere from db1. Key 9: acknowledged by db1 and written
        // again on db2: a real conflict.
        let h = rows(&[
            (7, &[("db1", "db1"), ("db2", "db2"), ("db3", "db2")]),
            (8, &[("db1", "db1"), ("db2", "db1"), ("db3", "db1")]),
            (9, &[("db1", "db1"), ("db2", "db2")]),
        ]);
        let acked: BTreeSet<u64> = [8, 9].into();
        assert_eq!(divergent_keys(&h, &acked, "db1", true), (vec![9], vec![7]));
        // Where no partition can drop an answer, both are conflicts.
        assert_eq!(
            divergent_keys(&h, &acked, "db1", false),
            (vec![7, 9], vec![])
        );
        // A key written by the new primary and a third server is never explained.
        let h = rows(&[(5, &[("db2", "db2"), ("db3", "db3")])]);
        assert_eq!(divergent_keys(&h, &acked, "db1", true), (vec![5], vec![]));
    }
}
