//! Unit tests of the BFD machine: no sockets, no clock. Packets one machine sends are fed to
//! the other as the engine would (decoded, TTL 255).

use super::*;
use crate::bfd::packet::AuthType;
use proptest::prelude::*;

const MS: Duration = Duration::from_millis(1);

fn intervals(tx: u64, rx: u64, mult: u8) -> Intervals {
    Intervals {
        desired_min_tx: Duration::from_millis(tx),
        required_min_rx: Duration::from_millis(rx),
        detect_mult: mult,
    }
}

fn cfg(discr: u32) -> SessionConfig {
    SessionConfig {
        intervals: intervals(100, 100, 3),
        auth: None,
        local_discriminator: discr,
        seed: u64::from(discr) * 7919,
    }
}

fn sent(out: &[Output]) -> Vec<ControlPacket> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(ControlPacket::decode(b).expect("we send valid packets")),
            _ => None,
        })
        .collect()
}

fn raw_sent(out: &[Output]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn last_sent(out: &[Output]) -> ControlPacket {
    sent(out).pop().expect("a packet was sent")
}

fn timer(out: &[Output], t: Timer) -> Option<Duration> {
    out.iter().rev().find_map(|o| match o {
        Output::StartTimer(x, d) if *x == t => Some(*d),
        _ => None,
    })
}

fn deliver(to: &mut Fsm, bytes: &[u8]) -> Vec<Output> {
    to.process(Input::Received {
        packet: ControlPacket::decode(bytes).unwrap(),
        raw: bytes.to_vec(),
        ttl: Some(255),
    })
}

/// Feeds every packet in `out` to `to`, returning what `to` produced.
fn deliver_all(to: &mut Fsm, out: &[Output]) -> Vec<Output> {
    raw_sent(out).iter().flat_map(|b| deliver(to, b)).collect()
}

/// Two machines exchanging packets until neither has anything more to say.
fn converge(a: &mut Fsm, b: &mut Fsm, first: Vec<Output>) {
    let mut from_a = first;
    for _ in 0..20 {
        let from_b = deliver_all(b, &from_a);
        from_a = deliver_all(a, &from_b);
        if raw_sent(&from_a).is_empty() {
            return;
        }
    }
    panic!("no convergence");
}

fn up_pair(ca: SessionConfig, cb: SessionConfig) -> (Fsm, Fsm) {
    let (mut a, mut b) = (Fsm::new(ca), Fsm::new(cb));
    b.process(Input::Start);
    let out = a.process(Input::Start);
    converge(&mut a, &mut b, out);
    assert_eq!((a.state(), b.state()), (SessionState::Up, SessionState::Up));
    (a, b)
}

#[test]
fn start_sends_down_slowly_and_jittered() {
    let mut f = Fsm::new(cfg(1));
    let out = f.process(Input::Start);
    let p = last_sent(&out);
    assert_eq!(p.state, SessionState::Down);
    assert_eq!(p.your_discriminator, 0);
    assert_eq!(p.my_discriminator, 1);
    assert_eq!(p.desired_min_tx_us, 1_000_000, "at least 1 s while not Up");
    assert_eq!(p.required_min_rx_us, 100_000);
    assert_eq!(p.detect_mult, 3);
    assert!(!p.control_plane_independent && !p.demand && p.auth.is_none());
    let d = timer(&out, Timer::Transmit).unwrap();
    assert!(d >= 750 * MS && d <= 1000 * MS, "{d:?}");
    assert_eq!(timer(&out, Timer::Detect), None, "nothing heard yet");
}

#[test]
fn three_way_handshake() {
    let mut a = Fsm::new(cfg(1));
    let mut b = Fsm::new(cfg(2));
    let a0 = a.process(Input::Start);
    b.process(Input::Start);
    // b hears Down: Init, answering at once with a's discriminator.
    let b1 = deliver_all(&mut b, &a0);
    assert_eq!(b.state(), SessionState::Init);
    assert!(b1.contains(&Output::StateChanged {
        from: SessionState::Down,
        to: SessionState::Init,
        diag: Diag::None
    }));
    let p = last_sent(&b1);
    assert_eq!((p.state, p.your_discriminator), (SessionState::Init, 1));
    // a hears Init: Up.
    let a1 = deliver_all(&mut a, &b1);
    assert_eq!(a.state(), SessionState::Up);
    assert_eq!(a.counters().up_transitions, 1);
    // b hears Up: Up.
    deliver_all(&mut b, &a1);
    assert_eq!(b.state(), SessionState::Up);
}

#[test]
fn going_up_polls_for_the_fast_intervals_and_final_applies_them() {
    let mut a = Fsm::new(cfg(1));
    let mut b = Fsm::new(cfg(2));
    let a0 = a.process(Input::Start);
    let b1 = deliver_all(&mut b, &a0);
    let a1 = deliver_all(&mut a, &b1);
    let p = last_sent(&a1);
    assert_eq!(p.state, SessionState::Up);
    assert!(p.poll, "new intervals go out with P");
    assert_eq!(p.desired_min_tx_us, 100_000);
    assert!(a.poll_in_progress());
    // Periodic packets repeat P until the Final.
    let again = a.process(Input::TimerExpired(Timer::Transmit));
    assert!(last_sent(&again).poll);
    // b answers the poll at once with F (and never P and F together).
    let b2 = deliver_all(&mut b, &a1);
    let finals: Vec<ControlPacket> = sent(&b2).into_iter().filter(|p| p.final_).collect();
    assert_eq!(finals.len(), 1, "{b2:?}");
    assert!(!finals[0].poll);
    deliver_all(&mut a, &b2);
    assert!(!a.poll_in_progress());
    let quiet = a.process(Input::TimerExpired(Timer::Transmit));
    assert!(!last_sent(&quiet).poll);
}

#[test]
fn both_ends_settle_on_the_fast_intervals() {
    let (a, b) = up_pair(cfg(1), cfg(2));
    for f in [&a, &b] {
        assert!(!f.poll_in_progress());
        assert_eq!(f.tx_interval(), Some(100 * MS));
        assert_eq!(f.detection_time(), Some(300 * MS));
    }
}

#[test]
fn tx_interval_is_the_slower_of_ours_and_the_peer_s_wish() {
    let mut cb = cfg(2);
    cb.intervals = intervals(100, 250, 3);
    let (mut a, _b) = up_pair(cfg(1), cb);
    assert_eq!(a.tx_interval(), Some(250 * MS));
    for _ in 0..200 {
        let d = timer(
            &a.process(Input::TimerExpired(Timer::Transmit)),
            Timer::Transmit,
        )
        .unwrap();
        assert!(d >= 187_500 * MS / 1000 && d <= 250 * MS, "{d:?}");
    }
}

#[test]
fn jitter_is_up_to_25_percent_and_10_to_25_with_detect_mult_1() {
    for (mult, low, high) in [(3u8, 0.75, 1.0), (1, 0.75, 0.90)] {
        let mut c = cfg(1);
        c.intervals.detect_mult = mult;
        let mut f = Fsm::new(c);
        f.process(Input::Start);
        let mut seen = Vec::new();
        for _ in 0..500 {
            let d = timer(
                &f.process(Input::TimerExpired(Timer::Transmit)),
                Timer::Transmit,
            );
            seen.push(d.unwrap().as_secs_f64());
        }
        let (min, max) = seen
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), x| (a.min(*x), b.max(*x)));
        assert!(
            min >= low - 1e-9 && max <= high + 1e-9,
            "mult {mult}: {min}..{max}"
        );
        // Spread over the range, not one fixed factor.
        assert!(max - min > (high - low) * 0.8, "mult {mult}: {min}..{max}");
    }
}

