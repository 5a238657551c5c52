//! The refusal: an nftables table (`inet primaryd`) whose input chain answers every TCP packet
//! to a refused service address with a TCP reset, new and established connections alike, IPv4
//! and IPv6. A host that is not the service's announced primary refuses, so a client that
//! reaches it (through a fallback route, or a router that has not converged yet) gets an RST at
//! once instead of silence or a server that should not take writes (docs/clients.md).
//!
//! The `nft` binary applies each change as one transaction (`nft -f -`), so the rules are never
//! half-written; every change also declares the table, sets and chain again, so a table someone
//! deleted comes back whole. The table stays when primaryd exits or dies: addresses stay
//! refused (fail closed), and the next start replaces the table's contents atomically.
//!
//! Why the binary rather than a netlink crate: each change is a handful of elements, made a few
//! times per failover; `nft` (about 8 ms a call here) is the reference implementation of the
//! ruleset grammar, and what it is told is exactly what an operator reads back with
//! `nft list table inet primaryd`. Packets that arrive on `lo` are not refused: the DB host's
//! own clients, including a check configured with the service address, reach the server.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// The table's name (family `inet`).
pub const TABLE: &str = "primaryd";
/// Before the usual filter chains (priority 0), so our refusal is seen first; another table's
/// `accept` cannot skip it (an accept ends only its own base chain).
const PRIORITY: i32 = -10;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RefuseError {
    #[error("cannot run nft: {0} (is nftables installed?)")]
    Spawn(String),
    #[error("nft failed: {0}")]
    Nft(String),
}

/// Manages one nftables table.
#[derive(Debug, Clone)]
pub struct Refuser {
    table: String,
    nft: String,
}

impl Default for Refuser {
    fn default() -> Refuser {
        Refuser::new(TABLE)
    }
}

