//! What a service's clients meet on this host, as a pure state machine per service: whether
//! its addresses are refused, what is exported for it (the primary route, a fallback, nothing),
//! and when connections are reset. No clock of its own, no I/O: the daemon feeds it the rules'
//! verdict and what the sessions advertise, carries out the jobs it asks for (nft, socket
//! destroy) and reports their outcome back.
//!
//! The order it keeps (docs/clients.md):
//! - The addresses are refused from start-up, and opened only once this host is the announced
//!   primary: the rules say announce, and at least one session advertises the primary route.
//! - On any withdraw the refusal is installed again *before* the withdraw is exported (the
//!   primary route is held for that long, bounded by the job's deadline); then the
//!   connections are reset.
//! - A fallback is exported only while the refusal is known to be installed and no opening is
//!   under way; a refusal that cannot be installed means no fallback, and a retry later.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A refusal that failed is tried again after this.
pub const RETRY: Duration = Duration::from_secs(5);

/// What is exported for the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    Nothing,
    Primary,
    Fallback,
}

impl fmt::Display for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Export::Nothing => "none",
            Export::Primary => "primary",
            Export::Fallback => "fallback",
        })
    }
}

/// What the kernel holds for the service's addresses, as far as we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing done yet (a service added by a reload).
    Unknown,
    Installed,
    Open,
    /// The last job failed: the state is unknown.
    Failed {
        reason: String,
        at: Instant,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unknown => f.write_str("not installed yet"),
            Refusal::Installed => f.write_str("refused"),
            Refusal::Open => f.write_str("open"),
            Refusal::Failed { reason, .. } => write!(f, "refusal failed: {reason}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Refuse,
    Open,
}

/// Work for the daemon: run `kind` on `addrs`, and report it with [`Gate::done`] and `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub seq: u64,
    pub kind: JobKind,
    pub addrs: Vec<IpAddr>,
}

/// What the gate reads at each step.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    /// The rules say: announce this host's primary route (for a replica: a healthy replica).
    pub primary: bool,
    /// At least one established session advertises our primary route for every prefix.
    pub advertised: bool,
    /// `[service] fallback`.
    pub fallback: bool,
    pub now: Instant,
}

/// What one step asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub job: Option<Job>,
    /// The export just stopped being the primary route: reset the connections once the new
    /// export is published.
    pub reset: bool,
}

#[derive(Debug, Clone)]
pub struct Gate {
    addrs: Vec<IpAddr>,
    kernel: Refusal,
    /// The newest job handed out and not reported yet.
    inflight: Option<(u64, JobKind)>,
    exported: Export,
    next_seq: u64,
}

impl Gate {
    /// A gate for `addrs` whose refusal is `kernel` (the start-up install's outcome, or
    /// `Unknown`).
    pub fn new(addrs: Vec<IpAddr>, kernel: Refusal) -> Gate {
        Gate {
            addrs,
            kernel,
            inflight: None,
            exported: Export::Nothing,
            next_seq: 1,
        }
    }

    pub fn refusal(&self) -> &Refusal {
        &self.kernel
    }

    pub fn exported(&self) -> Export {
        self.exported
    }

    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    /// True when a failed refusal is due for another try at `now`.
    pub fn retry_due(&self, now: Instant) -> bool {
        matches!(&self.kernel, Refusal::Failed { at, .. } if now.duration_since(*at) >= RETRY)
            && self.inflight.is_none()
    }

    /// The service's addresses changed (reload): the old ones are refused with the new ones,
    /// and nothing is known about the new ones.
    pub fn set_addrs(&mut self, addrs: Vec<IpAddr>) -> Option<Job> {
        if addrs == self.addrs {
            return None;
        }
        let mut all = self.addrs.clone();
        all.extend(addrs.iter().copied().filter(|a| !self.addrs.contains(a)));
        self.addrs = addrs;
        self.kernel = Refusal::Unknown;
        Some(self.job(JobKind::Refuse, all))
    }