#[test]
fn a_peer_wanting_no_packets_gets_none_but_polls_are_answered() {
    let (mut a, mut b) = up_pair(cfg(1), cfg(2));
    let poll = b.process(Input::SetIntervals(intervals(100, 0, 3)));
    assert!(last_sent(&poll).poll);
    let out = deliver_all(&mut a, &poll);
    assert_eq!(a.tx_interval(), None);
    assert!(last_sent(&out).final_, "a poll is answered even so");
    assert_eq!(timer(&out, Timer::Transmit), None);
    assert!(out.contains(&Output::StopTimer(Timer::Transmit)));
}

#[test]
fn detection_time_is_the_peer_s_mult_times_the_slower_interval() {
    let mut cb = cfg(2);
    cb.intervals = intervals(200, 100, 5);
    let (a, _b) = up_pair(cfg(1), cb);
    // b sends every 200 ms (its Desired Min TX, slower than our 100 ms Required Min RX) and
    // its Detect Mult is 5: 1 s.
    assert_eq!(a.detection_time(), Some(1000 * MS));
}

#[test]
fn every_valid_packet_restarts_detection() {
    let (mut a, mut b) = up_pair(cfg(1), cfg(2));
    let out = deliver_all(&mut a, &b.process(Input::TimerExpired(Timer::Transmit)));
    assert_eq!(timer(&out, Timer::Detect), Some(300 * MS));
}

