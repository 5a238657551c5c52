//! Two DB hosts behind one router, and a client: the shape of the fallback tests (issue 12).
//!
//! | namespace | role | link to the router (`ethN` on the router, `eth1` here) |
//! |---|---|---|
//! | `{prefix}r1` | FRR (`frr defaults datacenter`, multipath) or BIRD, AS 65001, router id 198.19.0.1 | |
//! | `{prefix}db1` | MariaDB + primaryd, AS 4200000001, router id 198.19.0.11 | 198.18.1.0/31, 2001:db8:1::/127 (router .0 / ::) |
//! | `{prefix}db2` | the same, router id 198.19.0.12 | 198.18.2.0/31, 2001:db8:2::/127 |
//! | `{prefix}cl` | the client, default routes via the router | 198.18.3.0/31, 2001:db8:3::/127 |
//!
//! Both DB hosts carry the service addresses 192.0.2.10/32 and 2001:db8::10/128 on `lo`, and
//! announce them over one IPv4 session each (IPv6 with the link's address as next hop). Drop
//! removes every process and namespace (and with them primaryd's nftables tables), also when
//! the test panics.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    clean_stale_labs_once, close_lab_dir, destroy_netns, ip_line, new_lab_dir, require_root,
    require_tools_of, tail, write_mysql_password, Bird, Frr, FrrConfig, FrrNeighbor, MariaDb,
    MariaDbOpts, Primaryd, DB_ASN, NETNS_LOCK, STEP,
};

pub const ROUTER_ASN: u32 = 65001;
pub const SERVICE_V4: &str = "192.0.2.10";
pub const SERVICE_V6: &str = "2001:db8::10";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairRouter {
    Frr,
    Bird,
}

enum Router {
    Frr(Frr),
    Bird(Bird),
}

/// What the router and the daemons of a [`Pair`] are set up with.
#[derive(Debug, Clone, Copy)]
pub struct PairOpts {
    pub router: PairRouter,
    /// The router sends every path to both hosts (FRR `addpath-tx-all-paths`, BIRD `add
    /// paths tx`).
    pub add_path: bool,
    /// primaryd reads and writes the promotion term in `primaryd.term`.
    pub term_table: bool,
    /// `on_conflict = "fence"` (the check user gets READ_ONLY ADMIN).
    pub fence: bool,
}

impl PairOpts {
    pub fn new(router: PairRouter) -> PairOpts {
        PairOpts {
            router,
            add_path: false,
            term_table: false,
            fence: false,
        }
    }
}

pub struct Pair {
    pub prefix: String,
    pub opts: PairOpts,
    pub router_ns: String,
    /// `{prefix}db1`, `{prefix}db2`.
    pub db_ns: [String; 2],
    pub client_ns: String,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    router: Option<Router>,
    pub dbs: Vec<Arc<MariaDb>>,
    pub daemons: Vec<Arc<Primaryd>>,
    password_file: PathBuf,
}

/// Runs `f` on a thread that has entered namespace `ns` (children it starts are there too).
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A TCP connect from namespace `ns` to `addr`, bounded by `within`: the stream, or the
/// error kind; with how long the answer took.
pub fn tcp_connect(
    ns: &str,
    addr: SocketAddr,
    within: Duration,
) -> (Result<TcpStream, std::io::ErrorKind>, Duration) {
    in_ns(ns, || {
        let t = Instant::now();
        let r = TcpStream::connect_timeout(&addr, within).map_err(|e| e.kind());
        (r, t.elapsed())
    })
}

fn add_netns(ns: &str) {
    let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    ip_line(&format!("netns add {ns}"));
    drop(_guard);
    for s in [
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
    ] {
        ip_line(&format!("netns exec {ns} sysctl -qw {s}"));
    }
    ip_line(&format!("-n {ns} link set lo up"));
}

impl Pair {
    /// Builds the namespaces and links and starts the router; MariaDB and primaryd are added
    /// by the test.
    pub fn new(kind: PairRouter) -> Pair {
        Pair::with(PairOpts::new(kind))
    }

    pub fn with(opts: PairOpts) -> Pair {
        let kind = opts.router;
        require_root();
        let router_pkg = match kind {
            PairRouter::Frr => "frr",
            PairRouter::Bird => "bird2",
        };
        require_tools_of(&[router_pkg, "mariadb-server", "mariadb-client", "iproute2"]);
        clean_stale_labs_once();
        let (prefix, dir) = new_lab_dir();
        let dir_path = dir.path().to_path_buf();
        let password_file = write_mysql_password(&dir_path);
        let mut pair = Pair {
            opts,
            router_ns: format!("{prefix}r1"),
            db_ns: [format!("{prefix}db1"), format!("{prefix}db2")],
            client_ns: format!("{prefix}cl"),
            prefix,
            dir: Some(dir),
            dir_path,
            router: None,
            dbs: Vec::new(),
            daemons: Vec::new(),
            password_file,
        };
        pair.build_network();
        let conf_dir = pair.dir_path.join("router");
        pair.router = Some(match kind {
            PairRouter::Frr => Router::Frr(Frr::start(
                "tor",
                &pair.router_ns,
                conf_dir,
                &frr_config(opts.add_path),
            )),
            PairRouter::Bird => Router::Bird(Bird::start(
                "tor",
                &pair.router_ns,
                conf_dir,
                &bird_config(opts.add_path),
            )),
        });
        pair
    }

