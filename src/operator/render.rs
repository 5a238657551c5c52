//! primaryctl's human output: aligned tables in the style of `birdc` and `gobgp`, rendered
//! from the same views `--json` prints.

use super::views::{Attributes, PeerView, ReceivedView, RouteView, ServiceView, UnknownAttribute};

/// Columns padded to their widest cell, two spaces apart; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `as-path 4200000001 next-hop 198.18.1.1 med 50 ...`, only what is present.
pub fn attributes(a: &Attributes) -> String {
    let mut parts = vec![format!("as-path [{}]", a.as_path)];
    let hops: Vec<String> = a.next_hop.iter().map(|h| h.to_string()).collect();
    parts.push(format!("next-hop {}", hops.join(",")));
    if let Some(m) = a.med {
        parts.push(format!("med {m}"));
    }
    if let Some(l) = a.local_pref {
        parts.push(format!("local-pref {l}"));
    }
    if !a.communities.is_empty() {
        parts.push(format!("communities {}", a.communities.join(",")));
    }
    if !a.large_communities.is_empty() {
        parts.push(format!(
            "large-communities {}",
            a.large_communities.join(",")
        ));
    }
    if !a.unknown.is_empty() {
        parts.push(format!("unknown {}", unknown(&a.unknown)));
    }
    parts.join(" ")
}

/// `200=010203,201=0a0b…(300 bytes)`: type code and value, long values cut.
pub fn unknown(attrs: &[UnknownAttribute]) -> String {
    const SHOWN: usize = 32;
    let one = |a: &UnknownAttribute| {
        if a.value.len() <= SHOWN {
            format!("{}={}", a.type_code, a.value)
        } else {
            let cut = &a.value[..SHOWN];
            format!("{}={cut}…({} bytes)", a.type_code, a.value.len() / 2)
        }
    };
    attrs.iter().map(one).collect::<Vec<_>>().join(",")
}

pub fn routes(routes: &[RouteView]) -> String {
    let mut rows = Vec::new();
    for r in routes {
        rows.push(vec![
            r.service.clone(),
            r.prefix.to_string(),
            r.state.clone(),
            if r.announced {
                "announced"
            } else {
                "withdrawn"
            }
            .to_string(),
            r.since.clone(),
            r.reason.clone(),
        ]);
        if let Some(t) = r.term {
            rows.push(vec![
                "  term".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                t.to_string(),
            ]);
        }
        for o in &r.also_announced_by {
            let hops: Vec<String> = o.next_hop.iter().map(|h| h.to_string()).collect();
            rows.push(vec![
                format!("  {} (path {})", o.peer, o.path_id),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                format!(
                    "also announced by {} via {} [{}], {}",
                    o.router_id.as_deref().unwrap_or("?"),
                    hops.join(","),
                    o.as_path,
                    o.claim
                ),
            ]);
        }
        for p in &r.peers {
            let detail = match (&p.attributes, &p.since) {
                (Some(a), since) => format!(
                    "advertised since {} {}",
                    since.as_deref().unwrap_or("-"),
                    attributes(a)
                ),
                (None, _) => format!("not advertised (session {})", p.peer_state),
            };
            rows.push(vec![
                format!("  {}", p.peer),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                detail,
            ]);
        }
    }
    table(
        &["SERVICE", "PREFIX", "STATE", "ROUTE", "SINCE", "REASON"],
        &rows,
    )
}

pub fn peers(peers: &[PeerView]) -> String {
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.address.to_string(),
                p.remote_asn.to_string(),
                p.state.clone(),
                duration(p.state_seconds),
                opt(p.hold_time),
                format!("{}/{}", p.prefixes_received, p.prefixes_sent),
                format!("{}/{}", p.messages_in, p.messages_out),
                opt(p.last_error.clone()),
            ]
        })
        .collect();
    table(
        &[
            "PEER",
            "ADDRESS",
            "ASN",
            "STATE",
            "FOR",
            "HOLD",
            "PFX RCV/SENT",
            "MSG IN/OUT",
            "LAST ERROR",
        ],
        &rows,
    )
}