#[test]
fn silence_for_a_detection_time_takes_the_session_down() {
    let (mut a, _b) = up_pair(cfg(1), cfg(2));
    let out = a.process(Input::TimerExpired(Timer::Detect));
    assert_eq!(a.state(), SessionState::Down);
    assert_eq!(a.local_diag(), Diag::ControlDetectionTimeExpired);
    assert_eq!(a.counters().down_transitions, 1);
    assert!(out.contains(&Output::StateChanged {
        from: SessionState::Up,
        to: SessionState::Down,
        diag: Diag::ControlDetectionTimeExpired
    }));
    let p = last_sent(&out);
    assert_eq!(p.state, SessionState::Down);
    assert_eq!(p.diag, Diag::ControlDetectionTimeExpired);
    assert_eq!(
        p.your_discriminator, 0,
        "the peer's discriminator is forgotten"
    );
    assert_eq!(p.desired_min_tx_us, 1_000_000, "slow again while not Up");
    assert!(!a.remote_admin_down(), "a silent peer is a failure");
}

#[test]
fn a_peer_signalling_down_takes_the_session_down() {
    let (mut a, mut b) = up_pair(cfg(1), cfg(2));
    b.process(Input::TimerExpired(Timer::Detect));
    assert_eq!(b.state(), SessionState::Down);
    deliver_all(&mut a, &b.process(Input::TimerExpired(Timer::Transmit)));
    assert_eq!(a.state(), SessionState::Down);
    assert_eq!(a.local_diag(), Diag::NeighborSignaledSessionDown);
    assert_eq!(a.remote_diag(), Diag::ControlDetectionTimeExpired);
    assert!(!a.remote_admin_down());
}

#[test]
fn admin_down_is_sent_with_diag_7_and_is_not_a_failure_for_the_peer() {
    let (mut a, mut b) = up_pair(cfg(1), cfg(2));
    let out = b.process(Input::AdminDown);
    let p = last_sent(&out);
    assert_eq!(
        (p.state, p.diag),
        (SessionState::AdminDown, Diag::AdministrativelyDown)
    );
    assert!(out.contains(&Output::StopTimer(Timer::Detect)));
    deliver_all(&mut a, &out);
    assert_eq!(a.state(), SessionState::Down);
    assert!(a.remote_admin_down());
    // Still "on purpose" when the peer then falls silent.
    a.process(Input::TimerExpired(Timer::Detect));
    assert!(a.remote_admin_down());
    // An AdminDown session ignores what it receives.
    let before = b.counters().packets_in;
    let again = deliver_all(&mut b, &a.process(Input::TimerExpired(Timer::Transmit)));
    assert_eq!(b.state(), SessionState::AdminDown);
    assert_eq!(b.counters().packets_in, before + 1);
    assert!(!again
        .iter()
        .any(|o| matches!(o, Output::StateChanged { .. })));
}

