//! What a session reports, as types: why it went down (or never came up), the NOTIFICATION
//! that ended it and who sent it, why its state changed, and the problems it logs. Rendered
//! to text only at the edges (the log lines, `show peers`), with the texts operators know.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::fsm::State;
use super::message::{
    AsPath, CeaseSubcode, Family, FsmSubcode, Notification, NotificationKind, OpenSubcode,
};

/// Who sent a NOTIFICATION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        })
    }
}

/// A NOTIFICATION that ended a session (or a connection attempt), with its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    pub direction: Direction,
    pub notification: Notification,
}

impl Notified {
    pub fn sent(notification: Notification) -> Self {
        Notified {
            direction: Direction::Sent,
            notification,
        }
    }

    pub fn received(notification: Notification) -> Self {
        Notified {
            direction: Direction::Received,
            notification,
        }
    }
}

/// Why a session ended, or why a connection did not become one (`show peers` LAST ERROR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownReason {
    /// The TCP connect failed; the driver's error text.
    #[error("connect failed: {0}")]
    ConnectFailed(String),
    #[error("connect timed out after {} ms", .0.as_millis())]
    ConnectTimedOut(Duration),
    /// The peer closed the connection, or reading or writing it failed; the driver's text.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The codec rejected what the peer sent; this NOTIFICATION says why.
    #[error("malformed message from peer: {0}")]
    Malformed(Notification),
    #[error("NOTIFICATION received: {0}")]
    NotificationReceived(Notification),
    #[error("hold timer expired in {0}")]
    HoldTimerExpired(State),
    /// A message the state does not allow (RFC 6608).
    #[error("unexpected {message} in {state}")]
    Unexpected { message: &'static str, state: State },
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The Adj-RIB-In outgrew `max_prefixes` with an UPDATE of `family`.
    #[error("peer sent {count} prefixes, more than max_prefixes {limit}")]
    MaxPrefixes {
        count: usize,
        limit: u32,
        family: Family,
    },
    /// BFD declared the path down; BFD's own words.
    #[error("{0}")]
    Bfd(String),
    /// A connection the peer opened was refused before it became the session.
    #[error("incoming connection: {0}")]
    Incoming(String),
    /// A connected session without a local address: a bug, handled as a failure.
    #[error("internal: no local address")]
    NoLocalAddress,
}

impl DownReason {
    /// The NOTIFICATION this reason makes us send to the peer, if any.
    pub fn notification(&self) -> Option<Notification> {
        use NotificationKind as K;
        Some(match self {
            DownReason::Malformed(n) => n.clone(),
            DownReason::HoldTimerExpired(_) => Notification::of(K::HoldTimerExpired, Vec::new()),
            DownReason::Unexpected { state, .. } => {
                let sub = match state {
                    State::OpenSent => FsmSubcode::UnexpectedInOpenSent,
                    State::OpenConfirm => FsmSubcode::UnexpectedInOpenConfirm,
                    _ => FsmSubcode::UnexpectedInEstablished,
                };
                Notification::of(K::Fsm(sub), Vec::new())
            }
            DownReason::Open(e) => e.notification(),
            DownReason::MaxPrefixes { limit, family, .. } => {
                // RFC 4486: data AFI, SAFI, limit.
                let (afi, safi) = family.afi_safi();
                let mut data = Vec::with_capacity(7);
                data.extend_from_slice(&afi.to_be_bytes());
                data.push(safi);
                data.extend_from_slice(&limit.to_be_bytes());
                Notification::of(K::Cease(CeaseSubcode::MaxPrefixesReached), data)
            }
            DownReason::Bfd(_) => Notification::of(K::Cease(CeaseSubcode::BfdDown), Vec::new()),
            DownReason::ConnectFailed(_)
            | DownReason::ConnectTimedOut(_)
            | DownReason::Closed(_)
            | DownReason::NotificationReceived(_)
            | DownReason::Incoming(_)
            | DownReason::NoLocalAddress => return None,
        })
    }
}

/// An OPEN we refuse (RFC 4271 §6.2); each converts into the NOTIFICATION it causes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("peer sent AS {sent} but is configured as AS {configured}")]
    BadPeerAs { sent: u32, configured: u32 },
    #[error("iBGP peer uses our router id {0}")]
    OurRouterId(Ipv4Addr),
    #[error("unacceptable hold time {0} from peer")]
    HoldTime(u16),
    /// RFC 6793's AS_TRANS/AS4_PATH handling for old speakers is not implemented.
    #[error("peer does not support 4-byte ASNs, which our AS {0} needs")]
    NoFourOctetAsn(u32),
}

impl OpenError {
    pub fn notification(&self) -> Notification {
        let (sub, data) = match self {
            OpenError::BadPeerAs { .. } => (OpenSubcode::BadPeerAs, Vec::new()),
            OpenError::OurRouterId(_) => (OpenSubcode::BadBgpIdentifier, Vec::new()),
            OpenError::HoldTime(_) => (OpenSubcode::UnacceptableHoldTime, Vec::new()),
            OpenError::NoFourOctetAsn(asn) => {
                // The capability we need: 4-octet ASN (code 65, length 4) with our ASN.
                let mut cap = vec![65, 4];
                cap.extend_from_slice(&asn.to_be_bytes());
                (OpenSubcode::UnsupportedCapability, cap)
            }
        };
        Notification::of(NotificationKind::Open(sub), data)
    }
}

impl From<&OpenError> for Notification {
    fn from(e: &OpenError) -> Notification {
        e.notification()
    }
}

