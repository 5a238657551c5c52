//! Configuration: strict TOML (unknown keys are errors) parsed into raw structs, then validated
//! into the typed [`Config`] the rest of the daemon uses. Every problem is reported as
//! `key: problem` with its line and column so the operator can find it; `--check` prints all
//! of them at once. Reading is bounded (size, and a deadline: `read.rs`), and what the daemon
//! needs from the host to start (secret files, the socket group, interfaces, local listen
//! addresses: `host.rs`) is checked by `--check`, start-up and reload alike ([`load_all`]).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde::Deserialize;

use crate::bgp::message::{Community, LargeCommunity};
use crate::blocking::{self, BlockingError, Lane};

mod de;
mod host;
mod locate;
pub(crate) mod read;

pub use locate::Position;
pub use read::{MAX_CONFIG_LEN, MAX_SECRET_LEN};

/// How long reading the configuration and its secret files may take (start-up, `--check`,
/// reload): they are small local files, so longer means a FIFO without a writer or a hung
/// file system.
pub const READ_DEADLINE: Duration = Duration::from_secs(3);

/// Default BGP hold time in seconds (the FRR "datacenter" profile uses 9/3 as well).
pub const DEFAULT_HOLD_TIME: u16 = 9;
pub const DEFAULT_BGP_PORT: u16 = 179;
pub const DEFAULT_MYSQL_PORT: u16 = 3306;
/// A ToR sends us a handful of routes (a default, maybe loopbacks); far more means a leak.
pub const DEFAULT_MAX_PREFIXES: u32 = 1000;
pub const DEFAULT_MAX_PREFIXES_RESTART: Duration = Duration::from_secs(60);
pub const DEFAULT_STATE_DIR: &str = "/var/lib/primaryd";
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/primaryd/primaryd.sock";
/// Control clients connected at once; one more is refused with an error.
pub const DEFAULT_CONTROL_MAX_CLIENTS: usize = 64;
/// A replica lagging more than this (seconds) is withdrawn, unless `max_lag_s` says otherwise.
pub const DEFAULT_MAX_LAG_S: u64 = 30;
/// Global Administrator of the large communities that mark service routes (docs/safety.md).
pub const DEFAULT_COMMUNITY_ASN: u32 = 4_200_000_000;
pub const DEFAULT_INITIAL_ROUTES_WAIT: Duration = Duration::from_millis(1000);

/// One problem found in a config file, with the dotted key it concerns and, when the key is
/// in the file, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub problem: String,
    pub at: Option<Position>,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            key: key.into(),
            problem: problem.into(),
            at: None,
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// A config file that could not be loaded; `Display` prints one `FILE:LINE:COLUMN: key:
/// problem` per line (`FILE: key: problem` for a key not in the file).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading did not finish in time (or an earlier attempt is still stuck).
    #[error(
        "{}: cannot read: {reason} (a FIFO without a writer, or a hung file system?)",
        path.display()
    )]
    Blocked {
        path: PathBuf,
        reason: BlockingError,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

fn render_problems(path: &Path, problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| match p.at {
            Some(at) => format!("{}:{at}: {p}", path.display()),
            None => format!("{}: {p}", path.display()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bgp: BgpConfig,
    pub control: ControlConfig,
    pub metrics: MetricsConfig,
    pub services: Vec<ServiceConfig>,
}

/// `[control]`: the control socket `primaryctl` uses, and where state that must survive a
/// restart (drains) is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    pub socket: PathBuf,
    /// Group given the socket (mode 0660), so its members may use primaryctl.
    pub socket_group: Option<String>,
    pub state_dir: PathBuf,
    /// Clients connected at once (fewer when the open-file limit is low).
    pub max_clients: usize,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            socket_group: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            max_clients: DEFAULT_CONTROL_MAX_CLIENTS,
        }
    }
}

/// `[metrics]`: where Prometheus scrapes `/metrics`; none: no endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BgpConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    /// Addresses to accept BGP connections on (passive peers, collisions); none: no listener.
    pub listen: Vec<SocketAddr>,
    pub peers: Vec<PeerConfig>,
    /// Global Administrator of the term marks (large communities) on service routes; the same
    /// on every DB host.
    pub community_asn: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    pub name: String,
    pub address: IpAddr,
    /// Interface of a link-local (fe80::/10) peer address.
    pub interface: Option<String>,
    pub remote_asn: u32,
    /// Source address to bind before connecting; the kernel picks one when absent.
    pub local_address: Option<IpAddr>,
    pub port: u16,
    pub hold_time: u16,
    /// Only accept the peer's connection, never connect.
    pub passive: bool,
    /// File holding the TCP MD5 signature key (RFC 2385), first line.
    pub md5_password_file: Option<PathBuf>,
    /// GTSM (RFC 5082): send with TTL 255 and require at least 254 on what we receive.
    pub ttl_security: bool,
    /// More prefixes than this from the peer ends the session (Cease, RFC 4486).
    pub max_prefixes: u32,
    /// How long to wait before reconnecting after the prefix limit was hit.
    pub max_prefixes_restart: Duration,
    /// Next hops for families other than the session's own (and overrides for it).
    pub next_hop_ipv4: Option<Ipv4Addr>,
    pub next_hop_ipv6: Option<Ipv6Addr>,
    /// How long to wait for the peer's End-of-RIB before announcing on a new session anyway.
    pub initial_routes_wait: Duration,
    /// BFD on the session's path (RFC 5880/5881); None: off.
    pub bfd: Option<crate::bfd::config::BfdConfig>,
}

impl PeerConfig {
    /// Reads the MD5 key file; called at start-up and by `--check`.
    pub fn read_md5_password(&self) -> Result<Option<String>, std::io::Error> {
        self.md5_password_file
            .as_deref()
            .map(|p| read::secret_first_line(p, false))
            .transpose()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    pub name: String,
    /// Host routes: IPv4 /32s and IPv6 /128s.
    pub prefixes: Vec<IpNetwork>,
    pub role: Role,
    pub attributes: RouteAttributes,
    pub mysql: MysqlConfig,
    /// While this file exists the service is withdrawn (ExaBGP-style disable file).
    pub disable_file: Option<PathBuf>,
    /// Add missing prefix addresses to `lo` at start-up (and leave them at exit).
    pub manage_addresses: bool,
    /// What to do about a rival primary and a restarted server (primary role only).
    pub policy: crate::safety::Policy,
    /// The fallback announcement while not the primary (docs/clients.md).
    pub fallback: Fallback,
}

/// `[service] fallback` and `fallback_prepend`: while the service is not announced by this
/// host and its refusal is installed, the prefixes are announced as a fallback that can never
/// beat a primary's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback {
    pub enabled: bool,
    /// Extra copies of our ASN on the fallback's AS_PATH, beyond `as_path_prepend`.
    pub prepend: u8,
}

/// A fallback's path is this many ASNs longer than the primary's: more than the path lengths
/// of two hosts of one fabric can differ (a Clos fabric's longest and shortest paths differ by
/// 2-4 hops), with room to spare.
pub const DEFAULT_FALLBACK_PREPEND: u8 = 10;

impl Default for Fallback {
    fn default() -> Fallback {
        Fallback {
            enabled: true,
            prepend: DEFAULT_FALLBACK_PREPEND,
        }
    }
}

/// What a service's routes carry besides the prefix; every peer gets the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteAttributes {
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub med: Option<u32>,
    /// Sent to iBGP peers only (100 when unset, as RFC 4271 requires one there).
    pub local_pref: Option<u32>,
    /// Extra copies of our ASN in the AS_PATH on eBGP sessions.
    pub as_path_prepend: u8,
    pub next_hop_ipv4: Option<Ipv4Addr>,
    pub next_hop_ipv6: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Announce only while the local server is a healthy, writable primary.
    Primary,
    /// Reader anycast: announce while the server is a read-only replica whose replication
    /// runs with lag <= `max_lag_s`. Every healthy replica announces the same prefix (ECMP).
    Replica,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MysqlEndpoint {
    Socket(PathBuf),
    Tcp { host: String, port: u16 },
}

