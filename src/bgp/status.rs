//! What a session shows the operator: published by the session task on a watch channel, read
//! by the control socket and the metrics endpoint without ever waiting on the session.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use ipnetwork::IpNetwork;

use super::fsm::{Counters, Fsm, State};
use super::message::PathAttributes;
use super::reason::{DownReason, Notified};
use super::rib_in::AdjRibIn;
use crate::config::PeerConfig;

#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub name: String,
    pub address: IpAddr,
    pub local_asn: u32,
    pub remote_asn: u32,
    pub state: State,
    /// When the session entered `state`.
    pub since: SystemTime,
    pub local_address: Option<IpAddr>,
    pub peer_router_id: Option<std::net::Ipv4Addr>,
    pub hold_time: Option<u16>,
    pub keepalive: Option<u16>,
    /// Negotiated capabilities, as names (`ipv4-unicast`, `route-refresh`, ...).
    pub capabilities: Vec<String>,
    pub counters: Counters,
    /// Why the last session ended (or the last attempt failed).
    pub last_error: Option<DownReason>,
    /// The NOTIFICATION that ended the last session, and who sent it.
    pub last_notification: Option<Notified>,
    pub rib_out: Arc<BTreeMap<IpNetwork, PathAttributes>>,
    /// When each prefix in `rib_out` was first advertised in this session.
    pub advertised_since: BTreeMap<IpNetwork, SystemTime>,
    /// May lag the session by up to a second (copying a large table on every UPDATE would
    /// cost more than the freshness is worth).
    pub rib_in: AdjRibIn,
    /// Every path received for a watched (primary service) prefix, loops included; never
    /// lags: the split-brain rules read it.
    pub sightings: AdjRibIn,
    /// Established, and the peer's initial routes are in (End-of-RIB or the wait ended).
    pub initial_routes_done: bool,
    /// The BFD session's live status, when the peer has `bfd = true`.
    pub bfd: Option<tokio::sync::watch::Receiver<crate::bfd::status::BfdStatus>>,
}

impl PeerStatus {
    pub fn new(peer: &PeerConfig, local_asn: u32) -> Self {
        PeerStatus {
            name: peer.name.clone(),
            address: peer.address,
            local_asn,
            remote_asn: peer.remote_asn,
            state: State::Idle,
            since: SystemTime::now(),
            local_address: None,
            peer_router_id: None,
            hold_time: None,
            keepalive: None,
            capabilities: Vec::new(),
            counters: Counters::default(),
            last_error: None,
            last_notification: None,
            rib_out: Arc::default(),
            advertised_since: BTreeMap::new(),
            rib_in: AdjRibIn::default(),
            sightings: AdjRibIn::default(),
            initial_routes_done: false,
            bfd: None,
        }
    }

    /// Refreshes everything from the machine except `since` and, unless
    /// `with_rib_in`, the Adj-RIB-In.
    pub fn update_from(&mut self, fsm: &Fsm, with_rib_in: bool) {
        if self.state != fsm.state() {
            self.state = fsm.state();
            self.since = SystemTime::now();
        }
        let n = fsm.negotiated();
        self.local_address = n.map(|n| n.local_address);
        self.peer_router_id = n.map(|n| n.peer_router_id);
        self.hold_time = n.map(|n| n.hold_time);
        self.keepalive = n.map(|n| n.keepalive);
        self.capabilities = match n {
            None => Vec::new(),
            Some(n) => {
                let mut caps: Vec<String> = n.families.iter().map(|f| f.to_string()).collect();
                if n.route_refresh {
                    caps.push("route-refresh".into());
                }
                if n.four_octet_asn {
                    caps.push("4-octet-asn".into());
                }
                caps.extend(n.add_path_rx.iter().map(|f| format!("add-path-rx {f}")));
                caps
            }
        };
        self.counters = fsm.counters().clone();
        self.last_error = fsm.last_error().cloned();
        self.last_notification = fsm.last_notification().cloned();
        if *self.rib_out != *fsm.rib_out() {
            self.rib_out = Arc::new(fsm.rib_out().clone());
            let now = SystemTime::now();
            let out = &self.rib_out;
            self.advertised_since.retain(|p, _| out.contains_key(p));
            for p in out.keys() {
                self.advertised_since.entry(*p).or_insert(now);
            }
        }
        if with_rib_in || fsm.rib_in().is_empty() {
            self.rib_in = fsm.rib_in().clone();
        }
        self.sightings = fsm.sightings().clone();
        self.initial_routes_done = fsm.initial_routes_done();
    }
}
