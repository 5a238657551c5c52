//! The failover targets of DESIGN.md and issue 12 against the figures (p99 against each bar).

use super::report::{fmt_ms, scenarios_of, settings_of, stats_of, whos_of};
use super::{BenchFile, Who};
use crate::clients::Client;
use crate::drill::Scenario;
use crate::speaker::SpeakerKind;
use crate::stats::Stats;

/// Rows of the targets' table.
struct Table<'a> {
    files: &'a [BenchFile],
    who: Who,
    out: String,
}

impl Table<'_> {
    fn p99(&self, sc: Scenario, key: &str) -> Option<Stats> {
        stats_of(self.files, self.who, sc, key)
    }

    fn p99_text(&self, sc: Scenario, key: &str) -> String {
        self.p99(sc, key).map_or("-".into(), |s| fmt_ms(s.p99))
    }

    fn has(&self, sc: Scenario) -> bool {
        super::report::samples(self.files).any(|s| s.who() == self.who && s.scenario == sc)
    }

    fn row(&mut self, name: String, bar: f64, st: Option<Stats>, extra: String) {
        let (val, met) = match &st {
            Some(s) => (fmt_ms(s.p99), if s.p99 <= bar { "yes" } else { "NO" }),
            None => ("-".into(), "not measured"),
        };
        self.out.push_str(&format!(
            "  {:<60} {:>8} {:>9}  {met}{extra}\n",
            name,
            fmt_ms(bar),
            val
        ));
    }

    fn header(&mut self, title: String) {
        self.out.push_str(&format!("\n{title}\n"));
        self.out.push_str(&format!(
            "  {:<60} {:>8} {:>9}  {}\n",
            "target", "bar", "p99", "met"
        ));
    }
}

/// The withdrawal targets: (scenario, what, bar, metric, with primaryd's and the ToR's parts).
fn withdrawal_rows(t: &mut Table, interval: f64, timeout: f64) {
    let rows = [
        (
            Scenario::Kill,
            "fault -> route gone at the ToR",
            50.0,
            "withdrawn_tor",
            true,
        ),
        (
            Scenario::Hang,
            "fault -> withdraw sent (timeout + 50)",
            timeout + 50.0,
            "detection",
            false,
        ),
        (
            Scenario::Hang,
            "fault -> route gone at the ToR (timeout + 50)",
            timeout + 50.0,
            "withdrawn_tor",
            true,
        ),
        (
            Scenario::Demote,
            "fault -> withdraw sent (interval + 50)",
            interval + 50.0,
            "detection",
            false,
        ),
        (
            Scenario::Demote,
            "fault -> route gone at the ToR (interval + 50)",
            interval + 50.0,
            "withdrawn_tor",
            true,
        ),
        (
            Scenario::HostFreeze,
            "fault -> route gone at the ToR (BFD 3 x 100 + 50)",
            350.0,
            "withdrawn_tor",
            false,
        ),
    ];
    for (sc, what, bar, metric, parts) in rows {
        if !t.has(sc) {
            continue;
        }
        let extra = if parts {
            format!(
                " (primaryd's part, fault -> withdraw sent: p99 {}; the ToR's, withdraw -> \
                 gone: p99 {})",
                t.p99_text(sc, "detection"),
                t.p99_text(sc, "routing_tor")
            )
        } else {
            String::new()
        };
        let st = t.p99(sc, metric);
        t.row(format!("{}: {what}", sc.name()), bar, st, extra);
    }
}

/// The announce and outage targets of every failover scenario.
fn failover_rows(t: &mut Table, interval: f64) {
    if t.has(Scenario::DoublePromote) {
        let sees = t.p99_text(Scenario::DoublePromote, "old_sees_new");
        let st = t.p99(Scenario::DoublePromote, "old_path_gone");
        let name = "double-promote: new announce -> old path gone from every BGP table";
        t.row(
            name.into(),
            100.0,
            st,
            format!(" (the old primary saw the new one: p99 {sees})"),
        );
    }
    // The split-brain drills have their own row above.
    let scenarios: Vec<Scenario> = scenarios_of(t.files)
        .into_iter()
        .filter(|s| !s.split_brain() && t.has(*s))
        .collect();
    for &sc in &scenarios {
        let sent = t.p99_text(sc, "announce_sent");
        let tor = super::report::samples(t.files)
            .find(|s| s.scenario == sc && s.error.is_none())
            .map(|s| s.new_tor.clone())
            .unwrap_or_default();
        let st = t.p99(sc, "announce_tor");
        let name = format!(
            "{}: promotion -> present at {tor} (interval + 50)",
            sc.name()
        );
        t.row(
            name,
            interval + 50.0,
            st,
            format!(" (announce sent: p99 {sent})"),
        );
    }
    for &sc in &scenarios {
        let st = t.p99(sc, "outage_beyond_promotion");
        t.row(
            format!("{}: write outage beyond the promotion", sc.name()),
            500.0,
            st,
            String::new(),
        );
    }
}

/// Issue 12's targets for a client profile: the write outage and no attempt waiting more than
/// 100 ms beyond the detection.
fn client_rows(t: &mut Table) {
    for (sc, bar) in [
        (Scenario::Kill, 250.0),
        (Scenario::Demote, 250.0),
        (Scenario::Hang, 500.0),
    ] {
        if !t.has(sc) {
            continue;
        }
        let wait = t.p99_text(sc, "longest_wait");
        let st = t.p99(sc, "outage");
        t.row(
            format!("{}: write outage", sc.name()),
            bar,
            st,
            format!(" (longest wait: p99 {wait})"),
        );
        let st = t.p99(sc, "wait_beyond_detection");
        let what = if sc == Scenario::Hang {
            "timeout_ms"
        } else {
            "the detection"
        };
        t.row(
            format!("{}: an attempt's wait beyond {what}", sc.name()),
            crate::waits::WAIT_BOUND_MS,
            st,
            String::new(),
        );
    }
}

/// The targets of DESIGN.md against primaryd's figures (its first client in the files, the
/// retry writer where present), and issue 12's per cli and pool series of every speaker.
pub fn targets(files: &[BenchFile]) -> String {
    let mut o = String::new();
    let Some(set) = settings_of(files, SpeakerKind::Primaryd) else {
        return o;
    };
    let (interval, timeout) = (set.interval_ms, set.timeout_ms);
    let whos = whos_of(files);
    if let Some(who) = whos
        .iter()
        .copied()
        .find(|w| w.speaker == SpeakerKind::Primaryd)
    {
        let mut t = Table {
            files,
            who,
            out: String::new(),
        };
        t.header(format!(
            "design targets (DESIGN.md), {} at interval_ms {interval}, timeout_ms {timeout}: p99 \
             against the bar",
            who.name()
        ));
        withdrawal_rows(&mut t, interval, timeout);
        failover_rows(&mut t, interval);
        o.push_str(&t.out);
    }
    for who in whos.into_iter().filter(|w| w.client != Client::Retry) {
        let mut t = Table {
            files,
            who,
            out: String::new(),
        };
        t.header(format!(
            "client targets (issue 12), {}: p99 against the bar",
            who.name()
        ));
        client_rows(&mut t);
        o.push_str(&t.out);
    }
    o
}
