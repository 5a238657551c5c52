//! Failover drills: break the primary one way or another, promote a replica as orchestrator
//! would, while app1 writes through the service address; then put the evidence in one
//! timeline (fault, check failed, withdraw sent, routes gone and back at every router,
//! promotion, first write acknowledged by the new primary) and check the outcome.
//!
//! Times are wall-clock milliseconds relative to the fault. Sources: primaryd's own log lines
//! (their timestamps), the routers' kernel tables (`ip monitor route`, stamped when read), the
//! runner's clock for what it did, and the writer's clock for each answer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::lab::{Lab, SERVICE_PREFIX};
use crate::logparse::{self, LogLine};
use crate::routes::{Monitors, RouteChange};
use crate::sql;
use crate::topo::Role;
use crate::util::{self, now_ms, wait_for};
use crate::writer::{Attempt, Outcome, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// SIGKILL mariadbd on the primary.
    Kill,
    /// SIGSTOP mariadbd on the primary (it hangs; only a timeout sees it).
    Hang,
    /// SET GLOBAL read_only=1 on the primary, then promote.
    Demote,
    /// Graceful: drain the old primary, let the replica catch up, promote, and make the old
    /// primary a replica of the new one.
    Switchover,
    /// Take the primary's uplinks down.
    Isolate,
    /// SIGKILL primaryd on the primary (MariaDB keeps running).
    DaemonCrash,
    /// SIGSTOP every process of the primary's host, links up (hostloss.rs): nobody sends a
    /// withdraw; BFD (or the hold timer) finds the host silent.
    HostFreeze,
    /// SIGKILL mariadbd on the primary, promote a replica, then start the old server again:
    /// writable (read_only=OFF), no replication. It must not get its route back
    /// (splitbrain.rs).
    Restart,
    /// The primary's uplinks down, promote a replica, links up again: the old host never
    /// failed a check and must not get its route back (splitbrain.rs).
    Heal,
    /// Promote a replica while the old primary stays a healthy writable primary: the old one
    /// must withdraw on seeing the newer term (splitbrain.rs).
    DoublePromote,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Kill => "kill",
            Scenario::Hang => "hang",
            Scenario::Demote => "demote",
            Scenario::Switchover => "switchover",
            Scenario::Isolate => "isolate",
            Scenario::DaemonCrash => "daemon-crash",
            Scenario::HostFreeze => "host-freeze",
            Scenario::Restart => "restart",
            Scenario::Heal => "heal",
            Scenario::DoublePromote => "double-promote",
        }
    }

    /// The drills of an old primary that comes back or never left (splitbrain.rs).
    pub fn split_brain(self) -> bool {
        matches!(
            self,
            Scenario::Restart | Scenario::Heal | Scenario::DoublePromote
        )
    }

    /// Whether the old primary's MariaDB answers (over its socket) when the outcome is checked
    /// (a restarted one does again).
    fn old_primary_answers(self) -> bool {
        !matches!(self, Scenario::Kill | Scenario::Hang | Scenario::HostFreeze)
    }

    /// Whether the fault can cut the client off from a write the old primary committed: its
    /// uplinks go down, or it is killed, between the commit and the answer; or the route moves
    /// while the answer is on its way.
    fn answers_can_be_cut_off(self) -> bool {
        matches!(
            self,
            Scenario::Isolate
                | Scenario::HostFreeze
                | Scenario::Restart
                | Scenario::Heal
                | Scenario::DoublePromote
        )
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Event {
    /// Stable name, e.g. `fault_injected`, `route_gone`, `first_ack_new_primary`.
    pub event: String,
    /// Milliseconds after the fault (negative: before it); None when not observed.
    pub t_ms: Option<f64>,
    pub node: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Writes {
    pub run_id: i64,
    pub attempts: usize,
    pub failed_attempts: usize,
    /// Acknowledged writes per server.
    pub acked: BTreeMap<String, usize>,
    pub duplicates: usize,
    /// Keys the old primary acknowledged that the new primary does not have (asynchronous
    /// replication loses what had not reached the replica when the primary died).
    pub lost_acked_keys: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub lab: String,
    pub old_primary: String,
    pub new_primary: String,
    /// Unix time of the fault, in milliseconds; every `t_ms` is relative to it.
    pub fault_unix_ms: f64,
    pub events: Vec<Event>,
    /// First acknowledgement by the new primary minus the last one by the old primary.
    pub write_outage_ms: Option<f64>,
    pub writes: Writes,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    pub ok: bool,
    /// Every write attempt of app1, in order.
    pub attempts: Vec<Attempt>,
    /// The split-brain drills: `primaryctl show routes` and `show services` on the old
    /// primary, as it explained why it did not announce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_primary_view: Option<String>,
}

/// Bound on each wait of the drill (withdraw, promotion, new route, first write): generous,
/// as a host cut off without a link-down is found by the 3 s hold time and CI machines are slow.
pub(crate) const STEP: Duration = Duration::from_secs(20);
pub(crate) const POLL: Duration = Duration::from_millis(20);
/// Writes acknowledged by the primary before the fault: the client is in its steady state.
pub(crate) const WARM_ACKS: usize = 20;
/// How long the writer goes on once the new primary has acknowledged its first write.
pub(crate) const AFTER: Duration = Duration::from_millis(1000);

/// How a drill runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bound on each wait (see STEP). The benchmark gives ExaBGP with its defaults more: a hung
    /// server takes it three 5 s timeouts plus the intervals between them.
    pub step: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options { step: STEP }
    }
}

