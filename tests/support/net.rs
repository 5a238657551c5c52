//! A DB host with several routers around it: the shape of the interop tests.
//!
//! The DB namespace `{prefix}db` runs MariaDB and primaryd. Each router gets its own namespace
//! `{prefix}r{N}` and a veth link numbered N (1, 2, …), addressed the same way every time so
//! configs (and the examples in docs/tor-examples/) can name them:
//!
//! | | router side (`eth1`) | DB side (`eth{N}`) |
//! |---|---|---|
//! | IPv4 /31 | 198.18.N.0 | 198.18.N.1 |
//! | IPv6 /127 | 2001:db8:N:: | 2001:db8:N::1 |
//! | link-local /64 | fe80::1 | fe80::d:N |
//!
//! Router ids 198.19.0.N, the DB host 198.19.0.11. Interface names are per namespace, so
//! every router calls its side `eth1`. Addresses are static and skip duplicate address
//! detection, so sessions can start the moment the link is up.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    chmod, clean_stale_labs_once, close_lab_dir, destroy_netns, hold_until, ip_line, new_lab_dir,
    require_root, require_tools_of, run, tail, write_mysql_password, Bird, Frr, Gobgp, MariaDb,
    MariaDbOpts, Primaryd, PrimarydOpts, DB_ASN, DB_ROUTER_ID, NETNS_LOCK, STEP,
};

/// Service addresses on the DB host's `lo` (the anycast convention; see DESIGN.md).
/// primaryd checks that a service's addresses are configured locally before announcing.
pub const SERVICE_ADDRESSES: [&str; 6] = [
    "192.0.2.10/32",
    "192.0.2.11/32",
    "192.0.2.12/32",
    "2001:db8::10/128",
    "2001:db8::11/128",
    "2001:db8::12/128",
];

/// One point-to-point link between the DB namespace and a router namespace.
#[derive(Debug, Clone)]
pub struct Link {
    pub n: u8,
    pub router_ns: String,
    pub router_if: String,
    pub db_if: String,
    pub router_v4: String,
    pub db_v4: String,
    pub router_v6: String,
    pub db_v6: String,
    pub router_ll: String,
    pub db_ll: String,
    /// 198.19.0.N: the router id the examples give the router on this link.
    pub router_id: String,
}

impl Link {
    pub fn new(prefix: &str, n: u8) -> Link {
        Link {
            n,
            router_ns: format!("{prefix}r{n}"),
            router_if: "eth1".into(),
            db_if: format!("eth{n}"),
            router_v4: format!("198.18.{n}.0"),
            db_v4: format!("198.18.{n}.1"),
            router_v6: format!("2001:db8:{n}::"),
            db_v6: format!("2001:db8:{n}::1"),
            router_ll: "fe80::1".into(),
            db_ll: format!("fe80::d:{n}"),
            router_id: format!("198.19.0.{n}"),
        }
    }
}

enum Router {
    Frr(Frr),
    Bird(Bird),
    Gobgp(Gobgp),
}

impl Router {
    fn check_alive(&self) {
        match self {
            Router::Frr(r) => r.check_alive(),
            Router::Bird(r) => r.check_alive(),
            Router::Gobgp(r) => r.check_alive(),
        }
    }

    fn diagnostics(&self) -> String {
        match self {
            Router::Frr(r) => r.diagnostics(),
            Router::Bird(r) => r.diagnostics(),
            Router::Gobgp(r) => r.diagnostics(),
        }
    }
}

// ---------- primaryd's config ----------

/// A `[[bgp.peer]]` (keys as in docs/configuration.md; None/false: not written, the default).
#[derive(Debug, Clone)]
pub struct PdPeer {
    pub name: String,
    pub address: String,
    pub remote_asn: u32,
    pub interface: Option<String>,
    pub local_address: Option<String>,
    pub hold_time: Option<u16>,
    pub passive: bool,
    pub md5_password_file: Option<PathBuf>,
    pub ttl_security: bool,
    pub max_prefixes: Option<u32>,
    pub max_prefixes_restart_s: Option<u32>,
    pub next_hop_ipv4: Option<String>,
    pub next_hop_ipv6: Option<String>,
    /// `bfd = true` with these keys (each None: not written, the default).
    pub bfd: Option<PdBfd>,
}

