//! BIRD 2.0 as a ToR: a config builder (rendered into docs/tor-examples/ as well), one
//! instance per namespace, `birdc`, and a reader of `show route all`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use super::{kernel_route, kill_child, run, tail, wait_until, STEP};

/// bird's control socket answers at once; bound it so a wedged daemon fails the test.
const BIRDC_TIMEOUT_S: &str = "10";

/// A ToR with one BGP session to the DB host, importing what primaryd announces into its
/// tables and exporting those to the kernel (as a router that forwards to the host would).
#[derive(Debug, Clone)]
pub struct BirdConfig {
    /// First lines, as `#` comments.
    pub comment: Vec<String>,
    pub router_id: String,
    /// Name of the `protocol bgp`, e.g. "db1".
    pub protocol: String,
    pub local_address: String,
    pub local_asn: u32,
    pub neighbor: String,
    pub neighbor_asn: u32,
    /// Channels: `ipv4 { … }`, `ipv6 { … }`.
    pub ipv4: bool,
    pub ipv6: bool,
    /// A `protocol bfd` on the link and `bfd on` in the session.
    pub bfd: Option<BirdBfd>,
    /// More statements of `protocol bgp`, e.g. `error wait time 1, 5`.
    pub options: Vec<String>,
}

/// BIRD's BFD on the ToR's link to the DB host.
#[derive(Debug, Clone)]
pub struct BirdBfd {
    /// The ToR's interface towards the DB host.
    pub interface: String,
    /// `interval` (both min rx and min tx), ms.
    pub interval_ms: u32,
    pub multiplier: u32,
    /// (`keyed sha1` or `meticulous keyed sha1`, key id, password).
    pub auth: Option<(String, u8, String)>,
}

impl BirdConfig {
    pub fn render(&self) -> String {
        let mut s = String::new();
        for c in &self.comment {
            let _ = writeln!(s, "# {c}");
        }
        let _ = writeln!(s, "router id {};", self.router_id);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "# Interfaces, so BIRD knows which next hops are on a link."
        );
        let _ = writeln!(s, "protocol device {{");
        let _ = writeln!(s, "}}");
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "# Learned routes into the kernel, to forward to the DB host."
        );
        for family in ["ipv4", "ipv6"] {
            let _ = writeln!(s, "protocol kernel {{");
            let _ = writeln!(s, "  {family} {{ export all; }};");
            let _ = writeln!(s, "}}");
        }
        let _ = writeln!(s);
        if let Some(b) = &self.bfd {
            let _ = writeln!(
                s,
                "# BFD towards the DB host: {} ms x {}, the session's `bfd on` uses it.",
                b.interval_ms, b.multiplier
            );
            let _ = writeln!(s, "protocol bfd {{");
            let _ = writeln!(s, "  interface \"{}\" {{", b.interface);
            let _ = writeln!(s, "    interval {} ms;", b.interval_ms);
            let _ = writeln!(s, "    multiplier {};", b.multiplier);
            if let Some((kind, id, password)) = &b.auth {
                let _ = writeln!(s, "    authentication {kind};");
                let _ = writeln!(s, "    password \"{password}\" {{ id {id}; }};");
            }
            let _ = writeln!(s, "  }};");
            let _ = writeln!(s, "}}");
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "protocol bgp {} {{", self.protocol);
        let _ = writeln!(s, "  description \"primaryd\";");
        let _ = writeln!(s, "  local {} as {};", self.local_address, self.local_asn);
        let _ = writeln!(s, "  neighbor {} as {};", self.neighbor, self.neighbor_asn);
        if self.bfd.is_some() {
            let _ = writeln!(s, "  bfd on;");
        }
        for o in &self.options {
            let _ = writeln!(s, "  {o};");
        }
        for (family, on) in [("ipv4", self.ipv4), ("ipv6", self.ipv6)] {
            if on {
                // A ToR would filter to the service range here (e.g. 192.0.2.0/24{32,32}).
                let _ = writeln!(s, "  {family} {{ import all; export none; }};");
            }
        }
        let _ = writeln!(s, "}}");
        s
    }
}

/// One route of `birdc show route all`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BirdRoute {
    pub prefix: String,
    /// The protocol it came from, e.g. "db1".
    pub protocol: String,
    /// Marked `*` (selected).
    pub primary: bool,
    /// `via ADDR on IF` → ADDR.
    pub via: Option<String>,
    /// Attribute lines, e.g. "BGP.as_path" → "4200000001 4200000001".
    pub attrs: BTreeMap<String, String>,
}

impl BirdRoute {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
}

/// Parses `show route all` (BIRD 2.0): a route starts with a line at column 0 (prefix, then
/// `unicast [PROTO …] * …`), alternative routes of the same prefix with an indented
/// `unicast [` line, and `\tNAME: VALUE` / `\tvia …` lines belong to the route above.
pub fn parse_show_route_all(text: &str) -> Vec<BirdRoute> {
    let mut routes: Vec<BirdRoute> = Vec::new();
    let mut prefix = String::new();
    for line in text.lines() {
        if line.starts_with("BIRD ") || line.starts_with("Table ") || line.trim().is_empty() {
            continue;
        }
        let trimmed = line.trim();
        let starts_route = !line.starts_with(char::is_whitespace)
            || (trimmed.starts_with("unicast [") && !line.starts_with('\t'));
        if starts_route {
            let mut words = trimmed.split_whitespace();
            if !line.starts_with(char::is_whitespace) {
                prefix = words.next().unwrap_or("").to_string();
            }
            let rest: Vec<&str> = words.collect();
            let protocol = rest
                .iter()
                .find_map(|w| w.strip_prefix('['))
                .unwrap_or("")
                .to_string();
            routes.push(BirdRoute {
                prefix: prefix.clone(),
                protocol,
                primary: rest.contains(&"*"),
                ..BirdRoute::default()
            });
        } else if let Some(r) = routes.last_mut() {
            if let Some(via) = trimmed.strip_prefix("via ") {
                r.via = via.split_whitespace().next().map(str::to_string);
            } else if let Some((k, v)) = trimmed.split_once(": ") {
                r.attrs.insert(k.to_string(), v.trim().to_string());
            }
        }
    }
    routes
}