#[test]
fn the_session_comes_back_after_a_failure() {
    let (mut a, mut b) = up_pair(cfg(1), cfg(2));
    a.process(Input::TimerExpired(Timer::Detect));
    b.process(Input::TimerExpired(Timer::Detect));
    let out = a.process(Input::TimerExpired(Timer::Transmit));
    converge(&mut a, &mut b, out);
    assert_eq!((a.state(), b.state()), (SessionState::Up, SessionState::Up));
    assert_eq!(a.counters().up_transitions, 2);
}

#[test]
fn packets_not_from_a_neighbour_or_for_another_session_are_dropped() {
    let (mut a, mut b) = up_pair(cfg(1), cfg(2));
    let bytes = raw_sent(&b.process(Input::TimerExpired(Timer::Transmit))).remove(0);
    let packet = ControlPacket::decode(&bytes).unwrap();
    for ttl in [Some(254), Some(1), None] {
        let out = a.process(Input::Received {
            packet: packet.clone(),
            raw: bytes.clone(),
            ttl,
        });
        assert_eq!(out, vec![Output::Dropped(DropReason::Ttl(ttl))]);
    }
    let mut other = packet.clone();
    other.your_discriminator = 99;
    let out = deliver(&mut a, &other.encode());
    assert_eq!(out, vec![Output::Dropped(DropReason::Discriminator)]);
    assert_eq!(a.counters().dropped, 4);
    assert_eq!(a.state(), SessionState::Up);
}

#[test]
fn slower_transmission_waits_for_the_final() {
    let (mut a, mut b) = up_pair(cfg(1), cfg(2));
    let out = a.process(Input::SetIntervals(intervals(300, 100, 3)));
    let p = last_sent(&out);
    assert!(p.poll);
    assert_eq!(p.desired_min_tx_us, 300_000);
    assert_eq!(a.tx_interval(), Some(100 * MS), "not before the Final");
    let answer = deliver_all(&mut b, &out);
    // b's detection time for a follows what a advertises: 3 x 300 ms.
    assert_eq!(b.detection_time(), Some(900 * MS));
    deliver_all(&mut a, &answer);
    assert_eq!(a.tx_interval(), Some(300 * MS));
    assert!(!a.poll_in_progress());
}

#[test]
fn a_shorter_detection_time_waits_for_the_final_and_a_longer_applies_at_once() {
    let mut ca = cfg(1);
    ca.intervals = intervals(100, 200, 3);
    let mut cb = cfg(2);
    cb.intervals = intervals(50, 50, 3);
    let (mut a, mut b) = up_pair(ca, cb);
    assert_eq!(a.detection_time(), Some(600 * MS));
    let out = a.process(Input::SetIntervals(intervals(100, 100, 3)));
    assert_eq!(
        a.detection_time(),
        Some(600 * MS),
        "shorter only after the Final"
    );
    deliver_all(&mut a, &deliver_all(&mut b, &out));
    assert_eq!(a.detection_time(), Some(300 * MS));
    a.process(Input::SetIntervals(intervals(100, 400, 3)));
    assert_eq!(a.detection_time(), Some(1200 * MS), "longer at once");
}

#[test]
fn a_peer_asking_for_faster_packets_rearms_the_transmit_timer() {
    let (mut a, mut b) = up_pair(cfg(1), cfg(2));
    // b asks for packets no faster than every second, then for 100 ms again.
    let tick = a.process(Input::TimerExpired(Timer::Transmit));
    deliver_all(&mut a, &deliver_all(&mut b, &tick));
    let slow = b.process(Input::SetIntervals(intervals(100, 1000, 3)));
    let out = deliver_all(&mut a, &slow);
    assert!(timer(&out, Timer::Transmit).unwrap() >= 750 * MS);
    deliver_all(&mut b, &out);
    let fast = b.process(Input::SetIntervals(intervals(100, 100, 3)));
    let out = deliver_all(&mut a, &fast);
    let d = timer(&out, Timer::Transmit).unwrap();
    assert!(
        d <= 100 * MS,
        "{d:?}: the old 1 s timer would let b's detection expire"
    );
}

