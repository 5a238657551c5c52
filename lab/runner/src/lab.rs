//! The lab as network namespaces: `up`, `down`, `status`, `exec`.
//!
//! Every node gets three namespaces, all named after the lab id and the node:
//! - a network namespace `{id}-{node}` (`ip netns`), with the node's veth ends (named as in the
//!   topology, e.g. eth1) and addresses;
//! - a mount namespace and a UTS namespace, kept alive as files in `{dir}/ns/` (like `ip netns`
//!   keeps its own), where the node sees what a container would: its own hostname, a private
//!   /run and /tmp (tmpfs), /etc and /var/lib as overlays of the machine's, its own /var/log and
//!   /var/lib/mysql, /usr/local/{bin,sbin} with the primaryd binaries, and the topology's binds
//!   at their container paths. So the node files use the same paths in both worlds.
//!
//! Everything the lab owns is below `{state_root}/{id}`; `down` derives what to remove from the
//! lab id (namespace names, that folder and the mounts below it), so it also cleans up after a
//! runner that died half-way through `up`.
//!
//! This file holds the lab itself (ids, paths, the state file, commands run in a node); the
//! rest of `Lab` lives by concern, each depending on this file and never the other way round:
//! build.rs (`up`, the nodes' namespaces and mounts, `set_speaker`), converge.rs (waiting for a
//! converged lab), routers.rs (the routers' sessions and routes), status.rs (`status`) and
//! teardown.rs (`down`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::topo::Topology;
use crate::util::{self, run_ok};

/// The service address app1 writes through, and its prefix: the one the drills' timelines
/// follow. The DB hosts announce more (its IPv6 /128: `Lab::service_prefixes`).
pub const SERVICE_ADDR: &str = "192.0.2.10";
pub const SERVICE_PREFIX: &str = "192.0.2.10/32";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Binaries bound into every node's /usr/local/bin.
pub const BINARIES: &[&str] = &["primaryd", "primaryctl"];
const STATE_FILE: &str = "state.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub topology: PathBuf,
    pub bin_dir: PathBuf,
    pub netns: Vec<String>,
    /// "creating" while `up` runs, "up" once the lab converged.
    pub phase: String,
    pub runner_pid: u32,
    /// PID of each node's main process (`cmd`).
    #[serde(default)]
    pub cmds: BTreeMap<String, i32>,
    /// The prefixes of the service the DB hosts announce, as set up (speaker.rs).
    #[serde(default)]
    pub service_prefixes: Vec<String>,
}

pub struct Lab {
    pub id: String,
    /// `{state_root}/{id}`: state file, namespace files, node folders.
    pub dir: PathBuf,
    pub topo: Topology,
}

pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 16
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        bail!("lab id {id:?}: use 1..=16 lowercase letters and digits (namespaces are ID-NODE)");
    }
    Ok(())
}

pub fn require_root() -> Result<()> {
    if !util::is_root() {
        bail!(
            "primaryd-lab builds network namespaces, mounts and veths: run it as root \
             (e.g. sudo target/debug/primaryd-lab ...)"
        );
    }
    Ok(())
}

impl Lab {
    pub fn new(id: &str, state_root: &Path, topo: Topology) -> Result<Lab> {
        check_id(id)?;
        for bad in ["/run", "/etc", "/var/lib", "/var/log", "/usr/local"] {
            if state_root.starts_with(bad) {
                bail!(
                    "state root {} is below {bad}, which nodes see privately; use another \
                     folder (default /var/tmp/primaryd-lab)",
                    state_root.display()
                );
            }
        }
        Ok(Lab {
            id: id.to_string(),
            dir: state_root.join(id),
            topo,
        })
    }

    pub fn netns(&self, node: &str) -> String {
        format!("{}-{node}", self.id)
    }

    pub(crate) fn ns_dir(&self) -> PathBuf {
        self.dir.join("ns")
    }

    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join("nodes").join(node)
    }

    /// What the node's main process (`cmd`) printed: the node's "docker logs".
    pub fn console_log(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("console.log")
    }

    pub fn state(&self) -> Option<State> {
        let text = fs::read_to_string(self.dir.join(STATE_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub(crate) fn write_state(&self, state: &State) -> Result<()> {
        fs::write(
            self.dir.join(STATE_FILE),
            serde_json::to_string_pretty(state)?,
        )?;
        Ok(())
    }

    /// A command run inside the node: its network, mount and UTS namespaces, a clean
    /// environment with the node's `env`.
    pub fn node_command(&self, node: &str, argv: &[String]) -> Command {
        let ns = self.ns_dir();
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns(node)))
            .arg(format!(
                "--mount={}",
                ns.join(format!("{node}.mnt")).display()
            ))
            .arg(format!(
                "--uts={}",
                ns.join(format!("{node}.uts")).display()
            ))
            .arg("--wd=/")
            .arg("--")
            .arg("env")
            .arg("-i")
            .arg(format!("PATH={PATH}"))
            .arg("HOME=/root");
        if let Ok(term) = std::env::var("TERM") {
            c.arg(format!("TERM={term}"));
        }
        if let Some(n) = self.topo.node(node) {
            for (k, v) in &n.env {
                c.arg(format!("{k}={v}"));
            }
        }
        c.args(argv);
        c
    }

    /// Runs a command in the node; Ok(stdout) when it succeeds.
    pub fn node_run(&self, node: &str, argv: &[&str]) -> Result<String> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        run_ok(&mut self.node_command(node, &argv))
    }

    pub fn is_present(&self) -> bool {
        self.dir.exists()
            || util::netns_list()
                .iter()
                .any(|n| n.starts_with(&format!("{}-", self.id)))
    }

    pub fn db_answers(&self, node: &str) -> bool {
        self.node_run(
            node,
            &[
                "mariadb",
                "--connect-timeout=2",
                "-N",
                "-B",
                "-e",
                "SELECT 1",
            ],
        )
        .is_ok()
    }
}

/// Human rendering of `status`.
pub fn print_status(v: &Value) {
    println!(
        "lab {} ({}): {}",
        v["lab"].as_str().unwrap_or("?"),
        v["dir"].as_str().unwrap_or("?"),
        v["phase"].as_str().unwrap_or("not running")
    );
    for n in v["nodes"].as_array().into_iter().flatten() {
        let name = n["node"].as_str().unwrap_or("?");
        let role = n["role"].as_str().unwrap_or("?");
        if n["netns"].is_null() {
            println!("  {name:<7} {role:<5} down");
            continue;
        }
        let procs: Vec<&str> = n["processes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .collect();
        println!("  {name:<7} {role:<5} {}", procs.join(" "));
        if let Some(b) = n["bgp"].as_object() {
            let s: Vec<String> = b
                .iter()
                .map(|(p, st)| format!("{p}={}", st.as_str().unwrap_or("?")))
                .collect();
            println!("          bgp: {}", s.join(" "));
        }
        for (p, route) in n["routes"].as_object().into_iter().flatten() {
            match route.as_str() {
                Some(r) => println!("          route: {r}"),
                None => println!("          route: (no route to {p})"),
            }
        }
        if let Some(d) = n["db"].as_object() {
            println!(
                "          server_id={} read_only={} replication={} gtid={}",
                d["server_id"],
                d["read_only"],
                d["replication"].as_str().unwrap_or("none"),
                d["gtid_binlog_pos"].as_str().unwrap_or("")
            );
        }
    }
}
