//! The soak's faults: every drill (drill.rs, splitbrain.rs) with the recovery it leaves to an
//! orchestrator (recover.rs), router-side faults (a ToR's BGP daemon restarted, a link flap,
//! random loss or delay on a DB host's uplink) and daemon-side ones (primaryd SIGKILLed and started
//! again, SIGSTOPped and continued, SIGHUP reloads during a failover, `state_dir` on a full
//! filesystem during a failover). Each step ends with the invariants (invariants.rs).

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cast;
use crate::drill;
use crate::fault;
use crate::scenario::{Check, Scenario};
use crate::util::{self, now_ms};

use super::{invariants, recover, Soak, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    Kill,
    Hang,
    Demote,
    Switchover,
    Isolate,
    DaemonCrash,
    HostFreeze,
    Restart,
    Heal,
    DoublePromote,
    /// A ToR's BGP daemon (FRR bgpd, BIRD) SIGKILLed and started again.
    TorBgpdRestart,
    /// One end of a link down for a while, then up (and its node's addresses again).
    LinkFlap,
    /// Random drops (nftables `numgen random`) on a DB host's uplink, both ways.
    UplinkLoss,
    /// Every packet on a DB host's uplink held for a while, both ways (delay.rs).
    UplinkDelay,
    /// primaryd SIGKILLed on a DB host and started again.
    PrimarydKill,
    /// primaryd SIGSTOPped on a DB host, then SIGCONT.
    PrimarydStop,
    /// A failover drill while every DB host's primaryd gets SIGHUPs (reloads).
    ReloadDuringFailover,
    /// `state_dir` on a full tmpfs on every DB host during a failover drill, and the
    /// primaries' primaryd restarted before it is freed.
    StateDirFull,
}

impl Fault {
    pub const ALL: &'static [Fault] = &[
        Fault::Kill,
        Fault::Hang,
        Fault::Demote,
        Fault::Switchover,
        Fault::Isolate,
        Fault::DaemonCrash,
        Fault::HostFreeze,
        Fault::Restart,
        Fault::Heal,
        Fault::DoublePromote,
        Fault::TorBgpdRestart,
        Fault::LinkFlap,
        Fault::UplinkLoss,
        Fault::UplinkDelay,
        Fault::PrimarydKill,
        Fault::PrimarydStop,
        Fault::ReloadDuringFailover,
        Fault::StateDirFull,
    ];

    pub fn name(self) -> &'static str {
        match self.drill() {
            Some(s) => s.name(),
            None => match self {
                Fault::TorBgpdRestart => "tor-bgpd-restart",
                Fault::LinkFlap => "link-flap",
                Fault::UplinkLoss => "uplink-loss",
                Fault::UplinkDelay => "uplink-delay",
                Fault::PrimarydKill => "primaryd-kill",
                Fault::PrimarydStop => "primaryd-stop",
                Fault::ReloadDuringFailover => "reload-during-failover",
                _ => "state-dir-full",
            },
        }
    }

    /// The faults named (as `name` spells them); an unknown name is an error that lists them.
    pub fn by_names(names: &[String]) -> Result<Vec<Fault>> {
        names
            .iter()
            .map(|n| {
                Fault::ALL
                    .iter()
                    .copied()
                    .find(|f| f.name() == n)
                    .with_context(|| {
                        let all: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                        format!("no fault {n:?}; the faults: {}", all.join(", "))
                    })
            })
            .collect()
    }

    /// The drill this fault is.
    pub fn drill(self) -> Option<Scenario> {
        Some(match self {
            Fault::Kill => Scenario::Kill,
            Fault::Hang => Scenario::Hang,
            Fault::Demote => Scenario::Demote,
            Fault::Switchover => Scenario::Switchover,
            Fault::Isolate => Scenario::Isolate,
            Fault::DaemonCrash => Scenario::DaemonCrash,
            Fault::HostFreeze => Scenario::HostFreeze,
            Fault::Restart => Scenario::Restart,
            Fault::Heal => Scenario::Heal,
            Fault::DoublePromote => Scenario::DoublePromote,
            _ => return None,
        })
    }
}