#[test]
fn intervals_changed_twice_during_a_poll_are_polled_again() {
    let (mut a, mut b) = up_pair(cfg(1), cfg(2));
    let first = a.process(Input::SetIntervals(intervals(200, 100, 3)));
    a.process(Input::SetIntervals(intervals(300, 100, 3)));
    deliver_all(&mut a, &deliver_all(&mut b, &first));
    assert_eq!(a.tx_interval(), Some(200 * MS));
    assert!(
        a.poll_in_progress(),
        "the second change is still to be acknowledged"
    );
    let p = last_sent(&a.process(Input::TimerExpired(Timer::Transmit)));
    assert!(p.poll && p.desired_min_tx_us == 300_000);
    let out = a.process(Input::TimerExpired(Timer::Transmit));
    deliver_all(&mut a, &deliver_all(&mut b, &out));
    assert_eq!(a.tx_interval(), Some(300 * MS));
    assert_eq!(a.counters().polls, 3, "going Up, then the two changes");
}

fn keyed(discr: u32, t: AuthType, secret: &[u8]) -> SessionConfig {
    let mut c = cfg(discr);
    c.auth = Some(AuthKey {
        auth_type: t,
        key_id: 5,
        secret: secret.to_vec(),
    });
    c
}

#[test]
fn sha1_sessions_come_up_and_sign_every_packet() {
    for t in [AuthType::KeyedSha1, AuthType::MeticulousKeyedSha1] {
        let (mut a, b) = up_pair(keyed(1, t, b"secret"), keyed(2, t, b"secret"));
        let bytes = raw_sent(&a.process(Input::TimerExpired(Timer::Transmit))).remove(0);
        assert_eq!(bytes.len(), 52);
        assert!(b.auth().unwrap().verify(&bytes));
        assert_eq!(b.counters().dropped, 0);
    }
}

#[test]
fn wrong_key_missing_or_unexpected_authentication_never_comes_up() {
    let cases = [
        (
            keyed(1, AuthType::KeyedSha1, b"one"),
            keyed(2, AuthType::KeyedSha1, b"two"),
            DropReason::AuthDigest,
        ),
        (
            cfg(1),
            keyed(2, AuthType::KeyedSha1, b"one"),
            DropReason::AuthMissing,
        ),
        (
            keyed(1, AuthType::KeyedSha1, b"one"),
            cfg(2),
            DropReason::AuthUnexpected,
        ),
        (
            keyed(1, AuthType::KeyedSha1, b"one"),
            keyed(2, AuthType::MeticulousKeyedSha1, b"one"),
            DropReason::AuthMismatch,
        ),
    ];
    for (ca, cb, why) in cases {
        let (mut a, mut b) = (Fsm::new(ca), Fsm::new(cb));
        let out = deliver_all(&mut b, &a.process(Input::Start));
        assert_eq!(out, vec![Output::Dropped(why)]);
        assert_eq!(b.state(), SessionState::Down);
        assert_eq!(b.counters().dropped_auth, 1);
    }
}

#[test]
fn meticulous_refuses_a_replay_and_keyed_accepts_a_repeat() {
    for (t, replay_ok) in [
        (AuthType::MeticulousKeyedSha1, false),
        (AuthType::KeyedSha1, true),
    ] {
        let (mut a, mut b) = up_pair(keyed(1, t, b"k"), keyed(2, t, b"k"));
        let bytes = raw_sent(&a.process(Input::TimerExpired(Timer::Transmit))).remove(0);
        assert!(!deliver(&mut b, &bytes)
            .iter()
            .any(|o| matches!(o, Output::Dropped(_))));
        let again = deliver(&mut b, &bytes);
        assert_eq!(
            again.contains(&Output::Dropped(DropReason::AuthSequence)),
            !replay_ok,
            "{t}: {again:?}"
        );
    }
}

