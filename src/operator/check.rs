//! `primaryctl check`'s answer: per service, the check just run, what the split-brain rules
//! decided, and per peer whether the announce was sent. The JSON is stable (docs/cli.md);
//! primaryctl renders its table and its exit status from it.

use serde::{Deserialize, Serialize};

use super::render::table;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    pub service: String,
    /// The last check passed (the server is what the role needs).
    pub passed: bool,
    /// That check's result ("writable primary", "read_only=1", ...).
    pub result: String,
    /// Checks run for the request (more than one while climbing to `rise`).
    pub checks: u32,
    /// As in `show routes`: up, down, unknown, held, conflict.
    pub state: String,
    /// In the set every session advertises.
    pub announced: bool,
    pub reason: String,
    pub peers: Vec<CheckPeer>,
}

/// Where one peer stands with the service's prefixes when the answer was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckPeer {
    pub peer: String,
    /// BGP FSM state.
    pub peer_state: String,
    /// Every prefix of the service is in the UPDATEs written to this peer.
    pub advertised: bool,
}

/// The exit status primaryctl gives an answer: 0 when every service is announced and was
/// sent to every established peer, 2 when one is not announced (its check failed, or the
/// rules hold it back). Errors (no daemon, an announce not confirmed) are 1, elsewhere.
pub fn exit_status(views: &[CheckView]) -> u8 {
    if views.iter().all(|v| v.announced) {
        0
    } else {
        2
    }
}

pub fn render(views: &[CheckView]) -> String {
    let rows: Vec<Vec<String>> = views
        .iter()
        .flat_map(|v| {
            let route = if v.announced {
                "announced"
            } else {
                "withdrawn"
            };
            let head = vec![
                v.service.clone(),
                if v.passed { "passed" } else { "failed" }.to_string(),
                v.result.clone(),
                v.state.clone(),
                route.to_string(),
                v.reason.clone(),
            ];
            let peers = v.peers.iter().map(|p| {
                let sent = match (v.announced, p.advertised) {
                    (_, true) => "advertised".to_string(),
                    (true, false) => format!("not advertised (session {})", p.peer_state),
                    (false, false) => "not advertised".to_string(),
                };
                vec![
                    format!("  {}", p.peer),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    sent,
                ]
            });
            std::iter::once(head).chain(peers)
        })
        .collect();
    table(
        &["SERVICE", "CHECK", "RESULT", "STATE", "ROUTE", "REASON"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(announced: bool) -> CheckView {
        CheckView {
            service: "main".into(),
            passed: announced,
            result: if announced {
                "writable primary"
            } else {
                "read_only=1"
            }
            .into(),
            checks: 1,
            state: if announced { "up" } else { "down" }.into(),
            announced,
            reason: "writable primary (1 consecutive check)".into(),
            peers: vec![CheckPeer {
                peer: "tor1".into(),
                peer_state: "Established".into(),
                advertised: announced,
            }],
        }
    }

    #[test]
    fn exit_status_is_zero_only_when_every_service_is_announced() {
        assert_eq!(exit_status(&[view(true)]), 0);
        assert_eq!(exit_status(&[view(true), view(false)]), 2);
    }

    #[test]
    fn table_puts_peers_under_their_service() {
        let text = render(&[view(true)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("SERVICE  CHECK"), "{text}");
        assert!(
            lines[1].starts_with("main     passed  writable primary  up"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("  tor1") && lines[2].ends_with("advertised"),
            "{text}"
        );
    }
}