impl Refuser {
    pub fn new(table: &str) -> Refuser {
        Refuser {
            table: table.to_string(),
            nft: "nft".to_string(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Replaces the table's refusals with exactly `refused`, in one transaction (start-up).
    pub fn install(&self, refused: &[IpAddr]) -> Result<(), RefuseError> {
        self.apply(&self.script(refused, &[], true))
    }

    /// Refuses `addrs` (idempotent).
    pub fn refuse(&self, addrs: &[IpAddr]) -> Result<(), RefuseError> {
        self.apply(&self.script(addrs, &[], false))
    }

    /// Stops refusing `addrs` (idempotent: absent addresses are no error).
    pub fn open(&self, addrs: &[IpAddr]) -> Result<(), RefuseError> {
        self.apply(&self.script(&[], addrs, false))
    }

    /// The addresses the table refuses now (`nft list set`), for tests and diagnostics.
    pub fn refused(&self) -> Result<Vec<IpAddr>, RefuseError> {
        let mut out = Vec::new();
        for set in ["refused_v4", "refused_v6"] {
            let o = Command::new(&self.nft)
                .args(["list", "set", "inet", &self.table, set])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| RefuseError::Spawn(e.to_string()))?;
            if !o.status.success() {
                return Err(RefuseError::Nft(stderr_text(&o.stderr)));
            }
            out.extend(elements(&String::from_utf8_lossy(&o.stdout)));
        }
        Ok(out)
    }

    /// One transaction: the table, its two sets and its chain declared (idempotent), the
    /// chain's rules rewritten, then the elements added and removed. `add` then `delete` of an
    /// element removes it whether or not it was there.
    pub fn script(&self, refuse: &[IpAddr], open: &[IpAddr], replace: bool) -> String {
        let t = &self.table;
        let mut s = String::new();
        let _ = writeln!(s, "add table inet {t}");
        let _ = writeln!(s, "add set inet {t} refused_v4 {{ type ipv4_addr; }}");
        let _ = writeln!(s, "add set inet {t} refused_v6 {{ type ipv6_addr; }}");
        let _ = writeln!(
            s,
            "add chain inet {t} input {{ type filter hook input priority {PRIORITY}; policy accept; }}"
        );
        let _ = writeln!(s, "flush chain inet {t} input");
        let _ = writeln!(s, "add rule inet {t} input iif \"lo\" return");
        for (family, set) in [("ip", "refused_v4"), ("ip6", "refused_v6")] {
            let _ = writeln!(
                s,
                "add rule inet {t} input meta l4proto tcp {family} daddr @{set} reject with tcp reset"
            );
        }
        if replace {
            let _ = writeln!(s, "flush set inet {t} refused_v4");
            let _ = writeln!(s, "flush set inet {t} refused_v6");
        }
        for (verbs, addrs) in [(&["add"][..], refuse), (&["add", "delete"][..], open)] {
            for (set, list) in split(addrs) {
                if list.is_empty() {
                    continue;
                }
                for verb in verbs {
                    let _ = writeln!(s, "{verb} element inet {t} {set} {{ {list} }}");
                }
            }
        }
        s
    }

    fn apply(&self, script: &str) -> Result<(), RefuseError> {
        let mut child = Command::new(&self.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RefuseError::Spawn(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|e| RefuseError::Nft(format!("writing the ruleset: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| RefuseError::Nft(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(RefuseError::Nft(stderr_text(&out.stderr)))
        }
    }
}

/// nft's error, on one line (it prints the offending line and a caret under it).
fn stderr_text(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.is_empty() {
        "no error text".into()
    } else {
        first.trim().to_string()
    }
}

/// (set, "a, b") for the IPv4 and the IPv6 addresses.
fn split(addrs: &[IpAddr]) -> [(&'static str, String); 2] {
    let list = |v4: bool| {
        addrs
            .iter()
            .filter(|a| a.is_ipv4() == v4)
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    [("refused_v4", list(true)), ("refused_v6", list(false))]
}

/// The addresses in `nft list set` output (`elements = { 192.0.2.10, 192.0.2.11 }`, possibly
/// over several lines).
fn elements(listing: &str) -> Vec<IpAddr> {
    let Some(start) = listing.find("elements = {") else {
        return Vec::new();
    };
    let rest = &listing[start + "elements = {".len()..];
    let body = rest.split('}').next().unwrap_or("");
    body.split([',', '\n', ' ', '\t'])
        .filter_map(|w| w.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_change_redeclares_everything_and_touches_only_its_elements() {
        let r = Refuser::new("pdtest");
        let s = r.script(&[a("192.0.2.10"), a("2001:db8::10")], &[], false);
        assert!(s.starts_with("add table inet pdtest\n"), "{s}");
        assert!(s.contains(
            "add chain inet pdtest input { type filter hook input priority -10; policy accept; }"
        ));
        assert!(s.contains("flush chain inet pdtest input\n"));
        assert!(s.contains(
            "add rule inet pdtest input meta l4proto tcp ip daddr @refused_v4 reject with tcp reset"
        ));
        assert!(s.contains(
            "add rule inet pdtest input meta l4proto tcp ip6 daddr @refused_v6 reject with tcp reset"
        ));
        assert!(s.contains("add element inet pdtest refused_v4 { 192.0.2.10 }\n"));
        assert!(s.contains("add element inet pdtest refused_v6 { 2001:db8::10 }\n"));
        assert!(
            !s.contains("flush set"),
            "a change keeps the other refusals"
        );
        assert!(!s.contains("delete"));
        // The lo exemption comes before the refusals.
        assert!(s.find("iif \"lo\" return").unwrap() < s.find("reject").unwrap());
    }

    #[test]
    fn opening_adds_then_deletes_so_absence_is_no_error() {
        let r = Refuser::new("pdtest");
        let s = r.script(&[], &[a("192.0.2.10"), a("192.0.2.11")], false);
        let add = s
            .find("add element inet pdtest refused_v4 { 192.0.2.10, 192.0.2.11 }")
            .unwrap();
        let del = s
            .find("delete element inet pdtest refused_v4 { 192.0.2.10, 192.0.2.11 }")
            .unwrap();
        assert!(add < del);
        assert!(!s.contains("refused_v6 {  }") && !s.contains("element inet pdtest refused_v6"));
    }

    #[test]
    fn install_replaces_the_sets_in_the_same_transaction() {
        let r = Refuser::new("pdtest");
        let s = r.script(&[a("192.0.2.10")], &[], true);
        let flush = s.find("flush set inet pdtest refused_v4").unwrap();
        let add = s.find("add element inet pdtest refused_v4").unwrap();
        assert!(flush < add);
    }

    #[test]
    fn elements_are_read_from_a_listing() {
        let listing = "table inet primaryd {\n\tset refused_v4 {\n\t\ttype ipv4_addr\n\t\t\
                       elements = { 192.0.2.10, 192.0.2.11,\n\t\t\t     192.0.2.12 }\n\t}\n}\n";
        assert_eq!(
            elements(listing),
            [a("192.0.2.10"), a("192.0.2.11"), a("192.0.2.12")]
        );
        assert!(elements("table inet primaryd { set refused_v4 { type ipv4_addr } }").is_empty());
    }

    #[test]
    fn nft_errors_are_one_line() {
        let e = b"\n/dev/stdin:3:1-10: Error: Could not process rule: Operation not permitted\nadd x\n^^^\n";
        assert_eq!(
            stderr_text(e),
            "/dev/stdin:3:1-10: Error: Could not process rule: Operation not permitted"
        );
    }
}
