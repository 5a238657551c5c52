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

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::topo::{Node, Role, Topology};
use crate::util::{self, ip, run, run_ok, sh_quote, wait_for};

/// The service address app1 writes through, and its prefix: the one the drills' timelines
/// follow. The DB hosts announce more (its IPv6 /128: `Lab::service_prefixes`).
pub const SERVICE_ADDR: &str = "192.0.2.10";
pub const SERVICE_PREFIX: &str = "192.0.2.10/32";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Binaries bound into every node's /usr/local/bin.
pub const BINARIES: &[&str] = &["primaryd", "primaryctl"];
const STATE_FILE: &str = "state.json";
/// Bound for the whole of `up`'s wait for a converged lab.
const UP_TIMEOUT: Duration = Duration::from_secs(120);

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

    fn ns_dir(&self) -> PathBuf {
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

    fn write_state(&self, state: &State) -> Result<()> {
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

    // ---------- up ----------

    pub fn up(&self, bin_dir: &Path) -> Result<()> {
        require_root()?;
        self.require_tools(bin_dir)?;
        if self.is_present() {
            bail!(
                "lab {} already exists ({} or namespaces {}-*): run `primaryd-lab --lab {} down` \
                 first",
                self.id,
                self.dir.display(),
                self.id,
                self.id
            );
        }
        let t0 = Instant::now();
        fs::create_dir_all(&self.dir)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o755))?;
        let mut state = State {
            id: self.id.clone(),
            topology: self.topo.file.clone(),
            bin_dir: bin_dir.to_path_buf(),
            netns: self
                .topo
                .nodes
                .iter()
                .map(|n| self.netns(&n.name))
                .collect(),
            phase: "creating".into(),
            runner_pid: std::process::id(),
            cmds: BTreeMap::new(),
            service_prefixes: crate::speaker::announced_prefixes(&self.topo)?,
        };
        self.write_state(&state)?;

        // Namespace files must sit on a mount with private propagation (as /run/netns does).
        let ns = self.ns_dir();
        fs::create_dir_all(&ns)?;
        let nss = ns.to_string_lossy().to_string();
        run_ok(Command::new("mount").args(["--bind", &nss, &nss]))?;
        run_ok(Command::new("mount").args(["--make-private", &nss]))?;

        for node in &self.topo.nodes {
            self.create_node(node, bin_dir)
                .with_context(|| format!("node {}", node.name))?;
        }
        for l in &self.topo.links {
            let (na, nb) = (self.netns(&l.a.node), self.netns(&l.b.node));
            // Both ends are created inside their namespaces: nothing lands in the machine's.
            ip(&[
                "link", "add", &l.a.iface, "netns", &na, "type", "veth", "peer", "name",
                &l.b.iface, "netns", &nb,
            ])
            .with_context(|| {
                format!(
                    "link {}:{} - {}:{}",
                    l.a.node, l.a.iface, l.b.node, l.b.iface
                )
            })?;
            ip(&["-n", &na, "link", "set", &l.a.iface, "up"])?;
            ip(&["-n", &nb, "link", "set", &l.b.iface, "up"])?;
        }
        for node in &self.topo.nodes {
            for (k, v) in &node.sysctls {
                self.node_run(&node.name, &["sysctl", "-qw", &format!("{k}={v}")])
                    .with_context(|| format!("node {}: sysctl {k}={v}", node.name))?;
            }
            for line in &node.exec {
                let argv: Vec<&str> = line.split_whitespace().collect();
                self.node_run(&node.name, &argv)
                    .with_context(|| format!("node {}: exec {line:?}", node.name))?;
            }
        }
        eprintln!(
            "lab {}: {} nodes and {} links built in {:.1?}; starting the nodes",
            self.id,
            self.topo.nodes.len(),
            self.topo.links.len(),
            t0.elapsed()
        );
        for node in &self.topo.nodes {
            if let Some(cmd) = &node.cmd {
                let pid = self.start_cmd(node, cmd)?;
                state.cmds.insert(node.name.clone(), pid);
            }
        }
        self.write_state(&state)?;
        self.wait_converged(t0, &state.cmds)?;
        state.phase = "up".into();
        self.write_state(&state)?;
        eprintln!("lab {}: up in {:.1?}", self.id, t0.elapsed());
        Ok(())
    }

    fn require_tools(&self, bin_dir: &Path) -> Result<()> {
        let mut need = vec!["/usr/bin/nsenter", "/usr/bin/unshare"];
        let roles: Vec<Role> = self.topo.nodes.iter().map(|n| n.role).collect();
        if roles.contains(&Role::Frr) {
            need.extend([
                "/usr/lib/frr/zebra",
                "/usr/lib/frr/bgpd",
                "/usr/lib/frr/staticd",
                "/usr/bin/vtysh",
            ]);
        }
        if roles.contains(&Role::Bird) {
            need.extend(["/usr/sbin/bird", "/usr/sbin/birdc"]);
        }
        if roles.contains(&Role::Db) {
            need.extend([
                "/usr/sbin/mariadbd",
                "/usr/bin/mariadb",
                "/usr/bin/mariadb-install-db",
            ]);
        }
        let missing: Vec<&str> = need
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            bail!(
                "missing {}: install the lab's packages (apt-get install frr bird2 \
                 mariadb-server mariadb-client iproute2 util-linux), or run lab/demo.sh",
                missing.join(", ")
            );
        }
        for b in BINARIES {
            if !bin_dir.join(b).is_file() {
                bail!(
                    "{} is missing: build it (cargo build --workspace) or pass --bin-dir",
                    bin_dir.join(b).display()
                );
            }
        }
        Ok(())
    }

    fn create_node(&self, node: &Node, bin_dir: &Path) -> Result<()> {
        let name = &node.name;
        let netns = self.netns(name);
        ip(&["netns", "add", &netns])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        let dir = self.node_dir(name);
        for d in [
            "etc.upper",
            "etc.work",
            "varlib.upper",
            "varlib.work",
            "log",
            "mysql",
        ] {
            fs::create_dir_all(dir.join(d))?;
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        fs::set_permissions(dir.join("log"), fs::Permissions::from_mode(0o755))?;
        let (mnt, uts) = (
            self.ns_dir().join(format!("{name}.mnt")),
            self.ns_dir().join(format!("{name}.uts")),
        );
        fs::write(&mnt, "")?;
        fs::write(&uts, "")?;

        let q = |p: &Path| sh_quote(&p.to_string_lossy());
        let mut s = vec![
            "set -e".to_string(),
            format!("hostname {}", sh_quote(name)),
            // /sys of the node's network namespace, as `ip netns exec` would show it.
            "umount -l /sys && mount -t sysfs lab-sys /sys".into(),
            format!(
                "mount -t overlay lab-etc -o lowerdir=/etc,upperdir={},workdir={} /etc",
                dir.join("etc.upper").display(),
                dir.join("etc.work").display()
            ),
            // /var/lib too (primaryd's [control] state_dir /var/lib/primaryd, MariaDB's data).
            format!(
                "mount -t overlay lab-varlib -o lowerdir=/var/lib,upperdir={},workdir={} /var/lib",
                dir.join("varlib.upper").display(),
                dir.join("varlib.work").display()
            ),
            format!("mount --bind {} /var/log", q(&dir.join("log"))),
            "mount -t tmpfs -o mode=0755 lab-bin /usr/local/bin".into(),
            "mount -t tmpfs -o mode=0755 lab-sbin /usr/local/sbin".into(),
        ];
        if node.role == Role::Db {
            s.push("mkdir -p /var/lib/mysql".into());
            s.push(format!("chown mysql:mysql {}", q(&dir.join("mysql"))));
            s.push(format!(
                "mount --bind {} /var/lib/mysql",
                q(&dir.join("mysql"))
            ));
        }
        for b in BINARIES {
            s.push(format!(
                ": > /usr/local/bin/{b} && mount --bind {} /usr/local/bin/{b}",
                q(&bin_dir.join(b))
            ));
        }
        // Binds whose target is below /run are made after the tmpfs there (below).
        let (run_binds, other_binds): (Vec<_>, Vec<_>) = node
            .binds
            .iter()
            .partition(|b| b.target.starts_with("/run"));
        let bind_lines = |s: &mut Vec<String>, b: &crate::topo::Bind| {
            let t = q(&b.target);
            if b.source.is_dir() {
                s.push(format!("mkdir -p {t}"));
            } else {
                s.push(format!(
                    "mkdir -p \"$(dirname {t})\"; [ -e {t} ] || : > {t}"
                ));
            }
            s.push(format!("mount --bind {} {t}", q(&b.source)));
            if b.read_only {
                s.push(format!("mount -o remount,bind,ro {t}"));
            }
        };
        for b in other_binds {
            bind_lines(&mut s, b);
        }
        // The node's name resolves, as in a container.
        s.push(format!("echo '127.0.0.1 {name}' >> /etc/hosts"));
        // Last, as bind sources may lie below them: a private /tmp (MariaDB's temporary
        // tables) and /run (which hides the machine's, /run/netns too, no longer needed).
        s.push("mount -t tmpfs -o mode=1777 lab-tmp /tmp".into());
        s.push("mount -t tmpfs -o mode=0755 lab-run /run".into());
        s.push("mkdir -p /run/lock".into());
        for b in run_binds {
            bind_lines(&mut s, b);
        }
        let script = s.join("\n");
        let out = run(Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .arg("unshare")
            .arg(format!("--mount={}", mnt.display()))
            .arg(format!("--uts={}", uts.display()))
            .args(["--propagation", "slave", "sh", "-c", &script]))?;
        if !out.status.success() {
            bail!(
                "setting up the node's mounts failed: {}\n{script}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    fn start_cmd(&self, node: &Node, cmd: &str) -> Result<i32> {
        let log = fs::File::create(self.console_log(&node.name))?;
        let argv: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
        let child = self
            .node_command(&node.name, &argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own session: a Ctrl-C at the runner's terminal is not for the lab's daemons.
            .process_group(0)
            .spawn()
            .with_context(|| format!("node {}: cannot start {cmd:?}", node.name))?;
        Ok(child.id() as i32)
    }

    /// Waits until every DB answers and every replica replicates, every BGP session is up and
    /// every router's route to the service leads to the primary.
    fn wait_converged(&self, t0: Instant, cmds: &BTreeMap<String, i32>) -> Result<()> {
        let deadline = t0 + UP_TIMEOUT;
        // A node whose main process exited will not converge: stop waiting at once.
        let dead = || {
            cmds.iter()
                .find(|(_, pid)| !util::alive(**pid))
                .map(|(n, _)| n.clone())
        };
        let left = || {
            if dead().is_some() {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            }
        };
        let fail = |what: &str| -> anyhow::Error {
            let mut msg = match dead() {
                Some(n) => format!(
                    "lab {}: the main process of {n} exited (waiting until {what})\n",
                    self.id
                ),
                None => format!("lab {}: timed out waiting until {what}\n", self.id),
            };
            for n in &self.topo.nodes {
                msg.push_str(&format!(
                    "----- {} console (last lines) -----\n{}\n",
                    n.name,
                    util::tail(&self.console_log(&n.name), 15)
                ));
            }
            anyhow::anyhow!(msg)
        };
        let dbs: Vec<&Node> = self.topo.with_role(Role::Db).collect();
        for db in &dbs {
            wait_for(left(), Duration::from_millis(200), || {
                self.db_answers(&db.name).then_some(())
            })
            .ok_or_else(|| fail(&format!("{} answers SQL", db.name)))?;
        }
        let primaries: Vec<&str> = dbs
            .iter()
            .filter(|d| !d.env.contains_key("LAB_SOURCE"))
            .map(|d| d.name.as_str())
            .collect();
        for db in dbs.iter().filter(|d| d.env.contains_key("LAB_SOURCE")) {
            wait_for(left(), Duration::from_millis(200), || {
                let r = crate::sql::replication(self, &db.name).ok()?;
                (r.len() == 1 && r[0].io_running == "Yes" && r[0].sql_running == "Yes")
                    .then_some(())
            })
            .ok_or_else(|| {
                fail(&format!(
                    "{} replicates (IO and SQL threads running)",
                    db.name
                ))
            })?;
        }
        for r in self.topo.nodes.iter().filter(|n| n.role.is_router()) {
            wait_for(left(), Duration::from_millis(200), || {
                let s = self.bgp_sessions(&r.name).ok()?;
                (!s.is_empty() && s.iter().all(|(_, st)| st == "Established")).then_some(())
            })
            .ok_or_else(|| fail(&format!("every BGP session of {} is Established", r.name)))?;
        }
        if crate::hostloss::bfd_expected(self) {
            for r in self.topo.nodes.iter().filter(|n| n.role.is_router()) {
                wait_for(left(), Duration::from_millis(200), || {
                    crate::hostloss::router_bfd_up(self, &r.name).then_some(())
                })
                .ok_or_else(|| fail(&format!("every BFD session of {} is up", r.name)))?;
            }
        }
        if let [p] = primaries.as_slice() {
            let prefixes = self.service_prefixes();
            for r in self.topo.nodes.iter().filter(|n| n.role.is_router()) {
                for prefix in &prefixes {
                    wait_for(left(), Duration::from_millis(100), || {
                        (self.route_leads_to(&r.name, prefix).as_deref() == Some(*p)).then_some(())
                    })
                    .ok_or_else(|| fail(&format!("{}'s route to {prefix} leads to {p}", r.name)))?;
                }
            }
        }
        Ok(())
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

    // ---------- routes and sessions ----------

    /// The prefixes of the service the DB hosts announce: as `up` recorded them for a lab
    /// that is up, else as the topology's node files set them up.
    pub fn service_prefixes(&self) -> Vec<String> {
        self.state()
            .map(|s| s.service_prefixes)
            .filter(|p| !p.is_empty())
            .or_else(|| crate::speaker::announced_prefixes(&self.topo).ok())
            .unwrap_or_else(|| vec![SERVICE_PREFIX.to_string()])
    }

    /// The kernel's route to a service prefix at a router: (next node, the route line).
    pub fn service_route(&self, router: &str, prefix: &str) -> Option<(String, String)> {
        // `ip route show` lists IPv4 unless told otherwise, even for an IPv6 prefix.
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        let out = ip(&["-n", &self.netns(router), family, "route", "show", prefix]).ok()?;
        let line = out.lines().next()?.trim().to_string();
        let next = crate::routes::next_node(&self.topo, router, &line)?;
        Some((next, line))
    }

    /// Follows the routers' kernel routes to `prefix` from `router` to the host that gets the
    /// packets.
    pub fn route_leads_to(&self, router: &str, prefix: &str) -> Option<String> {
        let mut at = router.to_string();
        for _ in 0..8 {
            let (next, _) = self.service_route(&at, prefix)?;
            match self.topo.node(&next)?.role {
                Role::Frr | Role::Bird => at = next,
                _ => return Some(next),
            }
        }
        None
    }

    /// (peer, state) of every BGP session of a router.
    pub fn bgp_sessions(&self, router: &str) -> Result<Vec<(String, String)>> {
        match self.topo.node(router).map(|n| n.role) {
            Some(Role::Frr) => {
                let out = self.node_run(
                    router,
                    &["timeout", "5", "vtysh", "-c", "show bgp summary json"],
                )?;
                let v: Value = serde_json::from_str(&out)?;
                let peers = v["ipv4Unicast"]["peers"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                Ok(peers
                    .into_iter()
                    .map(|(p, o)| (p, o["state"].as_str().unwrap_or("?").to_string()))
                    .collect())
            }
            Some(Role::Bird) => {
                let out = self.node_run(router, &["timeout", "5", "birdc", "show", "protocols"])?;
                Ok(out
                    .lines()
                    .filter(|l| l.split_whitespace().nth(1) == Some("BGP"))
                    .map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        let state = if f.get(3) == Some(&"up") {
                            f.get(5).unwrap_or(&"up").to_string()
                        } else {
                            f.get(5..).map(|x| x.join(" ")).unwrap_or_default()
                        };
                        (f[0].to_string(), state)
                    })
                    .collect())
            }
            _ => bail!("{router} is not a router"),
        }
    }

    // ---------- down ----------

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

    /// Sets the DB hosts up for `sp` (speaker.rs): rewrites this lab's topology in memory and
    /// writes the generated node files. Refused for a lab that exists, whose generated files
    /// its nodes are using.
    pub fn set_speaker(
        &mut self,
        sp: &crate::speaker::Speaker,
    ) -> Result<crate::speaker::CheckSettings> {
        if self.is_present() {
            bail!(
                "lab {} already exists: run `primaryd-lab --lab {} down` first (or use another --lab)",
                self.id,
                self.id
            );
        }
        crate::speaker::apply(&mut self.topo, &crate::speaker::files_dir(&self.dir), sp)
    }

    /// Removes the node files the benchmark generated for this lab id (`{id}-speaker`, see
    /// speaker.rs), which outlive each `down` of a benchmark's runs. True if there were any.
    pub fn remove_generated(&self) -> Result<bool> {
        let files = crate::speaker::files_dir(&self.dir);
        if !files.exists() {
            return Ok(false);
        }
        fs::remove_dir_all(&files).with_context(|| format!("cannot remove {}", files.display()))?;
        Ok(true)
    }

    // ---------- status ----------

    pub fn status(&self) -> Result<Value> {
        let present = util::netns_list();
        let prefixes = self.service_prefixes();
        let mut nodes = Vec::new();
        for n in &self.topo.nodes {
            let ns = self.netns(&n.name);
            let mut o = serde_json::Map::new();
            o.insert("node".into(), n.name.clone().into());
            o.insert("role".into(), serde_json::to_value(n.role)?);
            let up = present.contains(&ns);
            o.insert(
                "netns".into(),
                if up { ns.clone().into() } else { Value::Null },
            );
            if up {
                let mut procs: Vec<String> =
                    util::netns_pids(&ns).into_iter().map(util::comm).collect();
                procs.sort();
                procs.dedup();
                o.insert("processes".into(), procs.into());
                match n.role {
                    Role::Frr | Role::Bird => {
                        let s: BTreeMap<String, String> = self
                            .bgp_sessions(&n.name)
                            .unwrap_or_default()
                            .into_iter()
                            .collect();
                        o.insert("bgp".into(), serde_json::to_value(s)?);
                        let routes: serde_json::Map<String, Value> = prefixes
                            .iter()
                            .map(|p| {
                                (
                                    p.clone(),
                                    self.service_route(&n.name, p).map(|(_, l)| l).into(),
                                )
                            })
                            .collect();
                        o.insert("routes".into(), routes.into());
                    }
                    Role::Db => {
                        if let Ok(v) = crate::sql::db_state(self, &n.name) {
                            o.insert("db".into(), serde_json::to_value(v)?);
                        }
                    }
                    Role::App => {}
                }
            }
            nodes.push(Value::Object(o));
        }
        Ok(serde_json::json!({
            "lab": self.id,
            "topology": self.topo.name,
            "file": self.topo.file,
            "dir": self.dir,
            "phase": self.state().map(|s| s.phase),
            "nodes": nodes,
        }))
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
