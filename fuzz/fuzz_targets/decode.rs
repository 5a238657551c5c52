//! Fuzzes `primaryd::bgp::codec::decode`. Input: one flags byte (bit 0: 4-octet ASNs; bit 1:
//! use the rest verbatim as a byte stream, header included; bit 2: iBGP session; bit 3:
//! ADD-PATH for IPv4 unicast; bit 4: ADD-PATH for IPv6 unicast), then either a message type
//! and a body that gets a valid header (so the fuzzer spends its time past the marker), or raw
//! frames. Whatever decodes is re-encoded, which drives zettabgp's encoder (its only role) with
//! every value the decoder can produce; cargo-fuzz builds with panic=abort, so a panic in
//! either is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use primaryd::bgp::codec::{decode, encode, encode_update, frame_len, CodecContext};
use primaryd::bgp::message::{Family, Message, Notification};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let ctx = CodecContext {
        four_octet_asn: flags & 1 != 0,
        ibgp: flags & 4 != 0,
        add_path_ipv4: flags & 8 != 0,
        add_path_ipv6: flags & 16 != 0,
    };
    if flags & 2 != 0 {
        let mut stream = rest;
        while let Ok(Some(len)) = frame_len(stream) {
            let Some((frame, tail)) = stream.split_at_checked(len) else {
                break;
            };
            check(frame, ctx);
            stream = tail;
        }
        return;
    }
    let Some((&msg_type, body)) = rest.split_first() else {
        return;
    };
    let Ok(len) = u16::try_from(19 + body.len()) else {
        return;
    };
    let mut frame = vec![0xff; 16];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.push(msg_type);
    frame.extend_from_slice(body);
    check(&frame, ctx);
});

/// Decodes; an error must convert to a NOTIFICATION; whatever decodes must encode again
/// without error, and an UPDATE's frames must decode back (without ADD-PATH: we never send
/// path identifiers) without RFC 7606 errors. Path identifiers must be index-aligned.
fn check(frame: &[u8], ctx: CodecContext) {
    let plain = CodecContext {
        add_path_ipv4: false,
        add_path_ipv6: false,
        ..ctx
    };
    match decode(frame, ctx) {
        Ok(Message::Update(u)) => {
            check_path_ids(&u, ctx);
            for f in encode_update(&u, ctx).expect("a decoded UPDATE re-encodes") {
                match decode(&f, plain) {
                    Ok(Message::Update(back)) => assert!(back.errors.is_empty(), "{back:?}"),
                    other => panic!("a re-encoded UPDATE decodes to {other:?}"),
                }
            }
        }
        Ok(Message::Open(_)) => {}
        Err(e) => {
            let n = Notification::from(e);
            assert!((1..=3).contains(&n.code), "{n:?}");
        }
        Ok(other) => {
            encode(&other, ctx).expect("a decoded message re-encodes");
        }
    }
}

fn check_path_ids(u: &primaryd::bgp::message::Update, ctx: CodecContext) {
    let carried = !u.withdrawn_path_ids.is_empty() || !u.nlri_path_ids.is_empty();
    if carried {
        assert_eq!(u.withdrawn_path_ids.len(), u.withdrawn.len(), "{u:?}");
        assert_eq!(u.nlri_path_ids.len(), u.nlri.len(), "{u:?}");
    }
    let all = u.withdrawn.iter().zip(&u.withdrawn_path_ids);
    for (prefix, &id) in all.chain(u.nlri.iter().zip(&u.nlri_path_ids)) {
        assert!(ctx.add_path(Family::of(prefix)) || id == 0, "{u:?}");
    }
}
