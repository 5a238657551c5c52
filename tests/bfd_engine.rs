//! The BFD engine on loopback, without root: two engines (ours and a stand-in for the ToR)
//! whose packets pass through a relay the test can cut in both directions, as when a host
//! freezes or its link drops packets. The relay forwards with TTL 255, as a neighbour sends.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use primaryd::bfd::auth::AuthKey;
use primaryd::bfd::engine::{BfdLink, Engine, EngineOptions, SessionSpec};
use primaryd::bfd::fsm::Intervals;
use primaryd::bfd::packet::{AuthType, Diag, SessionState};
use primaryd::bfd::socket::bind_sender;
use primaryd::bfd::status::{BfdStatus, Verdict};
use testkit::wait_until;

const LOOPBACK: &str = "127.0.0.1";
/// Generous: two cores run other tests at the same time. The detection itself is 300 ms.
const BOUND: Duration = Duration::from_secs(5);

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn intervals(ms: u64) -> Intervals {
    Intervals {
        desired_min_tx: Duration::from_millis(ms),
        required_min_rx: Duration::from_millis(ms),
        detect_mult: 3,
    }
}

/// Forwards datagrams arriving on its port to `to` with TTL 255, until dropped; `cut` drops
/// them instead.
struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn new(to: u16, cut: Arc<AtomicBool>) -> Relay {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let port = rx.local_addr().unwrap().port();
        let tx = bind_sender(LOOPBACK.parse().unwrap(), None, 60000).unwrap();
        tx.set_nonblocking(false).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let to: SocketAddr = format!("{LOOPBACK}:{to}").parse().unwrap();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, _)) = rx.recv_from(&mut buf) {
                    if !cut.load(Ordering::Relaxed) {
                        let _ = tx.send_to(&buf[..n], to);
                    }
                }
            }
        });
        Relay {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Our engine (`ours`) and the peer's (`theirs`), each with one session to the other through
/// two relays sharing one `cut` switch.
struct Pair {
    cut: Arc<AtomicBool>,
    ours: Option<BfdLink>,
    theirs: Option<BfdLink>,
    // Kept alive for the test's duration; dropped last.
    _engines: (Engine, Engine),
    _relays: (Relay, Relay),
}

fn spec(name: &str, ms: u64, auth: Option<AuthKey>) -> SessionSpec {
    SessionSpec {
        name: name.into(),
        peer: LOOPBACK.parse().unwrap(),
        interface: None,
        local: None,
        intervals: intervals(ms),
        auth,
    }
}

fn pair_with(ours_auth: Option<AuthKey>, theirs_auth: Option<AuthKey>) -> Pair {
    let (port_ours, port_theirs) = (free_udp_port(), free_udp_port());
    let cut = Arc::new(AtomicBool::new(false));
    let to_theirs = Relay::new(port_theirs, cut.clone());
    let to_ours = Relay::new(port_ours, cut.clone());
    let mut ours = Engine::start(EngineOptions {
        port: port_ours,
        peer_port: to_theirs.port,
    })
    .unwrap();
    let mut theirs = Engine::start(EngineOptions {
        port: port_theirs,
        peer_port: to_ours.port,
    })
    .unwrap();
    let o = ours.add(spec("tor", 100, ours_auth)).unwrap();
    let t = theirs.add(spec("db", 100, theirs_auth)).unwrap();
    Pair {
        cut,
        ours: Some(o),
        theirs: Some(t),
        _engines: (ours, theirs),
        _relays: (to_theirs, to_ours),
    }
}

fn pair() -> Pair {
    pair_with(None, None)
}

impl Pair {
    fn ours(&self) -> BfdStatus {
        self.ours.as_ref().unwrap().status().borrow().clone()
    }
    fn theirs(&self) -> BfdStatus {
        self.theirs.as_ref().unwrap().status().borrow().clone()
    }
    fn wait_both_up(&self) -> Duration {
        wait_until(BOUND, "both BFD sessions are Up", || {
            self.ours().state == SessionState::Up && self.theirs().state == SessionState::Up
        })
    }
}

#[test]
fn sessions_come_up_and_negotiate_the_fast_intervals() {
    let p = pair();
    let took = p.wait_both_up();
    eprintln!("up after {took:?}");
    wait_until(BOUND, "the Poll Sequences of going Up ended", || {
        let s = p.ours();
        s.tx_interval == Some(Duration::from_millis(100))
            && s.detection_time == Some(Duration::from_millis(300))
    });
    let s = p.ours();
    assert_eq!(s.verdict(), Verdict::Up);
    assert_eq!(s.remote_detect_mult, 3);
    assert_eq!(s.remote_min_rx, Duration::from_millis(100));
    assert_eq!(s.remote_discriminator, p.theirs().local_discriminator);
    assert!(s.counters.polls >= 1);
    assert!((49152..=65535).contains(&s.source_port));
}

#[test]
fn a_silent_peer_is_down_after_the_detection_time_and_comes_back() {
    let p = pair();
    p.wait_both_up();
    wait_until(BOUND, "the fast intervals are in use", || {
        p.ours().detection_time == Some(Duration::from_millis(300))
            && p.theirs().detection_time == Some(Duration::from_millis(300))
    });
    let cut_at = Instant::now();
    p.cut.store(true, Ordering::Relaxed);
    let took = wait_until(BOUND, "our session is Down", || {
        p.ours().state == SessionState::Down
    });
    eprintln!("Down {took:?} after the cut (detection time 300 ms)");
    // The last packet arrived at most one interval before the cut: not before ~200 ms.
    assert!(cut_at.elapsed() >= Duration::from_millis(150), "{took:?}");
    let s = p.ours();
    assert_eq!(s.local_diag, Diag::ControlDetectionTimeExpired);
    assert_eq!(s.verdict(), Verdict::Down);
    assert_eq!(s.counters.down_transitions, 1);
    assert!(s.last_down.is_some());
    p.cut.store(false, Ordering::Relaxed);
    p.wait_both_up();
    assert_eq!(p.ours().counters.up_transitions, 2);
}

/// The daemon's own runtime is single-threaded: were BFD run on it, a task that blocks the
/// thread would silence BFD and the peer would tear the session down.
#[tokio::test(flavor = "current_thread")]
async fn a_blocked_caller_runtime_does_not_stop_bfd() {
    let p = pair();
    p.wait_both_up();
    let sent = p.ours().counters.packets_out;
    // A check stuck in a blocking call, on the runtime that started the engine.
    std::thread::sleep(Duration::from_millis(1500));
    let s = p.ours();
    assert!(
        s.counters.packets_out >= sent + 10,
        "only {} packets sent while the caller was blocked",
        s.counters.packets_out - sent
    );
    assert_eq!(p.theirs().counters.down_transitions, 0);
    assert_eq!(s.state, SessionState::Up);
}

#[test]
fn a_removed_session_says_admin_down_which_is_not_a_failure() {
    let mut p = pair();
    p.wait_both_up();
    drop(p.theirs.take());
    wait_until(BOUND, "our session saw AdminDown", || {
        p.ours().state == SessionState::Down
    });
    let s = p.ours();
    assert_eq!(s.remote_state, SessionState::AdminDown);
    assert_eq!(s.local_diag, Diag::NeighborSignaledSessionDown);
    assert_eq!(s.verdict(), Verdict::PeerAdminDown);
    assert!(s.verdict().allows_session());
}

#[test]
fn new_intervals_reach_the_peer_by_a_poll_sequence() {
    let p = pair();
    p.wait_both_up();
    p.ours
        .as_ref()
        .unwrap()
        .control()
        .set_intervals(intervals(200));
    wait_until(BOUND, "the peer detects with 3 x 200 ms", || {
        p.theirs().detection_time == Some(Duration::from_millis(600))
    });
    wait_until(BOUND, "we send every 200 ms", || {
        p.ours().tx_interval == Some(Duration::from_millis(200))
    });
    assert_eq!(p.theirs().counters.down_transitions, 0);
}

fn key(t: AuthType, secret: &str) -> Option<AuthKey> {
    Some(AuthKey {
        auth_type: t,
        key_id: 3,
        secret: secret.as_bytes().to_vec(),
    })
}

#[test]
fn sha1_authenticated_sessions_come_up_only_with_the_same_key() {
    let t = AuthType::MeticulousKeyedSha1;
    let good = pair_with(key(t, "s3cret"), key(t, "s3cret"));
    good.wait_both_up();
    assert_eq!(good.ours().auth.as_deref(), Some("meticulous-keyed-sha1"));
    let bad = pair_with(key(t, "s3cret"), key(t, "other"));
    wait_until(BOUND, "packets with the wrong key are dropped", || {
        bad.ours().counters.dropped_auth >= 3
    });
    assert_eq!(bad.ours().state, SessionState::Down);
    assert_eq!(bad.ours().counters.packets_in, 0);
}

#[test]
fn packets_sent_with_a_lower_ttl_are_not_accepted() {
    let port = free_udp_port();
    let mut engine = Engine::start(EngineOptions {
        port,
        peer_port: free_udp_port(),
    })
    .unwrap();
    let link = engine.add(spec("tor", 100, None)).unwrap();
    // A valid Down packet from the peer's address, but with the default TTL (64).
    let down = primaryd::bfd::packet::ControlPacket {
        diag: Diag::None,
        state: SessionState::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 77,
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 100_000,
        required_min_echo_rx_us: 0,
        auth: None,
    }
    .encode();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{port}");
    wait_until(BOUND, "the packets were dropped for their TTL", || {
        s.send_to(&down, &to).unwrap();
        link.status().borrow().counters.dropped >= 3
    });
    let st = link.status().borrow().clone();
    assert_eq!(st.state, SessionState::Down, "never Init from such packets");
    assert_eq!(st.counters.packets_in, 0);
    // Garbage from the peer's address is counted, not fatal.
    s.send_to(b"\x20\x40\x03", &to).unwrap();
    wait_until(BOUND, "the malformed packet was counted", || {
        link.status().borrow().malformed_in >= 1
    });
}
