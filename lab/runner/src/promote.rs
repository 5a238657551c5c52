//! The failover drills' promotion, as orchestrator does it: fence the old primary where it is
//! left writable, let the replica catch up, promote it, repoint the other replicas, and (a
//! switchover) make the old primary a replica of the new one.

use anyhow::{bail, Context, Result};

use crate::cast::Cast;
use crate::fault::primaryctl;
use crate::lab::Lab;
use crate::scenario::{Ctx, Scenario, SERVICE};
use crate::sql;
use crate::util::{self, now_ms};

const PROMOTE_SQL: &str = "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0";

pub(crate) fn promote(ctx: &mut Ctx, scenario: Scenario, c: &Cast) -> Result<()> {
    let t = now_ms();
    // Fence the old primary when it can be reached; a crashed daemon left it writable.
    if scenario == Scenario::DaemonCrash {
        fence(ctx, &c.old)?;
    }
    let pos = catch_up(ctx, scenario, c)?;
    let new = c.new.as_str();
    if !(scenario.old_primary_answers() && scenario != Scenario::Isolate) {
        if let Some(from) = catch_up_from_siblings(ctx.lab, new, &c.others)? {
            ctx.notes.push(from);
        }
    }
    ctx.at(
        "promotion_started",
        Some(t),
        Some(new),
        format!("{new} caught up to {pos}"),
    );
    sql::exec(ctx.lab, new, PROMOTE_SQL)?;
    ctx.at("promotion_done", Some(now_ms()), Some(new), PROMOTE_SQL);
    repoint(ctx, c)?;
    if scenario == Scenario::Switchover {
        old_replicates(ctx, c)?;
    }
    Ok(())
}

fn fence(ctx: &mut Ctx, old: &str) -> Result<()> {
    sql::exec(ctx.lab, old, "SET GLOBAL read_only=1").context("fencing the old primary")?;
    ctx.at(
        "old_primary_fenced",
        Some(now_ms()),
        Some(old),
        "SET GLOBAL read_only=1",
    );
    Ok(())
}

/// Catch up: everything the old primary wrote when it still answers, else everything the
/// replica already received. The GTID position reached.
fn catch_up(ctx: &Ctx, scenario: Scenario, c: &Cast) -> Result<String> {
    let (lab, old, new) = (ctx.lab, c.old.as_str(), c.new.as_str());
    let pos = if scenario.old_primary_answers() && scenario != Scenario::Isolate {
        sql::value(lab, old, "SELECT @@gtid_binlog_pos")?
    } else {
        sql::replication(lab, new)?
            .first()
            .map(|c| c.gtid_io_pos.clone())
            .unwrap_or_default()
    };
    if !pos.is_empty() {
        let r = sql::value(lab, new, &format!("SELECT MASTER_GTID_WAIT('{pos}', 10)"))?;
        if r != "0" {
            bail!("{new} did not reach GTID {pos} within 10 s");
        }
    }
    Ok(pos)
}

/// The other replicas replicate from the new primary.
fn repoint(ctx: &mut Ctx, c: &Cast) -> Result<()> {
    for o in &c.others {
        sql::replicate_from(ctx.lab, o, &c.new_addr)?;
    }
    if !c.others.is_empty() {
        ctx.at(
            "replicas_repointed",
            Some(now_ms()),
            None,
            format!(
                "{} now replicate from {} (MASTER_USE_GTID=slave_pos)",
                c.others.join(", "),
                c.new
            ),
        );
    }
    Ok(())
}

/// A switchover's old primary replicates from the new one, undrained.
fn old_replicates(ctx: &mut Ctx, c: &Cast) -> Result<()> {
    let (lab, old, new) = (ctx.lab, c.old.as_str(), c.new.as_str());
    // Its own binlog is where it stands: a stale gtid_slave_pos (from when it was last a
    // replica) would ask the new primary for a GTID it may no longer have (the soak).
    sql::exec(lab, old, "SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos")?;
    sql::replicate_from(lab, old, &c.new_addr)?;
    if ctx.drained {
        // A replica is never announced anyway; undrained, it can be promoted back later.
        util::run_ok(&mut lab.node_command(old, &primaryctl(&["undrain", SERVICE])))
            .context("primaryctl undrain")?;
    }
    ctx.at(
        "old_primary_replicates",
        Some(now_ms()),
        Some(old),
        format!("{old} ({}) now replicates from {new}", c.old_addr),
    );
    Ok(())
}

/// The highest sequence number in a GTID position ("0-1-42,1-3-7": 42).
fn gtid_seq(pos: &str) -> u64 {
    pos.split(',')
        .filter_map(|g| g.trim().rsplit('-').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// With the old primary out of reach, another replica may have received more of its binlog
/// than the one promoted (a commit reaches the replicas one after the other); it could then
/// never replicate from the new primary. As orchestrator regroups the replicas first, each
/// applies what it received, and the new primary replicates from the most advanced one until
/// it has it all (found by the soak: a hang left db3 one transaction ahead of db2). Returns a
/// note when it had to.
pub(crate) fn catch_up_from_siblings(
    lab: &Lab,
    new: &str,
    others: &[String],
) -> Result<Option<String>> {
    let mut best: Option<(String, String)> = None;
    for o in others {
        let io = sql::replication(lab, o)?
            .first()
            .map(|c| c.gtid_io_pos.clone())
            .unwrap_or_default();
        if !io.is_empty() {
            sql::value(lab, o, &format!("SELECT MASTER_GTID_WAIT('{io}', 10)"))?;
        }
        let pos = sql::value(lab, o, "SELECT @@gtid_slave_pos")?;
        if best
            .as_ref()
            .is_none_or(|(_, b)| gtid_seq(&pos) > gtid_seq(b))
        {
            best = Some((o.clone(), pos));
        }
    }
    let mine = sql::value(lab, new, "SELECT @@gtid_slave_pos")?;
    let Some((o, pos)) = best.filter(|(_, p)| gtid_seq(p) > gtid_seq(&mine)) else {
        return Ok(None);
    };
    sql::replicate_from(lab, new, &sql::loopback(lab, &o)?)?;
    let r = sql::value(lab, new, &format!("SELECT MASTER_GTID_WAIT('{pos}', 10)"))?;
    if r != "0" {
        bail!("{new} did not reach {o}'s GTID {pos} within 10 s");
    }
    Ok(Some(format!(
        "{o} had received more than {new} ({pos} against {mine}): {new} took it from {o} first"
    )))
}
