//! BFD Control packets (RFC 5880 §4): the wire format, with the checks RFC 5880 §6.8.6 makes
//! before a packet reaches any session. `decode` never panics: anything it cannot accept is a
//! [`DecodeError`], which the engine logs and counts as a drop.

use std::fmt;

/// BFD version 1, the only one.
pub const VERSION: u8 = 1;
/// The mandatory section.
pub const HEADER_LEN: usize = 24;
/// Single-hop BFD Control packets go to this UDP port (RFC 5881 §4).
pub const CONTROL_PORT: u16 = 3784;
/// Source ports of single-hop sessions (RFC 5881 §4).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 §5 (GTSM): single-hop packets are sent with TTL / hop limit 255, and anything
/// arriving with less is not from a neighbour.
pub const TTL: u8 = 255;
/// Length of a SHA1 digest and of the Auth Key/Hash field of the SHA1 types (RFC 5880 §4.4).
pub const SHA1_LEN: usize = 20;
/// Auth Len of the SHA1 types: type, len, key id, reserved, sequence, hash.
pub const SHA1_AUTH_LEN: usize = 8 + SHA1_LEN;
/// Auth Len of the MD5 types (decoded so they can be refused by name; never sent).
const MD5_AUTH_LEN: usize = 8 + 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SessionState {
    AdminDown,
    Down,
    Init,
    Up,
}

impl SessionState {
    fn from_bits(b: u8) -> SessionState {
        match b & 3 {
            0 => SessionState::AdminDown,
            1 => SessionState::Down,
            2 => SessionState::Init,
            _ => SessionState::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            SessionState::AdminDown => 0,
            SessionState::Down => 1,
            SessionState::Init => 2,
            SessionState::Up => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SessionState::AdminDown => "AdminDown",
            SessionState::Down => "Down",
            SessionState::Init => "Init",
            SessionState::Up => "Up",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The diagnostic code (RFC 5880 §4.1): why the sender's session last left Up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// 9..=31, reserved.
    Reserved(u8),
}

impl Diag {
    pub fn from_code(c: u8) -> Diag {
        match c & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            n => Diag::Reserved(n),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(n) => n & 0x1f,
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::None => f.write_str("no diagnostic"),
            Diag::ControlDetectionTimeExpired => f.write_str("control detection time expired"),
            Diag::EchoFunctionFailed => f.write_str("echo function failed"),
            Diag::NeighborSignaledSessionDown => f.write_str("neighbor signaled session down"),
            Diag::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diag::PathDown => f.write_str("path down"),
            Diag::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diag::AdministrativelyDown => f.write_str("administratively down"),
            Diag::ReverseConcatenatedPathDown => f.write_str("reverse concatenated path down"),
            Diag::Reserved(n) => write!(f, "diagnostic {n}"),
        }
    }
}

/// Authentication types (RFC 5880 §4.1, Auth Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    SimplePassword,
    KeyedMd5,
    MeticulousKeyedMd5,
    KeyedSha1,
    MeticulousKeyedSha1,
}

