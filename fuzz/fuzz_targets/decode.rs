//! Fuzzes `primaryd::bgp::codec::decode`. Input: one flags byte (bit 0: 4-octet ASNs; bit 1:
//! use the rest verbatim as a byte stream, header included; bit 2: iBGP session), then either a
//! message type and
//! a body that gets a valid header (so the fuzzer spends its time past the marker), or raw
//! frames. cargo-fuzz builds with panic=abort, so any zettabgp panic the validation lets
//! through is a crash here rather than a caught 3/1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use primaryd::bgp::codec::{
    decode, encode, encode_update, frame_len, zettabgp_disagreements, CodecContext,
};
use primaryd::bgp::message::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let ctx = CodecContext {
        four_octet_asn: flags & 1 != 0,
        ibgp: flags & 4 != 0,
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

/// Decodes; whatever decodes must encode again without error, and an UPDATE's frames must
/// decode back without RFC 7606 errors. zettabgp must never disagree with the validation.
fn check(frame: &[u8], ctx: CodecContext) {
    let decoded = decode(frame, ctx);
    assert_eq!(
        zettabgp_disagreements(),
        0,
        "zettabgp and the validation disagree"
    );
    match decoded {
        Ok(Message::Update(u)) => {
            for f in encode_update(&u, ctx).expect("a decoded UPDATE re-encodes") {
                match decode(&f, ctx) {
                    Ok(Message::Update(back)) => assert!(back.errors.is_empty(), "{back:?}"),
                    other => panic!("a re-encoded UPDATE decodes to {other:?}"),
                }
            }
        }
        Ok(Message::Open(_)) | Err(_) => {}
        Ok(other) => {
            encode(&other, ctx).expect("a decoded message re-encodes");
        }
    }
}
