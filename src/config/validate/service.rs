//! `[[service]]`: its name, role, prefixes, route attributes, split-brain policy and
//! fallback (its `[service.mysql]` is `mysql.rs`).

use std::path::PathBuf;

use ipnetwork::IpNetwork;

use super::Validator;
use crate::bgp::message::{Community, LargeCommunity};
use crate::config::raw::RawService;
use crate::config::{Fallback, Role, RouteAttributes, ServiceConfig};

impl Validator {
    /// `on_conflict` and `on_restart`: what the split-brain rules do (primary role only).
    pub(super) fn safety_policy(
        &mut self,
        key: &str,
        raw: &RawService,
        role: Role,
    ) -> crate::safety::Policy {
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

    pub(super) fn route_attributes(&mut self, key: &str, raw: &RawService) -> RouteAttributes {
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
        let med = self.optional_u32(&format!("{key}.med"), raw.med);
        let local_pref = self.optional_u32(&format!("{key}.local_pref"), raw.local_pref);
        let (next_hop_ipv4, next_hop_ipv6) = self.next_hops(
            key,
            raw.next_hop_ipv4.as_deref(),
            raw.next_hop_ipv6.as_deref(),
        );
        RouteAttributes {
            communities,
            large_communities,
            med,
            local_pref,
            as_path_prepend,
            next_hop_ipv4,
            next_hop_ipv6,
        }
    }

    pub(super) fn service(&mut self, key: &str, raw: RawService) -> ServiceConfig {
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

    pub(super) fn fallback(&mut self, key: &str, raw: &RawService) -> Fallback {
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
