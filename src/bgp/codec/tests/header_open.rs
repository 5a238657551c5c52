//! Header errors (RFC 4271 §6.1) and OPEN decoding (§6.2, capabilities).

use super::*;

#[test]
fn frame_len_needs_a_whole_header() {
    let k = encode(&Message::Keepalive, FOUR).unwrap();
    assert_eq!(frame_len(&k[..18]), Ok(None));
    assert_eq!(frame_len(&[]), Ok(None));
    let mut two = k.clone();
    two.extend_from_slice(&k[..10]);
    assert_eq!(frame_len(&two), Ok(Some(19)));
}

#[test]
fn header_1_1_bad_marker() {
    let mut k = encode(&Message::Keepalive, FOUR).unwrap();
    k[3] = 0xfe;
    assert_eq!(
        frame_len(&k).map_err(Notification::from),
        Err(Notification::new(1, 1, Vec::new()))
    );
    assert_notification(&k, FOUR, 1, 1, &[]);
}

#[test]
fn header_1_2_bad_length() {
    let with_len = |msg_type: u8, len: u16| {
        let mut f = vec![0xff; 16];
        f.extend_from_slice(&len.to_be_bytes());
        f.push(msg_type);
        f.resize(usize::from(len).max(19), 0);
        f
    };
    for (msg_type, len) in [
        (4, 18),
        (4, 4097),
        (2, 0xffff),
        (4, 20),
        (1, 28),
        (2, 22),
        (3, 20),
        (5, 22),
        (5, 24),
    ] {
        let f = with_len(msg_type, len);
        let want = Notification::new(1, 2, len.to_be_bytes().to_vec());
        assert_eq!(
            frame_len(&f).map_err(Notification::from),
            Err(want),
            "type {msg_type} len {len}"
        );
    }
    // decode() given fewer or more bytes than the header says.
    let rr = encode(&Message::RouteRefresh { afi: 1, safi: 1 }, FOUR).unwrap();
    assert_notification(&rr[..22], FOUR, 1, 2, &[0, 23]);
    let mut long = rr.clone();
    long.push(0);
    assert_notification(&long, FOUR, 1, 2, &[0, 23]);
    assert_notification(&with_len(1, 28), FOUR, 1, 2, &[0, 28]);
}

#[test]
fn header_1_3_bad_type() {
    for msg_type in [0u8, 6, 255] {
        let f = raw_frame(msg_type, &[0; 10]);
        assert_eq!(
            frame_len(&f).map_err(Notification::from),
            Err(Notification::new(1, 3, vec![msg_type]))
        );
        assert_notification(&f, FOUR, 1, 3, &[msg_type]);
    }
}

// OPEN errors.

/// OPEN body: version, My AS, hold, id, then the given optional parameters.
fn open_frame(version: u8, my_as: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut body = vec![version];
    body.extend_from_slice(&my_as.to_be_bytes());
    body.extend_from_slice(&90u16.to_be_bytes());
    body.extend_from_slice(&id);
    body.push(params.len() as u8);
    body.extend_from_slice(params);
    raw_frame(1, &body)
}

const ID: [u8; 4] = [198, 18, 1, 2];

#[test]
fn open_2_1_unsupported_version() {
    assert_notification(&open_frame(3, 65001, ID, &[]), FOUR, 2, 1, &[0, 4]);
}

#[test]
fn open_2_2_bad_peer_as_zero() {
    assert_notification(&open_frame(4, 0, ID, &[]), FOUR, 2, 2, &[]);
    let as4_zero = from_hex("0206 4104 00000000");
    assert_notification(&open_frame(4, 23456, ID, &as4_zero), FOUR, 2, 2, &[]);
}

#[test]
fn open_2_3_bad_bgp_identifier() {
    assert_notification(&open_frame(4, 65001, [0; 4], &[]), FOUR, 2, 3, &[]);
}