impl fmt::Display for MysqlEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MysqlEndpoint::Socket(p) => write!(f, "unix:{}", p.display()),
            MysqlEndpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlConfig {
    pub endpoint: MysqlEndpoint,
    pub user: String,
    /// File holding the password (first line, trailing newline stripped); none: no password.
    pub password_file: Option<PathBuf>,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Replica role: the largest replication lag that still counts as healthy.
    pub max_lag: Duration,
    /// Flap damping: at least this long between two announcements of the service.
    pub min_up_interval: Duration,
    /// `db.table` of the heartbeat row upserted by every check (primary role only).
    pub write_probe_table: Option<WriteProbeTable>,
    /// `db.table` of the promotion terms (primary role only; see health::term).
    pub term_table: Option<WriteProbeTable>,
    /// TLS to the server (TCP only).
    pub tls: Option<TlsConfig>,
    /// Park a second connection in `SELECT SLEEP(...)` so a server that dies or shuts down
    /// is noticed when it happens, not at the next check.
    pub watch_connection: bool,
}

/// A validated `db.table` name (letters, digits, `_`, `$`; at most 64 each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteProbeTable {
    pub database: String,
    pub table: String,
}

impl fmt::Display for WriteProbeTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM CA bundle to verify the server with; none: the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Verify the certificate chain but not that it names the host (servers whose
    /// certificate does not carry the address primaryd dials, e.g. 127.0.0.1).
    pub skip_hostname_check: bool,
}

impl MysqlConfig {
    /// A config with every optional key at its default, for `endpoint` and `user`.
    pub fn new(endpoint: MysqlEndpoint, user: impl Into<String>) -> MysqlConfig {
        MysqlConfig {
            endpoint,
            user: user.into(),
            password_file: None,
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(1000),
            rise: 2,
            fall: 1,
            max_lag: Duration::from_secs(DEFAULT_MAX_LAG_S),
            min_up_interval: Duration::ZERO,
            write_probe_table: None,
            term_table: None,
            tls: None,
            watch_connection: true,
        }
    }

    /// Reads the password file. Called at start-up so a missing file is an error then, and
    /// so is a file that group or others may read (a password must not be world-readable).
    pub fn read_password(&self) -> Result<Option<String>, std::io::Error> {
        self.password_file
            .as_deref()
            .map(|p| read::secret_first_line(p, true))
            .transpose()
    }
}

/// Secrets read from the files the config names, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Per service: the MySQL password.
    pub mysql: Vec<Option<String>>,
    /// Per peer: the TCP MD5 key.
    pub md5: Vec<Option<String>>,
    /// Per peer: the BFD authentication key.
    pub bfd_keys: Vec<Option<crate::bfd::auth::AuthKey>>,
}

impl Config {
    /// Reads every secret file. Problems name the key, so `--check` and start-up report them
    /// like any other config error.
    pub fn read_secrets(&self) -> Result<Secrets, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let unreadable = |key: String, path: Option<&Path>, e: std::io::Error| {
            let path = path.unwrap_or(Path::new(""));
            // Our own refusals (a secret readable by others) carry their text; OS errors not.
            let problem = match e.get_ref() {
                Some(_) => format!("refusing {}: {e}", path.display()),
                None => format!("cannot read {}: {e}", path.display()),
            };
            ConfigProblem::new(key, problem)
        };
        let mut secrets = Secrets::default();
        for (i, s) in self.services.iter().enumerate() {
            let key = format!("service[{i}].mysql.password_file");
            let p = s.mysql.read_password().unwrap_or_else(|e| {
                problems.push(unreadable(key, s.mysql.password_file.as_deref(), e));
                None
            });
            secrets.mysql.push(p);
        }
        for (i, peer) in self.bgp.peers.iter().enumerate() {
            let key = format!("bgp.peer[{i}].md5_password_file");
            let path = peer.md5_password_file.as_deref();
            let p = peer.read_md5_password().unwrap_or_else(|e| {
                problems.push(unreadable(key.clone(), path, e));
                None
            });
            // The kernel takes 1..=80 bytes; anything else would fail every connect, forever.
            let max = crate::bgp::socket::MD5_MAX_KEY_LEN;
            if let (Some(k), Some(path)) = (&p, path) {
                if k.is_empty() || k.len() > max {
                    let problem = format!(
                        "the key in {} is {} bytes: TCP MD5 keys are 1..={max} bytes",
                        path.display(),
                        k.len(),
                    );
                    problems.push(ConfigProblem::new(key, problem));
                }
            }
            secrets.md5.push(p);
            let auth = peer.bfd.as_ref().and_then(|b| b.auth.as_ref());
            let k = match auth.map(|a| (a, a.read_key())) {
                Some((_, Ok(k))) => Some(k),
                Some((a, Err(e))) => {
                    let key = format!("bgp.peer[{i}].bfd_auth_key_file");
                    unreadable(key, Some(&a.key_file), e);
                    None
                }
                None => None,
            };
            secrets.bfd_keys.push(k);
        }
        if problems.is_empty() {
            Ok(secrets)
        } else {
            Err(problems)
        }
    }
}

