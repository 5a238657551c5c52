//! `primaryd-lab`: builds the containerlab topology `lab/primaryd.clab.yml` as network
//! namespaces on this machine (no Docker), and runs failover drills in it. See docs/lab.md.

mod attempt;
mod bench;
mod bgptable;
mod build;
mod cast;
mod clients;
mod converge;
mod cost;
mod drill;
mod fault;
mod hostloss;
mod lab;
mod logparse;
mod oldprimary;
mod orchestrator;
mod outcome;
mod plot;
mod primaryroute;
mod promote;
mod routers;
mod routes;
mod scenario;
mod soak;
mod speaker;
mod splitbrain;
mod sql;
mod stats;
mod status;
mod teardown;
mod timeline;
mod topo;
mod util;
mod waits;
mod writer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::drill::Scenario;
use crate::lab::Lab;
use crate::speaker::{Speaker, SpeakerKind};

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

/// What announces the service on the DB hosts (docs/benchmarks.md).
#[derive(clap::Args, Clone)]
struct SpeakerArgs {
    /// primaryd, or ExaBGP + exabgp-healthcheck in its place (its defaults, or its fastest).
    #[arg(long, value_enum, default_value = "primaryd")]
    speaker: SpeakerKind,
    /// Check interval: primaryd's interval_ms, exabgp-fast's --interval and --fast-interval
    /// [default: the lab's primaryd.toml; exabgp-fast 1000].
    #[arg(long, value_name = "MS")]
    interval_ms: Option<u64>,
    /// Check timeout: primaryd's timeout_ms, exabgp-fast's --timeout (whole seconds, rounded
    /// up) [default: the lab's primaryd.toml; exabgp-fast 1000].
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Services on the primary, all checking its one server (primaryd only).
    #[arg(long, default_value_t = 1)]
    services: usize,
    /// primaryd's log format on the DB hosts (the drills read both).
    #[arg(long, value_parser = ["text", "json"], value_name = "FORMAT")]
    log_format: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the namespaces and links, run the nodes, wait until the lab has converged.
    Up {
        /// Leave a lab that failed to converge in place for inspection (default: remove it).
        #[arg(long)]
        keep_on_failure: bool,
        #[command(flatten)]
        speaker: SpeakerArgs,
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
    /// orchestrator's hooks (packaging/orchestrator/primaryd-orchestrator-hook) in an aborted
    /// and a graceful takeover, an aborted and a real failover (docs/operations.md).
    OrchestratorDrill {
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Promotion -> announce sent, with the post-promotion hook (`primaryctl check`) and
    /// without it, over RUNS graceful takeovers each, back and forth (docs/benchmarks.md).
    BenchHook {
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// up, one drill, the timeline, `primaryctl show routes` on db1 and db2, down.
    Demo {
        #[arg(value_enum, default_value = "kill")]
        scenario: Scenario,
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// The failover benchmark: each scenario RUNS times per speaker, a fresh lab per run; prints
    /// p50/p90/p99/max per scenario and metric, the ratios ExaBGP/primaryd and the design
    /// targets (docs/benchmarks.md). Takes a while: about 8 s per primaryd run, 10 to 35 s per
    /// ExaBGP run.
    Bench {
        /// Runs per scenario and speaker.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "kill,hang,demote,switchover,isolate,daemon-crash"
        )]
        scenarios: Vec<Scenario>,
        /// Speakers, one after the other (e.g. primaryd,exabgp-fast,exabgp-default).
        #[arg(
            long = "speaker",
            value_enum,
            value_delimiter = ',',
            default_value = "primaryd"
        )]
        speakers: Vec<SpeakerKind>,
        /// Client profiles, one after the other (retry,cli,pool): `cli` and `pool` are promoted
        /// at the fault instant (docs/benchmarks.md).
        #[arg(
            long = "client",
            value_enum,
            value_delimiter = ',',
            default_value = "retry"
        )]
        clients: Vec<clients::Client>,
        /// Check interval for primaryd and exabgp-fast [default: the lab's primaryd.toml (100);
        /// exabgp-fast 1000]. exabgp-default always runs with its defaults.
        #[arg(long, value_name = "MS")]
        interval_ms: Option<u64>,
        /// Check timeout for primaryd and exabgp-fast [default: 500; exabgp-fast 1000].
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
        /// Write every sample (metrics and timeline of each run) to FILE, after each run.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Draw the outages as a PNG.
        #[arg(long, value_name = "PNG")]
        plot: Option<PathBuf>,
        /// Start each drill from this DB host as the primary: a switchover drill to it first
        /// (not measured), e.g. db2 to have the old primary behind the BIRD ToR.
        #[arg(long, value_name = "NODE")]
        primary: Option<String>,
    },
    /// The chaos soak: a random fault from every drill, router and daemon fault every few
    /// seconds on one lab, each with its recovery, while app1 writes (docs/lab.md). Brings the
    /// lab up (and down at the end) when it is not up.
    Soak {
        #[arg(long, default_value_t = 5.0)]
        minutes: f64,
        /// The RNG's seed [default: from the clock; printed].
        #[arg(long)]
        seed: Option<u64>,
        /// Go on after a failed step (default: stop there).
        #[arg(long)]
        keep_going: bool,
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Only these faults, e.g. `uplink-loss,uplink-delay` [default: every fault].
        #[arg(long, value_delimiter = ',', value_name = "FAULT")]
        faults: Vec<String>,
    },
    /// The tables (and plot) of one or more `bench --json` files, e.g. one per speaker.
    BenchReport {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Draw the outages as a PNG.
        #[arg(long, value_name = "PNG")]
        plot: Option<PathBuf>,
        /// Also print the tables of a `cost --json` file.
        #[arg(long, value_name = "FILE")]
        cost: Option<PathBuf>,
        /// Print the key figures as Markdown tables instead.
        #[arg(long)]
        markdown: bool,
    },
    /// The daemon's cost on the primary's host: CPU, RSS, MySQL queries per second, at each
    /// check interval, for primaryd (also with SERVICES services) and ExaBGP; a fresh lab each.
    Cost {
        #[arg(
            long = "speaker",
            value_enum,
            value_delimiter = ',',
            default_value = "primaryd,exabgp-fast"
        )]
        speakers: Vec<SpeakerKind>,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1000,200,100",
            value_name = "MS,..."
        )]
        intervals: Vec<u64>,
        /// Also primaryd with this many services on the primary, all checking its one server
        /// (1: not).
        #[arg(long, default_value_t = 50)]
        services: usize,
        /// The measured window, in seconds.
        #[arg(long, default_value_t = 60)]
        window_s: u64,
        /// Time between the lab's convergence and the window.
        #[arg(long, default_value_t = 5)]
        settle_s: u64,
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
    let mut lab = Lab::new(&cli.lab, &cli.state_root, topo)?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match &cli.cmd {
        Cmd::Up {
            keep_on_failure,
            speaker,
        } => up(&cli, &mut lab, speaker, *keep_on_failure),
        Cmd::Down => down(&lab),
        Cmd::Status { json } => status(&lab, *json),
        Cmd::Exec { node, command } => exec(&lab, node, command),
        Cmd::Drill { scenario, json, to } => drill_cmd(&lab, *scenario, json.as_deref(), to),
        Cmd::Soak {
            minutes,
            seed,
            keep_going,
            json,
            faults,
        } => {
            lab::require_root()?;
            let opts = soak::Options {
                minutes: *minutes,
                seed: seed.unwrap_or_else(|| util::now_ms() as u64 % 1_000_000),
                keep_going: *keep_going,
                json: json.clone(),
                faults: soak::Fault::by_names(faults)?,
            };
            soak::cli(&lab, &bin_dir(&cli)?, &opts)
        }
        Cmd::Demo { scenario, json } => demo(&cli, &lab, *scenario, json.as_deref()),
        Cmd::OrchestratorDrill { json } => orchestrator::cli_drill(&lab, json.as_deref()),
        Cmd::BenchHook { runs, json } => {
            orchestrator::cli_bench(&lab, *runs, json.as_deref(), command)
        }
        Cmd::Bench { .. } => bench_cmd(&cli, command),
        Cmd::BenchReport {
            files,
            plot,
            cost,
            markdown,
        } => bench_report(files, plot.as_deref(), cost.as_deref(), *markdown),
        Cmd::Cost { .. } => cost_cmd(&cli, command),
    }
}