/// A peer's BFD keys in primaryd's config.
#[derive(Debug, Clone, Default)]
pub struct PdBfd {
    pub min_tx_ms: Option<u32>,
    pub min_rx_ms: Option<u32>,
    pub multiplier: Option<u8>,
    /// `keyed-sha1` or `meticulous-keyed-sha1`.
    pub auth: Option<String>,
    pub auth_key_id: Option<u8>,
    pub auth_key_file: Option<PathBuf>,
}

impl PdPeer {
    pub fn new(name: &str, address: &str, remote_asn: u32) -> PdPeer {
        PdPeer {
            name: name.into(),
            address: address.into(),
            remote_asn,
            interface: None,
            local_address: None,
            hold_time: None,
            passive: false,
            md5_password_file: None,
            ttl_security: false,
            max_prefixes: None,
            max_prefixes_restart_s: None,
            next_hop_ipv4: None,
            next_hop_ipv6: None,
            bfd: None,
        }
    }
}

/// A `[[service]]`; its `[service.mysql]` comes from the lab's MariaDB.
#[derive(Debug, Clone, Default)]
pub struct PdService {
    pub name: String,
    pub prefixes: Vec<String>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub as_path_prepend: Option<u8>,
    pub next_hop_ipv4: Option<String>,
    pub next_hop_ipv6: Option<String>,
    /// `fallback`: off unless a test is about it, so "no route" means withdrawn.
    pub fallback: bool,
}

impl PdService {
    pub fn new(name: &str, prefixes: &[&str]) -> PdService {
        PdService {
            name: name.into(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            ..PdService::default()
        }
    }
}

/// How a service reaches its server.
#[derive(Debug, Clone)]
pub struct PdMysql {
    pub socket: String,
    pub password_file: String,
    pub opts: PrimarydOpts,
}

#[derive(Debug, Clone)]
pub struct PdConfig {
    pub comment: Vec<String>,
    pub asn: u32,
    pub router_id: String,
    pub hold_time: Option<u16>,
    pub listen: Vec<String>,
    pub peers: Vec<PdPeer>,
    pub services: Vec<PdService>,
}

impl Default for PdConfig {
    fn default() -> Self {
        PdConfig::new()
    }
}

fn quoted_list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", q.join(", "))
}

impl PdConfig {
    /// The DB host of the lab (AS 4200000001, router id 198.19.0.11), nothing else yet.
    pub fn new() -> PdConfig {
        PdConfig {
            comment: Vec::new(),
            asn: DB_ASN,
            router_id: DB_ROUTER_ID.into(),
            hold_time: None,
            listen: Vec::new(),
            peers: Vec::new(),
            services: Vec::new(),
        }
    }

    pub fn peer(mut self, p: PdPeer) -> PdConfig {
        self.peers.push(p);
        self
    }

    pub fn service(mut self, s: PdService) -> PdConfig {
        self.services.push(s);
        self
    }

