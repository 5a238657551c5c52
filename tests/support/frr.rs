//! FRR 8.4 as a ToR: a config builder (whose rendered output is also the documented example,
//! docs/tor-examples/), one instance per namespace (zebra + bgpd), vtysh, and readers for what
//! the tests assert on (the kernel routes zebra installed, the BGP table, the sessions and the
//! last NOTIFICATION). [`Lab`]'s single ToR is such an instance; its methods keep the API the
//! first end-to-end tests were written against.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::{
    chown, frr_run_dir, hold_until, kernel_route, kill_child, run, run_ok, signal, tail,
    wait_until, Lab, MariaDb, DB_ADDR, DB_ASN, SERVICE_PREFIX, STEP, TOR_ASN, TOR_ROUTER_ID,
};

/// A "never" is watched for this many check intervals, after the session is Established.
/// With rise = 1 a daemon that judged wrongly would announce one interval after its first
/// check, and FRR installs an update within about 60 ms (LAB-NOTES), so 10 intervals leave a
/// wide margin while the test stays short.
pub const QUIET_INTERVALS: u32 = 10;
/// When a server is up, the window also lasts until the server has seen primaryd talk to it
/// at this many distinct moments (its per-user byte counter grew between two of our polls):
/// a daemon that is stuck, or not checking at all, cannot pass the window by idling.
pub const QUIET_MIN_CHECKS: u32 = 5;

/// vtysh talks to the daemons over local sockets; bound it so a wedged daemon fails the test
/// instead of hanging it.
const VTYSH_TIMEOUT_S: &str = "10";

/// One path FRR holds for a prefix, from `show bgp ipv4|ipv6 unicast PREFIX json`.
#[derive(Debug, Clone, PartialEq)]
pub struct BgpPath {
    /// `paths[].aspath.string`, e.g. "4200000001"; an AS_SET would show as "{...}".
    pub as_path: String,
    /// `paths[].aspath.segments[]` as (type, ASNs); type is "as-sequence" or "as-set".
    pub segments: Vec<(String, Vec<u32>)>,
    /// `paths[].nexthops[0].ip`.
    pub next_hop: Option<String>,
    /// Every `paths[].nexthops[]` as (ip, scope); scope is "global" or "link-local" for
    /// IPv6 and None for IPv4.
    pub next_hops: Vec<(String, Option<String>)>,
    /// `paths[].origin`: "IGP", "EGP" or "incomplete".
    pub origin: String,
    /// `paths[].metric` (MULTI_EXIT_DISC), absent when the UPDATE had none.
    pub med: Option<u64>,
    /// `paths[].locPrf` (LOCAL_PREF), absent when the UPDATE had none.
    pub local_pref: Option<u64>,
    /// `paths[].community.list`, e.g. ["65001:100"].
    pub communities: Vec<String>,
    /// `paths[].largeCommunity.list`, e.g. ["4200000001:1:2"].
    pub large_communities: Vec<String>,
    /// `paths[].peer.peerId`: the neighbour it came from.
    pub peer: Option<String>,
    /// `paths[].peer.type`: "external" or "internal".
    pub peer_type: Option<String>,
    pub valid: bool,
    /// `paths[].bestpath.overall`.
    pub best: bool,
}

