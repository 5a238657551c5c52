//! BGP messages as the session machine sees them: plain data, no wire format. The codec
//! (`codec/`) turns bytes into these and back; the FSM (`fsm.rs`) never touches bytes.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const SAFI_UNICAST: u8 = 1;
/// The 2-byte ASN sent in OPEN's "My AS" when the real ASN needs 4 bytes (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// The address families this speaker handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    pub fn afi_safi(self) -> (u16, u8) {
        match self {
            Family::Ipv4Unicast => (AFI_IPV4, SAFI_UNICAST),
            Family::Ipv6Unicast => (AFI_IPV6, SAFI_UNICAST),
        }
    }

    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Family> {
        Family::ALL
            .into_iter()
            .find(|f| f.afi_safi() == (afi, safi))
    }

    pub fn of(prefix: &IpNetwork) -> Family {
        match prefix {
            IpNetwork::V4(_) => Family::Ipv4Unicast,
            IpNetwork::V6(_) => Family::Ipv6Unicast,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

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
    /// RFC 7911 ADD-PATH (code 69): what the speaker does with path identifiers, per family.
    pub add_path: Vec<AddPath>,
    /// RFC 4724 graceful restart (code 64). We send it with no families and restart time 0:
    /// it tells the peer we understand End-of-RIB, and asks it to keep none of our routes.
    pub graceful_restart: Option<GracefulRestart>,
    /// Codes of capabilities we received and do not act on (FQDN, ...).
    pub other: Vec<u8>,
}

/// One ADD-PATH capability entry (RFC 7911 §4): AFI, SAFI, and Send/Receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddPath {
    pub afi: u16,
    pub safi: u8,
    /// 1 = able to receive, 2 = able to send, 3 = both.
    pub send_receive: u8,
}

impl AddPath {
    pub const RECEIVE: u8 = 1;
    pub const SEND: u8 = 2;
}

/// The graceful restart capability's value (RFC 4724 §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The 4 flag bits (R, N).
    pub flags: u8,
    /// Seconds (12 bits).
    pub restart_time: u16,
    /// (AFI, SAFI, flags) for families whose forwarding state the speaker preserves.
    pub families: Vec<(u16, u8, u8)>,
}

impl GracefulRestart {
    /// Restart State (R) in `flags`: the speaker has restarted (RFC 4724 §3).
    pub const RESTART_STATE: u8 = 0x8;
    /// Graceful Notification (N) in `flags` (RFC 8538).
    pub const NOTIFICATION: u8 = 0x4;
    /// Forwarding State (F) in a family's flags (RFC 4724 §3).
    pub const FORWARDING_STATE: u8 = 0x80;
}

impl Capabilities {
    /// Whether the speaker takes routes of `family`: advertised explicitly, or (IPv4 unicast
    /// only) implied by a speaker that sends no multiprotocol capability at all (RFC 4760 §8).
    pub fn supports(&self, family: Family) -> bool {
        let implied = family == Family::Ipv4Unicast && self.multiprotocol.is_empty();
        implied || self.multiprotocol.contains(&family.afi_safi())
    }

    pub fn ipv4_unicast(&self) -> bool {
        self.supports(Family::Ipv4Unicast)
    }

    /// Whether the speaker said it can send (`AddPath::SEND`) or receive (`AddPath::RECEIVE`)
    /// path identifiers for `family`.
    pub fn add_path(&self, family: Family, direction: u8) -> bool {
        let (afi, safi) = family.afi_safi();
        self.add_path
            .iter()
            .any(|a| a.afi == afi && a.safi == safi && a.send_receive & direction != 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Igp => "IGP",
            Origin::Egp => "EGP",
            Origin::Incomplete => "incomplete",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsPathSegment {
    Sequence(Vec<u32>),
    Set(Vec<u32>),
}

/// AS_PATH as segments (confederation segments are not kept: RFC 5065 says they do not count
/// outside the confederation). Displays like routers do: `65001 65002 {65010 65011}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsPath(pub Vec<AsPathSegment>);

impl AsPath {
    /// One AS_SEQUENCE of `asns`; empty for an empty list (iBGP origination).
    pub fn sequence(asns: Vec<u32>) -> AsPath {
        if asns.is_empty() {
            AsPath(Vec::new())
        } else {
            AsPath(vec![AsPathSegment::Sequence(asns)])
        }
    }

    /// The leftmost AS, the neighbour's on an eBGP session (RFC 4271 §6.3).
    pub fn first_asn(&self) -> Option<u32> {
        match self.0.first()? {
            AsPathSegment::Sequence(v) => v.first().copied(),
            AsPathSegment::Set(_) => None,
        }
    }

    /// Path length for route selection: a set counts as one (RFC 4271 §9.1.2.2).
    pub fn length(&self) -> usize {
        self.0
            .iter()
            .map(|s| match s {
                AsPathSegment::Sequence(v) => v.len(),
                AsPathSegment::Set(_) => 1,
            })
            .sum()
    }
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for segment in &self.0 {
            let (asns, set) = match segment {
                AsPathSegment::Sequence(v) => (v, false),
                AsPathSegment::Set(v) => (v, true),
            };
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let list = asns.iter().map(u32::to_string).collect::<Vec<_>>();
            if set {
                write!(f, "{{{}}}", list.join(" "))?;
            } else {
                f.write_str(&list.join(" "))?;
            }
        }
        Ok(())
    }
}

/// RFC 1997 community, shown as `asn:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// RFC 8092 large community, shown as `global:local1:local2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

/// Next hops of an UPDATE: the classic NEXT_HOP for IPv4 NLRI, and MP_REACH's for IPv6
/// (a global address, plus a link-local one when the session runs over a shared link).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextHop {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub ipv6_link_local: Option<Ipv6Addr>,
}

/// A path attribute we do not interpret, kept as received (for display only; never sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathAttributes {
    pub origin: Origin,
    pub as_path: AsPath,
    pub next_hop: NextHop,
    pub med: Option<u32>,
    /// Sent and accepted on iBGP sessions only.
    pub local_pref: Option<u32>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    /// Received only.
    pub atomic_aggregate: bool,
    /// Received only: (AS, router id).
    pub aggregator: Option<(u32, Ipv4Addr)>,
    /// Received only: optional attributes we do not interpret.
    pub other: Vec<RawAttribute>,
}