    fn job(&mut self, kind: JobKind, addrs: Vec<IpAddr>) -> Job {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.inflight = Some((seq, kind));
        Job { seq, kind, addrs }
    }

    fn pending(&self, kind: JobKind) -> bool {
        matches!(self.inflight, Some((_, k)) if k == kind)
    }

    /// One step: what to export now, and what to do.
    pub fn step(&mut self, inp: Inputs) -> (Export, Step) {
        let mut step = Step::default();
        let export = if inp.primary {
            let opened = self.kernel == Refusal::Open && self.inflight.is_none();
            let failed_recently = matches!(&self.kernel, Refusal::Failed { at, .. }
                if inp.now.duration_since(*at) < RETRY);
            if inp.advertised && !opened && !self.pending(JobKind::Open) && !failed_recently {
                step.job = Some(self.job(JobKind::Open, self.addrs.clone()));
            }
            Export::Primary
        } else {
            let refused = self.kernel == Refusal::Installed && !self.pending(JobKind::Open);
            let retry = match &self.kernel {
                Refusal::Failed { at, .. } => inp.now.duration_since(*at) >= RETRY,
                _ => true,
            };
            if !refused && !self.pending(JobKind::Refuse) && retry {
                step.job = Some(self.job(JobKind::Refuse, self.addrs.clone()));
            }
            if refused {
                if inp.fallback {
                    Export::Fallback
                } else {
                    Export::Nothing
                }
            } else if self.exported == Export::Primary && self.pending(JobKind::Refuse) {
                // Refuse before the withdraw goes out: keep the route until the job reports.
                Export::Primary
            } else {
                Export::Nothing
            }
        };
        step.reset = self.exported == Export::Primary && export != Export::Primary;
        self.exported = export;
        (export, step)
    }

