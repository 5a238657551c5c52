//! The outcome of one probe, as the checker and the operator see it. Pure.

use std::fmt;

use super::evaluate::{Healthy, Problems};

/// Why a probe failed; the checker treats `Lost` as down at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connection lost, refused, reset, EOF, socket file missing, server shutting down.
    Lost,
    /// No answer within the timeout (a hung server, e.g. under SIGSTOP, or a stuck commit).
    Timeout,
    /// The server answered with an error (access denied, missing privilege, ...), or
    /// answered something the probe could not understand.
    Query,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The server is what the role needs ("writable primary", "replica, lag 0 s").
    Healthy(Healthy),
    /// The server answered, and it is not what the role needs ("read_only=1").
    Unhealthy(Problems),
    Failed {
        kind: FailureKind,
        reason: String,
    },
}

impl ProbeResult {
    pub fn is_healthy(&self) -> bool {
        matches!(self, ProbeResult::Healthy(_))
    }

    /// `Healthy("writable primary")`.
    pub fn writable() -> Self {
        ProbeResult::Healthy(Healthy::WritablePrimary)
    }

    pub(crate) fn failed(kind: FailureKind, reason: impl Into<String>) -> Self {
        ProbeResult::Failed {
            kind,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeResult::Healthy(h) => write!(f, "{h}"),
            ProbeResult::Unhealthy(p) => write!(f, "{p}"),
            ProbeResult::Failed { reason, .. } => write!(f, "{reason}"),
        }
    }
}
