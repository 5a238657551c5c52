//! `up`: the lab's namespaces, links and nodes built from the topology, the nodes' main
//! processes started, then the wait for a converged lab (converge.rs). Also the DB hosts' node
//! files set up for a speaker (speaker.rs) before `up`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::lab::{require_root, Lab, State, BINARIES};
use crate::speaker::{self, CheckSettings, Speaker};
use crate::topo::{Bind, Node, Role};
use crate::util::{ip, run, run_ok, sh_quote};

/// The node's own folders below its node_dir (overlay layers, /var/log, /var/lib/mysql).
const NODE_DIRS: &[&str] = &[
    "etc.upper",
    "etc.work",
    "varlib.upper",
    "varlib.work",
    "log",
    "mysql",
];

impl Lab {
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
        let mut state = self.new_state(bin_dir)?;
        self.write_state(&state)?;
        self.mount_ns_dir()?;
        for node in &self.topo.nodes {
            self.create_node(node, bin_dir)
                .with_context(|| format!("node {}", node.name))?;
        }
        self.create_links()?;
        self.configure_nodes()?;
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

    /// The state file as `up` starts: phase "creating", no processes yet.
    fn new_state(&self, bin_dir: &Path) -> Result<State> {
        Ok(State {
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
            service_prefixes: speaker::announced_prefixes(&self.topo)?,
        })
    }

    /// Namespace files must sit on a mount with private propagation (as /run/netns does).
    fn mount_ns_dir(&self) -> Result<()> {
        let ns = self.ns_dir();
        fs::create_dir_all(&ns)?;
        let nss = ns.to_string_lossy().to_string();
        run_ok(Command::new("mount").args(["--bind", &nss, &nss]))?;
        run_ok(Command::new("mount").args(["--make-private", &nss]))?;
        Ok(())
    }

    fn create_links(&self) -> Result<()> {
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
        Ok(())
    }

    /// The topology's sysctls and exec lines, in each node.
    fn configure_nodes(&self) -> Result<()> {
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

    /// The node's network namespace, its folders, and its mount and UTS namespaces set up by
    /// `mount_script`.
    fn create_node(&self, node: &Node, bin_dir: &Path) -> Result<()> {
        let name = &node.name;
        let netns = self.netns(name);
        ip(&["netns", "add", &netns])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        let dir = self.node_dir(name);
        for d in NODE_DIRS {
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
        let script = mount_script(node, &dir, bin_dir);
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

    /// Sets the DB hosts up for `sp` (speaker.rs): rewrites this lab's topology in memory and
    /// writes the generated node files. Refused for a lab that exists, whose generated files
    /// its nodes are using.
    pub fn set_speaker(&mut self, sp: &Speaker) -> Result<CheckSettings> {
        if self.is_present() {
            bail!(
                "lab {} already exists: run `primaryd-lab --lab {} down` first (or use another --lab)",
                self.id,
                self.id
            );
        }
        speaker::apply(&mut self.topo, &speaker::files_dir(&self.dir), sp)
    }

    /// Removes the node files the benchmark generated for this lab id (`{id}-speaker`, see
    /// speaker.rs), which outlive each `down` of a benchmark's runs. True if there were any.
    pub fn remove_generated(&self) -> Result<bool> {
        let files = speaker::files_dir(&self.dir);
        if !files.exists() {
            return Ok(false);
        }
        fs::remove_dir_all(&files).with_context(|| format!("cannot remove {}", files.display()))?;
        Ok(true)
    }
}

/// The shell script that sets a node's mount and UTS namespaces up, run in them: what the node
/// sees instead of the machine's (see lab.rs).
fn mount_script(node: &Node, dir: &Path, bin_dir: &Path) -> String {
    let name = &node.name;
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
    s.join("\n")
}

/// The lines that bind one of the topology's binds at its container path.
fn bind_lines(s: &mut Vec<String>, b: &Bind) {
    let q = |p: &Path| sh_quote(&p.to_string_lossy());
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
}