    /// A job's outcome. Outcomes of older jobs still tell what the kernel did.
    pub fn done(&mut self, seq: u64, kind: JobKind, result: Result<(), String>, now: Instant) {
        if self.inflight.is_some_and(|(s, _)| s == seq) {
            self.inflight = None;
        }
        self.kernel = match (kind, result) {
            (JobKind::Refuse, Ok(())) => Refusal::Installed,
            (JobKind::Open, Ok(())) => Refusal::Open,
            (_, Err(reason)) => Refusal::Failed { reason, at: now },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<IpAddr> {
        vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ]
    }

    fn inp(primary: bool, advertised: bool, now: Instant) -> Inputs {
        Inputs {
            primary,
            advertised,
            fallback: true,
            now,
        }
    }

    #[test]
    fn a_refused_host_exports_a_fallback_and_opens_only_once_its_route_is_out() {
        let t = Instant::now();
        let mut g = Gate::new(addrs(), Refusal::Installed);
        assert_eq!(
            g.step(inp(false, false, t)),
            (Export::Fallback, Step::default())
        );
        // Primary: the route goes out at once, the refusal stays until it is advertised.
        let (e, s) = g.step(inp(true, false, t));
        assert_eq!((e, s.job), (Export::Primary, None));
        let (e, s) = g.step(inp(true, true, t));
        assert_eq!(e, Export::Primary);
        let job = s.job.expect("open");
        assert_eq!((job.kind, job.addrs.clone()), (JobKind::Open, addrs()));
        // No second job while the first runs.
        assert_eq!(g.step(inp(true, true, t)).1.job, None);
        g.done(job.seq, JobKind::Open, Ok(()), t);
        assert_eq!(g.refusal(), &Refusal::Open);
        assert_eq!(
            g.step(inp(true, true, t)),
            (Export::Primary, Step::default())
        );
    }

    #[test]
    fn a_withdraw_waits_for_the_refusal_then_resets_and_falls_back() {
        let t = Instant::now();
        let mut g = Gate::new(addrs(), Refusal::Open);
        g.step(inp(true, true, t));
        let (e, s) = g.step(inp(false, true, t));
        // Still the primary route: the refusal comes first.
        assert_eq!(e, Export::Primary);
        assert!(!s.reset);
        let job = s.job.expect("refuse");
        assert_eq!(job.kind, JobKind::Refuse);
        assert_eq!(g.step(inp(false, true, t)).0, Export::Primary);
        g.done(job.seq, JobKind::Refuse, Ok(()), t);
        let (e, s) = g.step(inp(false, true, t));
        assert_eq!(e, Export::Fallback);
        assert!(s.reset, "connections are reset once the withdraw is out");
        assert!(!g.step(inp(false, true, t)).1.reset, "once per withdraw");
    }

    #[test]
    fn a_refusal_that_fails_withdraws_without_fallback_and_is_retried_later() {
        let t = Instant::now();
        let mut g = Gate::new(addrs(), Refusal::Open);
        g.step(inp(true, true, t));
        let job = g.step(inp(false, true, t)).1.job.unwrap();
        g.done(job.seq, JobKind::Refuse, Err("nft: not found".into()), t);
        let (e, s) = g.step(inp(false, true, t));
        assert_eq!(e, Export::Nothing);
        assert!(s.reset);
        assert_eq!(s.job, None, "not again at once");
        assert!(!g.retry_due(t + RETRY / 2));
        assert!(g.retry_due(t + RETRY));
        let later = g.step(inp(false, true, t + RETRY)).1.job.unwrap();
        assert_eq!(later.kind, JobKind::Refuse);
        g.done(later.seq, JobKind::Refuse, Ok(()), t + RETRY);
        assert_eq!(g.step(inp(false, true, t + RETRY)).0, Export::Fallback);
    }

    #[test]
    fn without_fallback_a_refused_host_exports_nothing() {
        let t = Instant::now();
        let mut g = Gate::new(addrs(), Refusal::Installed);
        let mut i = inp(false, false, t);
        i.fallback = false;
        assert_eq!(g.step(i), (Export::Nothing, Step::default()));
    }

    #[test]
    fn a_withdraw_during_an_opening_refuses_behind_it_and_never_falls_back_early() {
        let t = Instant::now();
        let mut g = Gate::new(addrs(), Refusal::Installed);
        let open = g.step(inp(true, true, t)).1.job.unwrap();
        let (e, s) = g.step(inp(false, true, t));
        assert_eq!(e, Export::Primary, "held: the refusal is not confirmed");
        let refuse = s.job.unwrap();
        assert_eq!(refuse.kind, JobKind::Refuse);
        // The opening reports first: the addresses are open, the refusal still pending.
        g.done(open.seq, JobKind::Open, Ok(()), t);
        assert_eq!(g.step(inp(false, true, t)).0, Export::Primary);
        g.done(refuse.seq, JobKind::Refuse, Ok(()), t);
        assert_eq!(g.step(inp(false, true, t)).0, Export::Fallback);
    }

    #[test]
    fn a_host_that_never_was_primary_does_not_reset() {
        let t = Instant::now();
        let mut g = Gate::new(addrs(), Refusal::Unknown);
        let (e, s) = g.step(inp(false, false, t));
        assert_eq!(e, Export::Nothing);
        assert!(!s.reset);
        g.done(s.job.unwrap().seq, JobKind::Refuse, Ok(()), t);
        assert_eq!(g.step(inp(false, false, t)).0, Export::Fallback);
    }

    #[test]
    fn new_addresses_refuse_the_old_ones_too() {
        let t = Instant::now();
        let mut g = Gate::new(addrs(), Refusal::Open);
        let new: Vec<IpAddr> = vec!["192.0.2.11".parse().unwrap()];
        let job = g.set_addrs(new.clone()).unwrap();
        assert_eq!(job.kind, JobKind::Refuse);
        assert_eq!(job.addrs.len(), 3);
        assert!(g.set_addrs(new).is_none());
        g.done(job.seq, JobKind::Refuse, Ok(()), t);
        assert_eq!(g.step(inp(false, false, t)).0, Export::Fallback);
    }
}
