//! The configuration as written in the file: strict serde structs (unknown keys are errors),
//! turned into the typed [`super::Config`] by [`super::validate`].

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) bgp: RawBgp,
    #[serde(default)]
    pub(super) control: RawControl,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default, rename = "service")]
    pub(super) services: Vec<RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBgp {
    pub(super) asn: i64,
    pub(super) router_id: String,
    pub(super) hold_time: Option<i64>,
    #[serde(default)]
    pub(super) listen: Vec<String>,
    #[serde(default, rename = "peer")]
    pub(super) peers: Vec<RawPeer>,
    pub(super) community_asn: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub(super) name: String,
    pub(super) address: String,
    pub(super) interface: Option<String>,
    pub(super) remote_asn: i64,
    pub(super) local_address: Option<String>,
    pub(super) port: Option<i64>,
    pub(super) hold_time: Option<i64>,
    #[serde(default)]
    pub(super) passive: bool,
    pub(super) md5_password_file: Option<String>,
    #[serde(default)]
    pub(super) ttl_security: bool,
    pub(super) max_prefixes: Option<i64>,
    pub(super) max_prefixes_restart_s: Option<i64>,
    pub(super) next_hop_ipv4: Option<String>,
    pub(super) next_hop_ipv6: Option<String>,
    pub(super) initial_routes_wait_ms: Option<i64>,
    #[serde(default)]
    pub(super) bfd: bool,
    pub(super) bfd_min_tx_ms: Option<i64>,
    pub(super) bfd_min_rx_ms: Option<i64>,
    pub(super) bfd_multiplier: Option<i64>,
    pub(super) bfd_auth: Option<String>,
    pub(super) bfd_auth_key_id: Option<i64>,
    pub(super) bfd_auth_key_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub(super) socket: Option<String>,
    pub(super) socket_group: Option<String>,
    pub(super) state_dir: Option<String>,
    pub(super) max_clients: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) name: String,
    pub(super) prefixes: Vec<String>,
    pub(super) role: Option<String>,
    #[serde(default)]
    pub(super) communities: Vec<String>,
    #[serde(default)]
    pub(super) large_communities: Vec<String>,
    pub(super) med: Option<i64>,
    pub(super) local_pref: Option<i64>,
    pub(super) as_path_prepend: Option<i64>,
    pub(super) next_hop_ipv4: Option<String>,
    pub(super) next_hop_ipv6: Option<String>,
    pub(super) disable_file: Option<String>,
    #[serde(default)]
    pub(super) manage_addresses: bool,
    pub(super) on_conflict: Option<String>,
    pub(super) on_restart: Option<String>,
    pub(super) fallback: Option<bool>,
    pub(super) fallback_prepend: Option<i64>,
    pub(super) mysql: RawMysql,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMysql {
    pub(super) socket: Option<String>,
    pub(super) host: Option<String>,
    pub(super) port: Option<i64>,
    pub(super) user: String,
    pub(super) password_file: Option<String>,
    pub(super) interval_ms: Option<i64>,
    pub(super) timeout_ms: Option<i64>,
    pub(super) rise: Option<i64>,
    pub(super) fall: Option<i64>,
    pub(super) max_lag_s: Option<i64>,
    pub(super) min_up_interval_ms: Option<i64>,
    pub(super) write_probe_table: Option<String>,
    pub(super) term_table: Option<String>,
    #[serde(default)]
    pub(super) tls: bool,
    pub(super) tls_ca_file: Option<String>,
    #[serde(default)]
    pub(super) tls_skip_hostname_check: bool,
    #[serde(default = "yes")]
    pub(super) watch_connection: bool,
}

fn yes() -> bool {
    true
}
