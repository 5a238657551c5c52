//! The validated configuration the rest of the daemon uses (what [`super::parse`] returns).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::read;
use super::{
    DEFAULT_CONTROL_MAX_CLIENTS, DEFAULT_CONTROL_SOCKET, DEFAULT_MAX_LAG_S, DEFAULT_STATE_DIR,
};
use crate::bgp::message::{Community, LargeCommunity};

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