#[test]
fn open_2_4_unsupported_optional_parameter() {
    // Type 1 (authentication, deprecated) before a valid capability parameter.
    let params = from_hex("0102 abcd 0206 0104 00010001");
    assert_notification(&open_frame(4, 65001, ID, &params), FOUR, 2, 4, &[]);
}

#[test]
fn open_2_0_malformed_parameters() {
    let frame_with_opt_len = |opt_len: u8, params: &[u8]| {
        let mut f = open_frame(4, 65001, ID, params);
        f[28] = opt_len;
        f
    };
    let caps = from_hex("0206 0104 00010001");
    // Optional parameters length past the end, and short of it.
    assert_notification(&frame_with_opt_len(9, &caps), FOUR, 2, 0, &[]);
    assert_notification(&frame_with_opt_len(7, &caps), FOUR, 2, 0, &[]);
    for params in [
        "0207 0104 00010001", // parameter length past the end
        "0206 0105 00010001", // capability length past its parameter
        "0205 0103 000101",   // MP capability of 3 bytes
        "0203 0201 00",       // route refresh with data
        "0205 4103 000001",   // 4-octet ASN capability of 3 bytes
        "0201 41",            // capability header cut short
        "02",                 // parameter header cut short
    ] {
        let params = from_hex(params);
        assert_notification(&open_frame(4, 65001, ID, &params), FOUR, 2, 0, &[]);
    }
}

#[test]
fn open_without_four_octet_capability_uses_my_as() {
    let params = from_hex("0206 0104 00020001 0202 4600");
    let Ok(Message::Open(o)) = decode(&open_frame(4, 65001, ID, &params), TWO) else {
        panic!()
    };
    assert_eq!(o.asn, 65001);
    assert_eq!(o.capabilities.four_octet_asn, None);
    assert_eq!(o.capabilities.multiprotocol, vec![(2, 1)]);
    assert!(!o.capabilities.ipv4_unicast());
    assert_eq!(o.capabilities.other, vec![70]);
}

#[test]
fn open_with_rfc9072_extended_parameters() {
    // Non-ext length 255, type 255, 2-byte length; parameters with 2-byte lengths.
    let caps = from_hex("0104 00010001 4104 fa56ea01");
    let mut params = vec![2];
    params.extend_from_slice(&(caps.len() as u16).to_be_bytes());
    params.extend_from_slice(&caps);
    let mut body = from_hex("04 5ba0 005a c6120102 ff ff");
    body.extend_from_slice(&(params.len() as u16).to_be_bytes());
    body.extend_from_slice(&params);
    let Ok(Message::Open(o)) = decode(&raw_frame(1, &body), FOUR) else {
        panic!()
    };
    assert_eq!(o.asn, ASN4);
    assert_eq!(o.capabilities.multiprotocol, vec![(1, 1)]);
}

// ADD-PATH (RFC 7911 §4) and graceful restart (RFC 4724 §3) capabilities.

fn decoded_open(params: &str) -> crate::bgp::message::Open {
    match decode(&open_frame(4, 65001, ID, &from_hex(params)), FOUR) {
        Ok(Message::Open(o)) => o,
        other => panic!("{other:?}"),
    }
}

#[test]
fn open_add_path_capability() {
    use crate::bgp::message::{AddPath, Family};
    // IPv4 receive, IPv6 both, then IPv4 again (ignored: the first entry counts).
    let o = decoded_open("020e 450c 00010101 00020103 00010102");
    let c = &o.capabilities;
    let entry = |afi, send_receive| AddPath {
        afi,
        safi: 1,
        send_receive,
    };
    assert_eq!(c.add_path, vec![entry(1, 1), entry(2, 3)]);
    assert!(c.add_path(Family::Ipv4Unicast, AddPath::RECEIVE));
    assert!(!c.add_path(Family::Ipv4Unicast, AddPath::SEND));
    assert!(c.add_path(Family::Ipv6Unicast, AddPath::SEND));
    assert!(c.other.is_empty());
    // RFC 7911 §4: a Send/Receive other than 1..=3 makes the capability "not understood".
    for bad in ["0206 4504 00010100", "020a 4508 00020101 00010104"] {
        let o = decoded_open(bad);
        assert!(o.capabilities.add_path.is_empty(), "{bad}");
        assert_eq!(o.capabilities.other, vec![69], "{bad}");
    }
}

