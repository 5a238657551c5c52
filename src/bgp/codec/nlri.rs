//! Prefix lists (withdrawn routes, NLRI, the NLRI of MP_REACH_NLRI/MP_UNREACH_NLRI), with the
//! RFC 7911 path identifier in front of each prefix where the session negotiated ADD-PATH.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use super::reader::Reader;
use crate::bgp::message::Family;

/// The prefixes of one field, with the path identifier of each (0 without ADD-PATH).
#[derive(Debug, Default)]
pub(super) struct Prefixes {
    pub(super) prefixes: Vec<IpNetwork>,
    pub(super) path_ids: Vec<u32>,
    /// Read with path identifiers (RFC 7911 §3).
    pub(super) add_path: bool,
}

impl Prefixes {
    /// Whether this field holds path identifiers: ADD-PATH and at least one prefix.
    pub(super) fn carries_path_ids(&self) -> bool {
        self.add_path && !self.prefixes.is_empty()
    }

    /// Moves `other`'s prefixes and path identifiers to the end of these (`carries_path_ids`
    /// is for single fields: ask it before merging).
    pub(super) fn append(&mut self, other: &mut Prefixes) {
        self.prefixes.append(&mut other.prefixes);
        self.path_ids.append(&mut other.path_ids);
    }
}

/// Reads a prefix list of `family`, each prefix preceded by a 4-byte path identifier when
/// `add_path`. `None` if a path identifier or a prefix is cut short or a length is over
/// 32/128: RFC 7606 §5.3 makes that a session reset (treat-as-withdraw would need the
/// prefixes). Host bits past the length are cleared (RFC 4271 §4.3: they are irrelevant).
pub(super) fn parse(buf: &[u8], family: Family, add_path: bool) -> Option<Prefixes> {
    let mut out = Prefixes {
        add_path,
        ..Prefixes::default()
    };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let path_id = if add_path { r.u32()? } else { 0 };
        let len = r.u8()?;
        let bytes = r.take(usize::from(len).div_ceil(8))?;
        out.prefixes.push(prefix(family, len, bytes)?);
        out.path_ids.push(path_id);
    }
    Some(out)
}

/// One prefix from its length and significant bytes; `None` past 32/128 bits.
fn prefix(family: Family, len: u8, bytes: &[u8]) -> Option<IpNetwork> {
    Some(match family {
        Family::Ipv4Unicast => {
            let mut octets = [0u8; 4];
            octets.get_mut(..bytes.len())?.copy_from_slice(bytes);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            let addr = Ipv4Addr::from(u32::from_be_bytes(octets) & mask);
            IpNetwork::V4(Ipv4Network::new(addr, len).ok()?)
        }
        Family::Ipv6Unicast => {
            let mut octets = [0u8; 16];
            octets.get_mut(..bytes.len())?.copy_from_slice(bytes);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            let addr = Ipv6Addr::from(u128::from_be_bytes(octets) & mask);
            IpNetwork::V6(Ipv6Network::new(addr, len).ok()?)
        }
    })
}

/// Wire length of a prefix (we never send path identifiers): length byte plus the
/// significant octets.
pub(super) fn wire_len(prefix_len: u8) -> usize {
    1 + usize::from(prefix_len).div_ceil(8)
}

/// Appends a prefix in wire form: length byte and significant octets of its network address.
pub(super) fn put(out: &mut Vec<u8>, prefix: &Ipv6Network) {
    let octets = prefix.network().octets();
    out.push(prefix.prefix());
    let significant = usize::from(prefix.prefix()).div_ceil(8);
    out.extend_from_slice(octets.get(..significant).unwrap_or_default());
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn reads_path_identifiers_before_each_prefix() {
        let bytes = [0, 0, 0, 1, 32, 192, 0, 2, 10, 0, 0, 0, 2, 24, 198, 18, 99];
        let p = parse(&bytes, Family::Ipv4Unicast, true).unwrap();
        assert_eq!(p.prefixes, nets(&["192.0.2.10/32", "198.18.99.0/24"]));
        assert_eq!(p.path_ids, vec![1, 2]);
        assert!(p.carries_path_ids());
        // The same bytes without ADD-PATH are garbage: length 0 then a /0, then length 1...
        assert!(parse(&bytes, Family::Ipv4Unicast, false).is_none());
        let plain = parse(&[32, 192, 0, 2, 10], Family::Ipv4Unicast, false).unwrap();
        assert_eq!((plain.carries_path_ids(), plain.path_ids), (false, vec![0]));
        let empty = parse(&[], Family::Ipv6Unicast, true).unwrap();
        assert!(!empty.carries_path_ids());
    }

    #[test]
    fn cut_short_or_too_long_is_none() {
        for (bytes, add_path) in [
            (&[0, 0, 0][..], true),                // path identifier cut short
            (&[0, 0, 0, 1][..], true),             // no prefix after it
            (&[0, 0, 0, 1, 24, 192, 0][..], true), // prefix cut short
            (&[33, 1, 2, 3, 4, 5][..], false),     // /33
            (&[0, 0, 0, 1, 255, 1][..], true),     // /255
        ] {
            assert!(
                parse(bytes, Family::Ipv4Unicast, add_path).is_none(),
                "{bytes:?}"
            );
        }
        assert!(parse(&[129, 0], Family::Ipv6Unicast, false).is_none());
    }

    #[test]
    fn host_bits_are_cleared() {
        let p = parse(&[25, 192, 0, 2, 0xff], Family::Ipv4Unicast, false).unwrap();
        assert_eq!(p.prefixes, nets(&["192.0.2.128/25"]));
        let p = parse(
            &[33, 0x20, 0x01, 0x0d, 0xb8, 0xff],
            Family::Ipv6Unicast,
            false,
        )
        .unwrap();
        assert_eq!(p.prefixes, nets(&["2001:db8:8000::/33"]));
    }
}