/// Details `show peers` puts under the table: capabilities and the last NOTIFICATION.
pub fn peer_details(peers: &[PeerView]) -> String {
    let mut out = String::new();
    for p in peers {
        out.push_str(&format!(
            "{}: local {} AS {}, remote AS {} router-id {}, capabilities [{}], keepalive {}",
            p.name,
            opt(p.local_address),
            p.local_asn,
            p.remote_asn,
            opt(p.router_id.clone()),
            p.capabilities.join(" "),
            opt(p.keepalive),
        ));
        if let Some(n) = &p.last_notification {
            out.push_str(&format!(", last notification {} {}", n.direction, n.text));
        }
        out.push('\n');
    }
    out
}

pub fn received(routes: &[ReceivedView]) -> String {
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            let mut communities = r.attributes.communities.clone();
            communities.extend(r.attributes.large_communities.iter().cloned());
            let hops: Vec<String> = r
                .attributes
                .next_hop
                .iter()
                .map(|h| h.to_string())
                .collect();
            vec![
                r.peer.clone(),
                r.prefix.to_string(),
                hops.join(","),
                r.attributes.as_path.clone(),
                opt(r.attributes.med),
                if communities.is_empty() {
                    "-".into()
                } else {
                    communities.join(",")
                },
                duration(r.age_seconds),
                if r.attributes.unknown.is_empty() {
                    "-".into()
                } else {
                    unknown(&r.attributes.unknown)
                },
            ]
        })
        .collect();
    table(
        &[
            "PEER",
            "PREFIX",
            "NEXT HOP",
            "AS PATH",
            "MED",
            "COMMUNITIES",
            "AGE",
            "UNKNOWN ATTRIBUTES",
        ],
        &rows,
    )
}

pub fn services(services: &[ServiceView]) -> String {
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let state = if s.drained {
                format!("{} (drained)", s.state)
            } else {
                s.state.clone()
            };
            let term = s.term.map_or_else(|| "-".to_string(), |t| t.to_string());
            let clients = s.clients.as_ref().map_or_else(
                || "-".to_string(),
                |c| match c.export.as_str() {
                    "none" => c.refusal.clone(),
                    e => format!("{}, {e}", c.refusal),
                },
            );
            let mut reason = s.reason.clone();
            if let Some(note) = s.clients.as_ref().and_then(|c| c.note.as_ref()) {
                reason = format!("{reason}; {note}");
            }
            vec![
                s.name.clone(),
                s.role.clone(),
                state,
                term,
                format!("{}/{}", s.successes, s.rise),
                format!("{}/{}", s.failures, s.fall),
                s.last_latency_ms
                    .map_or_else(|| "-".to_string(), |ms| format!("{ms:.1} ms")),
                clients,
                s.since.clone(),
                reason,
            ]
        })
        .collect();
    table(
        &[
            "SERVICE", "ROLE", "STATE", "TERM", "RISE", "FALL", "LATENCY", "CLIENTS", "SINCE",
            "REASON",
        ],
        &rows,
    )
}

/// `3d04h`, `2h05m`, `4m07s`, `12s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_do_not_pad_the_last() {
        let t = table(
            &["A", "BB", "C"],
            &[
                vec!["xxx".into(), "y".into(), "z".into()],
                vec!["".into(), "yyyy".into(), "".into()],
            ],
        );
        assert_eq!(t, "A    BB    C\nxxx  y     z\n     yyyy\n");
    }

    #[test]
    fn durations_read_like_bgp_uptimes() {
        assert_eq!(duration(12), "12s");
        assert_eq!(duration(247), "4m07s");
        assert_eq!(duration(7500), "2h05m");
        assert_eq!(duration(3 * 86400 + 4 * 3600 + 5), "3d04h");
    }

    #[test]
    fn unknown_attributes_show_their_type_and_value() {
        let short = UnknownAttribute {
            type_code: 200,
            flags: 0xc0,
            value: "010203".into(),
        };
        let long = UnknownAttribute {
            type_code: 201,
            flags: 0xc0,
            value: "ab".repeat(300),
        };
        assert_eq!(
            unknown(&[short, long]),
            format!("200=010203,201={}…(300 bytes)", "ab".repeat(16))
        );
    }

    #[test]
    fn attributes_list_only_what_is_present() {
        let a = Attributes {
            origin: "IGP".into(),
            as_path: "4200000001".into(),
            next_hop: vec!["198.18.1.1".parse().unwrap()],
            med: Some(50),
            local_pref: None,
            communities: vec!["65001:100".into()],
            large_communities: vec![],
            unknown: vec![],
        };
        assert_eq!(
            attributes(&a),
            "as-path [4200000001] next-hop 198.18.1.1 med 50 communities 65001:100"
        );
    }
}
