//! End-to-end labs in network namespaces. Two shapes:
//!
//! - [`Lab`]: FRR as the top-of-rack router in one namespace, MariaDB and primaryd in
//!   another, joined by a veth /31 (the first end-to-end tests).
//! - [`Net`]: MariaDB and primaryd in a DB namespace with any number of routers around it,
//!   each in its own namespace on its own link (IPv4 /31, IPv6 /127 and link-local): FRR,
//!   BIRD or GoBGP, each started from a config the test renders (see net.rs).
//!
//! Every test builds its own lab; `Drop` removes everything it made (also when the test
//! panics, after printing the logs), and the first lab of a process removes what SIGKILLed
//! earlier runs left behind.
//!
//! Addresses: only 198.18.0.0/15 (links, router ids), 192.0.2.0/24 and 2001:db8::/32 (services
//! and links), link-local fe80::/64 on the links, and 127.0.0.1 inside the DB namespace
//! (replication between two MariaDB instances).

#![allow(dead_code, unused_imports)] // each test file uses its own subset of the harness

mod bird;
mod checks;
pub mod examples;
mod faults;
mod frr;
mod gobgp;
mod mariadb;
mod net;
mod pair;
mod primaryd;

pub use bird::{Bird, BirdBfd, BirdConfig, BirdRoute};
pub use checks::Checks;
pub use faults::Drop as PacketDrop;
pub use frr::{
    withdrawn_before_notification, BgpPath, Frr, FrrBfdProfile, FrrConfig, FrrNeighbor,
    LastNotification, QUIET_INTERVALS, QUIET_MIN_CHECKS,
};
pub use gobgp::{Gobgp, GobgpConfig, GobgpNeighbor, GobgpPath};
pub use mariadb::{MariaDb, MariaDbOpts};
pub use net::{Link, Net, PdBfd, PdConfig, PdMysql, PdPeer, PdService, SERVICE_ADDRESSES};
pub use pair::{in_ns, tcp_connect, Pair, PairOpts, PairRouter};
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
/// The marks primaryd puts on a primary service's routes (docs/safety.md): term 0 (these labs
/// have no term table) and the announcer's router id, 198.19.0.11 as a number.
pub const PRIMARY_MARKS: [&str; 2] = ["4200000000:1:0", "4200000000:3:3323133963"];
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

/// Polls `cond` every [`POLL`] until it holds (Ok with the time it took) or `within` passes
/// (Err with the time waited), for tests that report a timeout among other findings.
pub fn wait_for_result(
    within: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<Duration, Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= within {
            return Err(start.elapsed());
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

/// The kernel's route for exactly `prefix` in namespace `ns` (`ip [-6] -n NS route show
/// PREFIX`), e.g. "192.0.2.10 nhid 6 via 198.18.1.1 dev eth1 proto bgp metric 20"; None when
/// absent.
pub fn kernel_route(ns: &str, prefix: &str) -> Option<String> {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    let text = run_ok(Command::new("ip").args([family, "-n", ns, "route", "show", prefix]));
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// A kernel SNMP counter of namespace `ns` (`nstat -asz NAME`, absolute, history untouched),
/// e.g. "TcpExtTCPMD5Failure" (segments dropped for a bad or missing MD5 signature) or
/// "TcpExtTCPMinTTLDrop" (dropped below a socket's IP_MINTTL).
#[track_caller]
pub fn kernel_counter(ns: &str, name: &str) -> u64 {
    let text = run_ok(Command::new("ip").args(["netns", "exec", ns, "nstat", "-asz", name]));
    text.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("nstat in {ns} has no counter {name}:\n{text}"))
}

/// Established TCP connections in namespace `ns` with `peer` (an IPv4 address), as
/// (local port, remote port): which side opened a BGP session shows as the side whose remote
/// port is 179.
#[track_caller]
pub fn tcp_connections(ns: &str, peer: &str) -> Vec<(u16, u16)> {
    let text = run_ok(Command::new("ip").args([
        "netns",
        "exec",
        ns,
        "ss",
        "-Htn",
        "state",
        "established",
    ]));
    let port = |s: &str| s.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let (local, remote) = (w.get(2)?, w.get(3)?);
            (remote.rsplit_once(':')?.0 == peer).then(|| Some((port(local)?, port(remote)?)))?
        })
        .collect()
}

