//! Who is who in a lab ready for a drill (the primary, the replica to promote, the routers,
//! the client), and the drill's instruments in their steady state before the fault.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::attempt::{acks_by, Outcome};
use crate::clients::Client;
use crate::fault::pid_of;
use crate::lab::Lab;
use crate::routers::{db_names, Fabric};
use crate::routes::Monitors;
use crate::scenario::{Daemon, Scenario, POLL, WARM_ACKS};
use crate::sql::{self, DbState};
use crate::topo::Role;
use crate::util::{self, now_ms, wait_for};
use crate::writer::Writer;

/// The router a host hangs off (the other end of its first link).
pub(crate) fn tor_of(lab: &Lab, node: &str) -> Option<String> {
    lab.topo
        .ifaces_of(node)
        .first()
        .and_then(|i| lab.topo.peer_of(node, i))
        .map(|e| e.node.clone())
}

/// Who is who in a lab ready for a drill: the one writable, non-replicating server (the old
/// primary), the replica to promote, the other replicas, the routers and the client.
pub(crate) struct Cast {
    pub dbs: Vec<String>,
    pub routers: Vec<String>,
    pub app: String,
    pub old: String,
    pub old_addr: String,
    pub new: String,
    pub new_addr: String,
    pub others: Vec<String>,
    pub fabric: Fabric,
    pub daemon: Daemon,
}

/// Finds the cast, and waits until every router's route leads to the old primary.
pub(crate) fn cast(
    lab: &Lab,
    scenario: Scenario,
    to: Option<&str>,
    step: Duration,
) -> Result<Cast> {
    let dbs = db_names(lab);
    let app = lab
        .topo
        .with_role(Role::App)
        .next()
        .context("the topology has no app node")?
        .name
        .clone();
    if !util::netns_list().contains(&lab.netns(&app)) {
        bail!("lab {} is not up: run `primaryd-lab up` first", lab.id);
    }
    let states = db_states(lab, &dbs)?;
    let old = the_primary(&dbs, &states)?;
    let daemon = daemon_of(lab, &old)?;
    let old_addr = sql::loopback(lab, &old)?;
    let replicas = replicas_of(&dbs, &states, &old_addr);
    let new = choose_new(lab, &old, &replicas, to)?;
    let new_addr = sql::loopback(lab, &new)?;
    let others: Vec<String> = replicas.iter().filter(|r| **r != new).cloned().collect();
    let fabric = Fabric::of(lab);
    wait_routes_lead_to(lab, &fabric, &old, step)?;
    eprintln!(
        "drill {}: primary {old}, promoting {new}{}; app1 writes through 192.0.2.10",
        scenario.name(),
        if others.is_empty() {
            String::new()
        } else {
            format!(", repointing {}", others.join(", "))
        }
    );
    Ok(Cast {
        dbs,
        routers: fabric.routers.clone(),
        app,
        old,
        old_addr,
        new,
        new_addr,
        others,
        fabric,
        daemon,
    })
}

fn db_states(lab: &Lab, dbs: &[String]) -> Result<BTreeMap<String, DbState>> {
    let mut states = BTreeMap::new();
    for d in dbs {
        let s = sql::db_state(lab, d).with_context(|| format!("{d} does not answer"))?;
        states.insert(d.clone(), s);
    }
    Ok(states)
}

/// The one writable, non-replicating server.
fn the_primary(dbs: &[String], states: &BTreeMap<String, DbState>) -> Result<String> {
    let primaries: Vec<&String> = dbs
        .iter()
        .filter(|d| !states[*d].read_only && states[*d].replication.is_none())
        .collect();
    let [old] = primaries.as_slice() else {
        bail!("expected exactly one writable, non-replicating server, found {primaries:?}: the lab is not in a state for a drill (run down and up)");
    };
    Ok((*old).clone())
}

fn daemon_of(lab: &Lab, old: &str) -> Result<Daemon> {
    if pid_of(lab, old, "primaryd").is_ok() {
        Ok(Daemon::Primaryd)
    } else if pid_of(lab, old, "exabgp").is_ok() {
        Ok(Daemon::Exabgp)
    } else {
        bail!("neither primaryd nor exabgp runs on {old}");
    }
}

/// The servers replicating from `old_addr` with both threads running.
fn replicas_of(dbs: &[String], states: &BTreeMap<String, DbState>, old_addr: &str) -> Vec<String> {
    dbs.iter()
        .filter(|d| {
            states[*d]
                .replication
                .as_deref()
                .is_some_and(|r| r.starts_with(&format!("{old_addr} io=Yes sql=Yes")))
        })
        .cloned()
        .collect()
}

/// The replica to promote: `to` if given, else one behind another router than the old
/// primary's (so the route has to move between routers), else the first.
fn choose_new(lab: &Lab, old: &str, replicas: &[String], to: Option<&str>) -> Result<String> {
    match to {
        Some(t) if replicas.iter().any(|r| r == t) => Ok(t.to_string()),
        Some(t) => {
            bail!("{t} is not a replica of {old} with replication running (replicas: {replicas:?})")
        }
        None => {
            let old_tor = tor_of(lab, old);
            replicas
                .iter()
                .find(|r| tor_of(lab, r) != old_tor)
                .or(replicas.first())
                .cloned()
                .with_context(|| format!("{old} has no replica with replication running"))
        }
    }
}

fn wait_routes_lead_to(lab: &Lab, fabric: &Fabric, old: &str, step: Duration) -> Result<()> {
    if wait_for(step, POLL, || fabric.all_lead_to(lab, old).then_some(())).is_none() {
        let wrong: Vec<String> = fabric
            .leads(lab)
            .into_iter()
            .filter(|(_, _, l)| l.as_deref() != Some(old))
            .map(|(r, p, l)| format!("{r}: {p} -> {}", l.as_deref().unwrap_or("none")))
            .collect();
        bail!("not every route leads to {old}: {}", wrong.join(", "));
    }
    Ok(())
}

/// The drill's instruments in their steady state: the kernel route monitors and app1's writer,
/// which has had WARM_ACKS writes acknowledged by the old primary.
pub(crate) struct Steady {
    pub monitors: Monitors,
    pub writer: Writer,
    pub run_id: i64,
}

pub(crate) fn steady(lab: &Lab, c: &Cast, step: Duration, client: Client) -> Result<Steady> {
    let (routers, app, old) = (&c.routers, &c.app, &c.old);
    let monitors = Monitors::start(lab, routers)?;
    let run_id = (now_ms() / 1000.0) as i64;
    let writer = Writer::start(
        format!("/run/netns/{}", lab.netns(app)).into(),
        run_id,
        client,
    )?;
    let warm = wait_for(step, POLL, || {
        let n = acks_by(&writer.snapshot(), old);
        (n >= WARM_ACKS).then_some(())
    });
    if warm.is_none() {
        let last = writer.stop();
        let err = last.iter().rev().find_map(|a| match &a.outcome {
            Outcome::Failed { error } => Some(error.clone()),
            _ => None,
        });
        bail!(
            "app1 cannot write through 192.0.2.10 to {old} ({} attempts; last error: {})",
            last.len(),
            err.unwrap_or_default()
        );
    }
    // Let the monitors settle on their first reading.
    std::thread::sleep(Duration::from_millis(50));
    Ok(Steady {
        monitors,
        writer,
        run_id,
    })
}
