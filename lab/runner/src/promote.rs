//! The failover drills' promotion, as orchestrator does it: fence the old primary where it is
//! left writable, let the replica catch up, promote it, repoint the other replicas, and (a
//! switchover) make the old primary a replica of the new one.

use anyhow::{bail, Context, Result};

use crate::cast::Cast;
use crate::fault::primaryctl;
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
