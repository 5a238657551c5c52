//! What a drill is and what it reports: the scenarios, the report with its events and
//! checks, and the context the drill's steps record events into (drill.rs runs them).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::attempt::Attempt;
use crate::clients::Client;
use crate::lab::Lab;
use crate::logparse::LogLine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// SIGKILL mariadbd on the primary.
    Kill,
    /// SIGSTOP mariadbd on the primary (it hangs; only a timeout sees it).
    Hang,
    /// SET GLOBAL read_only=1 on the primary, then promote.
    Demote,
    /// Graceful: drain the old primary, let the replica catch up, promote, and make the old
    /// primary a replica of the new one.
    Switchover,
    /// Take the primary's uplinks down.
    Isolate,
    /// SIGKILL primaryd on the primary (MariaDB keeps running).
    DaemonCrash,
    /// SIGSTOP every process of the primary's host, links up (hostloss.rs): nobody sends a
    /// withdraw; BFD (or the hold timer) finds the host silent.
    HostFreeze,
    /// SIGKILL mariadbd on the primary, promote a replica, then start the old server again:
    /// writable (read_only=OFF), no replication. It must not get its route back
    /// (splitbrain.rs).
    Restart,
    /// The primary's uplinks down, promote a replica, links up again: the old host never
    /// failed a check and must not get its route back (splitbrain.rs).
    Heal,
    /// Promote a replica while the old primary stays a healthy writable primary: the old one
    /// must withdraw on seeing the newer term (splitbrain.rs).
    DoublePromote,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Kill => "kill",
            Scenario::Hang => "hang",
            Scenario::Demote => "demote",
            Scenario::Switchover => "switchover",
            Scenario::Isolate => "isolate",
            Scenario::DaemonCrash => "daemon-crash",
            Scenario::HostFreeze => "host-freeze",
            Scenario::Restart => "restart",
            Scenario::Heal => "heal",
            Scenario::DoublePromote => "double-promote",
        }
    }

    /// The drills of an old primary that comes back or never left (splitbrain.rs).
    pub fn split_brain(self) -> bool {
        matches!(
            self,
            Scenario::Restart | Scenario::Heal | Scenario::DoublePromote
        )
    }

    /// Whether the old primary's MariaDB answers (over its socket) when the outcome is checked
    /// (a restarted one does again).
    pub(crate) fn old_primary_answers(self) -> bool {
        !matches!(self, Scenario::Kill | Scenario::Hang | Scenario::HostFreeze)
    }

    /// Whether the fault can cut the client off from a write the old primary committed: its
    /// uplinks go down, or it is killed, between the commit and the answer; or the route moves
    /// while the answer is on its way.
    pub(crate) fn answers_can_be_cut_off(self) -> bool {
        matches!(
            self,
            Scenario::Isolate
                | Scenario::HostFreeze
                | Scenario::Restart
                | Scenario::Heal
                | Scenario::DoublePromote
        )
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Event {
    /// Stable name, e.g. `fault_injected`, `route_gone`, `first_ack_new_primary`.
    pub event: String,
    /// Milliseconds after the fault (negative: before it); None when not observed.
    pub t_ms: Option<f64>,
    pub node: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Writes {
    pub run_id: i64,
    pub attempts: usize,
    pub failed_attempts: usize,
    /// Acknowledged writes per server.
    pub acked: BTreeMap<String, usize>,
    pub duplicates: usize,
    /// Keys the old primary acknowledged that the new primary does not have (asynchronous
    /// replication loses what had not reached the replica when the primary died).
    pub lost_acked_keys: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub lab: String,
    pub old_primary: String,
    pub new_primary: String,
    /// Unix time of the fault, in milliseconds; every `t_ms` is relative to it.
    pub fault_unix_ms: f64,
    pub events: Vec<Event>,
    /// First acknowledgement by the new primary minus the last one by the old primary.
    pub write_outage_ms: Option<f64>,
    pub writes: Writes,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    pub ok: bool,
    /// Every write attempt of app1, in order.
    pub attempts: Vec<Attempt>,
    /// The split-brain drills: `primaryctl show routes` and `show services` on the old
    /// primary, as it explained why it did not announce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_primary_view: Option<String>,
}

/// Bound on each wait of the drill (withdraw, promotion, new route, first write): generous,
/// as a host cut off without a link-down is found by the 3 s hold time and CI machines are slow.
pub(crate) const STEP: Duration = Duration::from_secs(20);
pub(crate) const POLL: Duration = Duration::from_millis(20);
/// Writes acknowledged by the primary before the fault: the client is in its steady state.
pub(crate) const WARM_ACKS: usize = 20;
/// How long the writer goes on once the new primary has acknowledged its first write.
pub(crate) const AFTER: Duration = Duration::from_millis(1000);

/// How a drill runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bound on each wait (see STEP). The benchmark gives ExaBGP with its defaults more: a hung
    /// server takes it three 5 s timeouts plus the intervals between them.
    pub step: Duration,
    /// app1's client (clients.rs); with `retry` a `pool` probe writes beside it.
    pub client: Client,
    /// Promote the replica right after the fault instead of once no router leads to the old
    /// primary (the benchmark's client profiles, as issue 12 measured them).
    pub promote_at_fault: bool,
    /// Another writer beside the drill's (the soak's): its run and the first key that may
    /// differ between the servers. A rejoin sets aside its rows too, before replication
    /// starts, as it does the drill's own.
    pub also_set_aside: Option<(i64, u64)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            step: STEP,
            client: Client::Retry,
            promote_at_fault: false,
            also_set_aside: None,
        }
    }
}

