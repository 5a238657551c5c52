//! A session's life: connecting and backing off, keepalives and the hold timer, errors and
//! NOTIFICATIONs, administrative stop.

use super::*;

#[test]
fn start_connects_with_a_connect_timeout() {
    let mut f = Fsm::new(cfg());
    let out = f.process(Input::Start);
    assert_eq!(f.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
    assert_eq!(retry_delay(&out), Some(Duration::from_secs(5)));
}

#[test]
fn connect_sends_open_with_capabilities() {
    let mut f = Fsm::new(cfg());
    let out = connected(&mut f);
    assert_eq!(f.state(), State::OpenSent);
    let Message::Open(open) = only_sent(&out) else {
        panic!("expected one OPEN: {out:?}")
    };
    assert_eq!(open.asn, 4_200_000_001);
    assert_eq!(open.capabilities.four_octet_asn, Some(4_200_000_001));
    assert_eq!(open.capabilities.multiprotocol, [(1, 1), (2, 1)]);
    assert!(open.capabilities.route_refresh);
    assert_eq!(open.hold_time, 9);
    assert!(out.contains(&Output::StartTimer(Timer::Hold, OPEN_HOLD_TIME)));
}

#[test]
fn failed_connects_back_off_exponentially_with_jitter_up_to_the_cap() {
    let mut f = Fsm::new(cfg());
    f.process(Input::Start);
    let mut delays = Vec::new();
    for _ in 0..6 {
        let out = f.process(Input::TcpFailed {
            error: "refused".into(),
        });
        assert_eq!(f.state(), State::Idle);
        delays.push(retry_delay(&out).unwrap());
        let out = f.process(Input::TimerExpired(Timer::ConnectRetry));
        assert!(out.contains(&Output::Connect));
    }
    for (d, base) in delays.iter().zip([1, 2, 4, 8, 8, 8]) {
        let base = Duration::from_secs(base);
        assert!(*d <= base && *d >= base.mul_f64(0.75), "{d:?} vs {base:?}");
    }
    // Jittered: not all equal to their base.
    assert!(delays.iter().any(|d| d.subsec_nanos() != 0));
}

#[test]
fn backoff_resets_only_after_a_stable_session() {
    let mut f = Fsm::new(cfg());
    f.process(Input::Start);
    for _ in 0..3 {
        f.process(Input::TcpFailed { error: "x".into() });
        f.process(Input::TimerExpired(Timer::ConnectRetry));
    }
    f.process(Input::TcpConnected {
        local: LOCAL.parse().unwrap(),
        interface: iface(),
    });
    f.process(recv(Message::Open(peer_open(3))));
    let out = f.process(recv(Message::Keepalive));
    assert!(out.contains(&Output::StartTimer(Timer::Stable, Duration::from_secs(30))));
    // Flapping right after establishment keeps the long hold (damping).
    let out = f.process(Input::TcpClosed { error: "x".into() });
    assert!(retry_delay(&out).unwrap() >= Duration::from_secs(6));
    assert!(out.contains(&Output::StopTimer(Timer::Stable)));

    f.process(Input::TimerExpired(Timer::ConnectRetry));
    establish_again(&mut f);
    f.process(Input::TimerExpired(Timer::Stable));
    let out = f.process(Input::TcpClosed { error: "x".into() });
    assert!(retry_delay(&out).unwrap() <= Duration::from_secs(1));
}

fn establish_again(f: &mut Fsm) {
    f.process(Input::TcpConnected {
        local: LOCAL.parse().unwrap(),
        interface: iface(),
    });
    f.process(recv(Message::Open(peer_open(3))));
    f.process(recv(Message::Keepalive));
    assert_eq!(f.state(), State::Established);
}

#[test]
fn connect_timeout_abandons_and_retries() {
    let mut f = Fsm::new(cfg());
    f.process(Input::Start);
    let out = f.process(Input::TimerExpired(Timer::ConnectRetry));
    assert_eq!(f.state(), State::Idle);
    assert!(out.contains(&Output::Close));
    assert!(retry_delay(&out).unwrap() <= Duration::from_secs(1));
    assert!(f.last_error().unwrap().to_string().contains("timed out"));
}

#[test]
fn keepalives_are_sent_and_received_ones_restart_hold() {
    let mut f = established(&[]);
    let out = f.process(Input::TimerExpired(Timer::Keepalive));
    assert_eq!(sent(&out), [Message::Keepalive]);
    assert!(out.contains(&Output::StartTimer(
        Timer::Keepalive,
        Duration::from_secs(1)
    )));
    let out = f.process(recv(Message::Keepalive));
    assert_eq!(
        out,
        [Output::StartTimer(Timer::Hold, Duration::from_secs(3))]
    );
}

#[test]
fn hold_timer_expiry_sends_notification_and_retries() {
    let mut f = established(&["192.0.2.10/32"]);
    let out = f.process(Input::TimerExpired(Timer::Hold));
    let n = notification(&out).unwrap();
    assert_eq!((n.code, n.subcode), (4, 0));
    assert!(out.contains(&Output::Close));
    assert_eq!(f.state(), State::Idle);
    assert!(retry_delay(&out).is_some());
}

#[test]
fn unexpected_messages_are_fsm_errors_with_rfc6608_subcodes() {
    let mut f = Fsm::new(cfg());
    connected(&mut f);
    let out = f.process(recv(Message::Keepalive));
    assert_eq!(
        notification(&out).map(|n| (n.code, n.subcode)),
        Some((5, 1))
    );

    let mut f = Fsm::new(cfg());
    connected(&mut f);
    f.process(recv(Message::Open(peer_open(3))));
    let out = f.process(recv(Message::Update(Update::default())));
    assert_eq!(
        notification(&out).map(|n| (n.code, n.subcode)),
        Some((5, 2))
    );

    let mut f = established(&[]);
    let out = f.process(recv(Message::Open(peer_open(3))));
    assert_eq!(
        notification(&out).map(|n| (n.code, n.subcode)),
        Some((5, 3))
    );
}

#[test]
fn malformed_input_sends_the_codec_notification_and_counts_it() {
    let mut f = established(&["192.0.2.10/32"]);
    let bad = Notification::new(3, 11, vec![]);
    let out = f.process(Input::Malformed(bad.clone()));
    assert_eq!(notification(&out), Some(bad));
    assert_eq!(f.counters().malformed_in, 1);
    assert_eq!(f.state(), State::Idle);
}

#[test]
fn received_notification_closes_without_answering() {
    let mut f = established(&[]);
    let cease = Notification::new(6, 2, vec![]);
    let out = f.process(recv(Message::Notification(cease.clone())));
    assert!(notification(&out).is_none());
    assert!(out.contains(&Output::Close));
    assert_eq!(f.state(), State::Idle);
    assert!(retry_delay(&out).is_some());
    assert!(f.last_error().unwrap().to_string().contains("Cease"));
    assert_eq!(f.last_notification(), Some(&Notified::received(cease)));
}

#[test]
fn stop_withdraws_then_sends_cease_and_stays_down() {
    let mut f = established(&["192.0.2.10/32"]);
    let out = f.process(Input::Stop {
        message: "primaryd shutting down".into(),
    });
    let msgs = sent(&out);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let Message::Update(u) = &msgs[0] else {
        panic!("{msgs:?}")
    };
    assert_eq!(u.withdrawn, [pfx("192.0.2.10/32")]);
    let Message::Notification(n) = &msgs[1] else {
        panic!("{msgs:?}")
    };
    assert_eq!((n.code, n.subcode), (6, 2));
    assert_eq!(
        n.shutdown_message().as_deref(),
        Some("primaryd shutting down")
    );
    assert!(out.contains(&Output::Close));
    assert_eq!(f.state(), State::Idle);
    assert!(retry_delay(&out).is_none());
    // Stays down: a late retry timer does nothing.
    assert!(f
        .process(Input::TimerExpired(Timer::ConnectRetry))
        .is_empty());
}

#[test]
fn stop_while_connecting_abandons_the_connect() {
    let mut f = Fsm::new(cfg());
    f.process(Input::Start);
    let out = f.process(Input::Stop {
        message: "bye".into(),
    });
    assert!(sent(&out).is_empty());
    assert!(out.contains(&Output::Close));
    let out = f.process(Input::TcpConnected {
        local: LOCAL.parse().unwrap(),
        interface: iface(),
    });
    assert_eq!(out, [Output::Close]);
    assert_eq!(f.state(), State::Idle);
}

#[test]
fn stale_timers_and_late_tcp_events_are_ignored() {
    let mut f = Fsm::new(cfg());
    assert!(f.process(Input::TimerExpired(Timer::Hold)).is_empty());
    assert!(f.process(Input::TimerExpired(Timer::Keepalive)).is_empty());
    assert!(f.process(Input::TimerExpired(Timer::Stable)).is_empty());
    assert!(f.process(Input::TcpClosed { error: "x".into() }).is_empty());
    assert!(f.process(recv(Message::Keepalive)).is_empty());
}

#[test]
fn session_loss_forgets_rib_out_and_reannounces_on_return() {
    let mut f = established(&["192.0.2.10/32"]);
    f.process(Input::TcpClosed {
        error: "reset".into(),
    });
    assert!(f.rib_out().is_empty());
    f.process(Input::TimerExpired(Timer::ConnectRetry));
    f.process(Input::TcpConnected {
        local: LOCAL.parse().unwrap(),
        interface: iface(),
    });
    f.process(recv(Message::Open(peer_open(3))));
    f.process(recv(Message::Keepalive));
    // The release was for the first session: the new one waits for its own.
    assert!(sent(&initial_routes(&mut f)).is_empty());
    let out = f.process(export(&f, routes(&["192.0.2.10/32"])));
    assert_eq!(sent(&out).len(), 1, "{out:?}");
}