/// The timestamp FRR and BIRD put first on a log line, "YYYY/MM/DD HH:MM:SS.mmm" (FRR with
/// `log timestamp precision 3`) or "YYYY-MM-DD HH:MM:SS.mmm" (BIRD), as seconds since the
/// epoch of the local clock: only differences between two lines mean anything.
pub fn log_time(line: &str) -> Option<f64> {
    let (date, rest) = line.split_once(' ')?;
    let time = rest.split_whitespace().next()?;
    let d: Vec<i64> = date
        .split(['/', '-'])
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), so midnight is no edge.
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let frac: f64 = format!("0.{frac}").parse().ok()?;
    Some((days * 86400 + t[0] * 3600 + t[1] * 60 + t[2]) as f64 + frac)
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
    require_tools_of(&["frr", "mariadb-server", "mariadb-client"]);
}

/// Panics naming the Debian packages to install when a tool of `packages` is missing (only
/// the packages listed here are known).
fn require_tools_of(packages: &[&str]) {
    let tools: &[(&str, &[&str])] = &[
        (
            "frr",
            &["/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/bin/vtysh"],
        ),
        (
            "mariadb-server",
            &["/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db"],
        ),
        ("mariadb-client", &["/usr/bin/mariadb"]),
        ("bird2", &["/usr/sbin/bird", "/usr/sbin/birdc"]),
        ("gobgpd", &["/usr/bin/gobgpd", "/usr/bin/gobgp"]),
        ("iptables", &["/usr/sbin/iptables"]),
        (
            "iproute2",
            &["/usr/sbin/ip", "/usr/bin/nstat", "/usr/bin/ss"],
        ),
    ];
    for (package, paths) in tools.iter().filter(|(p, _)| packages.contains(p)) {
        for tool in *paths {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install the packages .ci/run installs \
                 (apt-get install {package}; all: frr bird2 gobgpd mariadb-server \
                 mariadb-client iproute2 iptables procps)"
            );
        }
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

/// Whether `name` is a namespace (or FRR run dir) a lab makes: `{prefix}tor`, `{prefix}db` or
/// `{prefix}r{N}` (routers of a [`Net`]).
fn lab_name_of(name: &str) -> Option<(String, u32)> {
    let (prefix, pid) = parse_prefix(name)?;
    let suffix = &name[prefix.len()..];
    let router = suffix
        .strip_prefix('r')
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    // `db{N}` and `cl`: the DB hosts and the client of a [`Pair`].
    let db_n = suffix
        .strip_prefix("db")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    (suffix == "tor" || suffix == "db" || suffix == "cl" || router || db_n).then_some((prefix, pid))
}

fn destroy_prefix(prefix: &str) {
    for ns in netns_list() {
        if lab_name_of(&ns).is_some_and(|(p, _)| p == prefix) {
            destroy_netns(&ns);
        }
    }
    if let Ok(entries) = fs::read_dir("/var/run/frr") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if lab_name_of(&name).is_some_and(|(p, _)| p == prefix) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Best effort, once per process: removes labs whose owning test process is gone (e.g.
/// SIGKILLed, so no Drop ran). Labs of live processes, including other test binaries running
/// now, are left alone.
fn clean_stale_labs_once() {
    static STALE: Once = Once::new();
    STALE.call_once(clean_stale_labs);
}

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
        let Some((prefix, pid)) = lab_name_of(&name) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            dead.insert((prefix, pid));
        }
    }
    for (prefix, pid) in dead {
        eprintln!("removing leftover lab {prefix} (namespaces of dead pid {pid})");
        destroy_prefix(&prefix);
    }
}