#[test]
fn open_graceful_restart_capability() {
    use crate::bgp::message::GracefulRestart;
    // R set, 120 s, IPv4 unicast with F set and IPv6 unicast without.
    let o = decoded_open("020c 400a 8078 00010180 00020100");
    let want = GracefulRestart {
        flags: GracefulRestart::RESTART_STATE,
        restart_time: 120,
        families: vec![(1, 1, 0x80), (2, 1, 0)],
    };
    assert_eq!(o.capabilities.graceful_restart, Some(want.clone()));
    // A second instance is ignored.
    let o = decoded_open("020c 400a 8078 00010180 00020100 0204 4002 0000");
    assert_eq!(o.capabilities.graceful_restart, Some(want));
    let o = decoded_open("0204 4002 0000");
    assert_eq!(
        o.capabilities.graceful_restart,
        Some(GracefulRestart::default())
    );
}

#[test]
fn open_2_0_malformed_add_path_or_graceful_restart() {
    for params in [
        "0202 4500",                // ADD-PATH without a tuple
        "0205 4503 000101",         // ADD-PATH tuple of 3 bytes
        "0207 4505 0001010100",     // ADD-PATH of 5 bytes
        "0203 4001 00",             // graceful restart of 1 byte
        "0205 4003 007800",         // graceful restart with a family of 1 byte
        "0209 4007 0078 000101 00", // ... of 5 bytes
    ] {
        let frame = open_frame(4, 65001, ID, &from_hex(params));
        assert_notification(&frame, FOUR, 2, 0, &[]);
    }
}

#[test]
fn open_add_path_and_graceful_restart_round_trip() {
    use crate::bgp::message::{AddPath, GracefulRestart};
    let mut o = super::round_trip::open(ASN4, true);
    o.capabilities.multiprotocol.push((2, 1));
    o.capabilities.add_path = vec![
        AddPath {
            afi: 1,
            safi: 1,
            send_receive: AddPath::RECEIVE,
        },
        AddPath {
            afi: 2,
            safi: 1,
            send_receive: 3,
        },
    ];
    // What we send: no families, restart time 0 (we keep no routes of the peer's, and ask it
    // to keep none of ours), but End-of-RIB understood.
    o.capabilities.graceful_restart = Some(GracefulRestart::default());
    let bytes = encode(&Message::Open(o.clone()), FOUR).unwrap();
    let params = &bytes[29..];
    let has = |cap: &str| {
        let cap = from_hex(cap);
        params.windows(cap.len()).any(|w| w == cap)
    };
    assert!(
        has("020a 4508 00010101 00020103"),
        "ADD-PATH in {params:02x?}"
    );
    assert!(has("0204 4002 0000"), "graceful restart in {params:02x?}");
    assert_eq!(decode(&bytes, FOUR), Ok(Message::Open(o.clone())));
    // R and F are the flags zettabgp can write.
    o.capabilities.graceful_restart = Some(GracefulRestart {
        flags: GracefulRestart::RESTART_STATE,
        restart_time: 90,
        families: vec![(1, 1, GracefulRestart::FORWARDING_STATE)],
    });
    let bytes = encode(&Message::Open(o.clone()), FOUR).unwrap();
    assert!(bytes
        .windows(8)
        .any(|w| w == from_hex("4006 805a 00010180")));
    assert_eq!(decode(&bytes, FOUR), Ok(Message::Open(o.clone())));
    // Values that cannot be sent.
    o.capabilities.add_path[0].send_receive = 4;
    assert!(matches!(
        encode(&Message::Open(o), FOUR),
        Err(CodecError::UnencodableCapability(_))
    ));
}
