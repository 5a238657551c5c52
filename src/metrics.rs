//! Prometheus metrics on `[metrics] listen`, `GET /metrics`: rendered with prometheus-client
//! from the published status at scrape time (nothing on the BGP or check paths waits for a
//! scrape). Check latencies are the one thing observed as they happen, into a histogram the
//! health tasks share.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tracing::debug;

use crate::bgp::fsm::State;
use crate::bgp::status::PeerStatus;
use crate::operator::views::ServiceView;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn new_latency_histogram() -> Histogram {
    // 0.5 ms .. ~4 s: a local check takes about a millisecond; a hung one hits its timeout.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// Check latency per service, observed by the health tasks.
#[derive(Clone)]
pub struct CheckLatency(Family<Labels, Histogram, fn() -> Histogram>);

impl Default for CheckLatency {
    fn default() -> Self {
        CheckLatency(Family::new_with_constructor(new_latency_histogram))
    }
}

impl CheckLatency {
    pub fn observe(&self, service: &str, latency: Duration) {
        self.0
            .get_or_create(&labels(&[("service", service)]))
            .observe(latency.as_secs_f64());
    }
}

/// Counts the daemon keeps per service (the status carries only the current state).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceCounts {
    pub transitions: u64,
    pub announcements: u64,
    pub withdrawals: u64,
}

/// Everything one scrape shows.
pub struct Snapshot<'a> {
    pub peers: &'a [PeerStatus],
    pub services: &'a [(ServiceView, ServiceCounts)],
    pub latency: &'a CheckLatency,
}

fn gauge_family(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
) -> Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> {
    let family = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    match unit {
        Some(u) => registry.register_with_unit(name, help, u, family.clone()),
        None => registry.register(name, help, family.clone()),
    }
    family
}

fn counter_family(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

/// 1.0 for true, 0.0 for false: a gauge that is a flag.
fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

/// The OpenMetrics text for one scrape. Families appear in the order they are registered.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut r = Registry::with_prefix("primaryd");
    let build = gauge_family(&mut r, "build_info", "Build information", None);
    build
        .get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))]))
        .set(1.0);

    register_service_states(&mut r, s.services);
    register_service_clients(&mut r, s.services);
    register_service_counts(&mut r, s.services);
    r.register_with_unit(
        "check_duration",
        "Duration of health checks",
        Unit::Seconds,
        s.latency.0.clone(),
    );

    register_session_states(&mut r, s.peers);
    register_session_counters(&mut r, s.peers);
    crate::bfd::metrics::register(&mut r, s.peers);

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

/// Per service: up, announced, drained, conflict, term.
fn register_service_states(r: &mut Registry, services: &[(ServiceView, ServiceCounts)]) {
    let up = gauge_family(
        r,
        "service_up",
        "1 while the service's check passes (state up)",
        None,
    );
    let announced = gauge_family(
        r,
        "service_announced",
        "1 while the service's prefixes are announced",
        None,
    );
    let drained = gauge_family(r, "service_drained", "1 while the service is drained", None);
    let conflict = gauge_family(
        r,
        "conflict",
        "1 while the service is withdrawn because another primary announces it",
        None,
    );
    let term = gauge_family(
        r,
        "service_term",
        "The promotion term this server holds for the service",
        None,
    );
    for (v, _) in services {
        let l = labels(&[("service", &v.name)]);
        up.get_or_create(&l).set(flag(v.state == "up"));
        announced.get_or_create(&l).set(flag(v.announced));
        drained.get_or_create(&l).set(flag(v.drained));
        conflict.get_or_create(&l).set(flag(v.conflict));
        if let Some(t) = v.term {
            term.get_or_create(&l).set(t as f64);
        }
    }
}

/// Per service with client handling: refused, fallback, connections reset.
fn register_service_clients(r: &mut Registry, services: &[(ServiceView, ServiceCounts)]) {
    let refused = gauge_family(
        r,
        "service_refused",
        "1 while the service's addresses are refused on this host (TCP reset)",
        None,
    );
    let fallback = gauge_family(
        r,
        "service_fallback",
        "1 while this host announces the service's fallback route",
        None,
    );
    let resets = counter_family(
        r,
        "connections_reset",
        "Connections to the service's addresses reset on withdraws",
    );
    for (v, _) in services {
        let l = labels(&[("service", &v.name)]);
        if let Some(c) = &v.clients {
            refused.get_or_create(&l).set(flag(c.refusal == "refused"));
            fallback.get_or_create(&l).set(flag(c.export == "fallback"));
            resets.get_or_create(&l).inc_by(c.connections_reset);
        }
    }
}