/// Whether a drill may lose acknowledged writes: the old primary dies or is cut off before
/// its last writes reach the replica (asynchronous replication), or it takes writes beside
/// the new primary until it sees the newer term (double-promote).
fn may_lose_writes(s: Scenario) -> bool {
    !matches!(
        s,
        Scenario::Demote | Scenario::Switchover | Scenario::DaemonCrash
    )
}

/// What a fault did.
#[derive(Default)]
pub(crate) struct Done {
    pub detail: String,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    pub may_lose_writes: bool,
    pub drill_lost: usize,
    pub events: Vec<crate::scenario::Event>,
}

/// Runs one step: the fault, its recovery, the invariants.
pub(crate) fn step(s: &mut Soak, n: usize, fault: Fault) -> Step {
    let start = now_ms();
    let done = match inject(s, fault) {
        Ok(d) => d,
        Err(e) => Done {
            detail: "the fault or its recovery failed".into(),
            checks: vec![Check {
                name: format!("{} and its recovery", fault.name()),
                ok: false,
                detail: format!("{e:#}"),
            }],
            ..Done::default()
        },
    };
    let settled = invariants::settle(s, Duration::from_secs(30));
    let end = now_ms();
    let mut checks = done.checks;
    checks.extend(settled.checks);
    let ok = checks.iter().all(|c| c.ok);
    Step {
        n,
        fault,
        detail: done.detail,
        start_unix_ms: start,
        end_unix_ms: end,
        primary_after: settled.primary,
        may_lose_writes: done.may_lose_writes,
        outage_ms: None,
        drill_lost: done.drill_lost,
        checks,
        notes: done.notes,
        events: done.events,
        ok,
    }
}

fn inject(s: &mut Soak, fault: Fault) -> Result<Done> {
    if let Some(sc) = fault.drill() {
        return drill_step(s, sc);
    }
    match fault {
        Fault::TorBgpdRestart => tor_bgpd_restart(s),
        Fault::LinkFlap => link_flap(s),
        Fault::UplinkLoss => uplink_loss(s),
        Fault::UplinkDelay => uplink_delay(s),
        Fault::PrimarydKill => primaryd_kill(s),
        Fault::PrimarydStop => primaryd_stop(s),
        Fault::ReloadDuringFailover => reload_during_failover(s),
        _ => state_dir_full(s),
    }
}

/// A drill on the lab as it is, then the recovery it leaves to the orchestrator.
pub(crate) fn drill_step(s: &mut Soak, sc: Scenario) -> Result<Done> {
    let key = s.key();
    // The split-brain drills rejoin the old primary themselves: the soak's writer's rows go
    // aside with the drill's (see recover::set_aside for the 2000).
    let opts = crate::scenario::Options {
        also_set_aside: Some((s.run_id, key.saturating_sub(recover::SET_ASIDE_BACK))),
        ..Default::default()
    };
    let report =
        drill::run_with(s.lab, sc, None, &opts).with_context(|| format!("drill {}", sc.name()))?;
    let mut done = Done {
        detail: format!(
            "{}: {} -> {}, drill outage {}",
            sc.name(),
            report.old_primary,
            report.new_primary,
            report
                .write_outage_ms
                .map_or("-".into(), |o| format!("{o:.0} ms"))
        ),
        may_lose_writes: may_lose_writes(sc),
        drill_lost: report.writes.lost_acked_keys.len(),
        events: report.events.clone(),
        ..Done::default()
    };
    for c in &report.checks {
        done.checks.push(Check {
            name: format!("drill: {}", c.name),
            ok: c.ok,
            detail: c.detail.clone(),
        });
    }
    if !report.ok {
        return Ok(done);
    }
    let rec = recover::after_drill(s, sc, &report, key)?;
    done.checks.extend(rec.checks);
    done.notes.extend(rec.notes);
    Ok(done)
}

