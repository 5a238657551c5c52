//! Starting and stopping BGP sessions (and their BFD sessions), and the listening sockets
//! that hand accepted connections to them.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::{
    Daemon, DaemonError, CONNECT_RETRY_MAX, CONNECT_RETRY_MIN, CONNECT_TIMEOUT, STABLE_AFTER,
};
use crate::bfd::auth::AuthKey;
use crate::bfd::engine::{BfdControl, Engine as BfdEngine, EngineOptions, SessionSpec};
use crate::bgp::fsm::FsmConfig;
use crate::bgp::listener::{self, PeerInbox};
use crate::bgp::session::Session;
use crate::bgp::socket;
use crate::bgp::status::PeerStatus;
use crate::config::{Config, PeerConfig, Secrets};

/// A running session and what it was started with (a reload compares against it).
pub(super) struct PeerHandle {
    pub(super) config: PeerConfig,
    pub(super) md5: Option<String>,
    /// Session settings that depend on `[bgp]` (a change restarts the session).
    pub(super) fsm: FsmKey,
    pub(super) stop: watch::Sender<Option<String>>,
    pub(super) status: watch::Receiver<PeerStatus>,
    pub(super) inbox: mpsc::Sender<TcpStream>,
    pub(super) scope: Option<u32>,
    pub(super) task: AbortHandle,
    pub(super) bfd_key: Option<AuthKey>,
    /// Changes the BFD session's intervals in place (reload).
    pub(super) bfd: Option<BfdControl>,
}

/// Session settings from `[bgp]`: a change restarts every session.
#[derive(PartialEq)]
pub(super) struct FsmKey {
    pub(super) asn: u32,
    pub(super) router_id: std::net::Ipv4Addr,
}

impl FsmKey {
    pub(super) fn of(config: &Config) -> FsmKey {
        FsmKey {
            asn: config.bgp.asn,
            router_id: config.bgp.router_id,
        }
    }
}

pub fn fsm_config(config: &Config, peer: &PeerConfig) -> FsmConfig {
    // Jitter only needs to differ between daemons and peers, not to be unpredictable.
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ peer
            .name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    FsmConfig {
        local_asn: config.bgp.asn,
        router_id: config.bgp.router_id,
        remote_asn: peer.remote_asn,
        hold_time: peer.hold_time,
        passive: peer.passive,
        connect_retry_min: CONNECT_RETRY_MIN,
        connect_retry_max: CONNECT_RETRY_MAX,
        stable_after: STABLE_AFTER,
        connect_timeout: CONNECT_TIMEOUT,
        max_prefixes: peer.max_prefixes,
        max_prefixes_restart: peer.max_prefixes_restart,
        next_hop_ipv4: peer.next_hop_ipv4,
        next_hop_ipv6: peer.next_hop_ipv6,
        jitter_seed: seed,
        initial_routes_wait: peer.initial_routes_wait,
    }
}

impl Daemon {
    pub(super) fn bind_listeners(
        &mut self,
        config: &Config,
        secrets: &Secrets,
    ) -> std::io::Result<()> {
        let md5: Vec<(&PeerConfig, Option<&str>)> = config
            .bgp
            .peers
            .iter()
            .zip(&secrets.md5)
            .map(|(p, k)| (p, k.as_deref()))
            .collect();
        let listeners = listener::bind(&config.bgp.listen, &md5)?;
        for old in self.listeners.drain(..) {
            self.retired.insert(old.id());
            old.abort();
        }
        for l in listeners {
            let handle = self
                .accepting
                .spawn(listener::run(l, self.inboxes.subscribe()));
            self.listeners.push(handle);
        }
        Ok(())
    }

    pub(super) fn start_peer(
        &mut self,
        config: &Config,
        peer: &PeerConfig,
        md5: Option<String>,
        bfd_key: Option<AuthKey>,
    ) -> Result<(), DaemonError> {
        let scope = match &peer.interface {
            Some(ifname) => {
                Some(
                    socket::interface_index(ifname).map_err(|source| DaemonError::Peer {
                        peer: peer.name.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let (inbox, accepted) = mpsc::channel(1);
        let (stop, stop_rx) = watch::channel(None);
        let (mut session, status) =
            Session::new(peer.clone(), fsm_config(config, peer), md5.clone());
        let mut bfd = None;
        if let Some(b) = &peer.bfd {
            let link = self
                .bfd_session(peer, b.intervals(), bfd_key.clone())
                .map_err(|source| DaemonError::Peer {
                    peer: peer.name.clone(),
                    source,
                })?;
            bfd = Some(link.control());
            session = session.with_bfd(link);
        }
        let session = session.notify(Arc::clone(&self.sessions_changed));
        let span = tracing::info_span!("peer", name = %peer.name, address = %peer.address);
        let fut = session.run(self.routes.subscribe(), stop_rx, accepted);
        let task = self
            .sessions
            .spawn(tracing::Instrument::instrument(fut, span));
        self.peers.insert(
            peer.name.clone(),
            PeerHandle {
                config: peer.clone(),
                md5,
                fsm: FsmKey::of(config),
                stop,
                status,
                inbox,
                scope,
                task,
                bfd_key,
                bfd,
            },
        );
        self.update_inboxes();
        Ok(())
    }

    /// A BFD session to `peer`, on the BFD thread (started on first use).
    pub(super) fn bfd_session(
        &mut self,
        peer: &PeerConfig,
        intervals: crate::bfd::fsm::Intervals,
        auth: Option<AuthKey>,
    ) -> std::io::Result<crate::bfd::engine::BfdLink> {
        let engine = match &mut self.bfd {
            Some(e) => e,
            None => self.bfd.insert(BfdEngine::start(EngineOptions::default())?),
        };
        engine.add(SessionSpec {
            name: peer.name.clone(),
            peer: peer.address,
            interface: peer.interface.clone(),
            local: peer.local_address,
            intervals,
            auth,
        })
    }

    /// Ends a session gracefully: withdraw, Cease with `message`, close. Its task then ends
    /// on its own; that end is expected.
    pub(super) fn stop_peer(&mut self, name: &str, message: &str) {
        if let Some(p) = self.peers.remove(name) {
            self.retired.insert(p.task.id());
            p.stop.send_replace(Some(message.to_string()));
        }
        self.update_inboxes();
    }

    pub(super) fn update_inboxes(&mut self) {
        let inboxes = self
            .peers
            .values()
            .map(|p| PeerInbox {
                name: p.config.name.clone(),
                address: p.config.address,
                scope: p.scope,
                tx: p.inbox.clone(),
            })
            .collect();
        self.inboxes.send_replace(Arc::new(inboxes));
    }
}
