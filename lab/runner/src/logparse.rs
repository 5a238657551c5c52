//! primaryd's log lines (tracing's text format, or its JSON format), with their timestamps.

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct LogLine {
    /// Unix time in milliseconds.
    pub t_ms: f64,
    pub message: String,
    /// The whole line, for fields such as `withdraw=[...]`.
    pub text: String,
}

pub use testkit::parse_rfc3339_ms;

/// The lines of a log that carry a timestamp; others (MariaDB's, the start script's) are
/// skipped.
pub fn parse(text: &str) -> Vec<LogLine> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<LogLine> {
    let line = line.trim();
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        let t_ms = parse_rfc3339_ms(v["timestamp"].as_str()?)?;
        return Some(LogLine {
            t_ms,
            message: v["fields"]["message"].as_str().unwrap_or("").to_string(),
            text: line.to_string(),
        });
    }
    let (ts, rest) = line.split_once(char::is_whitespace)?;
    let t_ms = parse_rfc3339_ms(ts)?;
    // "LEVEL target: message fields..."
    let rest = rest.trim_start();
    let (_level, rest) = rest.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    // Spans (`peer{name=tor1 address=...}: `) may precede the target (`primaryd::bgp::session: `);
    // the message follows the first `: ` whose preceding word is a module path.
    let mut message = rest;
    let mut from = 0;
    while let Some(i) = rest[from..].find(": ") {
        let at = from + i;
        let word = rest[..at].rsplit(char::is_whitespace).next().unwrap_or("");
        if !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            message = &rest[at + 2..];
            break;
        }
        from = at + 2;
    }
    Some(LogLine {
        t_ms,
        message: message.to_string(),
        text: line.to_string(),
    })
}

/// The lines of the ExaBGP variant's console.log (lab/exabgp/stamped puts the Unix time in front
/// of each): ExaBGP's own `SECONDS.MICROS HH:MM:SS | PID | CATEGORY | message` and
/// exabgp-healthcheck's `SECONDS.MICROS LEVEL[healthcheck] message`. `message` is the message
/// alone; lines without a stamp (the start script's, MariaDB's) are skipped.
pub fn parse_stamped(text: &str) -> Vec<LogLine> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (ts, rest) = line.split_once(' ')?;
            if !ts.contains('.') {
                return None;
            }
            let t_ms = ts.parse::<f64>().ok()? * 1000.0;
            let rest = rest.trim_start();
            let message = if let Some((_, m)) = rest
                .split_once("[healthcheck] ")
                .filter(|(level, _)| level.chars().all(|c| c.is_ascii_uppercase()))
            {
                m
            } else {
                let f: Vec<&str> = rest.splitn(4, " | ").collect();
                if f.len() == 4 {
                    f[3]
                } else {
                    rest
                }
            };
            Some(LogLine {
                t_ms,
                message: message.trim().to_string(),
                text: line.to_string(),
            })
        })
        .collect()
}

/// The first line at or after `from_ms` whose message starts with `what` and whose text
/// contains `needle`.
pub fn first_after<'a>(
    lines: &'a [LogLine],
    from_ms: f64,
    what: &str,
    needle: &str,
) -> Option<&'a LogLine> {
    lines
        .iter()
        .find(|l| l.t_ms >= from_ms && l.message.starts_with(what) && l.text.contains(needle))
}

/// A structured field of a primaryd log line (`event`, `service`, ...): JSON's
/// `fields.NAME`, or the text format's `NAME=value` / `NAME="value"`.
pub fn field(l: &LogLine, name: &str) -> Option<String> {
    if l.text.starts_with('{') {
        let v: Value = serde_json::from_str(&l.text).ok()?;
        return match &v["fields"][name] {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        };
    }
    // The text format puts the fields after the message, with nothing to tell where it ends:
    // the last `NAME=` is the field (a message may mention one; a later field rarely does).
    let key = format!(" {name}=");
    let (_, v) = l.text.rsplit_once(&key)?;
    if let Some(q) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        return None;
    }
    // Unquoted (a `%value`): up to the next ` NAME=`, as a value may hold spaces.
    let end = v
        .match_indices(' ')
        .map(|(i, _)| i)
        .find(|&i| {
            let w = v[i + 1..].split('=').next().unwrap_or("");
            v[i + 1..].contains('=')
                && !w.is_empty()
                && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .unwrap_or(v.len());
    Some(v[..end].trim_end().to_string())
}

/// The first line at or after `from_ms` whose structured `event` field is `event`.
pub fn first_event<'a>(lines: &'a [LogLine], from_ms: f64, event: &str) -> Option<&'a LogLine> {
    lines
        .iter()
        .find(|l| l.t_ms >= from_ms && field(l, "event").as_deref() == Some(event))
}

