//! The OPEN exchange (RFC 4271 §4.2, §6.2): the OPEN we send, the checks on the peer's, what
//! both settle, and connection collisions (§6.8) when the peer connects to us.

use std::net::IpAddr;
use std::time::Duration;

use super::{Fsm, InterfaceAddresses, Negotiated, Output, State, Timer, OPEN_HOLD_TIME};
use crate::bgp::message::{
    AddPath, Capabilities, CeaseSubcode, Family, GracefulRestart, Message, Notification,
    NotificationKind, Open,
};
use crate::bgp::reason::{DownReason, OpenError, StateReason, Warning};

impl Fsm {
    /// The OPEN we send: our real ASN (the codec puts AS_TRANS in "My AS" when it needs 4
    /// bytes), the 4-octet-ASN capability, both unicast families and route refresh.
    pub fn our_open(&self) -> Open {
        Open {
            asn: self.cfg.local_asn,
            hold_time: self.cfg.hold_time,
            router_id: self.cfg.router_id,
            capabilities: Capabilities {
                four_octet_asn: Some(self.cfg.local_asn),
                multiprotocol: Family::ALL.iter().map(|f| f.afi_safi()).collect(),
                route_refresh: true,
                // Receive every path a router has for our prefixes (RFC 7911), not only its
                // best one: how a host sees every other announcer of its service prefixes.
                add_path: Family::ALL
                    .iter()
                    .map(|f| {
                        let (afi, safi) = f.afi_safi();
                        AddPath {
                            afi,
                            safi,
                            send_receive: AddPath::RECEIVE,
                        }
                    })
                    .collect(),
                // Graceful restart with no families and restart time 0: we understand
                // End-of-RIB (so the peer sends it), and the peer keeps none of our routes
                // when the session drops.
                graceful_restart: Some(GracefulRestart::default()),
                other: Vec::new(),
            },
        }
    }

    pub(super) fn tcp_connected(
        &mut self,
        local: IpAddr,
        iface: InterfaceAddresses,
        out: &mut Vec<Output>,
    ) {
        if self.state != State::Connect {
            // A connect that completed after we gave up on it or were stopped.
            out.push(Output::Close);
            return;
        }
        out.push(Output::StopTimer(Timer::ConnectRetry));
        self.open_sent(local, iface, StateReason::OpenSent, out);
    }

    pub(super) fn open_sent(
        &mut self,
        local: IpAddr,
        iface: InterfaceAddresses,
        reason: StateReason,
        out: &mut Vec<Output>,
    ) {
        self.local = Some((local, iface));
        let open = self.our_open();
        self.send(Message::Open(open), out);
        out.push(Output::StartTimer(Timer::Hold, OPEN_HOLD_TIME));
        self.transition(State::OpenSent, reason, out);
    }

    /// The peer connected to us (RFC 4271 §6.8 when we have a connection of our own).
    pub(super) fn incoming(
        &mut self,
        local: IpAddr,
        iface: InterfaceAddresses,
        open: Open,
        out: &mut Vec<Output>,
    ) {
        let cease = |sub| Notification::of(NotificationKind::Cease(sub), Vec::new());
        let collision = || cease(CeaseSubcode::ConnectionCollisionResolution);
        match self.state {
            _ if self.stopped || self.bfd_down => {
                out.push(Output::RejectIncoming(cease(
                    CeaseSubcode::ConnectionRejected,
                )));
                return;
            }
            State::Idle if self.damped => {
                // No new session before the idle hold after a failed session ends (RFC 4271
                // §8.2.2: Idle refuses connections). After a mere failed connect the peer's
                // own connection is welcome: it is how a restarted router comes back fastest.
                out.push(Output::RejectIncoming(cease(
                    CeaseSubcode::ConnectionRejected,
                )));
                return;
            }
            State::Established => {
                out.push(Output::RejectIncoming(collision()));
                return;
            }
            State::OpenSent | State::OpenConfirm => {
                // The connection opened by the speaker with the higher BGP identifier stays.
                if u32::from(self.cfg.router_id) > u32::from(open.router_id) {
                    out.push(Output::RejectIncoming(collision()));
                    return;
                }
                self.send(Message::Notification(collision()), out);
                out.push(Output::Close);
                self.stop_session_timers(out);
                self.reset_session();
            }
            State::Idle | State::Connect | State::Active => {
                if self.state == State::Connect {
                    out.push(Output::Close);
                }
            }
        }
        out.push(Output::StopTimer(Timer::ConnectRetry));
        out.push(Output::AdoptIncoming);
        self.open_sent(local, iface, StateReason::PeerConnected, out);
        self.open_received(open, out);
    }

    /// The peer's OPEN (RFC 4271 §6.2 checks), then what both sides settled.
    pub(super) fn open_received(&mut self, open: Open, out: &mut Vec<Output>) {
        if let Err(e) = self.check_open(&open) {
            return self.fail(e.into(), out);
        }
        let Some((local_address, interface)) = self.local.clone() else {
            // open_sent always sets it first; treat a gap as a bug, not a panic.
            return self.fail(DownReason::NoLocalAddress, out);
        };
        let four_octet_asn = open.capabilities.four_octet_asn.is_some();
        let hold_time = self.cfg.hold_time.min(open.hold_time);
        let keepalive = if hold_time == 0 {
            0
        } else {
            (hold_time / 3).max(1)
        };
        let ours = self.our_open().capabilities;
        let families: Vec<Family> = Family::ALL
            .into_iter()
            .filter(|f| ours.supports(*f) && open.capabilities.supports(*f))
            .collect();
        if families.is_empty() {
            out.push(Output::Warn(Warning::NoFamilies));
        }
        let add_path_rx = families
            .iter()
            .copied()
            .filter(|f| open.capabilities.add_path(*f, AddPath::SEND))
            .collect();
        self.negotiated = Some(Negotiated {
            hold_time,
            keepalive,
            four_octet_asn,
            families,
            route_refresh: open.capabilities.route_refresh,
            add_path_rx,
            peer_router_id: open.router_id,
            peer_capabilities: open.capabilities,
            local_address,
            interface,
        });
        self.send(Message::Keepalive, out);
        if hold_time > 0 {
            out.push(Output::StartTimer(
                Timer::Keepalive,
                Duration::from_secs(keepalive.into()),
            ));
            self.restart_hold_timer(out);
        } else {
            // Hold time 0: no keepalives and no hold timer (RFC 4271 §4.4).
            self.stop_session_timers(out);
        }
        self.transition(
            State::OpenConfirm,
            StateReason::OpenReceived { hold_time },
            out,
        );
    }

    pub(super) fn check_open(&self, open: &Open) -> Result<(), OpenError> {
        if open.asn != self.cfg.remote_asn {
            return Err(OpenError::BadPeerAs {
                sent: open.asn,
                configured: self.cfg.remote_asn,
            });
        }
        if self.ibgp() && open.router_id == self.cfg.router_id {
            return Err(OpenError::OurRouterId(open.router_id));
        }
        if open.hold_time == 1 || open.hold_time == 2 {
            return Err(OpenError::HoldTime(open.hold_time));
        }
        let four_octet_asn = open.capabilities.four_octet_asn.is_some();
        if !four_octet_asn && self.cfg.local_asn > u32::from(u16::MAX) {
            // RFC 6793's AS_TRANS/AS4_PATH handling for old speakers is not implemented:
            // refuse clearly rather than send a path the peer would misread.
            return Err(OpenError::NoFourOctetAsn(self.cfg.local_asn));
        }
        Ok(())
    }
}
