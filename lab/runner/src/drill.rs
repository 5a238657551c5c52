//! Failover drills: break the primary one way or another, promote a replica as orchestrator
//! would, while app1 writes through the service address; then put the evidence in one
//! timeline (fault, check failed, withdraw sent, routes gone and back at every router,
//! promotion, first write acknowledged by the new primary) and check the outcome.
//!
//! Times are wall-clock milliseconds relative to the fault. Sources: primaryd's own log lines
//! (their timestamps), the routers' kernel tables (`ip monitor route`, stamped when read), the
//! runner's clock for what it did, and the writer's clock for each answer.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::clients::Client;
use crate::lab::Lab;
use crate::logparse::{self, LogLine};
use crate::outcome::{acks_by, client_events, first_ack, outcome_checks, tally};
use crate::primaryroute;
use crate::routes::Monitors;
use crate::sql;
use crate::timeline::{daemon_events, exabgp_events, route_events};
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
    pub(crate) fn old_primary_answers(self) -> bool {
        !matches!(self, Scenario::Kill | Scenario::Hang | Scenario::HostFreeze)
    }

    /// Whether the fault can cut the client off from a write the old primary committed: its
    /// uplinks go down, or it is killed, between the commit and the answer; or the route moves
    /// while the answer is on its way.
    pub(crate) fn answers_can_be_cut_off(self) -> bool {
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
    /// app1's client (clients.rs); with `retry` a `pool` probe writes beside it.
    pub client: Client,
    /// Promote the replica right after the fault instead of once no router leads to the old
    /// primary (the benchmark's client profiles, as issue 12 measured them).
    pub promote_at_fault: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            step: STEP,
            client: Client::Retry,
            promote_at_fault: false,
        }
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
                v.push((r.clone(), p.clone(), primaryroute::leads_to(lab, r, p)));
            }
        }
        v
    }

    pub fn all_lead_to(&self, lab: &Lab, node: &str) -> bool {
        self.routers.iter().all(|r| {
            self.prefixes
                .iter()
                .all(|p| primaryroute::leads_to(lab, r, p).as_deref() == Some(node))
        })
    }

    pub fn none_leads_to(&self, lab: &Lab, node: &str) -> bool {
        self.routers.iter().all(|r| {
            self.prefixes
                .iter()
                .all(|p| primaryroute::leads_to(lab, r, p).as_deref() != Some(node))
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
    } = steady(lab, &c, step, opts.client)?;
    // The retry writer's short timeouts hide what a client waits: a pool probe beside it.
    let probe = match opts.client {
        Client::Retry => Some(crate::waits::start_probe(
            lab, &c.app, &c.old, run_id, step,
        )?),
        _ => None,
    };
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

    // ---- the old route goes (unless the promotion comes at once) ----
    let mut checks = Vec::new();
    let gone = if opts.promote_at_fault {
        ctx.notes
            .push("promoted at the fault instant, not once the old route was gone".into());
        Some(t0)
    } else {
        let gone = wait_for(step, POLL, || {
            fabric.none_leads_to(lab, &old).then_some(now_ms())
        });
        checks.push(Check {
            name: "old route withdrawn before the promotion".into(),
            ok: gone.is_some(),
            detail: match gone {
                Some(t) => format!("no router leads to {old} after {:.1} ms", t - t0),
                None => format!("some router still leads to {old} after {step:?}"),
            },
        });
        gone
    };

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
    let probe = probe.map(Writer::stop);
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
    checks.push(crate::waits::check(
        scenario,
        &ctx.events,
        probe.as_deref().unwrap_or(&attempts),
        t0,
        &old,
        &new,
        crate::waits::timeout_of(lab, &old).filter(|_| daemon == Daemon::Primaryd),
    ));
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
