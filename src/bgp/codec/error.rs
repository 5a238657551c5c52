//! Typed decode errors: each converts into the NOTIFICATION it causes ([`From`]), and UPDATE
//! errors carry their RFC 7606 [`Treatment`].

use std::fmt;

use crate::bgp::message::{
    HeaderSubcode, Notification, NotificationKind, OpenSubcode, UpdateSubcode,
};

/// Why a message from the peer cannot be used. Every variant ends the session with the
/// NOTIFICATION `Notification::from` gives (RFC 4271 §6); UPDATE errors RFC 7606 lets us
/// survive never get here (they are [`UpdateError`]s in `Update::errors`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// 1/1: the marker is not all ones.
    NotSynchronized,
    /// 1/2: the length field (the data) is out of bounds, wrong for the type, or not the
    /// number of bytes handed to `decode`.
    BadLength(u16),
    /// 1/3: an unknown message type (the data).
    BadType(u8),
    /// 2/1: a version other than 4 (data: 4, the version we speak).
    UnsupportedVersion(u8),
    /// 2/2: "My AS" or the 4-octet-ASN capability is 0 (RFC 7607).
    BadPeerAs,
    /// 2/3: BGP identifier 0.0.0.0.
    BadBgpIdentifier,
    /// 2/4: an optional parameter other than capabilities (its type).
    UnsupportedOptionalParameter(u8),
    /// 2/0: an optional parameter or a capability we recognize is malformed (RFC 4271 §6.2).
    MalformedOpen(&'static str),
    /// 3/x: an UPDATE error whose treatment is a session reset.
    Update(UpdateError),
}

impl DecodeError {
    pub fn kind(&self) -> NotificationKind {
        use NotificationKind as K;
        match self {
            DecodeError::NotSynchronized => K::Header(HeaderSubcode::ConnectionNotSynchronized),
            DecodeError::BadLength(_) => K::Header(HeaderSubcode::BadMessageLength),
            DecodeError::BadType(_) => K::Header(HeaderSubcode::BadMessageType),
            DecodeError::UnsupportedVersion(_) => K::Open(OpenSubcode::UnsupportedVersion),
            DecodeError::BadPeerAs => K::Open(OpenSubcode::BadPeerAs),
            DecodeError::BadBgpIdentifier => K::Open(OpenSubcode::BadBgpIdentifier),
            DecodeError::UnsupportedOptionalParameter(_) => {
                K::Open(OpenSubcode::UnsupportedOptionalParameter)
            }
            DecodeError::MalformedOpen(_) => K::Open(OpenSubcode::Unspecific),
            DecodeError::Update(e) => K::Update(e.subcode),
        }
    }

    fn data(&self) -> Vec<u8> {
        match self {
            DecodeError::BadLength(len) => len.to_be_bytes().to_vec(),
            DecodeError::BadType(t) => vec![*t],
            // The largest version we support, as a 2-octet number.
            DecodeError::UnsupportedVersion(_) => vec![0, 4],
            DecodeError::Update(e) => e.data.clone(),
            _ => Vec::new(),
        }
    }
}

impl From<DecodeError> for Notification {
    fn from(e: DecodeError) -> Notification {
        let data = e.data();
        Notification::of(e.kind(), data)
    }
}

impl fmt::Display for DecodeError {
    /// The NOTIFICATION, then why: `UPDATE Message Error (3/9): MP_REACH_NLRI ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", Notification::from(self.clone()))?;
        match self {
            DecodeError::NotSynchronized => f.write_str("marker not all ones"),
            DecodeError::BadLength(len) => write!(f, "length {len}"),
            DecodeError::BadType(t) => write!(f, "message type {t}"),
            DecodeError::UnsupportedVersion(v) => write!(f, "version {v}, we speak 4"),
            DecodeError::BadPeerAs => f.write_str("peer AS 0 (RFC 7607)"),
            DecodeError::BadBgpIdentifier => f.write_str("BGP identifier 0.0.0.0"),
            DecodeError::UnsupportedOptionalParameter(t) => {
                write!(f, "optional parameter type {t}")
            }
            DecodeError::MalformedOpen(why) => f.write_str(why),
            DecodeError::Update(e) => f.write_str(&e.reason),
        }
    }
}

/// RFC 7606 §2's treatments of an UPDATE error, weakest first: with several errors the
/// strongest wins (§3.h), which is `max()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Treatment {
    /// The attribute is dropped; the routes stand.
    AttributeDiscard,
    /// Every route the UPDATE announces is handled as withdrawn.
    TreatAsWithdraw,
    /// The session ends with the error's NOTIFICATION.
    SessionReset,
}

impl fmt::Display for Treatment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Treatment::AttributeDiscard => "attribute discard",
            Treatment::TreatAsWithdraw => "treat-as-withdraw",
            Treatment::SessionReset => "session reset",
        })
    }
}

