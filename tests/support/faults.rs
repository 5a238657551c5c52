//! Faults of a whole DB host, for the BFD tests: every process frozen with the link up (a hung
//! VM, a stuck kernel thread holding everything), or its packets dropped both ways (a dead NIC
//! driver, a switch port gone mute). Undone explicitly, and in any case by the namespace's
//! removal (SIGKILL stops a stopped process too; the firewall rules live in the namespace).

use std::process::Command;

use super::{netns_pids, run_ok, signal, Link, Net};

/// Which packets [`Net::drop_db_packets`] drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Everything on the link, both ways.
    All,
    /// BFD only (UDP to port 3784, both ways): BGP's TCP still flows.
    Bfd,
}

impl Net {
    /// SIGSTOPs every process of the DB namespace (primaryd, MariaDB); the link stays up and
    /// the kernel still answers. Returns how many were stopped.
    #[track_caller]
    pub fn freeze_db(&self) -> usize {
        let pids = netns_pids(&self.db_ns);
        assert!(!pids.is_empty(), "nothing runs in {}", self.db_ns);
        for pid in &pids {
            signal(*pid, "STOP");
        }
        pids.len()
    }

    /// SIGCONTs every process of the DB namespace.
    pub fn thaw_db(&self) {
        for pid in netns_pids(&self.db_ns) {
            signal(pid, "CONT");
        }
    }

    fn db_filter(&self, link: &Link, what: Drop, op: &str) {
        let dev = &link.db_if;
        for tool in ["iptables", "ip6tables"] {
            for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
                let mut c = Command::new("ip");
                c.args([
                    "netns",
                    "exec",
                    &self.db_ns,
                    tool,
                    "-w",
                    op,
                    chain,
                    dir,
                    dev,
                ]);
                if what == Drop::Bfd {
                    c.args(["-p", "udp", "--dport", "3784"]);
                }
                run_ok(c.args(["-j", "DROP"]));
            }
        }
    }

    /// Drops the DB host's packets on `link` in both directions (IPv4 and IPv6).
    pub fn drop_db_packets(&self, link: &Link, what: Drop) {
        self.db_filter(link, what, "-I");
    }

    /// Undoes [`Net::drop_db_packets`].
    pub fn pass_db_packets(&self, link: &Link, what: Drop) {
        self.db_filter(link, what, "-D");
    }
}