impl AuthType {
    fn from_code(c: u8) -> Option<AuthType> {
        Some(match c {
            1 => AuthType::SimplePassword,
            2 => AuthType::KeyedMd5,
            3 => AuthType::MeticulousKeyedMd5,
            4 => AuthType::KeyedSha1,
            5 => AuthType::MeticulousKeyedSha1,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            AuthType::SimplePassword => 1,
            AuthType::KeyedMd5 => 2,
            AuthType::MeticulousKeyedMd5 => 3,
            AuthType::KeyedSha1 => 4,
            AuthType::MeticulousKeyedSha1 => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AuthType::SimplePassword => "simple-password",
            AuthType::KeyedMd5 => "keyed-md5",
            AuthType::MeticulousKeyedMd5 => "meticulous-keyed-md5",
            AuthType::KeyedSha1 => "keyed-sha1",
            AuthType::MeticulousKeyedSha1 => "meticulous-keyed-sha1",
        }
    }

    /// The sequence number must strictly increase (RFC 5880 §6.7.3, §6.7.4).
    pub fn meticulous(self) -> bool {
        matches!(
            self,
            AuthType::MeticulousKeyedMd5 | AuthType::MeticulousKeyedSha1
        )
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The optional Authentication Section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSection {
    /// Simple password: key id and the password (1..=16 bytes).
    Password { key_id: u8, password: Vec<u8> },
    /// The keyed types: key id, sequence number and the digest field (16 bytes for MD5, 20
    /// for SHA1).
    Keyed {
        auth_type: AuthType,
        key_id: u8,
        sequence: u32,
        digest: Vec<u8>,
    },
}

impl AuthSection {
    pub fn auth_type(&self) -> AuthType {
        match self {
            AuthSection::Password { .. } => AuthType::SimplePassword,
            AuthSection::Keyed { auth_type, .. } => *auth_type,
        }
    }
}

/// One BFD Control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket {
    pub diag: Diag,
    pub state: SessionState,
    pub poll: bool,
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane. Ours does (it runs in
    /// primaryd): always clear.
    pub control_plane_independent: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    /// Microseconds, as on the wire.
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
    pub auth: Option<AuthSection>,
}

/// Why a packet was dropped before it reached a session (RFC 5880 §6.8.6, first checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes, shorter than a BFD Control packet")]
    TooShort(usize),
    #[error("version {0}, not 1")]
    BadVersion(u8),
    #[error("Length field {field} with the A bit {auth}: too small")]
    LengthTooSmall { field: u8, auth: bool },
    #[error("Length field {field} larger than the {payload}-byte payload")]
    LengthPastPayload { field: u8, payload: usize },
    #[error("Detect Mult is zero")]
    ZeroDetectMult,
    #[error("the Multipoint bit is set")]
    Multipoint,
    #[error("My Discriminator is zero")]
    ZeroMyDiscriminator,
    #[error("Your Discriminator is zero in state {0}")]
    ZeroYourDiscriminator(SessionState),
    #[error("authentication type {0} unknown")]
    UnknownAuthType(u8),
    #[error(
        "authentication section length {auth_len} wrong for {auth_type} in a {field}-byte packet"
    )]
    BadAuthLength {
        auth_type: String,
        auth_len: u8,
        field: u8,
    },
}

