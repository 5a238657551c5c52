//! Configuration: strict TOML (unknown keys are errors) parsed into raw structs, then validated
//! into the typed [`Config`] the rest of the daemon uses. Every problem is reported as
//! `key: problem` so the operator can find it; `--check` prints all of them at once.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnetwork::{IpNetwork, Ipv4Network};
use serde::Deserialize;

/// Default BGP hold time in seconds (the FRR "datacenter" profile uses 9/3 as well).
pub const DEFAULT_HOLD_TIME: u16 = 9;
pub const DEFAULT_BGP_PORT: u16 = 179;
pub const DEFAULT_MYSQL_PORT: u16 = 3306;

/// One problem found in a config file, with the dotted key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// A config file that could not be loaded; `Display` prints one `FILE: key: problem` per line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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
        .map(|p| format!("{}: {p}", path.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bgp: BgpConfig,
    pub services: Vec<ServiceConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BgpConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    pub peers: Vec<PeerConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    pub name: String,
    pub address: IpAddr,
    pub remote_asn: u32,
    /// Source address to bind before connecting; the kernel picks one when absent.
    pub local_address: Option<IpAddr>,
    pub port: u16,
    pub hold_time: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    pub name: String,
    pub prefixes: Vec<Ipv4Network>,
    pub role: Role,
    pub mysql: MysqlConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Announce only while the local server is a healthy, writable primary.
    Primary,
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
}

impl MysqlConfig {
    /// Reads the password file. Called at start-up so a missing file is an error then.
    pub fn read_password(&self) -> Result<Option<String>, std::io::Error> {
        match &self.password_file {
            None => Ok(None),
            Some(p) => {
                let text = std::fs::read_to_string(p)?;
                Ok(Some(text.lines().next().unwrap_or("").to_string()))
            }
        }
    }
}

impl Config {
    /// Reads every service's password file, in service order. Problems name the key, so
    /// `--check` and start-up report them like any other config error.
    pub fn read_passwords(&self) -> Result<Vec<Option<String>>, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut passwords = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            match s.mysql.read_password() {
                Ok(p) => passwords.push(p),
                Err(e) => {
                    let path = s.mysql.password_file.as_deref().unwrap_or(Path::new(""));
                    problems.push(ConfigProblem {
                        key: format!("service[{i}].mysql.password_file"),
                        problem: format!("cannot read {}: {e}", path.display()),
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(passwords)
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
    #[serde(default, rename = "service")]
    services: Vec<RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBgp {
    asn: i64,
    router_id: String,
    hold_time: Option<i64>,
    #[serde(default, rename = "peer")]
    peers: Vec<RawPeer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    name: String,
    address: String,
    remote_asn: i64,
    local_address: Option<String>,
    port: Option<i64>,
    hold_time: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    prefixes: Vec<String>,
    role: Option<String>,
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
}

/// Loads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

/// Parses and validates config text; returns every problem found.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigProblem>> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| vec![toml_problem("(file)", &e)])?;
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = match e.path().to_string() {
            p if p == "." => "(file)".to_string(),
            p => p,
        };
        vec![toml_problem(&key, e.inner())]
    })?;
    let mut v = Validator::default();
    let config = v.config(raw);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(v.problems)
    }
}

fn toml_problem(key: &str, e: &toml::de::Error) -> ConfigProblem {
    // toml's message is one line; its Display adds a source snippet we do not want here.
    let mut problem = e.message().trim().to_string();
    if let Some(span) = e.span() {
        problem.push_str(&format!(" (at byte {})", span.start));
    }
    ConfigProblem {
        key: key.to_string(),
        problem,
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<ConfigProblem>,
}

impl Validator {
    fn bad(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(ConfigProblem {
            key: key.into(),
            problem: problem.into(),
        });
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let bgp = self.bgp(raw.bgp);
        let mut names = HashSet::new();
        let mut owner: Vec<(Ipv4Network, String)> = Vec::new();
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
        Config { bgp, services }
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
            peers.push(self.peer(&key, p, hold_time));
        }
        BgpConfig {
            asn,
            router_id,
            hold_time,
            peers,
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

    fn peer(&mut self, key: &str, raw: RawPeer, default_hold: u16) -> PeerConfig {
        if raw.name.is_empty() {
            self.bad(format!("{key}.name"), "must not be empty");
        }
        let address = self.ip(&format!("{key}.address"), &raw.address);
        if address.is_ipv6() {
            self.bad(
                format!("{key}.address"),
                "BGP sessions over IPv6 are not supported yet",
            );
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
        PeerConfig {
            name: raw.name,
            address,
            remote_asn: self.asn(&format!("{key}.remote_asn"), raw.remote_asn),
            local_address,
            port: self.port(&format!("{key}.port"), raw.port, DEFAULT_BGP_PORT),
            hold_time: self.hold_time(&format!("{key}.hold_time"), raw.hold_time, default_hold),
        }
    }

    fn service(&mut self, key: &str, raw: RawService) -> ServiceConfig {
        if raw.name.is_empty() {
            self.bad(format!("{key}.name"), "must not be empty");
        }
        let role = match raw.role.as_deref() {
            None | Some("primary") => Role::Primary,
            Some("replica") => {
                self.bad(
                    format!("{key}.role"),
                    "role \"replica\" is not implemented yet; only \"primary\"",
                );
                Role::Primary
            }
            Some(other) => {
                self.bad(
                    format!("{key}.role"),
                    format!("{other:?} is not a role (\"primary\")"),
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
                Ok(IpNetwork::V4(n)) if n.prefix() != 32 => self.bad(
                    pkey,
                    format!("{p} is not a host route: services announce /32s"),
                ),
                Ok(IpNetwork::V4(n)) => {
                    if prefixes.contains(&n) {
                        self.bad(pkey, format!("{p} is listed twice"));
                    } else {
                        prefixes.push(n);
                    }
                }
                Ok(IpNetwork::V6(_)) => {
                    self.bad(pkey, format!("{p}: IPv6 prefixes are not supported yet"))
                }
                Err(e) => self.bad(pkey, format!("{p:?} is not a prefix: {e}")),
            }
        }
        ServiceConfig {
            name: raw.name,
            prefixes,
            role,
            mysql: self.mysql(&format!("{key}.mysql"), raw.mysql),
        }
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

    fn mysql(&mut self, key: &str, raw: RawMysql) -> MysqlConfig {
        let endpoint = match (raw.socket, raw.host) {
            (Some(s), None) => {
                if raw.port.is_some() {
                    self.bad(format!("{key}.port"), "port is only valid with host");
                }
                MysqlEndpoint::Socket(PathBuf::from(s))
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
        MysqlConfig {
            endpoint,
            user: raw.user,
            password_file: raw.password_file.map(PathBuf::from),
            interval,
            timeout,
            rise: self.count(&format!("{key}.rise"), raw.rise, 2),
            fall: self.count(&format!("{key}.fall"), raw.fall, 1),
        }
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
        let p = problems(&format!("{GOOD}\n[metrics]\nlisten = \"x\"\n"));
        assert!(p[0].starts_with("metrics: "), "{p:?}");
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
    fn ipv6_is_refused_clearly_until_supported() {
        let p = problems(&GOOD.replace("\"192.0.2.10/32\"", "\"2001:db8::10/128\""));
        assert!(
            p[0].contains("IPv6 prefixes are not supported yet"),
            "{p:?}"
        );
    }

    #[test]
    fn unreadable_password_file_is_a_problem_of_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "s3cret\nignored\n").unwrap();
        let text = GOOD.replace(
            "user = \"primaryd\"",
            &format!(
                "user = \"primaryd\"\npassword_file = {:?}",
                pass.display().to_string()
            ),
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.read_passwords().unwrap(), [Some("s3cret".to_string())]);
        std::fs::remove_file(&pass).unwrap();
        let p = c.read_passwords().unwrap_err();
        assert_eq!(p[0].key, "service[0].mysql.password_file");
        assert!(p[0].problem.contains("cannot read"), "{p:?}");
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
                "{}: bgp.hold_time: 1 is invalid: must be 0 or 3..=65535 seconds",
                f.display()
            )
        );
    }
}