impl BgpPath {
    fn from_json(p: &Value) -> BgpPath {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let segments = p["aspath"]["segments"]
            .as_array()
            .map(|segs| {
                segs.iter()
                    .map(|s| {
                        let kind = s["type"].as_str().unwrap_or("").to_string();
                        let asns = s["list"]
                            .as_array()
                            .map(|l| l.iter().filter_map(|a| a.as_u64()).map(|a| a as u32))
                            .into_iter()
                            .flatten()
                            .collect();
                        (kind, asns)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let next_hops = p["nexthops"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|n| {
                        let ip = n["ip"].as_str()?.to_string();
                        Some((ip, n["scope"].as_str().map(str::to_string)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        BgpPath {
            as_path: p["aspath"]["string"].as_str().unwrap_or("").to_string(),
            segments,
            next_hop: p["nexthops"][0]["ip"].as_str().map(str::to_string),
            next_hops,
            origin: p["origin"].as_str().unwrap_or("").to_string(),
            med: p["metric"].as_u64(),
            local_pref: p["locPrf"].as_u64(),
            communities: strings(&p["community"]["list"]),
            large_communities: strings(&p["largeCommunity"]["list"]),
            peer: p["peer"]["peerId"].as_str().map(str::to_string),
            peer_type: p["peer"]["type"].as_str().map(str::to_string),
            valid: p["valid"].as_bool().unwrap_or(false),
            best: p["bestpath"]["overall"].as_bool().unwrap_or(false),
        }
    }
}

/// What FRR recorded about the session's last reset (`show bgp neighbors X json`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastNotification {
    /// `lastNotificationReason`, e.g. "Cease/Administrative Shutdown".
    pub reason: Option<String>,
    /// `lastErrorCodeSubcode`, hex code and subcode, e.g. "0602".
    pub code_subcode: Option<String>,
    /// `lastShutdownDescription`: the RFC 8203 shutdown communication, if one came with it.
    pub shutdown_message: Option<String>,
    /// `lastResetDueTo`: "BGP Notification received" when the neighbour sent it (FRR says
    /// "BGP Notification send" when FRR did).
    pub reset_due_to: Option<String>,
    /// `messageStats.notificationsRecv`.
    pub notifications_received: u64,
}

impl LastNotification {
    fn from_neighbor(n: &Value) -> LastNotification {
        let s = |k: &str| n[k].as_str().map(str::to_string);
        LastNotification {
            reason: s("lastNotificationReason"),
            code_subcode: s("lastErrorCodeSubcode"),
            shutdown_message: s("lastShutdownDescription"),
            reset_due_to: s("lastResetDueTo"),
            notifications_received: n["messageStats"]["notificationsRecv"].as_u64().unwrap_or(0),
        }
    }
}

// ---------- config builder ----------

/// One `neighbor` of an FRR ToR: the DB host's primaryd.
#[derive(Debug, Clone)]
pub struct FrrNeighbor {
    /// The DB host's address on the link: IPv4, IPv6 global or IPv6 link-local.
    pub address: String,
    /// For a link-local address: the ToR's interface towards the DB host.
    pub interface: Option<String>,
    pub remote_asn: u32,
    pub description: Option<String>,
    /// Activate in `address-family ipv4 unicast` / `ipv6 unicast`.
    pub ipv4: bool,
    pub ipv6: bool,
    /// TCP MD5 key (RFC 2385); primaryd's `md5_password_file` must hold the same.
    pub password: Option<String>,
    /// `ttl-security hops 1` (GTSM); primaryd's `ttl_security = true`.
    pub ttl_security: bool,
    /// `timers KEEPALIVE HOLD` (FRR's datacenter default: 3 9).
    pub timers: Option<(u16, u16)>,
    /// `timers connect N`: how soon FRR retries a connection (a passive primaryd waits for
    /// it); FRR's datacenter default is 10 s.
    pub connect_timer: Option<u16>,
    /// `passive`: FRR only accepts, primaryd must connect.
    pub passive: bool,
    /// `bfd` and `bfd profile NAME` (a profile of [`FrrConfig::bfd_profiles`]): bfdd runs a
    /// BFD session with the DB host and bgpd drops the session when it goes down.
    pub bfd_profile: Option<String>,
    /// `addpath-tx-all-paths` in each activated family: every path to the neighbour, not only
    /// the best (RFC 7911), so each DB host sees every other announcer (docs/safety.md).
    pub addpath_tx_all_paths: bool,
}

impl FrrNeighbor {
    /// An eBGP or iBGP neighbour with both unicast families and FRR's defaults otherwise.
    pub fn new(address: &str, remote_asn: u32) -> FrrNeighbor {
        FrrNeighbor {
            address: address.to_string(),
            interface: None,
            remote_asn,
            description: None,
            ipv4: true,
            ipv6: true,
            password: None,
            ttl_security: false,
            timers: None,
            connect_timer: None,
            passive: false,
            bfd_profile: None,
            addpath_tx_all_paths: false,
        }
    }
}

/// A `bfd` / `profile NAME` block of bfdd: the intervals of the sessions that use it.
#[derive(Debug, Clone)]
pub struct FrrBfdProfile {
    pub name: String,
    pub transmit_ms: u32,
    pub receive_ms: u32,
    pub multiplier: u32,
}

/// A ToR's bgpd config: `router bgp` with neighbours and, for tests of received routes,
/// networks the ToR originates.
#[derive(Debug, Clone)]
pub struct FrrConfig {
    /// First lines, as `!` comments: what the example is and which test runs it.
    pub comment: Vec<String>,
    pub hostname: String,
    pub asn: u32,
    pub router_id: String,
    pub neighbors: Vec<FrrNeighbor>,
    /// `network P` lines (no import check: they need not be in the ToR's RIB).
    pub networks: Vec<String>,
    /// bfdd profiles (rendered as a `bfd` block; the lab gives it to bfdd).
    pub bfd_profiles: Vec<FrrBfdProfile>,
}

impl FrrConfig {
    pub fn new(hostname: &str, asn: u32, router_id: &str) -> FrrConfig {
        FrrConfig {
            comment: Vec::new(),
            hostname: hostname.to_string(),
            asn,
            router_id: router_id.to_string(),
            neighbors: Vec::new(),
            networks: Vec::new(),
            bfd_profiles: Vec::new(),
        }
    }

    pub fn neighbor(mut self, n: FrrNeighbor) -> FrrConfig {
        self.neighbors.push(n);
        self
    }

    /// The config text, as an operator would put it in frr.conf (the lab adds logging).
    pub fn render(&self) -> String {
        let mut s = String::new();
        for c in &self.comment {
            let _ = writeln!(s, "! {c}");
        }
        let _ = writeln!(s, "frr defaults datacenter");
        let _ = writeln!(s, "hostname {}", self.hostname);
        let _ = writeln!(s, "!");
        if !self.bfd_profiles.is_empty() {
            let _ = writeln!(s, "bfd");
            for p in &self.bfd_profiles {
                let _ = writeln!(s, " profile {}", p.name);
                let _ = writeln!(s, "  transmit-interval {}", p.transmit_ms);
                let _ = writeln!(s, "  receive-interval {}", p.receive_ms);
                let _ = writeln!(s, "  detect-multiplier {}", p.multiplier);
                let _ = writeln!(s, " exit");
            }
            let _ = writeln!(s, "exit");
            let _ = writeln!(s, "!");
        }
        let _ = writeln!(s, "router bgp {}", self.asn);
        let _ = writeln!(s, " bgp router-id {}", self.router_id);
        // FRR 8 drops eBGP routes without an import policy (RFC 8212); a ToR would normally
        // have a prefix-list for the service range here instead.
        let _ = writeln!(s, " no bgp ebgp-requires-policy");
        // Families are activated per neighbour below, so what is negotiated is explicit.
        let _ = writeln!(s, " no bgp default ipv4-unicast");
        if !self.networks.is_empty() {
            let _ = writeln!(s, " no bgp network import-check");
        }
        for n in &self.neighbors {
            let a = &n.address;
            let _ = writeln!(s, " neighbor {a} remote-as {}", n.remote_asn);
            if let Some(i) = &n.interface {
                let _ = writeln!(s, " neighbor {a} interface {i}");
            }
            if let Some(d) = &n.description {
                let _ = writeln!(s, " neighbor {a} description {d}");
            }
            if let Some(p) = &n.password {
                let _ = writeln!(s, " neighbor {a} password {p}");
            }
            if n.ttl_security {
                let _ = writeln!(s, " neighbor {a} ttl-security hops 1");
            }
            if let Some((k, h)) = n.timers {
                let _ = writeln!(s, " neighbor {a} timers {k} {h}");
            }
            if let Some(t) = n.connect_timer {
                let _ = writeln!(s, " neighbor {a} timers connect {t}");
            }
            if n.passive {
                let _ = writeln!(s, " neighbor {a} passive");
            }
            if let Some(p) = &n.bfd_profile {
                let _ = writeln!(s, " neighbor {a} bfd");
                let _ = writeln!(s, " neighbor {a} bfd profile {p}");
            }
        }
        for family in ["ipv4", "ipv6"] {
            let v6 = family == "ipv6";
            let nets: Vec<&String> = self
                .networks
                .iter()
                .filter(|p| p.contains(':') == v6)
                .collect();
            let active: Vec<&FrrNeighbor> = self
                .neighbors
                .iter()
                .filter(|n| if v6 { n.ipv6 } else { n.ipv4 })
                .collect();
            if active.is_empty() && nets.is_empty() {
                continue;
            }
            let _ = writeln!(s, " !");
            let _ = writeln!(s, " address-family {family} unicast");
            for p in nets {
                let _ = writeln!(s, "  network {p}");
            }
            for n in active {
                let _ = writeln!(s, "  neighbor {} activate", n.address);
                if n.addpath_tx_all_paths {
                    let _ = writeln!(s, "  neighbor {} addpath-tx-all-paths", n.address);
                }
            }
            let _ = writeln!(s, " exit-address-family");
        }
        let _ = writeln!(s, "exit");
        let _ = writeln!(s, "!");
        s
    }
}

// ---------- one FRR instance ----------

/// zebra and bgpd in one namespace, with `-N NS` (their own run dir, per LAB-NOTES). Both run
/// in the foreground under `ip netns exec`, which execs them: the children's PIDs are the
/// daemons' own, so they can be killed and reaped (also on Drop).
pub struct Frr {
    /// Label in messages, e.g. "tor1".
    pub name: String,
    pub ns: String,
    dir: PathBuf,
    /// Neighbour addresses the config names (bgpd is ready when it knows all of them).
    neighbors: Vec<String>,
    daemons: Mutex<Vec<(&'static str, Child)>>,
}

impl Frr {
    /// Writes the configs (the lab's logging inserted after `frr defaults`) into `dir` and
    /// starts zebra, then bgpd; returns once bgpd answers vtysh with every neighbour known.
    pub(super) fn start(name: &str, ns: &str, dir: PathBuf, bgpd_conf: &str) -> Frr {
        fs::create_dir_all(&dir).unwrap();
        let run_dir = frr_run_dir(ns);
        let _ = fs::remove_dir_all(&run_dir);
        fs::create_dir_all(&run_dir).unwrap();
        chown(&run_dir, "frr:frr");

        let log = |daemon: &str| {
            format!(
                "log file {} debugging\nlog timestamp precision 3",
                dir.join(format!("{daemon}.log")).display()
            )
        };
        // Each daemon reads only its own lines; one shared file would make zebra complain
        // about every `router bgp` line.
        let zebra = format!(
            "frr defaults datacenter\nhostname {name}\n{}\n",
            log("zebra")
        );
        fs::write(dir.join("zebra.conf"), zebra).unwrap();
        // `debug bgp updates in` logs each received announce and withdraw, so tests can see
        // the order of UPDATEs and NOTIFICATIONs; neighbor-events logs session changes.
        let lab_lines = format!(
            "{}\ndebug bgp neighbor-events\ndebug bgp updates in",
            log("bgpd")
        );
        // The `bfd` block is bfdd's (bgpd refuses it, and every line after it).
        let (bgpd_conf, bfd_block) = split_bfd_block(bgpd_conf);
        let with_bfd = !bfd_block.is_empty() || bgpd_conf.contains(" bfd");
        let mut lines: Vec<String> = bgpd_conf.lines().map(str::to_string).collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("frr defaults"))
            .map_or(0, |i| i + 1);
        lines.insert(at, lab_lines);
        fs::write(dir.join("bgpd.conf"), lines.join("\n") + "\n").unwrap();
        if with_bfd {
            let bfdd = format!(
                "frr defaults datacenter\nhostname {name}\n{}\ndebug bfd peer\n{bfd_block}",
                log("bfdd")
            );
            fs::write(dir.join("bfdd.conf"), bfdd).unwrap();
        }
        for f in ["zebra.log", "bgpd.log", "bfdd.log"] {
            fs::write(dir.join(f), "").unwrap();
        }
        run_ok(Command::new("chown").arg("-R").arg("frr:frr").arg(&dir));

        let neighbors = bgpd_conf
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("neighbor") && w.nth(1) == Some("remote-as"))
                    .then(|| l.split_whitespace().nth(1).unwrap().to_string())
            })
            .collect();
        let frr = Frr {
            name: name.to_string(),
            ns: ns.to_string(),
            dir,
            neighbors,
            daemons: Mutex::new(Vec::new()),
        };
        // zebra first: it installs bgpd's routes into the namespace's kernel table.
        frr.spawn("zebra");
        let zserv = run_dir.join("zserv.api");
        wait_until(STEP, &format!("{name}: zebra listens on zserv.api"), || {
            frr.check_alive();
            zserv.exists()
        });
        if with_bfd {
            frr.spawn("bfdd");
            wait_until(STEP, &format!("{name}: bfdd answers vtysh"), || {
                frr.check_alive();
                frr.try_vtysh("show bfd peers").is_ok()
            });
        }
        frr.start_bgpd();
        frr
    }

    /// bfdd's session with `peer` (`show bfd peers json`), if it has one.
    pub fn bfd_peer(&self, peer: &str) -> Option<Value> {
        let v = self.try_vtysh_json("show bfd peers json").ok()?;
        v.as_array()?
            .iter()
            .find(|p| p["peer"].as_str() == Some(peer))
            .cloned()
    }

    /// The state of bfdd's session with `peer`: "up", "down", "init" or "shutdown".
    pub fn bfd_status(&self, peer: &str) -> Option<String> {
        self.bfd_peer(peer)
            .and_then(|p| p["status"].as_str().map(str::to_string))
    }

    /// Starts bgpd (again, after [`Frr::kill_bgpd`]) and waits until it answers.
    #[track_caller]
    pub fn start_bgpd(&self) {
        self.spawn("bgpd");
        wait_until(
            STEP,
            &format!(
                "{}: bgpd answers vtysh with neighbours {:?} configured",
                self.name, self.neighbors
            ),
            || {
                self.check_alive();
                self.try_vtysh_json("show bgp neighbors json")
                    .is_ok_and(|v| self.neighbors.iter().all(|n| v.get(n).is_some()))
            },
        );
    }

    /// SIGKILLs bgpd (zebra keeps running), as when the routing daemon crashes.
    #[track_caller]
    pub fn kill_bgpd(&self) {
        let mut daemons = self.daemons.lock().unwrap();
        let i = daemons
            .iter()
            .position(|(d, _)| *d == "bgpd")
            .unwrap_or_else(|| panic!("{}: bgpd is not running", self.name));
        let (_, mut child) = daemons.remove(i);
        assert!(signal(child.id(), "KILL"), "{}: kill -9 bgpd", self.name);
        let _ = child.wait();
    }

    fn spawn(&self, daemon: &'static str) {
        let out = fs::File::create(self.dir.join(format!("{daemon}.out"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(format!("/usr/lib/frr/{daemon}"))
            .args(["-N", &self.ns, "-f"])
            .arg(self.dir.join(format!("{daemon}.conf")))
            .arg("-i")
            .arg(frr_run_dir(&self.ns).join(format!("{daemon}.pid")))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {daemon}: {e}"));
        self.daemons.lock().unwrap().push((daemon, child));
    }

    /// Panics with the daemon's output when zebra or bgpd has exited unasked.
    #[track_caller]
    pub fn check_alive(&self) {
        let mut daemons = self.daemons.lock().unwrap_or_else(|e| e.into_inner());
        for (name, child) in daemons.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let out = tail(&self.dir.join(format!("{name}.out")), 30);
                let log = tail(&self.dir.join(format!("{name}.log")), 30);
                panic!("{}: FRR {name} exited ({status}):\n{out}{log}", self.name);
            }
        }
    }

    /// Folder with the configs and logs (owned by frr).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("bgpd.log")
    }

    /// bgpd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `vtysh -N NS -c CMD`; Err with the output when vtysh fails.
    pub fn try_vtysh(&self, cmd: &str) -> Result<String, String> {
        self.try_vtysh_lines(&[cmd])
    }

    fn try_vtysh_lines(&self, cmds: &[&str]) -> Result<String, String> {
        let mut c = Command::new("timeout");
        c.args([VTYSH_TIMEOUT_S, "vtysh", "-N", &self.ns]);
        for cmd in cmds {
            c.args(["-c", cmd]);
        }
        let out = run(c.env_remove("VTYSH_PAGER"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        // vtysh reports a rejected configuration line with "%" but may still exit 0.
        if out.status.success() && !stdout.lines().any(|l| l.starts_with('%')) {
            Ok(stdout)
        } else {
            // stderr always has the harmless "vtysh.conf is missing" warning.
            Err(format!(
                "{}: vtysh {cmds:?} failed ({}): {stdout}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    #[track_caller]
    pub fn vtysh(&self, cmd: &str) -> String {
        self.try_vtysh(cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_vtysh_json(&self, cmd: &str) -> Result<Value, String> {
        let text = self.try_vtysh(cmd)?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: vtysh -c {cmd:?}: not JSON ({e}): {text}", self.name))
    }

    #[track_caller]
    pub fn vtysh_json(&self, cmd: &str) -> Value {
        self.try_vtysh_json(cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Changes the running config: `configure terminal`, then `lines` in order (e.g.
    /// `["router bgp 65001", "neighbor 198.18.1.1 password x"]`).
    #[track_caller]
    pub fn configure(&self, lines: &[&str]) {
        let mut cmds = vec!["configure terminal"];
        cmds.extend_from_slice(lines);
        if let Err(e) = self.try_vtysh_lines(&cmds) {
            panic!("{e}");
        }
    }

    /// `show bgp neighbors ADDR json`, the neighbour's object.
    #[track_caller]
    pub fn neighbor(&self, addr: &str) -> Value {
        let mut v = self.vtysh_json(&format!("show bgp neighbors {addr} json"));
        v.get_mut(addr)
            .map(Value::take)
            .unwrap_or_else(|| panic!("{} does not know neighbour {addr}: {v}", self.name))
    }

    /// `bgpState`, e.g. "Established", "Active", "Idle".
    pub fn neighbor_state(&self, addr: &str) -> String {
        self.neighbor(addr)["bgpState"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// How many times the session reached Established (`connectionsEstablished`).
    pub fn connections_established(&self, addr: &str) -> u64 {
        self.neighbor(addr)["connectionsEstablished"]
            .as_u64()
            .unwrap_or(0)
    }

    /// What FRR recorded about the last NOTIFICATION of the session with `addr`.
    pub fn last_notification(&self, addr: &str) -> LastNotification {
        LastNotification::from_neighbor(&self.neighbor(addr))
    }

    /// `show bgp ipv4|ipv6 unicast PREFIX json` (family from the prefix); None when FRR has
    /// no path for it.
    pub fn route_json(&self, prefix: &str) -> Option<Value> {
        let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let v = self.vtysh_json(&format!("show bgp {afi} unicast {prefix} json"));
        let has_paths = v["paths"].as_array().is_some_and(|p| !p.is_empty());
        has_paths.then_some(v)
    }

    /// Every path FRR holds for `prefix`.
    pub fn paths(&self, prefix: &str) -> Vec<BgpPath> {
        self.route_json(prefix)
            .and_then(|v| v["paths"].as_array().cloned())
            .map(|ps| ps.iter().map(BgpPath::from_json).collect())
            .unwrap_or_default()
    }

    /// The best (or only) path FRR holds for `prefix`.
    pub fn best_path(&self, prefix: &str) -> Option<BgpPath> {
        let paths = self.paths(prefix);
        paths.iter().find(|p| p.best).or(paths.first()).cloned()
    }

    /// The ToR kernel's route for exactly `prefix`, e.g. "192.0.2.10 nhid 6 via 198.18.1.1
    /// dev eth1 proto bgp metric 20"; None when absent.
    pub fn kernel_route(&self, prefix: &str) -> Option<String> {
        kernel_route(&self.ns, prefix)
    }

    /// The kernel route for `prefix` if zebra installed it from BGP.
    pub fn bgp_kernel_route(&self, prefix: &str) -> Option<String> {
        self.kernel_route(prefix)
            .filter(|r| r.contains("proto bgp"))
    }

    /// bgpd's log line for the last NOTIFICATION received from `addr`, e.g.
    /// `%NOTIFICATION: received from neighbor 198.18.1.1 6/2 (Cease/Administrative Shutdown)
    /// "message"`.
    pub fn log_notification_received(&self, addr: &str) -> Option<String> {
        let needle = format!("%NOTIFICATION: received from neighbor {addr} ");
        self.log()
            .lines()
            .rfind(|l| l.contains(&needle))
            .map(str::to_string)
    }

    /// What a post-mortem needs: the sessions, the tables, the logs.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for cmd in [
            "show bgp summary",
            "show bgp ipv4 unicast",
            "show bgp ipv6 unicast",
            "show bgp neighbors",
        ] {
            let _ = writeln!(out, "----- {}: vtysh {cmd} -----", self.name);
            out.push_str(&self.try_vtysh(cmd).unwrap_or_else(|e| e));
        }
        let _ = writeln!(out, "----- {}: bgpd log -----", self.name);
        out.push_str(&tail(&self.dir.join("bgpd.log"), 150));
        let _ = writeln!(out, "----- {}: zebra log -----", self.name);
        out.push_str(&tail(&self.dir.join("zebra.log"), 30));
        if self.dir.join("bfdd.conf").exists() {
            let _ = writeln!(out, "----- {}: vtysh show bfd peers -----", self.name);
            out.push_str(&self.try_vtysh("show bfd peers").unwrap_or_else(|e| e));
            let _ = writeln!(out, "----- {}: bfdd log -----", self.name);
            out.push_str(&tail(&self.dir.join("bfdd.log"), 60));
        }
        out
    }

    /// Kills and reaps the daemons (bgpd first) and removes the run dir.
    pub(super) fn stop(&self) {
        let mut daemons = self.daemons.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((_, mut child)) = daemons.pop() {
            kill_child(&mut child);
        }
        let _ = fs::remove_dir_all(frr_run_dir(&self.ns));
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------- the single ToR of `Lab` ----------

impl Lab {
    /// The ToR (FRR) of this lab.
    pub fn tor(&self) -> &Frr {
        self.tor.as_ref().expect("the lab's FRR is running")
    }

    /// Folder with FRR's configs and logs (owned by frr, which must read and write it).
    pub fn frr_dir(&self) -> PathBuf {
        self.dir_path.join("frr")
    }

    /// Path of bgpd's log file (`log file` in its config, with `debug bgp updates in`).
    pub fn frr_log_path(&self) -> PathBuf {
        self.frr_dir().join("bgpd.log")
    }

    /// bgpd's log so far.
    pub fn frr_log(&self) -> String {
        self.tor().log()
    }

    pub(super) fn start_frr(&mut self) {
        // The router as in LAB-NOTES.
        let bgpd = [
            "frr defaults datacenter".to_string(),
            format!("hostname {}", self.tor_ns),
            format!("router bgp {TOR_ASN}"),
            format!(" bgp router-id {TOR_ROUTER_ID}"),
            " no bgp ebgp-requires-policy".into(),
            format!(" neighbor {DB_ADDR} remote-as {DB_ASN}"),
            format!(" neighbor {DB_ADDR} timers 1 3"),
            " address-family ipv4 unicast".into(),
            format!("  neighbor {DB_ADDR} activate"),
            " exit-address-family".into(),
        ]
        .join("\n");
        let dir = self.frr_dir();
        self.tor = Some(Frr::start(&self.tor_ns, &self.tor_ns, dir, &bgpd));
    }

    /// `vtysh -N TOR -c CMD`; Err with the output when vtysh fails.
    pub fn try_vtysh(&self, cmd: &str) -> Result<String, String> {
        self.tor().try_vtysh(cmd)
    }

    #[track_caller]
    pub fn vtysh(&self, cmd: &str) -> String {
        self.tor().vtysh(cmd)
    }

    pub fn try_vtysh_json(&self, cmd: &str) -> Result<Value, String> {
        self.tor().try_vtysh_json(cmd)
    }

    #[track_caller]
    pub fn vtysh_json(&self, cmd: &str) -> Value {
        self.tor().vtysh_json(cmd)
    }

    /// The ToR kernel's route for exactly `prefix` (`ip -n TOR route show PREFIX`), e.g.
    /// "192.0.2.10 nhid 6 via 198.18.1.1 dev pd1n0t proto bgp metric 20"; None when absent.
    pub fn tor_kernel_route(&self, prefix: &str) -> Option<String> {
        self.tor().kernel_route(prefix)
    }

    /// `show bgp neighbors 198.18.1.1 json`, the neighbour's object.
    pub fn bgp_neighbor(&self) -> Value {
        self.tor().neighbor(DB_ADDR)
    }

    /// FRR's `bgpState` for 198.18.1.1, e.g. "Established", "Active", "Idle".
    pub fn bgp_neighbor_state(&self) -> String {
        self.tor().neighbor_state(DB_ADDR)
    }

    /// How many times the session reached Established (`connectionsEstablished`).
    pub fn bgp_connections_established(&self) -> u64 {
        self.tor().connections_established(DB_ADDR)
    }

    /// Waits until FRR's session with primaryd is Established; returns the time waited.
    #[track_caller]
    pub fn wait_established(&self, within: Duration) -> Duration {
        wait_until(
            within,
            "FRR's session with 198.18.1.1 is Established",
            || {
                self.assert_primaryd_alive();
                self.bgp_neighbor_state() == "Established"
            },
        )
    }

    /// `show ip bgp PREFIX json`; None when FRR has no path for it.
    pub fn bgp_route_json(&self, prefix: &str) -> Option<Value> {
        self.tor().route_json(prefix)
    }

    /// The best (or only) path FRR holds for `prefix`.
    pub fn bgp_best_path(&self, prefix: &str) -> Option<BgpPath> {
        self.tor().best_path(prefix)
    }

    /// Neither the ToR's kernel table nor its BGP table has `prefix`.
    /// Also fails when primaryd died unasked, so that a "never announced" window cannot pass
    /// because there is no daemon.
    #[track_caller]
    pub fn route_absent(&self, prefix: &str) -> bool {
        self.assert_primaryd_alive();
        self.tor_kernel_route(prefix).is_none() && self.bgp_route_json(prefix).is_none()
    }

    /// Waits until zebra has installed `prefix` from BGP in the ToR's kernel table; returns the
    /// route line.
    #[track_caller]
    pub fn wait_route(&self, prefix: &str, within: Duration) -> String {
        super::wait_for(
            within,
            &format!("{prefix} is in the ToR's kernel table (proto bgp)"),
            || {
                self.assert_primaryd_alive();
                self.tor().bgp_kernel_route(prefix)
            },
        )
    }

    /// Waits until `prefix` is gone from the ToR's kernel table; returns the time waited.
    #[track_caller]
    pub fn wait_no_route(&self, prefix: &str, within: Duration) -> Duration {
        wait_until(
            within,
            &format!("{prefix} is gone from the ToR's kernel table"),
            || {
                self.assert_primaryd_alive();
                self.tor_kernel_route(prefix).is_none()
            },
        )
    }

    /// What FRR recorded about the last NOTIFICATION of the session with 198.18.1.1.
    pub fn last_notification(&self) -> LastNotification {
        self.tor().last_notification(DB_ADDR)
    }

    /// bgpd's log line for the last NOTIFICATION received from 198.18.1.1, e.g.
    /// `%NOTIFICATION: received from neighbor 198.18.1.1 6/2 (Cease/Administrative Shutdown)
    /// "message"`.
    pub fn frr_log_notification_received(&self) -> Option<String> {
        self.tor().log_notification_received(DB_ADDR)
    }

    /// The bounded "never" of the service prefix: watches that it stays absent from the ToR
    /// (kernel and BGP table) for [`QUIET_INTERVALS`] check intervals and, when `db` is given,
    /// until MariaDB saw primaryd check it [`QUIET_MIN_CHECKS`] times. Fails at once if the
    /// route shows up or primaryd dies. Call it once the session is Established.
    #[track_caller]
    pub fn assert_no_route_while_checking(
        &self,
        db: Option<&MariaDb>,
        check_interval: Duration,
        why: &str,
    ) -> Duration {
        let window = check_interval * QUIET_INTERVALS;
        let start = std::time::Instant::now();
        let mut last_bytes = db.map(|d| d.primaryd_bytes_received());
        let mut checks_seen = 0;
        let took = hold_until(
            STEP,
            &format!("{SERVICE_PREFIX} is absent from the ToR ({why})"),
            || self.route_absent(SERVICE_PREFIX),
            &format!(
                "{QUIET_INTERVALS} check intervals passed and MariaDB saw {QUIET_MIN_CHECKS} \
                 checks by primaryd"
            ),
            || {
                if let (Some(d), Some(last)) = (db, last_bytes.as_mut()) {
                    let now = d.primaryd_bytes_received();
                    if now > *last {
                        checks_seen += 1;
                        *last = now;
                    }
                }
                start.elapsed() >= window && (db.is_none() || checks_seen >= QUIET_MIN_CHECKS)
            },
        );
        eprintln!("no route for {took:.3?} ({why}; {checks_seen} checks seen)");
        took
    }

    /// Checks bgpd's log (`debug bgp updates in`) for the order "withdraw, then Cease": after
    /// the last announcement of `prefix` from 198.18.1.1 and before the last NOTIFICATION
    /// received from it, an UPDATE withdrew the prefix. Err explains what is missing.
    pub fn withdrawn_before_notification(&self, prefix: &str) -> Result<(), String> {
        withdrawn_before_notification(&self.frr_log(), DB_ADDR, prefix)
    }
}

/// See [`Lab::withdrawn_before_notification`]; `log` is bgpd's log, `from` the neighbour.
pub fn withdrawn_before_notification(log: &str, from: &str, prefix: &str) -> Result<(), String> {
    let lines: Vec<&str> = log.lines().collect();
    let from_paren = format!("{from}(");
    let cease_at = lines
        .iter()
        .rposition(|l| l.contains(&format!("%NOTIFICATION: received from neighbor {from} ")))
        .ok_or_else(|| format!("bgpd logged no NOTIFICATION from {from}:\n{log}"))?;
    let announced_at = lines[..cease_at]
        .iter()
        .rposition(|l| l.contains(&from_paren) && l.contains(&format!("rcvd {prefix} ")))
        .ok_or_else(|| format!("bgpd logged no announcement of {prefix}:\n{log}"))?;
    let family = if prefix.contains(':') { "IPv6" } else { "IPv4" };
    let withdraw = format!("rcvd UPDATE about {prefix} {family} unicast -- withdrawn");
    if lines[announced_at..cease_at]
        .iter()
        .any(|l| l.contains(&from_paren) && l.contains(&withdraw))
    {
        Ok(())
    } else {
        Err(format!(
            "no withdraw of {prefix} between its last announcement and the NOTIFICATION:\n{}",
            lines[announced_at..=cease_at].join("\n")
        ))
    }
}

/// Splits FRR config text into what bgpd reads and the `bfd` block (up to its `exit` at
/// column 0), which is bfdd's.
fn split_bfd_block(conf: &str) -> (String, String) {
    let (mut rest, mut bfd) = (String::new(), String::new());
    let mut inside = false;
    for line in conf.lines() {
        if line == "bfd" {
            inside = true;
        }
        let target = if inside { &mut bfd } else { &mut rest };
        target.push_str(line);
        target.push('\n');
        if inside && line == "exit" {
            inside = false;
        }
    }
    (rest, bfd)
}
