//! The drills' faults, each injected at `ctx.t0` (set just before the act): a signal to a
//! process, read_only, a drain, uplinks down, a frozen host. Each returns the timeline's
//! description of what was done.

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use crate::hostloss;
use crate::lab::Lab;
use crate::scenario::{Ctx, Daemon, Scenario, SERVICE};
use crate::sql;
use crate::util::{self, now_ms};

pub(crate) fn pid_of(lab: &Lab, node: &str, comm: &str) -> Result<i32> {
    util::netns_pids(&lab.netns(node))
        .into_iter()
        .find(|p| util::comm(*p) == comm)
        .with_context(|| format!("no {comm} process in {node}"))
}

pub(crate) fn signal(pid: i32, sig: Signal) -> Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)?;
    Ok(())
}

/// Injects the fault of a failover drill (not the split-brain ones: splitbrain.rs) and sets
/// t0.
pub(crate) fn inject(
    ctx: &mut Ctx,
    scenario: Scenario,
    old: &str,
    daemon: Daemon,
) -> Result<String> {
    match scenario {
        Scenario::Kill => signal_mariadbd(ctx, old, Signal::SIGKILL),
        Scenario::Hang => signal_mariadbd(ctx, old, Signal::SIGSTOP),
        Scenario::DaemonCrash => {
            let comm = daemon.comm();
            let pid = pid_of(ctx.lab, old, comm)?;
            ctx.t0 = now_ms();
            signal(pid, Signal::SIGKILL)?;
            Ok(format!("SIGKILL {comm} (pid {pid}); MariaDB keeps running"))
        }
        Scenario::Demote => {
            ctx.t0 = now_ms();
            sql::exec(ctx.lab, old, "SET GLOBAL read_only=1")?;
            Ok("SET GLOBAL read_only=1".to_string())
        }
        Scenario::Switchover => drain(ctx, old),
        Scenario::Isolate => uplinks_down(ctx, old),
        Scenario::HostFreeze => {
            ctx.t0 = now_ms();
            hostloss::freeze(ctx.lab, old)
        }
        Scenario::Restart | Scenario::Heal | Scenario::DoublePromote => {
            unreachable!("splitbrain.rs runs {}", scenario.name())
        }
    }
}

/// SIGKILL or SIGSTOP to the node's mariadbd.
pub(crate) fn signal_mariadbd(ctx: &mut Ctx, node: &str, sig: Signal) -> Result<String> {
    let pid = pid_of(ctx.lab, node, "mariadbd")?;
    ctx.t0 = now_ms();
    signal(pid, sig)?;
    Ok(format!("{} mariadbd (pid {pid})", sig.as_str()))
}

/// Every link of the node down.
pub(crate) fn uplinks_down(ctx: &mut Ctx, node: &str) -> Result<String> {
    let lab = ctx.lab;
    let ifaces = lab.topo.ifaces_of(node);
    ctx.t0 = now_ms();
    for i in &ifaces {
        util::ip(&["-n", &lab.netns(node), "link", "set", i, "down"])?;
    }
    Ok(format!("uplinks down: {}", ifaces.join(", ")))
}

/// Graceful: `primaryctl drain` withdraws while the server is still writable, then
/// read_only=1 fences it. A primaryctl without drain (or a daemon without a control socket):
/// read_only=1 alone, which withdraws the route just the same.
fn drain(ctx: &mut Ctx, old: &str) -> Result<String> {
    let lab = ctx.lab;
    ctx.t0 = now_ms();
    let drain = util::run(&mut lab.node_command(old, &primaryctl(&["drain", SERVICE])))?;
    let drained = drain.status.success();
    let t_drained = now_ms();
    sql::exec(lab, old, "SET GLOBAL read_only=1")?;
    if drained {
        ctx.at(
            "drained",
            Some(t_drained),
            Some(old),
            format!("primaryctl drain {SERVICE}"),
        );
        ctx.drained = true;
        return Ok(format!(
            "primaryctl drain {SERVICE}, then SET GLOBAL read_only=1"
        ));
    }
    let why = String::from_utf8_lossy(&drain.stderr);
    let why = why
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    ctx.notes.push(format!(
        "switchover drained by read_only=1 alone: `primaryctl drain` failed ({why})"
    ));
    Ok("SET GLOBAL read_only=1 (primaryctl drain unavailable)".to_string())
}

/// `primaryctl ARGS` in a node, bounded to 10 s.
pub(crate) fn primaryctl(args: &[&str]) -> Vec<String> {
    ["timeout", "10", "primaryctl"]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect()
}

/// Starts MariaDB on `node` again in the background, as lab-db-start runs it (its log is
/// MariaDB's error log), with `read_only` as given. Returns its command line once it started;
/// the caller waits until it answers.
pub(crate) fn start_mariadbd(lab: &Lab, node: &str, read_only: bool) -> Result<String> {
    let cmd = format!(
        "mariadbd --defaults-file=/etc/mysql/lab.cnf --read-only={}",
        if read_only { "ON" } else { "OFF" }
    );
    let argv: Vec<String> = ["setsid", "-f"]
        .into_iter()
        .chain(cmd.split(' '))
        .map(String::from)
        .collect();
    let st = lab
        .node_command(node, &argv)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("starting mariadbd")?;
    if !st.success() {
        bail!("starting mariadbd on {node}: {st}");
    }
    Ok(cmd)
}
