//! FRR 8.4 as the ToR: start-up, vtysh, and readers for what the tests assert on (the
//! kernel route zebra installed, the BGP table, the session and the last NOTIFICATION).

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{
    chown, frr_run_dir, hold_until, kill_child, run, run_ok, tail, wait_until, Lab, MariaDb,
    DB_ADDR, DB_ASN, SERVICE_PREFIX, STEP, TOR_ASN, TOR_ROUTER_ID,
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

/// The best path FRR holds for a prefix, from `show ip bgp PREFIX json`.
#[derive(Debug, Clone, PartialEq)]
pub struct BgpPath {
    /// `paths[].aspath.string`, e.g. "4200000001"; an AS_SET would show as "{...}".
    pub as_path: String,
    /// `paths[].aspath.segments[]` as (type, ASNs); type is "as-sequence" or "as-set".
    pub segments: Vec<(String, Vec<u32>)>,
    /// `paths[].nexthops[0].ip`.
    pub next_hop: Option<String>,
    /// `paths[].origin`: "IGP", "EGP" or "incomplete".
    pub origin: String,
    /// `paths[].peer.peerId`: the neighbour it came from.
    pub peer: Option<String>,
    pub valid: bool,
    /// `paths[].bestpath.overall`.
    pub best: bool,
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

impl Lab {
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
        fs::read_to_string(self.frr_log_path()).unwrap_or_default()
    }

    pub(super) fn start_frr(&mut self) {
        let dir = self.frr_dir();
        fs::create_dir(&dir).unwrap();
        let run_dir = frr_run_dir(&self.tor_ns);
        let _ = fs::remove_dir_all(&run_dir);
        fs::create_dir_all(&run_dir).unwrap();
        chown(&run_dir, "frr:frr");

        // Each daemon reads only its own lines; one shared file would make zebra complain
        // about every `router bgp` line.
        let header = |daemon: &str| {
            format!(
                "frr defaults datacenter\nhostname {}\nlog file {} debugging\n\
                 log timestamp precision 3",
                self.tor_ns,
                dir.join(format!("{daemon}.log")).display()
            )
        };
        fs::write(dir.join("zebra.conf"), header("zebra")).unwrap();
        // The router as in LAB-NOTES. `debug bgp updates in` logs each received announce and
        // withdraw, so tests can see a withdraw arrive before the NOTIFICATION.
        let bgpd = [
            header("bgpd"),
            "debug bgp neighbor-events".into(),
            "debug bgp updates in".into(),
            format!("router bgp {TOR_ASN}"),
            format!(" bgp router-id {TOR_ROUTER_ID}"),
            " no bgp ebgp-requires-policy".into(),
            format!(" neighbor {DB_ADDR} remote-as {DB_ASN}"),
            format!(" neighbor {DB_ADDR} timers 1 3"),
            " address-family ipv4 unicast".into(),
            format!("  neighbor {DB_ADDR} activate"),
            " exit-address-family".into(),
        ]
        .join("\n")
            + "\n";
        fs::write(dir.join("bgpd.conf"), bgpd).unwrap();
        for f in ["zebra.log", "bgpd.log"] {
            fs::write(dir.join(f), "").unwrap();
        }
        run_ok(Command::new("chown").arg("-R").arg("frr:frr").arg(&dir));

        // zebra first: it installs bgpd's routes into the namespace's kernel table.
        self.spawn_frr_daemon("zebra");
        let zserv = run_dir.join("zserv.api");
        wait_until(STEP, "zebra listens on zserv.api", || {
            self.check_frr_alive();
            zserv.exists()
        });
        self.spawn_frr_daemon("bgpd");
        wait_until(
            STEP,
            "bgpd answers vtysh with neighbour 198.18.1.1 configured",
            || {
                self.check_frr_alive();
                self.try_vtysh_json(&format!("show bgp neighbors {DB_ADDR} json"))
                    .is_ok_and(|v| v.get(DB_ADDR).is_some())
            },
        );
    }

    fn spawn_frr_daemon(&mut self, daemon: &'static str) {
        let dir = self.frr_dir();
        let out = fs::File::create(dir.join(format!("{daemon}.out"))).unwrap();
        // Foreground (no -d): `ip netns exec` execs the daemon, so the child's PID is the
        // daemon's (the same as its pid file) and Drop can kill and reap it.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.tor_ns])
            .arg(format!("/usr/lib/frr/{daemon}"))
            .args(["-N", &self.tor_ns, "-f"])
            .arg(dir.join(format!("{daemon}.conf")))
            .arg("-i")
            .arg(frr_run_dir(&self.tor_ns).join(format!("{daemon}.pid")))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {daemon}: {e}"));
        self.frr.push((daemon, child));
    }

    /// Panics with the daemon's output when zebra or bgpd has exited.
    fn check_frr_alive(&mut self) {
        let dir = self.frr_dir();
        for (name, child) in &mut self.frr {
            if let Ok(Some(status)) = child.try_wait() {
                let out = tail(&dir.join(format!("{name}.out")), 30);
                let log = tail(&dir.join(format!("{name}.log")), 30);
                kill_child(child);
                panic!("FRR {name} exited ({status}):\n{out}{log}");
            }
        }
    }

    /// `vtysh -N TOR -c CMD`; Err with the output when vtysh fails.
    pub fn try_vtysh(&self, cmd: &str) -> Result<String, String> {
        let out = run(Command::new("timeout")
            .args([VTYSH_TIMEOUT_S, "vtysh", "-N", &self.tor_ns, "-c", cmd])
            .env_remove("VTYSH_PAGER"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            // stderr always has the harmless "vtysh.conf is missing" warning.
            Err(format!(
                "vtysh -c {cmd:?} failed ({}): {stdout}{}",
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
        serde_json::from_str(&text).map_err(|e| format!("vtysh -c {cmd:?}: not JSON ({e}): {text}"))
    }

    #[track_caller]
    pub fn vtysh_json(&self, cmd: &str) -> Value {
        self.try_vtysh_json(cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The ToR kernel's route for exactly `prefix` (`ip -n TOR route show PREFIX`), e.g.
    /// "192.0.2.10 nhid 6 via 198.18.1.1 dev pd1n0t proto bgp metric 20"; None when absent.
    pub fn tor_kernel_route(&self, prefix: &str) -> Option<String> {
        let text = run_ok(Command::new("ip").args(["-n", &self.tor_ns, "route", "show", prefix]));
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    /// `show bgp neighbors 198.18.1.1 json`, the neighbour's object.
    pub fn bgp_neighbor(&self) -> Value {
        let mut v = self.vtysh_json(&format!("show bgp neighbors {DB_ADDR} json"));
        v.get_mut(DB_ADDR)
            .map(Value::take)
            .unwrap_or_else(|| panic!("FRR does not know neighbour {DB_ADDR}: {v}"))
    }

    /// FRR's `bgpState` for 198.18.1.1, e.g. "Established", "Active", "Idle".
    pub fn bgp_neighbor_state(&self) -> String {
        self.bgp_neighbor()["bgpState"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// How many times the session reached Established (`connectionsEstablished`).
    pub fn bgp_connections_established(&self) -> u64 {
        self.bgp_neighbor()["connectionsEstablished"]
            .as_u64()
            .unwrap_or(0)
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
        let v = self.vtysh_json(&format!("show ip bgp {prefix} json"));
        let has_paths = v["paths"].as_array().is_some_and(|p| !p.is_empty());
        has_paths.then_some(v)
    }

    /// The best (or only) path FRR holds for `prefix`.
    pub fn bgp_best_path(&self, prefix: &str) -> Option<BgpPath> {
        let v = self.bgp_route_json(prefix)?;
        let paths = v["paths"].as_array()?;
        let p = paths
            .iter()
            .find(|p| p["bestpath"]["overall"].as_bool() == Some(true))
            .unwrap_or(&paths[0]);
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
        Some(BgpPath {
            as_path: p["aspath"]["string"].as_str().unwrap_or("").to_string(),
            segments,
            next_hop: p["nexthops"][0]["ip"].as_str().map(str::to_string),
            origin: p["origin"].as_str().unwrap_or("").to_string(),
            peer: p["peer"]["peerId"].as_str().map(str::to_string),
            valid: p["valid"].as_bool().unwrap_or(false),
            best: p["bestpath"]["overall"].as_bool().unwrap_or(false),
        })
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
                self.tor_kernel_route(prefix)
                    .filter(|r| r.contains("proto bgp"))
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
        let n = self.bgp_neighbor();
        let s = |k: &str| n[k].as_str().map(str::to_string);
        LastNotification {
            reason: s("lastNotificationReason"),
            code_subcode: s("lastErrorCodeSubcode"),
            shutdown_message: s("lastShutdownDescription"),
            reset_due_to: s("lastResetDueTo"),
            notifications_received: n["messageStats"]["notificationsRecv"].as_u64().unwrap_or(0),
        }
    }

    /// bgpd's log line for the last NOTIFICATION received from 198.18.1.1, e.g.
    /// `%NOTIFICATION: received from neighbor 198.18.1.1 6/2 (Cease/Administrative Shutdown)
    /// "message"`.
    pub fn frr_log_notification_received(&self) -> Option<String> {
        let needle = format!("%NOTIFICATION: received from neighbor {DB_ADDR} ");
        self.frr_log()
            .lines()
            .rfind(|l| l.contains(&needle))
            .map(str::to_string)
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
        let log = self.frr_log();
        let lines: Vec<&str> = log.lines().collect();
        let from = format!("{DB_ADDR}(");
        let cease_at = lines
            .iter()
            .rposition(|l| l.contains(&format!("%NOTIFICATION: received from neighbor {DB_ADDR} ")))
            .ok_or_else(|| format!("bgpd logged no NOTIFICATION from {DB_ADDR}:\n{log}"))?;
        let announced_at = lines[..cease_at]
            .iter()
            .rposition(|l| l.contains(&from) && l.contains(&format!("rcvd {prefix} ")))
            .ok_or_else(|| format!("bgpd logged no announcement of {prefix}:\n{log}"))?;
        let withdraw = format!("rcvd UPDATE about {prefix} IPv4 unicast -- withdrawn");
        if lines[announced_at..cease_at]
            .iter()
            .any(|l| l.contains(&from) && l.contains(&withdraw))
        {
            Ok(())
        } else {
            Err(format!(
                "no withdraw of {prefix} between its last announcement and the NOTIFICATION:\n{}",
                lines[announced_at..=cease_at].join("\n")
            ))
        }
    }
}