/// What announces the service on the DB hosts (found from the old primary's processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Daemon {
    Primaryd,
    /// ExaBGP with exabgp-healthcheck (the benchmark's variant, lab/exabgp/).
    Exabgp,
}

impl Daemon {
    pub(crate) fn comm(self) -> &'static str {
        match self {
            Daemon::Primaryd => "primaryd",
            Daemon::Exabgp => "exabgp",
        }
    }
}

pub(crate) struct Ctx<'a> {
    pub lab: &'a Lab,
    pub events: Vec<Event>,
    pub notes: Vec<String>,
    pub t0: f64,
    /// The old primary was drained with primaryctl (undrained once it is a replica).
    pub drained: bool,
}

/// The lab's service, as named in the DB hosts' primaryd.toml.
pub(crate) const SERVICE: &str = "main";

/// What a drill found besides its events and notes: the rest of its report.
pub(crate) struct Findings {
    pub checks: Vec<Check>,
    pub writes: Writes,
    pub write_outage_ms: Option<f64>,
    pub attempts: Vec<Attempt>,
    pub old_primary_view: Option<String>,
}

impl Ctx<'_> {
    /// The drill's report: its events (in time order) and notes, and what it found.
    pub fn report(mut self, scenario: Scenario, old: String, new: String, f: Findings) -> Report {
        self.events.sort_by(|a, b| {
            a.t_ms
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.t_ms.unwrap_or(f64::INFINITY))
        });
        Report {
            scenario,
            lab: self.lab.id.clone(),
            old_primary: old,
            new_primary: new,
            fault_unix_ms: self.t0,
            events: self.events,
            write_outage_ms: f.write_outage_ms,
            writes: f.writes,
            ok: f.checks.iter().all(|c| c.ok),
            checks: f.checks,
            notes: self.notes,
            attempts: f.attempts,
            old_primary_view: f.old_primary_view,
        }
    }

    /// An event at a log line's time, described from its message; `missing` when the log has
    /// no such line.
    pub fn logged(
        &mut self,
        event: &str,
        node: &str,
        line: Option<&LogLine>,
        detail: impl FnOnce(&str) -> String,
        missing: &str,
    ) {
        let (t, d) = match line {
            Some(l) => (Some(l.t_ms), detail(&shown(l))),
            None => (None, missing.to_string()),
        };
        self.at(event, t, Some(node), d);
    }

    /// The Unix time of the first event so named, if it was observed.
    pub fn unix_ms_of(&self, event: &str) -> Option<f64> {
        self.events
            .iter()
            .find(|e| e.event == event)
            .and_then(|e| e.t_ms)
            .map(|t| t + self.t0)
    }

    pub fn at(
        &mut self,
        event: &str,
        t_unix_ms: Option<f64>,
        node: Option<&str>,
        detail: impl Into<String>,
    ) {
        self.events.push(Event {
            event: event.into(),
            t_ms: t_unix_ms.map(|t| t - self.t0),
            node: node.map(str::to_string),
            detail: detail.into(),
        });
    }
}

impl<'a> Ctx<'a> {
    /// A context before the fault (t0 is set when the fault is injected).
    pub fn new(lab: &'a Lab) -> Ctx<'a> {
        Ctx {
            lab,
            events: Vec::new(),
            notes: Vec::new(),
            t0: 0.0,
            drained: false,
        }
    }
}

/// A log line's message as the timeline shows it: in text logs the message and its fields,
/// but the `event` field, which the lab finds the line by and which names the row already.
pub(crate) fn shown(l: &LogLine) -> String {
    let m = &l.message;
    let Some(i) = m.rfind(" event=\"") else {
        return m.clone();
    };
    let rest = &m[i + " event=\"".len()..];
    match rest.find('"') {
        Some(j) => format!("{}{}", &m[..i], &rest[j + 1..]),
        None => m.clone(),
    }
}

/// A check that failed with an error.
pub(crate) fn failed(name: &str, e: anyhow::Error) -> Check {
    Check {
        name: name.to_string(),
        ok: false,
        detail: format!("{e:#}"),
    }
}
