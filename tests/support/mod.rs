//! End-to-end lab: FRR as the top-of-rack router in one network namespace, MariaDB and
//! primaryd in another, joined by a veth /31. Every test builds its own [`Lab`]; `Drop`
//! removes everything it made (also when the test panics, after printing the logs), and the
//! first lab of a process removes what SIGKILLed earlier runs left behind.
//!
//! Addresses: only 198.18.0.0/15 (links, router ids), 192.0.2.0/24 (the service) and
//! 127.0.0.1 inside the DB namespace (replication between the two MariaDB instances).

#![allow(dead_code, unused_imports)] // each test file uses its own subset of the harness

mod frr;
mod mariadb;
mod primaryd;

pub use frr::{BgpPath, LastNotification, QUIET_INTERVALS, QUIET_MIN_CHECKS};
pub use mariadb::{MariaDb, MariaDbOpts};
pub use primaryd::{Primaryd, PrimarydOpts};

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

pub const TOR_ASN: u32 = 65001;
pub const TOR_ROUTER_ID: &str = "198.19.0.1";
pub const TOR_ADDR: &str = "198.18.1.0";
pub const DB_ASN: u32 = 4_200_000_001;
pub const DB_ROUTER_ID: &str = "198.19.0.11";
pub const DB_ADDR: &str = "198.18.1.1";
pub const SERVICE_PREFIX: &str = "192.0.2.10/32";

/// How often `wait_until` and friends look again.
pub const POLL: Duration = Duration::from_millis(20);
/// Bound for one step (a daemon starting, a session coming up, a route changing). Generous on
/// purpose: two cores run several labs at once in CI. Speed is the benchmarks' business; these
/// tests prove behaviour.
pub const STEP: Duration = Duration::from_secs(20);

/// Lab folders are `$TMPDIR/primaryd-lab-{prefix}-XXXXXX`; the owner file inside identifies the
/// process that made them, so a later run can tell leftovers from live labs.
const LAB_DIR_PREFIX: &str = "primaryd-lab-";
const OWNER_FILE: &str = "owner";
/// Set to keep the lab folder (configs, logs, data dirs) after the test.
const KEEP_ENV: &str = "PRIMARYD_LAB_KEEP";

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// `ip netns add/del` race on first use of /run/netns when run from several threads at once.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

/// Polls `cond` every [`POLL`] until it holds and returns how long that took; panics naming
/// `what` and the time waited when `within` passes first.
#[track_caller]
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    wait_for(within, what, || cond().then_some(()));
    start.elapsed()
}

/// Polls `f` every [`POLL`] until it returns `Some`; panics naming `what` and the time waited
/// when `within` passes first.
#[track_caller]
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() >= within {
            panic!(
                "timed out after {:.3?} waiting until {what}",
                start.elapsed()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// A bounded "never": checks `invariant` at every poll until `done` holds (and at least once
/// after), panicking at the first violation. `done` is the evidence that the window was long
/// enough (time passed, checks observed); `within` bounds the wait for that evidence.
#[track_caller]
pub fn hold_until(
    within: Duration,
    invariant_what: &str,
    mut invariant: impl FnMut() -> bool,
    done_what: &str,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let finished = done();
        if !invariant() {
            panic!(
                "{invariant_what} stopped holding after {:.3?} (while waiting until {done_what})",
                start.elapsed()
            );
        }
        if finished {
            return start.elapsed();
        }
        if start.elapsed() >= within {
            panic!(
                "timed out after {:.3?} waiting until {done_what} (while {invariant_what} held)",
                start.elapsed()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Checks `invariant` at every poll for the whole `window`; panics at the first violation.
#[track_caller]
pub fn hold_for(window: Duration, what: &str, invariant: impl FnMut() -> bool) {
    let start = Instant::now();
    hold_until(
        window + STEP,
        what,
        invariant,
        &format!("{window:?} passed"),
        || start.elapsed() >= window,
    );
}

/// Fails loudly (never skips) when not root: the lab needs network namespaces.
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("Uid: line in /proc/self/status");
    if euid != "0" {
        panic!(
            "the end-to-end tests build network namespaces and start FRR and MariaDB: run them \
             as root (effective uid is {euid}), e.g. `sudo -E cargo test`"
        );
    }
}

fn require_tools() {
    for tool in [
        "/usr/lib/frr/zebra",
        "/usr/lib/frr/bgpd",
        "/usr/bin/vtysh",
        "/usr/sbin/mariadbd",
        "/usr/bin/mariadb",
        "/usr/bin/mariadb-install-db",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install the packages .ci/run installs \
             (apt-get install frr mariadb-server mariadb-client iproute2 procps)"
        );
    }
}

/// Runs a command to completion, panicking only when it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed and returns its stdout.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip` with a whitespace-separated argument line.
#[track_caller]
fn ip_line(args: &str) -> String {
    run_ok(Command::new("ip").args(args.split_whitespace()))
}

fn signal(pid: u32, sig: &str) -> bool {
    run(Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string()))
    .status
    .success()
}

fn chown(path: &Path, owner: &str) {
    run_ok(Command::new("chown").arg(owner).arg(path));
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Last `n` lines of a file, or a note why there are none.
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(n);
            let mut out = String::new();
            if skip > 0 {
                out.push_str(&format!("[... {skip} earlier lines ...]\n"));
            }
            for l in &lines[skip..] {
                out.push_str(l);
                out.push('\n');
            }
            out
        }
        Err(e) => format!("[cannot read {}: {e}]\n", path.display()),
    }
}

