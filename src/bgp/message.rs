//! BGP messages as the session machine sees them: plain data, no wire format. The codec
//! (`codec.rs`) turns bytes into these and back; the FSM (`fsm.rs`) never touches bytes.

use std::fmt;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// AFI/SAFI for IPv4 unicast, the only family of this release.
pub const AFI_IPV4: u16 = 1;
pub const SAFI_UNICAST: u8 = 1;
/// The 2-byte ASN sent in OPEN's "My AS" when the real ASN needs 4 bytes (RFC 6793).
pub const AS_TRANS: u16 = 23456;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh { afi: u16, safi: u8 },
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Open(_) => "OPEN",
            Message::Update(_) => "UPDATE",
            Message::Notification(_) => "NOTIFICATION",
            Message::Keepalive => "KEEPALIVE",
            Message::RouteRefresh { .. } => "ROUTE-REFRESH",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The speaker's ASN: from the 4-octet-ASN capability when present, else "My AS".
    pub asn: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub capabilities: Capabilities,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// RFC 6793 capability (code 65) with the speaker's ASN.
    pub four_octet_asn: Option<u32>,
    /// RFC 4760 multiprotocol capabilities (code 1) as (AFI, SAFI).
    pub multiprotocol: Vec<(u16, u8)>,
    /// RFC 2918 route refresh (code 2).
    pub route_refresh: bool,
    /// Codes of capabilities we received and do not act on (FQDN, graceful restart, ...).
    pub other: Vec<u8>,
}

impl Capabilities {
    /// Whether the peer can take IPv4 unicast routes: advertised explicitly, or implied by a
    /// peer that sends no multiprotocol capability at all (RFC 4760 §8).
    pub fn ipv4_unicast(&self) -> bool {
        self.multiprotocol.is_empty() || self.multiprotocol.contains(&(AFI_IPV4, SAFI_UNICAST))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

/// Path attributes this release sends and reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathAttributes {
    pub origin: Origin,
    /// AS_PATH as one AS_SEQUENCE (empty on iBGP).
    pub as_path: Vec<u32>,
    pub next_hop: Ipv4Addr,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Network>,
    /// Present whenever `nlri` is non-empty.
    pub attributes: Option<PathAttributes>,
    pub nlri: Vec<Ipv4Network>,
}

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 6608).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
}

/// Subcodes, grouped by error code.
pub mod subcode {
    // Message header errors.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
    // OPEN errors.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    // UPDATE errors.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN: u8 = 6;
    pub const INVALID_NEXT_HOP: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
    // FSM errors (RFC 6608).
    pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
    pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
    // Cease (RFC 4486).
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// Cease / Administrative Shutdown carrying an RFC 8203/9003 shutdown communication: one
    /// length byte and at most 255 bytes of UTF-8, cut on a character boundary.
    pub fn admin_shutdown(message: &str) -> Self {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&message.as_bytes()[..end]);
        Notification::new(code::CEASE, subcode::ADMINISTRATIVE_SHUTDOWN, data)
    }

    /// The RFC 8203 shutdown communication, when this is a Cease that carries a valid one.
    pub fn shutdown_message(&self) -> Option<String> {
        let shutdown_kind = matches!(
            self.subcode,
            subcode::ADMINISTRATIVE_SHUTDOWN | subcode::ADMINISTRATIVE_RESET
        );
        if self.code != code::CEASE || !shutdown_kind {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..len as usize)?;
        std::str::from_utf8(text).ok().map(str::to_owned)
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code_name = match self.code {
            code::MESSAGE_HEADER => "Message Header Error",
            code::OPEN_MESSAGE => "OPEN Message Error",
            code::UPDATE_MESSAGE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM => "Finite State Machine Error",
            code::CEASE => "Cease",
            _ => "Unknown Error",
        };
        write!(f, "{code_name} ({}/{})", self.code, self.subcode)?;
        if let Some(msg) = self.shutdown_message() {
            write!(f, ": {msg:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_shutdown_round_trips_and_truncates_on_char_boundary() {
        let n = Notification::admin_shutdown("primaryd stopping");
        assert_eq!((n.code, n.subcode), (6, 2));
        assert_eq!(n.shutdown_message().as_deref(), Some("primaryd stopping"));
        let long = "é".repeat(200); // 400 bytes
        let n = Notification::admin_shutdown(&long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_message().unwrap().chars().count(), 127);
    }

    #[test]
    fn ipv4_unicast_is_implied_without_mp_capabilities() {
        let mut c = Capabilities::default();
        assert!(c.ipv4_unicast());
        c.multiprotocol.push((2, 1));
        assert!(!c.ipv4_unicast());
        c.multiprotocol.push((1, 1));
        assert!(c.ipv4_unicast());
    }
}
