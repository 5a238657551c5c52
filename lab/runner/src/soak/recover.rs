//! Recoveries and fault tools of the soak: what an orchestrator (or the fault's end) does
//! after each drill, so the next one finds a lab with one primary and two replicas; starting
//! daemons again; loss on a link; SIGHUPs; a full `state_dir`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use crate::cast::Cast;
use crate::fault;
use crate::lab::Lab;
use crate::oldprimary;
use crate::routers::Fabric;
use crate::scenario::{Check, Ctx, Daemon, Report, Scenario};
use crate::sql;
use crate::topo::Role;
use crate::util::{self, now_ms, wait_for};

use super::Soak;

/// How long a DB host's primaryd may take to answer on its control socket after a start.
const START_WAIT: Duration = Duration::from_secs(15);
/// How long a (re)started MariaDB may take to answer (InnoDB crash recovery).
const MARIADB_WAIT: Duration = Duration::from_secs(60);
/// How long the old primary is watched once it is back (its server continued, its links up):
/// it must refuse, as in the split-brain drills.
const OBSERVE: Duration = Duration::from_millis(1500);

#[derive(Default)]
pub(crate) struct Recovery {
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
}

fn ctx(lab: &Lab) -> Ctx<'_> {
    Ctx {
        lab,
        events: Vec::new(),
        notes: Vec::new(),
        t0: now_ms(),
        drained: false,
    }
}

/// The recovery a drill leaves to the orchestrator: the old primary's fault ends (its server
/// started again or continued, its links up, its daemon started), then it rejoins as a replica
/// of the new primary. Switchover and the split-brain drills leave the lab ready themselves.
pub(crate) fn after_drill(s: &Soak, sc: Scenario, report: &Report, key: u64) -> Result<Recovery> {
    let lab = s.lab;
    let (old, new) = (report.old_primary.as_str(), report.new_primary.as_str());
    let mut rec = Recovery::default();
    let mut c = ctx(lab);
    match sc {
        Scenario::Switchover => return Ok(rec),
        Scenario::Restart | Scenario::Heal | Scenario::DoublePromote => {
            rec.checks.push(replicates(s, old, new));
            return Ok(rec);
        }
        Scenario::Demote => {}
        Scenario::Kill => start_mariadb(lab, old)?,
        Scenario::DaemonCrash => start_primaryd(lab, old)?,
        Scenario::Hang => {
            fault::signal(fault::pid_of(lab, old, "mariadbd")?, Signal::SIGCONT)?;
            observe(&mut c, old, &mut rec, "mariadbd continued");
        }
        Scenario::Isolate => {
            oldprimary::heal_links(&mut c, old)?;
            observe(&mut c, old, &mut rec, "links up");
        }
        Scenario::HostFreeze => {
            for pid in util::netns_pids(&lab.netns(old)) {
                fault::signal(pid, Signal::SIGCONT)?;
            }
            observe(&mut c, old, &mut rec, "every process continued");
        }
    }
    rec.checks
        .push(rejoin(s, &mut c, old, new, key, report.writes.run_id)?);
    Ok(rec)
}

/// The old host is back: waits until it says why it does not announce (conflict or held), then
/// a little longer, while the sampler watches for a second announcer.
fn observe(c: &mut Ctx, old: &str, rec: &mut Recovery, what: &str) {
    let t = now_ms();
    match oldprimary::await_refusal(c, old, Duration::from_secs(10)) {
        Some(at) => rec.notes.push(format!(
            "{old} ({what}) refused after {:.0} ms: {}",
            at - t,
            c.events.last().map_or("", |e| e.detail.as_str())
        )),
        None => rec.notes.push(format!(
            "{old} ({what}) did not show conflict or held within 10 s"
        )),
    }
    std::thread::sleep(OBSERVE);
}

/// How far before a step's first key the soak's writer's rows are compared when the old
/// primary rejoins: keys written just before the step may have reached one server only.
pub(crate) const SET_ASIDE_BACK: u64 = 2000;

/// The old primary rejoins as a replica of the new one (oldprimary::rejoin), with the drill's
/// writer's, its probe's and the soak writer's rows only it has set aside. The branch is the
/// new primary's `gtid_slave_pos`: the last transaction it applied from the old primary before
/// its promotion.
fn rejoin(s: &Soak, c: &mut Ctx, old: &str, new: &str, key: u64, run: i64) -> Result<Check> {
    let lab = s.lab;
    sql::exec(lab, old, "SET GLOBAL read_only=1").context("fencing the old primary")?;
    let branch = sql::value(lab, new, "SELECT @@gtid_slave_pos")?;
    let cast = cast(s, old, new)?;
    let runs = [
        (run, 0),
        (-run, 0),
        (s.run_id, key.saturating_sub(SET_ASIDE_BACK)),
    ];
    oldprimary::rejoin(c, &cast, &branch, &runs)
}