    pub fn render(&self, mysql: &PdMysql) -> String {
        let mut s = String::new();
        for c in &self.comment {
            let _ = writeln!(s, "# {c}");
        }
        let _ = writeln!(s, "[bgp]");
        let _ = writeln!(s, "asn = {}", self.asn);
        let _ = writeln!(s, "router_id = {:?}", self.router_id);
        if let Some(h) = self.hold_time {
            let _ = writeln!(s, "hold_time = {h}");
        }
        if !self.listen.is_empty() {
            let _ = writeln!(s, "listen = {}", quoted_list(&self.listen));
        }
        for p in &self.peers {
            let _ = writeln!(s, "\n[[bgp.peer]]");
            let _ = writeln!(s, "name = {:?}", p.name);
            let _ = writeln!(s, "address = {:?}", p.address);
            let _ = writeln!(s, "remote_asn = {}", p.remote_asn);
            let opt = |s: &mut String, k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    let _ = writeln!(s, "{k} = {v:?}");
                }
            };
            opt(&mut s, "interface", &p.interface);
            opt(&mut s, "local_address", &p.local_address);
            if let Some(h) = p.hold_time {
                let _ = writeln!(s, "hold_time = {h}");
            }
            if p.passive {
                let _ = writeln!(s, "passive = true");
            }
            let md5 = p
                .md5_password_file
                .as_ref()
                .map(|f| f.display().to_string());
            opt(&mut s, "md5_password_file", &md5);
            if p.ttl_security {
                let _ = writeln!(s, "ttl_security = true");
            }
            if let Some(m) = p.max_prefixes {
                let _ = writeln!(s, "max_prefixes = {m}");
            }
            if let Some(r) = p.max_prefixes_restart_s {
                let _ = writeln!(s, "max_prefixes_restart_s = {r}");
            }
            opt(&mut s, "next_hop_ipv4", &p.next_hop_ipv4);
            opt(&mut s, "next_hop_ipv6", &p.next_hop_ipv6);
            if let Some(b) = &p.bfd {
                let _ = writeln!(s, "bfd = true");
                let num = |s: &mut String, k: &str, v: Option<u32>| {
                    if let Some(v) = v {
                        let _ = writeln!(s, "{k} = {v}");
                    }
                };
                num(&mut s, "bfd_min_tx_ms", b.min_tx_ms);
                num(&mut s, "bfd_min_rx_ms", b.min_rx_ms);
                num(&mut s, "bfd_multiplier", b.multiplier.map(u32::from));
                opt(&mut s, "bfd_auth", &b.auth);
                num(&mut s, "bfd_auth_key_id", b.auth_key_id.map(u32::from));
                let f = b.auth_key_file.as_ref().map(|f| f.display().to_string());
                opt(&mut s, "bfd_auth_key_file", &f);
            }
        }
        for svc in &self.services {
            let _ = writeln!(s, "\n[[service]]");
            let _ = writeln!(s, "name = {:?}", svc.name);
            let _ = writeln!(s, "prefixes = {}", quoted_list(&svc.prefixes));
            if !svc.communities.is_empty() {
                let _ = writeln!(s, "communities = {}", quoted_list(&svc.communities));
            }
            if !svc.large_communities.is_empty() {
                let l = quoted_list(&svc.large_communities);
                let _ = writeln!(s, "large_communities = {l}");
            }
            if let Some(m) = svc.med {
                let _ = writeln!(s, "med = {m}");
            }
            if let Some(l) = svc.local_pref {
                let _ = writeln!(s, "local_pref = {l}");
            }
            if let Some(a) = svc.as_path_prepend {
                let _ = writeln!(s, "as_path_prepend = {a}");
            }
            if let Some(n) = &svc.next_hop_ipv4 {
                let _ = writeln!(s, "next_hop_ipv4 = {n:?}");
            }
            if let Some(n) = &svc.next_hop_ipv6 {
                let _ = writeln!(s, "next_hop_ipv6 = {n:?}");
            }
            if !(svc.fallback || mysql.opts.fallback) {
                let _ = writeln!(
                    s,
                    "# No fallback route (docs/clients.md): a withdraw shows as no route here."
                );
                let _ = writeln!(s, "fallback = false");
            }
            let o = &mysql.opts;
            let _ = writeln!(s, "[service.mysql]");
            let _ = writeln!(s, "socket = {:?}", mysql.socket);
            let _ = writeln!(s, "user = {:?}", super::mariadb::PRIMARYD_USER);
            let _ = writeln!(s, "password_file = {:?}", mysql.password_file);
            let _ = writeln!(s, "interval_ms = {}", o.interval_ms);
            let _ = writeln!(s, "timeout_ms = {}", o.timeout_ms);
            let _ = writeln!(s, "rise = {}", o.rise);
            let _ = writeln!(s, "fall = {}", o.fall);
        }
        s
    }
}

