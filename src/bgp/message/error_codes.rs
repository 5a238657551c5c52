//! NOTIFICATION error codes and subcodes as types (RFC 4271 §4.5, §6; RFC 4486, 6608, 8203).
//! The `u8` constants of `message::code` and `message::subcode` hold the same values.

/// Declares a `u8`-valued wire enum with `from_u8` and `From<Self> for u8`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)+
        }

        impl $name {
            pub fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value as u8
            }
        }
    };
}

wire_enum! {
    /// NOTIFICATION error codes (RFC 4271 §4.5) as a type; [`code`] has the same values.
    ErrorCode {
        MessageHeader = 1,
        OpenMessage = 2,
        UpdateMessage = 3,
        HoldTimerExpired = 4,
        Fsm = 5,
        Cease = 6,
    }
}

wire_enum! {
    /// Message Header Error subcodes (RFC 4271 §6.1).
    HeaderSubcode {
        ConnectionNotSynchronized = 1,
        BadMessageLength = 2,
        BadMessageType = 3,
    }
}

wire_enum! {
    /// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
    OpenSubcode {
        /// A recognized optional parameter or capability that is malformed (RFC 4271 §6.2).
        Unspecific = 0,
        UnsupportedVersion = 1,
        BadPeerAs = 2,
        BadBgpIdentifier = 3,
        UnsupportedOptionalParameter = 4,
        UnacceptableHoldTime = 6,
        UnsupportedCapability = 7,
    }
}

wire_enum! {
    /// UPDATE Message Error subcodes (RFC 4271 §6.3).
    UpdateSubcode {
        MalformedAttributeList = 1,
        UnrecognizedWellKnownAttribute = 2,
        MissingWellKnownAttribute = 3,
        AttributeFlagsError = 4,
        AttributeLengthError = 5,
        InvalidOrigin = 6,
        InvalidNextHop = 8,
        OptionalAttributeError = 9,
        InvalidNetworkField = 10,
        MalformedAsPath = 11,
    }
}

wire_enum! {
    /// Finite State Machine Error subcodes (RFC 6608).
    FsmSubcode {
        Unspecified = 0,
        UnexpectedInOpenSent = 1,
        UnexpectedInOpenConfirm = 2,
        UnexpectedInEstablished = 3,
    }
}

wire_enum! {
    /// Cease subcodes (RFC 4486, RFC 8203, RFC 9384).
    CeaseSubcode {
        MaxPrefixesReached = 1,
        AdministrativeShutdown = 2,
        PeerDeconfigured = 3,
        AdministrativeReset = 4,
        ConnectionRejected = 5,
        OtherConfigurationChange = 6,
        ConnectionCollisionResolution = 7,
        OutOfResources = 8,
        /// The BFD session to the peer went down (RFC 9384).
        BfdDown = 10,
    }
}

/// A NOTIFICATION's code and subcode as one value: subcode 1 of each code is its own variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    Header(HeaderSubcode),
    Open(OpenSubcode),
    Update(UpdateSubcode),
    HoldTimerExpired,
    Fsm(FsmSubcode),
    Cease(CeaseSubcode),
}

impl NotificationKind {
    pub fn code(self) -> ErrorCode {
        match self {
            NotificationKind::Header(_) => ErrorCode::MessageHeader,
            NotificationKind::Open(_) => ErrorCode::OpenMessage,
            NotificationKind::Update(_) => ErrorCode::UpdateMessage,
            NotificationKind::HoldTimerExpired => ErrorCode::HoldTimerExpired,
            NotificationKind::Fsm(_) => ErrorCode::Fsm,
            NotificationKind::Cease(_) => ErrorCode::Cease,
        }
    }

    pub fn subcode(self) -> u8 {
        match self {
            NotificationKind::Header(s) => s.into(),
            NotificationKind::Open(s) => s.into(),
            NotificationKind::Update(s) => s.into(),
            NotificationKind::HoldTimerExpired => 0,
            NotificationKind::Fsm(s) => s.into(),
            NotificationKind::Cease(s) => s.into(),
        }
    }

