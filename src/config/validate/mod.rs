//! Validation: the raw structs as written in the file to the typed [`Config`], collecting
//! every problem (`key: problem`) instead of stopping at the first, so `--check` reports all
//! of them at once. `[bgp]`, `[control]`, `[metrics]` and the checks shared by every section
//! are here; peers, services and their `[service.mysql]` have a file each.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::raw::{RawBgp, RawConfig, RawControl};
use super::{
    BgpConfig, Config, ConfigProblem, ControlConfig, MetricsConfig, PeerConfig,
    DEFAULT_COMMUNITY_ASN, DEFAULT_HOLD_TIME,
};

mod mysql;
mod peer;
mod service;

/// Collects the problems found while building the typed config.
#[derive(Default)]
pub(super) struct Validator {
    pub(super) problems: Vec<ConfigProblem>,
}

impl Validator {
    fn bad(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(ConfigProblem::new(key, problem));
    }

    pub(super) fn config(&mut self, raw: RawConfig) -> Config {
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

    /// `KEY.next_hop_ipv4` and `KEY.next_hop_ipv6`, each checked for its family.
    fn next_hops(
        &mut self,
        key: &str,
        v4: Option<&str>,
        v6: Option<&str>,
    ) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
        let v4 = self.ipv4(&format!("{key}.next_hop_ipv4"), v4);
        (v4, self.ipv6(&format!("{key}.next_hop_ipv6"), v6))
    }

    fn optional_u32(&mut self, key: &str, v: Option<i64>) -> Option<u32> {
        let v = v?;
        u32::try_from(v)
            .map_err(|_| self.bad(key, format!("{v} is invalid: must be 0..=4294967295")))
            .ok()
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
}