/// What announces the service on the DB hosts (found from the old primary's processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Daemon {
    Primaryd,
    /// ExaBGP with exabgp-healthcheck (the benchmark's variant, lab/exabgp/).
    Exabgp,
}

impl Daemon {
    fn comm(self) -> &'static str {
        match self {
            Daemon::Primaryd => "primaryd",
            Daemon::Exabgp => "exabgp",
        }
    }
}

pub(crate) struct Ctx<'a> {
    pub lab: &'a Lab,
    pub events: Vec<Event>,
    pub notes: Vec<String>,
    pub t0: f64,
    /// The old primary was drained with primaryctl (undrained once it is a replica).
    pub drained: bool,
}

/// The lab's service, as named in the DB hosts' primaryd.toml.
pub(crate) const SERVICE: &str = "main";

impl Ctx<'_> {
    /// An event at a log line's time, described from its message; `missing` when the log has
    /// no such line.
    pub fn logged(
        &mut self,
        event: &str,
        node: &str,
        line: Option<&LogLine>,
        detail: impl FnOnce(&str) -> String,
        missing: &str,
    ) {
        let (t, d) = match line {
            Some(l) => (Some(l.t_ms), detail(&l.message)),
            None => (None, missing.to_string()),
        };
        self.at(event, t, Some(node), d);
    }

    /// The Unix time of the first event so named, if it was observed.
    pub fn unix_ms_of(&self, event: &str) -> Option<f64> {
        self.events
            .iter()
            .find(|e| e.event == event)
            .and_then(|e| e.t_ms)
            .map(|t| t + self.t0)
    }

    pub fn at(
        &mut self,
        event: &str,
        t_unix_ms: Option<f64>,
        node: Option<&str>,
        detail: impl Into<String>,
    ) {
        self.events.push(Event {
            event: event.into(),
            t_ms: t_unix_ms.map(|t| t - self.t0),
            node: node.map(str::to_string),
            detail: detail.into(),
        });
    }
}

pub(crate) fn pid_of(lab: &Lab, node: &str, comm: &str) -> Result<i32> {
    util::netns_pids(&lab.netns(node))
        .into_iter()
        .find(|p| util::comm(*p) == comm)
        .with_context(|| format!("no {comm} process in {node}"))
}

pub(crate) fn signal(pid: i32, sig: nix::sys::signal::Signal) -> Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)?;
    Ok(())
}

/// The routers and the service prefixes the DB hosts announce: where the drill looks for the
/// route (every prefix; the timeline follows SERVICE_PREFIX alone).
pub(crate) struct Fabric {
    pub routers: Vec<String>,
    pub prefixes: Vec<String>,
}

impl Fabric {
    /// (router, prefix, the host the route leads to) for every router and prefix.
    pub fn leads(&self, lab: &Lab) -> Vec<(String, String, Option<String>)> {
        let mut v = Vec::new();
        for r in &self.routers {
            for p in &self.prefixes {
                v.push((r.clone(), p.clone(), lab.route_leads_to(r, p)));
            }
        }
        v
    }