    /// The kind of a received (code, subcode); `None` for values no RFC we implement defines.
    pub fn from_codes(code: u8, subcode: u8) -> Option<Self> {
        Some(match ErrorCode::from_u8(code)? {
            ErrorCode::MessageHeader => NotificationKind::Header(HeaderSubcode::from_u8(subcode)?),
            ErrorCode::OpenMessage => NotificationKind::Open(OpenSubcode::from_u8(subcode)?),
            ErrorCode::UpdateMessage => NotificationKind::Update(UpdateSubcode::from_u8(subcode)?),
            ErrorCode::HoldTimerExpired if subcode == 0 => NotificationKind::HoldTimerExpired,
            ErrorCode::HoldTimerExpired => return None,
            ErrorCode::Fsm => NotificationKind::Fsm(FsmSubcode::from_u8(subcode)?),
            ErrorCode::Cease => NotificationKind::Cease(CeaseSubcode::from_u8(subcode)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::message::{code, subcode, Notification};

    #[test]
    fn typed_codes_match_the_constants() {
        use NotificationKind as K;
        for (kind, c, s) in [
            (
                K::Header(HeaderSubcode::ConnectionNotSynchronized),
                code::MESSAGE_HEADER,
                subcode::CONNECTION_NOT_SYNCHRONIZED,
            ),
            (
                K::Header(HeaderSubcode::BadMessageLength),
                code::MESSAGE_HEADER,
                subcode::BAD_MESSAGE_LENGTH,
            ),
            (
                K::Header(HeaderSubcode::BadMessageType),
                code::MESSAGE_HEADER,
                subcode::BAD_MESSAGE_TYPE,
            ),
            (K::Open(OpenSubcode::Unspecific), code::OPEN_MESSAGE, 0),
            (
                K::Open(OpenSubcode::UnsupportedVersion),
                code::OPEN_MESSAGE,
                subcode::UNSUPPORTED_VERSION,
            ),
            (
                K::Open(OpenSubcode::BadPeerAs),
                code::OPEN_MESSAGE,
                subcode::BAD_PEER_AS,
            ),
            (
                K::Open(OpenSubcode::BadBgpIdentifier),
                code::OPEN_MESSAGE,
                subcode::BAD_BGP_IDENTIFIER,
            ),
            (
                K::Open(OpenSubcode::UnsupportedOptionalParameter),
                code::OPEN_MESSAGE,
                subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
            ),
            (
                K::Open(OpenSubcode::UnacceptableHoldTime),
                code::OPEN_MESSAGE,
                subcode::UNACCEPTABLE_HOLD_TIME,
            ),
            (
                K::Open(OpenSubcode::UnsupportedCapability),
                code::OPEN_MESSAGE,
                subcode::UNSUPPORTED_CAPABILITY,
            ),
            (
                K::Update(UpdateSubcode::MalformedAttributeList),
                code::UPDATE_MESSAGE,
                subcode::MALFORMED_ATTRIBUTE_LIST,
            ),
            (
                K::Update(UpdateSubcode::UnrecognizedWellKnownAttribute),
                code::UPDATE_MESSAGE,
                subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            ),
            (
                K::Update(UpdateSubcode::MissingWellKnownAttribute),
                code::UPDATE_MESSAGE,
                subcode::MISSING_WELL_KNOWN_ATTRIBUTE,
            ),
            (
                K::Update(UpdateSubcode::AttributeFlagsError),
                code::UPDATE_MESSAGE,
                subcode::ATTRIBUTE_FLAGS_ERROR,
            ),
            (
                K::Update(UpdateSubcode::AttributeLengthError),
                code::UPDATE_MESSAGE,
                subcode::ATTRIBUTE_LENGTH_ERROR,
            ),
            (
                K::Update(UpdateSubcode::InvalidOrigin),
                code::UPDATE_MESSAGE,
                subcode::INVALID_ORIGIN,
            ),
            (
                K::Update(UpdateSubcode::InvalidNextHop),
                code::UPDATE_MESSAGE,
                subcode::INVALID_NEXT_HOP,
            ),
            (
                K::Update(UpdateSubcode::OptionalAttributeError),
                code::UPDATE_MESSAGE,
                subcode::OPTIONAL_ATTRIBUTE_ERROR,
            ),
            (
                K::Update(UpdateSubcode::InvalidNetworkField),
                code::UPDATE_MESSAGE,
                subcode::INVALID_NETWORK_FIELD,
            ),
            (
                K::Update(UpdateSubcode::MalformedAsPath),
                code::UPDATE_MESSAGE,
                subcode::MALFORMED_AS_PATH,
            ),
            (K::HoldTimerExpired, code::HOLD_TIMER_EXPIRED, 0),
            (K::Fsm(FsmSubcode::Unspecified), code::FSM, 0),
            (
                K::Fsm(FsmSubcode::UnexpectedInOpenSent),
                code::FSM,
                subcode::UNEXPECTED_IN_OPENSENT,
            ),
            (
                K::Fsm(FsmSubcode::UnexpectedInOpenConfirm),
                code::FSM,
                subcode::UNEXPECTED_IN_OPENCONFIRM,
            ),
            (
                K::Fsm(FsmSubcode::UnexpectedInEstablished),
                code::FSM,
                subcode::UNEXPECTED_IN_ESTABLISHED,
            ),
            (
                K::Cease(CeaseSubcode::MaxPrefixesReached),
                code::CEASE,
                subcode::MAX_PREFIXES_REACHED,
            ),
            (
                K::Cease(CeaseSubcode::AdministrativeShutdown),
                code::CEASE,
                subcode::ADMINISTRATIVE_SHUTDOWN,
            ),
            (
                K::Cease(CeaseSubcode::PeerDeconfigured),
                code::CEASE,
                subcode::PEER_DECONFIGURED,
            ),
            (
                K::Cease(CeaseSubcode::AdministrativeReset),
                code::CEASE,
                subcode::ADMINISTRATIVE_RESET,
            ),
            (
                K::Cease(CeaseSubcode::ConnectionRejected),
                code::CEASE,
                subcode::CONNECTION_REJECTED,
            ),
            (
                K::Cease(CeaseSubcode::OtherConfigurationChange),
                code::CEASE,
                subcode::OTHER_CONFIGURATION_CHANGE,
            ),
            (
                K::Cease(CeaseSubcode::ConnectionCollisionResolution),
                code::CEASE,
                subcode::CONNECTION_COLLISION_RESOLUTION,
            ),
            (
                K::Cease(CeaseSubcode::OutOfResources),
                code::CEASE,
                subcode::OUT_OF_RESOURCES,
            ),
            (
                K::Cease(CeaseSubcode::BfdDown),
                code::CEASE,
                subcode::BFD_DOWN,
            ),
        ] {
            let n = Notification::of(kind, vec![1]);
            assert_eq!(
                (n.code, n.subcode, n.data.as_slice()),
                (c, s, &[1u8][..]),
                "{kind:?}"
            );
            assert_eq!(n.kind(), Some(kind));
        }
        // Subcode 1 means three different things, and unknown pairs have no kind.
        assert_ne!(
            NotificationKind::from_codes(1, 1),
            NotificationKind::from_codes(3, 1)
        );
        for (c, s) in [(0, 0), (7, 1), (1, 0), (3, 7), (4, 1), (6, 9)] {
            assert_eq!(NotificationKind::from_codes(c, s), None, "{c}/{s}");
        }
    }
}
