//! The end of `up`: waiting until the lab converged (every DB answers, every replica
//! replicates, every BGP and BFD session is up, every router's route leads to the primary),
//! giving up at once when a node's main process exits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::hostloss;
use crate::lab::Lab;
use crate::sql;
use crate::topo::{Node, Role};
use crate::util::{self, wait_for};

/// Bound for the whole of `up`'s wait for a converged lab.
const UP_TIMEOUT: Duration = Duration::from_secs(120);

/// The wait's bound, cut short when a node's main process exited, and its failures with the
/// nodes' consoles.
struct Wait<'a> {
    lab: &'a Lab,
    deadline: Instant,
    cmds: &'a BTreeMap<String, i32>,
}

impl Wait<'_> {
    /// A node whose main process exited will not converge: stop waiting at once.
    fn dead(&self) -> Option<String> {
        self.cmds
            .iter()
            .find(|(_, pid)| !util::alive(**pid))
            .map(|(n, _)| n.clone())
    }

    fn left(&self) -> Duration {
        if self.dead().is_some() {
            Duration::ZERO
        } else {
            self.deadline.saturating_duration_since(Instant::now())
        }
    }

    /// Polls `f` every `every` until it holds, or fails saying what it waited for.
    fn until(&self, every: Duration, what: &str, f: impl FnMut() -> Option<()>) -> Result<()> {
        wait_for(self.left(), every, f).ok_or_else(|| self.fail(what))
    }

    fn fail(&self, what: &str) -> anyhow::Error {
        let lab = self.lab;
        let mut msg = match self.dead() {
            Some(n) => format!(
                "lab {}: the main process of {n} exited (waiting until {what})\n",
                lab.id
            ),
            None => format!("lab {}: timed out waiting until {what}\n", lab.id),
        };
        for n in &lab.topo.nodes {
            msg.push_str(&format!(
                "----- {} console (last lines) -----\n{}\n",
                n.name,
                util::tail(&lab.console_log(&n.name), 15)
            ));
        }
        anyhow::anyhow!(msg)
    }
}

impl Lab {
    /// Waits until every DB answers and every replica replicates, every BGP session is up and
    /// every router's route to the service leads to the primary.
    pub(crate) fn wait_converged(&self, t0: Instant, cmds: &BTreeMap<String, i32>) -> Result<()> {
        let w = Wait {
            lab: self,
            deadline: t0 + UP_TIMEOUT,
            cmds,
        };
        let dbs: Vec<&Node> = self.topo.with_role(Role::Db).collect();
        self.wait_databases(&w, &dbs)?;
        self.wait_sessions(&w)?;
        let primaries: Vec<&str> = dbs
            .iter()
            .filter(|d| !d.env.contains_key("LAB_SOURCE"))
            .map(|d| d.name.as_str())
            .collect();
        if let [p] = primaries.as_slice() {
            self.wait_routes(&w, p)?;
        }
        Ok(())
    }

    /// Every DB answers SQL; every replica (a node with LAB_SOURCE) replicates.
    fn wait_databases(&self, w: &Wait, dbs: &[&Node]) -> Result<()> {
        let every = Duration::from_millis(200);
        for db in dbs {
            w.until(every, &format!("{} answers SQL", db.name), || {
                self.db_answers(&db.name).then_some(())
            })?;
        }
        for db in dbs.iter().filter(|d| d.env.contains_key("LAB_SOURCE")) {
            let what = format!("{} replicates (IO and SQL threads running)", db.name);
            w.until(every, &what, || {
                let r = sql::replication(self, &db.name).ok()?;
                (r.len() == 1 && r[0].io_running == "Yes" && r[0].sql_running == "Yes")
                    .then_some(())
            })?;
        }
        Ok(())
    }

    /// Every router's BGP sessions are Established, and its BFD sessions up where the lab
    /// runs BFD.
    fn wait_sessions(&self, w: &Wait) -> Result<()> {
        let every = Duration::from_millis(200);
        for r in self.topo.nodes.iter().filter(|n| n.role.is_router()) {
            let what = format!("every BGP session of {} is Established", r.name);
            w.until(every, &what, || {
                let s = self.bgp_sessions(&r.name).ok()?;
                (!s.is_empty() && s.iter().all(|(_, st)| st == "Established")).then_some(())
            })?;
        }
        if hostloss::bfd_expected(self) {
            for r in self.topo.nodes.iter().filter(|n| n.role.is_router()) {
                let what = format!("every BFD session of {} is up", r.name);
                w.until(every, &what, || {
                    hostloss::router_bfd_up(self, &r.name).then_some(())
                })?;
            }
        }
        Ok(())
    }

    /// Every router's route to every service prefix leads to the primary `p`.
    fn wait_routes(&self, w: &Wait, p: &str) -> Result<()> {
        let prefixes = self.service_prefixes();
        for r in self.topo.nodes.iter().filter(|n| n.role.is_router()) {
            for prefix in &prefixes {
                let what = format!("{}'s route to {prefix} leads to {p}", r.name);
                w.until(Duration::from_millis(100), &what, || {
                    (self.route_leads_to(&r.name, prefix).as_deref() == Some(p)).then_some(())
                })?;
            }
        }
        Ok(())
    }
}
