//! Fuzzes BFD: `ControlPacket::decode` on arbitrary bytes (what decodes must re-encode to
//! something that decodes to the same packet), then a session machine (authenticated or not,
//! by the first byte) fed the input cut into packets, interleaved with timer expiries, TTLs
//! and interval changes chosen by control bytes. A panic anywhere is a crash; so is a packet
//! it sends that does not decode or carries P and F together.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use primaryd::bfd::auth::AuthKey;
use primaryd::bfd::fsm::{Fsm, Input, Intervals, Output, SessionConfig, Timer};
use primaryd::bfd::packet::{AuthType, ControlPacket};

fn check(out: &[Output]) {
    for o in out {
        if let Output::Send(b) = o {
            let p = ControlPacket::decode(b).expect("we send what we decode");
            assert!(!(p.poll && p.final_));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    if let Ok(p) = ControlPacket::decode(rest) {
        assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    }
    let auth = (flags & 1 != 0).then(|| AuthKey {
        auth_type: if flags & 2 != 0 {
            AuthType::MeticulousKeyedSha1
        } else {
            AuthType::KeyedSha1
        },
        key_id: 1,
        secret: b"fuzz".to_vec(),
    });
    let mut f = Fsm::new(SessionConfig {
        intervals: Intervals {
            desired_min_tx: Duration::from_millis(100),
            required_min_rx: Duration::from_millis(100),
            detect_mult: 3,
        },
        auth,
        local_discriminator: 0x0102_0304,
        seed: u64::from(flags),
    });
    check(&f.process(Input::Start));
    // Chunks: a control byte, then a length byte and that many packet bytes.
    let mut s = rest;
    while let Some((&c, tail)) = s.split_first() {
        s = tail;
        let out = match c % 8 {
            0 => f.process(Input::TimerExpired(Timer::Transmit)),
            1 => f.process(Input::TimerExpired(Timer::Detect)),
            2 => f.process(Input::SetIntervals(Intervals {
                desired_min_tx: Duration::from_millis(u64::from(c) * 4 + 10),
                required_min_rx: Duration::from_millis(u64::from(c) * 3),
                detect_mult: (c % 5) + 1,
            })),
            3 => f.process(Input::AdminDown),
            _ => {
                let Some((&len, tail)) = s.split_first() else {
                    break;
                };
                let n = usize::from(len).min(tail.len());
                let (raw, tail) = tail.split_at(n);
                s = tail;
                match ControlPacket::decode(raw) {
                    Ok(packet) => f.process(Input::Received {
                        packet,
                        raw: raw.to_vec(),
                        ttl: Some(if c & 0x10 != 0 { 254 } else { 255 }),
                    }),
                    Err(_) => Vec::new(),
                }
            }
        };
        check(&out);
    }
});