/// The list a `sending UPDATE` line gives for `field` (`announce` or `withdraw`).
pub fn update_list(l: &LogLine, field: &str) -> String {
    if l.text.starts_with('{') {
        let v: Value = serde_json::from_str(&l.text).unwrap_or(Value::Null);
        return v["fields"][field].as_str().unwrap_or("").to_string();
    }
    let key = format!("{field}=");
    l.text
        .split_once(&key)
        .and_then(|(_, r)| r.split_once(']').map(|(a, _)| format!("{a}]")))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_exabgp_lines() {
        let log = "lab-exabgp-start: starting /usr/local/sbin/exabgp /etc/exabgp/exabgp.conf\n\
                   1795331509.062325 WARNING[healthcheck] Check command was unsuccessful: 1\n\
                   1795331509.062649 07:11:49 | 10983  | process         | command from process healthcheck : withdraw route 192.0.2.10/32 next-hop self \n\
                   1795331509.063199 07:11:49 | 10983  | outgoing-1      | >> 1 UPDATE(s)\n";
        let l = parse_stamped(log);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].message, "Check command was unsuccessful: 1");
        assert!((l[0].t_ms - 1_795_331_509_062.325).abs() < 0.01);
        assert_eq!(
            l[1].message,
            "command from process healthcheck : withdraw route 192.0.2.10/32 next-hop self"
        );
        assert_eq!(l[2].message, ">> 1 UPDATE(s)");
    }

    #[test]
    fn text_and_json_lines() {
        let t = "2026-11-22T06:07:01.519234Z  INFO peer{name=tor1 address=198.18.1.0}: primaryd::bgp::session: sending UPDATE \
                 peer=tor1 announce=[] withdraw=[\"192.0.2.10/32\"]";
        let l = parse_line(t).unwrap();
        assert_eq!(
            l.message.split(' ').take(2).collect::<Vec<_>>(),
            ["sending", "UPDATE"]
        );
        assert_eq!(update_list(&l, "withdraw"), "[\"192.0.2.10/32\"]");
        assert_eq!(update_list(&l, "announce"), "[]");
        let j = r#"{"timestamp":"2026-11-22T06:07:01.519234Z","level":"WARN","fields":{"message":"service down","reason":"x"},"target":"primaryd"}"#;
        assert_eq!(parse_line(j).unwrap().message, "service down");
        assert!(parse_line("2026-11-22 12:00:00 0 [Note] mariadbd: ready").is_none());
    }

    #[test]
    fn the_conflict_line_by_its_event_field_in_text_and_json() {
        // As primaryd logged them in the lab (db1, double-promote), text and --log-format json.
        let t = "2026-12-05T11:57:50.297943Z ERROR primaryd::daemon: withdrawn: conflict: \
                 192.0.2.10/32 also announced by 198.19.0.12 (next hop 198.18.1.0, via tor1), term 2 > our 1 \
                 service=main prefixes=[\"192.0.2.10/32\", \"2001:db8::10/128\"] event=\"conflict\" \
                 reason=conflict: 192.0.2.10/32 also announced by 198.19.0.12 (next hop 198.18.1.0, via tor1), term 2 > our 1";
        let j = r#"{"timestamp":"2026-12-05T11:57:50.297943Z","level":"ERROR","fields":{"message":"withdrawn: conflict: 192.0.2.10/32 also announced by 198.19.0.12 (next hop 198.18.1.0, via tor1), term 2 > our 1","service":"main","prefixes":"[\"192.0.2.10/32\", \"2001:db8::10/128\"]","event":"conflict","reason":"conflict: 192.0.2.10/32 also announced by 198.19.0.12 (next hop 198.18.1.0, via tor1), term 2 > our 1"},"target":"primaryd::daemon"}"#;
        let announce = "2026-12-05T11:57:15.204083Z  INFO primaryd::daemon: announce service=main \
                        prefixes=[\"192.0.2.10/32\", \"2001:db8::10/128\"] event=\"announce\"";
        for line in [t, j] {
            let l = parse_line(line).unwrap();
            assert_eq!(field(&l, "event").as_deref(), Some("conflict"), "{line}");
            assert_eq!(field(&l, "service").as_deref(), Some("main"), "{line}");
            assert_eq!(
                field(&l, "reason").as_deref(),
                Some("conflict: 192.0.2.10/32 also announced by 198.19.0.12 (next hop 198.18.1.0, via tor1), term 2 > our 1"),
                "{line}"
            );
            assert!(l.message.starts_with("withdrawn: conflict: 192.0.2.10/32"));
            assert_eq!(field(&l, "nope"), None);
        }
        let lines = parse(&format!("{announce}\n{t}\n{j}\n"));
        assert_eq!(lines.len(), 3);
        assert_eq!(field(&lines[0], "event").as_deref(), Some("announce"));
        let first = first_event(&lines, 0.0, "conflict").unwrap();
        assert!(first.text.starts_with("2026-12-05T11:57:50"));
        assert!(first_event(&lines, first.t_ms + 1.0, "conflict").is_none());
    }
}