    fn build_network(&mut self) {
        let r = self.router_ns.clone();
        for ns in [&r, &self.db_ns[0], &self.db_ns[1], &self.client_ns] {
            add_netns(ns);
        }
        for s in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
            ip_line(&format!("netns exec {r} sysctl -qw {s}"));
        }
        let others = [
            self.db_ns[0].clone(),
            self.db_ns[1].clone(),
            self.client_ns.clone(),
        ];
        for (i, ns) in others.iter().enumerate() {
            let n = i + 1;
            ip_line(&format!(
                "link add eth{n} netns {r} type veth peer name eth1 netns {ns}"
            ));
            for (side, dev, host) in [(&r, format!("eth{n}"), 0), (ns, "eth1".to_string(), 1)] {
                ip_line(&format!(
                    "-n {side} addr add 198.18.{n}.{host}/31 dev {dev}"
                ));
                let v6 = if host == 0 {
                    format!("2001:db8:{n}::")
                } else {
                    format!("2001:db8:{n}::1")
                };
                ip_line(&format!("-n {side} addr add {v6}/127 dev {dev} nodad"));
                ip_line(&format!("-n {side} link set {dev} up"));
            }
            ip_line(&format!("-n {ns} route add default via 198.18.{n}.0"));
            ip_line(&format!("-n {ns} -6 route add default via 2001:db8:{n}::"));
        }
        for (i, ns) in self.db_ns.iter().enumerate() {
            ip_line(&format!("-n {ns} addr add 198.19.0.{}/32 dev lo", 11 + i));
            ip_line(&format!("-n {ns} addr add {SERVICE_V4}/32 dev lo"));
            ip_line(&format!("-n {ns} addr add {SERVICE_V6}/128 dev lo"));
        }
    }

    pub fn frr(&self) -> &Frr {
        match &self.router {
            Some(Router::Frr(f)) => f,
            _ => panic!("the router is not FRR"),
        }
    }

    pub fn bird(&self) -> &Bird {
        match &self.router {
            Some(Router::Bird(b)) => b,
            _ => panic!("the router is not BIRD"),
        }
    }

    /// MariaDB on DB host `i` (0 or 1), started, writable unless `read_only`.
    pub fn add_mariadb(&mut self, i: usize, read_only: bool) -> Arc<MariaDb> {
        let opts = MariaDbOpts {
            read_only,
            server_id: 1 + i as u32,
            ..MariaDbOpts::primary()
        };
        let name = format!("db{}", i + 1);
        let db = Arc::new(MariaDb::install(
            &self.dir_path,
            &self.db_ns[i],
            &name,
            opts,
        ));
        self.dbs.push(db.clone());
        db.start();
        if self.opts.term_table {
            db.create_term_table();
        }
        if self.opts.fence {
            db.grant_check_user("READ_ONLY ADMIN ON *.*");
        }
        db
    }

    /// primaryd on DB host `i` checking `db` (interval 100 ms, timeout 500 ms, rise/fall 1),
    /// one session to the router, the service with `fallback = true`.
    pub fn start_primaryd(&mut self, i: usize, db: &MariaDb) -> Arc<Primaryd> {
        let n = i + 1;
        let config = format!(
            r#"[bgp]
asn = {DB_ASN}
router_id = "198.19.0.{rid}"
hold_time = 3

[[bgp.peer]]
name = "tor"
address = "198.18.{n}.0"
remote_asn = {ROUTER_ASN}
local_address = "198.18.{n}.1"

[[service]]
name = "main"
prefixes = ["{SERVICE_V4}/32", "{SERVICE_V6}/128"]
fallback = true
{on_conflict}
[service.mysql]
socket = "{socket}"
user = "{user}"
password_file = "{pass}"
interval_ms = 100
timeout_ms = 500
rise = 1
fall = 1
{term_table}
[metrics]
listen = "127.0.0.1:9{n}00"
"#,
            rid = 11 + i,
            socket = db.socket.display(),
            user = super::mariadb::PRIMARYD_USER,
            pass = self.password_file.display(),
            on_conflict = if self.opts.fence {
                "on_conflict = \"fence\"\n"
            } else {
                ""
            },
            term_table = if self.opts.term_table {
                "term_table = \"primaryd.term\"\n"
            } else {
                ""
            },
        );
        let p = Arc::new(Primaryd::start(
            &self.dir_path,
            &self.db_ns[i],
            self.daemons.len(),
            &config,
            &[],
        ));
        self.daemons.push(p.clone());
        p
    }

    /// Polls `f` until Some, failing at once if a daemon died.
    #[track_caller]
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        super::wait_for(STEP, what, || {
            for p in &self.daemons {
                p.assert_not_died();
            }
            f()
        })
    }

    pub fn diagnostics(&self) -> String {
        let mut out = format!(
            "===== pair {} ({}) =====\n",
            self.prefix,
            self.dir_path.display()
        );
        for p in &self.daemons {
            let _ = writeln!(out, "----- primaryd log {} -----", p.log_path().display());
            out.push_str(&tail(p.log_path(), 200));
        }
        match &self.router {
            Some(Router::Frr(f)) => out.push_str(&f.diagnostics()),
            Some(Router::Bird(b)) => out.push_str(&b.diagnostics()),
            None => {}
        }
        for ns in [&self.router_ns, &self.db_ns[0], &self.db_ns[1]] {
            for family in ["-4", "-6"] {
                let r =
                    super::run(std::process::Command::new("ip").args([family, "-n", ns, "route"]));
                let _ = writeln!(out, "----- ip {family} -n {ns} route -----");
                out.push_str(&String::from_utf8_lossy(&r.stdout));
            }
        }
        for ns in &self.db_ns {
            let r = super::run(
                std::process::Command::new("ip")
                    .args(["netns", "exec", ns, "nft", "list", "ruleset"]),
            );
            let _ = writeln!(out, "----- nft list ruleset in {ns} -----");
            out.push_str(&String::from_utf8_lossy(&r.stdout));
            let r = super::run(
                std::process::Command::new("ip").args(["netns", "exec", ns, "ss", "-tan"]),
            );
            let _ = writeln!(out, "----- ss -tan in {ns} -----");
            out.push_str(&String::from_utf8_lossy(&r.stdout));
        }
        out
    }
}