/// One error in an UPDATE: its treatment, the RFC 4271 §6.3 NOTIFICATION it maps to, and why.
/// The NOTIFICATION is sent on a session reset, and for treat-as-withdraw in an UPDATE
/// without reachable NLRI (RFC 7606 §5.2 makes that a reset); never for an attribute discard
/// (its subcode only says what RFC 4271 alone would have done). Displays as
/// `treat-as-withdraw: ORIGIN value 3 (RFC 7606 §7.1)`, the text of `Update::errors`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{treatment}: {reason}")]
pub struct UpdateError {
    pub treatment: Treatment,
    pub subcode: UpdateSubcode,
    pub data: Vec<u8>,
    pub reason: String,
}

impl UpdateError {
    pub(super) fn new(
        treatment: Treatment,
        subcode: UpdateSubcode,
        data: &[u8],
        reason: impl Into<String>,
    ) -> Self {
        UpdateError {
            treatment,
            subcode,
            data: data.to_vec(),
            reason: reason.into(),
        }
    }

    pub(super) fn reset(subcode: UpdateSubcode, data: &[u8], reason: impl Into<String>) -> Self {
        UpdateError::new(Treatment::SessionReset, subcode, data, reason)
    }

    pub(super) fn withdraw(subcode: UpdateSubcode, data: &[u8], reason: impl Into<String>) -> Self {
        UpdateError::new(Treatment::TreatAsWithdraw, subcode, data, reason)
    }

    pub(super) fn discard(subcode: UpdateSubcode, reason: impl Into<String>) -> Self {
        UpdateError::new(Treatment::AttributeDiscard, subcode, &[], reason)
    }

    /// The same error, ending the session (RFC 7606 §5.2).
    pub(super) fn escalated(&self) -> DecodeError {
        DecodeError::Update(UpdateError {
            treatment: Treatment::SessionReset,
            ..self.clone()
        })
    }
}

impl From<UpdateError> for DecodeError {
    fn from(e: UpdateError) -> DecodeError {
        DecodeError::Update(e)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn errors_convert_to_their_notification_and_say_why() {
        for (e, want, text) in [
            (
                DecodeError::NotSynchronized,
                (1, 1, vec![]),
                "Message Header Error (1/1): marker not all ones",
            ),
            (
                DecodeError::BadLength(4097),
                (1, 2, vec![0x10, 0x01]),
                "Message Header Error (1/2): length 4097",
            ),
            (
                DecodeError::BadType(7),
                (1, 3, vec![7]),
                "Message Header Error (1/3): message type 7",
            ),
            (
                DecodeError::UnsupportedVersion(3),
                (2, 1, vec![0, 4]),
                "OPEN Message Error (2/1): version 3, we speak 4",
            ),
            (
                DecodeError::BadPeerAs,
                (2, 2, vec![]),
                "OPEN Message Error (2/2): peer AS 0 (RFC 7607)",
            ),
            (
                DecodeError::BadBgpIdentifier,
                (2, 3, vec![]),
                "OPEN Message Error (2/3): BGP identifier 0.0.0.0",
            ),
            (
                DecodeError::UnsupportedOptionalParameter(1),
                (2, 4, vec![]),
                "OPEN Message Error (2/4): optional parameter type 1",
            ),
            (
                DecodeError::MalformedOpen("ADD-PATH capability of 3 bytes"),
                (2, 0, vec![]),
                "OPEN Message Error (2/0): ADD-PATH capability of 3 bytes",
            ),
            (
                UpdateError::reset(
                    UpdateSubcode::OptionalAttributeError,
                    &[0x80, 14, 0],
                    "MP_REACH_NLRI of 0 bytes",
                )
                .into(),
                (3, 9, vec![0x80, 14, 0]),
                "UPDATE Message Error (3/9): MP_REACH_NLRI of 0 bytes",
            ),
        ] {
            assert_eq!(e.to_string(), text);
            let n = Notification::from(e);
            assert_eq!((n.code, n.subcode, n.data), want);
        }
    }

    #[test]
    fn the_strongest_treatment_wins_and_escalation_resets() {
        let discard = UpdateError::discard(UpdateSubcode::AttributeLengthError, "a");
        let withdraw = UpdateError::withdraw(UpdateSubcode::InvalidOrigin, &[0x40, 1, 1, 3], "b");
        assert_eq!(
            [&discard, &withdraw].iter().map(|e| e.treatment).max(),
            Some(Treatment::TreatAsWithdraw)
        );
        assert!(Treatment::SessionReset > Treatment::TreatAsWithdraw);
        assert_eq!(discard.to_string(), "attribute discard: a");
        assert_eq!(withdraw.to_string(), "treat-as-withdraw: b");
        let n = Notification::from(withdraw.escalated());
        assert_eq!((n.code, n.subcode, n.data), (3, 6, vec![0x40, 1, 1, 3]));
    }
}
