//! What `show …` returns, built from the published status of sessions and services. These
//! structs are the stable JSON of `primaryctl --json` (docs/cli.md); primaryctl renders its
//! tables from the same JSON.

use std::net::IpAddr;
use std::time::SystemTime;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::bgp::message::{PathAttributes, RawAttribute};
use crate::bgp::reason::Notified;
use crate::bgp::status::PeerStatus;

/// RFC 3339 UTC, second precision.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn seconds_since(t: SystemTime, now: SystemTime) -> u64 {
    now.duration_since(t).map_or(0, |d| d.as_secs())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attributes {
    pub origin: String,
    pub as_path: String,
    pub next_hop: Vec<IpAddr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    /// Optional attributes we do not interpret, as received (never sent).
    #[serde(default)]
    pub unknown: Vec<UnknownAttribute>,
}

/// A path attribute kept as received: its type code, flags and value (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownAttribute {
    pub type_code: u8,
    pub flags: u8,
    pub value: String,
}

impl From<&RawAttribute> for UnknownAttribute {
    fn from(a: &RawAttribute) -> Self {
        UnknownAttribute {
            type_code: a.type_code,
            flags: a.flags,
            value: a.value.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

impl From<&PathAttributes> for Attributes {
    fn from(a: &PathAttributes) -> Self {
        let nh = &a.next_hop;
        let next_hop = [
            nh.ipv4.map(IpAddr::V4),
            nh.ipv6.map(IpAddr::V6),
            nh.ipv6_link_local.map(IpAddr::V6),
        ]
        .into_iter()
        .flatten()
        .collect();
        Attributes {
            origin: a.origin.to_string(),
            as_path: a.as_path.to_string(),
            next_hop,
            med: a.med,
            local_pref: a.local_pref,
            communities: a.communities.iter().map(|c| c.to_string()).collect(),
            large_communities: a.large_communities.iter().map(|c| c.to_string()).collect(),
            unknown: a.other.iter().map(UnknownAttribute::from).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastNotification {
    /// "sent" or "received".
    pub direction: String,
    pub code: u8,
    pub subcode: u8,
    pub text: String,
}

impl LastNotification {
    fn new(last: &Notified) -> Self {
        let n = &last.notification;
        LastNotification {
            direction: last.direction.to_string(),
            code: n.code,
            subcode: n.subcode,
            text: n.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    pub name: String,
    pub address: IpAddr,
    pub state: String,
    pub since: String,
    /// Seconds in the current state (the session's uptime when established).
    pub state_seconds: u64,
    pub local_address: Option<IpAddr>,
    pub local_asn: u32,
    pub remote_asn: u32,
    pub router_id: Option<String>,
    pub hold_time: Option<u16>,
    pub keepalive: Option<u16>,
    pub capabilities: Vec<String>,
    pub messages_in: u64,
    pub messages_out: u64,
    pub updates_in: u64,
    pub updates_out: u64,
    pub prefixes_received: usize,
    pub prefixes_sent: usize,
    pub malformed_in: u64,
    pub update_errors_in: u64,
    pub established_transitions: u64,
    pub last_error: Option<String>,
    pub last_notification: Option<LastNotification>,
    /// The BFD session, when the peer has `bfd = true`.
    #[serde(default)]
    pub bfd: Option<crate::bfd::view::BfdView>,
}

pub fn peers(status: &[PeerStatus], now: SystemTime) -> Vec<PeerView> {
    status
        .iter()
        .map(|p| PeerView {
            name: p.name.clone(),
            address: p.address,
            state: p.state.to_string(),
            since: timestamp(p.since),
            state_seconds: seconds_since(p.since, now),
            local_address: p.local_address,
            local_asn: p.local_asn,
            remote_asn: p.remote_asn,
            router_id: p.peer_router_id.map(|r| r.to_string()),
            hold_time: p.hold_time,
            keepalive: p.keepalive,
            capabilities: p.capabilities.clone(),
            messages_in: p.counters.messages_in,
            messages_out: p.counters.messages_out,
            updates_in: p.counters.updates_in,
            updates_out: p.counters.updates_out,
            prefixes_received: p.rib_in.len(),
            prefixes_sent: p.rib_out.len(),
            malformed_in: p.counters.malformed_in,
            update_errors_in: p.counters.update_errors_in,
            established_transitions: p.counters.established_transitions,
            last_error: p.last_error.as_ref().map(ToString::to_string),
            last_notification: p.last_notification.as_ref().map(LastNotification::new),
            bfd: p
                .bfd
                .as_ref()
                .map(|b| crate::bfd::view::BfdView::new(&b.borrow(), now)),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedView {
    pub peer: String,
    pub prefix: IpNetwork,
    /// RFC 7911 path identifier; 0 when the peer sends none.
    #[serde(default)]
    pub path_id: u32,
    pub attributes: Attributes,
    pub received_at: String,
    pub age_seconds: u64,
}

/// Adj-RIB-In of every peer, or of the one named.
pub fn received(
    status: &[PeerStatus],
    peer: Option<&str>,
    now: SystemTime,
) -> Result<Vec<ReceivedView>, String> {
    if let Some(name) = peer {
        if !status.iter().any(|p| p.name == name) {
            return Err(format!("no peer named {name:?}"));
        }
    }
    Ok(status
        .iter()
        .filter(|p| peer.is_none_or(|n| n == p.name))
        .flat_map(|p| {
            p.rib_in.iter().map(move |(key, r)| ReceivedView {
                peer: p.name.clone(),
                prefix: key.prefix,
                path_id: key.path_id,
                attributes: Attributes::from(&*r.attributes),
                received_at: timestamp(r.received_at),
                age_seconds: seconds_since(r.received_at, now),
            })
        })
        .collect())
}

/// A service's state as the daemon knows it, for `show routes`.
#[derive(Debug, Clone)]
pub struct ServiceRoutes {
    pub name: String,
    pub prefixes: Vec<IpNetwork>,
    /// "up", "down", "unknown", "conflict", "held", ...
    pub state: String,
    /// Whether its prefixes are in the desired set.
    pub announced: bool,
    pub reason: String,
    pub since: SystemTime,
    /// The promotion term announced with the prefixes (docs/safety.md).
    pub term: Option<u64>,
    pub conflict: bool,
}

/// How to read the marks on received routes: our community ASN and router id.
#[derive(Debug, Clone, Copy)]
pub struct MarkReader {
    pub community_asn: u32,
    pub router_id: std::net::Ipv4Addr,
}

/// Another announcer of one of our service prefixes, as a session received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherAnnouncer {
    pub peer: String,
    pub path_id: u32,
    pub next_hop: Vec<IpAddr>,
    pub as_path: String,
    /// "primary, term 8", "fallback", "no primaryd marks".
    pub claim: String,
    pub term: Option<u32>,
    pub router_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerAdvertisement {
    pub peer: String,
    pub peer_state: String,
    pub advertised: bool,
    pub since: Option<String>,
    pub attributes: Option<Attributes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    pub service: String,
    pub prefix: IpNetwork,
    pub state: String,
    pub announced: bool,
    pub reason: String,
    pub since: String,
    /// The promotion term announced with the prefix.
    #[serde(default)]
    pub term: Option<u64>,
    #[serde(default)]
    pub conflict: bool,
    pub peers: Vec<PeerAdvertisement>,
    /// Every other host's path for this prefix the sessions received (sightings).
    #[serde(default)]
    pub also_announced_by: Vec<OtherAnnouncer>,
}

/// Other hosts' paths for `prefix` on every session (our own, naming our router id, left
/// out).
fn others(prefix: &IpNetwork, status: &[PeerStatus], me: MarkReader) -> Vec<OtherAnnouncer> {
    use crate::safety::{marks, Claim};
    let mut out = Vec::new();
    for p in status {
        for (key, r) in p.sightings.paths(*prefix) {
            let claim = marks::claim(&r.attributes, me.community_asn);
            if claim.router_id() == Some(me.router_id) {
                continue;
            }
            let a = Attributes::from(&*r.attributes);
            out.push(OtherAnnouncer {
                peer: p.name.clone(),
                path_id: key.path_id,
                next_hop: a.next_hop,
                as_path: a.as_path,
                claim: claim.to_string(),
                term: match claim {
                    Claim::Primary { term, .. } => Some(term),
                    _ => None,
                },
                router_id: claim.router_id().map(|r| r.to_string()),
            });
        }
    }
    out
}

pub fn routes(services: &[ServiceRoutes], status: &[PeerStatus], me: MarkReader) -> Vec<RouteView> {
    let mut out = Vec::new();
    for s in services {
        for prefix in &s.prefixes {
            let peers = status
                .iter()
                .map(|p| {
                    let sent = p.rib_out.get(prefix);
                    PeerAdvertisement {
                        peer: p.name.clone(),
                        peer_state: p.state.to_string(),
                        advertised: sent.is_some(),
                        since: p.advertised_since.get(prefix).map(|t| timestamp(*t)),
                        attributes: sent.map(Attributes::from),
                    }
                })
                .collect();
            out.push(RouteView {
                service: s.name.clone(),
                prefix: *prefix,
                state: s.state.clone(),
                announced: s.announced,
                reason: s.reason.clone(),
                since: timestamp(s.since),
                term: s.term,
                conflict: s.conflict,
                peers,
                also_announced_by: others(prefix, status, me),
            });
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    pub name: String,
    pub role: String,
    pub prefixes: Vec<IpNetwork>,
    /// "up", "down" or "unknown" (no verdict yet).
    pub state: String,
    pub announced: bool,
    pub reason: String,
    pub since: String,
    pub drained: bool,
    /// The last check: "writable", "not writable: …", "failed (timeout): …".
    pub last_result: Option<String>,
    pub last_latency_ms: Option<f64>,
    pub last_check_at: Option<String>,
    /// Consecutive successes and failures, against rise and fall.
    pub successes: u32,
    pub failures: u32,
    pub rise: u32,
    pub fall: u32,
    /// The promotion term this server holds (docs/safety.md), when known.
    #[serde(default)]
    pub term: Option<u64>,
    /// The rules withdrew the service because another primary announces it.
    #[serde(default)]
    pub conflict: bool,
    /// What the service's clients meet on this host (docs/clients.md).
    #[serde(default)]
    pub clients: Option<ClientsView>,
}

/// The refusal, the export and the resets of one service's addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientsView {
    /// "refused", "open", "refusal failed: …", "not installed yet".
    pub refusal: String,
    /// What the sessions carry for the service: "primary", "fallback" or "none".
    pub export: String,
    /// Connections reset on withdraws since the daemon started.
    pub connections_reset: u64,
    /// Why there is no fallback, or why connections cannot be reset.
    pub note: Option<String>,
}