// ---------- the lab ----------

pub struct Net {
    pub prefix: String,
    pub db_ns: String,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    links: Vec<Link>,
    routers: Vec<(String, Router)>,
    dbs: Vec<Arc<MariaDb>>,
    daemons: Vec<Arc<Primaryd>>,
    /// First line is the password primaryd uses for MySQL (mode 0600, as in production).
    pub password_file: PathBuf,
    created: Instant,
}

impl Net {
    /// Builds the DB namespace (`lo` with the router id and the service addresses). Links,
    /// routers, MariaDB and primaryd are added by the test.
    pub fn new() -> Net {
        require_root();
        require_tools_of(&["frr", "mariadb-server", "mariadb-client", "iproute2"]);
        clean_stale_labs_once();
        let created = Instant::now();
        let (prefix, dir) = new_lab_dir();
        let dir_path = dir.path().to_path_buf();
        let password_file = write_mysql_password(&dir_path);
        let net = Net {
            db_ns: format!("{prefix}db"),
            prefix,
            dir: Some(dir),
            dir_path,
            links: Vec::new(),
            routers: Vec::new(),
            dbs: Vec::new(),
            daemons: Vec::new(),
            password_file,
            created,
        };
        let db = net.db_ns.clone();
        add_netns(&db);
        ip_line(&format!("-n {db} link set lo up"));
        ip_line(&format!("-n {db} addr add {DB_ROUTER_ID}/32 dev lo"));
        for a in SERVICE_ADDRESSES {
            ip_line(&format!("-n {db} addr add {a} dev lo"));
        }
        net
    }

    /// The lab's folder: configs, logs, MariaDB data dirs.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Time since `Net::new` began.
    pub fn age(&self) -> Duration {
        self.created.elapsed()
    }

