//! The machine a benchmark ran on (in every JSON file).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub kernel: String,
    pub os: String,
    /// Debian package versions of the lab's programs.
    pub packages: BTreeMap<String, String>,
    pub bin_dir: String,
}

pub fn machine(bin_dir: &Path) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024;
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_default();
    let mut packages = BTreeMap::new();
    for p in ["frr", "bird2", "mariadb-server", "exabgp", "python3-exabgp"] {
        if let Ok(o) = std::process::Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", p])
            .output()
        {
            if o.status.success() {
                packages.insert(p.into(), String::from_utf8_lossy(&o.stdout).to_string());
            }
        }
    }
    Machine {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model: model,
        mem_total_mib: mem,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        os,
        packages,
        bin_dir: bin_dir.display().to_string(),
    }
}