// ---------- lab folders ----------

/// A fresh, unused name prefix and the lab folder `$TMPDIR/primaryd-lab-{prefix}-XXXXXX`
/// (traversable by users frr and mysql, with the owner file written).
fn new_lab_dir() -> (String, tempfile::TempDir) {
    // Leftovers of a dead process that had our PID may still hold a name: skip it.
    let prefix = loop {
        let p = next_prefix();
        let mut names = netns_list();
        if let Ok(entries) = fs::read_dir("/var/run/frr") {
            names.extend(
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
        let taken = names
            .iter()
            .any(|n| lab_name_of(n).is_some_and(|(q, _)| q == p));
        if !taken {
            break p;
        }
    };
    // The longest name we make, `{prefix}tor`, must fit the 15-character limit.
    assert!(prefix.len() + 3 <= 15, "name too long: {prefix}tor");
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
    (prefix, dir)
}

/// The password file primaryd reads for MySQL (mode 0600, as in production).
fn write_mysql_password(dir: &Path) -> PathBuf {
    let password_file = dir.join("mysql.pass");
    fs::write(&password_file, format!("{}\n", mariadb::PRIMARYD_PASSWORD)).unwrap();
    chmod(&password_file, 0o600);
    password_file
}

/// Removes the lab folder, or keeps it when `PRIMARYD_LAB_KEEP` is set.
fn close_lab_dir(prefix: &str, dir: Option<tempfile::TempDir>) {
    let Some(dir) = dir else {
        return;
    };
    if std::env::var_os(KEEP_ENV).is_some() {
        let kept = dir.keep();
        // An owner that is not a PID reads as alive: later runs leave it alone.
        let _ = fs::write(kept.join(OWNER_FILE), "kept\n");
        eprintln!("lab {prefix}: kept {}", kept.display());
    } else {
        let path = dir.path().to_path_buf();
        if let Err(e) = dir.close() {
            eprintln!("lab {prefix}: cannot remove {}: {e}", path.display());
        }
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
    /// zebra and bgpd.
    tor: Option<Frr>,
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
        clean_stale_labs_once();

        let created = Instant::now();
        let (prefix, dir) = new_lab_dir();
        let tor_ns = format!("{prefix}tor");
        let dir_path = dir.path().to_path_buf();
        let password_file = write_mysql_password(&dir_path);

        // From here on Drop cleans up whatever a failing step leaves.
        let mut lab = Lab {
            tor_ns,
            db_ns: format!("{prefix}db"),
            tor_if: format!("{prefix}t"),
            db_if: format!("{prefix}d"),
            prefix,
            dir: Some(dir),
            dir_path,
            tor: None,
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
        self.start_primaryd_wrapped(config, &[])
    }

    /// Starts primaryd with a config written by the test, through `wrapper`, a command that
    /// execs it (e.g. `["prlimit", "--nofile=1024:20000"]`).
    pub fn start_primaryd_wrapped(&mut self, config: &str, wrapper: &[&str]) -> Arc<Primaryd> {
        let n = self.daemons.len();
        let p = Arc::new(Primaryd::start(
            &self.dir_path,
            &self.db_ns,
            n,
            config,
            wrapper,
        ));
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
        if let Some(tor) = &self.tor {
            out.push_str(&tor.diagnostics());
        }
        out.push_str(&format!("----- ip -n {} route -----\n", self.tor_ns));
        let r = run(Command::new("ip").args(["-n", &self.tor_ns, "route"]));
        out.push_str(&String::from_utf8_lossy(&r.stdout));
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
        drop(self.tor.take());
        destroy_netns(&self.tor_ns);
        destroy_netns(&self.db_ns);
        close_lab_dir(&self.prefix, self.dir.take());
    }
}