pub struct Bird {
    pub name: String,
    pub ns: String,
    dir: PathBuf,
    ctl: PathBuf,
    child: Mutex<Child>,
}

impl Bird {
    /// Writes the config (the lab's logging first) and starts bird in the foreground under
    /// `ip netns exec` (so the child is bird itself); returns once birdc answers.
    pub(super) fn start(name: &str, ns: &str, dir: PathBuf, conf: &str) -> Bird {
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("bird.log");
        let conf = format!(
            "log \"{}\" all;\ndebug protocols {{ states, routes, events }};\n{conf}",
            log.display()
        );
        let conf_path = dir.join("bird.conf");
        fs::write(&conf_path, conf).unwrap();
        let ctl = dir.join("bird.ctl");
        let out = fs::File::create(dir.join("bird.out")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "bird", "-f", "-c"])
            .arg(&conf_path)
            .arg("-s")
            .arg(&ctl)
            .arg("-P")
            .arg(dir.join("bird.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn bird: {e}"));
        let bird = Bird {
            name: name.to_string(),
            ns: ns.to_string(),
            dir,
            ctl,
            child: Mutex::new(child),
        };
        wait_until(STEP, &format!("{name}: birdc answers"), || {
            bird.check_alive();
            bird.try_birdc("show status").is_ok()
        });
        bird
    }

    #[track_caller]
    pub fn check_alive(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{}: bird exited ({status}):\n{}{}",
                self.name,
                tail(&self.dir.join("bird.out"), 30),
                tail(&self.dir.join("bird.log"), 30)
            );
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `birdc -s CTL CMD…`; Err with the output when it fails.
    pub fn try_birdc(&self, cmd: &str) -> Result<String, String> {
        let out = run(Command::new("timeout")
            .args([BIRDC_TIMEOUT_S, "birdc", "-s"])
            .arg(&self.ctl)
            .args(cmd.split_whitespace()));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{}: birdc {cmd} failed ({}): {stdout}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    #[track_caller]
    pub fn birdc(&self, cmd: &str) -> String {
        self.try_birdc(cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The `BGP state:` of `protocol bgp NAME`, e.g. "Established", "Active", "Connect".
    pub fn bgp_state(&self, protocol: &str) -> String {
        self.protocol_field(protocol, "BGP state")
            .unwrap_or_default()
    }

    /// A `KEY: value` line of `show protocols all NAME` (first match), e.g. "Last error".
    pub fn protocol_field(&self, protocol: &str, key: &str) -> Option<String> {
        let text = self.birdc(&format!("show protocols all {protocol}"));
        text.lines().find_map(|l| {
            let (k, v) = l.trim().split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    }

    /// The lines of the `Neighbor capabilities` block of `show protocols all NAME`, trimmed,
    /// e.g. ["Multiprotocol", "AF announced: ipv4 ipv6", "Route refresh", "4-octet AS numbers"].
    pub fn neighbor_capabilities(&self, protocol: &str) -> Vec<String> {
        let text = self.birdc(&format!("show protocols all {protocol}"));
        let indent = |l: &str| l.len() - l.trim_start().len();
        let mut lines = text
            .lines()
            .skip_while(|l| l.trim() != "Neighbor capabilities");
        let Some(head) = lines.next() else {
            return Vec::new();
        };
        let depth = indent(head);
        lines
            .take_while(|l| indent(l) > depth)
            .map(|l| l.trim().to_string())
            .collect()
    }

    /// Every route of `show route all` (both tables).
    pub fn routes(&self) -> Vec<BirdRoute> {
        parse_show_route_all(&self.birdc("show route all"))
    }

    /// The selected route for `prefix` (e.g. "192.0.2.10/32"), if BIRD has one.
    pub fn route(&self, prefix: &str) -> Option<BirdRoute> {
        let routes: Vec<BirdRoute> = self
            .routes()
            .into_iter()
            .filter(|r| r.prefix == prefix)
            .collect();
        routes
            .iter()
            .find(|r| r.primary)
            .or(routes.first())
            .cloned()
    }

    pub fn kernel_route(&self, prefix: &str) -> Option<String> {
        kernel_route(&self.ns, prefix)
    }

    /// The kernel route for `prefix` if BIRD installed it (`proto bird`).
    pub fn bird_kernel_route(&self, prefix: &str) -> Option<String> {
        self.kernel_route(prefix)
            .filter(|r| r.contains("proto bird"))
    }

    /// The state of BIRD's BFD session with `peer` (`show bfd sessions`), e.g. "Up", "Down",
    /// "Init"; None when it has none.
    pub fn bfd_state(&self, peer: &str) -> Option<String> {
        let text = self.try_birdc("show bfd sessions").ok()?;
        text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(peer)).then(|| w.nth(1).map(str::to_string))?
        })
    }

    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for cmd in ["show protocols all", "show route all", "show bfd sessions"] {
            let _ = writeln!(out, "----- {}: birdc {cmd} -----", self.name);
            out.push_str(&self.try_birdc(cmd).unwrap_or_else(|e| e));
        }
        let _ = writeln!(out, "----- {}: bird log -----", self.name);
        out.push_str(&tail(&self.dir.join("bird.log"), 100));
        out
    }

    pub(super) fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        kill_child(&mut child);
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.stop();
    }
}
