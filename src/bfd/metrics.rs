//! The BFD part of `/metrics`, rendered from each peer's published BFD status at scrape time
//! (docs/cli.md lists the names).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::packet::SessionState;
use crate::bgp::status::PeerStatus;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

fn gauge(
    r: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
) -> Family<Labels, FloatGauge> {
    let f = Family::<Labels, FloatGauge>::default();
    match unit {
        Some(u) => r.register_with_unit(name, help, u, f.clone()),
        None => r.register(name, help, f.clone()),
    }
    f
}

fn counter(r: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    r.register(name, help, f.clone());
    f
}

/// Registers the BFD metrics of every peer with BFD into `r`.
pub fn register(r: &mut Registry, peers: &[PeerStatus]) {
    let with_bfd: Vec<(&PeerStatus, super::status::BfdStatus)> = peers
        .iter()
        .filter_map(|p| p.bfd.as_ref().map(|b| (p, b.borrow().clone())))
        .collect();
    if with_bfd.is_empty() {
        return;
    }
    let metrics = Metrics::new(r);
    for (p, b) in with_bfd {
        metrics.observe(p, &b);
    }
}

/// The BFD metric families, registered in the order `/metrics` lists them.
struct Metrics {
    up: Family<Labels, FloatGauge>,
    state: Family<Labels, FloatGauge>,
    allowed: Family<Labels, FloatGauge>,
    detect: Family<Labels, FloatGauge>,
    tx: Family<Labels, FloatGauge>,
    pkts_in: Family<Labels, Counter>,
    pkts_out: Family<Labels, Counter>,
    dropped: Family<Labels, Counter>,
    ups: Family<Labels, Counter>,
    downs: Family<Labels, Counter>,
}

impl Metrics {
    fn new(r: &mut Registry) -> Self {
        let seconds = || Some(Unit::Seconds);
        Metrics {
            up: gauge(r, "bfd_session_up", "1 while the BFD session is Up", None),
            state: gauge(
                r,
                "bfd_session_state",
                "1 for the BFD session's current state",
                None,
            ),
            allowed: gauge(
                r,
                "bfd_bgp_allowed",
                "1 while BFD lets the BGP session run (Up, or the peer AdminDown)",
                None,
            ),
            detect: gauge(
                r,
                "bfd_detection_time",
                "Time without packets after which the peer is declared down",
                seconds(),
            ),
            tx: gauge(
                r,
                "bfd_tx_interval",
                "Negotiated transmit interval (before jitter)",
                seconds(),
            ),
            pkts_in: counter(r, "bfd_packets_received", "Valid BFD packets received"),
            pkts_out: counter(r, "bfd_packets_sent", "BFD packets sent"),
            dropped: counter(
                r,
                "bfd_packets_dropped",
                "BFD packets refused (TTL, discriminator, authentication) or malformed",
            ),
            ups: counter(
                r,
                "bfd_session_up_transitions",
                "Times the BFD session went Up",
            ),
            downs: counter(
                r,
                "bfd_session_down_transitions",
                "Times the BFD session left Up",
            ),
        }
    }

    fn observe(&self, p: &PeerStatus, b: &super::status::BfdStatus) {
        let l: Labels = vec![
            ("peer".into(), p.name.clone()),
            ("address".into(), p.address.to_string()),
        ];
        let flag = |on: bool| f64::from(u8::from(on));
        self.up
            .get_or_create(&l)
            .set(flag(b.state == SessionState::Up));
        for s in [
            SessionState::AdminDown,
            SessionState::Down,
            SessionState::Init,
            SessionState::Up,
        ] {
            let mut sl = l.clone();
            sl.push(("state".into(), s.to_string()));
            self.state.get_or_create(&sl).set(flag(b.state == s));
        }
        let allows = b.verdict().allows_session();
        self.allowed.get_or_create(&l).set(flag(allows));
        let secs = |d: Option<std::time::Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        self.detect.get_or_create(&l).set(secs(b.detection_time));
        self.tx.get_or_create(&l).set(secs(b.tx_interval));
        let c = &b.counters;
        self.pkts_in.get_or_create(&l).inc_by(c.packets_in);
        self.pkts_out.get_or_create(&l).inc_by(c.packets_out);
        self.dropped
            .get_or_create(&l)
            .inc_by(c.dropped + b.malformed_in);
        self.ups.get_or_create(&l).inc_by(c.up_transitions);
        self.downs.get_or_create(&l).inc_by(c.down_transitions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::fsm::{Fsm, Intervals, SessionConfig};
    use crate::bfd::status::BfdStatus;
    use std::time::Duration;

    #[test]
    fn bfd_metrics_follow_the_status() {
        let cfg = crate::config::test_config(
            "bfd = true\n[[service]]\nname = \"main\"\nprefixes = [\"192.0.2.10/32\"]\n\
             [service.mysql]\nsocket = \"/x\"\nuser = \"u\"\n",
        );
        let mut p = PeerStatus::new(&cfg.bgp.peers[0], 4_200_000_001);
        let fsm = Fsm::new(SessionConfig {
            intervals: Intervals {
                desired_min_tx: Duration::from_millis(100),
                required_min_rx: Duration::from_millis(100),
                detect_mult: 3,
            },
            auth: None,
            local_discriminator: 9,
            seed: 1,
        });
        let mut s = BfdStatus::new(p.address, &fsm, 49152);
        s.counters.packets_out = 17;
        s.counters.down_transitions = 2;
        s.malformed_in = 1;
        s.counters.dropped = 3;
        let (_tx, rx) = tokio::sync::watch::channel(s);
        p.bfd = Some(rx);
        let mut r = Registry::with_prefix("primaryd");
        register(&mut r, &[p]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        for line in [
            "primaryd_bfd_session_up{peer=\"tor1\",address=\"198.18.1.0\"} 0",
            "primaryd_bfd_session_state{peer=\"tor1\",address=\"198.18.1.0\",state=\"Down\"} 1",
            "primaryd_bfd_bgp_allowed{peer=\"tor1\",address=\"198.18.1.0\"} 0",
            "primaryd_bfd_packets_sent_total{peer=\"tor1\",address=\"198.18.1.0\"} 17",
            "primaryd_bfd_packets_dropped_total{peer=\"tor1\",address=\"198.18.1.0\"} 4",
            "primaryd_bfd_session_down_transitions_total{peer=\"tor1\",address=\"198.18.1.0\"} 2",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        // Peers without BFD add nothing.
        let mut r = Registry::with_prefix("primaryd");
        register(&mut r, &[PeerStatus::new(&cfg.bgp.peers[0], 1)]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(!text.contains("bfd"), "{text}");
    }
}