impl PathAttributes {
    /// The attributes of a route we originate; the rest default to absent.
    pub fn new(origin: Origin, as_path: AsPath, next_hop: NextHop) -> Self {
        PathAttributes {
            origin,
            as_path,
            next_hop,
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            atomic_aggregate: false,
            aggregator: None,
            other: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// IPv4 withdrawals travel in the classic field, IPv6 ones in MP_UNREACH_NLRI.
    pub withdrawn: Vec<IpNetwork>,
    /// Present whenever `nlri` is non-empty.
    pub attributes: Option<PathAttributes>,
    /// IPv4 NLRI travel in the classic field (NEXT_HOP `next_hop.ipv4`), IPv6 ones in
    /// MP_REACH_NLRI (next hop `next_hop.ipv6` and optionally the link-local one).
    pub nlri: Vec<IpNetwork>,
    /// RFC 7911 path identifiers: empty when no family of the UPDATE carries them, else one
    /// per entry of `withdrawn` (resp. `nlri`), 0 for a family without ADD-PATH. Decode-side
    /// only: we never send path identifiers.
    pub withdrawn_path_ids: Vec<u32>,
    pub nlri_path_ids: Vec<u32>,
    /// An End-of-RIB marker (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an UPDATE with
    /// only an empty MP_UNREACH_NLRI for another family. Decode-side only.
    pub end_of_rib: Option<Family>,
    /// Errors handled without a session reset (RFC 7606): "treat-as-withdraw" moved the NLRI
    /// to `withdrawn`, "attribute discard" dropped an attribute. Decode-side only; the session
    /// logs and counts them.
    pub errors: Vec<String>,
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
    pub const MAX_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// Cease: the BFD session to the peer went down (RFC 9384).
    pub const BFD_DOWN: u8 = 10;
}

mod error_codes;
pub use error_codes::{
    CeaseSubcode, ErrorCode, FsmSubcode, HeaderSubcode, NotificationKind, OpenSubcode,
    UpdateSubcode,
};

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

    /// A NOTIFICATION of `kind` carrying `data`.
    pub fn of(kind: NotificationKind, data: Vec<u8>) -> Self {
        Notification::new(kind.code().into(), kind.subcode(), data)
    }

    /// The typed code and subcode, when they are ones we know.
    pub fn kind(&self) -> Option<NotificationKind> {
        NotificationKind::from_codes(self.code, self.subcode)
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
        let kind = NotificationKind::Cease(CeaseSubcode::AdministrativeShutdown);
        Notification::of(kind, data)
    }

    /// The RFC 8203 shutdown communication, when this is a Cease that carries a valid one.
    pub fn shutdown_message(&self) -> Option<String> {
        use CeaseSubcode::{AdministrativeReset, AdministrativeShutdown};
        let Some(NotificationKind::Cease(AdministrativeShutdown | AdministrativeReset)) =
            self.kind()
        else {
            return None;
        };
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
        assert!(c.supports(Family::Ipv6Unicast));
        c.multiprotocol.push((1, 1));
        assert!(c.ipv4_unicast());
        assert!(!Capabilities::default().supports(Family::Ipv6Unicast));
    }

    #[test]
    fn as_path_displays_sets_in_braces_and_counts_them_as_one() {
        let p = AsPath(vec![
            AsPathSegment::Sequence(vec![65001, 4_200_000_001]),
            AsPathSegment::Set(vec![65010, 65011]),
        ]);
        assert_eq!(p.to_string(), "65001 4200000001 {65010 65011}");
        assert_eq!(p.length(), 3);
        assert_eq!(p.first_asn(), Some(65001));
        assert_eq!(AsPath::sequence(vec![]).to_string(), "");
        assert_eq!(AsPath::sequence(vec![]).first_asn(), None);
    }

    #[test]
    fn communities_display_like_routers() {
        assert_eq!(Community(65001 << 16 | 100).to_string(), "65001:100");
        let l = LargeCommunity {
            global: 4_200_000_001,
            local1: 1,
            local2: 2,
        };
        assert_eq!(l.to_string(), "4200000001:1:2");
    }
}
