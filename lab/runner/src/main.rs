//! `primaryd-lab`: builds the containerlab topology `lab/primaryd.clab.yml` as network
//! namespaces on this machine (no Docker), and runs failover drills in it. See docs/lab.md.

mod drill;
mod lab;
mod logparse;
mod routes;
mod sql;
mod topo;
mod util;
mod writer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::drill::Scenario;
use crate::lab::Lab;

#[derive(Parser)]
#[command(
    version,
    about = "Build the primaryd lab as network namespaces and run failover drills"
)]
struct Cli {
    /// The containerlab topology file.
    #[arg(
        long,
        global = true,
        env = "PRIMARYD_LAB_TOPOLOGY",
        value_name = "FILE"
    )]
    topology: Option<PathBuf>,
    /// Lab id: namespaces are named ID-NODE, state lives in STATE_ROOT/ID.
    #[arg(long, global = true, env = "PRIMARYD_LAB_ID", default_value = "plab")]
    lab: String,
    /// Folder for the labs' state (namespace files, node folders, logs, data).
    #[arg(
        long,
        global = true,
        env = "PRIMARYD_LAB_STATE",
        default_value = "/var/tmp/primaryd-lab",
        value_name = "DIR"
    )]
    state_root: PathBuf,
    /// Folder with the primaryd and primaryctl binaries [default: this binary's folder, then
    /// the workspace's target/release, then target/debug].
    #[arg(long, global = true, env = "PRIMARYD_LAB_BIN_DIR", value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the namespaces and links, run the nodes, wait until the lab has converged.
    Up {
        /// Leave a lab that failed to converge in place for inspection (default: remove it).
        #[arg(long)]
        keep_on_failure: bool,
    },
    /// Remove everything of the lab (also after a crashed runner).
    Down,
    /// Nodes, processes, BGP sessions, routes, databases.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run a command in a node (its network, mount and UTS namespaces).
    Exec {
        node: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Break the primary, promote a replica, and print the timeline.
    Drill {
        #[arg(value_enum)]
        scenario: Scenario,
        /// Also write the events as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// The replica to promote [default: one behind another ToR than the primary].
        #[arg(long, value_name = "NODE")]
        to: Option<String>,
    },
    /// up, one drill, the timeline, `primaryctl show routes` on db1 and db2, down.
    Demo {
        #[arg(value_enum, default_value = "kill")]
        scenario: Scenario,
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn topology_path(cli: &Cli) -> PathBuf {
    if let Some(t) = &cli.topology {
        return t.clone();
    }
    let built_in = workspace_dir().join("lab/primaryd.clab.yml");
    if built_in.exists() {
        built_in
    } else {
        PathBuf::from("lab/primaryd.clab.yml")
    }
}

fn bin_dir(cli: &Cli) -> Result<PathBuf> {
    if let Some(d) = &cli.bin_dir {
        return Ok(d.clone());
    }
    let mut tried = Vec::new();
    let own = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    let target = workspace_dir().join("target");
    for d in own
        .into_iter()
        .chain([target.join("release"), target.join("debug")])
    {
        if lab::BINARIES.iter().all(|b| d.join(b).is_file()) {
            return Ok(std::fs::canonicalize(&d).unwrap_or(d));
        }
        tried.push(d.display().to_string());
    }
    bail!(
        "primaryd and primaryctl not found in {}: build them (cargo build --workspace) or \
         pass --bin-dir",
        tried.join(", ")
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("primaryd-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    let topo = topo::load(&topology_path(&cli))?;
    let lab = Lab::new(&cli.lab, &cli.state_root, topo)?;
    match &cli.cmd {
        Cmd::Up { keep_on_failure } => {
            let bins = bin_dir(&cli)?;
            up_or_clean(&lab, &bins, *keep_on_failure)?;
            lab::print_status(&lab.status()?);
        }
        Cmd::Down => {
            if lab.down()? {
                eprintln!("lab {}: removed", lab.id);
            } else {
                eprintln!("lab {}: nothing to remove", lab.id);
            }
        }
        Cmd::Status { json } => {
            let v = lab.status()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                lab::print_status(&v);
            }
        }
        Cmd::Exec { node, command } => {
            lab::require_root()?;
            if lab.topo.node(node).is_none() {
                bail!("no node {node} in {}", lab.topo.file.display());
            }
            if !util::netns_list().contains(&lab.netns(node)) {
                bail!(
                    "lab {} is not up (no namespace {})",
                    lab.id,
                    lab.netns(node)
                );
            }
            let status = lab
                .node_command(node, command)
                .status()
                .context("nsenter")?;
            return Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ));
        }
        Cmd::Drill { scenario, json, to } => {
            lab::require_root()?;
            let report = drill::run(&lab, *scenario, to.as_deref())?;
            drill::print_timeline(&report);
            if let Some(f) = json {
                std::fs::write(f, serde_json::to_string_pretty(&report)?)?;
            }
            if !report.ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Demo { scenario, json } => return demo(&cli, &lab, *scenario, json.as_deref()),
    }
    Ok(ExitCode::SUCCESS)
}

fn up_or_clean(lab: &Lab, bins: &Path, keep: bool) -> Result<()> {
    if let Err(e) = lab.up(bins) {
        if keep {
            eprintln!(
                "lab {}: left in place for inspection ({})",
                lab.id,
                lab.dir.display()
            );
        } else if lab
            .state()
            .is_some_and(|s| s.runner_pid == std::process::id())
        {
            eprintln!("lab {}: up failed; removing what was built", lab.id);
            let _ = lab.down();
        }
        return Err(e);
    }
    Ok(())
}

fn demo(cli: &Cli, lab: &Lab, scenario: Scenario, json: Option<&Path>) -> Result<ExitCode> {
    let bins = bin_dir(cli)?;
    up_or_clean(lab, &bins, false)?;
    let result = (|| -> Result<bool> {
        lab::print_status(&lab.status()?);
        let report = drill::run(lab, scenario, None)?;
        drill::print_timeline(&report);
        if let Some(f) = json {
            std::fs::write(f, serde_json::to_string_pretty(&report)?)?;
        }
        for db in ["db1", "db2"] {
            show_routes(lab, db);
        }
        Ok(report.ok)
    })();
    let down = lab.down();
    let ok = result?;
    down?;
    eprintln!("lab {}: removed", lab.id);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `primaryctl show routes` on a DB node, when this build of primaryctl has it.
fn show_routes(lab: &Lab, node: &str) {
    println!("\n$ primaryd-lab exec {node} primaryctl show routes");
    let argv: Vec<String> = ["primaryctl", "show", "routes"].map(String::from).to_vec();
    match lab.node_command(node, &argv).output() {
        Ok(o) if o.status.success() => print!("{}", String::from_utf8_lossy(&o.stdout)),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let first = err
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("");
            println!("(skipped: primaryctl show routes is not available here: {first})");
        }
        Err(e) => println!("(skipped: cannot run primaryctl: {e})"),
    }
}
