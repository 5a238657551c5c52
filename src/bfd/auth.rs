//! BFD authentication, Keyed SHA1 and Meticulous Keyed SHA1 (RFC 5880 §6.7.4): the digest
//! and the sequence-number window. Pure functions; the session machine keeps the sequence
//! state. MD5 and simple passwords are not offered (RFC 5880 lists them; SHA1 is the
//! strongest type it defines, and every router we test with has it).

use std::fmt;

use sha1::{Digest, Sha1};

use super::packet::{AuthType, HEADER_LEN, SHA1_LEN};

/// Offset of the Auth Key/Hash field in a packet with a SHA1 section.
const HASH_AT: usize = HEADER_LEN + 8;

/// A configured key.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey {
    /// `KeyedSha1` or `MeticulousKeyedSha1`.
    pub auth_type: AuthType,
    pub key_id: u8,
    /// 1..=20 bytes; shorter keys are padded with zeros in the hash (RFC 5880 §6.7.4).
    pub secret: Vec<u8>,
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret, even in debug output.
        write!(f, "AuthKey({} key id {})", self.auth_type, self.key_id)
    }
}

impl AuthKey {
    fn padded(&self) -> [u8; SHA1_LEN] {
        let mut k = [0u8; SHA1_LEN];
        let n = self.secret.len().min(SHA1_LEN);
        k[..n].copy_from_slice(&self.secret[..n]);
        k
    }

    /// SHA1 over the packet with the key in the hash field.
    fn hash(&self, packet: &[u8]) -> Option<[u8; SHA1_LEN]> {
        let mut copy = packet.to_vec();
        copy.get_mut(HASH_AT..HASH_AT + SHA1_LEN)?
            .copy_from_slice(&self.padded());
        Some(Sha1::digest(&copy).into())
    }

    /// Writes the digest into an encoded packet whose SHA1 section carries the sequence
    /// number (its hash field is overwritten). Does nothing to a packet without one.
    pub fn sign(&self, packet: &mut [u8]) {
        if let Some(h) = self.hash(packet) {
            if let Some(field) = packet.get_mut(HASH_AT..HASH_AT + SHA1_LEN) {
                field.copy_from_slice(&h);
            }
        }
    }

    /// Whether the received packet's hash is right. `packet` is the packet as received, up
    /// to its Length field.
    pub fn verify(&self, packet: &[u8]) -> bool {
        let (Some(h), Some(got)) = (self.hash(packet), packet.get(HASH_AT..HASH_AT + SHA1_LEN))
        else {
            return false;
        };
        // Constant time: no early exit on the first differing byte.
        h.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// RFC 5880 §6.7.4: with the last accepted sequence `last`, `seq` is acceptable if it lies in
/// `last ..= last + 3 * detect_mult` (Keyed) or `last + 1 ..= last + 3 * detect_mult`
/// (Meticulous), in 32-bit circular space. Before any packet was accepted, anything is.
pub fn sequence_acceptable(meticulous: bool, last: Option<u32>, seq: u32, detect_mult: u8) -> bool {
    let Some(last) = last else {
        return true;
    };
    let ahead = seq.wrapping_sub(last);
    if meticulous && ahead == 0 {
        return false;
    }
    ahead <= 3 * u32::from(detect_mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::packet::{self, AuthSection, ControlPacket};

    fn key(t: AuthType) -> AuthKey {
        AuthKey {
            auth_type: t,
            key_id: 1,
            secret: b"primaryd".to_vec(),
        }
    }

    fn signed(k: &AuthKey, seq: u32) -> Vec<u8> {
        let p = ControlPacket {
            my_discriminator: 0x11223344,
            your_discriminator: 0x55667788,
            auth: Some(AuthSection::Keyed {
                auth_type: k.auth_type,
                key_id: k.key_id,
                sequence: seq,
                digest: vec![0; 20],
            }),
            ..packet::tests::packet()
        };
        let mut b = p.encode();
        k.sign(&mut b);
        b
    }

    #[test]
    fn digest_is_sha1_over_the_packet_with_the_padded_key() {
        let k = key(AuthType::KeyedSha1);
        let b = signed(&k, 42);
        assert_eq!(b.len(), 52);
        // Computed independently with Python's hashlib over the same 52 bytes:
        // bytes.fromhex("20c40334" "11223344" "55667788" "000186a0" "000186a0" "00000000"
        // "041c0100" "0000002a") + b"primaryd" + bytes(12).
        assert_eq!(
            hex(&b[HASH_AT..]),
            "cde2fb69a3a125e5c3b05c9fcea9b32fff9c212a"
        );
        assert!(k.verify(&b));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn any_change_to_packet_key_or_digest_fails_verification() {
        let k = key(AuthType::MeticulousKeyedSha1);
        let b = signed(&k, 7);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x01;
            assert!(!k.verify(&c), "byte {i} flipped still verifies");
        }
        let other = AuthKey {
            secret: b"primaryd!".to_vec(),
            ..k.clone()
        };
        assert!(!other.verify(&b));
        assert!(!k.verify(&b[..40]), "a truncated packet cannot verify");
    }

    #[test]
    fn sequence_windows_follow_rfc_5880_6_7_4() {
        // Keyed: last ..= last + 3 * mult.
        assert!(sequence_acceptable(false, None, 12345, 3));
        assert!(sequence_acceptable(false, Some(100), 100, 3));
        assert!(sequence_acceptable(false, Some(100), 109, 3));
        assert!(!sequence_acceptable(false, Some(100), 110, 3));
        assert!(!sequence_acceptable(false, Some(100), 99, 3));
        // Meticulous: last + 1 ..= last + 3 * mult.
        assert!(!sequence_acceptable(true, Some(100), 100, 3));
        assert!(sequence_acceptable(true, Some(100), 101, 3));
        assert!(sequence_acceptable(true, Some(100), 109, 3));
        assert!(!sequence_acceptable(true, Some(100), 110, 3));
        // Circular: across the wrap.
        assert!(sequence_acceptable(true, Some(u32::MAX - 1), 3, 3));
        assert!(!sequence_acceptable(true, Some(3), u32::MAX, 3));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let s = format!("{:?}", key(AuthType::KeyedSha1));
        assert!(!s.contains("primaryd"), "{s}");
    }
}