fn up(cli: &Cli, lab: &mut Lab, sa: &SpeakerArgs, keep_on_failure: bool) -> Result<ExitCode> {
    let bins = bin_dir(cli)?;
    lab::require_root()?;
    if sa.speaker != SpeakerKind::Primaryd
        || sa.interval_ms.is_some()
        || sa.timeout_ms.is_some()
        || sa.services != 1
        || sa.log_format.is_some()
    {
        let sp = Speaker {
            interval_ms: sa.interval_ms,
            timeout_ms: sa.timeout_ms,
            services: sa.services,
            log_format: sa.log_format.clone(),
            ..Speaker::new(sa.speaker)
        };
        let s = lab.set_speaker(&sp)?;
        eprintln!("lab {}: {}", lab.id, s.description);
    }
    up_or_clean(lab, &bins, keep_on_failure)?;
    lab::print_status(&lab.status()?);
    Ok(ExitCode::SUCCESS)
}

fn down(lab: &Lab) -> Result<ExitCode> {
    let generated = lab.remove_generated()?;
    if lab.down()? || generated {
        eprintln!("lab {}: removed", lab.id);
    } else {
        eprintln!("lab {}: nothing to remove", lab.id);
    }
    Ok(ExitCode::SUCCESS)
}

fn status(lab: &Lab, json: bool) -> Result<ExitCode> {
    let v = lab.status()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        lab::print_status(&v);
    }
    Ok(ExitCode::SUCCESS)
}

