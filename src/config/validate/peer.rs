//! `[[bgp.peer]]`: a router session's address, options, limits and BFD.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Validator;
use crate::config::raw::RawPeer;
use crate::config::{
    PeerConfig, DEFAULT_BGP_PORT, DEFAULT_INITIAL_ROUTES_WAIT, DEFAULT_MAX_PREFIXES,
    DEFAULT_MAX_PREFIXES_RESTART,
};

impl Validator {
    pub(super) fn peer(&mut self, key: &str, raw: RawPeer, default_hold: u16) -> PeerConfig {
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
        let (max_prefixes, max_prefixes_restart) = self.max_prefixes(key, &raw);
        let bfd = self.bfd(key, &raw);
        let (next_hop_ipv4, next_hop_ipv6) = self.next_hops(
            key,
            raw.next_hop_ipv4.as_deref(),
            raw.next_hop_ipv6.as_deref(),
        );
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
            next_hop_ipv4,
            next_hop_ipv6,
            initial_routes_wait: self.initial_routes_wait(key, raw.initial_routes_wait_ms),
            bfd,
        }
    }

    /// `max_prefixes` and `max_prefixes_restart_s`: how many routes the peer may send, and
    /// how long the session stays down after it sent more.
    fn max_prefixes(&mut self, key: &str, raw: &RawPeer) -> (u32, Duration) {
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
        (max_prefixes, max_prefixes_restart)
    }

    /// The `bfd*` keys, checked by the BFD module.
    fn bfd(&mut self, key: &str, raw: &RawPeer) -> Option<crate::bfd::config::BfdConfig> {
        let (bfd, bfd_problems) = crate::bfd::config::validate(
            key,
            crate::bfd::config::RawPeerBfd {
                bfd: raw.bfd,
                min_tx_ms: raw.bfd_min_tx_ms,
                min_rx_ms: raw.bfd_min_rx_ms,
                multiplier: raw.bfd_multiplier,
                auth: raw.bfd_auth.clone(),
                auth_key_id: raw.bfd_auth_key_id,
                auth_key_file: raw.bfd_auth_key_file.clone(),
            },
        );
        self.problems.extend(bfd_problems);
        bfd
    }

    pub(super) fn initial_routes_wait(&mut self, key: &str, v: Option<i64>) -> Duration {
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
}