/// After a split-brain drill, which rejoined the old primary itself (the soak writer's rows
/// set aside with the drill's: `Options::also_set_aside`): it replicates from the new primary.
fn replicates(s: &Soak, old: &str, new: &str) -> Check {
    let lab = s.lab;
    let running = wait_for(Duration::from_secs(10), crate::scenario::POLL, || {
        let r = sql::replication(lab, old).ok()?;
        (r.len() == 1 && r[0].io_running == "Yes" && r[0].sql_running == "Yes").then_some(())
    });
    Check {
        name: format!("{old} replicates from {new}"),
        ok: running.is_some(),
        detail: format!("{:?}", sql::replication(lab, old).unwrap_or_default()),
    }
}

/// The cast oldprimary::rejoin needs.
fn cast(s: &Soak, old: &str, new: &str) -> Result<Cast> {
    let f = &s.fabric;
    Ok(Cast {
        dbs: f.dbs.clone(),
        routers: f.routers.clone(),
        app: "app1".into(),
        old: old.into(),
        old_addr: sql::loopback(s.lab, old)?,
        new: new.into(),
        new_addr: sql::loopback(s.lab, new)?,
        others: f
            .dbs
            .iter()
            .filter(|d| *d != old && *d != new)
            .cloned()
            .collect(),
        fabric: Fabric {
            routers: f.routers.clone(),
            prefixes: f.prefixes.clone(),
        },
        daemon: Daemon::Primaryd,
    })
}

/// Starts a killed MariaDB again, read-only as a DBA starts a deposed primary.
fn start_mariadb(lab: &Lab, node: &str) -> Result<()> {
    fault::start_mariadbd(lab, node, true)?;
    wait_for(MARIADB_WAIT, Duration::from_millis(100), || {
        lab.db_answers(node).then_some(())
    })
    .with_context(|| format!("{node}'s MariaDB did not answer within {MARIADB_WAIT:?}"))
}

/// Starts primaryd on a DB host as lab-db-start does (its output appended to the node's
/// console log, where the drills read it), and waits until its control socket answers.
pub(crate) fn start_primaryd(lab: &Lab, node: &str) -> Result<()> {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(lab.console_log(node))?;
    let script = "exec primaryd --config /etc/primaryd/primaryd.toml \
                  ${LAB_PRIMARYD_LOG_FORMAT:+--log-format \"$LAB_PRIMARYD_LOG_FORMAT\"}";
    let argv: Vec<String> = ["setsid", "-f", "sh", "-c", script]
        .map(String::from)
        .to_vec();
    let st = lab
        .node_command(node, &argv)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("starting primaryd")?;
    if !st.success() {
        bail!("starting primaryd on {node}: {st}");
    }
    wait_for(START_WAIT, Duration::from_millis(100), || {
        lab.node_run(node, &["timeout", "5", "primaryctl", "show", "services"])
            .ok()
    })
    .with_context(|| format!("{node}'s primaryd did not answer within {START_WAIT:?}"))?;
    Ok(())
}

/// Stops a process with `sig` and waits until it is gone (SIGKILL after 10 s).
fn stop_process(pid: i32, sig: Signal) -> Result<()> {
    fault::signal(pid, sig)?;
    if wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        (!util::alive(pid)).then_some(())
    })
    .is_none()
    {
        fault::signal(pid, Signal::SIGKILL)?;
        wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
            (!util::alive(pid)).then_some(())
        })
        .with_context(|| format!("pid {pid} does not exit"))?;
    }
    Ok(())
}

/// A graceful restart of a DB host's primaryd (SIGTERM, as `systemctl restart` does).
pub(crate) fn restart_primaryd(lab: &Lab, node: &str) -> Result<()> {
    if let Ok(pid) = fault::pid_of(lab, node, "primaryd") {
        stop_process(pid, Signal::SIGTERM)?;
    }
    start_primaryd(lab, node)
}

/// SIGKILLs a router's BGP daemon, waits `down_ms`, starts it again with its configuration.
pub(crate) fn restart_router_bgp(lab: &Lab, router: &str, down_ms: u64) -> Result<String> {
    let frr = lab.topo.node(router).map(|n| n.role) == Some(Role::Frr);
    let daemon = if frr { "bgpd" } else { "bird" };
    let pid = fault::pid_of(lab, router, daemon)?;
    stop_process(pid, Signal::SIGKILL)?;
    std::thread::sleep(Duration::from_millis(down_ms));
    if frr {
        lab.node_run(
            router,
            &[
                "/usr/lib/frr/bgpd",
                "-d",
                "-F",
                "datacenter",
                "-A",
                "127.0.0.1",
                "-f",
                "/dev/null",
                "-i",
                "/var/run/frr/bgpd.pid",
            ],
        )?;
        wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            lab.node_run(router, &["vtysh", "-c", "show bgp summary"])
                .ok()
        })
        .context("bgpd did not answer after its start")?;
        lab.node_run(router, &["vtysh", "-b"])?;
    } else {
        lab.node_run(
            router,
            &[
                "bird",
                "-c",
                "/etc/bird/bird.conf",
                "-s",
                "/run/bird/bird.ctl",
            ],
        )?;
    }
    Ok(format!("SIGKILL {daemon} (pid {pid}), started again"))
}