#[test]
fn a_sequence_jump_past_the_window_is_refused_until_two_detection_times_pass() {
    let t = AuthType::MeticulousKeyedSha1;
    let (mut a, mut b) = up_pair(keyed(1, t, b"k"), keyed(2, t, b"k"));
    // a's sequence jumps by 1000 (e.g. it restarted with another seed).
    for _ in 0..1000 {
        a.process(Input::TimerExpired(Timer::Transmit));
    }
    let late = raw_sent(&a.process(Input::TimerExpired(Timer::Transmit))).remove(0);
    assert_eq!(
        deliver(&mut b, &late),
        vec![Output::Dropped(DropReason::AuthSequence)]
    );
    b.process(Input::TimerExpired(Timer::Detect));
    assert_eq!(
        deliver(&mut b, &late),
        vec![Output::Dropped(DropReason::AuthSequence)]
    );
    b.process(Input::TimerExpired(Timer::Detect));
    let out = deliver(&mut b, &late);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Dropped(_))),
        "{out:?}"
    );
}

#[derive(Debug, Clone)]
enum Step {
    TimerA(bool),
    TimerB(bool),
    DeliverAtoB,
    DeliverBtoA,
    Lose,
    Garble(usize, u8),
    SetA(u64, u64, u8),
    AdminDownB,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<bool>().prop_map(Step::TimerA),
        any::<bool>().prop_map(Step::TimerB),
        Just(Step::DeliverAtoB),
        Just(Step::DeliverBtoA),
        Just(Step::Lose),
        (0usize..52, any::<u8>()).prop_map(|(i, v)| Step::Garble(i, v)),
        (1u64..2000, 0u64..2000, 1u8..10).prop_map(|(t, r, m)| Step::SetA(t, r, m)),
        Just(Step::AdminDownB),
    ]
}

fn check(out: &[Output]) {
    for p in sent(out) {
        assert!(!(p.poll && p.final_), "P and F together");
        assert_ne!(p.my_discriminator, 0);
        if p.state != SessionState::Up {
            assert!(p.desired_min_tx_us >= 1_000_000, "fast while not Up: {p:?}");
        }
    }
    for o in out {
        if let Output::StartTimer(Timer::Transmit, d) = o {
            assert!(!d.is_zero());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_exchanges_never_panic_and_keep_invariants(
        auth in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..80),
    ) {
        let t = AuthType::MeticulousKeyedSha1;
        let (ca, cb) = if auth { (keyed(1, t, b"k"), keyed(2, t, b"k")) } else { (cfg(1), cfg(2)) };
        let (mut a, mut b) = (Fsm::new(ca), Fsm::new(cb));
        let mut to_b: Vec<Vec<u8>> = raw_sent(&a.process(Input::Start));
        let mut to_a: Vec<Vec<u8>> = raw_sent(&b.process(Input::Start));
        for s in steps {
            let (out_a, out_b) = match s {
                Step::TimerA(tx) => (a.process(Input::TimerExpired(if tx { Timer::Transmit } else { Timer::Detect })), vec![]),
                Step::TimerB(tx) => (vec![], b.process(Input::TimerExpired(if tx { Timer::Transmit } else { Timer::Detect }))),
                Step::DeliverAtoB => (vec![], to_b.drain(..).flat_map(|p| deliver(&mut b, &p)).collect()),
                Step::DeliverBtoA => (to_a.drain(..).flat_map(|p| deliver(&mut a, &p)).collect(), vec![]),
                Step::Lose => { to_a.clear(); to_b.clear(); (vec![], vec![]) }
                Step::Garble(i, v) => {
                    let mut out = vec![];
                    if !to_b.is_empty() {
                        let mut p = to_b.remove(0);
                        let n = p.len();
                        p[i % n] = v;
                        if let Ok(packet) = ControlPacket::decode(&p) {
                            out = b.process(Input::Received { packet, raw: p, ttl: Some(255) });
                        }
                    }
                    (vec![], out)
                }
                Step::SetA(t, r, m) => (a.process(Input::SetIntervals(intervals(t, r, m))), vec![]),
                Step::AdminDownB => (vec![], b.process(Input::AdminDown)),
            };
            check(&out_a);
            check(&out_b);
            to_b.extend(raw_sent(&out_a));
            to_a.extend(raw_sent(&out_b));
            prop_assert!(a.counters().up_transitions >= a.counters().down_transitions);
        }
    }
}
