//! GoBGP 3 as a route collector (or a stand-in speaker): a TOML config builder, one gobgpd per
//! namespace, and readers of `gobgp neighbor` and `gobgp global rib … -j`. GoBGP shows the
//! path attributes as received (numbered by type), which makes it the strictest witness of
//! what primaryd sends.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;

use super::{kill_child, run, tail, wait_until, STEP};

/// gobgpd's gRPC API inside its namespace (each instance has its own loopback).
const API: &str = "127.0.0.1:50051";
const GOBGP_TIMEOUT_S: &str = "10";

#[derive(Debug, Clone)]
pub struct GobgpNeighbor {
    pub address: String,
    pub peer_asn: u32,
    pub ipv4: bool,
    pub ipv6: bool,
}

#[derive(Debug, Clone)]
pub struct GobgpConfig {
    /// First lines, as `#` comments.
    pub comment: Vec<String>,
    pub asn: u32,
    pub router_id: String,
    pub neighbors: Vec<GobgpNeighbor>,
}

impl GobgpConfig {
    pub fn render(&self) -> String {
        let mut s = String::new();
        for c in &self.comment {
            let _ = writeln!(s, "# {c}");
        }
        let _ = writeln!(s, "[global.config]");
        let _ = writeln!(s, "  as = {}", self.asn);
        let _ = writeln!(s, "  router-id = \"{}\"", self.router_id);
        for n in &self.neighbors {
            let _ = writeln!(s);
            let _ = writeln!(s, "[[neighbors]]");
            let _ = writeln!(s, "  [neighbors.config]");
            let _ = writeln!(s, "    neighbor-address = \"{}\"", n.address);
            let _ = writeln!(s, "    peer-as = {}", n.peer_asn);
            for (family, on) in [("ipv4-unicast", n.ipv4), ("ipv6-unicast", n.ipv6)] {
                if on {
                    let _ = writeln!(s, "  [[neighbors.afi-safis]]");
                    let _ = writeln!(s, "    [neighbors.afi-safis.config]");
                    let _ = writeln!(s, "      afi-safi-name = \"{family}\"");
                }
            }
        }
        s
    }
}

/// One path of `gobgp global rib -a ipv4|ipv6 PREFIX -j`.
#[derive(Debug, Clone)]
pub struct GobgpPath {
    pub prefix: String,
    /// `neighbor-ip`: who sent it.
    pub neighbor: Option<String>,
    pub best: bool,
    /// `attrs[]` as GoBGP decodes them, each with its `type` (1 ORIGIN, 2 AS_PATH, 3
    /// NEXT_HOP, 4 MED, 5 LOCAL_PREF, 8 COMMUNITIES, 14 MP_REACH_NLRI, 32 LARGE_COMMUNITY).
    pub attrs: Vec<Value>,
}

impl GobgpPath {
    /// Attribute type codes in the order GoBGP lists them.
    pub fn attr_types(&self) -> Vec<u64> {
        let mut t: Vec<u64> = self
            .attrs
            .iter()
            .filter_map(|a| a["type"].as_u64())
            .collect();
        t.sort_unstable();
        t
    }

    pub fn attr(&self, code: u64) -> Option<&Value> {
        self.attrs.iter().find(|a| a["type"].as_u64() == Some(code))
    }

    /// ORIGIN: 0 IGP, 1 EGP, 2 INCOMPLETE.
    pub fn origin(&self) -> Option<u64> {
        self.attr(1)?["value"].as_u64()
    }