    /// Adds the next link (and its router namespace, forwarding on), addressed as in the
    /// module docs.
    pub fn add_link(&mut self) -> Link {
        let n = u8::try_from(self.links.len() + 1).expect("at most 255 links");
        let l = Link::new(&self.prefix, n);
        let (r, db) = (l.router_ns.clone(), self.db_ns.clone());
        // Recorded first: Drop removes the namespace whatever step below fails.
        self.links.push(l.clone());
        add_netns(&r);
        for s in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
            ip_line(&format!("netns exec {r} sysctl -qw {s}"));
        }
        ip_line(&format!("-n {r} link set lo up"));
        // Both ends are created inside their namespaces: nothing lands in the host's, and
        // the names only need to be unique per namespace.
        ip_line(&format!(
            "link add {} netns {r} type veth peer name {} netns {db}",
            l.router_if, l.db_if
        ));
        for (ns, dev, v4, v6, ll) in [
            (&r, &l.router_if, &l.router_v4, &l.router_v6, &l.router_ll),
            (&db, &l.db_if, &l.db_v4, &l.db_v6, &l.db_ll),
        ] {
            // Only our static link-local address, no kernel-generated one beside it.
            ip_line(&format!("-n {ns} link set {dev} addrgenmode none"));
            ip_line(&format!("-n {ns} addr add {v4}/31 dev {dev}"));
            ip_line(&format!("-n {ns} addr add {v6}/127 dev {dev} nodad"));
            ip_line(&format!("-n {ns} addr add {ll}/64 dev {dev} nodad"));
            ip_line(&format!("-n {ns} link set {dev} up"));
        }
        l
    }

    fn router_dir(&self, name: &str) -> PathBuf {
        self.dir_path.join(name)
    }

    fn push_router(&mut self, name: &str, r: Router) {
        assert!(
            self.routers.iter().all(|(n, _)| n != name),
            "router {name} exists"
        );
        self.routers.push((name.to_string(), r));
    }

    /// Starts FRR (zebra, bgpd) on `link` with `bgpd_conf` (e.g. [`super::FrrConfig::render`]).
    pub fn start_frr(&mut self, name: &str, link: &Link, bgpd_conf: &str) -> &Frr {
        let t = Instant::now();
        let frr = Frr::start(name, &link.router_ns, self.router_dir(name), bgpd_conf);
        eprintln!("lab {}: FRR {name} up in {:.3?}", self.prefix, t.elapsed());
        self.push_router(name, Router::Frr(frr));
        self.frr(name)
    }

    /// Starts BIRD on `link` with `conf` (e.g. [`super::BirdConfig::render`]).
    pub fn start_bird(&mut self, name: &str, link: &Link, conf: &str) -> &Bird {
        require_tools_of(&["bird2"]);
        let t = Instant::now();
        let bird = Bird::start(name, &link.router_ns, self.router_dir(name), conf);
        eprintln!("lab {}: BIRD {name} up in {:.3?}", self.prefix, t.elapsed());
        self.push_router(name, Router::Bird(bird));
        self.bird(name)
    }

    /// Starts gobgpd on `link` with `conf` (e.g. [`super::GobgpConfig::render`]).
    pub fn start_gobgp(&mut self, name: &str, link: &Link, conf: &str) -> &Gobgp {
        require_tools_of(&["gobgpd"]);
        let t = Instant::now();
        let g = Gobgp::start(name, &link.router_ns, self.router_dir(name), conf);
        eprintln!(
            "lab {}: GoBGP {name} up in {:.3?}",
            self.prefix,
            t.elapsed()
        );
        self.push_router(name, Router::Gobgp(g));
        self.gobgp(name)
    }

    fn router(&self, name: &str) -> &Router {
        self.routers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("no router {name} in this lab"))
    }

    #[track_caller]
    pub fn frr(&self, name: &str) -> &Frr {
        match self.router(name) {
            Router::Frr(r) => r,
            _ => panic!("{name} is not FRR"),
        }
    }

    #[track_caller]
    pub fn bird(&self, name: &str) -> &Bird {
        match self.router(name) {
            Router::Bird(r) => r,
            _ => panic!("{name} is not BIRD"),
        }
    }

    #[track_caller]
    pub fn gobgp(&self, name: &str) -> &Gobgp {
        match self.router(name) {
            Router::Gobgp(r) => r,
            _ => panic!("{name} is not GoBGP"),
        }
    }

    /// Adds a MariaDB instance in the DB namespace, as [`super::Lab::add_mariadb`].
    pub fn add_mariadb(&mut self, opts: MariaDbOpts) -> Arc<MariaDb> {
        let name = format!("db{}", self.dbs.len());
        let t = Instant::now();
        let db = Arc::new(MariaDb::install(&self.dir_path, &self.db_ns, &name, opts));
        self.dbs.push(db.clone());
        if opts.start {
            db.start();
        }
        eprintln!(
            "lab {}: MariaDB {name} ready in {:.3?}",
            self.prefix,
            t.elapsed()
        );
        db
    }

    /// Writes a secret (e.g. a TCP MD5 key) to a 0600 file in the lab folder.
    pub fn write_secret(&self, name: &str, secret: &str) -> PathBuf {
        let path = self.dir_path.join(name);
        fs::write(&path, format!("{secret}\n")).unwrap();
        chmod(&path, 0o600);
        path
    }

    /// primaryd's config for `cfg`, its services checking `db` with `opts`.
    pub fn primaryd_config(&self, cfg: &PdConfig, db: &MariaDb, opts: PrimarydOpts) -> String {
        cfg.render(&PdMysql {
            socket: db.socket.display().to_string(),
            password_file: self.password_file.display().to_string(),
            opts,
        })
    }

    /// Starts primaryd in the DB namespace with `config`; the daemon's `--check` must accept it.
    pub fn start_primaryd(&mut self, config: &str) -> Arc<Primaryd> {
        let n = self.daemons.len();
        let p = Arc::new(Primaryd::start(&self.dir_path, &self.db_ns, n, config, &[]));
        self.daemons.push(p.clone());
        p
    }

    /// Panics (with the log) if a primaryd the test did not signal has exited, or a router
    /// daemon has: a dead daemon announces nothing, which must not pass for a withdraw.
    #[track_caller]
    pub fn assert_alive(&self) {
        for p in &self.daemons {
            p.assert_not_died();
        }
        for (_, r) in &self.routers {
            r.check_alive();
        }
    }

    /// [`super::wait_for`] that also fails as soon as a daemon died.
    #[track_caller]
    pub fn wait_for<T>(&self, within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        super::wait_for(within, what, || {
            self.assert_alive();
            f()
        })
    }

    /// [`super::wait_until`] that also fails as soon as a daemon died.
    #[track_caller]
    pub fn wait_until(
        &self,
        within: Duration,
        what: &str,
        mut cond: impl FnMut() -> bool,
    ) -> Duration {
        super::wait_until(within, what, || {
            self.assert_alive();
            cond()
        })
    }

    /// Checks `invariant` at every poll for the whole `window` (and that no daemon died).
    #[track_caller]
    pub fn hold_for(&self, window: Duration, what: &str, mut invariant: impl FnMut() -> bool) {
        let start = Instant::now();
        hold_until(
            window + STEP,
            what,
            || {
                self.assert_alive();
                invariant()
            },
            &format!("{window:?} passed"),
            || start.elapsed() >= window,
        );
    }

    /// Everything a post-mortem needs: primaryd's logs, each router's view, the kernel tables
    /// and TCP sockets of every namespace.
    pub fn diagnostics(&self) -> String {
        let mut out = format!(
            "===== lab {} ({}), age {:.3?} =====\n",
            self.prefix,
            self.dir_path.display(),
            self.age()
        );
        for p in &self.daemons {
            let _ = writeln!(out, "----- primaryd log {} -----", p.log_path().display());
            out.push_str(&tail(p.log_path(), 300));
        }
        for (_, r) in &self.routers {
            out.push_str(&r.diagnostics());
        }
        let mut namespaces: Vec<&str> = self.links.iter().map(|l| l.router_ns.as_str()).collect();
        namespaces.push(&self.db_ns);
        for ns in namespaces {
            for family in ["-4", "-6"] {
                let _ = writeln!(out, "----- ip {family} -n {ns} route -----");
                let r = run(Command::new("ip").args([family, "-n", ns, "route"]));
                out.push_str(&String::from_utf8_lossy(&r.stdout));
            }
            let _ = writeln!(out, "----- ss -tan in {ns} -----");
            let r = run(Command::new("ip").args(["netns", "exec", ns, "ss", "-tan"]));
            out.push_str(&String::from_utf8_lossy(&r.stdout));
        }
        for db in &self.dbs {
            let _ = writeln!(out, "----- MariaDB {} error log -----", db.name);
            out.push_str(&tail(&db.error_log(), 30));
        }
        let _ = writeln!(out, "===== end of lab {} =====", self.prefix);
        out
    }
}

impl Drop for Net {
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
        self.routers.clear();
        for l in &self.links {
            destroy_netns(&l.router_ns);
        }
        destroy_netns(&self.db_ns);
        close_lab_dir(&self.prefix, self.dir.take());
    }
}

fn add_netns(ns: &str) {
    {
        let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        ip_line(&format!("netns add {ns}"));
    }
    // Before any interface exists, so new ones inherit it: static addresses are usable at
    // once, without a second of duplicate address detection.
    for s in [
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
    ] {
        ip_line(&format!("netns exec {ns} sysctl -qw {s}"));
    }
}
