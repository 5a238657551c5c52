//! `down`: removes everything of a lab id, from names alone.

use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::lab::{require_root, Lab};
use crate::util::{self, run};

impl Lab {
    /// Removes everything of this lab id: processes, namespaces, mounts, files. Works from
    /// names alone, so it also cleans up after a runner that died; never fails on what is
    /// already gone.
    pub fn down(&self) -> Result<bool> {
        require_root()?;
        let prefix = format!("{}-", self.id);
        let mut namespaces: Vec<String> = util::netns_list()
            .into_iter()
            .filter(|n| {
                n.strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
            })
            .collect();
        if let Some(s) = self.state() {
            for n in s.netns {
                if !namespaces.contains(&n) && util::netns_list().contains(&n) {
                    namespaces.push(n);
                }
            }
        }
        let found = !namespaces.is_empty() || self.dir.exists();
        // Processes first: every one of them is in one of the lab's network namespaces.
        for _ in 0..100 {
            let pids: Vec<i32> = namespaces
                .iter()
                .flat_map(|n| util::netns_pids(n))
                .collect();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The node namespace files and the private mount holding them.
        for m in util::mounts_below(&self.dir) {
            let _ = run(Command::new("umount").arg("-l").arg(&m));
        }
        for n in &namespaces {
            let _ = run(Command::new("ip").args(["netns", "del", n]));
        }
        if self.dir.exists() {
            if let Some(m) = util::mounts_below(&self.dir).first() {
                bail!("{m} is still mounted; not removing {}", self.dir.display());
            }
            fs::remove_dir_all(&self.dir)
                .with_context(|| format!("cannot remove {}", self.dir.display()))?;
        }
        // The cost runs' cgroup, if a run was interrupted.
        crate::cost::remove_cgroup(&self.id);
        let left: Vec<String> = util::netns_list()
            .into_iter()
            .filter(|n| namespaces.contains(n))
            .collect();
        if !left.is_empty() {
            bail!("namespaces still present: {}", left.join(", "));
        }
        Ok(found)
    }
}
