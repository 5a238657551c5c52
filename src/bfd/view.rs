//! What `show peers` shows of a peer's BFD session: the `bfd` object of each peer in
//! `--json` (docs/cli.md) and the BFD table printed under the peers.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::status::BfdStatus;
use crate::operator::render::{duration, table};
use crate::operator::views::timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BfdView {
    /// "Up", "Down", "Init" or "AdminDown".
    pub state: String,
    pub remote_state: String,
    pub since: String,
    pub state_seconds: u64,
    /// Whether the BGP session may run: BFD Up, or the peer stopped BFD on purpose
    /// (AdminDown, RFC 5882).
    pub bgp_allowed: bool,
    /// Why the session last went down (RFC 5880 diagnostic), ours and the peer's.
    pub local_diag: String,
    pub remote_diag: String,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// Configured.
    pub desired_min_tx_ms: f64,
    pub required_min_rx_ms: f64,
    pub detect_mult: u8,
    /// The peer's, from its last packet (0 before any).
    pub remote_min_tx_ms: f64,
    pub remote_min_rx_ms: f64,
    pub remote_detect_mult: u8,
    /// Negotiated: our transmit interval (before jitter) and the time without packets after
    /// which we declare the peer down.
    pub tx_interval_ms: Option<f64>,
    pub detection_time_ms: Option<f64>,
    pub packets_in: u64,
    pub packets_out: u64,
    /// Refused by the session (TTL not 255, discriminator, authentication).
    pub dropped: u64,
    pub dropped_auth: u64,
    pub malformed_in: u64,
    pub send_errors: u64,
    pub up_transitions: u64,
    pub down_transitions: u64,
    pub poll_sequences: u64,
    /// "keyed-sha1", "meticulous-keyed-sha1", or null.
    pub auth: Option<String>,
    pub source_port: u16,
    pub last_down: Option<String>,
    pub last_down_reason: Option<String>,
    pub error: Option<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl BfdView {
    pub fn new(s: &BfdStatus, now: SystemTime) -> BfdView {
        let c = &s.counters;
        BfdView {
            state: s.state.to_string(),
            remote_state: s.remote_state.to_string(),
            since: timestamp(s.since),
            state_seconds: now.duration_since(s.since).map_or(0, |d| d.as_secs()),
            bgp_allowed: s.verdict().allows_session(),
            local_diag: s.local_diag.to_string(),
            remote_diag: s.remote_diag.to_string(),
            local_discriminator: s.local_discriminator,
            remote_discriminator: s.remote_discriminator,
            desired_min_tx_ms: ms(s.desired_min_tx),
            required_min_rx_ms: ms(s.required_min_rx),
            detect_mult: s.detect_mult,
            remote_min_tx_ms: ms(s.remote_min_tx),
            remote_min_rx_ms: ms(s.remote_min_rx),
            remote_detect_mult: s.remote_detect_mult,
            tx_interval_ms: s.tx_interval.map(ms),
            detection_time_ms: s.detection_time.map(ms),
            packets_in: c.packets_in,
            packets_out: c.packets_out,
            dropped: c.dropped,
            dropped_auth: c.dropped_auth,
            malformed_in: s.malformed_in,
            send_errors: s.send_errors,
            up_transitions: c.up_transitions,
            down_transitions: c.down_transitions,
            poll_sequences: c.polls,
            auth: s.auth.clone(),
            source_port: s.source_port,
            last_down: s.last_down.as_ref().map(|(t, _)| timestamp(*t)),
            last_down_reason: s.last_down.as_ref().map(|(_, r)| r.clone()),
            error: s.error.clone(),
        }
    }

    /// "Up", or "Down (peer AdminDown)" when that is not a failure.
    fn state_text(&self) -> String {
        if !self.bgp_allowed || self.state == "Up" {
            self.state.clone()
        } else {
            format!("{} (peer {})", self.state, self.remote_state)
        }
    }
}

fn num(v: f64) -> String {
    format!("{v:.0}")
}

/// The table `show peers` prints under the peers, one row per peer with BFD: (peer name,
/// its BFD view).
pub fn render(rows: &[(String, BfdView)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(peer, b)| {
            vec![
                peer.clone(),
                b.state_text(),
                duration(b.state_seconds),
                format!(
                    "{}/{}/{}",
                    num(b.desired_min_tx_ms),
                    num(b.required_min_rx_ms),
                    b.detect_mult
                ),
                format!(
                    "{}/{}/{}",
                    num(b.remote_min_tx_ms),
                    num(b.remote_min_rx_ms),
                    b.remote_detect_mult
                ),
                b.detection_time_ms
                    .map_or_else(|| "-".to_string(), |d| format!("{d:.0} ms")),
                format!("{}/{}", b.packets_in, b.packets_out),
                b.dropped.to_string(),
                b.down_transitions.to_string(),
                match (&b.error, &b.last_down_reason) {
                    (Some(e), _) => e.clone(),
                    (None, Some(r)) => format!("last down: {r}"),
                    (None, None) => "-".into(),
                },
            ]
        })
        .collect();
    table(
        &[
            "BFD PEER",
            "STATE",
            "FOR",
            "TX/RX/MULT",
            "REMOTE",
            "DETECT",
            "PKTS IN/OUT",
            "DROPPED",
            "DOWNS",
            "NOTE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: &str, allowed: bool) -> BfdView {
        BfdView {
            state: state.into(),
            remote_state: "AdminDown".into(),
            since: "2026-12-05T00:00:00Z".into(),
            state_seconds: 65,
            bgp_allowed: allowed,
            local_diag: "no diagnostic".into(),
            remote_diag: "no diagnostic".into(),
            local_discriminator: 1,
            remote_discriminator: 2,
            desired_min_tx_ms: 100.0,
            required_min_rx_ms: 100.0,
            detect_mult: 3,
            remote_min_tx_ms: 100.0,
            remote_min_rx_ms: 100.0,
            remote_detect_mult: 3,
            tx_interval_ms: Some(100.0),
            detection_time_ms: Some(300.0),
            packets_in: 10,
            packets_out: 11,
            dropped: 0,
            dropped_auth: 0,
            malformed_in: 0,
            send_errors: 0,
            up_transitions: 1,
            down_transitions: 1,
            poll_sequences: 1,
            auth: None,
            source_port: 49152,
            last_down: None,
            last_down_reason: Some("control detection time expired".into()),
            error: None,
        }
    }

    #[test]
    fn the_table_shows_intervals_detection_and_counters() {
        let t = render(&[("tor1".into(), view("Up", true))]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("BFD PEER  STATE"), "{t}");
        assert!(
            lines[1].contains("tor1")
                && lines[1].contains("1m05s")
                && lines[1].contains("100/100/3")
                && lines[1].contains("300 ms")
                && lines[1].contains("10/11")
                && lines[1].ends_with("last down: control detection time expired"),
            "{t}"
        );
        let t = render(&[("tor2".into(), view("Down", true))]);
        assert!(t.contains("Down (peer AdminDown)"), "{t}");
        let t = render(&[("tor2".into(), view("Down", false))]);
        assert!(!t.contains("(peer"), "{t}");
    }
}