    pub fn all_lead_to(&self, lab: &Lab, node: &str) -> bool {
        self.routers.iter().all(|r| {
            self.prefixes
                .iter()
                .all(|p| lab.route_leads_to(r, p).as_deref() == Some(node))
        })
    }

    pub fn none_leads_to(&self, lab: &Lab, node: &str) -> bool {
        self.routers.iter().all(|r| {
            self.prefixes
                .iter()
                .all(|p| lab.route_leads_to(r, p).as_deref() != Some(node))
        })
    }
}

/// The router a host hangs off (the other end of its first link).
pub(crate) fn tor_of(lab: &Lab, node: &str) -> Option<String> {
    lab.topo
        .ifaces_of(node)
        .first()
        .and_then(|i| lab.topo.peer_of(node, i))
        .map(|e| e.node.clone())
}

pub fn run(lab: &Lab, scenario: Scenario, to: Option<&str>) -> Result<Report> {
    run_with(lab, scenario, to, &Options::default())
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
    let dbs: Vec<String> = lab
        .topo
        .with_role(Role::Db)
        .map(|n| n.name.clone())
        .collect();
    let routers: Vec<String> = lab
        .topo
        .nodes
        .iter()
        .filter(|n| n.role.is_router())
        .map(|n| n.name.clone())
        .collect();
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

    // ---- who is who ----
    let mut states = BTreeMap::new();
    for d in &dbs {
        let s = sql::db_state(lab, d).with_context(|| format!("{d} does not answer"))?;
        states.insert(d.clone(), s);
    }
    let primaries: Vec<&String> = dbs
        .iter()
        .filter(|d| !states[*d].read_only && states[*d].replication.is_none())
        .collect();
    let [old] = primaries.as_slice() else {
        bail!("expected exactly one writable, non-replicating server, found {primaries:?}: the lab is not in a state for a drill (run down and up)");
    };
    let old = (*old).clone();
    let daemon = if pid_of(lab, &old, "primaryd").is_ok() {
        Daemon::Primaryd
    } else if pid_of(lab, &old, "exabgp").is_ok() {
        Daemon::Exabgp
    } else {
        bail!("neither primaryd nor exabgp runs on {old}");
    };
    let old_addr = sql::loopback(lab, &old)?;
    let replicas: Vec<String> = dbs
        .iter()
        .filter(|d| {
            states[*d]
                .replication
                .as_deref()
                .is_some_and(|r| r.starts_with(&format!("{old_addr} io=Yes sql=Yes")))
        })
        .cloned()
        .collect();
    let new = match to {
        Some(t) if replicas.iter().any(|r| r == t) => t.to_string(),
        Some(t) => {
            bail!("{t} is not a replica of {old} with replication running (replicas: {replicas:?})")
        }
        None => {
            let old_tor = tor_of(lab, &old);
            replicas
                .iter()
                .find(|r| tor_of(lab, r) != old_tor)
                .or(replicas.first())
                .cloned()
                .with_context(|| format!("{old} has no replica with replication running"))?
        }
    };
    let new_addr = sql::loopback(lab, &new)?;
    let others: Vec<String> = replicas.iter().filter(|r| **r != new).cloned().collect();
    let fabric = Fabric {
        routers: routers.clone(),
        prefixes: lab.service_prefixes(),
    };
    if wait_for(step, POLL, || fabric.all_lead_to(lab, &old).then_some(())).is_none() {
        let wrong: Vec<String> = fabric
            .leads(lab)
            .into_iter()
            .filter(|(_, _, l)| l.as_deref() != Some(old.as_str()))
            .map(|(r, p, l)| format!("{r}: {p} -> {}", l.as_deref().unwrap_or("none")))
            .collect();
        bail!("not every route leads to {old}: {}", wrong.join(", "));
    }
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
        routers,
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

/// The drill's instruments in their steady state: the kernel route monitors and app1's writer,
/// which has had WARM_ACKS writes acknowledged by the old primary.
pub(crate) struct Steady {
    pub monitors: Monitors,
    pub writer: Writer,
    pub run_id: i64,
}

pub(crate) fn steady(lab: &Lab, c: &Cast, step: Duration) -> Result<Steady> {
    let (routers, app, old) = (&c.routers, &c.app, &c.old);
    let monitors = Monitors::start(lab, routers)?;
    let run_id = (now_ms() / 1000.0) as i64;
    let writer = Writer::start(format!("/run/netns/{}", lab.netns(app)).into(), run_id)?;
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

pub fn run_with(lab: &Lab, scenario: Scenario, to: Option<&str>, opts: &Options) -> Result<Report> {
    if scenario.split_brain() {
        return crate::splitbrain::run(lab, scenario, to, opts);
    }
    let step = opts.step;
    let c = cast(lab, scenario, to, step)?;
    let Steady {
        monitors,
        writer,
        run_id,
    } = steady(lab, &c, step)?;
    let Cast {
        dbs,
        routers,
        app,
        old,
        old_addr,
        new,
        new_addr,
        others,
        fabric,
        daemon,
    } = c;

    // ---- the fault ----
    let mut ctx = Ctx {
        lab,
        events: Vec::new(),
        notes: Vec::new(),
        t0: 0.0,
        drained: false,
    };
    let ns_old = lab.netns(&old);
    let detail = match scenario {
        Scenario::Kill | Scenario::Hang => {
            let pid = pid_of(lab, &old, "mariadbd")?;
            let (sig, name) = if scenario == Scenario::Kill {
                (nix::sys::signal::Signal::SIGKILL, "SIGKILL")
            } else {
                (nix::sys::signal::Signal::SIGSTOP, "SIGSTOP")
            };
            ctx.t0 = now_ms();
            signal(pid, sig)?;
            format!("{name} mariadbd (pid {pid})")
        }
        Scenario::DaemonCrash => {
            let pid = pid_of(lab, &old, daemon.comm())?;
            ctx.t0 = now_ms();
            signal(pid, nix::sys::signal::Signal::SIGKILL)?;
            format!(
                "SIGKILL {} (pid {pid}); MariaDB keeps running",
                daemon.comm()
            )
        }
        Scenario::Demote => {
            ctx.t0 = now_ms();
            sql::exec(lab, &old, "SET GLOBAL read_only=1")?;
            "SET GLOBAL read_only=1".to_string()
        }
        Scenario::Switchover => {
            // Graceful: `primaryctl drain` withdraws while the server is still writable, then
            // read_only=1 fences it. A primaryctl without drain (or a daemon without a
            // control socket): read_only=1 alone, which withdraws the route just the same.
            ctx.t0 = now_ms();
            let argv: Vec<String> = ["timeout", "10", "primaryctl", "drain", SERVICE]
                .map(String::from)
                .to_vec();
            let drain = util::run(&mut lab.node_command(&old, &argv))?;
            let drained = drain.status.success();
            let t_drained = now_ms();
            sql::exec(lab, &old, "SET GLOBAL read_only=1")?;
            if drained {
                ctx.at(
                    "drained",
                    Some(t_drained),
                    Some(&old),
                    format!("primaryctl drain {SERVICE}"),
                );
                ctx.drained = true;
                format!("primaryctl drain {SERVICE}, then SET GLOBAL read_only=1")
            } else {
                let why = String::from_utf8_lossy(&drain.stderr);
                let why = why
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                ctx.notes.push(format!(
                    "switchover drained by read_only=1 alone: `primaryctl drain` failed ({why})"
                ));
                "SET GLOBAL read_only=1 (primaryctl drain unavailable)".to_string()
            }
        }
        Scenario::Isolate => {
            let ifaces = lab.topo.ifaces_of(&old);
            ctx.t0 = now_ms();
            for i in &ifaces {
                util::ip(&["-n", &ns_old, "link", "set", i, "down"])?;
            }
            format!("uplinks down: {}", ifaces.join(", "))
        }
        Scenario::HostFreeze => {
            ctx.t0 = now_ms();
            crate::hostloss::freeze(lab, &old)?
        }
        Scenario::Restart | Scenario::Heal | Scenario::DoublePromote => {
            unreachable!("splitbrain.rs runs {}", scenario.name())
        }
    };
    let t0 = ctx.t0;
    ctx.at("fault_injected", Some(t0), Some(&old), detail);

    // ---- the old route goes ----
    let gone = wait_for(step, POLL, || {
        fabric.none_leads_to(lab, &old).then_some(now_ms())
    });
    let mut checks = Vec::new();
    checks.push(Check {
        name: "old route withdrawn before the promotion".into(),
        ok: gone.is_some(),
        detail: match gone {
            Some(t) => format!("no router leads to {old} after {:.1} ms", t - t0),
            None => format!("some router still leads to {old} after {step:?}"),
        },
    });

    // ---- promotion, as orchestrator does it ----
    let mut promoted = false;
    if gone.is_some() {
        match promote(
            &mut ctx, scenario, &old, &old_addr, &new, &new_addr, &others,
        ) {
            Ok(()) => promoted = true,
            Err(e) => checks.push(Check {
                name: "promotion".into(),
                ok: false,
                detail: format!("{e:#}"),
            }),
        }
    }

    // ---- the new route, the first write on the new primary ----
    if promoted {
        let converged = wait_for(step, POLL, || fabric.all_lead_to(lab, &new).then_some(()));
        let first = wait_for(step, POLL, || {
            first_ack(&writer.snapshot(), &new).map(|a| a.t_ms)
        });
        if converged.is_some() && first.is_some() {
            std::thread::sleep(AFTER);
        }
    }
    let attempts = writer.stop();
    let changes = monitors.snapshot();
    drop(monitors);

    // ---- the timeline ----
    let parse = match daemon {
        Daemon::Primaryd => logparse::parse,
        Daemon::Exabgp => logparse::parse_stamped,
    };
    let old_log = parse(&std::fs::read_to_string(lab.console_log(&old)).unwrap_or_default());
    let new_log = parse(&std::fs::read_to_string(lab.console_log(&new)).unwrap_or_default());
    match daemon {
        Daemon::Primaryd => daemon_events(&mut ctx, &old_log, &new_log, &old, &new, scenario),
        Daemon::Exabgp => exabgp_events(&mut ctx, &old_log, &new_log, &old, &new, scenario),
    }
    route_events(&mut ctx, &changes, &routers, &old, &new);
    let write_outage_ms = client_events(&mut ctx, &attempts, &app, &old, &new);
    ctx.events.sort_by(|a, b| {
        a.t_ms
            .unwrap_or(f64::INFINITY)
            .total_cmp(&b.t_ms.unwrap_or(f64::INFINITY))
    });

    // ---- the outcome ----
    let mut writes = tally(&attempts, run_id);
    outcome_checks(
        lab,
        scenario,
        &mut checks,
        &mut writes,
        &attempts,
        &fabric,
        &dbs,
        &old,
        &new,
        run_id,
    );
    let ok = checks.iter().all(|c| c.ok);
    let Ctx { events, notes, .. } = ctx;
    Ok(Report {
        scenario,
        lab: lab.id.clone(),
        old_primary: old,
        new_primary: new,
        fault_unix_ms: t0,
        events,
        write_outage_ms,
        writes,
        checks,
        notes,
        ok,
        attempts,
        old_primary_view: None,
    })
}

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

pub(crate) fn acks_by(attempts: &[Attempt], server: &str) -> usize {
    attempts
        .iter()
        .filter(|a| matches!(&a.outcome, Outcome::Ack { server: s } if s == server))
        .count()
}

pub(crate) fn first_ack<'a>(attempts: &'a [Attempt], server: &str) -> Option<&'a Attempt> {
    attempts
        .iter()
        .find(|a| matches!(&a.outcome, Outcome::Ack { server: s } if s == server))
}