/// The DB host the service is announced from now (every router agrees), for faults that
/// target the primary.
fn primary(s: &Soak) -> Result<String> {
    let f = &s.fabric;
    let r = f.routers.first().context("no router")?;
    let p = f.prefixes.first().context("no service prefix")?;
    // A primary's route, not a fallback's (primaryroute.rs).
    crate::primaryroute::leads_to(s.lab, r, p)
        .with_context(|| format!("{r} has no primary's route to {p}"))
}

/// The primary `pct`% of the time, else another DB host.
fn target(s: &mut Soak, pct: u64) -> Result<String> {
    let p = primary(s)?;
    if s.rng.chance(pct) {
        return Ok(p);
    }
    let others: Vec<String> = s.fabric.dbs.iter().filter(|d| **d != p).cloned().collect();
    Ok(s.rng.pick(&others).clone())
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn tor_bgpd_restart(s: &mut Soak) -> Result<Done> {
    let tors: Vec<String> = s
        .fabric
        .dbs
        .iter()
        .filter_map(|d| cast::tor_of(s.lab, d))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let tor = s.rng.pick(&tors).clone();
    let down_ms = s.rng.range(0, 2000);
    let what = recover::restart_router_bgp(s.lab, &tor, down_ms)?;
    Ok(Done {
        detail: format!("{tor}: {what}, down {down_ms} ms"),
        ..Done::default()
    })
}

fn link_flap(s: &mut Soak) -> Result<Done> {
    let links: Vec<(String, String)> = s
        .lab
        .topo
        .links
        .iter()
        .filter(|l| [&l.a, &l.b].iter().all(|e| e.node != "app1"))
        .flat_map(|l| [&l.a, &l.b])
        .map(|e| (e.node.clone(), e.iface.clone()))
        .collect();
    let (node, iface) = s.rng.pick(&links).clone();
    let down_ms = s.rng.range(200, 4000);
    // Both ends keep their IPv6 addresses through the flap, as a router's interfaces do.
    // Without that the BGP session (IPv4, carrying IPv6) can come back before the addresses
    // are added again, and FRR then advertises IPv6 routes with an IPv4-mapped next hop that
    // its peer cannot reach until the session resets (found by the soak).
    let peer = s.lab.topo.peer_of(&node, &iface).cloned();
    for (n, i) in
        std::iter::once((node.clone(), iface.clone())).chain(peer.map(|e| (e.node, e.iface)))
    {
        util::ip(&[
            "netns",
            "exec",
            &s.lab.netns(&n),
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{i}.keep_addr_on_down=1"),
        ])?;
    }
    let ns = s.lab.netns(&node);
    util::ip(&["-n", &ns, "link", "set", &iface, "down"])?;
    sleep_ms(down_ms);
    recover::links_up(s.lab, &node)?;
    Ok(Done {
        detail: format!("{node} {iface} down {down_ms} ms"),
        ..Done::default()
    })
}

/// A DB host (the primary's `pct` % of the time) and its uplink.
fn uplink_of_target(s: &mut Soak, pct: u64) -> Result<(String, String)> {
    let node = target(s, pct)?;
    let iface = s
        .lab
        .topo
        .ifaces_of(&node)
        .first()
        .cloned()
        .context("no uplink")?;
    Ok((node, iface))
}

fn uplink_loss(s: &mut Soak) -> Result<Done> {
    let (node, iface) = uplink_of_target(s, 70)?;
    let pct = *s.rng.pick(&[5u64, 20, 50, 80]);
    let ms = s.rng.range(2000, 8000);
    recover::loss(s.lab, &node, &iface, pct)?;
    sleep_ms(ms);
    recover::no_loss(s.lab, &node)?;
    Ok(Done {
        detail: format!("{node} {iface}: {pct}% loss both ways for {ms} ms (nftables numgen)"),
        ..Done::default()
    })
}

/// Delays from a congested path (20, 100 ms) to ones past BFD's detection time (3 x 100 ms),
/// which take the sessions down until the delay ends.
fn uplink_delay(s: &mut Soak) -> Result<Done> {
    let (node, iface) = uplink_of_target(s, 70)?;
    let delay_ms = *s.rng.pick(&[20u64, 100, 250, 500]);
    let ms = s.rng.range(2000, 8000);
    let delay =
        super::delay::Delay::start(&s.lab.netns(&node), &iface, Duration::from_millis(delay_ms))?;
    sleep_ms(ms);
    let packets = delay.stop()?;
    Ok(Done {
        detail: format!(
            "{node} {iface}: {delay_ms} ms delay both ways for {ms} ms ({packets} packets, NFQUEUE)"
        ),
        ..Done::default()
    })
}

fn primaryd_kill(s: &mut Soak) -> Result<Done> {
    let node = target(s, 60)?;
    let down_ms = s.rng.range(0, 3000);
    let pid = fault::pid_of(s.lab, &node, "primaryd")?;
    fault::signal(pid, nix::sys::signal::Signal::SIGKILL)?;
    sleep_ms(down_ms);
    recover::start_primaryd(s.lab, &node)?;
    Ok(Done {
        detail: format!("{node}: SIGKILL primaryd (pid {pid}), started again after {down_ms} ms"),
        ..Done::default()
    })
}

fn primaryd_stop(s: &mut Soak) -> Result<Done> {
    let node = target(s, 60)?;
    let ms = s.rng.range(300, 5000);
    let pid = fault::pid_of(s.lab, &node, "primaryd")?;
    fault::signal(pid, nix::sys::signal::Signal::SIGSTOP)?;
    sleep_ms(ms);
    fault::signal(pid, nix::sys::signal::Signal::SIGCONT)?;
    Ok(Done {
        detail: format!("{node}: SIGSTOP primaryd (pid {pid}) for {ms} ms, then SIGCONT"),
        ..Done::default()
    })
}

/// SIGHUPs at random moments to every DB host's primaryd while a failover drill runs.
fn reload_during_failover(s: &mut Soak) -> Result<Done> {
    let sc = *s.rng.pick(&[
        Scenario::Kill,
        Scenario::Demote,
        Scenario::Switchover,
        Scenario::DoublePromote,
    ]);
    let schedule: Vec<(u64, String)> = (0..20)
        .map(|_| (s.rng.range(50, 500), s.rng.pick(&s.fabric.dbs).clone()))
        .collect();
    let hups = recover::Hups::start(s.lab, schedule)?;
    let done = drill_step(s, sc);
    let sent = hups.stop();
    let mut done = done?;
    done.detail = format!("{}; {sent} SIGHUPs to primaryd during it", done.detail);
    Ok(done)
}

/// A full `state_dir` on every DB host, a failover drill, the primaryd of the old and new
/// primary restarted while it is still full; then freed.
fn state_dir_full(s: &mut Soak) -> Result<Done> {
    let sc = *s.rng.pick(&[
        Scenario::Switchover,
        Scenario::DoublePromote,
        Scenario::Heal,
        Scenario::Kill,
    ]);
    let dbs = s.fabric.dbs.clone();
    let result = (|| -> Result<Done> {
        for d in &dbs {
            recover::fill_state_dir(s.lab, d)?;
        }
        let mut done = drill_step(s, sc)?;
        let now = primary(s)?;
        for d in &dbs {
            recover::restart_primaryd(s.lab, d)?;
        }
        let settled = invariants::settle(s, Duration::from_secs(30));
        done.checks
            .extend(settled.checks.into_iter().map(|c| Check {
                name: format!("with state_dir full, every primaryd restarted: {}", c.name),
                ..c
            }));
        done.detail = format!(
            "state_dir full on {}; {}; then every primaryd restarted (primary was {now})",
            dbs.join(", "),
            done.detail
        );
        Ok(done)
    })();
    let mut freed = Vec::new();
    for d in &dbs {
        if let Err(e) = recover::free_state_dir(s.lab, d) {
            freed.push(format!("{d}: {e:#}"));
        }
    }
    let mut done = result?;
    let unsaved = recover::unsaved_records(s.lab, &dbs);
    done.notes.push(format!(
        "`cannot save` lines in the primaryd logs so far: {unsaved}"
    ));
    if !freed.is_empty() {
        anyhow::bail!("freeing state_dir: {}", freed.join("; "));
    }
    Ok(done)
}