// ---------- raw (as written in the file) ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    bgp: RawBgp,
    #[serde(default)]
    control: RawControl,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default, rename = "service")]
    services: Vec<RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBgp {
    asn: i64,
    router_id: String,
    hold_time: Option<i64>,
    #[serde(default)]
    listen: Vec<String>,
    #[serde(default, rename = "peer")]
    peers: Vec<RawPeer>,
    community_asn: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    name: String,
    address: String,
    interface: Option<String>,
    remote_asn: i64,
    local_address: Option<String>,
    port: Option<i64>,
    hold_time: Option<i64>,
    #[serde(default)]
    passive: bool,
    md5_password_file: Option<String>,
    #[serde(default)]
    ttl_security: bool,
    max_prefixes: Option<i64>,
    max_prefixes_restart_s: Option<i64>,
    next_hop_ipv4: Option<String>,
    next_hop_ipv6: Option<String>,
    initial_routes_wait_ms: Option<i64>,
    #[serde(default)]
    bfd: bool,
    bfd_min_tx_ms: Option<i64>,
    bfd_min_rx_ms: Option<i64>,
    bfd_multiplier: Option<i64>,
    bfd_auth: Option<String>,
    bfd_auth_key_id: Option<i64>,
    bfd_auth_key_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<String>,
    socket_group: Option<String>,
    state_dir: Option<String>,
    max_clients: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    prefixes: Vec<String>,
    role: Option<String>,
    #[serde(default)]
    communities: Vec<String>,
    #[serde(default)]
    large_communities: Vec<String>,
    med: Option<i64>,
    local_pref: Option<i64>,
    as_path_prepend: Option<i64>,
    next_hop_ipv4: Option<String>,
    next_hop_ipv6: Option<String>,
    disable_file: Option<String>,
    #[serde(default)]
    manage_addresses: bool,
    on_conflict: Option<String>,
    on_restart: Option<String>,
    fallback: Option<bool>,
    fallback_prepend: Option<i64>,
    mysql: RawMysql,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMysql {
    socket: Option<String>,
    host: Option<String>,
    port: Option<i64>,
    user: String,
    password_file: Option<String>,
    interval_ms: Option<i64>,
    timeout_ms: Option<i64>,
    rise: Option<i64>,
    fall: Option<i64>,
    max_lag_s: Option<i64>,
    min_up_interval_ms: Option<i64>,
    write_probe_table: Option<String>,
    term_table: Option<String>,
    #[serde(default)]
    tls: bool,
    tls_ca_file: Option<String>,
    #[serde(default)]
    tls_skip_hostname_check: bool,
    #[serde(default = "yes")]
    watch_connection: bool,
}

fn yes() -> bool {
    true
}

/// Loads and validates a config file (bounded in size; see [`load_all`] for what start-up
/// checks besides).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read::config_text(path)?;
    parse(&text).map_err(|problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

/// What start-up, `--check` and reload read: the validated config, its secret files, and the
/// host facts the daemon needs to start (see `host.rs`). Every problem is reported, each with
/// its position in the file.
pub fn load_all(path: &Path) -> Result<(Config, Secrets), ConfigError> {
    let text = read::config_text(path)?;
    let invalid = |problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let config = parse(&text).map_err(invalid)?;
    let mut problems = Vec::new();
    let secrets = config.read_secrets().map_err(|p| problems.extend(p)).ok();
    problems.extend(host::check(&config));
    match secrets {
        Some(secrets) if problems.is_empty() => Ok((config, secrets)),
        _ => {
            let mut problems = locate::locate_all(&text, problems);
            problems.sort_by_key(|p| p.at.map_or((usize::MAX, 0), |a| (a.line, a.column)));
            Err(invalid(problems))
        }
    }
}

/// [`load_all`] on a thread of its own, given up after `deadline` (for `--check` and
/// start-up: a FIFO without a writer must not hang them).
pub fn load_all_within(path: &Path, deadline: Duration) -> Result<(Config, Secrets), ConfigError> {
    let owned = path.to_path_buf();
    blocking::run_sync(deadline, move || load_all(&owned)).unwrap_or_else(|reason| {
        Err(ConfigError::Blocked {
            path: path.to_path_buf(),
            reason,
        })
    })
}

/// [`load_all`] off the event loop on `lane` (reload): never blocks the runtime; gives up
/// after `deadline`, and refuses at once while an earlier read is still stuck.
pub async fn load_all_on(
    lane: &Lane,
    path: &Path,
    deadline: Duration,
) -> Result<(Config, Secrets), ConfigError> {
    let owned = path.to_path_buf();
    lane.run(deadline, move || load_all(&owned))
        .await
        .unwrap_or_else(|reason| {
            Err(ConfigError::Blocked {
                path: path.to_path_buf(),
                reason,
            })
        })
}

/// Parses and validates config text; returns every problem found, with its position.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigProblem>> {
    let doc =
        toml::de::DeTable::parse(text).map_err(|e| vec![de::toml_problem(text, "(file)", &e)])?;
    let raw: RawConfig = de::deserialize(text, doc)?;
    let mut v = Validator::default();
    let config = v.config(raw);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(locate::locate_all(text, v.problems))
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<ConfigProblem>,
}

impl Validator {
    fn bad(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(ConfigProblem::new(key, problem));
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let bgp = self.bgp(raw.bgp);
        let control = self.control(raw.control);
        let metrics = MetricsConfig {
            listen: raw.metrics.listen.and_then(|l| {
                l.parse::<SocketAddr>()
                    .map_err(|_| {
                        self.bad(
                            "metrics.listen",
                            format!("{l:?} is not ADDRESS:PORT (e.g. \"127.0.0.1:9479\")"),
                        )
                    })
                    .ok()
            }),
        };
        let mut names = HashSet::new();
        let mut owner: Vec<(IpNetwork, String)> = Vec::new();
        let mut services = Vec::new();
        for (i, s) in raw.services.into_iter().enumerate() {
            let key = format!("service[{i}]");
            if !names.insert(s.name.clone()) {
                self.bad(
                    format!("{key}.name"),
                    format!("duplicate service name {:?}", s.name),
                );
            }
            let svc = self.service(&key, s);
            for p in &svc.prefixes {
                if let Some((_, other)) = owner.iter().find(|(q, _)| q == p) {
                    self.bad(
                        format!("{key}.prefixes"),
                        format!("{p} is already announced by service {other:?}"),
                    );
                }
                owner.push((*p, svc.name.clone()));
            }
            services.push(svc);
        }
        if services.is_empty() {
            self.bad("service", "no [[service]] configured: nothing to announce");
        }
        Config {
            bgp,
            control,
            metrics,
            services,
        }
    }

    fn asn(&mut self, key: &str, v: i64) -> u32 {
        // 0 and 23456 (AS_TRANS) are reserved and never a valid speaker ASN.
        match u32::try_from(v) {
            Ok(0) => {
                self.bad(key, "ASN 0 is reserved");
                0
            }
            Ok(23456) => {
                self.bad(key, "ASN 23456 is AS_TRANS, not a usable ASN");
                0
            }
            Ok(n) => n,
            Err(_) => {
                self.bad(key, format!("{v} is not an ASN (1..=4294967295)"));
                0
            }
        }
    }

    fn hold_time(&mut self, key: &str, v: Option<i64>, default: u16) -> u16 {
        match v {
            None => default,
            Some(h) if h == 0 || (3..=65535).contains(&h) => h as u16,
            Some(h) => {
                self.bad(
                    key,
                    format!("{h} is invalid: must be 0 or 3..=65535 seconds"),
                );
                default
            }
        }
    }

    fn bgp(&mut self, raw: RawBgp) -> BgpConfig {
        let asn = self.asn("bgp.asn", raw.asn);
        let router_id = match raw.router_id.parse::<Ipv4Addr>() {
            Ok(r) if r.is_unspecified() => {
                self.bad("bgp.router_id", "0.0.0.0 is not a valid router id");
                r
            }
            Ok(r) => r,
            Err(_) => {
                self.bad(
                    "bgp.router_id",
                    format!("{:?} is not an IPv4 address", raw.router_id),
                );
                Ipv4Addr::UNSPECIFIED
            }
        };
        let hold_time = self.hold_time("bgp.hold_time", raw.hold_time, DEFAULT_HOLD_TIME);
        let mut listen = Vec::new();
        for (i, l) in raw.listen.iter().enumerate() {
            match l.parse::<SocketAddr>() {
                Ok(a) => listen.push(a),
                Err(_) => self.bad(
                    format!("bgp.listen[{i}]"),
                    format!("{l:?} is not ADDRESS:PORT (e.g. \"0.0.0.0:179\", \"[::]:179\")"),
                ),
            }
        }
        if raw.peers.is_empty() {
            self.bad("bgp.peer", "no [[bgp.peer]] configured");
        }
        let mut names = HashSet::new();
        let mut peers = Vec::new();
        for (i, p) in raw.peers.into_iter().enumerate() {
            let key = format!("bgp.peer[{i}]");
            if !names.insert(p.name.clone()) {
                self.bad(
                    format!("{key}.name"),
                    format!("duplicate peer name {:?}", p.name),
                );
            }
            let peer = self.peer(&key, p, hold_time);
            // Two sessions to one router: each would close the other (Cease), for ever.
            let same = |q: &&PeerConfig| q.address == peer.address && q.interface == peer.interface;
            if let Some(other) = peers.iter().find(same) {
                self.bad(
                    format!("{key}.address"),
                    format!(
                        "{} is already the address of peer {:?}",
                        peer.address, other.name
                    ),
                );
            }
            if peer.passive && listen.is_empty() {
                self.bad(
                    format!("{key}.passive"),
                    "a passive peer needs [bgp] listen to accept its connection",
                );
            }
            peers.push(peer);
        }
        let community_asn = match raw.community_asn {
            None => DEFAULT_COMMUNITY_ASN,
            Some(v) => self.asn("bgp.community_asn", v),
        };
        BgpConfig {
            asn,
            router_id,
            hold_time,
            listen,
            peers,
            community_asn,
        }
    }

    fn ip(&mut self, key: &str, v: &str) -> IpAddr {
        v.parse().unwrap_or_else(|_| {
            self.bad(key, format!("{v:?} is not an IP address"));
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        })
    }

    fn port(&mut self, key: &str, v: Option<i64>, default: u16) -> u16 {
        match v {
            None => default,
            Some(p) if (1..=65535).contains(&p) => p as u16,
            Some(p) => {
                self.bad(key, format!("{p} is not a port (1..=65535)"));
                default
            }
        }
    }

    fn ipv4(&mut self, key: &str, v: Option<&str>) -> Option<Ipv4Addr> {
        let v = v?;
        v.parse()
            .map_err(|_| self.bad(key, format!("{v:?} is not an IPv4 address")))
            .ok()
    }

    fn ipv6(&mut self, key: &str, v: Option<&str>) -> Option<Ipv6Addr> {
        let v = v?;
        v.parse()
            .map_err(|_| self.bad(key, format!("{v:?} is not an IPv6 address")))
            .ok()
    }

    fn peer(&mut self, key: &str, raw: RawPeer, default_hold: u16) -> PeerConfig {
        if raw.name.is_empty() {
            self.bad(format!("{key}.name"), "must not be empty");
        }
        let address = self.ip(&format!("{key}.address"), &raw.address);
        let link_local = matches!(address, IpAddr::V6(a) if a.is_unicast_link_local());
        match (&raw.interface, link_local) {
            (None, true) => self.bad(
                format!("{key}.interface"),
                "required with a link-local peer address",
            ),
            (Some(_), false) => self.bad(
                format!("{key}.interface"),
                "only valid with a link-local (fe80::/10) peer address",
            ),
            _ => {}
        }
        let local_address = raw
            .local_address
            .as_deref()
            .map(|a| self.ip(&format!("{key}.local_address"), a));
        if let Some(l) = local_address {
            if l.is_ipv4() != address.is_ipv4() {
                self.bad(
                    format!("{key}.local_address"),
                    "address family differs from the peer address",
                );
            }
        }
        let max_prefixes = match raw.max_prefixes {
            None => DEFAULT_MAX_PREFIXES,
            Some(n) if (1..=u32::MAX as i64).contains(&n) => n as u32,
            Some(n) => {
                self.bad(
                    format!("{key}.max_prefixes"),
                    format!("{n} is invalid: must be 1..=4294967295"),
                );
                DEFAULT_MAX_PREFIXES
            }
        };
        let restart_key = format!("{key}.max_prefixes_restart_s");
        let max_prefixes_restart = match raw.max_prefixes_restart_s {
            None => DEFAULT_MAX_PREFIXES_RESTART,
            Some(n) if (1..=86400).contains(&n) => Duration::from_secs(n as u64),
            Some(n) => {
                self.bad(
                    restart_key,
                    format!("{n} is invalid: must be 1..=86400 seconds"),
                );
                DEFAULT_MAX_PREFIXES_RESTART
            }
        };
        let (bfd, bfd_problems) = crate::bfd::config::validate(
            key,
            crate::bfd::config::RawPeerBfd {
                bfd: raw.bfd,
                min_tx_ms: raw.bfd_min_tx_ms,
                min_rx_ms: raw.bfd_min_rx_ms,
                multiplier: raw.bfd_multiplier,
                auth: raw.bfd_auth,
                auth_key_id: raw.bfd_auth_key_id,
                auth_key_file: raw.bfd_auth_key_file,
            },
        );
        self.problems.extend(bfd_problems);
        PeerConfig {
            name: raw.name,
            address,
            interface: raw.interface,
            remote_asn: self.asn(&format!("{key}.remote_asn"), raw.remote_asn),
            local_address,
            port: self.port(&format!("{key}.port"), raw.port, DEFAULT_BGP_PORT),
            hold_time: self.hold_time(&format!("{key}.hold_time"), raw.hold_time, default_hold),
            passive: raw.passive,
            md5_password_file: raw.md5_password_file.map(|p| {
                self.absolute_path(&format!("{key}.md5_password_file"), Some(p), PathBuf::new())
            }),
            ttl_security: raw.ttl_security,
            max_prefixes,
            max_prefixes_restart,
            next_hop_ipv4: self.ipv4(
                &format!("{key}.next_hop_ipv4"),
                raw.next_hop_ipv4.as_deref(),
            ),
            next_hop_ipv6: self.ipv6(
                &format!("{key}.next_hop_ipv6"),
                raw.next_hop_ipv6.as_deref(),
            ),
            initial_routes_wait: self.initial_routes_wait(key, raw.initial_routes_wait_ms),
            bfd,
        }
    }

    fn initial_routes_wait(&mut self, key: &str, v: Option<i64>) -> Duration {
        match v {
            None => DEFAULT_INITIAL_ROUTES_WAIT,
            Some(ms) if (100..=60_000).contains(&ms) => Duration::from_millis(ms as u64),
            Some(ms) => {
                self.bad(
                    format!("{key}.initial_routes_wait_ms"),
                    format!("{ms} is invalid: must be 100..=60000 ms"),
                );
                DEFAULT_INITIAL_ROUTES_WAIT
            }
        }
    }

    /// `on_conflict` and `on_restart`: what the split-brain rules do (primary role only).
    fn safety_policy(&mut self, key: &str, raw: &RawService, role: Role) -> crate::safety::Policy {
        use crate::safety::{OnConflict, OnRestart};
        let mut policy = crate::safety::Policy::default();
        for (name, value) in [
            ("on_conflict", &raw.on_conflict),
            ("on_restart", &raw.on_restart),
        ] {
            let Some(value) = value.as_deref() else {
                continue;
            };
            let pkey = format!("{key}.{name}");
            if role != Role::Primary {
                self.bad(pkey, "only valid with role = \"primary\"");
                continue;
            }
            match (name, value) {
                ("on_conflict", "withdraw") => policy.on_conflict = OnConflict::Withdraw,
                ("on_conflict", "fence") => policy.on_conflict = OnConflict::Fence,
                ("on_restart", "hold") => policy.on_restart = OnRestart::Hold,
                ("on_restart", "announce-if-newest") => {
                    policy.on_restart = OnRestart::AnnounceIfNewest
                }
                ("on_conflict", v) => {
                    self.bad(pkey, format!("{v:?} is not \"withdraw\" or \"fence\""))
                }
                (_, v) => self.bad(
                    pkey,
                    format!("{v:?} is not \"hold\" or \"announce-if-newest\""),
                ),
            }
        }
        policy
    }

    fn optional_u32(&mut self, key: &str, v: Option<i64>) -> Option<u32> {
        let v = v?;
        u32::try_from(v)
            .map_err(|_| self.bad(key, format!("{v} is invalid: must be 0..=4294967295")))
            .ok()
    }

    fn route_attributes(&mut self, key: &str, raw: &RawService) -> RouteAttributes {
        let mut communities = Vec::new();
        for (i, c) in raw.communities.iter().enumerate() {
            match parse_community(c) {
                Some(c) => communities.push(c),
                None => self.bad(
                    format!("{key}.communities[{i}]"),
                    format!("{c:?} is not a community: ASN:VALUE, both 0..=65535"),
                ),
            }
        }
        let mut large_communities = Vec::new();
        for (i, c) in raw.large_communities.iter().enumerate() {
            match parse_large_community(c) {
                Some(c) => large_communities.push(c),
                None => self.bad(
                    format!("{key}.large_communities[{i}]"),
                    format!(
                        "{c:?} is not a large community: GLOBAL:LOCAL1:LOCAL2, each 0..=4294967295"
                    ),
                ),
            }
        }
        let as_path_prepend = match raw.as_path_prepend {
            None => 0,
            Some(n) if (0..=16).contains(&n) => n as u8,
            Some(n) => {
                self.bad(
                    format!("{key}.as_path_prepend"),
                    format!("{n} is invalid: must be 0..=16"),
                );
                0
            }
        };
        RouteAttributes {
            communities,
            large_communities,
            med: self.optional_u32(&format!("{key}.med"), raw.med),
            local_pref: self.optional_u32(&format!("{key}.local_pref"), raw.local_pref),
            as_path_prepend,
            next_hop_ipv4: self.ipv4(
                &format!("{key}.next_hop_ipv4"),
                raw.next_hop_ipv4.as_deref(),
            ),
            next_hop_ipv6: self.ipv6(
                &format!("{key}.next_hop_ipv6"),
                raw.next_hop_ipv6.as_deref(),
            ),
        }
    }

    fn control(&mut self, raw: RawControl) -> ControlConfig {
        let d = ControlConfig::default();
        if raw.socket_group.as_deref() == Some("") {
            self.bad("control.socket_group", "must not be empty");
        }
        let max_clients = match raw.max_clients {
            None => d.max_clients,
            Some(n) if (1..=10_000).contains(&n) => n as usize,
            Some(n) => {
                self.bad(
                    "control.max_clients",
                    format!("{n} is invalid: must be 1..=10000"),
                );
                d.max_clients
            }
        };
        ControlConfig {
            socket: self.absolute_path("control.socket", raw.socket, d.socket),
            socket_group: raw.socket_group.filter(|g| !g.is_empty()),
            state_dir: self.absolute_path("control.state_dir", raw.state_dir, d.state_dir),
            max_clients,
        }
    }

    fn absolute_path(&mut self, key: &str, v: Option<String>, default: PathBuf) -> PathBuf {
        match v {
            None => default,
            Some(p) if Path::new(&p).is_absolute() => PathBuf::from(p),
            Some(p) => {
                self.bad(key, format!("{p:?} is not an absolute path"));
                default
            }
        }
    }

    fn service(&mut self, key: &str, raw: RawService) -> ServiceConfig {
        // Names end up in file names (drain state) and SQL literals (the heartbeat row).
        let name_ok = (1..=64).contains(&raw.name.len())
            && !raw.name.starts_with('.')
            && raw
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok {
            self.bad(
                format!("{key}.name"),
                format!(
                    "{:?} is invalid: 1..=64 characters of A-Z a-z 0-9 . _ - \
                     (not starting with .)",
                    raw.name
                ),
            );
        }
        let role = match raw.role.as_deref() {
            None | Some("primary") => Role::Primary,
            Some("replica") => Role::Replica,
            Some(other) => {
                self.bad(
                    format!("{key}.role"),
                    format!("{other:?} is not a role (\"primary\" or \"replica\")"),
                );
                Role::Primary
            }
        };
        if raw.prefixes.is_empty() {
            self.bad(format!("{key}.prefixes"), "at least one prefix is required");
        }
        let mut prefixes = Vec::new();
        for (j, p) in raw.prefixes.iter().enumerate() {
            let pkey = format!("{key}.prefixes[{j}]");
            match p.parse::<IpNetwork>() {
                Ok(n) if !is_host_route(&n) => self.bad(
                    pkey,
                    format!("{p} is not a host route: services announce /32s and /128s"),
                ),
                Ok(n) if prefixes.contains(&n) => self.bad(pkey, format!("{p} is listed twice")),
                Ok(n) => prefixes.push(n),
                Err(e) => self.bad(pkey, format!("{p:?} is not a prefix: {e}")),
            }
        }
        let attributes = self.route_attributes(key, &raw);
        let disable_file = raw
            .disable_file
            .clone()
            .map(|p| self.absolute_path(&format!("{key}.disable_file"), Some(p), PathBuf::new()));
        let policy = self.safety_policy(key, &raw, role);
        let fallback = self.fallback(key, &raw);
        ServiceConfig {
            name: raw.name,
            prefixes,
            role,
            attributes,
            mysql: self.mysql(&format!("{key}.mysql"), raw.mysql, role),
            disable_file,
            manage_addresses: raw.manage_addresses,
            policy,
            fallback,
        }
    }

    fn fallback(&mut self, key: &str, raw: &RawService) -> Fallback {
        let mut f = Fallback::default();
        if let Some(on) = raw.fallback {
            f.enabled = on;
        }
        match raw.fallback_prepend {
            None => {}
            Some(n) if (1..=32).contains(&n) => f.prepend = n as u8,
            Some(n) => self.bad(
                format!("{key}.fallback_prepend"),
                format!("{n} is invalid: must be 1..=32"),
            ),
        }
        f
    }

    fn positive_ms(&mut self, key: &str, v: Option<i64>, default: u64) -> Duration {
        match v {
            None => Duration::from_millis(default),
            Some(ms) if ms > 0 => Duration::from_millis(ms as u64),
            Some(ms) => {
                self.bad(key, format!("{ms} is invalid: must be > 0 milliseconds"));
                Duration::from_millis(default)
            }
        }
    }

    fn count(&mut self, key: &str, v: Option<i64>, default: u32) -> u32 {
        match v {
            None => default,
            Some(n) if (1..=1000).contains(&n) => n as u32,
            Some(n) => {
                self.bad(key, format!("{n} is invalid: must be 1..=1000"));
                default
            }
        }
    }

    /// A `DATABASE.TABLE` the checks write to: primary role only.
    fn db_table(
        &mut self,
        key: String,
        raw: Option<String>,
        role: Role,
    ) -> Option<WriteProbeTable> {
        let t = match (raw, role) {
            (None, _) => return None,
            (Some(_), Role::Replica) => {
                self.bad(
                    key,
                    "only valid with role = \"primary\" (a replica is read-only)",
                );
                return None;
            }
            (Some(t), Role::Primary) => t,
        };
        let ident = |s: &str| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        };
        match t.split_once('.') {
            Some((d, tb)) if ident(d) && ident(tb) => Some(WriteProbeTable {
                database: d.to_string(),
                table: tb.to_string(),
            }),
            _ => {
                self.bad(
                    key,
                    format!("{t:?} is not DATABASE.TABLE (letters, digits, _ and $ only)"),
                );
                None
            }
        }
    }

    fn mysql(&mut self, key: &str, raw: RawMysql, role: Role) -> MysqlConfig {
        let endpoint = match (raw.socket, raw.host) {
            (Some(s), None) => {
                if raw.port.is_some() {
                    self.bad(format!("{key}.port"), "port is only valid with host");
                }
                let socket = Some(s);
                MysqlEndpoint::Socket(self.absolute_path(
                    &format!("{key}.socket"),
                    socket,
                    "".into(),
                ))
            }
            (None, Some(h)) => MysqlEndpoint::Tcp {
                host: h,
                port: self.port(&format!("{key}.port"), raw.port, DEFAULT_MYSQL_PORT),
            },
            (Some(_), Some(_)) => {
                self.bad(key, "set either socket or host, not both");
                MysqlEndpoint::Socket(PathBuf::new())
            }
            (None, None) => {
                self.bad(key, "one of socket or host is required");
                MysqlEndpoint::Socket(PathBuf::new())
            }
        };
        if raw.user.is_empty() {
            self.bad(format!("{key}.user"), "must not be empty");
        }
        let interval = self.positive_ms(&format!("{key}.interval_ms"), raw.interval_ms, 200);
        let timeout = self.positive_ms(&format!("{key}.timeout_ms"), raw.timeout_ms, 1000);
        let max_lag = match (raw.max_lag_s, role) {
            (None, _) => Duration::from_secs(DEFAULT_MAX_LAG_S),
            (Some(_), Role::Primary) => {
                self.bad(
                    format!("{key}.max_lag_s"),
                    "only valid with role = \"replica\"",
                );
                Duration::from_secs(DEFAULT_MAX_LAG_S)
            }
            (Some(s), Role::Replica) if (0..=86400).contains(&s) => Duration::from_secs(s as u64),
            (Some(s), Role::Replica) => {
                self.bad(
                    format!("{key}.max_lag_s"),
                    format!("{s} is invalid: must be 0..=86400 seconds"),
                );
                Duration::from_secs(DEFAULT_MAX_LAG_S)
            }
        };
        let min_up_interval = match raw.min_up_interval_ms {
            None => Duration::ZERO,
            Some(ms) if (0..=86_400_000).contains(&ms) => Duration::from_millis(ms as u64),
            Some(ms) => {
                self.bad(
                    format!("{key}.min_up_interval_ms"),
                    format!("{ms} is invalid: must be 0..=86400000 milliseconds"),
                );
                Duration::ZERO
            }
        };
        let write_probe_table = self.db_table(
            format!("{key}.write_probe_table"),
            raw.write_probe_table,
            role,
        );
        let term_table = self.db_table(format!("{key}.term_table"), raw.term_table, role);
        let tls = if raw.tls {
            if matches!(endpoint, MysqlEndpoint::Socket(_)) {
                self.bad(
                    format!("{key}.tls"),
                    "only valid with host (TCP); a Unix socket never leaves the host",
                );
            }
            let ca_file = raw.tls_ca_file.map(|p| {
                self.absolute_path(&format!("{key}.tls_ca_file"), Some(p), PathBuf::new())
            });
            Some(TlsConfig {
                ca_file,
                skip_hostname_check: raw.tls_skip_hostname_check,
            })
        } else {
            for (set, k) in [
                (raw.tls_ca_file.is_some(), "tls_ca_file"),
                (raw.tls_skip_hostname_check, "tls_skip_hostname_check"),
            ] {
                if set {
                    self.bad(format!("{key}.{k}"), "only valid with tls = true");
                }
            }
            None
        };
        MysqlConfig {
            endpoint,
            user: raw.user,
            password_file: raw.password_file.map(|p| {
                self.absolute_path(&format!("{key}.password_file"), Some(p), PathBuf::new())
            }),
            interval,
            timeout,
            rise: self.count(&format!("{key}.rise"), raw.rise, 2),
            fall: self.count(&format!("{key}.fall"), raw.fall, 1),
            max_lag,
            min_up_interval,
            write_probe_table,
            term_table,
            tls,
            watch_connection: raw.watch_connection,
        }
    }
}