/// Per service: transitions, announcements, withdrawals.
fn register_service_counts(r: &mut Registry, services: &[(ServiceView, ServiceCounts)]) {
    let transitions = counter_family(r, "service_transitions", "Health state changes");
    let announcements = counter_family(
        r,
        "service_announcements",
        "Times the service's prefixes were announced",
    );
    let withdrawals = counter_family(
        r,
        "service_withdrawals",
        "Times the service's prefixes were withdrawn",
    );
    for (v, counts) in services {
        let l = labels(&[("service", &v.name)]);
        transitions.get_or_create(&l).inc_by(counts.transitions);
        announcements.get_or_create(&l).inc_by(counts.announcements);
        withdrawals.get_or_create(&l).inc_by(counts.withdrawals);
    }
}

fn peer_labels(p: &PeerStatus) -> Labels {
    labels(&[("peer", &p.name), ("address", &p.address.to_string())])
}

/// Per BGP session: established, the FSM state, uptime.
fn register_session_states(r: &mut Registry, peers: &[PeerStatus]) {
    let established = gauge_family(
        r,
        "bgp_session_established",
        "1 while the BGP session is Established",
        None,
    );
    let state = gauge_family(
        r,
        "bgp_session_state",
        "1 for the session's current FSM state",
        None,
    );
    let uptime = gauge_family(
        r,
        "bgp_session_uptime",
        "Time in the Established state",
        Some(Unit::Seconds),
    );
    let now = SystemTime::now();
    for p in peers {
        let l = peer_labels(p);
        let is_up = p.state == State::Established;
        established.get_or_create(&l).set(flag(is_up));
        for st in [
            "Idle",
            "Connect",
            "Active",
            "OpenSent",
            "OpenConfirm",
            "Established",
        ] {
            let mut sl = l.clone();
            sl.push(("state".into(), st.into()));
            state
                .get_or_create(&sl)
                .set(flag(p.state.to_string() == st));
        }
        let secs = if is_up {
            now.duration_since(p.since).map_or(0.0, |d| d.as_secs_f64())
        } else {
            0.0
        };
        uptime.get_or_create(&l).set(secs);
    }
}

/// Per BGP session: message and error counters, prefix counts, the last NOTIFICATION.
fn register_session_counters(r: &mut Registry, peers: &[PeerStatus]) {
    let msgs_in = counter_family(r, "bgp_messages_received", "BGP messages received");
    let msgs_out = counter_family(r, "bgp_messages_sent", "BGP messages sent");
    let updates_in = counter_family(r, "bgp_updates_received", "UPDATE messages received");
    let updates_out = counter_family(r, "bgp_updates_sent", "UPDATE messages sent");
    let malformed = counter_family(
        r,
        "bgp_malformed_messages",
        "Malformed messages received (each reset the session)",
    );
    let errors = counter_family(
        r,
        "bgp_update_errors",
        "UPDATE errors handled without a reset (RFC 7606) or routes refused on import",
    );
    let flaps = counter_family(
        r,
        "bgp_established_transitions",
        "Times the session became Established",
    );
    let rcvd = gauge_family(
        r,
        "bgp_prefixes_received",
        "Prefixes in the Adj-RIB-In",
        None,
    );
    let sent = gauge_family(
        r,
        "bgp_prefixes_advertised",
        "Prefixes in the Adj-RIB-Out",
        None,
    );
    let last_code = gauge_family(
        r,
        "bgp_last_notification_code",
        "Error code of the last NOTIFICATION that ended a session (0: none)",
        None,
    );
    let last_subcode = gauge_family(
        r,
        "bgp_last_notification_subcode",
        "Subcode of that NOTIFICATION",
        None,
    );
    for p in peers {
        let l = peer_labels(p);
        let c = &p.counters;
        msgs_in.get_or_create(&l).inc_by(c.messages_in);
        msgs_out.get_or_create(&l).inc_by(c.messages_out);
        updates_in.get_or_create(&l).inc_by(c.updates_in);
        updates_out.get_or_create(&l).inc_by(c.updates_out);
        malformed.get_or_create(&l).inc_by(c.malformed_in);
        errors.get_or_create(&l).inc_by(c.update_errors_in);
        flaps.get_or_create(&l).inc_by(c.established_transitions);
        rcvd.get_or_create(&l).set(p.rib_in.len() as f64);
        sent.get_or_create(&l).set(p.rib_out.len() as f64);
        let (code, sub) = p
            .last_notification
            .as_ref()
            .map_or((0, 0), |l| (l.notification.code, l.notification.subcode));
        last_code.get_or_create(&l).set(f64::from(code));
        last_subcode.get_or_create(&l).set(f64::from(sub));
    }
}