    /// AS_PATH segments as (segment_type, ASNs); type 2 is AS_SEQUENCE, 1 AS_SET.
    pub fn as_path(&self) -> Vec<(u64, Vec<u64>)> {
        self.attr(2)
            .and_then(|a| a["as_paths"].as_array())
            .map(|segs| {
                segs.iter()
                    .map(|s| {
                        let asns = s["asns"]
                            .as_array()
                            .map(|l| l.iter().filter_map(Value::as_u64).collect())
                            .unwrap_or_default();
                        (s["segment_type"].as_u64().unwrap_or(0), asns)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// NEXT_HOP (IPv4 routes) or the next hop of MP_REACH_NLRI (IPv6 routes).
    pub fn next_hop(&self) -> Option<String> {
        self.attr(3)
            .or_else(|| self.attr(14))
            .and_then(|a| a["nexthop"].as_str())
            .map(str::to_string)
    }

    pub fn med(&self) -> Option<u64> {
        self.attr(4)?["metric"].as_u64()
    }

    pub fn local_pref(&self) -> Option<u64> {
        self.attr(5)?["value"].as_u64()
    }

    /// COMMUNITIES as "ASN:VALUE".
    pub fn communities(&self) -> Vec<String> {
        self.attr(8)
            .and_then(|a| a["communities"].as_array())
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_u64)
                    .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// LARGE_COMMUNITY as "GLOBAL:LOCAL1:LOCAL2".
    pub fn large_communities(&self) -> Vec<String> {
        self.attr(32)
            .and_then(|a| a["value"].as_array())
            .map(|l| {
                l.iter()
                    .map(|c| {
                        format!(
                            "{}:{}:{}",
                            c["ASN"].as_u64().unwrap_or(0),
                            c["LocalData1"].as_u64().unwrap_or(0),
                            c["LocalData2"].as_u64().unwrap_or(0)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub struct Gobgp {
    pub name: String,
    pub ns: String,
    dir: PathBuf,
    child: Mutex<Child>,
}

impl Gobgp {
    /// Starts gobgpd in the foreground under `ip netns exec` (the child is gobgpd itself);
    /// returns once its API answers.
    pub(super) fn start(name: &str, ns: &str, dir: PathBuf, conf: &str) -> Gobgp {
        fs::create_dir_all(&dir).unwrap();
        let conf_path = dir.join("gobgpd.toml");
        fs::write(&conf_path, conf).unwrap();
        let out = fs::File::create(dir.join("gobgpd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "gobgpd", "-t", "toml", "-f"])
            .arg(&conf_path)
            .arg(format!("--api-hosts={API}"))
            // Debug level logs every path at every API call: too much to read.
            .args(["--pprof-disable", "--log-plain", "--log-level=info"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn gobgpd: {e}"));
        let g = Gobgp {
            name: name.to_string(),
            ns: ns.to_string(),
            dir,
            child: Mutex::new(child),
        };
        wait_until(STEP, &format!("{name}: gobgpd's API answers"), || {
            g.check_alive();
            g.try_gobgp(&["global"]).is_ok()
        });
        g
    }

    #[track_caller]
    pub fn check_alive(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{}: gobgpd exited ({status}):\n{}",
                self.name,
                tail(&self.dir.join("gobgpd.log"), 40)
            );
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `gobgp ARGS…` against this instance; Err with the output when it fails.
    pub fn try_gobgp(&self, args: &[&str]) -> Result<String, String> {
        let (host, port) = API.split_once(':').unwrap();
        let out = run(Command::new("ip")
            .args(["netns", "exec", &self.ns, "timeout", GOBGP_TIMEOUT_S])
            .args(["gobgp", "-u", host, "-p", port])
            .args(args));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{}: gobgp {args:?} failed ({}): {stdout}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    #[track_caller]
    pub fn gobgp(&self, args: &[&str]) -> String {
        self.try_gobgp(args).unwrap_or_else(|e| panic!("{e}"))
    }

    #[track_caller]
    pub fn gobgp_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("-j");
        let text = self.gobgp(&a);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: gobgp {a:?}: not JSON ({e}): {text}", self.name))
    }

    /// `gobgp neighbor ADDR -j`.
    pub fn neighbor(&self, addr: &str) -> Value {
        self.gobgp_json(&["neighbor", addr])
    }

    /// The session state by name: "idle", "connect", "active", "opensent", "openconfirm",
    /// "established" (GoBGP's JSON has the API enum number).
    pub fn session_state(&self, addr: &str) -> String {
        let n = self.neighbor(addr)["state"]["session_state"].clone();
        let names = [
            "unknown",
            "idle",
            "connect",
            "active",
            "opensent",
            "openconfirm",
            "established",
        ];
        match n.as_u64() {
            Some(i) => names.get(i as usize).unwrap_or(&"unknown").to_string(),
            None => n.as_str().unwrap_or("").to_lowercase(),
        }
    }

    /// Paths of the global RIB for exactly `prefix` (family from the prefix).
    pub fn paths(&self, prefix: &str) -> Vec<GobgpPath> {
        let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let v = self.gobgp_json(&["global", "rib", "-a", afi]);
        v.get(prefix)
            .and_then(Value::as_array)
            .map(|paths| {
                paths
                    .iter()
                    .map(|p| GobgpPath {
                        prefix: prefix.to_string(),
                        neighbor: p["neighbor-ip"].as_str().map(str::to_string),
                        best: p["best"].as_bool().unwrap_or(false),
                        attrs: p["attrs"].as_array().cloned().unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn path(&self, prefix: &str) -> Option<GobgpPath> {
        let paths = self.paths(prefix);
        paths.iter().find(|p| p.best).or(paths.first()).cloned()
    }

    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for args in [
            &["neighbor"][..],
            &["global", "rib", "-a", "ipv4"],
            &["global", "rib", "-a", "ipv6"],
        ] {
            let _ = writeln!(out, "----- {}: gobgp {} -----", self.name, args.join(" "));
            out.push_str(&self.try_gobgp(args).unwrap_or_else(|e| e));
        }
        let _ = writeln!(out, "----- {}: gobgpd log -----", self.name);
        out.push_str(&tail(&self.dir.join("gobgpd.log"), 60));
        out
    }

    pub(super) fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        kill_child(&mut child);
    }
}

impl Drop for Gobgp {
    fn drop(&mut self) {
        self.stop();
    }
}