#[allow(clippy::too_many_arguments)]
fn promote(
    ctx: &mut Ctx,
    scenario: Scenario,
    old: &str,
    old_addr: &str,
    new: &str,
    new_addr: &str,
    others: &[String],
) -> Result<()> {
    let lab = ctx.lab;
    let t = now_ms();
    // Fence the old primary when it can be reached; a crashed daemon left it writable.
    if scenario == Scenario::DaemonCrash {
        sql::exec(lab, old, "SET GLOBAL read_only=1").context("fencing the old primary")?;
        ctx.at(
            "old_primary_fenced",
            Some(now_ms()),
            Some(old),
            "SET GLOBAL read_only=1",
        );
    }
    // Catch up: everything the old primary wrote when it still answers, else everything the
    // replica already received.
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
    ctx.at(
        "promotion_started",
        Some(t),
        Some(new),
        format!("{new} caught up to {pos}"),
    );
    sql::exec(
        lab,
        new,
        "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0",
    )?;
    ctx.at(
        "promotion_done",
        Some(now_ms()),
        Some(new),
        "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0",
    );
    for o in others {
        sql::replicate_from(lab, o, new_addr)?;
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
    if scenario == Scenario::Switchover {
        sql::replicate_from(lab, old, new_addr)?;
        if ctx.drained {
            // A replica is never announced anyway; undrained, it can be promoted back later.
            let argv: Vec<String> = ["timeout", "10", "primaryctl", "undrain", SERVICE]
                .map(String::from)
                .to_vec();
            crate::util::run_ok(&mut lab.node_command(old, &argv)).context("primaryctl undrain")?;
        }
        ctx.at(
            "old_primary_replicates",
            Some(now_ms()),
            Some(old),
            format!("{old} ({old_addr}) now replicates from {new}"),
        );
    }
    Ok(())
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

pub(crate) const MISSING_PD: &str = "not in primaryd's log";
const MISSING_EX: &str = "not in ExaBGP's or exabgp-healthcheck's log";

pub(crate) fn daemon_events(
    ctx: &mut Ctx,
    old_log: &[LogLine],
    new_log: &[LogLine],
    old: &str,
    new: &str,
    scenario: Scenario,
) {
    let t0 = ctx.t0;
    let check = [
        logparse::first_after(old_log, t0, "check failed", ""),
        logparse::first_after(old_log, t0, "service down", ""),
    ]
    .into_iter()
    .flatten()
    .min_by(|a, b| a.t_ms.total_cmp(&b.t_ms))
    .cloned();
    let down = logparse::first_after(old_log, t0, "service down", "").cloned();
    let withdraw = old_log
        .iter()
        .find(|l| {
            l.t_ms >= t0
                && l.message.starts_with("sending UPDATE")
                && logparse::update_list(l, "withdraw").contains(SERVICE_PREFIX)
        })
        .cloned();
    match scenario {
        Scenario::DaemonCrash => {
            ctx.at("withdraw_sent", None, Some(old), "none: the daemon is dead; the ToR drops its routes when the kernel closes the TCP session");
        }
        Scenario::Isolate | Scenario::Heal => {
            ctx.at("withdraw_sent", None, Some(old), "none reaches the ToR: the link is down; the ToR drops the session on link-down or hold-time expiry");
        }
        Scenario::HostFreeze => {
            ctx.at("withdraw_sent", None, Some(old), "none: the host is frozen; the ToR drops the session when BFD (or the hold timer) finds it silent");
        }
        Scenario::DoublePromote => {
            // Its checks never fail: the withdraw is the rules' (the conflict line before it).
            ctx.logged(
                "withdraw_sent",
                old,
                withdraw.as_ref(),
                str::to_string,
                MISSING_PD,
            );
        }
        _ => {
            ctx.logged(
                "check_failed",
                old,
                check.as_ref(),
                str::to_string,
                MISSING_PD,
            );
            ctx.logged(
                "service_down",
                old,
                down.as_ref(),
                str::to_string,
                MISSING_PD,
            );
            ctx.logged(
                "withdraw_sent",
                old,
                withdraw.as_ref(),
                str::to_string,
                MISSING_PD,
            );
        }
    }
    let promoted_at = ctx.unix_ms_of("promotion_started");
    if let Some(p) = promoted_at {
        let up = logparse::first_after(new_log, p, "service up", "").cloned();
        ctx.logged(
            "service_up_new_primary",
            new,
            up.as_ref(),
            str::to_string,
            MISSING_PD,
        );
        let ann = new_log
            .iter()
            .find(|l| {
                l.t_ms >= p
                    && l.message.starts_with("sending UPDATE")
                    && logparse::update_list(l, "announce").contains(SERVICE_PREFIX)
            })
            .cloned();
        ctx.logged(
            "announce_sent",
            new,
            ann.as_ref(),
            str::to_string,
            MISSING_PD,
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
fn exabgp_events(
    ctx: &mut Ctx,
    old_log: &[LogLine],
    new_log: &[LogLine],
    old: &str,
    new: &str,
    scenario: Scenario,
) {
    let t0 = ctx.t0;
    match scenario {
        Scenario::DaemonCrash => {
            ctx.at("withdraw_sent", None, Some(old), "none: ExaBGP is dead; the ToR drops its routes when the kernel closes the TCP session");
        }
        Scenario::Isolate => {
            ctx.at("withdraw_sent", None, Some(old), "none reaches the ToR: the link is down; the ToR drops the session on link-down or hold-time expiry");
        }
        Scenario::HostFreeze => {
            ctx.at("withdraw_sent", None, Some(old), "none: the host is frozen; the ToR drops the session at its hold timer (ExaBGP has no BFD)");
        }
        _ => {
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

#[allow(clippy::too_many_arguments)]
pub(crate) fn outcome_checks(
    lab: &Lab,
    scenario: Scenario,
    checks: &mut Vec<Check>,
    writes: &mut Writes,
    attempts: &[Attempt],
    fabric: &Fabric,
    dbs: &[String],
    old: &str,
    new: &str,
    run_id: i64,
) {
    // Every router, now.
    let leads = fabric.leads(lab);
    let show = leads
        .iter()
        .map(|(r, p, l)| format!("{r}: {p}->{}", l.as_deref().unwrap_or("none")))
        .collect::<Vec<_>>()
        .join(" ");
    checks.push(Check {
        name: format!("{old}'s routes gone from every router"),
        ok: leads.iter().all(|(_, _, l)| l.as_deref() != Some(old)),
        detail: show.clone(),
    });
    checks.push(Check {
        name: format!(
            "every router routes the service ({}) to {new}",
            fabric.prefixes.join(", ")
        ),
        ok: leads.iter().all(|(_, _, l)| l.as_deref() == Some(new)),
        detail: show,
    });

    // Acknowledgements as the client saw them.
    let mut by_key: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for a in attempts {
        if let Outcome::Ack { server } | Outcome::Duplicate { server } = &a.outcome {
            by_key.entry(a.key).or_default().insert(server.clone());
        }
    }
    let twice: Vec<u64> = by_key
        .iter()
        .filter(|(_, s)| s.len() > 1)
        .map(|(k, _)| *k)
        .collect();
    let first_new = first_ack(attempts, new).map(|a| a.t_ms);
    let late_old = first_new.map_or(0, |t| {
        attempts
            .iter()
            .filter(|a| {
                a.t_ms > t && matches!(&a.outcome, Outcome::Ack { server } if server != new)
            })
            .count()
    });
    let new_acks: Vec<u64> = attempts
        .iter()
        .filter(|a| matches!(&a.outcome, Outcome::Ack { server } if server == new))
        .map(|a| a.key)
        .collect();

    // What the servers hold. The old primary is asked only when it still answers.
    let mut holders: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
    let mut asked = Vec::new();
    for d in dbs {
        if d == old && !scenario.old_primary_answers() {
            continue;
        }
        let rows = sql::query(
            lab,
            d,
            &format!("SELECT k, host FROM lab.writes WHERE run = {run_id}"),
            5,
        );
        match rows {
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
                ok: d == old,
                detail: format!("{e:#}"),
            }),
        }
    }
    let acked_by_old: BTreeSet<u64> = attempts
        .iter()
        .filter(|a| matches!(&a.outcome, Outcome::Ack { server } if server == old))
        .map(|a| a.key)
        .collect();
    let (conflicting, cut_off) = divergent_keys(
        &holders,
        &acked_by_old,
        old,
        scenario.answers_can_be_cut_off(),
    );
    let on_new: BTreeSet<u64> = holders
        .iter()
        .filter(|(_, m)| m.contains_key(new))
        .map(|(k, _)| *k)
        .collect();
    let missing_new: Vec<u64> = new_acks
        .iter()
        .filter(|k| !on_new.contains(k))
        .copied()
        .collect();
    writes.lost_acked_keys = attempts
        .iter()
        .filter(|a| matches!(&a.outcome, Outcome::Ack { server } if server == old))
        .map(|a| a.key)
        .filter(|k| !on_new.contains(k))
        .collect();

    checks.push(Check {
        name: format!("writes land on {new}"),
        ok: !new_acks.is_empty() && missing_new.is_empty(),
        detail: format!(
            "{} acknowledged by {new}; {} of them missing from its table",
            new_acks.len(),
            missing_new.len()
        ),
    });
    checks.push(Check {
        name: "no key acknowledged by two different servers".into(),
        ok: twice.is_empty() && conflicting.is_empty() && late_old == 0,
        detail: format!(
            "client: {} keys acked by two servers, {late_old} acks by another server after {new}'s first; \
             tables of {}: {} keys written by two servers{}",
            twice.len(),
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
        let label = match e.event.as_str() {
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
        };
        let node = e.node.as_deref().unwrap_or("");
        println!("  {t}  {label:<33} {node:<7} {}", e.detail);
    }
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