/// Serves `GET /metrics` (anything else: 404) with the text `scrape` renders, until the
/// listener fails.
pub async fn serve(
    listener: TcpListener,
    scrape: Arc<dyn Fn() -> String + Send + Sync>,
) -> io::Error {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(http_client(stream, Arc::clone(&scrape)));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return e,
        }
    }
}

/// Just enough HTTP/1.1 for a scraper: one request, then close.
async fn http_client(mut stream: TcpStream, scrape: Arc<dyn Fn() -> String + Send + Sync>) {
    let mut buf = Vec::with_capacity(1024);
    let head = timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    })
    .await;
    if !matches!(head, Ok(true)) {
        return;
    }
    let request_line = buf.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = request_line.split(|b| *b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            scrape(),
        ),
        _ => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = timeout(
        Duration::from_secs(5),
        stream.write_all(response.as_bytes()),
    )
    .await
    {
        debug!("metrics client too slow: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PeerConfig;

    fn peer() -> PeerStatus {
        let cfg = crate::config::test_config(
            "[[service]]\nname = \"main\"\nprefixes = [\"192.0.2.10/32\"]\n\
             [service.mysql]\nsocket = \"/x\"\nuser = \"u\"\n",
        );
        let p: &PeerConfig = &cfg.bgp.peers[0];
        PeerStatus::new(p, 4_200_000_001)
    }

    fn service(state: &str) -> ServiceView {
        ServiceView {
            name: "main".into(),
            role: "primary".into(),
            prefixes: vec!["192.0.2.10/32".parse().unwrap()],
            state: state.into(),
            announced: state == "up",
            reason: "x".into(),
            since: "2026-11-22T00:00:00Z".into(),
            drained: false,
            last_result: None,
            last_latency_ms: None,
            last_check_at: None,
            successes: 0,
            failures: 0,
            rise: 2,
            fall: 1,
            term: Some(7),
            conflict: state == "conflict",
            clients: Some(crate::operator::views::ClientsView {
                refusal: "refused".into(),
                export: "fallback".into(),
                connections_reset: 5,
                note: None,
            }),
        }
    }

    #[test]
    fn metrics_follow_the_snapshot() {
        let latency = CheckLatency::default();
        latency.observe("main", Duration::from_millis(2));
        let mut p = peer();
        p.counters.messages_in = 42;
        let counts = ServiceCounts {
            transitions: 3,
            announcements: 2,
            withdrawals: 1,
        };
        let services = [(service("up"), counts)];
        let text = render(&Snapshot {
            peers: &[p],
            services: &services,
            latency: &latency,
        });
        for line in [
            "primaryd_service_up{service=\"main\"} 1",
            "primaryd_service_withdrawals_total{service=\"main\"} 1",
            "primaryd_service_term{service=\"main\"} 7",
            "primaryd_conflict{service=\"main\"} 0",
            "primaryd_connections_reset_total{service=\"main\"} 5",
            "primaryd_service_refused{service=\"main\"} 1",
            "primaryd_service_fallback{service=\"main\"} 1",
            "primaryd_bgp_messages_received_total{peer=\"tor1\",address=\"198.18.1.0\"} 42",
            "primaryd_bgp_session_state{peer=\"tor1\",address=\"198.18.1.0\",state=\"Idle\"} 1",
            "primaryd_check_duration_seconds_count{service=\"main\"} 1",
            "primaryd_build_info{version=",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        let services = [(service("conflict"), ServiceCounts::default())];
        let text = render(&Snapshot {
            peers: &[],
            services: &services,
            latency: &latency,
        });
        assert!(
            text.contains("primaryd_service_up{service=\"main\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("primaryd_conflict{service=\"main\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn http_serves_metrics_and_404s_the_rest() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve(l, Arc::new(|| "primaryd_x 1\n".to_string())));
        for (path, status, body) in [
            ("/metrics", "200 OK", "primaryd_x 1"),
            ("/", "404 Not Found", "try /metrics"),
        ] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut resp = String::new();
            s.read_to_string(&mut resp).await.unwrap();
            assert!(resp.starts_with(&format!("HTTP/1.1 {status}")), "{resp}");
            assert!(resp.ends_with(&format!("{body}\n")), "{resp}");
        }
    }
}