/// Why the session changed state (the log line of every transition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateReason {
    Connecting,
    WaitingForPeer,
    /// Our connect completed and our OPEN went out.
    OpenSent,
    /// The peer's connection became the session and our OPEN went out on it.
    PeerConnected,
    OpenReceived {
        hold_time: u16,
    },
    KeepaliveReceived,
    AdminStop(String),
    /// The session ended (or an attempt failed); `next_attempt`, the idle hold, unless only
    /// BFD brings it back.
    Down {
        reason: DownReason,
        next_attempt: Option<Duration>,
    },
}

impl fmt::Display for StateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateReason::Connecting => f.write_str("connecting"),
            StateReason::WaitingForPeer => f.write_str("waiting for the peer to connect"),
            StateReason::OpenSent => f.write_str("TCP connected, OPEN sent"),
            StateReason::PeerConnected => f.write_str("peer connected, OPEN sent"),
            StateReason::OpenReceived { hold_time } => {
                write!(f, "OPEN received, hold time {hold_time} s")
            }
            StateReason::KeepaliveReceived => f.write_str("KEEPALIVE received"),
            StateReason::AdminStop(message) => write!(f, "administrative stop: {message}"),
            StateReason::Down {
                reason,
                next_attempt: None,
            } => write!(f, "{reason}"),
            StateReason::Down {
                reason,
                next_attempt: Some(d),
            } => write!(f, "{reason}; next attempt in {} ms", d.as_millis()),
        }
    }
}

/// A problem the session logs and goes on (received routes, negotiation, export).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// The codec's RFC 7606 finding, as it reports it.
    #[error("UPDATE error handled per RFC 7606: {0}")]
    UpdateError(String),
    /// RFC 4271 §6.3 with RFC 7606 §7.2.
    #[error(
        "UPDATE for {prefixes} prefixes treated as withdraw: AS_PATH does not start with the \
         peer's AS {peer_as} ({as_path})"
    )]
    FirstAsNotPeer {
        prefixes: usize,
        peer_as: u32,
        as_path: AsPath,
    },
    #[error("{paths} paths for service prefixes not kept: more than max_prefixes {limit}")]
    SightingsOverLimit { paths: usize, limit: u32 },
    #[error(
        "no End-of-RIB for {} within {} ms: taking the routes received so far as the peer's \
         initial routes",
        join(.missing), .waited.as_millis()
    )]
    NoEndOfRib {
        missing: Vec<Family>,
        waited: Duration,
    },
    #[error("peer accepts neither IPv4 nor IPv6 unicast: no routes will be sent")]
    NoFamilies,
    /// RFC 2918 §4: a family that was not negotiated is ignored.
    #[error("ROUTE-REFRESH for AFI {afi} SAFI {safi}, not negotiated: ignored")]
    RefreshNotNegotiated { afi: u16, safi: u8 },
    #[error(
        "not sent to this peer (family not negotiated, or no next hop for it): {}",
        join(.0)
    )]
    Unroutable(Vec<IpNetwork>),
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    items.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts operators read in the log and in `show peers`, unchanged by the types.
    #[test]
    fn reasons_render_to_the_operators_texts() {
        let cease = Notification::new(6, 2, vec![]);
        for (reason, text) in [
            (
                DownReason::ConnectTimedOut(Duration::from_secs(5)),
                "connect timed out after 5000 ms",
            ),
            (
                DownReason::HoldTimerExpired(State::OpenSent),
                "hold timer expired in OpenSent",
            ),
            (
                DownReason::NotificationReceived(cease),
                "NOTIFICATION received: Cease (6/2)",
            ),
            (
                DownReason::Unexpected {
                    message: "KEEPALIVE",
                    state: State::OpenSent,
                },
                "unexpected KEEPALIVE in OpenSent",
            ),
            (
                OpenError::BadPeerAs {
                    sent: 65002,
                    configured: 65001,
                }
                .into(),
                "peer sent AS 65002 but is configured as AS 65001",
            ),
        ] {
            assert_eq!(reason.to_string(), text);
        }
        let down = StateReason::Down {
            reason: DownReason::Closed("peer closed the connection".into()),
            next_attempt: Some(Duration::from_millis(750)),
        };
        assert_eq!(
            down.to_string(),
            "connection closed: peer closed the connection; next attempt in 750 ms"
        );
        let w = Warning::Unroutable(vec!["192.0.2.10/32".parse().unwrap()]);
        assert!(w.to_string().ends_with("for it): 192.0.2.10/32"));
        let w = Warning::NoEndOfRib {
            missing: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            waited: Duration::from_secs(2),
        };
        assert!(w.to_string().starts_with(&format!(
            "no End-of-RIB for {}, {} within 2000 ms",
            Family::Ipv4Unicast,
            Family::Ipv6Unicast
        )));
    }

    #[test]
    fn reasons_carry_the_notification_they_cause() {
        let n = DownReason::from(OpenError::NoFourOctetAsn(4_200_000_001))
            .notification()
            .unwrap();
        assert_eq!((n.code, n.subcode), (2, 7));
        assert_eq!(n.data, [65, 4, 0xfa, 0x56, 0xea, 0x01]);
        let n = DownReason::MaxPrefixes {
            count: 4,
            limit: 3,
            family: Family::Ipv4Unicast,
        }
        .notification()
        .unwrap();
        assert_eq!(
            (n.code, n.subcode, n.data),
            (6, 1, vec![0, 1, 1, 0, 0, 0, 3])
        );
        let n = DownReason::Bfd("BFD Down".into()).notification().unwrap();
        assert_eq!((n.code, n.subcode), (6, 10));
        assert_eq!(DownReason::Closed("x".into()).notification(), None);
    }
}