/// The pair's FRR router: both hosts as neighbours, ECMP between equal paths (`frr defaults
/// datacenter`); with `add_path`, every path to both (docs/tor-examples).
pub fn frr_config(add_path: bool) -> String {
    let mut c = FrrConfig::new("tor", ROUTER_ASN, "198.19.0.1");
    c.comment = vec![
        "FRR 8.4 ToR with two DB hosts running primaryd (AS 4200000001 both; links".into(),
        "198.18.1.0/31 and 198.18.2.0/31), ECMP between equal paths.".into(),
    ];
    if add_path {
        c.comment.push(
            "addpath-tx-all-paths: each host gets every path for the service prefixes, so it"
                .into(),
        );
        c.comment.push(
            "sees every other announcer (docs/safety.md). Tested by tests/split_brain.rs.".into(),
        );
    }
    for n in 1..=2 {
        let mut nb = FrrNeighbor::new(&format!("198.18.{n}.1"), DB_ASN);
        nb.ipv6 = true;
        nb.timers = Some((1, 3));
        nb.addpath_tx_all_paths = add_path;
        c = c.neighbor(nb);
    }
    c.render()
}

/// The pair's BIRD router, both hosts in one table; RFC 8326: routes carrying
/// GRACEFUL_SHUTDOWN get LOCAL_PREF 0 (BIRD does not do it by itself; docs/clients.md); with
/// `add_path`, every path to both hosts.
pub fn bird_config(add_path: bool) -> String {
    let mut s = String::new();
    if add_path {
        let _ = writeln!(
            s,
            "# BIRD 2 ToR with two DB hosts running primaryd; `add paths tx`: each host gets every"
        );
        let _ = writeln!(
            s,
            "# path for the service prefixes (docs/safety.md). Tested by tests/split_brain.rs."
        );
    }
    let _ = writeln!(s, "router id 198.19.0.1;");
    let _ = writeln!(s, "protocol device {{ }}");
    for family in ["ipv4", "ipv6"] {
        let _ = writeln!(
            s,
            "protocol kernel {{ {family} {{ export all; }}; merge paths on; }}"
        );
    }
    let _ = writeln!(s, "filter from_db {{");
    let _ = writeln!(
        s,
        "  if (65535, 0) ~ bgp_community then bgp_local_pref = 0;"
    );
    let _ = writeln!(s, "  accept;");
    let _ = writeln!(s, "}}");
    for n in 1..=2 {
        let _ = writeln!(s, "protocol bgp db{n} {{");
        let _ = writeln!(s, "  local 198.18.{n}.0 as {ROUTER_ASN};");
        let _ = writeln!(s, "  neighbor 198.18.{n}.1 as {DB_ASN};");
        let _ = writeln!(s, "  hold time 3; keepalive time 1;");
        for family in ["ipv4", "ipv6"] {
            // The hosts hear each other's routes (exported back to both), every path of
            // them with ADD-PATH.
            let _ = writeln!(s, "  {family} {{");
            let _ = writeln!(s, "    import filter from_db;");
            let _ = writeln!(s, "    export all;");
            if add_path {
                let _ = writeln!(s, "    add paths tx;");
            }
            let _ = writeln!(s, "  }};");
        }
        let _ = writeln!(s, "}}");
    }
    s
}

impl Drop for Pair {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        for p in &self.daemons {
            p.kill();
        }
        for db in &self.dbs {
            db.kill();
        }
        self.router = None;
        for ns in [
            &self.router_ns,
            &self.db_ns[0],
            &self.db_ns[1],
            &self.client_ns,
        ] {
            destroy_netns(ns);
        }
        close_lab_dir(&self.prefix, self.dir.take());
    }
}