impl DecodeError {
    /// A short label for counting drops by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooShort(_)
            | DecodeError::LengthTooSmall { .. }
            | DecodeError::LengthPastPayload { .. } => "length",
            DecodeError::BadVersion(_) => "version",
            DecodeError::UnknownAuthType(_) | DecodeError::BadAuthLength { .. } => "auth",
            _ => "field",
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    // Callers checked the length; `get` keeps this free of any panic regardless.
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl ControlPacket {
    /// Decodes one packet from a UDP payload. Bytes past the Length field are ignored.
    pub fn decode(b: &[u8]) -> Result<ControlPacket, DecodeError> {
        if b.len() < HEADER_LEN {
            return Err(DecodeError::TooShort(b.len()));
        }
        let version = b[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        let flags = b[1];
        let auth_bit = flags & 0x04 != 0;
        let length = b[3];
        let min = if auth_bit { HEADER_LEN + 2 } else { HEADER_LEN };
        if usize::from(length) < min {
            return Err(DecodeError::LengthTooSmall {
                field: length,
                auth: auth_bit,
            });
        }
        if usize::from(length) > b.len() {
            return Err(DecodeError::LengthPastPayload {
                field: length,
                payload: b.len(),
            });
        }
        let p = ControlPacket {
            diag: Diag::from_code(b[0]),
            state: SessionState::from_bits(flags >> 6),
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            control_plane_independent: flags & 0x08 != 0,
            demand: flags & 0x02 != 0,
            detect_mult: b[2],
            my_discriminator: be32(b, 4),
            your_discriminator: be32(b, 8),
            desired_min_tx_us: be32(b, 12),
            required_min_rx_us: be32(b, 16),
            required_min_echo_rx_us: be32(b, 20),
            auth: if auth_bit {
                Some(decode_auth(&b[HEADER_LEN..usize::from(length)], length)?)
            } else {
                None
            },
        };
        if p.detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if flags & 0x01 != 0 {
            return Err(DecodeError::Multipoint);
        }
        if p.my_discriminator == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        if p.your_discriminator == 0
            && !matches!(p.state, SessionState::Down | SessionState::AdminDown)
        {
            return Err(DecodeError::ZeroYourDiscriminator(p.state));
        }
        Ok(p)
    }

    /// The wire bytes. An authentication section is written as it is (the signer fills the
    /// digest afterwards, see `auth.rs`).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + SHA1_AUTH_LEN);
        b.push((VERSION << 5) | self.diag.code());
        let mut flags = self.state.bits() << 6;
        for (on, bit) in [
            (self.poll, 0x20),
            (self.final_, 0x10),
            (self.control_plane_independent, 0x08),
            (self.auth.is_some(), 0x04),
            (self.demand, 0x02),
        ] {
            if on {
                flags |= bit;
            }
        }
        b.push(flags);
        b.push(self.detect_mult);
        b.push(0); // length, below
        for v in [
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx_us,
            self.required_min_rx_us,
            self.required_min_echo_rx_us,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        match &self.auth {
            None => {}
            Some(AuthSection::Password { key_id, password }) => {
                let pw = &password[..password.len().min(16)];
                b.extend_from_slice(&[1, (3 + pw.len()) as u8, *key_id]);
                b.extend_from_slice(pw);
            }
            Some(AuthSection::Keyed {
                auth_type,
                key_id,
                sequence,
                digest,
            }) => {
                let len = 8 + digest.len().min(SHA1_LEN);
                b.extend_from_slice(&[auth_type.code(), len as u8, *key_id, 0]);
                b.extend_from_slice(&sequence.to_be_bytes());
                b.extend_from_slice(&digest[..digest.len().min(SHA1_LEN)]);
            }
        }
        b[3] = b.len() as u8;
        b
    }
}

fn decode_auth(a: &[u8], field: u8) -> Result<AuthSection, DecodeError> {
    // The caller guarantees at least the type and length bytes.
    let (code, auth_len) = (a[0], a[1]);
    let auth_type = AuthType::from_code(code).ok_or(DecodeError::UnknownAuthType(code))?;
    let bad = || DecodeError::BadAuthLength {
        auth_type: auth_type.name().to_string(),
        auth_len,
        field,
    };
    // The section must fill the rest of the packet exactly.
    if usize::from(auth_len) != a.len() {
        return Err(bad());
    }
    match auth_type {
        AuthType::SimplePassword => {
            if !(4..=19).contains(&auth_len) {
                return Err(bad());
            }
            Ok(AuthSection::Password {
                key_id: a[2],
                password: a[3..].to_vec(),
            })
        }
        _ => {
            let want = if matches!(
                auth_type,
                AuthType::KeyedSha1 | AuthType::MeticulousKeyedSha1
            ) {
                SHA1_AUTH_LEN
            } else {
                MD5_AUTH_LEN
            };
            if usize::from(auth_len) != want {
                return Err(bad());
            }
            Ok(AuthSection::Keyed {
                auth_type,
                key_id: a[2],
                sequence: be32(a, 4),
                digest: a[8..].to_vec(),
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What FRR 8.4's bfdd sent to an address it had a session for and nothing answered yet
    /// (captured in a lab namespace): Down, no diagnostic, Detect Mult 3, 1 s intervals while
    /// not Up (RFC 5880 §6.8.3), echo 50 ms.
    const FRR_DOWN: &str = "2040031824c070c500000000000f4240000f42400000c350";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// An Up packet with the usual intervals and no authentication.
    pub(crate) fn packet() -> ControlPacket {
        ControlPacket {
            diag: Diag::None,
            state: SessionState::Up,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 7,
            your_discriminator: 9,
            desired_min_tx_us: 100_000,
            required_min_rx_us: 100_000,
            required_min_echo_rx_us: 0,
            auth: None,
        }
    }

    #[test]
    fn frr_capture_decodes() {
        let p = ControlPacket::decode(&hex(FRR_DOWN)).unwrap();
        assert_eq!(p.state, SessionState::Down);
        assert_eq!(p.diag, Diag::None);
        assert_eq!(p.detect_mult, 3);
        assert_eq!(p.my_discriminator, 0x24c070c5);
        assert_eq!(p.your_discriminator, 0);
        assert_eq!(p.desired_min_tx_us, 1_000_000);
        assert_eq!(p.required_min_rx_us, 1_000_000);
        assert_eq!(p.required_min_echo_rx_us, 50_000);
        assert!(!p.poll && !p.final_ && p.auth.is_none());
        assert_eq!(p.encode(), hex(FRR_DOWN));
    }

    #[test]
    fn flags_and_fields_round_trip_bit_exact() {
        let mut p = packet();
        p.poll = true;
        p.diag = Diag::ControlDetectionTimeExpired;
        let b = p.encode();
        assert_eq!(b.len(), 24);
        assert_eq!(b[0], 0x21, "version 1, diag 1");
        assert_eq!(b[1], 0xe0, "Up (3 << 6) | P");
        assert_eq!(b[3], 24);
        assert_eq!(ControlPacket::decode(&b).unwrap(), p);
        p.poll = false;
        p.final_ = true;
        assert_eq!(p.encode()[1], 0xd0, "Up | F");
    }

    #[test]
    fn sha1_section_round_trips() {
        let mut p = packet();
        p.auth = Some(AuthSection::Keyed {
            auth_type: AuthType::MeticulousKeyedSha1,
            key_id: 2,
            sequence: 0xdead_beef,
            digest: vec![0xab; 20],
        });
        let b = p.encode();
        assert_eq!(b.len(), 52);
        assert_eq!(&b[24..32], &[5, 28, 2, 0, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(b[1] & 0x04, 0x04, "A bit");
        assert_eq!(ControlPacket::decode(&b).unwrap(), p);
    }

    #[test]
    fn rfc_discard_rules_are_errors() {
        let good = packet().encode();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            ControlPacket::decode(&b)
        };
        assert_eq!(
            ControlPacket::decode(&good[..23]),
            Err(DecodeError::TooShort(23))
        );
        assert_eq!(with(&|b| b[0] = 0x40), Err(DecodeError::BadVersion(2)));
        assert!(matches!(
            with(&|b| b[3] = 23),
            Err(DecodeError::LengthTooSmall { .. })
        ));
        assert!(matches!(
            with(&|b| b[3] = 30),
            Err(DecodeError::LengthPastPayload { .. })
        ));
        assert_eq!(with(&|b| b[2] = 0), Err(DecodeError::ZeroDetectMult));
        assert_eq!(with(&|b| b[1] |= 1), Err(DecodeError::Multipoint));
        assert_eq!(
            with(&|b| b[4..8].copy_from_slice(&[0; 4])),
            Err(DecodeError::ZeroMyDiscriminator)
        );
        assert_eq!(
            with(&|b| b[8..12].copy_from_slice(&[0; 4])),
            Err(DecodeError::ZeroYourDiscriminator(SessionState::Up))
        );
        // The A bit with a section too short for one.
        assert!(matches!(
            with(&|b| b[1] |= 0x04),
            Err(DecodeError::LengthTooSmall { auth: true, .. })
        ));
        // Trailing bytes beyond Length are not part of the packet.
        let mut longer = good.clone();
        longer.extend_from_slice(&[1, 2, 3]);
        assert_eq!(ControlPacket::decode(&longer).unwrap(), packet());
    }

    #[test]
    fn auth_sections_must_have_their_type_s_length() {
        let mut p = packet();
        p.auth = Some(AuthSection::Keyed {
            auth_type: AuthType::KeyedSha1,
            key_id: 1,
            sequence: 1,
            digest: vec![0; 20],
        });
        let mut b = p.encode();
        b[25] = 24; // Auth Len of MD5 on a SHA1 section
        assert!(matches!(
            ControlPacket::decode(&b),
            Err(DecodeError::BadAuthLength { .. })
        ));
        b[25] = 28;
        b[24] = 9;
        assert_eq!(
            ControlPacket::decode(&b),
            Err(DecodeError::UnknownAuthType(9))
        );
        // A password of 3 bytes is fine, and decodes as such.
        p.auth = Some(AuthSection::Password {
            key_id: 4,
            password: b"abc".to_vec(),
        });
        assert_eq!(ControlPacket::decode(&p.encode()).unwrap(), p);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decode_never_panics_and_what_decodes_re_encodes(
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            if let Ok(p) = ControlPacket::decode(&bytes) {
                let again = p.encode();
                prop_assert_eq!(ControlPacket::decode(&again), Ok(p));
            }
        }

        #[test]
        fn mutated_valid_packets_never_panic(
            seed in proptest::collection::vec(any::<u8>(), 52),
            at in 0usize..52,
            value in any::<u8>(),
            cut in 0usize..60,
        ) {
            let mut p = packet();
            p.auth = Some(AuthSection::Keyed {
                auth_type: AuthType::KeyedSha1,
                key_id: seed[0],
                sequence: u32::from(seed[1]),
                digest: seed[32..52].to_vec(),
            });
            let mut b = p.encode();
            let n = b.len();
            b[at % n] = value;
            b.truncate(cut);
            let _ = ControlPacket::decode(&b);
        }
    }
}