fn parse_community(s: &str) -> Option<Community> {
    let (a, v) = s.split_once(':')?;
    let (a, v): (u16, u16) = (a.trim().parse().ok()?, v.trim().parse().ok()?);
    Some(Community(u32::from(a) << 16 | u32::from(v)))
}

fn parse_large_community(s: &str) -> Option<LargeCommunity> {
    let mut parts = s.split(':').map(|p| p.trim().parse::<u32>());
    let (Some(Ok(global)), Some(Ok(local1)), Some(Ok(local2)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some(LargeCommunity {
        global,
        local1,
        local2,
    })
}

/// A /32 or /128: the only prefixes a service announces.
fn is_host_route(n: &IpNetwork) -> bool {
    n.prefix() == if n.is_ipv4() { 32 } else { 128 }
}

/// A valid config for other modules' tests: `[bgp]` with peer `tor1`, then `services` (TOML
/// `[[service]]` tables).
#[cfg(test)]
pub(crate) fn test_config(services: &str) -> Config {
    let text = format!(
        "[bgp]\nasn = 4200000001\nrouter_id = \"198.19.0.11\"\n\
         [[bgp.peer]]\nname = \"tor1\"\naddress = \"198.18.1.0\"\nremote_asn = 65001\n{services}"
    );
    match parse(&text) {
        Ok(c) => c,
        Err(p) => panic!("test config rejected: {p:?}\n{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[bgp]
asn = 4200000011
router_id = "198.19.0.11"
hold_time = 9

[[bgp.peer]]
name = "tor1"
address = "198.18.1.0"
remote_asn = 65001

[[service]]
name = "main"
prefixes = ["192.0.2.10/32"]
[service.mysql]
socket = "/run/mysqld/mysqld.sock"
user = "primaryd"
"#;

    fn problems(text: &str) -> Vec<String> {
        parse(text)
            .expect_err("config should be rejected")
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.bgp.asn, 4_200_000_011);
        assert_eq!(c.bgp.peers[0].port, 179);
        assert_eq!(c.bgp.peers[0].hold_time, 9);
        let m = &c.services[0].mysql;
        assert_eq!(m.interval, Duration::from_millis(200));
        assert_eq!(m.timeout, Duration::from_millis(1000));
        assert_eq!((m.rise, m.fall), (2, 1));
        assert_eq!(
            m.endpoint,
            MysqlEndpoint::Socket("/run/mysqld/mysqld.sock".into())
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let text = GOOD.replace("remote_asn = 65001", "remote_asn = 65001\nremote_as = 1");
        let p = problems(&text);
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("bgp.peer[0].remote_as: "), "{p:?}");
        assert!(p[0].contains("unknown field"), "{p:?}");
    }

    #[test]
    fn unknown_top_level_section_is_rejected() {
        let p = problems(&format!("{GOOD}\n[bfd]\nlisten = \"x\"\n"));
        assert!(p[0].starts_with("bfd: "), "{p:?}");
    }

    #[test]
    fn wrong_type_names_key() {
        let p = problems(&GOOD.replace("asn = 4200000011", "asn = \"x\""));
        assert!(p[0].starts_with("bgp.asn: "), "{p:?}");
    }

    #[test]
    fn validation_reports_every_problem() {
        let text = GOOD
            .replace("asn = 4200000011", "asn = 4294967296")
            .replace("hold_time = 9", "hold_time = 2")
            .replace("\"192.0.2.10/32\"", "\"192.0.2.0/24\", \"nope\"")
            .replace(
                "user = \"primaryd\"",
                "user = \"primaryd\"\nrise = 0\nfall = 0\ninterval_ms = 0\ntimeout_ms = -1",
            );
        let p = problems(&text);
        let keys: Vec<&str> = p.iter().map(|s| s.split(": ").next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "bgp.asn",
                "bgp.hold_time",
                "service[0].prefixes[0]",
                "service[0].prefixes[1]",
                "service[0].mysql.interval_ms",
                "service[0].mysql.timeout_ms",
                "service[0].mysql.rise",
                "service[0].mysql.fall",
            ],
            "{p:#?}"
        );
    }

    #[test]
    fn hold_time_zero_and_three_are_accepted() {
        for h in [0, 3, 65535] {
            let c = parse(&GOOD.replace("hold_time = 9", &format!("hold_time = {h}"))).unwrap();
            assert_eq!(c.bgp.hold_time, h as u16);
        }
    }

    #[test]
    fn two_byte_and_four_byte_asn() {
        for a in [1u32, 65535, 65536, 4_294_967_295] {
            let c = parse(&GOOD.replace("4200000011", &a.to_string())).unwrap();
            assert_eq!(c.bgp.asn, a);
        }
        assert!(problems(&GOOD.replace("4200000011", "0"))[0].starts_with("bgp.asn"));
        assert!(problems(&GOOD.replace("4200000011", "23456"))[0].starts_with("bgp.asn"));
    }

    #[test]
    fn socket_and_host_are_exclusive() {
        let text = GOOD.replace("user = ", "host = \"127.0.0.1\"\nuser = ");
        assert_eq!(
            problems(&text),
            ["service[0].mysql: set either socket or host, not both"]
        );
        let text = GOOD.replace(
            "socket = \"/run/mysqld/mysqld.sock\"",
            "host = \"127.0.0.1\"\nport = 3307",
        );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.services[0].mysql.endpoint,
            MysqlEndpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 3307
            }
        );
    }

    #[test]
    fn same_prefix_in_two_services_is_rejected() {
        let second = GOOD
            .split("[[service]]")
            .nth(1)
            .unwrap()
            .replace("\"main\"", "\"other\"");
        let p = problems(&format!("{GOOD}\n[[service]]{second}"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("service[1].prefixes: 192.0.2.10/32 is already announced"));
    }

    #[test]
    fn ipv4_and_ipv6_host_routes_are_accepted_and_nothing_wider() {
        let both = GOOD.replace(
            "\"192.0.2.10/32\"",
            "\"192.0.2.10/32\", \"2001:db8::10/128\"",
        );
        assert_eq!(parse(&both).unwrap().services[0].prefixes.len(), 2);
        let p = problems(&GOOD.replace("\"192.0.2.10/32\"", "\"2001:db8::/64\""));
        assert!(p[0].contains("not a host route"), "{p:?}");
    }

    #[test]
    fn route_attributes_parse_and_bad_ones_name_their_key() {
        let attrs = r#"communities = ["65001:100", "0:65535"]
large_communities = ["4200000001:1:2"]
med = 50
local_pref = 200
as_path_prepend = 2
next_hop_ipv4 = "198.18.1.1"
next_hop_ipv6 = "2001:db8:1::1"
[service.mysql]"#;
        let a = parse(&GOOD.replace("[service.mysql]", attrs))
            .unwrap()
            .services[0]
            .attributes
            .clone();
        assert_eq!(
            a.communities,
            [Community(65001 << 16 | 100), Community(65535)]
        );
        let large = LargeCommunity {
            global: 4_200_000_001,
            local1: 1,
            local2: 2,
        };
        assert_eq!(a.large_communities, [large]);
        assert_eq!(
            (a.med, a.local_pref, a.as_path_prepend),
            (Some(50), Some(200), 2)
        );
        assert_eq!(a.next_hop_ipv6, Some("2001:db8:1::1".parse().unwrap()));

        let bad = r#"communities = ["65536:1"]
large_communities = ["1:2"]
med = -1
as_path_prepend = 17
next_hop_ipv6 = "198.18.1.1"
[service.mysql]"#;
        let keys: Vec<String> = problems(&GOOD.replace("[service.mysql]", bad))
            .iter()
            .map(|p| p.split(": ").next().unwrap().to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "service[0].communities[0]",
                "service[0].large_communities[0]",
                "service[0].as_path_prepend",
                "service[0].med",
                "service[0].next_hop_ipv6",
            ]
        );
    }

    #[test]
    fn peer_options_parse_with_defaults_and_rules() {
        let c = parse(GOOD).unwrap();
        let p = &c.bgp.peers[0];
        assert!(!p.passive && !p.ttl_security);
        assert_eq!(p.max_prefixes, DEFAULT_MAX_PREFIXES);
        assert!(c.bgp.listen.is_empty());

        let options = r#"remote_asn = 65001
passive = true
ttl_security = true
max_prefixes = 5
max_prefixes_restart_s = 10
md5_password_file = "/x""#;
        let text = GOOD.replace("remote_asn = 65001", options);
        assert_eq!(
            problems(&text),
            ["bgp.peer[0].passive: a passive peer needs [bgp] listen to accept its connection"]
        );
        let listen = "hold_time = 9\nlisten = [\"0.0.0.0:179\", \"[::]:1179\"]";
        let c = parse(&text.replace("hold_time = 9", listen)).unwrap();
        let p = &c.bgp.peers[0];
        assert!(p.passive && p.ttl_security);
        assert_eq!(p.max_prefixes, 5);
        assert_eq!(p.max_prefixes_restart, Duration::from_secs(10));
        assert_eq!(c.bgp.listen.len(), 2);

        let text = GOOD.replace("address = \"198.18.1.0\"", "address = \"fe80::1\"");
        assert_eq!(
            problems(&text),
            ["bgp.peer[0].interface: required with a link-local peer address"]
        );
        let text = text.replace("\"fe80::1\"", "\"fe80::1\"\ninterface = \"eth0\"");
        let c = parse(&text).unwrap();
        assert_eq!(c.bgp.peers[0].interface.as_deref(), Some("eth0"));
    }

    #[test]
    fn two_peers_at_one_address_and_relative_secret_paths_are_refused() {
        let second =
            "[[bgp.peer]]\nname = \"tor2\"\naddress = \"198.18.1.0\"\nremote_asn = 65002\n";
        let text = GOOD.replace("[[service]]", &format!("{second}\n[[service]]"));
        assert_eq!(
            problems(&text),
            ["bgp.peer[1].address: 198.18.1.0 is already the address of peer \"tor1\""]
        );
        // The same link-local address on two links is two routers.
        let ll = |n: &str, i: &str| {
            format!("[[bgp.peer]]\nname = \"{n}\"\naddress = \"fe80::1\"\ninterface = \"{i}\"\nremote_asn = 65001\n")
        };
        let text = GOOD.replace(
            "[[service]]",
            &format!("{}{}\n[[service]]", ll("a", "eth0"), ll("b", "eth1")),
        );
        assert!(parse(&text).is_ok());

        let text = GOOD
            .replace(
                "remote_asn = 65001",
                "remote_asn = 65001\nmd5_password_file = \"tor1.key\"",
            )
            .replace(
                "socket = \"/run/mysqld/mysqld.sock\"",
                "socket = \"mysqld.sock\"\npassword_file = \"mysql.pass\"",
            );
        assert_eq!(
            problems(&text),
            [
                "bgp.peer[0].md5_password_file: \"tor1.key\" is not an absolute path",
                "service[0].mysql.socket: \"mysqld.sock\" is not an absolute path",
                "service[0].mysql.password_file: \"mysql.pass\" is not an absolute path",
            ]
        );
    }

    #[test]
    fn md5_keys_the_kernel_would_refuse_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tor1.key");
        let text = GOOD.replace(
            "remote_asn = 65001",
            &format!(
                "remote_asn = 65001\nmd5_password_file = {:?}",
                key.display().to_string()
            ),
        );
        let c = parse(&text).unwrap();
        for (content, len) in [("x".repeat(81), 81), (String::new(), 0)] {
            std::fs::write(&key, format!("{content}\n")).unwrap();
            let p = c.read_secrets().unwrap_err();
            assert_eq!(p[0].key, "bgp.peer[0].md5_password_file");
            assert_eq!(
                p[0].problem,
                format!(
                    "the key in {} is {len} bytes: TCP MD5 keys are 1..=80 bytes",
                    key.display()
                )
            );
        }
        std::fs::write(&key, "x".repeat(80)).unwrap();
        assert_eq!(
            c.read_secrets().unwrap().md5[0].as_ref().map(String::len),
            Some(80)
        );
    }

    #[test]
    fn a_directory_is_not_a_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = GOOD.replace(
            "user = \"primaryd\"",
            &format!(
                "user = \"primaryd\"\npassword_file = {:?}",
                dir.path().display().to_string()
            ),
        );
        let p = parse(&text).unwrap().read_secrets().unwrap_err();
        assert_eq!(
            p[0].problem,
            format!(
                "refusing {}: is a directory, not a file",
                dir.path().display()
            )
        );
    }

    #[test]
    fn unreadable_password_file_is_a_problem_of_its_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "s3cret\nignored\n").unwrap();
        let mode = |m: u32| std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(m));
        mode(0o600).unwrap();
        let text = GOOD.replace(
            "user = \"primaryd\"",
            &format!(
                "user = \"primaryd\"\npassword_file = {:?}",
                pass.display().to_string()
            ),
        );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.read_secrets().unwrap().mysql,
            [Some("s3cret".to_string())]
        );
        // Readable by group or others: refused, naming the file and its mode.
        for m in [0o640, 0o604, 0o644] {
            mode(m).unwrap();
            let p = c.read_secrets().unwrap_err();
            assert_eq!(p[0].key, "service[0].mysql.password_file");
            assert_eq!(
                p[0].problem,
                format!(
                    "refusing {}: mode {m:04o} gives group or others access (chmod 600 it)",
                    pass.display()
                )
            );
        }
        mode(0o400).unwrap();
        assert!(c.read_secrets().is_ok());
        std::fs::remove_file(&pass).unwrap();
        let p = c.read_secrets().unwrap_err();
        assert_eq!(p[0].key, "service[0].mysql.password_file");
        assert!(p[0].problem.contains("cannot read"), "{p:?}");
    }

    #[test]
    fn control_section_defaults_and_paths() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.control, ControlConfig::default());
        assert_eq!(c.control.state_dir, PathBuf::from("/var/lib/primaryd"));
        let text =
            format!("{GOOD}\n[control]\nstate_dir = \"/srv/pd\"\nsocket = \"/run/pd.sock\"\n");
        let c = parse(&text).unwrap();
        assert_eq!(c.control.state_dir, PathBuf::from("/srv/pd"));
        assert_eq!(c.control.socket, PathBuf::from("/run/pd.sock"));
        let p = problems(&format!(
            "{GOOD}\n[control]\nstate_dir = \"rel\"\nfoo = 1\n"
        ));
        assert!(p[0].starts_with("control.foo: "), "{p:?}");
        let p = problems(&format!("{GOOD}\n[control]\nstate_dir = \"rel\"\n"));
        assert_eq!(p, ["control.state_dir: \"rel\" is not an absolute path"]);
        let c = parse(&format!("{GOOD}\n[control]\nsocket_group = \"dba\"\n")).unwrap();
        assert_eq!(c.control.socket_group.as_deref(), Some("dba"));
        assert_eq!(c.control.max_clients, 64);
        let c = parse(&format!("{GOOD}\n[control]\nmax_clients = 8\n")).unwrap();
        assert_eq!(c.control.max_clients, 8);
        let p = problems(&format!("{GOOD}\n[control]\nmax_clients = 0\n"));
        assert_eq!(p, ["control.max_clients: 0 is invalid: must be 1..=10000"]);
    }

    #[test]
    fn metrics_listen_is_optional_and_checked() {
        assert_eq!(parse(GOOD).unwrap().metrics.listen, None);
        let c = parse(&format!("{GOOD}\n[metrics]\nlisten = \"127.0.0.1:9479\"\n")).unwrap();
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9479".parse().unwrap()));
        let p = problems(&format!("{GOOD}\n[metrics]\nlisten = \"9479\"\n"));
        assert!(p[0].starts_with("metrics.listen: "), "{p:?}");
    }

    #[test]
    fn service_health_keys_parse_with_defaults() {
        let c = parse(GOOD).unwrap();
        let s = &c.services[0];
        assert_eq!(s.role, Role::Primary);
        assert_eq!((s.disable_file.as_ref(), s.manage_addresses), (None, false));
        let m = &s.mysql;
        assert_eq!(m.max_lag, Duration::from_secs(30));
        assert_eq!(m.min_up_interval, Duration::ZERO);
        assert_eq!((m.write_probe_table.as_ref(), m.tls.as_ref()), (None, None));
        assert!(m.watch_connection);
        assert_eq!(
            MysqlConfig::new(m.endpoint.clone(), m.user.clone()),
            m.clone()
        );

        let text = GOOD
            .replace(
                "[service.mysql]",
                "disable_file = \"/etc/primaryd/main.disabled\"\nmanage_addresses = true\n\
                 [service.mysql]",
            )
            .replace(
                "user = \"primaryd\"",
                "user = \"primaryd\"\nmin_up_interval_ms = 5000\n\
                 write_probe_table = \"primaryd.heartbeat\"\nwatch_connection = false",
            );
        let s = parse(&text).unwrap().services.remove(0);
        assert_eq!(
            s.disable_file,
            Some(PathBuf::from("/etc/primaryd/main.disabled"))
        );
        assert!(s.manage_addresses);
        assert_eq!(s.mysql.min_up_interval, Duration::from_secs(5));
        assert_eq!(
            s.mysql.write_probe_table.as_ref().map(|t| t.to_string()),
            Some("primaryd.heartbeat".to_string())
        );
        assert!(!s.mysql.watch_connection);
    }

    #[test]
    fn replica_role_and_its_keys() {
        let replica = GOOD.replace(
            "prefixes = [\"192.0.2.10/32\"]",
            "prefixes = [\"192.0.2.10/32\"]\nrole = \"replica\"",
        );
        let s = parse(&replica).unwrap().services.remove(0);
        assert_eq!(s.role, Role::Replica);
        let lag = replica.replace("user = \"primaryd\"", "user = \"primaryd\"\nmax_lag_s = 5");
        assert_eq!(
            parse(&lag).unwrap().services[0].mysql.max_lag,
            Duration::from_secs(5)
        );
        // Keys that make no sense for the role are refused, naming the role.
        let p =
            problems(&GOOD.replace("user = \"primaryd\"", "user = \"primaryd\"\nmax_lag_s = 5"));
        assert_eq!(
            p,
            ["service[0].mysql.max_lag_s: only valid with role = \"replica\""]
        );
        let p = problems(&replica.replace(
            "user = \"primaryd\"",
            "user = \"primaryd\"\nwrite_probe_table = \"primaryd.heartbeat\"\nmax_lag_s = -1",
        ));
        assert_eq!(
            p,
            [
                "service[0].mysql.max_lag_s: -1 is invalid: must be 0..=86400 seconds",
                "service[0].mysql.write_probe_table: only valid with role = \"primary\" \
                 (a replica is read-only)"
            ]
        );
        let p = problems(&GOOD.replace(
            "prefixes = [\"192.0.2.10/32\"]",
            "prefixes = [\"192.0.2.10/32\"]\nrole = \"reader\"",
        ));
        assert_eq!(
            p,
            ["service[0].role: \"reader\" is not a role (\"primary\" or \"replica\")"]
        );
    }

    #[test]
    fn bad_health_keys_name_their_key() {
        let text = GOOD
            .replace("name = \"main\"", "name = \"a/b\"")
            .replace(
                "[service.mysql]",
                "disable_file = \"relative\"\n[service.mysql]",
            )
            .replace(
                "user = \"primaryd\"",
                "user = \"primaryd\"\nmin_up_interval_ms = -5\n\
                 write_probe_table = \"heartbeat\"\ntls = true\ntls_ca_file = \"ca.pem\"",
            );
        let keys: Vec<String> = problems(&text)
            .iter()
            .map(|p| p.split(": ").next().unwrap().to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "service[0].name",
                "service[0].disable_file",
                "service[0].mysql.min_up_interval_ms",
                "service[0].mysql.write_probe_table",
                "service[0].mysql.tls",
                "service[0].mysql.tls_ca_file",
            ]
        );
        let p = problems(&GOOD.replace(
            "user = \"primaryd\"",
            "user = \"primaryd\"\ntls_ca_file = \"/ca.pem\"",
        ));
        assert_eq!(
            p,
            ["service[0].mysql.tls_ca_file: only valid with tls = true"]
        );
        for bad in ["x.y.z", "db.", ".t", "db.t-1", "db.`t`"] {
            let t = GOOD.replace(
                "user = \"primaryd\"",
                &format!("user = \"primaryd\"\nwrite_probe_table = {bad:?}"),
            );
            assert!(problems(&t)[0].contains("is not DATABASE.TABLE"), "{bad}");
        }
    }

    #[test]
    fn term_table_for_primaries_only() {
        let with = |text: &str, t: &str| {
            text.replace(
                "user = \"primaryd\"",
                &format!("user = \"primaryd\"\nterm_table = {t:?}"),
            )
        };
        let s = parse(&with(GOOD, "primaryd.term"))
            .unwrap()
            .services
            .remove(0);
        assert_eq!(
            s.mysql.term_table.map(|t| t.to_string()).as_deref(),
            Some("primaryd.term")
        );
        assert!(problems(&with(GOOD, "term"))[0]
            .starts_with("service[0].mysql.term_table: \"term\" is not DATABASE.TABLE"));
        let replica = GOOD.replace(
            "prefixes = [\"192.0.2.10/32\"]",
            "prefixes = [\"192.0.2.10/32\"]\nrole = \"replica\"",
        );
        assert_eq!(
            problems(&with(&replica, "primaryd.term")),
            [
                "service[0].mysql.term_table: only valid with role = \"primary\" \
              (a replica is read-only)"
            ]
        );
    }

    #[test]
    fn tls_over_tcp() {
        let text = GOOD.replace(
            "socket = \"/run/mysqld/mysqld.sock\"",
            "host = \"db1.example\"\ntls = true\ntls_ca_file = \"/etc/primaryd/ca.pem\"\n\
             tls_skip_hostname_check = true",
        );
        let tls = parse(&text).unwrap().services[0].mysql.tls.clone();
        assert_eq!(
            tls,
            Some(TlsConfig {
                ca_file: Some(PathBuf::from("/etc/primaryd/ca.pem")),
                skip_hostname_check: true
            })
        );
    }

    #[test]
    fn load_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, GOOD.replace("hold_time = 9", "hold_time = 1")).unwrap();
        let msg = load(&f).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "{}:5:13: bgp.hold_time: 1 is invalid: must be 0 or 3..=65535 seconds",
                f.display()
            )
        );
    }
}