/// Kills a child we started and reaps it, so no zombie outlives the lab.
fn kill_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let _ = child.wait();
}

// ---------- names and leftovers ----------

/// `pd{pid}n{n}`: the PID makes names unique among live processes (and lets a later run see
/// that the owner is dead), the counter among the labs of one process. With Linux's largest
/// PID (7 digits) `pd4194303n99tor` is 15 characters, within the interface-name limit.
fn next_prefix() -> String {
    format!(
        "pd{}n{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Splits `pd{pid}n{n}{suffix}` into (`pd{pid}n{n}`, pid).
fn parse_prefix(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix("pd")?;
    let (pid, rest) = rest.split_once('n')?;
    let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
    if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) || digits == 0 {
        return None;
    }
    Some((format!("pd{pid}n{}", &rest[..digits]), pid.parse().ok()?))
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat): with the
/// PID it identifies a process even after the PID is reused.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

fn owner_alive(owner: &str) -> bool {
    let mut it = owner.split_whitespace();
    let pid: Option<u32> = it.next().and_then(|p| p.parse().ok());
    let start: Option<u64> = it.next().and_then(|s| s.parse().ok());
    match (pid, start) {
        (Some(pid), Some(start)) => start_time(pid) == Some(start),
        // Unreadable owner: assume alive rather than tear down someone's lab.
        _ => true,
    }
}

fn netns_list() -> Vec<String> {
    let out = run(Command::new("ip").args(["netns", "list"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn netns_pids(ns: &str) -> Vec<u32> {
    let out = run(Command::new("ip").args(["netns", "pids", ns]));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// SIGKILLs every process in the namespace (the safety net behind the per-process kills) and
/// deletes it.
fn destroy_netns(ns: &str) {
    if !netns_list().iter().any(|n| n == ns) {
        return;
    }
    for _ in 0..50 {
        let pids = netns_pids(ns);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            signal(pid, "KILL");
        }
        std::thread::sleep(POLL);
    }
    let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let _ = run(Command::new("ip").args(["netns", "del", ns]));
}

fn frr_run_dir(tor_ns: &str) -> PathBuf {
    PathBuf::from("/var/run/frr").join(tor_ns)
}

fn destroy_prefix(prefix: &str) {
    destroy_netns(&format!("{prefix}tor"));
    destroy_netns(&format!("{prefix}db"));
    let _ = fs::remove_dir_all(frr_run_dir(&format!("{prefix}tor")));
}

/// Best effort: removes labs whose owning test process is gone (e.g. SIGKILLed, so no Drop
/// ran). Labs of live processes, including other test binaries running now, are left alone.
fn clean_stale_labs() {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(LAB_DIR_PREFIX) else {
                continue;
            };
            let Some((prefix, _)) = parse_prefix(rest) else {
                continue;
            };
            // A dir without owner file is either being created right now or was left by a
            // crash before it was written; only the latter is old.
            let owner = fs::read_to_string(e.path().join(OWNER_FILE));
            let stale = match &owner {
                Ok(o) => !owner_alive(o),
                Err(_) => e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(600)),
            };
            if stale {
                eprintln!("removing leftover lab {prefix} ({})", e.path().display());
                destroy_prefix(&prefix);
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    // Namespaces and FRR run dirs whose lab folder is already gone: the PID in the name must
    // be dead (a live PID may be a running test; we cannot tell, so we keep it).
    let mut names = netns_list();
    if let Ok(entries) = fs::read_dir("/var/run/frr") {
        names.extend(
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    let mut dead = std::collections::BTreeSet::new();
    for name in names {
        let Some((prefix, pid)) = parse_prefix(&name) else {
            continue;
        };
        let ours = name == format!("{prefix}tor") || name == format!("{prefix}db");
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            dead.insert((prefix, pid));
        }
    }
    for (prefix, pid) in dead {
        eprintln!("removing leftover lab {prefix} (namespaces of dead pid {pid})");
        destroy_prefix(&prefix);
    }
}

// ---------- the lab ----------

/// Two namespaces: `{prefix}tor` runs FRR (ASN 65001) on 198.18.1.0/31, `{prefix}db` runs
/// MariaDB and primaryd on 198.18.1.1/31 with 192.0.2.10/32 and 198.19.0.11/32 on lo.
pub struct Lab {
    pub prefix: String,
    pub tor_ns: String,
    pub db_ns: String,
    /// veth ends: `{prefix}t` in TOR, `{prefix}d` in DB.
    pub tor_if: String,
    pub db_if: String,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    /// zebra and bgpd, in start order. They run in the foreground (`ip netns exec` execs them,
    /// so these PIDs are the daemons' and equal their pid files).
    frr: Vec<(&'static str, Child)>,
    dbs: Vec<Arc<MariaDb>>,
    daemons: Vec<Arc<Primaryd>>,
    /// First line is the password primaryd uses (mode 0600, as in production).
    pub password_file: PathBuf,
    created: Instant,
}

impl Lab {
    /// Builds the namespaces and link and starts FRR (zebra, then bgpd); returns once bgpd
    /// answers vtysh. MariaDB and primaryd are added by the test.
    pub fn new() -> Lab {
        require_root();
        require_tools();
        static STALE: Once = Once::new();
        STALE.call_once(clean_stale_labs);

        let created = Instant::now();
        // Leftovers of a dead process that had our PID may still hold a name: skip it.
        let prefix = loop {
            let p = next_prefix();
            let taken = netns_list()
                .iter()
                .any(|n| *n == format!("{p}tor") || *n == format!("{p}db"))
                || frr_run_dir(&format!("{p}tor")).exists();
            if !taken {
                break p;
            }
        };
        let tor_ns = format!("{prefix}tor");
        assert!(tor_ns.len() <= 15, "name too long: {tor_ns}");

        let dir = tempfile::Builder::new()
            .prefix(&format!("{LAB_DIR_PREFIX}{prefix}-"))
            .tempdir()
            .expect("create lab dir");
        // FRR (user frr) and MariaDB (user mysql) must traverse it.
        chmod(dir.path(), 0o755);
        let me = std::process::id();
        fs::write(
            dir.path().join(OWNER_FILE),
            format!("{me} {}\n", start_time(me).expect("own start time")),
        )
        .expect("write owner file");
        let dir_path = dir.path().to_path_buf();
        let password_file = dir_path.join("mysql.pass");
        fs::write(&password_file, format!("{}\n", mariadb::PRIMARYD_PASSWORD)).unwrap();
        chmod(&password_file, 0o600);

        // From here on Drop cleans up whatever a failing step leaves.
        let mut lab = Lab {
            tor_ns,
            db_ns: format!("{prefix}db"),
            tor_if: format!("{prefix}t"),
            db_if: format!("{prefix}d"),
            prefix,
            dir: Some(dir),
            dir_path,
            frr: Vec::new(),
            dbs: Vec::new(),
            daemons: Vec::new(),
            password_file,
            created,
        };
        lab.build_network();
        lab.start_frr();
        eprintln!(
            "lab {}: namespaces and FRR up in {:.3?} ({})",
            lab.prefix,
            created.elapsed(),
            lab.dir_path.display()
        );
        lab
    }

    /// The lab's folder: configs, logs, MariaDB data dirs.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Time since `Lab::new` began.
    pub fn age(&self) -> Duration {
        self.created.elapsed()
    }

    fn build_network(&mut self) {
        let (tor, db) = (self.tor_ns.clone(), self.db_ns.clone());
        let (tif, dif) = (self.tor_if.clone(), self.db_if.clone());
        {
            let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            ip_line(&format!("netns add {tor}"));
            ip_line(&format!("netns add {db}"));
        }
        // Both ends are created inside their namespaces: nothing ever lands in the host's.
        ip_line(&format!(
            "link add {tif} netns {tor} type veth peer name {dif} netns {db}"
        ));
        for line in [
            format!("-n {tor} link set lo up"),
            format!("-n {db} link set lo up"),
            format!("-n {tor} addr add 198.18.1.0/31 dev {tif}"),
            format!("-n {db} addr add 198.18.1.1/31 dev {dif}"),
            format!("-n {tor} addr add {TOR_ROUTER_ID}/32 dev lo"),
            // The anycast convention: every DB host has the service address on lo.
            format!("-n {db} addr add {SERVICE_PREFIX} dev lo"),
            format!("-n {db} addr add {DB_ROUTER_ID}/32 dev lo"),
            format!("-n {tor} link set {tif} up"),
            format!("-n {db} link set {dif} up"),
            format!("-n {db} route add default via {TOR_ADDR}"),
            format!("netns exec {tor} sysctl -qw net.ipv4.ip_forward=1"),
        ] {
            ip_line(&line);
        }
    }

    /// Adds a MariaDB instance in the DB namespace (`mariadb-install-db` now; started unless
    /// `opts.start` is false). Users `primaryd` and `repl` are created on first start.
    pub fn add_mariadb(&mut self, opts: MariaDbOpts) -> Arc<MariaDb> {
        let name = format!("db{}", self.dbs.len());
        let t = Instant::now();
        let db = Arc::new(MariaDb::install(&self.dir_path, &self.db_ns, &name, opts));
        self.dbs.push(db.clone());
        let installed = t.elapsed();
        if opts.start {
            db.start();
        }
        eprintln!(
            "lab {}: MariaDB {name} installed in {installed:.3?}{}",
            self.prefix,
            if opts.start {
                format!(", answering after {:.3?}", t.elapsed())
            } else {
                String::new()
            }
        );
        db
    }

    /// The lab's primaryd config for `db`, for tests that start from it and change a line.
    pub fn primaryd_config(&self, db: &MariaDb, opts: PrimarydOpts) -> String {
        primaryd::config_text(db, &self.password_file, &opts)
    }

    /// Writes the lab's primaryd config for `db` and starts primaryd in the DB namespace.
    pub fn start_primaryd(&mut self, db: &MariaDb, opts: PrimarydOpts) -> Arc<Primaryd> {
        let config = self.primaryd_config(db, opts);
        self.start_primaryd_with_config(&config)
    }

    /// Starts primaryd with a config written by the test.
    pub fn start_primaryd_with_config(&mut self, config: &str) -> Arc<Primaryd> {
        let n = self.daemons.len();
        let p = Arc::new(Primaryd::start(&self.dir_path, &self.db_ns, n, config));
        self.daemons.push(p.clone());
        p
    }

    /// Panics (with its log) if a primaryd the test did not signal has exited: a dead daemon
    /// announces nothing, which must not pass for a correct withdraw.
    #[track_caller]
    pub fn assert_primaryd_alive(&self) {
        for p in &self.daemons {
            p.assert_not_died();
        }
    }

    /// Everything useful for a post-mortem: the logs of every daemon and what FRR sees now.
    pub fn diagnostics(&self) -> String {
        let mut out = format!(
            "===== lab {} ({}), age {:.3?} =====\n",
            self.prefix,
            self.dir_path.display(),
            self.age()
        );
        for p in &self.daemons {
            out.push_str(&format!(
                "----- primaryd log {} -----\n",
                p.log_path().display()
            ));
            out.push_str(&tail(p.log_path(), 400));
        }
        for (cmd, label) in [
            ("show bgp summary", "vtysh show bgp summary"),
            ("show ip bgp", "vtysh show ip bgp"),
            (
                "show bgp neighbors 198.18.1.1",
                "vtysh show bgp neighbors 198.18.1.1",
            ),
        ] {
            out.push_str(&format!("----- {label} -----\n"));
            out.push_str(&self.try_vtysh(cmd).unwrap_or_else(|e| e));
        }
        out.push_str(&format!("----- ip -n {} route -----\n", self.tor_ns));
        let r = run(Command::new("ip").args(["-n", &self.tor_ns, "route"]));
        out.push_str(&String::from_utf8_lossy(&r.stdout));
        out.push_str("----- FRR bgpd log -----\n");
        out.push_str(&tail(&self.frr_dir().join("bgpd.log"), 200));
        out.push_str("----- FRR zebra log -----\n");
        out.push_str(&tail(&self.frr_dir().join("zebra.log"), 40));
        for db in &self.dbs {
            out.push_str(&format!("----- MariaDB {} error log -----\n", db.name));
            out.push_str(&tail(&db.error_log(), 40));
        }
        out.push_str(&format!("===== end of lab {} =====\n", self.prefix));
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        // Processes first (each reaped), then the namespaces with anything else inside them.
        for p in &self.daemons {
            p.kill();
        }
        for db in &self.dbs {
            db.kill();
        }
        for (_, child) in self.frr.iter_mut().rev() {
            kill_child(child);
        }
        destroy_netns(&self.tor_ns);
        destroy_netns(&self.db_ns);
        let _ = fs::remove_dir_all(frr_run_dir(&self.tor_ns));
        if std::env::var_os(KEEP_ENV).is_some() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                // An owner that is not a PID reads as alive: later runs leave it alone.
                let _ = fs::write(kept.join(OWNER_FILE), "kept\n");
                eprintln!("lab {}: kept {}", self.prefix, kept.display());
            }
        } else if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("lab {}: cannot remove {}: {e}", self.prefix, path.display());
            }
        }
    }
}