fn exec(lab: &Lab, node: &str, command: &[String]) -> Result<ExitCode> {
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
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

fn drill_cmd(
    lab: &Lab,
    scenario: Scenario,
    json: Option<&Path>,
    to: &Option<String>,
) -> Result<ExitCode> {
    lab::require_root()?;
    let report = drill::run(lab, scenario, to.as_deref())?;
    timeline::print_timeline(&report);
    if let Some(f) = json {
        std::fs::write(f, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn bench_cmd(cli: &Cli, command: String) -> Result<ExitCode> {
    let Cmd::Bench {
        runs,
        scenarios,
        speakers,
        clients,
        interval_ms,
        timeout_ms,
        json,
        plot,
        primary,
    } = &cli.cmd
    else {
        unreachable!("bench_cmd runs `bench`")
    };
    let bins = bin_dir(cli)?;
    let a = bench::BenchArgs {
        runs: *runs,
        scenarios: scenarios.clone(),
        speakers: speakers.clone(),
        clients: clients.clone(),
        interval_ms: *interval_ms,
        timeout_ms: *timeout_ms,
        json: json.clone(),
        plot: plot.clone(),
        primary: primary.clone(),
        command,
    };
    let f = bench::run(&topology_path(cli), &cli.lab, &cli.state_root, &bins, &a)?;
    let files = [f];
    println!("\n{}{}", bench::report(&files), bench::targets(&files));
    if let Some(p) = &a.plot {
        bench::plots(&files, p)?;
        eprintln!("bench: plot written to {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_report(
    files: &[PathBuf],
    plot: Option<&Path>,
    cost: Option<&Path>,
    markdown: bool,
) -> Result<ExitCode> {
    let files: Vec<bench::BenchFile> = files
        .iter()
        .map(|f| bench::load(f))
        .collect::<Result<_>>()?;
    if markdown {
        println!("{}", bench::markdown(&files));
    } else {
        println!("{}{}", bench::report(&files), bench::targets(&files));
    }
    if let Some(c) = cost {
        println!("\n{}", cost::report(&cost::load(c)?));
    }
    if let Some(p) = plot {
        bench::plots(&files, p)?;
        eprintln!("bench-report: plot written to {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn cost_cmd(cli: &Cli, command: String) -> Result<ExitCode> {
    let Cmd::Cost {
        speakers,
        intervals,
        services,
        window_s,
        settle_s,
        json,
    } = &cli.cmd
    else {
        unreachable!("cost_cmd runs `cost`")
    };
    let bins = bin_dir(cli)?;
    let a = cost::CostArgs {
        speakers: speakers.clone(),
        intervals: intervals.clone(),
        services: *services,
        window_s: *window_s,
        settle_s: *settle_s,
        json: json.clone(),
        command,
    };
    let f = cost::run(&topology_path(cli), &cli.lab, &cli.state_root, &bins, &a)?;
    println!("\n{}", cost::report(&f));
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
        timeline::print_timeline(&report);
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