/// Every link of `node` up, and its `exec` lines again (addresses lost with the link).
pub(crate) fn links_up(lab: &Lab, node: &str) -> Result<()> {
    oldprimary::heal_links(&mut ctx(lab), node)
}

const LOSS_TABLE: &str = "soak_loss";

/// Random drops of pct% of the packets in and out of `iface` (nftables `numgen random`: this
/// kernel has no `sch_netem`).
pub(crate) fn loss(lab: &Lab, node: &str, iface: &str, pct: u64) -> Result<()> {
    let rules = format!(
        "table inet {LOSS_TABLE} {{\n\
         chain in {{ type filter hook prerouting priority raw; policy accept;\n\
         iifname \"{iface}\" numgen random mod 100 < {pct} drop; }}\n\
         chain out {{ type filter hook output priority raw; policy accept;\n\
         oifname \"{iface}\" numgen random mod 100 < {pct} drop; }}\n}}\n"
    );
    let file = std::env::temp_dir().join(format!("{}-{node}-loss.nft", lab.id));
    std::fs::write(&file, rules)?;
    let r = util::ip(&[
        "netns",
        "exec",
        &lab.netns(node),
        "nft",
        "-f",
        &file.to_string_lossy(),
    ]);
    let _ = std::fs::remove_file(&file);
    r.map(|_| ())
}

pub(crate) fn no_loss(lab: &Lab, node: &str) -> Result<()> {
    util::ip(&[
        "netns",
        "exec",
        &lab.netns(node),
        "nft",
        "delete",
        "table",
        "inet",
        LOSS_TABLE,
    ])
    .map(|_| ())
}

/// SIGHUPs to DB hosts' primaryd on a schedule (pause in ms, host), in the background.
pub(crate) struct Hups {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl Hups {
    pub fn start(lab: &Lab, schedule: Vec<(u64, String)>) -> Result<Hups> {
        let lab = Lab {
            id: lab.id.clone(),
            dir: lab.dir.clone(),
            topo: lab.topo.clone(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let handle = std::thread::Builder::new()
            .name("soak-sighup".into())
            .spawn(move || {
                for (pause, node) in schedule {
                    std::thread::sleep(Duration::from_millis(pause));
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(pid) = fault::pid_of(&lab, &node, "primaryd") {
                        if fault::signal(pid, Signal::SIGHUP).is_ok() {
                            sent2.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })?;
        Ok(Hups {
            stop,
            sent,
            handle: Some(handle),
        })
    }

    /// Stops the schedule; how many SIGHUPs were sent.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.sent.load(Ordering::SeqCst)
    }
}

const STATE_DIR: &str = "/var/lib/primaryd";
/// Where the real `state_dir` stays reachable while a tmpfs covers it.
const UNDER: &str = "/run/soak-state-dir";

/// Covers the node's `state_dir` with a small tmpfs holding a copy of its files, then fills it.
pub(crate) fn fill_state_dir(lab: &Lab, node: &str) -> Result<()> {
    let script = format!(
        "set -e; mkdir -p {STATE_DIR} {UNDER}; \
         mountpoint -q {UNDER} || mount --bind {STATE_DIR} {UNDER}; \
         mount -t tmpfs -o size=64k,mode=0755 soak-full {STATE_DIR}; \
         cp -a {UNDER}/. {STATE_DIR}/; \
         dd if=/dev/zero of={STATE_DIR}/.soak-fill bs=4k 2>/dev/null || true; \
         df -k {STATE_DIR} | tail -n 1"
    );
    let out = lab.node_run(node, &["sh", "-c", &script])?;
    if !out.split_whitespace().any(|w| w == "100%") {
        bail!("{node}: {STATE_DIR} is not full: {}", out.trim());
    }
    Ok(())
}

/// Frees the node's `state_dir`: what primaryd saved on the tmpfs goes back to the real one.
pub(crate) fn free_state_dir(lab: &Lab, node: &str) -> Result<()> {
    let script = format!(
        "set -e; rm -f {STATE_DIR}/.soak-fill; \
         if mountpoint -q {UNDER}; then \
           find {UNDER} -mindepth 1 -delete; cp -a {STATE_DIR}/. {UNDER}/; \
           umount {STATE_DIR}; umount {UNDER}; fi"
    );
    lab.node_run(node, &["sh", "-c", &script]).map(|_| ())
}

/// How many `cannot save` lines the DB hosts' primaryd logged (records lost to a full disk).
pub(crate) fn unsaved_records(lab: &Lab, dbs: &[String]) -> usize {
    dbs.iter()
        .map(|d| {
            std::fs::read_to_string(lab.console_log(d))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("cannot save"))
                .count()
        })
        .sum()
}
